"""
The POP3 server: a thin Twisted adapter around L{pop3kit.core.ServerConnection}.

The protocol feeds received octets to the sans-IO core and executes the few commands that
need storage or credentials (login, RETR, TOP, QUIT); everything else the core answers
itself.  Compose it into an application with L{POP3ServerFactory}::

    portal = Portal(MaildirRealm("/var/mail/pop3"), [checker])
    factory = POP3ServerFactory(portal)
    serverFromString(reactor, "tcp:110").listen(factory)
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import BinaryIO, Literal, Protocol, cast

from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
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
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from pop3kit._streaming import Consumer, MessageSender, TransferInterrupted
from pop3kit.core import (
    DEFAULT_SASL_MECHANISMS,
    MAX_BAD_COMMANDS,
    MAX_COMMAND_LINE,
    MAX_FAILED_LOGINS,
    MAX_SASL_LINE,
    Apop,
    Auth,
    Capabilities,
    Command,
    Credential,
    LineTooLong,
    MaildropView,
    MessageEncoder,
    MessageInfo,
    Pass,
    Quit,
    Retr,
    ServerConnection,
    State,
    Stls,
    Top,
    continuation,
    decodeBase64,
    err,
    errorResponse,
    loginMethod,
    ok,
)
from pop3kit.cred import APOPCredentials
from pop3kit.errors import (
    AuthenticationFailed,
    LoginDelayed,
    POP3Error,
    RemoteProtocolError,
    ResponseCode,
    TemporaryFailure,
)
from pop3kit.interfaces import (
    ILoginHistory,
    IMailbox,
    IMaildropLock,
    IMaildropLocker,
    ISCRAMKeySource,
)
from pop3kit.limits import ConnectionLimiter, failedLoginPenalty
from pop3kit.locking import InProcessLocker, InProcessLoginHistory
from pop3kit.sasl import (
    SERVER_MECHANISMS,
    Challenge,
    CheckCredentials,
    NeedSCRAMKeys,
    SCRAMKeys,
    preparePassword,
    prepareUsername,
    serverMechanism,
)
from pop3kit.tls import HANDSHAKE_TIMEOUT, peerIdentity

#: RFC 1939 section 3: an autologout timer must be at least 10 minutes.
MINIMUM_TIMEOUT = 600.0

#: Messages up to this size are read and sent in one go, without a producer.
_SMALL_MESSAGE = 64 * 1024

#: Stop reading from a client that has this many command lines waiting.
_MAX_PENDING_LINES = 64

#: The cleartext-login policies: when USER/PASS and SASL PLAIN/LOGIN may be used before
#: TLS is active.
CleartextPolicy = Literal["never", "loopback", "always"]

CLEARTEXT_POLICIES: tuple[CleartextPolicy, ...] = ("never", "loopback", "always")


_log = Logger()


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
    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...


def _answerPOP3Error(failure: Failure) -> bytes | Failure:
    """
    Answer a L{POP3Error} with its C{-ERR} line; let other failures through.
    """
    if isinstance(failure.value, POP3Error):
        return errorResponse(failure.value)
    return failure


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


class ITLSProvider(Protocol):
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
    One POP3 server session.

    This is a L{LineReceiver} whose framing is done by the sans-IO core: LineReceiver
    hands everything after an over-long line to C{lineLengthExceeded}, which would either
    drop pipelined commands or execute the tail of the line; the core answers an over-long
    line with one C{-ERR} and discards all of it.  L{lineReceived} still handles one line.
    """

    delimiter = b"\r\n"
    MAX_LENGTH = MAX_COMMAND_LINE

    def __init__(self, factory: POP3ServerFactory) -> None:
        """
        @param factory: The factory holding the portal and the server policy.
        """
        self.factory = factory
        self._idleTimer: IDelayedCall | None = None
        self._handshakeTimer: IDelayedCall | None = None
        self._responseWaiter: Deferred[bytes | LineTooLong | None] | None = None
        self._connection: ServerConnection | None = None
        self._apopTimestamp: bytes | None = None
        self._busy = False
        self._processing = False
        self._expunging = False
        self._readingPaused = False
        self._disconnected = False
        self._mailbox: IMailbox | None = None
        self._lock: IMaildropLock | None = None
        self._logout: Callable[[], object] | None = None
        self._retrieved: set[str] = set()

    # Connection lifecycle

    def connectionMade(self) -> None:
        """
        Send the greeting and start the inactivity timer.
        """
        self._transport = cast(_Transport, self.transport)
        self._peer = _peerKey(self._transport.getPeer())
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)
        factory = self.factory
        apop = factory.apopAvailable()
        self._connection = ServerConnection(
            factory.capabilities(self.transport),
            maxBadCommands=factory.maxBadCommands,
            maxFailedLogins=factory.maxFailedLogins,
            maxSASLLineLength=factory.maxSASLLineLength,
        )
        self._idleTimer = factory.clock.callLater(factory.timeout, self.timeoutConnection)
        if ISSLTransport.providedBy(self.transport):
            self._startHandshakeTimer()
        factory.limiter.admit(self, self._peer)
        greeting = "POP3 server ready"
        if apop:
            self._apopTimestamp = makeAPOPTimestamp(factory.apopHost)
            greeting += " " + self._apopTimestamp.decode("ascii")
        self._transport.write(ok(greeting))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Release the maildrop without entering UPDATE: nothing is deleted.
        """
        self._disconnected = True
        for timer in (self._idleTimer, self._handshakeTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._idleTimer = self._handshakeTimer = None
        self.factory.limiter.release(self)
        self._deliverResponse()
        if not self._expunging:
            # An expunge under way keeps the lock until it is done (see _quit).
            self._endSession()

    def timeoutConnection(self) -> None:
        """
        The client was idle too long: close without a response and without UPDATE
        (RFC 1939 section 3), even if it stopped reading in the middle of a response.
        """
        _log.info("Closing idle POP3 connection from {peer}", peer=self._transport.getPeer())
        self._transport.abortConnection()

    def resetTimeout(self) -> None:
        """
        Restart the inactivity timer: the client sent something or read some more.
        """
        if self._idleTimer is not None and self._idleTimer.active():
            self._idleTimer.reset(self.factory.timeout)

    def evict(self) -> None:
        """
        Too many connections wait to log in and this one has been idle the longest: say
        so and close it (see L{pop3kit.limits.ConnectionLimiter}).
        """
        if self._disconnected or self._transport.disconnecting:
            return
        _log.info("Closing idle unauthenticated connection from {peer}", peer=self._peer)
        self._transport.write(
            err("too many connections waiting to log in, try again later", ResponseCode.SYS_TEMP)
        )
        self._transport.loseConnection()

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is done: stop its timer.
        """
        timer, self._handshakeTimer = self._handshakeTimer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _startHandshakeTimer(self) -> None:
        self._handshakeTimer = self.factory.clock.callLater(
            self.factory.handshakeTimeout, self._handshakeTimedOut
        )

    def _handshakeTimedOut(self) -> None:
        self._handshakeTimer = None
        _log.info("TLS handshake from {peer} timed out", peer=self._peer)
        self._transport.abortConnection()

    def _endSession(self) -> None:
        lock, self._lock = self._lock, None
        logout, self._logout = self._logout, None
        self._mailbox = None
        if lock is not None:
            lock.release().addErrback(
                lambda f: _log.failure("Releasing the maildrop lock failed", f)
            )
        if logout is not None:
            try:
                logout()
            except Exception:
                _log.failure("Avatar logout failed")

    # Receiving

    def dataReceived(self, data: bytes) -> None:
        """
        Frame and queue the received octets, then process queued commands in order.
        """
        self.resetTimeout()
        connection = self._connection
        assert connection is not None
        if connection.state is State.AUTHORIZATION:
            self.factory.limiter.touched(self)
        connection.receiveData(data)
        self._deliverResponse()
        self._processQueue()

    def lineReceived(self, line: bytes) -> None:
        """
        Process one command line (without its line end).
        """
        self.dataReceived(line + self.delimiter)

    def _processQueue(self) -> None:
        # Commands that complete synchronously end in _commandDone, which calls this
        # again: the flag turns that into another turn of the loop below instead of a
        # recursion as deep as the pipeline is long.
        if self._processing:
            return
        connection = self._connection
        assert connection is not None
        self._processing = True
        try:
            while not self._busy and not self._disconnected:
                event = connection.nextEvent()
                if event is None:
                    break
                if isinstance(event, bytes):
                    self._transport.write(event)
                    if connection.closing:
                        self._transport.loseConnection()
                        break
                else:
                    self._execute(event)
        finally:
            self._processing = False
        self._applyBackpressure(connection.pendingLines)

    def _applyBackpressure(self, pending: int) -> None:
        if self._disconnected:
            return
        if pending >= _MAX_PENDING_LINES and not self._readingPaused:
            self._readingPaused = True
            self._transport.pauseProducing()
        elif pending < _MAX_PENDING_LINES and self._readingPaused:
            self._readingPaused = False
            self._transport.resumeProducing()

    def _execute(self, command: Command) -> None:
        self._busy = True
        try:
            result = self._dispatch(command)
        except Exception:
            result = fail()
        result.addErrback(self._unexpectedFailure)
        result.addCallback(self._commandDone)

    def _unexpectedFailure(self, failure: Failure) -> bytes:
        _log.failure("Unexpected error in a POP3 command", failure)
        return errorResponse(TemporaryFailure())

    def _commandDone(self, response: bytes | None) -> None:
        self._busy = False
        if self._disconnected:
            return
        if response is not None:
            self._transport.write(response)
        assert self._connection is not None
        if self._connection.state is State.UPDATE or self._connection.closing:
            self._transport.loseConnection()
            return
        self._processQueue()

    def _dispatch(self, command: Command) -> Deferred[bytes | None]:
        if isinstance(command, Retr):
            return self._retrieve(command.message, None)
        if isinstance(command, Top):
            return self._retrieve(command.message, command.lines)
        if isinstance(command, Pass):
            assert self._connection is not None and self._connection.pendingUser is not None
            return Deferred.fromCoroutine(self._pass(self._connection.pendingUser, command))
        if isinstance(command, Auth):
            return Deferred.fromCoroutine(self._authenticate(command))
        if isinstance(command, Apop):
            return Deferred.fromCoroutine(self._apop(command))
        if isinstance(command, Quit):
            return Deferred.fromCoroutine(self._quit())
        if isinstance(command, Stls):
            self._startTLS()
            return succeed(None)
        raise AssertionError(f"the core handed over an unexpected command {command!r}")

    # TLS

    def _startTLS(self) -> None:
        tls = self.factory.tls
        connection = self._connection
        assert tls is not None and connection is not None
        self._transport.write(ok("begin TLS negotiation"))
        # Whatever the client sent after STLS in the clear is discarded here: it must
        # never be executed inside the TLS session (the STARTTLS injection class).
        connection.startedTLS()
        cast(ITLSTransport, self.transport).startTLS(tls.contextFactory())
        self._startHandshakeTimer()

    # Login

    async def _pass(self, username: str, command: Pass) -> bytes | None:
        try:
            prepared = prepareUsername(username).encode("utf-8")
            password = command.password
            try:
                text = password.decode("utf-8")
            except UnicodeDecodeError:
                pass  # A legacy 8-bit password: compared as it is.
            else:
                password = preparePassword(text).encode("utf-8")
        except POP3Error as error:
            return await self._loginFailed(error)
        return await self._login(UsernamePassword(prepared, password))

    async def _authenticate(self, command: Auth) -> bytes | None:
        connection = self._connection
        assert connection is not None and command.mechanism is not None
        mechanism = serverMechanism(
            command.mechanism,
            hostname=self.factory.apopHost,
            tlsIdentity=peerIdentity(self.transport),
        )
        if command.initialResponse is not None and not mechanism.clientFirst:
            return err(f"{mechanism.name} does not take an initial response")
        connection.beginExchange()
        try:
            step = mechanism.start(command.initialResponse)
            while True:
                if isinstance(step, Challenge):
                    self._transport.write(continuation(base64.b64encode(step.data)))
                    line = await self._nextResponse()
                    if line is None:
                        return None
                    if isinstance(line, LineTooLong):
                        raise RemoteProtocolError("SASL response too long")
                    if line == b"*":
                        return err("authentication cancelled")
                    step = mechanism.respond(decodeBase64(line))
                elif isinstance(step, NeedSCRAMKeys):
                    step = mechanism.keysFound(await self._scramKeys(step))
                elif isinstance(step, CheckCredentials):
                    connection.endExchange()
                    return await self._login(step.credentials)
                else:
                    connection.endExchange()
                    return await self._enter(
                        maybeDeferred(
                            self.factory.portal.realm.requestAvatar, step.username, None, IMailbox
                        )
                    )
        except AuthenticationFailed as error:
            connection.endExchange()
            return await self._loginFailed(error)
        except POP3Error as error:
            # A malformed exchange: no credentials were judged, so no penalty, but it
            # counts against the connection's failed logins.
            connection.loginFailed()
            return errorResponse(error)
        finally:
            connection.endExchange()

    def _nextResponse(self) -> Deferred[bytes | LineTooLong | None]:
        assert self._connection is not None
        line = self._connection.nextResponse()
        if line is not None or self._disconnected:
            return succeed(line)
        self._responseWaiter = Deferred()
        return self._responseWaiter

    def _deliverResponse(self) -> None:
        waiter = self._responseWaiter
        assert self._connection is not None
        if waiter is None:
            return
        if self._disconnected:
            line = None
        else:
            line = self._connection.nextResponse()
            if line is None:
                return
        self._responseWaiter = None
        waiter.callback(line)

    async def _scramKeys(self, step: NeedSCRAMKeys) -> SCRAMKeys | None:
        source = self.factory.scramKeySource()
        if source is None:
            return None
        try:
            keys: SCRAMKeys | None = await source.scramKeys(step.username, step.mechanism)
            return keys
        except POP3Error:
            raise
        except Exception:
            _log.failure("Looking up SCRAM keys failed")
            raise TemporaryFailure() from None

    async def _apop(self, command: Apop) -> bytes | None:
        if self._apopTimestamp is None:
            return err("APOP is not available, use another login method")
        credentials = APOPCredentials(
            self._apopTimestamp, command.name.encode("utf-8"), command.digest
        )
        return await self._login(credentials)

    async def _login(self, credentials: object) -> bytes | None:
        return await self._enter(self.factory.portal.login(credentials, None, IMailbox))

    async def _enter(
        self, avatarRequest: Deferred[tuple[object, IMailbox, Callable[[], object]]]
    ) -> bytes | None:
        factory = self.factory
        connection = self._connection
        assert connection is not None
        try:
            _, avatar, logout = await avatarRequest
        except UnauthorizedLogin:
            return await self._loginFailed(AuthenticationFailed())
        except POP3Error as error:
            return await self._loginFailed(error)
        except Exception:
            _log.failure("Checking credentials failed")
            return await self._loginFailed(TemporaryFailure())
        self._mailbox = avatar
        self._logout = logout
        try:
            maildropId = str(avatar.maildropId)
            await self._checkLoginDelay(maildropId)
            self._lock = await factory.locker.acquire(maildropId)
            if self._disconnected:
                self._endSession()
                return None
            view = MaildropView(await avatar.listMessages())
            await factory.loginHistory.recordLogin(maildropId, factory.clock.seconds())
            await factory.loginHistory.clearFailures(self._peer)
        except POP3Error as error:
            self._endSession()
            return await self._loginFailed(error)
        except Exception:
            _log.failure("Opening the maildrop failed")
            self._endSession()
            return await self._loginFailed(TemporaryFailure())
        if self._disconnected:
            self._endSession()
            return None
        factory.limiter.release(self)
        return connection.loggedIn(view)

    async def _checkLoginDelay(self, maildropId: str) -> None:
        factory = self.factory
        if factory.loginDelay is None:
            return
        last = await factory.loginHistory.lastLogin(maildropId)
        if last is not None and factory.clock.seconds() - last < factory.loginDelay:
            raise LoginDelayed()

    async def _loginFailed(self, error: POP3Error) -> bytes:
        connection = self._connection
        assert connection is not None
        connection.loginFailed()
        if error.code is ResponseCode.AUTH:
            factory = self.factory
            failures = await factory.loginHistory.recordFailure(self._peer)
            delay = failedLoginPenalty(
                failures,
                initial=factory.failedLoginDelay,
                maximum=factory.maximumFailedLoginDelay,
            )
            if delay > 0:
                await deferLater(self.factory.clock, delay)
        return errorResponse(error)

    # Transaction

    def _retrieve(self, number: int, bodyLines: int | None) -> Deferred[bytes | None]:
        # A plain Deferred chain rather than a coroutine: RETR is the hot path.
        connection = self._connection
        assert connection is not None and connection.maildrop is not None
        assert self._mailbox is not None
        info = connection.maildrop.get(number)
        opened = self._mailbox.openMessage(info.uid)
        return opened.addCallbacks(
            self._send,
            _answerPOP3Error,
            callbackArgs=(info, bodyLines),
        )

    def _send(
        self, message: BinaryIO, info: MessageInfo, bodyLines: int | None
    ) -> Deferred[bytes | None] | bytes | None:
        if self._disconnected:
            message.close()
            return None
        if bodyLines is None:
            self._retrieved.add(info.uid)
            status = ok(f"{info.size} octets")
        else:
            status = ok("top of message follows")
        encoder = MessageEncoder(bodyLines)
        if info.size <= _SMALL_MESSAGE:
            # The stored form is never longer than the wire form, so a small message is
            # read whole and sent in one write, without a producer.
            try:
                data = _readAtMost(message, info.size + 1)
            except BaseException:
                message.close()
                raise
            if len(data) <= info.size:
                message.close()
                self._transport.write(status + encoder.feed(data) + encoder.finish())
                return None
            # Larger than listed: stream the rest.
            status += encoder.feed(data)
        self._transport.write(status)
        sender = MessageSender(message, encoder, self.resetTimeout)
        return sender.beginTransfer(self._transport).addCallbacks(
            lambda _: None, self._transferFailed, errbackArgs=(info,)
        )

    def _transferFailed(self, failure: Failure, info: MessageInfo) -> None:
        if isinstance(failure.value, TransferInterrupted):
            # The client went away mid-transfer: not a server failure.  The transport
            # stops its producer before it tells the protocol, so take the connection as
            # lost now, or a pipelined RETR would start on the dying transport.
            self._disconnected = True
            return
        if not self._disconnected:
            _log.failure("Reading message {uid} failed mid-transfer", failure, uid=info.uid)
            self._transport.abortConnection()

    async def _quit(self) -> bytes:
        connection = self._connection
        assert connection is not None
        uids = connection.quit()
        mailbox = self._mailbox
        if mailbox is None:
            return ok("bye")
        if self.factory.expire == 0:
            uids |= self._retrieved
        response = ok("bye")
        if uids:
            self._expunging = True
            try:
                await mailbox.expunge(uids)
            except POP3Error as error:
                # RFC 1939's words, with the backend's SYS code (TEMP unless it said PERM).
                permanent = error.code is ResponseCode.SYS_PERM
                code = ResponseCode.SYS_PERM if permanent else ResponseCode.SYS_TEMP
                response = err("some deleted messages not removed", code)
            except Exception:
                _log.failure("Removing deleted messages failed")
                response = err("some deleted messages not removed", ResponseCode.SYS_TEMP)
            finally:
                self._expunging = False
        self._endSession()
        return response


