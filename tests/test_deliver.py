"""
Tests for C{pop3kit deliver} (L{pop3kit._deliver}): the exit statuses a mail transfer agent
acts on, a failure to tidy up after the message is stored, and the cleaning of C{tmp/}.
The same command killed or failed at each of its file operations is in
L{tests.test_crashproof}.
"""

from __future__ import annotations

import errno
import io
import os
import time

from pop3kit import _deliver
from pop3kit._exits import ExitError, ExitStatus
from pop3kit.backends import maildir
from pop3kit.checkers.passwdfile import addUser
from tests.test_cli import CLITestCase

MESSAGE = b"Subject: hi\n\nbody\n"


class DeliverStatusTests(CLITestCase):
    """
    The exit statuses of C{pop3kit deliver}, and what each leaves behind.
    """

    def setUp(self) -> None:
        super().setUp()
        self.root = os.path.join(self.dataDir, "mail")

    def stored(self, name: str) -> list[bytes]:
        """
        The messages in C{new/} of C{name}'s Maildir.
        """
        new = os.path.join(self.root, name, "new")
        out = []
        for entry in sorted(os.listdir(new)):
            with open(os.path.join(new, entry), "rb") as f:
                out.append(f.read())
        return out

    def addAlice(self) -> None:
        os.makedirs(self.dataDir, exist_ok=True)
        addUser(self.passwd, "alice", "{PLAIN}x")

    def test_unknownUserWithPasswdFile(self) -> None:
        """
        With the data directory's passwd-file in use, a user it does not list exits 67
        (EX_NOUSER), and no Maildir is created; a listed user gets the message.
        """
        self.addAlice()
        result = self.runCommand("deliver", "alcie", stdin=MESSAGE)
        self.assertError(result, "no user 'alcie' in", ExitStatus.NOUSER)
        self.assertFalse(os.path.exists(os.path.join(self.root, "alcie")))
        self.assertEqual(self.runCommand("deliver", "alice", stdin=MESSAGE), (0, "", ""))
        self.assertEqual(self.stored("alice"), [MESSAGE])

    def test_explicitPasswdFile(self) -> None:
        """
        C{--passwd FILE} chooses the passwd-file.
        """
        other = os.path.join(self.base, "users")
        addUser(other, "bob", "{PLAIN}x")
        self.assertError(
            self.runCommand("deliver", "--passwd", other, "alice", stdin=MESSAGE),
            f"no user 'alice' in {other}",
            ExitStatus.NOUSER,
        )
        self.assertEqual(self.runCommand("deliver", "--passwd", other, "bob", stdin=MESSAGE)[0], 0)

    def test_passwdFileUnreadable(self) -> None:
        """
        A passwd-file that cannot be read is a temporary failure (75): the MTA keeps the
        message until it is fixed.
        """
        self.assertError(
            self.runCommand(
                "deliver", "--passwd", os.path.join(self.base, "none"), "alice", stdin=MESSAGE
            ),
            "cannot read the passwd-file",
            ExitStatus.TEMPFAIL,
        )

    def test_emptyMessage(self) -> None:
        """
        An empty message exits 65 (EX_DATAERR), and nothing is stored.
        """
        self.assertError(
            self.runCommand("deliver", "alice", stdin=b""), "empty message", ExitStatus.DATAERR
        )
        self.assertFalse(os.path.exists(os.path.join(self.root, "alice")))

    def test_largeMessage(self) -> None:
        """
        A message of several chunks arrives whole (the first chunk, read to check that the
        message is not empty, is not lost).
        """
        message = b"Subject: big\n\n" + b"0123456789abcdef\n" * 20_000
        self.assertEqual(self.runCommand("deliver", "alice", stdin=message)[0], 0)
        self.assertEqual(self.stored("alice"), [message])

    def test_fullDiskIsTemporary(self) -> None:
        """
        A full disk exits 75 (EX_TEMPFAIL), and leaves nothing in C{new/} nor C{tmp/}.
        """
        realWrite = maildir._Delivery.write

        def write(delivery: maildir._Delivery, data: bytes) -> None:
            realWrite(delivery, data)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), delivery.tmpPath)

        self.patch(maildir._Delivery, "write", write)
        self.assertError(
            self.runCommand("deliver", "alice", stdin=MESSAGE), "No space", ExitStatus.TEMPFAIL
        )
        for sub in ("new", "tmp"):
            self.assertEqual(os.listdir(os.path.join(self.root, "alice", sub)), [])

    def test_cleanupFailureIsAWarning(self) -> None:
        """
        Once the message is in C{new/}, failing to remove its file from C{tmp/} is a
        warning and the exit status is 0: with 75 the MTA would deliver it twice.
        """
        realUnlink = os.unlink

        def unlink(path: str) -> None:
            if os.sep + "tmp" + os.sep in path:
                raise OSError(errno.EIO, os.strerror(errno.EIO), path)
            realUnlink(path)

        self.patch(os, "unlink", unlink)
        status, out, err = self.runCommand("deliver", "alice", stdin=MESSAGE)
        self.assertEqual((status, out), (0, ""))
        self.assertTrue(err.startswith("pop3kit: warning: delivered as "), err)
        self.assertIn("Input/output error", err)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertEqual(self.stored("alice"), [MESSAGE])

    def test_syncOfNewFails(self) -> None:
        """
        An I/O error from syncing C{new/} exits 75 and takes the message back out of
        C{new/}: it may not be on disk, and the MTA's retry must not make two.
        """
        realFsync = os.fsync
        newDir = os.path.join(self.root, "alice", "new")

        def fsync(fd: int) -> None:
            if os.path.samestat(os.fstat(fd), os.stat(newDir)):
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            realFsync(fd)

        maildir._makeMaildir(os.path.join(self.root, "alice"), parents=True)
        self.patch(os, "fsync", fsync)
        self.assertError(
            self.runCommand("deliver", "alice", stdin=MESSAGE),
            "Input/output error",
            ExitStatus.TEMPFAIL,
        )
        self.assertEqual(self.stored("alice"), [])
        self.assertEqual(os.listdir(os.path.join(self.root, "alice", "tmp")), [])

    def test_permissionIsTemporary(self) -> None:
        """
        A permission problem is a temporary failure: the administrator fixes the owner,
        and the MTA's next try delivers.
        """
        error = OSError(errno.EACCES, os.strerror(errno.EACCES), "/x")

        def deliver(*args: object, **kwargs: object) -> str:
            raise error

        self.patch(maildir, "deliver", deliver)
        with self.assertRaises(ExitError) as caught:
            _deliver.deliverMessage(self.root, "alice", io.BytesIO(MESSAGE))
        self.assertEqual(caught.exception.status, ExitStatus.TEMPFAIL)

    def test_oldTmpFilesCleaned(self) -> None:
        """
        A delivery removes files left in C{tmp/} by a crash once they are 36 hours old,
        and keeps younger ones (a delivery may be under way).
        """
        path = os.path.join(self.root, "alice")
        maildir._makeMaildir(path, parents=True)
        young = os.path.join(path, "tmp", "young")
        with open(young, "wb") as f:
            f.write(b"partial")
        self.assertEqual(maildir.cleanTmp(path), 0)
        self.assertEqual(maildir.cleanTmp(path, now=time.time() + 35 * 3600), 0)
        self.assertEqual(maildir.cleanTmp(path, now=time.time() + maildir.TMP_MAX_AGE + 60), 1)
        self.assertEqual(os.listdir(os.path.join(path, "tmp")), [])

    def test_loginCleansTmp(self) -> None:
        """
        A login through L{maildir.MaildirRealm} cleans C{tmp/} too, as Maildir readers do.
        """
        path = os.path.join(self.root, "alice")
        maildir._makeMaildir(path, parents=True)
        old = os.path.join(path, "tmp", "old")
        with open(old, "wb") as f:
            f.write(b"partial")
        self.patch(maildir, "TMP_MAX_AGE", -60)
        from pop3kit.interfaces import IMailbox

        maildir.MaildirRealm(self.root).requestAvatar("alice", None, IMailbox)
        self.assertEqual(os.listdir(os.path.join(path, "tmp")), [])
