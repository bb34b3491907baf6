"""
Tests for L{pop3kit.tls}: loading certificates, real TLS handshakes over loopback TCP (both
implicit TLS and C{startTLS}), reloading, client certificates and the SIGHUP service.
"""

from __future__ import annotations

import os
import shutil
import signal
from types import FrameType
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.interfaces import (
    IHandshakeListener,
    IListeningPort,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.protocols.basic import LineReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from pop3kit.tls import (
    HANDSHAKE_TIMEOUT,
    ServerTLS,
    TLSConfigurationError,
    TLSReloadService,
    implicitTLSEndpoint,
    isImplicitTLS,
    isSecure,
    peerIdentity,
)
from tests._pki import PKI, Issued, sharedPKI

#: The global reactor, which trial runs; typed loosely, it provides many interfaces.
reactor = cast(Any, _reactor)

LOOPBACK = "ssl:0:interface=127.0.0.1"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _install(issued: Issued, certificatePath: str, keyPath: str) -> None:
    """
    Copy a certificate and key to where a L{ServerTLS} reads them.
    """
    shutil.copyfile(issued.certificate, certificatePath)
    shutil.copyfile(issued.key, keyPath)


def _commonName(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def clientOptions(
    pki: PKI, client: Issued | None = None, **extra: Any
) -> IOpenSSLClientConnectionCreator:
    """
    Client TLS options that trust C{pki}'s authority and verify the name C{localhost},
    optionally presenting the client certificate C{client}.
    """
    if client is not None:
        extra["privateKey"] = load_pem_private_key(_read(client.key), None)
        extra["certificate"] = x509.load_pem_x509_certificate(_read(client.certificate))
    return optionsForClientTLS(
        "localhost",
        trustRoot=Certificate.loadPEM(_read(pki.ca.certificate)),
        extraCertificateOptions=extra,
    )


@implementer(IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator)
class _RawContext:
    """
    A connection creator around a hand-made pyOpenSSL context, for peers Twisted's
    defaults would not build (old TLS versions).
    """

    def __init__(self, context: SSL.Context) -> None:
        self._context = context

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        return SSL.Connection(self._context)

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        return SSL.Connection(self._context)


def _tls11Context(server: Issued | None = None) -> SSL.Context:
    """
    A context that speaks TLS 1.1 and nothing else, at OpenSSL security level 0.
    """
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_1_VERSION)
    context.set_max_proto_version(SSL.TLS1_1_VERSION)
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    if server is not None:
        context.use_certificate(x509.load_pem_x509_certificate(_read(server.certificate)))
        context.use_privatekey(cast(Any, load_pem_private_key(_read(server.key), None)))
    return context


@implementer(IHandshakeListener)
class EchoServer(Protocol):
    """
    A server protocol that echoes what it receives and, when the TLS handshake completes,
    records what L{isSecure} and L{peerIdentity} say and hands itself to its factory.
    """

    factory: ServerFactory
    identity: str | None = None
    secure: bool | None = None

    def connectionMade(self) -> None:
        self.lost: Deferred[None] = Deferred()
        self.factory.connections.append(self)

    def handshakeCompleted(self) -> None:
        self.secure = isSecure(self.transport)
        self.identity = peerIdentity(self.transport)
        self.factory.handshakes.put(self)

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


@implementer(IHandshakeListener)
class STLSServer(LineReceiver):
    """
    A server protocol that upgrades to TLS on C{STLS}, like a POP3 server, and echoes
    lines afterwards.
    """

    factory: ServerFactory
    identity: str | None = None
    secure: bool | None = None

    def connectionMade(self) -> None:
        self.lost: Deferred[None] = Deferred()
        self.factory.connections.append(self)
        self.secureBefore = isSecure(self.transport)

    def lineReceived(self, line: bytes) -> None:
        assert self.transport is not None
        if line == b"STLS":
            self.sendLine(b"+OK")
            assert self.factory.serverTLS is not None
            creator = self.factory.serverTLS.contextFactory()
            self.transport.startTLS(creator)  # type: ignore[attr-defined]
        else:
            self.sendLine(line)

    def handshakeCompleted(self) -> None:
        self.secure = isSecure(self.transport)
        self.identity = peerIdentity(self.transport)
        self.factory.handshakes.put(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


class ServerFactory(Factory):
    """
    Builds server protocols and keeps them, and a queue of those whose handshake completed.
    """

    def __init__(self, protocol: type[Protocol], serverTLS: ServerTLS | None = None) -> None:
        self.protocol = protocol
        self.serverTLS = serverTLS
        self.connections: list[EchoServer | STLSServer] = []
        self.handshakes: DeferredQueue[EchoServer | STLSServer] = DeferredQueue()


@implementer(IHandshakeListener)
class Client(Protocol):
    """
    A TLS client that reports the server's certificate once the handshake completes and
    can exchange data with an echoing server.

    @ivar handshake: Fires with the server's certificate, or fails with the reason the
        connection was lost before the handshake completed.
    """

    def __init__(self) -> None:
        self.handshake: Deferred[x509.Certificate] = Deferred()
        self.lost: Deferred[None] = Deferred()
        self._received = b""
        self._waiting: tuple[int, Deferred[bytes]] | None = None

    def handshakeCompleted(self) -> None:
        connection = cast(TLSMemoryBIOProtocol, self.transport).getHandle()
        certificate = connection.get_peer_certificate()
        self.handshake.callback(certificate.to_cryptography())

    def exchange(self, data: bytes) -> Deferred[bytes]:
        """
        Send C{data}; fire with as many bytes received back.
        """
        assert self.transport is not None
        waiting: Deferred[bytes] = Deferred()
        self._waiting = (len(data), waiting)
        self._received = b""
        self.transport.write(data)
        return waiting

    def dataReceived(self, data: bytes) -> None:
        self._received += data
        if self._waiting is not None and len(self._received) >= self._waiting[0]:
            waiting, self._waiting = self._waiting[1], None
            waiting.callback(self._received)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.handshake.called:
            self.handshake.errback(reason)
        if self._waiting is not None:
            self._waiting[1].errback(reason)
        self.lost.callback(None)


@implementer(IHandshakeListener)
class STLSClient(LineReceiver):
    """
    A client that sends C{STLS} in clear text, starts TLS on C{+OK} and reports the
    server's certificate when the handshake completes.
    """

    def __init__(self, creator: IOpenSSLClientConnectionCreator) -> None:
        self._creator = creator
        self.handshake: Deferred[x509.Certificate] = Deferred()
        self.lines: DeferredQueue[bytes] = DeferredQueue()
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.sendLine(b"STLS")

    def lineReceived(self, line: bytes) -> None:
        if line == b"+OK" and not self.handshake.called:
            self.transport.startTLS(self._creator)  # type: ignore[union-attr]
        else:
            self.lines.put(line)

    def handshakeCompleted(self) -> None:
        connection = self.transport.getHandle()  # type: ignore[union-attr]
        self.handshake.callback(connection.get_peer_certificate().to_cryptography())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.handshake.called:
            self.handshake.errback(reason)
        self.lost.callback(None)


class LoopbackTestCase(TestCase):
    """
    Listens with L{implicitTLSEndpoint} (or plain TCP) and connects clients over loopback,
    closing everything at the end of each test.
    """

    def setUp(self) -> None:
        self.pki = PKI(self.mktemp())
        self.server = self.pki.issue("localhost")
        self.factory = ServerFactory(EchoServer)
        self.addCleanup(self._waitForServers)

    async def _waitForServers(self) -> None:
        for connection in self.factory.connections:
            await connection.lost

    async def listen(
        self, serverTLS: ServerTLS, description: str = LOOPBACK, factory: Factory | None = None
    ) -> int:
        """
        Listen for implicit TLS on a free loopback port; return the port number.
        """
        endpoint = implicitTLSEndpoint(reactor, description, serverTLS)
        port: IListeningPort = await endpoint.listen(factory or self.factory)
        self.addCleanup(port.stopListening)
        return cast(Any, port.getHost()).port  # type: ignore[no-any-return]

    async def connect(self, port: int, creator: IOpenSSLClientConnectionCreator) -> Client:
        """
        Connect a L{Client} over TLS.
        """
        endpoint = wrapClientTLS(creator, TCP4ClientEndpoint(reactor, "127.0.0.1", port))
        client = Client()
        await connectProtocol(endpoint, client)
        self.addCleanup(self._close, client)
        return client

    async def _close(self, client: Client | STLSClient) -> None:
        if not client.lost.called:
            assert client.transport is not None
            client.transport.abortConnection()  # type: ignore[attr-defined]
        await client.lost

    def serverTLS(self, **kwargs: Any) -> ServerTLS:
        return ServerTLS(self.server.certificate, self.server.key, **kwargs)


class ServerTLSLoadingTests(SynchronousTestCase):
    """
    L{ServerTLS} loads good files and explains what is wrong with bad ones.
    """

    def setUp(self) -> None:
        self.pki, self.server = sharedPKI()
        self.directory = self.mktemp()
        os.makedirs(self.directory)

    def path(self, name: str, data: bytes | None = None) -> str:
        path = os.path.join(self.directory, name)
        if data is not None:
            _write(path, data)
        return path

    def assertRefused(self, *args: str, clientCAPath: str | None = None) -> str:
        """
        Loading fails with a L{TLSConfigurationError}; return its message.
        """
        error = self.assertRaises(
            TLSConfigurationError, ServerTLS, *args, clientCAPath=clientCAPath
        )
        return str(error)

    def test_goodPair(self) -> None:
        """
        A matching certificate and key load, and the context factory creates server
        connections.
        """
        serverTLS = ServerTLS(self.server.certificate, self.server.key)
        self.assertTrue(IOpenSSLServerConnectionCreator.providedBy(serverTLS.contextFactory()))
        self.assertEqual(serverTLS.certificatePath, self.server.certificate)

    def test_isValueError(self) -> None:
        """
        L{TLSConfigurationError} is a L{ValueError}, so option parsing can treat it as one.
        """
        self.assertTrue(issubclass(TLSConfigurationError, ValueError))

    def test_chainAfterLeaf(self) -> None:
        """
        A certificate file carrying the chain after the server's certificate loads.
        """
        chained = self.path(
            "chain.crt", _read(self.server.certificate) + _read(self.pki.ca.certificate)
        )
        ServerTLS(chained, self.server.key)

    def test_chainBeforeLeaf(self) -> None:
        """
        A certificate file with the chain first is refused, saying where the matching
        certificate is.
        """
        wrongOrder = self.path(
            "chain.crt", _read(self.pki.ca.certificate) + _read(self.server.certificate)
        )
        message = self.assertRefused(wrongOrder, self.server.key)
        self.assertIn("does not match", message)
        self.assertIn("number 2", message)

    def test_missingCertificate(self) -> None:
        """
        A missing certificate file is named, with the reason.
        """
        missing = self.path("missing.crt")
        message = self.assertRefused(missing, self.server.key)
        self.assertIn(f"TLS certificate file {missing} cannot be read", message)
        self.assertIn("No such file", message)

    def test_missingKey(self) -> None:
        """
        A missing key file is named, with the reason.
        """
        missing = self.path("missing.key")
        message = self.assertRefused(self.server.certificate, missing)
        self.assertIn(f"TLS key file {missing} cannot be read", message)

    def test_garbageCertificate(self) -> None:
        """
        A certificate file without a PEM certificate is refused.
        """
        garbage = self.path("garbage.crt", b"not a certificate\n")
        message = self.assertRefused(garbage, self.server.key)
        self.assertIn(f"TLS certificate file {garbage} holds no valid PEM certificate", message)

    def test_corruptCertificate(self) -> None:
        """
        A PEM certificate block whose contents are damaged is refused.
        """
        pem = _read(self.server.certificate)
        corrupt = self.path("corrupt.crt", pem.replace(pem[40:60], b"A" * 20))
        self.assertIn(
            "holds no valid PEM certificate", self.assertRefused(corrupt, self.server.key)
        )

    def test_garbageKey(self) -> None:
        """
        A key file without a PEM private key is refused.
        """
        garbage = self.path("garbage.key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n")
        message = self.assertRefused(self.server.certificate, garbage)
        self.assertIn(f"TLS key file {garbage} holds no valid PEM private key", message)

    def test_swapped(self) -> None:
        """
        Giving the key as the certificate and the other way round is pointed out.
        """
        message = self.assertRefused(self.server.key, self.server.certificate)
        self.assertIn("swapped", message)

    def test_keyNotMatching(self) -> None:
        """
        A key that belongs to another certificate is refused, naming both files.
        """
        other = self.pki.issue("not-matching")
        message = self.assertRefused(self.server.certificate, other.key)
        self.assertIn(
            f"TLS key file {other.key} does not match the certificate in {self.server.certificate}",
            message,
        )

    def test_encryptedKey(self) -> None:
        """
        A passphrase-protected key is refused with an explanation.
        """
        key = load_pem_private_key(_read(self.server.key), None)
        encrypted = self.path(
            "encrypted.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
        )
        self.assertIn("encrypted", self.assertRefused(self.server.certificate, encrypted))

    def test_missingClientCA(self) -> None:
        """
        A missing client CA file is named.
        """
        missing = self.path("missing-ca.crt")
        message = self.assertRefused(self.server.certificate, self.server.key, clientCAPath=missing)
        self.assertIn(f"TLS client CA file {missing} cannot be read", message)

    def test_garbageClientCA(self) -> None:
        """
        A client CA file without certificates is refused.
        """
        garbage = self.path("garbage-ca.crt", b"\n")
        message = self.assertRefused(self.server.certificate, self.server.key, clientCAPath=garbage)
        self.assertIn(f"TLS client CA file {garbage} holds no valid PEM certificate", message)

    def test_expiredCertificateWarns(self) -> None:
        """
        An expired certificate loads, with a warning on the log naming the file.
        """
        expired = self.pki.issue("expired-server", expired=True)
        with capturedLogs() as events:
            ServerTLS(expired.certificate, expired.key)
        warnings = [e for e in events if "expired" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["path"], expired.certificate)

    def test_validCertificateDoesNotWarn(self) -> None:
        """
        A valid certificate loads without a warning.
        """
        with capturedLogs() as events:
            ServerTLS(self.server.certificate, self.server.key)
        self.assertEqual([e for e in events if "expired" in e.get("log_format", "")], [])


class HandshakeTests(LoopbackTestCase):
    """
    Real handshakes with implicit TLS over loopback.
    """

    async def test_handshake(self) -> None:
        """
        A client trusting the test authority completes the handshake with TLS 1.2 or later,
        verifies the name C{localhost}, and exchanges data.
        """
        port = await self.listen(self.serverTLS())
        client = await self.connect(port, clientOptions(self.pki))
        self.assertEqual(_commonName(await client.handshake), "localhost")
        server = await self.factory.handshakes.get()
        self.assertTrue(server.secure)
        self.assertIsNone(server.identity)
        self.assertEqual(await client.exchange(b"hello"), b"hello")
        handle = cast(TLSMemoryBIOProtocol, client.transport).getHandle()
        self.assertIn(handle.get_protocol_version_name(), ("TLSv1.2", "TLSv1.3"))

    async def test_tls12Accepted(self) -> None:
        """
        A client that speaks at most TLS 1.2 is served.
        """
        from twisted.internet.ssl import TLSVersion

        port = await self.listen(self.serverTLS())
        client = await self.connect(
            port, clientOptions(self.pki, lowerMaximumSecurityTo=TLSVersion.TLSv1_2)
        )
        await client.handshake
        handle = cast(TLSMemoryBIOProtocol, client.transport).getHandle()
        self.assertEqual(handle.get_protocol_version_name(), "TLSv1.2")

    async def test_tls11Refused(self) -> None:
        """
        A client that speaks only TLS 1.1 fails the handshake (while the same client
        completes one with a server that allows TLS 1.1, so the refusal is pop3kit's).
        """
        permissive = TLSMemoryBIOFactory(
            _RawContext(_tls11Context(self.server)), False, self.factory
        )
        permissivePort: IListeningPort = await TCP4ServerEndpoint(
            reactor, 0, interface="127.0.0.1"
        ).listen(permissive)
        self.addCleanup(permissivePort.stopListening)
        control = await self.connect(
            cast(Any, permissivePort.getHost()).port, _RawContext(_tls11Context())
        )
        try:
            await control.handshake
        except SSL.Error as e:
            self.skipTest(f"this OpenSSL cannot negotiate TLS 1.1 at all: {e}")

        port = await self.listen(self.serverTLS())
        client = await self.connect(port, _RawContext(_tls11Context()))
        with self.assertRaises(SSL.Error):
            await client.handshake

    async def test_handshakeCompletedOnImplicitTLS(self) -> None:
        """
        Under L{implicitTLSEndpoint}, the protocol the application's factory built learns
        of the completed handshake through L{IHandshakeListener}.
        """
        port = await self.listen(self.serverTLS())
        client = await self.connect(port, clientOptions(self.pki))
        await client.handshake
        server = await self.factory.handshakes.get()
        self.assertIsInstance(server, EchoServer)
        self.assertIsInstance(server.transport, TLSMemoryBIOProtocol)

    async def test_startTLS(self) -> None:
        """
        After C{startTLS()} with L{ServerTLS.contextFactory} on a clear-text connection,
        the application protocol learns of the completed handshake, and L{isSecure}
        changes from false to true.
        """
        serverTLS = self.serverTLS(clientCAPath=self.pki.ca.certificate)
        self.factory = ServerFactory(STLSServer, serverTLS)
        port: IListeningPort = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            self.factory
        )
        self.addCleanup(port.stopListening)
        alice = self.pki.issue("alice", client=True, emails=("alice@example.org",))
        client = STLSClient(clientOptions(self.pki, alice))
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", cast(Any, port.getHost()).port), client
        )
        self.addCleanup(self._close, client)
        self.assertEqual(_commonName(await client.handshake), "localhost")
        server = cast(STLSServer, await self.factory.handshakes.get())
        self.assertFalse(server.secureBefore)
        self.assertTrue(server.secure)
        self.assertEqual(server.identity, "alice@example.org")
        client.sendLine(b"over TLS")
        self.assertEqual(await client.lines.get(), b"over TLS")


