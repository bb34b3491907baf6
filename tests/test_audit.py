"""
Tests for L{pop3kit.audit}: the events the server emits about each session, with their
fields, and the JSON lines observer.
"""

from __future__ import annotations

import io
import json
from typing import Any, cast

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, Logger, LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from pop3kit import audit
from pop3kit._login import Login
from pop3kit._sessionlog import SessionLog
from pop3kit.backends.memory import MemoryRealm
from pop3kit.checkers.passwdfile import PasswdFileChecker, hashPassword
from pop3kit.core import LoginRefused
from pop3kit.cred import ChainedChecker, NoSuchUser, WrongPassword
from pop3kit.errors import AuthenticationFailed, TemporaryFailure
from pop3kit.locking import InProcessLocker, InProcessLoginHistory
from pop3kit.policy import ServerPolicy
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedServer
from tests.test_server_auth import runExchange

PASSWORD = "s3cret-Passw0rd"

#: The fields Twisted's legacy log observers add to an event they see.
LEGACY = {"isError", "message", "time", "system", "format", "why", "failure"}


@implementer(ICredentialsChecker)
class Users:
    """
    A checker that tells an unknown user from a wrong password, as pop3kit's do.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, **users: str) -> None:
        self.users = users

    def requestAvatarId(self, credentials: Any) -> Deferred[str]:  # type: ignore[override]
        name = credentials.username.decode("utf-8")
        if name not in self.users:
            return fail(NoSuchUser())
        if credentials.checkPassword(self.users[name].encode("utf-8")):
            return succeed(name)
        return fail(WrongPassword())


class Server:
    """
    A server on a memory realm where alice has two messages; every audit event it emits
    (debug included) is recorded.
    """

    def __init__(self, **options: Any) -> None:
        self.clock = Clock()
        self.realm = MemoryRealm()
        mailbox = self.realm.getMailbox("alice")
        mailbox.deliver(b"Subject: one\n\nfirst\n")
        mailbox.deliver(b"Subject: two\n\nsecond message\nline 2\nline 3\n")
        options.setdefault("failedLoginDelay", 0)
        self.factory = POP3ServerFactory(
            Portal(self.realm, [Users(alice=PASSWORD)]), clock=self.clock, **options
        )
        self.events: list[LogEvent] = []
        self.factory.auditLog.addObserver(cast(ILogObserver, self.events.append))

    def connect(self, host: str = "127.0.0.1") -> ConnectedServer:
        return ConnectedServer(self.factory, host)

    def named(self, name: str) -> list[LogEvent]:
        """
        The events of this name, in order.
        """
        return [e for e in self.events if e.get(audit.EVENT_FIELD) == name]

    def one(self, name: str) -> LogEvent:
        """
        The only event of this name.
        """
        [event] = self.named(name)
        return event


class SessionEventTests(SynchronousTestCase):
    """
    Each step of a session is an event with fields.
    """

    def test_connect(self) -> None:
        """
        A connection is an event with its session id and both addresses.
        """
        server = Server()
        server.connect("192.0.2.7")
        event = server.one("connect")
        self.assertEqual(event["peer"], "192.0.2.7")
        self.assertEqual(event["local"], "10.0.0.1:12345")
        self.assertEqual(event["listener"], "12345")
        self.assertEqual(len(event["sessionId"]), 12)
        self.assertIn("rip=192.0.2.7", formatEvent(event))

    def test_sessionIdsDiffer(self) -> None:
        """
        Each session has its own id, in every event of it.
        """
        server = Server()
        first, second = server.connect(), server.connect()
        first.login(b"alice", PASSWORD.encode())
        second.drop()
        ids = {e["sessionId"] for e in server.events}
        self.assertEqual(len(ids), 2)

    def test_loginAccepted(self) -> None:
        """
        An accepted login names the user, the method, both addresses and the maildrop.
        """
        server = Server()
        server.connect().login(b"alice", PASSWORD.encode())
        event = server.one("login.accepted")
        self.assertEqual(event["user"], "alice")
        self.assertEqual(event["mechanism"], "USER")
        self.assertEqual(event["peer"], "127.0.0.1")
        self.assertEqual(event["local"], "10.0.0.1:12345")
        self.assertEqual(event["messages"], 2)
        self.assertFalse(event["tls"])
        self.assertEqual(event["sessionId"], server.one("connect")["sessionId"])
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(event["log_namespace"], "pop3kit.audit")

    def test_unknownUserAndWrongPassword(self) -> None:
        """
        An unknown user and a wrong password are told apart in the log, and only there.
        """
        server = Server()
        unknown = server.connect().login(b"mallory", PASSWORD.encode())
        wrong = server.connect().login(b"alice", b"guess")
        self.assertEqual(unknown, wrong)
        first, second = server.named("login.refused")
        self.assertEqual(
            (first["user"], first["reason"], first["code"]),
            ("mallory", audit.Reason.UNKNOWN_USER, "AUTH"),
        )
        self.assertEqual(
            (second["user"], second["reason"], second["code"]),
            ("alice", audit.Reason.WRONG_PASSWORD, "AUTH"),
        )

    def test_chainUnknownOnlyIfAllSay(self) -> None:
        """
        A chain of checkers reports an unknown user only if none of them knows the user.
        """
        server = Server()
        server.factory.portal.registerChecker(
            ChainedChecker([Users(bob="x"), Users(alice=PASSWORD)]), IUsernamePassword
        )
        server.connect().login(b"mallory", b"guess")
        server.connect().login(b"alice", b"guess")
        reasons = [e["reason"] for e in server.named("login.refused")]
        self.assertEqual(reasons, [audit.Reason.UNKNOWN_USER, audit.Reason.WRONG_PASSWORD])

    def test_saslRefused(self) -> None:
        """
        A refused SASL login names the mechanism and the user the client gave.
        """
        server = Server()
        status, _ = runExchange(server.connect(), "PLAIN", "alice", "guess")
        self.assertTrue(status.startswith(b"-ERR [AUTH]"), status)
        event = server.one("login.refused")
        self.assertEqual((event["mechanism"], event["user"]), ("PLAIN", "alice"))
        self.assertEqual(event["reason"], audit.Reason.WRONG_PASSWORD)

    def test_scramReasons(self) -> None:
        """
        SCRAM, which checks the proof itself, tells an unknown user (no keys) from a
        wrong password in the log, with the same answer on the wire.
        """
        from tests.test_server_auth import SCRAMChecker

        server = Server()
        server.factory.portal.registerChecker(SCRAMChecker(), IUsernamePassword)
        unknown, _ = runExchange(server.connect(), "SCRAM-SHA-256", "mallory", "guess")
        wrong, _ = runExchange(server.connect(), "SCRAM-SHA-256", "alice", "guess")
        self.assertEqual(unknown, wrong)
        reasons = [(e["user"], e["reason"]) for e in server.named("login.refused")]
        self.assertEqual(
            reasons,
            [("mallory", audit.Reason.UNKNOWN_USER), ("alice", audit.Reason.WRONG_PASSWORD)],
        )

    def test_saslAborted(self) -> None:
        """
        A SASL exchange the client cancels is a refused login, aborted.
        """
        server = Server()
        connection = server.connect()
        self.assertTrue(connection.send(b"AUTH PLAIN\r\n").startswith(b"+ "))
        self.assertTrue(connection.send(b"*\r\n").startswith(b"-ERR"))
        event = server.one("login.refused")
        self.assertEqual((event["mechanism"], event["reason"]), ("PLAIN", audit.Reason.ABORTED))

    def test_logoutCounters(self) -> None:
        """
        The logout counts what was retrieved, read with TOP, deleted and kept, and says
        how the expunge went and how long the session lasted.
        """
        server = Server()
        connection = server.connect()
        connection.login(b"alice", PASSWORD.encode())
        listing = self.successResultOf(server.realm.getMailbox("alice").listMessages())
        sizes = [info.size for info in listing]
        server.clock.advance(7)
        connection.send(b"RETR 1\r\nRETR 2\r\nTOP 2 0\r\nDELE 1\r\n")
        self.assertTrue(connection.send(b"QUIT\r\n").startswith(b"+OK"))
        connection.drop()
        event = server.one("logout")
        self.assertEqual(
            {key: event[key] for key in ("retrieved", "tops", "deleted", "kept", "expunge")},
            {"retrieved": 2, "tops": 1, "deleted": 1, "kept": 1, "expunge": "ok"},
        )
        self.assertEqual(event["retrievedOctets"], sum(sizes))
        self.assertEqual(event["duration"], 7)
        self.assertEqual(event["user"], "alice")
        self.assertEqual([e["top"] for e in server.named("retrieved")], [False, False, True])
        self.assertEqual(server.named("disconnect"), [])

    def test_logoutWithoutQuit(self) -> None:
        """
        A session that ends without QUIT deletes nothing and says so.
        """
        server = Server()
        connection = server.connect()
        connection.login(b"alice", PASSWORD.encode())
        connection.send(b"DELE 1\r\n")
        connection.drop()
        event = server.one("logout")
        self.assertEqual((event["deleted"], event["kept"], event["expunge"]), (0, 2, "none"))

    def test_expungeFailed(self) -> None:
        """
        An expunge that fails is in the logout event, and nothing counts as deleted.
        """
        server = Server()
        connection = server.connect()
        connection.login(b"alice", PASSWORD.encode())
        mailbox = server.realm.getMailbox("alice")
        mailbox.expunge = lambda uids: fail(TemporaryFailure())  # type: ignore[method-assign]
        self.assertTrue(connection.send(b"DELE 1\r\nQUIT\r\n").endswith(b"\r\n"))
        connection.drop()
        event = server.one("logout")
        self.assertEqual((event["expunge"], event["deleted"], event["kept"]), ("failed", 0, 2))

    def test_disconnectBeforeLogin(self) -> None:
        """
        A connection that never logs in ends with a disconnect event, not a logout.
        """
        server = Server()
        server.connect().drop()
        self.assertEqual(server.one("disconnect")["peer"], "127.0.0.1")
        self.assertEqual(server.named("logout"), [])

    def test_timeout(self) -> None:
        """
        An idle client closed by the inactivity timer is an event.
        """
        server = Server()
        server.connect()
        server.clock.advance(server.factory.timeout)
        self.assertEqual(server.one("timeout")["waitingFor"], "a command")

    def test_evicted(self) -> None:
        """
        A connection closed to make room for a newer one is an event.
        """
        # No grace: a connection that has not logged in yet counts against the cap at once.
        server = Server(maxPerClient=1, loginGrace=0)
        first = server.connect("192.0.2.1")
        server.connect("192.0.2.1")
        self.assertTrue(first.transport.disconnecting)
        event = server.one("evicted")
        self.assertEqual(event["sessionId"], server.named("connect")[0]["sessionId"])

    def test_penalty(self) -> None:
        """
        The failed-login delay is an event, and the refusal after it carries it.
        """
        server = Server(failedLoginDelay=2)
        connection = server.connect()
        connection.login(b"alice", b"guess")
        event = server.one("penalty")
        self.assertEqual((event["peer"], event["failures"], event["delay"]), ("127.0.0.1", 1, 2))
        self.assertEqual(server.named("login.refused"), [])
        server.clock.advance(2)
        self.assertEqual(server.one("login.refused")["penalty"], 2)

    def test_lockRefused(self) -> None:
        """
        A login refused because another session holds the maildrop is a lock refusal.
        """
        server = Server()
        server.connect().login(b"alice", PASSWORD.encode())
        self.assertIn(b"[IN-USE]", server.connect().login(b"alice", PASSWORD.encode()))
        self.assertEqual(server.one("lock.refused")["maildrop"], "memory:alice")
        self.assertEqual(server.one("login.refused")["reason"], audit.Reason.IN_USE)

    def test_userEscaped(self) -> None:
        """
        A user name with a line end cannot start a line of its own in the log.
        """
        events: list[LogEvent] = []
        clock = Clock()
        publisher = audit.AuditPublisher(cast(ILogObserver, lambda event: None))
        publisher.addObserver(cast(ILogObserver, events.append))
        record = SessionLog(
            publisher,
            Logger(observer=publisher),
            clock,
            "192.0.2.1",
            IPv4Address("TCP", "::1", 110),
        )
        login = Login(
            Portal(MemoryRealm()),
            policy=ServerPolicy(),
            clock=clock,
            locker=InProcessLocker(),
            loginHistory=InProcessLoginHistory(clock=clock),
            peer="192.0.2.1",
        )
        login.user, login.reason = "x\nLogin failed: rip=6.6.6.6", audit.Reason.REFUSED
        record.loginFinished(login, LoginRefused(AuthenticationFailed()))
        event = events[-1]
        self.assertEqual(event["user"], "x\\x0aLogin failed: rip=6.6.6.6")
        self.assertEqual(event["local"], "[::1]:110")
        self.assertNotIn("\n", formatEvent(event))

    def test_vocabulary(self) -> None:
        """
        Every event of a busy session is of the vocabulary, with only its declared fields.
        """
        server = Server(failedLoginDelay=1)
        connection = server.connect()
        connection.login(b"mallory", b"x")
        server.clock.advance(1)
        connection.login(b"alice", PASSWORD.encode())
        connection.send(b"RETR 1\r\nTOP 1 1\r\nDELE 2\r\nQUIT\r\n")
        connection.drop()
        names = set()
        for event in server.events:
            kind = audit.EVENTS[event[audit.EVENT_FIELD]]
            names.add(kind.name)
            fields = {
                k
                for k in event
                if not k.startswith("log_") and k not in LEGACY and k != audit.EVENT_FIELD
            }
            self.assertEqual(fields, set(kind.fields), kind.name)
            self.assertEqual(event["log_format"], kind.format)
            formatEvent(event)
        self.assertEqual(
            names,
            {"connect", "penalty", "login.refused", "login.accepted", "retrieved", "logout"},
        )

    def test_globalLogGetsInfoOnly(self) -> None:
        """
        The global log gets the events of level info and above, not one per RETR.
        """
        server = Server()
        with capturedLogs() as events:
            connection = server.connect()
            connection.login(b"alice", PASSWORD.encode())
            connection.send(b"RETR 1\r\n")
        names = [e.get(audit.EVENT_FIELD) for e in events]
        self.assertEqual(names, ["connect", "login.accepted"])


class AuditPublisherTests(SynchronousTestCase):
    """
    L{audit.AuditPublisher} passes info events on, and says whether it is observed.
    """

    def test_forwarding(self) -> None:
        """
        Events of level info and above go to the observer forwarded to; debug ones do not.
        """
        forwarded: list[LogEvent] = []
        publisher = audit.AuditPublisher(cast(ILogObserver, forwarded.append))
        log = Logger(observer=publisher)
        log.debug("quiet")
        log.info("loud")
        log.error("louder")
        self.assertEqual([e["log_format"] for e in forwarded], ["loud", "louder"])

    def test_observed(self) -> None:
        """
        It is observed while an observer is added to it.
        """
        publisher = audit.AuditPublisher(cast(ILogObserver, lambda event: None))
        self.assertFalse(publisher.observed)
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        publisher.addObserver(observer)
        publisher.addObserver(observer)
        self.assertTrue(publisher.observed)
        publisher.removeObserver(observer)
        self.assertFalse(publisher.observed)

    def test_unobservedCountsStill(self) -> None:
        """
        Without observers, no event is made per message, and the logout still counts.
        """
        server = Server()
        server.factory.auditLog.removeObserver(cast(ILogObserver, server.events.append))
        with capturedLogs() as events:
            connection = server.connect()
            connection.login(b"alice", PASSWORD.encode())
            connection.send(b"RETR 1\r\nTOP 1 0\r\n")
            connection.drop()
        self.assertEqual(server.events, [])
        [logout] = [e for e in events if audit.LOGGED_OUT.matches(e)]
        self.assertEqual((logout["retrieved"], logout["tops"]), (1, 1))


class NoSecretTests(SynchronousTestCase):
    """
    No event field holds a password or a SASL response.
    """

    def test_noSecret(self) -> None:
        """
        Logins by every password method, right and wrong, leave no password and no SASL
        response in any event, in any form.
        """
        server = Server()
        secrets = [PASSWORD, "Wr0ng-Secret"]
        sent: list[bytes] = []
        for password in secrets:
            for name in (b"alice", b"nobody"):
                connection = server.connect()
                connection.login(name, password.encode())
                connection.drop()
            for mechanism in ("PLAIN", "LOGIN"):
                for user in ("alice", "nobody"):
                    connection = server.connect()
                    original = connection.send

                    def send(data: bytes, original: Any = original) -> bytes:
                        sent.append(data)
                        response: bytes = original(data)
                        return response

                    connection.send = send  # type: ignore[method-assign]
                    runExchange(connection, mechanism, user, password)
                    connection.drop()
        self.assertEqual(len(server.named("login.accepted")), 3)
        responses = [line.split()[-1] for data in sent for line in data.splitlines()]
        text = "\n".join(
            json.dumps({k: repr(v) for k, v in e.items()}) + audit.jsonLine(e) + formatEvent(e)
            for e in server.events
        )
        for secret in secrets:
            self.assertNotIn(secret, text)
        for response in responses:
            if len(response) > 8:
                self.assertNotIn(response.decode(), text)


class PrintableTests(SynchronousTestCase):
    """
    L{audit.printable} escapes what could forge a log line.
    """

    def test_plain(self) -> None:
        """
        Printable text is kept as it is, non-ASCII letters included.
        """
        self.assertEqual(audit.printable("Zoë Ñ alice@example.com"), "Zoë Ñ alice@example.com")

    def test_escaped(self) -> None:
        """
        Controls, line and paragraph separators and backslashes are escaped.
        """
        self.assertEqual(
            audit.printable("a\r\n\tb\u2028c\\d\x00"), "a\\x0d\\x0a\\x09b\\u2028c\\\\d\\x00"
        )


class JSONLinesTests(SynchronousTestCase):
    """
    L{audit.jsonLinesObserver} writes one JSON object a line.
    """

    def test_lines(self) -> None:
        """
        Each event is one line holding its fields, the time, level and text; debug
        events are left out by default.
        """
        out = io.StringIO()
        log = Logger(namespace="pop3kit.audit", observer=audit.jsonLinesObserver(out))
        audit.LOGIN_REFUSED.emit(
            log,
            sessionId="abc",
            peer="192.0.2.1",
            local="10.0.0.1:110",
            user='a"b\nc',
            mechanism="USER",
            tls=False,
            code="AUTH",
            reason=audit.Reason.WRONG_PASSWORD,
            penalty=2.0,
            seconds=0.5,
            checkSeconds=0.1,
        )
        log.debug("not written")
        log.info("Plain {thing}", thing=object())
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        first, second = (json.loads(line) for line in lines)
        self.assertEqual(first["pop3kitEvent"], "login.refused")
        self.assertEqual(first["peer"], "192.0.2.1")
        self.assertEqual(first["user"], 'a"b\nc')
        self.assertEqual(first["level"], "info")
        self.assertEqual(first["namespace"], "pop3kit.audit")
        self.assertTrue(first["time"].endswith("+00:00"))
        self.assertTrue(first["message"].startswith("Login failed: session=<abc>, rip=192.0.2.1"))
        self.assertFalse(any(key.startswith("log_") for key in first))
        self.assertTrue(second["message"].startswith("Plain <object object at"))

    def test_text(self) -> None:
        """
        L{audit.textObserver} writes Twisted's text lines, without debug events.
        """
        out = io.StringIO()
        log = Logger(namespace="pop3kit.audit", observer=audit.textObserver(out))
        log.debug("hidden")
        audit.EVICTED.emit(log, sessionId="abc", peer="192.0.2.1")
        [line] = out.getvalue().splitlines()
        expected = "[pop3kit.audit#info] Evicted before login: session=<abc>, rip=192.0.2.1"
        self.assertTrue(line.endswith(expected), line)

    def test_failure(self) -> None:
        """
        A logged failure carries its traceback.
        """
        out = io.StringIO()
        log = Logger(observer=audit.jsonLinesObserver(out))
        try:
            raise ZeroDivisionError("oops")
        except ZeroDivisionError:
            log.failure("Oops")
        [record] = [json.loads(line) for line in out.getvalue().splitlines()]
        self.assertIn("ZeroDivisionError", record["traceback"])
        self.assertEqual(record["level"], "critical")


class PasswdFileReasonTests(TestCase):
    """
    The passwd-file checker tells an unknown user from a wrong password, by type.
    """

    def test_reasons(self) -> Deferred[None]:
        """
        An unknown user is L{NoSuchUser}, a wrong password L{WrongPassword}.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(f"alice:{hashPassword(PASSWORD, 'PLAIN')}\n")
        checker = PasswdFileChecker(path)
        from twisted.cred.credentials import UsernamePassword

        unknown = self.assertFailure(
            checker.requestAvatarId(UsernamePassword(b"bob", b"x")), NoSuchUser
        )
        wrong = self.assertFailure(
            checker.requestAvatarId(UsernamePassword(b"alice", b"x")), WrongPassword
        )
        return unknown.addCallback(lambda _: wrong).addCallback(lambda _: None)


