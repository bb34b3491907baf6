"""
Limits on connections that have not logged in yet, and the failed-login penalty.

L{ConnectionLimiter} caps the unauthenticated connections of one server process, overall
and per client address, counting against the per-address cap only the connections that
have gone idle.  A connection whose client keeps making progress (its commands are
answered, one after another, within a few seconds) is never closed to make room, so a
crowd behind one address (a NAT gateway, an office, a proxy) can log in all at once; a
connection that stays silent, or dribbles a command too slowly to finish it, goes idle
and is evicted, the one idle the longest first, when a new connection needs the room.  A
slow or stalled client therefore cannot keep new ones out, and the inactivity timer can
keep RFC 1939's minimum of 10 minutes.

L{failedLoginPenalty} gives the delay before answering a failed login, growing with the
number of consecutive failures from one client.

Both are pure bookkeeping: nothing here writes to a connection or schedules a call.  The
server registers connections, reports progress, closes what it is told to evict and
schedules the penalty delay with its reactor, so that other clients are not slowed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

__all__ = [
    "DEFAULT_FAILED_LOGIN_DELAY",
    "DEFAULT_LOGIN_GRACE",
    "DEFAULT_LOGIN_WINDOW",
    "DEFAULT_MAX_FAILED_LOGIN_DELAY",
    "DEFAULT_MAX_PER_CLIENT",
    "DEFAULT_MAX_UNAUTHENTICATED",
    "ConnectionLimiter",
    "UnauthenticatedSession",
    "failedLoginPenalty",
]

#: The default cap on unauthenticated connections of one server process.  It is Dovecot's
#: default client limit of a login process, which there too bounds the connections that
#: have not logged in.  A legitimate login takes well under a second, so even a crowd of a
#: thousand clients arriving at once fits.  The process needs file descriptors for these as
#: well as for its logged-in sessions: a deployment that raises the cap raises
#: C{ulimit -n} with it.
DEFAULT_MAX_UNAUTHENTICATED = 1000

#: The default cap on I{idle} unauthenticated connections from one client address (see
#: L{DEFAULT_LOGIN_GRACE}).  Connections making progress are not counted, so the cap does
#: not limit how many users behind one address log in at once; it limits how many
#: connections one address can hold open without logging in.
DEFAULT_MAX_PER_CLIENT = 50

#: The default number of seconds a connection waiting to log in may go without progress
#: (since it was accepted, since its last answer, or since its TLS handshake) before it
#: counts as idle.  A client that is logging in sends its next command within a round
#: trip; ten seconds leave room for a loaded server and a slow network.
DEFAULT_LOGIN_GRACE = 10.0

#: The default number of seconds, from its arrival, during which a connection's progress
#: keeps it from counting as idle.  A login takes a few round trips; a connection that is
#: still not logged in after a minute (repeating CAPA, say) counts as idle once the grace
#: after its last progress within that minute has passed.
DEFAULT_LOGIN_WINDOW = 60.0

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
        Close this connection to make room for a newer one, or, when every connection
        is making progress and the overall cap is reached, to turn this new one away.

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
    @ivar admitted: When the session was admitted, by the limiter's clock.
    @ivar lastActive: When the session was admitted or last made progress within the
        login window, by the limiter's clock.
    """

    __slots__ = ("admitted", "client", "lastActive")

    def __init__(self, client: str, admitted: float) -> None:
        self.client = client
        self.admitted = admitted
        self.lastActive = admitted


