"""
Tests for TLS in L{pop3kit.server} over real loopback connections: STLS (RFC 2595),
implicit TLS (RFC 8314), the cleartext policy before and after TLS, SASL EXTERNAL with a
client certificate, and the TLS handshake timeout.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.interfaces import IReactorTCP, ITLSTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import TestCase

from pop3kit.tls import ServerTLS
from tests._pki import sharedPKI
from tests.test_server_loopback import LoopbackServer, POP3TestClient, sleep
from tests.test_tls import clientOptions

reactor: IReactorTCP = _reactor  # type: ignore[assignment]

MESSAGE = b"Subject: tls\r\n\r\nover TLS\r\n"


def serverTLS(clientCA: bool = False) -> ServerTLS:
    """
    The shared test certificate for C{localhost}, optionally requesting client
    certificates from the test authority.
    """
    pki, server = sharedPKI()
    return ServerTLS(
        server.certificate, server.key, clientCAPath=pki.ca.certificate if clientCA else None
    )


async def startTLS(client: POP3TestClient, **clientCertificate: object) -> list[bytes]:
    """
    Start the client side of TLS after the server answered STLS, wait until the
    handshake is done, and return the answer to a first CAPA over TLS.
    """
    pki, _ = sharedPKI()
    transport = client.transport
    assert ITLSTransport.providedBy(transport)
    transport.startTLS(clientOptions(pki, **clientCertificate))  # type: ignore[arg-type]
    # A round trip proves the handshake completed: CAPA over TLS.
    return await client.command(b"CAPA")


def capa(response: list[bytes]) -> list[bytes]:
    """
    The capability lines of a CAPA response.
    """
    return response[1:]


class STLSTests(TestCase):
    """
    STLS upgrades a cleartext session, and nothing sent or learnt before survives it.
    """

    def setUp(self) -> None:
        self.server = LoopbackServer(
            self, [MESSAGE], tls=serverTLS(), allowCleartext="never", handshakeTimeout=5.0
        )
        self.server.start()

    async def test_capabilitiesBeforeAndAfter(self) -> None:
        """
        Before TLS, CAPA offers STLS and no password login; after it, USER and PLAIN and
        no STLS.
        """
        client = await self.server.connect()
        before = capa(await client.command(b"CAPA"))
        self.assertIn(b"STLS", before)
        self.assertNotIn(b"USER", before)
        self.assertEqual(await client.command(b"STLS"), [b"+OK begin TLS negotiation"])
        await startTLS(client)
        after = capa(await client.command(b"CAPA"))
        self.assertNotIn(b"STLS", after)
        self.assertIn(b"USER", after)
        self.assertIn(b"SASL PLAIN LOGIN", after)

    async def test_loginOverTLS(self) -> None:
        """
        USER/PASS is refused before TLS and works after it.
        """
        client = await self.server.connect()
        [refused] = await client.command(b"USER alice")
        self.assertTrue(refused.startswith(b"-ERR [AUTH] "), refused)
        await client.command(b"STLS")
        await startTLS(client)
        [answer] = await client.login()
        self.assertTrue(answer.startswith(b"+OK maildrop has 1 messages"), answer)
        self.assertEqual(await client.command(b"STAT"), [b"+OK 1 %d" % len(MESSAGE)])

    async def test_injectedCommandsDiscarded(self) -> None:
        """
        Commands written in the clear right behind STLS are never answered, inside or
        outside TLS (the STARTTLS command-injection class).
        """
        client = await self.server.connect()
        responses = client.expect(b"STLS")
        client.transport.write(b"STLS\r\nCAPA\r\nUSER alice\r\n")  # type: ignore[union-attr]
        self.assertEqual(await responses, [[b"+OK begin TLS negotiation"]])
        self.assertIn(b"USER", await startTLS(client))
        self.assertEqual(await client.command(b"NOOP"), [b"-ERR command not valid in this state"])
        self.assertEqual(await client.command(b"USER bob"), [b"+OK send PASS"])
        self.assertEqual(client.unexpected, [])

    async def test_userBeforeSTLSForgotten(self) -> None:
        """
        A USER given before STLS does not let PASS complete after it.
        """
        self.server.factory.allowCleartext = "always"
        client = await self.server.connect()
        self.assertEqual(await client.command(b"USER alice"), [b"+OK send PASS"])
        await client.command(b"STLS")
        await startTLS(client)
        [answer] = await client.command(b"PASS secret")
        self.assertEqual(answer, b"-ERR PASS must follow USER")

    async def test_secondSTLS(self) -> None:
        """
        STLS inside TLS gets C{-ERR}.
        """
        client = await self.server.connect()
        await client.command(b"STLS")
        await startTLS(client)
        self.assertEqual(await client.command(b"STLS"), [b"-ERR TLS is already active"])

    async def test_handshakeTimeout(self) -> None:
        """
        A client that sends STLS and never starts the handshake is disconnected, by the
        server, once the handshake timeout has passed and not before.
        """
        self.server.factory.handshakeTimeout = 0.2
        client = await self.server.connect()
        started = time.monotonic()
        self.assertEqual(await client.command(b"STLS"), [b"+OK begin TLS negotiation"])
        await self.server.latestServer().lost
        elapsed = time.monotonic() - started
        await client.closed
        self.assertGreaterEqual(elapsed, 0.2)
        self.assertLess(elapsed, 10)
        self.assertEqual(client.unexpected, [])


class ImplicitTLSTests(TestCase):
    """
    A listener wrapped in TLS from the first byte (RFC 8314, port 995).
    """

    async def connect(self, **options: Any) -> tuple[LoopbackServer, POP3TestClient]:
        """
        Listen with implicit TLS and connect a client through it.
        """
        tls = serverTLS(clientCA=bool(options.pop("clientCA", False)))
        clientCertificate = options.pop("client", None)
        server = LoopbackServer(self, [MESSAGE], tls=tls, allowCleartext="never", **options)
        port = reactor.listenTCP(
            0,
            TLSMemoryBIOFactory(tls.contextFactory(), False, server.factory),  # type: ignore[arg-type]
            interface="127.0.0.1",
        )
        self.addCleanup(server.stop)
        self.addCleanup(port.stopListening)
        pki, _ = sharedPKI()
        endpoint = wrapClientTLS(
            clientOptions(pki, clientCertificate),  # type: ignore[arg-type]
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),  # type: ignore[attr-defined]
        )
        client = await connectProtocol(endpoint, POP3TestClient())
        self.addCleanup(client.abort)
        await client.greeting
        return server, client

    async def test_secureFromTheStart(self) -> None:
        """
        CAPA offers password logins and no STLS; USER/PASS works; STLS is refused.
        """
        _, client = await self.connect()
        lines = capa(await client.command(b"CAPA"))
        self.assertNotIn(b"STLS", lines)
        self.assertIn(b"USER", lines)
        self.assertEqual(await client.command(b"STLS"), [b"-ERR TLS is already active"])
        [answer] = await client.login()
        self.assertTrue(answer.startswith(b"+OK "), answer)

    async def test_external(self) -> None:
        """
        With a client certificate from the trusted authority, AUTH EXTERNAL logs in as
        the certificate's user.
        """
        pki, _ = sharedPKI()
        certificate = pki.issue("alice", client=True, hostnames=(), addresses=())
        _, client = await self.connect(clientCA=True, client=certificate)
        lines = capa(await client.command(b"CAPA"))
        self.assertIn(b"SASL PLAIN LOGIN EXTERNAL", lines)
        [answer] = await client.command(b"AUTH EXTERNAL =")
        self.assertTrue(answer.startswith(b"+OK maildrop has 1 messages"), answer)

    async def test_externalWithoutCertificate(self) -> None:
        """
        Without a client certificate, AUTH EXTERNAL fails with C{[AUTH]}.
        """
        _, client = await self.connect(clientCA=True)
        [answer] = await client.command(b"AUTH EXTERNAL " + base64.b64encode(b"alice"))
        self.assertTrue(answer.startswith(b"-ERR [AUTH] "), answer)

    async def test_handshakeTimeout(self) -> None:
        """
        A client that connects to the TLS port and never says hello is disconnected.
        """
        tls = serverTLS()
        server = LoopbackServer(self, [], tls=tls, handshakeTimeout=1.0)
        port = reactor.listenTCP(
            0,
            TLSMemoryBIOFactory(tls.contextFactory(), False, server.factory),  # type: ignore[arg-type]
            interface="127.0.0.1",
        )
        self.addCleanup(port.stopListening)
        self.addCleanup(server.stop)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)  # type: ignore[attr-defined]
        client = await connectProtocol(endpoint, POP3TestClient())
        self.addCleanup(client.abort)
        # No greeting can come through a TLS layer that never starts.
        client.greeting.addErrback(lambda _: None)
        closed: Deferred[None] = client.closed
        await sleep(0.1)
        self.assertFalse(closed.called)
        await closed
