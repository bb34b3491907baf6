"""
Tests for L{pop3kit.limits}.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.limits import (
    DEFAULT_FAILED_LOGIN_DELAY,
    DEFAULT_LOGIN_GRACE,
    DEFAULT_LOGIN_WINDOW,
    DEFAULT_MAX_FAILED_LOGIN_DELAY,
    DEFAULT_MAX_PER_CLIENT,
    DEFAULT_MAX_UNAUTHENTICATED,
    ConnectionLimiter,
    failedLoginPenalty,
)


class FakeSession:
    """
    A session that records its evictions, and can call back into the limiter when evicted.

    @ivar evicted: How many times L{evict} was called.
    @ivar onEvict: Called by L{evict}, if not L{None}.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.evicted = 0
        self.onEvict: object = None

    def __repr__(self) -> str:
        return f"<FakeSession {self.name}>"

    def evict(self) -> None:
        """
        Record the eviction and run C{onEvict}.
        """
        self.evicted += 1
        if callable(self.onEvict):
            self.onEvict()


def evictedNames(sessions: list[FakeSession]) -> list[str]:
    """
    The names of the evicted sessions among C{sessions}.
    """
    return [session.name for session in sessions if session.evicted]


class ConnectionLimiterTests(SynchronousTestCase):
    """
    Tests for L{ConnectionLimiter}.
    """

    def setUp(self) -> None:
        self.clock = Clock()

    def limiter(
        self,
        maxUnauthenticated: int = 100,
        maxPerClient: int = 100,
        loginGrace: float = 0,
        loginWindow: float = math.inf,
    ) -> ConnectionLimiter:
        """
        A limiter on C{self.clock} with the given caps; by default every connection counts
        as idle as soon as it arrives, so that only the order of activity matters.
        """
        return ConnectionLimiter(
            self.clock,
            maxUnauthenticated=maxUnauthenticated,
            maxPerClient=maxPerClient,
            loginGrace=loginGrace,
            loginWindow=loginWindow,
        )

    def admitAll(
        self, limiter: ConnectionLimiter, clients: list[str], step: float = 1.0
    ) -> list[FakeSession]:
        """
        Admit one new session per entry of C{clients}, C{step} seconds apart.
        """
        sessions = []
        for index, client in enumerate(clients):
            session = FakeSession(f"{client}#{index}")
            limiter.admit(session, client)
            sessions.append(session)
            self.clock.advance(step)
        return sessions

    def test_defaults(self) -> None:
        """
        The default caps are 1000 overall and 50 idle per client, a connection is idle
        after 10 seconds without progress within its first minute, and the default
        penalty runs from 2 to 15 seconds.
        """
        self.assertEqual(
            (
                DEFAULT_MAX_UNAUTHENTICATED,
                DEFAULT_MAX_PER_CLIENT,
                DEFAULT_LOGIN_GRACE,
                DEFAULT_LOGIN_WINDOW,
                DEFAULT_FAILED_LOGIN_DELAY,
                DEFAULT_MAX_FAILED_LOGIN_DELAY,
            ),
            (1000, 50, 10.0, 60.0, 2.0, 15.0),
        )
        limiter = ConnectionLimiter(self.clock)
        self.assertEqual(
            (
                limiter.maxUnauthenticated,
                limiter.maxPerClient,
                limiter.loginGrace,
                limiter.loginWindow,
            ),
            (1000, 50, 10.0, 60.0),
        )

    def test_defaultsIdleFlood(self) -> None:
        """
        By default, the 51st idle connection from one address evicts its longest idle.
        """
        limiter = ConnectionLimiter(self.clock)
        sessions = self.admitAll(limiter, ["192.0.2.1"] * 51, step=0)
        self.clock.advance(DEFAULT_LOGIN_GRACE)
        late = FakeSession("late")
        limiter.admit(late, "192.0.2.1")
        self.assertEqual(evictedNames(sessions), ["192.0.2.1#0"])
        self.assertEqual((limiter.perClient("192.0.2.1"), late.evicted), (51, 0))

    def test_defaultGlobalCap(self) -> None:
        """
        By default the 1001st unauthenticated connection evicts the one idle the longest.
        """
        limiter = ConnectionLimiter(self.clock)
        sessions = self.admitAll(limiter, [f"192.0.2.{i % 200}" for i in range(1001)], step=0.1)
        self.assertEqual(evictedNames(sessions), ["192.0.2.0#0"])
        self.assertEqual(limiter.unauthenticated, 1000)

    def test_capsAtLeastOne(self) -> None:
        """
        A cap below 1 is refused.
        """
        self.assertRaises(ValueError, self.limiter, maxUnauthenticated=0)
        self.assertRaises(ValueError, self.limiter, maxPerClient=0)
        self.assertRaises(ValueError, self.limiter, maxPerClient=-1)

    def test_underCapsNothingEvicted(self) -> None:
        """
        Connections up to both caps are all kept.
        """
        limiter = self.limiter(maxUnauthenticated=4, maxPerClient=2)
        sessions = self.admitAll(limiter, ["a", "a", "b", "b"])
        self.assertEqual(evictedNames(sessions), [])
        self.assertEqual(
            (limiter.unauthenticated, limiter.perClient("a"), limiter.perClient("b")),
            (4, 2, 2),
        )

    def test_perClientCapEvictsThatClientsLongestIdle(self) -> None:
        """
        A connection beyond the per-client cap evicts that client's longest idle
        connection, even when another client's connection has been idle longer.
        """
        limiter = self.limiter(maxPerClient=2)
        sessions = self.admitAll(limiter, ["other", "a", "a", "a"])
        self.assertEqual(evictedNames(sessions), ["a#1"])
        self.assertEqual(sessions[1].evicted, 1)
        self.assertEqual((limiter.perClient("a"), limiter.perClient("other")), (2, 1))
        self.assertEqual(limiter.unauthenticated, 3)

    def test_perClientCapOne(self) -> None:
        """
        With a per-client cap of 1, each new connection of a client replaces its previous
        one and is itself kept.
        """
        limiter = self.limiter(maxPerClient=1)
        sessions = self.admitAll(limiter, ["a", "a", "a"])
        self.assertEqual(evictedNames(sessions), ["a#0", "a#1"])
        self.assertEqual(limiter.perClient("a"), 1)

    def test_globalCapEvictsLongestIdle(self) -> None:
        """
        A connection beyond the global cap evicts the connection idle the longest, from
        whichever client.
        """
        limiter = self.limiter(maxUnauthenticated=3)
        sessions = self.admitAll(limiter, ["a", "b", "c", "d"])
        self.assertEqual(evictedNames(sessions), ["a#0"])
        self.assertEqual(limiter.unauthenticated, 3)
        self.assertEqual([limiter.perClient(c) for c in "abcd"], [0, 1, 1, 1])

    def test_perClientEvictionSparesGlobalEviction(self) -> None:
        """
        When a new connection exceeds both caps, evicting the client's own oldest one is
        enough: no other client loses a connection.
        """
        limiter = self.limiter(maxUnauthenticated=3, maxPerClient=2)
        sessions = self.admitAll(limiter, ["b", "a", "a", "a"])
        self.assertEqual(evictedNames(sessions), ["a#1"])
        self.assertEqual(limiter.unauthenticated, 3)

    def test_touchedChangesPerClientOrder(self) -> None:
        """
        A touched connection is no longer the longest idle of its client.
        """
        limiter = self.limiter(maxPerClient=2)
        first, second = self.admitAll(limiter, ["a", "a"])
        limiter.touched(first)
        third = FakeSession("third")
        limiter.admit(third, "a")
        self.assertEqual([first.evicted, second.evicted, third.evicted], [0, 1, 0])

    def test_touchedChangesGlobalOrder(self) -> None:
        """
        A touched connection is no longer the longest idle overall.
        """
        limiter = self.limiter(maxUnauthenticated=2)
        first, second = self.admitAll(limiter, ["a", "b"])
        limiter.touched(first)
        third = FakeSession("third")
        limiter.admit(third, "c")
        self.assertEqual([first.evicted, second.evicted, third.evicted], [0, 1, 0])

    def test_touchedUnknownIgnored(self) -> None:
        """
        Touching a session that was never admitted, or was released, changes nothing.
        """
        limiter = self.limiter()
        (session,) = self.admitAll(limiter, ["a"])
        limiter.release(session)
        limiter.touched(session)
        limiter.touched(FakeSession("stranger"))
        self.assertEqual((limiter.unauthenticated, limiter.perClient("a")), (0, 0))

    def test_release(self) -> None:
        """
        A released connection is no longer counted, and releasing it again is harmless.
        """
        limiter = self.limiter()
        first, second = self.admitAll(limiter, ["a", "a"])
        limiter.release(first)
        self.assertEqual((limiter.unauthenticated, limiter.perClient("a")), (1, 1))
        limiter.release(first)
        limiter.release(FakeSession("stranger"))
        self.assertEqual((limiter.unauthenticated, limiter.perClient("a")), (1, 1))
        limiter.release(second)
        self.assertEqual((limiter.unauthenticated, limiter.perClient("a")), (0, 0))
        self.assertEqual(limiter._byClient, {})

    def test_releasedNotEvicted(self) -> None:
        """
        A released connection makes room: it is neither counted nor evicted later.
        """
        limiter = self.limiter(maxUnauthenticated=2, maxPerClient=2)
        sessions = self.admitAll(limiter, ["a", "a"])
        limiter.release(sessions[0])
        sessions += self.admitAll(limiter, ["a"])
        self.assertEqual(evictedNames(sessions), [])

    def test_readmitAfterRelease(self) -> None:
        """
        A released session can be admitted again, as the newest.
        """
        limiter = self.limiter(maxPerClient=2)
        first, second = self.admitAll(limiter, ["a", "a"])
        limiter.release(first)
        limiter.admit(first, "a")
        limiter.admit(FakeSession("third"), "a")
        self.assertEqual([first.evicted, second.evicted], [0, 1])

    def test_admitTwiceRefused(self) -> None:
        """
        Admitting a session that is already admitted is a programming error.
        """
        limiter = self.limiter()
        (session,) = self.admitAll(limiter, ["a"])
        self.assertRaises(ValueError, limiter.admit, session, "b")
        self.assertEqual((limiter.unauthenticated, limiter.perClient("b")), (1, 0))

    def test_evictReentersRelease(self) -> None:
        """
        An C{evict} that releases its own session, as C{connectionLost} would, leaves the
        counts right and the session evicted once.
        """
        limiter = self.limiter(maxUnauthenticated=2)
        first, second = self.admitAll(limiter, ["a", "b"])
        first.onEvict = lambda: limiter.release(first)
        third = FakeSession("third")
        limiter.admit(third, "c")
        self.assertEqual([first.evicted, second.evicted, third.evicted], [1, 0, 0])
        self.assertEqual(limiter.unauthenticated, 2)
        self.assertEqual([limiter.perClient(c) for c in "abc"], [0, 1, 1])

    def test_evictReleasingOthers(self) -> None:
        """
        An C{evict} that releases other sessions, the new one included, leaves the limiter
        consistent and within its caps.
        """
        limiter = self.limiter(maxUnauthenticated=2)
        first, second = self.admitAll(limiter, ["a", "b"])
        third = FakeSession("third")

        def releaseAll() -> None:
            limiter.release(second)
            limiter.release(third)

        first.onEvict = releaseAll
        limiter.admit(third, "c")
        self.assertEqual([first.evicted, second.evicted, third.evicted], [1, 0, 0])
        self.assertEqual(limiter.unauthenticated, 0)
        self.assertEqual(limiter._byClient, {})

    def test_evictAdmittingAnother(self) -> None:
        """
        An C{evict} that admits another connection does not leave the limiter over its
        cap.
        """
        limiter = self.limiter(maxUnauthenticated=2)
        first, second = self.admitAll(limiter, ["a", "b"])
        late = FakeSession("late")
        first.onEvict = lambda: limiter.admit(late, "d")
        limiter.admit(FakeSession("third"), "c")
        self.assertEqual([first.evicted, second.evicted, late.evicted], [1, 1, 0])
        self.assertEqual(limiter.unauthenticated, 2)

    def test_evictFailureLogged(self) -> None:
        """
        An exception from C{evict} is logged, and the new connection is admitted anyway.
        """
        limiter = self.limiter(maxUnauthenticated=1)
        (first,) = self.admitAll(limiter, ["a"])

        def broken() -> None:
            raise RuntimeError("broken evict")

        first.onEvict = broken
        second = FakeSession("second")
        limiter.admit(second, "b")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual((limiter.unauthenticated, limiter.perClient("b")), (1, 1))

    def test_evictionLogged(self) -> None:
        """
        An eviction is logged with the client, its idle time and the cap exceeded.
        """
        limiter = self.limiter(maxPerClient=1)
        self.admitAll(limiter, ["192.0.2.7"], step=0)
        self.clock.advance(42)
        events: Sequence[LogEvent]
        with capturedLogs() as events:
            limiter.admit(FakeSession("new"), "192.0.2.7")
        self.assertEqual(
            [formatEvent(event) for event in events],
            [
                "Evicting an unauthenticated connection from 192.0.2.7, idle for 42.0 s: "
                "more than 1 idle unauthenticated connections from 192.0.2.7"
            ],
        )

    def test_counts(self) -> None:
        """
        The counts follow admissions, evictions and releases, per client and overall.
        """
        limiter = self.limiter(maxUnauthenticated=5, maxPerClient=3)
        self.assertEqual((limiter.unauthenticated, limiter.perClient("a")), (0, 0))
        sessions = self.admitAll(limiter, ["a", "b", "a", "a", "a", "c", "b"])
        self.assertEqual(evictedNames(sessions), ["a#0", "b#1"])
        self.assertEqual(
            [limiter.unauthenticated] + [limiter.perClient(c) for c in "abcd"],
            [5, 3, 1, 1, 0],
        )

    def test_repr(self) -> None:
        """
        The representation shows the counts and the caps.
        """
        limiter = self.limiter(maxUnauthenticated=5, maxPerClient=3)
        self.admitAll(limiter, ["a", "b", "a"])
        self.assertEqual(
            repr(limiter),
            "<ConnectionLimiter 3/5 unauthenticated, 2 clients, at most 3 idle per client>",
        )


