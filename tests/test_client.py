"""
Tests for L{pop3kit.client.POP3Client} against an in-memory fake server: the test plays
the server on a L{StringTransport}, writing answers byte for byte and reading exactly what
the client sent.  Edge cases live here (answers split anywhere, stuffed dots, C{-ERR} in
the middle of a pipeline, over-long lines, dropped connections, timeouts on a L{Clock},
SASL exchanges, STLS); sessions with pop3kit's own server over real sockets are in
L{tests.test_client_loopback}.
"""

from __future__ import annotations

import base64
import gc
import io
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone, ConnectionLost, TimeoutError
from twisted.internet.interfaces import ITLSTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pop3kit import _clientlogin
from pop3kit._clientlogin import bestMechanism
from pop3kit.client import (
    ClientState,
    CommandTooLong,
    InvalidState,
    MechanismUnavailable,
    POP3Client,
    ResponseTooLarge,
    ServerError,
    ServerProtocolError,
)
from pop3kit.core import (
    Capabilities,
)
from pop3kit.core._dotstuff import encodeMessage
from pop3kit.errors import AuthenticationFailed, ResponseCode

#: A message whose lines start with dots in every way that needs byte-stuffing.
DOTS = b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n. \r\n.\r\nend\r\n"

#: The RFC 1939 section 7 APOP example.
RFC1939_GREETING = b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"


@implementer(ITLSTransport)
class FakeTransport(StringTransport):
    """
    A L{StringTransport} that tells the protocol when it closes, and records STLS.

    @ivar tlsStarted: The context factories passed to C{startTLS}, and how much the
        client had written before.
    """

    def __init__(self) -> None:
        super().__init__()
        self.protocol: POP3Client | None = None
        self.tlsStarted: list[tuple[object, int]] = []
        self.lost = False

    def _lose(self, reason: Failure) -> None:
        if not self.lost:
            self.lost = True
            assert self.protocol is not None
            self.protocol.connectionLost(reason)

    def loseConnection(self) -> None:
        super().loseConnection()
        self._lose(Failure(ConnectionDone()))

    def abortConnection(self) -> None:
        super().abortConnection()
        self._lose(Failure(ConnectionLost("aborted")))

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def getTcpNoDelay(self) -> bool:
        return False

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def loseWriteConnection(self) -> None:
        pass

    def startTLS(self, contextFactory: object) -> None:
        self.tlsStarted.append((contextFactory, len(self.value())))


class FakeServerMixin:
    """
    Connect a L{POP3Client} to a fake transport and play the server.
    """

    def connect(
        self, greeting: bytes = b"+OK ready\r\n", capabilities: bytes | None = None, **kw: Any
    ) -> POP3Client:
        """
        Make a client, greet it; with C{capabilities}, also answer its CAPA with them.
        """
        self.clock = Clock()
        kw.setdefault("allowCleartextLogin", True)
        self.client = POP3Client(clock=self.clock, **kw)
        self.transport = FakeTransport()
        self.transport.protocol = self.client
        self.client.makeConnection(self.transport)
        if greeting:
            self.client.dataReceived(greeting)
        if capabilities is not None:
            d = self.client.capabilities()
            self.assertEqual(self.sent(), b"CAPA\r\n")  # type: ignore[attr-defined]
            self.server(b"+OK\r\n" + capabilities + b".\r\n")
            self.successResultOf(d)  # type: ignore[attr-defined]
        return self.client

    def sent(self) -> bytes:
        """
        What the client wrote since the last call.
        """
        data = bytes(self.transport.value())
        self.transport.clear()
        return data

    def server(self, data: bytes) -> None:
        """
        Deliver C{data} to the client as the server's answer.
        """
        self.client.dataReceived(data)


PIPELINING = b"USER\r\nUIDL\r\nTOP\r\nPIPELINING\r\n"


class GreetingTests(FakeServerMixin, SynchronousTestCase):
    """
    The greeting starts the session.
    """

    def test_greetingAndTimestamp(self) -> None:
        """
        The greeting text and the APOP timestamp in it are kept; the state becomes
        AUTHORIZATION.
        """
        client = self.connect(RFC1939_GREETING)
        self.assertEqual(client.greeting, b"POP3 server ready <1896.697170952@dbc.mtview.ca.us>")
        self.assertEqual(client.apopTimestamp, b"<1896.697170952@dbc.mtview.ca.us>")
        self.assertIs(client.state, ClientState.AUTHORIZATION)
        self.assertEqual(self.successResultOf(client.waitForGreeting()), client.greeting)

    def test_commandsWaitForGreeting(self) -> None:
        """
        A command asked for before the greeting is sent only after it.
        """
        client = self.connect(greeting=b"")
        d = client.capabilities()
        self.assertEqual(self.sent(), b"")
        self.server(b"+OK hi\r\n")
        self.assertEqual(self.sent(), b"CAPA\r\n")
        self.server(b"+OK\r\nTOP\r\n.\r\n")
        self.assertEqual(self.successResultOf(d), {"TOP": []})

    def test_emptyGreeting(self) -> None:
        """
        A bare C{+OK} greeting is a greeting.
        """
        client = self.connect(greeting=b"+OK\r\n")
        self.assertEqual(self.successResultOf(client.waitForGreeting()), b"")
        self.assertIs(client.state, ClientState.AUTHORIZATION)

    def test_lostBeforeGreeting(self) -> None:
        """
        A connection lost before the greeting fails a later wait for it, and leaves no
        unhandled error behind when nobody waited.
        """
        client = self.connect(greeting=b"")
        client.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(client.waitForGreeting(), ConnectionLost)
        self.flushLoggedErrors()
        gc.collect()
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_negativeGreeting(self) -> None:
        """
        A C{-ERR} greeting fails the wait with L{ServerError} and closes the connection.
        """
        client = self.connect(greeting=b"")
        d = client.waitForGreeting()
        self.server(b"-ERR [SYS/TEMP] go away\r\n")
        error = self.failureResultOf(d, ServerError).value
        self.assertIs(error.code, ResponseCode.SYS_TEMP)
        self.assertTrue(self.transport.lost)


