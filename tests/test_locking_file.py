"""
Tests for L{pop3kit.locking.FileLocker}: maildrop locks that hold across processes.

The cross-process tests use real processes: a Python child that takes the same kind of
lock, killed with SIGKILL, and two C{twistd pop3kit} servers sharing one Maildir root.
"""

from __future__ import annotations

import os
import poplib
import signal
import stat
import subprocess
import sys

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from pop3kit.backends.maildir import LOCK_FILE_NAME, maildirLockPath
from pop3kit.errors import MaildropInUse, TemporaryFailure
from pop3kit.interfaces import IMaildropLock, IMaildropLocker
from pop3kit.locking import FileLocker, InProcessLocker
from tests.test_twistd import TWISTD, ServerProcess

#: A child process that locks the file named by its argument as L{FileLocker} does, says
#: so on its standard output, and waits to be killed.
_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    print("busy", flush=True)
    sys.exit(1)
print("locked", flush=True)
time.sleep(600)
"""


class FileLockerTests(SynchronousTestCase):
    """
    L{FileLocker} within one process.
    """

    def setUp(self) -> None:
        self.maildrop = os.path.abspath(self.mktemp())
        os.makedirs(self.maildrop)
        self.locker = FileLocker(maildirLockPath)

    def test_interfaces(self) -> None:
        """
        The locker provides L{IMaildropLocker} and its locks L{IMaildropLock}.
        """
        self.assertTrue(verifyObject(IMaildropLocker, self.locker))
        lock = self.successResultOf(self.locker.acquire(self.maildrop))
        self.assertTrue(verifyObject(IMaildropLock, lock))
        self.successResultOf(lock.release())

    def test_lockFileInsideMaildrop(self) -> None:
        """
        The lock file is created inside the maildrop, readable by its owner only.
        """
        lock = self.successResultOf(self.locker.acquire(self.maildrop))
        path = os.path.join(self.maildrop, LOCK_FILE_NAME)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.successResultOf(lock.release())
        self.assertTrue(os.path.exists(path), "the lock file is never removed")

    def test_sameProcessRefused(self) -> None:
        """
        A second session of the same process is refused, although POSIX record locks of
        one process do not conflict: the in-process table keeps it out.
        """
        lock = self.successResultOf(self.locker.acquire(self.maildrop))
        self.failureResultOf(self.locker.acquire(self.maildrop), MaildropInUse)
        # The refusal did not drop the first session's record lock.
        self.assertEqual(_otherProcessTries(maildirLockPath(self.maildrop)), "busy")
        self.successResultOf(lock.release())

    def test_releaseAllowsAcquire(self) -> None:
        """
        After release the maildrop can be locked again, here and by another process;
        releasing twice is harmless.
        """
        lock = self.successResultOf(self.locker.acquire(self.maildrop))
        self.successResultOf(lock.release())
        self.successResultOf(lock.release())
        self.assertEqual(_otherProcessTries(maildirLockPath(self.maildrop)), "locked")
        again = self.successResultOf(self.locker.acquire(self.maildrop))
        self.successResultOf(again.release())

    def test_sharedInProcessTable(self) -> None:
        """
        The in-process table given is the one consulted: a maildrop it holds is in use.
        """
        table = InProcessLocker()
        self.successResultOf(table.acquire(self.maildrop))
        locker = FileLocker(maildirLockPath, table)
        self.failureResultOf(locker.acquire(self.maildrop), MaildropInUse)

    def test_cannotOpen(self) -> None:
        """
        A lock file that cannot be created is a temporary failure, and leaves the
        maildrop unlocked in this process.
        """
        missing = os.path.join(self.maildrop, "no-such-directory")
        self.failureResultOf(self.locker.acquire(missing), TemporaryFailure)
        os.makedirs(missing)
        lock = self.successResultOf(self.locker.acquire(missing))
        self.successResultOf(lock.release())

    def test_heldByOtherProcess(self) -> None:
        """
        A maildrop locked by another process is in use, and free as soon as that
        process is killed with SIGKILL: the kernel drops its lock.
        """
        holder = _Holder(maildirLockPath(self.maildrop))
        self.addCleanup(holder.kill)
        self.failureResultOf(self.locker.acquire(self.maildrop), MaildropInUse)
        holder.kill()
        lock = self.successResultOf(self.locker.acquire(self.maildrop))
        self.successResultOf(lock.release())

    def test_otherProcessSeesLock(self) -> None:
        """
        Another process cannot lock a maildrop this process holds.
        """
        lock = self.successResultOf(self.locker.acquire(self.maildrop))
        self.assertEqual(_otherProcessTries(maildirLockPath(self.maildrop)), "busy")
        self.successResultOf(lock.release())


class _Holder:
    """
    A child process holding the lock on a file until killed.
    """

    def __init__(self, path: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, path], stdout=subprocess.PIPE
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line != b"locked\n":
            self.kill()
            raise AssertionError(f"the holder could not lock {path}: {line!r}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _otherProcessTries(path: str) -> str:
    """
    Whether another process can lock C{path} now: C{"locked"} or C{"busy"}.
    """
    process = subprocess.Popen([sys.executable, "-c", _HOLDER, path], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        return process.stdout.readline().decode().strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


class TwoServersTests(TestCase):
    """
    Two C{twistd pop3kit} processes serving one Maildir root.
    """

    timeout = 120

    async def test_secondServerRefusesLockedMaildrop(self) -> None:
        """
        While alice is logged in through one server, logging her in through the other
        is refused with C{[IN-USE]}; once the first session ends, the other server lets
        her in.
        """
        first, second = ServerProcess(self), ServerProcess(self)
        arguments = [
            *("--listen", "tcp:0:interface=127.0.0.1"),
            *("--data-dir", first.dataDir, "--failed-login-delay", "0"),
        ]
        ports = []
        for server in (first, second):
            server.start(
                [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "--logfile", server.logFile],
                arguments,
            )
            ports.append(await server.waitUntilListening())
        await first.waitForLog("add one with")
        added = await first.pop3kit("user", "add", "alice", "--password-stdin", stdin=b"secret\n")
        self.assertEqual(added.returncode, 0, added.stderr)

        def sessions() -> tuple[bytes, str, bytes]:
            holder = poplib.POP3("127.0.0.1", ports[0], timeout=30)
            try:
                holder.user("alice")
                accepted = holder.pass_("secret")
                other = poplib.POP3("127.0.0.1", ports[1], timeout=30)
                try:
                    other.user("alice")
                    try:
                        other.pass_("secret")
                    except poplib.error_proto as e:
                        refused = str(e)
                    else:
                        refused = "accepted"
                finally:
                    other.close()
                holder.quit()
            finally:
                holder.close()
            later = poplib.POP3("127.0.0.1", ports[1], timeout=30)
            try:
                later.user("alice")
                return accepted, refused, later.pass_("secret")
            finally:
                later.quit()
                later.close()

        accepted, refused, later = await deferToThread(sessions)
        self.assertTrue(accepted.startswith(b"+OK"), accepted)
        self.assertIn("-ERR [IN-USE]", refused)
        self.assertTrue(later.startswith(b"+OK"), later)
