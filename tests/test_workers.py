"""
Tests for L{pop3kit.workers}: C{twistd pop3kit --workers N}, with real processes on
loopback.

To send a connection to one chosen worker, the others are stopped with C{SIGSTOP}: they
share one listening socket, and a stopped process accepts nothing.
"""

from __future__ import annotations

import contextlib
import os
import poplib
import re
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit.server import POP3ServerFactory
from pop3kit.tap import Options
from pop3kit.workers import (
    DrainableFactory,
    WorkerSupervisor,
    bindingDescription,
    workerCount,
    wrapAdopted,
)
from tests._pki import sharedPKI
from tests.test_twistd import TWISTD, ServerProcess

_STARTED = re.compile(r"Started pop3kit worker (\d+) \(pid (\d+)\)")


class WorkerCountTests(SynchronousTestCase):
    """
    L{workerCount} and the C{--workers} option.
    """

    def test_number(self) -> None:
        """
        A positive number is that many workers.
        """
        self.assertEqual(workerCount("3"), 3)

    def test_auto(self) -> None:
        """
        C{auto} is one worker per core this process may use.
        """
        self.assertEqual(workerCount("auto"), len(os.sched_getaffinity(0)))

    def test_invalid(self) -> None:
        """
        Zero, negative numbers and words are refused with one line naming the option.
        """
        for value in ("0", "-2", "many", "1.5", ""):
            with self.assertRaises(ValueError) as caught:
                workerCount(value)
            self.assertIn("--workers", str(caught.exception))

    def test_option(self) -> None:
        """
        C{--workers} defaults to 1, takes C{auto}, and a bad value is a usage error.
        """
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["workers"], 1)
        options = Options()
        options.parseOptions(["--workers", "auto"])
        self.assertEqual(options["workers"], len(os.sched_getaffinity(0)))
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--workers", "none"])

    def test_argumentsKept(self) -> None:
        """
        The options keep the command line, which the workers parse again.
        """
        options = Options()
        options.parseOptions(["--workers", "2", "--timeout", "900"])
        self.assertEqual(options["arguments"], ["--workers", "2", "--timeout", "900"])


class ListenerLayerTests(SynchronousTestCase):
    """
    What the parent binds and how a worker wraps the sockets it adopts.
    """

    def test_binding(self) -> None:
        """
        The parent binds the innermost stream endpoint of each description.
        """
        self.assertEqual(bindingDescription("tcp:110"), "tcp:110")
        self.assertEqual(
            bindingDescription("ssl:995:interface=127.0.0.1"), "tcp:995:interface=127.0.0.1"
        )
        self.assertEqual(bindingDescription("haproxy:tcp:110"), "tcp:110")
        self.assertEqual(bindingDescription("unix:/run/pop3.sock"), "unix:/run/pop3.sock")

    def test_wrapping(self) -> None:
        """
        A plain listener serves the factory itself; C{ssl:} adds TLS and C{haproxy:} the
        PROXY header, composed as the endpoints would.
        """
        from twisted.internet.task import Clock
        from twisted.protocols.haproxy._wrapper import HAProxyWrappingFactory
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from pop3kit.tls import ServerTLS

        _, issued = sharedPKI()
        tls = ServerTLS(issued.certificate, issued.key)
        factory = POP3ServerFactory.__new__(POP3ServerFactory)
        clock = Clock()
        self.assertIs(wrapAdopted("tcp:110", factory, None, clock), factory)
        wrapped = wrapAdopted("ssl:995", factory, tls, clock)
        self.assertIsInstance(wrapped, TLSMemoryBIOFactory)
        self.assertIs(wrapped.wrappedFactory, factory)  # type: ignore[attr-defined]
        proxied = wrapAdopted("haproxy:tcp:110", factory, None, clock)
        self.assertIsInstance(proxied, HAProxyWrappingFactory)
        self.assertIs(proxied.wrappedFactory, factory)  # type: ignore[attr-defined]


