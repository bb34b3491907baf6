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
import tempfile
from typing import Any, BinaryIO

from twisted.cred.portal import Portal
from twisted.trial.unittest import TestCase

from pop3kit import _mboxfile
from pop3kit.backends.mbox import MboxRealm
from pop3kit.checkers.passwdfile import PasswdFileChecker, addUser, hashPassword
from tests import test_interop_clients as clients
from tests import test_interop_poplib as poplibsuite
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