class CommandTests(FakeServerMixin, SynchronousTestCase):
    """
    Each command's line and the parsing of its answer.
    """

    def test_stat(self) -> None:
        """
        STAT gives the count and size; text after them is ignored.
        """
        client = self.connect()
        d = client.stat()
        self.assertEqual(self.sent(), b"STAT\r\n")
        self.server(b"+OK 2 320 octets in all\r\n")
        self.assertEqual(self.successResultOf(d), (2, 320))

    def test_statMalformed(self) -> None:
        """
        A STAT answer without two numbers fails with L{ServerProtocolError} and the
        connection is closed.
        """
        client = self.connect()
        d = client.stat()
        self.server(b"+OK lots\r\n")
        self.failureResultOf(d, ServerProtocolError)
        self.assertTrue(self.transport.lost)

    def test_listings(self) -> None:
        """
        LIST and UIDL give dictionaries by message number; C{LIST n} and C{UIDL n} give
        one value.
        """
        client = self.connect()
        sizes, uids = client.listSizes(), client.listUids()
        self.server(b"+OK 2 messages\r\n1 120\r\n3 200 extra\r\n.\r\n")
        self.server(b"+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n3 QhdPYR:00WBw1Ph7x7\r\n.\r\n")
        self.assertEqual(self.successResultOf(sizes), {1: 120, 3: 200})
        self.assertEqual(
            self.successResultOf(uids), {1: "whqtswO00WBw418f9t5JxYwZ", 3: "QhdPYR:00WBw1Ph7x7"}
        )
        size, uid = client.listSize(3), client.listUid(3)
        self.server(b"+OK 3 200\r\n+OK 3 QhdPYR:00WBw1Ph7x7\r\n")
        self.assertEqual(self.sent(), b"LIST\r\nUIDL\r\nLIST 3\r\nUIDL 3\r\n")
        self.assertEqual(self.successResultOf(size), 200)
        self.assertEqual(self.successResultOf(uid), "QhdPYR:00WBw1Ph7x7")

    def test_duplicateUids(self) -> None:
        """
        Identical copies of a message may share a unique-id (RFC 1939 section 7).
        """
        client = self.connect()
        d = client.listUids()
        self.server(b"+OK\r\n1 same\r\n2 same\r\n.\r\n")
        self.assertEqual(self.successResultOf(d), {1: "same", 2: "same"})

    def test_badUid(self) -> None:
        """
        A unique-id with characters outside 0x21-0x7E is refused as a protocol error, and
        the connection is closed.
        """
        client = self.connect()
        d = client.listUids()
        self.server(b"+OK\r\n1 caf\xc3\xa9\r\n.\r\n")
        self.failureResultOf(d, ServerProtocolError)
        self.assertTrue(self.transport.lost)

    def test_capabilities(self) -> None:
        """
        CAPA is parsed into upper-case tags with their parameters, and cached.
        """
        client = self.connect()
        d = client.capabilities()
        self.server(b"+OK\r\ntop\r\nSASL SCRAM-SHA-256 PLAIN\r\nEXPIRE 0\r\n.\r\n")
        expected = {"TOP": [], "SASL": ["SCRAM-SHA-256", "PLAIN"], "EXPIRE": ["0"]}
        self.assertEqual(self.successResultOf(d), expected)
        self.assertEqual(self.sent(), b"CAPA\r\n")
        self.assertEqual(self.successResultOf(client.capabilities()), expected)
        self.assertEqual(self.sent(), b"")
        client.capabilities(refresh=True)
        self.assertEqual(self.sent(), b"CAPA\r\n")

    def test_noCapa(self) -> None:
        """
        A server without CAPA answers C{-ERR}: the capabilities are empty.
        """
        client = self.connect()
        d = client.capabilities()
        self.server(b"-ERR unknown command\r\n")
        self.assertEqual(self.successResultOf(d), {})

    def test_retrieve(self) -> None:
        """
        RETR gives the message un-stuffed, CRLF line ends, without the terminator.
        """
        client = self.connect()
        d = client.retrieve(1)
        self.assertEqual(self.sent(), b"RETR 1\r\n")
        self.server(b"+OK 52 octets\r\n" + encodeMessage(DOTS))
        self.assertEqual(self.successResultOf(d), DOTS)

    def test_retrieveSplitAtEveryByte(self) -> None:
        """
        However the answers are split in two, and when they arrive one byte at a time,
        RETR and the command after it give the same results.
        """
        wire = b"+OK\r\n" + encodeMessage(DOTS) + b"+OK 1 52\r\n"
        splits = [[wire[:i], wire[i:]] for i in range(len(wire) + 1)]
        splits.append([wire[i : i + 1] for i in range(len(wire))])
        for chunks in splits:
            client = self.connect(capabilities=PIPELINING)
            message, stat = client.retrieve(1), client.stat()
            for chunk in chunks:
                self.server(chunk)
            self.assertEqual(self.successResultOf(message), DOTS)
            self.assertEqual(self.successResultOf(stat), (1, 52))

    def test_top(self) -> None:
        """
        TOP sends the line count and gives the partial message.
        """
        client = self.connect()
        d = client.top(2, 0)
        self.assertEqual(self.sent(), b"TOP 2 0\r\n")
        self.server(b"+OK\r\nSubject: x\r\n\r\n.\r\n")
        self.assertEqual(self.successResultOf(d), b"Subject: x\r\n\r\n")

    def test_simpleCommands(self) -> None:
        """
        DELE, RSET, NOOP give L{None}, also for a bare C{+OK} without text.
        """
        client = self.connect()
        results = [client.delete(3), client.reset(), client.noop()]
        self.server(b"+OK\r\n+OK\r\n+OK\r\n")
        self.assertEqual(self.sent(), b"DELE 3\r\nRSET\r\nNOOP\r\n")
        self.assertEqual([self.successResultOf(d) for d in results], [None] * 3)

    def test_badArguments(self) -> None:
        """
        Message numbers below 1 and negative line counts are refused before sending.
        """
        client = self.connect()
        self.assertRaises(ValueError, client.retrieve, 0)
        self.assertRaises(ValueError, client.delete, -1)
        self.assertRaises(ValueError, client.top, 1, -1)
        self.assertEqual(self.sent(), b"")

    def test_longCommandRefused(self) -> None:
        """
        A login whose USER line would exceed 255 octets fails with L{CommandTooLong};
        nothing is sent.
        """
        client = self.connect()
        self.failureResultOf(client.login("a" * 300, "pw", mechanism="user"), CommandTooLong)
        self.assertEqual(self.sent(), b"")
        self.assertIs(client.state, ClientState.AUTHORIZATION)