class DrainTests(SynchronousTestCase):
    """
    L{DrainableFactory.drain}.
    """

    def setUp(self) -> None:
        from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
        from twisted.cred.portal import Portal
        from twisted.internet.task import Clock

        from pop3kit.backends.memory import MemoryRealm

        self.clock = Clock()
        self.factory = DrainableFactory(
            Portal(MemoryRealm(), [InMemoryUsernamePasswordDatabaseDontUse(a=b"b")]),
            clock=self.clock,
        )

    def test_noSessions(self) -> None:
        """
        With no session open, draining is done at once.
        """
        self.successResultOf(self.factory.drain(30))

    def test_waitsForSessions(self) -> None:
        """
        Draining waits for the open sessions to end.
        """
        from pop3kit.testing import ConnectedServer

        first, second = ConnectedServer(self.factory), ConnectedServer(self.factory)
        self.assertEqual(self.factory.openSessions, 2)
        drained = self.factory.drain(30)
        first.send(b"QUIT\r\n")
        first.drop()
        self.assertNoResult(drained)
        second.drop()
        self.successResultOf(drained)
        self.assertEqual(self.factory.openSessions, 0)

    def test_closesTheRestAfterTimeout(self) -> None:
        """
        Sessions still open when the drain timeout is up are closed.
        """
        from pop3kit.testing import ConnectedServer

        session = ConnectedServer(self.factory)
        drained = self.factory.drain(30)
        self.clock.advance(29)
        self.assertFalse(session.transport.disconnecting)
        self.assertNoResult(drained)
        self.clock.advance(1)
        self.assertTrue(session.transport.disconnecting)
        session.drop()
        self.successResultOf(drained)


def _sleep(seconds: float) -> Deferred[None]:
    from twisted.internet import reactor

    return deferLater(reactor, seconds, lambda: None)  # type: ignore[arg-type]


