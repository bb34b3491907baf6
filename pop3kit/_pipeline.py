"""
The client's request pipeline: commands are queued, sent when the core allows it (several
at once when the server announced PIPELINING, RFC 2449 section 6.6), answered in order,
and may be cancelled; bodies stream into L{BodySink}s; a silent server times out, and so
does one that stops making progress (every answer has a deadline, every body a minimum
rate); listings are capped; a consumer's backpressure pauses reading.

The pipeline moves octets between the transport and the sans-IO
L{ClientConnection <pop3kit.core.ClientConnection>}, and hands each C{+OK} to its
owner's L{Answer} function, which turns it into the command's result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import ConnectionLost, TimeoutError
from twisted.internet.interfaces import (
    IDelayedCall,
    IOpenSSLClientConnectionCreator,
    IPushProducer,
    IReactorTime,
    ITCPTransport,
    ITransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pop3kit._clienterrors import ClientError, InvalidState, ServerError, ServerStalled, TLSFailed
from pop3kit._clientlimits import (
    DEFAULT_MAX_LISTING_ENTRIES,
    DEFAULT_MAX_LISTING_OCTETS,
    DEFAULT_MINIMUM_RATE,
    DEFAULT_RESPONSE_TIMEOUT,
)
from pop3kit._clienttls import rejectionOf
from pop3kit._sinks import BodySink, Collector, ListingCollector
from pop3kit.core import (
    AuthenticationFailed,
    BodyData,
    Capa,
    ClientConnection,
    Command,
    Continuation,
    EndOfBody,
    LocalProtocolError,
    Quit,
    ResponseKind,
    ServerProtocolError,
    StatusLine,
    Uidl,
)
from pop3kit.core import List as ListCommand


class Exchange(Protocol):
    """
    The client side of a SASL exchange, as the pipeline sees it.
    """

    def respond(self, payload: bytes) -> bytes:
        """
        Answer a challenge, as sent (base64), with the base64 response line.

        @raise Exception: when the exchange must be cancelled.
        """


@dataclass(eq=False)
class Request:
    """
    One command, the L{Deferred} its caller waits on, and where its answer goes.

    @ivar command: The command; L{None} for the greeting, the answer nobody asked for.
    @ivar deferred: What the caller waits on.
    @ivar sink: Where the body of a multi-line answer goes.
    @ivar exchange: The SASL exchange of an C{AUTH} command.
    @ivar tlsOptions: The TLS options of an C{STLS} command.
    @ivar status: The C{+OK} of a multi-line answer whose body is arriving, or of an
        C{STLS} whose handshake is under way.
    @ivar failure: Why the request failed locally while its answer was still coming (a
        SASL exchange cancelled with C{*}); the answer only ends it.
    @ivar kind: The shape of the answer.
    """

    command: Command | None
    deferred: Deferred[Any]
    sink: BodySink | None = None
    exchange: Exchange | None = None
    tlsOptions: IOpenSSLClientConnectionCreator | None = None
    status: StatusLine | None = None
    failure: BaseException | None = None
    kind: ResponseKind = field(init=False)

    def __post_init__(self) -> None:
        self.kind = ResponseKind.SINGLE if self.command is None else self.command.responseKind

    @property
    def what(self) -> bytes:
        """
        The command line with its secrets redacted, or C{b"greeting"}.
        """
        return b"greeting" if self.command is None else self.command.redacted()

    def succeed(self, result: object) -> None:
        """
        Fire the caller's L{Deferred} with C{result}, unless it was cancelled.
        """
        if not self.deferred.called:
            self.deferred.callback(result)

    def fail(self, error: BaseException | Failure) -> None:
        """
        Fail the caller's L{Deferred}, unless it was cancelled.
        """
        if not self.deferred.called:
            self.deferred.errback(error)


#: What the pipeline's owner does with a C{+OK}: the result of the request from its
#: status line and, for a multi-line answer, what its sink gave (L{None} otherwise).  A
#: L{Deferred} result is waited for.  The C{+OK} to C{STLS} is given too; its request
#: succeeds only once the handshake is done (L{Pipeline.handshakeDone}).  An exception
#: fails the request; L{ServerProtocolError} and L{AuthenticationFailed} (the server broke
#: the protocol or did not prove itself) also close the connection.
Answer = Callable[[Request, StatusLine, object], object]


class Pipeline:
    """
    The requests of one connection, in order: queued, in flight, answered.

    @ivar pipelining: Whether several commands may be in flight (the server announced
        PIPELINING).
    @ivar greeting: The request for the greeting, in flight from the start.
    """

    log = Logger()

    def __init__(
        self,
        core: ClientConnection,
        answer: Answer,
        *,
        clock: IReactorTime,
        timeout: float,
        maxPipeline: int,
        maxResponseSize: int,
        responseTimeout: float = DEFAULT_RESPONSE_TIMEOUT,
        minimumRate: float = DEFAULT_MINIMUM_RATE,
        maxListingEntries: int = DEFAULT_MAX_LISTING_ENTRIES,
        maxListingOctets: int = DEFAULT_MAX_LISTING_OCTETS,
    ) -> None:
        self.core = core
        self.pipelining = False
        self.greeting = Request(None, Deferred())
        self._answer = answer
        self._clock = clock
        self._timeout = timeout
        self._maxPipeline = maxPipeline
        self._maxResponseSize = maxResponseSize
        self._responseTimeout = responseTimeout
        self._minimumRate = minimumRate
        self._maxListingEntries = maxListingEntries
        self._maxListingOctets = maxListingOctets
        self._deadline: IDelayedCall | None = None
        self._deadlineOf: Request | None = None
        self._windowOctets = 0
        self._transport: ITransport | None = None
        self._queue: deque[Request] = deque()
        self._inFlight: deque[Request] = deque([self.greeting])
        self._timer: IDelayedCall | None = None
        self._readingPaused = False
        self._processing = False
        self._abortReason: BaseException | None = None
        self._refusal: Callable[[], BaseException] | None = None
        self._control = _ReadingControl(self)

    # The connection

    def connected(self, transport: ITransport) -> None:
        """
        The connection is made: start waiting for the greeting.
        """
        self._transport = transport
        self._updateTimer()

    def abort(self, error: BaseException) -> None:
        """
        Close the connection at once; everything pending fails with C{error}.
        """
        if self._abortReason is None:
            self._abortReason = error
        if self._transport is not None:
            cast(ITCPTransport, self._transport).abortConnection()

    def lost(self, reason: Failure, handshaking: bool) -> None:
        """
        The connection is gone: fail every request, in flight or queued, with the reason
        given to L{abort}, or else L{TLSFailed} when a TLS handshake was under way or
        C{reason} is a TLS error, or else L{ConnectionLost}.
        """
        transport, self._transport = self._transport, None
        self._refusal = lambda: ConnectionLost("not connected")
        self._cancelTimer()
        self._cancelDeadline()
        pending = [*self._inFlight, *self._queue]
        self._inFlight.clear()
        self._queue.clear()
        tls = handshaking or isinstance(reason.value, SSL.Error | VerificationError)
        # What TLSFailed carries as its cause: why the certificate was refused, if it was.
        cause = (rejectionOf(transport) or reason.value) if tls else None
        for request in pending:
            if request.sink is not None:
                request.sink.abandon()
            what = request.what.decode("ascii", "replace")
            error = self._abortReason or (
                _withCause(
                    TLSFailed(f"TLS failed while waiting for the answer to {what}: {cause}"),
                    cause,
                )
                if tls
                else ConnectionLost(
                    f"connection lost while waiting for the answer to {what}: "
                    f"{reason.getErrorMessage()}"
                )
            )
            request.fail(error)

    def handshakeDone(self) -> None:
        """
        The TLS handshake after C{+OK} to C{STLS} is done: the C{STLS} request succeeds
        and sending resumes.
        """
        self.core.startedTLS()
        request = self._inFlight.popleft()
        self._updateTimer()
        request.succeed(None)
        self.pump()

    # Sending

    def submit(
        self,
        command: Command,
        *,
        sink: BodySink | None = None,
        exchange: Exchange | None = None,
        tlsOptions: IOpenSSLClientConnectionCreator | None = None,
    ) -> Deferred[Any]:
        """
        Queue C{command}; multi-line answers go to C{sink}, by default a L{Collector}.
        Nothing may be queued after C{QUIT}, nor once the connection is gone.

        @return: A L{Deferred} firing with the result, cancellable; failing at once with
            L{InvalidState} after C{QUIT}, with L{ConnectionLost} after the connection
            was lost.
        """
        if self._refusal is not None:
            return fail(self._refusal())
        if isinstance(command, Quit):
            self._refusal = lambda: InvalidState("QUIT was already sent")
        if sink is None and command.responseKind is ResponseKind.MULTILINE:
            if isinstance(command, ListCommand | Uidl | Capa):
                sink = ListingCollector(self._maxListingEntries, self._maxListingOctets)
            else:
                sink = Collector(self._maxResponseSize)
        request: Request
        request = Request(
            command, Deferred(lambda d: self._cancel(request)), sink, exchange, tlsOptions
        )
        self._queue.append(request)
        self.pump()
        return request.deferred

    def pump(self) -> None:
        """
        Send what may be sent now: one command at a time, several when pipelining, an
        C{STLS} or C{AUTH} alone.
        """
        while self._queue and self._transport is not None and self.core.canSend:
            head = self._queue[0]
            if self._inFlight and (
                head.kind in (ResponseKind.SASL, ResponseKind.STLS)
                or not self.pipelining
                or len(self._inFlight) >= self._maxPipeline
            ):
                break
            self._queue.popleft()
            assert head.command is not None
            try:
                line = self.core.send(head.command)
            except LocalProtocolError as e:
                head.fail(e)
                continue
            self._inFlight.append(head)
            self._transport.write(line)
        self._updateTimer()

    def _cancel(self, request: Request) -> None:
        """
        The caller cancelled C{request}'s L{Deferred}.  A command not sent yet is dropped;
        the answer to one already sent is read and ignored, except that a message
        streaming into a file or consumer closes the connection: POP3 cannot stop a
        transfer, and the sink is no longer wanted.
        """
        if request in self._queue:
            self._queue.remove(request)
            return
        sink = request.sink
        if sink is None or isinstance(sink, Collector):
            return
        # Nothing more goes to the caller's file or consumer.
        request.sink = Collector(0)
        if request.status is not None:
            sink.abandon()
            request.fail(CancelledError())
            what = request.what.decode("ascii", "replace")
            self.abort(ConnectionLost(f"{what} was cancelled during the transfer"))

    # Receiving

    def dataReceived(self, data: bytes) -> None:
        """
        Feed the octets to the core and act on its events.
        """
        if self._timer is not None:
            self._timer.reset(self._timeout)
        if not self._processing and self._transport is not None and self._abortReason is None:
            # The bulk of a RETR: straight from the decoder to the sink.
            body = self.core.receiveBody(data)
            if body is not None:
                if body:
                    self._bodyData(body)
                if self.core.bodyComplete:
                    self._processEvents()
                return
        self.core.receiveData(data)
        self._processEvents()

    def _processEvents(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            while self._transport is not None and self._abortReason is None:
                try:
                    event = self.core.nextEvent()
                except ServerProtocolError as e:
                    self.abort(e)
                    break
                if event is None:
                    break
                self._handle(event)
        finally:
            self._processing = False

    def _handle(self, event: StatusLine | Continuation | BodyData | EndOfBody) -> None:
        if isinstance(event, BodyData):
            self._bodyData(event.data)
            return
        request = self._inFlight[0]
        if isinstance(event, Continuation):
            # The next step of the exchange is due now.
            self._restartDeadline()
            self._challenge(request, event.payload)
            return
        if isinstance(event, StatusLine) and event.ok:
            if request.kind is ResponseKind.MULTILINE:
                request.status = event
                # The body has its minimum rate, from now on.
                self._restartDeadline()
                assert request.sink is not None
                request.sink.start()
                return
            if request.kind is ResponseKind.STLS:
                # In flight until the handshake is done, which is due now.
                request.status = event
                self._restartDeadline()
                self._conclude(request, event, None)
                return
        self._inFlight.popleft()
        if isinstance(event, EndOfBody):
            self._finishBody(request)
        else:
            self._finishStatus(request, event)
        self._updateTimer()
        self.pump()

    def _bodyData(self, data: bytes) -> None:
        self._windowOctets += len(data)
        sink = self._inFlight[0].sink
        assert sink is not None
        try:
            sink.write(data)
        except Exception as e:
            # The consumer or file failed: the rest of the answer cannot be stored.
            self.abort(e)

    def _challenge(self, request: Request, payload: bytes) -> None:
        if request.failure is not None:
            self.abort(ServerProtocolError("a SASL challenge after the exchange was cancelled"))
            return
        assert request.exchange is not None and self._transport is not None
        try:
            response = request.exchange.respond(payload)
        except Exception as e:
            request.failure = e
            response = b"*"
        self._transport.write(self.core.sendSASLResponse(response))

    def _finishStatus(self, request: Request, status: StatusLine) -> None:
        if not status.ok:
            error = ServerError(
                status.text.decode("utf-8", "replace"),
                status.responseCode,
                request.what,
                status.code,
            )
            request.fail(request.failure or error)
        elif request.failure is not None:
            # +OK to a cancelled SASL exchange: the server is not following the protocol.
            request.fail(request.failure)
            self.abort(request.failure)
        else:
            self._conclude(request, status, None)

    def _finishBody(self, request: Request) -> None:
        assert request.sink is not None and request.status is not None
        try:
            body = request.sink.finish()
        except Exception as e:
            request.fail(e)
            return
        self._conclude(request, request.status, body)

    def _conclude(self, request: Request, status: StatusLine, body: object) -> None:
        try:
            result = self._answer(request, status, body)
        except Exception as e:
            request.fail(e)
            if request.kind is ResponseKind.STLS or isinstance(
                e, ServerProtocolError | AuthenticationFailed
            ):
                self.abort(e)
            return
        if request.kind is ResponseKind.STLS:
            return
        if isinstance(result, Deferred):
            result.addCallbacks(request.succeed, request.fail)
            return
        request.succeed(result)

    # Timeouts and flow control

    def _updateTimer(self) -> None:
        waiting = bool(self._inFlight) and not self._readingPaused and self._transport is not None
        if waiting and self._timer is None:
            self._timer = self._clock.callLater(self._timeout, self._timedOut)
        elif not waiting:
            self._cancelTimer()
        if not waiting:
            self._cancelDeadline()
        elif self._deadlineOf is not self._inFlight[0]:
            self._restartDeadline()

    def _restartDeadline(self) -> None:
        """
        Give the answer now due (that of the first request in flight) the response
        timeout from now: to complete if it is not a body, to bring the minimum rate's
        worth of octets if it is.
        """
        self._cancelDeadline()
        if not self._inFlight or self._readingPaused or self._transport is None:
            return
        self._deadlineOf = self._inFlight[0]
        self._windowOctets = 0
        self._deadline = self._clock.callLater(self._responseTimeout, self._deadlinePassed)

    def _cancelDeadline(self) -> None:
        deadline, self._deadline, self._deadlineOf = self._deadline, None, None
        if deadline is not None and deadline.active():
            deadline.cancel()

    def _deadlinePassed(self) -> None:
        request, self._deadline = self._deadlineOf, None
        if request is None or self._abortReason is not None:
            return
        what = request.what.decode("ascii", "replace")
        window = self._responseTimeout
        if request.kind is ResponseKind.MULTILINE and request.status is not None:
            required = self._minimumRate * window
            if self._windowOctets >= required:
                self._restartDeadline()
                return
            error = ServerStalled(
                f"the answer to {what} brought {self._windowOctets} octets in {window:g} s, "
                f"fewer than {required:.0f} (a minimum rate of {self._minimumRate:g} octets/s)"
            )
        elif request.kind is ResponseKind.STLS and request.status is not None:
            error = ServerStalled(f"the TLS handshake after STLS did not complete in {window:g} s")
        else:
            error = ServerStalled(f"no complete answer to {what} within {window:g} s")
        self.log.info("POP3 server stopped making progress, closing: {error}", error=error)
        self.abort(error)

    def _cancelTimer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _timedOut(self) -> None:
        self._timer = None
        what = b"the TLS handshake" if self.core.awaitingTLS else self._inFlight[0].what
        self.log.info("POP3 server silent for {timeout} s, closing", timeout=self._timeout)
        self.abort(
            TimeoutError(  # type: ignore[no-untyped-call]
                f"no answer from the server for {self._timeout} s while waiting for "
                f"{what.decode('ascii', 'replace')}"
            )
        )

    @property
    def control(self) -> IPushProducer:
        """
        The producer a consumer sees while a message streams into it: pausing it pauses
        reading from the server, stopping it closes the connection.
        """
        return self._control

    def pauseReading(self) -> None:
        """
        Stop reading from the server.
        """
        if not self._readingPaused and self._transport is not None:
            self._readingPaused = True
            cast(IPushProducer, self._transport).pauseProducing()
            self._updateTimer()

    def resumeReading(self) -> None:
        """
        Read from the server again.
        """
        if self._readingPaused and self._transport is not None:
            self._readingPaused = False
            cast(IPushProducer, self._transport).resumeProducing()
            # Restarts the deadline too: the time the consumer held reading does not count.
            self._updateTimer()


@implementer(IPushProducer)
class _ReadingControl:
    """
    L{Pipeline.control}.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def pauseProducing(self) -> None:
        self._pipeline.pauseReading()

    def resumeProducing(self) -> None:
        self._pipeline.resumeReading()

    def stopProducing(self) -> None:
        self._pipeline.abort(ClientError("the consumer stopped the transfer"))


_T = TypeVar("_T")


def _withCause(error: BaseException, cause: object) -> BaseException:
    """
    C{error}, with C{cause} as its C{__cause__} if it is an exception.
    """
    if isinstance(cause, BaseException):
        error.__cause__ = cause
    return error


class OneShot(Generic[_T]):
    """
    Something that happens once (the greeting, the connection's end), which any number
    of callers may wait for, before or after it happened.
    """

    def __init__(self) -> None:
        self._result: _T | Failure | None = None
        self._happened = False
        self._waiting: list[Deferred[_T]] = []

    @property
    def happened(self) -> bool:
        """
        Whether it happened.
        """
        return self._happened

    def wait(self) -> Deferred[_T]:
        """
        A new L{Deferred} firing with the outcome, now or once it happens.
        """
        if not self._happened:
            d: Deferred[_T] = Deferred()
            self._waiting.append(d)
            return d
        if isinstance(self._result, Failure):
            return fail(self._result)
        return succeed(cast(_T, self._result))

    def happen(self, result: _T | Failure) -> None:
        """
        It happened, with C{result}; only the first outcome counts.
        """
        if self._happened:
            return
        self._happened, self._result = True, result
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)
