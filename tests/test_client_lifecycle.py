"""
Tests for the session lifecycle of L{pop3kit.client.POP3Client} (its typed Automat
machine, L{pop3kit._clientmachine}) where the order of events is unusual: QUIT or a login
queued behind STLS, a login cancelled by its caller, the listing across states; the log
events of logins and logouts; and the client's error tree.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionLost
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pop3kit import client
from pop3kit._clientmachine import LifecycleCore, makeLifecycle
from pop3kit.client import ClientState, ServerError
from pop3kit.errors import (
    LocalProtocolError,
    POP3Error,
    RemoteProtocolError,
)
from tests.test_client import PIPELINING, FakeServerMixin


class OrderTests(FakeServerMixin, SynchronousTestCase):
    """
    Commands queued behind others that change the state.
    """

    def test_quitBehindSTLS(self) -> None:
        """
        A QUIT queued behind STLS waits for the handshake, and the session stays in
        QUITTING throughout.
        """
        c = self.connect()
        tls = c.startTLS(object())  # type: ignore[arg-type]
        quit = c.quit()
        self.assertEqual(self.sent(), b"STLS\r\n")
        self.assertIs(c.state, ClientState.QUITTING)
        self.server(b"+OK begin TLS\r\n")
        self.assertEqual(len(self.transport.tlsStarted), 1)
        self.assertEqual(self.sent(), b"")
        c.handshakeCompleted()
        self.successResultOf(tls)
        self.assertIs(c.state, ClientState.QUITTING)
        self.assertEqual(self.sent(), b"QUIT\r\n")
        self.server(b"+OK bye\r\n")
        self.successResultOf(quit)
        self.assertIs(c.state, ClientState.CLOSED)

    def test_loginBehindSTLS(self) -> None:
        """
        A login queued behind STLS is sent once the handshake is done.
        """
        c = self.connect()
        c.startTLS(object())  # type: ignore[arg-type]
        login = c.login("alice", "secret", mechanism="user")
        self.assertIs(c.state, ClientState.AUTHENTICATING)
        self.server(b"+OK\r\n")
        c.handshakeCompleted()
        self.assertEqual(self.sent(), b"STLS\r\nUSER alice\r\n")
        self.server(b"+OK\r\n")
        self.server(b"+OK\r\n")
        self.server(b"+OK 1 10\r\n")
        self.assertEqual(self.successResultOf(login), (1, 10))
        self.assertIs(c.state, ClientState.TRANSACTION)

    def test_cancelledLogin(self) -> None:
        """
        A login cancelled before its commands were sent leaves the session in
        AUTHORIZATION; nothing of it is sent.
        """
        c = self.connect()
        first = c.noop()
        login = c.login("alice", "secret", mechanism="user")
        login.cancel()
        self.failureResultOf(login, CancelledError)
        self.assertIs(c.state, ClientState.AUTHORIZATION)
        self.server(b"+OK\r\n")
        self.successResultOf(first)
        self.assertEqual(self.sent(), b"NOOP\r\n")

    def test_cancelledButAccepted(self) -> None:
        """
        A login cancelled after its commands were sent still counts when the server
        accepts it: the session is in TRANSACTION.
        """
        c = self.connect(capabilities=PIPELINING)
        login = c.login("alice", "secret")
        self.assertEqual(self.sent(), b"USER alice\r\nPASS secret\r\n")
        login.cancel()
        self.failureResultOf(login, CancelledError)
        self.assertIs(c.state, ClientState.AUTHORIZATION)
        self.server(b"+OK\r\n+OK\r\n")
        self.assertIs(c.state, ClientState.TRANSACTION)
        self.assertIsNotNone(c.maildrop)

    def test_quitBeforeGreeting(self) -> None:
        """
        QUIT asked for before the greeting is sent after it; the session stays in
        QUITTING.
        """
        c = self.connect(greeting=b"")
        quit = c.quit()
        self.assertIs(c.state, ClientState.QUITTING)
        self.server(b"+OK hello\r\n")
        self.assertIs(c.state, ClientState.QUITTING)
        self.assertEqual(self.sent(), b"QUIT\r\n")
        self.server(b"+OK bye\r\n")
        self.successResultOf(quit)


class ListingTests(FakeServerMixin, SynchronousTestCase):
    """
    The L{MaildropListing <pop3kit.client.MaildropListing>} is the data of TRANSACTION.
    """

    def loggedIn(self) -> client.POP3Client:
        """
        A client logged in with USER/PASS, its listing filled by LIST and UIDL.
        """
        c = self.connect(capabilities=PIPELINING)
        c.login("alice", "secret")
        self.server(b"+OK\r\n+OK\r\n+OK 2 30\r\n")
        c.listSizes()
        c.listUids()
        self.server(b"+OK\r\n1 10\r\n2 20\r\n.\r\n+OK\r\n1 a\r\n2 b\r\n.\r\n")
        return c

    def test_deleteAndReset(self) -> None:
        """
        DELE removes the message from the sizes and unique-ids and marks it; RSET
        forgets the marks and the listings; STAT while messages are marked leaves the
        counts of the login alone.
        """
        c = self.loggedIn()
        c.delete(2)
        c.stat()
        self.server(b"+OK\r\n+OK 1 10\r\n")
        listing = c.maildrop
        assert listing is not None
        self.assertEqual(
            (listing.count, listing.octets, listing.sizes, listing.uids, listing.deleted),
            (2, 30, {1: 10}, {1: "a"}, {2}),
        )
        c.reset()
        self.server(b"+OK\r\n")
        self.assertEqual((listing.sizes, listing.uids, listing.deleted), (None, None, set()))

    def test_onlyInTransaction(self) -> None:
        """
        There is no listing once QUIT was asked for, nor after the connection closed.
        """
        c = self.loggedIn()
        c.quit()
        self.assertIsNone(c.maildrop)
        self.server(b"+OK bye\r\n")
        self.assertIsNone(c.maildrop)
        self.assertIs(c.state, ClientState.CLOSED)


class LogTests(FakeServerMixin, SynchronousTestCase):
    """
    Each login, failed login and logout is one log event, without secrets.
    """

    def test_events(self) -> None:
        """
        The events name the peer, the user and the method, never the password.
        """
        with capturedLogs() as events:
            c = self.connect(capabilities=PIPELINING)
            refused = c.login("alice", "wrong", mechanism="user")
            self.server(b"+OK\r\n-ERR [AUTH] no\r\n")
            self.failureResultOf(refused, ServerError)
            c.login("alice", "hunter2", mechanism="user")
            self.server(b"+OK\r\n+OK\r\n+OK 0 0\r\n")
            c.quit()
        texts = [formatEvent(event) for event in events if "user" in event]
        self.assertEqual(len(texts), 3, texts)
        self.assertIn("alice with user failed", texts[0])
        self.assertIn("as alice with user", texts[1])
        self.assertIn("ends, 0 messages marked deleted", texts[2])
        self.assertNotIn("hunter2", repr(events))


class MachineTests(SynchronousTestCase):
    """
    The lifecycle machine on its own.
    """

    def test_path(self) -> None:
        """
        Greeting, STLS, login and QUIT go through the states in order.
        """
        core = LifecycleCore(client.POP3Client.log)
        machine = makeLifecycle(core)
        states = [machine.state()]
        for step in (
            machine.greeted,
            machine.tlsAccepted,
            machine.tlsEstablished,
            lambda: machine.loginStarted("alice", "user"),
            machine.loggedIn,
            machine.quitRequested,
            machine.closed,
        ):
            step()
            states.append(machine.state())
        self.assertEqual(
            [state.value for state in states],
            [
                "greeting",
                "authorization",
                "starting-tls",
                "authorization",
                "authenticating",
                "transaction",
                "quitting",
                "closed",
            ],
        )
        self.assertEqual(core.user, "alice")


class ErrorTreeTests(SynchronousTestCase):
    """
    Every error the client raises is a L{POP3Error}, and keeps its other bases.
    """

    def test_tree(self) -> None:
        """
        The client's errors sit in one tree under L{POP3Error}.
        """
        for error in (
            client.ServerError,
            client.ClientError,
            client.TLSUnavailable,
            client.TLSFailed,
            client.MechanismUnavailable,
            client.InvalidState,
            client.ResponseTooLarge,
            client.ServerProtocolError,
            client.CommandTooLong,
        ):
            self.assertTrue(issubclass(error, POP3Error), error)
        for error in (
            client.TLSUnavailable,
            client.TLSFailed,
            client.MechanismUnavailable,
            client.InvalidState,
            client.ResponseTooLarge,
        ):
            self.assertTrue(issubclass(error, client.ClientError), error)
        self.assertTrue(issubclass(client.TLSFailed, ConnectionLost))
        self.assertTrue(issubclass(client.CommandTooLong, LocalProtocolError))
        self.assertTrue(issubclass(client.CommandTooLong, ValueError))
        self.assertTrue(issubclass(client.ServerProtocolError, RemoteProtocolError))

    def test_texts(self) -> None:
        """
        The errors keep the text they are raised with; L{TLSFailed} reads like the
        L{ConnectionLost} it is.
        """
        self.assertEqual(str(client.InvalidState("QUIT was already sent")), "QUIT was already sent")
        error = client.TLSFailed("bad certificate")
        self.assertIn("bad certificate", str(error))
        self.assertEqual(error.text, "bad certificate")
