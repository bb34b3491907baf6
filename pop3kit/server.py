"""
The POP3 server: a thin Twisted adapter around L{pop3kit.core.ServerConnection}.

The protocol feeds received octets to the sans-IO core, writes what the core answers, and
hands the events the core cannot handle alone to the services that can: logins to
L{pop3kit._login.Login}, RETR and TOP to the mailbox (streamed), QUIT to the session.
Their outcomes go back to the core, which words the replies and moves the session on.
Compose it into an application with L{POP3ServerFactory}::

    portal = Portal(MaildirRealm("/var/mail/pop3"), [checker])
    factory = POP3ServerFactory(portal, policy=ServerPolicy(loginDelay=300))
    serverFromString(reactor, "tcp:110").listen(factory)
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections import ChainMap
from dataclasses import replace
from typing import Any, BinaryIO, Generic, Protocol, TypeVar, cast, overload

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHandshakeListener,
    IOpenSSLServerConnectionCreator,
    IReactorTime,
    ISSLTransport,
    ITCPTransport,
    ITLSTransport,
)
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.haproxy._wrapper import HAProxyProtocolWrapper
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from pop3kit._gssapi import IGSSAPIAcceptor
from pop3kit._login import AvatarIdRecorder, Login, LoginOutcome, Session
from pop3kit._oauth2 import IBearerToken
from pop3kit._sessionlog import SessionLog
from pop3kit._streaming import Consumer, MessageSender, TransferInterrupted
from pop3kit.audit import AuditPublisher
from pop3kit.core import (
    MAX_COMMAND_LINE,
    APOPLogin,
    BeginTLS,
    BodyFollows,
    BodySent,
    Capabilities,
    Credential,
    Err,
    Evicted,
    Expunge,
    Greeting,
    LoginAccepted,
    MessageEncoder,
    Outcome,
    PasswordLogin,
    Retrieve,
    SASLAborted,
    SASLChallenge,
    SASLLogin,
    SASLResponse,
    ServerConnection,
    ServerEvent,
    StartTLS,
    State,
)
from pop3kit.cred import ChainedChecker, ISASLIdentity, SASLIdentityChecker
from pop3kit.errors import POP3Error, TemporaryFailure
from pop3kit.interfaces import (
    ILoginHistory,
    IMaildropLocker,
    ISCRAMKeySource,
    IUserSettingsSource,
)
from pop3kit.limits import ConnectionLimiter
from pop3kit.locking import InProcessLocker, InProcessLoginHistory
from pop3kit.policy import CleartextPolicy, ServerPolicy
from pop3kit.proxy import ProxyHeaderProtocol
from pop3kit.tls import peerIdentity

__all__ = [
    "POP3Server",
    "POP3ServerFactory",
    "TLSProvider",
    "isLocal",
    "makeAPOPTimestamp",
]

#: Messages up to this size are read and sent in one go, without a producer.
_SMALL_MESSAGE = 64 * 1024

#: Stop reading from a client that has this many command lines waiting.
_MAX_PENDING_LINES = 64

_BODY_FOLLOWS = BodyFollows()
_BODY_SENT = BodySent()
_BEGIN_TLS = BeginTLS()
_EVICTED = Evicted()
_MESSAGE = State.MESSAGE
_CLOSED = State.CLOSED


def makeAPOPTimestamp(host: str = "pop3kit") -> bytes:
    """
    A fresh APOP timestamp in msg-id form, C{<random.time@host>}: letters, digits and dots
    only (some clients ignore timestamps holding C{=}), unique per call, from a CSPRNG, and
    leaking neither the process id nor the host name unless C{host} is set to it.
    """
    return f"<{secrets.token_hex(16)}.{int(time.time())}@{host}>".encode("ascii")


class _Transport(Consumer, Protocol):
    """
    What the server needs of its transport: a TCP or TLS transport, which is also a
    consumer (for streaming) and a producer (for pausing reads).
    """

    disconnecting: bool

    def loseConnection(self) -> None: ...
    def abortConnection(self) -> None: ...
    def getPeer(self) -> IAddress: ...
    def getHost(self) -> IAddress: ...
    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...


def _readAtMost(message: BinaryIO, size: int) -> bytes:
    """
    Read up to C{size} octets, fewer only at the end of the message.
    """
    chunks = []
    while size > 0:
        chunk = message.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _peerKey(address: IAddress) -> str:
    host = getattr(address, "host", None)
    return str(host) if host is not None else repr(address)


def isLocal(address: IAddress) -> bool:
    """
    Whether a peer address is on this host: a loopback IP address or a UNIX socket.
    """
    if isinstance(address, UNIXAddress):
        return True
    if isinstance(address, IPv4Address | IPv6Address):
        try:
            return ipaddress.ip_address(address.host.partition("%")[0]).is_loopback
        except ValueError:
            return False
    return False


class TLSProvider(Protocol):
    """
    What the server needs of its TLS configuration (see L{pop3kit.tls.ServerTLS}).

    @ivar clientCAPath: The CA whose client certificates are requested (enabling SASL
        EXTERNAL), or L{None}.
    """

    clientCAPath: str | None

    def contextFactory(self) -> IOpenSSLServerConnectionCreator:
        """
        The TLS context for a new handshake.
        """


@implementer(IHandshakeListener)
class POP3Server(LineReceiver):
    """
    One POP3 server session: octets to the core, events to the services, outcomes back.

    This is a L{LineReceiver} whose framing is done by the sans-IO core: LineReceiver
    hands everything after an over-long line to C{lineLengthExceeded}, which would either
    drop pipelined commands or execute the tail of the line; the core answers an over-long
    line with one C{-ERR} and discards all of it.  L{lineReceived} still handles one line.
    """

    delimiter = b"\r\n"
    MAX_LENGTH = MAX_COMMAND_LINE
    log = Logger()

    def __init__(self, factory: POP3ServerFactory) -> None:
        """
        @param factory: The factory holding the portal and the server policy.
        """
        self.factory = factory
        self._connection: ServerConnection | None = None
        self._idleTimer: IDelayedCall | None = None
        self._handshakeTimer: IDelayedCall | None = None
        self._login: Login | None = None
        self._session: Session | None = None
        self._processing = False
        self._readingPaused = False

    # Connection lifecycle

    def connectionMade(self) -> None:
        """
        Send the greeting and start the inactivity timer.

        Behind a PROXY-protocol listener the transport's peer is the client's address from
        the header, which L{pop3kit.proxy.ProxyHeaderProtocol} reads before connecting this
        protocol; Twisted's own C{haproxy:} wrapper connects it before, with the proxy's
        address, and a connection over it is closed at once.
        """
        self._transport = cast(_Transport, self.transport)
        if isinstance(self.transport, HAProxyProtocolWrapper) and not isinstance(
            self.transport, ProxyHeaderProtocol
        ):
            self.log.error(
                "Closing a connection over Twisted's haproxy wrapper, which connects the "
                "session before the PROXY header is read; listen with "
                "pop3kit.proxy.proxyEndpoint instead"
            )
            self._transport.abortConnection()
            return
        self._peer = _peerKey(self._transport.getPeer())
        factory = self.factory
        self._log = SessionLog(
            factory.auditLog,
            factory.auditLogger,
            factory.clock,
            self._peer,
            self._transport.getHost(),
        )
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)
        policy = factory.policy
        connection = self._connection = ServerConnection(
            factory.capabilities(self.transport),
            maxBadCommands=policy.maxBadCommands,
            maxFailedLogins=policy.maxFailedLogins,
            maxSASLLineLength=policy.maxSASLLineLength,
        )
        self._idleTimer = factory.clock.callLater(policy.timeout, self.timeoutConnection)
        if ISSLTransport.providedBy(self.transport):
            self._startHandshakeTimer()
        timestamp = makeAPOPTimestamp(policy.apopHost) if factory.apopAvailable() else None
        self._transport.write(connection.send(Greeting(timestamp=timestamp)))
        factory.limiter.admit(self, self._peer)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        End the session without entering UPDATE: nothing is deleted; a login under way
        gives up the lock and the avatar it holds, now or when it gets them.
        """
        if self._connection is None:
            return  # Refused in connectionMade: nothing was started.
        self._connection.connectionLost()
        if self._handshakeTimer is not None:
            self._log.tlsFailed(reason)
        for timer in (self._idleTimer, self._handshakeTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._idleTimer = self._handshakeTimer = None
        self.factory.limiter.release(self)
        login, self._login = self._login, None
        if login is not None:
            login.abort()
        if self._session is not None:
            # An expunge under way keeps the lock until it is done (see Session.expunge).
            self._session.end()
        self._log.ended()

    def timeoutConnection(self) -> None:
        """
        The client was idle too long: close without a response and without UPDATE
        (RFC 1939 section 3), even if it stopped reading in the middle of a response.
        """
        self._log.timedOut("a command" if self._handshakeTimer is None else "TLS handshake")
        self._transport.abortConnection()

    def resetTimeout(self) -> None:
        """
        Restart the inactivity timer: the client sent something or read some more.
        """
        if self._idleTimer is not None and self._idleTimer.active():
            self._idleTimer.reset(self.factory.policy.timeout)

    def evict(self) -> None:
        """
        Too many connections wait to log in and this one has been idle the longest: say
        so and close it (see L{pop3kit.limits.ConnectionLimiter}).
        """
        assert self._connection is not None
        if self._connection.state is _CLOSED or self._transport.disconnecting:
            return
        self._log.evicted()
        self._transport.write(self._connection.send(_EVICTED))
        self._transport.loseConnection()

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is done: stop its timer.
        """
        timer, self._handshakeTimer = self._handshakeTimer, None
        if timer is not None and timer.active():
            timer.cancel()
        self._log.tlsEstablished(self.transport)
        self._progressed()

    def _startHandshakeTimer(self) -> None:
        self._handshakeTimer = self.factory.clock.callLater(
            self.factory.policy.handshakeTimeout, self._handshakeTimedOut
        )

    def _handshakeTimedOut(self) -> None:
        self._handshakeTimer = None
        self._log.tlsFailed("timed out")
        self._transport.abortConnection()

    # Receiving and replying

    def dataReceived(self, data: bytes) -> None:
        """
        Feed the received octets to the core and act on what it makes of them.
        """
        self.resetTimeout()
        assert self._connection is not None
        self._connection.receiveData(data)
        self._process()

    def lineReceived(self, line: bytes) -> None:
        """
        Process one command line (without its line end).
        """
        self.dataReceived(line + self.delimiter)

    def _process(self) -> None:
        # Outcomes reported synchronously call this again from inside the loop: the flag
        # turns that into another turn of the loop instead of a recursion as deep as the
        # pipeline is long.
        if self._processing:
            return
        connection = self._connection
        assert connection is not None
        write = self._transport.write
        self._processing = True
        answered = False
        try:
            while (event := connection.nextEvent()) is not None:
                data = connection.dataToSend()
                if data:
                    write(data)
                    answered = True
                self._dispatch(event)
        finally:
            self._processing = False
        data = connection.dataToSend()
        if data:
            write(data)
            answered = True
        if answered:
            self._progressed()
        if connection.state is _CLOSED:
            self._transport.loseConnection()
        else:
            self._applyBackpressure(connection.pendingLines)

    def _reply(self, outcome: Outcome) -> None:
        assert self._connection is not None
        data = self._connection.send(outcome)
        if data:
            self._transport.write(data)
            self._progressed()
        self._process()

    def _progressed(self) -> None:
        # A command was answered: for the limiter, a connection waiting to log in is
        # making progress (octets that do not complete a command are not).
        if self._session is None:
            self.factory.limiter.touched(self)

    def _applyBackpressure(self, pending: int) -> None:
        if pending >= _MAX_PENDING_LINES and not self._readingPaused:
            self._readingPaused = True
            self._transport.pauseProducing()
        elif pending < _MAX_PENDING_LINES and self._readingPaused:
            self._readingPaused = False
            self._transport.resumeProducing()

    def _dispatch(self, event: ServerEvent) -> None:
        if isinstance(event, Retrieve):
            self._retrieve(event)
        elif isinstance(event, SASLResponse):
            assert self._login is not None
            self._login.respond(event.data).addCallback(self._loginStep, self._login)
        elif isinstance(event, PasswordLogin | APOPLogin | SASLLogin):
            self._startLogin(event)
        elif isinstance(event, SASLAborted):
            login, self._login = self._login, None
            self._log.loginAborted(login)
            if login is not None:
                login.abort()
        elif isinstance(event, StartTLS):
            self._startTLS()
        elif isinstance(event, Expunge):
            assert self._session is not None
            self._log.expungeStarted(event.uids)
            self._session.expunge(event.uids, event.retrieved).addCallback(
                self._log.expunged
            ).addCallback(self._reply)

    # Login

    def _startLogin(self, event: PasswordLogin | APOPLogin | SASLLogin) -> None:
        login = self._login = self.factory._loginFor(self._peer, self.transport, event)
        self._log.loginStarted()
        login.start(event).addCallback(self._loginStep, login)

    def _loginStep(self, outcome: LoginOutcome, login: Login) -> None:
        if isinstance(outcome, LoginAccepted):
            self._session = login.session
            self.factory.limiter.release(self)
        if not isinstance(outcome, SASLChallenge):
            self._log.loginFinished(login, outcome)
            if self._login is login:
                self._login = None
        self._reply(outcome)

    def _startTLS(self) -> None:
        tls = self.factory.tls
        assert tls is not None and self._connection is not None
        self._transport.write(self._connection.send(_BEGIN_TLS))
        cast(ITLSTransport, self.transport).startTLS(tls.contextFactory())
        self._startHandshakeTimer()

    # RETR and TOP: a plain Deferred chain rather than a coroutine, as RETR is the hot path.

    def _retrieve(self, event: Retrieve) -> None:
        assert self._session is not None
        self._log.retrieveStarted(event)
        try:
            opened = self._session.mailbox.openMessage(event.message.uid)
        except Exception:
            opened = fail()
        opened.addCallbacks(self._send, self._notOpened, callbackArgs=(event,))
        opened.addErrback(self._retrieveFailed)

    def _send(self, message: BinaryIO, event: Retrieve) -> Deferred[None] | None:
        connection = self._connection
        assert connection is not None
        if connection.state is not _MESSAGE:
            # The client went away while the message was being opened.
            message.close()
            return None
        info = event.message
        encoder = MessageEncoder(event.bodyLines)
        self._log.firstByte()
        if info.size > _SMALL_MESSAGE:
            data = b""
        else:
            # The stored form is never longer than the wire form, so a small message is
            # read whole and sent in one write, without a producer.
            try:
                data = _readAtMost(message, info.size + 1)
            except BaseException:
                message.close()
                raise
            if len(data) <= info.size:
                message.close()
                body = encoder.feed(data) + encoder.finish()
                self._transport.write(connection.send(_BODY_FOLLOWS) + body)
                self._bodySent(None)
                return None
            # Larger than listed: stream the rest.
        self._transport.write(connection.send(_BODY_FOLLOWS) + encoder.feed(data))
        sender = MessageSender(message, encoder, self.resetTimeout)
        return sender.beginTransfer(self._transport).addCallbacks(
            self._bodySent, self._transferFailed, errbackArgs=(info.uid,)
        )

    def _notOpened(self, failure: Failure) -> Failure | None:
        if not isinstance(failure.value, POP3Error):
            return failure
        self._reply(Err.fromError(failure.value))
        return None

    def _retrieveFailed(self, failure: Failure) -> None:
        self.log.failure("Unexpected error in a POP3 command", failure)
        assert self._connection is not None
        if self._connection.state is _MESSAGE:
            self._reply(Err.fromError(TemporaryFailure()))

    def _bodySent(self, _: object) -> None:
        self._log.retrieved()
        self._reply(_BODY_SENT)

    def _transferFailed(self, failure: Failure, uid: str) -> None:
        assert self._connection is not None
        if isinstance(failure.value, TransferInterrupted):
            # The client went away mid-transfer: not a server failure.  The transport
            # stops its producer before it tells the protocol, so take the connection as
            # lost now, or a pipelined RETR would start on the dying transport.
            self._connection.connectionLost()
            return
        if self._connection.state is not _CLOSED:
            self.log.failure("Reading message {uid} failed mid-transfer", failure, uid=uid)
            self._transport.abortConnection()


_T = TypeVar("_T")


class _PolicyField(Generic[_T]):
    """
    A factory attribute that reads one field of the factory's policy, and that replaces
    the policy (checking the new value) when set: the keyword arguments the factory
    took before L{ServerPolicy} existed remain its attributes.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, factory: None, owner: type) -> _PolicyField[_T]: ...
    @overload
    def __get__(self, factory: POP3ServerFactory, owner: type) -> _T: ...
    def __get__(self, factory: POP3ServerFactory | None, owner: type) -> _T | _PolicyField[_T]:
        if factory is None:
            return self
        value: _T = getattr(factory.policy, self._name)
        return value

    def __set__(self, factory: POP3ServerFactory, value: _T) -> None:
        changes: dict[str, Any] = {self._name: value}
        factory.policy = replace(factory.policy, **changes)