class ReloadTests(LoopbackTestCase):
    """
    L{ServerTLS.reload} changes the certificate of new handshakes only.
    """

    def setUp(self) -> None:
        super().setUp()
        live = self.mktemp()
        os.makedirs(live)
        self.certificatePath = os.path.join(live, "server.crt")
        self.keyPath = os.path.join(live, "server.key")
        self.first = self.pki.issue("first")
        self.second = self.pki.issue("second")
        _install(self.first, self.certificatePath, self.keyPath)

    async def test_reload(self) -> None:
        """
        After a reload a new connection sees the new certificate, while a connection
        established before it keeps working.
        """
        serverTLS = ServerTLS(self.certificatePath, self.keyPath)
        port = await self.listen(serverTLS)
        old = await self.connect(port, clientOptions(self.pki))
        self.assertEqual(_commonName(await old.handshake), "first")
        self.assertEqual(await old.exchange(b"before"), b"before")

        _install(self.second, self.certificatePath, self.keyPath)
        self.assertTrue(serverTLS.reload())

        new = await self.connect(port, clientOptions(self.pki))
        self.assertEqual(_commonName(await new.handshake), "second")
        self.assertEqual(await old.exchange(b"after the reload"), b"after the reload")
        self.assertEqual(await new.exchange(b"new"), b"new")

    async def test_reloadBrokenKeepsOld(self) -> None:
        """
        A reload from broken files returns false, logs why, and new connections still get
        the old certificate.
        """
        serverTLS = ServerTLS(self.certificatePath, self.keyPath)
        port = await self.listen(serverTLS)
        _write(self.certificatePath, b"half-written")
        with capturedLogs() as events:
            self.assertFalse(serverTLS.reload())
        errors = [e for e in events if "Keeping the current" in e.get("log_format", "")]
        self.assertEqual(len(errors), 1)
        self.assertIn(self.certificatePath, errors[0]["error"])
        client = await self.connect(port, clientOptions(self.pki))
        self.assertEqual(_commonName(await client.handshake), "first")

    async def test_reloadMismatchKeepsOld(self) -> None:
        """
        A reload that finds the new certificate with the old key (a renewal half done)
        returns false and keeps the old pair.
        """
        serverTLS = ServerTLS(self.certificatePath, self.keyPath)
        port = await self.listen(serverTLS)
        shutil.copyfile(self.second.certificate, self.certificatePath)
        self.assertFalse(serverTLS.reload())
        client = await self.connect(port, clientOptions(self.pki))
        self.assertEqual(_commonName(await client.handshake), "first")

    def test_reloadLogged(self) -> None:
        """
        A successful reload says on the log which certificate is now served.
        """
        serverTLS = ServerTLS(self.certificatePath, self.keyPath)
        _install(self.second, self.certificatePath, self.keyPath)
        with capturedLogs() as events:
            self.assertTrue(serverTLS.reload())
        (event,) = [e for e in events if "Reloaded" in e.get("log_format", "")]
        self.assertEqual(event["subject"], "CN=second")
        self.assertEqual(event["path"], self.certificatePath)

    def test_contextFactoryIsStable(self) -> None:
        """
        The context factory is the same object before and after a reload, so whoever
        holds it gets the new certificate.
        """
        serverTLS = ServerTLS(self.certificatePath, self.keyPath)
        before = serverTLS.contextFactory()
        _install(self.second, self.certificatePath, self.keyPath)
        self.assertTrue(serverTLS.reload())
        self.assertIs(serverTLS.contextFactory(), before)


