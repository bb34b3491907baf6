"""
Regression tests for the server, through its public behaviour only (the wire, as
L{pop3kit.testing.ConnectedServer} carries it, and L{pop3kit.server.POP3ServerFactory}'s
constructor): a client that leaves in the middle of its login, and message numbers after a
deletion.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.cred.checkers import ICredentialsChecker, InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pop3kit.backends.maildir import MaildirRealm, deliver
from pop3kit.backends.memory import MemoryMailbox, MemoryRealm
from pop3kit.core import (
    MessageInfo,
)
from pop3kit.interfaces import IMaildropLock, IMaildropLocker
from pop3kit.locking import InProcessLocker
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedServer

# ---------------------------------------------------------------------------------------
# A client that leaves in the middle of its login
# ---------------------------------------------------------------------------------------


_T = TypeVar("_T")


class Gate:
    """
    Holds calls back while it is closed; opening it lets them through, and later calls
    then go through at once.

    @ivar passed: How many calls went through or wait.
    """

    def __init__(self) -> None:
        self.closed = True
        self.passed = 0
        self._waiting: list[Deferred[None]] = []

    def through(self, call: Callable[[], Deferred[_T]]) -> Deferred[_T]:
        """
        Call C{call} now if the gate is open, or when it opens.
        """
        self.passed += 1
        if not self.closed:
            return call()
        waiting: Deferred[None] = Deferred()
        self._waiting.append(waiting)
        return waiting.addCallback(lambda _: call())

    @property
    def waiting(self) -> int:
        """
        How many calls wait for the gate to open.
        """
        return len(self._waiting)

    def open(self) -> None:
        """
        Let the waiting calls through, and the later ones at once.
        """
        self.closed = False
        waiting, self._waiting = self._waiting, []
        for call in waiting:
            call.callback(None)


class GatedMailbox(MemoryMailbox):
    """
    A L{MemoryMailbox} whose listings go through a L{Gate}.
    """

    def __init__(self, gate: Gate, messages: Sequence[bytes], maildropId: str) -> None:
        super().__init__(messages, maildropId)
        self._gate = gate

    def listMessages(self) -> Deferred[Sequence[MessageInfo]]:
        """
        List the messages once the gate lets the call through.
        """
        return self._gate.through(super().listMessages)


@implementer(IMaildropLocker)
class GatedLocker:
    """
    An L{InProcessLocker} whose lock requests go through a L{Gate}.
    """

    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._locker = InProcessLocker()

    def acquire(self, avatarId: str) -> Deferred[IMaildropLock]:
        """
        Lock C{avatarId}'s maildrop once the gate lets the request through.
        """
        return self._gate.through(lambda: self._locker.acquire(avatarId))


class GatedChecker(InMemoryUsernamePasswordDatabaseDontUse):
    """
    A password checker whose checks go through a L{Gate}.
    """

    def __init__(self, gate: Gate, **users: bytes) -> None:
        super().__init__(**users)
        self._gate = gate

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[bytes | tuple[()]]:
        """
        Check C{credentials} once the gate lets the check through.
        """
        check = super().requestAvatarId
        return self._gate.through(lambda: check(credentials))


class AbandonedLoginTests(SynchronousTestCase):
    """
    A client that disconnects while its login is under way (its password being checked,
    the maildrop lock being taken, or the locked maildrop being listed) leaves the maildrop
    free for the next login, and its avatar logged out.
    """

    def setUp(self) -> None:
        self.gate = Gate()
        self.mailbox = GatedMailbox(self.gate, [b"Subject: x\n\nbody\n"], "memory:alice")
        self.realm = MemoryRealm({"alice": self.mailbox})

    def factory(
        self, checker: ICredentialsChecker | None = None, **options: Any
    ) -> POP3ServerFactory:
        """
        A server factory on alice's mailbox, with a fake clock and C{options}.

        @param checker: Checks passwords; by default one where alice's password is secret.
        """
        if checker is None:
            checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        return POP3ServerFactory(
            Portal(self.realm, [checker]), clock=Clock(), allowCleartext="always", **options
        )

    def leaveDuringLogin(self, factory: POP3ServerFactory, gate: Gate) -> None:
        """
        Log in to C{factory} until C{gate} holds the login back, drop the connection,
        then open the gate: the server answers nothing more.
        """
        client = ConnectedServer(factory)
        self.assertEqual(client.login(b"alice", b"secret"), b"+OK send PASS\r\n")
        self.assertEqual(gate.waiting, 1)
        client.drop()
        gate.open()
        self.assertEqual(client.read(), b"")

    def assertMaildropFree(self, factory: POP3ServerFactory) -> None:
        """
        No avatar is logged in any more, and a new session logs in to the maildrop at once.
        """
        self.assertEqual(self.realm.activeSessions, {})
        self.assertEqual(
            ConnectedServer(factory).login(b"alice", b"secret"),
            b"+OK send PASS\r\n+OK maildrop has 1 messages (20 octets)\r\n",
        )

    def test_leftWhileListing(self) -> None:
        """
        A client gone while its locked maildrop is being listed leaves it unlocked.
        """
        factory = self.factory()
        self.leaveDuringLogin(factory, self.gate)
        self.assertMaildropFree(factory)

    def test_lockedWhileListing(self) -> None:
        """
        While a login lists the maildrop, another session gets C{-ERR [IN-USE]}: the
        lock is held at that point.
        """
        factory = self.factory()
        ConnectedServer(factory).login(b"alice", b"secret")
        self.assertEqual(self.gate.waiting, 1)
        self.assertIn(b"-ERR [IN-USE] ", ConnectedServer(factory).login(b"alice", b"secret"))

    def test_leftWhileLocking(self) -> None:
        """
        A client gone while the maildrop lock is being taken leaves it unlocked once the
        lock is granted.
        """
        factory = self.factory(locker=GatedLocker(self.gate))
        self.leaveDuringLogin(factory, self.gate)
        self.assertMaildropFree(factory)

    def test_leftWhileLockingIsNoLogin(self) -> None:
        """
        A client gone while the maildrop lock is being taken has not logged in: its
        maildrop is not listed, and the login does not count for LOGIN-DELAY.
        """
        locks = Gate()
        factory = self.factory(locker=GatedLocker(locks), loginDelay=600)
        self.leaveDuringLogin(factory, locks)
        self.assertEqual(self.gate.passed, 0)
        self.gate.open()
        self.assertMaildropFree(factory)

    def test_leftWhileCheckingPassword(self) -> None:
        """
        A client gone while its password is being checked leaves the maildrop unlocked
        and no avatar logged in once the check succeeds.
        """
        factory = self.factory(checker=GatedChecker(self.gate, alice=b"secret"))
        self.leaveDuringLogin(factory, self.gate)
        self.assertMaildropFree(factory)


# ---------------------------------------------------------------------------------------
# Message numbers after a deletion
# ---------------------------------------------------------------------------------------

#: Four messages of different sizes, as stored (LF line ends).
MESSAGES = [
    b"Subject: one\n\nfirst\n",
    b"Subject: two\n\nsecond body\n.dot line\n",
    b"Subject: three\n\nthird\nline two of three\n",
    b"Subject: four\n\nthe fourth and longest message\n.\nend\n",
]

#: What RETR sends of each message after its status line (CRLF, stuffed, terminated).
RETRIEVED = [
    b"Subject: one\r\n\r\nfirst\r\n.\r\n",
    b"Subject: two\r\n\r\nsecond body\r\n..dot line\r\n.\r\n",
    b"Subject: three\r\n\r\nthird\r\nline two of three\r\n.\r\n",
    b"Subject: four\r\n\r\nthe fourth and longest message\r\n..\r\nend\r\n.\r\n",
]

#: What TOP n 1 sends of each message after its status line.
TOP_ONE_LINE = [
    b"Subject: one\r\n\r\nfirst\r\n.\r\n",
    b"Subject: two\r\n\r\nsecond body\r\n.\r\n",
    b"Subject: three\r\n\r\nthird\r\n.\r\n",
    b"Subject: four\r\n\r\nthe fourth and longest message\r\n.\r\n",
]

#: The size LIST gives for each message.
SIZES = [23, 40, 44, 57]


if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


class NumberingAfterDeletionMixin(_TestCase):
    """
    After DELE, every other message keeps its number: RETR, TOP, LIST and UIDL with a
    number give exactly that message, and the deleted number is refused.  Subclasses
    provide the backend.
    """

    def serverWithMessages(self) -> POP3ServerFactory:
        """
        A server factory whose user alice, password secret, has L{MESSAGES}.
        """
        raise NotImplementedError()

    def setUp(self) -> None:
        self.connection = ConnectedServer(self.serverWithMessages())
        self.assertEqual(
            self.connection.login(b"alice", b"secret"),
            b"+OK send PASS\r\n+OK maildrop has 4 messages (%d octets)\r\n" % sum(SIZES),
        )
        uidl = self.connection.send(b"UIDL\r\n").split(b"\r\n")
        self.assertEqual(uidl[0], b"+OK unique-id listing follows")
        self.assertEqual(uidl[-2:], [b".", b""])
        self.uids = [line.split(b" ")[1] for line in uidl[1:-2]]
        self.assertEqual(len(set(self.uids)), 4)

    def assertIsMessage(self, number: int) -> None:
        """
        RETR, TOP, LIST and UIDL for C{number} each give message C{number}.
        """
        index = number - 1
        command = b"%d" % number
        self.assertEqual(
            self.connection.send(b"RETR " + command + b"\r\n"),
            b"+OK %d octets\r\n" % SIZES[index] + RETRIEVED[index],
        )
        self.assertEqual(
            self.connection.send(b"TOP " + command + b" 1\r\n"),
            b"+OK top of message follows\r\n" + TOP_ONE_LINE[index],
        )
        self.assertEqual(
            self.connection.send(b"LIST " + command + b"\r\n"),
            b"+OK %d %d\r\n" % (number, SIZES[index]),
        )
        self.assertEqual(
            self.connection.send(b"UIDL " + command + b"\r\n"),
            b"+OK %d %s\r\n" % (number, self.uids[index]),
        )

    def assertIsDeleted(self, number: int) -> None:
        """
        RETR, TOP, LIST, UIDL and DELE for C{number} are each refused.
        """
        for command in [b"RETR %d", b"TOP %d 0", b"LIST %d", b"UIDL %d", b"DELE %d"]:
            response = self.connection.send(command % number + b"\r\n")
            self.assertTrue(response.startswith(b"-ERR "), (command, response))
            self.assertNotIn(b"\r\n", response[:-2], (command, response))

    def assertListings(self, numbers: list[int]) -> None:
        """
        STAT, LIST and UIDL without a number show exactly the messages C{numbers}.
        """
        self.assertEqual(
            self.connection.send(b"STAT\r\n"),
            b"+OK %d %d\r\n" % (len(numbers), sum(SIZES[n - 1] for n in numbers)),
        )
        self.assertEqual(
            self.connection.send(b"LIST\r\n").split(b"\r\n")[1:],
            [b"%d %d" % (n, SIZES[n - 1]) for n in numbers] + [b".", b""],
        )
        self.assertEqual(
            self.connection.send(b"UIDL\r\n").split(b"\r\n")[1:],
            [b"%d %s" % (n, self.uids[n - 1]) for n in numbers] + [b".", b""],
        )

    def test_firstDeleted(self) -> None:
        """
        After DELE 1, messages 2, 3 and 4 are still themselves and 1 is refused.
        """
        self.assertEqual(self.connection.send(b"DELE 1\r\n"), b"+OK message 1 deleted\r\n")
        for number in [2, 3, 4]:
            self.assertIsMessage(number)
        self.assertIsDeleted(1)
        self.assertListings([2, 3, 4])

    def test_middleDeleted(self) -> None:
        """
        After DELE 2, messages 1, 3 and 4 are still themselves and 2 is refused.
        """
        self.assertEqual(self.connection.send(b"DELE 2\r\n"), b"+OK message 2 deleted\r\n")
        for number in [4, 3, 1]:
            self.assertIsMessage(number)
        self.assertIsDeleted(2)
        self.assertListings([1, 3, 4])

    def test_severalDeleted(self) -> None:
        """
        After DELE 3 and DELE 1, messages 2 and 4 are still themselves; after RSET all
        four are.
        """
        self.connection.send(b"DELE 3\r\nDELE 1\r\n")
        self.assertIsMessage(4)
        self.assertIsMessage(2)
        self.assertIsDeleted(1)
        self.assertIsDeleted(3)
        self.assertListings([2, 4])
        self.connection.send(b"RSET\r\n")
        for number in [1, 2, 3, 4]:
            self.assertIsMessage(number)
        self.assertListings([1, 2, 3, 4])

    def test_deletionPipelined(self) -> None:
        """
        DELE 1 and RETR 2 in one write: RETR still gives message 2.
        """
        self.assertEqual(
            self.connection.send(b"DELE 1\r\nRETR 2\r\nRETR 1\r\n"),
            b"+OK message 1 deleted\r\n"
            + b"+OK %d octets\r\n" % SIZES[1]
            + RETRIEVED[1]
            + b"-ERR no such message\r\n",
        )


class MemoryNumberingTests(NumberingAfterDeletionMixin, SynchronousTestCase):
    """
    Message numbers after a deletion, with the memory backend.
    """

    def serverWithMessages(self) -> POP3ServerFactory:
        """
        A server on a L{MemoryRealm}.
        """
        realm = MemoryRealm({"alice": MemoryMailbox(MESSAGES, "memory:alice")})
        return _factory(realm)

    def test_memoryUids(self) -> None:
        """
        The memory backend's unique-ids are the ones it documents, in order.
        """
        self.assertEqual(self.uids, [b"m1", b"m2", b"m3", b"m4"])


class MaildirNumberingTests(NumberingAfterDeletionMixin, SynchronousTestCase):
    """
    Message numbers after a deletion, with the Maildir backend.
    """

    def serverWithMessages(self) -> POP3ServerFactory:
        """
        A server on a L{MaildirRealm} whose user alice has the messages delivered in
        order.
        """
        root = self.mktemp()
        os.makedirs(root)
        for message in MESSAGES:
            deliver(os.path.join(root, "alice"), io.BytesIO(message))
        return _factory(MaildirRealm(root, create=False))


def _factory(realm: IRealm) -> POP3ServerFactory:
    """
    A server factory for C{realm} where alice's password is secret.
    """
    checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
    return POP3ServerFactory(Portal(realm, [checker]), clock=Clock(), allowCleartext="always")
