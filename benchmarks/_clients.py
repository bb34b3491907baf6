"""
POP3 clients for the benchmarks: a buffered blocking client and an asyncio load generator.

Only the standard library is used.  Every network operation has a timeout and every loop is
bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
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

    def __init__(self, port: int, timeout: float = SOCKET_TIMEOUT) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
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
    """

    messages: int = 0
    sessions: int = 0
    octets: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    end: float = 0.0
    cpuSeconds: float = 0.0


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
) -> None:
    await asyncio.sleep(max(0.0, startAt - time.time()))
    for _ in range(maxSessions):
        if time.time() >= deadline:
            break
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT):
                await _session(port, user, password, messages, result)
        except Exception as e:
            result.errors.append(f"{user}: {type(e).__name__}: {e}")
            if len(result.errors) > 20:
                return
            await asyncio.sleep(0.01)


async def _load(
    port: int,
    users: Sequence[str],
    password: str,
    messages: int,
    startAt: float,
    duration: float,
    maxSessions: int,
) -> LoadResult:
    result = LoadResult()
    deadline = startAt + duration
    # Stagger the first connections a little so the listen backlog never overflows.
    tasks = [
        _clientLoop(
            port, user, password, messages, startAt + i * 0.0005, deadline, maxSessions, result
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
) -> None:
    """
    The body of a load-generator process: run the clients, send back a L{LoadResult}.
    """
    cpuBefore = time.process_time()
    try:
        result = asyncio.run(_load(port, users, password, messages, startAt, duration, maxSessions))
    except BaseException as e:
        result = LoadResult(errors=[f"worker: {type(e).__name__}: {e}"])
    result.cpuSeconds = time.process_time() - cpuBefore
    conn.send(result)
    conn.close()
