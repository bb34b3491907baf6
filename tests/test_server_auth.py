"""
Tests for logging in to L{pop3kit.server}: SASL AUTH (RFC 5034) with every mechanism,
the cleartext policy, SASLprep of USER/PASS, and the limits and delays that slow down
password guessing.  In memory, with L{ConnectedServer} and a fake clock.
"""

from __future__ import annotations

import base64
from typing import cast

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pop3kit.backends.memory import MemoryRealm
from pop3kit.cred import ChainedChecker
from pop3kit.errors import TemporaryFailure
from pop3kit.interfaces import ISCRAMKeySource
from pop3kit.limits import DEFAULT_MAX_PER_CLIENT, DEFAULT_MAX_UNAUTHENTICATED, ConnectionLimiter
from pop3kit.sasl import SCRAMKeys, clientMechanism
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedServer

_PASSWORDS = {"alice": "secret", "bob": "hunter2"}


@implementer(ISCRAMKeySource)
class SCRAMChecker(InMemoryUsernamePasswordDatabaseDontUse):
    """
    A plain-password checker that also hands out SCRAM keys derived from the passwords
    (or fails to, when C{broken}).
    """

    def __init__(self, broken: bool = False) -> None:
        super().__init__(**{name: password.encode() for name, password in _PASSWORDS.items()})
        self.broken = broken
        self._keys: dict[tuple[str, str], SCRAMKeys] = {}

    def scramKeys(self, username: str, mechanism: str) -> Deferred[SCRAMKeys | None]:
        """
        Keys derived from the user's password, made once per user and mechanism.
        """
        if self.broken:
            return fail(TemporaryFailure())
        if username not in _PASSWORDS:
            return succeed(None)
        key = (username, mechanism)
        if key not in self._keys:
            self._keys[key] = SCRAMKeys.fromPassword(_PASSWORDS[username], mechanism)
        return succeed(self._keys[key])


class Harness:
    """
    A server on a memory realm where alice has one message, with a fake clock.
    """

    def __init__(self, checker: object | None = None, **options: object) -> None:
        self.clock = cast(Clock, options.pop("clock", None) or Clock())
        self.realm = MemoryRealm()
        self.realm.getMailbox("alice").deliver(b"Subject: hi\n\nhello\n")
        self.checker = SCRAMChecker() if checker is None else checker
        options.setdefault("failedLoginDelay", 0)
        self.factory = POP3ServerFactory(
            Portal(self.realm, [self.checker]),  # type: ignore[list-item]
            clock=self.clock,
            **options,  # type: ignore[arg-type]
        )

    def connect(self, host: str = "127.0.0.1") -> ConnectedServer:
        """
        A new session from C{host}.
        """
        return ConnectedServer(self.factory, host)


def b64(data: bytes) -> bytes:
    """
    Base64, as SASL lines carry it.
    """
    return base64.b64encode(data)


def challenge(line: bytes) -> bytes:
    """
    The decoded data of a C{+ } continuation line (without line end).
    """
    assert line.startswith(b"+ "), line
    return base64.b64decode(line[2:])


def runExchange(
    connection: ConnectedServer,
    mechanism: str,
    username: str,
    password: str,
    *,
    initial: bool = True,
) -> tuple[bytes, bool]:
    """
    Run one AUTH exchange driven by pop3kit's client mechanism and return the final
    status line and whether the client side completed (verified the server, for SCRAM).
    """
    client = clientMechanism(mechanism, username, password, hostname="pop3kit")
    first = client.initialResponse() if initial else None
    line = b"AUTH " + mechanism.encode()
    if first is not None:
        line += b" " + (b64(first) if first else b"=")
    response = connection.send(line + b"\r\n")
    while response.startswith(b"+ "):
        answer = client.respond(challenge(response.rstrip(b"\r\n")))
        response = connection.send(b64(answer) + b"\r\n")
    return response, client.complete


