"""
Tests for the in-memory client/server pair of L{pop3kit.testing}: L{MemoryNetwork},
L{MemoryConnection} and L{ConnectedClient}, and the example that the testing howto
includes.
"""

from __future__ import annotations

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost, ConnectionRefusedError, TimeoutError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.backends.memory import MemoryRealm
from pop3kit.client import MechanismUnavailable, POP3Client, ServerError, connect
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedClient, MemoryNetwork, Stalled
from tests.test_examples import loadExample

memorytests = loadExample("memorytests")


class CountUnreadExampleTests(memorytests.CountUnreadTests):  # type: ignore[misc,name-defined]
    """
    The example's tests of C{countUnread}, run as part of this module (whose name trial can
    find again, as C{-j} needs).
    """


class ClientSessionExampleTests(memorytests.ClientSessionTests):  # type: ignore[misc,name-defined]
    """
    The example's tests of a L{ConnectedClient} session, run as part of this module.
    """


def _portal(realm: MemoryRealm) -> Portal:
    return Portal(realm, [InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")])


class ConnectedClientTests(SynchronousTestCase):
    """
    L{ConnectedClient} joins a real client to a real server session in memory.
    """

    def setUp(self) -> None:
        self.realm = MemoryRealm()
        self.realm.getMailbox("alice").deliver(b"Subject: hi\n\nhello\n")

    def test_greetingReceived(self) -> None:
        """
        The client has read the server's greeting when the pair is made.
        """
        pair = ConnectedClient(_portal(self.realm))
        self.assertEqual(pair.client.greeting, b"POP3 server ready")
        self.assertIsInstance(pair.client, POP3Client)
        self.assertIs(pair.client.clock, pair.clock)

    def test_factoryOnTheSameClock(self) -> None:
        """
        A factory made on the pair's clock has its delays follow it: a wrong password is
        answered after the failed-login delay, once the clock is let run.
        """
        clock = MemoryReactorClock()
        factory = POP3ServerFactory(_portal(self.realm), clock=clock, failedLoginDelay=5)
        pair = ConnectedClient(factory, clock=clock)
        login = pair.client.login("alice", "wrong")
        self.assertRaises(Stalled, pair.run, login)
        self.assertEqual(clock.seconds(), 0)
        error = self.assertRaises(ServerError, pair.run, login, advance=True)
        self.assertEqual((error.text, clock.seconds()), ("authentication failed", 5))

    def test_clientTimeout(self) -> None:
        """
        A server that does not answer makes the client time out once time passes, and
        only then.
        """
        opened: Deferred[object] = Deferred()
        mailbox = self.realm.getMailbox("alice")
        self.patch(mailbox, "openMessage", lambda uid: opened)
        pair = ConnectedClient(_portal(self.realm), timeout=30)
        pair.run(pair.client.login("alice", "secret"))
        retrieved = pair.client.retrieve(1)
        pair.flush()
        self.assertNoResult(retrieved)
        pair.advance(29)
        self.assertNoResult(retrieved)
        self.assertRaises(TimeoutError, pair.run, retrieved, advance=True)
        self.assertEqual(pair.clock.seconds(), 30)

    def test_remotePeer(self) -> None:
        """
        The server sees the connection come from C{peerHost}: from another host, passwords
        in the clear are refused by default.
        """
        pair = ConnectedClient(_portal(self.realm), peerHost="192.0.2.7")
        self.assertEqual(
            pair.connection.serverTransport.getPeer(), IPv4Address("TCP", "192.0.2.7", 40001)
        )
        self.assertRaises(MechanismUnavailable, pair.run, pair.client.login("alice", "secret"))

    def test_serverDrops(self) -> None:
        """
        The server's side dropping the connection fails what the client waits for.
        """
        pair = ConnectedClient(_portal(self.realm))
        pair.run(pair.client.login("alice", "secret"))
        pair.connection.serverTransport.abortConnection()
        self.assertRaises(ConnectionLost, pair.run, pair.client.listSizes())
        self.assertEqual(self.realm.activeSessions, {})


class MemoryNetworkTests(SynchronousTestCase):
    """
    L{MemoryNetwork} lets code that connects by itself reach servers in memory.
    """

    def setUp(self) -> None:
        self.network = MemoryNetwork()
        self.realm = MemoryRealm()
        self.realm.getMailbox("alice").deliver(b"Subject: hi\n\nhello\n")
        factory = POP3ServerFactory(_portal(self.realm), clock=self.network.reactor)
        self.network.listen(factory, 1110)

    async def session(self, host: str, port: int) -> dict[int, int]:
        client = await connect(self.network.reactor, host, port, tls="none")
        await client.login("alice", "secret")
        sizes = await client.listSizes()
        await client.quit()
        return sizes

    def test_connect(self) -> None:
        """
        L{pop3kit.client.connect} reaches the server listening on the port, whatever the
        host name; each connection is listed.
        """
        self.assertEqual(self.network.run(self.session("pop.example.org", 1110)), {1: 22})
        self.assertEqual(self.network.run(self.session("other.example", 1110)), {1: 22})
        self.assertEqual(len(self.network.connections), 2)
        self.assertEqual(self.realm.activeSessions, {})

    def test_refused(self) -> None:
        """
        A port nobody listens on refuses the connection (once the client's connection
        attempt has had its time).
        """
        self.assertRaises(
            ConnectionRefusedError,
            self.network.run,
            self.session("pop.example.org", 110),
            advance=True,
        )
        self.assertEqual(self.network.connections, [])

    def test_stalled(self) -> None:
        """
        Work still waiting when everything is delivered raises L{Stalled} unless time may
        pass.
        """
        waiting: Deferred[None] = Deferred()
        self.assertRaises(Stalled, self.network.run, waiting)
        self.assertRaises(Stalled, self.network.run, waiting, advance=True)

    def test_connectClient(self) -> None:
        """
        L{MemoryNetwork.connectClient} gives a client already greeted; with nobody
        listening, the connection is refused at once.
        """
        connection = self.network.connectClient(1110)
        self.assertIsInstance(connection.client, POP3Client)
        self.assertRaises(ConnectionRefusedError, self.network.connectClient, 110)
