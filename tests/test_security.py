"""
Security regressions: one test per attack on the server, in one place.

Where another module covers an attack in depth, the test here is a compact end-to-end
check and its docstring names the other test.  Most tests run in memory
(L{pop3kit.testing.ConnectedServer} and a L{Clock}); those about sockets and TLS use real
loopback connections.
"""

from __future__ import annotations

import base64
import hashlib
import os
import poplib
import re
import select
import socket
import ssl
import sys
import time
from collections.abc import Iterator

from twisted.cred.checkers import ICredentialsChecker, InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from pop3kit.backends.maildir import MaildirRealm, mailboxPath
from pop3kit.errors import PermanentFailure
from pop3kit.interfaces import IMailbox
from pop3kit.sasl import clientMechanism
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedServer
from tests.test_interop_tls import clientContext, inThread, listenImplicitTLS
from tests.test_server_auth import Harness, b64, challenge, runExchange
from tests.test_server_loopback import LoopbackServer
from tests.test_server_tls import serverTLS, startTLS
from tests.test_twistd import TWISTD, ServerProcess

#: A client address that is not on this host.
REMOTE = "192.0.2.1"

#: One address for a whole crowd: a proxy on this host, so that USER/PASS is allowed.
REMOTE_CROWD = "127.0.0.1"


def responseLines(data: bytes) -> list[bytes]:
    """
    Split server output into lines, each checked to end in CRLF.
    """
    assert data.endswith(b"\r\n") or data == b"", data
    return data.split(b"\r\n")[:-1]


def plaintextSTLS(port: int, *chunks: bytes) -> tuple[bytes, bytes | None]:
    """
    Connect to C{port}, read the greeting, send C{chunks} as separate TCP writes
    (the first holding STLS), read the answer to STLS, check that nothing else arrives
    in the clear, then start TLS and send NOOP.

    @return: The cleartext received after the greeting, and what the server answered to
        NOOP inside TLS (L{None} if the handshake failed, which also keeps the injected
        octets from running).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        reader.readline()
        for chunk in chunks:
            sock.sendall(chunk)
            time.sleep(0.02)
        cleartext = reader.readline()
        # Anything more in the clear would be the answer to an injected command.
        readable, _, _ = select.select([sock], [], [], 0.3)
        if readable:
            cleartext += sock.recv(4096, socket.MSG_PEEK)
        try:
            tls = clientContext().wrap_socket(sock, server_hostname="localhost")
        except (ssl.SSLError, OSError):
            return cleartext, None
        with tls:
            tls.sendall(b"NOOP\r\n")
            tls.settimeout(5)
            answer = b""
            while not answer.endswith(b"\r\n"):
                data = tls.recv(4096)
                if not data:
                    break
                answer += data
            # Wait a little for a second, unsolicited line.
            tls.settimeout(0.3)
            try:
                answer += tls.recv(4096)
            except (TimeoutError, ssl.SSLError):
                pass
            return cleartext, answer


def afterSTLSAnswer(port: int, data: bytes) -> tuple[bytes, bytes]:
    """
    Connect to C{port}, send STLS, read its answer, then send C{data} in the clear.

    @return: The answer to STLS, and everything the server sent after it until it closed
        the connection, with a note if it did not close it within 5 seconds.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"STLS\r\n")
        answer = reader.readline()
        sock.sendall(data)
        after = b""
        try:
            while chunk := reader.read1(4096):
                after += chunk
        except TimeoutError:
            after += b"<the server did not close the connection>"
        return answer, after


