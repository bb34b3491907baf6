"""
Tests for L{pop3kit.client} over real loopback TCP: sessions with pop3kit's own server
(clear text and implicit TLS), and STLS with a small fake server that speaks real TLS,
with certificates from L{tests._pki}.
"""

from __future__ import annotations

import io
import os
from typing import Any, cast

from twisted.cred.checkers import ICredentialsChecker, InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Factory, connectionDone
from twisted.internet.ssl import CertificateOptions, PrivateCertificate
from twisted.protocols.basic import LineReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from pop3kit.backends.memory import MemoryMailbox, MemoryRealm
from pop3kit.client import (
    MECHANISMS,
    ClientState,
    POP3Client,
    ServerError,
    TLSFailed,
    TLSUnavailable,
    connect,
)
from pop3kit.errors import ResponseCode
from pop3kit.interfaces import ISCRAMKeySource
from pop3kit.sasl import SCRAMKeys
from tests._oracle import crlfForm
from tests._pki import PKI, Issued, sharedPKI
from tests.test_server_loopback import TrackingFactory, dotLines

#: The global reactor, which trial runs; typed loosely, it provides many interfaces.
reactor = cast(Any, _reactor)

MESSAGES = [
    b"From: bob@example.com\nSubject: one\n\nHello\n.\n..\n.leading\n",
    b"Subject: two\r\n\r\nsecond message\r\n",
    b"Subject: three\n\nno final newline",
]


def serverOptions(issued: Issued) -> CertificateOptions:
    """
    Server TLS options for the certificate and key in C{issued}.
    """
    with open(issued.certificate, "rb") as f, open(issued.key, "rb") as k:
        pem = f.read() + k.read()
    return PrivateCertificate.loadPEM(pem).options()  # type: ignore[no-any-return]


class LoopbackMixin:
    """
    Start servers on 127.0.0.1 and close every connection at the end of the test.
    """

    def pop3kitServer(
        self,
        messages: list[bytes] | None = None,
        checker: ICredentialsChecker | None = None,
        **kwargs: Any,
    ) -> TrackingFactory:
        """
        A pop3kit server factory with user C{alice}, password C{secret}; C{kwargs} go to
        L{pop3kit.server.POP3ServerFactory}.
        """
        self.mailbox = MemoryMailbox(MESSAGES if messages is None else messages)
        realm = MemoryRealm({"alice": self.mailbox})
        if checker is None:
            checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        factory = TrackingFactory(
            Portal(realm, [checker]), clock=reactor, failedLoginDelay=0, **kwargs
        )
        cast(TestCase, self).addCleanup(self._closeServers, factory)
        return factory

    async def _closeServers(self, factory: TrackingFactory) -> None:
        for server in factory.servers:
            if server.transport is not None and not server.lost.called:
                server.transport.abortConnection()  # type: ignore[attr-defined]
        await gatherResults([server.lost for server in factory.servers])

    def listen(self, factory: Any) -> int:
        """
        Listen on a free loopback port; return it.
        """
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        cast(TestCase, self).addCleanup(port.stopListening)
        return int(port.getHost().port)

    def track(self, client: POP3Client) -> POP3Client:
        """
        Abort C{client} at the end of the test, and wait until it is closed.
        """

        def close() -> Deferred[None]:
            client.abort()
            return client.whenClosed()

        cast(TestCase, self).addCleanup(close)
        return client


