"""
Benchmark a pop3kit server (``python -m twisted pop3kit``) over loopback.

Run from the repository root::

    .venv/bin/python benchmarks/run.py            # everything (a few minutes)
    .venv/bin/python benchmarks/run.py --quick    # a smoke run, well under a minute
    .venv/bin/python benchmarks/run.py --only retr-50 --json results.json

See benchmarks/README.rst for what is measured and how.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from _clients import (
    HOST,
    BenchmarkError,
    BlockingClient,
    LoadResult,
    PenaltyReport,
    SessionResult,
    clientTLSContext,
    loadWorker,
    penaltyWorker,
    runSession,
    sessionWorker,
)

from pop3kit.backends.maildir import deliver
from pop3kit.checkers.passwdfile import hashPassword

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password"

MEASUREMENTS = (
    "sessions",
    "concurrent",
    "retr-large",
    "large-maildrop",
    "idle-memory",
    "stls-sessions",
    "implicit-tls-sessions",
    "penalty-latency",
    "crowd",
    "workers",
)
TLS_MEASUREMENTS = ("stls-sessions", "implicit-tls-sessions")

#: The unrelated client of penalty-latency connects from here, so that the server's
#: per-address failed-login penalty (earned by 127.0.0.1) does not apply to it.  Linux
#: routes all of 127.0.0.0/8 to the loopback interface.
UNRELATED_ADDRESS = "127.0.0.2"


@dataclass(frozen=True)
class Sizes:
    """
    How big each measurement is; L{FULL} for real figures, L{QUICK} for a smoke run.
    """

    sessionSeconds: float
    sessionMax: int
    concurrentClients: tuple[int, ...]
    concurrentMessages: int
    concurrentMessageSize: int
    concurrentSeconds: float
    largeMessageSize: int
    stallAfter: int
    stallSeconds: float
    maildropMessages: int
    warmSessions: int
    idleConnections: int
    tlsSeconds: float
    tlsWorkers: int
    tlsRounds: int
    penaltyConnections: int
    penaltyBaselineSeconds: float
    penaltySeconds: float
    crowdClients: tuple[int, ...]
    crowdMessages: int
    crowdSeconds: float


FULL = Sizes(
    sessionSeconds=5.0,
    sessionMax=100_000,
    concurrentClients=(50, 200),
    concurrentMessages=20,
    concurrentMessageSize=8 * 1024,
    concurrentSeconds=5.0,
    largeMessageSize=50 * 1024 * 1024,
    stallAfter=8 * 1024 * 1024,
    stallSeconds=3.0,
    maildropMessages=10_000,
    warmSessions=5,
    idleConnections=1_000,
    tlsSeconds=5.0,
    tlsWorkers=4,
    tlsRounds=2,
    penaltyConnections=100,
    penaltyBaselineSeconds=5.0,
    penaltySeconds=10.0,
    crowdClients=(200, 1000),
    crowdMessages=2,
    crowdSeconds=5.0,
)

QUICK = Sizes(
    sessionSeconds=1.0,
    sessionMax=20_000,
    concurrentClients=(8, 16),
    concurrentMessages=5,
    concurrentMessageSize=8 * 1024,
    concurrentSeconds=1.0,
    largeMessageSize=4 * 1024 * 1024,
    stallAfter=1024 * 1024,
    stallSeconds=0.5,
    maildropMessages=500,
    warmSessions=2,
    idleConnections=50,
    tlsSeconds=1.0,
    tlsWorkers=2,
    tlsRounds=1,
    penaltyConnections=10,
    penaltyBaselineSeconds=1.0,
    penaltySeconds=1.0,
    crowdClients=(50, 100),
    crowdMessages=2,
    crowdSeconds=1.0,
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Test data.


def messageText(size: int, seed: int) -> bytes:
    """
    A plausible message of exactly C{size} octets with LF line ends, as an MTA stores it.
    """
    header = (
        f"Return-Path: <sender{seed}@example.org>\n"
        f"From: Sender {seed} <sender{seed}@example.org>\n"
        "To: Bench User <bench@example.com>\n"
        f"Subject: Benchmark message {seed}\n"
        f"Message-ID: <{seed}.bench@example.org>\n"
        "Date: Tue, 26 Nov 2024 12:00:00 +0000\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
    ).encode("ascii")
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor %d\n"
    lines = [header]
    total = len(header)
    number = 0
    while total < size:
        chunk = line % number
        if number % 97 == 0:
            chunk = b"." + chunk  # some lines need byte-stuffing
        number += 1
        lines.append(chunk)
        total += len(chunk)
    data = b"".join(lines)[: size - 1] + b"\n"
    return data


@dataclass(frozen=True)
class TLSFiles:
    """
    A throwaway CA and a server certificate for C{localhost} and 127.0.0.1 (PEM paths).
    """

    ca: str
    certificate: str
    key: str


def makePKI(directory: Path) -> TLSFiles:
    """
    Make a CA and a server certificate with C{tests/_pki.py} (ECDSA P-256 keys), in
    C{directory}.  The tests package is not installed, so it is imported from the
    repository root.
    """
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests._pki import PKI

    pki = PKI(str(directory), name="pop3kit benchmark CA")
    server = pki.issue("localhost")
    return TLSFiles(ca=pki.ca.certificate, certificate=server.certificate, key=server.key)


@dataclass
class DataSet:
    root: Path
    passwd: Path
    sessionUser: str
    concurrentUsers: list[str]
    crowdUsers: list[str]
    largeUser: str
    maildropUser: str
    idleUsers: list[str]
    warmupUsers: list[str]
    tlsUsers: list[str]
    penalisedUser: str
    unrelatedUser: str
    tls: TLSFiles | None
    #: C{"maildir"}, or C{"mbox"}: one mbox file per user in L{root}, or
    #: C{"postgresql"}: the database L{dsn} of a private PostgreSQL.
    storage: str = "maildir"
    dsn: str | None = None


def buildData(root: Path, sizes: Sizes, needed: Sequence[str], storage: str = "maildir") -> DataSet:
    """
    Write the passwd-file and the Maildirs (or mbox files) the selected measurements need.
    """
    mailRoot = root / ("mail" if storage == "maildir" else "spool")
    mailRoot.mkdir(parents=True, exist_ok=True)
    data = DataSet(
        root=mailRoot,
        passwd=root / "passwd",
        sessionUser="sess0",
        concurrentUsers=[f"conc{i}" for i in range(max(sizes.concurrentClients))],
        crowdUsers=[f"crowd{i}" for i in range(max(sizes.crowdClients))],
        largeUser="large0",
        maildropUser="many0",
        idleUsers=[f"idle{i}" for i in range(sizes.idleConnections)],
        warmupUsers=[f"warm{i}" for i in range(20)],
        tlsUsers=[f"tls{i}" for i in range(sizes.tlsWorkers)],
        penalisedUser="penalised0",
        unrelatedUser="unrelated0",
        tls=makePKI(root / "pki") if set(needed) & set(TLS_MEASUREMENTS) else None,
        storage=storage,
    )
    users = [
        data.sessionUser,
        *data.concurrentUsers,
        *data.crowdUsers,
        data.largeUser,
        data.maildropUser,
        *data.idleUsers,
        *data.warmupUsers,
        *data.tlsUsers,
        data.penalisedUser,
        data.unrelatedUser,
    ]
    # One PLAIN entry per user: password hashing would otherwise dominate the login cost.
    # (addUser rewrites and fsyncs the whole file per user; writing it once is equivalent.)
    field = hashPassword(PASSWORD, "PLAIN")
    data.passwd.write_text("".join(f"{user}:{field}\n" for user in users))

    jobs: list[tuple[str, bytes]] = []
    small = messageText(2000, 1)
    jobs += [(data.sessionUser, messageText(4000, i)) for i in range(5)]
    # Every session worker has a maildrop like the sessions measurement's.
    jobs += [(user, messageText(4000, i)) for user in data.tlsUsers for i in range(5)]
    jobs += [(data.unrelatedUser, messageText(4000, i)) for i in range(5)]
    if "concurrent" in needed or "workers" in needed:
        for user in data.concurrentUsers:
            jobs += [
                (user, messageText(sizes.concurrentMessageSize, i))
                for i in range(sizes.concurrentMessages)
            ]
    if "crowd" in needed:
        jobs += [
            (user, messageText(4000, i))
            for user in data.crowdUsers
            for i in range(sizes.crowdMessages)
        ]
    if "large-maildrop" in needed:
        jobs += [(data.maildropUser, small) for _ in range(sizes.maildropMessages)]
    if "idle-memory" in needed:
        jobs += [(user, small) for user in data.idleUsers + data.warmupUsers]
    started = time.perf_counter()
    if storage == "mbox":
        from _mboxdata import deliverMbox

        log(f"appending {len(jobs)} messages to mbox files ...")
        if "retr-large" in needed:
            jobs.append((data.largeUser, messageText(sizes.largeMessageSize, 7)))
        deliverMbox(mailRoot, jobs)
        log(f"test data ready in {time.perf_counter() - started:.1f} s")
        return data
    if storage == "postgresql":
        from _pgdata import startPostgreSQL, storePostgreSQL

        log("starting a private PostgreSQL, pop3kit storage init ...")
        data.dsn = startPostgreSQL()
        log(f"storing {len(jobs)} messages in PostgreSQL ...")
        if "retr-large" in needed:
            jobs.append((data.largeUser, messageText(sizes.largeMessageSize, 7)))
        storePostgreSQL(data.dsn, jobs)
        log(f"test data ready in {time.perf_counter() - started:.1f} s")
        return data
    log(f"delivering {len(jobs)} messages with pop3kit.backends.maildir.deliver ...")
    with ThreadPoolExecutor(16) as pool:
        for _ in pool.map(lambda job: deliver(str(mailRoot / job[0]), io.BytesIO(job[1])), jobs):
            pass
    if "retr-large" in needed:
        deliver(str(mailRoot / data.largeUser), io.BytesIO(messageText(sizes.largeMessageSize, 7)))
    log(f"test data ready in {time.perf_counter() - started:.1f} s")
    return data


# The server process.


def freePort() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def memoryOf(pid: int) -> tuple[int, int]:
    """
    VmRSS and VmHWM of process C{pid}, in KiB.
    """
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def cpuSecondsOf(pid: int) -> float:
    """
    User plus system CPU seconds used so far by process C{pid}.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def childrenOf(pid: int) -> list[int]:
    """
    The process ids of the children of process C{pid} (the workers of a C{--workers}
    server).
    """
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except FileNotFoundError:
        return []


