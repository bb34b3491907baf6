# -*- test-case-name: tests.test_redis -*-
"""
Server state shared by several front-ends through Redis: maildrop locks as leases with
fencing tokens, failed-login counts, LOGIN-DELAY history and the per-address cap on idle
connections waiting to log in (L{RedisConnectionLimiter}).

A L{RedisState} is the connection (a service: it connects when started, disconnects when
stopped); L{RedisLocker} and L{RedisLoginHistory} are the
L{IMaildropLocker <pop3kit.interfaces.IMaildropLocker>} and
L{ILoginHistory <pop3kit.interfaces.ILoginHistory>} that use it::

    state = RedisState.fromURL("redis://10.0.0.5:6379/0", password=secret)
    state.setServiceParent(application)
    factory = POP3ServerFactory(
        portal, locker=RedisLocker(state), loginHistory=RedisLoginHistory(state)
    )

Every operation gives up after C{state.timeout} seconds (1 by default), failing with
L{TemporaryFailure <pop3kit.errors.TemporaryFailure>}: while Redis is out of reach logins
are answered C{-ERR [SYS/TEMP]} at once, nothing waits on it, and the client connection
(kept by U{txredisapi <https://github.com/IlyaSkriblovsky/txredisapi>}) comes back by
itself when Redis does.

A lock is a key holding the lease's fencing token (from one counter, so every lease has a
larger token than the ones before), which expires after C{lease} seconds unless renewed.
The holder renews it every third of that while the session lives, and confirms it (a
renewal that must succeed) just before removing messages: a front-end that stopped
without releasing its locks (C{kill -9}, a crash, a lost host) holds them for one lease at
most, and one that lost its lease (Redis unreachable longer than the lease) removes
nothing.  Compare-and-renew and compare-and-release are Lua scripts, atomic in Redis.

This module needs the C{txredisapi} package: C{pip install 'pop3kit[redis]'}.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import txredisapi
from twisted.application.service import Service
from twisted.internet.defer import Deferred, TimeoutError, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from pop3kit.errors import MaildropInUse, TemporaryFailure
from pop3kit.interfaces import IFencedMaildropLock, ILoginHistory, IMaildropLock, IMaildropLocker
from pop3kit.limits import (
    DEFAULT_LOGIN_GRACE,
    DEFAULT_LOGIN_WINDOW,
    DEFAULT_MAX_PER_CLIENT,
    DEFAULT_MAX_UNAUTHENTICATED,
    ConnectionLimiter,
    UnauthenticatedSession,
)

__all__ = [
    "DEFAULT_CAP_REFRESH",
    "DEFAULT_FORGET_FAILURES_AFTER",
    "DEFAULT_FORGET_LOGINS_AFTER",
    "DEFAULT_LEASE",
    "DEFAULT_TIMEOUT",
    "PASSWORD_ENVIRONMENT",
    "InvalidStateURL",
    "RedisConnectionLimiter",
    "RedisLease",
    "RedisLocker",
    "RedisLoginHistory",
    "RedisState",
    "parseStateURL",
]

#: Seconds an operation waits for Redis before failing with C{[SYS/TEMP]}.
DEFAULT_TIMEOUT = 1.0

#: Seconds a maildrop lease lasts unless renewed.
DEFAULT_LEASE = 30.0

#: The environment variable that gives the Redis password when the URL has none.
PASSWORD_ENVIRONMENT = "POP3KIT_STATE_PASSWORD"  # noqa: S105 (a variable's name)

#: Seconds a LOGIN-DELAY record is kept at least.
DEFAULT_FORGET_LOGINS_AFTER = 86400.0

#: Seconds without a failed login after which a client's failures are forgotten (as in
#: L{pop3kit.locking.InProcessLoginHistory}).
DEFAULT_FORGET_FAILURES_AFTER = 900.0

#: Seconds between two reports of a front-end's idle connections to Redis; a report is
#: valid for three of these, so the connections of a front-end that died stop counting
#: within that.
DEFAULT_CAP_REFRESH = 2.0

# KEYS[1]: the lock, KEYS[2]: the token counter; ARGV[1]: the lease in milliseconds.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
"""