class Pop3kitServerTests(LoopbackMixin, TestCase):
    """
    Sessions with pop3kit's server, in clear text.
    """

    async def test_session(self) -> None:
        """
        Login, listings, RETR of every message, TOP, DELE and QUIT; the deletion is
        committed and seen by the next session.
        """
        port = self.listen(self.pop3kitServer())
        client = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        capabilities = await client.capabilities()
        self.assertIn("PIPELINING", capabilities)
        self.assertEqual(
            await client.login("alice", "secret"), (3, sum(len(crlfForm(m)) for m in MESSAGES))
        )
        sizes = await client.listSizes()
        uids = await client.listUids()
        self.assertEqual(sorted(sizes), [1, 2, 3])
        self.assertEqual(sorted(uids), [1, 2, 3])
        for number, message in enumerate(MESSAGES, 1):
            body = await client.retrieve(number)
            self.assertEqual(body, crlfForm(message))
            self.assertEqual(len(body), sizes[number])
            self.assertEqual(await client.listSize(number), sizes[number])
            self.assertEqual(await client.listUid(number), uids[number])
        self.assertEqual(await client.top(1, 0), b"From: bob@example.com\r\nSubject: one\r\n\r\n")
        await client.delete(2)
        assert client.maildrop is not None
        self.assertEqual(client.maildrop.deleted, {2})
        self.assertEqual(await client.stat(), (2, sizes[1] + sizes[3]))
        await client.noop()
        await client.quit()
        self.assertIs(client.state, ClientState.CLOSED)

        again = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        self.assertEqual((await again.login("alice", "secret"))[0], 2)
        self.assertNotIn(uids[2], (await again.listUids()).values())
        await again.quit()

    async def test_resetUndoesDelete(self) -> None:
        """
        RSET before QUIT keeps every message.
        """
        port = self.listen(self.pop3kitServer())
        client = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        await client.login("alice", "secret")
        await client.delete(1)
        await client.reset()
        await client.quit()
        self.assertEqual(len(self.mailbox.messages), 3)

    async def test_droppedSessionDeletesNothing(self) -> None:
        """
        Aborting instead of QUIT deletes nothing.
        """
        port = self.listen(self.pop3kitServer())
        client = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        await client.login("alice", "secret")
        await client.delete(1)
        client.abort()
        await client.whenClosed()
        again = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        self.assertEqual((await again.login("alice", "secret"))[0], 3)
        await again.quit()

    async def test_utf8(self) -> None:
        """
        pop3kit's server announces UTF8, and UTF8 mode works with it.
        """
        port = self.listen(self.pop3kitServer())
        client = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        self.assertIn("UTF8", await client.capabilities())
        await client.enableUTF8()
        self.assertTrue(client.utf8)
        self.assertEqual((await client.login("alice", "secret"))[0], 3)
        await client.quit()

    async def test_wrongPassword(self) -> None:
        """
        A wrong password fails with L{ServerError} carrying C{[AUTH]}; a second attempt
        on the same connection works.
        """
        port = self.listen(self.pop3kitServer())
        client = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        try:
            await client.login("alice", "wrong")
        except ServerError as e:
            self.assertIs(e.code, ResponseCode.AUTH)
        else:
            self.fail("the login succeeded")
        self.assertEqual((await client.login("alice", "secret"))[0], 3)
        await client.quit()

    async def test_pipelinedRetrieves(self) -> None:
        """
        Many RETRs asked for at once (pipelined) each get their own message.
        """
        messages = [dotLines(seed, 20000 + seed * 997) for seed in range(30)]
        port = self.listen(self.pop3kitServer(messages))
        client = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        await client.login("alice", "secret")
        bodies = await gatherResults([client.retrieve(n) for n in range(1, 31)])
        self.assertEqual(bodies, [crlfForm(m) for m in messages])
        await client.quit()

    async def test_largeMessageStreamed(self) -> None:
        """
        A message of several megabytes full of dot lines streams into a file intact.
        """
        message = dotLines(7, 3_000_000)
        port = self.listen(self.pop3kitServer([message]))
        client = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        await client.login("alice", "secret")
        f = io.BytesIO()
        octets = await client.retrieve(1, f)
        self.assertEqual(f.getvalue(), crlfForm(message))
        self.assertEqual(octets, len(crlfForm(message)))
        await client.quit()

    async def test_requiredSTLSNotOffered(self) -> None:
        """
        With STLS required and a server that does not offer it, connecting fails with
        L{TLSUnavailable} and no credentials are ever sent.
        """
        factory = self.pop3kitServer()
        port = self.listen(factory)
        pki, _ = sharedPKI()
        with self.assertRaises(TLSUnavailable):
            await connect(reactor, "127.0.0.1", port, cafile=pki.ca.certificate)
        await gatherResults([server.lost for server in factory.servers])
        self.assertEqual(len(self.mailbox.messages), 3)
        self.assertIsNone(factory.servers[0]._connection.pendingUser)  # type: ignore[union-attr]

    async def test_opportunisticSTLS(self) -> None:
        """
        With C{starttls-if-offered}, a server without STLS is used in clear text.
        """
        port = self.listen(self.pop3kitServer())
        client = self.track(await connect(reactor, "127.0.0.1", port, tls="starttls-if-offered"))
        self.assertFalse(client.isSecure)
        self.assertEqual((await client.login("alice", "secret"))[0], 3)
        await client.quit()