class STARTTLSTests(TestCase):
    """
    STLS over real sockets: command injection, state kept across the handshake, STLS
    when not allowed, and clients that never complete a handshake.
    """

    timeout = 30

    def setUp(self) -> None:
        self.server = LoopbackServer(
            self, [b"Subject: x\r\n\r\nx\r\n"], tls=serverTLS(), allowCleartext="always"
        )
        self.port = self.server.start()

    async def test_injectionInOneWrite(self) -> None:
        """
        C{STLS\\r\\nCAPA\\r\\n} in one write: CAPA is answered neither in the clear nor
        inside TLS (CVE-2011-0411, CVE-2021-33515 class; in depth:
        L{tests.test_server_tls.STLSTests.test_injectedCommandsDiscarded}).
        """
        cleartext, answer = await inThread(
            self.server, lambda: plaintextSTLS(self.port, b"STLS\r\nCAPA\r\n")
        )
        self.assertEqual(cleartext, b"+OK begin TLS negotiation\r\n")
        self.assertEqual(answer, b"-ERR command not valid in this state\r\n")

    async def test_injectionSplitBeforeSTLSEnds(self) -> None:
        """
        C{STLS\r} and C{\nCAPA\r\n} in two TCP writes: STLS completes in the same read
        as CAPA arrives, and CAPA is discarded, never answered.
        """
        cleartext, answer = await inThread(
            self.server, lambda: plaintextSTLS(self.port, b"STLS\r", b"\nCAPA\r\n")
        )
        self.assertEqual(cleartext, b"+OK begin TLS negotiation\r\n")
        self.assertEqual(answer, b"-ERR command not valid in this state\r\n")

    async def test_injectionInTwoWrites(self) -> None:
        """
        CAPA sent in a second TCP write once STLS is answered, before any handshake: the
        server, now expecting a TLS ClientHello, closes the connection and sends nothing
        more, in particular no cleartext answer to CAPA, however late.
        """
        answer, after = await inThread(self.server, lambda: afterSTLSAnswer(self.port, b"CAPA\r\n"))
        self.assertEqual((answer, after), (b"+OK begin TLS negotiation\r\n", b""))

    async def test_userBeforeSTLSForgotten(self) -> None:
        """
        poplib's USER before C{stls()} and PASS after it fails: the name given in the
        clear is forgotten (in depth: L{tests.test_server_tls.STLSTests}).
        """

        def work() -> bytes:
            client = poplib.POP3("localhost", self.port, timeout=10)
            try:
                client.user("alice")
                client.stls(clientContext())
                try:
                    client.pass_("secret")
                except poplib.error_proto as e:
                    return e.args[0]  # type: ignore[no-any-return]
                raise AssertionError("PASS after STLS completed a cleartext USER")
            finally:
                client.close()

        self.assertEqual(await inThread(self.server, work), b"-ERR PASS must follow USER")

    async def test_secondSTLS(self) -> None:
        """
        STLS inside TLS is refused (see also L{tests.test_server_tls}).
        """
        client = await self.server.connect()
        await client.command(b"STLS")
        await startTLS(client)
        self.assertEqual(await client.command(b"STLS"), [b"-ERR TLS is already active"])

    async def test_stlsAfterLogin(self) -> None:
        """
        STLS in TRANSACTION is refused and the session goes on in the clear.
        """
        client = await self.server.connect()
        [answer] = await client.login()
        self.assertTrue(answer.startswith(b"+OK "), answer)
        self.assertEqual(await client.command(b"STLS"), [b"-ERR command not valid in this state"])
        self.assertEqual(await client.command(b"STAT"), [b"+OK 1 17"])


def silentUntilClosed(port: int, first: bytes = b"") -> tuple[bytes, float]:
    """
    Connect, send C{first}, then nothing; return what arrived and the seconds until the
    server closed the connection.
    """
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        if first:
            sock.recv(4096)  # the greeting
            sock.sendall(first)
        received = b""
        while True:
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
    return received, time.monotonic() - started


class HandshakeTimeoutTests(TestCase):
    """
    A client that never completes a TLS handshake is disconnected (in depth:
    L{tests.test_server_tls}'s C{test_handshakeTimeout} tests).
    """

    timeout = 30

    def setUp(self) -> None:
        self.tls = serverTLS()
        self.server = LoopbackServer(self, [], tls=self.tls, handshakeTimeout=0.3)
        self.port = self.server.start()

    async def test_implicitTLSSilence(self) -> None:
        """
        Connecting to the implicit-TLS port and sending nothing ends after the timeout.
        """
        port = listenImplicitTLS(self, self.server, self.tls)
        received, elapsed = await inThread(self.server, lambda: silentUntilClosed(port))
        self.assertEqual(received, b"")
        self.assertLess(elapsed, 5)

    async def test_stlsThenSilence(self) -> None:
        """
        STLS answered, then no ClientHello: the connection ends after the timeout.
        """
        received, elapsed = await inThread(
            self.server, lambda: silentUntilClosed(self.port, b"STLS\r\n")
        )
        self.assertEqual(received, b"+OK begin TLS negotiation\r\n")
        self.assertLess(elapsed, 5)


