"""
Tests for L{pop3kit._sharedstate}: the login bookkeeping a parent keeps for its workers,
over AMP, in memory (L{twisted.test.iosim}).
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from pop3kit._sharedstate import (
    CALL_TIMEOUT,
    NOTICE_DELAY,
    TOUCH_INTERVAL,
    SharedLimiter,
    SharedLoginHistory,
    StateKeeper,
    StateKeeperFactory,
    WorkerState,
)
from pop3kit.errors import TemporaryFailure
from pop3kit.interfaces import ILoginHistory


class _Session:
    """
    An unauthenticated connection that notes its eviction.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True


class _Worker:
    """
    One worker's shared history and limiter, connected in memory to the parent's state.
    """

    def __init__(self, parent: StateKeeperFactory, clock: Clock) -> None:
        self.lost = 0
        self.state = WorkerState(clock, self._lost)
        self.keeper: StateKeeper = parent.keeper()
        self.pump = iosim.connect(
            self.keeper,
            iosim.makeFakeServer(self.keeper),
            self.state,
            iosim.makeFakeClient(self.state),
            greet=False,
        )
        self.pump.flush()
        self.history = SharedLoginHistory(self.state)
        self.limiter = SharedLimiter(clock, self.state, maxUnauthenticated=10, maxPerClient=2)

    def _lost(self) -> None:
        self.lost += 1

    def flush(self) -> None:
        self.state.flush()
        self.pump.flush()


