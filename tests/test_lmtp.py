"""
Tests for L{pop3kit.lmtp}: the LMTP listener, in memory against a recording delivery,
over loopback with Python's L{smtplib.LMTP} into real Maildirs, and end to end through
C{twistd pop3kit --lmtp} and back out over POP3.
"""

from __future__ import annotations

import errno
import os
import poplib
import shutil
import smtplib
import sys
import tempfile
from typing import BinaryIO, cast

from twisted.application.service import MultiService
from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from pop3kit._listeners import Listener
from pop3kit.backends.maildir import MaildirRealm
from pop3kit.delivery import MaildirDelivery, StorageFull, UnknownRecipient
from pop3kit.errors import TemporaryFailure
from pop3kit.interfaces import IMaildropDelivery
from pop3kit.lmtp import LMTPFactory, LMTPServer
from pop3kit.tap import Options, _knownUsers, makeFactory, makeService
from tests._oracle import crlfForm, readMaildir
from tests.test_twistd import TWISTD, ServerProcess


@implementer(IMaildropDelivery)
class RecordingDelivery:
    """
    A delivery that keeps what it stores, knows C{alice} and C{bob}, and fails as told.
    """

    def __init__(self) -> None:
        self.stored: list[tuple[str, bytes]] = []
        self.failures: dict[str, Exception] = {}
        self.pending: dict[str, Deferred[None]] = {}

    def recipient(self, address: str) -> Deferred[str]:
        name = address.partition("@")[0]
        if name in ("alice", "bob", "carol"):
            return succeed(name)
        if name == "broken":
            return fail(TemporaryFailure("user database unavailable"))
        return fail(UnknownRecipient("no such user here"))

    def deliver(self, maildrop: str, message: BinaryIO) -> Deferred[None]:
        data = message.read()
        if maildrop in self.failures:
            return fail(self.failures[maildrop])
        if maildrop in self.pending:
            d = self.pending[maildrop]
            return d.addCallback(lambda _: self.stored.append((maildrop, data)))
        self.stored.append((maildrop, data))
        return succeed(None)