class CleartextPolicyTests(SynchronousTestCase):
    """
    Passwords are refused before TLS where the policy says so, and not advertised.
    """

    def assertRefused(self, connection: ConnectedServer) -> None:
        """
        CAPA offers no USER, PLAIN or LOGIN; USER, AUTH PLAIN and AUTH LOGIN get
        C{-ERR [AUTH]}, and a pipelined PASS does not log in.
        """
        capa = connection.send(b"CAPA\r\n")
        self.assertNotIn(b"\r\nUSER\r\n", capa)
        sasl = [line for line in capa.split(b"\r\n") if line.startswith(b"SASL")]
        for line in sasl:
            self.assertNotIn(b"PLAIN", line.split())
            self.assertNotIn(b"LOGIN", line.split())
        response = connection.send(
            b"USER alice\r\nPASS secret\r\nAUTH PLAIN "
            + b64(b"\0alice\0secret")
            + b"\r\nAUTH LOGIN\r\nSTAT\r\n"
        )
        lines = responseLines(response)
        self.assertEqual(len(lines), 5, lines)
        for line in (lines[0], lines[2], lines[3]):
            self.assertTrue(line.startswith(b"-ERR [AUTH] "), line)
        self.assertTrue(lines[1].startswith(b"-ERR "), lines[1])
        self.assertTrue(lines[4].startswith(b"-ERR "), lines[4])

    def test_neverOnLoopback(self) -> None:
        """
        With C{allowCleartext="never"}, even a client on 127.0.0.1 cannot send a
        password in the clear (interop: L{tests.test_interop_tls.PoplibTLSTests}).
        """
        self.assertRefused(Harness(allowCleartext="never").connect("127.0.0.1"))

    def test_loopbackPolicyRemoteClient(self) -> None:
        """
        Under the default policy, a client from another host cannot (in depth:
        L{tests.test_server_auth.CapabilityTests.test_remoteCleartext}).
        """
        self.assertRefused(Harness().connect(REMOTE))


