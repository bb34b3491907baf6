"""
Limits on connections that have not logged in yet, and the failed-login penalty.

L{ConnectionLimiter} caps the unauthenticated connections of one server process, overall
and per client address.  When a new connection makes either count exceed its cap, the
connection that has been idle the longest, among that client's or among all, is evicted
to make room: a slow or stalled client cannot keep new ones out, and the inactivity timer
can keep RFC 1939's minimum of 10 minutes.

L{failedLoginPenalty} gives the delay before answering a failed login, growing with the
number of consecutive failures from one client.

Both are pure bookkeeping: nothing here writes to a connection or schedules a call.  The
server registers connections, reports activity, closes what it is told to evict and
schedules the penalty delay with its reactor, so that other clients are not slowed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

__all__ = [
    "DEFAULT_FAILED_LOGIN_DELAY",
    "DEFAULT_MAX_FAILED_LOGIN_DELAY",
    "DEFAULT_MAX_PER_CLIENT",
    "DEFAULT_MAX_UNAUTHENTICATED",
    "ConnectionLimiter",
    "UnauthenticatedSession",
    "failedLoginPenalty",
]

#: The default cap on unauthenticated connections of one server process.  It is Dovecot's
#: default client limit of a login process, which there too bounds the connections that
#: have not logged in (the oldest of them is disconnected when it is reached).  A
#: legitimate login takes well under a second, so even a busy server has only a small
#: fraction of that many connections in AUTHORIZATION at once.  The process needs file
#: descriptors for these as well as for its logged-in sessions: a deployment that raises
#: the cap raises C{ulimit -n} with it.
DEFAULT_MAX_UNAUTHENTICATED = 1000

#: The default cap on unauthenticated connections from one client address.  Many users can
#: share one address behind NAT, but each of their connections normally leaves
#: AUTHORIZATION within a second, and a connection is only evicted after 50 newer ones
#: from the same address, so 50 leaves room for a large NAT while one address can hold at
#: most a twentieth of L{DEFAULT_MAX_UNAUTHENTICATED}.
DEFAULT_MAX_PER_CLIENT = 50

#: The default delay, in seconds, before answering the first failed login of a client.
DEFAULT_FAILED_LOGIN_DELAY = 2.0

#: The default longest delay, in seconds, before answering a failed login.
DEFAULT_MAX_FAILED_LOGIN_DELAY = 15.0


class UnauthenticatedSession(Protocol):
    """
    A connection that has not logged in yet, as L{ConnectionLimiter} sees it.

    Any hashable object with an C{evict} method will do; the limiter compares sessions by
    identity (or by their own C{__eq__} and C{__hash__}, when they define them).
    """

    def evict(self) -> None:
        """
        Close this connection to make room for a newer one.

        Called synchronously by L{ConnectionLimiter.admit}, after the limiter has already
        forgotten this session: calling L{ConnectionLimiter.release} for it, now or later
        (typically from C{connectionLost}), is harmless.  The limiter logs the eviction.

        The recommended answer is C{-ERR [SYS/TEMP] too many connections, try again later}
        followed by closing the connection: the response code tells a client that the
        failure is temporary and not its password's fault (RFC 3206), and nothing is lost
        since the session has no maildrop yet.  Closing it silently saves one write to a
        client that is probably not reading, at the cost of a confusing error for a real
        client that was only slow.
        """


class _Entry:
    """
    What L{ConnectionLimiter} knows about one session.

    @ivar client: The client address the session was admitted under.
    @ivar lastActive: When the session was admitted or last touched, by the limiter's
        clock.
    """

    __slots__ = ("client", "lastActive")

    def __init__(self, client: str, lastActive: float) -> None:
        self.client = client
        self.lastActive = lastActive


class ConnectionLimiter:
    """
    A cap on unauthenticated connections overall and per client address, which evicts
    the connection idle the longest when a new one exceeds a cap.

    The server calls L{admit} when a connection is made, L{touched} whenever the client
    sends something, and L{release} when the connection logs in or is lost.  Sessions are
    kept in order of their last activity, overall and per client, so every call takes
    constant time (amortised), whatever the number of connections.

    The newest connection is never the one evicted: it has been idle for no time at all.
    An attacker from one address can therefore only push out its own connections; one
    using many addresses pushes out whichever connection has been silent the longest,
    which a client that is actually logging in rarely is.

    Idleness is measured by the order of activity, not by reading the clock, so a clock
    that jumps does not change which connection goes; the clock only dates activity for
    the log message of an eviction.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        *,
        maxUnauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED,
        maxPerClient: int = DEFAULT_MAX_PER_CLIENT,
    ) -> None:
        """
        @param clock: Dates activity, for the log message of an eviction.
        @param maxUnauthenticated: The most unauthenticated connections; at least 1.
        @param maxPerClient: The most unauthenticated connections from one client
            address; at least 1.

        @raise ValueError: If a cap is less than 1.
        """
        if maxUnauthenticated < 1:
            raise ValueError(f"maxUnauthenticated must be at least 1, not {maxUnauthenticated!r}")
        if maxPerClient < 1:
            raise ValueError(f"maxPerClient must be at least 1, not {maxPerClient!r}")
        self._clock = clock
        self._maxUnauthenticated = maxUnauthenticated
        self._maxPerClient = maxPerClient
        # Least recently active first, overall and per client.
        self._sessions: OrderedDict[UnauthenticatedSession, _Entry] = OrderedDict()
        self._byClient: dict[str, OrderedDict[UnauthenticatedSession, None]] = {}

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {len(self._sessions)}/{self._maxUnauthenticated} "
            f"unauthenticated, {len(self._byClient)} clients, "
            f"at most {self._maxPerClient} per client>"
        )

    @property
    def maxUnauthenticated(self) -> int:
        """
        The cap on connections waiting to log in, overall.
        """
        return self._maxUnauthenticated

    @property
    def maxPerClient(self) -> int:
        """
        The cap on connections waiting to log in, per client address.
        """
        return self._maxPerClient

    @property
    def unauthenticated(self) -> int:
        """
        The number of connections admitted and not yet released or evicted.
        """
        return len(self._sessions)

    def perClient(self, client: str) -> int:
        """
        The number of connections from C{client} admitted and not yet released or evicted.
        """
        sessions = self._byClient.get(client)
        return 0 if sessions is None else len(sessions)

    def admit(self, session: UnauthenticatedSession, client: str) -> None:
        """
        Register a new unauthenticated connection, evicting others if it exceeds a cap.

        If C{client} now has more than C{maxPerClient} connections, its connection idle
        the longest is evicted; then, if there are more than C{maxUnauthenticated}
        connections in all, the connection idle the longest overall is evicted.  The new
        session itself is never evicted.

        @param session: The new connection.
        @param client: The client's address, as text (an IP address).

        @raise ValueError: If C{session} is already admitted.
        """
        if session in self._sessions:
            raise ValueError(f"{session!r} is already admitted")
        self._sessions[session] = _Entry(client, self._clock.seconds())
        self._byClient.setdefault(client, OrderedDict())[session] = None
        # Loops rather than ifs: an evict() that re-enters the limiter cannot leave it
        # over a cap.
        while (sessions := self._byClient.get(client)) and len(sessions) > self._maxPerClient:
            self._evict(
                next(iter(sessions)),
                f"more than {self._maxPerClient} unauthenticated connections from {client}",
            )
        while len(self._sessions) > self._maxUnauthenticated:
            self._evict(
                next(iter(self._sessions)),
                f"more than {self._maxUnauthenticated} unauthenticated connections",
            )

    def touched(self, session: UnauthenticatedSession) -> None:
        """
        Note activity on C{session}: it becomes the one idle the shortest.

        Call it whenever the client sends something.  A session that is not admitted
        (released, evicted, or never admitted) is ignored.
        """
        entry = self._sessions.get(session)
        if entry is None:
            return
        entry.lastActive = self._clock.seconds()
        self._sessions.move_to_end(session)
        self._byClient[entry.client].move_to_end(session)

    def release(self, session: UnauthenticatedSession) -> None:
        """
        Forget C{session}: it logged in or its connection was lost.

        Releasing a session that is not admitted (released or evicted already, or never
        admitted) is harmless.
        """
        entry = self._sessions.pop(session, None)
        if entry is None:
            return
        sessions = self._byClient[entry.client]
        del sessions[session]
        if not sessions:
            del self._byClient[entry.client]

    def _evict(self, session: UnauthenticatedSession, why: str) -> None:
        """
        Forget C{session}, then tell it to close.

        @param why: Which cap was exceeded, for the log.

        It is forgotten first so that its C{evict} may call back into the limiter; an
        exception from C{evict} is logged and does not stop the admission under way.
        """
        entry = self._sessions[session]
        self.release(session)
        self.log.info(
            "Evicting an unauthenticated connection from {client}, idle for {idle:.1f} s: {why}",
            client=entry.client,
            idle=self._clock.seconds() - entry.lastActive,
            why=why,
        )
        try:
            session.evict()
        except Exception:
            self.log.failure(
                "Evicting an unauthenticated connection from {client} failed", client=entry.client
            )


