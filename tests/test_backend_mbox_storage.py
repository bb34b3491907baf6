"""
Tests for L{pop3kit.storage} and the C{--storage} option of C{twistd pop3kit}, and an mbox
served end to end through it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.internet import reactor
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit import _mboxfile, storage, tap
from pop3kit.backends.maildir import MaildirRealm
from pop3kit.backends.mbox import MboxRealm
from pop3kit.storage import InvalidStorage, MaildirStorage, MboxStorage, parseStorage
from tests.test_server_loopback import POP3TestClient


def parse(*arguments: str) -> tap.Options:
    """
    Parse C{arguments} as C{twistd pop3kit} would.
    """
    options = tap.Options()
    options.parseOptions(list(arguments))
    return options


class ParseStorageTests(SynchronousTestCase):
    """
    L{parseStorage} and its registry.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def test_maildir(self) -> None:
        """
        C{maildir:ROOT} names an existing directory.
        """
        parsed = parseStorage(f"maildir:{self.directory}")
        self.assertEqual(parsed, MaildirStorage(self.directory))
        self.assertIsInstance(parsed.makeRealm(), MaildirRealm)
        self.assertEqual(parsed.description, f"Maildirs under {self.directory}")

    def test_mbox(self) -> None:
        """
        C{mbox:TEMPLATE} takes a template naming the user in an existing directory.
        """
        parsed = parseStorage(f"MBOX:{self.directory}/%u")
        self.assertEqual(parsed, MboxStorage(f"{self.directory}/%u"))
        self.assertIsInstance(parsed.makeRealm(), MboxRealm)

    def test_invalid(self) -> None:
        """
        Every unusable specification is refused with a one-line reason.
        """
        missing = os.path.join(self.directory, "missing")
        for spec, reason in [
            (
                "/var/mail",
                "unknown storage '/var/mail': use one of maildir:..., mbox:..., postgresql:...",
            ),
            (
                "imap://x",
                "unknown storage 'imap://x': use one of maildir:..., mbox:..., postgresql:...",
            ),
            ("maildir:", "maildir: needs the directory holding the Maildirs (maildir:ROOT)"),
            (f"maildir:{missing}", f"maildir:{missing}: {missing} is not a directory"),
            ("mbox:", "mbox: needs a path template, e.g. mbox:/var/mail/%u"),
            (
                f"mbox:{self.directory}/inbox",
                f"mbox:{self.directory}/inbox: '{self.directory}/inbox' names no user: "
                "put %u (or %n) in it",
            ),
            (f"mbox:{missing}/%u", f"mbox:{missing}/%u: {missing} is not a directory"),
        ]:
            with self.assertRaises(InvalidStorage) as caught:
                parseStorage(spec)
            self.assertEqual(str(caught.exception), reason)

    def test_registry(self) -> None:
        """
        A backend adds a scheme with one entry of L{storage.STORAGE_SCHEMES}, whose parser
        gets the whole specification (a URL, say); its L{ValueError} is an
        L{InvalidStorage}.
        """
        seen = []

        def postgresql(spec: str) -> storage.Storage:
            seen.append(spec)
            if "bad" in spec:
                raise ValueError("not a usable PostgreSQL URL")
            return MboxStorage("/x/%u")

        self.patch(
            storage, "STORAGE_SCHEMES", {**storage.STORAGE_SCHEMES, "postgresql": postgresql}
        )
        self.assertEqual(parseStorage("postgresql://db.example/mail"), MboxStorage("/x/%u"))
        with self.assertRaises(InvalidStorage) as caught:
            parseStorage("postgresql://bad")
        self.assertEqual(str(caught.exception), "not a usable PostgreSQL URL")
        self.assertEqual(seen, ["postgresql://db.example/mail", "postgresql://bad"])


class StorageOptionTests(TestCase):
    """
    C{twistd pop3kit --storage}.
    """

    def test_maildirMeansMaildirRoot(self) -> None:
        """
        C{--storage maildir:ROOT} sets what C{--maildir-root ROOT} sets, and the root is
        not created by the zero-configuration mode.
        """
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        options = parse("--storage", f"maildir:{root}")
        self.assertEqual(options["maildir-root"], root)
        self.assertFalse(options["create-maildir-root"])
        self.assertEqual(options["storage-backend"], MaildirStorage(root))

    def test_defaultIsMaildirRoot(self) -> None:
        """
        Without C{--storage}, the Maildirs of C{--maildir-root} (or the data directory)
        are served.
        """
        options = parse()
        self.assertEqual(options["storage-backend"], MaildirStorage(options["maildir-root"]))

    def test_refused(self) -> None:
        """
        A bad C{--storage}, or one beside C{--maildir-root}, is a usage error.
        """
        self.assertRaises(usage.UsageError, parse, "--storage", "nowhere")
        self.assertRaises(
            usage.UsageError, parse, "--storage", "mbox:/tmp/%u", "--maildir-root", "/tmp"
        )
        with self.assertRaises(usage.UsageError) as caught:
            parse("--storage", "mbox:/tmp/inbox")
        self.assertEqual(
            str(caught.exception),
            "--storage mbox:/tmp/inbox: '/tmp/inbox' names no user: put %u (or %n) in it",
        )

    async def test_servesMbox(self) -> None:
        """
        With C{--storage mbox:TEMPLATE}, the service serves each user's mbox file:
        messages read as delivered, and deleted ones gone after QUIT.
        """
        directory = tempfile.mkdtemp(prefix="p3k")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        spool = os.path.join(directory, "spool")
        os.makedirs(spool)
        path = os.path.join(spool, "alice")
        with _mboxfile.lockMbox(path, create=True) as lock:
            _mboxfile.appendMessages(
                lock, _mboxfile.outgoing([b"Subject: hi\n\nFrom me\n", b"Subject: two\n\n2\n"])
            )
        socket = os.path.join(directory, "pop3")
        service = tap.makeService(
            parse(
                "--listen",
                "unix:" + socket,
                "--auth",
                "memory:alice:secret",
                "--storage",
                f"mbox:{spool}/%u",
                "--failed-login-delay",
                "0",
            )
        )
        service.startService()
        self.addCleanup(service.stopService)
        client: POP3TestClient = await connectProtocol(
            UNIXClientEndpoint(reactor, socket), POP3TestClient()
        )
        self.addCleanup(client.abort)
        await client.greeting
        answers = await client.send(b"USER alice", b"PASS secret", b"RETR 1", b"DELE 1", b"QUIT")
        self.assertEqual(answers[1], [b"+OK maildrop has 2 messages (43 octets)"])
        self.assertEqual(answers[2], [b"+OK 24 octets", b"Subject: hi", b"", b"From me"])
        self.assertEqual(answers[4], [b"+OK bye"])
        await client.closed
        self.assertEqual(list(_mboxfile.iterMessages(path)), [b"Subject: two\n\n2\n"])