class POP3ServerFactory(ServerFactory):
    """
    Builds L{POP3Server} sessions that log in through a cred L{Portal} whose realm hands
    out L{IMailbox} avatars.

    @ivar capabilities: Called per connection; see L{POP3ServerFactory.capabilities}.
    """

    protocol = POP3Server  # type: ignore[assignment]

    def __init__(
        self,
        portal: Portal,
        *,
        clock: IReactorTime | None = None,
        locker: IMaildropLocker | None = None,
        loginHistory: ILoginHistory | None = None,
        timeout: float = MINIMUM_TIMEOUT,
        failedLoginDelay: float = 2.0,
        maximumFailedLoginDelay: float = 15.0,
        loginDelay: int | None = None,
        expire: int | str | None = None,
        implementation: str | None = None,
        apop: bool = False,
        apopHost: str = "pop3kit",
        tls: ITLSProvider | None = None,
        allowCleartext: CleartextPolicy = "loopback",
        handshakeTimeout: float = HANDSHAKE_TIMEOUT,
        maxBadCommands: int = MAX_BAD_COMMANDS,
        maxFailedLogins: int = MAX_FAILED_LOGINS,
        sasl: Sequence[str] | None = None,
        limiter: ConnectionLimiter | None = None,
        maxSASLLineLength: int = MAX_SASL_LINE,
    ) -> None:
        """
        @param portal: Logs users in; its realm must provide L{IMailbox} avatars.
        @param clock: Schedules timeouts and delays; the global reactor by default.
        @param locker: Grants exclusive maildrop access; in-process by default.
        @param loginHistory: Counts failed logins and remembers login times; in-process by
            default.
        @param timeout: Seconds of inactivity before a session is closed (at least 600, as
            RFC 1939 requires).
        @param failedLoginDelay: Seconds to wait before answering a client's first failed
            login; the delay doubles with each further failure from the same client
            address, up to C{maximumFailedLoginDelay}.  0 disables the delay.
        @param maximumFailedLoginDelay: The longest failed-login delay, in seconds.
        @param loginDelay: Minimum seconds between two logins to one maildrop, announced
            as LOGIN-DELAY; L{None} for no limit.
        @param expire: Days messages are kept, or C{"NEVER"}, announced as EXPIRE; with
            0, retrieved messages are removed at QUIT.  L{None} announces nothing.
        @param implementation: Text announced as IMPLEMENTATION; L{None} for none.
        @param apop: Offer APOP when the portal can check hashed credentials.
        @param apopHost: The host part of the APOP timestamp.
        @param tls: The certificate for STLS (and for implicit-TLS listeners, which need
            nothing else from the factory); L{None} to offer no STLS.
        @param allowCleartext: When passwords may be sent before TLS is active (USER/PASS,
            SASL PLAIN and LOGIN): C{"never"}, C{"loopback"} (connections from this host
            count as secure, as in Dovecot) or C{"always"}.
        @param handshakeTimeout: Seconds a client has to complete a TLS handshake.
        @param maxBadCommands: Close a session after this many invalid commands.
        @param maxFailedLogins: Close a session after this many failed logins.
        @param sasl: The SASL mechanisms to offer, in the order CAPA lists them, each only
            when the portal can verify it (PLAIN and LOGIN: a checker of plain passwords;
            CRAM-MD5: one of hashed credentials; SCRAM: a checker providing
            L{ISCRAMKeySource}; EXTERNAL: TLS with client certificates).  L{None} for
            L{DEFAULT_SASL_MECHANISMS}, plus EXTERNAL with client certificates.
        @param limiter: Caps the connections waiting to log in, closing the longest idle
            one when full; L{None} for a L{ConnectionLimiter} with the default caps.
        @param maxSASLLineLength: The longest C{AUTH} line or SASL response line accepted,
            line end included (other commands: 255 octets).
        """
        if timeout < MINIMUM_TIMEOUT:
            raise ValueError(f"the inactivity timeout must be at least {MINIMUM_TIMEOUT} s")
        if allowCleartext not in CLEARTEXT_POLICIES:
            raise ValueError(f"allowCleartext must be one of {', '.join(CLEARTEXT_POLICIES)}")
        if maxBadCommands < 1 or maxFailedLogins < 1:
            raise ValueError("the bad-command and failed-login limits must be at least 1")
        if maxSASLLineLength < MAX_COMMAND_LINE:
            raise ValueError(f"the SASL line limit must be at least {MAX_COMMAND_LINE} octets")
        try:
            # The host name goes into APOP and CRAM-MD5 challenges.
            serverMechanism("CRAM-MD5", hostname=apopHost)
        except ValueError:
            raise ValueError(f"{apopHost!r} cannot be used in a challenge's host part") from None
        if sasl is None:
            sasl = DEFAULT_SASL_MECHANISMS
            if tls is not None and tls.clientCAPath is not None:
                sasl += ("EXTERNAL",)
        mechanisms = tuple(name.upper() for name in sasl)
        unknown = sorted(set(mechanisms) - set(SERVER_MECHANISMS))
        if unknown:
            raise ValueError(f"unknown SASL mechanisms: {', '.join(unknown)}")
        self.sasl = mechanisms
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        assert clock is not None
        self.portal = portal
        self.clock = clock
        self.limiter = ConnectionLimiter(clock) if limiter is None else limiter
        self.locker: IMaildropLocker = locker if locker is not None else InProcessLocker()
        self.loginHistory: ILoginHistory = (
            loginHistory if loginHistory is not None else InProcessLoginHistory(clock=clock)
        )
        self.timeout = timeout
        self.failedLoginDelay = failedLoginDelay
        self.maximumFailedLoginDelay = maximumFailedLoginDelay
        self.tls = tls
        self.allowCleartext = allowCleartext
        self.handshakeTimeout = handshakeTimeout
        self.maxBadCommands = maxBadCommands
        self.maxFailedLogins = maxFailedLogins
        self.maxSASLLineLength = maxSASLLineLength
        self.loginDelay = loginDelay
        self.expire = expire
        self.apop = apop
        self.apopHost = apopHost
        self._capabilities = Capabilities(
            user=True,
            loginDelay=loginDelay,
            expire=expire,
            implementation=implementation,
        )

    def capabilities(self, transport: object = None) -> Capabilities:
        """
        What this server offers on a connection over C{transport} as it starts: USER only
        when a checker takes plain passwords; STLS when a certificate is configured and
        the transport can start TLS; passwords in the clear as C{allowCleartext} says.

        @param transport: The connection's transport, or L{None} for a connection with
            neither TLS nor the means to start it, from a remote host.
        """
        secure = ISSLTransport.providedBy(transport)
        local = transport is not None and isLocal(cast(_Transport, transport).getPeer())
        interfaces = self.portal.listCredentialsInterfaces()
        return replace(
            self._capabilities,
            user=IUsernamePassword in interfaces,
            sasl=self._usableMechanisms(interfaces),
            stls=self.tls is not None and not secure and ITLSTransport.providedBy(transport),
            tls=secure,
            cleartext=self.allowCleartext == "always"
            or (self.allowCleartext == "loopback" and local),
        )

    def _usableMechanisms(self, interfaces: Sequence[object]) -> tuple[str, ...]:
        verifiable = {
            Credential.PASSWORD: IUsernamePassword in interfaces,
            Credential.HASHED: IUsernameHashedPassword in interfaces,
            Credential.SCRAM: self.scramKeySource() is not None,
            Credential.CERTIFICATE: self.tls is not None and self.tls.clientCAPath is not None,
        }
        return tuple(name for name in self.sasl if verifiable[loginMethod(name).credential])

    def scramKeySource(self) -> ISCRAMKeySource | None:
        """
        The portal's checker that provides SCRAM keys (itself, or inside a
        L{pop3kit.cred.ChainedChecker}), or L{None}: SCRAM is then not offered.
        """
        # A ChainedChecker provides the interface itself when a member does.
        sources = (c for c in self.portal.checkers.values() if ISCRAMKeySource.providedBy(c))
        return next(sources, None)

    def apopAvailable(self) -> bool:
        """
        Whether APOP is offered: enabled, and a checker can verify hashed credentials.
        """
        return self.apop and IUsernameHashedPassword in self.portal.listCredentialsInterfaces()

    def buildProtocol(self, addr: IAddress | None) -> POP3Server:
        """
        Build one session.
        """
        return POP3Server(self)
