"""
POP3 clients for the benchmarks: a buffered blocking client, an asyncio load generator, a
blocking session loop (plain, STLS or implicit TLS) for worker processes, and an asyncio
process that keeps connections waiting in the failed-login penalty.

Only the standard library is used.  Every network operation has a timeout and every loop is
bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

HOST = "127.0.0.1"
TERMINATOR = b"\r\n.\r\n"
SOCKET_TIMEOUT = 30.0


class BenchmarkError(Exception):
    """
    The server answered something unexpected, or too slowly.
    """


class BlockingClient:
    """
    A blocking POP3 client with its own receive buffer, for latency-sensitive single-client
    measurements.
    """

    def __init__(
        self, port: int, timeout: float = SOCKET_TIMEOUT, sourceAddress: str | None = None
    ) -> None:
        """
        @param sourceAddress: Connect from this local address (any port), e.g. 127.0.0.2,
            so that the server sees another client address; by default the system's choice.
        """
        source = None if sourceAddress is None else (sourceAddress, 0)
        self.sock = socket.create_connection((HOST, port), timeout=timeout, source_address=source)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise BenchmarkError("the server closed the connection unexpectedly")
        self._buffer += data

    def line(self) -> bytes:
        """
        One response line, without its CRLF.
        """
        start = 0
        while True:
            end = self._buffer.find(b"\r\n", start)
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                return line
            start = max(0, len(self._buffer) - 1)
            self._fill()

    def ok(self) -> bytes:
        """
        One status line, which must be positive.
        """
        line = self.line()
        if not line.startswith(b"+OK"):
            raise BenchmarkError(f"expected +OK, got {line[:200]!r}")
        return line

    def multiline(self) -> int:
        """
        A positive multi-line response; returns the number of octets after the status line,
        terminator included.
        """
        self.ok()
        if self._buffer.startswith(b".\r\n"):
            del self._buffer[:3]
            return 3
        start = 0
        while True:
            end = self._buffer.find(TERMINATOR, start)
            if end >= 0:
                size = end + len(TERMINATOR)
                del self._buffer[:size]
                return size
            start = max(0, len(self._buffer) - len(TERMINATOR) + 1)
            self._fill()

    def login(self, user: str, password: str) -> bytes:
        """
        Read the greeting, then log in with USER/PASS (pipelined); returns the PASS answer.
        """
        self.ok()
        self.send(f"USER {user}\r\nPASS {password}\r\n".encode())
        self.ok()
        return self.ok()

    def readToEnd(self, limit: int = 1 << 20) -> bytes:
        """
        Everything until the server closes the connection (at most C{limit} octets).
        """
        while len(self._buffer) < limit:
            data = self.sock.recv(1 << 16)
            if not data:
                break
            self._buffer += data
        data, self._buffer = bytes(self._buffer), bytearray()
        return data


# The concurrent load generator (runs in worker processes).


@dataclass
class LoadResult:
    """
    What one load-generator process measured.

    @ivar errors: The first errors, as text (at most L{MAX_ERROR_TEXTS}).
    @ivar errorCount: How many errors there were in all.
    @ivar errorKinds: How many of each kind (L{errorKind}).
    @ivar firstSessionSeconds: Seconds from the start until every client had finished a
        first session (or given up).
    """

    messages: int = 0
    sessions: int = 0
    octets: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    errorCount: int = 0
    errorKinds: dict[str, int] = field(default_factory=dict)
    end: float = 0.0
    cpuSeconds: float = 0.0
    firstSessionSeconds: float = 0.0


#: How many error texts a L{LoadResult} keeps.
MAX_ERROR_TEXTS = 20


def errorKind(error: BaseException) -> str:
    """
    What kind of error a client met: C{"evicted"} for C{-ERR [SYS/TEMP]} (the server's
    limit on connections waiting to log in), else the exception's type name
    (C{"TimeoutError"} for a session over L{SOCKET_TIMEOUT}, ...).
    """
    if isinstance(error, BenchmarkError) and "[SYS/TEMP]" in str(error):
        return "evicted"
    return type(error).__name__


async def _readUntil(reader: asyncio.StreamReader, separator: bytes) -> bytes:
    data = await reader.readuntil(separator)
    if not data.startswith(b"+OK"):
        raise BenchmarkError(f"expected +OK, got {data[:200]!r}")
    return data


async def _session(port: int, user: str, password: str, messages: int, result: LoadResult) -> None:
    reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 22)
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await _readUntil(reader, b"\r\n")
        writer.write(f"USER {user}\r\n".encode())
        await _readUntil(reader, b"\r\n")
        writer.write(f"PASS {password}\r\n".encode())
        await _readUntil(reader, b"\r\n")
        writer.write(b"LIST\r\n")
        await _readUntil(reader, TERMINATOR)
        writer.write(b"UIDL\r\n")
        await _readUntil(reader, TERMINATOR)
        latencies = result.latencies
        perf = time.perf_counter
        for number in range(1, messages + 1):
            command = b"RETR %d\r\n" % number
            started = perf()
            writer.write(command)
            data = await reader.readuntil(TERMINATOR)
            latencies.append(perf() - started)
            if not data.startswith(b"+OK"):
                raise BenchmarkError(f"RETR failed: {data[:200]!r}")
            result.messages += 1
            result.octets += len(data)
        writer.write(b"QUIT\r\n")
        await _readUntil(reader, b"\r\n")
        result.sessions += 1
        result.end = max(result.end, time.time())
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _clientLoop(
    port: int,
    user: str,
    password: str,
    messages: int,
    startAt: float,
    deadline: float,
    maxSessions: int,
    result: LoadResult,
    maxErrors: int | None = MAX_ERROR_TEXTS,
    firstAt: float | None = None,
) -> None:
    """
    Run sessions one after another from C{startAt} until C{deadline}; after an error,
    start another session, unless the process has seen more than C{maxErrors} errors
    (L{None}: carry on whatever the count).
    """
    await asyncio.sleep(max(0.0, startAt - time.time()))
    for index in range(maxSessions):
        if time.time() >= deadline:
            break
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT):
                await _session(port, user, password, messages, result)
        except Exception as e:
            result.errorCount += 1
            kind = errorKind(e)
            result.errorKinds[kind] = result.errorKinds.get(kind, 0) + 1
            if len(result.errors) < MAX_ERROR_TEXTS:
                result.errors.append(f"{user}: {type(e).__name__}: {e}")
            if maxErrors is not None and result.errorCount > maxErrors:
                return
            await asyncio.sleep(0.01)
        finally:
            if index == 0 and firstAt is not None:
                result.firstSessionSeconds = max(result.firstSessionSeconds, time.time() - firstAt)


async def _load(
    port: int,
    users: Sequence[str],
    password: str,
    messages: int,
    startAt: float,
    duration: float,
    maxSessions: int,
    stagger: float = 0.0005,
    maxErrors: int | None = MAX_ERROR_TEXTS,
) -> LoadResult:
    result = LoadResult()
    deadline = startAt + duration
    # By default, stagger the first connections a little so the listen backlog never
    # overflows.
    tasks = [
        _clientLoop(
            port,
            user,
            password,
            messages,
            startAt + i * stagger,
            deadline,
            maxSessions,
            result,
            maxErrors,
            startAt,
        )
        for i, user in enumerate(users)
    ]
    await asyncio.gather(*tasks)
    return result


def loadWorker(
    conn: Connection,
    port: int,
    users: Sequence[str],
    password: str,
    messages: int,
    startAt: float,
    duration: float,
    maxSessions: int,
    stagger: float = 0.0005,
    maxErrors: int | None = MAX_ERROR_TEXTS,
) -> None:
    """
    The body of a load-generator process: run the clients, send back a L{LoadResult}.

    @param stagger: Seconds between the first connections of two clients.
    @param maxErrors: Stop a client after an error once the process has seen more than
        this many; L{None} to carry on, counting them.
    """
    cpuBefore = time.process_time()
    try:
        result = asyncio.run(
            _load(
                port, users, password, messages, startAt, duration, maxSessions, stagger, maxErrors
            )
        )
    except BaseException as e:
        result = LoadResult(errors=[f"worker: {type(e).__name__}: {e}"], errorCount=1)
    result.cpuSeconds = time.process_time() - cpuBefore
    conn.send(result)
    conn.close()


# Whole sessions, plain or over TLS (the body of worker processes).

#: How a session starts: plain TCP, plain then STLS, or TLS from the first octet.
SESSION_MODES = ("plain", "stls", "implicit")

#: The name the benchmark's server certificate is issued for, and checked against.
TLS_SERVER_NAME = "localhost"


def clientTLSContext(caPath: str) -> ssl.SSLContext:
    """
    What a careful mail client uses: the default context (certificate and host name
    verified, default ciphers) trusting the benchmark's CA, TLS 1.3 only.
    """
    context = ssl.create_default_context(cafile=caPath)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def _statusLine(sock: socket.socket) -> bytes:
    """
    One status line, which must be positive.  Only for the greeting and the STLS answer,
    after which the server sends nothing until the client speaks again, so nothing past
    the line can be read by mistake.
    """
    data = b""
    for _ in range(100):
        chunk = sock.recv(512)
        if not chunk:
            raise BenchmarkError(f"the server closed the connection after {data!r}")
        data += chunk
        if data.endswith(b"\r\n"):
            if not data.startswith(b"+OK"):
                raise BenchmarkError(f"expected +OK, got {data[:200]!r}")
            return data
    raise BenchmarkError("no complete status line in 100 reads")


def runSession(mode: str, port: int, batch: bytes, context: ssl.SSLContext | None) -> str:
    """
    One whole session: connect; for STLS, read the greeting, send C{STLS} and read its
    answer; for STLS and implicit TLS, do the TLS handshake (the certificate is verified);
    read the greeting (unless already read); send C{batch} (C{USER}, C{PASS}, C{STAT},
    C{QUIT}, pipelined) in one write; read the four answers up to the server's close.

    @return: The TLS version and cipher suite, or C{"plain"}.
    """
    raw = socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT)
    sock: socket.socket = raw
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if mode == "stls":
            _statusLine(raw)
            raw.sendall(b"STLS\r\n")
            _statusLine(raw)
        if mode != "plain":
            assert context is not None
            sock = context.wrap_socket(raw, server_hostname=TLS_SERVER_NAME)
        if mode != "stls":
            _statusLine(sock)
        sock.sendall(batch)
        chunks = []
        for _ in range(100):
            chunk = sock.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
        reply = b"".join(chunks).split(b"\r\n")
        if len(reply) != 5 or not all(line.startswith(b"+OK") for line in reply[:4]):
            raise BenchmarkError(f"unexpected session replies {reply!r}")
        if isinstance(sock, ssl.SSLSocket):
            cipher = sock.cipher()
            return f"{sock.version()} {cipher[0] if cipher else '?'}"
        return "plain"
    finally:
        sock.close()
        raw.close()


@dataclass
class SessionResult:
    """
    What one session worker measured.
    """

    sessions: int = 0
    end: float = 0.0
    cpuSeconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def sessionWorker(
    conn: Connection,
    mode: str,
    port: int,
    user: str,
    password: str,
    caPath: str | None,
    startAt: float,
    duration: float,
    maxSessions: int,
) -> None:
    """
    The body of a session-worker process: from C{startAt}, one session after another
    (L{runSession}) until C{duration} has passed; send back a L{SessionResult}.  It stops
    at the first error.
    """
    result = SessionResult()
    cpuBefore = time.process_time()
    try:
        context = None if caPath is None else clientTLSContext(caPath)
        batch = f"USER {user}\r\nPASS {password}\r\nSTAT\r\nQUIT\r\n".encode()
        time.sleep(max(0.0, startAt - time.time()))
        cpuBefore = time.process_time()
        deadline = startAt + duration
        for _ in range(maxSessions):
            if time.time() >= deadline:
                break
            runSession(mode, port, batch, context)
            result.sessions += 1
            result.end = time.time()
    except BaseException as e:
        result.errors.append(f"{mode} worker {user}: {type(e).__name__}: {e}")
    result.cpuSeconds = time.process_time() - cpuBefore
    conn.send(result)
    conn.close()


# Connections kept waiting in the failed-login penalty (the body of a worker process).


@dataclass
class PenaltyReport:
    """
    What the penalty process saw.

    @ivar waiting: How many connections were waiting for the answer to a wrong C{PASS},
        sampled every 10 ms from the moment all of them first were until told to stop.
    @ivar delays: Seconds from each wrong C{PASS} to its C{-ERR}.
    @ivar connections: Connections opened in all.
    """

    waiting: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    connections: int = 0
    errors: list[str] = field(default_factory=list)


class _PenaltyState:
    def __init__(self) -> None:
        self.waiting = 0
        self.stopping = False
        self.report = PenaltyReport()


async def _penalisedClient(
    port: int, user: str, wrongPassword: str, maxFailures: int, state: _PenaltyState
) -> None:
    """
    Fail logins, one after another, for as long as the state says; reconnect after
    C{maxFailures} failures (when the server closes the connection).
    """
    perf = time.perf_counter
    for _ in range(10_000):
        if state.stopping:
            return
        reader, writer = await asyncio.open_connection(HOST, port)
        state.report.connections += 1
        try:
            await _readUntil(reader, b"\r\n")
            for _ in range(maxFailures):
                if state.stopping:
                    return
                writer.write(f"USER {user}\r\nPASS {wrongPassword}\r\n".encode())
                await _readUntil(reader, b"\r\n")
                state.waiting += 1
                sent = perf()
                try:
                    answer = await reader.readline()
                finally:
                    state.waiting -= 1
                if not answer.startswith(b"-ERR [AUTH]"):
                    # -ERR [SYS/TEMP] here: evicted by the server's limit on connections
                    # waiting to log in from one address (--max-per-client).
                    raise BenchmarkError(
                        f"expected -ERR [AUTH] to a wrong password, got {answer!r}"
                    )
                state.report.delays.append(perf() - sent)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _penalise(
    conn: Connection,
    port: int,
    count: int,
    user: str,
    wrongPassword: str,
    maxFailures: int,
    readyWithin: float,
) -> PenaltyReport:
    state = _PenaltyState()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(conn.fileno(), stop.set)

    async def client(index: int) -> None:
        # Stagger the connections a little so the listen backlog never overflows.
        await asyncio.sleep(index * 0.002)
        try:
            await _penalisedClient(port, user, wrongPassword, maxFailures, state)
        except Exception as e:
            state.report.errors.append(f"penalised client {index}: {type(e).__name__}: {e}")

    tasks = [asyncio.create_task(client(index)) for index in range(count)]
    started = time.monotonic()
    while state.waiting < count and not stop.is_set():
        elapsed = time.monotonic() - started
        if elapsed > readyWithin or state.report.errors:
            state.report.errors.append(
                f"only {state.waiting} of {count} connections waiting after {elapsed:.1f} s"
            )
            break
        await asyncio.sleep(0.005)
    else:
        conn.send("ready")
        while not stop.is_set():
            state.report.waiting.append(state.waiting)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.01)
    state.stopping = True
    loop.remove_reader(conn.fileno())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return state.report


def penaltyWorker(
    conn: Connection,
    port: int,
    count: int,
    user: str,
    wrongPassword: str,
    maxFailures: int,
    readyWithin: float,
) -> None:
    """
    The body of the penalty process: keep C{count} connections failing logins, so that
    they sit in the server's failed-login delay; send C{"ready"} once all of them wait at
    the same time, then sample how many wait until anything arrives on C{conn}; then send
    back a L{PenaltyReport} (or, if they never all waited, send the report at once).
    """
    try:
        report = asyncio.run(
            _penalise(conn, port, count, user, wrongPassword, maxFailures, readyWithin)
        )
    except BaseException as e:
        report = PenaltyReport(errors=[f"penalty worker: {type(e).__name__}: {e}"])
    conn.send(report)
    conn.close()
