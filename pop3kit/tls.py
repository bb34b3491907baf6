"""
Server-side TLS: one certificate and key serving STLS (RFC 2595) and implicit TLS on port
995 (RFC 8314), reloadable without dropping sessions, with optional client certificates
for SASL EXTERNAL.

Everything TLS-specific is Twisted's: L{CertificateOptions} builds the OpenSSL context (TLS
1.2 at least, Twisted's cipher defaults, no compression), C{transport.startTLS()} upgrades
a connection after C{STLS}, and L{TLSMemoryBIOFactory} wraps the listeners of implicit
TLS.  L{ServerTLS} adds what Twisted leaves to the application: loading files with clear
errors, swapping the context on L{ServerTLS.reload}, and remembering which client
certificates verified.

Wiring, for the server and C{twistd pop3kit}::

    serverTLS = ServerTLS(certificatePath, keyPath, clientCAPath=clientCAPath)
    # STLS, after writing "+OK" (and discarding buffered clear-text input):
    transport.startTLS(serverTLS.contextFactory())
    # --listen ssl:995
    if isImplicitTLS(description):
        endpoint = implicitTLSEndpoint(reactor, description, serverTLS)
    TLSReloadService(serverTLS, reactor).setServiceParent(application)

The handshake timeout
=====================
A server should give up on a client that does not finish the TLS handshake within
L{HANDSHAKE_TIMEOUT} seconds.  Twisted tells the application protocol when the handshake
has completed: L{TLSMemoryBIOProtocol} calls C{handshakeCompleted()} on the protocol it
wraps if that protocol provides C{twisted.internet.interfaces.IHandshakeListener}.  This
holds for both paths (the tests check both): after C{transport.startTLS()} the wrapped
protocol is the application protocol itself, and under L{implicitTLSEndpoint} it is the
protocol the application's factory built.  So the server protocol should:

    1. declare C{@implementer(IHandshakeListener)};
    2. when TLS starts, schedule
       C{self._handshakeTimer = clock.callLater(HANDSHAKE_TIMEOUT,
       transport.abortConnection)}: for STLS right after calling C{startTLS()}, for
       implicit TLS in C{connectionMade} (where L{isSecure} is already true);
    3. in C{handshakeCompleted()}, cancel that call;
    4. in C{connectionLost()}, cancel it if it is still pending (a failed handshake ends
       the connection with an C{OpenSSL.SSL.Error} in the reason).

No application data reaches the protocol before the handshake completes, and what the
protocol writes before then (the greeting of an implicit-TLS server) is buffered by Twisted
and sent once the handshake is done.  For STLS, the server must also drop any clear-text
bytes it has buffered after the C{STLS} line before calling C{startTLS()} (RFC 2595; the
CVE-2011-0411 class of bugs).  C{handshakeCompleted} reaches the server protocol only if
L{TLSMemoryBIOProtocol} wraps it directly: a L{twisted.protocols.policies.WrappingFactory}
(such as C{TimeoutFactory}) in between hides it.
"""

from __future__ import annotations

import datetime
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any, cast
from weakref import WeakKeyDictionary

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import (
    IListeningPort,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorFromThreads,
    IReactorTCP,
    IReactorTime,
    ISSLTransport,
    IStreamServerEndpoint,
    ISystemHandle,
)
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementer

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "ServerTLS",
    "TLSConfigurationError",
    "TLSReloadService",
    "certificateFilesOf",
    "implicitTLSEndpoint",
    "isImplicitTLS",
    "isSecure",
    "peerIdentity",
]

#: Seconds a client gets to complete the TLS handshake (after STLS, or on connecting to an
#: implicit-TLS port) before the server aborts the connection.
HANDSHAKE_TIMEOUT = 30.0

#: The endpoint type of implicit TLS in a C{--listen} description.
_IMPLICIT_TLS_TYPE = "ssl"

#: The options an implicit-TLS description may carry; the certificate and key come from
#: L{ServerTLS}, never from the description.
_IMPLICIT_TLS_OPTIONS = frozenset({"port", "interface", "backlog"})

