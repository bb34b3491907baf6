"""
Tests for L{pop3kit.server} over real loopback TCP connections (and one over
L{twisted.test.iosim}): pipelining, backpressure, over-long lines, pausing readers and
dropped connections, with a raw line-based client.

The in-memory protocol tests are in L{tests.test_server}; these cover what only a real
transport shows: reads split at arbitrary places, kernel socket buffers that fill up, and
transports that pause.
"""

from __future__ import annotations

import random
import socket
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IListeningPort,
    IReactorTCP,
    IReactorTime,
)
from twisted.internet.protocol import connectionDone
from twisted.internet.task import Clock, deferLater
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import TestCase

from pop3kit._streaming import TransferInterrupted
from pop3kit.backends.memory import MemoryRealm
from pop3kit.server import POP3Server, POP3ServerFactory
from tests._oracle import crlfForm

#: The global reactor, which trial runs; typed loosely, it provides many interfaces.
reactor = cast(Any, _reactor)

#: Commands whose positive answer is a multi-line response, whatever their arguments.
_ALWAYS_MULTILINE = frozenset({b"RETR", b"TOP", b"CAPA"})

#: Commands whose positive answer is a multi-line response when they have no argument.
_MULTILINE_WITHOUT_ARGUMENT = frozenset({b"LIST", b"UIDL"})


def isMultiline(command: bytes) -> bool:
    """
    Whether a positive answer to C{command} is a multi-line response.
    """
    words = command.split()
    if not words:
        return False
    keyword = words[0].upper()
    return keyword in _ALWAYS_MULTILINE or (
        keyword in _MULTILINE_WITHOUT_ARGUMENT and len(words) == 1
    )


def unstuff(lines: Sequence[bytes]) -> bytes:
    """
    The payload of a multi-line response body (without its status line and terminator):
    one leading dot removed from each stuffed line, every line ended with CRLF.
    """
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


def dotLines(seed: int, size: int) -> bytes:
    """
    An LF-stored message of about C{size} octets, different for each C{seed}, in which
    many lines start with dots: C{.} alone, C{..}, C{.text}.
    """
    rng = random.Random(seed)
    pool = [b".", b"..", b"...", b". ", b".leading dot", b"..two dots", b"", b"-- "]
    for _ in range(56):
        pool.append(bytes(rng.choice(b"abcdefghij .-") for _ in range(rng.randrange(1, 78))))
    header = b"Subject: message %d\nFrom: sender@example.com\n\n" % seed
    parts = [header]
    total = len(header)
    while total < size:
        line = rng.choice(pool)
        parts.append(line + b"\n")
        total += len(line) + 1
    return b"".join(parts)


