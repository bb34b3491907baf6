"""
Test a POP3 client application against pop3kit's real server, in memory: no sockets, no
threads, no real time.

C{countUnread} is the code under test: it connects by itself, as applications do.  The
tests give it the reactor of a L{MemoryNetwork} on which pop3kit's server listens.  Run
them with::

    python -m twisted.trial docs/examples/memorytests.py
"""

from __future__ import annotations

from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.backends.memory import MemoryRealm
from pop3kit.client import ServerError, connect
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedClient, MemoryNetwork


async def countUnread(reactor: Any, host: str, user: str, password: str, seen: set[str]) -> int:
    """
    The code under test: how many messages of the maildrop are not in C{seen}.
    """
    client = await connect(reactor, host, tls="none")
    await client.login(user, password)
    uids = await client.listUids()
    await client.quit()
    return len(set(uids.values()) - seen)


class CountUnreadTests(SynchronousTestCase):
    """
    C{countUnread} against pop3kit's server on a L{MemoryNetwork}.
    """

    def setUp(self) -> None:
        self.network = MemoryNetwork()
        self.realm = MemoryRealm()
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        factory = POP3ServerFactory(Portal(self.realm, [checker]), clock=self.network.reactor)
        self.network.listen(factory, 110)  # any host name reaches it

    def test_unread(self) -> None:
        """
        Messages whose unique-ids were not seen are counted.
        """
        mailbox = self.realm.getMailbox("alice")
        first = mailbox.deliver(b"Subject: one\n\nfirst\n")
        mailbox.deliver(b"Subject: two\n\nsecond\n")
        count = self.network.run(
            countUnread(self.network.reactor, "pop.example.org", "alice", "secret", {first})
        )
        self.assertEqual(count, 1)

    def test_wrongPassword(self) -> None:
        """
        A wrong password is refused after the server's failed-login delay: the test lets
        the clock run to it.
        """
        work = countUnread(self.network.reactor, "pop.example.org", "alice", "wrong", set())
        self.assertRaises(ServerError, self.network.run, work, advance=True)
        self.assertEqual(self.network.reactor.seconds(), 2.0)


class ClientSessionTests(SynchronousTestCase):
    """
    The client's own API, step by step, with L{ConnectedClient}.
    """

    def setUp(self) -> None:
        self.realm = MemoryRealm()
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        self.pair = ConnectedClient(Portal(self.realm, [checker]))

    def test_retrieveAndDelete(self) -> None:
        """
        A message is retrieved in its wire form, and deleted at QUIT.
        """
        self.realm.getMailbox("alice").deliver(b"Subject: hi\n\nhello\n")
        client = self.pair.client
        self.assertEqual(self.pair.run(client.login("alice", "secret")), (1, 22))
        self.assertEqual(self.pair.run(client.retrieve(1)), b"Subject: hi\r\n\r\nhello\r\n")
        self.pair.run(client.delete(1))
        self.pair.run(client.quit())
        self.assertEqual(self.realm.getMailbox("alice").messages, [])