class ConnectionLimiter:
    """
    A cap on unauthenticated connections overall and on idle ones per client address,
    which evicts the connection idle the longest when a new one exceeds a cap.

    The server calls L{admit} when a connection is made, L{touched} whenever the
    connection makes progress (a command of the client was answered, a TLS handshake
    completed), and L{release} when the connection logs in or is lost.

    A connection is I{idle} once C{loginGrace} seconds have passed since its last
    progress; progress made more than C{loginWindow} seconds after its arrival no longer
    counts, so a connection cannot stay out of the count forever without logging in.
    When a connection is admitted:

      - if its client address now has more than C{maxPerClient} idle connections, the
        longest idle of them are evicted down to the cap.  Connections still making
        progress are not counted: a thousand clients behind one address can log in at
        once, while one address can hold at most C{maxPerClient} connections that do
        nothing;
      - then, while there are more than C{maxUnauthenticated} connections in all, the
        one idle the longest overall is evicted, if it is idle; when none is, every
        connection is making progress and the new one is turned away instead (evicted
        at once): C{maxUnauthenticated} bounds the file descriptors of the process.

    A connection making progress is therefore never closed to make room.  An attacker
    from one address can only push out its own idle connections; one using many
    addresses pushes out whichever connection has been silent the longest, which a client
    that is actually logging in rarely is.

    Sessions are kept in order of their last progress, overall and per client, so that
    the longest idle is found in constant time; an admission costs at most the number of
    idle connections of its client, which the cap keeps small.  A clock that jumps
    forward only makes connections count as idle sooner.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        *,
        maxUnauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED,
        maxPerClient: int = DEFAULT_MAX_PER_CLIENT,
        loginGrace: float = DEFAULT_LOGIN_GRACE,
        loginWindow: float = DEFAULT_LOGIN_WINDOW,
    ) -> None:
        """
        @param clock: Tells when connections made progress.
        @param maxUnauthenticated: The most unauthenticated connections; at least 1.
        @param maxPerClient: The most idle unauthenticated connections from one client
            address; at least 1.
        @param loginGrace: Seconds without progress after which a connection counts as
            idle; 0 counts every connection, as soon as it arrives.
        @param loginWindow: Seconds from a connection's arrival during which its progress
            counts; C{math.inf} for no limit.

        @raise ValueError: If a cap is less than 1, or a duration negative.
        """
        if maxUnauthenticated < 1:
            raise ValueError(f"maxUnauthenticated must be at least 1, not {maxUnauthenticated!r}")
        if maxPerClient < 1:
            raise ValueError(f"maxPerClient must be at least 1, not {maxPerClient!r}")
        if not loginGrace >= 0:
            raise ValueError(f"loginGrace must not be negative, not {loginGrace!r}")
        if not loginWindow >= 0:
            raise ValueError(f"loginWindow must not be negative, not {loginWindow!r}")
        self._clock = clock
        self._maxUnauthenticated = maxUnauthenticated
        self._maxPerClient = maxPerClient
        self._loginGrace = loginGrace
        self._loginWindow = loginWindow
        # Least recently active first, overall and per client.
        self._sessions: OrderedDict[UnauthenticatedSession, _Entry] = OrderedDict()
        self._byClient: dict[str, OrderedDict[UnauthenticatedSession, None]] = {}

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {len(self._sessions)}/{self._maxUnauthenticated} "
            f"unauthenticated, {len(self._byClient)} clients, "
            f"at most {self._maxPerClient} idle per client>"
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
        The cap on idle connections waiting to log in, per client address.
        """
        return self._maxPerClient

    @property
    def loginGrace(self) -> float:
        """
        Seconds without progress after which a connection counts as idle.
        """
        return self._loginGrace

    @property
    def loginWindow(self) -> float:
        """
        Seconds from a connection's arrival during which its progress counts.
        """
        return self._loginWindow

    @property
    def unauthenticated(self) -> int:
        """
        The number of connections admitted and not yet released or evicted.
        """
        return len(self._sessions)

    def perClient(self, client: str) -> int:
        """
        The number of connections from C{client} admitted and not yet released or evicted,
        idle or not.
        """
        sessions = self._byClient.get(client)
        return 0 if sessions is None else len(sessions)

    def idlePerClient(self, client: str) -> int:
        """
        The number of idle connections from C{client}: those the per-client cap counts.
        """
        return len(self._idleOf(self._byClient.get(client, ())))

    def admit(self, session: UnauthenticatedSession, client: str) -> None:
        """
        Register a new unauthenticated connection, evicting idle ones if a cap is
        exceeded, or this one if every connection is making progress and the overall cap
        is exceeded (see the class description).

        @param session: The new connection.
        @param client: The client's address, as text (an IP address).

        @raise ValueError: If C{session} is already admitted.
        """
        if session in self._sessions:
            raise ValueError(f"{session!r} is already admitted")
        self._sessions[session] = _Entry(client, self._clock.seconds())
        self._byClient.setdefault(client, OrderedDict())[session] = None
        self._capClient(client)
        self._capOverall(session)

    def touched(self, session: UnauthenticatedSession) -> None:
        """
        Note progress on C{session}: it becomes the one idle the shortest, and is not
        idle again before C{loginGrace} seconds have passed.

        Call it whenever the connection makes progress: a command of the client was
        answered, a TLS handshake completed.  Octets that do not complete a command are
        not progress (a client dribbling a line one octet at a time goes idle).
        Progress later than C{loginWindow} seconds after the session's admission is
        ignored, and so is a session that is not admitted (released, evicted, or never
        admitted).
        """
        entry = self._sessions.get(session)
        if entry is None:
            return
        now = self._clock.seconds()
        if now - entry.admitted > self._loginWindow:
            return
        entry.lastActive = now
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

    def _isIdle(self, entry: _Entry, now: float) -> bool:
        """
        Whether the session of C{entry} counts as idle at C{now}.
        """
        return now - entry.lastActive >= self._loginGrace

    def _idleOf(
        self, sessions: OrderedDict[UnauthenticatedSession, None] | tuple[()]
    ) -> list[UnauthenticatedSession]:
        """
        The idle sessions among C{sessions} (kept in order of progress), longest idle
        first: a prefix of them.
        """
        now = self._clock.seconds()
        idle = []
        for session in sessions:
            if not self._isIdle(self._sessions[session], now):
                break
            idle.append(session)
        return idle

    def _capClient(self, client: str) -> None:
        """
        Evict the longest idle sessions of C{client} while it has more idle ones than
        C{maxPerClient}.
        """
        idle = self._idleOf(self._byClient[client])
        for victim in idle[: max(0, len(idle) - self._maxPerClient)]:
            # An earlier evict() may have released this one already.
            if victim in self._sessions:
                self._evict(
                    victim,
                    f"more than {self._maxPerClient} idle unauthenticated connections "
                    f"from {client}",
                )

    def _capOverall(self, newcomer: UnauthenticatedSession) -> None:
        """
        While there are more than C{maxUnauthenticated} sessions, evict the longest idle
        one; if none is idle, turn C{newcomer} away.
        """
        # A loop rather than an if: an evict() that re-enters the limiter cannot leave it
        # over the cap.
        while len(self._sessions) > self._maxUnauthenticated:
            oldest, entry = next(iter(self._sessions.items()))
            if oldest is not newcomer and self._isIdle(entry, self._clock.seconds()):
                self._evict(
                    oldest, f"more than {self._maxUnauthenticated} unauthenticated connections"
                )
            elif newcomer in self._sessions:
                self._evict(
                    newcomer,
                    f"more than {self._maxUnauthenticated} unauthenticated connections, "
                    "none of them idle",
                )
            else:
                # Only re-entrant admissions can leave it here; the next admission of
                # theirs enforces the cap.
                return

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