#: Options of Twisted's own C{ssl:} endpoint that pop3kit configures elsewhere.
_TWISTED_SSL_OPTIONS = frozenset({"sslmethod", "extraCertChain"})

#: Twisted's C{ssl:} options naming the certificate and key files: accepted when they name
#: the files of the L{ServerTLS} (see L{certificateFilesOf}).
_CERTIFICATE_OPTIONS = frozenset({"privateKey", "certKey"})

#: The key file of Twisted's C{ssl:} endpoint when C{privateKey=} is not given.
_TWISTED_DEFAULT_KEY = "server.pem"

_log = Logger()

# Whether each TLS connection's client certificate verified: True while every check the
# verification callback saw passed, False once one failed, absent if the callback never
# ran (no certificate, or no client CA configured).  Keyed weakly: an entry lives as long
# as its connection.
_clientVerification: WeakKeyDictionary[SSL.Connection, bool] = WeakKeyDictionary()

_SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class TLSConfigurationError(ValueError):
    """
    A TLS certificate, key or client CA file cannot be used; the message names the file and
    what is wrong with it.
    """


def _read(path: str, what: str) -> bytes:
    """
    The contents of a file, or a L{TLSConfigurationError} saying why it cannot be read.
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigurationError(f"{what} {path} cannot be read: {e.strerror or e}") from None


def _loadCertificates(path: str, what: str) -> list[x509.Certificate]:
    """
    All PEM certificates in a file, in order.
    """
    data = _read(path, what)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        hint = ""
        if b"PRIVATE KEY-----" in data:
            hint = " (it holds a private key: are the certificate and key swapped?)"
        raise TLSConfigurationError(
            f"{what} {path} holds no valid PEM certificate (-----BEGIN CERTIFICATE-----){hint}"
        ) from None


def _loadKey(path: str) -> PrivateKeyTypes:
    """
    The unencrypted PEM private key in a file.
    """
    data = _read(path, "TLS key file")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TLSConfigurationError(
            f"TLS key file {path} is encrypted with a passphrase; pop3kit needs an "
            "unencrypted key (protect it with file permissions instead)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        hint = ""
        if b"-----BEGIN CERTIFICATE-----" in data:
            hint = " (it holds a certificate: are the certificate and key swapped?)"
        raise TLSConfigurationError(
            f"TLS key file {path} holds no valid PEM private key{hint}"
        ) from None


def _publicKeyBytes(certificateOrKey: x509.Certificate | PrivateKeyTypes) -> bytes:
    """
    The DER SubjectPublicKeyInfo of a certificate's public key or of a private key's.
    """
    return certificateOrKey.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _warnIfNotCurrentlyValid(certificate: x509.Certificate, path: str) -> None:
    """
    Log a warning if a server certificate is expired or not yet valid.  Serving it anyway
    is deliberate: refusing to start (or to reload) would take the whole service down over
    a renewal that is late, while clients refuse the certificate themselves.
    """
    now = datetime.datetime.now(datetime.UTC)
    if certificate.not_valid_after_utc < now:
        _log.warn(
            "The TLS certificate in {path} expired on {notAfter}; clients will refuse it",
            path=path,
            notAfter=certificate.not_valid_after_utc.isoformat(),
        )
    elif certificate.not_valid_before_utc > now:
        _log.warn(
            "The TLS certificate in {path} is not valid before {notBefore}; clients will "
            "refuse it until then",
            path=path,
            notBefore=certificate.not_valid_before_utc.isoformat(),
        )


_verificationErrorNames = {
    value: name
    for name, value in vars(getattr(SSL, "X509VerificationCodes", object)).items()
    if name.startswith("ERR_")
}


def _recordClientVerification(
    connection: SSL.Connection, certificate: crypto.X509, error: int, depth: int, ok: int
) -> bool:
    """
    OpenSSL's verification callback for client certificates: record the outcome for
    L{peerIdentity}, log a failure once per connection, and let the handshake go on
    whatever the outcome (a client whose certificate does not verify is treated like one
    that sent none).
    """
    if ok:
        _clientVerification.setdefault(connection, True)
        return True
    firstFailure = _clientVerification.get(connection, True)
    _clientVerification[connection] = False
    if firstFailure:
        try:
            subject = certificate.to_cryptography().subject.rfc4514_string()
        except Exception:
            subject = "?"
        _log.info(
            "Ignoring a client certificate that does not verify ({reason} at depth "
            "{depth}, subject {subject}); the session goes on without a client identity",
            reason=_verificationErrorNames.get(error, f"error {error}"),
            depth=depth,
            subject=subject,
        )
    return True


def _makeOptions(
    certificatePath: str, keyPath: str, clientCAPath: str | None
) -> tuple[CertificateOptions, x509.Certificate]:
    """
    Load the files and build the L{CertificateOptions}, whose context is created (and
    completed) here, so that every problem shows now rather than at the first handshake.

    @return: The options, and the server's own certificate.
    """
    chain = _loadCertificates(certificatePath, "TLS certificate file")
    key = _loadKey(keyPath)
    keyBytes = _publicKeyBytes(key)
    if keyBytes != _publicKeyBytes(chain[0]):
        matching = [i for i, c in enumerate(chain) if _publicKeyBytes(c) == keyBytes]
        hint = (
            f"; it matches certificate number {matching[0] + 1} in that file, but the "
            "server's own certificate must come first, followed by its chain"
            if matching
            else ""
        )
        raise TLSConfigurationError(
            f"TLS key file {keyPath} does not match the certificate in {certificatePath}{hint}"
        )
    authorities: list[x509.Certificate] = []
    if clientCAPath is not None:
        authorities = _loadCertificates(clientCAPath, "TLS client CA file")
    try:
        # pyOpenSSL takes cryptography objects for the certificate and key (and warns
        # about its own X509/PKey there), although Twisted's annotations name the latter.
        options = CertificateOptions(
            privateKey=cast(Any, key),
            certificate=cast(Any, chain[0]),
            extraCertChain=cast(Any, chain[1:]),
            raiseMinimumTo=TLSVersion.TLSv1_2,
            verify=bool(authorities),
            caCerts=[crypto.X509.from_cryptography(c) for c in authorities] or None,
            requireCertificate=False,
        )
        context = options.getContext()
        if clientCAPath is not None:
            # Request, do not require, a certificate; verify it against the authorities
            # but record the outcome instead of failing the handshake.
            context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE, _recordClientVerification)
            # Tell clients which authorities are accepted, so that they pick the right
            # certificate.
            context.load_client_ca(os.fsencode(clientCAPath))
    except (SSL.Error, ValueError, TypeError) as e:
        raise TLSConfigurationError(
            f"TLS certificate file {certificatePath} and key file {keyPath} cannot be used: {e}"
        ) from None
    _warnIfNotCurrentlyValid(chain[0], certificatePath)
    return options, chain[0]


@implementer(IOpenSSLServerConnectionCreator)
class _CurrentContext:
    """
    The connection creator L{ServerTLS.contextFactory} returns: each new connection gets
    the context current at that moment.
    """

    def __init__(self, serverTLS: ServerTLS) -> None:
        self._serverTLS = serverTLS

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        """
        A new server-side OpenSSL connection, from the current certificate.
        """
        return self._serverTLS._options.serverConnectionForTLS(tlsProtocol)


class ServerTLS:
    """
    One certificate/key pair (PEM; the certificate file may carry the chain after the leaf)
    serving STLS and implicit-TLS listeners.

    Connections use TLS 1.2 or later with Twisted's cipher defaults and no compression.

    With a client CA, the server requests a client certificate but does not require one:
    a client without one can still log in with a password.  A client certificate that
    does not verify against the client CA (another authority, expired, not meant for
    client authentication) does not fail the handshake either: it is logged and ignored,
    as if the client had sent none, so L{peerIdentity} gives L{None} for it.

    @ivar certificatePath: The certificate file (the server's certificate, then any
        intermediate certificates).
    @ivar keyPath: The unencrypted private key file.
    @ivar clientCAPath: The file of authorities that client certificates must chain to,
        or L{None} to not ask clients for certificates.
    """

    log = Logger()

    def __init__(
        self, certificatePath: str, keyPath: str, *, clientCAPath: str | None = None
    ) -> None:
        """
        Load the files now.

        @raise TLSConfigurationError: If a file is missing, unreadable or not what it should
            be, or the key does not match the certificate.  An expired certificate is only
            logged as a warning.
        """
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.clientCAPath = clientCAPath
        self._options, _ = _makeOptions(certificatePath, keyPath, clientCAPath)
        self._creator = _CurrentContext(self)

    def contextFactory(self) -> IOpenSSLServerConnectionCreator:
        """
        What C{transport.startTLS()} and L{TLSMemoryBIOFactory} take.  It always hands out
        the current certificate: after L{reload}, new handshakes use the new one, while
        established sessions keep theirs.
        """
        return self._creator

    def reload(self) -> bool:
        """
        Read the files again and use them for new handshakes.

        @return: L{True} if they were loaded; L{False} if not, in which case the reason is
            logged and the previous certificate stays in use.
        """
        try:
            options, certificate = _makeOptions(
                self.certificatePath, self.keyPath, self.clientCAPath
            )
        except TLSConfigurationError as e:
            self.log.error("Keeping the current TLS certificate: {error}", error=str(e))
            return False
        except Exception:
            self.log.failure("Keeping the current TLS certificate: reloading failed")
            return False
        self._options = options
        self.log.info(
            "Reloaded the TLS certificate from {path}: {subject}, valid until {notAfter}",
            path=self.certificatePath,
            subject=certificate.subject.rfc4514_string(),
            notAfter=certificate.not_valid_after_utc.isoformat(),
        )
        return True


def _tlsConnection(transport: object) -> SSL.Connection | None:
    """
    The OpenSSL connection of a transport on which TLS is active, else L{None}.
    """
    if not ISystemHandle.providedBy(transport):
        return None
    try:
        handle = transport.getHandle()
    except AttributeError:  # a TLSMemoryBIOProtocol that is not connected yet
        return None
    return handle if isinstance(handle, SSL.Connection) else None


def isSecure(transport: object) -> bool:
    """
    Whether TLS is active on a transport: a TCP transport after C{startTLS()}, or the
    L{TLSMemoryBIOProtocol} an implicit-TLS listener gives its protocols; both provide
    L{ISSLTransport}.
    """
    return ISSLTransport.providedBy(transport)


def peerIdentity(transport: object) -> str | None:
    """
    The identity of a verified TLS client certificate on this transport, for SASL
    EXTERNAL: the rfc822Name (e-mail) in subjectAltName if any, else the subject CN; None
    without TLS or without a verified certificate.

    A certificate counts as verified only if L{ServerTLS} was given a client CA and the
    certificate verified against it during this connection's handshake.
    """
    connection = _tlsConnection(transport)
    if connection is None or not _clientVerification.get(connection, False):
        return None
    peer = connection.get_peer_certificate()
    if peer is None:
        return None
    certificate = peer.to_cryptography()
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        pass
    else:
        emails = names.value.get_values_for_type(x509.RFC822Name)
        if emails:
            return emails[0]
    commonNames = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not commonNames:
        return None
    value = commonNames[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _parseDescription(
    description: str,
) -> tuple[str | None, list[str], list[tuple[str, str]]]:
    """
    Split an endpoint description the way Twisted does: fields separated by C{:}, the
    first one the endpoint type, C{key=value} fields as keyword arguments, a backslash
    escaping the next character.

    @return: The type (L{None} if the first field is a C{key=value}), the positional
        arguments and the keyword arguments, in order.
    """
    fields: list[list[str]] = [[""]]
    escaped = False
    for character in description:
        if escaped:
            fields[-1][-1] += character
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ":":
            fields.append([""])
        elif character == "=" and len(fields[-1]) == 1:
            fields[-1].append("")
        else:
            fields[-1][-1] += character
    kind = fields[0][0] if len(fields[0]) == 1 else None
    arguments = [field[0] for field in fields[1:] if len(field) == 1]
    keywords = [(field[0], field[1]) for field in fields if len(field) == 2]
    return kind, arguments, keywords


def isImplicitTLS(description: str) -> bool:
    """
    Whether a C{--listen} description asks for implicit TLS (C{ssl:995...}), to be built
    with L{implicitTLSEndpoint} rather than Twisted's own C{ssl:} endpoint.
    """
    return _parseDescription(description)[0] == _IMPLICIT_TLS_TYPE


def certificateFilesOf(description: str) -> tuple[str, str] | None:
    """
    The certificate and key files an C{ssl:} description names with Twisted's options,
    read as Twisted's C{ssl:} endpoint reads them: C{privateKey=} is the key (by default
    C{server.pem}), C{certKey=} the certificate (by default the key's file, which then
    holds both).

    @return: C{(certificate, key)}, or L{None} if the description names neither or is
        not C{ssl:}.
    """
    kind, _, keywords = _parseDescription(description)
    options = dict(keywords)
    if kind != _IMPLICIT_TLS_TYPE or not (set(options) & _CERTIFICATE_OPTIONS):
        return None
    key = options.get("privateKey", _TWISTED_DEFAULT_KEY)
    return options.get("certKey", key), key


def _sameFiles(first: tuple[str, str], second: tuple[str, str]) -> bool:
    """
    Whether two C{(certificate, key)} pairs name the same files.
    """
    return all(
        os.path.realpath(a) == os.path.realpath(b) for a, b in zip(first, second, strict=True)
    )


def _integer(description: str, name: str, value: str, low: int, high: int) -> int:
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise TLSConfigurationError(
            f"{description!r}: {name} must be a number from {low} to {high}, not {value!r}"
        )
    return int(value)


@implementer(IStreamServerEndpoint)
class _ImplicitTLSEndpoint:
    """
    A TCP endpoint that speaks TLS first, with the current certificate of a L{ServerTLS}.
    """

    def __init__(
        self, tcp: TCP4ServerEndpoint, serverTLS: ServerTLS, clock: IReactorTime | None
    ) -> None:
        self._tcp = tcp
        self._serverTLS = serverTLS
        self._clock = clock

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        """
        Listen with C{protocolFactory} wrapped in a L{TLSMemoryBIOFactory}.
        """
        return self._tcp.listen(  # type: ignore[no-any-return, no-untyped-call]
            TLSMemoryBIOFactory(
                self._serverTLS.contextFactory(), False, protocolFactory, self._clock
            )
        )


def implicitTLSEndpoint(
    reactor: IReactorTCP, description: str, serverTLS: ServerTLS
) -> IStreamServerEndpoint:
    """
    For a listen description 'ssl:995[:interface=...:backlog=...]' (the twistd --listen
    syntax; Twisted's privateKey/certKey options may name the files of C{serverTLS}, and
    no others: one certificate serves every listener): a TCP endpoint whose listen() wraps
    the factory in
    TLSMemoryBIOFactory(serverTLS.contextFactory(), False, factory), so reload applies to
    it too.

    @param reactor: Listens; also schedules the TLS layer's write coalescing if it provides
        L{IReactorTime}.
    @raise TLSConfigurationError: If the description is not C{ssl:} with a port and only
        the options C{interface}, C{backlog}, and C{privateKey}/C{certKey} naming the files
        of C{serverTLS}.
    """
    kind, arguments, keywords = _parseDescription(description)
    options = dict(keywords)
    if kind != _IMPLICIT_TLS_TYPE:
        raise TLSConfigurationError(f"{description!r} is not an implicit-TLS (ssl:) description")
    if len(options) != len(keywords):
        raise TLSConfigurationError(f"{description!r} gives an option twice")
    misplaced = sorted(set(options) & _TWISTED_SSL_OPTIONS)
    if misplaced:
        raise TLSConfigurationError(
            f"{description!r}: {', '.join(misplaced)} cannot be given here; the chain goes "
            "after the certificate in its file, and TLS 1.2 or later is always used"
        )
    files = certificateFilesOf(description)
    if files is not None and not _sameFiles(files, (serverTLS.certificatePath, serverTLS.keyPath)):
        raise TLSConfigurationError(
            f"{description!r} names a second certificate ({files[0]}, key {files[1]}) "
            f"besides {serverTLS.certificatePath} (key {serverTLS.keyPath}): one certificate "
            "serves every listener and STLS"
        )
    unknown = sorted(set(options) - _IMPLICIT_TLS_OPTIONS - _CERTIFICATE_OPTIONS)
    if unknown:
        raise TLSConfigurationError(
            f"{description!r}: unknown option {', '.join(unknown)} (ssl: takes a port, "
            "interface=, backlog=, and privateKey=/certKey= naming the server's certificate)"
        )
    positional = arguments
    if "port" in options:
        positional.insert(0, options["port"])
    if len(positional) != 1:
        raise TLSConfigurationError(
            f"{description!r} needs exactly one port, as in ssl:995:interface=127.0.0.1"
        )
    port = _integer(description, "port", positional[0], 0, 65535)
    backlog = _integer(description, "backlog", options.get("backlog", "50"), 1, 2**31 - 1)
    tcp = TCP4ServerEndpoint(  # type: ignore[no-untyped-call]
        reactor, port, backlog, options.get("interface", "")
    )
    clock = cast(IReactorTime, reactor) if IReactorTime.providedBy(reactor) else None
    return _ImplicitTLSEndpoint(tcp, serverTLS, clock)


class TLSReloadService(Service):
    """
    Reloads a L{ServerTLS} on SIGHUP while running, e.g. after a certificate renewal.

    twistd itself does not use SIGHUP (it rotates its log on SIGUSR1), so the handler is
    installed in L{startService} and the previous one restored in L{stopService}.  A
    previous handler installed from Python is called after each reload is scheduled, so
    several services (two L{TLSReloadService}s, say) can share the signal.

    The files are read again as the user the service runs as: after twistd has dropped
    privileges (C{--uid}), that user must be able to read the key for a reload to work.
    """

    log = Logger()

    def __init__(self, serverTLS: ServerTLS, reactor: IReactorFromThreads) -> None:
        """
        @param serverTLS: What to reload.
        @param reactor: Runs the reload, outside the signal handler.
        """
        self._serverTLS = serverTLS
        self._reactor = reactor
        self._previous: _SignalHandler = None
        self._installed: Callable[[int, FrameType | None], None] | None = None

    def _handleSignal(self, number: int, frame: FrameType | None) -> None:
        """
        The signal handler: schedule a reload in the reactor thread, then chain.
        """
        if self.running:
            self._reactor.callFromThread(self._reload)
        previous = self._previous
        if callable(previous):
            previous(number, frame)

    def _reload(self) -> None:
        self.log.info("SIGHUP: reloading the TLS certificate")
        self._serverTLS.reload()

    def startService(self) -> None:
        """
        Install the SIGHUP handler.
        """
        super().startService()  # type: ignore[no-untyped-call]
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is None:
            self.log.warn("No SIGHUP on this platform: the TLS certificate is not reloadable")
            return
        handler = self._handleSignal
        try:
            self._previous = signal.signal(sighup, handler)
        except ValueError as e:  # not the main thread
            self.log.error("Cannot reload the TLS certificate on SIGHUP: {error}", error=str(e))
            return
        self._installed = handler

    def stopService(self) -> Deferred[None] | None:
        """
        Restore the handler SIGHUP had before L{startService}, unless another one has
        replaced ours since (then it is left alone, and ours only chains to the previous).
        """
        installed, self._installed = self._installed, None
        if installed is not None:
            if signal.getsignal(signal.SIGHUP) is installed:
                previous = self._previous
                signal.signal(signal.SIGHUP, signal.SIG_DFL if previous is None else previous)
                self._previous = None
            else:
                self.log.warn("Another SIGHUP handler replaced the TLS reload handler; leaving it")
        return super().stopService()  # type: ignore[no-any-return, no-untyped-call]