class WorkersProcessTests(TestCase):
    """
    C{twistd pop3kit --workers 2}, used as a client and an operator would.
    """

    timeout = 180

    async def _start(self, *extra: str) -> ServerProcess:
        server = ServerProcess(self)
        server.start(
            [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "--logfile", server.logFile],
            [
                *("--listen", "tcp:0:interface=127.0.0.1"),
                *("--data-dir", server.dataDir, "--workers", "2"),
                *extra,
            ],
        )
        self.server = server
        await server.waitForLog("POP3ServerFactory starting on", count=2)
        await server.waitUntilListening()
        await server.waitForLog("add one with")
        added = await server.pop3kit("user", "add", "alice", "--password-stdin", stdin=b"secret\n")
        self.assertEqual(added.returncode, 0, added.stderr)
        return server

    def workers(self) -> dict[int, int]:
        """
        The process id of each worker, the latest started under each number.
        """
        return {int(n): int(pid) for n, pid in _STARTED.findall(self.server.log())}

    @contextlib.contextmanager
    def only(self, index: int) -> Iterator[None]:
        """
        Let only worker C{index} accept connections, the others being stopped.
        """
        stopped = [pid for n, pid in self.workers().items() if n != index]
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def client(self) -> poplib.POP3:
        return poplib.POP3("127.0.0.1", self.server.port, timeout=30)

    def login(self, index: int) -> tuple[poplib.POP3, str]:
        """
        Connect to worker C{index}, log alice in; return the connection and the answer.
        """
        with self.only(index):
            client = self.client()
            client.getwelcome()
        client.user("alice")
        try:
            answer = client.pass_("secret").decode()
        except poplib.error_proto as e:
            answer = str(e)
        return client, answer

    async def test_lockAcrossWorkers(self) -> None:
        """
        A maildrop held through one worker is in use for the other, and free for it once
        the first session has ended.
        """
        await self._start("--failed-login-delay", "0")

        def scenario() -> tuple[str, str, str]:
            holder, first = self.login(1)
            other, refused = self.login(2)
            other.close()
            holder.quit()
            holder.close()
            later, accepted = self.login(2)
            later.quit()
            later.close()
            return first, refused, accepted

        first, refused, accepted = await deferToThread(scenario)
        self.assertTrue(first.startswith("+OK"), first)
        self.assertIn("[IN-USE]", refused)
        self.assertTrue(accepted.startswith("+OK"), accepted)

    async def test_loginDelayAcrossWorkers(self) -> None:
        """
        A login through one worker holds off the next through the other (LOGIN-DELAY).
        """
        await self._start("--login-delay", "300", "--failed-login-delay", "0")

        def scenario() -> tuple[str, str]:
            first, accepted = self.login(1)
            first.quit()
            first.close()
            second, delayed = self.login(2)
            second.close()
            return accepted, delayed

        accepted, delayed = await deferToThread(scenario)
        self.assertTrue(accepted.startswith("+OK"), accepted)
        self.assertIn("[LOGIN-DELAY]", delayed)

    async def test_capAcrossWorkers(self) -> None:
        """
        With one unauthenticated connection allowed per address, a connection to the
        second worker evicts the one waiting on the first.
        """
        # No grace: a connection counts as idle at once, whatever progress it made.
        await self._start(
            "--max-per-client", "1", "--login-grace", "0", "--failed-login-delay", "0"
        )

        def scenario() -> bytes:
            with self.only(1):
                first = socket.create_connection(("127.0.0.1", self.server.port), 30)
                first.recv(1024)
                # A wrong password is counted by the parent, after what the worker told
                # it before (the connection): once it is answered, the parent knows.
                first.sendall(b"USER alice\r\nPASS wrong\r\n")
                answers = b""
                while answers.count(b"\r\n") < 2:
                    answers += first.recv(1024)
            with self.only(2):
                second = socket.create_connection(("127.0.0.1", self.server.port), 30)
                second.recv(1024)
            try:
                first.settimeout(30)
                return first.recv(1024)
            finally:
                first.close()
                second.close()

        evicted = await deferToThread(scenario)
        self.assertTrue(evicted.startswith(b"-ERR [SYS/TEMP]"), evicted)

    async def test_guesserSlowedAsOne(self) -> None:
        """
        Wrong passwords through worker 1, 1, then 2 wait 1, 2, then 4 s: the third is
        slowed by the failures the first worker saw.
        """
        await self._start("--failed-login-delay", "1", "--failed-login-max-delay", "15")

        def guess(index: int) -> tuple[str, float]:
            with self.only(index):
                client = self.client()
                client.getwelcome()
            try:
                client.user("alice")
                started = time.monotonic()
                try:
                    client.pass_("wrong")
                except poplib.error_proto as e:
                    return str(e), time.monotonic() - started
                return "accepted", 0.0
            finally:
                client.close()

        def scenario() -> list[tuple[str, float]]:
            return [guess(1), guess(1), guess(2)]

        results = await deferToThread(scenario)
        self.assertTrue(all("[AUTH]" in answer for answer, _ in results), results)
        # A lower bound only: the delay is scheduled for 4 s; a worker counting alone
        # would have waited 1 s.
        self.assertGreaterEqual(results[2][1], 3.9, results)

    async def test_workerKilledIsReplaced(self) -> None:
        """
        A worker killed with SIGKILL mid-session leaves no lock behind, and the parent
        starts another in its place.
        """
        await self._start("--failed-login-delay", "0")
        victim = self.workers()[1]

        def held() -> str:
            holder, answer = self.login(1)
            holder.sock.settimeout(30)
            os.kill(victim, signal.SIGKILL)
            holder.close()
            return answer

        self.assertTrue((await deferToThread(held)).startswith("+OK"))
        await self.server.waitForLog("Started pop3kit worker 1", count=2)
        self.assertNotEqual(self.workers()[1], victim)
        later, answer = await deferToThread(self.login, 2)
        later.quit()
        later.close()
        self.assertTrue(answer.startswith("+OK"), answer)

    async def test_drainOnSigterm(self) -> None:
        """
        On SIGTERM the workers stop accepting, a session under way is served to its end,
        and everything exits.
        """
        server = await self._start("--failed-login-delay", "0")
        pids = list(self.workers().values())
        client, answer = await deferToThread(self.login, 1)
        self.assertTrue(answer.startswith("+OK"), answer)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        await server.waitForLog("draining", count=2)
        stat = await deferToThread(client.stat)
        bye = await deferToThread(client.quit)
        client.close()
        self.assertEqual(stat, (0, 0))
        self.assertTrue(bye.startswith(b"+OK"))
        self.assertIn(await server.stop(), (0, -signal.SIGTERM), server.log())
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), 5).close()
        for pid in pids:
            self.assertFalse(_alive(pid), f"worker {pid} outlived the parent")

    async def test_parentKilled(self) -> None:
        """
        Workers whose parent is killed with SIGKILL stop by themselves.
        """
        server = await self._start()
        pids = list(self.workers().values())
        assert server.process is not None
        server.process.kill()
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in pids):
            self.assertLess(time.monotonic(), deadline, "the workers outlived their parent")
            await _sleep(0.1)

    async def test_sighupWithoutTLS(self) -> None:
        """
        SIGHUP reaches workers without a certificate too, and they keep serving.
        """
        server = await self._start("--failed-login-delay", "0")
        pids = self.workers()
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        await server.waitForLog("SIGHUP, nothing to reload", count=2)
        client, answer = await deferToThread(self.login, 2)
        client.quit()
        client.close()
        self.assertTrue(answer.startswith("+OK"), answer)
        self.assertEqual(self.workers(), pids)
        self.assertNotIn("restarting it", server.log())

    async def test_tlsAndSighup(self) -> None:
        """
        Implicit TLS works through the workers, and SIGHUP to the parent reloads the
        certificate in each worker.
        """
        _, issued = sharedPKI()
        server = ServerProcess(self)
        self.server = server
        server.start(
            [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "--logfile", server.logFile],
            [
                *("--listen", "ssl:0:interface=127.0.0.1"),
                *("--data-dir", server.dataDir, "--workers", "2"),
                *("--tls-certificate", issued.certificate, "--tls-key", issued.key),
            ],
        )
        await server.waitForLog("POP3ServerFactory (TLS) starting on", count=2)
        port = int(re.findall(r"POP3ServerFactory \(TLS\) starting on (\d+)", server.log())[0])

        def greet() -> bytes:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            client = poplib.POP3_SSL("127.0.0.1", port, timeout=30, context=context)
            try:
                return client.getwelcome()
            finally:
                client.quit()
                client.close()

        self.assertTrue((await deferToThread(greet)).startswith(b"+OK"))
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        await server.waitForLog("SIGHUP: reloading the TLS certificate", count=2)