class PeerIdentityTests(LoopbackTestCase):
    """
    L{peerIdentity} over real handshakes with client certificates.
    """

    async def identityOf(
        self, client: Issued | None, *, clientCA: bool = True
    ) -> tuple[str | None, Client]:
        """
        Connect with the client certificate C{client}; return what the server's
        L{peerIdentity} said, and the client (after checking data still flows).
        """
        clientCAPath = self.pki.ca.certificate if clientCA else None
        port = await self.listen(self.serverTLS(clientCAPath=clientCAPath))
        connection = await self.connect(port, clientOptions(self.pki, client))
        await connection.handshake
        server = await self.factory.handshakes.get()
        self.assertTrue(server.secure)
        self.assertEqual(await connection.exchange(b"still works"), b"still works")
        return server.identity, connection

    async def test_email(self) -> None:
        """
        A client certificate with an e-mail address in subjectAltName gives that address.
        """
        alice = self.pki.issue("Alice", client=True, emails=("alice@example.org",))
        identity, _ = await self.identityOf(alice)
        self.assertEqual(identity, "alice@example.org")

    async def test_commonName(self) -> None:
        """
        A client certificate without an e-mail address gives its subject CN.
        """
        bob = self.pki.issue("bob", client=True, hostnames=(), addresses=())
        identity, _ = await self.identityOf(bob)
        self.assertEqual(identity, "bob")

    async def test_noClientCertificate(self) -> None:
        """
        A client without a certificate gets no identity, but is served.
        """
        identity, _ = await self.identityOf(None)
        self.assertIsNone(identity)

    async def test_otherAuthority(self) -> None:
        """
        A client certificate from another authority is ignored: no identity, the session
        goes on, and the server logs why.
        """
        other = PKI(self.mktemp(), "another CA").issue(
            "mallory", client=True, emails=("alice@example.org",)
        )
        with capturedLogs() as events:
            identity, _ = await self.identityOf(other)
        self.assertIsNone(identity)
        ignored = [e for e in events if "Ignoring a client certificate" in e["log_format"]]
        self.assertEqual(len(ignored), 1)
        self.assertIn("CN=mallory", ignored[0]["subject"])

    async def test_expiredClientCertificate(self) -> None:
        """
        An expired client certificate from the right authority is ignored.
        """
        expired = self.pki.issue("carol", client=True, emails=("carol@example.org",), expired=True)
        identity, _ = await self.identityOf(expired)
        self.assertIsNone(identity)

    async def test_serverCertificateAsClient(self) -> None:
        """
        A certificate from the right authority that is not meant for client
        authentication (extended key usage serverAuth only) is ignored.
        """
        identity, _ = await self.identityOf(self.pki.issue("dave"))
        self.assertIsNone(identity)

    async def test_notRequestedWithoutClientCA(self) -> None:
        """
        Without a client CA the server does not ask for a certificate, so a client that
        has one gets no identity.
        """
        alice = self.pki.issue("Alice", client=True, emails=("alice@example.org",))
        identity, _ = await self.identityOf(alice, clientCA=False)
        self.assertIsNone(identity)

    async def test_identityIsPerConnection(self) -> None:
        """
        A verified certificate on one connection gives nothing to a later connection
        without one.
        """
        alice = self.pki.issue("Alice", client=True, emails=("alice@example.org",))
        port = await self.listen(self.serverTLS(clientCAPath=self.pki.ca.certificate))
        first = await self.connect(port, clientOptions(self.pki, alice))
        await first.handshake
        second = await self.connect(port, clientOptions(self.pki))
        await second.handshake
        identities = {(await self.factory.handshakes.get()).identity for _ in range(2)}
        self.assertEqual(identities, {"alice@example.org", None})

    def test_withoutTLS(self) -> None:
        """
        A transport without TLS has no identity and is not secure.
        """
        transport = StringTransport()
        self.assertIsNone(peerIdentity(transport))
        self.assertFalse(isSecure(transport))
        self.assertIsNone(peerIdentity(object()))
        self.assertFalse(isSecure(object()))