# KEYS[1]: the lock; ARGV[1]: the token, ARGV[2]: the lease in milliseconds.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
"""

# KEYS[1]: the lock; ARGV[1]: the token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1]: the client's counter; ARGV[1]: seconds to keep it after this failure.
_RECORD_FAILURE = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return count
"""


# KEYS[1]: a client address's idle connections, a hash of "COUNT EXPIRES" (milliseconds)
# by front-end; ARGV[1]: this front-end, ARGV[2]: now in milliseconds.  Drops the expired
# reports and returns the idle connections the other front-ends hold.
_IDLE_ELSEWHERE = """
local reports = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #reports, 2 do
    local count, expires = string.match(reports[i + 1], '^(%d+) (%d+)$')
    if count == nil or tonumber(expires) <= tonumber(ARGV[2]) then
        redis.call('HDEL', KEYS[1], reports[i])
    elseif reports[i] ~= ARGV[1] then
        total = total + tonumber(count)
    end
end
return total
"""

# KEYS: client addresses' hashes (as above); ARGV[1]: this front-end, ARGV[2]: when the
# report expires in milliseconds, ARGV[3]: its lifetime in milliseconds, ARGV[3 + i]: the
# idle connections of KEYS[i] here (0 removes the report).
_REPORT_IDLE = """
for i, key in ipairs(KEYS) do
    local count = tonumber(ARGV[3 + i])
    if count > 0 then
        redis.call('HSET', key, ARGV[1], count .. ' ' .. ARGV[2])
        if redis.call('PTTL', key) < tonumber(ARGV[3]) then
            redis.call('PEXPIRE', key, ARGV[3])
        end
    else
        redis.call('HDEL', key, ARGV[1])
    end
end
return #KEYS
"""


class InvalidStateURL(ValueError):
    """
    A C{--state} URL pop3kit cannot use; the message says why.
    """