class LineTests(SynchronousTestCase):
    """
    Over-long lines, NUL bytes and non-ASCII digits never run as commands.
    """

    def loggedIn(self, **options: object) -> ConnectedServer:
        """
        A session logged in as alice (one message).
        """
        connection = Harness(**options).connect()
        self.assertIn(b"+OK maildrop", connection.login(b"alice", b"secret"))
        return connection

    def test_overLongLineNotExecuted(self) -> None:
        """
        A 300-octet line whose tail spells QUIT (or DELE 1) gets one C{-ERR}, and none
        of it runs (over TCP: L{tests.test_server_loopback.LongLineTests}).
        """
        connection = self.loggedIn()
        for line in (
            b"A" * 296 + b"QUIT",
            b"A" * 251 + b"QUIT" + b"A" * 45,
            b"A" * 294 + b"DELE 1",
        ):
            self.assertEqual(len(line), 300)
            response = connection.send(line + b"\r\n")
            self.assertEqual(response, b"-ERR command line too long\r\n")
            self.assertFalse(connection.transport.disconnecting)
        self.assertEqual(connection.send(b"STAT\r\n"), b"+OK 1 22\r\n")

    def test_hugeLineInPieces(self) -> None:
        """
        A 20000-octet line fed in pieces, ending in C{QUIT}, gets one C{-ERR}.
        """
        connection = self.loggedIn()
        data = b"A" * 19996 + b"QUIT\r\n"
        response = b"".join(connection.send(data[i : i + 1000]) for i in range(0, len(data), 1000))
        self.assertEqual(response, b"-ERR command line too long\r\n")
        self.assertFalse(connection.transport.disconnecting)

    def test_saslLinesOverLimit(self) -> None:
        """
        An AUTH line and a SASL response line over 8192 octets are refused (in depth:
        L{tests.test_server_auth.ExchangeTests.test_responseTooLong}).
        """
        connection = Harness().connect()
        response = connection.send(b"AUTH PLAIN " + b"QUFB" * 2100 + b"\r\n")
        self.assertTrue(response.startswith(b"-ERR "), response)
        self.assertEqual(response.count(b"\r\n"), 1)
        self.assertEqual(connection.send(b"AUTH PLAIN\r\n"), b"+ \r\n")
        response = connection.send(b"QUFB" * 2100 + b"\r\n")
        self.assertEqual(response, b"-ERR SASL response too long\r\n")
        self.assertTrue(connection.send(b"CAPA\r\n").startswith(b"+OK "))

    def test_nulInUserName(self) -> None:
        """
        C{USER ali\\0ce} gets C{-ERR} and never logs in as C{ali} (nor C{alice}).
        """
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret", ali=b"secret")
        connection = Harness(checker).connect()
        response = connection.send(b"USER ali\0ce\r\nPASS secret\r\nSTAT\r\n")
        lines = responseLines(response)
        self.assertEqual(len(lines), 3, lines)
        self.assertTrue(all(line.startswith(b"-ERR ") for line in lines), lines)

    def test_messageNumbersPlainDigits(self) -> None:
        """
        C{+1}, C{1_0}, an Arabic-Indic digit, a superscript digit and a double space
        (all of which Python's C{int} or C{isdigit} would take) are refused, and no
        message is sent.
        """
        connection = self.loggedIn()
        for line in (
            b"RETR +1",
            b"RETR 1_0",
            "RETR \u0661".encode(),
            "RETR \u00b9".encode(),
            b"LIST  1",
            b"RETR \t1",
            b"DELE -1",
        ):
            response = connection.send(line + b"\r\n")
            self.assertTrue(response.startswith(b"-ERR "), (line, response))
            self.assertEqual(response.count(b"\r\n"), 1, line)
        self.assertEqual(connection.send(b"STAT\r\n"), b"+OK 1 22\r\n")
        self.assertTrue(connection.send(b"RETR 1\r\n").startswith(b"+OK 22 octets\r\n"))

    def test_responsesBoundedAndClean(self) -> None:
        """
        Whatever a client sends (bare CR or LF, CRLF-like escapes, long names), every
        response line is at most 512 octets with CRLF, holds no CR or LF, and nothing
        the client sent turns into a line of its own.
        """
        harness = Harness(apop=True, sasl=["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"])
        evil = [
            b"USER a\r+OK injected",
            b"USER a%0d%0a+OK injected",
            b"USER " + b"\xff" * 250,
            b"XYZZY\r+OK injected",
            b"+OK injected",
            b"LANG \r+OK injected",
            b"AUTH X\r+OK-injected",
            b"APOP a\r+OK injected 0123456789abcdef0123456789abcdef",
            b"AUTH PLAIN " + b64(b"\0a\r\n+OK injected\0b"),
            b"USER " + b"n" * 249,
            b"PASS " + b"p" * 249,
            b"CAPA",
            b"LANG",
            b"AUTH",
        ]
        output = harness.connect(REMOTE).greeting
        for line in evil:
            connection = harness.connect()
            output += connection.greeting + connection.send(line + b"\r\n")
            output += connection.send(b"USER alice\r\nPASS secret\r\n" + line + b"\r\nQUIT\r\n")
        for line in responseLines(output):
            self.assertLessEqual(len(line) + 2, 512, line)
            self.assertNotIn(b"\r", line)
            self.assertNotIn(b"\n", line)
            self.assertFalse(line.startswith(b"+OK inj"), line)
            self.assertNotIn(b"injected", line)


def penaltyOf(harness: Harness, connection: ConnectedServer, send: bytes) -> tuple[bytes, float]:
    """
    Send C{send}; return the final failed-login reply and how long it was held back,
    in steps of 1/8 s of the fake clock (exact in binary floating point).
    """
    output = connection.send(send)
    waited = 0.0
    while not re.search(rb"(^|\n)-ERR [^\n]*\r\n$", output):
        harness.clock.advance(0.125)
        waited += 0.125
        output += connection.read()
        assert waited < 100, output
    return output, waited