class ImplicitTLSEndpointTests(SynchronousTestCase):
    """
    Parsing of implicit-TLS descriptions, checked on a memory reactor.
    """

    def setUp(self) -> None:
        _, server = sharedPKI()
        self.serverTLS = ServerTLS(server.certificate, server.key)
        self.reactor = MemoryReactorClock()

    def listened(self, description: str) -> tuple[Any, ...]:
        """
        Listen on C{description}; return the memory reactor's record (port, factory,
        backlog, interface).
        """
        wrapped = Factory()
        implicitTLSEndpoint(self.reactor, description, self.serverTLS).listen(wrapped)
        (record,) = self.reactor.tcpServers
        factory = record[1]
        self.assertIsInstance(factory, TLSMemoryBIOFactory)
        self.assertIs(cast(TLSMemoryBIOFactory, factory).wrappedFactory, wrapped)
        return cast(tuple[Any, ...], record)

    def test_port(self) -> None:
        """
        C{ssl:995} listens on port 995 on all interfaces with Twisted's default backlog.
        """
        port, _, backlog, interface = self.listened("ssl:995")
        self.assertEqual((port, backlog, interface), (995, 50, ""))

    def test_interface(self) -> None:
        """
        C{ssl:0:interface=127.0.0.1} listens on an ephemeral loopback port.
        """
        port, _, _, interface = self.listened("ssl:0:interface=127.0.0.1")
        self.assertEqual((port, interface), (0, "127.0.0.1"))

    def test_keywordsAndEscapes(self) -> None:
        """
        The port may be given as C{port=}, with a backlog and an escaped IPv6 interface.
        """
        port, _, backlog, interface = self.listened(r"ssl:port=995:backlog=10:interface=\:\:1")
        self.assertEqual((port, backlog, interface), (995, 10, "::1"))

    def test_otherCertificateRefused(self) -> None:
        """
        C{privateKey=} and C{certKey=} naming other files than the L{ServerTLS}'s are
        refused: one certificate serves every listener.
        """
        for description in ("ssl:995:privateKey=server.pem", "ssl:995:certKey=cert.pem"):
            error = self.assertRaises(
                TLSConfigurationError,
                implicitTLSEndpoint,
                self.reactor,
                description,
                self.serverTLS,
            )
            self.assertIn("second certificate", str(error))

    def test_sameCertificateAccepted(self) -> None:
        """
        C{privateKey=} and C{certKey=} naming the L{ServerTLS}'s own files are accepted.
        """
        certificate, key = self.serverTLS.certificatePath, self.serverTLS.keyPath
        port, _, _, _ = self.listened(f"ssl:995:privateKey={key}:certKey={certificate}")
        self.assertEqual(port, 995)

    def test_badDescriptions(self) -> None:
        """
        Descriptions without exactly one valid port, with unknown options, with a bad
        backlog or of another type are refused.
        """
        for description in (
            "ssl",
            "ssl:abc",
            "ssl:70000",
            "ssl:-1",
            "ssl:995:996",
            "ssl:995:port=996",
            "ssl:995:backlog=0",
            "ssl:995:interface=a:interface=b",
            "ssl:995:sslmethod=TLSv1_METHOD",
            "ssl:995:reuse=yes",
            "tcp:995",
            "port=995",
            "",
        ):
            self.assertRaises(
                TLSConfigurationError,
                implicitTLSEndpoint,
                self.reactor,
                description,
                self.serverTLS,
            )
        self.assertEqual(self.reactor.tcpServers, [])

    def test_isImplicitTLS(self) -> None:
        """
        Only descriptions of the C{ssl} type are implicit TLS.
        """
        self.assertTrue(isImplicitTLS("ssl:995"))
        self.assertTrue(isImplicitTLS("ssl:995:interface=127.0.0.1"))
        self.assertFalse(isImplicitTLS("tcp:110"))
        self.assertFalse(isImplicitTLS("sslx:995"))
        self.assertFalse(isImplicitTLS(r"unix:/run/ssl\:995"))
        self.assertFalse(isImplicitTLS("port=995"))
        self.assertFalse(isImplicitTLS(""))
        self.assertFalse(isImplicitTLS("tcp:110:interface=a:interface=b"))