_running: list[subprocess.Popen[bytes]] = []


class Server:
    """
    A pop3kit server in a child process: C{python -m twisted pop3kit ...}.

    @ivar implicitTLSPort: With C{tls}, the port of a second listener, C{ssl:PORT}.
    """

    def __init__(
        self,
        data: DataSet,
        workdir: Path,
        name: str,
        profile: Path | None,
        *,
        tls: bool = False,
        failedLoginPenalty: bool = False,
        defaults: bool = False,
        workers: str | None = None,
        backlog: int | None = None,
    ) -> None:
        """
        @param defaults: Keep pop3kit's default limits on connections waiting to log in
            and its failed-login penalty, instead of lifting them.
        """
        self.port = freePort()
        self.workers = workers
        self.implicitTLSPort: int | None = None
        self.logPath = workdir / f"server-{name}.log"
        command = [sys.executable]
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            command += [
                str(REPO / "benchmarks" / "_profiledserver.py"),
                str(profile.resolve() / f"{name}.pstats"),
            ]
        else:
            command += ["-m", "twisted"]
        command += [
            f"--log-file={self.logPath}",
            "--log-format=text",
            "pop3kit",
            "--listen",
            f"tcp:{self.port}:interface={HOST}"
            + ("" if backlog is None else f":backlog={backlog}"),
            *(
                ["--maildir-root", str(data.root)]
                if data.storage == "maildir"
                else ["--storage", data.dsn]
                if data.dsn is not None
                else ["--storage", f"mbox:{data.root}/%u"]
            ),
            "--auth",
            f"passwd-file:{data.passwd}",
        ]
        if not defaults:
            command += [
                # Hundreds of benchmark clients connect at once from one address (and the
                # 100 connections of penalty-latency wait to log in from one address).
                "--max-per-client",
                "100000",
                "--max-unauthenticated",
                "100000",
            ]
        if failedLoginPenalty:
            # The defaults, spelled out: 2 s, doubling per failure from one address up to
            # 15 s; a connection is closed after 3 failures.
            command += [
                "--failed-login-delay",
                "2",
                "--failed-login-max-delay",
                "15",
                "--max-failed-logins",
                "3",
            ]
        elif not defaults:
            command += ["--failed-login-delay", "0"]
        if workers is not None:
            command += ["--workers", workers]
        if tls:
            if data.tls is None:
                raise BenchmarkError("no certificate was made for this run")
            self.implicitTLSPort = freePort()
            command += [
                "--tls-certificate",
                data.tls.certificate,
                "--tls-key",
                data.tls.key,
                "--listen",
                f"ssl:{self.implicitTLSPort}:interface={HOST}",
            ]
        # The plugin (twisted/plugins/pop3kit_plugin.py) is found from the repository root,
        # and so is pop3kit: the checkout being benchmarked, not whichever is installed.
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *filter(None, [environment.get("PYTHONPATH")])]
        )
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        _running.append(self.process)
        self.pid = self.process.pid
        try:
            self._waitReady()
        except BaseException:
            self.stop()
            raise

    def _waitReady(self) -> None:
        deadline = time.monotonic() + 30
        expected = 0
        if self.workers is not None:
            expected = os.cpu_count() or 1 if self.workers == "auto" else int(self.workers)
            expected = 0 if expected == 1 else expected
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchmarkError(f"the server exited early; see {self.logPath}")
            if len(childrenOf(self.pid)) < expected:
                time.sleep(0.05)
                continue
            try:
                with BlockingClient(self.port, timeout=5) as client:
                    client.ok()
                    client.send(b"QUIT\r\n")
                    client.ok()
                return
            except OSError:
                time.sleep(0.05)
        raise BenchmarkError("the server did not start within 30 s")

    def cpuSeconds(self) -> float:
        """
        The CPU seconds of the server: its process and, with C{--workers}, its workers.
        """
        return sum(self.cpuByProcess().values())

    def cpuByProcess(self) -> dict[int, float]:
        """
        The CPU seconds of the server's process and of each of its workers, by process id.
        """
        figures = {self.pid: cpuSecondsOf(self.pid)}
        for child in childrenOf(self.pid):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                figures[child] = cpuSecondsOf(child)
        return figures

    def memory(self) -> tuple[int, int]:
        return memoryOf(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(5)
        if self.process in _running:
            _running.remove(self.process)


def stopAll() -> None:
    for process in list(_running):
        if process.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(5)
        _running.remove(process)


@contextlib.contextmanager
def runningServer(
    ctx: Context,
    name: str,
    *,
    tls: bool = False,
    failedLoginPenalty: bool = False,
    defaults: bool = False,
    workers: str | None = None,
    backlog: int | None = None,
) -> Iterator[Server]:
    server = Server(
        ctx.data,
        ctx.workdir,
        name,
        ctx.profile,
        tls=tls,
        failedLoginPenalty=failedLoginPenalty,
        defaults=defaults,
        workers=ctx.workers if workers is None else workers,
        backlog=backlog,
    )
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Context:
    data: DataSet
    sizes: Sizes
    workdir: Path
    profile: Path | None
    #: The --workers of every server, or None for the server's default (one process).
    workers: str | None = None


class MemorySampler:
    """
    Samples a process's VmRSS in a thread, keeping the highest value per phase.
    """

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self._pid = pid
        self._interval = interval
        self.phase = "before"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, _ = memoryOf(self._pid)
            phase = self.phase
            self.peaks[phase] = max(self.peaks.get(phase, 0), rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# 1. Sessions per second.


def measureSessions(ctx: Context) -> dict[str, Any]:
    user = ctx.data.sessionUser
    batch = f"USER {user}\r\nPASS {PASSWORD}\r\nSTAT\r\nQUIT\r\n".encode()
    with runningServer(ctx, "sessions") as server:

        def session() -> None:
            runSession("plain", server.port, batch, None)

        for _ in range(50):  # warm-up
            session()
        count = 0
        cpuBefore = server.cpuSeconds()
        started = time.perf_counter()
        deadline = started + ctx.sizes.sessionSeconds
        while count < ctx.sizes.sessionMax and time.perf_counter() < deadline:
            session()
            count += 1
        elapsed = time.perf_counter() - started
        cpu = (server.cpuSeconds() - cpuBefore) / elapsed
    rate = count / elapsed
    log(f"sessions: {count} in {elapsed:.2f} s = {rate:.0f}/s; server CPU {cpu:.0%}")
    return {
        "sessions": count,
        "seconds": elapsed,
        "sessions_per_second": rate,
        "server_cpu_fraction": cpu,
    }


# 2. Concurrent clients.


def _runLoad(
    server: Server,
    users: Sequence[str],
    messages: int,
    seconds: float,
    *,
    crowd: bool = False,
) -> tuple[LoadResult, float, dict[int, float]]:
    """
    Run one client per user (in two load-generator processes) against C{server} for
    C{seconds}, each retrieving C{messages} messages per session.

    @param crowd: All clients at once and none giving up after errors (the C{crowd}
        measurement), where errors are counted; otherwise the clients are staggered, and
        any error fails the measurement.
    @return: The merged client results, the start time, and the CPU seconds each server
        process (the server, and its workers if any) used meanwhile.
    """
    mp = multiprocessing.get_context("fork")
    workers = 2
    startAt = time.time() + 1.0
    processes = []
    pipes = []
    for index in range(workers):
        parentEnd, childEnd = mp.Pipe(duplex=False)
        process = mp.Process(
            target=loadWorker,
            args=(
                childEnd,
                server.port,
                users[index::workers],
                PASSWORD,
                messages,
                startAt,
                seconds,
                10_000,
            ),
            # A crowd: no staggering, and no giving up after errors.
            kwargs={"stagger": 0.0, "maxErrors": None} if crowd else {},
            daemon=True,
        )
        process.start()
        childEnd.close()
        processes.append(process)
        pipes.append(parentEnd)
    merged = LoadResult()
    cpuBefore = server.cpuByProcess()
    try:
        for pipe in pipes:
            if not pipe.poll(seconds + 120):
                if not crowd:
                    raise BenchmarkError("a load generator did not report in time")
                merged.errors.append("a load generator did not report in time")
                merged.errorCount += 1
                continue
            part: LoadResult = pipe.recv()
            merged.messages += part.messages
            merged.sessions += part.sessions
            merged.octets += part.octets
            merged.latencies += part.latencies
            merged.errors += part.errors
            merged.errorCount += part.errorCount
            for kind, count in part.errorKinds.items():
                merged.errorKinds[kind] = merged.errorKinds.get(kind, 0) + count
            merged.end = max(merged.end, part.end)
            merged.firstSessionSeconds = max(merged.firstSessionSeconds, part.firstSessionSeconds)
            merged.cpuSeconds += part.cpuSeconds
        cpuAfter = server.cpuByProcess()
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)
    if merged.errors and not crowd:
        raise BenchmarkError(f"{merged.errorCount} client errors, first: {merged.errors[0]}")
    cpu = {pid: seconds - cpuBefore.get(pid, 0.0) for pid, seconds in cpuAfter.items()}
    return merged, startAt, cpu


def measureConcurrent(ctx: Context) -> dict[str, Any]:
    results: dict[str, Any] = {}
    sizes = ctx.sizes
    for clients in sizes.concurrentClients:
        with runningServer(ctx, f"concurrent-{clients}") as server:
            merged, startAt, cpuByProcess = _runLoad(
                server,
                ctx.data.concurrentUsers[:clients],
                sizes.concurrentMessages,
                sizes.concurrentSeconds,
            )
        elapsed = merged.end - startAt
        cpu = sum(cpuByProcess.values()) / elapsed
        rate = merged.messages / elapsed
        p50 = percentile(merged.latencies, 0.50) * 1000
        p99 = percentile(merged.latencies, 0.99) * 1000
        log(
            f"concurrent {clients}: {merged.messages} RETR in {elapsed:.2f} s = {rate:.0f}/s, "
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {merged.sessions} sessions; "
            f"server CPU {cpu:.0%}, clients CPU {merged.cpuSeconds / elapsed:.0%}"
        )
        results[str(clients)] = {
            "clients": clients,
            "messages": merged.messages,
            "sessions": merged.sessions,
            "seconds": elapsed,
            "messages_per_second": rate,
            "wire_mb_per_second": merged.octets / elapsed / 1e6,
            "retr_p50_ms": p50,
            "retr_p99_ms": p99,
            "retr_mean_ms": statistics.fmean(merged.latencies) * 1000,
            "server_cpu_fraction": cpu,
            "clients_cpu_fraction": merged.cpuSeconds / elapsed,
        }
    return results


# 2b. A crowd behind one address, with the default limits.


def measureCrowd(ctx: Context) -> dict[str, Any]:
    """
    N clients from one address (127.0.0.1) connect at once, with pop3kit's default limits
    on connections waiting to log in, and each runs whole sessions (log in, LIST, UIDL,
    RETR each message, QUIT) one after another until the time is up.  A client's error
    (a connection closed or refused, an unexpected answer) is counted and the client
    carries on with a new session; the run never stops for it.
    """
    results: dict[str, Any] = {}
    sizes = ctx.sizes
    for clients in sizes.crowdClients:
        users = ctx.data.crowdUsers[:clients]
        with runningServer(ctx, f"crowd-{clients}", defaults=True) as server:
            merged, startAt, _ = _runLoad(
                server, users, sizes.crowdMessages, sizes.crowdSeconds, crowd=True
            )
        elapsed = max(merged.end - startAt, 1e-9)
        rate = merged.sessions / elapsed
        log(
            f"crowd {clients}: {merged.sessions} sessions in {elapsed:.2f} s = {rate:.0f}/s, "
            f"{merged.errorCount} errors {merged.errorKinds or ''}, all clients through a "
            "first session within "
            f"{merged.firstSessionSeconds:.2f} s"
            + (f"; first error: {merged.errors[0]}" if merged.errors else "")
        )
        results[str(clients)] = {
            "clients": clients,
            "sessions": merged.sessions,
            "messages": merged.messages,
            "seconds": elapsed,
            "sessions_per_second": rate,
            "errors": merged.errorCount,
            "error_kinds": merged.errorKinds,
            "first_errors": merged.errors[:5],
            "first_session_seconds": merged.firstSessionSeconds,
        }
    return results


# 3. One large message.


def _readLarge(
    client: BlockingClient,
    buffer: memoryview,
    stallAfter: int | None = None,
    stall: Callable[[], None] | None = None,
) -> int:
    """
    Read a RETR response from the socket at full speed until the terminator; returns the
    octets read.  With C{stallAfter}, call C{stall} once that many octets have arrived.
    """
    sock = client.sock
    total = 0
    tail = b""
    for _ in range(10_000_000):
        n = sock.recv_into(buffer)
        if n == 0:
            raise BenchmarkError("connection closed mid-message")
        total += n
        tail = (tail + bytes(buffer[max(0, n - 5) : n]))[-5:]
        if tail.endswith(TERMINATOR_BYTES):
            return total
        if stallAfter is not None and stall is not None and total >= stallAfter:
            stall()
            stallAfter = None
    raise BenchmarkError("too many reads")


TERMINATOR_BYTES = b"\r\n.\r\n"


def measureLarge(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    buffer = memoryview(bytearray(1 << 20))
    with runningServer(ctx, "retr-large") as server, BlockingClient(server.port, 60) as client:
        client.login(ctx.data.largeUser, PASSWORD)
        client.send(b"LIST 1\r\n")
        size = int(client.ok().split()[2])
        time.sleep(0.3)
        rssBefore, hwmBefore = server.memory()
        runs = []
        with MemorySampler(server.pid) as sampler:
            sampler.phase = "read"
            cpuBefore = server.cpuSeconds()
            clientBefore = time.process_time()
            for _ in range(2):
                started = time.perf_counter()
                client.send(b"RETR 1\r\n")
                octets = _readLarge(client, buffer)
                runs.append((octets, time.perf_counter() - started))
            cpu = (server.cpuSeconds() - cpuBefore) / sum(run[1] for run in runs)
            clientCpu = (time.process_time() - clientBefore) / sum(run[1] for run in runs)

            # Now the same transfer with the client not reading for a while.
            def stall() -> None:
                sampler.phase = "stall"
                time.sleep(sizes.stallSeconds)
                sampler.phase = "resumed"

            sampler.phase = "read-before-stall"
            client.send(b"RETR 1\r\n")
            _readLarge(client, buffer, sizes.stallAfter, stall)
            sampler.phase = "after"
            time.sleep(0.05)
        client.send(b"QUIT\r\n")
        client.ok()
        rssAfter, hwmAfter = server.memory()
    best = min(runs, key=lambda run: run[1])
    mbps = best[0] / best[1] / 1e6
    peaks = sampler.peaks
    peakRead = max(peaks.get("read", 0), peaks.get("read-before-stall", 0))
    peakStall = peaks.get("stall", 0)
    growth = max(peakRead, peakStall, peaks.get("resumed", 0)) - rssBefore
    log(
        f"large RETR: {best[0]} octets in {best[1] * 1000:.0f} ms = {mbps:.0f} MB/s; "
        f"RSS before {rssBefore} KiB, peak reading {peakRead} KiB, peak stalled {peakStall} "
        f"KiB, HWM {hwmBefore} -> {hwmAfter} KiB; server CPU {cpu:.0%}, client CPU {clientCpu:.0%}"
    )
    return {
        "message_octets": size,
        "wire_octets": best[0],
        "seconds": best[1],
        "mb_per_second": mbps,
        "all_runs_mb_per_second": [octets / seconds / 1e6 for octets, seconds in runs],
        "server_cpu_fraction": cpu,
        "client_cpu_fraction": clientCpu,
        "rss_before_kib": rssBefore,
        "rss_peak_reading_kib": peakRead,
        "rss_peak_stalled_kib": peakStall,
        "rss_after_kib": rssAfter,
        "hwm_before_kib": hwmBefore,
        "hwm_after_kib": hwmAfter,
        "rss_growth_kib": growth,
        "flat": growth < 8 * 1024,
    }


# 4. A large maildrop.


def _timedSession(port: int, user: str) -> dict[str, float]:
    times: dict[str, float] = {}
    perf = time.perf_counter
    with BlockingClient(port) as client:
        client.ok()
        client.send(f"USER {user}\r\n".encode())
        client.ok()
        started = perf()
        client.send(f"PASS {PASSWORD}\r\n".encode())
        client.ok()
        times["PASS"] = perf() - started
        started = perf()
        client.send(b"STAT\r\n")
        client.ok()
        times["STAT"] = perf() - started
        for command in ("LIST", "UIDL"):
            started = perf()
            client.send(command.encode() + b"\r\n")
            client.multiline()
            times[command] = perf() - started
        client.send(b"QUIT\r\n")
        client.ok()
    return {name: seconds * 1000 for name, seconds in times.items()}


def _settle(path: Path) -> None:
    """
    Wait until nothing under C{path} has changed for two seconds, as a maildrop at login
    usually has not: a Maildir's listing index (and an mbox's listing cache) is trusted
    only for directories that have settled (see C{pop3kit.backends._maildirindex}).
    """
    newest = max(entry.stat().st_mtime for entry in [path, *path.iterdir()])
    time.sleep(max(0.0, newest + 2.1 - time.time()))


def measureMaildrop(ctx: Context) -> dict[str, Any]:
    _settle(ctx.data.root / ctx.data.maildropUser)
    with runningServer(ctx, "large-maildrop") as server:
        cold = _timedSession(server.port, ctx.data.maildropUser)
        warm = [
            _timedSession(server.port, ctx.data.maildropUser) for _ in range(ctx.sizes.warmSessions)
        ]
    second = warm[0]
    median = {name: statistics.median(session[name] for session in warm) for name in second}
    for label, figures in (("cold", cold), ("warm", second), ("warm median", median)):
        text = ", ".join(f"{name} {ms:.1f} ms" for name, ms in figures.items())
        log(f"{ctx.sizes.maildropMessages}-message maildrop, {label}: {text}")
    return {
        "messages": ctx.sizes.maildropMessages,
        "cold_ms": cold,
        "warm_ms": second,
        "warm_median_ms": median,
    }


# 5. Idle connections.


def measureIdle(ctx: Context) -> dict[str, Any]:
    count = ctx.sizes.idleConnections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))
    clients: list[BlockingClient] = []
    with runningServer(ctx, "idle-memory") as server:
        try:
            # Warm up: first logins load the passwd-file and the lazily built machinery.
            for user in ctx.data.warmupUsers:
                with BlockingClient(server.port) as client:
                    client.login(user, PASSWORD)
                    client.send(b"STAT\r\nQUIT\r\n")
                    client.ok()
                    client.ok()
            time.sleep(0.5)
            rssBefore, _ = server.memory()
            started = time.perf_counter()
            for user in ctx.data.idleUsers:
                client = BlockingClient(server.port)
                clients.append(client)
                client.login(user, PASSWORD)
            loginSeconds = time.perf_counter() - started
            time.sleep(1.0)
            rssAfter, hwm = server.memory()
        finally:
            for client in clients:
                client.close()
    perConnection = (rssAfter - rssBefore) * 1024 / count / 1000
    log(
        f"idle: {count} logged-in connections in {loginSeconds:.2f} s; RSS {rssBefore} -> "
        f"{rssAfter} KiB = {perConnection:.1f} KB per connection"
    )
    return {
        "connections": count,
        "login_seconds": loginSeconds,
        "rss_before_kib": rssBefore,
        "rss_after_kib": rssAfter,
        "hwm_kib": hwm,
        "kb_per_connection": perConnection,
    }


