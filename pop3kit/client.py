"""
A POP3 client: a Twisted protocol with a L{Deferred} API, over the sans-IO
L{pop3kit.core.ClientConnection}.

Connect with L{connect}, which also negotiates TLS (verified against the host name by
default), log in and fetch::

    async def fetchAll(reactor):
        client = await connect(reactor, "pop.example.com")
        await client.login("alice", "secret")
        for number in await client.listSizes():
            with open(f"{number}.eml", "wb") as f:
                await client.retrieve(number, f)
        await client.quit()

    react(lambda reactor: Deferred.fromCoroutine(fetchAll(reactor)))

Every method returns a L{Deferred}, so the client reads the same in callback style and in
C{async def} functions run by L{Deferred.fromCoroutine}.  Commands may be called without
waiting for earlier ones: they are queued, pipelined when the server announces PIPELINING
(RFC 2449 section 6.6) and sent strictly one at a time otherwise; answers are matched in
order.

Failures arrive as typed exceptions: L{ServerError} for a C{-ERR} answer (with its RFC
2449 / RFC 3206 response code), L{twisted.internet.error.TimeoutError} when the server
stays silent for longer than the timeout, L{twisted.internet.error.ConnectionLost} (or
its subclass L{TLSFailed}) for every command still waiting when the connection goes
away, L{TLSUnavailable} when TLS was required and the server does not offer it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, BinaryIO, Literal, cast, overload

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import ConnectionLost, TimeoutError
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IHandshakeListener,
    INegotiated,
    IOpenSSLClientConnectionCreator,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
    ITCPTransport,
    ITLSTransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pop3kit import sasl
from pop3kit.core import (
    LOGIN_METHODS,
    BodyData,
    ClientConnection,
    CommandTooLong,
    Continuation,
    Credential,
    EndOfBody,
    ResponseKind,
    ServerProtocolError,
    StatusLine,
    apopTimestamp,
    formatCommand,
)
from pop3kit.errors import AuthenticationFailed, POP3Error, ResponseCode
from pop3kit.sasl import ClientMechanism

__all__ = [
    "CLEARTEXT_MECHANISMS",
    "MECHANISMS",
    "ClientError",
    "ClientMechanism",
    "ClientState",
    "CommandTooLong",
    "InvalidState",
    "MaildropListing",
    "MechanismUnavailable",
    "POP3Client",
    "ResponseTooLarge",
    "ServerError",
    "ServerProtocolError",
    "TLSFailed",
    "TLSMode",
    "TLSUnavailable",
    "connect",
    "tlsOptions",
]

_log = Logger()

#: The login methods L{POP3Client.login} knows, lower case (EXTERNAL, which needs no
#: password, goes through L{POP3Client.authenticate}).
MECHANISMS = frozenset(
    method.option for method in LOGIN_METHODS if method.credential is not Credential.CERTIFICATE
)

#: The login methods that send the password itself: refused without TLS unless the client
#: allows clear-text logins (RFC 2595 section 2.3, RFC 8314 section 4).
CLEARTEXT_MECHANISMS = frozenset(method.option for method in LOGIN_METHODS if method.cleartext)

_UID = re.compile(rb"[\x21-\x7e]+")

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s.+?\s-----END CERTIFICATE-----", re.DOTALL
)


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


class ServerError(POP3Error):
    """
    The server answered C{-ERR}.

    @ivar code: The L{ResponseCode} the answer carried (for an unknown hierarchical code,
        its longest known ancestor), or L{None}.
    @ivar rawCode: The response code exactly as sent, without brackets, or L{None}.
    @ivar text: The text after the indicator and the code.
    @ivar command: The command line that was answered, without CRLF, with secrets
        (passwords, APOP digests, SASL data) replaced by C{<redacted>}.
    """

    def __init__(
        self,
        text: str,
        code: ResponseCode | None = None,
        command: bytes = b"",
        rawCode: str | None = None,
    ) -> None:
        super().__init__(text, code)
        self.command = command
        self.rawCode = rawCode

    def __str__(self) -> str:
        command = self.command.decode("ascii", "replace")
        code = f"[{self.rawCode}] " if self.rawCode else ""
        return f"{command}: -ERR {code}{self.text}"

    def __repr__(self) -> str:
        return f"ServerError({self.text!r}, code={self.code}, command={self.command!r})"


class ClientError(Exception):
    """
    Base class of the errors the client detects itself.
    """


class TLSUnavailable(ClientError):
    """
    TLS was required but the server does not offer STLS, or refused it.  The client closed
    the connection without sending credentials.
    """


class TLSFailed(ConnectionLost):
    """
    The TLS handshake failed (for example, the certificate did not verify for the host
    name) and the connection was closed.
    """


class MechanismUnavailable(ClientError):
    """
    No login method that both sides support is allowed (for example, only clear-text
    methods are offered and the connection is not encrypted).
    """


class InvalidState(ClientError):
    """
    The method cannot be used in the session's current state (C{login} twice, C{startTLS}
    inside TLS, anything after C{quit}).
    """


class ResponseTooLarge(ClientError):
    """
    A response collected in memory grew past the client's C{maxResponseSize}.  The rest
    of it was read and discarded; the session is still usable.  Stream big messages into
    a file or consumer with L{POP3Client.retrieve} instead.
    """


# ---------------------------------------------------------------------------------------
# SASL mechanisms, from pop3kit.sasl
# ---------------------------------------------------------------------------------------


def _saslMechanism(
    name: str, username: str, password: str, authzid: str, hostname: str | None
) -> ClientMechanism:
    """
    Build a client mechanism with L{pop3kit.sasl.clientMechanism}.

    @raise MechanismUnavailable: when C{pop3kit.sasl} does not know C{name}, or cannot
        use these credentials with it (SCRAM with an authzid, a password SASLprep
        prohibits).
    """
    try:
        return sasl.clientMechanism(name, username, password, authzid=authzid, hostname=hostname)
    except ValueError as e:  # KeyError for an unknown name is a ValueError there too
        raise MechanismUnavailable(f"SASL {name} is not available: {e}") from None


def _saslPreference() -> tuple[str, ...]:
    """
    The SASL mechanisms this client can use with a password, best first.
    """
    return sasl.CLIENT_PREFERENCE


# ---------------------------------------------------------------------------------------
# The session's state
# ---------------------------------------------------------------------------------------


class ClientState(Enum):
    """
    Where the client is in the login sequence.

    ::

        GREETING --greeting--> AUTHORIZATION --STLS +OK, handshake--> AUTHORIZATION
        AUTHORIZATION --login()--> AUTHENTICATING --+OK--> TRANSACTION
                                                  --(-ERR)--> AUTHORIZATION
        AUTHORIZATION / TRANSACTION --quit()--> QUITTING --+OK, close--> CLOSED
        any --connection lost--> CLOSED
    """

    GREETING = "greeting"
    AUTHORIZATION = "authorization"
    STARTING_TLS = "starting-tls"
    AUTHENTICATING = "authenticating"
    TRANSACTION = "transaction"
    QUITTING = "quitting"
    CLOSED = "closed"


@dataclass
class MaildropListing:
    """
    What the client knows of the maildrop in TRANSACTION state; it exists only there.

    @ivar count: The message count STAT reported at login (deleted messages excluded).
    @ivar octets: The maildrop size STAT reported at login.
    @ivar sizes: Message sizes by number from the last full LIST, or L{None}; messages
        deleted since are removed.
    @ivar uids: Unique-ids by number from the last full UIDL, or L{None}; messages
        deleted since are removed.
    @ivar deleted: Numbers of the messages marked deleted in this session.
    """

    count: int = 0
    octets: int = 0
    sizes: dict[int, int] | None = None
    uids: dict[int, str] | None = None
    deleted: set[int] = field(default_factory=set)


# ---------------------------------------------------------------------------------------
# Where response bodies go
# ---------------------------------------------------------------------------------------


class _Collector:
    """
    Collect a response body in memory, up to a limit.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self.overflowed = False

    def start(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            self.overflowed = True
            self._chunks = []
        elif not self.overflowed:
            self._chunks.append(data)

    def finish(self) -> bytes:
        if self.overflowed:
            raise ResponseTooLarge(f"response of {self._size} octets exceeds {self._limit}")
        return b"".join(self._chunks)

    def abandon(self) -> None:
        self._chunks = []


class _FileSink:
    """
    Write a response body to a binary file object, counting octets.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.octets = 0

    def start(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.octets += len(data)

    def finish(self) -> int:
        return self.octets

    def abandon(self) -> None:
        pass


@implementer(IPushProducer)
class _ReadingControl:
    """
    What a consumer sees as its producer while a message streams into it: pausing it
    stops reading from the server.
    """

    def __init__(self, client: POP3Client) -> None:
        self._client = client

    def pauseProducing(self) -> None:
        self._client._pauseReading()

    def resumeProducing(self) -> None:
        self._client._resumeReading()

    def stopProducing(self) -> None:
        self._client._abort(ClientError("the consumer stopped the transfer"))


class _ConsumerSink(_FileSink):
    """
    Write a response body to an L{IConsumer}, registered as its streaming producer for
    the duration of the body.
    """

    def __init__(self, consumer: IConsumer, client: POP3Client) -> None:
        self._consumer = consumer
        self._client = client
        self._registered = False
        self.octets = 0

    def start(self) -> None:
        self._consumer.registerProducer(_ReadingControl(self._client), True)
        self._registered = True

    def write(self, data: bytes) -> None:
        self._consumer.write(data)
        self.octets += len(data)

    def finish(self) -> int:
        self.abandon()
        return self.octets

    def abandon(self) -> None:
        if self._registered:
            self._registered = False
            self._consumer.unregisterProducer()
            self._client._resumeReading()


_Sink = _Collector | _FileSink


# ---------------------------------------------------------------------------------------
# Commands in flight
# ---------------------------------------------------------------------------------------


class _Request:
    """
    One command: its line, the Deferred its caller waits on, and what to make of the
    answer.

    @ivar onOK: Turns a C{+OK} status line (single-line answers) or the status line and
        collected body (multi-line answers) into the result.
    """

    def __init__(
        self,
        line: bytes,
        redacted: bytes,
        kind: ResponseKind,
        onOK: Callable[..., object],
        *,
        sink: _Sink | None = None,
        exclusive: bool = False,
    ) -> None:
        self.line = line
        self.redacted = redacted
        self.kind = kind
        self.onOK = onOK
        self.sink = sink
        self.exclusive = exclusive
        self.deferred: Deferred[Any] = Deferred()
        self.status: StatusLine | None = None
        self.failure: BaseException | None = None

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

    def serverError(self, status: StatusLine) -> ServerError:
        return ServerError(
            status.text.decode("utf-8", "replace"),
            status.responseCode,
            self.redacted,
            status.code,
        )


class _SASLRequest(_Request):
    """
    An AUTH command and the challenges and responses that follow it.
    """

    mechanism: ClientMechanism
    pendingInitial: bytes | None


def _parseNumbers(text: bytes, count: int, what: str) -> list[int]:
    """
    The first C{count} words of C{text} as decimal numbers; any text after them is
    ignored (RFC 1939 allows it).
    """
    words = text.split()[:count]
    if len(words) < count or not all(word.isdigit() for word in words):
        raise ServerProtocolError(f"malformed {what} answer {text[:60]!r}")
    return [int(word) for word in words]


def _scanLines(body: bytes, what: str) -> list[tuple[int, bytes]]:
    entries = []
    for line in body.split(b"\r\n"):
        if not line.strip():
            continue
        number, _, rest = line.strip().partition(b" ")
        if not number.isdigit() or not rest.strip():
            raise ServerProtocolError(f"malformed {what} line {line[:60]!r}")
        entries.append((int(number), rest.strip()))
    return entries


def _parseCapabilities(body: bytes) -> dict[str, list[str]]:
    capabilities: dict[str, list[str]] = {}
    for line in body.split(b"\r\n"):
        words = line.decode("utf-8", "replace").split()
        if words:
            capabilities[words[0].upper()] = words[1:]
    return capabilities


# ---------------------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------------------


@implementer(IHandshakeListener)
class POP3Client(Protocol):
    """
    One POP3 client session.

    A plain L{Protocol} rather than a C{LineReceiver}: the sans-IO core frames the
    server's octets, because a multi-line body is not a sequence of lines to the client
    (it is streamed, un-stuffed, in whatever chunks arrive) and the core decides where the
    TLS handshake begins.

    @ivar greeting: The text of the server's greeting, after C{+OK}, once received.
    @ivar apopTimestamp: The APOP timestamp from the greeting, brackets included, or
        L{None}.
    @ivar state: The L{ClientState}.
    @ivar maildrop: The L{MaildropListing} while in TRANSACTION, otherwise L{None}.
    @ivar utf8: Whether UTF8 mode was enabled (L{enableUTF8}).
    """

    def __init__(
        self,
        *,
        clock: IReactorTime | None = None,
        timeout: float = 60.0,
        maxResponseSize: int = 64 * 1024 * 1024,
        maxPipeline: int = 64,
        allowCleartextLogin: bool = False,
        hostname: str | None = None,
    ) -> None:
        """
        @param clock: Schedules timeouts; the global reactor by default.
        @param timeout: Seconds the server may stay silent while the client waits for an
            answer (the greeting, a response, more of a response, the TLS handshake)
            before the connection is aborted and everything pending fails with
            L{TimeoutError}.
        @param maxResponseSize: The largest response collected in memory: CAPA, LIST,
            UIDL, TOP, and RETR without a consumer.
        @param maxPipeline: The most commands in flight at once when pipelining.
        @param allowCleartextLogin: Allow USER/PASS, SASL PLAIN and LOGIN, which send the
            password itself, on a connection without TLS.
        @param hostname: The server's name, for SASL mechanisms that want it.
        """
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.clock = clock
        self.timeout = timeout
        self.maxResponseSize = maxResponseSize
        self.maxPipeline = maxPipeline
        self.allowCleartextLogin = allowCleartextLogin
        self.hostname = hostname
        self.greeting = b""
        self.apopTimestamp: bytes | None = None
        self.utf8 = False
        self.state = ClientState.GREETING
        self.maildrop: MaildropListing | None = None
        self._core = ClientConnection()
        self._greetingWaiters: list[Deferred[bytes]] = []
        self._greetingFailure: Failure | None = None
        self._greetingRequest = _Request(b"", b"greeting", ResponseKind.SINGLE, self._onGreeting)
        self._greetingRequest.deferred.addErrback(self._greetingFailed)
        self._queue: deque[_Request] = deque()
        self._inFlight: deque[_Request] = deque([self._greetingRequest])
        self._exclusive: _Request | None = None
        self._handshake: _Request | None = None
        self._capabilities: dict[str, list[str]] | None = None
        self._pipelining = False
        self._secure = False
        self._tlsPending = False
        self._timer: IDelayedCall | None = None
        self._readingPaused = False
        self._closed = False
        self._closeReason: BaseException | None = None
        self._whenClosed: list[Deferred[None]] = []
        self._quitAnswered = False
        self._processing = False

    # Connection lifecycle

    def connectionMade(self) -> None:
        """
        Start waiting for the greeting.
        """
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)
        if INegotiated.providedBy(self.transport) or ISSLTransport.providedBy(self.transport):
            # Implicit TLS: secure once handshakeCompleted says so.
            self._tlsPending = True
        self._updateTimer()

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is done (implicit TLS, or after STLS).
        """
        self._secure = True
        self._tlsPending = False
        request, self._handshake = self._handshake, None
        if request is None:
            return
        self._capabilities = None
        self._pipelining = False
        self.state = ClientState.AUTHORIZATION
        self._exclusive = None
        self._updateTimer()
        request.succeed(None)
        self._pump()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Fail every command still waiting, or finish C{quit}.
        """
        self._closed = True
        self.state = ClientState.CLOSED
        self.maildrop = None
        self._cancelTimer()
        pending = list(self._inFlight) + list(self._queue)
        if self._handshake is not None:
            pending.insert(0, self._handshake)
        self._inFlight.clear()
        self._queue.clear()
        self._handshake = None
        self._exclusive = None
        for request in pending:
            if request.sink is not None:
                request.sink.abandon()
            error = self._lostError(reason, request)
            request.fail(error)
        waiting, self._whenClosed = self._whenClosed, []
        for d in waiting:
            d.callback(None)

    def _lostError(self, reason: Failure, request: _Request) -> BaseException:
        if self._closeReason is not None:
            return self._closeReason
        what = request.redacted.decode("ascii", "replace")
        handshaking = (self._tlsPending or self._handshake is not None) and not self._secure
        if handshaking or isinstance(reason.value, SSL.Error | VerificationError):
            return TLSFailed(f"TLS failed while waiting for the answer to {what}: {reason.value}")
        return ConnectionLost(
            f"connection lost while waiting for the answer to {what}: {reason.getErrorMessage()}"
        )

    def _abort(self, error: BaseException) -> None:
        """
        Close the connection at once; everything pending fails with C{error}.
        """
        if self._closeReason is None:
            self._closeReason = error
        if self.transport is not None and not self._closed:
            cast(ITCPTransport, self.transport).abortConnection()

    def abort(self) -> None:
        """
        Close the connection at once, without QUIT, so the server deletes nothing
        (RFC 1939 section 6).  Commands still waiting fail with L{ConnectionLost}.
        """
        if self.transport is not None and not self._closed:
            cast(ITCPTransport, self.transport).abortConnection()

    def whenClosed(self) -> Deferred[None]:
        """
        A L{Deferred} firing once the connection is closed, however that happens.
        """
        if self._closed:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._whenClosed.append(d)
        return d

    def waitForGreeting(self) -> Deferred[bytes]:
        """
        A L{Deferred} firing with the greeting line (or failing if the connection closes
        or times out first, or the server greets with C{-ERR}).
        """
        if self._greetingFailure is not None:
            return fail(self._greetingFailure)
        if self.state is not ClientState.GREETING:
            return succeed(self.greeting)
        d: Deferred[bytes] = Deferred()
        self._greetingWaiters.append(d)
        return d

    def _onGreeting(self, status: StatusLine) -> bytes:
        self.greeting = status.text
        self.apopTimestamp = apopTimestamp(status.text)
        self.state = ClientState.AUTHORIZATION
        waiters, self._greetingWaiters = self._greetingWaiters, []
        for d in waiters:
            d.callback(self.greeting)
        return self.greeting

    def _greetingFailed(self, failure: Failure) -> None:
        self._greetingFailure = failure
        waiters, self._greetingWaiters = self._greetingWaiters, []
        for d in waiters:
            d.errback(failure)
        if not self._closed:
            self._abort(failure.value or ConnectionLost())

    @property
    def isSecure(self) -> bool:
        """
        Whether the connection is protected by TLS (implicit, or after STLS).
        """
        return self._secure

    # Timeouts and flow control

    def _updateTimer(self) -> None:
        waiting = (
            bool(self._inFlight or self._handshake) and not self._readingPaused and not self._closed
        )
        if waiting and self._timer is None:
            self._timer = self.clock.callLater(self.timeout, self._timedOut)
        elif not waiting:
            self._cancelTimer()

    def _cancelTimer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _timedOut(self) -> None:
        self._timer = None
        what = b"the TLS handshake" if self._handshake is not None else b""
        if not what and self._inFlight:
            what = self._inFlight[0].redacted
        _log.info("POP3 server silent for {timeout} s, closing", timeout=self.timeout)
        self._abort(
            TimeoutError(  # type: ignore[no-untyped-call]
                f"no answer from the server for {self.timeout} s while waiting for "
                f"{what.decode('ascii', 'replace')}"
            )
        )

    def _pauseReading(self) -> None:
        if not self._readingPaused and not self._closed:
            self._readingPaused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]
            self._updateTimer()

    def _resumeReading(self) -> None:
        if self._readingPaused and not self._closed:
            self._readingPaused = False
            self.transport.resumeProducing()  # type: ignore[union-attr]
            self._updateTimer()

    # Receiving

    def dataReceived(self, data: bytes) -> None:
        """
        Feed the octets to the core and act on its events.
        """
        if self._timer is not None:
            self._timer.reset(self.timeout)
        if not self._processing and not self._closed and self._closeReason is None:
            # The bulk of a RETR: straight from the decoder to the sink.
            body = self._core.receiveBody(data)
            if body is not None:
                if body:
                    self._bodyData(body)
                if self._core.bodyComplete:
                    self._processEvents()
                return
        self._core.receiveData(data)
        self._processEvents()

    def _processEvents(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            while not self._closed and self._closeReason is None:
                try:
                    event = self._core.nextEvent()
                except ServerProtocolError as e:
                    self._abort(e)
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
            assert isinstance(request, _SASLRequest)
            self._challenge(request, event.payload)
            return
        if isinstance(event, StatusLine) and event.ok and request.kind is ResponseKind.MULTILINE:
            request.status = event
            assert request.sink is not None
            request.sink.start()
            return
        self._inFlight.popleft()
        if self._exclusive is request and request.kind is not ResponseKind.STLS:
            self._exclusive = None
        if isinstance(event, EndOfBody):
            self._finishBody(request)
        else:
            self._finishStatus(request, event)
        self._updateTimer()
        self._pump()

    def _bodyData(self, data: bytes) -> None:
        sink = self._inFlight[0].sink
        assert sink is not None
        try:
            sink.write(data)
        except Exception as e:
            # The consumer or file failed: the rest of the answer cannot be stored.
            self._abort(e)

    def _finishStatus(self, request: _Request, status: StatusLine) -> None:
        if not status.ok:
            if request.kind is ResponseKind.STLS:
                self._exclusive = None
            error: BaseException = request.serverError(status)
            if request.failure is not None:
                error = request.failure
            request.fail(error)
            return
        if request.failure is not None:
            # +OK to a cancelled SASL exchange: the server is not following the protocol.
            request.fail(request.failure)
            self._abort(request.failure)
            return
        try:
            result = request.onOK(status)
        except Exception as e:
            request.fail(e)
            if request.kind is ResponseKind.STLS or isinstance(
                e, ServerProtocolError | AuthenticationFailed
            ):
                self._abort(e)
            return
        if request.kind is ResponseKind.STLS:
            return
        if isinstance(result, Deferred):
            result.addCallbacks(request.succeed, request.fail)
            return
        request.succeed(result)

    def _finishBody(self, request: _Request) -> None:
        assert request.sink is not None and request.status is not None
        try:
            body = request.sink.finish()
            result = request.onOK(request.status, body)
        except Exception as e:
            request.fail(e)
            if isinstance(e, ServerProtocolError):
                self._abort(e)
            return
        request.succeed(result)

    # Sending

    def _enqueue(self, request: _Request) -> Deferred[Any]:
        request.deferred = Deferred(lambda d: self._cancel(request))
        if self._closed:
            return fail(ConnectionLost("not connected"))
        if self.state is ClientState.QUITTING:
            return fail(InvalidState("QUIT was already sent"))
        self._queue.append(request)
        self._pump()
        return request.deferred

    def _cancel(self, request: _Request) -> None:
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
        if sink is None or isinstance(sink, _Collector):
            return
        # Nothing more goes to the caller's file or consumer.
        request.sink = _Collector(0)
        if request.status is not None:
            sink.abandon()
            request.fail(CancelledError())
            what = request.redacted.decode("ascii", "replace")
            self._abort(ConnectionLost(f"{what} was cancelled during the transfer"))

    def _command(
        self,
        keyword: bytes,
        *arguments: bytes,
        onOK: Callable[..., object],
        kind: ResponseKind = ResponseKind.SINGLE,
        redacted: bytes | None = None,
        sink: _Sink | None = None,
        exclusive: bool = False,
    ) -> Deferred[Any]:
        line = formatCommand(keyword, *arguments)
        if redacted is None:
            redacted = line[:-2]
        if kind is ResponseKind.MULTILINE and sink is None:
            sink = _Collector(self.maxResponseSize)
        request = _Request(line, redacted, kind, onOK, sink=sink, exclusive=exclusive)
        return self._enqueue(request)

    def _pump(self) -> None:
        while self._queue and not self._closed:
            if self._exclusive is not None or self._handshake is not None:
                break
            head = self._queue[0]
            if self._inFlight and (
                head.exclusive or not self._pipelining or len(self._inFlight) >= self.maxPipeline
            ):
                break
            self._queue.popleft()
            self._send(head)
        self._updateTimer()

    def _send(self, request: _Request) -> None:
        self._core.expect(request.kind)
        self._inFlight.append(request)
        if request.exclusive:
            self._exclusive = request
        assert self.transport is not None
        self.transport.write(request.line)

    # Capabilities and TLS

    def capabilities(self, *, refresh: bool = False) -> Deferred[dict[str, list[str]]]:
        """
        The server's capabilities (CAPA, RFC 2449): tags upper case, each with its
        parameters.  C{{}} when the server does not know CAPA.  The answer is cached
        until STLS (or login, when capabilities may change); C{refresh} asks again.
        """
        if self._capabilities is not None and not refresh:
            return succeed(_copyCapabilities(self._capabilities))

        def onOK(status: StatusLine, body: bytes) -> dict[str, list[str]]:
            capabilities = _parseCapabilities(body)
            self._setCapabilities(capabilities)
            return _copyCapabilities(capabilities)

        def onError(failure: Failure) -> dict[str, list[str]]:
            if not isinstance(failure.value, ServerError):
                failure.raiseException()
            self._setCapabilities({})
            return {}

        d = self._command(b"CAPA", onOK=onOK, kind=ResponseKind.MULTILINE)
        return d.addErrback(onError)

    def _setCapabilities(self, capabilities: dict[str, list[str]]) -> None:
        self._capabilities = capabilities
        self._pipelining = "PIPELINING" in capabilities
        self._pump()

    def startTLS(self, contextFactory: IOpenSSLClientConnectionCreator) -> Deferred[None]:
        """
        Send STLS (RFC 2595) and, after C{+OK}, negotiate TLS with C{contextFactory}
        (see L{tlsOptions}).  Nothing else is sent from STLS until the handshake is done;
        octets the server sent after its C{+OK} in the clear are discarded.  The cached
        capabilities are dropped: call L{capabilities} again.

        @return: A L{Deferred} firing once the handshake is done; failing with
            L{ServerError} if the server refuses, L{TLSFailed} if the handshake fails.
        """
        if self._secure:
            return fail(InvalidState("TLS is already active"))
        if self.state not in (ClientState.GREETING, ClientState.AUTHORIZATION):
            return fail(InvalidState(f"STLS is not possible in state {self.state.value}"))
        if not ITLSTransport.providedBy(self.transport):
            return fail(InvalidState("the transport cannot start TLS"))

        def onOK(status: StatusLine) -> None:
            self.state = ClientState.STARTING_TLS
            self._handshake = request
            transport = self.transport
            assert transport is not None
            transport.startTLS(contextFactory)  # type: ignore[attr-defined]

        line = formatCommand(b"STLS")
        request = _Request(line, b"STLS", ResponseKind.STLS, onOK, exclusive=True)
        return self._enqueue(request)

    def enableUTF8(self) -> Deferred[None]:
        """
        UTF8 (RFC 6856): let the server send UTF-8 headers unmodified, and take UTF-8
        user names and passwords when it announces C{UTF8 USER}.  Only in AUTHORIZATION,
        and only when the server announces C{UTF8} (call L{capabilities} first).

        @return: A L{Deferred} firing once the server agreed; failing with
            L{InvalidState} after login or when C{UTF8} is not announced, with
            L{ServerError} when the server refuses.
        """
        if self.state not in (ClientState.GREETING, ClientState.AUTHORIZATION):
            return fail(InvalidState("UTF8 is only allowed before login"))
        if self._capabilities is None or "UTF8" not in self._capabilities:
            return fail(InvalidState("the server does not announce UTF8"))

        def onOK(status: StatusLine) -> None:
            self.utf8 = True

        return self._command(b"UTF8", onOK=onOK)

    # Login

    def login(
        self,
        username: str,
        password: str,
        *,
        mechanism: str | None = None,
        authzid: str = "",
    ) -> Deferred[tuple[int, int]]:
        """
        Log in, then STAT.

        @param mechanism: One of L{MECHANISMS}, or L{None} for the best one both sides
            support: SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, PLAIN, LOGIN (as the server
            announces them in its SASL capability, and C{pop3kit.sasl} provides them), then
            USER/PASS.  APOP is used only when asked for.  Methods that send the password
            itself (L{CLEARTEXT_MECHANISMS}) are refused without TLS unless the client
            allows clear-text logins.
        @param authzid: The identity to act as (SASL only), empty for C{username}.

        The cached capabilities are dropped at login: call L{capabilities} again for the
        per-user values (LOGIN-DELAY, EXPIRE) servers announce after it.
        @return: A L{Deferred} firing with the message count and maildrop size (STAT),
            failing with L{ServerError} (code L{ResponseCode.AUTH}, C{IN-USE},
            C{LOGIN-DELAY}, C{SYS/TEMP}, ...) when the server refuses, with
            L{MechanismUnavailable} when no allowed method is left.
        """
        return Deferred.fromCoroutine(self._login(username, password, mechanism, authzid))

    async def _login(
        self, username: str, password: str, mechanism: str | None, authzid: str
    ) -> tuple[int, int]:
        if self.state is ClientState.GREETING:
            await self.waitForGreeting()
        if self.state is not ClientState.AUTHORIZATION:
            raise InvalidState(f"cannot log in in state {self.state.value}")
        if mechanism is None:
            mechanism = self._bestMechanism(await self.capabilities())
        mechanism = mechanism.lower()
        if mechanism not in MECHANISMS:
            raise MechanismUnavailable(f"unknown login method {mechanism!r}")
        if mechanism in CLEARTEXT_MECHANISMS and not self._secure and not self.allowCleartextLogin:
            raise MechanismUnavailable(
                f"refusing to send the password with {mechanism.upper()} without TLS"
            )
        if mechanism == "user":
            await self._userPass(username, password)
        elif mechanism == "apop":
            await self._apop(username, password)
        else:
            sasl = _saslMechanism(mechanism.upper(), username, password, authzid, self.hostname)
            await self.authenticate(sasl)
        return await self.stat()

    def _bestMechanism(self, capabilities: dict[str, list[str]]) -> str:
        offered = {name.upper() for name in capabilities.get("SASL", [])}
        allowed = self._secure or self.allowCleartextLogin
        for name in _saslPreference():
            if name.upper() in offered and (allowed or name.lower() not in CLEARTEXT_MECHANISMS):
                return name.lower()
        if "USER" in capabilities or not capabilities:
            if allowed:
                return "user"
            raise MechanismUnavailable(
                "the server offers only clear-text logins and the connection is not encrypted"
            )
        raise MechanismUnavailable("the server offers no login method this client supports")

    def _enterAuthentication(self) -> None:
        self.state = ClientState.AUTHENTICATING
        self._capabilities = None

    def _loggedIn(self, status: StatusLine) -> None:
        self.state = ClientState.TRANSACTION
        self.maildrop = MaildropListing()

    def _loginRefused(self, failure: Failure) -> Failure:
        if self.state is ClientState.AUTHENTICATING:
            self.state = ClientState.AUTHORIZATION
        return failure

    async def _userPass(self, username: str, password: str) -> None:
        name = username.encode("utf-8")
        if b" " in name:
            raise ValueError("a USER name cannot contain spaces")
        secret = password.encode("utf-8")
        # Check both lines before sending either.
        formatCommand(b"USER", name)
        formatCommand(b"PASS", secret)
        self._enterAuthentication()
        user = self._command(b"USER", name, onOK=_ignore)
        user.addErrback(self._loginRefused)
        if self._pipelining:
            password_ = self._command(
                b"PASS", secret, onOK=self._loggedIn, redacted=b"PASS <redacted>"
            )
            password_.addErrback(self._loginRefused)
            try:
                await user
            except BaseException:
                password_.addErrback(_ignore)
                raise
            await password_
        else:
            await user
            self.state = ClientState.AUTHENTICATING
            passwordAnswer = self._command(
                b"PASS", secret, onOK=self._loggedIn, redacted=b"PASS <redacted>"
            )
            await passwordAnswer.addErrback(self._loginRefused)

    async def _apop(self, username: str, password: str) -> None:
        if self.apopTimestamp is None:
            raise MechanismUnavailable("the greeting holds no APOP timestamp")
        name = username.encode("utf-8")
        if b" " in name:
            raise ValueError("an APOP name cannot contain spaces")
        digest = hashlib.md5(  # noqa: S324 - APOP is defined with MD5 (RFC 1939 section 7)
            self.apopTimestamp + password.encode("utf-8")
        ).hexdigest()
        self._enterAuthentication()
        d = self._command(
            b"APOP",
            name,
            digest.encode("ascii"),
            onOK=self._loggedIn,
            redacted=b"APOP " + name + b" <redacted>",
        )
        await d.addErrback(self._loginRefused)

    def authenticate(self, mechanism: ClientMechanism) -> Deferred[None]:
        """
        Log in with SASL (AUTH, RFC 5034) using C{mechanism}, for example one made by
        C{pop3kit.sasl.clientMechanism}.

        The initial response goes on the AUTH line when it fits in 255 octets (C{=} when
        empty), otherwise it follows the server's empty challenge.  A challenge that is
        not valid base64, or that the mechanism refuses, cancels the exchange with C{*}.
        A C{+OK} before the mechanism is complete (SCRAM's server signature not verified)
        is not trusted: the connection is closed.

        @return: A L{Deferred} firing once logged in.
        """
        if self.state is not ClientState.AUTHORIZATION:
            return fail(InvalidState(f"cannot authenticate in state {self.state.value}"))
        name = mechanism.name.upper().encode("ascii")
        initial = mechanism.initialResponse()
        line = formatCommand(b"AUTH", name)
        redacted = b"AUTH " + name
        pendingInitial = None
        if initial is not None:
            encoded = base64.b64encode(initial) or b"="
            try:
                line = formatCommand(b"AUTH", name, encoded)
                redacted += b" <redacted>"
            except CommandTooLong:
                pendingInitial = initial
        request = _SASLRequest(line, redacted, ResponseKind.SASL, _ignore, exclusive=True)
        request.onOK = lambda status: self._saslDone(request, status)
        request.mechanism = mechanism
        request.pendingInitial = pendingInitial
        self._enterAuthentication()
        d = self._enqueue(request)
        return d.addErrback(self._loginRefused)

    def _saslDone(self, request: _SASLRequest, status: StatusLine) -> None:
        if not getattr(request.mechanism, "complete", True):
            raise AuthenticationFailed(
                "the server accepted the login without proving that it knows the password"
            )
        self._loggedIn(status)

    def _challenge(self, request: _SASLRequest, payload: bytes) -> None:
        if request.failure is not None:
            self._abort(ServerProtocolError("a SASL challenge after the exchange was cancelled"))
            return
        try:
            challenge = base64.b64decode(payload, validate=True)
        except binascii.Error:
            self._cancelSASL(request, ServerProtocolError("undecodable SASL challenge"))
            return
        if request.pendingInitial is not None:
            response, request.pendingInitial = request.pendingInitial, None
        else:
            try:
                response = request.mechanism.respond(challenge)
            except Exception as e:
                self._cancelSASL(request, e)
                return
        assert self.transport is not None
        self.transport.write(self._core.sendSASLResponse(base64.b64encode(response)))

    def _cancelSASL(self, request: _SASLRequest, error: BaseException) -> None:
        request.failure = error
        assert self.transport is not None
        self.transport.write(self._core.sendSASLResponse(b"*"))

    # Transaction

    def stat(self) -> Deferred[tuple[int, int]]:
        """
        STAT: the number of messages and the maildrop size in octets (messages marked
        deleted excluded).
        """

        def onOK(status: StatusLine) -> tuple[int, int]:
            count, octets = _parseNumbers(status.text, 2, "STAT")
            if self.maildrop is not None and not self.maildrop.deleted:
                self.maildrop.count, self.maildrop.octets = count, octets
            return count, octets

        return self._command(b"STAT", onOK=onOK)

    def listSizes(self) -> Deferred[dict[int, int]]:
        """
        LIST: the size of every message not marked deleted, by message number.  Sizes
        are as on the wire (CRLF line ends), which is what L{retrieve} delivers.
        """

        def onOK(status: StatusLine, body: bytes) -> dict[int, int]:
            sizes = {}
            for number, rest in _scanLines(body, "LIST"):
                (size,) = _parseNumbers(rest, 1, "LIST")
                sizes[number] = size
            if self.maildrop is not None:
                self.maildrop.sizes = dict(sizes)
            return sizes

        return self._command(b"LIST", onOK=onOK, kind=ResponseKind.MULTILINE)

    def listSize(self, n: int) -> Deferred[int]:
        """
        C{LIST n}: the size of message C{n}.
        """

        def onOK(status: StatusLine) -> int:
            _, size = _parseNumbers(status.text, 2, "LIST")
            return size

        return self._command(b"LIST", _number(n), onOK=onOK)

    def listUids(self) -> Deferred[dict[int, str]]:
        """
        UIDL: the unique-id of every message not marked deleted, by message number.
        Identical copies of a message may share a unique-id (RFC 1939 section 7).
        """

        def onOK(status: StatusLine, body: bytes) -> dict[int, str]:
            uids = {number: _uid(rest) for number, rest in _scanLines(body, "UIDL")}
            if self.maildrop is not None:
                self.maildrop.uids = dict(uids)
            return uids

        return self._command(b"UIDL", onOK=onOK, kind=ResponseKind.MULTILINE)

    def listUid(self, n: int) -> Deferred[str]:
        """
        C{UIDL n}: the unique-id of message C{n}.
        """

        def onOK(status: StatusLine) -> str:
            number, _, rest = status.text.strip().partition(b" ")
            if not number.isdigit():
                raise ServerProtocolError(f"malformed UIDL answer {status.text[:60]!r}")
            return _uid(rest)

        return self._command(b"UIDL", _number(n), onOK=onOK)

    @overload
    def retrieve(self, n: int, consumer: None = None) -> Deferred[bytes]: ...

    @overload
    def retrieve(self, n: int, consumer: IConsumer | BinaryIO) -> Deferred[int]: ...

    def retrieve(
        self, n: int, consumer: IConsumer | BinaryIO | None = None
    ) -> Deferred[bytes] | Deferred[int]:
        """
        RETR: message C{n} as on the wire: CRLF line ends, byte-stuffing removed, without
        the terminating C{.}.

        @param consumer: L{None} to collect the message in memory (up to
            C{maxResponseSize}); otherwise a binary file or an L{IConsumer} to stream it
            into, chunk by chunk as it arrives.  An L{IConsumer} gets a streaming
            producer registered for the duration of the message: pausing it stops reading
            from the server.
        @return: A L{Deferred} firing with the message, or with the number of octets
            streamed.
        """
        sink: _Sink
        if consumer is None:
            sink = _Collector(self.maxResponseSize)
        elif IConsumer.providedBy(consumer):
            sink = _ConsumerSink(consumer, self)
        else:
            sink = _FileSink(consumer)
        return self._command(
            b"RETR", _number(n), onOK=_body, kind=ResponseKind.MULTILINE, sink=sink
        )

    def top(self, n: int, lines: int) -> Deferred[bytes]:
        """
        C{TOP n lines}: the headers of message C{n}, the blank line, and the first
        C{lines} lines of its body, in the form L{retrieve} gives.
        """
        if not isinstance(lines, int) or lines < 0:
            raise ValueError(f"TOP needs a non-negative line count, not {lines!r}")
        return self._command(
            b"TOP", _number(n), b"%d" % lines, onOK=_body, kind=ResponseKind.MULTILINE
        )

    def delete(self, n: int) -> Deferred[None]:
        """
        C{DELE n}: mark message C{n} deleted.  It is removed only when L{quit} succeeds.
        """

        def onOK(status: StatusLine) -> None:
            maildrop = self.maildrop
            if maildrop is not None:
                maildrop.deleted.add(n)
                if maildrop.sizes is not None:
                    maildrop.sizes.pop(n, None)
                if maildrop.uids is not None:
                    maildrop.uids.pop(n, None)

        return self._command(b"DELE", _number(n), onOK=onOK)

    def reset(self) -> Deferred[None]:
        """
        RSET: unmark every message marked deleted.
        """

        def onOK(status: StatusLine) -> None:
            if self.maildrop is not None:
                self.maildrop = MaildropListing(self.maildrop.count, self.maildrop.octets)

        return self._command(b"RSET", onOK=onOK)

    def noop(self) -> Deferred[None]:
        """
        NOOP: keep the session alive (servers may close it after 10 idle minutes).
        """
        return self._command(b"NOOP", onOK=_ignore)

    def quit(self) -> Deferred[None]:
        """
        QUIT: in TRANSACTION, the server removes the messages marked deleted (UPDATE).

        @return: A L{Deferred} firing once the server has answered C{+OK} and the
            connection is closed; failing with L{ServerError} when the server could not
            remove them all, or with L{ConnectionLost} when the connection closed before
            the answer, in which case nothing may have been removed.
        """

        def onOK(status: StatusLine) -> Deferred[None]:
            closed: Deferred[None] = Deferred()
            self._whenClosed.append(closed)
            assert self.transport is not None
            self.transport.loseConnection()
            return closed

        d = self._command(b"QUIT", onOK=onOK)
        self.state = ClientState.QUITTING
        return d


def _ignore(*args: object) -> None:
    return None


def _body(status: StatusLine, body: bytes | int) -> bytes | int:
    return body


def _number(n: int) -> bytes:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"message numbers start at 1, not {n!r}")
    return b"%d" % n


def _uid(text: bytes) -> str:
    """
    The unique-id at the start of C{text}: printable ASCII without spaces (RFC 1939
    section 7).  Longer ids than the RFC's 70 characters are tolerated.
    """
    words = text.split()
    if not words or not _UID.fullmatch(words[0]):
        raise ServerProtocolError(f"malformed unique-id {text[:80]!r}")
    return words[0].decode("ascii")


def _copyCapabilities(capabilities: dict[str, list[str]]) -> dict[str, list[str]]:
    return {tag: list(parameters) for tag, parameters in capabilities.items()}


# ---------------------------------------------------------------------------------------
# Connecting
# ---------------------------------------------------------------------------------------


def tlsOptions(hostname: str, cafile: str | None = None) -> IOpenSSLClientConnectionCreator:
    """
    TLS client options that verify the server's certificate for C{hostname} (a DNS name,
    or an IP address checked against the certificate's IP SANs) with C{service_identity},
    and send SNI for DNS names.

    @param cafile: A PEM file of the certificate authorities to trust; the platform's
        trust store when L{None}.
    """
    from twisted.internet.ssl import (
        Certificate,
        optionsForClientTLS,
        platformTrust,
        trustRootFromCertificates,
    )

    if cafile is None:
        return optionsForClientTLS(hostname, trustRoot=platformTrust())  # type: ignore[no-untyped-call]
    with open(cafile, "rb") as f:
        pem = f.read()
    certificates = [Certificate.loadPEM(block) for block in _PEM_CERTIFICATE.findall(pem)]
    if not certificates:
        raise ValueError(f"no PEM certificate in {cafile}")
    trustRoot = trustRootFromCertificates(certificates)  # type: ignore[no-untyped-call]
    return optionsForClientTLS(hostname, trustRoot=trustRoot)


TLSMode = Literal["implicit", "starttls", "starttls-if-offered", "none"]
TLSMode.__doc__ = """
How L{connect} secures the connection: C{"implicit"}, C{"starttls"} (required),
C{"starttls-if-offered"}, C{"none"}.
"""


async def connect(
    reactor: Any,
    host: str,
    port: int | None = None,
    *,
    tls: TLSMode = "starttls",
    cafile: str | None = None,
    hostname: str | None = None,
    timeout: float = 60.0,
    allowCleartextLogin: bool | None = None,
    contextFactory: IOpenSSLClientConnectionCreator | None = None,
) -> POP3Client:
    """
    Connect to a POP3 server, wait for its greeting and negotiate TLS.

    Run it with C{Deferred.fromCoroutine(connect(...))} from callback-style code.

    @param reactor: Provides TCP and time (the global reactor, usually).
    @param port: 995 for implicit TLS, 110 otherwise, by default.
    @param tls: C{"implicit"}: TLS from the first octet (RFC 8314, preferred).
        C{"starttls"}: STLS (RFC 2595) is required; a server that does not offer it or
        refuses it fails the connection with L{TLSUnavailable} before anything secret is
        sent.  C{"starttls-if-offered"}: STLS when offered, clear text otherwise (open to
        an attacker stripping STLS from CAPA).  C{"none"}: clear text.
    @param cafile: A PEM file of trusted authorities; the platform trust store by default.
    @param hostname: The name the certificate must be valid for; C{host} by default.
    @param timeout: Seconds for connecting and for each wait on the server.
    @param allowCleartextLogin: Passed to L{POP3Client}; by default allowed for C{"none"}
        and C{"starttls-if-offered"} only.
    @param contextFactory: TLS options to use instead of those made from C{cafile} and
        C{hostname} (see L{tlsOptions}).
    @return: The client in AUTHORIZATION state, TLS negotiated as asked, with fresh
        capabilities cached.
    """
    from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS

    if tls not in ("implicit", "starttls", "starttls-if-offered", "none"):
        raise ValueError(f"unknown TLS mode {tls!r}")
    if port is None:
        port = 995 if tls == "implicit" else 110
    if hostname is None:
        hostname = host
    if allowCleartextLogin is None:
        allowCleartextLogin = tls in ("none", "starttls-if-offered")
    options = None
    if tls != "none":
        options = contextFactory if contextFactory is not None else tlsOptions(hostname, cafile)
    endpoint: Any = HostnameEndpoint(reactor, host, port, timeout=timeout)
    if tls == "implicit":
        assert options is not None
        endpoint = wrapClientTLS(options, endpoint)
    client = POP3Client(
        clock=reactor,
        timeout=timeout,
        allowCleartextLogin=allowCleartextLogin,
        hostname=hostname,
    )
    await connectProtocol(endpoint, client)  # type: ignore[no-untyped-call]
    try:
        await client.waitForGreeting()
        if tls in ("starttls", "starttls-if-offered"):
            assert options is not None
            await _negotiateSTLS(client, options, required=tls == "starttls")
        await client.capabilities()
    except BaseException:
        if client.transport is not None and client.state is not ClientState.CLOSED:
            cast(ITCPTransport, client.transport).abortConnection()
        raise
    return client


async def _negotiateSTLS(
    client: POP3Client, options: IOpenSSLClientConnectionCreator, required: bool
) -> None:
    capabilities = await client.capabilities()
    if capabilities and "STLS" not in capabilities:
        if required:
            raise TLSUnavailable("the server does not offer STLS")
        return
    try:
        await client.startTLS(options)
    except ServerError as e:
        if required:
            raise TLSUnavailable(f"the server refused STLS: {e}") from e