class CrowdTests(SynchronousTestCase):
    """
    With the default settings, a crowd of clients behind one address (a NAT gateway, an
    office, a proxy) logs in all at once, while a flood of idle or dribbling connections
    from one address is still held off (in depth: L{tests.test_limits}).
    """

    def crowdHarness(self, users: int) -> Harness:
        """
        A server with the default policy where C{users} users can log in.
        """
        checker = InMemoryUsernamePasswordDatabaseDontUse(
            **{f"user{i}": b"secret" for i in range(users)}
        )
        return Harness(checker=checker)

    def test_thousandAtOnceFromOneAddress(self) -> None:
        """
        A thousand clients connecting at once from one address all log in and finish,
        the last of them five seconds after connecting.
        """
        harness = self.crowdHarness(1000)
        crowd = [harness.connect(REMOTE_CROWD) for _ in range(1000)]
        answers = []
        for number, connection in enumerate(crowd):
            harness.clock.advance(0.005)
            answers.append(connection.send(f"USER user{number}\r\nPASS secret\r\n".encode()))
        self.assertEqual(
            [connection.transport.disconnecting for connection in crowd], [False] * 1000
        )
        self.assertEqual({answer.split(b"\r\n")[1][:12] for answer in answers}, {b"+OK maildrop"})
        for connection in crowd:
            self.assertEqual(connection.send(b"QUIT\r\n")[:3], b"+OK")

    def test_idleFloodHeldOff(self) -> None:
        """
        Connections from one address that stay silent are closed, the longest idle
        first, down to 50, as new connections arrive from that address; the new ones log
        in.
        """
        harness = self.crowdHarness(10)
        flood = [harness.connect(REMOTE_CROWD) for _ in range(200)]
        harness.clock.advance(10)
        newcomers = [harness.connect(REMOTE_CROWD) for _ in range(10)]
        self.assertEqual(
            [connection.transport.disconnecting for connection in flood],
            [True] * 150 + [False] * 50,
        )
        for number, connection in enumerate(newcomers):
            self.assertIn(
                b"+OK maildrop",
                connection.send(f"USER user{number}\r\nPASS secret\r\n".encode()),
            )

    def test_dribblingFloodHeldOff(self) -> None:
        """
        Connections from one address that dribble a command one octet a second count as
        idle: past 50 of them, the longest idle are closed.
        """
        harness = self.crowdHarness(1)
        flood = [harness.connect(REMOTE_CROWD) for _ in range(60)]
        for octet in b"USER user0 and more":
            harness.clock.advance(1)
            for connection in flood:
                connection.send(bytes([octet]))
        newcomer = harness.connect(REMOTE_CROWD)
        self.assertEqual(
            [connection.transport.disconnecting for connection in flood],
            [True] * 10 + [False] * 50,
        )
        self.assertFalse(newcomer.transport.disconnecting)


