"""
Tests for L{pop3kit.redisstate}: maildrop leases with fencing tokens, the login history,
and what happens while Redis is out of reach, against a private C{redis-server}.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.cred.portal import Portal
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit._login import Session
from pop3kit.backends.memory import MemoryRealm
from pop3kit.core import Goodbye
from pop3kit.errors import MaildropInUse, TemporaryFailure
from pop3kit.interfaces import IFencedMaildropLock
from pop3kit.redisstate import (
    PASSWORD_ENVIRONMENT,
    InvalidStateURL,
    RedisLease,
    RedisLocker,
    RedisLoginHistory,
    RedisState,
    parseStateURL,
)
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedServer
from tests._redis import RedisServer
from tests.test_server_auth import SCRAMChecker

_T = TypeVar("_T")


class URLTests(SynchronousTestCase):
    """
    C{--state} URLs.
    """

    def test_full(self) -> None:
        """
        Host, port, database, user and password are read from the URL.
        """
        self.assertEqual(
            parseStateURL("redis://pop:s%40cret@10.0.0.5:6380/3"),
            {"host": "10.0.0.5", "port": 6380, "dbid": 3, "username": "pop", "password": "s@cret"},
        )

    def test_defaults(self) -> None:
        """
        The port defaults to 6379 and the database to 0.
        """
        self.assertEqual(
            parseStateURL("redis://redis.example"),
            {"host": "redis.example", "port": 6379, "dbid": 0, "username": None, "password": None},
        )

    def test_invalid(self) -> None:
        """
        Other schemes, no host, a database that is not a number, options and bad ports
        are refused.
        """
        for url in (
            "rediss://h/0",
            "http://h/0",
            "redis:///0",
            "redis://h/zero",
            "redis://h:99999/0",
            "redis://h/0?ssl=1",
        ):
            self.assertRaises(InvalidStateURL, parseStateURL, url)

    def test_passwordFromEnvironment(self) -> None:
        """
        Without a password in the URL, C{password} is used, else the environment's.
        """
        environ = {PASSWORD_ENVIRONMENT: "fromenv"}
        state = RedisState.fromURL("redis://h/0", environ=environ, clock=Clock())
        self.assertEqual(state._password, "fromenv")
        state = RedisState.fromURL("redis://h/0", password="given", environ=environ, clock=Clock())
        self.assertEqual(state._password, "given")
        state = RedisState.fromURL("redis://:inurl@h/0", environ=environ, clock=Clock())
        self.assertEqual(state._password, "inurl")


class RedisTestCase(TestCase):
    """
    A private Redis for each test, and states connected to it.
    """

    timeout = 60

    async def _server(self, password: str | None = None) -> RedisServer:
        server = RedisServer(self, password)
        await server.start()
        return server

    async def _state(self, server: RedisServer, **options: Any) -> RedisState:
        options.setdefault("password", server.password)
        state = RedisState.fromURL(server.url, environ={}, **options)
        state.startService()
        self.addCleanup(state.stopService)
        # Wait for the connection: the first operation would, up to the timeout.
        await self._eventually(lambda: state.call("ping"))
        return state

    async def _eventually(self, attempt: Callable[[], Deferred[_T]], within: float = 15.0) -> _T:
        deadline = time.monotonic() + within
        while True:
            try:
                return await attempt()
            except TemporaryFailure:
                if time.monotonic() > deadline:
                    raise
                await deferLater(reactor, 0.1, lambda: None)


class LeaseTests(RedisTestCase):
    """
    Maildrop locks in Redis.
    """

    async def test_exclusive(self) -> None:
        """
        A maildrop locked by one front-end is in use for another until released; each
        lease has a larger fencing token than the one before.
        """
        server = await self._server()
        first = RedisLocker(await self._state(server))
        second = RedisLocker(await self._state(server))
        lock = await first.acquire("alice")
        self.assertTrue(IFencedMaildropLock.providedBy(lock))
        with self.assertRaises(MaildropInUse):
            await second.acquire("alice")
        other = await second.acquire("bob")
        await lock.release()
        await lock.release()
        again = await second.acquire("alice")
        self.assertGreater(again.token, lock.token)  # type: ignore[attr-defined]
        self.assertGreater(again.token, other.token)  # type: ignore[attr-defined]
        await again.release()
        await other.release()

    async def test_renewed(self) -> None:
        """
        A held lease is renewed every third of its length: its time to live goes back up.
        """
        server = await self._server()
        clock = Clock()
        state = await self._state(server, clock=clock)
        lock = await RedisLocker(state, lease=60).acquire("alice")
        key = "pop3kit:lock:alice"
        server.command("PEXPIRE", key, "5000")
        self.assertLessEqual(int(server.command("PTTL", key)[1:]), 5000)
        clock.advance(20)
        for _ in range(500):
            if int(server.command("PTTL", key)[1:]) > 50000:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertGreater(int(server.command("PTTL", key)[1:]), 50000)
        await lock.release()
        self.assertEqual(server.command("EXISTS", key), ":0")
        clock.advance(60)
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_crashReleases(self) -> None:
        """
        The lock of a front-end that stopped renewing (killed) is free once its lease
        has run out.
        """
        server = await self._server()
        # A clock that never moves: this holder never renews, as a dead one would not.
        dead = RedisLocker(await self._state(server, clock=Clock()), lease=1.0)
        alive = RedisLocker(await self._state(server))
        await dead.acquire("alice")
        with self.assertRaises(MaildropInUse):
            await alive.acquire("alice")
        for _ in range(100):
            try:
                lock = await alive.acquire("alice")
            except MaildropInUse:
                await deferLater(reactor, 0.1, lambda: None)
            else:
                break
        else:
            self.fail("the lease of the dead holder never ran out")
        await lock.release()

    async def test_staleHolderCannotExpunge(self) -> None:
        """
        A session whose lease ran out and passed to another session removes nothing at
        QUIT: it answers C{[SYS/TEMP]}, and the messages stay.
        """
        server = await self._server()
        stale = RedisLocker(await self._state(server, clock=Clock()), lease=0.3)
        realm = MemoryRealm()
        mailbox = realm.getMailbox("alice")
        uid = mailbox.deliver(b"Subject: keep me\n\nbody\n")
        session = Session(mailbox, lambda: None)
        lease = await stale.acquire("alice")
        session.hold(lease)
        await deferLater(reactor, 0.5, lambda: None)
        newer = await RedisLocker(await self._state(server)).acquire("alice")
        goodbye = await session.expunge([uid])
        self.assertIsInstance(goodbye, Goodbye)
        self.assertIsInstance(goodbye.error, TemporaryFailure)
        self.assertEqual(len(mailbox.messages), 1)
        # Its release leaves the newer holder's lock alone.
        self.assertEqual(server.command("EXISTS", "pop3kit:lock:alice"), ":1")
        await newer.release()

    async def test_validHolderExpunges(self) -> None:
        """
        A session that still holds its lease removes its messages.
        """
        server = await self._server()
        realm = MemoryRealm()
        mailbox = realm.getMailbox("alice")
        uid = mailbox.deliver(b"Subject: delete me\n\nbody\n")
        session = Session(mailbox, lambda: None)
        session.hold(await RedisLocker(await self._state(server)).acquire("alice"))
        goodbye = await session.expunge([uid])
        self.assertIsNone(goodbye.error)
        self.assertEqual(mailbox.messages, [])
        while server.command("EXISTS", "pop3kit:lock:alice") != ":0":
            await deferLater(reactor, 0.01, lambda: None)

    async def test_lostLeaseStopsRenewing(self) -> None:
        """
        A renewal that finds the lease gone marks it lost: confirming fails, and it is
        renewed no more.
        """
        server = await self._server()
        clock = Clock()
        lease = await RedisLocker(await self._state(server, clock=clock), lease=30).acquire("a")
        assert isinstance(lease, RedisLease)
        server.command("DEL", "pop3kit:lock:a")
        clock.advance(10)
        await self._eventually(lambda: lease._state.call("ping"))
        with self.assertRaises(TemporaryFailure):
            await lease.confirm()
        self.assertEqual(clock.getDelayedCalls(), [])
        await lease.release()

    async def test_password(self) -> None:
        """
        A server that requires a password is used with it.
        """
        server = await self._server(password="pa55")
        lock = await RedisLocker(await self._state(server)).acquire("alice")
        await lock.release()


class RefusedTests(RedisTestCase):
    """
    A Redis that refuses the password.
    """

    async def test_wrongPassword(self) -> None:
        """
        Operations fail with L{TemporaryFailure}; nothing hangs.
        """
        server = await self._server(password="right")
        state = RedisState.fromURL(server.url, password="wrong", environ={}, timeout=0.5)
        state.startService()
        self.addCleanup(state.stopService)
        with self.assertRaises(TemporaryFailure):
            await RedisLocker(state).acquire("alice")


class HistoryTests(RedisTestCase):
    """
    Failed logins and last logins in Redis.
    """

    async def test_failuresShared(self) -> None:
        """
        Failures of one client counted by two front-ends add up; a success clears them.
        """
        server = await self._server()
        first = RedisLoginHistory(await self._state(server))
        second = RedisLoginHistory(await self._state(server))
        self.assertEqual(await first.recordFailure("203.0.113.9"), 1)
        self.assertEqual(await second.recordFailure("203.0.113.9"), 2)
        self.assertEqual(await second.recordFailure("198.51.100.7"), 1)
        await first.clearFailures("203.0.113.9")
        self.assertEqual(await second.recordFailure("203.0.113.9"), 1)
        ttl = int(server.command("TTL", "pop3kit:failures:203.0.113.9")[1:])
        self.assertTrue(0 < ttl <= 900, ttl)

    async def test_lastLogin(self) -> None:
        """
        The last login recorded by one front-end is seen by another, and expires.
        """
        server = await self._server()
        first = RedisLoginHistory(await self._state(server), forgetLoginsAfter=600)
        second = RedisLoginHistory(await self._state(server))
        self.assertIsNone(await second.lastLogin("alice"))
        await first.recordLogin("alice", 1234567890.25)
        self.assertEqual(await second.lastLogin("alice"), 1234567890.25)
        ttl = int(server.command("TTL", "pop3kit:login:alice")[1:])
        self.assertTrue(0 < ttl <= 600, ttl)


async def _answer(connection: ConnectedServer, data: bytes, within: float = 10.0) -> bytes:
    """
    Send C{data} and wait for a complete last response line (the login answers later).
    """
    connection.protocol.dataReceived(data)
    out = b""
    deadline = time.monotonic() + within
    expected = data.count(b"\r\n")
    while out.count(b"\r\n") < expected and time.monotonic() < deadline:
        await deferLater(reactor, 0.01, lambda: None)
        out += connection.read()
    return out


class OutageTests(RedisTestCase):
    """
    Redis out of reach: logins get C{[SYS/TEMP]}, and service resumes by itself.
    """

    def _factory(self, state: RedisState) -> tuple[POP3ServerFactory, MemoryRealm]:
        realm = MemoryRealm()
        realm.getMailbox("alice").deliver(b"Subject: hi\n\nhello\n")
        factory = POP3ServerFactory(
            Portal(realm, [SCRAMChecker()]),  # type: ignore[list-item]
            clock=reactor,
            locker=RedisLocker(state),
            loginHistory=RedisLoginHistory(state),
            failedLoginDelay=0,
        )
        return factory, realm

    def _connect(self, factory: POP3ServerFactory) -> ConnectedServer:
        connection = ConnectedServer(factory)
        self.addCleanup(connection.drop)
        return connection

    async def test_stoppedAndRestarted(self) -> None:
        """
        With Redis stopped, good and bad passwords are answered C{-ERR [SYS/TEMP]}; once
        it is back, logins work again without anyone reconnecting by hand.
        """
        server = await self._server()
        state = await self._state(server)
        factory, _ = self._factory(state)
        connection = self._connect(factory)
        self.assertIn(b"+OK maildrop", await _answer(connection, b"USER alice\r\nPASS secret\r\n"))
        await _answer(connection, b"QUIT\r\n")

        await server.stop()
        for password in (b"secret", b"wrong"):
            connection = self._connect(factory)
            reply = await _answer(connection, b"USER alice\r\nPASS " + password + b"\r\n")
            self.assertIn(b"-ERR [SYS/TEMP]", reply, password)
        self.flushLoggedErrors()

        await server.start()

        async def login() -> bytes:
            reply = await _answer(self._connect(factory), b"USER alice\r\nPASS secret\r\n")
            if b"+OK maildrop" not in reply:
                raise TemporaryFailure()
            return reply

        await self._eventually(lambda: Deferred.fromCoroutine(login()))

    async def test_frozen(self) -> None:
        """
        With Redis frozen (connections open, no answers), a login is answered C{-ERR
        [SYS/TEMP]} once the operation times out.
        """
        server = await self._server()
        state = await self._state(server, timeout=0.5)
        factory, _ = self._factory(state)
        server.pause()
        try:
            reply = await _answer(self._connect(factory), b"USER alice\r\nPASS secret\r\n")
        finally:
            server.resume()
        self.assertIn(b"-ERR [SYS/TEMP]", reply)
        self.flushLoggedErrors()

    async def test_inUseAcrossFactories(self) -> None:
        """
        Two servers sharing Redis lock each other out of a maildrop.
        """
        server = await self._server()
        first, _ = self._factory(await self._state(server))
        second, _ = self._factory(await self._state(server))
        one = self._connect(first)
        self.assertIn(b"+OK maildrop", await _answer(one, b"USER alice\r\nPASS secret\r\n"))
        reply = await _answer(self._connect(second), b"USER alice\r\nPASS secret\r\n")
        self.assertIn(b"-ERR [IN-USE]", reply)
        await _answer(one, b"QUIT\r\n")


class TapTests(SynchronousTestCase):
    """
    C{--state} and its companions in C{twistd pop3kit}.
    """

    def _parse(self, *arguments: str) -> Any:
        from pop3kit import tap

        options = tap.Options()
        root = self.mktemp()
        os.makedirs(root)
        options.parseOptions(["--maildir-root", root, "--auth", "memory:alice:secret", *arguments])
        return options

    def test_state(self) -> None:
        """
        C{--state} puts the locks and the login history in Redis, with the password from
        C{--state-password-file}, and the connection is a service started before the
        listeners.
        """
        from twisted.application.service import MultiService

        from pop3kit import tap

        passwordFile = self.mktemp()
        with open(passwordFile, "w") as f:
            f.write("s3cret\n")
        options = self._parse(
            *("--state", "redis://127.0.0.1:6390/2", "--state-password-file", passwordFile),
            *("--state-lease", "5", "--login-delay", "100000"),
        )
        state = options["state-service"]
        self.assertIsInstance(state, RedisState)
        self.assertEqual((state.port, state.dbid, state._password), (6390, 2, "s3cret"))
        factory = tap.makeFactory(options)
        self.assertIsInstance(factory.locker, RedisLocker)
        self.assertEqual(factory.locker._lease, 5)  # type: ignore[attr-defined]
        self.assertIsInstance(factory.loginHistory, RedisLoginHistory)
        self.assertEqual(factory.loginHistory._forgetLogins, 100000)  # type: ignore[attr-defined]
        service = tap.makeService(options)
        assert isinstance(service, MultiService)
        self.assertIs(next(iter(service)), state)

    def test_errors(self) -> None:
        """
        A bad URL, a missing password file, a password file without C{--state} and a
        lease that is not positive are one clear line each.
        """
        from twisted.python.usage import UsageError

        for arguments, expected in [
            (("--state", "http://h/0"), "redis://"),
            (("--state", "redis://h/0", "--state-password-file", "/nonexistent"), "No such"),
            (("--state-password-file", "/etc/hostname"), "needs --state"),
            (("--state", "redis://h/0", "--state-lease", "0"), "positive"),
        ]:
            with self.assertRaises(UsageError) as raised:
                self._parse(*arguments)
            self.assertIn(expected, str(raised.exception), arguments)

    def test_withoutTxredisapi(self) -> None:
        """
        Without txredisapi, C{--state} says how to install it.
        """
        import sys
        from unittest import mock

        from twisted.python.usage import UsageError

        self.enterContext(mock.patch.dict(sys.modules, {"txredisapi": None}))
        del sys.modules["pop3kit.redisstate"]
        with self.assertRaises(UsageError) as raised:
            self._parse("--state", "redis://h/0")
        self.assertIn("pip install 'pop3kit[redis]'", str(raised.exception))
