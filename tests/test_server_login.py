"""
Tests for how L{pop3kit.server.POP3ServerFactory} logs users in (every login, SASL
identities included, through the portal, whose checkers it sees as they are when the
login happens), and for what an unexpected error of a backend does.
"""

from __future__ import annotations

from typing import BinaryIO

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernamePassword
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.cred import ISASLIdentity
from tests.test_login import RecordingIdentities
from tests.test_server_auth import Harness, runExchange


class SASLIdentityTests(SynchronousTestCase):
    """
    Users a SASL mechanism verified log in through the portal.
    """

    def test_applicationPortalUnchanged(self) -> None:
        """
        The server's checker of SASL identities is not added to the application's
        portal.
        """
        harness = Harness()
        self.assertNotIn(ISASLIdentity, harness.factory.portal.listCredentialsInterfaces())
        status, complete = runExchange(harness.connect(), "SCRAM-SHA-256", "alice", "secret")
        self.assertTrue(status.startswith(b"+OK ") and complete, status)

    def test_applicationChecker(self) -> None:
        """
        A checker of SASL identities in the application's portal, even one registered
        after the factory was made, decides SCRAM logins.
        """
        harness = Harness()
        identities = RecordingIdentities()
        harness.factory.portal.registerChecker(identities)
        status, _ = runExchange(harness.connect(), "SCRAM-SHA-256", "alice", "secret")
        self.assertTrue(status.startswith(b"+OK "), status)
        self.assertEqual(identities.seen, [("alice", "SCRAM-SHA-256")])

    def test_checkersSeenLive(self) -> None:
        """
        Replacing the application's password checker takes effect for the next login.
        """
        harness = Harness()
        portal = harness.factory.portal
        portal.registerChecker(
            InMemoryUsernamePasswordDatabaseDontUse(alice=b"changed"), IUsernamePassword
        )
        self.assertIn(b"-ERR [AUTH] ", harness.connect().login(b"alice", b"secret"))
        self.assertIn(b"+OK maildrop", harness.connect().login(b"alice", b"changed"))


class UnexpectedErrorTests(SynchronousTestCase):
    """
    A backend that raises instead of returning a failed L{Deferred} gets C{-ERR
    [SYS/TEMP]}, and the session goes on.
    """

    def test_openMessageRaises(self) -> None:
        """
        RETR of a message whose C{openMessage} raises is answered C{[SYS/TEMP]}, logged.
        """
        harness = Harness()
        connection = harness.connect()
        connection.login(b"alice", b"secret")

        def openMessage(uid: str) -> Deferred[BinaryIO]:
            raise RuntimeError("broken backend")

        harness.realm.getMailbox("alice").openMessage = openMessage  # type: ignore[method-assign]
        self.assertEqual(
            connection.send(b"RETR 1\r\nNOOP\r\n"),
            b"-ERR [SYS/TEMP] temporary system problem, try again later\r\n+OK \r\n",
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
