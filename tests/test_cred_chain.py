"""
Tests for L{pop3kit.cred.ChainedChecker}.
"""

from __future__ import annotations

from twisted.cred.checkers import ICredentialsChecker, InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from pop3kit.cred import APOPCredentials, ChainedChecker
from pop3kit.interfaces import ISCRAMKeySource
from pop3kit.sasl import SCRAMKeys


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


@implementer(ICredentialsChecker, ISCRAMKeySource)
class KeyChecker:
    """
    A checker that knows SCRAM keys for some users, or whose store is down.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, keys: dict[str, SCRAMKeys], down: bool = False) -> None:
        self.keys = keys
        self.down = down
        self.asked: list[tuple[str, str]] = []

    def requestAvatarId(self, credentials: object) -> Deferred[bytes | tuple[()]]:
        """
        Refuse everything.
        """
        return fail(UnauthorizedLogin())

    def scramKeys(self, username: str, mechanism: str) -> Deferred[SCRAMKeys | None]:
        """
        Look the user up, or fail with an outage.
        """
        self.asked.append((username, mechanism))
        if self.down:
            return fail(ConnectionRefusedError("directory server down"))
        return succeed(self.keys.get(username))


class ChainedSCRAMTests(SynchronousTestCase):
    """
    A chain is an L{ISCRAMKeySource} when one of its checkers is.
    """

    def setUp(self) -> None:
        self.aliceKeys = SCRAMKeys.fromPassword("one", "SCRAM-SHA-256")
        self.bobKeys = SCRAMKeys.fromPassword("two", "SCRAM-SHA-256")

    def test_provided(self) -> None:
        """
        The chain provides L{ISCRAMKeySource} only if a member does.
        """
        plain = InMemoryUsernamePasswordDatabaseDontUse(alice=b"one")
        self.assertFalse(ISCRAMKeySource.providedBy(ChainedChecker([plain])))
        chain = ChainedChecker([plain, KeyChecker({})])
        self.assertTrue(verifyObject(ISCRAMKeySource, chain))

    def test_firstWithKeysWins(self) -> None:
        """
        Members are asked in order; the first with keys wins, and a user no member
        knows gets L{None}.
        """
        first = KeyChecker({"alice": self.aliceKeys})
        second = KeyChecker({"alice": self.bobKeys, "bob": self.bobKeys})
        chain = ChainedChecker([InMemoryUsernamePasswordDatabaseDontUse(), first, second])
        self.assertIs(
            self.successResultOf(chain.scramKeys("alice", "SCRAM-SHA-256")), self.aliceKeys
        )
        self.assertEqual(second.asked, [])
        self.assertIs(self.successResultOf(chain.scramKeys("bob", "SCRAM-SHA-256")), self.bobKeys)
        self.assertIsNone(self.successResultOf(chain.scramKeys("carol", "SCRAM-SHA-1")))
        self.assertEqual(second.asked[-1], ("carol", "SCRAM-SHA-1"))

    def test_outage(self) -> None:
        """
        A member that fails stops the lookup with its failure.
        """
        chain = ChainedChecker([KeyChecker({}, down=True), KeyChecker({"alice": self.aliceKeys})])
        self.failureResultOf(chain.scramKeys("alice", "SCRAM-SHA-256"), ConnectionRefusedError)


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
