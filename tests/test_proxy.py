"""
Tests for L{pop3kit.proxy}: a session behind a PROXY-protocol listener starts only once the
header is read, and sees the client's address from it for its cleartext policy,
failed-login penalties, per-address caps and logs.
"""

from __future__ import annotations

import os
import socket
import struct

from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.haproxy._wrapper import HAProxyWrappingFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit.proxy import (
    HEADER_TIMEOUT,
    ProxyHeaderFactory,
    isProxied,
    proxyEndpoint,
    proxyEndpointFromString,
)
from pop3kit.server import POP3Server
from tests.test_server_auth import Harness

_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1Header(source: str, sourcePort: int = 51000, destination: str = "192.0.2.1") -> bytes:
    """
    A PROXY protocol version 1 header for a TCP over IPv4 (or IPv6) connection.
    """
    family = "TCP6" if ":" in source else "TCP4"
    if family == "TCP6":
        destination = "2001:db8::1"
    return f"PROXY {family} {source} {destination} {sourcePort} 110\r\n".encode("ascii")


def v2Header(source: str, sourcePort: int = 51000, destination: str = "192.0.2.1") -> bytes:
    """
    A PROXY protocol version 2 header (command PROXY) for a TCP connection, with one TLV
    after the addresses, as HAProxy may send.
    """
    if ":" in source:
        family, packed = 0x21, socket.AF_INET6
        destination = "2001:db8::1"
    else:
        family, packed = 0x11, socket.AF_INET
    addresses = (
        socket.inet_pton(packed, source)
        + socket.inet_pton(packed, destination)
        + struct.pack("!HH", sourcePort, 110)
    )
    tlv = b"\x04\x00\x02ok"  # PP2_TYPE_NOOP
    body = addresses + tlv
    return _V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def v2Local() -> bytes:
    """
    A version 2 header of the LOCAL command (a health check of the proxy's own).
    """
    return _V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)


class ProxiedConnection:
    """
    One connection from a proxy at 127.0.0.1 to a PROXY-protocol listener of a
    L{Harness}'s factory, on a L{StringTransport}.
    """

    def __init__(self, harness: Harness, clock: IReactorTime) -> None:
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        self.factory = ProxyHeaderFactory(harness.factory, clock)
        wrapper = self.factory.buildProtocol(self.transport.getPeer())
        assert wrapper is not None
        self.wrapper = wrapper
        wrapper.makeConnection(self.transport)

    @property
    def session(self) -> POP3Server:
        """
        The POP3 session inside the wrapper.
        """
        protocol = self.wrapper.wrappedProtocol
        assert isinstance(protocol, POP3Server)
        return protocol

    def send(self, data: bytes) -> bytes:
        """
        Send C{data} and return what the server wrote meanwhile.
        """
        self.wrapper.dataReceived(data)
        return self.read()

    def read(self) -> bytes:
        """
        What the server wrote since the last read.
        """
        out = bytes(self.transport.value())
        self.transport.clear()
        return out

    @property
    def dropped(self) -> bool:
        """
        Whether the server closed the connection.
        """
        return bool(self.transport.disconnecting)


class RecordingHistory:
    """
    The in-process login history, noting which clients failed.
    """

    def __init__(self, harness: Harness) -> None:
        self.failed: list[str] = []
        history = harness.factory.loginHistory
        recordFailure = history.recordFailure

        def record(client: str) -> Deferred[int]:
            self.failed.append(client)
            return recordFailure(client)

        history.recordFailure = record  # type: ignore[method-assign]