class StreamingTests(FakeServerMixin, SynchronousTestCase):
    """
    RETR into a file or a consumer.
    """

    def test_file(self) -> None:
        """
        Streamed into a file, RETR gives the octet count and the file the message.
        """
        client = self.connect()
        f = io.BytesIO()
        d = client.retrieve(1, f)
        self.server(b"+OK\r\n" + encodeMessage(DOTS)[:10])
        self.assertEqual(f.getvalue(), DOTS[:10])
        self.server(encodeMessage(DOTS)[10:])
        self.assertEqual(self.successResultOf(d), len(DOTS))
        self.assertEqual(f.getvalue(), DOTS)

    def test_consumerBackpressure(self) -> None:
        """
        A consumer gets a streaming producer for the body; pausing it pauses reading
        from the server, and reading resumes when the body is done.
        """
        client = self.connect()
        consumer = StringTransport()
        d = client.retrieve(1, consumer)
        self.server(b"+OK\r\nfirst line\r\n")
        self.assertTrue(consumer.streaming)
        assert consumer.producer is not None
        consumer.producer.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")
        self.server(b"second line\r\n.\r\n")
        self.assertEqual(self.successResultOf(d), 25)
        self.assertEqual(consumer.value(), b"first line\r\nsecond line\r\n")
        self.assertIsNone(consumer.producer)
        self.assertEqual(self.transport.producerState, "producing")

    def test_consumerStops(self) -> None:
        """
        A consumer that stops its producer ends the session: the connection is closed.
        """
        client = self.connect()
        consumer = StringTransport()
        d = client.retrieve(1, consumer)
        self.server(b"+OK\r\nfirst line\r\n")
        assert consumer.producer is not None
        consumer.producer.stopProducing()
        self.failureResultOf(d)
        self.assertTrue(self.transport.lost)

    def test_errorWritesNothing(self) -> None:
        """
        C{-ERR} to RETR fails it and leaves the file untouched.
        """
        client = self.connect()
        f = io.BytesIO()
        d = client.retrieve(5, f)
        self.server(b"-ERR no such message\r\n")
        self.failureResultOf(d, ServerError)
        self.assertEqual(f.getvalue(), b"")

    def test_failingFile(self) -> None:
        """
        A file that cannot be written fails RETR with its error and closes the session.
        """

        class Full(io.BytesIO):
            def write(self, data: Any) -> int:
                raise OSError(28, "No space left on device")

        client = self.connect()
        d = client.retrieve(1, Full())
        self.server(b"+OK\r\nline\r\n")
        self.failureResultOf(d, OSError)
        self.assertTrue(self.transport.lost)

    def test_tooLargeInMemory(self) -> None:
        """
        A response over C{maxResponseSize} fails with L{ResponseTooLarge}; the rest of it
        is read and thrown away and the next command works.
        """
        client = self.connect(maxResponseSize=100, capabilities=PIPELINING)
        big, after = client.retrieve(1), client.noop()
        self.server(b"+OK\r\n" + b"x" * 80 + b"\r\n" + b"y" * 80 + b"\r\n.\r\n+OK\r\n")
        self.failureResultOf(big, ResponseTooLarge)
        self.successResultOf(after)
        self.assertFalse(self.transport.lost)


