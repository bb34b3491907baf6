"""
Tests for how L{MaildirRealm} reports a Maildir it cannot enter: "cannot open", with the
path, its owner and mode, and the user the server runs as, on one log line.
"""

from __future__ import annotations

import errno
import io
import os
from typing import cast

from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.backends.maildir import MaildirMailbox, MaildirRealm, deliver
from pop3kit.errors import TemporaryFailure
from pop3kit.interfaces import IMailbox


class UnreadableMaildirTests(SynchronousTestCase):
    """
    A Maildir that exists but cannot be used is reported as one that cannot be opened.
    """

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.mkdir(self.root)
        self.path = os.path.join(self.root, "alice")
        self.events: list[LogEvent] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def refusal(self) -> tuple[str, str]:
        """
        Log in as alice, which must fail with L{TemporaryFailure}.

        @return: The failure's text and the one error logged.
        """
        realm = MaildirRealm(self.root)
        error = self.assertRaises(TemporaryFailure, realm.requestAvatar, b"alice", None, IMailbox)
        [logged] = [e for e in self.events if e.get("log_level") and e["log_level"].name == "error"]
        self.assertNotIn("log_failure", logged)
        return str(error.text), formatEvent(logged)

    def test_fileInPlace(self) -> None:
        """
        A file where the Maildir should be: "cannot open", not "cannot create".
        """
        with open(self.path, "w"):
            pass
        text, logged = self.refusal()
        self.assertEqual(text, "cannot open maildrop (Not a directory)")
        self.assertIn(f"Cannot open Maildir {self.path} (owner ", logged)
        self.assertIn("mode 0", logged)
        self.assertIn(": Not a directory", logged)

    def test_permissionDenied(self) -> None:
        """
        A Maildir the server may not enter (another user's, mode 0700) is reported as
        "cannot open (Permission denied)" with its owner.  The error is injected, since
        root (the CI user) ignores permission bits.
        """
        deliver(self.path, io.BytesIO(b"hi\n"))
        realMkdir = os.mkdir

        def mkdir(path: str, mode: int = 0o777) -> None:
            if path.startswith(self.path + os.sep):
                raise PermissionError(errno.EACCES, "Permission denied", path)
            realMkdir(path, mode)

        self.patch(os, "mkdir", mkdir)
        text, logged = self.refusal()
        self.assertEqual(text, "cannot open maildrop (Permission denied)")
        self.assertIn(f"Cannot open Maildir {self.path} (owner ", logged)
        self.assertIn(": Permission denied", logged)

    def test_realPermissionDenied(self) -> None:
        """
        The same with real permission bits.
        """
        if os.geteuid() == 0:
            raise self.skipTest("root ignores permission bits; test_permissionDenied injects it")
        deliver(self.path, io.BytesIO(b"hi\n"))
        os.rmdir(os.path.join(self.path, "tmp"))
        os.chmod(self.path, 0o500)
        self.addCleanup(os.chmod, self.path, 0o700)
        text, logged = self.refusal()
        self.assertEqual(text, "cannot open maildrop (Permission denied)")
        self.assertIn("mode 0500", logged)

    def test_cannotCreate(self) -> None:
        """
        A Maildir that is missing and cannot be made is still "cannot create".
        """
        os.rmdir(self.root)
        text, logged = self.refusal()
        self.assertEqual(text, "cannot create maildrop (No such file or directory)")
        self.assertIn(f"Cannot create Maildir {self.path} (not found: ", logged)

    def test_listingFails(self) -> None:
        """
        A Maildir whose C{new/} cannot be read fails the listing with "cannot read", and
        the log names the directory, its owner and mode, on one line.
        """
        deliver(self.path, io.BytesIO(b"hi\n"))
        new = os.path.join(self.path, "new")
        for name in os.listdir(new):
            os.unlink(os.path.join(new, name))
        os.rmdir(new)
        with open(new, "w"):
            pass
        mailbox = MaildirMailbox(self.path)
        failure = self.failureResultOf(mailbox.listMessages(), TemporaryFailure)
        self.assertEqual(failure.value.text, "cannot read maildrop (Not a directory)")
        [logged] = [e for e in self.events if e.get("log_level") and e["log_level"].name == "error"]
        self.assertNotIn("log_failure", logged)
        self.assertIn(f"Cannot read Maildir {new} (owner ", formatEvent(logged))
