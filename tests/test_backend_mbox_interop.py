"""
Interoperability of the mbox backend with real POP3 clients: the poplib command and
round-trip tests, and the mpop, fetchmail, getmail6 and Net::POP3 tests of
L{tests.test_interop_clients}, run against the server serving alice's mbox file
(C{mbox:SPOOL/%u}) instead of her Maildir.

The suites are reused as they are: each class here only replaces, for its tests, the
C{MaildirServer} those modules build by an L{MboxServer}, which has its interface.
"""

from __future__ import annotations

import os
import poplib
import subprocess
import tempfile
from typing import Any, BinaryIO

from twisted.cred.portal import Portal
from twisted.trial.unittest import TestCase

from pop3kit import _mboxfile
from pop3kit.backends.mbox import MboxRealm
from pop3kit.checkers.passwdfile import PasswdFileChecker, addUser, hashPassword
from pop3kit.core._dotstuff import canonicalForm
from tests import test_interop_clients as clients
from tests import test_interop_poplib as poplibsuite
from tests._dovecot import _makeTraversable, mailOwner
from tests._tools import missingTool
from tests.test_server_loopback import LoopbackServer


class MboxServer(poplibsuite.MaildirServer):
    """
    The real server on 127.0.0.1 for one test, serving mbox files C{SPOOL/USER}, alice's
    C{PLAIN} password C{secret} in a passwd-file.
    """

    def __init__(self, testCase: TestCase, **options: Any) -> None:
        base = os.path.abspath(testCase.mktemp())
        spool = os.path.join(base, "spool")
        os.makedirs(spool)
        self.passwd = os.path.join(base, "passwd")
        addUser(self.passwd, "alice", hashPassword("secret", "PLAIN"))
        self.path = self.maildir = os.path.join(spool, "alice")
        portal = Portal(MboxRealm(os.path.join(spool, "%u")), [PasswdFileChecker(self.passwd)])
        self.server = LoopbackServer(testCase, portal=portal, **options)
        self.port = self.server.start()

    def deliver(self, *messages: bytes) -> None:
        """
        Append C{messages} to alice's mbox, in this order.
        """
        with _mboxfile.lockMbox(self.path, create=True) as lock:
            _mboxfile.appendMessages(lock, _mboxfile.outgoing(messages))

    def files(self) -> list[str]:
        """
        The unique-ids of the messages in alice's mbox (one per message).
        """
        if not os.path.exists(self.path):
            return []
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return [message.uid for message in _mboxfile.scanMbox(fd)]
        finally:
            os.close(fd)


def appendStream(path: str, message: BinaryIO) -> None:
    """
    Append the message read from C{message} to the mbox C{path}, spooled (quoted) in a
    temporary file: what the poplib suite's C{deliver} does for a Maildir.
    """
    quoter = _mboxfile.quoter()
    length = 0
    last = b""
    with tempfile.TemporaryFile() as spool:
        while chunk := message.read(1 << 20):
            quoted = quoter.feed(chunk)
            spool.write(quoted)
            length += len(quoted)
            last = quoted[-1:] or last
        quoted = quoter.flush()
        spool.write(quoted)
        length += len(quoted)
        last = quoted[-1:] or last
        outgoing = _mboxfile.OutgoingMessage(_mboxfile.fromLine(), spool, length, last)
        with _mboxfile.lockMbox(path, create=True) as lock:
            _mboxfile.appendMessages(lock, [outgoing])


class MboxCommandTests(poplibsuite.CommandTests):
    """
    Each POP3 command through poplib, from an mbox.
    """

    def setUp(self) -> None:
        self.patch(poplibsuite, "MaildirServer", MboxServer)
        super().setUp()


class MboxRoundTripTests(poplibsuite.RoundTripTests):
    """
    Messages of every shape, and one of 50 MB, through poplib from an mbox.
    """

    def setUp(self) -> None:
        self.patch(poplibsuite, "MaildirServer", MboxServer)
        self.patch(poplibsuite, "deliver", appendStream)
        super().setUp()


class MboxMpopTests(clients.MpopTests):
    """
    mpop against an mbox.
    """

    def setUp(self) -> None:
        self.patch(clients, "MaildirServer", MboxServer)
        super().setUp()


class MboxFetchmailTests(clients.FetchmailTests):
    """
    fetchmail against an mbox.
    """

    def setUp(self) -> None:
        self.patch(clients, "MaildirServer", MboxServer)
        super().setUp()