class LMTPSessionTests(SynchronousTestCase):
    """
    One LMTP session over a L{StringTransport}.
    """

    def setUp(self) -> None:
        self.delivery = RecordingDelivery()
        self.clock = Clock()
        factory = LMTPFactory(
            self.delivery, hostname="mx.example.org", maxSize=1000, clock=self.clock
        )
        self.server = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.server.makeConnection(self.transport)

    def send(self, *lines: bytes) -> list[bytes]:
        """
        Send lines, return the reply lines they produced.
        """
        self.transport.clear()
        for line in lines:
            self.server.dataReceived(line + b"\r\n")
        value: bytes = self.transport.value()
        return value.splitlines()

    def transaction(self, *recipients: bytes, body: bytes = b"Subject: x\r\n\r\nhi") -> list[bytes]:
        """
        LHLO, MAIL, the recipients, DATA and the body; the replies after the data.
        """
        self.send(b"LHLO client.example.org", b"MAIL FROM:<sender@example.net>")
        for recipient in recipients:
            self.send(b"RCPT TO:<" + recipient + b">")
        self.send(b"DATA")
        return self.send(*body.split(b"\r\n"), b".")

    def test_greeting(self) -> None:
        """
        The greeting names the host and says LMTP.
        """
        self.assertEqual(self.transport.value(), b"220 mx.example.org LMTP pop3kit ready\r\n")

    def test_lhloAnnouncesExtensions(self) -> None:
        """
        C{LHLO} lists pipelining, enhanced status codes, 8BITMIME and the size limit.
        """
        reply = self.send(b"LHLO client.example.org")
        self.assertEqual(reply[0][:4], b"250-")
        self.assertEqual(
            sorted(line[4:] for line in reply[1:]),
            [b"8BITMIME", b"ENHANCEDSTATUSCODES", b"PIPELINING", b"SIZE 1000"],
        )

    def test_heloAndEhloRefused(self) -> None:
        """
        C{HELO} and C{EHLO} are SMTP's, refused with a pointer to C{LHLO}.
        """
        for command in (b"HELO x", b"EHLO x"):
            self.assertEqual(self.send(command), [b"500 5.5.1 this is LMTP: say LHLO (RFC 2033)"])

    def test_mailNeedsLhlo(self) -> None:
        """
        C{MAIL} before C{LHLO} is refused.
        """
        self.assertEqual(self.send(b"MAIL FROM:<a@example.net>"), [b"503 5.5.1 say LHLO first"])

    def test_unknownRecipientRefusedAtRcpt(self) -> None:
        """
        A recipient the delivery does not know is refused at C{RCPT}, with C{5.1.1}.
        """
        self.send(b"LHLO c", b"MAIL FROM:<a@example.net>")
        self.assertEqual(
            self.send(b"RCPT TO:<nobody@example.org>"),
            [b"550 5.1.1 no such user here <nobody@example.org>"],
        )
        self.assertEqual(
            self.send(b"RCPT TO:<broken@example.org>"),
            [b"451 4.3.0 temporary failure, try again later <broken@example.org>"],
        )
        self.assertEqual(self.send(b"DATA"), [b"503 Must have valid receiver and originator"])
        self.flushLoggedErrors(TemporaryFailure)

    def test_oneReplyPerRecipient(self) -> None:
        """
        After C{DATA}, one reply per accepted recipient, in C{RCPT} order, each saying
        what became of that copy.
        """
        self.delivery.failures["bob"] = TemporaryFailure("disk trouble")
        self.delivery.failures["carol"] = StorageFull("no space left")
        replies = self.transaction(b"alice@example.org", b"bob@example.org", b"carol@example.org")
        self.assertEqual(
            replies,
            [
                b"250 2.0.0 <alice@example.org> delivered",
                b"451 4.3.0 temporary failure, try again later <bob@example.org>",
                b"452 4.3.1 no space left <carol@example.org>",
            ],
        )
        self.assertEqual([name for name, _ in self.delivery.stored], ["alice"])
        self.flushLoggedErrors(TemporaryFailure)

    def test_repliesWaitForEarlierCopies(self) -> None:
        """
        A copy is stored only after the earlier recipient's, and its reply follows.
        """
        self.delivery.pending["alice"] = Deferred()
        replies = self.transaction(b"alice@example.org", b"bob@example.org")
        self.assertEqual(replies, [])
        self.assertEqual(self.delivery.stored, [])
        self.transport.clear()
        self.delivery.pending["alice"].callback(None)
        self.assertEqual(
            self.transport.value().splitlines(),
            [b"250 2.0.0 <alice@example.org> delivered", b"250 2.0.0 <bob@example.org> delivered"],
        )
        self.assertEqual([name for name, _ in self.delivery.stored], ["alice", "bob"])

    def test_storedMessage(self) -> None:
        """
        The stored copy is the message unstuffed, with LF line ends, after a
        C{Return-Path:} and a C{Received:} header; both recipients get the same copy.
        """
        self.transaction(
            b"alice@example.org", b"bob@example.org", body=b"Subject: x\r\n\r\n..line\r\nend"
        )
        (_, first), (_, second) = self.delivery.stored
        self.assertEqual(first, second)
        headers, _, rest = first.partition(b"Subject: x\n")
        self.assertTrue(headers.startswith(b"Return-Path: <sender@example.net>\nReceived: from"))
        self.assertIn(b"by mx.example.org with LMTP (pop3kit);", headers)
        self.assertNotIn(b"for <", headers)
        self.assertEqual(rest, b"\n.line\nend\n")

    def test_receivedNamesTheOnlyRecipient(self) -> None:
        """
        With one recipient, the C{Received:} header says whom it is for.
        """
        self.transaction(b"alice@example.org")
        [(_, stored)] = self.delivery.stored
        self.assertIn(b"\n\tfor <alice@example.org>;", stored)

    def test_tooBigRefusedForEveryRecipient(self) -> None:
        """
        A message over the size limit stores nothing and gets C{552} per recipient.
        """
        replies = self.transaction(
            b"alice@example.org", b"bob@example.org", body=b"Subject: x\r\n\r\n" + b"y" * 2000
        )
        self.assertEqual(
            replies,
            [
                b"552 5.3.4 message larger than 1000 octets <alice@example.org>",
                b"552 5.3.4 message larger than 1000 octets <bob@example.org>",
            ],
        )
        self.assertEqual(self.delivery.stored, [])
        # The session goes on.
        self.assertEqual(self.send(b"NOOP"), [b"250 2.0.0 ok"])

    def test_connectionLostMidData(self) -> None:
        """
        A client that leaves in the middle of C{DATA} has nothing stored.
        """
        self.send(b"LHLO c", b"MAIL FROM:<a@example.net>", b"RCPT TO:<alice@example.org>")
        self.send(b"DATA", b"Subject: half")
        self.server.connectionLost(None)  # type: ignore[arg-type]
        self.assertEqual(self.delivery.stored, [])

    def test_twoTransactions(self) -> None:
        """
        A second transaction in one session is delivered like the first.
        """
        self.assertEqual(
            self.transaction(b"alice@example.org"), [b"250 2.0.0 <alice@example.org> delivered"]
        )
        self.assertEqual(
            self.transaction(b"bob@example.org"), [b"250 2.0.0 <bob@example.org> delivered"]
        )
        self.assertEqual([name for name, _ in self.delivery.stored], ["alice", "bob"])

    def test_resetAndQuit(self) -> None:
        """
        C{RSET} and C{QUIT} answer with enhanced status codes; C{QUIT} closes.
        """
        self.assertEqual(self.send(b"RSET"), [b"250 2.0.0 ok"])
        self.assertEqual(self.send(b"QUIT"), [b"221 2.0.0 bye"])
        self.assertTrue(self.transport.disconnecting)

    def test_silentSessionTimesOut(self) -> None:
        """
        A session silent for the factory's timeout is closed, on the injected clock.
        """
        self.send(b"LHLO c")
        self.transport.clear()
        self.clock.advance(599)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.transport.value(), b"421 4.4.2 mx.example.org idle for too long\r\n")

    def test_protocolIsLMTPServer(self) -> None:
        """
        The factory builds L{LMTPServer}s.
        """
        self.assertIsInstance(self.server, LMTPServer)


