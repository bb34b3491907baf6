"""
Tests for C{EXPIRE n} (RFC 2449 section 6.7) as the server keeps it: the core reports the
messages retrieved, the session records them through L{pop3kit.interfaces.IRetrievalLog}
at QUIT and removes those retrieved more than C{n} days before, in memory and in a
Maildir whose record survives restarts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from typing import BinaryIO

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Interface, implementer

from pop3kit.backends import _retrieval
from pop3kit.backends.maildir import MaildirRealm, deliver
from pop3kit.backends.memory import MemoryMailbox, MemoryRealm
from pop3kit.core import (
    BodyFollows,
    BodySent,
    Capabilities,
    Expunge,
    MessageInfo,
    State,
)
from pop3kit.errors import TemporaryFailure
from pop3kit.interfaces import IMailbox, IRetrievalLog
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedServer
from tests.test_core_connection import events, loggedIn

DAY = 86400.0


class CoreTests(SynchronousTestCase):
    """
    The core reports the messages retrieved with RETR at QUIT when EXPIRE has days or
    NEVER.
    """

    def quit(self, expire: int | str | None) -> list[object]:
        connection = loggedIn(1, 2, 3, 4, capabilities=Capabilities(expire=expire))
        for line in (b"RETR 1\r\n", b"TOP 2 0\r\n", b"RETR 3\r\n"):
            events(connection, line)
            connection.send(BodyFollows())
            connection.send(BodySent())
        events(connection, b"DELE 3\r\n")
        return list(events(connection, b"QUIT\r\n"))

    def test_retrievedReported(self) -> None:
        """
        With C{EXPIRE 30}, QUIT reports the messages retrieved with RETR (not TOP) and
        not deleted.
        """
        self.assertEqual(self.quit(30), [Expunge(frozenset({"u3"}), frozenset({"u1"}))])

    def test_neverReported(self) -> None:
        """
        With C{EXPIRE NEVER} the retrievals are reported too.
        """
        self.assertEqual(self.quit("NEVER"), [Expunge(frozenset({"u3"}), frozenset({"u1"}))])

    def test_zeroUnchanged(self) -> None:
        """
        With C{EXPIRE 0} the messages retrieved are removed in the same session, as
        before.
        """
        self.assertEqual(self.quit(0), [Expunge(frozenset({"u1", "u3"}))])

    def test_noExpireNothingReported(self) -> None:
        """
        Without EXPIRE nothing is recorded.
        """
        self.assertEqual(self.quit(None), [Expunge(frozenset({"u3"}))])


def memoryServer(
    expire: int | str | None, realm: IRealm | None = None, mailbox: MemoryMailbox | None = None
) -> tuple[POP3ServerFactory, MemoryMailbox, Clock]:
    """
    A server with C{EXPIRE expire} whose user alice (password C{secret}) has three
    messages, and its clock, 100 days after the epoch.
    """
    if mailbox is None:
        mailbox = MemoryMailbox([b"one\n", b"two\n", b"three\n"], maildropId="memory:alice")
    if realm is None:
        realm = MemoryRealm({"alice": mailbox})
    portal = Portal(realm, [InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")])
    clock = Clock()
    clock.advance(100 * DAY)
    return POP3ServerFactory(portal, clock=clock, expire=expire), mailbox, clock


def session(factory: POP3ServerFactory, *commands: bytes) -> bytes:
    """
    Log alice in, send C{commands}, QUIT, and return everything after the login.
    """
    server = ConnectedServer(factory)
    assert b"+OK maildrop" in server.login(b"alice", b"secret")
    out = b"".join(server.send(command + b"\r\n") for command in commands)
    return out + server.send(b"QUIT\r\n")


class MemoryExpireTests(SynchronousTestCase):
    """
    EXPIRE n with the memory backend, over sessions on a fake clock.
    """

    def test_expiredAtLaterQuit(self) -> None:
        """
        A message retrieved on day 0 is kept by sessions up to day n and removed at the
        QUIT of a session after day n; messages never retrieved, or only read with TOP,
        stay.
        """
        factory, mailbox, clock = memoryServer(3)
        session(factory, b"RETR 1", b"TOP 2 0")
        self.assertEqual(mailbox.retrievedAt, {"m1": 100 * DAY})
        clock.advance(3 * DAY)
        session(factory)
        self.assertEqual(len(mailbox.messages), 3)
        clock.advance(1)
        self.assertTrue(session(factory).endswith(b"+OK bye\r\n"))
        self.assertEqual(mailbox.messages, [b"two\n", b"three\n"])
        self.assertEqual(mailbox.retrievedAt, {})

    def test_firstRetrievalCounts(self) -> None:
        """
        Retrieving a message again does not restart its EXPIRE period.
        """
        factory, mailbox, clock = memoryServer(3)
        session(factory, b"RETR 1")
        clock.advance(2 * DAY)
        session(factory, b"RETR 1")
        clock.advance(1 * DAY + 1)
        session(factory)
        self.assertEqual(mailbox.messages, [b"two\n", b"three\n"])

    def test_neverKeeps(self) -> None:
        """
        With C{EXPIRE NEVER}, retrieved messages are recorded and never removed.
        """
        factory, mailbox, clock = memoryServer("NEVER")
        session(factory, b"RETR 1")
        clock.advance(10_000 * DAY)
        session(factory)
        self.assertEqual(len(mailbox.messages), 3)
        self.assertEqual(mailbox.retrievedAt, {"m1": 100 * DAY})

    def test_zeroRemovesInSession(self) -> None:
        """
        C{EXPIRE 0} removes the messages retrieved at the QUIT of the same session.
        """
        factory, mailbox, _ = memoryServer(0)
        session(factory, b"RETR 2")
        self.assertEqual(mailbox.messages, [b"one\n", b"three\n"])

    def test_droppedSessionRecordsNothing(self) -> None:
        """
        A session that ends without QUIT records no retrieval (it had no UPDATE state).
        """
        factory, mailbox, _ = memoryServer(3)
        server = ConnectedServer(factory)
        server.login(b"alice", b"secret")
        server.send(b"RETR 1\r\n")
        server.drop()
        self.assertEqual(mailbox.retrievedAt, {})

    def test_recordFailureStillRemovesDeleted(self) -> None:
        """
        When the retrieval cannot be recorded, the messages marked deleted are still
        removed and QUIT succeeds; the failure is logged.
        """
        mailbox = FailingLog([b"one\n", b"two\n"], maildropId="memory:alice")
        factory, _, _ = memoryServer(3, mailbox=mailbox)
        out = session(factory, b"RETR 1", b"DELE 2")
        self.assertTrue(out.endswith(b"+OK bye\r\n"), out)
        self.assertEqual(mailbox.messages, [b"one\n"])
        self.assertEqual(len(self.flushLoggedErrors(TemporaryFailure)), 1)


class FailingLog(MemoryMailbox):
    """
    A memory mailbox whose retrieval record cannot be written.
    """

    def markRetrieved(self, uids: Collection[str], when: float) -> Deferred[None]:
        return fail(TemporaryFailure("disk full"))


@implementer(IMailbox)
class PlainMailbox:
    """
    A mailbox that cannot record retrievals (no L{IRetrievalLog}).
    """

    maildropId = "plain:alice"

    def __init__(self) -> None:
        self._inner = MemoryMailbox([b"one\n"])

    def listMessages(self) -> Deferred[Sequence[MessageInfo]]:
        return self._inner.listMessages()

    def openMessage(self, uid: str) -> Deferred[BinaryIO]:
        return self._inner.openMessage(uid)

    def expunge(self, uids: Collection[str]) -> Deferred[None]:
        return self._inner.expunge(uids)


@implementer(IRealm)
class PlainRealm:
    """
    Hands out a L{PlainMailbox}.
    """

    def requestAvatar(
        self, avatarId: bytes | tuple[()], mind: object, *interfaces: type[Interface]
    ) -> tuple[type[Interface], object, Callable[[], None]]:
        return IMailbox, PlainMailbox(), lambda: None


class UnsupportedBackendTests(SynchronousTestCase):
    """
    A backend that cannot record retrievals is not promised an EXPIRE it cannot keep.
    """

    def test_announcedNeverAfterLogin(self) -> None:
        """
        Before login CAPA shows the server's C{EXPIRE 3}; after login, C{EXPIRE NEVER}.
        """
        factory, _, _ = memoryServer(3, realm=PlainRealm())
        server = ConnectedServer(factory)
        self.assertIn(b"\r\nEXPIRE 3\r\n", server.send(b"CAPA\r\n"))
        server.login(b"alice", b"secret")
        self.assertIn(b"\r\nEXPIRE NEVER\r\n", server.send(b"CAPA\r\n"))
        self.assertFalse(IRetrievalLog.providedBy(PlainMailbox()))


class MaildirExpireTests(SynchronousTestCase):
    """
    EXPIRE n with Maildirs: the record is a file in the Maildir, which survives restarts
    and does not change unique-ids.
    """

    def setUp(self) -> None:
        self.root = self.mktemp()
        os.makedirs(self.root)
        self.maildir = os.path.join(self.root, "alice")
        for body in (b"one\n", b"two\n", b"three\n"):
            deliver(self.maildir, _bytesIO(body))

    def server(self, expire: int | str) -> tuple[POP3ServerFactory, Clock]:
        """
        A new server (as after a restart) over the Maildirs, on a fake clock.
        """
        realm = MaildirRealm(self.root)
        factory, _, clock = memoryServer(expire, realm=realm)
        return factory, clock

    def messages(self) -> list[bytes]:
        found = []
        for sub in ("new", "cur"):
            for name in sorted(os.listdir(os.path.join(self.maildir, sub))):
                with open(os.path.join(self.maildir, sub, name), "rb") as f:
                    found.append(f.read())
        return sorted(found)

    def test_expiredAcrossRestarts(self) -> None:
        """
        Retrieved on day 0 and QUIT; a session of a restarted server on day n + 1
        removes it at QUIT, keeping the messages never retrieved; unique-ids are
        unchanged by the record.
        """
        factory, clock = self.server(3)
        uidlBefore = ConnectedServer(factory)
        uidlBefore.login(b"alice", b"secret")
        before = uidlBefore.send(b"UIDL\r\n")
        uidlBefore.send(b"QUIT\r\n")
        session(factory, b"RETR 2")
        record = _retrieval.readRecord(self.maildir)
        self.assertEqual(list(record.values()), [100 * DAY])

        factory, clock = self.server(3)
        clock.advance(3 * DAY)
        out = session(factory, b"UIDL")
        self.assertIn(before, out)
        self.assertEqual(len(self.messages()), 3)

        factory, clock = self.server(3)
        clock.advance(4 * DAY)
        session(factory)
        self.assertEqual(self.messages(), [b"one\n", b"three\n"])
        self.assertEqual(_retrieval.readRecord(self.maildir), record)

        # The next record drops the line of the message removed.
        factory, clock = self.server(3)
        clock.advance(4 * DAY)
        session(factory, b"RETR 1")
        self.assertEqual(list(_retrieval.readRecord(self.maildir).values()), [104 * DAY])

    def test_neverKeeps(self) -> None:
        """
        With C{EXPIRE NEVER} the retrieval is recorded and nothing is removed.
        """
        factory, clock = self.server("NEVER")
        session(factory, b"RETR 1")
        clock.advance(1000 * DAY)
        session(factory)
        self.assertEqual(len(self.messages()), 3)
        self.assertEqual(len(_retrieval.readRecord(self.maildir)), 1)

    def test_tornRecordIgnored(self) -> None:
        """
        Lines that cannot be read are ignored, and a leftover C{.new} file from a
        crash changes nothing.
        """
        factory, clock = self.server(3)
        session(factory, b"RETR 1")
        path = os.path.join(self.maildir, _retrieval.RECORD_NAME)
        with open(path, "ab") as f:
            f.write(b"garbage\nx nan\n\xff 1\nhalf")
        with open(path + ".new", "wb") as f:
            f.write(b"")
        self.assertEqual(len(_retrieval.readRecord(self.maildir)), 1)
        clock.advance(4 * DAY)
        session(factory)
        self.assertEqual(self.messages(), [b"three\n", b"two\n"])

    def test_firstRetrievalKept(self) -> None:
        """
        A message recorded again keeps its first retrieval time, across restarts.
        """
        factory, clock = self.server(3)
        session(factory, b"RETR 1")
        factory, clock = self.server(3)
        clock.advance(2 * DAY)
        session(factory, b"RETR 1")
        self.assertEqual(list(_retrieval.readRecord(self.maildir).values()), [100 * DAY])

    def test_failedWriteKeepsOldRecord(self) -> None:
        """
        A record that cannot be made durable (fsync fails) leaves the old record whole
        and no temporary file; the session's QUIT still removes what was deleted.
        """
        factory, _ = self.server(3)
        session(factory, b"RETR 1")
        old = _retrieval.readRecord(self.maildir)

        def failingFsync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        self.patch(os, "fsync", failingFsync)
        out = session(factory, b"RETR 2", b"DELE 3")
        self.assertTrue(out.endswith(b"+OK bye\r\n"), out)
        self.assertEqual(_retrieval.readRecord(self.maildir), old)
        self.assertNotIn(_retrieval.RECORD_NAME + ".new", os.listdir(self.maildir))
        self.assertEqual(len(self.messages()), 2)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(len(self.flushLoggedErrors(TemporaryFailure)), 1)

    def test_noScanWithoutCandidates(self) -> None:
        """
        Nothing retrieved long enough ago: the Maildir is not scanned.
        """
        _retrieval.markRetrieved(self.maildir, ["u"], 10.0, lambda: {"u"})
        scans: list[None] = []

        def stored() -> set[str]:
            scans.append(None)
            return {"u"}

        self.assertEqual(_retrieval.expiredUids(self.maildir, 10.0, stored), [])
        self.assertEqual(scans, [])
        _retrieval.markRetrieved(self.maildir, ["u"], 20.0, stored)
        self.assertEqual(scans, [])

    def test_onlyStoredExpire(self) -> None:
        """
        C{expired} returns only the messages still stored.
        """
        _retrieval.markRetrieved(self.maildir, ["gone"], 1.0, lambda: {"gone"})
        self.assertEqual(_retrieval.expiredUids(self.maildir, 2.0, set), [])
        self.assertEqual(_retrieval.expiredUids(self.maildir, 2.0, lambda: {"gone"}), ["gone"])
        self.assertEqual(_retrieval.expiredUids(self.maildir, 1.0, lambda: {"gone"}), [])


def _bytesIO(data: bytes) -> BinaryIO:
    import io

    return io.BytesIO(data)


class StateTests(SynchronousTestCase):
    """
    The USER argument of per-user values appears in AUTHORIZATION only.
    """

    def test_userOnlyBeforeLogin(self) -> None:
        """
        C{perUser} adds C{USER} to LOGIN-DELAY and EXPIRE in AUTHORIZATION, not in
        TRANSACTION.
        """
        capabilities = Capabilities(loginDelay=900, expire=30, perUser=True)
        before = capabilities.lines(State.AUTHORIZATION)
        after = capabilities.lines(State.TRANSACTION)
        self.assertIn(b"LOGIN-DELAY 900 USER", before)
        self.assertIn(b"EXPIRE 30 USER", before)
        self.assertIn(b"LOGIN-DELAY 900", after)
        self.assertIn(b"EXPIRE 30", after)
        self.assertTrue(Capabilities.fromLines(before).perUser)
        self.assertFalse(Capabilities.fromLines(after).perUser)
        self.assertEqual(Capabilities.fromLines(before).expire, 30)
        self.assertTrue(Capabilities.fromLines([b"EXPIRE 30 user"]).perUser)