class MboxGetmailTests(clients.GetmailTests):
    """
    getmail6 against an mbox.
    """

    def setUp(self) -> None:
        self.patch(clients, "MaildirServer", MboxServer)
        super().setUp()


class MboxNetPOP3Tests(clients.NetPOP3Tests):
    """
    Perl's Net::POP3 against an mbox.
    """

    def setUp(self) -> None:
        self.patch(clients, "MaildirServer", MboxServer)
        super().setUp()


#: Dovecot's local delivery agent (Debian package dovecot-core); not on the C{PATH}.
DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"

#: Messages for the LDA: a body starting with C{From } after the headers (which Dovecot
#: stores unquoted, with a C{Content-Length:}), a C{>From } line, and a plain one.
LDA_MESSAGES = [
    b"Subject: one\n\nFrom the start\n>From quoted\n",
    b"Subject: two\n\n" + b"long line\n" * 300,
    b"Subject: three\n\nthird\n",
]


class DovecotLDATests(TestCase):
    """
    Dovecot's LDA delivers into the mbox pop3kit serves, before and after pop3kit
    rewrote it: both take the dot-lock and C{fcntl} locks, pop3kit reads what Dovecot
    wrote (unquoted bodies delimited by C{Content-Length:}) without Dovecot's bookkeeping
    headers, and Dovecot appends to the file pop3kit rewrote.
    """

    def setUp(self) -> None:
        if not os.access(DOVECOT_LDA, os.X_OK):
            missingTool("dovecot-lda is not installed (Debian package dovecot-core)")
        self.server = MboxServer(self)
        spool = os.path.dirname(self.server.path)
        base = os.path.dirname(spool)
        _makeTraversable(spool)
        # The LDA runs as the mail owner: it must reach the spool and create its
        # dot-locks there, as in a /var/mail of mode 1777.
        os.chmod(base, 0o755)  # noqa: S103
        os.chmod(spool, 0o1777)  # noqa: S103
        self.home = os.path.join(base, "home")
        os.makedirs(os.path.join(self.home, "mail"))
        self.uid, self.gid = mailOwner()
        for directory in (self.home, os.path.join(self.home, "mail")):
            os.chown(directory, self.uid, self.gid)
        self.config = os.path.join(base, "dovecot.conf")
        with open(self.config, "w") as f:
            f.write(
                f"mail_location = mbox:{self.home}/mail:INBOX={self.server.path}\n"
                "mbox_write_locks = dotlock fcntl\n"
                "postmaster_address = postmaster@example.com\n"
                f"log_path = {self.home}/lda.log\n"
            )

    def lda(self, message: bytes) -> None:
        """
        Deliver C{message} with Dovecot's LDA, as the mail owner.
        """
        command = [DOVECOT_LDA, "-c", self.config, "-f", "sender@example.com"]
        if os.geteuid() == 0:
            command = [
                "setpriv",
                f"--reuid={self.uid}",
                f"--regid={self.gid}",
                "--clear-groups",
                *command,
            ]
        done = subprocess.run(
            command,
            input=message,
            capture_output=True,
            env={"HOME": self.home, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            timeout=30,
            check=False,
        )
        self.assertEqual(done.returncode, 0, done)

    async def test_deliverServeExpungeDeliver(self) -> None:
        """
        Messages Dovecot delivered are served as they were sent to it; after pop3kit
        expunged one, Dovecot delivers into the rewritten file, and the unique-id of the
        message kept is unchanged.
        """
        for message in LDA_MESSAGES[:2]:
            self.lda(message)

        def first(client: poplib.POP3) -> tuple[list[bytes], list[bytes]]:
            _, uids, _ = client.uidl()
            bodies = [b"\r\n".join(client.retr(n)[1]) + b"\r\n" for n in (1, 2)]
            client.dele(1)
            client.quit()
            return uids, bodies

        uids, bodies = await self.server.session(first)
        self.assertEqual(bodies, [canonicalForm(m) for m in LDA_MESSAGES[:2]])
        self.assertEqual(os.stat(self.server.path).st_uid, self.uid)
        self.lda(LDA_MESSAGES[2])

        def second(client: poplib.POP3) -> tuple[list[bytes], list[bytes]]:
            _, uids, _ = client.uidl()
            bodies = [b"\r\n".join(client.retr(n)[1]) + b"\r\n" for n in (1, 2)]
            return uids, bodies

        later, bodies = await self.server.session(second)
        self.assertEqual(bodies, [canonicalForm(m) for m in LDA_MESSAGES[1:]])
        self.assertEqual(later[0].split()[1], uids[1].split()[1])
