# -*- test-case-name: tests.test_backend_postgresql -*-
"""
PostgreSQL as the system of record: maildrops stored in a database that many front-ends
share.

Messages are rows of C{pop3kit_messages}, each with its stored UIDL, its size as POP3
counts it (CRLF line ends) and the time it was received; users are rows of
C{pop3kit_users}, with an optional quota of messages.  The schema is created and upgraded
by L{migrateSchema} (C{pop3kit storage init URL}).

Nothing here blocks the reactor: queries run in the threads of Twisted's
L{ConnectionPool <twisted.enterprise.adbapi.ConnectionPool>}, bounded to
C{maxConnections}.  C{RETR} reads the body in chunks of 1 MiB (the C{body} column is stored
uncompressed, so PostgreSQL reads only the chunk asked for) into a temporary file that the
server streams from, so a 50 MiB message never sits whole in memory.  The expunge at
C{QUIT} is one transaction: every marked message goes, or none.  The maildrop lock is a
PostgreSQL advisory lock held on a connection of its own (L{PostgreSQLLocker}), so it holds
across every front-end sharing the database and is released by PostgreSQL when a front-end
dies; an expunge checks in its transaction that the lock is still held.

The driver is psycopg 3 (C{pip install 'pop3kit[postgresql]'}).  Connection strings are
libpq's (C{postgresql://user@host:port/db?sslmode=verify-full}); keep the password out of
them and out of the command line with libpq's C{~/.pgpass} (C{PGPASSFILE}) or a service
file (C{service=pop3kit}, C{PGSERVICEFILE}).
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from twisted.cred.portal import IRealm
from twisted.enterprise.adbapi import ConnectionPool, Transaction
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from pop3kit.core import MessageInfo, isValidUid, wireSize
from pop3kit.delivery import StorageFull, resolveRecipient
from pop3kit.errors import MaildropInUse, MessageUnavailable, PermanentFailure, TemporaryFailure
from pop3kit.interfaces import IMailbox, IMaildropDelivery, IMaildropLock, IMaildropLocker
from pop3kit.locking import InProcessLocker

__all__ = [
    "MIGRATIONS",
    "PostgreSQLDelivery",
    "PostgreSQLLocker",
    "PostgreSQLMailbox",
    "PostgreSQLRealm",
    "PostgreSQLStorage",
    "PostgreSQLStore",
    "StoredMessage",
    "migrateSchema",
    "parseStorageURL",
    "schemaVersion",
]

#: The schema, one migration per version: version N is reached by running C{MIGRATIONS[N-1]}
#: in one transaction.  Never edit a released migration; append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE pop3kit_schema_version (version integer NOT NULL);
    INSERT INTO pop3kit_schema_version VALUES (0);
    CREATE TABLE pop3kit_users (
        id bigserial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        max_messages integer CHECK (max_messages >= 0)
    );
    CREATE TABLE pop3kit_messages (
        id bigserial PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES pop3kit_users (id) ON DELETE CASCADE,
        uidl text NOT NULL CHECK (uidl ~ '^[!-~]{1,70}$'),
        wire_size bigint NOT NULL CHECK (wire_size >= 0),
        received timestamptz NOT NULL DEFAULT now(),
        body bytea NOT NULL,
        UNIQUE (user_id, uidl)
    );
    -- Uncompressed out-of-line storage: substring() reads only the chunk asked for.
    ALTER TABLE pop3kit_messages ALTER COLUMN body SET STORAGE EXTERNAL;
    -- The listing at login: one index-only scan in delivery order.
    CREATE INDEX pop3kit_messages_listing
        ON pop3kit_messages (user_id, id) INCLUDE (uidl, wire_size);
    """,
)

_VERSION_TABLE = "pop3kit_schema_version"  # also spelled out in the queries below

#: The advisory lock that serialises concurrent schema migrations.
_MIGRATION_LOCK = 0x706F70336B6974  # "pop3kit"

#: The chunk in which a body is read for C{RETR}.
_CHUNK = 1024 * 1024


