"""
Maildrop locks and login bookkeeping.

L{InProcessLocker} and L{InProcessLoginHistory} keep their state in the memory of one
server process.  They are the defaults of an embedded server; a deployment that runs
several server processes against the same storage plugs in implementations of
L{IMaildropLocker} and L{ILoginHistory} that share their state.

L{FileLocker} is such a locker for maildrops on a file system: it holds a POSIX record
lock (C{fcntl}) on a lock file, which the kernel releases when the holding process dies,
and which NFSv4 (and NFSv3 with the lock manager) carries to the other hosts.
C{twistd pop3kit} uses it for its Maildirs.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable
from typing import TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from pop3kit.errors import MaildropInUse, TemporaryFailure
from pop3kit.interfaces import ILoginHistory, IMaildropLock, IMaildropLocker

__all__ = ["DEFAULT_MAX_ENTRIES", "FileLocker", "InProcessLocker", "InProcessLoginHistory"]


@implementer(IMaildropLock)
class _InProcessLock:
    """
    A lock handed out by L{InProcessLocker}.
    """

    def __init__(self, locker: InProcessLocker, avatarId: str) -> None:
        self._locker = locker
        self._avatarId = avatarId
        self._released = False

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<{type(self).__name__} {self._avatarId!r} {state}>"

    def release(self) -> Deferred[None]:
        """
        Release the lock; releasing twice is harmless.
        """
        if not self._released:
            self._released = True
            self._locker._release(self._avatarId, self)
        return succeed(None)


@implementer(IMaildropLocker)
class InProcessLocker:
    """
    Exclusive maildrop locks held in this process's memory.

    Only sessions served by this process see each other's locks.
    """

    def __init__(self) -> None:
        self._held: dict[str, _InProcessLock] = {}

    def acquire(self, avatarId: str) -> Deferred[IMaildropLock]:
        """
        Lock the maildrop of C{avatarId}.

        @return: A L{Deferred} firing with the lock, or failing with
            L{pop3kit.errors.MaildropInUse} when another session holds it.
        """
        if avatarId in self._held:
            return fail(MaildropInUse())
        lock = _InProcessLock(self, avatarId)
        self._held[avatarId] = lock
        return succeed(lock)

    def isLocked(self, avatarId: str) -> bool:
        """
        Whether a session holds the maildrop lock of C{avatarId}.
        """
        return avatarId in self._held

    def _release(self, avatarId: str, lock: _InProcessLock) -> None:
        """
        Forget C{lock}, unless the maildrop is now held by a later lock.
        """
        if self._held.get(avatarId) is lock:
            del self._held[avatarId]


#: The C{errno} values with which a non-blocking C{fcntl} lock is refused because another
#: process holds a conflicting lock (POSIX allows either).
_HELD_ELSEWHERE = frozenset({errno.EACCES, errno.EAGAIN})


@implementer(IMaildropLock)
class _FileLock:
    """
    A lock handed out by L{FileLocker}: an open lock file with a POSIX write lock on it,
    and the in-process lock that keeps the other sessions of this process out.
    """

    def __init__(self, fd: int, inProcess: IMaildropLock, path: str) -> None:
        self._fd: int | None = fd
        self._inProcess = inProcess
        self._path = path

    def __repr__(self) -> str:
        state = "released" if self._fd is None else "held"
        return f"<{type(self).__name__} {self._path!r} {state}>"

    def release(self) -> Deferred[None]:
        """
        Release the lock: closing the lock file drops the record lock; releasing twice
        is harmless.
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            finally:
                self._inProcess.release()
        return succeed(None)


