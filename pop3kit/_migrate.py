# -*- test-case-name: tests.test_migrate -*-
"""
C{pop3kit migrate SOURCE DESTINATION}: move maildrops between storage backends while
keeping every UIDL, so that POP3 clients that keep messages on the server (and remember
them by UIDL) do not download everything again after the move.

Sources and destinations are C{maildir:ROOT} (one Maildir per user under C{ROOT}) and
C{postgresql://...} (a libpq connection string; the schema must exist: C{pop3kit storage
init}); C{mbox:TEMPLATE} (one mbox file per user, e.g. C{mbox:/var/mail/%u}) is a
source.  The copy is idempotent and resumable: a message whose UIDL the destination
maildrop already holds is skipped, so an interrupted run is simply run again.  Nothing is
removed from the source.

This is a command, not part of the server: it blocks, and runs without a reactor.
"""

from __future__ import annotations

import glob
import io
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from pop3kit._exits import ExitError
from pop3kit.core import MessageInfo, isValidUid

__all__ = ["MigrationReport", "migrate", "openEnd"]

#: Messages copied into PostgreSQL per transaction.
_BATCH = 100


@dataclass
class MigrationReport:
    """
    What a migration did.

    @ivar copied: Messages written to the destination.
    @ivar skipped: Messages the destination held already (same UIDL).
    @ivar renamed: UIDLs that the destination cannot store as they are, and that changed.
    """

    copied: int = 0
    skipped: int = 0
    renamed: list[tuple[str, str]] | None = None


class _End(Protocol):
    def users(self) -> list[str]: ...
    def listing(self, user: str) -> list[MessageInfo]: ...
    def read(self, user: str, uid: str) -> bytes: ...
    def store(self, user: str, messages: list[tuple[str, bytes]]) -> list[tuple[str, str]]: ...


