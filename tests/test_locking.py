"""
Tests for L{pop3kit.locking}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from pop3kit.errors import MaildropInUse
from pop3kit.interfaces import ILoginHistory, IMaildropLock, IMaildropLocker
from pop3kit.locking import InProcessLocker, InProcessLoginHistory


class InProcessLockerTests(SynchronousTestCase):
    """
    Tests for L{InProcessLocker}.
    """

    def test_interfaces(self) -> None:
        """
        The locker provides L{IMaildropLocker} and its locks provide L{IMaildropLock}.
        """
        locker = InProcessLocker()
        self.assertTrue(verifyObject(IMaildropLocker, locker))
        lock = self.successResultOf(locker.acquire("alice"))
        self.assertTrue(verifyObject(IMaildropLock, lock))

    def test_heldLockRefused(self) -> None:
        """
        A second acquire for the same maildrop fails with L{MaildropInUse}.
        """
        locker = InProcessLocker()
        self.successResultOf(locker.acquire("alice"))
        self.failureResultOf(locker.acquire("alice"), MaildropInUse)
        self.assertTrue(locker.isLocked("alice"))

    def test_otherMaildropsIndependent(self) -> None:
        """
        Holding one user's lock does not stop another user's lock.
        """
        locker = InProcessLocker()
        self.successResultOf(locker.acquire("alice"))
        self.successResultOf(locker.acquire("bob"))
        self.assertEqual(
            [locker.isLocked("alice"), locker.isLocked("bob"), locker.isLocked("carol")],
            [True, True, False],
        )

    def test_releaseAllowsAcquire(self) -> None:
        """
        After release, the maildrop can be locked again.
        """
        locker = InProcessLocker()
        lock = self.successResultOf(locker.acquire("alice"))
        self.assertIsNone(self.successResultOf(lock.release()))
        self.assertFalse(locker.isLocked("alice"))
        self.successResultOf(locker.acquire("alice"))

    def test_releaseTwiceHarmless(self) -> None:
        """
        Releasing a lock again, after someone else has taken the maildrop, does not release
        the new holder's lock.
        """
        locker = InProcessLocker()
        first = self.successResultOf(locker.acquire("alice"))
        self.successResultOf(first.release())
        self.successResultOf(locker.acquire("alice"))
        self.successResultOf(first.release())
        self.assertTrue(locker.isLocked("alice"))
        self.failureResultOf(locker.acquire("alice"), MaildropInUse)

    def test_separateLockers(self) -> None:
        """
        Two lockers do not share state.
        """
        self.successResultOf(InProcessLocker().acquire("alice"))
        self.successResultOf(InProcessLocker().acquire("alice"))


class InProcessLoginHistoryTests(SynchronousTestCase):
    """
    Tests for L{InProcessLoginHistory}.
    """

    def test_interface(self) -> None:
        """
        The history provides L{ILoginHistory}.
        """
        self.assertTrue(verifyObject(ILoginHistory, InProcessLoginHistory()))

    def test_failuresCounted(self) -> None:
        """
        Each failure from a client raises its count by one; clients are counted apart.
        """
        history = InProcessLoginHistory()
        counts = [self.successResultOf(history.recordFailure("10.0.0.1")) for _ in range(3)]
        counts.append(self.successResultOf(history.recordFailure("10.0.0.2")))
        self.assertEqual(counts, [1, 2, 3, 1])

    def test_clearFailures(self) -> None:
        """
        Clearing a client's failures starts its count again; clearing an unknown client is
        harmless.
        """
        history = InProcessLoginHistory()
        self.successResultOf(history.recordFailure("10.0.0.1"))
        self.successResultOf(history.recordFailure("10.0.0.1"))
        self.assertIsNone(self.successResultOf(history.clearFailures("10.0.0.1")))
        self.successResultOf(history.clearFailures("10.9.9.9"))
        self.assertEqual(self.successResultOf(history.recordFailure("10.0.0.1")), 1)

    def test_lastLogin(self) -> None:
        """
        The last login time is L{None} until a login is recorded, then the latest one.
        """
        history = InProcessLoginHistory()
        self.assertIsNone(self.successResultOf(history.lastLogin("alice")))
        self.assertIsNone(self.successResultOf(history.recordLogin("alice", 100.0)))
        self.successResultOf(history.recordLogin("alice", 250.5))
        self.assertEqual(self.successResultOf(history.lastLogin("alice")), 250.5)
        self.assertIsNone(self.successResultOf(history.lastLogin("bob")))

    def test_failuresBounded(self) -> None:
        """
        Beyond C{maxEntries} clients, the client updated longest ago is forgotten.
        """
        history = InProcessLoginHistory(maxEntries=2)
        self.successResultOf(history.recordFailure("a"))
        self.successResultOf(history.recordFailure("b"))
        self.successResultOf(history.recordFailure("a"))
        self.successResultOf(history.recordFailure("c"))
        self.assertEqual(
            [
                self.successResultOf(history.recordFailure("a")),
                self.successResultOf(history.recordFailure("c")),
                self.successResultOf(history.recordFailure("b")),
            ],
            [3, 2, 1],
        )

    def test_loginsBounded(self) -> None:
        """
        Beyond C{maxEntries} users, the user whose login was recorded longest ago is
        forgotten.
        """
        history = InProcessLoginHistory(maxEntries=2)
        self.successResultOf(history.recordLogin("alice", 1.0))
        self.successResultOf(history.recordLogin("bob", 2.0))
        self.successResultOf(history.recordLogin("alice", 3.0))
        self.successResultOf(history.recordLogin("carol", 4.0))
        self.assertEqual(
            [self.successResultOf(history.lastLogin(name)) for name in ("alice", "bob", "carol")],
            [3.0, None, 4.0],
        )

    def test_maxEntriesPositive(self) -> None:
        """
        A bound below one is refused.
        """
        self.assertRaises(ValueError, InProcessLoginHistory, maxEntries=0)

    def test_failuresForgottenAfterQuiet(self) -> None:
        """
        A client's failures are forgotten once it has not failed for the configured time,
        and not before.
        """
        clock = Clock()
        history = InProcessLoginHistory(clock=clock, forgetFailuresAfter=900)
        for _ in range(3):
            history.recordFailure("192.0.2.1")
        clock.advance(900)
        self.assertEqual(self.successResultOf(history.recordFailure("192.0.2.1")), 4)
        clock.advance(901)
        self.assertEqual(self.successResultOf(history.recordFailure("192.0.2.1")), 1)
