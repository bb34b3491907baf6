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
order.  C{connect(..., endpoint=...)} connects over any L{IStreamClientEndpoint} (a UNIX
socket, an in-memory pair in tests).

Failures arrive as typed exceptions, all of them L{pop3kit.errors.POP3Error}s except
Twisted's own L{TimeoutError} and L{ConnectionLost}::

    POP3Error
    +-- ServerError                the server answered -ERR (with its response code)
    +-- ClientError                the client gave up by itself
    |   +-- TLSUnavailable         TLS required, but STLS not offered or refused
    |   +-- TLSFailed              the TLS handshake failed (also a ConnectionLost)
    |   +-- MechanismUnavailable   no allowed login method left
    |   +-- InvalidState           not possible now (login twice, anything after quit)
    |   +-- ResponseTooLarge       an answer collected in memory was too large
    |   +-- ListingTooLarge        a listing past the caps (the connection is closed)
    |   +-- ServerStalled          the server stopped making progress (closed too; also
    |                              a TimeoutError)
    +-- ProtocolError
        +-- LocalProtocolError     (a ValueError) nothing sent: a message number below 1
        |   +-- CommandTooLong     a command line over 255 octets
        +-- RemoteProtocolError
            +-- ServerProtocolError   the server broke POP3; the connection is closed

L{twisted.internet.error.TimeoutError} says the server stayed silent for longer than the
timeout, L{twisted.internet.error.ConnectionLost} that the connection went away while a
command waited.

A server that keeps talking without making progress does not trip the inactivity
timeout, so every answer also has a deadline (C{responseTimeout}, 30 s by default,
counted from when the answer is due): the greeting, a status line, the TLS handshake
after C{STLS} and each SASL step must be complete by then, and the body of a multi-line
answer must bring at least C{minimumRate} octets a second (1 KiB/s by default) over each
such window, so that a large message over a slow link goes through while a trickle is
cut off.  Listings (C{LIST}, C{UIDL}, C{CAPA}) are capped by C{maxListingEntries} and
C{maxListingOctets}.  Past a deadline or a cap the connection is closed without C{QUIT}
(nothing is deleted) and everything pending fails with L{ServerStalled} or
L{ListingTooLarge}.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum
from typing import Any, BinaryIO, Literal, cast, overload

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import (
    IConsumer,
    IHandshakeListener,
    INegotiated,
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    ISSLTransport,
    IStreamClientEndpoint,
    ITCPTransport,
    ITLSTransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pop3kit._clienterrors import (
    ClientError,
    InvalidState,
    ListingTooLarge,
    MechanismUnavailable,
    ResponseTooLarge,
    ServerError,
    ServerStalled,
    TLSFailed,
    TLSUnavailable,
)
from pop3kit._clientlimits import (
    DEFAULT_MAX_LISTING_ENTRIES,
    DEFAULT_MAX_LISTING_OCTETS,
    DEFAULT_MINIMUM_RATE,
    DEFAULT_RESPONSE_TIMEOUT,
)
from pop3kit._clientlogin import (
    CLEARTEXT_MECHANISMS,
    MECHANISMS,
    LoginPlan,
    SASLExchange,
    bestMechanism,
    checkMechanism,
)
from pop3kit._clientmachine import (
    LISTING_COMMANDS,
    ClientState,
    LifecycleCore,
    MaildropListing,
    makeLifecycle,
)
from pop3kit._pipeline import (
    OneShot,
    Pipeline,
    Request,
)
from pop3kit._sinks import BodySink, ConsumerSink, FileSink
from pop3kit.core import (
    Apop,
    Auth,
    Capa,
    Capabilities,
    ClientConnection,
    Command,
    CommandTooLong,
    Dele,
    List,
    Noop,
    Pass,
    Quit,
    Retr,
    Rset,
    ServerProtocolError,
    Stat,
    StatusLine,
    Stls,
    Top,
    Uidl,
    Utf8,
)
from pop3kit.core._replies import (
    apopTimestamp,
    parseCapabilityLines,
    parseNumbers,
    parseScanListing,
    parseUidLine,
    parseUidListing,
)
from pop3kit.errors import AuthenticationFailed
from pop3kit.sasl import ClientMechanism

__all__ = [
    "CLEARTEXT_MECHANISMS",
    "MECHANISMS",
    "ClientError",
    "ClientMechanism",
    "ClientState",
    "CommandTooLong",
    "InvalidState",
    "ListingTooLarge",
    "MaildropListing",
    "MechanismUnavailable",
    "POP3Client",
    "ResponseTooLarge",
    "ServerError",
    "ServerProtocolError",
    "ServerStalled",
    "TLSFailed",
    "TLSMode",
    "TLSUnavailable",
    "connect",
    "tlsOptions",
]


_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s.+?\s-----END CERTIFICATE-----", re.DOTALL
)