def schemaVersion(connection: Any) -> int:
    """
    The schema version of the database behind a psycopg connection; 0 if pop3kit's tables
    are not there yet.
    """
    row = connection.execute("SELECT to_regclass(%s)", (_VERSION_TABLE,)).fetchone()
    if row[0] is None:
        return 0
    version: int = connection.execute("SELECT version FROM pop3kit_schema_version").fetchone()[0]
    return version


def migrateSchema(dsn: str) -> tuple[int, int]:
    """
    Create pop3kit's tables, or upgrade them to the newest version, each migration in a
    transaction of its own.  Safe to run again, and from several hosts at once (an
    advisory lock serialises them).  Blocks: call it from a command or a thread.

    @param dsn: A libpq connection string.
    @return: The versions before and after.
    @raise PermanentFailure: If the database's schema is newer than this pop3kit knows.
    """
    import psycopg

    with psycopg.connect(dsn) as connection:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            before = schemaVersion(connection)
        if before > len(MIGRATIONS):
            raise PermanentFailure(
                f"the database has schema version {before}; this pop3kit knows up to "
                f"{len(MIGRATIONS)}: upgrade pop3kit"
            )
        for version in range(before + 1, len(MIGRATIONS) + 1):
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                if schemaVersion(connection) >= version:
                    continue
                connection.execute(MIGRATIONS[version - 1])
                connection.execute("UPDATE pop3kit_schema_version SET version = %s", (version,))
        return before, schemaVersion(connection)


def _databaseError(failure: Failure) -> Failure:
    """
    A database that cannot be reached or fails becomes C{-ERR [SYS/TEMP]}; pop3kit's own
    errors pass through.
    """
    import psycopg

    if failure.check(psycopg.Error):
        Logger().warn("PostgreSQL: {error}", error=str(failure.value).strip())
        return Failure(TemporaryFailure("mail storage unavailable, try again later"))
    return failure


class PostgreSQLStore:
    """
    The database: a bounded pool of connections, in Twisted's thread pool of its own.
    """

    def __init__(self, dsn: str, reactor: IReactorCore, maxConnections: int = 8) -> None:
        """
        @param dsn: A libpq connection string (see the module's documentation).
        @param reactor: Starts and stops the pool's threads.
        @param maxConnections: The most connections (and threads) the pool opens.
        """
        self.dsn = dsn
        self.pool = ConnectionPool(
            "psycopg",
            conninfo=dsn,
            cp_min=1,
            cp_max=maxConnections,
            cp_reconnect=True,
            cp_noisy=False,
            cp_reactor=reactor,
        )

    def run(self, work: Callable[..., Any], *args: object) -> Deferred[Any]:
        """
        Run C{work(transaction, *args)} in one transaction, in a pool thread.
        """
        d: Deferred[Any] = self.pool.runInteraction(work, *args)
        return d.addErrback(_databaseError)

    def close(self) -> None:
        """
        Close every connection.  Closing twice is harmless.
        """
        if self.pool.running:
            self.pool.close()


