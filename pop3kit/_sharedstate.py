"""
The login bookkeeping of one host's worker processes, kept by their parent and reached
over AMP.

With C{--workers}, every worker would otherwise count failed logins, remember last logins
and cap connections per client address on its own, and a password guesser whose
connections the kernel spreads over the workers would be slowed as if each worker met a
fraction of it.  So the parent keeps the one L{InProcessLoginHistory} and the one
L{ConnectionLimiter}, as a single process would, and each worker reaches them over an
AMP connection (L{twisted.protocols.amp}) on a socket pair made when the worker is
started:

    - L{SharedLoginHistory} is the worker's L{ILoginHistory}: what needs an answer (the
      failure count, the last login) is an AMP call answered by the parent's history.
    - L{SharedLimiter} is the worker's L{ConnectionLimiter}: admissions, activity and
      releases go to the parent's limiter, and the parent tells the worker which of its
      connections to evict.

What needs no answer (an admission, a release, a cleared count, a login when no
LOGIN-DELAY is configured) is a I{notice}: a worker keeps its notices for at most
L{NOTICE_DELAY} and sends them together in one AMP command (L{Notices}), and always
before a call, so the parent applies everything in the order the worker did it.  A
connection that logs in within that time is never admitted at the parent at all.  So a
busy worker sends one AMP command per L{NOTICE_DELAY} for all its sessions, and no login
waits for a round trip unless it needs an answer (a wrong password, LOGIN-DELAY): AMP
boxes are what the parent spends its time on.

Maildrop locks are not here: L{pop3kit.locking.FileLocker} takes them in the kernel.

When the parent is gone (or does not answer within L{CALL_TIMEOUT}), the history's calls
fail with L{TemporaryFailure}, which a login answers with C{-ERR [SYS/TEMP]}: a worker
never hangs a login on a parent that cannot answer, and never lets a guesser go unslowed.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import implementer

from pop3kit.errors import TemporaryFailure
from pop3kit.interfaces import ILoginHistory
from pop3kit.limits import (
    DEFAULT_LOGIN_GRACE,
    DEFAULT_LOGIN_WINDOW,
    ConnectionLimiter,
    UnauthenticatedSession,
)
from pop3kit.locking import InProcessLoginHistory

_DONE = Failure(ConnectionDone())  # type: ignore[no-untyped-call]

__all__ = [
    "CALL_TIMEOUT",
    "NOTICE_DELAY",
    "TOUCH_INTERVAL",
    "SharedLimiter",
    "SharedLoginHistory",
    "StateKeeper",
    "StateKeeperFactory",
]

#: A worker tells the parent of activity on a connection at most once in this many
#: seconds: the parent's limiter then orders connections by idleness to within this much,
#: and a client that logs in within it (nearly all do) costs no message at all.
TOUCH_INTERVAL = 1.0

#: The longest a worker keeps what it has to tell the parent, so that one AMP command
#: carries the notices of many sessions; a connection admitted and released (logged in)
#: within it is never told at all.  The parent's caps count a new connection this much
#: late at most.
NOTICE_DELAY = 0.01

#: Seconds a worker waits for the parent to answer before failing the login step with
#: L{TemporaryFailure}.
CALL_TIMEOUT = 5.0


def _text() -> amp.Argument:
    return amp.Unicode()  # type: ignore[no-untyped-call]


def _integer() -> amp.Argument:
    return amp.Integer()  # type: ignore[no-untyped-call]


def _time(optional: bool = False) -> amp.Argument:
    return amp.Float(optional=optional)  # type: ignore[no-untyped-call]


class RecordFailure(amp.Command):
    """
    L{ILoginHistory.recordFailure}.
    """

    arguments = [(b"client", _text())]
    response = [(b"count", _integer())]


class LastLogin(amp.Command):
    """
    L{ILoginHistory.lastLogin}.
    """

    arguments = [(b"avatarId", _text())]
    response = [(b"when", _time(optional=True))]


class RecordLogin(amp.Command):
    """
    L{ILoginHistory.recordLogin}, answered: with LOGIN-DELAY, the login is recorded
    before the client hears C{+OK}, as in one process.
    """

    arguments = [(b"avatarId", _text()), (b"when", _time())]
    response = []  # type: ignore[var-annotated]


class Notices(amp.Command):
    """
    What a worker did in one reactor turn that needs no answer, in order: a JSON list of
    C{["admit", number, client]}, C{["touched", number]}, C{["release", number]},
    C{["clear", client]} and C{["login", avatarId, when]}.
    """

    arguments = [(b"notices", _text())]
    requiresAnswer = False


class Evict(amp.Command):
    """
    From the parent: evict this connection of the worker's.
    """

    arguments = [(b"session", _integer())]
    requiresAnswer = False


class _RemoteSession:
    """
    A worker's unauthenticated connection, as the parent's limiter sees it.
    """

    __slots__ = ("_keeper", "number")

    def __init__(self, keeper: StateKeeper, number: int) -> None:
        self._keeper = keeper
        self.number = number

    def evict(self) -> None:
        """
        Tell the worker to evict the connection.
        """
        self._keeper._evict(self)


class StateKeeper(amp.AMP):
    """
    The parent's end of one worker's AMP connection: answers with the shared history
    and limiter.
    """

    log = Logger()

    def __init__(self, history: ILoginHistory, limiter: ConnectionLimiter) -> None:
        """
        @param history: The history all workers share.
        @param limiter: The limiter all workers share.
        """
        super().__init__()  # type: ignore[no-untyped-call]
        self._history = history
        self._limiter = limiter
        self._sessions: dict[int, _RemoteSession] = {}

    @RecordFailure.responder
    def _recordFailure(self, client: str) -> Deferred[dict[str, int]]:
        return self._history.recordFailure(client).addCallback(lambda count: {"count": count})

    @LastLogin.responder
    def _lastLogin(self, avatarId: str) -> Deferred[dict[str, Any]]:
        return self._history.lastLogin(avatarId).addCallback(lambda when: {"when": when})

    @RecordLogin.responder
    def _recordLogin(self, avatarId: str, when: float) -> Deferred[dict[str, Any]]:
        return self._history.recordLogin(avatarId, when).addCallback(lambda _: {})

    @Notices.responder
    def _notices(self, notices: str) -> dict[str, Any]:
        for notice in json.loads(notices):
            kind = notice[0]
            if kind == "admit":
                admitted = self._sessions[notice[1]] = _RemoteSession(self, notice[1])
                self._limiter.admit(admitted, notice[2])
            elif kind in ("touched", "release"):
                remote = self._sessions.get(notice[1])
                if remote is None:
                    continue  # Evicted meanwhile.
                if kind == "touched":
                    self._limiter.touched(remote)
                else:
                    del self._sessions[notice[1]]
                    self._limiter.release(remote)
            elif kind == "clear":
                self._history.clearFailures(notice[1])
            elif kind == "login":
                self._history.recordLogin(notice[1], notice[2])
            else:
                self.log.error("Unknown notice from a worker: {notice!r}", notice=notice)
        return {}

    def _evict(self, remote: _RemoteSession) -> None:
        self._sessions.pop(remote.number, None)
        if self.transport is not None and not self.transport.disconnecting:  # type: ignore[attr-defined]
            self.callRemote(Evict, session=remote.number)  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure = _DONE) -> None:
        """
        The worker is gone, and so are its connections: forget them.
        """
        sessions, self._sessions = self._sessions, {}
        for remote in sessions.values():
            self._limiter.release(remote)
        super().connectionLost(reason)  # type: ignore[no-untyped-call]


class StateKeeperFactory:
    """
    The parent's state shared by all its workers: makes one L{StateKeeper} per worker.

    @ivar history: The one login history.
    @ivar limiter: The one connection limiter.
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        maxUnauthenticated: int,
        maxPerClient: int,
        loginGrace: float = DEFAULT_LOGIN_GRACE,
        loginWindow: float = DEFAULT_LOGIN_WINDOW,
    ) -> None:
        """
        @param clock: Dates failures and activity.
        @param maxUnauthenticated: The cap on connections waiting to log in, overall (of
            all workers together).
        @param maxPerClient: The cap per client address (of all workers together).
        @param loginGrace: How long a connection may go without progress before it counts
            as idle (see L{ConnectionLimiter}).
        @param loginWindow: How long after its arrival a connection's progress counts.
        """
        self.history = InProcessLoginHistory(clock=clock)
        self.limiter = ConnectionLimiter(
            clock,
            maxUnauthenticated=maxUnauthenticated,
            maxPerClient=maxPerClient,
            loginGrace=loginGrace,
            loginWindow=loginWindow,
        )

    def keeper(self) -> StateKeeper:
        """
        The parent's end of a new worker's connection.
        """
        return StateKeeper(self.history, self.limiter)