class _TLS(Enum):
    """
    Whether the connection is protected by TLS.
    """

    NONE = "none"
    HANDSHAKING = "handshaking"
    ACTIVE = "active"


@implementer(IHandshakeListener)
class POP3Client(Protocol):
    """
    One POP3 client session: a L{Deferred} facade over a request L{Pipeline
    <pop3kit._pipeline.Pipeline>} and a lifecycle machine.

    A plain L{Protocol} rather than a C{LineReceiver}: the sans-IO core frames the
    server's octets, because a multi-line body is not a sequence of lines to the client
    (it is streamed, un-stuffed, in whatever chunks arrive) and the core decides where the
    TLS handshake begins.

    @ivar greeting: The text of the server's greeting, after C{+OK}, once received.
    @ivar apopTimestamp: The APOP timestamp from the greeting, brackets included, or
        L{None}.
    @ivar utf8: Whether UTF8 mode was enabled (L{enableUTF8}).
    """

    log = Logger()

    def __init__(
        self,
        *,
        clock: IReactorTime | None = None,
        timeout: float = 60.0,
        maxResponseSize: int = 64 * 1024 * 1024,
        maxPipeline: int = 64,
        allowCleartextLogin: bool = False,
        hostname: str | None = None,
        responseTimeout: float = DEFAULT_RESPONSE_TIMEOUT,
        minimumRate: float = DEFAULT_MINIMUM_RATE,
        maxListingEntries: int = DEFAULT_MAX_LISTING_ENTRIES,
        maxListingOctets: int = DEFAULT_MAX_LISTING_OCTETS,
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
        @param responseTimeout: Seconds from when an answer is due (the answer before it
            is complete) by which the greeting, a status line, the TLS handshake after
            C{STLS} or a SASL step must be complete; also the window over which a body's
            rate is measured.  Past it, the connection is aborted and everything pending
            fails with L{ServerStalled}.
        @param minimumRate: The slowest a multi-line body may arrive, in octets per
            second averaged over each C{responseTimeout} window (the time a consumer holds
            reading does not count); slower fails with L{ServerStalled}.
        @param maxListingEntries: The most lines of a C{LIST}, C{UIDL} or C{CAPA}
            listing; past it the connection is aborted with L{ListingTooLarge}.
        @param maxListingOctets: The most octets of such a listing, likewise.

        @raise ValueError: If a deadline or a cap is not positive.
        """
        if not responseTimeout > 0:
            raise ValueError(f"responseTimeout must be positive, not {responseTimeout!r}")
        if not minimumRate >= 0:
            raise ValueError(f"minimumRate must not be negative, not {minimumRate!r}")
        if maxListingEntries < 1 or maxListingOctets < 1:
            raise ValueError("listing caps must be at least 1")
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.clock = clock
        self.timeout = timeout
        self.responseTimeout = responseTimeout
        self.minimumRate = minimumRate
        self.maxListingEntries = maxListingEntries
        self.maxListingOctets = maxListingOctets
        self.maxResponseSize = maxResponseSize
        self.maxPipeline = maxPipeline
        self.allowCleartextLogin = allowCleartextLogin
        self.hostname = hostname
        self.greeting = b""
        self.apopTimestamp: bytes | None = None
        self.utf8 = False
        self._lifecycle = LifecycleCore(self.log)
        self._machine = makeLifecycle(self._lifecycle)
        self._pipeline = Pipeline(
            ClientConnection(),
            self._answered,
            clock=clock,
            timeout=timeout,
            maxPipeline=maxPipeline,
            maxResponseSize=maxResponseSize,
            responseTimeout=responseTimeout,
            minimumRate=minimumRate,
            maxListingEntries=maxListingEntries,
            maxListingOctets=maxListingOctets,
        )
        self._tls = _TLS.NONE
        self._tags: dict[str, list[str]] | None = None
        self._announced: Capabilities | None = None
        self._greeting: OneShot[bytes] = OneShot()
        self._closed: OneShot[None] = OneShot()
        self._pipeline.greeting.deferred.addErrback(self._greetingFailed)

    @property
    def state(self) -> ClientState:
        """
        Where the session is: a L{ClientState}.
        """
        return self._machine.state()

    @property
    def maildrop(self) -> MaildropListing | None:
        """
        The L{MaildropListing} while in TRANSACTION, otherwise L{None}.
        """
        return self._machine.maildrop()

    @property
    def isSecure(self) -> bool:
        """
        Whether the connection is protected by TLS (implicit, or after STLS).
        """
        return self._tls is _TLS.ACTIVE

    # The connection

    def connectionMade(self) -> None:
        """
        Start waiting for the greeting.
        """
        transport = self.transport
        if ITCPTransport.providedBy(transport):
            transport.setTcpNoDelay(True)
        if INegotiated.providedBy(transport) or ISSLTransport.providedBy(transport):
            self._tls = _TLS.HANDSHAKING  # Implicit TLS: secure once the handshake is done.
        self._lifecycle.peer = str(transport.getPeer())  # type: ignore[union-attr]
        self._pipeline.connected(cast(ITCPTransport, transport))

    def dataReceived(self, data: bytes) -> None:
        """
        Hand the octets to the pipeline.
        """
        self._pipeline.dataReceived(data)

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is done (implicit TLS, or after STLS).
        """
        self._tls = _TLS.ACTIVE
        if self._pipeline.core.awaitingTLS:
            self._tags = self._announced = None
            self._pipeline.pipelining = False
            self._machine.tlsEstablished()
            self._pipeline.handshakeDone()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Fail every command still waiting, or finish C{quit}.
        """
        self._machine.closed()
        self._pipeline.lost(reason, handshaking=self._tls is _TLS.HANDSHAKING)
        self._closed.happen(None)

    def abort(self) -> None:
        """
        Close the connection at once, without QUIT, so the server deletes nothing
        (RFC 1939 section 6).  Commands still waiting fail with L{ConnectionLost}.
        """
        if self.transport is not None and not self._closed.happened:
            cast(ITCPTransport, self.transport).abortConnection()

    def whenClosed(self) -> Deferred[None]:
        """
        A L{Deferred} firing once the connection is closed, however that happens.
        """
        return self._closed.wait()

    def waitForGreeting(self) -> Deferred[bytes]:
        """
        A L{Deferred} firing with the greeting line (or failing if the connection closes
        or times out first, or the server greets with C{-ERR}).
        """
        return self._greeting.wait()

    def _greetingFailed(self, failure: Failure) -> None:
        self._greeting.happen(failure)
        self._pipeline.abort(failure.value or ConnectionLost())

    # Answers

    def _answered(self, request: Request, status: StatusLine, body: object) -> object:
        """
        The result of C{request} from its C{+OK} answer (see L{_ANSWERS}); the lifecycle
        machine keeps the listing in step.
        """
        command = request.command
        if command is None:
            return self._greeted(status)
        result = _ANSWERS.get(type(command), _nothing)(self, request, status, body)
        if isinstance(command, LISTING_COMMANDS):
            self._machine.answered(command, result)
        return result

    def _greeted(self, status: StatusLine) -> bytes:
        self.greeting = status.text
        self.apopTimestamp = apopTimestamp(status.text)
        self._machine.greeted()
        self._greeting.happen(self.greeting)
        return self.greeting

    def _announce(self, body: bytes) -> dict[str, list[str]]:
        self._tags = parseCapabilityLines(body)
        self._announced = Capabilities.fromLines(body.split(b"\r\n")) if self._tags else None
        self._pipeline.pipelining = self._announced is not None and self._announced.pipelining
        return {tag: list(parameters) for tag, parameters in self._tags.items()}

    def _tlsAccepted(self, request: Request, status: StatusLine, body: None) -> None:
        self._tls = _TLS.HANDSHAKING
        self._machine.tlsAccepted()
        assert request.tlsOptions is not None
        cast(ITLSTransport, self.transport).startTLS(request.tlsOptions)

    def _utf8Enabled(self, request: Request, status: StatusLine, body: None) -> None:
        self.utf8 = True

    def _loggedIn(self, request: Request, status: StatusLine, body: None) -> None:
        if request.exchange is not None and not cast(SASLExchange, request.exchange).complete:
            raise AuthenticationFailed(
                "the server accepted the login without proving that it knows the password"
            )
        self._machine.loggedIn()

    def _quitAnswered(self, request: Request, status: StatusLine, body: None) -> Deferred[None]:
        cast(ITCPTransport, self.transport).loseConnection()
        return self._closed.wait()

    # Commands

    def capabilities(self, *, refresh: bool = False) -> Deferred[dict[str, list[str]]]:
        """
        The server's capabilities (CAPA, RFC 2449): tags upper case, each with its
        parameters.  C{{}} when the server does not know CAPA.  The answer is cached
        until STLS (or login, when capabilities may change); C{refresh} asks again.
        """
        if self._tags is not None and not refresh:
            return succeed({tag: list(values) for tag, values in self._tags.items()})
        return self._pipeline.submit(Capa()).addErrback(self._noCapabilities)

    def _noCapabilities(self, failure: Failure) -> dict[str, list[str]]:
        if not isinstance(failure.value, ServerError):
            failure.raiseException()
        return self._announce(b"")

    def startTLS(self, contextFactory: IOpenSSLClientConnectionCreator) -> Deferred[None]:
        """
        Send STLS (RFC 2595) and, after C{+OK}, negotiate TLS with C{contextFactory}
        (see L{tlsOptions}).  Nothing else is sent from STLS until the handshake is done;
        octets the server sent after its C{+OK} in the clear are discarded.  The cached
        capabilities are dropped: call L{capabilities} again.

        @return: A L{Deferred} firing once the handshake is done; failing with
            L{ServerError} if the server refuses, L{TLSFailed} if the handshake fails.
        """
        if self._tls is not _TLS.NONE:
            return fail(InvalidState("TLS is already active"))
        if self.state not in (ClientState.GREETING, ClientState.AUTHORIZATION):
            return fail(InvalidState(f"STLS is not possible in state {self.state.value}"))
        if not ITLSTransport.providedBy(self.transport):
            return fail(InvalidState("the transport cannot start TLS"))
        return self._pipeline.submit(Stls(), tlsOptions=contextFactory)

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
        if self._announced is None or not self._announced.utf8:
            return fail(InvalidState("the server does not announce UTF8"))
        return self._pipeline.submit(Utf8())

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
            support: GSSAPI when the user has a Kerberos ticket (the password is then
            not used), SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, PLAIN, LOGIN (as the server
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
        allowed = self.isSecure or self.allowCleartextLogin
        if mechanism is None:
            await self.capabilities()
            mechanism = bestMechanism(
                self._announced, passwordsAllowed=allowed, kerberos=self._hasKerberosTicket()
            )
            if mechanism != "gssapi" and not password:
                raise MechanismUnavailable("no password given, and GSSAPI cannot be used")
        plan = LoginPlan.make(
            checkMechanism(mechanism, passwordsAllowed=allowed),
            username,
            password,
            authzid=authzid,
            apopTimestamp=self.apopTimestamp,
            hostname=self.hostname,
        )
        await self._logIn(plan, "log in")
        return await self.stat()

    def _hasKerberosTicket(self) -> bool:
        announced = self._announced
        if announced is None or "GSSAPI" not in announced.sasl:
            return False
        from pop3kit._gssapi import hasTicket

        return hasTicket()

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
        return self._logIn(LoginPlan.authenticate(None, mechanism), "authenticate")

    def _logIn(self, plan: LoginPlan, what: str) -> Deferred[None]:
        if self.state is not ClientState.AUTHORIZATION:
            return fail(InvalidState(f"cannot {what} in state {self.state.value}"))
        self._tags = None
        self._machine.loginStarted(plan.user, plan.method)
        return Deferred.fromCoroutine(plan.run(self._loginCommand, self._pipeline.pipelining))

    def _loginCommand(self, command: Command, exchange: SASLExchange | None) -> Deferred[None]:
        return self._pipeline.submit(command, exchange=exchange).addErrback(self._loginFailed)

    def _loginFailed(self, failure: Failure) -> Failure:
        self._machine.loginRefused()
        return failure

    # Transaction

    def stat(self) -> Deferred[tuple[int, int]]:
        """
        STAT: the number of messages and the maildrop size in octets (messages marked
        deleted excluded).
        """
        return self._pipeline.submit(Stat())

    def listSizes(self) -> Deferred[dict[int, int]]:
        """
        LIST: the size of every message not marked deleted, by message number.  Sizes
        are as on the wire (CRLF line ends), which is what L{retrieve} delivers.
        """
        return self._pipeline.submit(List())

    def listSize(self, n: int) -> Deferred[int]:
        """
        C{LIST n}: the size of message C{n}.
        """
        return self._pipeline.submit(List(n))

    def listUids(self) -> Deferred[dict[int, str]]:
        """
        UIDL: the unique-id of every message not marked deleted, by message number.
        Identical copies of a message may share a unique-id (RFC 1939 section 7).
        """
        return self._pipeline.submit(Uidl())

    def listUid(self, n: int) -> Deferred[str]:
        """
        C{UIDL n}: the unique-id of message C{n}.
        """
        return self._pipeline.submit(Uidl(n))

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
        command = Retr(n)
        sink: BodySink | None = None
        if IConsumer.providedBy(consumer):
            sink = ConsumerSink(consumer, self._pipeline.control)
        elif consumer is not None:
            sink = FileSink(consumer)
        return self._pipeline.submit(command, sink=sink)

    def top(self, n: int, lines: int) -> Deferred[bytes]:
        """
        C{TOP n lines}: the headers of message C{n}, the blank line, and the first
        C{lines} lines of its body, in the form L{retrieve} gives.
        """
        return self._pipeline.submit(Top(n, lines))

    def delete(self, n: int) -> Deferred[None]:
        """
        C{DELE n}: mark message C{n} deleted.  It is removed only when L{quit} succeeds.
        """
        return self._pipeline.submit(Dele(n))

    def reset(self) -> Deferred[None]:
        """
        RSET: unmark every message marked deleted.
        """
        return self._pipeline.submit(Rset())

    def noop(self) -> Deferred[None]:
        """
        NOOP: keep the session alive (servers may close it after 10 idle minutes).
        """
        return self._pipeline.submit(Noop())

    def quit(self) -> Deferred[None]:
        """
        QUIT: in TRANSACTION, the server removes the messages marked deleted (UPDATE).

        @return: A L{Deferred} firing once the server has answered C{+OK} and the
            connection is closed; failing with L{ServerError} when the server could not
            remove them all, or with L{ConnectionLost} when the connection closed before
            the answer, in which case nothing may have been removed.
        """
        d = self._pipeline.submit(Quit())
        if not d.called:
            self._machine.quitRequested()
        return d


def _nothing(client: POP3Client, request: Request, status: StatusLine, body: object) -> None:
    return None


def _body(client: POP3Client, request: Request, status: StatusLine, body: object) -> object:
    return body


#: What the C{+OK} answer to each command gives its caller (from the status line and,
#: for multi-line answers, what the sink gave) and changes in the session; commands not
#: listed give L{None}.  The listing of TRANSACTION state is kept by the lifecycle
#: machine (L{pop3kit._clientmachine}).
_ANSWERS: dict[type[Command], Callable[[POP3Client, Request, StatusLine, Any], object]] = {
    Stat: lambda client, request, status, body: tuple(parseNumbers(status.text, 2, "STAT")),
    List: lambda client, request, status, body: (
        parseScanListing(body)
        if cast(List, request.command).message is None
        else parseNumbers(status.text, 2, "LIST")[1]
    ),
    Uidl: lambda client, request, status, body: (
        parseUidListing(body)
        if cast(Uidl, request.command).message is None
        else parseUidLine(status.text)
    ),
    Retr: _body,
    Top: _body,
    Capa: lambda client, request, status, body: client._announce(body),
    Stls: POP3Client._tlsAccepted,
    Utf8: POP3Client._utf8Enabled,
    Pass: POP3Client._loggedIn,
    Apop: POP3Client._loggedIn,
    Auth: POP3Client._loggedIn,
    Quit: POP3Client._quitAnswered,
}


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

    from pop3kit._clienttls import RecordingCreator

    if cafile is None:
        return RecordingCreator(
            optionsForClientTLS(hostname, trustRoot=platformTrust()),  # type: ignore[no-untyped-call]
            hostname,
        )
    with open(cafile, "rb") as f:
        pem = f.read()
    certificates = [Certificate.loadPEM(block) for block in _PEM_CERTIFICATE.findall(pem)]
    if not certificates:
        raise ValueError(f"no PEM certificate in {cafile}")
    trustRoot = trustRootFromCertificates(certificates)  # type: ignore[no-untyped-call]
    # Recording why a certificate is refused lets TLSFailed say it by type.
    return RecordingCreator(optionsForClientTLS(hostname, trustRoot=trustRoot), hostname)


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
    endpoint: IStreamClientEndpoint | None = None,
    tls: TLSMode = "starttls",
    cafile: str | None = None,
    hostname: str | None = None,
    timeout: float = 60.0,
    allowCleartextLogin: bool | None = None,
    contextFactory: IOpenSSLClientConnectionCreator | None = None,
    responseTimeout: float = DEFAULT_RESPONSE_TIMEOUT,
    minimumRate: float = DEFAULT_MINIMUM_RATE,
    maxListingEntries: int = DEFAULT_MAX_LISTING_ENTRIES,
    maxListingOctets: int = DEFAULT_MAX_LISTING_OCTETS,
) -> POP3Client:
    """
    Connect to a POP3 server, wait for its greeting and negotiate TLS.

    Run it with C{Deferred.fromCoroutine(connect(...))} from callback-style code.

    @param reactor: Provides TCP and time (the global reactor, usually); only time when
        C{endpoint} is given.
    @param host: The server's name or address: where to connect without C{endpoint}, and
        the name its certificate must be valid for unless C{hostname} says otherwise.
    @param port: 995 for implicit TLS, 110 otherwise, by default; unused with
        C{endpoint}.
    @param endpoint: Where to connect instead of C{host} and C{port}: any
        L{IStreamClientEndpoint} (a UNIX socket, an in-memory connection in tests).  With
        C{tls="implicit"} it is wrapped in TLS; STLS needs a transport that can start TLS.
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
    @param responseTimeout: Passed to L{POP3Client}: the deadline of each answer.
    @param minimumRate: Passed to L{POP3Client}: the slowest a body may arrive.
    @param maxListingEntries: Passed to L{POP3Client}: the cap on a listing's lines.
    @param maxListingOctets: Passed to L{POP3Client}: the cap on a listing's octets.
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
    if endpoint is None:
        endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    if tls == "implicit":
        assert options is not None
        endpoint = wrapClientTLS(options, endpoint)
    client = POP3Client(
        clock=reactor,
        timeout=timeout,
        allowCleartextLogin=allowCleartextLogin,
        hostname=hostname,
        responseTimeout=responseTimeout,
        minimumRate=minimumRate,
        maxListingEntries=maxListingEntries,
        maxListingOctets=maxListingOctets,
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
    await client.capabilities()
    announced = client._announced
    if announced is not None and not announced.stls:
        if required:
            raise TLSUnavailable("the server does not offer STLS")
        return
    try:
        await client.startTLS(options)
    except ServerError as e:
        if required:
            raise TLSUnavailable(f"the server refused STLS: {e}") from e