def parseStateURL(url: str) -> dict[str, Any]:
    """
    The connection settings of a C{redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]} URL.

    @return: C{host}, C{port} (default 6379), C{dbid} (default 0), C{username} and
        C{password} (L{None} when the URL has none).
    @raise InvalidStateURL: If the URL is not of that form.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError as e:
        raise InvalidStateURL(f"{url!r}: {e}") from None
    if parts.scheme != "redis":
        raise InvalidStateURL(f"{url!r}: only redis://HOST:PORT/DB is supported")
    if not parts.hostname:
        raise InvalidStateURL(f"{url!r} names no host")
    path = parts.path.strip("/")
    if path and not (path.isascii() and path.isdigit()):
        raise InvalidStateURL(f"{url!r}: the database must be a number, not {path!r}")
    if parts.query or parts.fragment:
        raise InvalidStateURL(f"{url!r}: options after ? or # are not supported")
    return {
        "host": parts.hostname,
        "port": port,
        "dbid": int(path) if path else 0,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


class RedisState(Service):
    """
    A connection to the Redis server that holds the shared state: a service that
    connects when started and disconnects when stopped.

    @ivar timeout: Seconds an operation waits before failing with C{[SYS/TEMP]}.
    @ivar keyPrefix: The prefix of every key pop3kit uses.
    """

    log = Logger()

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        dbid: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        keyPrefix: str = "pop3kit:",
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param host: The Redis server's host.
        @param port: Its port.
        @param dbid: The database number.
        @param username: The ACL user, or L{None} for the default user.
        @param password: The password, or L{None}.
        @param timeout: Seconds an operation waits for Redis, connecting included.
        @param keyPrefix: The prefix of every key, to share a database with others.
        @param clock: Times operations out and schedules renewals; the global reactor by
            default.
        """
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        assert clock is not None
        self.host, self.port, self.dbid = host, port, dbid
        self._username, self._password = username, password
        self.timeout = timeout
        self.keyPrefix = keyPrefix
        self.clock = clock
        self._handler: Any = None
        self._reachable = True
        self._answered = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} redis://{self.host}:{self.port}/{self.dbid}>"

    @classmethod
    def fromURL(
        cls,
        url: str,
        *,
        password: str | None = None,
        environ: dict[str, str] | None = None,
        **options: Any,
    ) -> RedisState:
        """
        The state at C{url} (see L{parseStateURL}).  The password is the URL's, else
        C{password}, else the environment variable C{POP3KIT_STATE_PASSWORD}: a password
        in the URL shows in the process list.

        @param options: The other keyword arguments of L{RedisState}.
        @raise InvalidStateURL: If the URL is not usable.
        """
        settings = parseStateURL(url)
        if settings["password"] is None:
            environ = dict(os.environ) if environ is None else environ
            settings["password"] = password or environ.get(PASSWORD_ENVIRONMENT) or None
        return cls(**settings, **options)

    def startService(self) -> None:
        """
        Start connecting; operations wait for the connection (up to the timeout).
        """
        super().startService()  # type: ignore[no-untyped-call]
        handler = txredisapi.lazyConnectionPool(
            self.host,
            self.port,
            dbid=self.dbid,
            poolsize=2,
            reconnect=True,
            password=self._password,
            username=self._username,
            connectTimeout=self.timeout,
            replyTimeout=self.timeout,
            convertNumbers=False,
        )
        # Back within a second or two of Redis, not txredisapi's ten.
        factory = handler._factory
        factory.initialDelay = 0.1
        factory.maxDelay = 1.0
        if factory.deferred is not None:
            # Fails when Redis refuses us (a wrong password, say); nobody else waits on it.
            factory.deferred.addErrback(
                lambda f: self.log.error(
                    "Connecting to Redis at {state} failed: {error}", state=self, error=f.value
                )
            )
        self._handler = handler

    def stopService(self) -> Deferred[None]:
        """
        Disconnect.
        """
        super().stopService()  # type: ignore[no-untyped-call]
        handler, self._handler = self._handler, None
        if handler is None:
            return succeed(None)
        return cast(Deferred[None], handler.disconnect())

    def key(self, kind: str, name: str) -> str:
        """
        The key of C{name} in the namespace C{kind} (C{lock}, C{failures}, ...).
        """
        return f"{self.keyPrefix}{kind}:{name}"

    def eval(self, script: str, keys: list[str], args: list[object]) -> Deferred[Any]:
        """
        Run a Lua script; fails with L{TemporaryFailure} if Redis does not answer within
        the timeout (or is not connected by then), or answers with an error.
        """
        return self.call("eval", script, keys, [str(arg) for arg in args])

    def call(self, command: str, *args: object, **kwargs: object) -> Deferred[Any]:
        """
        Run one command (a method name of C{txredisapi}'s connection: C{get}, C{delete},
        ...), with the guarantees of L{eval}.
        """
        handler = self._handler
        if handler is None:
            return self._unreachable(RuntimeError("not started"))
        if not handler._factory.size and (self._answered or not self._reachable):
            # The connections are gone and not back yet: no use waiting for the timeout.
            # (Before the first answer, the first connection may still be on its way.)
            return self._unreachable(txredisapi.ConnectionError("not connected"))
        try:
            result: Deferred[Any] = getattr(handler, command)(*args, **kwargs)
        except Exception as e:
            return self._unreachable(e)
        result.addTimeout(self.timeout, self.clock)
        return result.addCallbacks(self._reached, lambda f: self._unreachable(f.value))

    def _reached(self, value: object) -> object:
        self._answered = True
        if not self._reachable:
            self._reachable = True
            self.log.info("Redis at {state} is reachable again", state=self)
        return value

    def _unreachable(self, error: BaseException) -> Deferred[Any]:
        if isinstance(error, txredisapi.ResponseError):
            # Redis answered: it is reachable, the command is wrong (or not allowed).
            self.log.error("Redis at {state} answered: {error}", state=self, error=error)
        elif self._reachable:
            self._reachable = False
            why = "no answer in time" if isinstance(error, TimeoutError) else error
            self.log.warn("Redis at {state} is out of reach: {why}", state=self, why=why)
        return fail(TemporaryFailure())