class GuessingTests(SynchronousTestCase):
    """
    Password guessing is slowed per client address and cut off per connection, and
    never tells a wrong password from an unknown user (in depth:
    L{tests.test_server_auth.GuessingTests}, L{tests.test_server.LoginTests}).
    """

    def test_penaltyDoubles(self) -> None:
        """
        Failures from one address are answered after 2, 4, 8, 15 and 15 seconds.
        """
        harness = Harness(failedLoginDelay=2.0, maxFailedLogins=100, allowCleartext="always")
        connection = harness.connect(REMOTE)
        delays = [penaltyOf(harness, connection, b"AUTH PLAIN " + b64(b"\0alice\0x") + b"\r\n")[1]]
        for _ in range(4):
            delays.append(penaltyOf(harness, connection, b"USER alice\r\nPASS x\r\n")[1])
        self.assertEqual(delays, [2.0, 4.0, 8.0, 15.0, 15.0])

    def test_otherAddressNotSlowed(self) -> None:
        """
        While one address waits out an 8-second penalty, a client from another address
        logs in at once and its own failure costs 2 seconds.
        """
        harness = Harness(failedLoginDelay=2.0, maxFailedLogins=100, allowCleartext="always")
        attacker = harness.connect("198.51.100.1")
        for _ in range(2):
            penaltyOf(harness, attacker, b"USER alice\r\nPASS x\r\n")
        self.assertEqual(attacker.login(b"alice", b"y"), b"+OK send PASS\r\n")
        third = harness.connect("198.51.100.3")
        _, delay = penaltyOf(harness, third, b"USER bob\r\nPASS x\r\n")
        self.assertEqual(delay, 2.0)
        other = harness.connect("198.51.100.2")
        self.assertIn(b"+OK maildrop", other.login(b"alice", b"secret"))
        self.assertEqual(attacker.read(), b"")
        harness.clock.advance(6)
        self.assertTrue(attacker.read().startswith(b"-ERR [AUTH] "))

    def test_unknownUserIndistinguishable(self) -> None:
        """
        For USER/PASS, APOP, SASL PLAIN and SCRAM-SHA-256, an unknown user and a wrong
        password get the same reply after the same delay.
        """
        harness = Harness(failedLoginDelay=2.0, apop=True, allowCleartext="always")
        addresses = (f"203.0.113.{n}" for n in range(1, 100))

        def attempt(mechanism: str, user: str) -> tuple[bytes, float]:
            connection = harness.connect(next(addresses))
            if mechanism == "USER":
                send = b"USER %s\r\nPASS wrong\r\n" % user.encode()
                output, delay = penaltyOf(harness, connection, send)
                return output.split(b"\r\n", 1)[1], delay
            if mechanism == "APOP":
                match = re.search(rb"<[^>]+>", connection.greeting)
                assert match is not None
                digest = hashlib.md5(match.group() + b"wrong").hexdigest().encode()
                return penaltyOf(harness, connection, b"APOP %s %s\r\n" % (user.encode(), digest))
            if mechanism == "PLAIN":
                line = b"AUTH PLAIN " + b64(b"\0" + user.encode() + b"\0wrong") + b"\r\n"
                return penaltyOf(harness, connection, line)
            status, _ = runExchange(connection, "SCRAM-SHA-256", user, "wrong")
            return penaltyOf(harness, connection, b"") if not status else (status, 0.0)

        for mechanism in ("USER", "APOP", "PLAIN", "SCRAM"):
            wrong = attempt(mechanism, "alice")
            unknown = attempt(mechanism, "mallory")
            self.assertEqual(wrong, unknown, mechanism)
            self.assertEqual(wrong[1], 2.0, mechanism)
            self.assertTrue(wrong[0].startswith(b"-ERR [AUTH] "), (mechanism, wrong))

    def test_threeFailuresClose(self) -> None:
        """
        The third failed login on a connection is answered, then the connection closes.
        """
        connection = Harness().connect()
        output = connection.send(b"USER alice\r\nPASS a\r\n" * 3 + b"USER alice\r\nPASS secret\r\n")
        self.assertEqual(output.count(b"-ERR [AUTH] "), 3)
        self.assertNotIn(b"maildrop", output)
        self.assertTrue(connection.transport.disconnecting)

    def test_tenBadCommandsClose(self) -> None:
        """
        The tenth bad command is answered, then the connection closes, running nothing
        after it.
        """
        connection = Harness().connect()
        output = connection.send(b"BOGUS\r\n" * 10 + b"USER alice\r\nPASS secret\r\n")
        self.assertEqual(output.count(b"-ERR "), 10)
        self.assertNotIn(b"+OK", output)
        self.assertTrue(connection.transport.disconnecting)


@implementer(ICredentialsChecker)
class AnyName:
    """
    A checker that accepts any user name with any password, to show that the realm
    alone keeps names away from the file system.
    """

    credentialInterfaces = (IUsernamePassword,)

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[bytes | tuple[()]]:
        """
        The user name, whatever it is.
        """
        return succeed(credentials.username)


def tree(root: str) -> list[str]:
    """
    Every path under C{root}.
    """

    def walk() -> Iterator[str]:
        for directory, names, files in os.walk(root):
            for name in names + files:
                yield os.path.relpath(os.path.join(directory, name), root)

    return sorted(walk())