class MechanismTests(SynchronousTestCase):
    """
    Every mechanism logs in with the right password and fails with a wrong one.
    """

    def assertLoggedIn(self, connection: ConnectedServer, status: bytes) -> None:
        """
        C{status} is a successful login, and the session is in TRANSACTION.
        """
        self.assertEqual(status, b"+OK maildrop has 1 messages (22 octets)\r\n")
        self.assertEqual(connection.send(b"STAT\r\n"), b"+OK 1 22\r\n")

    def test_everyMechanism(self) -> None:
        """
        PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1 and SCRAM-SHA-256 each log alice in, with and
        without an initial response where the mechanism allows one.
        """
        harness = Harness(sasl=["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"])
        for mechanism in ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"):
            for initial in (True, False):
                connection = harness.connect()
                status, complete = runExchange(
                    connection, mechanism, "alice", "secret", initial=initial
                )
                self.assertLoggedIn(connection, status)
                self.assertTrue(complete, mechanism)
                connection.send(b"QUIT\r\n")

    def test_wrongPassword(self) -> None:
        """
        A wrong password gets C{-ERR [AUTH]} with every mechanism, and the session stays
        in AUTHORIZATION.
        """
        harness = Harness(sasl=["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"])
        for mechanism in ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"):
            connection = harness.connect()
            try:
                status, _ = runExchange(connection, mechanism, "alice", "wrong")
            except Exception:
                self.fail(f"{mechanism}: the client mechanism failed")
            self.assertTrue(status.startswith(b"-ERR [AUTH] "), (mechanism, status))
            self.assertTrue(connection.send(b"STAT\r\n").startswith(b"-ERR "))

    def test_unknownUserLooksTheSame(self) -> None:
        """
        A SCRAM login of an unknown user runs the same exchange and gets the same answer
        as a wrong password.
        """
        harness = Harness()
        wrong, _ = runExchange(harness.connect(), "SCRAM-SHA-256", "alice", "wrong")
        unknown, _ = runExchange(harness.connect(), "SCRAM-SHA-256", "mallory", "wrong")
        self.assertEqual(wrong, unknown)

    def test_initialResponseRefusedForServerFirst(self) -> None:
        """
        CRAM-MD5 with an initial response gets C{-ERR} without a challenge.
        """
        connection = Harness(sasl=["CRAM-MD5"]).connect()
        response = connection.send(b"AUTH CRAM-MD5 " + b64(b"alice x") + b"\r\n")
        self.assertEqual(response, b"-ERR CRAM-MD5 does not take an initial response\r\n")

    def test_emptyInitialResponse(self) -> None:
        """
        C{AUTH PLAIN =} is an empty initial response: refused at once, never challenged.
        """
        response = Harness().connect().send(b"AUTH PLAIN =\r\n")
        self.assertTrue(response.startswith(b"-ERR "), response)

    def test_authzid(self) -> None:
        """
        PLAIN accepts an authorization identity equal to the user, and refuses another.
        """
        harness = Harness()
        same = harness.connect().send(b"AUTH PLAIN " + b64(b"alice\0alice\0secret") + b"\r\n")
        self.assertTrue(same.startswith(b"+OK "), same)
        other = harness.connect().send(b"AUTH PLAIN " + b64(b"bob\0alice\0secret") + b"\r\n")
        self.assertTrue(other.startswith(b"-ERR [AUTH] "), other)

    def test_keySourceDown(self) -> None:
        """
        When the SCRAM key store fails, the client gets C{-ERR [SYS/TEMP]}.
        """
        harness = Harness(SCRAMChecker(broken=True))
        status, _ = runExchange(harness.connect(), "SCRAM-SHA-256", "alice", "secret")
        self.assertTrue(status.startswith(b"-ERR [SYS/TEMP] "), status)

    def test_checkerDown(self) -> None:
        """
        When the checker fails unexpectedly, PLAIN gets C{-ERR [SYS/TEMP]} and the failure
        is logged.
        """

        class Broken(InMemoryUsernamePasswordDatabaseDontUse):
            def requestAvatarId(self, credentials: object) -> Deferred[object]:
                return fail(RuntimeError("database down"))

        connection = Harness(Broken()).connect()
        status = connection.send(b"AUTH PLAIN " + b64(b"\0alice\0secret") + b"\r\n")
        self.assertTrue(status.startswith(b"-ERR [SYS/TEMP] "), status)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ExchangeTests(SynchronousTestCase):
    """
    The mechanics of an exchange: cancelling, bad data, pipelining, disconnection.
    """

    def test_cancel(self) -> None:
        """
        C{*} cancels with C{-ERR}; the session can log in afterwards.
        """
        connection = Harness().connect()
        self.assertEqual(connection.send(b"AUTH PLAIN\r\n"), b"+ \r\n")
        self.assertEqual(connection.send(b"*\r\n"), b"-ERR authentication cancelled\r\n")
        status = connection.send(b"AUTH PLAIN " + b64(b"\0alice\0secret") + b"\r\n")
        self.assertTrue(status.startswith(b"+OK "), status)

    def test_badBase64(self) -> None:
        """
        A response that is not base64 ends the exchange with C{-ERR}.
        """
        connection = Harness().connect()
        connection.send(b"AUTH LOGIN\r\n")
        self.assertEqual(connection.send(b"!!!\r\n"), b"-ERR invalid base64 data\r\n")
        self.assertTrue(connection.send(b"CAPA\r\n").startswith(b"+OK "))

    def test_responseTooLong(self) -> None:
        """
        A response line over the limit ends the exchange with C{-ERR}, and none of it is
        taken as a command.
        """
        connection = Harness().connect()
        connection.send(b"AUTH PLAIN\r\n")
        response = connection.send(b"QUFB" * 3000 + b"\r\n")
        self.assertEqual(response, b"-ERR SASL response too long\r\n")

    def test_longResponseAccepted(self) -> None:
        """
        A response longer than a command line (RFC 5034 section 4) is accepted.
        """
        connection = Harness().connect()
        connection.send(b"AUTH PLAIN\r\n")
        response = connection.send(b64(b"\0alice\0" + b"x" * 600) + b"\r\n")
        self.assertTrue(response.startswith(b"-ERR [AUTH] "), response)

    def test_pipelined(self) -> None:
        """
        AUTH, its response and later commands in one write are handled in order.
        """
        connection = Harness().connect()
        response = connection.send(
            b"AUTH PLAIN\r\n" + b64(b"\0alice\0secret") + b"\r\nSTAT\r\nQUIT\r\n"
        )
        self.assertEqual(
            response,
            b"+ \r\n+OK maildrop has 1 messages (22 octets)\r\n+OK 1 22\r\n+OK bye\r\n",
        )

    def test_dropMidExchange(self) -> None:
        """
        A client that disconnects during an exchange leaves no session and no error.
        """
        harness = Harness()
        connection = harness.connect()
        connection.send(b"AUTH SCRAM-SHA-256\r\n")
        connection.drop()
        self.assertEqual(harness.realm.activeSessions, {})
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_authAfterLogin(self) -> None:
        """
        AUTH in TRANSACTION gets C{-ERR}.
        """
        connection = Harness().connect()
        connection.send(b"AUTH PLAIN " + b64(b"\0alice\0secret") + b"\r\n")
        self.assertTrue(connection.send(b"AUTH PLAIN\r\n").startswith(b"-ERR "))