def _lockKey(maildrop: str) -> int:
    """
    The advisory-lock key of a maildrop: 64 bits of its name's BLAKE2b, signed as
    PostgreSQL's C{bigint}.
    """
    digest = hashlib.blake2b(b"pop3kit:" + maildrop.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@implementer(IMaildropLock)
class _AdvisoryLock:
    def __init__(self, locker: PostgreSQLLocker, maildrop: str, inProcess: IMaildropLock) -> None:
        self._locker = locker
        self.maildrop = maildrop
        self._inProcess = inProcess
        self._released = False

    def release(self) -> Deferred[None]:
        """
        Release the advisory lock, then the in-process one.  Releasing twice is harmless.
        """
        if self._released:
            return self._inProcess.release()
        self._released = True
        d = self._locker._unlock(self.maildrop)
        d.addErrback(lambda f: Logger().failure("Releasing the maildrop lock", f))
        return d.addBoth(lambda _: self._inProcess.release())


@implementer(IMaildropLocker)
class PostgreSQLLocker:
    """
    Maildrop locks that hold across every front-end sharing a database: PostgreSQL
    advisory locks, held on one connection of this process's own, plus the in-process
    table (an advisory lock is re-entrant within its connection, so it does not exclude
    two sessions of one process).  When a front-end dies, its connection closes and
    PostgreSQL releases its locks.
    """

    def __init__(self, dsn: str, reactor: IReactorCore) -> None:
        """
        @param dsn: A libpq connection string.
        @param reactor: Starts and stops the lock connection's thread.
        """
        self._pool = ConnectionPool(
            "psycopg",
            conninfo=dsn,
            autocommit=True,
            cp_min=1,
            cp_max=1,
            cp_reconnect=True,
            cp_noisy=False,
            cp_reactor=reactor,
        )
        self._inProcess = InProcessLocker()
        self._held: set[str] = set()
        self._backend: int | None = None

    def acquire(self, avatarId: str) -> Deferred[IMaildropLock]:
        """
        Lock C{avatarId}'s maildrop, or fail with L{MaildropInUse}.
        """

        def tryLock(local: IMaildropLock) -> Deferred[IMaildropLock]:
            def locked(row: tuple[bool, int]) -> IMaildropLock:
                got, backend = row
                if not got:
                    raise MaildropInUse()
                self._backend = backend
                self._held.add(avatarId)
                return _AdvisoryLock(self, avatarId, local)

            def refused(failure: Failure) -> Deferred[IMaildropLock]:
                released = local.release()
                return released.addCallback(lambda _: failure)  # type: ignore[return-value]

            d: Deferred[tuple[bool, int]] = self._pool.runInteraction(_tryLock, _lockKey(avatarId))
            return d.addErrback(_databaseError).addCallbacks(locked).addErrback(refused)

        return self._inProcess.acquire(avatarId).addCallback(tryLock)

    def _unlock(self, maildrop: str) -> Deferred[None]:
        self._held.discard(maildrop)
        d: Deferred[None] = self._pool.runInteraction(_unlock, _lockKey(maildrop))
        return d

    def holder(self, maildrop: str) -> tuple[int, int] | None:
        """
        The backend process id of the lock connection and the lock key, if this process
        holds C{maildrop}'s lock; an expunge checks them (L{PostgreSQLMailbox.expunge}).
        """
        if maildrop not in self._held or self._backend is None:
            return None
        return self._backend, _lockKey(maildrop)

    def close(self) -> None:
        """
        Close the lock connection (PostgreSQL then releases every lock it holds).  Closing
        twice is harmless.
        """
        if self._pool.running:
            self._pool.close()


def _tryLock(transaction: Transaction, key: int) -> tuple[bool, int]:
    transaction.execute("SELECT pg_try_advisory_lock(%s), pg_backend_pid()", (key,))
    got, backend = transaction.fetchone()
    return bool(got), int(backend)


def _unlock(transaction: Transaction, key: int) -> None:
    transaction.execute("SELECT pg_advisory_unlock(%s)", (key,))


@implementer(IMailbox)
class PostgreSQLMailbox:
    """
    One user's maildrop in the database.
    """

    def __init__(self, store: PostgreSQLStore, name: str, locker: PostgreSQLLocker | None = None):
        """
        @param store: The database.
        @param name: The user name.
        @param locker: The locker whose lock the expunge checks, if any.
        """
        self._store = store
        self._name = name
        self._locker = locker
        self.maildropId = f"postgresql:{name}"

    def __repr__(self) -> str:
        return f"<PostgreSQLMailbox {self._name!r}>"

    def listMessages(self) -> Deferred[Sequence[MessageInfo]]:
        """
        The maildrop in delivery order: one indexed query.
        """
        return self._store.run(_listing, self._name)

    def openMessage(self, uid: str) -> Deferred[BinaryIO]:
        """
        The message, read from the database in chunks into a temporary file.
        """
        return self._store.run(_spool, self._name, uid)

    def expunge(self, uids: Collection[str]) -> Deferred[None]:
        """
        Remove the messages in one transaction: all go, or none.
        """
        holder = self._locker.holder(self._name) if self._locker is not None else None
        return self._store.run(_expunge, self._name, sorted(uids), holder)


def _listing(transaction: Transaction, name: str) -> list[MessageInfo]:
    transaction.execute(
        "SELECT m.uidl, m.wire_size FROM pop3kit_messages m"
        " JOIN pop3kit_users u ON u.id = m.user_id WHERE u.name = %s ORDER BY m.id",
        (name,),
    )
    return [MessageInfo(uidl, size) for uidl, size in transaction.fetchall()]


def _spool(transaction: Transaction, name: str, uid: str) -> BinaryIO:
    transaction.execute(
        "SELECT m.id, octet_length(m.body) FROM pop3kit_messages m"
        " JOIN pop3kit_users u ON u.id = m.user_id WHERE u.name = %s AND m.uidl = %s",
        (name, uid),
    )
    row = transaction.fetchone()
    if row is None:
        raise MessageUnavailable()
    messageId, length = row
    # Handed to the server, which closes it once the message is sent.
    spool = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        for offset in range(1, length + 1, _CHUNK):
            transaction.execute(
                "SELECT substring(body FROM %s FOR %s) FROM pop3kit_messages WHERE id = %s",
                (offset, _CHUNK, messageId),
            )
            spool.write(transaction.fetchone()[0])
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool  # type: ignore[return-value]


def _expunge(
    transaction: Transaction, name: str, uids: list[str], holder: tuple[int, int] | None
) -> None:
    if holder is not None:
        backend, key = holder
        transaction.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid = %s AND objsubid = 1"
            " AND ((classid::bigint << 32) | objid::bigint) = %s)",
            (backend, key),
        )
        if not transaction.fetchone()[0]:
            raise TemporaryFailure("the maildrop lock was lost; nothing deleted")
    transaction.execute(
        "DELETE FROM pop3kit_messages WHERE uidl = ANY(%s)"
        " AND user_id = (SELECT id FROM pop3kit_users WHERE name = %s)",
        (uids, name),
    )