class MaildropPathTests(SynchronousTestCase):
    """
    User names become Maildir paths only through L{mailboxPath}'s whitelist.
    """

    BAD_NAMES = ["..", "../../etc", "a/b", ".hidden", "/etc", "a\\..\\b", "x" * 300, "ali\0ce"]

    def test_realmRefusesUnsafeNames(self) -> None:
        """
        L{MaildirRealm} refuses unsafe names with L{PermanentFailure}, creating nothing.
        """
        base = os.path.abspath(self.mktemp())
        root = os.path.join(base, "mail")
        os.makedirs(root)
        realm = MaildirRealm(root)
        for name in self.BAD_NAMES:
            if "\\" in name:
                continue  # a backslash is an ordinary character on POSIX
            self.assertRaises(ValueError, mailboxPath, root, name)
            self.assertRaises(PermanentFailure, realm.requestAvatar, name, None, IMailbox)
        self.assertEqual(tree(base), ["mail"])

    def test_loginWithUnsafeNames(self) -> None:
        """
        Through the server, with a checker that accepts any name, each unsafe name gets
        C{-ERR} and nothing is created outside (or inside) the Maildir root.
        """
        base = os.path.abspath(self.mktemp())
        root = os.path.join(base, "mail")
        os.makedirs(root)
        factory = POP3ServerFactory(
            Portal(MaildirRealm(root), [AnyName()]),
            clock=Clock(),
            failedLoginDelay=0,
            maxFailedLogins=100,
        )
        for name in self.BAD_NAMES:
            connection = ConnectedServer(factory)
            line = b"AUTH PLAIN " + b64(b"\0" + name.encode() + b"\0pw") + b"\r\n"
            plain = connection.send(line)
            login = ConnectedServer(factory).login(name.encode(), b"pw")
            viaLogin = ConnectedServer(factory).send(
                b"AUTH LOGIN\r\n" + b64(name.encode()) + b"\r\n" + b64(b"pw") + b"\r\n"
            )
            self.assertTrue(plain.startswith(b"-ERR "), (name, plain))
            self.assertNotIn(b"+OK maildrop", login, name)
            self.assertNotIn(b"+OK maildrop", viaLogin, name)
            self.assertTrue(re.search(rb"-ERR \[(SYS/PERM|AUTH)\] ", viaLogin), (name, viaLogin))
        backslash = [p for p in tree(base) if "\\" in p]
        self.assertEqual([p for p in tree(base) if p not in backslash], ["mail"])
        self.assertEqual(sorted(os.listdir(os.path.dirname(base))), [os.path.basename(base)])
        # The same path does create a Maildir for a safe name.
        self.assertIn(b"+OK maildrop", ConnectedServer(factory).login(b"carol", b"pw"))
        self.assertIn(os.path.join("mail", "carol", "new"), tree(base))