class HeaderFirstTests(SynchronousTestCase):
    """
    Nothing happens before the header.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.harness = Harness(clock=self.clock)

    def test_noGreetingBeforeHeader(self) -> None:
        """
        The session is not connected, and sends nothing, until the header is complete;
        then it greets.
        """
        connection = ProxiedConnection(self.harness, self.clock)
        header = v2Header("203.0.113.9")
        self.assertEqual(connection.send(header[:20]), b"")
        self.assertIsNone(connection.session.transport)
        self.assertEqual(self.harness.factory.limiter.unauthenticated, 0)
        self.assertTrue(connection.send(header[20:]).startswith(b"+OK "))
        self.assertEqual(self.harness.factory.limiter.unauthenticated, 1)

    def test_headerOneOctetAtATime(self) -> None:
        """
        A header arriving one octet at a time, v1 or v2, is read whole.
        """
        for header in (v1Header("203.0.113.9"), v2Header("203.0.113.9")):
            connection = ProxiedConnection(self.harness, self.clock)
            for i in range(len(header) - 1):
                self.assertEqual(connection.send(header[i : i + 1]), b"", (header, i))
            self.assertFalse(connection.dropped)
            self.assertTrue(connection.send(header[-1:]).startswith(b"+OK "))
            self.assertEqual(connection.session.transport.getPeer().host, "203.0.113.9")  # type: ignore[union-attr]

    def test_commandsWithHeader(self) -> None:
        """
        Commands in the same segment as the header reach the session after its greeting.
        """
        connection = ProxiedConnection(self.harness, self.clock)
        out = connection.send(v1Header("127.0.0.1") + b"CAPA\r\n")
        greeting, capa = out.split(b"\r\n", 1)
        self.assertTrue(greeting.startswith(b"+OK "))
        self.assertTrue(capa.startswith(b"+OK"), capa)

    def test_noHeader(self) -> None:
        """
        A connection that starts with anything but a PROXY header is dropped, unanswered,
        and the session never hears of it.
        """
        for data in (b"USER alice\r\n", b"PROXYZ\r\n", b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x00"):
            connection = ProxiedConnection(self.harness, self.clock)
            self.assertEqual(connection.send(data), b"", data)
            self.assertTrue(connection.dropped, data)
            connection.wrapper.connectionLost(Failure(Exception("dropped")))
            self.assertIsNone(connection.session.transport)

    def test_invalidHeader(self) -> None:
        """
        A malformed header is dropped.
        """
        for data in (
            b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n",
            b"PROXY TCP4 2001:db8::1 127.0.0.1 1 2\r\n",
            b"PROXY " + b"x" * 120,
        ):
            connection = ProxiedConnection(self.harness, self.clock)
            self.assertEqual(connection.send(data), b"", data)
            self.assertTrue(connection.dropped, data)

    def test_headerTimeout(self) -> None:
        """
        A connection that sends no complete header within the timeout is dropped; the
        timer is gone once it is.
        """
        connection = ProxiedConnection(self.harness, self.clock)
        connection.send(b"PROXY TCP4")
        self.clock.advance(HEADER_TIMEOUT - 0.1)
        self.assertFalse(connection.dropped)
        self.clock.advance(0.1)
        self.assertTrue(connection.dropped)
        connection.wrapper.connectionLost(Failure(Exception("dropped")))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lostAfterHeader(self) -> None:
        """
        A session connected through the wrapper is told when the connection is lost.
        """
        connection = ProxiedConnection(self.harness, self.clock)
        connection.send(v2Header("203.0.113.9"))
        connection.wrapper.connectionLost(Failure(Exception("gone")))
        self.assertEqual(self.harness.factory.limiter.unauthenticated, 0)

    def test_twistedWrapperRefused(self) -> None:
        """
        A session over Twisted's own C{haproxy:} wrapper, which would greet before the
        header, closes the connection at once and greets nobody.
        """
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        wrapper = HAProxyWrappingFactory(self.harness.factory).buildProtocol(transport.getPeer())
        assert wrapper is not None
        wrapper.makeConnection(transport)
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        wrapper.connectionLost(Failure(Exception("closed")))
        self.assertEqual(len(self.flushLoggedErrors()), 0)


class ClientAddressTests(SynchronousTestCase):
    """
    The client's address from the header is the one the policy sees.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.harness = Harness(clock=self.clock)

    def test_cleartextRefusedFromRemoteClient(self) -> None:
        """
        Under the default policy (cleartext from loopback only), a remote client behind a
        proxy on loopback is not offered USER, and its USER is refused, v1 or v2.
        """
        for header in (v1Header("203.0.113.9"), v2Header("203.0.113.9")):
            connection = ProxiedConnection(self.harness, self.clock)
            connection.send(header)
            capa = connection.send(b"CAPA\r\n")
            self.assertNotIn(b"\r\nUSER\r\n", capa)
            self.assertTrue(connection.send(b"USER alice\r\n").startswith(b"-ERR "))

    def test_cleartextAllowedFromLocalClient(self) -> None:
        """
        A client on loopback (as the header says) may log in in the clear.
        """
        connection = ProxiedConnection(self.harness, self.clock)
        connection.send(v2Header("127.0.0.1"))
        self.assertIn(b"+OK maildrop", connection.send(b"USER alice\r\nPASS secret\r\n"))

    def test_ipv6Client(self) -> None:
        """
        An IPv6 client's address reaches the session.
        """
        for header in (v1Header("2001:db8::9"), v2Header("2001:db8::9")):
            connection = ProxiedConnection(self.harness, self.clock)
            connection.send(header)
            peer = connection.session.transport.getPeer()  # type: ignore[union-attr]
            self.assertIsInstance(peer, IPv6Address)
            self.assertEqual(peer.host, "2001:db8::9")  # type: ignore[attr-defined, union-attr]

    def test_ipv4MappedClient(self) -> None:
        """
        An IPv4-mapped IPv6 client is known by its IPv4 address, as a direct connection
        from it would be.
        """
        for header in (v1Header("::ffff:203.0.113.9"), v2Header("::ffff:203.0.113.9")):
            connection = ProxiedConnection(self.harness, self.clock)
            connection.send(header)
            peer = connection.session.transport.getPeer()  # type: ignore[union-attr]
            self.assertIsInstance(peer, IPv4Address)
            self.assertEqual(peer.host, "203.0.113.9")  # type: ignore[attr-defined, union-attr]

    def test_localCommandIsTheProxy(self) -> None:
        """
        A LOCAL header (the proxy's own health check) carries no client: the peer is the
        proxy.
        """
        connection = ProxiedConnection(self.harness, self.clock)
        self.assertTrue(connection.send(v2Local()).startswith(b"+OK "))
        self.assertEqual(connection.session.transport.getPeer().host, "127.0.0.1")  # type: ignore[union-attr]

    def test_penaltiesCountTheClient(self) -> None:
        """
        A failed login is counted against the client's address, not the proxy's.
        """
        harness = Harness(clock=self.clock, allowCleartext="always")
        history = RecordingHistory(harness)
        for header in (v1Header("203.0.113.9"), v2Header("198.51.100.7")):
            connection = ProxiedConnection(harness, self.clock)
            connection.send(header)
            self.assertIn(b"-ERR [AUTH]", connection.send(b"USER alice\r\nPASS wrong\r\n"))
        self.assertEqual(history.failed, ["203.0.113.9", "198.51.100.7"])

    def test_capsCountTheClient(self) -> None:
        """
        The per-address cap counts each client behind the proxy on its own: two clients
        at the cap of one each are both admitted.
        """
        harness = Harness(clock=self.clock, maxPerClient=1, loginGrace=0)
        first = ProxiedConnection(harness, self.clock)
        first.send(v1Header("203.0.113.9"))
        second = ProxiedConnection(harness, self.clock)
        second.send(v1Header("198.51.100.7"))
        self.assertFalse(first.dropped)
        self.assertFalse(second.dropped)
        self.assertEqual(harness.factory.limiter.perClient("203.0.113.9"), 1)
        self.assertEqual(harness.factory.limiter.perClient("127.0.0.1"), 0)
        third = ProxiedConnection(harness, self.clock)
        third.send(v1Header("203.0.113.9", sourcePort=51001))
        self.assertTrue(first.dropped)