@implementer(IRealm)
class PostgreSQLRealm:
    """
    Hands out each user's maildrop in the database as a L{PostgreSQLMailbox}.
    """

    def __init__(self, store: PostgreSQLStore, locker: PostgreSQLLocker | None = None) -> None:
        """
        @param store: The database.
        @param locker: The maildrop locker the server uses, so that expunges check it.
        """
        self._store = store
        self._locker = locker

    def requestAvatar(
        self, avatarId: bytes | str | tuple[()], mind: object, *interfaces: type[Interface]
    ) -> tuple[type[Interface], object, Callable[[], None]]:
        """
        Return C{(IMailbox, mailbox, logout)} for C{avatarId}.
        """
        if IMailbox not in interfaces:
            raise NotImplementedError("PostgreSQLRealm only provides IMailbox")
        if isinstance(avatarId, bytes):
            avatarId = avatarId.decode("utf-8")
        if not isinstance(avatarId, str) or not avatarId:
            raise PermanentFailure("anonymous logins have no maildrop")
        return IMailbox, PostgreSQLMailbox(self._store, avatarId, self._locker), lambda: None


@dataclass(frozen=True)
class StoredMessage:
    """
    A message to store with the UIDL it must keep (as a migration does).
    """

    uidl: str
    body: bytes


@implementer(IMaildropDelivery)
class PostgreSQLDelivery:
    """
    Delivers new mail into the database: a message is durable once its transaction
    commits.  A user's row is created at the first delivery; a user whose
    C{max_messages} is reached gets no more mail (L{StorageFull}, a temporary failure).
    """

    def __init__(
        self, store: PostgreSQLStore, knownUser: Callable[[str], bool] | None = None
    ) -> None:
        """
        @param store: The database.
        @param knownUser: Tells whether a user name has an account; L{None} to accept
            every name.
        """
        self._store = store
        self._knownUser = knownUser

    def recipient(self, address: str) -> Deferred[str]:
        """
        The maildrop of C{address}; see L{IMaildropDelivery.recipient}.
        """
        return resolveRecipient(address, self._knownUser, lambda name: bool(name))

    def deliver(self, maildrop: str, message: BinaryIO) -> Deferred[None]:
        """
        Store C{message} (read whole: a bytea is sent in one piece) for C{maildrop}.
        """
        return self.store(maildrop, [StoredMessage(uuid.uuid4().hex, message.read())])

    def store(self, maildrop: str, messages: Sequence[StoredMessage]) -> Deferred[None]:
        """
        Store messages with their UIDLs in one transaction; a UIDL the maildrop already
        holds is skipped, so storing again is harmless.
        """
        for stored in messages:
            if not isValidUid(stored.uidl):
                return fail(PermanentFailure(f"invalid UIDL {stored.uidl!r}"))
        return self._store.run(_store, maildrop, messages)