# 6. TLS sessions per second.


def _sessionRate(ctx: Context, server: Server, mode: str, port: int) -> dict[str, Any]:
    """
    Sessions per second of C{ctx.sizes.tlsWorkers} worker processes, each running one
    whole session after another (L{runSession}) as a user of its own.
    """
    sizes = ctx.sizes
    mp = multiprocessing.get_context("fork")
    caPath = None if mode == "plain" else ctx.data.tls.ca if ctx.data.tls else None
    startAt = time.time() + 0.5
    processes = []
    pipes = []
    for user in ctx.data.tlsUsers[: sizes.tlsWorkers]:
        parentEnd, childEnd = mp.Pipe(duplex=False)
        process = mp.Process(
            target=sessionWorker,
            args=(
                childEnd,
                mode,
                port,
                user,
                PASSWORD,
                caPath,
                startAt,
                sizes.tlsSeconds,
                sizes.sessionMax,
            ),
            daemon=True,
        )
        process.start()
        childEnd.close()
        processes.append(process)
        pipes.append(parentEnd)
    parts: list[SessionResult] = []
    time.sleep(max(0.0, startAt - time.time()))
    cpuBefore = server.cpuSeconds()
    try:
        for pipe in pipes:
            if not pipe.poll(sizes.tlsSeconds + 60):
                raise BenchmarkError("a session worker did not report in time")
            parts.append(pipe.recv())
        cpuSeconds = server.cpuSeconds() - cpuBefore
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)
    errors = [error for part in parts for error in part.errors]
    if errors:
        raise BenchmarkError(f"{len(errors)} client errors, first: {errors[0]}")
    sessions = sum(part.sessions for part in parts)
    elapsed = max(part.end for part in parts) - startAt
    clientsCpu = sum(part.cpuSeconds for part in parts)
    return {
        "sessions": sessions,
        "seconds": elapsed,
        "sessions_per_second": sessions / elapsed,
        "server_cpu_fraction": cpuSeconds / elapsed,
        "server_cpu_ms_per_session": cpuSeconds / sessions * 1000,
        "clients_cpu_fraction": clientsCpu / elapsed,
        "clients_cpu_ms_per_session": clientsCpu / sessions * 1000,
    }


