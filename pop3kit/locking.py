"""
In-process maildrop locks and login bookkeeping.

L{InProcessLocker} and L{InProcessLoginHistory} keep their state in the memory of one
server process.  They are the defaults; a deployment that runs several server processes
against the same storage plugs in implementations of L{IMaildropLocker} and
L{ILoginHistory} that share their state (a lock file, a database, ...).
"""

from __future__ import annotations

from typing import TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from pop3kit.errors import MaildropInUse
from pop3kit.interfaces import ILoginHistory, IMaildropLock, IMaildropLocker

__all__ = ["DEFAULT_MAX_ENTRIES", "InProcessLocker", "InProcessLoginHistory"]


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