def _alive(pid: int) -> bool:
    """
    Whether process C{pid} exists and is not a zombie.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class _FakeProcess:
    """
    The transport of a worker spawned by L{_SpawningReactor}.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[str] = []

    def closeStdin(self) -> None:
        pass

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class _SpawningReactor(MemoryReactorClock):
    """
    A memory reactor that records the processes spawned, without running any.
    """

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[ProcessProtocol, _FakeProcess]] = []

    def spawnProcess(
        self, protocol: ProcessProtocol, executable: str, args: list[str], **kw: object
    ) -> _FakeProcess:
        process = _FakeProcess(1000 + len(self.spawned))
        protocol.makeConnection(process)  # type: ignore[arg-type]
        self.spawned.append((protocol, process))
        return process

    def callFromThread(self, f: Callable[..., object], *args: object, **kw: object) -> None:
        f(*args, **kw)


class SupervisorTests(SynchronousTestCase):
    """
    L{WorkerSupervisor}'s restarts and stop, on a memory reactor.
    """

    def setUp(self) -> None:
        from pop3kit._sharedstate import StateKeeperFactory

        self.reactor = _SpawningReactor()
        self.supervisor = WorkerSupervisor(
            self.reactor,
            count=2,
            listen=[],
            arguments=[],
            state=StateKeeperFactory(self.reactor, maxUnauthenticated=10, maxPerClient=5),
            drainTimeout=30,
            environment={},
        )
        self.supervisor.startService()
        self.addCleanup(self._stop)

    def _stop(self) -> None:
        if self.supervisor.running:
            self.supervisor.stopService()

    def _end(self, index: int) -> None:
        """
        The latest worker spawned under number C{index} exits.
        """
        protocol = next(p for p, _ in reversed(self.reactor.spawned) if p.index == index)  # type: ignore[attr-defined]
        protocol.processEnded(Failure(ProcessTerminated(signal=signal.SIGKILL)))

    def test_startsWorkers(self) -> None:
        """
        Starting runs C{count} workers, each with its own connection to the parent.
        """
        self.assertEqual(len(self.reactor.spawned), 2)
        self.assertEqual(len(self.reactor.adoptedStreamConnections), 2)
        self.assertEqual(sorted(self.supervisor.workers), [1, 2])

    def test_restartBacksOff(self) -> None:
        """
        A worker that keeps dying soon after it starts is restarted after 0.5, 1, 2, ...
        seconds, up to 30; one that lived long is restarted after 0.5 s again.
        """
        delays = []
        for _ in range(8):
            self._end(1)
            spawned = len(self.reactor.spawned)
            waited = 0.0
            while len(self.reactor.spawned) == spawned:
                self.reactor.advance(0.25)
                waited += 0.25
            delays.append(waited)
        self.assertEqual(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0])
        self.reactor.advance(60)
        self._end(1)
        self.reactor.advance(0.5)
        self.assertEqual(self.supervisor.workers[1], self.reactor.spawned[-1][1].pid)

    def test_stopDrains(self) -> None:
        """
        Stopping sends every worker SIGTERM, SIGKILL to those still there after the
        drain timeout and a grace period, and is done when all have exited; none is
        restarted meanwhile.
        """
        stopped = self.supervisor.stopService()
        processes = [process for _, process in self.reactor.spawned]
        self.assertEqual([p.signals for p in processes], [["TERM"], ["TERM"]])
        self._end(1)
        self.reactor.advance(34)
        self.assertNoResult(stopped)
        self.assertEqual(processes[1].signals, ["TERM"])
        self.reactor.advance(1)
        self.assertEqual(processes[1].signals, ["TERM", "KILL"])
        self._end(2)
        self.successResultOf(stopped)
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.spawned), 2)

    def test_hangupForwarded(self) -> None:
        """
        SIGHUP to the parent is sent on to every worker.
        """
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual(
            [process.signals for _, process in self.reactor.spawned], [["HUP"], ["HUP"]]
        )
