"""
Tests for L{pop3kit.redisstate.RedisConnectionLimiter}: the per-address cap on idle
connections across front-ends sharing a private C{redis-server}.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from twisted.cred.portal import Portal
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit.backends.memory import MemoryRealm
from pop3kit.limits import ConnectionLimiter
from pop3kit.redisstate import RedisConnectionLimiter, RedisState
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedServer
from tests._redis import RedisServer
from tests.test_server_auth import SCRAMChecker


class _Session:
    """
    An unauthenticated connection that remembers being evicted.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.evicted = False

    def __repr__(self) -> str:
        return f"<_Session {self.name}>"

    def evict(self) -> None:
        self.evicted = True


class SharedCapTests(TestCase):
    """
    Two front-ends, each with its own clock (a dead front-end's clock stops), share one
    Redis.
    """

    timeout = 60

    async def _server(self) -> RedisServer:
        server = RedisServer(self)
        await server.start()
        return server

    async def _limiter(
        self, server: RedisServer, name: str, **options: Any
    ) -> RedisConnectionLimiter:
        state = RedisState.fromURL(server.url, environ={}, clock=Clock())
        state.startService()
        self.addCleanup(state.stopService)
        await self._until(lambda: state._handler is not None and state._handler._factory.size > 0)
        options.setdefault("maxPerClient", 2)
        options.setdefault("loginGrace", 5.0)
        return RedisConnectionLimiter(state, frontend=name, refresh=2.0, **options)

    async def _until(self, condition: Callable[[], bool], within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                self.fail("the condition never held")
            await deferLater(reactor, 0.01, lambda: None)

    async def _idleOn(
        self, server: RedisServer, limiter: RedisConnectionLimiter, client: str, count: int
    ) -> list[_Session]:
        """
        Admit C{count} connections from C{client}, let them go idle and wait until
        the front-end has reported them.
        """
        clock = limiter._clock
        assert isinstance(clock, Clock)
        sessions = [_Session(f"{limiter.frontend}-{i}") for i in range(count)]
        for session in sessions:
            limiter.admit(session, client)
        clock.advance(limiter.loginGrace + 2.0)
        await self._until(
            lambda: server.command("HGET", f"pop3kit:idle:{client}", limiter.frontend).startswith(
                f"{count} "
            )
        )
        return sessions

    async def _settle(self, limiter: RedisConnectionLimiter) -> None:
        """
        Wait until Redis has answered every admission check of C{limiter}.
        """
        await self._until(lambda: limiter._checking == 0)

    async def test_capCountsBoth(self) -> None:
        """
        When the other front-ends hold C{maxPerClient} idle connections of an address,
        a new connection of that address is turned away; another address is not.
        """
        server = await self._server()
        first = await self._limiter(server, "first")
        second = await self._limiter(server, "second")
        await self._idleOn(server, first, "10.0.0.1", 2)
        newcomer, other = _Session("newcomer"), _Session("other")
        second.admit(newcomer, "10.0.0.1")
        second.admit(other, "10.0.0.2")
        await self._settle(second)
        self.assertTrue(newcomer.evicted)
        self.assertFalse(other.evicted)
        self.assertEqual(second.perClient("10.0.0.1"), 0)
        self.assertEqual(second.perClient("10.0.0.2"), 1)

    async def test_ownIdleEvicted(self) -> None:
        """
        Below the cap elsewhere, a front-end evicts its own longest idle connections of
        the address down to what the others leave; the new one is kept.
        """
        server = await self._server()
        first = await self._limiter(server, "first", maxPerClient=3)
        second = await self._limiter(server, "second", maxPerClient=3)
        await self._idleOn(server, first, "10.0.0.1", 2)
        mine = await self._idleOn(server, second, "10.0.0.1", 2)
        newcomer = _Session("newcomer")
        second.admit(newcomer, "10.0.0.1")
        await self._settle(second)
        self.assertFalse(newcomer.evicted)
        self.assertEqual([s.evicted for s in mine], [True, False])
        self.assertEqual(second.perClient("10.0.0.1"), 2)

    async def test_deadFrontEndExpires(self) -> None:
        """
        The reports of a front-end that stopped reporting (its clock stands still, as a
        dead one's would) stop counting once they expire, and are removed.
        """
        server = await self._server()
        dead = await self._limiter(server, "dead")
        alive = await self._limiter(server, "alive")
        await self._idleOn(server, dead, "10.0.0.1", 2)
        clock = alive._clock
        assert isinstance(clock, Clock)
        # The dead one reported at 7 s, valid for three refreshes: until 13 s.
        clock.advance(14)
        newcomer = _Session("newcomer")
        alive.admit(newcomer, "10.0.0.1")
        await self._settle(alive)
        self.assertFalse(newcomer.evicted)
        self.assertEqual(server.command("HEXISTS", "pop3kit:idle:10.0.0.1", "dead"), ":0")

    async def test_reportsWithdrawn(self) -> None:
        """
        Once its connections are gone a front-end withdraws its reports and stops
        reporting: nothing is left scheduled.
        """
        server = await self._server()
        limiter = await self._limiter(server, "first")
        sessions = await self._idleOn(server, limiter, "10.0.0.1", 2)
        for session in sessions:
            limiter.release(session)
        clock = limiter._clock
        assert isinstance(clock, Clock)
        clock.advance(2)
        await self._until(lambda: server.command("EXISTS", "pop3kit:idle:10.0.0.1") == ":0")
        clock.advance(2)
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_redisStopped(self) -> None:
        """
        With Redis stopped, nobody is turned away for the shared cap, the local cap
        still evicts, and the limiter says so once.
        """
        server = await self._server()
        limiter = await self._limiter(server, "first")
        state = limiter._state
        await server.stop()
        await self._until(lambda: state._handler._factory.size == 0)
        crowd = [_Session(f"crowd-{i}") for i in range(5)]
        clock = limiter._clock
        assert isinstance(clock, Clock)
        with capturedLogs() as events:
            for session in crowd:
                limiter.admit(session, "10.0.0.1")
            self.assertEqual([s.evicted for s in crowd], [False] * 5)
            clock.advance(limiter.loginGrace + 1)
            limiter.admit(_Session("late"), "10.0.0.1")
        # The local cap: the three longest idle go, two idle ones stay.
        self.assertEqual(sum(s.evicted for s in crowd), 3)
        warnings = [e for e in events if "per front-end" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        self.flushLoggedErrors()

    async def test_refusedOverPOP3(self) -> None:
        """
        Through the server: the turned-away connection is told C{-ERR [SYS/TEMP]} after
        its greeting and closed.
        """
        server = await self._server()
        first = await self._limiter(server, "first")
        second = await self._limiter(server, "second")
        await self._idleOn(server, first, "10.0.0.1", 2)
        factory = POP3ServerFactory(
            Portal(MemoryRealm(), [SCRAMChecker()]),  # type: ignore[list-item]
            clock=reactor,
            limiter=second,
        )
        connection = ConnectedServer(factory, peerHost="10.0.0.1")
        self.addCleanup(connection.drop)
        out = connection.greeting
        for _ in range(1500):
            out += connection.read()
            if b"-ERR" in out:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(out.startswith(b"+OK"), out)
        self.assertIn(b"-ERR [SYS/TEMP]", out)
        self.assertTrue(connection.transport.disconnecting)


class TapTests(SynchronousTestCase):
    """
    C{--state} caps the connections per address across front-ends.
    """

    def _parse(self, *arguments: str) -> Any:
        from pop3kit import tap

        options = tap.Options()
        root = self.mktemp()
        os.makedirs(root)
        options.parseOptions(["--maildir-root", root, "--auth", "memory:alice:secret", *arguments])
        return options

    def test_limiter(self) -> None:
        """
        With C{--state} the factory's limiter is a L{RedisConnectionLimiter} with the
        policy's caps; a limiter given to C{makeFactory} (the workers' shared one) is
        kept.
        """
        from pop3kit import tap

        options = self._parse(
            *("--state", "redis://127.0.0.1:6390/2", "--max-per-client", "7"),
        )
        factory = tap.makeFactory(options)
        limiter = factory.limiter
        assert isinstance(limiter, RedisConnectionLimiter)
        self.assertIs(limiter._state, options["state-service"])
        self.assertEqual(limiter.maxPerClient, 7)
        given = ConnectionLimiter(Clock())
        self.assertIs(tap.makeFactory(options, limiter=given).limiter, given)

    def test_invalidRefresh(self) -> None:
        """
        The refresh interval must be positive.
        """
        state = RedisState(clock=Clock())
        self.assertRaises(ValueError, RedisConnectionLimiter, state, refresh=0)