class StaticTLS:
    """
    The TLS configuration pop3kit's server asks for: one certificate, no client CA.
    """

    clientCAPath = None

    def __init__(self, issued: Issued) -> None:
        self._options = serverOptions(issued)

    def contextFactory(self) -> CertificateOptions:
        return self._options


@implementer(ICredentialsChecker, ISCRAMKeySource)
class SCRAMChecker:
    """
    A checker for C{alice}/C{secret} that also hands out her SCRAM keys.
    """

    credentialInterfaces = (IUsernamePassword,)

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[bytes | tuple[()]]:
        if credentials.username == b"alice" and credentials.checkPassword(b"secret"):
            return succeed(b"alice")
        return fail(UnauthorizedLogin())

    def scramKeys(self, username: str, mechanism: str) -> Deferred[SCRAMKeys | None]:
        if username != "alice":
            return succeed(None)
        return succeed(SCRAMKeys.fromPassword("secret", mechanism))


class Pop3kitSTLSAndSASLTests(LoopbackMixin, TestCase):
    """
    STLS and SASL with pop3kit's own server.
    """

    async def test_stls(self) -> None:
        """
        The server offers STLS; required STLS is negotiated and verified; the
        capabilities after the handshake no longer offer STLS; the best login method works
        inside TLS.
        """
        pki, issued = sharedPKI()
        port = self.listen(self.pop3kitServer(tls=StaticTLS(issued), allowCleartext="never"))
        probe = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        self.assertIn("STLS", await probe.capabilities())
        await probe.quit()
        client = self.track(
            await connect(
                reactor, "127.0.0.1", port, cafile=pki.ca.certificate, hostname="localhost"
            )
        )
        self.assertTrue(client.isSecure)
        capabilities = await client.capabilities()
        self.assertNotIn("STLS", capabilities)
        self.assertIn("USER", capabilities)
        self.assertEqual((await client.login("alice", "secret"))[0], 3)
        await client.quit()

    async def test_mechanisms(self) -> None:
        """
        Every login method the server offers logs in, and a wrong password fails with
        C{[AUTH]} for each.
        """
        port = self.listen(self.pop3kitServer(checker=SCRAMChecker()))
        probe = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        offered = [name.lower() for name in (await probe.capabilities()).get("SASL", [])]
        await probe.quit()
        self.assertIn("scram-sha-256", offered)
        for mechanism in ["user", *offered]:
            if mechanism not in MECHANISMS:
                continue
            client = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
            try:
                await client.login("alice", "wrong", mechanism=mechanism)
            except ServerError as e:
                self.assertIs(e.code, ResponseCode.AUTH, mechanism)
            else:
                self.fail(f"{mechanism} accepted a wrong password")
            count, _ = await client.login("alice", "secret", mechanism=mechanism)
            self.assertEqual(count, 3, mechanism)
            await client.quit()

    async def test_bestIsSCRAM(self) -> None:
        """
        With no mechanism named, SCRAM-SHA-256 is chosen and the server proves itself.
        """
        port = self.listen(self.pop3kitServer(checker=SCRAMChecker()))
        client = self.track(
            await connect(reactor, "127.0.0.1", port, tls="none", allowCleartextLogin=False)
        )
        self.assertIn("SCRAM-SHA-256", (await client.capabilities()).get("SASL", []))
        self.assertEqual((await client.login("alice", "secret"))[0], 3)
        await client.quit()