def measureTLSSessions(ctx: Context, mode: str, name: str) -> dict[str, Any]:
    """
    Whole sessions per second with TLS (C{mode} "stls" or "implicit"), alternating with
    plain-TCP rounds on the same server and the same client set-up for comparison.
    """
    sizes = ctx.sizes
    load = os.getloadavg()
    rounds: list[dict[str, Any]] = []
    with runningServer(ctx, name, tls=True) as server:
        tlsPort = server.implicitTLSPort if mode == "implicit" else server.port
        assert tlsPort is not None and ctx.data.tls is not None
        context = clientTLSContext(ctx.data.tls.ca)
        user = ctx.data.tlsUsers[0]
        batch = f"USER {user}\r\nPASS {PASSWORD}\r\nSTAT\r\nQUIT\r\n".encode()
        for _ in range(50):  # warm-up
            runSession("plain", server.port, batch, None)
            negotiated = runSession(mode, tlsPort, batch, context)
        log(f"{name}: {negotiated}, server certificate verified against the benchmark CA")
        for number in range(sizes.tlsRounds):
            plain = _sessionRate(ctx, server, "plain", server.port)
            secure = _sessionRate(ctx, server, mode, tlsPort)
            rounds.append({"plain": plain, mode: secure})
            log(
                f"{name} round {number + 1}: {mode} {secure['sessions_per_second']:.0f}/s "
                f"(server CPU {secure['server_cpu_fraction']:.0%}, "
                f"{secure['server_cpu_ms_per_session']:.2f} ms/session; clients CPU "
                f"{secure['clients_cpu_fraction']:.0%}), plain "
                f"{plain['sessions_per_second']:.0f}/s (server CPU "
                f"{plain['server_cpu_fraction']:.0%}, "
                f"{plain['server_cpu_ms_per_session']:.2f} ms/session); "
                f"{sizes.tlsWorkers} workers"
            )
    tlsRates = [r[mode]["sessions_per_second"] for r in rounds]
    plainRates = [r["plain"]["sessions_per_second"] for r in rounds]
    best = max(rounds, key=lambda r: r[mode]["sessions_per_second"])
    return {
        "mode": mode,
        "workers": sizes.tlsWorkers,
        "negotiated": negotiated,
        "load_average_before": load,
        "sessions_per_second": max(tlsRates),
        "sessions_per_second_all": tlsRates,
        "server_cpu_ms_per_session": best[mode]["server_cpu_ms_per_session"],
        "plain_sessions_per_second": max(plainRates),
        "plain_sessions_per_second_all": plainRates,
        "plain_server_cpu_ms_per_session": min(
            r["plain"]["server_cpu_ms_per_session"] for r in rounds
        ),
        "rounds": rounds,
    }


