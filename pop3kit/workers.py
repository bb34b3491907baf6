"""
All cores of one host: C{twistd pop3kit --workers N}.

The parent process binds every C{--listen} socket once, then starts C{N} worker processes
and hands each one all the listening sockets: their descriptors are inherited through the
C{childFDs} of
L{spawnProcess <twisted.internet.interfaces.IReactorProcess.spawnProcess>}; each worker
adopts them with
L{adoptStreamPort <twisted.internet.interfaces.IReactorSocket.adoptStreamPort>} and
serves POP3 on them, and the kernel spreads the
connections over the workers.  The parent serves no client; it:

    - keeps the login bookkeeping every worker shares, as one process would: failed-login
      counts (the penalty), last logins (LOGIN-DELAY) and the caps on unauthenticated
      connections overall and per client address, reached by the workers over AMP
      (L{pop3kit._sharedstate});
    - restarts a worker that dies, waiting longer each time one dies soon after starting;
    - forwards C{SIGHUP} (reload the TLS certificate) to the workers;
    - on C{SIGTERM}, tells every worker to drain: stop accepting, let its sessions end
      for up to C{--drain-timeout} seconds, then close what is left and exit;
    - writes the workers' log events to its own log, marked with the worker's number.

Maildrop locks are taken by each worker in the kernel (L{pop3kit.locking.FileLocker}), so
they hold across workers, and across hosts, without the parent.

A worker re-reads the same plugin options as the parent from its command line (so
C{--auth} checkers are built in the worker) and builds its factory with
L{pop3kit.tap.makeFactory}.  Implicit TLS (C{ssl:}) is done by the worker: the parent binds
a plain TCP socket and the worker wraps what it accepts in TLS with the current
certificate, as STLS does; see L{wrapAdopted} for how listener layers compose.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, cast

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IProcessTransport,
    IProtocolFactory,
    IReactorTime,
)
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol, connectionDone
from twisted.logger import (
    ILogObserver,
    Logger,
    eventAsJSON,
    eventFromJSON,
    globalLogPublisher,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from pop3kit.server import POP3Server, POP3ServerFactory

if TYPE_CHECKING:
    from pop3kit._sharedstate import StateKeeperFactory
    from pop3kit.tls import ServerTLS

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT",
    "DrainableFactory",
    "WorkerSupervisor",
    "bindingDescription",
    "runWorker",
    "workerCount",
    "wrapAdopted",
]

_log = Logger()

#: Seconds a draining worker lets its sessions run before closing them.
DEFAULT_DRAIN_TIMEOUT = 30.0

#: Seconds the parent waits beyond the drain timeout before killing a worker.
_KILL_GRACE = 5.0

#: A worker that dies sooner than this after starting is restarted after a longer delay.
_SHORT_LIFE = 10.0

#: The first and the longest delay before restarting a worker that died.
_FIRST_RESTART_DELAY = 0.5
_MAX_RESTART_DELAY = 30.0

#: The descriptor of a worker's AMP connection to the parent; the listening sockets follow.
_STATE_FD = 3

#: What a worker process runs.
_BOOTSTRAP = "import sys; from pop3kit.workers import runWorker; sys.exit(runWorker(sys.argv[1:]))"


def workerCount(value: str) -> int:
    """
    The number of workers C{--workers} asks for: a positive number, or C{auto} for one per
    core this process may run on.

    @raise ValueError: For anything else.
    """
    if value.strip().lower() == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not on Linux
            return max(1, os.cpu_count() or 1)
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise ValueError(
            f"--workers takes a number of processes (at least 1) or auto, not {value!r}"
        )
    return int(value)


def _split(description: str) -> tuple[str, str]:
    kind, _, rest = description.partition(":")
    return kind.lower(), rest


def bindingDescription(description: str) -> str:
    """
    The endpoint description of the socket the parent binds for the C{--listen}
    description C{description}: the innermost stream endpoint, without the layers the
    worker adds (C{ssl:995} binds C{tcp:995}; C{haproxy:tcp:110} binds C{tcp:110}).
    """
    kind, rest = _split(description)
    if kind == "ssl":
        # pop3kit's ssl: takes a port, interface and backlog, all of which tcp: takes
        # too, and the certificate files, which the workers read (see pop3kit.tls).
        kept = [
            part
            for part in rest.split(":")
            if not part.startswith(("privateKey=", "certKey=", "extraCertChain="))
        ]
        return "tcp:" + ":".join(kept)
    if kind == "haproxy":
        return bindingDescription(rest)
    return description


def wrapAdopted(
    description: str,
    factory: IProtocolFactory,
    tls: ServerTLS | None,
    clock: IReactorTime,
) -> IProtocolFactory:
    """
    Wrap C{factory} in the layers that the C{--listen} description C{description} puts
    above its socket, outermost description prefix innermost on the wire last, as the
    endpoints would: C{ssl:} adds TLS with C{tls}'s current certificate; C{haproxy:}
    reads the PROXY header.  A layer for a new prefix goes here and in
    L{bindingDescription}.

    @param clock: Schedules the TLS layer's write coalescing.
    """
    kind, rest = _split(description)
    if kind == "ssl":
        from twisted.protocols.tls import TLSMemoryBIOFactory

        assert tls is not None, "ssl: listeners need a certificate"
        return TLSMemoryBIOFactory(tls.contextFactory(), False, factory, clock)
    if kind == "haproxy":
        # pop3kit's PROXY layer: the session is connected only once the header is read.
        from pop3kit.proxy import ProxyHeaderFactory

        return wrapAdopted(rest, ProxyHeaderFactory(factory, clock), tls, clock)
    return factory


class _DrainableServer(POP3Server):
    """
    A session that tells its factory when it ends, so that a draining worker knows when
    it has none left.
    """

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        End the session, then tell the factory.
        """
        try:
            super().connectionLost(reason)
        finally:
            cast(DrainableFactory, self.factory)._ended(self)