class MaildirDeliveryTests(TestCase):
    """
    L{MaildirDelivery}: recipients to maildrops, messages into Maildirs.
    """

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.root = self.mktemp()
        os.makedirs(self.root)
        self.reactor = reactor

    def test_localPartAndDetail(self) -> None:
        """
        Without a user list, an address goes to its local part, less any C{+detail}.
        """
        delivery = MaildirDelivery(self.root, self.reactor)  # type: ignore[arg-type]
        self.assertEqual(
            self.successResultOf(delivery.recipient("alice+news@example.org")), "alice"
        )
        self.assertEqual(self.successResultOf(delivery.recipient("bob")), "bob")
        self.failureResultOf(delivery.recipient("../etc@example.org"), UnknownRecipient)

    def test_knownUsersOnly(self) -> None:
        """
        With a user list, the full address is tried first, then the local part; others
        are unknown.
        """
        known = {"alice", "carol@example.org"}
        delivery = MaildirDelivery(self.root, self.reactor, knownUser=known.__contains__)  # type: ignore[arg-type]
        self.assertEqual(self.successResultOf(delivery.recipient("alice@example.org")), "alice")
        self.assertEqual(
            self.successResultOf(delivery.recipient("carol@example.org")), "carol@example.org"
        )
        self.failureResultOf(delivery.recipient("mallory@example.org"), UnknownRecipient)

    def test_userListUnreadable(self) -> None:
        """
        A user list that cannot be read is a temporary failure, not an unknown user.
        """

        def broken(name: str) -> bool:
            raise OSError(errno.EIO, "Input/output error")

        delivery = MaildirDelivery(self.root, self.reactor, knownUser=broken)  # type: ignore[arg-type]
        failure = self.failureResultOf(delivery.recipient("alice"), TemporaryFailure)
        self.assertNotIsInstance(failure.value, UnknownRecipient)

    async def test_deliverIntoMaildir(self) -> None:
        """
        A delivered message lands in the user's C{new/}, created on the way.
        """
        import io

        delivery = MaildirDelivery(self.root, self.reactor)  # type: ignore[arg-type]
        await delivery.deliver("alice", io.BytesIO(b"Subject: a\n\nbody\n"))
        stored = readMaildir(os.path.join(self.root, "alice"))
        self.assertEqual(list(stored.values()), [b"Subject: a\n\nbody\n"])

    async def test_storageRefusedIsTemporary(self) -> None:
        """
        A Maildir that cannot be written is a L{TemporaryFailure} naming the reason.
        """
        import io

        with open(os.path.join(self.root, "alice"), "w"):
            pass  # a file where the Maildir should be
        delivery = MaildirDelivery(self.root, self.reactor)  # type: ignore[arg-type]
        with self.assertRaises(TemporaryFailure) as caught:
            await delivery.deliver("alice", io.BytesIO(b"x\n"))
        self.assertIn("cannot store the message", str(caught.exception))