class CapabilityTests(SynchronousTestCase):
    """
    CAPA's SASL line lists exactly the mechanisms the checkers can verify.
    """

    def saslLine(self, harness: Harness, host: str = "127.0.0.1") -> bytes | None:
        """
        The SASL line of CAPA, or L{None}.
        """
        capa = harness.connect(host).send(b"CAPA\r\n").split(b"\r\n")
        return next((line for line in capa if line.startswith(b"SASL ")), None)

    def test_default(self) -> None:
        """
        By default SCRAM, PLAIN and LOGIN are offered when the checker can verify them.
        """
        self.assertEqual(self.saslLine(Harness()), b"SASL SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN")

    def test_noKeySource(self) -> None:
        """
        Without a SCRAM key source, SCRAM is not offered.
        """
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        self.assertEqual(self.saslLine(Harness(checker)), b"SASL PLAIN LOGIN")

    def test_keySourceInChain(self) -> None:
        """
        SCRAM is offered, and works, when the key source is one of several chained
        checkers.
        """
        plain = InMemoryUsernamePasswordDatabaseDontUse(carol=b"pw")
        harness = Harness(ChainedChecker([plain, SCRAMChecker()]))
        self.assertEqual(self.saslLine(harness), b"SASL SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN")
        status, complete = runExchange(harness.connect(), "SCRAM-SHA-256", "alice", "secret")
        self.assertTrue(status.startswith(b"+OK ") and complete, status)

    def test_cramMD5OnlyWhenAsked(self) -> None:
        """
        CRAM-MD5 is offered only when configured.
        """
        self.assertNotIn(b"CRAM-MD5", self.saslLine(Harness()) or b"")
        self.assertEqual(self.saslLine(Harness(sasl=["cram-md5"])), b"SASL CRAM-MD5")

    def test_noHashedChecker(self) -> None:
        """
        CRAM-MD5 needs a checker of hashed credentials.
        """

        @implementer(ISCRAMKeySource)
        class PlainOnly:
            credentialInterfaces = (IUsernamePassword,)

            def requestAvatarId(self, credentials: object) -> Deferred[object]:
                return fail(UnauthorizedLogin())

            def scramKeys(self, username: str, mechanism: str) -> Deferred[SCRAMKeys | None]:
                return succeed(None)

        harness = Harness(PlainOnly(), sasl=["CRAM-MD5", "PLAIN"])
        self.assertEqual(self.saslLine(harness), b"SASL PLAIN")

    def test_unknownMechanismConfigured(self) -> None:
        """
        Configuring a mechanism pop3kit does not know is an error.
        """
        self.assertRaises(ValueError, Harness, sasl=["KERBEROS_V4"])

    def test_remoteCleartext(self) -> None:
        """
        From a remote address without TLS, only SCRAM is offered, USER is not, and
        USER is refused with C{-ERR [AUTH]}.
        """
        harness = Harness()
        self.assertEqual(self.saslLine(harness, "192.0.2.7"), b"SASL SCRAM-SHA-256 SCRAM-SHA-1")
        connection = harness.connect("192.0.2.7")
        capa = connection.send(b"CAPA\r\n")
        self.assertNotIn(b"\r\nUSER\r\n", capa)
        self.assertTrue(connection.send(b"USER alice\r\n").startswith(b"-ERR [AUTH] "))
        status, complete = runExchange(connection, "SCRAM-SHA-256", "alice", "secret")
        self.assertTrue(status.startswith(b"+OK ") and complete)

    def test_policies(self) -> None:
        """
        C{never} refuses cleartext even from loopback; C{always} allows it from anywhere.
        """
        never = Harness(allowCleartext="never").connect("127.0.0.1")
        self.assertTrue(never.send(b"USER alice\r\n").startswith(b"-ERR [AUTH] "))
        always = Harness(allowCleartext="always").connect("192.0.2.7")
        self.assertIn(b"+OK maildrop", always.login(b"alice", b"secret"))
        self.assertRaises(ValueError, Harness, allowCleartext="sometimes")