class ErrorTests(FakeServerMixin, SynchronousTestCase):
    """
    C{-ERR} answers, response codes, protocol violations.
    """

    def test_responseCodes(self) -> None:
        """
        C{-ERR [CODE] text} fails with L{ServerError} carrying the code, the raw code and
        the command.
        """
        client = self.connect()
        cases = [
            (b"[IN-USE] locked", ResponseCode.IN_USE, "IN-USE", "locked"),
            (b"[LOGIN-DELAY] wait", ResponseCode.LOGIN_DELAY, "LOGIN-DELAY", "wait"),
            (b"[SYS/TEMP/DISK] later", ResponseCode.SYS_TEMP, "SYS/TEMP/DISK", "later"),
            (b"[X-FOO] odd", None, "X-FOO", "odd"),
            (b"plain", None, None, "plain"),
        ]
        for wire, code, rawCode, text in cases:
            d = client.noop()
            self.server(b"-ERR " + wire + b"\r\n")
            error = self.failureResultOf(d, ServerError).value
            self.assertEqual(
                (error.code, error.rawCode, error.text, error.command),
                (code, rawCode, text, b"NOOP"),
            )
        self.assertIn(
            "NOOP: -ERR [IN-USE] locked", str(ServerError("locked", None, b"NOOP", "IN-USE"))
        )

    def test_passwordRedacted(self) -> None:
        """
        A refused PASS is reported without the password.
        """
        client = self.connect()
        d = client.login("alice", "hunter2", mechanism="user")
        self.server(b"+OK\r\n-ERR [AUTH] invalid\r\n")
        error = self.failureResultOf(d, ServerError).value
        self.assertEqual(error.command, b"PASS <redacted>")
        self.assertIs(error.code, ResponseCode.AUTH)
        self.assertNotIn("hunter2", str(error) + repr(error))

    def test_oversizeLine(self) -> None:
        """
        A status line longer than the limit closes the connection; everything pending
        fails with L{ServerProtocolError}.
        """
        client = self.connect(capabilities=PIPELINING)
        first, second = client.noop(), client.stat()
        self.server(b"+OK " + b"x" * 2000)
        self.failureResultOf(first, ServerProtocolError)
        self.failureResultOf(second, ServerProtocolError)
        self.assertTrue(self.transport.lost)
        self.assertIs(client.state, ClientState.CLOSED)

    def test_unsolicited(self) -> None:
        """
        A line the client did not ask for closes the connection.
        """
        self.connect()
        self.server(b"+OK I am talking to myself\r\n")
        self.assertTrue(self.transport.lost)


class UTF8Tests(FakeServerMixin, SynchronousTestCase):
    """
    The UTF8 command (RFC 6856).
    """

    def test_enable(self) -> None:
        """
        UTF8 is sent when announced, and the client remembers the mode.
        """
        client = self.connect(capabilities=b"UTF8 USER\r\n")
        d = client.enableUTF8()
        self.assertEqual(self.sent(), b"UTF8\r\n")
        self.server(b"+OK UTF8 enabled\r\n")
        self.successResultOf(d)
        self.assertTrue(client.utf8)

    def test_notAnnounced(self) -> None:
        """
        Without C{UTF8} in the capabilities nothing is sent.
        """
        client = self.connect(capabilities=b"USER\r\n")
        self.failureResultOf(client.enableUTF8(), InvalidState)
        self.assertEqual(self.sent(), b"")
        self.assertFalse(client.utf8)

    def test_afterLogin(self) -> None:
        """
        UTF8 is refused locally in TRANSACTION.
        """
        client = self.connect(capabilities=PIPELINING + b"UTF8\r\n")
        login = client.login("alice", "secret")
        self.server(b"+OK\r\n+OK\r\n+OK 0 0\r\n")
        self.assertEqual(self.successResultOf(login), (0, 0))
        self.sent()
        self.failureResultOf(client.enableUTF8(), InvalidState)


class PipeliningTests(FakeServerMixin, SynchronousTestCase):
    """
    Many commands in flight only when the server announces PIPELINING.
    """

    def test_oneAtATime(self) -> None:
        """
        Without PIPELINING, each command is sent after the previous answer.
        """
        client = self.connect(capabilities=b"USER\r\n")
        first, second = client.noop(), client.stat()
        self.assertEqual(self.sent(), b"NOOP\r\n")
        self.server(b"+OK\r\n")
        self.assertEqual(self.sent(), b"STAT\r\n")
        self.server(b"+OK 0 0\r\n")
        self.successResultOf(first)
        self.assertEqual(self.successResultOf(second), (0, 0))

    def test_unknownCapabilities(self) -> None:
        """
        Until CAPA is known, commands go one at a time.
        """
        client = self.connect()
        client.noop()
        client.noop()
        self.assertEqual(self.sent(), b"NOOP\r\n")

    def test_pipelined(self) -> None:
        """
        With PIPELINING, queued commands go out at once and answers are matched in order,
        a C{-ERR} in the middle failing only its own command.
        """
        client = self.connect(capabilities=PIPELINING)
        first, second, size, noop = (
            client.retrieve(1),
            client.retrieve(2),
            client.listSize(3),
            client.noop(),
        )
        self.assertEqual(self.sent(), b"RETR 1\r\nRETR 2\r\nLIST 3\r\nNOOP\r\n")
        self.server(b"+OK\r\none\r\n.\r\n-ERR [SYS/TEMP] gone\r\n+OK 3 99\r\n+OK\r\n")
        self.assertEqual(self.successResultOf(first), b"one\r\n")
        self.assertIs(self.failureResultOf(second, ServerError).value.code, ResponseCode.SYS_TEMP)
        self.assertEqual(self.successResultOf(size), 99)
        self.assertIsNone(self.successResultOf(noop))

    def test_window(self) -> None:
        """
        No more than C{maxPipeline} commands are in flight.
        """
        client = self.connect(capabilities=PIPELINING, maxPipeline=2)
        for _ in range(5):
            client.noop()
        self.assertEqual(self.sent(), b"NOOP\r\n" * 2)
        self.server(b"+OK\r\n")
        self.assertEqual(self.sent(), b"NOOP\r\n")