class SASLTests(SynchronousTestCase):
    """
    Malformed or forged SASL exchanges are refused (in depth:
    L{tests.test_server_auth.MechanismTests}, L{tests.test_server_auth.ExchangeTests}).
    """

    def test_badBase64(self) -> None:
        """
        Invalid base64 as an initial response or as a continuation gets C{-ERR}.
        """
        connection = Harness().connect()
        self.assertTrue(connection.send(b"AUTH PLAIN !!!\r\n").startswith(b"-ERR "))
        self.assertEqual(connection.send(b"AUTH LOGIN\r\n"), b"+ VXNlcm5hbWU6\r\n")
        self.assertEqual(connection.send(b"a@b=c\r\n"), b"-ERR invalid base64 data\r\n")
        self.assertTrue(connection.send(b"NOOP\r\n").startswith(b"-ERR "))

    def test_cancel(self) -> None:
        """
        C{*} cancels an exchange with C{-ERR}; the session stays in AUTHORIZATION.
        """
        connection = Harness().connect()
        self.assertEqual(connection.send(b"AUTH PLAIN\r\n"), b"+ \r\n")
        self.assertEqual(connection.send(b"*\r\n"), b"-ERR authentication cancelled\r\n")
        self.assertTrue(connection.send(b"STAT\r\n").startswith(b"-ERR "))

    def test_plainOtherAuthzid(self) -> None:
        """
        PLAIN with alice's password but authorization identity bob does not log in.
        """
        connection = Harness().connect()
        response = connection.send(b"AUTH PLAIN " + b64(b"bob\0alice\0secret") + b"\r\n")
        self.assertTrue(response.startswith(b"-ERR [AUTH] "), response)
        self.assertTrue(connection.send(b"STAT\r\n").startswith(b"-ERR "))

    def test_cramMD5InitialResponse(self) -> None:
        """
        CRAM-MD5 with an initial response is refused without a challenge.
        """
        connection = Harness(sasl=["CRAM-MD5"]).connect()
        response = connection.send(b"AUTH CRAM-MD5 " + b64(b"alice 00") + b"\r\n")
        self.assertTrue(response.startswith(b"-ERR "), response)
        self.assertNotIn(b"+ ", response)

    def test_scramTamperedProof(self) -> None:
        """
        A SCRAM-SHA-256 client-final message with one bit of the proof flipped fails.
        """
        connection = Harness().connect()
        client = clientMechanism("SCRAM-SHA-256", "alice", "secret")
        first = client.initialResponse()
        assert first is not None
        serverFirst = connection.send(b"AUTH SCRAM-SHA-256 " + b64(first) + b"\r\n")
        final = client.respond(challenge(serverFirst.rstrip(b"\r\n")))
        head, _, proof = final.rpartition(b",p=")
        forged = bytearray(base64.b64decode(proof))
        forged[0] ^= 1
        response = connection.send(b64(head + b",p=" + base64.b64encode(bytes(forged))) + b"\r\n")
        self.assertTrue(response.startswith(b"-ERR [AUTH] "), response)
        self.assertTrue(connection.send(b"STAT\r\n").startswith(b"-ERR "))

    def test_scramChannelBindingRequired(self) -> None:
        """
        A SCRAM client asking for channel binding (C{p=}) is refused: the server offers
        no -PLUS mechanism, so there is nothing to bind to.
        """
        connection = Harness().connect()
        first = b"p=tls-unique,,n=alice,r=abcdefghijklmnop"
        response = connection.send(b"AUTH SCRAM-SHA-256 " + b64(first) + b"\r\n")
        self.assertTrue(response.startswith(b"-ERR "), response)
        self.assertTrue(connection.send(b"STAT\r\n").startswith(b"-ERR "))


class PrivilegeDropTests(TestCase):
    """
    C{twistd --uid/--gid} runs the server as an unprivileged user.
    """

    timeout = 60

    async def test_runsAsNobody(self) -> None:
        """
        Started as root with C{--uid nobody --gid nogroup}, the server process's real,
        effective and saved ids are nobody's, and it still answers on its port.
        """
        if os.getuid() != 0:
            self.skipTest("dropping privileges needs root")
        import grp
        import pwd

        try:
            uid = pwd.getpwnam("nobody").pw_uid
            gid = grp.getgrnam("nogroup").gr_gid
        except KeyError:
            self.skipTest("no user nobody or group nogroup")
        server = ServerProcess(self)
        root = os.path.join(server.directory, "mail")
        os.makedirs(root)
        server.start(
            [
                *(sys.executable, "-c", TWISTD),
                *("--nodaemon", "--pidfile=", "--logfile", server.logFile),
                *("--uid", str(uid), "--gid", str(gid)),
            ],
            [
                *("--listen", "tcp:0:interface=127.0.0.1", "--maildir-root", root),
                *("--auth", "memory:alice:secret"),
            ],
        )
        port = await server.waitUntilListening()

        def status() -> dict[str, list[int]]:
            assert server.process is not None
            ids: dict[str, list[int]] = {}
            # The drop happens right after listening: wait for it.
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with open(f"/proc/{server.process.pid}/status") as f:
                    for line in f:
                        key, _, value = line.partition(":")
                        if key in ("Uid", "Gid"):
                            ids[key] = [int(v) for v in value.split()]
                if ids["Uid"][0] == uid:
                    break
                time.sleep(0.05)
            return ids

        ids = await deferToThread(status)
        self.assertEqual(ids["Uid"][:3], [uid] * 3, server.log())
        self.assertEqual(ids["Gid"][:3], [gid] * 3, server.log())

        def serve() -> tuple[bytes, dict[str, list[str]]]:
            client = poplib.POP3("127.0.0.1", port, timeout=10)
            try:
                return client.getwelcome(), client.capa()
            finally:
                client.quit()

        welcome, capa = await deferToThread(serve)
        self.assertTrue(welcome.startswith(b"+OK "), welcome)
        self.assertIn("USER", capa)