class DrainableFactory(POP3ServerFactory):
    """
    A L{POP3ServerFactory} that knows its open sessions and can wait for them to end.
    """

    def __init__(self, *arguments: Any, **keywords: Any) -> None:
        """
        Take the arguments of L{POP3ServerFactory}.
        """
        super().__init__(*arguments, **keywords)
        self._open: set[_DrainableServer] = set()
        self._waiting: list[Deferred[None]] = []

    def buildProtocol(self, addr: object) -> POP3Server:
        """
        Build one session and remember it until it ends.
        """
        session = _DrainableServer(self)
        self._open.add(session)
        return session

    def logPrefix(self) -> str:
        """
        Name the factory as the one process does in the log ("POP3ServerFactory starting
        on 110").
        """
        return "POP3ServerFactory"

    @property
    def openSessions(self) -> int:
        """
        The number of sessions not ended yet.
        """
        return len(self._open)

    def _ended(self, session: _DrainableServer) -> None:
        self._open.discard(session)
        if not self._open:
            waiting, self._waiting = self._waiting, []
            for waiter in waiting:
                waiter.callback(None)

    def drain(self, timeout: float) -> Deferred[None]:
        """
        Wait until every open session has ended, for at most C{timeout} seconds; then
        close the sessions still open.
        """
        if not self._open:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiting.append(waiter)

        def closeTheRest() -> None:
            if waiter.called:
                return
            _log.info(
                "Closing {count} sessions still open after {timeout} s",
                count=len(self._open),
                timeout=timeout,
            )
            for session in list(self._open):
                if session.transport is not None:
                    session.transport.abortConnection()  # type: ignore[attr-defined]

        timer = self.clock.callLater(timeout, closeTheRest)
        return waiter.addBoth(lambda result: _cancelled(timer, result))


def _cancelled(timer: IDelayedCall, result: object) -> object:
    if timer.active():
        timer.cancel()
    return result