class ConnectionLostTests(FakeServerMixin, SynchronousTestCase):
    """
    A connection that goes away fails everything that waits.
    """

    def test_everyPendingFails(self) -> None:
        """
        Commands in flight, half-received and still queued all fail with
        L{ConnectionLost} naming their command.
        """
        client = self.connect(capabilities=PIPELINING, maxPipeline=2)
        f = io.BytesIO()
        results = [client.retrieve(1, f), client.stat(), client.noop()]
        self.server(b"+OK\r\npartial")
        client.connectionLost(Failure(ConnectionDone()))
        errors = [self.failureResultOf(d, ConnectionLost).value for d in results]
        self.assertIn("RETR 1", str(errors[0]))
        self.assertIn("NOOP", str(errors[2]))
        self.assertIs(client.state, ClientState.CLOSED)

    def test_afterClose(self) -> None:
        """
        Commands asked for after the connection closed fail at once.
        """
        client = self.connect()
        client.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(client.noop(), ConnectionLost)

    def test_abort(self) -> None:
        """
        L{POP3Client.abort} closes without QUIT.
        """
        client = self.connect()
        d = client.noop()
        self.sent()
        client.abort()
        self.assertEqual(self.sent(), b"")
        self.failureResultOf(d, ConnectionLost)


class TimeoutTests(FakeServerMixin, SynchronousTestCase):
    """
    A silent server is given up on after the timeout.
    """

    def test_silentServer(self) -> None:
        """
        With no answer for C{timeout} seconds the connection is aborted and the command
        fails with L{TimeoutError}.
        """
        client = self.connect(timeout=30)
        d = client.stat()
        self.clock.advance(29)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.assertIn("STAT", str(self.failureResultOf(d, TimeoutError).value))
        self.assertTrue(self.transport.lost)

    def test_noGreeting(self) -> None:
        """
        Waiting for the greeting times out too.
        """
        client = self.connect(greeting=b"", timeout=30)
        d = client.waitForGreeting()
        self.clock.advance(30)
        self.failureResultOf(d, TimeoutError)

    def test_dataResetsTimer(self) -> None:
        """
        A slow but steady answer does not time out: every chunk restarts the timer (the
        body's minimum rate, which this answer is below, is switched off).
        """
        client = self.connect(timeout=30, minimumRate=0)
        d = client.retrieve(1)
        self.server(b"+OK\r\n")
        for _ in range(10):
            self.clock.advance(20)
            self.server(b"line\r\n")
        self.server(b".\r\n")
        self.assertEqual(self.successResultOf(d), b"line\r\n" * 10)

    def test_idleIsNotTimeout(self) -> None:
        """
        With nothing asked, a silent server is no reason to close.
        """
        client = self.connect(timeout=30)
        d = client.noop()
        self.server(b"+OK\r\n")
        self.successResultOf(d)
        self.clock.advance(3600)
        self.assertFalse(self.transport.lost)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_pausedByConsumer(self) -> None:
        """
        While a consumer holds reading paused, the server's silence is not its fault.
        """
        client = self.connect(timeout=30)
        consumer = StringTransport()
        d = client.retrieve(1, consumer)
        self.server(b"+OK\r\nline\r\n")
        assert consumer.producer is not None
        consumer.producer.pauseProducing()
        self.clock.advance(300)
        self.assertFalse(self.transport.lost)
        consumer.producer.resumeProducing()
        self.clock.advance(30)
        self.failureResultOf(d, TimeoutError)


class QuitTests(FakeServerMixin, SynchronousTestCase):
    """
    QUIT ends the session; its outcome says whether deletions were committed.
    """

    def test_quit(self) -> None:
        """
        After C{+OK} the client closes the connection, and C{quit} fires once closed.
        """
        client = self.connect()
        d = client.quit()
        self.assertEqual(self.sent(), b"QUIT\r\n")
        self.assertIs(client.state, ClientState.QUITTING)
        self.server(b"+OK bye\r\n")
        self.assertIsNone(self.successResultOf(d))
        self.assertTrue(self.transport.lost)
        self.assertIs(client.state, ClientState.CLOSED)

    def test_updateFailed(self) -> None:
        """
        C{-ERR} to QUIT fails with L{ServerError}.
        """
        client = self.connect()
        d = client.quit()
        self.server(b"-ERR [SYS/TEMP] some deleted messages not removed\r\n")
        self.assertIs(self.failureResultOf(d, ServerError).value.code, ResponseCode.SYS_TEMP)

    def test_droppedBeforeAnswer(self) -> None:
        """
        A connection lost before the answer to QUIT fails it with L{ConnectionLost}:
        nothing may have been deleted.
        """
        client = self.connect()
        d = client.quit()
        client.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(d, ConnectionLost)

    def test_nothingAfterQuit(self) -> None:
        """
        Commands after C{quit} fail with L{InvalidState} and are not sent.
        """
        client = self.connect()
        client.quit()
        self.sent()
        self.failureResultOf(client.noop(), InvalidState)
        self.assertEqual(self.sent(), b"")