def measureSTLSSessions(ctx: Context) -> dict[str, Any]:
    return measureTLSSessions(ctx, "stls", "stls-sessions")


def measureImplicitTLSSessions(ctx: Context) -> dict[str, Any]:
    return measureTLSSessions(ctx, "implicit", "implicit-tls-sessions")


# 7. An unrelated client's latency while others sit in the failed-login penalty.


def _unrelatedSessions(port: int, user: str, seconds: float, maxSessions: int) -> list[float]:
    """
    From L{UNRELATED_ADDRESS}, one session after another for C{seconds}: connect, read
    the greeting, C{USER} and C{PASS} (pipelined), C{STAT}, C{QUIT}.  Returns each
    session's seconds, from connecting to the answer to C{QUIT}.
    """
    perf = time.perf_counter
    latencies: list[float] = []
    deadline = perf() + seconds
    while len(latencies) < maxSessions and perf() < deadline:
        started = perf()
        with BlockingClient(port, sourceAddress=UNRELATED_ADDRESS) as client:
            client.login(user, PASSWORD)
            client.send(b"STAT\r\n")
            client.ok()
            client.send(b"QUIT\r\n")
            client.ok()
        latencies.append(perf() - started)
    return latencies


def _latencyFigures(latencies: Sequence[float]) -> dict[str, float]:
    return {
        "sessions": len(latencies),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


def measurePenalty(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    data = ctx.data
    load = os.getloadavg()
    mp = multiprocessing.get_context("fork")
    with runningServer(ctx, "penalty-latency", failedLoginPenalty=True) as server:
        _unrelatedSessions(server.port, data.unrelatedUser, 60, 50)  # warm-up
        baseline = _unrelatedSessions(
            server.port, data.unrelatedUser, sizes.penaltyBaselineSeconds, sizes.sessionMax
        )
        parentEnd, childEnd = mp.Pipe()
        process = mp.Process(
            target=penaltyWorker,
            args=(
                childEnd,
                server.port,
                sizes.penaltyConnections,
                data.penalisedUser,
                "wrong-password",
                3,
                30.0,
            ),
            daemon=True,
        )
        process.start()
        childEnd.close()
        try:
            if not parentEnd.poll(60):
                raise BenchmarkError("the penalty process did not get ready in time")
            message = parentEnd.recv()
            if isinstance(message, PenaltyReport):
                raise BenchmarkError(f"the penalty process failed: {message.errors[:3]}")
            cpuBefore = server.cpuSeconds()
            started = time.perf_counter()
            loaded = _unrelatedSessions(
                server.port, data.unrelatedUser, sizes.penaltySeconds, sizes.sessionMax
            )
            cpu = (server.cpuSeconds() - cpuBefore) / (time.perf_counter() - started)
            parentEnd.send("stop")
            if not parentEnd.poll(30):
                raise BenchmarkError("the penalty process did not report in time")
            report: PenaltyReport = parentEnd.recv()
        finally:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)
    if report.errors:
        raise BenchmarkError(f"penalised clients: {len(report.errors)} errors: {report.errors[:3]}")
    count = sizes.penaltyConnections
    before = _latencyFigures(baseline)
    during = _latencyFigures(loaded)
    waiting = report.waiting or [0]
    result = {
        "penalised_connections": count,
        "load_average_before": load,
        "baseline": before,
        "penalised": during,
        "added_p50_ms": during["p50_ms"] - before["p50_ms"],
        "added_p99_ms": during["p99_ms"] - before["p99_ms"],
        "server_cpu_fraction": cpu,
        "waiting_min": min(waiting),
        "waiting_mean": statistics.fmean(waiting),
        "waiting_all_fraction": sum(1 for n in waiting if n == count) / len(waiting),
        "penalty_answers": len(report.delays),
        "penalty_delay_min_s": min(report.delays, default=float("nan")),
        "penalty_delay_max_s": max(report.delays, default=float("nan")),
        "penalised_connections_opened": report.connections,
    }
    log(
        f"penalty: unrelated client from {UNRELATED_ADDRESS}, session latency p50/p99 "
        f"{before['p50_ms']:.2f}/{before['p99_ms']:.2f} ms ({before['sessions']} sessions) "
        f"without, {during['p50_ms']:.2f}/{during['p99_ms']:.2f} ms "
        f"({during['sessions']} sessions, max {during['max_ms']:.1f} ms) with {count} "
        f"connections in the penalty (waiting: min {result['waiting_min']}, mean "
        f"{result['waiting_mean']:.1f}, all {result['waiting_all_fraction']:.0%} of the time; "
        f"{len(report.delays)} -ERR answers after {result['penalty_delay_min_s']:.1f} to "
        f"{result['penalty_delay_max_s']:.1f} s); server CPU {cpu:.0%}"
    )
    return result


# The report.


# 9. Worker processes (--workers).

#: The --workers settings compared by the workers measurement; 1 is the one process.
WORKER_SETTINGS = ("1", "2", "auto")

#: The clients of the workers measurement's message rate.
WORKER_CLIENTS = 200

#: The listen backlog of the workers measurement's servers.  Its 200 clients connect
#: within 0.1 s; on a contended machine that overflows Twisted's default of 50, and the
#: client of a dropped handshake, waiting for the greeting, hears nothing until a SYN-ACK
#: retransmission finds room (up to 31 s later): a figure of the machine, not the server.
WORKER_BACKLOG = 1024


def _workerShares(cpu: dict[int, float], parent: int) -> dict[str, Any]:
    """
    The CPU seconds of the parent and of each worker, and each worker's share of the
    server's CPU time (parent and workers).
    """
    total = sum(cpu.values())
    workers = {pid: seconds for pid, seconds in cpu.items() if pid != parent}
    return {
        "parent_cpu_seconds": cpu.get(parent, 0.0),
        "worker_cpu_seconds": sorted(workers.values(), reverse=True),
        "worker_cpu_shares": sorted(
            (seconds / total if total else 0.0 for seconds in workers.values()), reverse=True
        ),
    }


def measureWorkers(ctx: Context) -> dict[str, Any]:
    """
    Sessions/s and the message rate of 200 clients with --workers 1, 2 and auto, with
    the server's CPU per session and per message and each worker's CPU time.
    """
    results: dict[str, Any] = {}
    for setting in WORKER_SETTINGS:
        figures: dict[str, Any] = {"workers": setting}
        with runningServer(
            ctx, f"workers-{setting}-sessions", workers=setting, backlog=WORKER_BACKLOG
        ) as server:
            before = server.cpuByProcess()
            rate = _sessionRate(ctx, server, "plain", server.port)
            after = server.cpuByProcess()
            cpu = {pid: seconds - before.get(pid, 0.0) for pid, seconds in after.items()}
            figures["sessions"] = {**rate, **_workerShares(cpu, server.pid)}
        with runningServer(
            ctx, f"workers-{setting}-messages", workers=setting, backlog=WORKER_BACKLOG
        ) as server:
            clients = min(WORKER_CLIENTS, len(ctx.data.concurrentUsers))
            merged, startAt, cpu = _runLoad(
                server,
                ctx.data.concurrentUsers[:clients],
                ctx.sizes.concurrentMessages,
                ctx.sizes.concurrentSeconds,
            )
            elapsed = merged.end - startAt
            serverCpu = sum(cpu.values())
            figures["messages"] = {
                "clients": clients,
                "messages": merged.messages,
                "seconds": elapsed,
                "messages_per_second": merged.messages / elapsed,
                "server_cpu_fraction": serverCpu / elapsed,
                "server_cpu_us_per_message": serverCpu / merged.messages * 1e6,
                "clients_cpu_fraction": merged.cpuSeconds / elapsed,
                "retr_p50_ms": percentile(merged.latencies, 0.50) * 1000,
                "retr_p99_ms": percentile(merged.latencies, 0.99) * 1000,
                **_workerShares(cpu, server.pid),
            }
        sessions, messages = figures["sessions"], figures["messages"]
        log(
            f"workers {setting}: {sessions['sessions_per_second']:.0f} sessions/s "
            f"({sessions['server_cpu_ms_per_session']:.2f} ms server CPU each), "
            f"{messages['messages_per_second']:.0f} msgs/s with {messages['clients']} clients "
            f"({messages['server_cpu_us_per_message']:.0f} us server CPU each); worker shares "
            + ", ".join(f"{share:.0%}" for share in messages["worker_cpu_shares"])
        )
        results[setting] = figures
    one = results["1"]["messages"]["server_cpu_us_per_message"]
    for cores in (8, 16):
        # All cores serving, clients elsewhere: the rate the measured CPU per message allows.
        results[f"projected_{cores}_cores_messages_per_second"] = {
            setting: cores / (results[setting]["messages"]["server_cpu_us_per_message"] / 1e6)
            for setting in WORKER_SETTINGS
        }
    results["one_process_cpu_us_per_message"] = one
    return results


def _workerRows(workers: dict[str, Any] | None) -> list[tuple[str, str, str, str, str, str]]:
    """
    The table rows of the workers measurement, with the issue's targets.
    """
    if not workers:
        return []
    rows = []
    one = workers["1"]
    for setting in WORKER_SETTINGS:
        figures = workers[setting]
        sessions, messages = figures["sessions"], figures["messages"]
        shares = messages["worker_cpu_shares"]
        several = setting != "1" and len(shares) > 1
        rows.append(
            (
                f"--workers {setting}: sessions/s (server CPU per session)",
                f"{sessions['sessions_per_second']:,.0f} "
                f"({sessions['server_cpu_ms_per_session']:.2f} ms)",
                "",
                "",
                "",
                "",
            )
        )
        rate = messages["messages_per_second"]
        rows.append(
            (
                f"--workers {setting}: {messages['clients']} clients msgs/s",
                f"{rate:,.0f}",
                ">= one process" if several else "",
                "",
                "",
                _verdict(rate >= one["messages"]["messages_per_second"]) if several else "",
            )
        )
        perMessage = messages["server_cpu_us_per_message"]
        reference = one["messages"]["server_cpu_us_per_message"]
        rows.append(
            (
                f"--workers {setting}: server CPU per message",
                f"{perMessage:.0f} us ({perMessage / reference - 1:+.0%})",
                "within 15% of one process" if several else "",
                "",
                "",
                _verdict(perMessage <= reference * 1.15) if several else "",
            )
        )
        if several:
            rows.append(
                (
                    f"--workers {setting}: each worker's share of server CPU",
                    " / ".join(f"{share:.0%}" for share in shares),
                    ">= 30% each",
                    "",
                    "",
                    _verdict(min(shares) >= 0.30),
                )
            )
    for cores in (8, 16):
        projected = workers[f"projected_{cores}_cores_messages_per_second"]
        rows.append(
            (
                f"projected msgs/s on {cores} cores (from CPU per message)",
                " / ".join(f"{projected[setting]:,.0f}" for setting in WORKER_SETTINGS),
                "",
                "",
                "",
                "",
            )
        )
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "NO")