class SharedStateTests(SynchronousTestCase):
    """
    Two workers see one history and one limiter, the parent's.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        # No grace: the caps count a connection as idle at once, as the tests expect.
        self.parent = StateKeeperFactory(
            self.clock, maxUnauthenticated=3, maxPerClient=2, loginGrace=0
        )
        self.one = _Worker(self.parent, self.clock)
        self.two = _Worker(self.parent, self.clock)

    def _result(self, worker: _Worker, deferred: object) -> object:
        worker.flush()
        return self.successResultOf(deferred)  # type: ignore[arg-type]

    def test_interface(self) -> None:
        """
        The worker's history provides L{ILoginHistory}.
        """
        self.assertTrue(verifyObject(ILoginHistory, self.one.history))

    def test_failuresCountedOnce(self) -> None:
        """
        Failed logins from one client through either worker add to one count, as in one
        process; clearing it through one worker clears it for both.
        """
        counts = [
            self._result(self.one, self.one.history.recordFailure("192.0.2.1")),
            self._result(self.two, self.two.history.recordFailure("192.0.2.1")),
            self._result(self.one, self.one.history.recordFailure("192.0.2.1")),
            self._result(self.two, self.two.history.recordFailure("192.0.2.9")),
        ]
        self.assertEqual(counts, [1, 2, 3, 1])
        self._result(self.two, self.two.history.clearFailures("192.0.2.1"))
        self.assertEqual(self._result(self.one, self.one.history.recordFailure("192.0.2.1")), 1)

    def test_lastLoginShared(self) -> None:
        """
        A login recorded through one worker is the last login the other one sees.
        """
        self.assertIsNone(self._result(self.two, self.two.history.lastLogin("alice")))
        self._result(self.one, self.one.history.recordLogin("alice", 1234.5))
        self.assertEqual(self._result(self.two, self.two.history.lastLogin("alice")), 1234.5)

    def test_perClientCapAcrossWorkers(self) -> None:
        """
        The cap per client address counts the connections of all workers: the third
        from one address evicts the one idle the longest, in whichever worker it is.
        """
        first, second, third = _Session("a"), _Session("b"), _Session("c")
        self.one.limiter.admit(first, "192.0.2.1")
        self.one.flush()
        self.two.limiter.admit(second, "192.0.2.1")
        self.two.flush()
        self.clock.advance(TOUCH_INTERVAL)
        self.one.limiter.touched(first)
        self.one.flush()
        self.two.limiter.admit(third, "192.0.2.1")
        self.two.flush()
        self.one.flush()
        self.assertEqual([s.evicted for s in (first, second, third)], [False, True, False])
        self.assertEqual(self.parent.limiter.perClient("192.0.2.1"), 2)

    def test_touchesThrottled(self) -> None:
        """
        Activity within L{TOUCH_INTERVAL} of the admission (or of the last activity told)
        is not told to the parent: its order of idleness is that of the admissions.
        """
        first, second, third = _Session("a"), _Session("b"), _Session("c")
        self.one.limiter.admit(first, "192.0.2.1")
        self.two.limiter.admit(second, "192.0.2.1")
        self.one.limiter.touched(first)
        self.two.limiter.admit(third, "192.0.2.1")
        self.one.flush()
        self.two.flush()
        self.one.flush()
        self.assertEqual([s.evicted for s in (first, second, third)], [True, False, False])

    def test_noticesBatched(self) -> None:
        """
        What a worker does in one turn reaches the parent in one command, at the end
        of the turn.
        """
        written = self.one.pump.clientIO.stream
        self.one.limiter.admit(_Session("a"), "192.0.2.1")
        self.one.limiter.admit(_Session("b"), "192.0.2.2")
        self.one.history.clearFailures("192.0.2.3")
        self.assertEqual(written, [])
        self.clock.advance(NOTICE_DELAY)
        self.assertEqual(b"".join(written).count(b"Notices"), 1)
        self.one.pump.flush()
        self.assertEqual(self.parent.limiter.unauthenticated, 2)

    def test_quickLoginNotTold(self) -> None:
        """
        A connection released (logged in) before its admission was sent costs the
        parent nothing: neither is sent.
        """
        written = self.one.pump.clientIO.stream
        session = _Session("a")
        self.one.limiter.admit(session, "192.0.2.1")
        self.one.limiter.release(session)
        self.clock.advance(NOTICE_DELAY)
        self.assertEqual(written, [])

    def test_callSendsNoticesFirst(self) -> None:
        """
        A call is sent after the notices waiting, so the parent sees them first: a
        failure counted after a cleared count starts from one.
        """
        self._result(self.one, self.one.history.recordFailure("192.0.2.1"))
        self.one.history.clearFailures("192.0.2.1")
        self.assertEqual(self._result(self.one, self.one.history.recordFailure("192.0.2.1")), 1)

    def test_releaseFrees(self) -> None:
        """
        A released connection no longer counts, for the parent either.
        """
        first, second, third = _Session("a"), _Session("b"), _Session("c")
        self.one.limiter.admit(first, "192.0.2.1")
        self.one.limiter.release(first)
        self.one.flush()
        self.two.limiter.admit(second, "192.0.2.1")
        self.two.limiter.admit(third, "192.0.2.1")
        self.two.flush()
        self.assertFalse(second.evicted or third.evicted)
        self.assertEqual(self.two.limiter.perClient("192.0.2.1"), 2)
        self.assertEqual(self.two.limiter.unauthenticated, 2)

    def test_overallCapAcrossWorkers(self) -> None:
        """
        The overall cap counts the connections of all workers.
        """
        sessions = [_Session(str(n)) for n in range(4)]
        for n, session in enumerate(sessions):
            worker = (self.one, self.two)[n % 2]
            worker.limiter.admit(session, f"192.0.2.{n}")
            worker.flush()
        self.one.flush()
        self.assertEqual([s.evicted for s in sessions], [True, False, False, False])

    def test_workerGoneReleasesItsConnections(self) -> None:
        """
        When a worker's connection to the parent is lost (the worker died), its
        connections no longer count.
        """
        self.one.limiter.admit(_Session("a"), "192.0.2.1")
        self.one.limiter.admit(_Session("b"), "192.0.2.1")
        self.one.flush()
        self.assertEqual(self.parent.limiter.perClient("192.0.2.1"), 2)
        self.one.pump.clientIO.loseConnection()
        self.one.flush()
        self.assertEqual(self.parent.limiter.perClient("192.0.2.1"), 0)
        self.assertEqual(self.one.lost, 1)

    def test_parentGone(self) -> None:
        """
        Once the parent is gone, the history fails at once with L{TemporaryFailure}
        (the login answers C{[SYS/TEMP]}), and the limiter admits without capping.
        """
        self.one.pump.serverIO.loseConnection()
        self.one.flush()
        self.assertEqual(self.one.lost, 1)
        for call in (
            self.one.history.recordFailure("192.0.2.1"),
            self.one.history.lastLogin("alice"),
            self.one.history.recordLogin("alice", 1.0),
            self.one.history.clearFailures("192.0.2.1"),
        ):
            self.failureResultOf(call, TemporaryFailure)
        self.one.limiter.admit(_Session("a"), "192.0.2.1")
        self.one.limiter.release(_Session("a"))

    def test_parentGoesDuringCall(self) -> None:
        """
        A call under way when the parent goes fails with L{TemporaryFailure}.
        """
        pending = self.one.history.recordFailure("192.0.2.1")
        self.one.pump.serverIO.loseConnection()
        self.one.flush()
        self.failureResultOf(pending, TemporaryFailure)

    def test_parentSilent(self) -> None:
        """
        A call the parent does not answer fails with L{TemporaryFailure} after
        L{CALL_TIMEOUT} seconds, rather than hanging the login.
        """
        pending = self.one.history.lastLogin("alice")
        # Nothing is pumped: the parent never sees the call.
        self.assertNoResult(pending)
        self.clock.advance(CALL_TIMEOUT)
        self.failureResultOf(pending, TemporaryFailure)
        self.flushLoggedErrors()


class GuesserAcrossWorkersTests(SynchronousTestCase):
    """
    Two workers' servers, each with the shared history and limiter: a password guesser
    whose connections land on both is slowed as if it hit one process.
    """

    def setUp(self) -> None:
        from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
        from twisted.cred.portal import Portal

        from pop3kit.backends.memory import MemoryRealm
        from pop3kit.server import POP3ServerFactory

        self.clock = Clock()
        self.parent = StateKeeperFactory(self.clock, maxUnauthenticated=100, maxPerClient=50)
        self.workers = [_Worker(self.parent, self.clock) for _ in range(2)]
        realm = MemoryRealm()
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        self.factories = [
            POP3ServerFactory(
                Portal(realm, [checker]),
                clock=self.clock,
                loginHistory=worker.history,
                limiter=worker.limiter,
                failedLoginDelay=2.0,
                maximumFailedLoginDelay=15.0,
                loginDelay=300,
                allowCleartext="always",
            )
            for worker in self.workers
        ]

    def _flush(self) -> None:
        for worker in self.workers:
            worker.flush()

    def _login(self, index: int, password: bytes) -> tuple[bytes, float]:
        """
        Log alice in through worker C{index}; return the answer to PASS and the
        seconds it took on the clock.
        """
        from pop3kit.testing import ConnectedServer

        connection = ConnectedServer(self.factories[index], peerHost="192.0.2.7")
        self.addCleanup(connection.drop)
        connection.send(b"USER alice\r\n")
        connection.protocol.dataReceived(b"PASS " + password + b"\r\n")
        waited = 0.0
        while True:
            self._flush()
            answer = connection.read()
            if answer:
                return answer, waited
            self.assertLess(waited, 60, "no answer")
            self.clock.advance(0.5)
            waited += 0.5

    def test_penaltyShared(self) -> None:
        """
        Wrong passwords alternating between the workers wait 2, 4, 8, 15 s: the
        penalty of one process, not of two.
        """
        results = [self._login(n % 2, b"wrong") for n in range(4)]
        self.assertEqual([waited for _, waited in results], [2.0, 4.0, 8.0, 15.0])
        self.assertTrue(all(answer.startswith(b"-ERR [AUTH]") for answer, _ in results))

    def test_loginDelayShared(self) -> None:
        """
        A login through one worker holds off the next through the other (LOGIN-DELAY).
        """
        first, _ = self._login(0, b"secret")
        self.assertTrue(first.startswith(b"+OK"), first)
        second, _ = self._login(1, b"secret")
        self.assertTrue(second.startswith(b"-ERR [LOGIN-DELAY]"), second)

    def test_parentGoneIsTemporary(self) -> None:
        """
        Without the parent, a wrong password and a right one (which needs the
        LOGIN-DELAY history) are both answered C{[SYS/TEMP]}, without waiting.
        """
        for worker in self.workers:
            worker.pump.serverIO.loseConnection()
        self._flush()
        wrong, waited = self._login(0, b"wrong")
        self.assertTrue(wrong.startswith(b"-ERR [SYS/TEMP]"), wrong)
        self.assertEqual(waited, 0.0)
        right, waited = self._login(1, b"secret")
        self.assertTrue(right.startswith(b"-ERR [SYS/TEMP]"), right)
        self.assertEqual(waited, 0.0)
        self.flushLoggedErrors()