@implementer(IFencedMaildropLock)
class RedisLease:
    """
    A maildrop lock held in Redis for C{lease} seconds at a time, renewed until it is
    released.

    @ivar token: The fencing token.
    """

    log = Logger()

    def __init__(self, state: RedisState, key: str, token: int, lease: float) -> None:
        """
        @param state: The connection.
        @param key: The lock's key.
        @param token: The fencing token the lock's key holds.
        @param lease: Seconds the lock lasts unless renewed.
        """
        self.token = token
        self._state = state
        self._key = key
        self._leaseMs = max(1, int(lease * 1000))
        self._released = False
        self._lost = False
        self._renewal = LoopingCall(self._renew)
        self._renewal.clock = state.clock
        self._renewal.start(lease / 3, now=False).addErrback(
            lambda f: self.log.failure("Renewing a maildrop lease failed", f)
        )

    def __repr__(self) -> str:
        state = "released" if self._released else "lost" if self._lost else "held"
        return f"<{type(self).__name__} {self._key!r} token={self.token} {state}>"

    def _renewOnce(self) -> Deferred[bool]:
        return self._state.eval(_RENEW, [self._key], [self.token, self._leaseMs]).addCallback(
            lambda renewed: int(renewed) == 1
        )

    def _renew(self) -> Deferred[None]:
        def renewed(held: bool) -> None:
            if not held:
                self._losing()

        # Redis out of reach: try again next time; RedisState logs it.
        return self._renewOnce().addCallbacks(renewed, lambda _: None)

    def _losing(self) -> None:
        if not self._lost:
            self._lost = True
            self.log.warn("The maildrop lease {key} passed to another session", key=self._key)
        if self._renewal.running:
            self._renewal.stop()

    def confirm(self) -> Deferred[None]:
        """
        Renew the lease, failing with L{TemporaryFailure} if it is no longer ours or
        Redis cannot say.
        """
        if self._released or self._lost:
            return fail(TemporaryFailure("maildrop lock lost"))

        def confirmed(held: bool) -> None:
            if not held:
                self._losing()
                raise TemporaryFailure("maildrop lock lost")

        return self._renewOnce().addCallback(confirmed)

    def release(self) -> Deferred[None]:
        """
        Stop renewing and delete the lock, if it is still ours; releasing twice is
        harmless.  If Redis is out of reach the lease runs out by itself.
        """
        if self._released:
            return succeed(None)
        self._released = True
        if self._renewal.running:
            self._renewal.stop()
        if self._lost:
            return succeed(None)
        released = self._state.eval(_RELEASE, [self._key], [self.token])
        # Out of reach (RedisState says so on the log): the lease runs out by itself.
        return released.addCallbacks(lambda _: None, lambda f: f.trap(TemporaryFailure) and None)


@implementer(IMaildropLocker)
class RedisLocker:
    """
    Maildrop locks shared by every server using the same Redis: leases with fencing
    tokens (L{RedisLease}).
    """

    def __init__(self, state: RedisState, lease: float = DEFAULT_LEASE) -> None:
        """
        @param state: The connection.
        @param lease: Seconds a lock lasts unless renewed: the longest a lock of a
            front-end that died stays held.
        """
        if lease <= 0:
            raise ValueError(f"lease must be positive, not {lease!r}")
        self._state = state
        self._lease = lease

    def acquire(self, avatarId: str) -> Deferred[IMaildropLock]:
        """
        Lock the maildrop of C{avatarId}.

        @return: A L{Deferred} firing with a L{RedisLease}, or failing with
            L{MaildropInUse} when another session holds it and with L{TemporaryFailure}
            when Redis is out of reach.
        """
        state = self._state
        key = state.key("lock", avatarId)
        leaseMs = max(1, int(self._lease * 1000))

        def acquired(token: object) -> IMaildropLock:
            if int(cast(int, token)) == 0:
                raise MaildropInUse()
            return RedisLease(state, key, int(cast(int, token)), self._lease)

        return state.eval(_ACQUIRE, [key, state.key("fence", "counter")], [leaseMs]).addCallback(
            acquired
        )


