"""
Tests for L{pop3kit.backends.mbox.MboxDelivery}: delivery into mbox files, in process
and over LMTP through C{twistd pop3kit --storage mbox:... --lmtp}, and back out over
POP3.
"""

from __future__ import annotations

import io
import os
import shutil
import smtplib
import tempfile

from twisted.internet import reactor
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from pop3kit import _mboxfile, tap
from pop3kit.backends.mbox import MboxDelivery
from pop3kit.delivery import UnknownRecipient
from pop3kit.errors import TemporaryFailure
from pop3kit.interfaces import IMaildropDelivery
from pop3kit.storage import MboxStorage
from tests.test_backend_mbox_storage import parse
from tests.test_server_loopback import POP3TestClient

_REACTOR: IReactorThreads = reactor  # type: ignore[assignment]


def readBytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class MboxDeliveryTests(TestCase):
    """
    L{MboxDelivery} in process, with the reactor's thread pool.
    """

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.template = os.path.join(self.root, "%u")

    def test_interface(self) -> None:
        """
        L{MboxDelivery} provides L{IMaildropDelivery}, and L{MboxStorage.makeDelivery}
        makes one on the storage's template.
        """
        delivery = MboxStorage(self.template).makeDelivery(None)
        self.assertTrue(verifyObject(IMaildropDelivery, delivery))
        assert isinstance(delivery, MboxDelivery)
        self.assertEqual(delivery.template, self.template)

    async def test_deliverAppends(self) -> None:
        """
        Messages are appended in order, created with the mbox, C{From } lines in bodies
        quoted, and read back exactly as delivered; the C{From } line names the sender
        of a C{Return-Path:} first line.
        """
        delivery = MboxDelivery(self.template, _REACTOR)
        first = b"Return-Path: <s@example.net>\nSubject: a\n\nFrom here\n>From there\n"
        second = b"Subject: b\n\nno line end"
        await delivery.deliver("alice", io.BytesIO(first))
        await delivery.deliver("alice", io.BytesIO(second))
        path = os.path.join(self.root, "alice")
        # A last line without a line end gets one, which changes nothing POP3 sends.
        self.assertEqual(list(_mboxfile.iterMessages(path)), [first, second + b"\n"])
        data = readBytes(path)
        self.assertTrue(data.startswith(b"From s@example.net "), data[:40])
        self.assertIn(b"\n>From here\n>>From there\n", data)
        self.assertIn(b"\n\nFrom MAILER-DAEMON ", data)
        self.assertEqual(sorted(os.listdir(self.root)), ["alice"], "no lock, journal or spool left")

    async def test_missingDirectoriesCreated(self) -> None:
        """
        A template naming a directory per domain gets it created on delivery.
        """
        delivery = MboxDelivery(os.path.join(self.root, "%d", "%n"), _REACTOR)
        await delivery.deliver("bob@example.org", io.BytesIO(b"Subject: b\n\nhi\n"))
        path = os.path.join(self.root, "example.org", "bob")
        self.assertEqual(list(_mboxfile.iterMessages(path)), [b"Subject: b\n\nhi\n"])

    def test_recipients(self) -> None:
        """
        With a user list, the full address is tried first, then the local part (a
        C{+detail} removed); without one every name the template takes is accepted.
        """
        known = {"alice", "carol@example.org"}
        delivery = MboxDelivery(self.template, _REACTOR, knownUser=known.__contains__)
        self.assertEqual(self.successResultOf(delivery.recipient("alice+x@example.org")), "alice")
        self.assertEqual(
            self.successResultOf(delivery.recipient("carol@example.org")), "carol@example.org"
        )
        self.failureResultOf(delivery.recipient("mallory@example.org"), UnknownRecipient)
        anyone = MboxDelivery(self.template, _REACTOR)
        self.assertEqual(self.successResultOf(anyone.recipient("dave@example.org")), "dave")
        self.failureResultOf(anyone.recipient("../etc@example.org"), UnknownRecipient)

    async def test_lockedIsTemporary(self) -> None:
        """
        An mbox that stays locked by another program is a L{TemporaryFailure}, and
        nothing is appended.
        """
        path = os.path.join(self.root, "alice")
        delivery = MboxDelivery(self.template, _REACTOR, lockTimeout=0.2)
        with _mboxfile.lockMbox(path, create=True), self.assertRaises(TemporaryFailure) as caught:
            await delivery.deliver("alice", io.BytesIO(b"Subject: a\n\nx\n"))
        self.assertIn("locked", str(caught.exception))
        self.assertEqual(readBytes(path), b"")

    async def test_unwritableIsTemporary(self) -> None:
        """
        An mbox that cannot be written is a L{TemporaryFailure} naming the reason.
        """
        os.makedirs(os.path.join(self.root, "alice"))  # a directory where the file should be
        delivery = MboxDelivery(self.template, _REACTOR)
        with self.assertRaises(TemporaryFailure) as caught:
            await delivery.deliver("alice", io.BytesIO(b"x\n"))
        self.assertIn("cannot store the message", str(caught.exception))


class LMTPIntoMboxTests(TestCase):
    """
    C{twistd pop3kit --storage mbox:... --lmtp}: mail in over LMTP (Python's
    L{smtplib.LMTP}), out over POP3.
    """

    timeout = 120

    async def test_inOverLMTPOutOverPOP3(self) -> None:
        """
        A message delivered over the LMTP socket is appended to the user's mbox and
        retrieved over POP3; mail for a user the checker does not know is refused.
        """
        directory = tempfile.mkdtemp(prefix="p3k")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        spool = os.path.join(directory, "spool")
        os.makedirs(spool)
        pop3Socket = os.path.join(directory, "pop3")
        lmtpSocket = os.path.join(directory, "lmtp")
        service = tap.makeService(
            parse(
                *("--listen", "unix:" + pop3Socket),
                *("--auth", "memory:alice:secret"),
                *("--storage", f"mbox:{spool}/%u"),
                *("--lmtp", "unix:" + lmtpSocket),
                *("--failed-login-delay", "0"),
            )
        )
        service.startService()
        self.addCleanup(service.stopService)
        message = b"From: s@example.net\r\nSubject: via LMTP\r\n\r\nFrom the body\r\n"

        def deliver() -> dict[str, tuple[int, bytes]]:
            with smtplib.LMTP(lmtpSocket, timeout=30) as lmtp:
                return lmtp.sendmail(
                    "s@example.net", ["alice@example.org", "bob@example.org"], message
                )

        refused = await deferToThread(deliver)
        self.assertEqual(list(refused), ["bob@example.org"])
        self.assertEqual(refused["bob@example.org"][0], 550)
        self.assertFalse(os.path.exists(os.path.join(spool, "bob")))

        client: POP3TestClient = await connectProtocol(
            UNIXClientEndpoint(reactor, pop3Socket), POP3TestClient()
        )
        self.addCleanup(client.abort)
        await client.greeting
        answers = await client.send(b"USER alice", b"PASS secret", b"RETR 1", b"QUIT")
        retrieved = answers[2][1:]
        self.assertEqual(retrieved[0], b"Return-Path: <s@example.net>")
        self.assertEqual(
            retrieved[-4:], [b"From: s@example.net", b"Subject: via LMTP", b"", b"From the body"]
        )
        await client.closed
        [stored] = _mboxfile.iterMessages(os.path.join(spool, "alice"))
        self.assertTrue(stored.endswith(b"Subject: via LMTP\n\nFrom the body\n"), stored)
        self.assertTrue(readBytes(os.path.join(spool, "alice")).startswith(b"From s@example.net "))