@implementer(IMaildropLocker)
class FileLocker:
    """
    Exclusive maildrop locks that hold across processes and hosts: a POSIX record lock
    (C{fcntl.lockf}, that is C{fcntl(F_SETLK)}) on a lock file, taken without waiting.

    Why record locks: the kernel drops them when the process that holds them dies, even
    by C{SIGKILL}, so no stale lock outlives a crashed server; and they are the locks NFS
    carries to the server (natively in NFSv4, through C{lockd} in NFSv3), so sessions on
    different hosts sharing the storage exclude each other.  C{flock} locks are only
    emulated with record locks over NFS by recent Linux kernels and stay local elsewhere;
    dot-lock files survive a crash.

    Record locks belong to a process, not to an open file: two sessions of one process
    would not exclude each other, and closing I{any} descriptor of the lock file drops the
    process's lock on it.  So each lock is first taken in an in-process table
    (L{InProcessLocker}), which guarantees that one process opens a lock file at most
    once at a time, and nothing else in the server opens it.

    Delivery takes no lock: a Maildir is safe to deliver into while it is read.  The lock
    only keeps two POP3 sessions from serving (and expunging) one maildrop at once.

    Opening and locking the file happen inline, in the reactor thread: both are a single
    system call that does not wait for another lock holder.  On a hung NFS server they
    block like any other file access of the session would.
    """

    log = Logger()

    def __init__(
        self,
        lockPath: Callable[[str], str],
        inProcess: IMaildropLocker | None = None,
    ) -> None:
        """
        @param lockPath: Gives the lock file of a maildrop from its
            L{maildropId <pop3kit.interfaces.IMailbox.maildropId>}; for a Maildir, a file
            inside it (L{pop3kit.backends.maildir.maildirLockPath}).  The file is created
            (mode 0600) if missing and never removed: removing it would let a second
            process lock a new file while the first still holds the old one.
        @param inProcess: The in-process lock table taken first; a new
            L{InProcessLocker} by default.
        """
        self._lockPath = lockPath
        self._inProcess = InProcessLocker() if inProcess is None else inProcess

    def acquire(self, avatarId: str) -> Deferred[IMaildropLock]:
        """
        Lock the maildrop C{avatarId}, in this process and then in the file system.

        @return: A L{Deferred} firing with the lock, or failing with
            L{pop3kit.errors.MaildropInUse} when another session, of this or any other
            process, holds it, or with L{pop3kit.errors.TemporaryFailure} when the lock
            file cannot be opened or locked.
        """
        return self._inProcess.acquire(avatarId).addCallback(self._lockFile, avatarId)

    def _lockFile(self, inProcess: IMaildropLock, avatarId: str) -> IMaildropLock:
        try:
            path = self._lockPath(avatarId)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            inProcess.release()
            self.log.error(
                "Cannot open the lock file of {maildrop}: {error}",
                maildrop=avatarId,
                error=e.strerror,
            )
            raise TemporaryFailure(f"cannot lock maildrop ({e.strerror})") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            inProcess.release()
            if e.errno in _HELD_ELSEWHERE:
                raise MaildropInUse() from None
            self.log.error("Cannot lock {path}: {error}", path=path, error=e.strerror or str(e))
            raise TemporaryFailure(f"cannot lock maildrop ({e.strerror})") from None
        return _FileLock(fd, inProcess, path)


_V = TypeVar("_V")


def _putNewest(table: dict[str, _V], key: str, value: _V, maxEntries: int) -> None:
    """
    Store C{value} as the newest entry of C{table}, dropping the oldest beyond C{maxEntries}.

    Dicts keep insertion order, so the first key is the least recently stored one.
    """
    table.pop(key, None)
    table[key] = value
    while len(table) > maxEntries:
        del table[next(iter(table))]


#: The default number of clients and of users whose counters L{InProcessLoginHistory} keeps.
DEFAULT_MAX_ENTRIES = 100_000

#: Seconds without a failed login after which a client's failures are forgotten.
DEFAULT_FORGET_FAILURES_AFTER = 900.0


@implementer(ILoginHistory)
class InProcessLoginHistory:
    """
    Failed-login counters per client and last-login times per user, in memory.

    Memory stays bounded: each table keeps at most C{maxEntries} entries, and when a new
    entry would exceed that the least recently updated one is dropped.  Dropping forgets a
    client's failures (or a user's last login), so the bound should be well above the
    number of clients and users active within the failed-login delay and the LOGIN-DELAY.
    A client's failures are also forgotten after C{forgetFailuresAfter} seconds without
    another one, so that a mistyped password does not weigh on the next day's logins.
    """

    def __init__(
        self,
        maxEntries: int = DEFAULT_MAX_ENTRIES,
        *,
        clock: IReactorTime | None = None,
        forgetFailuresAfter: float = DEFAULT_FORGET_FAILURES_AFTER,
    ) -> None:
        """
        @param maxEntries: The most entries each table keeps; at least 1.
        @param clock: Tells the time for C{forgetFailuresAfter}; the global reactor by
            default.
        @param forgetFailuresAfter: Seconds without a failed login after which a client's
            count starts again from zero.
        """
        if maxEntries < 1:
            raise ValueError(f"maxEntries must be at least 1, not {maxEntries!r}")
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        assert clock is not None
        self._maxEntries = maxEntries
        self._clock = clock
        self._forgetAfter = forgetFailuresAfter
        self._failures: dict[str, tuple[int, float]] = {}
        self._logins: dict[str, float] = {}

    def recordFailure(self, client: str) -> Deferred[int]:
        """
        Count one failed login from C{client}.

        @return: A L{Deferred} firing with the number of failures C{client} has now.
        """
        now = self._clock.seconds()
        count, last = self._failures.get(client, (0, now))
        if now - last > self._forgetAfter:
            count = 0
        _putNewest(self._failures, client, (count + 1, now), self._maxEntries)
        return succeed(count + 1)

    def clearFailures(self, client: str) -> Deferred[None]:
        """
        Forget the failed logins of C{client}.
        """
        self._failures.pop(client, None)
        return succeed(None)

    def lastLogin(self, avatarId: str) -> Deferred[float | None]:
        """
        The time of the last successful login of C{avatarId}, or L{None}.
        """
        return succeed(self._logins.get(avatarId))

    def recordLogin(self, avatarId: str, when: float) -> Deferred[None]:
        """
        Remember a successful login of C{avatarId} at C{when}.
        """
        _putNewest(self._logins, avatarId, when, self._maxEntries)
        return succeed(None)
