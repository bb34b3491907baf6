"""
Tests for L{pop3kit.backends.postgresql}, against a private PostgreSQL server started by
the tests (L{tests._postgres}): the L{IMailbox} contract, the schema migrations, the
one-transaction expunge, the advisory maildrop lock across front-ends, quotas, an
unreachable database, and a POP3 session over loopback.
"""

from __future__ import annotations

import io
import os
import poplib
import time
from typing import Any, cast

import psycopg
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from pop3kit.backends.postgresql import (
    MIGRATIONS,
    PostgreSQLDelivery,
    PostgreSQLLocker,
    PostgreSQLMailbox,
    PostgreSQLRealm,
    PostgreSQLStore,
    StoredMessage,
    migrateSchema,
)
from pop3kit.delivery import StorageFull
from pop3kit.errors import MaildropInUse, PermanentFailure, TemporaryFailure
from pop3kit.interfaces import IMailbox
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import IMailboxContractMixin
from tests._oracle import crlfForm
from tests._postgres import postgresql


class DatabaseMixin:
    """
    A fresh database with pop3kit's schema, and a store on it closed at the end.
    """

    def newStore(self: Any) -> PostgreSQLStore:
        self.dsn = postgresql().newDatabase()
        migrateSchema(self.dsn)
        store = PostgreSQLStore(self.dsn, reactor, maxConnections=4)  # type: ignore[arg-type]
        self.addCleanup(store.close)
        return store

    def sql(self: Any, query: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            cursor = connection.execute(query, params or None)
            return cursor.fetchall() if cursor.description else []


class PostgreSQLContractTests(DatabaseMixin, IMailboxContractMixin, TestCase):
    """
    L{PostgreSQLMailbox} keeps the L{IMailbox} contract.
    """

    async def _make(self, messages: list[bytes]) -> IMailbox:
        store = self.newStore()
        delivery = PostgreSQLDelivery(store)
        for number, message in enumerate(messages):
            await delivery.store("alice", [StoredMessage(f"uid{number}", message)])
        return PostgreSQLMailbox(store, "alice")

    def mailboxWithMessages(self, messages: list[bytes]) -> Deferred[IMailbox]:
        return Deferred.fromCoroutine(self._make(messages))

    def deliverMore(self, mailbox: IMailbox, message: bytes) -> Deferred[None]:
        assert isinstance(mailbox, PostgreSQLMailbox)
        return PostgreSQLDelivery(mailbox._store).deliver("alice", io.BytesIO(message))

    def reopen(self, mailbox: IMailbox) -> Deferred[IMailbox]:
        assert isinstance(mailbox, PostgreSQLMailbox)
        return Deferred.fromCoroutine(self._reopen(mailbox))

    async def _reopen(self, mailbox: PostgreSQLMailbox) -> IMailbox:
        return PostgreSQLMailbox(mailbox._store, "alice")


class SchemaTests(DatabaseMixin, TestCase):
    """
    L{migrateSchema}: versioned, idempotent, refuses a newer schema.
    """

    def test_initAndAgain(self) -> None:
        """
        The first run creates the schema; a second changes nothing.
        """
        dsn = postgresql().newDatabase()
        self.assertEqual(migrateSchema(dsn), (0, len(MIGRATIONS)))
        self.assertEqual(migrateSchema(dsn), (len(MIGRATIONS), len(MIGRATIONS)))

    def test_newerSchemaRefused(self) -> None:
        """
        A database migrated by a newer pop3kit is refused with a clear error.
        """
        self.newStore()
        self.sql("UPDATE pop3kit_schema_version SET version = 99")
        with self.assertRaises(PermanentFailure) as caught:
            migrateSchema(self.dsn)
        self.assertIn("schema version 99", str(caught.exception))


class StorageTests(DatabaseMixin, TestCase):
    """
    What the database does that a Maildir cannot.
    """

    async def test_expungeIsOneTransaction(self) -> None:
        """
        When one deletion fails, none happens.
        """
        store = self.newStore()
        delivery = PostgreSQLDelivery(store)
        await delivery.store("alice", [StoredMessage("a", b"one\n"), StoredMessage("b", b"two\n")])
        self.sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF OLD.uidl = 'b' THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN OLD; END $$"
        )
        self.sql(
            "CREATE TRIGGER refuse BEFORE DELETE ON pop3kit_messages"
            " FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
        mailbox = PostgreSQLMailbox(store, "alice")
        with self.assertRaises(TemporaryFailure):
            await mailbox.expunge(["a", "b"])
        self.assertEqual([m.uid for m in await mailbox.listMessages()], ["a", "b"])

    async def test_retrInChunks(self) -> None:
        """
        A body larger than the read chunk comes back whole, byte for byte.
        """
        store = self.newStore()
        body = b"Subject: big\n\n" + os.urandom(2 * 1024 * 1024 + 12345)
        await PostgreSQLDelivery(store).store("alice", [StoredMessage("big", body)])
        with await PostgreSQLMailbox(store, "alice").openMessage("big") as opened:
            self.assertEqual(opened.read(), body)

    async def test_storingAgainKeepsOneCopy(self) -> None:
        """
        Storing a UIDL the maildrop holds already is skipped (migrations can resume).
        """
        store = self.newStore()
        delivery = PostgreSQLDelivery(store)
        await delivery.store("alice", [StoredMessage("x", b"one\n")])
        await delivery.store("alice", [StoredMessage("x", b"one\n"), StoredMessage("y", b"2\n")])
        listing = await PostgreSQLMailbox(store, "alice").listMessages()
        self.assertEqual([(m.uid, m.size) for m in listing], [("x", 5), ("y", 3)])

    async def test_quota(self) -> None:
        """
        A user at their C{max_messages} gets no more mail, as a temporary failure.
        """
        store = self.newStore()
        delivery = PostgreSQLDelivery(store)
        await delivery.deliver("alice", io.BytesIO(b"first\n"))
        self.sql("UPDATE pop3kit_users SET max_messages = 1 WHERE name = 'alice'")
        with self.assertRaises(StorageFull):
            await delivery.deliver("alice", io.BytesIO(b"second\n"))
        self.assertEqual(len(await PostgreSQLMailbox(store, "alice").listMessages()), 1)

    async def test_unreachable(self) -> None:
        """
        A database that cannot be reached makes a temporary failure, not a hang.
        """
        dsn = "postgresql://postgres@127.0.0.1:9/none?connect_timeout=1"
        store = PostgreSQLStore(dsn, reactor)  # type: ignore[arg-type]
        self.addCleanup(store.close)
        with self.assertRaises(TemporaryFailure):
            await PostgreSQLMailbox(store, "alice").listMessages()


class LockTests(DatabaseMixin, TestCase):
    """
    L{PostgreSQLLocker}: one session per maildrop across front-ends.
    """

    def locker(self) -> PostgreSQLLocker:
        locker = PostgreSQLLocker(self.dsn, reactor)  # type: ignore[arg-type]
        self.addCleanup(locker.close)
        return locker

    async def test_otherFrontEndRefused(self) -> None:
        """
        A second front-end (another connection) cannot lock a maildrop one holds; it can
        once the first releases it.
        """
        self.newStore()
        first, second = self.locker(), self.locker()
        lock = await first.acquire("alice")
        with self.assertRaises(MaildropInUse):
            await second.acquire("alice")
        await (await second.acquire("bob")).release()
        await lock.release()
        await (await second.acquire("alice")).release()

    async def test_sameProcessRefused(self) -> None:
        """
        Two sessions of one front-end exclude each other too.
        """
        self.newStore()
        locker = self.locker()
        lock = await locker.acquire("alice")
        with self.assertRaises(MaildropInUse):
            await locker.acquire("alice")
        await lock.release()

    async def test_deadFrontEndReleases(self) -> None:
        """
        When a front-end's connection dies, PostgreSQL frees its locks.
        """
        self.newStore()
        first, second = self.locker(), self.locker()
        await first.acquire("alice")
        first.close()
        for _ in range(50):
            try:
                await (await second.acquire("alice")).release()
                return
            except MaildropInUse:
                await deferLater(reactor, 0.1, lambda: None)
        self.fail("the lock of a closed connection was never released")

    async def test_expungeNeedsTheLock(self) -> None:
        """
        After the lock connection was lost, the expunge deletes nothing.
        """
        store = self.newStore()
        await PostgreSQLDelivery(store).store("alice", [StoredMessage("a", b"one\n")])
        locker = self.locker()
        await locker.acquire("alice")
        mailbox = PostgreSQLMailbox(store, "alice", locker)
        holder = locker.holder("alice")
        assert holder is not None
        # Wait (up to 5 s) until the backend is gone, not only signalled.
        self.sql("SELECT pg_terminate_backend(%s, 5000)", holder[0])
        with self.assertRaises(TemporaryFailure):
            await mailbox.expunge(["a"])
        self.assertEqual([m.uid for m in await mailbox.listMessages()], ["a"])

    async def test_expungeUnderTheLock(self) -> None:
        """
        With the lock held, the expunge deletes.
        """
        store = self.newStore()
        await PostgreSQLDelivery(store).store("alice", [StoredMessage("a", b"one\n")])
        locker = self.locker()
        lock = await locker.acquire("alice")
        mailbox = PostgreSQLMailbox(store, "alice", locker)
        await mailbox.expunge(["a"])
        self.assertEqual(list(await mailbox.listMessages()), [])
        await lock.release()


class ServerTests(DatabaseMixin, TestCase):
    """
    The POP3 server on the database, over loopback, with poplib.
    """

    async def test_session(self) -> None:
        """
        LIST, UIDL, RETR, DELE and QUIT work; the deletion holds in the next session; a
        second session meanwhile gets C{[IN-USE]}.
        """
        store = self.newStore()
        message = b"From: a@example.com\nSubject: pg\n\n.dot\nbody\n"
        await PostgreSQLDelivery(store).store(
            "alice", [StoredMessage("one", message), StoredMessage("two", b"x\n")]
        )
        locker = PostgreSQLLocker(self.dsn, reactor)  # type: ignore[arg-type]
        self.addCleanup(locker.close)
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        factory = POP3ServerFactory(
            Portal(PostgreSQLRealm(store, locker), [checker]), locker=locker
        )
        servers: list[Any] = []
        build = factory.buildProtocol

        def buildProtocol(addr: Any) -> Any:
            servers.append(build(addr))
            return servers[-1]

        factory.buildProtocol = buildProtocol  # type: ignore[method-assign]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        number = cast(IPv4Address, port.getHost()).port

        def login() -> poplib.POP3:
            client = poplib.POP3("127.0.0.1", number, timeout=30)
            client.user("alice")
            client.pass_("secret")
            return client

        def session() -> tuple[Any, ...]:
            client = login()
            try:
                uidl = client.uidl()[1]
                retrieved = client.retr(1)[1]
                client.dele(2)
                try:
                    login()
                    inUse = b""
                except poplib.error_proto as e:
                    inUse = e.args[0]
                return uidl, retrieved, inUse, client.quit()
            finally:
                client.close()

        uidl, lines, inUse, bye = await deferToThread(session)
        self.assertEqual(uidl, [b"1 one", b"2 two"])
        self.assertEqual(b"".join(line + b"\r\n" for line in lines), crlfForm(message))
        self.assertTrue(inUse.startswith(b"-ERR [IN-USE]"), inUse)
        self.assertTrue(bye.startswith(b"+OK"))

        def again() -> list[bytes]:
            # The lock is released once the server has answered QUIT: a client that
            # comes back at once may find it still held for a moment.
            for _ in range(100):
                try:
                    client = login()
                except poplib.error_proto as e:
                    self.assertTrue(e.args[0].startswith(b"-ERR [IN-USE]"), e)
                    time.sleep(0.05)
                    continue
                try:
                    return client.uidl()[1]
                finally:
                    client.quit()
            self.fail("the maildrop lock was never released")

        self.assertEqual(await deferToThread(again), [b"1 one"])
        while any(server.transport.connected for server in servers):
            await deferLater(reactor, 0.01, lambda: None)