class GuessingTests(SynchronousTestCase):
    """
    Password guessing is slowed down and cut off.
    """

    def test_penaltyGrows(self) -> None:
        """
        Consecutive failures from one address wait 2, 4, 8, 15 and 15 seconds.
        """
        harness = Harness(failedLoginDelay=2.0, maxFailedLogins=100)
        connection = harness.connect()
        for delay in (2, 4, 8, 15, 15):
            self.assertEqual(connection.login(b"alice", b"wrong"), b"+OK send PASS\r\n")
            harness.clock.advance(delay - 0.01)
            self.assertEqual(connection.read(), b"", delay)
            harness.clock.advance(0.01)
            self.assertTrue(connection.read().startswith(b"-ERR [AUTH] "), delay)

    def test_penaltyPerAddressAndReset(self) -> None:
        """
        Another address starts at 2 seconds, and a successful login clears the count.
        """
        harness = Harness(failedLoginDelay=2.0)
        first = harness.connect("127.0.0.1")
        for delay in (2, 4):
            first.login(b"alice", b"wrong")
            harness.clock.advance(delay)
        other = harness.connect("127.0.0.2")
        other.login(b"alice", b"wrong")
        harness.clock.advance(2)
        self.assertTrue(other.read().startswith(b"-ERR [AUTH] "))
        third = harness.connect("127.0.0.1")
        self.assertIn(b"+OK maildrop", third.login(b"alice", b"secret"))
        third.send(b"QUIT\r\n")
        fourth = harness.connect("127.0.0.1")
        fourth.login(b"alice", b"wrong")
        harness.clock.advance(2)
        self.assertTrue(fourth.read().startswith(b"-ERR [AUTH] "))

    def test_failedLoginsCloseConnection(self) -> None:
        """
        The third failed login is answered and the connection closed.
        """
        connection = Harness().connect()
        for _ in range(2):
            connection.login(b"alice", b"wrong")
            self.assertFalse(connection.transport.disconnecting)
        self.assertIn(b"-ERR [AUTH] ", connection.login(b"alice", b"wrong"))
        self.assertTrue(connection.transport.disconnecting)

    def test_badCommandsCloseConnection(self) -> None:
        """
        The tenth invalid command is answered and the connection closed; nothing after
        it is executed.
        """
        connection = Harness().connect()
        response = connection.send(b"XYZZY\r\n" * 10 + b"USER alice\r\n")
        self.assertEqual(response.count(b"-ERR "), 10)
        self.assertNotIn(b"send PASS", response)
        self.assertTrue(connection.transport.disconnecting)

    def test_saslprepUserName(self) -> None:
        """
        USER names are prepared with SASLprep: a full-width name finds the plain user.
        """
        connection = Harness().connect()
        response = connection.login("\uff41lice".encode(), b"secret")
        self.assertIn(b"+OK maildrop", response)

    def test_prohibitedCharacters(self) -> None:
        """
        A user name with a character SASLprep prohibits fails like a wrong password.
        """
        connection = Harness().connect()
        response = connection.login("ali\ufffdce".encode(), b"secret")
        self.assertEqual(response, b"+OK send PASS\r\n-ERR [AUTH] authentication failed\r\n")