def _result(d: Deferred[Any]) -> Any:
    """
    The result of a L{Deferred} that a synchronous backend has already fired.
    """
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the backend did not answer at once"
    result = results[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


class _MaildirEnd:
    """
    One Maildir per user under a root directory.
    """

    def __init__(self, root: str) -> None:
        if not os.path.isdir(root):
            raise ExitError(f"maildir:{root}: no such directory")
        self._root = root

    def _mailbox(self, user: str) -> Any:
        from pop3kit.backends.maildir import MaildirMailbox, _makeMaildir, mailboxPath

        path = mailboxPath(self._root, user)
        _makeMaildir(path, parents=False)
        return MaildirMailbox(path)

    def users(self) -> list[str]:
        from pop3kit.backends.maildir import mailboxPath

        names = []
        for name in sorted(os.listdir(self._root)):
            try:
                path = mailboxPath(self._root, name)
            except ValueError:
                continue
            if os.path.isdir(os.path.join(path, "cur")) or os.path.isdir(os.path.join(path, "new")):
                names.append(name)
        return names

    def listing(self, user: str) -> list[MessageInfo]:
        return list(_result(self._mailbox(user).listMessages()))

    def read(self, user: str, uid: str) -> bytes:
        with _result(self._mailbox(user).openMessage(uid)) as f:
            data: bytes = f.read()
            return data

    def store(self, user: str, messages: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
        """
        Write each message under its UIDL as the file name, so that the Maildir backend
        lists it with that UIDL; a UIDL that cannot be a file name gets a new name.
        """
        from pop3kit.backends.maildir import _syncDirectory, deliver, mailboxPath

        path = mailboxPath(self._root, user)
        renamed = []
        for uid, body in messages:
            if not _keepable(uid):
                name = deliver(path, io.BytesIO(body))
                renamed.append((uid, name))
                continue
            temporary = os.path.join(path, "tmp", f"migrate.{os.getpid()}.{uid}")
            with open(temporary, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(temporary, os.path.join(path, "cur", uid + ":2,S"))
            except FileExistsError:
                pass
            finally:
                os.unlink(temporary)
        _syncDirectory(os.path.join(path, "cur"))
        return renamed


class _MboxEnd:
    """
    One mbox file per user, at a path template with C{%u} (C{mbox:/var/mail/%u}): a
    source only.  Its UIDLs are those the mbox backend serves, so clients that read the
    mbox through pop3kit keep theirs.
    """

    def __init__(self, template: str) -> None:
        from pop3kit.backends.mbox import _checkTemplate

        try:
            _checkTemplate(template)
        except ValueError as e:
            raise ExitError(f"mbox:{template}: {e}") from None
        if "%n" in template or "%d" in template:
            raise ExitError(f"mbox:{template}: migrate finds users by %u only")
        self._template = template
        head, _, tail = template.partition("%u")
        self._pattern = re.compile(re.escape(head) + r"(?P<user>[^/]+)" + re.escape(tail) + "$")
        self._glob = glob.escape(head) + "*" + glob.escape(tail)
        self._mailboxes: dict[str, Any] = {}

    def _mailbox(self, user: str) -> Any:
        from pop3kit.backends.mbox import MboxMailbox, expandTemplate

        if user not in self._mailboxes:
            self._mailboxes[user] = MboxMailbox(expandTemplate(self._template, user))
        return self._mailboxes[user]

    def _now(self, d: Deferred[Any], user: str) -> Any:
        try:
            return _result(d)
        except AssertionError:
            raise ExitError(
                f"the mbox of {user} is locked by another program: try again later"
            ) from None

    def users(self) -> list[str]:
        users = []
        for path in sorted(glob.glob(self._glob)):
            match = self._pattern.match(path)
            if match is not None and os.path.isfile(path):
                users.append(match.group("user"))
        return users

    def listing(self, user: str) -> list[MessageInfo]:
        return list(self._now(self._mailbox(user).listMessages(), user))

    def read(self, user: str, uid: str) -> bytes:
        with self._now(self._mailbox(user).openMessage(uid), user) as f:
            data: bytes = f.read()
            return data

    def store(self, user: str, messages: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
        raise ExitError("an mbox is a migration source only: migrate into maildir: or postgresql:")


class _PostgreSQLEnd:
    """
    A pop3kit database.
    """

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise ExitError(
                "PostgreSQL support is not installed: pip install 'pop3kit[postgresql]'"
            ) from None
        from pop3kit.backends.postgresql import MIGRATIONS, schemaVersion

        try:
            self._connection = psycopg.connect(dsn)
        except psycopg.Error as e:
            raise ExitError(f"cannot connect to the database: {str(e).strip()}") from None
        if schemaVersion(self._connection) != len(MIGRATIONS):
            raise ExitError("the database has no current pop3kit schema: run pop3kit storage init")
        self._connection.commit()

    def users(self) -> list[str]:
        rows = self._connection.execute("SELECT name FROM pop3kit_users ORDER BY name").fetchall()
        self._connection.commit()
        return [name for (name,) in rows]

    def listing(self, user: str) -> list[MessageInfo]:
        rows = self._connection.execute(
            "SELECT m.uidl, m.wire_size FROM pop3kit_messages m JOIN pop3kit_users u"
            " ON u.id = m.user_id WHERE u.name = %s ORDER BY m.id",
            (user,),
        ).fetchall()
        self._connection.commit()
        return [MessageInfo(uid, size) for uid, size in rows]

    def read(self, user: str, uid: str) -> bytes:
        row = self._connection.execute(
            "SELECT m.body FROM pop3kit_messages m JOIN pop3kit_users u ON u.id = m.user_id"
            " WHERE u.name = %s AND m.uidl = %s",
            (user, uid),
        ).fetchone()
        self._connection.commit()
        if row is None:
            raise ExitError(f"message {uid!r} of {user!r} vanished during the migration")
        return bytes(row[0])

    def store(self, user: str, messages: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
        from pop3kit.backends.postgresql import StoredMessage, _store

        with self._connection.transaction(), self._connection.cursor() as cursor:
            _store(cursor, user, [StoredMessage(uid, body) for uid, body in messages])
        return []


def openEnd(description: str, destination: bool = False) -> _End:
    """
    The storage a C{migrate} argument names.

    @param destination: Whether messages are to be written there.
    @raise ExitError: If it names no storage this command knows (as a destination, if
        C{destination}), or cannot be opened.
    """
    if destination and description.startswith("mbox:"):
        raise ExitError("an mbox is a migration source only: migrate into maildir: or postgresql:")
    if description.startswith("maildir:"):
        return _MaildirEnd(description.removeprefix("maildir:"))
    if description.startswith(("postgresql://", "postgres://")):
        return _PostgreSQLEnd(description)
    if description.startswith("mbox:"):
        return _MboxEnd(os.path.abspath(description.removeprefix("mbox:")))
    raise ExitError(
        f"unknown storage {description!r}: give maildir:ROOT, mbox:TEMPLATE (a source) or "
        "postgresql://USER@HOST/DB"
    )


def _batches(
    source: _End, user: str, missing: Sequence[MessageInfo]
) -> Iterator[list[tuple[str, bytes]]]:
    batch: list[tuple[str, bytes]] = []
    for info in missing:
        batch.append((info.uid, source.read(user, info.uid)))
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def migrate(source: _End, destination: _End, progress: bool = False) -> MigrationReport:
    """
    Copy every maildrop of C{source} into C{destination}, keeping UIDLs and order.
    """
    report = MigrationReport(renamed=[])
    users = source.users()
    for number, user in enumerate(users, 1):
        have = {info.uid for info in destination.listing(user)}
        listing = source.listing(user)
        missing = [info for info in listing if info.uid not in have]
        report.skipped += len(listing) - len(missing)
        done = 0
        for batch in _batches(source, user, missing):
            assert report.renamed is not None
            report.renamed += destination.store(user, batch)
            done += len(batch)
            report.copied += len(batch)
            if progress:
                print(
                    f"\r[{number}/{len(users)}] {user}: {done}/{len(missing)} messages",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
        if progress:
            print(
                f"\r[{number}/{len(users)}] {user}: {done}/{len(missing)} messages copied,"
                f" {len(listing) - len(missing)} already there",
                file=sys.stderr,
            )
    return report


def _keepable(uid: str) -> bool:
    """
    Whether a UIDL can be a Maildir file name's unique part as it is.
    """
    return (
        isValidUid(uid)
        and "/" not in uid
        and not uid.startswith(".")
        and ":2," not in uid
        and "!2," not in uid
    )