class LoginTests(FakeServerMixin, SynchronousTestCase):
    """
    USER/PASS and APOP, the choice of method and the state they lead to.
    """

    def test_userPass(self) -> None:
        """
        Without pipelining, USER, then PASS, then STAT, each after the previous answer;
        the session is then in TRANSACTION with a listing.
        """
        client = self.connect(capabilities=b"USER\r\n")
        d = client.login("alice", "pass word")
        self.assertEqual(self.sent(), b"USER alice\r\n")
        self.assertIs(client.state, ClientState.AUTHENTICATING)
        self.server(b"+OK\r\n")
        self.assertEqual(self.sent(), b"PASS pass word\r\n")
        self.server(b"+OK logged in\r\n")
        self.assertEqual(self.sent(), b"STAT\r\n")
        self.server(b"+OK 2 300\r\n")
        self.assertEqual(self.successResultOf(d), (2, 300))
        self.assertIs(client.state, ClientState.TRANSACTION)
        assert client.maildrop is not None
        self.assertEqual((client.maildrop.count, client.maildrop.octets), (2, 300))

    def test_userPassPipelined(self) -> None:
        """
        With pipelining, USER and PASS go out together.
        """
        client = self.connect(capabilities=PIPELINING)
        d = client.login("alice", "secret")
        self.assertEqual(self.sent(), b"USER alice\r\nPASS secret\r\n")
        self.server(b"+OK\r\n+OK\r\n+OK 0 0\r\n")
        self.assertEqual(self.successResultOf(d), (0, 0))

    def test_refused(self) -> None:
        """
        A refused login fails with the server's error and returns to AUTHORIZATION.
        """
        client = self.connect(capabilities=PIPELINING)
        d = client.login("alice", "wrong")
        self.server(b"+OK\r\n-ERR [AUTH] no\r\n")
        self.failureResultOf(d, ServerError)
        self.assertIs(client.state, ClientState.AUTHORIZATION)
        self.assertIsNone(client.maildrop)

    def test_userRefusedPipelined(self) -> None:
        """
        When USER is refused in a pipeline, the USER error is reported.
        """
        client = self.connect(capabilities=PIPELINING)
        d = client.login("mallory", "x")
        self.server(b"-ERR [AUTH] who?\r\n-ERR no USER\r\n")
        self.assertEqual(self.failureResultOf(d, ServerError).value.command, b"USER mallory")
        self.assertIs(client.state, ClientState.AUTHORIZATION)

    def test_loginTwice(self) -> None:
        """
        Logging in again in TRANSACTION fails with L{InvalidState}.
        """
        client = self.connect(capabilities=PIPELINING)
        first = client.login("alice", "secret")
        self.server(b"+OK\r\n+OK\r\n+OK 0 0\r\n")
        self.assertEqual(self.successResultOf(first), (0, 0))
        self.failureResultOf(client.login("alice", "secret"), InvalidState)

    def test_cleartextRefused(self) -> None:
        """
        Without TLS, USER/PASS is refused unless clear-text logins are allowed; nothing
        is sent.
        """
        client = self.connect(capabilities=b"USER\r\n", allowCleartextLogin=False)
        self.failureResultOf(client.login("alice", "secret"), MechanismUnavailable)
        self.failureResultOf(
            client.login("alice", "secret", mechanism="user"), MechanismUnavailable
        )
        self.assertEqual(self.sent(), b"")

    def test_apop(self) -> None:
        """
        APOP sends the name and the lower-case MD5 of timestamp and secret (the RFC 1939
        example); the digest is redacted in errors.
        """
        client = self.connect(RFC1939_GREETING, allowCleartextLogin=False)
        d = client.login("mrose", "tanstaaf", mechanism="APOP")
        self.assertEqual(self.sent(), b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n")
        self.server(b"-ERR [AUTH] no\r\n")
        self.assertEqual(
            self.failureResultOf(d, ServerError).value.command, b"APOP mrose <redacted>"
        )

    def test_apopWithoutTimestamp(self) -> None:
        """
        APOP needs a timestamp in the greeting.
        """
        client = self.connect()
        self.failureResultOf(client.login("a", "b", mechanism="apop"), MechanismUnavailable)

    def test_noCapaMeansUser(self) -> None:
        """
        A server without CAPA gets USER/PASS.
        """
        client = self.connect()
        client.login("alice", "secret")
        self.server(b"-ERR what?\r\n")
        self.assertEqual(self.sent(), b"CAPA\r\nUSER alice\r\n")

    def test_bestMechanism(self) -> None:
        """
        The best SASL mechanism both sides know wins; clear-text ones are skipped
        without TLS.
        """
        preference = ("SCRAM-SHA-256", "CRAM-MD5", "PLAIN")

        def best(lines: list[bytes], passwordsAllowed: bool = True) -> str:
            announced = Capabilities.fromLines(lines)
            return bestMechanism(
                announced, passwordsAllowed=passwordsAllowed, preference=preference
            )

        self.assertEqual(best([b"SASL PLAIN CRAM-MD5 SCRAM-SHA-256", b"USER"]), "scram-sha-256")
        self.assertEqual(best([b"SASL PLAIN", b"USER"]), "plain")
        self.assertEqual(best([b"SASL PLAIN CRAM-MD5"], False), "cram-md5")
        self.assertRaises(MechanismUnavailable, best, [b"SASL PLAIN"], False)

    def test_unknownMechanism(self) -> None:
        """
        An unknown mechanism name fails with L{MechanismUnavailable}.
        """
        client = self.connect()
        self.failureResultOf(client.login("a", "b", mechanism="kerberos"), MechanismUnavailable)


class FakeMechanism:
    """
    A SASL mechanism that answers from a script.
    """

    def __init__(
        self,
        name: str = "X-TEST",
        initial: bytes | None = None,
        responses: list[bytes] | None = None,
        completeAtEnd: bool = True,
    ) -> None:
        self.name = name
        self.initial = initial
        self.responses = list(responses or [])
        self.challenges: list[bytes] = []
        self.completeAtEnd = completeAtEnd

    def initialResponse(self) -> bytes | None:
        return self.initial

    def respond(self, challenge: bytes) -> bytes:
        self.challenges.append(challenge)
        response = self.responses.pop(0)
        if response == b"FAIL":
            raise AuthenticationFailed("bad server signature")
        return response

    @property
    def complete(self) -> bool:
        return self.completeAtEnd and not self.responses


class AuthenticateTests(FakeServerMixin, SynchronousTestCase):
    """
    SASL exchanges (RFC 5034).
    """

    def test_initialResponse(self) -> None:
        """
        A short initial response goes on the AUTH line, base64-encoded.
        """
        client = self.connect(capabilities=PIPELINING)
        d = client.authenticate(FakeMechanism("PLAIN", b"\0alice\0secret"))
        self.assertEqual(self.sent(), b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
        self.server(b"+OK\r\n")
        self.successResultOf(d)
        self.assertIs(client.state, ClientState.TRANSACTION)

    def test_emptyInitialResponse(self) -> None:
        """
        An empty initial response is sent as C{=}.
        """
        client = self.connect()
        client.authenticate(FakeMechanism(initial=b""))
        self.assertEqual(self.sent(), b"AUTH X-TEST =\r\n")

    def test_longInitialResponse(self) -> None:
        """
        An initial response that would make the AUTH line longer than 255 octets follows
        the server's empty challenge instead.
        """
        client = self.connect()
        initial = b"u" * 300
        d = client.authenticate(FakeMechanism(initial=initial))
        self.assertEqual(self.sent(), b"AUTH X-TEST\r\n")
        self.server(b"+ \r\n")
        self.assertEqual(self.sent(), base64.b64encode(initial) + b"\r\n")
        self.server(b"+OK\r\n")
        self.successResultOf(d)

    def test_serverFirst(self) -> None:
        """
        A server-first mechanism gets no initial response; challenges are decoded, bare
        C{+} is an empty challenge, and an empty response is an empty line.
        """
        client = self.connect()
        mechanism = FakeMechanism("CRAM-MD5", None, [b"alice digest", b""])
        d = client.authenticate(mechanism)
        self.assertEqual(self.sent(), b"AUTH CRAM-MD5\r\n")
        self.server(b"+ PDEyMzRAZXhhbXBsZT4=\r\n")
        self.assertEqual(self.sent(), base64.b64encode(b"alice digest") + b"\r\n")
        self.server(b"+\r\n")
        self.assertEqual(self.sent(), b"\r\n")
        self.server(b"+OK\r\n")
        self.successResultOf(d)
        self.assertEqual(mechanism.challenges, [b"<1234@example>", b""])

    def test_undecodableChallenge(self) -> None:
        """
        A challenge that is not base64 cancels with C{*}; the login fails and the session
        stays in AUTHORIZATION.
        """
        client = self.connect()
        d = client.authenticate(FakeMechanism(responses=[b"x"]))
        self.sent()
        self.server(b"+ !!!\r\n")
        self.assertEqual(self.sent(), b"*\r\n")
        self.server(b"-ERR cancelled\r\n")
        self.failureResultOf(d, ServerProtocolError)
        self.assertIs(client.state, ClientState.AUTHORIZATION)
        self.assertFalse(self.transport.lost)

    def test_mechanismRefusesServer(self) -> None:
        """
        A mechanism that finds the server's proof wrong cancels with C{*} and the login
        fails with its L{AuthenticationFailed}.
        """
        client = self.connect()
        d = client.authenticate(FakeMechanism(initial=b"n,,n=a,r=x", responses=[b"p", b"FAIL"]))
        self.sent()
        self.server(b"+ cj14eXo=\r\n")
        self.sent()
        self.server(b"+ dj1iYWQ=\r\n")
        self.assertEqual(self.sent(), b"*\r\n")
        self.server(b"-ERR authentication cancelled\r\n")
        self.assertIn("signature", str(self.failureResultOf(d, AuthenticationFailed).value))

    def test_unprovedSuccess(self) -> None:
        """
        C{+OK} before the mechanism is complete is not trusted: the login fails and the
        connection is closed.
        """
        client = self.connect()
        d = client.authenticate(FakeMechanism(initial=b"i", responses=[b"p"]))
        self.server(b"+OK\r\n")
        self.failureResultOf(d, AuthenticationFailed)
        self.assertTrue(self.transport.lost)

    def test_exclusive(self) -> None:
        """
        Even with pipelining, nothing is sent during a SASL exchange.
        """
        client = self.connect(capabilities=PIPELINING)
        client.noop()
        client.authenticate(FakeMechanism(initial=b"i"))
        client.stat()
        self.assertEqual(self.sent(), b"NOOP\r\n")
        self.server(b"+OK\r\n")
        self.assertEqual(self.sent(), b"AUTH X-TEST aQ==\r\n")
        self.server(b"+OK\r\n")
        self.assertEqual(self.sent(), b"STAT\r\n")

    def test_saslModuleMissing(self) -> None:
        """
        Without C{pop3kit.sasl}, SASL logins fail with L{MechanismUnavailable}.
        """
        self.patch(_clientlogin, "saslMechanism", _noSASL)
        client = self.connect(capabilities=b"SASL PLAIN\r\n")
        self.failureResultOf(client.login("a", "b", mechanism="plain"), MechanismUnavailable)


def _noSASL(*args: object) -> object:
    raise MechanismUnavailable("SASL PLAIN needs pop3kit.sasl")


class STLSTests(FakeServerMixin, SynchronousTestCase):
    """
    STLS on an in-memory transport.
    """

    def test_startTLS(self) -> None:
        """
        STLS goes alone; after C{+OK} the handshake starts, plaintext that followed the
        C{+OK} is discarded, nothing is sent until the handshake is done, and then the
        capabilities are asked for again.
        """
        client = self.connect(capabilities=PIPELINING + b"STLS\r\n")
        options = object()
        d = client.startTLS(options)  # type: ignore[arg-type]
        noop = client.noop()
        self.assertEqual(self.sent(), b"STLS\r\n")
        self.server(b"+OK begin TLS\r\n+OK injected\r\n")
        self.assertEqual(self.transport.tlsStarted, [(options, 0)])
        self.assertIs(client.state, ClientState.STARTING_TLS)
        self.assertNoResult(d)
        self.assertNoResult(noop)
        self.assertEqual(self.sent(), b"")
        client.handshakeCompleted()
        self.successResultOf(d)
        self.assertTrue(client.isSecure)
        self.assertEqual(self.sent(), b"NOOP\r\n")
        self.server(b"+OK\r\n")
        self.successResultOf(noop)
        client.capabilities()
        self.assertEqual(self.sent(), b"CAPA\r\n")

    def test_refused(self) -> None:
        """
        C{-ERR} to STLS fails with L{ServerError} and leaves the session usable in the
        clear.
        """
        client = self.connect()
        d = client.startTLS(object())  # type: ignore[arg-type]
        self.server(b"-ERR not available\r\n")
        self.failureResultOf(d, ServerError)
        self.assertIs(client.state, ClientState.AUTHORIZATION)
        self.assertFalse(client.isSecure)
        client.noop()
        self.assertEqual(self.sent(), b"STLS\r\nNOOP\r\n")

    def test_handshakeTimeout(self) -> None:
        """
        A handshake that never completes times out.
        """
        client = self.connect(timeout=10)
        d = client.startTLS(object())  # type: ignore[arg-type]
        self.server(b"+OK\r\n")
        self.clock.advance(10)
        self.failureResultOf(d, TimeoutError)

    def test_twice(self) -> None:
        """
        STLS inside TLS, or after login, fails with L{InvalidState}.
        """
        client = self.connect()
        client.startTLS(object())  # type: ignore[arg-type]
        self.server(b"+OK\r\n")
        client.handshakeCompleted()
        self.failureResultOf(client.startTLS(object()), InvalidState)  # type: ignore[arg-type]

    def test_cleartextAllowedAfterTLS(self) -> None:
        """
        After the handshake, USER/PASS is allowed even when clear-text logins are not.
        """
        client = self.connect(allowCleartextLogin=False)
        client.startTLS(object())  # type: ignore[arg-type]
        self.server(b"+OK\r\n")
        client.handshakeCompleted()
        self.sent()
        client.login("alice", "secret", mechanism="user")
        self.assertEqual(self.sent(), b"USER alice\r\n")


class SASLMechanismTests(FakeServerMixin, SynchronousTestCase):
    """
    C{login} with the mechanisms of L{pop3kit.sasl}.
    """

    def test_cramMD5(self) -> None:
        """
        CRAM-MD5 answers the RFC 2195 example challenge with the RFC's digest.
        """
        client = self.connect(capabilities=b"SASL CRAM-MD5 PLAIN\r\n", allowCleartextLogin=False)
        d = client.login("tim", "tanstaaftanstaaf")
        self.assertEqual(self.sent(), b"AUTH CRAM-MD5\r\n")
        challenge = base64.b64encode(b"<1896.697170952@postoffice.reston.mci.net>")
        self.server(b"+ " + challenge + b"\r\n")
        self.assertEqual(base64.b64decode(self.sent()), b"tim b913a602c7eda7a495b4e6e7334d3890")
        self.server(b"+OK\r\n")
        self.assertEqual(self.sent(), b"STAT\r\n")
        self.server(b"+OK 1 10\r\n")
        self.assertEqual(self.successResultOf(d), (1, 10))

    def test_plainAuthzid(self) -> None:
        """
        PLAIN sends authzid, user name and password on the AUTH line.
        """
        client = self.connect(capabilities=b"SASL PLAIN\r\n")
        client.login("alice", "secret", authzid="shared")
        self.assertEqual(
            self.sent(), b"AUTH PLAIN " + base64.b64encode(b"shared\0alice\0secret") + b"\r\n"
        )

    def test_scramUnprovedServer(self) -> None:
        """
        A server that answers SCRAM's client-first with C{+OK} is not trusted.
        """
        client = self.connect(capabilities=b"SASL SCRAM-SHA-256\r\n", allowCleartextLogin=False)
        d = client.login("alice", "secret")
        self.assertTrue(self.sent().startswith(b"AUTH SCRAM-SHA-256 "))
        self.server(b"+OK come in\r\n")
        self.failureResultOf(d, AuthenticationFailed)
        self.assertTrue(self.transport.lost)


class CancelTests(FakeServerMixin, SynchronousTestCase):
    """
    Cancelling the L{Deferred} of a command.
    """

    def test_queued(self) -> None:
        """
        A command not sent yet is dropped.
        """
        client = self.connect()
        first, second = client.noop(), client.stat()
        second.cancel()
        self.failureResultOf(second, CancelledError)
        self.server(b"+OK\r\n")
        self.successResultOf(first)
        self.assertEqual(self.sent(), b"NOOP\r\n")

    def test_inFlight(self) -> None:
        """
        The answer to a command already sent is read and ignored; the session goes on.
        """
        client = self.connect(capabilities=PIPELINING)
        first, second = client.retrieve(1), client.noop()
        first.cancel()
        self.server(b"+OK\r\nbody\r\n.\r\n+OK\r\n")
        self.failureResultOf(first, CancelledError)
        self.successResultOf(second)
        self.assertFalse(self.transport.lost)

    def test_beforeTransfer(self) -> None:
        """
        A streamed RETR cancelled before its answer writes nothing to the file.
        """
        client = self.connect()
        f = io.BytesIO()
        d = client.retrieve(1, f)
        d.cancel()
        self.server(b"+OK\r\nbody\r\n.\r\n")
        self.failureResultOf(d, CancelledError)
        self.assertEqual(f.getvalue(), b"")
        self.assertFalse(self.transport.lost)

    def test_duringTransfer(self) -> None:
        """
        A streamed RETR cancelled half-way closes the connection and lets go of the
        consumer.
        """
        client = self.connect()
        consumer = StringTransport()
        d = client.retrieve(1, consumer)
        self.server(b"+OK\r\nfirst\r\n")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(self.transport.lost)
        self.assertIsNone(consumer.producer)
        self.assertEqual(consumer.value(), b"first\r\n")