class ConnectionLimitTests(SynchronousTestCase):
    """
    Connections waiting to log in are capped; the longest idle one makes room, and a
    connection making progress is never closed for it.
    """

    def limited(self) -> Harness:
        """
        A server allowing four connections waiting to log in, one idle per address; a
        connection is idle after 5 seconds without an answered command.
        """
        clock = Clock()
        limiter = ConnectionLimiter(clock, maxUnauthenticated=4, maxPerClient=1, loginGrace=5)
        return Harness(clock=clock, limiter=limiter)

    def test_perClientEvictsLongestIdle(self) -> None:
        """
        A connection finding two idle ones from its address closes the longest idle,
        with C{-ERR [SYS/TEMP]}; one whose command was answered is not idle.
        """
        harness = self.limited()
        first, second, third = harness.connect(), harness.connect(), harness.connect()
        harness.clock.advance(5)
        first.send(b"CAPA\r\n")
        fourth = harness.connect()
        self.assertFalse(first.transport.disconnecting)
        self.assertTrue(second.transport.disconnecting)
        self.assertEqual(
            second.read(),
            b"-ERR [SYS/TEMP] too many connections waiting to log in, try again later\r\n",
        )
        self.assertFalse(third.transport.disconnecting)
        self.assertFalse(fourth.transport.disconnecting)

    def test_dribblingIsIdle(self) -> None:
        """
        Octets that do not complete a command are not progress: a client dribbling a
        command goes idle like a silent one.
        """
        harness = self.limited()
        dribbler, silent = harness.connect(), harness.connect()
        for octet in b"CAPA":
            harness.clock.advance(1.25)
            dribbler.send(bytes([octet]))
        harness.connect()
        self.assertTrue(dribbler.transport.disconnecting)
        self.assertFalse(silent.transport.disconnecting)

    def test_newConnectionsNotCounted(self) -> None:
        """
        Connections that have just arrived are not idle: many from one address are all
        kept, up to the overall cap.
        """
        harness = self.limited()
        connections = [harness.connect() for _ in range(4)]
        self.assertEqual([c.transport.disconnecting for c in connections], [False] * 4)

    def test_overallCap(self) -> None:
        """
        Past the overall cap, the longest idle connection of any address is closed.
        """
        harness = self.limited()
        oldest = harness.connect("127.0.0.1")
        harness.connect("127.0.0.2")
        harness.connect("127.0.0.3")
        harness.connect("127.0.0.4")
        harness.clock.advance(5)
        newest = harness.connect("127.0.0.5")
        self.assertTrue(oldest.transport.disconnecting)
        self.assertFalse(newest.transport.disconnecting)

    def test_overallCapNoneIdle(self) -> None:
        """
        Past the overall cap with every connection making progress, the new connection is
        turned away with C{-ERR [SYS/TEMP]}.
        """
        harness = self.limited()
        others = [harness.connect(f"127.0.0.{i}") for i in range(1, 5)]
        newest = harness.connect("127.0.0.5")
        self.assertEqual([c.transport.disconnecting for c in others], [False] * 4)
        self.assertTrue(newest.transport.disconnecting)
        self.assertTrue(
            newest.greeting.endswith(
                b"-ERR [SYS/TEMP] too many connections waiting to log in, try again later\r\n"
            )
        )

    def test_loggedInNotCounted(self) -> None:
        """
        Sessions that logged in leave the count, and are never closed to make room.
        """
        harness = self.limited()
        loggedIn = harness.connect()
        self.assertIn(b"+OK maildrop", loggedIn.login(b"alice", b"secret"))
        others = [harness.connect() for _ in range(6)]
        self.assertFalse(loggedIn.transport.disconnecting)
        self.assertEqual(harness.factory.limiter.unauthenticated, 4)
        for other in others:
            other.drop()
        self.assertEqual(harness.factory.limiter.unauthenticated, 0)

    def test_defaultLimiter(self) -> None:
        """
        A factory has a limiter with the default caps unless given one.
        """
        limiter = Harness().factory.limiter
        self.assertEqual(
            (limiter.maxUnauthenticated, limiter.maxPerClient),
            (DEFAULT_MAX_UNAUTHENTICATED, DEFAULT_MAX_PER_CLIENT),
        )
