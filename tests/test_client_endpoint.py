"""
Tests for L{pop3kit.client.connect} with an C{endpoint}: a whole session with pop3kit's
server over an in-memory connection (L{twisted.test.iosim}), no sockets and no global
reactor; the endpoint replacing the host name one; implicit TLS wrapping it; a UNIX
socket.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import reactor as _reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from pop3kit.backends.memory import MemoryMailbox, MemoryRealm
from pop3kit.client import ClientState, POP3Client, connect
from pop3kit.core._dotstuff import canonicalForm
from pop3kit.server import POP3ServerFactory

MESSAGES = [b"Subject: one\n\nfirst\n.dot\n", b"Subject: two\n\nsecond\n"]


def serverFactory(clock: Any, **kwargs: Any) -> POP3ServerFactory:
    """
    A pop3kit server for user C{alice}, password C{secret}, with L{MESSAGES}.
    """
    realm = MemoryRealm({"alice": MemoryMailbox(MESSAGES)})
    checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
    return POP3ServerFactory(Portal(realm, [checker]), clock=clock, failedLoginDelay=0, **kwargs)


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """
    Connects to a server factory in memory; the test moves the octets with L{pump}.

    @ivar pump: The L{iosim.IOPump} of the last connection.
    """

    def __init__(self, factory: POP3ServerFactory, clock: MemoryReactorClock) -> None:
        self.factory = factory
        self.clock = clock
        self.pump: iosim.IOPump | None = None

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        client = IPv4Address("TCP", "127.0.0.1", 54321)
        server = IPv4Address("TCP", "127.0.0.1", 110)
        clientProtocol = protocolFactory.buildProtocol(server)
        serverProtocol = self.factory.buildProtocol(client)
        assert clientProtocol is not None and serverProtocol is not None
        self.pump = iosim.connect(
            serverProtocol,
            iosim.FakeTransport(serverProtocol, True, server, client),
            clientProtocol,
            iosim.FakeTransport(clientProtocol, False, client, server),
            greet=False,
            clock=self.clock,
        )
        return succeed(clientProtocol)


@implementer(IStreamClientEndpoint)
class RecordingEndpoint:
    """
    Records the factory it is asked to connect, and never connects.
    """

    def __init__(self) -> None:
        self.factories: list[IProtocolFactory] = []

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        self.factories.append(protocolFactory)
        return Deferred()


class MemoryEndpointTests(SynchronousTestCase):
    """
    A session with pop3kit's server over an in-memory endpoint.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.endpoint = MemoryEndpoint(serverFactory(self.clock), self.clock)

    def drive(self, d: Deferred[Any]) -> Any:
        """
        Move octets both ways until C{d} has a result; return it.
        """
        assert self.endpoint.pump is not None
        self.endpoint.pump.flush()
        return self.successResultOf(d)

    def test_session(self) -> None:
        """
        C{connect} with an endpoint gives a client in AUTHORIZATION with capabilities;
        login, listing, RETR and QUIT work over it, and no TCP connection was made.
        """
        d = Deferred.fromCoroutine(
            connect(self.clock, "pop.example", endpoint=self.endpoint, tls="none")
        )
        client: POP3Client = self.drive(d)
        self.assertIs(client.state, ClientState.AUTHORIZATION)
        self.assertIn("PIPELINING", self.successResultOf(client.capabilities()))
        octets = sum(len(canonicalForm(m)) for m in MESSAGES)
        self.assertEqual(self.drive(client.login("alice", "secret")), (2, octets))
        sizes = {n: len(canonicalForm(m)) for n, m in enumerate(MESSAGES, 1)}
        self.assertEqual(self.drive(client.listSizes()), sizes)
        self.assertEqual(self.drive(client.retrieve(1)), canonicalForm(MESSAGES[0]))
        self.assertIsNone(self.drive(client.quit()))
        self.assertIs(client.state, ClientState.CLOSED)
        self.assertEqual(self.clock.tcpClients, [])

    def test_portIgnored(self) -> None:
        """
        With an endpoint, C{host} and C{port} are not connected to.
        """
        d = Deferred.fromCoroutine(
            connect(self.clock, "nowhere.invalid", 1, endpoint=self.endpoint, tls="none")
        )
        self.drive(d).abort()
        self.assertEqual(self.clock.tcpClients, [])


class ImplicitTLSEndpointTests(SynchronousTestCase):
    """
    Implicit TLS wraps the given endpoint.
    """

    def test_wrapped(self) -> None:
        """
        With C{tls="implicit"}, the endpoint is asked to connect a TLS factory wrapping
        the client's.
        """
        endpoint = RecordingEndpoint()
        d = Deferred.fromCoroutine(
            connect(
                MemoryReactorClock(),
                "pop.example",
                endpoint=endpoint,
                tls="implicit",
                contextFactory=optionsForClientTLS("pop.example"),
            )
        )
        [factory] = endpoint.factories
        self.assertIsInstance(factory, TLSMemoryBIOFactory)
        d.cancel()
        self.failureResultOf(d, CancelledError)


class UNIXSocketTests(TestCase):
    """
    C{connect} over a UNIX socket.
    """

    async def test_unixSocket(self) -> None:
        """
        A session with pop3kit's server listening on a UNIX socket.
        """
        reactor: Any = _reactor
        path = os.path.abspath(self.mktemp())
        port = reactor.listenUNIX(path, serverFactory(reactor, allowCleartext="always"))
        self.addCleanup(port.stopListening)
        endpoint = UNIXClientEndpoint(reactor, path)
        client = await connect(reactor, "localhost", endpoint=endpoint, tls="none")
        self.addCleanup(client.whenClosed)
        self.addCleanup(client.abort)
        octets = sum(len(canonicalForm(m)) for m in MESSAGES)
        self.assertEqual(await client.login("alice", "secret"), (2, octets))
        await client.quit()