class ImplicitTLSListenTests(LoopbackTestCase):
    """
    L{implicitTLSEndpoint} listening for real.
    """

    async def test_listenAndConnect(self) -> None:
        """
        A real listen on loopback speaks TLS first, with the L{ServerTLS}'s certificate.
        """
        port = await self.listen(self.serverTLS(), "ssl:0:interface=127.0.0.1:backlog=5")
        client = await self.connect(port, clientOptions(self.pki))
        self.assertEqual(_commonName(await client.handshake), "localhost")
        self.assertEqual(await client.exchange(b"995"), b"995")


class _RecordingServerTLS(ServerTLS):
    """
    A L{ServerTLS} whose reloads fire a L{Deferred}.
    """

    reloaded: Deferred[bool]

    def reload(self) -> bool:
        result = super().reload()
        self.reloaded.callback(result)
        return result


class TLSReloadServiceTests(TestCase):
    """
    L{TLSReloadService} reloads on SIGHUP while running, sharing the signal politely.
    """

    def setUp(self) -> None:
        _, server = sharedPKI()
        self.serverTLS = _RecordingServerTLS(server.certificate, server.key)
        self.serverTLS.reloaded = Deferred()
        # A harmless handler of our own, so that a broken service cannot let SIGHUP
        # terminate the test run; it also shows chaining.
        self.previousCalls: list[int] = []
        original = signal.signal(signal.SIGHUP, self.previousHandler)
        self.addCleanup(signal.signal, signal.SIGHUP, original)

    def previousHandler(self, number: int, frame: FrameType | None) -> None:
        self.previousCalls.append(number)

    def startedService(self) -> TLSReloadService:
        service = TLSReloadService(self.serverTLS, reactor)
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        return service

    async def test_sighupReloads(self) -> None:
        """
        SIGHUP while the service runs reloads the certificate in the reactor thread, and
        the previous handler is still called.
        """
        self.startedService()
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertTrue(await self.serverTLS.reloaded)
        self.assertEqual(self.previousCalls, [signal.SIGHUP])

    def test_restoredOnStop(self) -> None:
        """
        The handler SIGHUP had before L{TLSReloadService.startService} is back after
        L{TLSReloadService.stopService}.
        """
        service = self.startedService()
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), self.previousHandler)
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), self.previousHandler)

    def test_defaultRestored(self) -> None:
        """
        With no Python handler before, the default disposition is restored.
        """
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        service = self.startedService()
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), signal.SIG_DFL)

    def test_laterHandlerLeftAlone(self) -> None:
        """
        If something else replaced the service's handler, stopping the service leaves
        that handler in place.
        """
        service = self.startedService()

        def later(number: int, frame: FrameType | None) -> None:
            pass

        signal.signal(signal.SIGHUP, later)
        service.stopService()
        self.assertIs(signal.getsignal(signal.SIGHUP), later)

    async def test_noReloadAfterStop(self) -> None:
        """
        After the service stopped, SIGHUP does not reload any more, even through a later
        handler that still chains to the service's.
        """
        service = self.startedService()
        installed = signal.getsignal(signal.SIGHUP)
        assert callable(installed)

        def later(number: int, frame: FrameType | None) -> None:
            installed(number, frame)

        signal.signal(signal.SIGHUP, later)
        service.stopService()
        os.kill(os.getpid(), signal.SIGHUP)
        await _spin()
        self.assertFalse(self.serverTLS.reloaded.called)
        self.assertEqual(self.previousCalls, [signal.SIGHUP])


async def _spin() -> None:
    """
    Let the reactor run a few iterations.
    """
    from twisted.internet.task import deferLater

    for _ in range(3):
        await deferLater(reactor, 0.01, lambda: None)


class ConstantsTests(SynchronousTestCase):
    """
    Module constants.
    """

    def test_handshakeTimeout(self) -> None:
        """
        The handshake timeout is 30 seconds.
        """
        self.assertEqual(HANDSHAKE_TIMEOUT, 30.0)
