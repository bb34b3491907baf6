"""
Interoperability of the PostgreSQL backend with real POP3 clients: the poplib command and
round-trip tests (the 50 MB message included), and the mpop, fetchmail, getmail6 and
Net::POP3 tests of L{tests.test_interop_clients}, run against the server serving alice's
maildrop from a private PostgreSQL (L{tests._postgres}) through
C{--storage postgresql://...}'s storage (its realm and its advisory-lock locker) instead
of her Maildir.

The suites are reused as they are: each class here only replaces, for its tests, the
C{MaildirServer} those modules build by a L{PostgreSQLServer}, which has its interface.
"""

from __future__ import annotations

import os
import poplib
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar, cast

from twisted.cred.portal import Portal
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from pop3kit.checkers.passwdfile import PasswdFileChecker, addUser, hashPassword
from pop3kit.storage import parseStorage
from tests import test_interop_clients as clients
from tests import test_interop_poplib as poplibsuite
from tests._postgres import postgresql
from tests.test_server_loopback import LoopbackServer

_T = TypeVar("_T")


class PostgreSQLServer(poplibsuite.MaildirServer):
    """
    The real server on 127.0.0.1 for one test, serving the maildrops of a fresh database
    of the private PostgreSQL through the storage C{--storage postgresql://...} makes,
    alice's C{PLAIN} password C{secret} in a passwd-file.

    @ivar dsn: The database's connection string.
    @ivar maildir: The maildrop name, C{alice} (what the poplib suite passes to
        L{storeStream}).
    """

    def __init__(self, testCase: TestCase, **options: Any) -> None:
        from pop3kit.backends.postgresql import PostgreSQLStorage, migrateSchema

        self.dsn = postgresql().newDatabase()
        migrateSchema(self.dsn)
        base = os.path.abspath(testCase.mktemp())
        os.makedirs(base)
        self.passwd = os.path.join(base, "passwd")
        addUser(self.passwd, "alice", hashPassword("secret", "PLAIN"))
        self.maildir = "alice"
        storage = parseStorage(self.dsn)
        assert isinstance(storage, PostgreSQLStorage)
        self.storage = storage
        self.locker = locker = storage.makeLocker()
        portal = Portal(storage.makeRealm(), [PasswdFileChecker(self.passwd)])
        # Cleanups run last-in first-out: the server stops before the pool closes.
        testCase.addCleanup(locker.close)
        testCase.addCleanup(storage.store().close)
        self.server = LoopbackServer(testCase, portal=portal, locker=locker, **options)
        self.port = self.server.start()

    async def session(self, work: Callable[[poplib.POP3], _T], login: bool = True) -> _T:
        """
        As the Maildir server's, and return once alice's maildrop lock is released too: a
        client that leaves without QUIT has its advisory lock released a database round
        trip after the connection is gone (after QUIT, before its answer).
        """
        result = await super().session(work, login)
        while self.locker._inProcess.isLocked("postgresql:alice"):
            await deferLater(reactor, 0.01)
        return result

    def deliver(self, *messages: bytes) -> None:
        """
        Store C{messages} for alice, in this order, each in a transaction of its own.
        """
        for message in messages:
            _storeNow(self.dsn, "alice", message)

    def files(self) -> list[str]:
        """
        The UIDLs of alice's stored messages, in delivery order.
        """
        import psycopg

        with psycopg.connect(self.dsn) as connection:
            rows = connection.execute(
                "SELECT m.uidl FROM pop3kit_messages m JOIN pop3kit_users u"
                " ON u.id = m.user_id WHERE u.name = 'alice' ORDER BY m.id"
            ).fetchall()
        return [uidl for (uidl,) in rows]


def _storeNow(dsn: str, name: str, body: bytes) -> None:
    """
    Store one message for C{name} now, with a new UIDL, through the very transaction
    body L{PostgreSQLDelivery.store <pop3kit.backends.postgresql.PostgreSQLDelivery.store>}
    runs, on a connection of its own: the suites deliver synchronously, outside the
    reactor's turn.
    """
    import uuid

    import psycopg

    from pop3kit.backends.postgresql import StoredMessage, _store

    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        _store(cursor, name, [StoredMessage(uuid.uuid4().hex, body)])


_servers: list[PostgreSQLServer] = []


class _Remembering(PostgreSQLServer):
    """
    A L{PostgreSQLServer} that L{storeStream} can find again by its maildrop.
    """

    def __init__(self, testCase: TestCase, **options: Any) -> None:
        super().__init__(testCase, **options)
        _servers.append(self)
        testCase.addCleanup(_servers.remove, self)


def storeStream(maildrop: str, message: BinaryIO) -> None:
    """
    Store the message read from C{message} for C{maildrop} of the newest server: what the
    poplib suite's C{deliver} does for a Maildir.
    """
    chunks = []
    while chunk := message.read(1 << 20):
        chunks.append(chunk)
    _storeNow(_servers[-1].dsn, maildrop, b"".join(chunks))


class PostgreSQLCommandTests(poplibsuite.CommandTests):
    """
    Each POP3 command through poplib, from PostgreSQL.
    """

    def setUp(self) -> None:
        self.patch(poplibsuite, "MaildirServer", PostgreSQLServer)
        super().setUp()


class PostgreSQLRoundTripTests(poplibsuite.RoundTripTests):
    """
    Messages of every shape, and one of 50 MB, through poplib from PostgreSQL.
    """

    def setUp(self) -> None:
        self.patch(poplibsuite, "MaildirServer", _Remembering)
        self.patch(poplibsuite, "deliver", cast(Any, storeStream))
        super().setUp()


class PostgreSQLMpopTests(clients.MpopTests):
    """
    mpop against PostgreSQL.
    """

    def setUp(self) -> None:
        self.patch(clients, "MaildirServer", PostgreSQLServer)
        super().setUp()


class PostgreSQLFetchmailTests(clients.FetchmailTests):
    """
    fetchmail against PostgreSQL.
    """

    def setUp(self) -> None:
        self.patch(clients, "MaildirServer", PostgreSQLServer)
        super().setUp()


class PostgreSQLGetmailTests(clients.GetmailTests):
    """
    getmail6 against PostgreSQL.
    """

    def setUp(self) -> None:
        self.patch(clients, "MaildirServer", PostgreSQLServer)
        super().setUp()


class PostgreSQLNetPOP3Tests(clients.NetPOP3Tests):
    """
    Perl's Net::POP3 against PostgreSQL.
    """

    def setUp(self) -> None:
        self.patch(clients, "MaildirServer", PostgreSQLServer)
        super().setUp()