class _WorkerProcess(ProcessProtocol):
    """
    The parent's view of one worker process: its log on its standard output, its end.
    """

    def __init__(self, supervisor: WorkerSupervisor, index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.startedAt = supervisor._reactor.seconds()
        self.ended: Deferred[None] = Deferred()
        self._buffer = b""

    def connectionMade(self) -> None:
        """
        The worker started; it reads nothing from its standard input.
        """
        assert self.transport is not None
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        """
        Log events from the worker, one JSON object a line.
        """
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            if line.strip():
                self._republish(line)

    def _republish(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        try:
            event = eventFromJSON(text)
        except ValueError:
            event = {"log_format": "{line}", "line": text, "log_time": time.time()}
        event["log_system"] = f"pop3kit worker {self.index}"
        event["pop3kit_worker"] = self.index
        globalLogPublisher(event)

    def processEnded(self, reason: Failure) -> None:
        """
        The worker exited or was killed.
        """
        if self._buffer.strip():
            self._republish(self._buffer)
        self._buffer = b""
        self.supervisor._workerEnded(self, reason)
        self.ended.callback(None)


class WorkerSupervisor(Service):
    """
    The parent of C{--workers}: binds the listeners, runs the workers, keeps their
    shared state, restarts, forwards SIGHUP and drains on stop.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        *,
        count: int,
        listen: Sequence[str],
        arguments: Sequence[str],
        state: StateKeeperFactory,
        drainTimeout: float = DEFAULT_DRAIN_TIMEOUT,
        environment: dict[str, str] | None = None,
    ) -> None:
        """
        @param reactor: Binds, spawns the workers and schedules restarts
            (L{IReactorProcess <twisted.internet.interfaces.IReactorProcess>},
            L{IReactorSocket <twisted.internet.interfaces.IReactorSocket>},
            L{IReactorTime <twisted.internet.interfaces.IReactorTime>}).
        @param count: How many workers to run.
        @param listen: The C{--listen} descriptions.
        @param arguments: The plugin's command line, which each worker parses again.
        @param state: The state the workers share.
        @param drainTimeout: Seconds a worker lets its sessions run once told to stop.
        @param environment: The workers' environment; by default this process's, with a
            C{PYTHONPATH} that finds the modules this process found.
        """
        self._reactor = reactor
        self._count = count
        self._listen = list(listen)
        self._arguments = list(arguments)
        self._state = state
        self._drainTimeout = drainTimeout
        if environment is None:
            path = os.pathsep.join(entry or os.getcwd() for entry in sys.path)
            environment = dict(os.environ, PYTHONPATH=path)
        self._environment = environment
        self._ports: list[IListeningPort] = []
        self._workers: dict[int, _WorkerProcess] = {}
        self._restarts: dict[int, IDelayedCall] = {}
        self._delays: dict[int, float] = {}
        self._stopping = False
        self._previousHangup: Any = None

    @property
    def workers(self) -> dict[int, int]:
        """
        The process id of each running worker, by its number.
        """
        result = {}
        for index, worker in self._workers.items():
            transport = cast(IProcessTransport, worker.transport)
            if transport is not None and transport.pid is not None:
                result[index] = transport.pid
        return result

    def privilegedStartService(self) -> None:
        """
        Bind every listener, before twistd drops privileges (port 110 needs root).
        """
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        for description in self._listen:
            bound: list[IListeningPort] = []
            failures: list[Failure] = []
            endpoint = serverFromString(  # type: ignore[no-untyped-call]
                self._reactor, bindingDescription(description)
            )
            endpoint.listen(_Placeholder()).addCallbacks(bound.append, failures.append)
            if failures:
                failures[0].raiseException()
            port = bound[0]
            # The parent only holds the socket; the workers accept on it.
            port.stopReading()  # type: ignore[attr-defined]
            # Closing the parent's copy must not shut the socket down for the workers,
            # which have theirs (adopted ports are never shut down either).
            port._shouldShutdown = False  # type: ignore[attr-defined]
            self._ports.append(port)
            self.log.info(
                "pop3kit listening on {description} ({address}), served by {count} workers",
                description=description,
                address=port.getHost(),
                count=self._count,
            )

    def startService(self) -> None:
        """
        Start the workers and forward SIGHUP to them.
        """
        if not self._ports:
            self.privilegedStartService()
        super().startService()  # type: ignore[no-untyped-call]
        for index in range(1, self._count + 1):
            self._spawn(index)
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is not None:
            try:
                self._previousHangup = signal.signal(sighup, self._hangup)
            except ValueError:  # not the main thread
                self._previousHangup = None

    def _hangup(self, number: int, frame: FrameType | None) -> None:
        self._reactor.callFromThread(self._forwardHangup)
        previous = self._previousHangup
        if callable(previous):
            previous(number, frame)

    def _forwardHangup(self) -> None:
        self.log.info("SIGHUP: forwarding to {count} workers", count=len(self._workers))
        self._signalAll("HUP")

    def _signalAll(self, name: str) -> None:
        for worker in self._workers.values():
            transport = cast(IProcessTransport, worker.transport)
            with contextlib.suppress(ProcessExitedAlready, OSError):
                # If it has just exited, processEnded will tell.
                transport.signalProcess(name)

    def _spawn(self, index: int) -> None:
        self._restarts.pop(index, None)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._reactor.adoptStreamConnection(
                mine.fileno(), socket.AF_UNIX, Factory.forProtocol(self._state.keeper)
            )
            childFDs: dict[int, int | str] = {0: "w", 1: "r", 2: 2, _STATE_FD: theirs.fileno()}
            listeners = []
            for offset, (description, port) in enumerate(
                zip(self._listen, self._ports, strict=True)
            ):
                fd = _STATE_FD + 1 + offset
                childFDs[fd] = port.fileno()  # type: ignore[attr-defined]
                family = port.socket.family  # type: ignore[attr-defined]
                listeners.append([fd, int(family), description])
            configuration = json.dumps({"index": index, "state": _STATE_FD, "listeners": listeners})
            worker = _WorkerProcess(self, index)
            self._reactor.spawnProcess(
                worker,
                sys.executable,
                [sys.executable, "-c", _BOOTSTRAP, configuration, *self._arguments],
                env=self._environment,
                childFDs=childFDs,
            )
        finally:
            mine.close()
            theirs.close()
        self._workers[index] = worker
        self.log.info(
            "Started pop3kit worker {index} (pid {pid})",
            index=index,
            pid=cast(IProcessTransport, worker.transport).pid,
        )

    def _workerEnded(self, worker: _WorkerProcess, reason: Failure) -> None:
        index = worker.index
        if self._workers.get(index) is worker:
            del self._workers[index]
        if self._stopping:
            return
        lived = self._reactor.seconds() - worker.startedAt
        if lived < _SHORT_LIFE:
            delay = min(self._delays.get(index, _FIRST_RESTART_DELAY / 2) * 2, _MAX_RESTART_DELAY)
        else:
            delay = _FIRST_RESTART_DELAY
        self._delays[index] = delay
        how = "exited" if isinstance(reason.value, ProcessDone) else reason.getErrorMessage()
        self.log.warn(
            "pop3kit worker {index} ended ({how}) after {lived:.1f} s; restarting it in {delay} s",
            index=index,
            how=how,
            lived=lived,
            delay=delay,
        )
        self._restarts[index] = self._reactor.callLater(delay, self._spawn, index)

    def stopService(self) -> Deferred[None]:
        """
        Drain: tell every worker to stop (SIGTERM), wait for them (killing those still
        there after the drain timeout and a grace period), then close the listeners.
        """
        super().stopService()  # type: ignore[no-untyped-call]
        self._stopping = True
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is not None and signal.getsignal(sighup) == self._hangup:
            signal.signal(sighup, self._previousHangup or signal.SIG_DFL)
        for timer in self._restarts.values():
            timer.cancel()
        self._restarts.clear()
        # New connections are refused once the workers have closed their copies too.
        ports, self._ports = self._ports, []
        closed = [maybeDeferred(port.stopListening) for port in ports]
        ended = [worker.ended for worker in self._workers.values()]
        self._signalAll("TERM")
        killer = self._reactor.callLater(self._drainTimeout + _KILL_GRACE, self._signalAll, "KILL")

        def stopKiller(result: object) -> object:
            if killer.active():
                killer.cancel()
            return result

        done: Deferred[Any] = DeferredList([*closed, *ended])
        return done.addBoth(stopKiller).addCallback(lambda _: None)


class _Placeholder(Factory):
    """
    The factory of the parent's listening ports, which never accept.
    """

    noisy = False

    def logPrefix(self) -> str:
        """
        Name the parent's ports in the log.
        """
        return "pop3kit workers' listener"

    def buildProtocol(self, addr: object) -> Protocol | None:
        """
        Refuse: the parent accepts nothing.
        """
        return None


@implementer(ILogObserver)
class _JSONLines:
    """
    A log observer that writes each event as one line of JSON, for the parent to read.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        try:
            self._stream.write(eventAsJSON(event) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # The parent is gone: nothing can be logged any more.


def runWorker(argv: Sequence[str]) -> int:
    """
    The worker process: C{argv} is its configuration (JSON, from the parent), then the
    plugin's command line.  Serves until told to stop (SIGTERM or SIGINT) or until the
    parent is gone, then drains and returns the exit status.
    """
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner
    from twisted.python import usage

    from pop3kit._sharedstate import SharedLimiter, SharedLoginHistory, WorkerState
    from pop3kit.tap import Options, makeFactory
    from pop3kit.tls import TLSReloadService

    configuration = json.loads(argv[0])
    index = configuration["index"]
    globalLogBeginner.beginLoggingTo([_JSONLines(sys.stdout)], redirectStandardIO=False)
    log = Logger(namespace="pop3kit.workers")
    options = Options()
    try:
        options.parseOptions(list(argv[1:]))
    except usage.UsageError as e:
        log.error("pop3kit worker {index}: {error}", index=index, error=str(e))
        return 2

    def parentGone() -> None:
        log.warn("pop3kit worker {index}: the parent is gone; stopping", index=index)
        if reactor.running:  # type: ignore[attr-defined]
            reactor.stop()  # type: ignore[attr-defined]

    state = WorkerState(reactor, parentGone)  # type: ignore[arg-type]
    reactor.adoptStreamConnection(  # type: ignore[attr-defined]
        configuration["state"], socket.AF_UNIX, Factory.forProtocol(lambda: state)
    )
    os.close(configuration["state"])
    policy = options["policy"]
    limiter = SharedLimiter(
        reactor,  # type: ignore[arg-type]
        state,
        maxUnauthenticated=policy.maxUnauthenticated,
        maxPerClient=policy.maxPerClient,
    )
    factory = makeFactory(
        options,
        factoryType=DrainableFactory,
        loginHistory=SharedLoginHistory(state, loginsRead=policy.loginDelay is not None),
        limiter=limiter,
    )
    assert isinstance(factory, DrainableFactory)
    redis = options.get("state-service")
    if redis is not None:
        # With --state, the locks and the login history are Redis's (makeFactory put them
        # in place of the parent's): connect to it.
        redis.startService()
    ports: list[IListeningPort] = []
    for fd, family, description in configuration["listeners"]:
        wrapped = wrapAdopted(description, factory, options["tls"], reactor)  # type: ignore[arg-type]
        ports.append(reactor.adoptStreamPort(fd, family, wrapped))  # type: ignore[attr-defined]
        os.close(fd)
    reload: Service | None = None
    if options["tls"] is not None:
        reload = TLSReloadService(options["tls"], reactor)  # type: ignore[arg-type]
        reload.startService()  # type: ignore[no-untyped-call]
    elif hasattr(signal, "SIGHUP"):
        # The parent forwards SIGHUP to every worker; by default it would end this one.
        def hangup(number: int, frame: FrameType | None) -> None:
            reactor.callFromThread(  # type: ignore[attr-defined]
                log.info, "pop3kit worker {index}: SIGHUP, nothing to reload", index=index
            )

        signal.signal(signal.SIGHUP, hangup)
    drainTimeout = options["drain-timeout"]

    def drain() -> Deferred[None]:
        log.info(
            "pop3kit worker {index} draining {count} sessions",
            index=index,
            count=factory.openSessions,
        )
        for port in ports:
            port.stopListening()
        if reload is not None:
            reload.stopService()  # type: ignore[no-untyped-call]
        return factory.drain(drainTimeout)

    reactor.addSystemEventTrigger("before", "shutdown", drain)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return 0