def _withSASLIdentities(portal: Portal) -> Portal:
    """
    The portal the server logs in through: the application's checkers, seen live, plus a
    L{SASLIdentityChecker} for the identities SASL mechanisms verify, unless the
    application registered a checker of its own for them.
    """
    loginPortal = Portal(AvatarIdRecorder(portal.realm))
    ours: dict[type[Interface], ICredentialsChecker] = {ISASLIdentity: SASLIdentityChecker()}
    checkers = ChainMap(portal.checkers, ours)
    # Portal only looks checkers up and iterates over them: a mapping will do.
    loginPortal.checkers = cast(dict[type[Interface], ICredentialsChecker], checkers)
    return loginPortal


class POP3ServerFactory(ServerFactory):
    """
    Builds L{POP3Server} sessions that log in through a cred L{Portal} whose realm hands
    out L{IMailbox <pop3kit.interfaces.IMailbox>} avatars, following a L{ServerPolicy}.

    The policy's fields are also attributes of the factory (C{factory.timeout}, ...);
    setting one replaces the policy with a checked copy.

    @ivar policy: The L{ServerPolicy}.
    @ivar portal: The application's portal.
    @ivar clock: Schedules timeouts and delays.
    @ivar locker: Grants exclusive maildrop access.
    @ivar loginHistory: Counts failed logins and remembers login times.
    @ivar limiter: Caps the connections waiting to log in.
    @ivar tls: The certificate for STLS, or L{None}.
    @ivar auditLog: Every event of L{pop3kit.audit} about this factory's sessions, the
        debug ones (one per RETR or TOP, made only when an observer was added) included;
        those of level info and above are passed on to the global log publisher.  Add
        observers (such as L{pop3kit.metrics.MetricsObserver}) to it.
    @ivar auditLogger: Emits to L{auditLog}.
    """

    protocol = POP3Server  # type: ignore[assignment]

    timeout = _PolicyField[float]()
    handshakeTimeout = _PolicyField[float]()
    failedLoginDelay = _PolicyField[float]()
    maximumFailedLoginDelay = _PolicyField[float]()
    maxFailedLogins = _PolicyField[int]()
    maxBadCommands = _PolicyField[int]()
    maxSASLLineLength = _PolicyField[int]()
    allowCleartext = _PolicyField[CleartextPolicy]()
    loginDelay = _PolicyField[int | None]()
    expire = _PolicyField[int | str | None]()
    apop = _PolicyField[bool]()
    apopHost = _PolicyField[str]()

    def __init__(
        self,
        portal: Portal,
        *,
        policy: ServerPolicy | None = None,
        clock: IReactorTime | None = None,
        locker: IMaildropLocker | None = None,
        loginHistory: ILoginHistory | None = None,
        limiter: ConnectionLimiter | None = None,
        tls: TLSProvider | None = None,
        **settings: Any,
    ) -> None:
        """
        @param portal: Logs users in; its realm must provide
            L{IMailbox <pop3kit.interfaces.IMailbox>} avatars.
        @param policy: Timeouts, limits, login methods and what CAPA announces; the
            defaults of L{ServerPolicy} if L{None}.
        @param clock: Schedules timeouts and delays; the global reactor by default.
        @param locker: Grants exclusive maildrop access; in-process by default.
        @param loginHistory: Counts failed logins and remembers login times; in-process by
            default.
        @param limiter: Caps the connections waiting to log in, closing the longest idle
            one when full; L{None} for a L{ConnectionLimiter} with the policy's caps.
        @param tls: The certificate for STLS (and for implicit-TLS listeners, which need
            nothing else from the factory); L{None} to offer no STLS.
        @param settings: Fields of L{ServerPolicy} (C{timeout=900, apop=True}, ...),
            applied to C{policy}: the factory's keyword arguments before L{ServerPolicy}.
        @raise ValueError: (L{pop3kit.policy.InvalidPolicy}) for a setting the server
            cannot honour.
        """
        policy = ServerPolicy() if policy is None else policy
        self.policy = replace(policy, **settings) if settings else policy
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        assert clock is not None
        self.portal = portal
        self.clock = clock
        if limiter is None:
            limiter = ConnectionLimiter(
                clock,
                maxUnauthenticated=self.policy.maxUnauthenticated,
                maxPerClient=self.policy.maxPerClient,
                loginGrace=self.policy.loginGrace,
                loginWindow=self.policy.loginWindow,
            )
        self.limiter = limiter
        self.locker: IMaildropLocker = InProcessLocker() if locker is None else locker
        self.loginHistory: ILoginHistory = (
            InProcessLoginHistory(clock=clock) if loginHistory is None else loginHistory
        )
        self.tls = tls
        self._loginPortal = _withSASLIdentities(portal)
        self.auditLog = AuditPublisher()
        self.auditLogger = Logger(namespace="pop3kit.audit", observer=self.auditLog)

    @property
    def sasl(self) -> tuple[str, ...]:
        """
        The SASL mechanisms configured, in the order CAPA lists those the checkers can
        verify (see L{ServerPolicy.mechanisms}).
        """
        return self.policy.mechanisms(self._clientCertificates())

    def _clientCertificates(self) -> bool:
        return self.tls is not None and self.tls.clientCAPath is not None

    def capabilities(self, transport: object = None) -> Capabilities:
        """
        What this server offers on a connection over C{transport} as it starts: USER only
        when a checker takes plain passwords; STLS when a certificate is configured and
        the transport can start TLS; passwords in the clear as the policy's
        C{allowCleartext} says.

        @param transport: The connection's transport, or L{None} for a connection with
            neither TLS nor the means to start it, from a remote host.
        """
        interfaces = self.portal.listCredentialsInterfaces()
        verifiable = {
            Credential.PASSWORD: IUsernamePassword in interfaces,
            Credential.HASHED: IUsernameHashedPassword in interfaces,
            Credential.SCRAM: self.scramKeySource() is not None,
            Credential.CERTIFICATE: self._clientCertificates(),
            Credential.KERBEROS: self.gssapiAcceptor() is not None,
            Credential.BEARER: IBearerToken in interfaces,
        }
        return self.policy.capabilities(
            {kind for kind, usable in verifiable.items() if usable},
            secure=ISSLTransport.providedBy(transport),
            canStartTLS=self.tls is not None and ITLSTransport.providedBy(transport),
            local=transport is not None and isLocal(cast(_Transport, transport).getPeer()),
            perUser=bool(self.userSettingsSources()),
        )

    def userSettingsSources(self) -> list[IUserSettingsSource]:
        """
        The portal's checkers that provide per-user LOGIN-DELAY and EXPIRE values
        (themselves, or inside a L{pop3kit.cred.ChainedChecker}).  With any, CAPA
        announces those values with C{USER} before login.
        """
        sources: list[IUserSettingsSource] = []
        for checker in self.portal.checkers.values():
            members = checker.checkers if isinstance(checker, ChainedChecker) else (checker,)
            for member in members:
                if IUserSettingsSource.providedBy(member) and member not in sources:
                    sources.append(member)
        return sources

    def scramKeySource(self) -> ISCRAMKeySource | None:
        """
        The portal's checker that provides SCRAM keys (itself, or inside a
        L{pop3kit.cred.ChainedChecker}), or L{None}: SCRAM is then not offered.
        """
        # A ChainedChecker provides the interface itself when a member does.
        sources = (c for c in self.portal.checkers.values() if ISCRAMKeySource.providedBy(c))
        return next(sources, None)

    def gssapiAcceptor(self) -> IGSSAPIAcceptor | None:
        """
        The portal's checker that holds the GSSAPI service key (a
        L{pop3kit._gssapi.GSSAPIChecker}), or L{None}: GSSAPI is then not offered.
        """
        acceptors = (c for c in self.portal.checkers.values() if IGSSAPIAcceptor.providedBy(c))
        return next(acceptors, None)

    def apopAvailable(self) -> bool:
        """
        Whether APOP is offered: enabled, and a checker can verify hashed credentials.
        """
        return (
            self.policy.apop and IUsernameHashedPassword in self.portal.listCredentialsInterfaces()
        )

    def buildProtocol(self, addr: IAddress | None) -> POP3Server:
        """
        Build one session.
        """
        return POP3Server(self)

    def _loginFor(
        self, peer: str, transport: object, event: PasswordLogin | APOPLogin | SASLLogin
    ) -> Login:
        """
        A login attempt of a session from C{peer} over C{transport}, which starts with
        C{event}.
        """
        sasl = isinstance(event, SASLLogin)
        return Login(
            self._loginPortal,
            policy=self.policy,
            clock=self.clock,
            locker=self.locker,
            loginHistory=self.loginHistory,
            peer=peer,
            scramKeySource=self.scramKeySource() if sasl else None,
            tlsIdentity=peerIdentity(transport) if sasl else None,
            events=self.auditLogger,
            gssapi=self.gssapiAcceptor() if sasl else None,
            settingsSources=self.userSettingsSources(),
        )