@implementer(ILoginHistory)
class RedisLoginHistory:
    """
    Failed-login counts per client and last-login times per maildrop, shared by every
    server using the same Redis.  Each entry expires by itself, so memory stays bounded.

    The times are those of the servers' clocks: keep them synchronised (NTP).
    """

    def __init__(
        self,
        state: RedisState,
        *,
        forgetFailuresAfter: float = DEFAULT_FORGET_FAILURES_AFTER,
        forgetLoginsAfter: float = DEFAULT_FORGET_LOGINS_AFTER,
    ) -> None:
        """
        @param state: The connection.
        @param forgetFailuresAfter: Seconds without a failed login after which a client's
            count starts again from zero.
        @param forgetLoginsAfter: Seconds a login time is kept; at least the LOGIN-DELAY.
        """
        self._state = state
        self._forgetFailures = max(1, int(forgetFailuresAfter))
        self._forgetLogins = max(1, int(forgetLoginsAfter))

    def recordFailure(self, client: str) -> Deferred[int]:
        """
        Count one failed login from C{client}.
        """
        key = self._state.key("failures", client)
        return self._state.eval(_RECORD_FAILURE, [key], [self._forgetFailures]).addCallback(int)

    def clearFailures(self, client: str) -> Deferred[None]:
        """
        Forget the failed logins of C{client}.
        """
        return self._state.call("delete", self._state.key("failures", client)).addCallback(
            lambda _: None
        )

    def lastLogin(self, avatarId: str) -> Deferred[float | None]:
        """
        The time of the last successful login of C{avatarId}, or L{None}.
        """

        def parsed(value: str | None) -> float | None:
            return None if value is None else float(value)

        return self._state.call("get", self._state.key("login", avatarId)).addCallback(parsed)

    def recordLogin(self, avatarId: str, when: float) -> Deferred[None]:
        """
        Remember a successful login of C{avatarId} at C{when}.
        """
        key = self._state.key("login", avatarId)
        return self._state.call("set", key, repr(when), expire=self._forgetLogins).addCallback(
            lambda _: None
        )