class POP3TestClient(LineReceiver):
    """
    A raw POP3 client for tests: it writes command lines as given and splits what comes
    back into responses, each a list of lines exactly as received (still byte-stuffed;
    the status line first, the terminating C{.} left out).

    @ivar greeting: Fires with the greeting line.
    @ivar closed: Fires when the connection is lost, however it ends.
    @ivar received: How many octets have arrived so far.
    @ivar unexpected: Lines that arrived when no response was expected.
    """

    delimiter = b"\r\n"
    MAX_LENGTH = 1 << 24

    def __init__(self) -> None:
        self.greeting: Deferred[bytes] = Deferred()
        self.closed: Deferred[None] = Deferred()
        self.received = 0
        self.unexpected: list[bytes] = []
        self.allLines: list[bytes] = []
        self._expected: deque[tuple[bool, Deferred[list[bytes]]]] = deque()
        self._current: list[bytes] | None = None
        self._receivedWaiters: list[tuple[int, Deferred[None]]] = []
        self._readBudget: int | None = None
        self._budgetSize = 0
        self._throttlePause = 0.0
        self._clock: IReactorTime | None = None
        self._refill: IDelayedCall | None = None
        self._paused = False

    def dataReceived(self, data: bytes) -> None:
        """
        Count the octets, then split them into lines; throttle if asked to.
        """
        self.received += len(data)
        waiting, self._receivedWaiters = self._receivedWaiters, []
        for threshold, d in waiting:
            if self.received >= threshold:
                d.callback(None)
            else:
                self._receivedWaiters.append((threshold, d))
        super().dataReceived(data)
        if self._readBudget is not None and not self._paused:
            self._readBudget -= len(data)
            if self._readBudget <= 0:
                self.pauseReading()
                assert self._clock is not None
                self._refill = self._clock.callLater(self._throttlePause, self._refillBudget)

    def throttle(self, clock: IReactorTime, budget: int, pause: float) -> None:
        """
        Read slowly: after every C{budget} octets, stop reading for C{pause} seconds.
        """
        self._clock = clock
        self._budgetSize = budget
        self._readBudget = budget
        self._throttlePause = pause

    def _refillBudget(self) -> None:
        self._refill = None
        self._readBudget = self._budgetSize
        self.resumeReading()

    def pauseReading(self) -> None:
        """
        Stop reading from the socket (the transport stops reading; the kernel buffers
        fill and the server's writes back up).
        """
        self._paused = True
        self.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeReading(self) -> None:
        """
        Read from the socket again.
        """
        self._paused = False
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def whenReceived(self, octets: int) -> Deferred[None]:
        """
        A L{Deferred} that fires once at least C{octets} octets have arrived in total.
        """
        d: Deferred[None] = Deferred()
        if self.received >= octets:
            d.callback(None)
        else:
            self._receivedWaiters.append((octets, d))
        return d

    def lineReceived(self, line: bytes) -> None:
        """
        File the line under the greeting or the oldest unanswered command.
        """
        self.allLines.append(line)
        if not self.greeting.called:
            self.greeting.callback(line)
            return
        if self._current is None:
            if not self._expected:
                self.unexpected.append(line)
                return
            multiline, d = self._expected[0]
            if multiline and line.startswith(b"+OK"):
                self._current = [line]
                return
            self._expected.popleft()
            d.callback([line])
            return
        if line == b".":
            _, d = self._expected.popleft()
            response, self._current = self._current, None
            d.callback(response)
            return
        self._current.append(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        The server sent an absurdly long line: fail the test's pending responses.
        """
        self.transport.loseConnection()  # type: ignore[union-attr]

    def expect(self, *commands: bytes) -> Deferred[list[list[bytes]]]:
        """
        Expect responses to C{commands}, which the caller writes itself.

        @return: A L{Deferred} firing with one response per command, in order.
        """
        results: list[Deferred[list[bytes]]] = []
        for command in commands:
            d: Deferred[list[bytes]] = Deferred()
            self._expected.append((isMultiline(command), d))
            results.append(d)
        return gatherResults(results, consumeErrors=True)

    def send(self, *commands: bytes) -> Deferred[list[list[bytes]]]:
        """
        Write all C{commands} in one write.

        @return: A L{Deferred} firing with one response per command, in order.
        """
        responses = self.expect(*commands)
        self.transport.write(b"".join(command + b"\r\n" for command in commands))  # type: ignore[union-attr]
        return responses

    async def command(self, command: bytes) -> list[bytes]:
        """
        Send one command and wait for its response.
        """
        [response] = await self.send(command)
        return response

    async def login(self, user: bytes = b"alice", password: bytes = b"secret") -> list[bytes]:
        """
        Log in with USER and PASS (pipelined); return the answer to PASS.
        """
        _, answer = await self.send(b"USER " + user, b"PASS " + password)
        return answer

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Fail every unanswered command and fire L{closed}.
        """
        refill, self._refill = self._refill, None
        if refill is not None:
            refill.cancel()
        expected, self._expected = self._expected, deque()
        for _, d in expected:
            d.errback(reason)
        if not self.greeting.called:
            self.greeting.errback(reason)
        self.closed.callback(None)

    def abort(self) -> Deferred[None]:
        """
        Abort the connection (if still open) and wait until it is gone.
        """
        if not self.closed.called:
            self.transport.abortConnection()  # type: ignore[union-attr]
        return self.closed


class TrackedServer(POP3Server):
    """
    A L{POP3Server} that tells when its connection is lost.

    @ivar lost: Fires once C{connectionLost} has run.
    """

    def __init__(self, factory: POP3ServerFactory) -> None:
        super().__init__(factory)
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Let the server clean up, then fire L{lost}.
        """
        try:
            super().connectionLost(reason)
        finally:
            self.lost.callback(None)


class TrackingFactory(POP3ServerFactory):
    """
    A L{POP3ServerFactory} that builds L{TrackedServer}s and keeps them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.servers: list[TrackedServer] = []

    def buildProtocol(self, addr: IAddress | None) -> TrackedServer:
        """
        Build and remember one session.
        """
        server = TrackedServer(self)
        self.servers.append(server)
        return server


def pendingOutput(server: POP3Server) -> int:
    """
    How many octets the server's TCP transport holds in its user-space write buffer.

    This reads the buffer attributes of Twisted's C{FileDescriptor}; should they ever be
    renamed, this raises L{AttributeError} rather than pretend the buffer is empty.
    """
    transport: Any = server.transport
    dataBuffer: bytes = transport.dataBuffer
    offset: int = transport.offset
    tempLength: int = transport._tempDataLen
    return len(dataBuffer) - offset + tempLength


def limitSocketBuffers(client: POP3TestClient, server: POP3Server, size: int = 256 * 1024) -> None:
    """
    Fix the kernel buffers between C{client} and C{server} at about C{size} octets each
    way, so that a client that stops reading holds the server back soon, whatever the
    host's TCP autotuning limits.
    """
    clientSocket = client.transport.getHandle()  # type: ignore[union-attr]
    clientSocket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    serverSocket = server.transport.getHandle()  # type: ignore[union-attr]
    serverSocket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


class LoopbackServer:
    """
    A L{POP3ServerFactory} listening on 127.0.0.1 for one test, stopped (with all its
    connections) when the test ends.

    @ivar realm: The memory realm holding alice's and bob's mailboxes, each with the
        given messages; the default portal logs in to it (alice's password is C{secret},
        bob's C{hunter2}).  A C{portal} given instead replaces it.
    @ivar factory: The server factory.
    @ivar port: The TCP port number, once L{start} has run.
    """

    def __init__(
        self,
        testCase: TestCase,
        messages: Sequence[bytes] = (),
        portal: Portal | None = None,
        **options: Any,
    ) -> None:
        self.testCase = testCase
        self.realm = MemoryRealm()
        for user in ("alice", "bob"):
            mailbox = self.realm.getMailbox(user)
            for message in messages:
                mailbox.deliver(message)
        if portal is None:
            checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret", bob=b"hunter2")
            portal = Portal(self.realm, [checker])
        options.setdefault("failedLoginDelay", 0)
        self.factory = TrackingFactory(portal, clock=reactor, **options)
        self.port = 0
        self._listening: IListeningPort | None = None

    def start(self) -> int:
        """
        Listen on an unused port of 127.0.0.1.

        @return: The port number.
        """
        listening = cast(IReactorTCP, reactor).listenTCP(0, self.factory, interface="127.0.0.1")
        self._listening = listening
        self.testCase.addCleanup(self.stop)
        self.port = listening.getHost().port  # type: ignore[attr-defined]
        return self.port

    def stop(self) -> Deferred[object]:
        """
        Stop listening, abort the sessions still open and wait until all are gone.
        """
        listening, self._listening = self._listening, None
        waits: list[Deferred[Any]] = []
        if listening is not None:
            stopped = listening.stopListening()
            if stopped is not None:
                waits.append(cast("Deferred[object]", stopped))
        for server in self.factory.servers:
            if not server.lost.called:
                server.transport.abortConnection()  # type: ignore[union-attr]
            waits.append(server.lost)
        return cast("Deferred[object]", gatherResults(waits))

    def mailbox(self, user: str = "alice") -> list[bytes]:
        """
        The messages stored in C{user}'s mailbox now.
        """
        return self.realm.getMailbox(user).messages

    async def connect(self) -> POP3TestClient:
        """
        Open a client connection and wait for the greeting; it is aborted when the test
        ends.
        """
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        client: POP3TestClient = await connectProtocol(endpoint, POP3TestClient())
        self.testCase.addCleanup(client.abort)
        await client.greeting
        return client

    def latestServer(self) -> TrackedServer:
        """
        The session built last.
        """
        return self.factory.servers[-1]


def sleep(seconds: float) -> Deferred[None]:
    """
    Wait C{seconds} on the reactor.
    """
    return deferLater(cast(IReactorTime, reactor), seconds, lambda: None)


#: The fixture messages of the pipelining tests: CRLF, LF, dots, 8-bit, no final line
#: end, empty, and one larger than a read chunk of the server.
PIPELINE_MESSAGES = [
    b"Subject: plain\r\nFrom: a@example.com\r\n\r\nline 1\r\nline 2\r\n",
    b"Subject: dots\n\n.\n..\n.leading\nmiddle.\n",
    "Subject: caf\u00e9\n\nna\u00efve \u2603\n".encode(),
    b"Subject: unterminated\n\nno line end",
    b"",
    dotLines(7, 300_000),
]


def pipelineCommands(count: int, messages: int, seed: int = 1939) -> list[bytes]:
    """
    C{count} commands mixing NOOP, STAT, LIST, LIST n, RETR n and UIDL n, with a few
    bad message numbers, chosen at random (repeatably).
    """
    rng = random.Random(seed)
    commands: list[bytes] = []
    for _ in range(count):
        kind = rng.randrange(7)
        number = rng.randrange(1, messages + 1) if rng.randrange(12) else messages + 5
        if kind == 0:
            commands.append(b"NOOP")
        elif kind == 1:
            commands.append(b"STAT")
        elif kind == 2:
            commands.append(b"LIST %d" % number)
        elif kind == 3:
            commands.append(b"LIST")
        elif kind == 4:
            commands.append(b"UIDL %d" % number)
        else:
            commands.append(b"RETR %d" % number)
    return commands


class GreetingTests(TestCase):
    """
    The greeting over TCP.
    """

    async def test_greeting(self) -> None:
        """
        A new connection gets one positive greeting line and nothing else.
        """
        server = LoopbackServer(self)
        server.start()
        client = await server.connect()
        self.assertEqual(await client.greeting, b"+OK POP3 server ready")
        await sleep(0.05)
        self.assertEqual(client.allLines, [b"+OK POP3 server ready"])


class PipeliningTests(TestCase):
    """
    Pipelined commands (RFC 2449 section 6.6) over TCP.
    """

    timeout = 60

    async def test_pipelinedEqualsSequential(self) -> None:
        """
        240 mixed commands in one write are answered in order, exactly as the same
        commands sent one at a time (GEN-11).
        """
        server = LoopbackServer(self, PIPELINE_MESSAGES)
        server.start()
        commands = pipelineCommands(240, len(PIPELINE_MESSAGES))
        pipelined = await server.connect()
        sequential = await server.connect()
        self.assertEqual((await pipelined.login())[0][:4], b"+OK ")
        self.assertEqual((await sequential.login(b"bob", b"hunter2"))[0][:4], b"+OK ")

        pipelinedAnswers = await pipelined.send(*commands)
        sequentialAnswers = [await sequential.command(command) for command in commands]

        self.assertEqual(len(pipelinedAnswers), 240)
        self.assertEqual(pipelinedAnswers, sequentialAnswers)
        self.assertEqual(pipelined.unexpected, [])
        for command, answer in zip(commands, pipelinedAnswers, strict=True):
            keyword, *arguments = command.split()
            if arguments and int(arguments[0]) > len(PIPELINE_MESSAGES):
                self.assertEqual(answer[0][:5], b"-ERR ", command)
                continue
            self.assertEqual(answer[0][:4], b"+OK ", command)
            if keyword == b"RETR":
                message = PIPELINE_MESSAGES[int(arguments[0]) - 1]
                self.assertEqual(unstuff(answer[1:]), crlfForm(message), command)
            elif keyword == b"LIST" and arguments:
                size = len(crlfForm(PIPELINE_MESSAGES[int(arguments[0]) - 1]))
                self.assertEqual(answer, [b"+OK %s %d" % (arguments[0], size)])

    async def test_loginPipelined(self) -> None:
        """
        USER, PASS and STAT in one write get three positive answers (GEN-12).
        """
        server = LoopbackServer(self, PIPELINE_MESSAGES[:2])
        server.start()
        client = await server.connect()
        answers = await client.send(b"USER alice", b"PASS secret", b"STAT")
        size = sum(len(crlfForm(m)) for m in PIPELINE_MESSAGES[:2])
        self.assertEqual(answers[0], [b"+OK send PASS"])
        self.assertEqual(answers[1][0][:4], b"+OK ")
        self.assertEqual(answers[2], [b"+OK 2 %d" % size])

    async def test_pipelinedLargeRetrievalsSlowReader(self) -> None:
        """
        Twenty pipelined RETRs of 1 MB messages, read slowly by a client that first stops
        reading, all arrive intact and in order, and the server never holds more than a
        small part of them in its write buffer (CAPA-18).
        """
        messages = [dotLines(seed, 1_000_000) for seed in range(20)]
        total = sum(len(crlfForm(message)) for message in messages)
        server = LoopbackServer(self, messages)
        server.start()
        client = await server.connect()
        await client.login()
        session = server.latestServer()
        limitSocketBuffers(client, session)

        client.pauseReading()
        retrieved = client.send(*[b"RETR %d" % n for n in range(1, 21)], b"NOOP")
        samples: list[int] = []
        for _ in range(10):
            await sleep(0.03)
            samples.append(pendingOutput(session))
        self.assertFalse(retrieved.called)
        # The client's pause really held the server back: most has not arrived.
        self.assertLess(client.received, total // 2)

        client.throttle(cast(IReactorTime, reactor), budget=512 * 1024, pause=0.005)
        client.resumeReading()
        while not retrieved.called:
            samples.append(pendingOutput(session))
            await sleep(0.005)
        answers = await retrieved

        self.assertEqual(len(answers), 21)
        for number, (message, answer) in enumerate(zip(messages, answers, strict=False), 1):
            self.assertEqual(answer[0], b"+OK %d octets" % len(crlfForm(message)))
            self.assertEqual(unstuff(answer[1:]), crlfForm(message), f"RETR {number}")
        self.assertEqual(answers[20], [b"+OK "])
        self.assertLess(max(samples), 2_000_000, "the server buffered too much output")

    async def test_pipelinedOverIOSim(self) -> None:
        """
        Over L{twisted.test.iosim}, 240 pipelined commands get the answers the same
        commands get one at a time.
        """
        clock = Clock()
        realm = MemoryRealm()
        for user in ("alice", "bob"):
            for message in PIPELINE_MESSAGES:
                realm.getMailbox(user).deliver(message)
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret", bob=b"hunter2")
        factory = POP3ServerFactory(
            Portal(realm, [checker]), clock=clock, failedLoginDelay=0, allowCleartext="always"
        )
        commands = pipelineCommands(240, len(PIPELINE_MESSAGES), seed=2449)

        def connect() -> tuple[POP3TestClient, iosim.IOPump]:
            client, _, pump = iosim.connectedServerAndClient(
                lambda: factory.buildProtocol(iosim.FakeAddress()),
                POP3TestClient,
                clock=clock,
            )
            return client, pump

        pipelined, pipelinedPump = connect()
        sequential, sequentialPump = connect()
        self.assertEqual(self.successResultOf(pipelined.greeting), b"+OK POP3 server ready")

        pipelinedLogin = pipelined.send(b"USER alice", b"PASS secret")
        pipelinedPump.flush()
        self.assertEqual(self.successResultOf(pipelinedLogin)[1][0][:4], b"+OK ")
        answers = pipelined.send(*commands)
        pipelinedPump.flush()
        pipelinedAnswers = self.successResultOf(answers)

        sequentialLogin = sequential.send(b"USER bob", b"PASS hunter2")
        sequentialPump.flush()
        self.assertEqual(self.successResultOf(sequentialLogin)[1][0][:4], b"+OK ")
        sequentialAnswers = []
        for command in commands:
            answer = sequential.send(command)
            sequentialPump.flush()
            [response] = self.successResultOf(answer)
            sequentialAnswers.append(response)

        self.assertEqual(len(pipelinedAnswers), 240)
        self.assertEqual(pipelinedAnswers, sequentialAnswers)
        retrieved = [a for c, a in zip(commands, pipelinedAnswers, strict=True) if b"RETR" in c]
        self.assertTrue(any(a[0].startswith(b"+OK ") for a in retrieved))

        done = pipelined.send(b"QUIT")
        pipelinedPump.flush()
        self.assertEqual(self.successResultOf(done), [[b"+OK bye"]])
        self.successResultOf(pipelined.closed)


class LongLineTests(TestCase):
    """
    Over-long command lines (GEN-06) over TCP.
    """

    async def _longLine(self, loggedIn: bool, pieceSize: int) -> None:
        server = LoopbackServer(self, PIPELINE_MESSAGES[:1])
        server.start()
        client = await server.connect()
        if loggedIn:
            await client.login()
        # Every 5-octet piece of the line would be a command of its own if executed.
        line = b"NOOP " * 1000
        self.assertEqual(len(line), 5000)
        data = line + b"\r\nQUIT\r\n"
        responses = client.expect(line, b"QUIT")
        for start in range(0, len(data), pieceSize):
            client.transport.write(data[start : start + pieceSize])  # type: ignore[union-attr]
            if pieceSize < len(data):
                await sleep(0.01)
        tooLong, bye = await responses
        self.assertEqual(tooLong[0][:5], b"-ERR ")
        self.assertEqual(len(tooLong), 1)
        self.assertEqual(bye, [b"+OK bye"])
        await client.closed
        self.assertEqual(client.unexpected, [])

    async def test_longLineOneWrite(self) -> None:
        """
        A 5000-octet line in one write, before login, gets exactly one reply.
        """
        await self._longLine(loggedIn=False, pieceSize=10_000)

    async def test_longLineOneWriteLoggedIn(self) -> None:
        """
        A 5000-octet line in one write, after login, gets exactly one reply.
        """
        await self._longLine(loggedIn=True, pieceSize=10_000)

    async def test_longLineInPieces(self) -> None:
        """
        A 5000-octet line arriving in many small reads gets exactly one reply.
        """
        await self._longLine(loggedIn=True, pieceSize=700)


class FlowControlTests(TestCase):
    """
    Clients that stop reading, or go away, in the middle of a transfer.
    """

    timeout = 60

    async def test_pausedReaderGetsWholeMessage(self) -> None:
        """
        A client that stops reading during a 2 MB RETR for a while, then reads on, gets
        the whole message intact.
        """
        message = dotLines(42, 2_000_000)
        server = LoopbackServer(self, [message])
        server.start()
        client = await server.connect()
        await client.login()
        retrieved = client.send(b"RETR 1")
        await client.whenReceived(client.received + 1)
        client.pauseReading()
        await sleep(0.1)
        before = client.received
        await sleep(0.4)
        self.assertEqual(client.received, before, "the client did not stop reading")
        self.assertFalse(retrieved.called)
        self.assertFalse(server.latestServer().lost.called)
        client.resumeReading()
        [answer] = await retrieved
        self.assertEqual(answer[0], b"+OK %d octets" % len(crlfForm(message)))
        self.assertEqual(unstuff(answer[1:]), crlfForm(message))
        self.assertEqual(await client.command(b"NOOP"), [b"+OK "])

    async def _dropDuringRetrieval(self) -> LoopbackServer:
        """
        Log in, mark message 1 deleted, start retrieving the big message 2 and drop the
        connection while the server is still sending it.
        """
        big = b"x" * 76 + b"\n"
        server = LoopbackServer(self, [b"Subject: small\n\nsmall\n", big * 200_000])
        server.start()
        client = await server.connect()
        await client.login()
        session = server.latestServer()
        limitSocketBuffers(client, session)
        self.assertEqual(await client.command(b"DELE 1"), [b"+OK message 1 deleted"])
        client.send(b"RETR 2").addErrback(lambda f: None)
        await client.whenReceived(client.received + 100_000)
        client.pauseReading()
        await sleep(0.1)
        self.assertIsNotNone(
            session.transport.producer,  # type: ignore[union-attr]
            "the transfer ended before the client went away",
        )
        await client.abort()
        await session.lost
        return server

    async def test_dropDuringRetrieval(self) -> None:
        """
        A client that disconnects in the middle of a RETR leaves its maildrop unlocked and
        untouched: nothing it marked deleted is removed, and a new login works at once.
        """
        server = await self._dropDuringRetrieval()
        messages = server.mailbox()
        self.assertEqual(len(messages), 2)
        self.assertEqual(server.realm.activeSessions, {})
        again = await server.connect()
        answer = await again.login()
        self.assertEqual(answer[0][:4], b"+OK ")
        self.assertEqual(
            await again.command(b"STAT"),
            [b"+OK 2 %d" % sum(len(crlfForm(m)) for m in messages)],
        )

    async def test_dropDuringRetrievalLogsNoFailure(self) -> None:
        """
        A client going away during a RETR is no server error: no failure is logged.

        Regression: the transport stops its producer before it calls the protocol's
        C{connectionLost}, so the server saw L{TransferInterrupted} while it still
        believed itself connected, and logged "Reading message ... failed mid-transfer".
        """
        await self._dropDuringRetrieval()
        logged = self.flushLoggedErrors(TransferInterrupted)
        self.assertEqual(logged, [], "a client disconnect was logged as a server failure")


class SessionEndTests(TestCase):
    """
    QUIT, and a second session on a locked maildrop, over TCP.
    """

    async def test_quitAfterDele(self) -> None:
        """
        QUIT after DELE removes the message, answers C{+OK} and the server closes the
        connection.
        """
        messages = PIPELINE_MESSAGES[:3]
        server = LoopbackServer(self, messages)
        server.start()
        client = await server.connect()
        await client.login()
        answers = await client.send(b"DELE 2", b"QUIT")
        self.assertEqual(answers, [[b"+OK message 2 deleted"], [b"+OK bye"]])
        await client.closed
        self.assertEqual(server.mailbox(), [messages[0], messages[2]])
        self.assertEqual(client.unexpected, [])

    async def test_secondLoginInUse(self) -> None:
        """
        A second concurrent login to the same maildrop gets C{-ERR [IN-USE]}; the first
        session goes on.
        """
        server = LoopbackServer(self, PIPELINE_MESSAGES[:2])
        server.start()
        first = await server.connect()
        second = await server.connect()
        self.assertEqual((await first.login())[0][:4], b"+OK ")
        answer = await second.login()
        self.assertTrue(answer[0].startswith(b"-ERR [IN-USE] "), answer)
        self.assertEqual((await first.command(b"STAT"))[0][:6], b"+OK 2 ")
        self.assertEqual((await second.command(b"STAT"))[0][:5], b"-ERR ")
