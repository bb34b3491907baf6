"""
The client holds against servers that misbehave: a server that answers C{+OK} to STLS and
never starts the handshake, trickles a greeting, a status line or a message one octet a
second, or sends a listing without end.  An inactivity timeout catches none of these; the
deadline of each answer, the minimum rate of a body and the caps on listings do, and
C{pop3kit fetch} then ends with exit status 75 and deletes nothing.

The servers are scripted (L{ScriptedServer}), joined to the client in memory
(L{pop3kit.testing.MemoryNetwork}) with a fake clock, and once over real loopback.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import Clock
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit import _fetch
from pop3kit._exits import ExitError, ExitStatus
from pop3kit._fetch import ConnectOptions, FetchOptions, parseURL
from pop3kit.client import (
    ListingTooLarge,
    POP3Client,
    ServerStalled,
    connect,
    tlsOptions,
)
from pop3kit.testing import MemoryNetwork
from tests._fetchtesting import exitErrorOf
from tests.test_client import FakeTransport
from tests.test_fetch import runNow

MESSAGE = b"Subject: hello\r\n\r\nhello\r\n"

#: A handler of one command: given the server and the command's argument, it answers.
Handler = Callable[["ScriptedServer", bytes], None]


class ScriptedServer(LineReceiver):
    """
    A POP3 server that answers as scripted: sensibly by default (one message, any
    password), and as each test's handlers say for the commands they name.

    @ivar commands: The command lines received, in order.
    @ivar swallowing: Whether everything received is ignored (after STLS, say).
    """

    delimiter = b"\r\n"

    def __init__(self, factory: ScriptedFactory) -> None:
        self.factory = factory
        self.commands: list[bytes] = []
        self.swallowing = False
        self._calls: list[IDelayedCall] = []

    def connectionMade(self) -> None:
        self.factory.servers.append(self)
        if self.factory.trickleGreeting:
            self.trickle(self.factory.greeting)
        else:
            self.transport.write(self.factory.greeting)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure | None = None) -> None:
        for call in self._calls:
            if call.active():
                call.cancel()

    def dataReceived(self, data: bytes) -> None:
        if not self.swallowing:
            super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        self.commands.append(line)
        verb, _, argument = line.partition(b" ")
        verb = verb.upper()
        handler = self.factory.handlers.get(verb) or DEFAULT_HANDLERS.get(verb)
        if handler is None:
            self.send(b"-ERR unknown command\r\n")
        else:
            handler(self, argument)

    def send(self, data: bytes) -> None:
        """
        Write C{data} at once.
        """
        if self.transport is not None:
            self.transport.write(data)

    def later(self, delay: float, call: Callable[[], None]) -> None:
        """
        Run C{call} after C{delay} seconds, unless the connection is lost first.
        """
        self._calls.append(self.factory.clock.callLater(delay, call))

    def trickle(self, data: bytes, interval: float = 1.0) -> None:
        """
        Write C{data} one octet every C{interval} seconds.
        """
        if data:
            self.send(data[:1])
            self.later(interval, lambda: self.trickle(data[1:], interval))

    def stream(
        self, chunk: Callable[[int], bytes], interval: float, count: int, index: int = 0
    ) -> None:
        """
        Write C{chunk(0)}, C{chunk(1)}, ... one every C{interval} seconds, C{count} of
        them (then fall silent, so that a client without caps fails the test rather than
        running it forever).
        """
        if index < count:
            self.send(chunk(index))
            self.later(interval, lambda: self.stream(chunk, interval, count, index + 1))


class ScriptedFactory(ServerFactory):
    """
    Makes L{ScriptedServer}s.

    @ivar servers: Every server made, oldest first.
    """

    def __init__(
        self,
        clock: IReactorTime,
        handlers: dict[bytes, Handler] | None = None,
        *,
        greeting: bytes = b"+OK scripted server ready\r\n",
        trickleGreeting: bool = False,
    ) -> None:
        self.clock = clock
        self.handlers = handlers or {}
        self.greeting = greeting
        self.trickleGreeting = trickleGreeting
        self.servers: list[ScriptedServer] = []

    def buildProtocol(self, addr: object) -> ScriptedServer:
        return ScriptedServer(self)

    def received(self) -> list[bytes]:
        """
        Every command line received, on all connections.
        """
        return [line for server in self.servers for line in server.commands]


def _multiline(body: bytes) -> bytes:
    return b"+OK\r\n" + body + b".\r\n"


DEFAULT_HANDLERS: dict[bytes, Handler] = {
    b"CAPA": lambda server, arg: server.send(_multiline(b"USER\r\nUIDL\r\nPIPELINING\r\n")),
    b"USER": lambda server, arg: server.send(b"+OK\r\n"),
    b"PASS": lambda server, arg: server.send(b"+OK logged in\r\n"),
    b"STAT": lambda server, arg: server.send(b"+OK 1 %d\r\n" % len(MESSAGE)),
    b"LIST": lambda server, arg: server.send(_multiline(b"1 %d\r\n" % len(MESSAGE))),
    b"UIDL": lambda server, arg: server.send(_multiline(b"1 uid-1\r\n")),
    b"RETR": lambda server, arg: server.send(_multiline(MESSAGE)),
    b"DELE": lambda server, arg: server.send(b"+OK marked\r\n"),
    b"NOOP": lambda server, arg: server.send(b"+OK\r\n"),
    b"QUIT": lambda server, arg: server.send(b"+OK bye\r\n"),
}


def stlsWithoutHandshake(server: ScriptedServer, argument: bytes) -> None:
    """
    Accept STLS, then never take part in the handshake.
    """
    server.send(b"+OK begin TLS\r\n")
    server.swallowing = True


def trickled(data: bytes) -> Handler:
    """
    A handler answering with C{data}, one octet a second.
    """
    return lambda server, argument: server.trickle(data)


def endlessListing(linesPerChunk: int = 1000, width: int = 0, chunks: int = 1000) -> Handler:
    """
    A handler answering C{+OK}, then listing lines without end (well, C{chunks} times),
    C{linesPerChunk} lines every millisecond (each line padded with C{width} more octets).
    """

    def chunk(index: int) -> bytes:
        first = index * linesPerChunk + 1
        return b"".join(
            b"%d uid-%d%s\r\n" % (n, n, b"x" * width) for n in range(first, first + linesPerChunk)
        )

    def handler(server: ScriptedServer, argument: bytes) -> None:
        server.send(b"+OK\r\n")
        server.stream(chunk, 0.001, chunks)

    return handler


class ClientDeadlineTests(SynchronousTestCase):
    """
    L{POP3Client} gives up on a server that stops making progress, with
    L{ServerStalled}, by the deadline of the answer due, and closes the connection.
    """

    def serve(self, handlers: dict[bytes, Handler] | None = None, **options: Any) -> None:
        """
        Listen with a L{ScriptedFactory} on a new L{MemoryNetwork}.
        """
        self.network = MemoryNetwork()
        self.factory = ScriptedFactory(self.network.reactor, handlers, **options)  # type: ignore[arg-type]
        self.network.listen(self.factory)

    def client(self, **options: Any) -> POP3Client:
        """
        A client connected to the scripted server, greeting read if there is one.
        """
        client: POP3Client = self.network.connectClient(**options).client  # type: ignore[assignment]
        return client

    def assertStalledAt(self, d: Deferred[Any], seconds: float, words: str) -> None:
        """
        C{d} still waits after C{seconds - 1} more seconds, one at a time, and fails
        with L{ServerStalled} (saying C{words}) in the next; the connection is closed.
        """
        for _ in range(int(seconds) - 1):
            self.network.advance(1)
            self.assertNoResult(d)
        self.network.advance(1)
        error = self.failureResultOf(d, ServerStalled).value
        self.assertIn(words, str(error))
        self.assertTrue(self.network.connections[-1].clientTransport.disconnected)

    def test_trickledGreeting(self) -> None:
        """
        A greeting trickled one octet a second, which no inactivity timeout catches,
        fails after the response timeout.
        """
        self.serve(greeting=b"+OK " + b"slow " * 20 + b"\r\n", trickleGreeting=True)
        client = self.client()
        self.assertStalledAt(client.waitForGreeting(), 30, "no complete answer to greeting")

    def test_trickledStatusLine(self) -> None:
        """
        A status line trickled one octet a second fails after the response timeout,
        counted from when the answer was due.
        """
        self.serve({b"PASS": trickled(b"+OK " + b"welcome " * 20 + b"\r\n")})
        client = self.client()
        self.network.advance(100)
        d = client.login("alice", "secret")
        self.network.flush()
        self.assertStalledAt(d, 30, "no complete answer to PASS")

    def test_stlsWithoutHandshake(self) -> None:
        """
        C{+OK} to STLS and no handshake fails after the response timeout.  (The client
        is played against by hand: the in-memory network starts TLS on both sides.)
        """
        clock = Clock()
        client = POP3Client(clock=clock)
        transport = FakeTransport()
        transport.protocol = client
        client.makeConnection(transport)
        client.dataReceived(b"+OK ready\r\n")
        d = client.startTLS(tlsOptions("mail.example.com"))
        client.dataReceived(b"+OK begin TLS\r\n")
        self.assertTrue(transport.tlsStarted)
        for _ in range(29):
            clock.advance(1)
            self.assertNoResult(d)
        clock.advance(1)
        error = self.failureResultOf(d, ServerStalled).value
        self.assertIn("the TLS handshake after STLS did not complete in 30 s", str(error))
        self.assertTrue(transport.lost)

    def test_configuredResponseTimeout(self) -> None:
        """
        The response timeout is the client's to choose.
        """
        self.serve(greeting=b"+OK " + b"slow " * 20 + b"\r\n", trickleGreeting=True)
        client = self.client(responseTimeout=5)
        self.assertStalledAt(client.waitForGreeting(), 5, "within 5 s")

    def test_trickledBody(self) -> None:
        """
        A message trickled one octet a second is cut off one response timeout after its
        C{+OK}: it brought far fewer octets than the minimum rate asks for.
        """

        def retr(server: ScriptedServer, argument: bytes) -> None:
            server.send(b"+OK\r\n")
            server.trickle(MESSAGE * 10)

        self.serve({b"RETR": retr})
        client = self.client()
        d = client.retrieve(1)
        self.network.flush()
        self.assertStalledAt(d, 30, "fewer than 30720")

    def test_slowSteadyBodyKept(self) -> None:
        """
        A large message over a slow link (2 KiB a second for 100 seconds) is not cut
        off: it keeps to the minimum rate.
        """
        line = b"x" * 1022 + b"\r\n"

        def retr(server: ScriptedServer, argument: bytes) -> None:
            server.send(b"+OK\r\n")
            for second in range(100):
                server.later(second + 1, lambda: server.send(line * 2))
            server.later(101, lambda: server.send(b".\r\n"))

        self.serve({b"RETR": retr})
        client = self.client()
        d = client.retrieve(1)
        self.network.run(d, advance=True)
        self.assertEqual(len(self.successResultOf(d)), 200 * 1024)

    def test_pausedConsumerNotCounted(self) -> None:
        """
        The time a consumer holds reading paused does not count against the server.
        """
        self.serve({b"RETR": lambda server, arg: server.send(b"+OK\r\n" + MESSAGE)})
        client = self.client()
        sink = io.BytesIO()
        d = client.retrieve(1, sink)
        self.network.flush()
        client._pipeline.pauseReading()
        self.network.advance(300)
        self.assertNoResult(d)
        client._pipeline.resumeReading()
        self.network.connections[-1].serverTransport.write(b".\r\n")
        self.network.flush()
        self.assertEqual(self.successResultOf(d), len(MESSAGE))

    def test_pipelinedDeadlineFromDue(self) -> None:
        """
        A pipelined command's deadline runs from when its answer is due, after the
        answers before it, not from when it was sent.
        """

        def slowNoop(server: ScriptedServer, argument: bytes) -> None:
            server.later(20, lambda: server.send(b"+OK\r\n"))

        self.serve({b"NOOP": slowNoop, b"STAT": lambda server, arg: None})
        client = self.client()
        self.network.run(client.capabilities())
        first, second = client.noop(), client.stat()
        self.network.flush()
        self.network.advance(20)
        self.successResultOf(first)
        self.assertStalledAt(second, 30, "STAT")

    def test_invalidSettings(self) -> None:
        """
        A deadline that is not positive, a negative rate and caps below 1 are refused.
        """
        for options in (
            {"responseTimeout": 0},
            {"minimumRate": -1},
            {"maxListingEntries": 0},
            {"maxListingOctets": 0},
        ):
            self.assertRaises(ValueError, POP3Client, **options)  # type: ignore[arg-type]


class ListingCapTests(SynchronousTestCase):
    """
    A listing without end is cut off by the caps on its lines and octets, with
    L{ListingTooLarge}, and the connection is closed.
    """

    def listing(self, handler: Handler, command: bytes, **options: Any) -> Failure:
        """
        Ask for C{command}'s listing from a server answering it with C{handler}; return
        the failure.
        """
        network = MemoryNetwork()
        factory = ScriptedFactory(network.reactor, {command: handler})
        network.listen(factory)
        client: POP3Client = network.connectClient(**options).client  # type: ignore[assignment]
        d: Deferred[Any] = client.listUids() if command == b"UIDL" else client.listSizes()
        for _ in range(2000):
            if d.called:
                break
            network.advance(0.001)
        failure: Failure = self.failureResultOf(d)
        self.assertTrue(network.connections[-1].clientTransport.disconnected)
        return failure

    def test_entriesCapped(self) -> None:
        """
        An endless UIDL fails once it has more lines than C{maxListingEntries}.
        """
        failure = self.listing(endlessListing(), b"UIDL", maxListingEntries=5000)
        failure.trap(ListingTooLarge)
        self.assertIn("more than 5000 entries", str(failure.value))

    def test_octetsCapped(self) -> None:
        """
        An endless LIST of long lines fails once it has more octets than
        C{maxListingOctets}.
        """
        failure = self.listing(endlessListing(10, width=1000), b"LIST", maxListingOctets=100_000)
        failure.trap(ListingTooLarge)
        self.assertIn("more than 100000 octets", str(failure.value))

    def test_defaultCaps(self) -> None:
        """
        By default, an endless listing fails past a million lines.
        """
        failure = self.listing(endlessListing(100_000, chunks=20), b"UIDL")
        failure.trap(ListingTooLarge)
        self.assertIn("more than 1000000 entries", str(failure.value))


class FetchDeadlineTests(SynchronousTestCase):
    """
    C{pop3kit fetch --delete} from a server that stops making progress ends within
    30 seconds of the stall, with exit status 75 (EX_TEMPFAIL), a clear message, and
    nothing deleted: no C{QUIT} was sent.
    """

    def fetchFrom(
        self, factoryOptions: dict[str, object], connect: ConnectOptions | None = None
    ) -> tuple[ExitError, float, ScriptedFactory]:
        """
        Run a fetch with C{--delete} against a scripted server; return its error, the
        seconds it took on the clock, and the server's factory.
        """
        network = MemoryNetwork()
        factory = ScriptedFactory(network.reactor, **factoryOptions)  # type: ignore[arg-type]
        network.listen(factory)
        base = os.path.abspath(self.mktemp())
        options = FetchOptions(
            destination=f"maildir:{os.path.join(base, 'Maildir')}",
            delete=True,
            stateFile=os.path.join(base, "state"),
            connect=connect or ConnectOptions(noTLS=True),
        )

        def run() -> None:
            network.run(
                _fetch.fetch(
                    network.reactor,
                    parseURL("pop3://alice@mail.example.com"),
                    options,
                    "secret",
                    environ={},
                    warnings=io.StringIO(),
                    runInThread=runNow,
                ),
                advance=True,
            )

        error = exitErrorOf(self, run)
        return error, network.reactor.seconds(), factory

    def assertNothingDeleted(self, factory: ScriptedFactory) -> None:
        """
        The server was sent no C{QUIT}: whatever was marked for deletion stays.
        """
        self.assertNotIn(b"QUIT", [line.split(b" ")[0] for line in factory.received()])

    def test_trickledGreeting(self) -> None:
        """
        A server that trickles its greeting one octet a second.
        """
        error, seconds, _ = self.fetchFrom(
            {"greeting": b"+OK " + b"slow " * 20 + b"\r\n", "trickleGreeting": True}
        )
        self.assertEqual(error.status, ExitStatus.TEMPFAIL)
        self.assertIn("stopped making progress while connecting", str(error))
        self.assertLessEqual(seconds, 30)

    def test_trickledMessage(self) -> None:
        """
        A server that trickles a message one octet a second, after the others were
        stored and marked for deletion.
        """
        stall: list[float] = []

        def retr(server: ScriptedServer, argument: bytes) -> None:
            stall.append(server.factory.clock.seconds())
            server.send(b"+OK\r\n")
            server.trickle(MESSAGE * 100)

        error, seconds, factory = self.fetchFrom(
            {
                "handlers": {
                    b"LIST": lambda server, arg: server.send(_multiline(b"1 2600\r\n")),
                    b"RETR": retr,
                }
            }
        )
        self.assertEqual(error.status, ExitStatus.TEMPFAIL)
        self.assertIn("stopped making progress while downloading", str(error))
        self.assertLessEqual(seconds - stall[0], 30)
        self.assertNothingDeleted(factory)

    def test_endlessListing(self) -> None:
        """
        A server that sends its UIDL listing without end: the caps end it.
        """
        error, seconds, factory = self.fetchFrom(
            {"handlers": {b"UIDL": endlessListing()}},
            ConnectOptions(noTLS=True, maxListingEntries=10_000),
        )
        self.assertEqual(error.status, ExitStatus.TEMPFAIL)
        self.assertEqual(
            str(error),
            "mail.example.com:110 sent a listing of more than 10000 entries while listing "
            "messages; nothing was deleted (see --max-listing and --max-listing-octets)",
        )
        self.assertLessEqual(seconds, 30)
        self.assertNothingDeleted(factory)


class LoopbackDeadlineTests(TestCase):
    """
    The deadlines hold over real loopback TCP, with the real reactor (and short
    deadlines).
    """

    def listen(self, factory: ScriptedFactory) -> int:
        """
        Listen with C{factory} on a free loopback port, until the test ends.
        """
        from twisted.internet import reactor

        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined,unused-ignore]
        self.addCleanup(port.stopListening)
        self.addCleanup(self.dropAll, factory)
        number: int = cast(IPv4Address, port.getHost()).port
        return number

    def dropAll(self, factory: ScriptedFactory) -> None:
        """
        Close the server side of every connection C{factory} served.
        """
        for server in factory.servers:
            if server.transport is not None:
                server.transport.abortConnection()  # type: ignore[attr-defined]

    async def test_trickledGreeting(self) -> None:
        """
        A greeting trickled over loopback, an octet every tenth of a second, fails with
        L{ServerStalled} after a response timeout of half a second.
        """
        from twisted.internet import reactor

        factory = ScriptedFactory(
            reactor,  # type: ignore[arg-type]
            greeting=b"+OK " + b"slow " * 40 + b"\r\n",
            trickleGreeting=True,
        )
        original = ScriptedServer.trickle
        self.patch(
            ScriptedServer,
            "trickle",
            lambda server, data, interval=0.1: original(server, data, 0.1),
        )
        port = self.listen(factory)
        with self.assertRaises(ServerStalled):
            await connect(reactor, "127.0.0.1", port, tls="none", responseTimeout=0.5)

    async def test_fetchSTLSWithoutHandshake(self) -> None:
        """
        C{pop3kit fetch --delete} from a server that accepts STLS and never starts the
        handshake ends with exit status 75, says what happened, and sends no C{QUIT}.
        """
        from twisted.internet import reactor

        factory = ScriptedFactory(
            reactor,  # type: ignore[arg-type]
            {
                b"CAPA": lambda server, arg: server.send(_multiline(b"STLS\r\nUSER\r\n")),
                b"STLS": stlsWithoutHandshake,
            },
        )
        port = self.listen(factory)
        base = os.path.abspath(self.mktemp())
        options = FetchOptions(
            destination=f"maildir:{os.path.join(base, 'Maildir')}",
            delete=True,
            stateFile=os.path.join(base, "state"),
            # Long enough for the CAPA and STLS answers on a loaded machine.
            connect=ConnectOptions(responseTimeout=3),
        )
        with self.assertRaises(ExitError) as raised:
            await _fetch.fetch(
                reactor,
                parseURL(f"pop3://alice@127.0.0.1:{port}"),
                options,
                "secret",
                environ={},
                warnings=io.StringIO(),
            )
        self.assertEqual(raised.exception.status, ExitStatus.TEMPFAIL)
        self.assertEqual(
            str(raised.exception),
            f"127.0.0.1:{port} stopped making progress while connecting: the TLS handshake "
            "after STLS did not complete in 3 s; nothing was deleted (see "
            "--response-timeout and --min-rate)",
        )
        self.assertEqual(factory.received(), [b"CAPA", b"STLS"])


class CommandLineOptionTests(SynchronousTestCase):
    """
    C{pop3kit fetch} and C{scan} take the deadlines and caps as options.
    """

    def connectOptions(self, *options: str) -> ConnectOptions:
        """
        The connection options of C{pop3kit fetch URL --to ... OPTIONS}.
        """
        from pop3kit import cli

        passwordFile = self.mktemp()
        with open(passwordFile, "w") as f:
            f.write("secret\n")
        args = cli._makeParser().parse_args(
            [
                "fetch",
                "pop3://alice@mail.example.com",
                "--to",
                "maildir:x",
                "--password-file",
                passwordFile,
                *options,
            ]
        )
        return cli._connectOptions(args)[1]

    def test_defaults(self) -> None:
        """
        By default an answer is due within 30 s, a body brings at least 1 KiB/s, and a
        listing has at most a million lines and 64 MiB.
        """
        options = self.connectOptions()
        self.assertEqual(
            (
                options.responseTimeout,
                options.minimumRate,
                options.maxListingEntries,
                options.maxListingOctets,
            ),
            (30.0, 1024.0, 1_000_000, 64 * 1024 * 1024),
        )

    def test_options(self) -> None:
        """
        The options set the deadlines and caps.
        """
        options = self.connectOptions(
            "--response-timeout",
            "12.5",
            "--min-rate",
            "0",
            "--max-listing",
            "500",
            "--max-listing-octets",
            "4096",
        )
        self.assertEqual(
            (
                options.responseTimeout,
                options.minimumRate,
                options.maxListingEntries,
                options.maxListingOctets,
            ),
            (12.5, 0.0, 500, 4096),
        )

    def test_invalid(self) -> None:
        """
        A deadline that is not positive, a negative rate or a cap below 1 is a usage
        error.
        """
        for option, value in [
            ("--response-timeout", "0"),
            ("--min-rate", "-1"),
            ("--max-listing", "0"),
            ("--max-listing-octets", "0"),
        ]:
            error = self.assertRaises(ExitError, self.connectOptions, option, value)
            self.assertEqual(error.status, ExitStatus.USAGE)
            self.assertIn(option, str(error))


class ErrorTests(SynchronousTestCase):
    """
    The errors of the deadlines and caps.
    """

    def test_stalledIsTimeout(self) -> None:
        """
        L{ServerStalled} is a L{ClientError} and a Twisted L{TimeoutError}, and reads as
        its text.
        """
        from twisted.internet.error import TimeoutError as TwistedTimeoutError

        from pop3kit.client import ClientError

        error = ServerStalled("no complete answer to STAT within 30 s")
        self.assertIsInstance(error, ClientError)
        self.assertIsInstance(error, TwistedTimeoutError)
        self.assertEqual(str(error), "no complete answer to STAT within 30 s")
        self.assertEqual(str(ServerStalled()), "the server stopped making progress")
        self.assertIsInstance(ListingTooLarge(), ClientError)

    def test_silentServer(self) -> None:
        """
        With the default deadlines, a silent server fails a command with
        L{ServerStalled} after 30 s, before the inactivity timeout of 60 s.
        """
        network = MemoryNetwork()
        network.listen(ScriptedFactory(network.reactor, {b"STAT": lambda server, arg: None}))
        client: POP3Client = network.connectClient().client  # type: ignore[assignment]
        d = client.stat()
        network.flush()
        network.advance(29.9)
        self.assertNoResult(d)
        network.advance(0.1)
        self.assertIn("STAT", str(self.failureResultOf(d, ServerStalled).value))