class RedisConnectionLimiter(ConnectionLimiter):
    """
    A L{ConnectionLimiter} whose per-address cap on idle connections also counts the idle
    connections the other front-ends sharing the Redis hold.

    Each front-end keeps its own limiter, which evicts only connections it holds, and
    reports to Redis, every C{refresh} seconds while it has connections waiting to log
    in, how many idle ones it holds per client address (a hash per address, one field per
    front-end, each report valid for three refreshes: a front-end that dies stops
    counting within that).  When a connection is admitted, the limiter admits it as
    L{ConnectionLimiter} does, then asks Redis (without waiting: the reactor goes on) how
    many idle connections of that address the other front-ends hold, and:

      - if they hold C{maxPerClient} or more, the new connection is turned away
        (L{UnauthenticatedSession.evict}: C{-ERR [SYS/TEMP]}): a front-end cannot close
        another's connections, and the address already holds its share of idle ones;
      - otherwise its own idle connections of that address are evicted, the longest idle
        first, down to C{maxPerClient} less the others' count.

    Connections making progress are not counted, here as in L{ConnectionLimiter}: a crowd
    behind one address logs in at once on every front-end.  A connection counts for the
    other front-ends from the first report after it went idle, so the cap holds across
    front-ends to within C{refresh} seconds.

    When Redis is out of reach the cap holds per front-end (L{ConnectionLimiter}), no
    connection is turned away for it, and the limiter says so once on the log.
    """

    log = Logger()

    def __init__(
        self,
        state: RedisState,
        *,
        maxUnauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED,
        maxPerClient: int = DEFAULT_MAX_PER_CLIENT,
        loginGrace: float = DEFAULT_LOGIN_GRACE,
        loginWindow: float = DEFAULT_LOGIN_WINDOW,
        refresh: float = DEFAULT_CAP_REFRESH,
        frontend: str | None = None,
    ) -> None:
        """
        @param state: The connection to Redis; its clock is the limiter's.
        @param maxUnauthenticated: As for L{ConnectionLimiter}; per front-end.
        @param maxPerClient: As for L{ConnectionLimiter}, across the front-ends.
        @param loginGrace: As for L{ConnectionLimiter}.
        @param loginWindow: As for L{ConnectionLimiter}.
        @param refresh: Seconds between two reports of this front-end's idle connections.
        @param frontend: This front-end's name in Redis; a random one by default.

        @raise ValueError: As L{ConnectionLimiter}, or if C{refresh} is not positive.
        """
        super().__init__(
            state.clock,
            maxUnauthenticated=maxUnauthenticated,
            maxPerClient=maxPerClient,
            loginGrace=loginGrace,
            loginWindow=loginWindow,
        )
        if not refresh > 0:
            raise ValueError(f"refresh must be positive, not {refresh!r}")
        self._state = state
        self._refresh = refresh
        self.frontend = uuid.uuid4().hex if frontend is None else frontend
        # The addresses whose idle count was last reported as more than 0.
        self._reported: set[str] = set()
        self._shared = True
        # Admission checks Redis has not answered yet.
        self._checking = 0
        self._reporting = LoopingCall(self._report)
        self._reporting.clock = state.clock

    def admit(self, session: UnauthenticatedSession, client: str) -> None:
        """
        Admit C{session} as L{ConnectionLimiter.admit} does, then check the address's
        idle connections on the other front-ends (see the class description).
        """
        super().admit(session, client)
        if not self._reporting.running:
            self._reporting.start(self._refresh, now=False).addErrback(
                lambda f: self.log.failure("Reporting idle connections to Redis failed", f)
            )
        if session not in self._sessions:
            return
        now = int(self._clock.seconds() * 1000)
        checked = self._state.eval(
            _IDLE_ELSEWHERE, [self._state.key("idle", client)], [self.frontend, now]
        )
        self._checking += 1
        checked.addBoth(self._checked)
        checked.addCallbacks(
            lambda elsewhere: self._capShared(session, client, int(elsewhere)), self._failed
        )
        checked.addErrback(
            lambda f: self.log.failure(
                "Checking the shared cap of {client} failed", f, client=client
            )
        )

    def _checked(self, result: object) -> object:
        self._checking -= 1
        return result

    def _capShared(self, session: UnauthenticatedSession, client: str, elsewhere: int) -> None:
        """
        Apply the cap with C{elsewhere} idle connections of C{client} on other front-ends.
        """
        self._sharedAgain()
        if session not in self._sessions:
            # Logged in, lost or evicted meanwhile.
            return
        if elsewhere >= self._maxPerClient:
            self._evict(
                session,
                f"{elsewhere} idle unauthenticated connections from {client} on other "
                f"front-ends, at most {self._maxPerClient} in all",
            )
            return
        room = self._maxPerClient - elsewhere
        idle = self._idleOf(self._byClient.get(client, ()))
        for victim in idle[: max(0, len(idle) - room)]:
            if victim in self._sessions:
                self._evict(
                    victim,
                    f"more than {self._maxPerClient} idle unauthenticated connections from "
                    f"{client} on all front-ends ({elsewhere} on others)",
                )

    def _failed(self, failure: Any) -> None:
        """
        Redis could not be asked: the cap holds on this front-end only, for now.
        """
        failure.trap(TemporaryFailure)
        if self._shared:
            self._shared = False
            self.log.warn(
                "Redis at {state} is out of reach: the per-address cap on idle "
                "connections holds per front-end until it is back",
                state=self._state,
            )

    def _sharedAgain(self) -> None:
        if not self._shared:
            self._shared = True
            self.log.info(
                "Redis at {state} answers: the per-address cap on idle connections holds "
                "across front-ends again",
                state=self._state,
            )

    def _report(self) -> Deferred[None] | None:
        """
        Tell Redis how many idle connections per address this front-end holds; stop
        reporting once there is nothing left to tell.
        """
        counts = {
            client: len(self._idleOf(sessions)) for client, sessions in self._byClient.items()
        }
        for client in self._reported - counts.keys():
            counts[client] = 0
        counts = {client: n for client, n in counts.items() if n or client in self._reported}
        if not counts:
            if not self._sessions:
                self._reporting.stop()
            return None
        clients = sorted(counts)
        lifetime = int(self._refresh * 3 * 1000)
        expires = int(self._clock.seconds() * 1000) + lifetime
        reported = self._state.eval(
            _REPORT_IDLE,
            [self._state.key("idle", client) for client in clients],
            [self.frontend, expires, lifetime, *(counts[client] for client in clients)],
        )

        def done(_: object) -> None:
            self._sharedAgain()
            self._reported = {client for client in clients if counts[client]}

        def failed(failure: Any) -> None:
            # The reports in Redis expire by themselves.
            self._failed(failure)
            self._reported = set()

        return reported.addCallbacks(done, failed)