class TLSFailureEventTests(SynchronousTestCase):
    """
    A connection lost during a TLS handshake is a failed handshake.
    """

    def test_lostDuringHandshake(self) -> None:
        """
        Losing the connection while the handshake timer runs is a C{tls.failed} event.
        """
        server = Server()
        connection = server.connect()
        protocol: Any = connection.protocol
        protocol._startHandshakeTimer()
        protocol.connectionLost(Failure(ConnectionLost("bad record mac")))
        self.assertIn("bad record mac", server.one("tls.failed")["reason"])


class TLSEventTests(TestCase):
    """
    Real TLS handshakes over loopback are events, with the version and cipher.
    """

    async def test_stls(self) -> None:
        """
        STLS then a login: the handshake is an event naming the version and cipher,
        and the login says it was over TLS.
        """
        from tests.test_server_loopback import LoopbackServer
        from tests.test_server_tls import serverTLS, startTLS

        server = LoopbackServer(self, [b"Subject: x\r\n\r\ny\r\n"], tls=serverTLS())
        events: list[LogEvent] = []
        server.factory.auditLog.addObserver(cast(ILogObserver, events.append))
        server.start()
        client = await server.connect()
        await client.command(b"STLS")
        await startTLS(client)
        [answer] = await client.login()
        self.assertTrue(answer.startswith(b"+OK "), answer)
        [tls] = [e for e in events if audit.TLS_ESTABLISHED.matches(e)]
        self.assertTrue(tls["tlsVersion"].startswith("TLSv1."), tls)
        self.assertNotIn(tls["tlsCipher"], ("", "unknown", None))
        [login] = [e for e in events if audit.LOGIN_ACCEPTED.matches(e)]
        self.assertIs(login["tls"], True)
        self.assertEqual(login["sessionId"], tls["sessionId"])

    async def test_implicitTLSGarbage(self) -> None:
        """
        A client that speaks plain text to an implicit-TLS port is a failed handshake.
        """
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
        from twisted.internet.protocol import Protocol
        from twisted.internet.task import deferLater
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from tests.test_server_loopback import LoopbackServer
        from tests.test_server_tls import serverTLS

        tls = serverTLS()
        server = LoopbackServer(self, [], tls=tls)
        events: list[LogEvent] = []
        server.factory.auditLog.addObserver(cast(ILogObserver, events.append))
        tcp: Any = reactor
        port = tcp.listenTCP(
            0,
            TLSMemoryBIOFactory(tls.contextFactory(), False, server.factory),
            interface="127.0.0.1",
        )
        self.addCleanup(server.stop)
        self.addCleanup(port.stopListening)
        endpoint = TCP4ClientEndpoint(tcp, "127.0.0.1", port.getHost().port)
        client = await connectProtocol(endpoint, Protocol())
        assert client.transport is not None
        client.transport.write(b"USER alice\r\n" * 20)
        for _ in range(200):
            if any(audit.TLS_FAILED.matches(e) for e in events):
                break
            await deferLater(reactor, 0.05, lambda: None)
        client.transport.loseConnection()
        [failed] = [e for e in events if audit.TLS_FAILED.matches(e)]
        # OpenSSL's reason, not its tuples.
        self.assertTrue(failed["reason"], failed)
        self.assertNotIn("[(", failed["reason"])
        self.assertEqual([e for e in events if audit.TLS_ESTABLISHED.matches(e)], [])