class DescriptionTests(SynchronousTestCase):
    """
    C{haproxy:} listen descriptions.
    """

    def test_isProxied(self) -> None:
        """
        Descriptions starting with C{haproxy:} are proxied.
        """
        self.assertTrue(isProxied("haproxy:tcp:110"))
        self.assertFalse(isProxied("tcp:110"))

    def test_notProxied(self) -> None:
        """
        A description without the prefix is refused.
        """
        self.assertRaises(ValueError, proxyEndpointFromString, Clock(), "tcp:110")


class _Reader(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.lost: Deferred[bytes] = Deferred()
        self.waiting: list[tuple[bytes, Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        for want, d in list(self.waiting):
            if want in self.received:
                self.waiting.remove((want, d))
                d.callback(self.received)

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self.lost.callback(self.received)

    def until(self, want: bytes) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        if want in self.received:
            d.callback(self.received)
        else:
            self.waiting.append((want, d))
        return d


class LoopbackTests(TestCase):
    """
    A real PROXY-protocol listener on loopback.
    """

    async def _listen(self, harness: Harness) -> int:
        endpoint = proxyEndpoint(TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"), reactor)
        port: IListeningPort = await endpoint.listen(harness.factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port  # type: ignore[attr-defined, no-any-return]

    async def _connect(self, portNumber: int) -> _Reader:
        reader = _Reader()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", portNumber), reader)
        return reader

    async def test_v2ClientAddress(self) -> None:
        """
        Over TCP, a v2 header's client is the session's peer: USER is refused to a remote
        client behind a proxy on loopback, and a failed login counts against it.
        """
        harness = Harness(clock=reactor)
        portNumber = await self._listen(harness)
        reader = await self._connect(portNumber)
        assert reader.transport is not None
        reader.transport.write(v2Header("203.0.113.9"))
        await reader.until(b"\r\n")
        self.assertTrue(reader.received.startswith(b"+OK "))
        reader.transport.write(b"USER alice\r\n")
        await reader.until(b"-ERR")
        self.assertEqual(harness.factory.limiter.perClient("203.0.113.9"), 1)
        reader.transport.loseConnection()
        await reader.lost

    async def test_v1AndDrop(self) -> None:
        """
        Over TCP, a v1 header works, and a client speaking POP3 without a header is
        dropped without a greeting.
        """
        harness = Harness(clock=reactor)
        portNumber = await self._listen(harness)
        reader = await self._connect(portNumber)
        assert reader.transport is not None
        reader.transport.write(v1Header("127.0.0.1") + b"USER alice\r\nPASS secret\r\n")
        await reader.until(b"+OK maildrop")
        reader.transport.loseConnection()
        await reader.lost

        bare = await self._connect(portNumber)
        assert bare.transport is not None
        bare.transport.write(b"USER alice\r\n")
        self.assertEqual(await bare.lost, b"")


class TapTests(SynchronousTestCase):
    """
    C{--listen haproxy:...} of C{twistd pop3kit}.
    """

    def test_proxiedListener(self) -> None:
        """
        A C{haproxy:tcp:...} description listens through L{proxyEndpoint}, not through
        Twisted's own C{haproxy:} endpoint.
        """
        from twisted.application.internet import StreamServerEndpointService
        from twisted.application.service import MultiService

        from pop3kit import tap
        from pop3kit._listeners import Listener
        from pop3kit.proxy import _ProxyEndpoint

        options = tap.Options()
        root = self.mktemp()
        os.makedirs(root)
        options.parseOptions(
            [
                *("--listen", "haproxy:tcp:0:interface=127.0.0.1"),
                *("--maildir-root", root, "--auth", "memory:alice:secret"),
            ]
        )
        service = tap.makeService(options)
        assert isinstance(service, MultiService)
        (listener,) = [s for s in service if isinstance(s, Listener)]
        assert isinstance(listener, StreamServerEndpointService)
        self.assertIsInstance(listener.endpoint, _ProxyEndpoint)

    def test_implicitTLSRefused(self) -> None:
        """
        Implicit TLS behind the PROXY protocol is refused with one clear line.
        """
        from twisted.python.usage import UsageError

        from pop3kit import tap

        options = tap.Options()
        with self.assertRaises(UsageError) as raised:
            options.parseOptions(["--listen", "haproxy:ssl:995"])
        self.assertIn("haproxy:tcp", str(raised.exception))


class ProxiedTLSTests(TestCase):
    """
    STLS through a PROXY-protocol listener, as through HAProxy in TCP mode.
    """

    async def test_stlsFromRemoteClient(self) -> None:
        """
        A remote client behind the proxy is refused passwords in the clear, and logs in
        with them after STLS.
        """
        from tests.test_server_loopback import LoopbackServer, POP3TestClient
        from tests.test_server_tls import capa, serverTLS, startTLS

        server = LoopbackServer(self, [b"Subject: x\r\n\r\nbody\r\n"], tls=serverTLS())
        endpoint = proxyEndpoint(TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"), reactor)
        port: IListeningPort = await endpoint.listen(server.factory)
        self.addCleanup(server.stop)
        self.addCleanup(port.stopListening)
        client = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),  # type: ignore[attr-defined]
            POP3TestClient(),
        )
        self.addCleanup(client.abort)
        assert client.transport is not None
        client.transport.write(v2Header("203.0.113.9"))
        await client.greeting
        before = capa(await client.command(b"CAPA"))
        self.assertIn(b"STLS", before)
        self.assertNotIn(b"USER", before)
        self.assertEqual(await client.command(b"STLS"), [b"+OK begin TLS negotiation"])
        await startTLS(client)
        [answer] = await client.login()
        self.assertTrue(answer.startswith(b"+OK maildrop"), answer)