class ProgressTests(SynchronousTestCase):
    """
    L{ConnectionLimiter} counts against the per-client cap only idle connections, and
    never closes one making progress to make room.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.limiter = ConnectionLimiter(
            self.clock, maxUnauthenticated=5, maxPerClient=1, loginGrace=10, loginWindow=60
        )

    def admit(self, name: str, client: str = "a") -> FakeSession:
        """
        Admit a new session named C{name} from C{client}.
        """
        session = FakeSession(name)
        self.limiter.admit(session, client)
        return session

    def test_newConnectionsNotIdle(self) -> None:
        """
        Connections younger than the grace are not counted against the per-client cap.
        """
        sessions = [self.admit(str(i)) for i in range(5)]
        self.clock.advance(9.9)
        self.assertEqual(evictedNames(sessions), [])
        self.assertEqual(self.limiter.idlePerClient("a"), 0)

    def test_idleAfterGrace(self) -> None:
        """
        After the grace without progress, connections count, and the longest idle are
        evicted down to the cap when another arrives.
        """
        sessions = [self.admit(str(i)) for i in range(3)]
        self.clock.advance(10)
        self.assertEqual(self.limiter.idlePerClient("a"), 3)
        self.admit("new")
        self.assertEqual(evictedNames(sessions), ["0", "1"])
        self.assertEqual(self.limiter.idlePerClient("a"), 1)

    def test_progressKeepsConnection(self) -> None:
        """
        A connection whose progress is noted within the grace is not idle.
        """
        first, second = self.admit("first"), self.admit("second")
        self.clock.advance(9)
        self.limiter.touched(first)
        self.clock.advance(9)
        third = self.admit("third")
        self.assertEqual(evictedNames([first, second, third]), [])
        self.clock.advance(1)
        self.admit("fourth")
        self.assertEqual(evictedNames([first, second, third]), ["second"])

    def test_progressAfterWindowIgnored(self) -> None:
        """
        Progress later than the login window after arrival does not keep a connection
        from going idle.
        """
        lingering = self.admit("lingering")
        self.clock.advance(50)
        other = self.admit("other")
        self.clock.advance(9)
        self.limiter.touched(lingering)
        self.clock.advance(9)
        self.limiter.touched(lingering)
        self.limiter.touched(other)
        self.clock.advance(2)
        self.assertEqual(self.limiter.idlePerClient("a"), 1)
        self.clock.advance(8)
        self.admit("new")
        self.assertEqual(evictedNames([lingering, other]), ["lingering"])

    def test_overallCapEvictsOnlyIdle(self) -> None:
        """
        Past the overall cap, the longest idle connection is evicted, even from another
        address.
        """
        idle = self.admit("idle", "b")
        self.clock.advance(10)
        busy = [self.admit(str(i)) for i in range(5)]
        self.assertEqual(evictedNames([idle, *busy]), ["idle"])

    def test_overallCapNoneIdleTurnsNewcomerAway(self) -> None:
        """
        Past the overall cap with no connection idle, the new connection is evicted and
        the others are kept.
        """
        busy = [self.admit(str(i), f"client{i}") for i in range(5)]
        newcomer = self.admit("newcomer", "client9")
        self.assertEqual(evictedNames([*busy, newcomer]), ["newcomer"])
        self.assertEqual(self.limiter.unauthenticated, 5)
        self.assertEqual(self.limiter.perClient("client9"), 0)

    def test_durationsNotNegative(self) -> None:
        """
        A negative grace or window is refused; zero is allowed.
        """
        self.assertRaises(ValueError, ConnectionLimiter, self.clock, loginGrace=-1)
        self.assertRaises(ValueError, ConnectionLimiter, self.clock, loginWindow=-1)
        self.assertRaises(ValueError, ConnectionLimiter, self.clock, loginGrace=math.nan)
        ConnectionLimiter(self.clock, loginGrace=0, loginWindow=0)


class NaiveLimiter:
    """
    A slow, obviously correct model of L{ConnectionLimiter}: a list of sessions with their
    client, their arrival, and the time and sequence number of their last progress.
    """

    def __init__(
        self, maxUnauthenticated: int, maxPerClient: int, loginGrace: float, loginWindow: float
    ) -> None:
        self.maxUnauthenticated = maxUnauthenticated
        self.maxPerClient = maxPerClient
        self.loginGrace = loginGrace
        self.loginWindow = loginWindow
        self.sessions: dict[int, tuple[str, float, float, int]] = {}
        self.sequence = 0
        self.evicted: list[int] = []

    def _stamp(self, now: float) -> tuple[float, int]:
        self.sequence += 1
        return now, self.sequence

    def _idle(self, client: str | None, now: float) -> list[int]:
        """
        The idle sessions (of C{client}, or of all), longest idle first.
        """
        return [
            key
            for (when, sequence, key) in sorted(
                (when, sequence, key)
                for key, (owner, _, when, sequence) in self.sessions.items()
                if client is None or owner == client
            )
            if now - when >= self.loginGrace
        ]

    def _evict(self, key: int) -> None:
        del self.sessions[key]
        self.evicted.append(key)

    def admit(self, key: int, client: str, now: float) -> None:
        self.sessions[key] = (client, now, *self._stamp(now))
        while len(idle := self._idle(client, now)) > self.maxPerClient:
            self._evict(idle[0])
        if len(self.sessions) > self.maxUnauthenticated:
            idle = [other for other in self._idle(None, now) if other != key]
            self._evict(idle[0] if idle else key)

    def touched(self, key: int, now: float) -> None:
        if key in self.sessions:
            client, admitted, _, _ = self.sessions[key]
            if now - admitted <= self.loginWindow:
                self.sessions[key] = (client, admitted, *self._stamp(now))

    def release(self, key: int) -> None:
        self.sessions.pop(key, None)

    def perClient(self, client: str) -> int:
        return sum(owner == client for owner, _, _, _ in self.sessions.values())


CLIENTS = ["a", "b", "c"]

#: Operations: admit a new session from a client, touch or release the n-th session ever
#: admitted (whatever its state), or let time pass.
operations = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.sampled_from(CLIENTS)),
        st.tuples(st.just("touched"), st.integers(min_value=0, max_value=30)),
        st.tuples(st.just("release"), st.integers(min_value=0, max_value=30)),
        st.tuples(st.just("advance"), st.sampled_from([0, 0.5, 3])),
    ),
    max_size=80,
)


class ConnectionLimiterModelTests(SynchronousTestCase):
    """
    L{ConnectionLimiter} behaves like L{NaiveLimiter}.
    """

    @given(
        st.integers(min_value=1, max_value=6),
        st.integers(min_value=1, max_value=4),
        st.sampled_from([0, 1, 3]),
        st.sampled_from([0, 2, math.inf]),
        operations,
    )
    def test_matchesModel(
        self,
        maxUnauthenticated: int,
        maxPerClient: int,
        loginGrace: float,
        loginWindow: float,
        steps: list[tuple[str, str | int | float]],
    ) -> None:
        """
        Any sequence of admissions, progress, releases and waiting evicts the same
        sessions, in the same order, and leaves the same counts as the naive model.
        """
        clock = Clock()
        limiter = ConnectionLimiter(
            clock,
            maxUnauthenticated=maxUnauthenticated,
            maxPerClient=maxPerClient,
            loginGrace=loginGrace,
            loginWindow=loginWindow,
        )
        model = NaiveLimiter(maxUnauthenticated, maxPerClient, loginGrace, loginWindow)
        sessions: list[FakeSession] = []
        evicted: list[int] = []
        for operation, argument in steps:
            if operation == "admit":
                assert isinstance(argument, str)
                key = len(sessions)
                session = FakeSession(str(key))
                session.onEvict = lambda key=key: evicted.append(key)
                sessions.append(session)
                limiter.admit(session, argument)
                model.admit(key, argument, clock.seconds())
            elif operation == "advance":
                assert isinstance(argument, float | int)
                clock.advance(argument)
            elif sessions:
                assert isinstance(argument, int)
                key = argument % len(sessions)
                if operation == "touched":
                    limiter.touched(sessions[key])
                    model.touched(key, clock.seconds())
                else:
                    limiter.release(sessions[key])
                    model.release(key)
            self.assertEqual(evicted, model.evicted)
            self.assertEqual(limiter.unauthenticated, len(model.sessions))
            for client in CLIENTS:
                self.assertEqual(limiter.perClient(client), model.perClient(client))
            self.assertLessEqual(limiter.unauthenticated, maxUnauthenticated)
        self.assertEqual(set(limiter._byClient), {c for c in CLIENTS if model.perClient(c)})


class FailedLoginPenaltyTests(SynchronousTestCase):
    """
    Tests for L{failedLoginPenalty}.
    """

    def test_defaults(self) -> None:
        """
        With the defaults the delay is 2, 4, 8 seconds, then 15 seconds from then on.
        """
        self.assertEqual(
            [failedLoginPenalty(n) for n in range(1, 8)], [2.0, 4.0, 8.0, 15.0, 15.0, 15.0, 15.0]
        )

    def test_noFailures(self) -> None:
        """
        Without failures (or with a nonsensical negative count) there is no delay.
        """
        self.assertEqual([failedLoginPenalty(0), failedLoginPenalty(-3)], [0.0, 0.0])

    def test_disabled(self) -> None:
        """
        An initial delay of 0 disables the penalty.
        """
        self.assertEqual([failedLoginPenalty(n, initial=0) for n in (1, 5, 100)], [0.0] * 3)

    def test_custom(self) -> None:
        """
        The initial delay and the maximum can be chosen.
        """
        self.assertEqual(
            [failedLoginPenalty(n, initial=0.5, maximum=3) for n in range(1, 6)],
            [0.5, 1.0, 2.0, 3.0, 3.0],
        )

    def test_maximumBelowInitial(self) -> None:
        """
        The maximum bounds even the first delay.
        """
        self.assertEqual(failedLoginPenalty(1, initial=10, maximum=4), 4.0)

    def test_manyFailures(self) -> None:
        """
        A client with a huge number of failures gets the maximum, without an overflow.
        """
        self.assertEqual(failedLoginPenalty(10**6), 15.0)
        self.assertEqual(failedLoginPenalty(5000, initial=1e-300, maximum=1e300), 1e300)

    def test_negativeRefused(self) -> None:
        """
        Negative delays are refused.
        """
        self.assertRaises(ValueError, failedLoginPenalty, 1, initial=-1)
        self.assertRaises(ValueError, failedLoginPenalty, 1, maximum=-1)

    @given(
        st.integers(min_value=-5, max_value=200),
        st.floats(min_value=0, max_value=100),
        st.floats(min_value=0, max_value=1000),
    )
    def test_bounds(self, failures: int, initial: float, maximum: float) -> None:
        """
        The delay is the initial delay doubled once per further failure, capped at the
        maximum, and never decreases with more failures.
        """
        delay = failedLoginPenalty(failures, initial=initial, maximum=maximum)
        if failures <= 0 or initial == 0:
            self.assertEqual(delay, 0.0)
        else:
            self.assertEqual(delay, min(maximum, initial * 2.0 ** (failures - 1)))
        self.assertLessEqual(delay, maximum)
        self.assertLessEqual(
            delay, failedLoginPenalty(failures + 1, initial=initial, maximum=maximum)
        )