def table(results: dict[str, Any], sizes: Sizes) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []
    sessions = results.get("sessions")
    if sessions:
        rate = sessions["sessions_per_second"]
        rows.append(
            (
                "Sessions/s (1 client: USER, PASS, STAT, QUIT)",
                f"{rate:,.0f}",
                ">= 1,500",
                "157",
                "742",
                _verdict(rate >= 1500),
            )
        )
    crowd = results.get("crowd")
    if crowd:
        for key, figures in crowd.items():
            rows.append(
                (
                    f"{key} clients from one address, default limits: sessions/s",
                    f"{figures['sessions_per_second']:,.0f}",
                    "",
                    "",
                    "",
                    "",
                )
            )
            rows.append(
                (
                    f"{key} clients from one address, default limits: errors",
                    f"{figures['errors']:,}",
                    "0",
                    "",
                    "",
                    _verdict(figures["errors"] == 0),
                )
            )
    concurrent = results.get("concurrent")
    if concurrent:
        for key, figures in concurrent.items():
            clients = int(key)
            target50 = clients == 50
            rate = figures["messages_per_second"]
            rows.append(
                (
                    f"{clients} clients: messages/s (RETR {sizes.concurrentMessages} x 8 KiB)",
                    f"{rate:,.0f}",
                    ">= 6,000" if target50 else "",
                    "2,760" if target50 else "",
                    "",
                    _verdict(rate >= 6000 if target50 else None),
                )
            )
            rows.append(
                (
                    f"{clients} clients: RETR latency p50",
                    f"{figures['retr_p50_ms']:.2f} ms",
                    "< 1 ms" if target50 else "",
                    "",
                    "+44 ms" if target50 else "",
                    _verdict(figures["retr_p50_ms"] < 1 if target50 else None),
                )
            )
            rows.append(
                (
                    f"{clients} clients: RETR latency p99",
                    f"{figures['retr_p99_ms']:.2f} ms",
                    "",
                    "",
                    "",
                    "",
                )
            )
    large = results.get("retr-large")
    if large:
        mib = sizes.largeMessageSize / 1024 / 1024
        rows.append(
            (
                f"RETR of one {mib:.0f} MiB message: MB/s on the wire",
                f"{large['mb_per_second']:,.0f}",
                ">= 450",
                "292",
                "",
                _verdict(large["mb_per_second"] >= 450),
            )
        )
        rows.append(
            (
                "  server RSS before / peak reading / peak stalled",
                f"{large['rss_before_kib'] / 1024:.1f} / {large['rss_peak_reading_kib'] / 1024:.1f}"
                f" / {large['rss_peak_stalled_kib'] / 1024:.1f} MiB",
                "flat",
                "",
                "",
                _verdict(large["flat"]),
            )
        )
        rows.append(
            (
                "  server VmHWM before / after",
                f"{large['hwm_before_kib'] / 1024:.1f} / {large['hwm_after_kib'] / 1024:.1f} MiB",
                "",
                "",
                "",
                "",
            )
        )
    maildrop = results.get("large-maildrop")
    if maildrop:
        n = maildrop["messages"]
        targets = {"LIST": (5.0, "4"), "UIDL": (10.0, "20")}
        for command in ("PASS", "STAT", "LIST", "UIDL"):
            cold = maildrop["cold_ms"][command]
            warm = maildrop["warm_ms"][command]
            target, dovecot = targets.get(command, (None, ""))
            rows.append(
                (
                    f"{n:,}-message maildrop: {command} (cold / warm)",
                    f"{cold:.1f} / {warm:.1f} ms",
                    "" if target is None else f"<= {target:.0f} ms",
                    f"{dovecot} ms" if dovecot else "",
                    "",
                    _verdict(None if target is None else warm <= target),
                )
            )
    idle = results.get("idle-memory")
    if idle:
        perConnection = idle["kb_per_connection"]
        rows.append(
            (
                f"Memory per idle logged-in connection ({idle['connections']:,})",
                f"{perConnection:.1f} KB",
                "<= 5 KB",
                "~600 KB",
                "",
                _verdict(perConnection <= 5),
            )
        )
    for name, label in (("stls-sessions", "STLS"), ("implicit-tls-sessions", "Implicit-TLS")):
        tls = results.get(name)
        if not tls:
            continue
        rate = tls["sessions_per_second"]
        isSTLS = name == "stls-sessions"
        workers = tls["workers"]
        rows.append(
            (
                f"{label} sessions/s ({workers} clients: TLS 1.3, USER, PASS, STAT, QUIT)",
                f"{rate:,.0f}",
                ">= 200" if isSTLS else "",
                "97" if isSTLS else "",
                "",
                _verdict(rate >= 200 if isSTLS else None),
            )
        )
        rows.append(
            (
                "  same run, same clients, plain TCP",
                f"{tls['plain_sessions_per_second']:,.0f}",
                "",
                "",
                "",
                "",
            )
        )
        rows.append(
            (
                "  server CPU per session, TLS / plain",
                f"{tls['server_cpu_ms_per_session']:.2f} / "
                f"{tls['plain_server_cpu_ms_per_session']:.2f} ms",
                "",
                "",
                "",
                "",
            )
        )
    penalty = results.get("penalty-latency")
    if penalty:
        before, during = penalty["baseline"], penalty["penalised"]
        count = penalty["penalised_connections"]
        rows.append(
            (
                "Unrelated client's session latency p50 / p99",
                f"{before['p50_ms']:.2f} / {before['p99_ms']:.2f} ms",
                "",
                "",
                "",
                "",
            )
        )
        rows.append(
            (
                f"  with {count} sessions in the failed-login penalty",
                f"{during['p50_ms']:.2f} / {during['p99_ms']:.2f} ms",
                "",
                "",
                "",
                "",
            )
        )
        rows.append(
            (
                "  added latency p50 / p99",
                f"{penalty['added_p50_ms']:+.2f} / {penalty['added_p99_ms']:+.2f} ms",
                "< 50 ms",
                "",
                "",
                _verdict(penalty["added_p99_ms"] < 50),
            )
        )
    rows += _workerRows(results.get("workers"))
    header = ("Measurement", "pop3kit", "Target", "Dovecot 2.3", "twisted.mail", "Met")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)),
        "  ".join("-" * width for width in widths),
    ]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return "\n".join(lines)


RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "sessions": measureSessions,
    "concurrent": measureConcurrent,
    "retr-large": measureLarge,
    "large-maildrop": measureMaildrop,
    "idle-memory": measureIdle,
    "stls-sessions": measureSTLSSessions,
    "implicit-tls-sessions": measureImplicitTLSSessions,
    "penalty-latency": measurePenalty,
    "crowd": measureCrowd,
    "workers": measureWorkers,
}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--only", choices=MEASUREMENTS, action="append", help="run only this")
    parser.add_argument("--quick", action="store_true", help="a short smoke run, small sizes")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument(
        "--workdir", type=Path, help="keep test data and server logs here (default: temporary)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run each server under cProfile, writing DIR/<measurement>.pstats (slows it)",
    )
    parser.add_argument(
        "--tls-workers",
        type=int,
        metavar="N",
        help=f"client processes of the TLS session measurements (default {FULL.tlsWorkers})",
    )
    parser.add_argument(
        "--storage",
        choices=["maildir", "mbox", "postgresql"],
        default="maildir",
        help="serve Maildirs (default), one mbox file per user, or a private PostgreSQL",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        help="start every server with --workers N (a number or auto; default: one process)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    sizes = QUICK if args.quick else FULL
    if args.tls_workers is not None:
        if args.tls_workers < 1:
            parser.error("--tls-workers must be at least 1")
        sizes = replace(sizes, tlsWorkers=args.tls_workers)
    selected = [name for name in MEASUREMENTS if not args.only or name in args.only]

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir))
    else:
        workdir = Path(tempfile.mkdtemp(prefix="pop3kit-bench-"))
    results: dict[str, Any] = {}
    try:
        data = buildData(workdir, sizes, selected, args.storage)
        ctx = Context(data, sizes, workdir, args.profile, args.workers)
        for name in selected:
            log(f"--- {name}")
            results[name] = RUNNERS[name](ctx)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        stopAll()
        if args.storage == "postgresql":
            from _pgdata import stopPostgreSQL

            stopPostgreSQL()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(
        f"pop3kit benchmark{' (QUICK: small sizes, figures not comparable)' if args.quick else ''}"
        f"{' -- mbox files' if args.storage == 'mbox' else ''}"
        f"{' -- PostgreSQL' if args.storage == 'postgresql' else ''}"
        f" -- Python {platform.python_version()}, {os.cpu_count()} CPUs, loopback; "
        "clients and server share the CPUs"
    )
    print(
        "Passwords are stored {PLAIN} in a passwd-file, so password hashing does not count. "
        "Messages are stored with LF line ends, as MTAs write them."
    )
    print()
    print(table(results, sizes))
    print()
    print(
        "Reference figures (Dovecot 2.3, twisted.mail) were measured on the same 2-core "
        "machine; twisted.mail's figure for RETR is the added latency per RETR."
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"quick": args.quick, "sizes": asdict(sizes), "results": results}, indent=2)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