class LoopbackTests(TestCase):
    """
    Python's L{smtplib.LMTP} delivering over loopback into real Maildirs.
    """

    async def test_smtplibDelivers(self) -> None:
        """
        smtplib's LMTP client gets one answer per recipient, refusals at C{RCPT}, and
        the messages land in the Maildirs.
        """
        from twisted.internet import reactor

        root = self.mktemp()
        os.makedirs(root)
        delivery = MaildirDelivery(root, reactor, knownUser={"alice", "bob"}.__contains__)  # type: ignore[arg-type]
        closed: Deferred[None] = Deferred()

        class Factory(LMTPFactory):
            def buildProtocol(self, addr: IAddress | None) -> LMTPServer:
                server = super().buildProtocol(addr)
                lost = server.connectionLost

                def connectionLost(reason: Failure) -> None:
                    lost(reason)
                    closed.callback(None)

                server.connectionLost = connectionLost  # type: ignore[method-assign, assignment]
                return server

        port = reactor.listenTCP(0, Factory(delivery), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        message = b"From: s@example.net\r\nSubject: loop\r\n\r\n.starts with a dot\r\n"

        recipients = ["alice@example.org", "nobody@example.org", "bob@example.org"]

        def client() -> tuple[list[int], list[tuple[int, bytes]]]:
            # smtplib's sendmail() reads one reply after DATA, as SMTP has; an LMTP
            # client reads one per accepted recipient.
            with smtplib.LMTP(
                "127.0.0.1", cast(IPv4Address, port.getHost()).port, timeout=30
            ) as lmtp:
                lmtp.ehlo("client.example.org")
                lmtp.mail("s@example.net")
                accepted = [lmtp.rcpt(recipient)[0] for recipient in recipients]
                replies = [lmtp.data(message)]
                replies += [lmtp.getreply() for _ in range(accepted.count(250) - 1)]
                return accepted, replies

        accepted, replies = await deferToThread(client)
        await closed
        self.assertEqual(accepted, [250, 550, 250])
        self.assertEqual(
            replies,
            [
                (250, b"2.0.0 <alice@example.org> delivered"),
                (250, b"2.0.0 <bob@example.org> delivered"),
            ],
        )
        for user in ("alice", "bob"):
            [stored] = readMaildir(os.path.join(root, user)).values()
            self.assertTrue(stored.endswith(b"Subject: loop\n\n.starts with a dot\n"))


class TwistdLMTPTests(TestCase):
    """
    C{twistd pop3kit --lmtp}: mail in over LMTP, out over POP3.
    """

    timeout = 120

    async def test_inOverLMTPOutOverPOP3(self) -> None:
        """
        A message delivered over the LMTP socket is retrieved over POP3; mail for a
        user the passwd-file does not know is refused.
        """
        server = ServerProcess(self)
        # AF_UNIX paths are limited to about 100 octets: not under the trial directory,
        # whose depth depends on where the checkout is.
        socketDirectory = tempfile.mkdtemp(prefix="pop3kit-lmtp-")
        self.addCleanup(shutil.rmtree, socketDirectory, True)
        socketPath = os.path.join(socketDirectory, "lmtp")
        server.start(
            [sys.executable, "-c", TWISTD, "--nodaemon", "--pidfile=", "--logfile", server.logFile],
            [
                *("--listen", "tcp:0:interface=127.0.0.1"),
                *("--data-dir", server.dataDir, "--failed-login-delay", "0"),
                *("--lmtp", f"unix:{socketPath}"),
            ],
        )
        port = await server.waitUntilListening()
        await server.waitForLog("LMTPFactory starting on")
        added = await server.pop3kit("user", "add", "alice", "--password-stdin", stdin=b"secret\n")
        self.assertEqual(added.returncode, 0, added.stderr)
        message = b"From: s@example.net\r\nSubject: via LMTP\r\n\r\nhello\r\n"

        def deliver() -> dict[str, tuple[int, bytes]]:
            with smtplib.LMTP(socketPath, timeout=30) as lmtp:
                return lmtp.sendmail(
                    "s@example.net", ["alice@example.org", "bob@example.org"], message
                )

        refused = await deferToThread(deliver)
        self.assertEqual(refused["bob@example.org"][0], 550)

        def retrieve() -> bytes:
            client = poplib.POP3("127.0.0.1", port, timeout=30)
            try:
                client.user("alice")
                client.pass_("secret")
                _, lines, _ = client.retr(1)
                client.quit()
                return b"".join(line + b"\r\n" for line in lines)
            finally:
                client.close()

        retrieved = await deferToThread(retrieve)
        self.assertTrue(retrieved.startswith(b"Return-Path: <s@example.net>\r\nReceived: from "))
        self.assertTrue(retrieved.endswith(crlfForm(b"Subject: via LMTP\n\nhello\n")))
        self.assertFalse(os.path.exists(os.path.join(server.dataDir, "mail", "bob")))


class TapLMTPTests(SynchronousTestCase):
    """
    C{twistd pop3kit --lmtp}: the option, and whom the listener takes mail for.
    """

    def options(self, *arguments: str) -> Options:
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp(), *arguments])
        return options

    def test_lmtpListeners(self) -> None:
        """
        Each C{--lmtp} adds a listening service beside the POP3 ones.
        """
        options = self.options("--lmtp", "unix:/tmp/a", "--lmtp", "tcp:0:interface=127.0.0.1")
        self.assertEqual(options["lmtp"], ["unix:/tmp/a", "tcp:0:interface=127.0.0.1"])
        service = makeService(options)
        listeners = [s for s in cast(MultiService, service) if isinstance(s, Listener)]
        self.assertEqual(
            [(listener.description, type(listener.factory).__name__) for listener in listeners],
            [
                ("tcp:1110:interface=127.0.0.1", "POP3ServerFactory"),
                ("unix:/tmp/a", "LMTPFactory"),
                ("tcp:0:interface=127.0.0.1", "LMTPFactory"),
            ],
        )

    def test_knownUsersOfMemoryChecker(self) -> None:
        """
        With C{--auth memory:}, mail is taken for those users only.
        """
        options = self.options("--auth", "memory:alice:pw:bob:pw")
        known = _knownUsers(makeFactory(options).portal)
        assert known is not None
        self.assertEqual([known("alice"), known("bob"), known("eve")], [True, True, False])

    def test_knownUsersOfPasswdFile(self) -> None:
        """
        In the zero-configuration mode, the passwd-file tells; an entry without a
        password (a userdb-only entry) still receives mail.
        """
        options = self.options()
        os.makedirs(options["data-dir"])
        with open(os.path.join(options["data-dir"], "passwd"), "w") as f:
            f.write("alice:{PLAIN}pw\nlist::\n")
        known = _knownUsers(makeFactory(options).portal)
        assert known is not None
        self.assertEqual([known("alice"), known("list"), known("eve")], [True, True, False])

    def test_unknownCheckerAcceptsAll(self) -> None:
        """
        A checker that cannot list its users leaves the decision to the Maildir names.
        """
        portal = Portal(MaildirRealm(self.mktemp()), [AllowAnonymousAccess()])
        self.assertIsNone(_knownUsers(portal))