class WorkerState(amp.AMP):
    """
    A worker's end of its AMP connection to the parent.

    @ivar connected: Whether the connection is up.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, onLost: Callable[[], None]) -> None:
        """
        @param clock: Times out calls the parent does not answer.
        @param onLost: Called once when the connection to the parent is lost.
        """
        super().__init__()  # type: ignore[no-untyped-call]
        self._clock = clock
        self._onLost = onLost
        self.connected = False
        self._evict: Callable[[int], None] = lambda number: None
        self._notices: list[list[Any]] = []
        self._flushing: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """
        The parent is reachable.
        """
        self.connected = True
        super().connectionMade()  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure = _DONE) -> None:
        """
        The parent is gone: calls fail from now on.
        """
        wasConnected, self.connected = self.connected, False
        self._notices = []
        if self._flushing is not None and self._flushing.active():
            self._flushing.cancel()
        self._flushing = None
        super().connectionLost(reason)  # type: ignore[no-untyped-call]
        if wasConnected:
            self._onLost()

    def call(self, command: type[amp.Command], **arguments: Any) -> Deferred[dict[str, Any]]:
        """
        Call the parent, failing with L{TemporaryFailure} if it is gone, goes, or does not
        answer within L{CALL_TIMEOUT}.
        """
        if not self.connected:
            return fail(TemporaryFailure())
        self.flush()
        result: Deferred[dict[str, Any]] = self.callRemote(  # type: ignore[no-untyped-call]
            command, **arguments
        )
        result.addTimeout(CALL_TIMEOUT, self._clock)
        return result.addErrback(self._unanswered, command)

    def _unanswered(self, failure: Failure, command: type[amp.Command]) -> Failure:
        if failure.check(TemporaryFailure):  # type: ignore[no-untyped-call]
            return failure
        self.log.error(
            "The parent did not answer {command}: {error}",
            command=command.__name__,
            error=failure.getErrorMessage() or repr(failure.value),
        )
        return Failure(TemporaryFailure())  # type: ignore[no-untyped-call]

    def notify(self, *notice: Any) -> None:
        """
        Tell the parent something that needs no answer (see L{Notices}), within
        L{NOTICE_DELAY} or before the next call, whichever comes first; nothing if the
        parent is gone.
        """
        if not self.connected:
            return
        self._notices.append(list(notice))
        if self._flushing is None:
            self._flushing = self._clock.callLater(NOTICE_DELAY, self.flush)

    def withdraw(self, *notice: Any) -> bool:
        """
        Take back a notice not sent yet.

        @return: Whether it was still waiting (and is now withdrawn).
        """
        try:
            self._notices.remove(list(notice))
        except ValueError:
            return False
        return True

    def flush(self) -> None:
        """
        Send the notices waiting, if any.
        """
        if self._flushing is not None:
            if self._flushing.active():
                self._flushing.cancel()
            self._flushing = None
        notices, self._notices = self._notices, []
        if notices and self.connected:
            self.callRemote(  # type: ignore[no-untyped-call]
                Notices, notices=json.dumps(notices, separators=(",", ":"))
            )

    def onEvict(self, evict: Callable[[int], None]) -> None:
        """
        Have C{evict} called with a connection's number when the parent evicts it.
        """
        self._evict = evict

    @Evict.responder
    def _evicted(self, session: int) -> dict[str, Any]:
        self._evict(session)
        return {}


@implementer(ILoginHistory)
class SharedLoginHistory:
    """
    A worker's L{ILoginHistory}: the parent's, over AMP.  Every method fails with
    L{TemporaryFailure} when the parent cannot answer.
    """

    def __init__(self, state: WorkerState, *, loginsRead: bool = True) -> None:
        """
        @param state: The connection to the parent.
        @param loginsRead: Whether anything reads the last logins (LOGIN-DELAY is
            configured): then L{recordLogin} waits for the parent to have recorded the
            login; otherwise it only tells the parent.
        """
        self._state = state
        self._loginsRead = loginsRead

    def recordFailure(self, client: str) -> Deferred[int]:
        """
        Count one failed login from C{client}, for all workers.
        """
        return self._state.call(RecordFailure, client=client).addCallback(
            lambda answer: int(answer["count"])
        )

    def clearFailures(self, client: str) -> Deferred[None]:
        """
        Forget the failed logins of C{client}, for all workers: the parent is told, and
        the answer does not wait for it.
        """
        if not self._state.connected:
            return fail(TemporaryFailure())
        self._state.notify("clear", client)
        return succeed(None)

    def lastLogin(self, avatarId: str) -> Deferred[float | None]:
        """
        The time of the last login of C{avatarId} through any worker, or L{None}.
        """
        return self._state.call(LastLogin, avatarId=avatarId).addCallback(
            lambda answer: answer.get("when")
        )

    def recordLogin(self, avatarId: str, when: float) -> Deferred[None]:
        """
        Remember a login of C{avatarId} at C{when}, for all workers.
        """
        if not self._loginsRead:
            if not self._state.connected:
                return fail(TemporaryFailure())
            self._state.notify("login", avatarId, when)
            return succeed(None)
        return self._state.call(RecordLogin, avatarId=avatarId, when=when).addCallback(
            lambda _: None
        )


class SharedLimiter(ConnectionLimiter):
    """
    A worker's L{ConnectionLimiter}: its connections are admitted, touched and released
    in the parent's limiter, whose caps count the connections of all workers; the parent
    picks which connection to evict, in whichever worker it is.

    Without the parent (it has gone), connections are not capped: the worker is then
    shutting down.
    """

    def __init__(
        self,
        clock: IReactorTime,
        state: WorkerState,
        *,
        maxUnauthenticated: int,
        maxPerClient: int,
    ) -> None:
        """
        @param clock: Passed to L{ConnectionLimiter}.
        @param state: The connection to the parent.
        @param maxUnauthenticated: The overall cap, as the parent applies it.
        @param maxPerClient: The cap per client address, as the parent applies it.
        """
        super().__init__(clock, maxUnauthenticated=maxUnauthenticated, maxPerClient=maxPerClient)
        self._state = state
        self._numbers = itertools.count(1)
        self._byNumber: dict[int, UnauthenticatedSession] = {}
        self._byClientSession: dict[UnauthenticatedSession, tuple[int, str]] = {}
        self._lastTold: dict[int, float] = {}
        self._clock = clock
        state.onEvict(self._evicted)

    @property
    def unauthenticated(self) -> int:
        """
        The number of this worker's connections admitted and not yet released or evicted.
        """
        return len(self._byNumber)

    def perClient(self, client: str) -> int:
        """
        The number of this worker's connections from C{client} admitted and not yet
        released or evicted.
        """
        return sum(1 for _, c in self._byClientSession.values() if c == client)

    def admit(self, session: UnauthenticatedSession, client: str) -> None:
        """
        Register a new connection with the parent's limiter.
        """
        if session in self._byClientSession:
            raise ValueError(f"{session!r} is already admitted")
        number = next(self._numbers)
        self._byNumber[number] = session
        self._byClientSession[session] = (number, client)
        self._lastTold[number] = self._clock.seconds()
        self._state.notify("admit", number, client)

    def touched(self, session: UnauthenticatedSession) -> None:
        """
        Note activity on C{session}, in the parent's limiter.
        """
        known = self._byClientSession.get(session)
        if known is None:
            return
        number, now = known[0], self._clock.seconds()
        if now - self._lastTold[number] >= TOUCH_INTERVAL:
            self._lastTold[number] = now
            self._state.notify("touched", number)

    def release(self, session: UnauthenticatedSession) -> None:
        """
        Forget C{session}, here and in the parent's limiter.
        """
        known = self._byClientSession.pop(session, None)
        if known is None:
            return
        number, client = known
        del self._byNumber[number]
        del self._lastTold[number]
        if not self._state.withdraw("admit", number, client):
            self._state.notify("release", number)

    def _evicted(self, number: int) -> None:
        session = self._byNumber.pop(number, None)
        if session is None:
            return
        del self._byClientSession[session]
        del self._lastTold[number]
        try:
            session.evict()
        except Exception:
            self.log.failure("Evicting an unauthenticated connection failed")