class ImplicitTLSTests(LoopbackMixin, TestCase):
    """
    Implicit TLS (RFC 8314) to pop3kit's server, with certificate verification.
    """

    def tlsServer(self) -> tuple[int, PKI]:
        """
        pop3kit's server behind TLS with the C{localhost} certificate.
        """
        pki, issued = sharedPKI()
        factory = TLSMemoryBIOFactory(serverOptions(issued), False, self.pop3kitServer())
        return self.listen(factory), pki

    async def test_verified(self) -> None:
        """
        The certificate verifies for the IP address and for C{localhost}; the session is
        secure and USER/PASS is allowed in it.
        """
        port, pki = self.tlsServer()
        for name in ("127.0.0.1", "localhost"):
            client = self.track(
                await connect(
                    reactor,
                    "127.0.0.1",
                    port,
                    tls="implicit",
                    cafile=pki.ca.certificate,
                    hostname=name,
                )
            )
            self.assertTrue(client.isSecure)
            self.assertFalse(client.allowCleartextLogin)
            self.assertEqual((await client.login("alice", "secret"))[0], 3)
            await client.quit()

    async def test_wrongHostname(self) -> None:
        """
        A certificate that is not valid for the host name fails with L{TLSFailed}.
        """
        port, pki = self.tlsServer()
        with self.assertRaises(TLSFailed):
            await connect(
                reactor,
                "127.0.0.1",
                port,
                tls="implicit",
                cafile=pki.ca.certificate,
                hostname="mail.example.org",
            )

    async def test_unknownAuthority(self) -> None:
        """
        A certificate from an authority the client does not trust fails with
        L{TLSFailed}.
        """
        port, _ = self.tlsServer()
        other = PKI(os.path.abspath("other-pki"), "another CA")
        with self.assertRaises(TLSFailed):
            await connect(reactor, "127.0.0.1", port, tls="implicit", cafile=other.ca.certificate)


class FakeSTLSServer(LineReceiver):
    """
    A minimal POP3 server with STLS over real TLS, which misbehaves on request.

    @ivar received: Every line received, with C{(tls)} after the handshake.
    @ivar smuggled: Octets the client sent after STLS, before the handshake.
    """

    delimiter = b"\r\n"

    def __init__(self, factory: FakeSTLSFactory) -> None:
        self.factory = factory
        self.received: list[bytes] = []
        self.smuggled = b""
        self.secure = False
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.sendLine(b"+OK fake POP3")

    def lineReceived(self, line: bytes) -> None:
        self.received.append(line + (b" (tls)" if self.secure else b""))
        keyword = line.split(b" ")[0].upper()
        if keyword == b"CAPA":
            capabilities = b"USER\r\n" if self.secure else b"USER\r\nSTLS\r\n"
            self.transport.write(b"+OK\r\n" + capabilities + b".\r\n")  # type: ignore[union-attr]
        elif keyword == b"STLS" and not self.secure:
            self.transport.write(b"+OK begin TLS\r\n" + self.factory.inject)  # type: ignore[union-attr]
            # Whatever is left in the line buffer arrived in clear text after STLS.
            self.smuggled = self._buffer
            self.clearLineBuffer()
            self.secure = True
            self.transport.startTLS(self.factory.options)  # type: ignore[union-attr]
        elif keyword in (b"USER", b"PASS", b"NOOP"):
            self.sendLine(b"+OK")
        elif keyword == b"STAT":
            self.sendLine(b"+OK 0 0")
        elif keyword == b"QUIT":
            self.sendLine(b"+OK bye")
            self.transport.loseConnection()  # type: ignore[union-attr]
        else:
            self.sendLine(b"-ERR unknown")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