def failedLoginPenalty(
    failures: int,
    *,
    initial: float = DEFAULT_FAILED_LOGIN_DELAY,
    maximum: float = DEFAULT_MAX_FAILED_LOGIN_DELAY,
) -> float:
    """
    The delay before answering a failed login, after C{failures} consecutive failed
    logins from one client (this one included).

    The delay doubles with each failure, from C{initial} up to C{maximum}: with the
    defaults 2, 4, 8, 15, 15, ... seconds.  The server should wait with a scheduled call
    (L{twisted.internet.task.deferLater}), never by blocking, so that other clients are
    not slowed.

    @param failures: The number of consecutive failed logins; 0 or less gives no delay.
    @param initial: The delay after the first failure; 0 disables the penalty.
    @param maximum: The longest delay.

    @raise ValueError: If C{initial} or C{maximum} is negative.
    """
    if initial < 0 or maximum < 0:
        raise ValueError(f"delays cannot be negative: initial={initial!r}, maximum={maximum!r}")
    if failures <= 0 or initial == 0:
        return 0.0
    delay = float(initial)
    # Doubling step by step rather than 2.0 ** failures, which overflows for a client that
    # has failed a thousand times; it stops after log2(maximum / initial) steps.
    for _ in range(failures - 1):
        if delay >= maximum:
            break
        delay *= 2
    return min(delay, maximum)
