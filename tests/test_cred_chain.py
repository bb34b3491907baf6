"""
Tests for L{pop3kit.cred.ChainedChecker}.
"""

from __future__ import annotations

from twisted.cred.checkers import ICredentialsChecker, InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from pop3kit.cred import APOPCredentials, ChainedChecker


@implementer(ICredentialsChecker)
class BrokenChecker:
    """
    A checker whose backing store is down.
    """

    credentialInterfaces = (IUsernamePassword,)

    def requestAvatarId(self, credentials: object) -> Deferred[bytes | tuple[()]]:
        """
        Fail with an outage.
        """
        return fail(ConnectionRefusedError("directory server down"))


class ChainedCheckerTests(SynchronousTestCase):
    """
    The first checker that accepts wins; refusals move on; outages stop the chain.
    """

    def setUp(self) -> None:
        self.first = InMemoryUsernamePasswordDatabaseDontUse(alice=b"one")
        self.second = InMemoryUsernamePasswordDatabaseDontUse(bob=b"two", alice=b"other")
        self.chain = ChainedChecker([self.first, self.second])

    def test_interface(self) -> None:
        """
        The chain is a checker for the union of its members' interfaces.
        """
        verifyObject(ICredentialsChecker, self.chain)
        self.assertEqual(
            set(self.chain.credentialInterfaces), {IUsernamePassword, IUsernameHashedPassword}
        )

    def test_firstAccepts(self) -> None:
        """
        A user known to the first checker logs in there.
        """
        result = self.chain.requestAvatarId(UsernamePassword(b"alice", b"one"))
        self.assertEqual(self.successResultOf(result), b"alice")

    def test_laterAccepts(self) -> None:
        """
        A refusal by the first checker moves on to the next.
        """
        for name, password in ((b"bob", b"two"), (b"alice", b"other")):
            result = self.chain.requestAvatarId(UsernamePassword(name, password))
            self.assertEqual(self.successResultOf(result), name)

    def test_allRefuse(self) -> None:
        """
        When every checker refuses, the login fails with L{UnauthorizedLogin}.
        """
        result = self.chain.requestAvatarId(UsernamePassword(b"alice", b"wrong"))
        self.failureResultOf(result, UnauthorizedLogin)

    def test_outageIsNotARefusal(self) -> None:
        """
        A checker that fails otherwise stops the chain with its error.
        """
        chain = ChainedChecker([BrokenChecker(), self.second])
        result = chain.requestAvatarId(UsernamePassword(b"bob", b"two"))
        self.failureResultOf(result, ConnectionRefusedError)

    def test_onlyMatchingCheckersAsked(self) -> None:
        """
        Checkers that do not handle the credentials' interface are skipped.
        """
        chain = ChainedChecker([BrokenChecker(), self.second])
        credentials = APOPCredentials(b"<1.2@x>", b"bob", b"0" * 32)
        self.failureResultOf(chain.requestAvatarId(credentials), UnauthorizedLogin)