def _store(transaction: Any, name: str, messages: Sequence[StoredMessage]) -> None:
    """
    Store messages for C{name}, in the caller's transaction (an adbapi
    L{Transaction} or a psycopg cursor).
    """
    transaction.execute(
        "INSERT INTO pop3kit_users (name) VALUES (%s) ON CONFLICT (name)"
        " DO UPDATE SET name = EXCLUDED.name RETURNING id, max_messages",
        (name,),
    )
    userId, maxMessages = transaction.fetchone()
    if maxMessages is not None:
        # The upsert above holds the user's row locked: concurrent deliveries to this
        # user wait here, so the count stays true until the commit.
        transaction.execute("SELECT count(*) FROM pop3kit_messages WHERE user_id = %s", (userId,))
        if transaction.fetchone()[0] + len(messages) > maxMessages:
            raise StorageFull(f"maildrop full ({maxMessages} messages)")
    for stored in messages:
        transaction.execute(
            "INSERT INTO pop3kit_messages (user_id, uidl, wire_size, body)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (user_id, uidl) DO NOTHING",
            (userId, stored.uidl, wireSize(stored.body), stored.body),
        )


class PostgreSQLStorage:
    """
    C{--storage postgresql://...}: the database's store, realm, maildrop locker and
    delivery, made once and shared by the server and the LMTP listener.
    """

    def __init__(self, dsn: str, maxConnections: int = 8) -> None:
        """
        @param dsn: A libpq connection string.
        @param maxConnections: The most connections of the pool.
        """
        self.dsn = dsn
        self._maxConnections = maxConnections
        self._store: PostgreSQLStore | None = None
        self._locker: PostgreSQLLocker | None = None

    @property
    def description(self) -> str:
        """
        The database, for the log, without a password.
        """
        from psycopg.conninfo import conninfo_to_dict

        try:
            parts = conninfo_to_dict(self.dsn)
        except Exception:
            return "a PostgreSQL database"
        host = parts.get("host", "localhost")
        return f"PostgreSQL database {parts.get('dbname', '?')} on {host}:{parts.get('port', 5432)}"

    def _reactor(self) -> IReactorCore:
        from twisted.internet import reactor

        return reactor  # type: ignore[return-value]

    def store(self) -> PostgreSQLStore:
        """
        The connection pool, made at the first call.
        """
        if self._store is None:
            self._store = PostgreSQLStore(self.dsn, self._reactor(), self._maxConnections)
        return self._store

    def makeLocker(self) -> PostgreSQLLocker:
        """
        The advisory-lock maildrop locker, made at the first call.
        """
        if self._locker is None:
            self._locker = PostgreSQLLocker(self.dsn, self._reactor())
        return self._locker

    def makeRealm(self) -> IRealm:
        """
        A L{PostgreSQLRealm} whose expunges check L{makeLocker}'s locks.
        """
        return PostgreSQLRealm(self.store(), self.makeLocker())

    def makeDelivery(self, knownUser: Callable[[str], bool] | None) -> IMaildropDelivery:
        """
        The L{PostgreSQLDelivery} of C{pop3kit deliver} and the LMTP listener.
        """
        return PostgreSQLDelivery(self.store(), knownUser)


def parseStorageURL(url: str) -> PostgreSQLStorage:
    """
    Check a C{postgresql://} URL for C{--storage}; the database is not contacted yet.

    @raise ValueError: If psycopg is missing or the URL cannot be parsed.
    """
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise ValueError(
            "PostgreSQL support is not installed: pip install 'pop3kit[postgresql]'"
        ) from None
    try:
        conninfo_to_dict(url)
    except Exception as e:
        raise ValueError(f"not a usable PostgreSQL URL: {str(e).strip()}") from None
    return PostgreSQLStorage(url)
