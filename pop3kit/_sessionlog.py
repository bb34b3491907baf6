# -*- test-case-name: tests.test_audit -*-
"""
The story of one server session, told in the events of L{pop3kit.audit}.

The server (L{pop3kit.server.POP3Server}) calls a L{SessionLog} at each turn of the
session; the log keeps the session id, the addresses, the login and the counters, and
emits the events.  Keeping this here keeps the adapter to moving bytes.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pop3kit._login import Login, LoginOutcome
from pop3kit.audit import (
    CONNECTED,
    DISCONNECTED,
    EVICTED,
    LOGGED_OUT,
    LOGIN_ACCEPTED,
    LOGIN_REFUSED,
    RETRIEVED,
    TIMED_OUT,
    TLS_ESTABLISHED,
    TLS_FAILED,
    AuditEvent,
    AuditPublisher,
    Reason,
    printable,
)
from pop3kit.core import Goodbye, LoginAccepted, LoginRefused, Retrieve


def addressText(address: IAddress) -> str:
    """
    An address for the log: C{host:port} (C{[host]:port} for IPv6), a UNIX socket's
    path, or the address's C{repr}.
    """
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is not None and port is not None:
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    name = getattr(address, "name", None)
    if name is not None:
        return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    return repr(address)


def _tlsParameters(transport: object) -> tuple[str, str]:
    """
    The TLS version and cipher of a transport whose handshake is done.
    """
    getHandle = getattr(transport, "getHandle", None)
    try:
        handle = getHandle() if getHandle is not None else None
        return handle.get_protocol_version_name(), handle.get_cipher_name()  # type: ignore[union-attr]
    except Exception:  # Not an OpenSSL connection; the log does without.
        return "unknown", "unknown"


def _failureText(failure: Failure) -> str:
    """
    Why a connection was lost, in words: OpenSSL's reasons rather than its tuples.
    """
    value = failure.value
    args = getattr(value, "args", ())
    errors = args[0] if args else None
    if isinstance(errors, list) and errors and all(isinstance(e, tuple) for e in errors):
        return "; ".join(str(error[-1]) for error in errors)
    return f"{type(value).__name__}: {failure.getErrorMessage()}"


class SessionLog:
    """
    What the log knows of one session, and the events it emits.

    @ivar sessionId: A random identifier of the session, in every event of it.
    """

    __slots__ = (
        "_clock",
        "_deleted",
        "_expunge",
        "_expungeSeconds",
        "_firstByte",
        "_local",
        "_log",
        "_loginStarted",
        "_messages",
        "_peer",
        "_publisher",
        "_retrieveStarted",
        "_retrieved",
        "_retrievedOctets",
        "_retrieving",
        "_started",
        "_tls",
        "_tops",
        "_user",
        "sessionId",
    )

    def __init__(
        self,
        publisher: AuditPublisher,
        log: Logger,
        clock: IReactorTime,
        peer: str,
        local: IAddress,
    ) -> None:
        """
        @param publisher: Where the events go; the debug ones only if it is observed.
        @param log: Emits to C{publisher}.
        @param clock: Dates the session and times its steps.
        @param peer: The client's address (host), as the server knows it.
        @param local: The server's address of the connection.
        """
        self._publisher = publisher
        self._log = log
        self._clock = clock
        self.sessionId = secrets.token_urlsafe(9)
        self._peer = peer
        self._local = addressText(local)
        self._started = clock.seconds()
        self._tls = False
        self._loginStarted = 0.0
        self._user: str | None = None
        self._messages = 0
        self._retrieved = self._retrievedOctets = self._tops = 0
        self._deleted: int | None = None
        self._expunge = "none"
        self._expungeSeconds: float | None = None
        self._retrieving: Retrieve | None = None
        self._retrieveStarted = 0.0
        self._firstByte: float | None = None
        CONNECTED.emit(
            log,
            sessionId=self.sessionId,
            peer=peer,
            local=self._local,
            listener=str(getattr(local, "port", self._local)),
        )

    def _emitSession(self, event: AuditEvent, **fields: object) -> None:
        event.emit(self._log, sessionId=self.sessionId, peer=self._peer, **fields)

    # TLS

    def tlsEstablished(self, transport: object) -> None:
        """
        A TLS handshake on C{transport} is done.
        """
        self._tls = True
        version, cipher = _tlsParameters(transport)
        self._emitSession(TLS_ESTABLISHED, tlsVersion=version, tlsCipher=cipher)

    def tlsFailed(self, reason: Failure | str) -> None:
        """
        A TLS handshake failed (the connection was lost during it) or timed out.
        """
        text = _failureText(reason) if isinstance(reason, Failure) else reason
        self._emitSession(TLS_FAILED, reason=printable(text[:300]))

    # Login

    def loginStarted(self) -> None:
        """
        A login command arrived.
        """
        self._loginStarted = self._clock.seconds()

    def loginFinished(self, login: Login, outcome: LoginOutcome) -> None:
        """
        C{login} ended in C{outcome} (challenges are not an end, and are ignored).
        """
        user = "" if login.user is None else printable(login.user)
        common = dict(
            local=self._local,
            user=user,
            mechanism=login.mechanism,
            tls=self._tls,
            seconds=self._clock.seconds() - self._loginStarted,
            checkSeconds=login.checkSeconds,
        )
        if isinstance(outcome, LoginAccepted):
            self._user = user
            self._messages, octets = outcome.maildrop.stat()
            self._emitSession(
                LOGIN_ACCEPTED,
                messages=self._messages,
                octets=octets,
                openSeconds=login.openSeconds,
                **common,
            )
        elif isinstance(outcome, LoginRefused):
            code = outcome.error.code
            self._emitSession(
                LOGIN_REFUSED,
                code=None if code is None else code.value,
                reason=login.reason or Reason.OTHER,
                penalty=login.penalty,
                **common,
            )

    def loginAborted(self, login: Login | None) -> None:
        """
        The client cancelled a SASL exchange (C{*}).
        """
        self._emitSession(
            LOGIN_REFUSED,
            local=self._local,
            user="" if login is None or login.user is None else printable(login.user),
            mechanism="" if login is None else login.mechanism,
            tls=self._tls,
            code=None,
            reason=Reason.ABORTED,
            penalty=0.0,
            seconds=self._clock.seconds() - self._loginStarted,
            checkSeconds=None,
        )

    # RETR and TOP

    def retrieveStarted(self, event: Retrieve) -> None:
        """
        A RETR or TOP begins: the message is being opened.
        """
        self._retrieving = event
        self._retrieveStarted = self._clock.seconds()
        self._firstByte = None

    def firstByte(self) -> None:
        """
        The message is open and the C{+OK} of the RETR or TOP goes out.
        """
        self._firstByte = self._clock.seconds()

    def retrieved(self) -> None:
        """
        The RETR or TOP under way was sent whole.
        """
        event, self._retrieving = self._retrieving, None
        if event is None:
            return
        message = event.message
        top = event.bodyLines is not None
        if top:
            self._tops += 1
        else:
            self._retrieved += 1
            self._retrievedOctets += message.size
        if not self._publisher.observed:
            return
        firstByte = self._firstByte
        self._emitSession(
            RETRIEVED,
            uid=message.uid,
            octets=message.size,
            top=top,
            firstByteSeconds=None if firstByte is None else firstByte - self._retrieveStarted,
        )

    # The end

    def expungeStarted(self, uids: Collection[str]) -> None:
        """
        QUIT: these messages are being removed.
        """
        self._deleted = len(uids)
        self._expunge = "pending"
        self._expungeSeconds = self._clock.seconds()

    def expunged(self, goodbye: Goodbye) -> Goodbye:
        """
        The expunge ended in C{goodbye}, which is returned.
        """
        started = self._expungeSeconds or self._clock.seconds()
        self._expungeSeconds = self._clock.seconds() - started
        self._expunge = "ok" if goodbye.error is None else "failed"
        return goodbye

    def timedOut(self, waitingFor: str) -> None:
        """
        The session is closed for its client's silence, waiting for C{waitingFor}.
        """
        self._emitSession(TIMED_OUT, waitingFor=waitingFor)

    def evicted(self) -> None:
        """
        The session is closed before login to make room for others.
        """
        self._emitSession(EVICTED)

    def ended(self) -> None:
        """
        The connection is gone: a logout with the counters, or a disconnection before login.
        """
        duration = self._clock.seconds() - self._started
        if self._user is None:
            self._emitSession(DISCONNECTED, duration=duration)
            return
        deleted = self._deleted or 0
        self._emitSession(
            LOGGED_OUT,
            user=self._user,
            retrieved=self._retrieved,
            retrievedOctets=self._retrievedOctets,
            tops=self._tops,
            deleted=deleted if self._expunge == "ok" else 0,
            kept=self._messages - (deleted if self._expunge == "ok" else 0),
            expunge=self._expunge,
            expungeSeconds=self._expungeSeconds if self._expunge != "none" else None,
            duration=duration,
        )