class FakeSTLSFactory(Factory):
    """
    Builds L{FakeSTLSServer}s and keeps them.
    """

    def __init__(self, options: CertificateOptions, inject: bytes = b"") -> None:
        self.options = options
        self.inject = inject
        self.servers: list[FakeSTLSServer] = []

    def buildProtocol(self, addr: object) -> FakeSTLSServer:
        server = FakeSTLSServer(self)
        self.servers.append(server)
        return server


class STLSTests(LoopbackMixin, TestCase):
    """
    STLS (RFC 2595) over real TLS.
    """

    def fakeServer(
        self, inject: bytes = b"", issued: Issued | None = None
    ) -> tuple[int, FakeSTLSFactory]:
        if issued is None:
            issued = sharedPKI()[1]
        factory = FakeSTLSFactory(serverOptions(issued), inject)
        port = self.listen(factory)

        async def close() -> None:
            for server in factory.servers:
                if not server.lost.called:
                    server.transport.abortConnection()  # type: ignore[union-attr]
            await gatherResults([server.lost for server in factory.servers])

        self.addCleanup(close)
        return port, factory

    async def test_stls(self) -> None:
        """
        STLS is negotiated, plaintext the server injected after its C{+OK} is discarded,
        the client sent nothing between STLS and the handshake, and the capabilities
        were asked for again inside TLS.
        """
        port, factory = self.fakeServer(inject=b"+OK injected before TLS\r\n")
        pki, _ = sharedPKI()
        client = self.track(
            await connect(
                reactor, "127.0.0.1", port, cafile=pki.ca.certificate, hostname="localhost"
            )
        )
        self.assertTrue(client.isSecure)
        self.assertEqual(await client.capabilities(), {"USER": []})
        self.assertEqual(await client.login("alice", "secret"), (0, 0))
        await client.quit()
        [server] = factory.servers
        self.assertEqual(server.smuggled, b"")
        self.assertEqual(
            server.received,
            [
                b"CAPA",
                b"STLS",
                b"CAPA (tls)",
                b"USER alice (tls)",
                b"PASS secret (tls)",
                b"STAT (tls)",
                b"QUIT (tls)",
            ],
        )

    async def test_wrongCertificate(self) -> None:
        """
        A certificate that does not verify after STLS fails with L{TLSFailed} before any
        credentials are sent.
        """
        pki, _ = sharedPKI()
        port, factory = self.fakeServer(
            issued=pki.issue("elsewhere", hostnames=("elsewhere.example",), addresses=())
        )
        with self.assertRaises(TLSFailed):
            await connect(reactor, "127.0.0.1", port, cafile=pki.ca.certificate)
        self.assertEqual(factory.servers[0].received, [b"CAPA", b"STLS"])


class DroppingServer(LineReceiver):
    """
    A server that closes the connection in the middle of the answer to RETR.
    """

    delimiter = b"\r\n"

    def connectionMade(self) -> None:
        self.sendLine(b"+OK dropping server")

    def lineReceived(self, line: bytes) -> None:
        if line.startswith(b"RETR"):
            self.transport.write(b"+OK\r\npartial line\r\nmore")  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]
        elif line == b"CAPA":
            self.sendLine(b"-ERR no CAPA here")
        else:
            self.sendLine(b"+OK")


class DroppedConnectionTests(LoopbackMixin, TestCase):
    """
    A server that goes away in the middle of a response.
    """

    async def test_midResponse(self) -> None:
        """
        The half-received RETR and the command queued behind it both fail with
        L{ConnectionLost}.
        """
        port = self.listen(Factory.forProtocol(DroppingServer))
        client = self.track(await connect(reactor, "127.0.0.1", port, tls="none"))
        self.assertEqual(await client.capabilities(), {})
        f = io.BytesIO()
        retrieved, stat = client.retrieve(1, f), client.stat()
        for d in (retrieved, stat):
            with self.assertRaises(ConnectionLost):
                await d
        self.assertIs(client.state, ClientState.CLOSED)
