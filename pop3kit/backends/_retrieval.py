# -*- test-case-name: tests.test_expire -*-
"""
The retrieval record of a Maildir: when each message was first retrieved, which
C{EXPIRE n} needs (L{pop3kit.interfaces.IRetrievalLog}).

The record is one small file in the Maildir, C{pop3kit-retrieved}, beside Dovecot's
C{dovecot-uidlist}: a line C{<unique-id> <seconds since the epoch>} per message.  Message
files are never renamed for it, so unique-ids and Dovecot's own flags stay as they are,
and the times come from the server's clock, not from file times that reading or copying
the Maildir would change.

Each update reads the record, changes it and writes it whole to C{pop3kit-retrieved.new},
which is synced to disk and renamed over the record, and the directory synced: a crash
leaves the old record or the new one, never a torn one.  Updates take an exclusive
C{flock} on C{pop3kit-retrieved.lock}, so a server and C{pop3kit expire} running at the
same time lose no record.  Lines that cannot be read are dropped (the message is then
kept until it is retrieved again).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
from collections.abc import Callable, Collection, Container, Iterator

__all__ = ["RECORD_NAME", "expiredUids", "markRetrieved", "readRecord"]

#: The record's file name in the Maildir.
RECORD_NAME = "pop3kit-retrieved"

_LOCK_SUFFIX = ".lock"
_NEW_SUFFIX = ".new"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def readRecord(maildir: str) -> dict[str, float]:
    """
    The retrieval times recorded for C{maildir}, by unique-id; empty if there is no
    record.

    @raise OSError: If the record exists but cannot be read.
    """
    try:
        fd = os.open(os.path.join(maildir, RECORD_NAME), os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    record: dict[str, float] = {}
    for line in data.split(b"\n"):
        words = line.split()
        if len(words) != 2:
            continue
        try:
            uid = words[0].decode("ascii")
            when = float(words[1])
        except (UnicodeDecodeError, ValueError):
            continue
        if math.isfinite(when):
            record.setdefault(uid, when)
    return record


@contextlib.contextmanager
def _locked(maildir: str) -> Iterator[None]:
    """
    Hold the exclusive lock of C{maildir}'s record.
    """
    fd = os.open(
        os.path.join(maildir, RECORD_NAME + _LOCK_SUFFIX),
        os.O_RDWR | os.O_CREAT | _O_CLOEXEC | _O_NOFOLLOW,
        0o600,
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(maildir: str, record: dict[str, float]) -> None:
    """
    Replace C{maildir}'s record with C{record}, crash-safely.  Call with the lock held.
    """
    path = os.path.join(maildir, RECORD_NAME)
    newPath = path + _NEW_SUFFIX
    data = "".join(f"{uid} {when!r}\n" for uid, when in record.items()).encode("ascii")
    fd = os.open(newPath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC | _O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(newPath, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(newPath)
        raise
    directory = os.open(maildir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def markRetrieved(
    maildir: str,
    uids: Collection[str],
    when: float,
    stored: Callable[[], Container[str]],
) -> None:
    """
    Record that the messages C{uids} of C{maildir} were retrieved at C{when}; a message
    recorded before keeps its first time.  Records of messages no longer stored are
    dropped.  Returns once the record is durable.

    @param stored: Returns the unique-ids of the messages in the Maildir now; called
        only when the record holds other messages than C{uids}.
    @raise OSError: If the record cannot be read or written; it is then unchanged.
    """
    with _locked(maildir):
        old = readRecord(maildir)
        present = stored() if old.keys() - set(uids) else set(uids)
        record = {uid: time for uid, time in old.items() if uid in present}
        for uid in uids:
            if uid in present:
                record.setdefault(uid, when)
        if record != old:
            _write(maildir, record)


def expiredUids(maildir: str, before: float, stored: Callable[[], Container[str]]) -> list[str]:
    """
    The unique-ids of the messages of C{maildir} still stored and first retrieved before
    C{before}.

    @param stored: Returns the unique-ids of the messages in the Maildir now; called
        only when some message was retrieved before C{before}.
    @raise OSError: If the record cannot be read.
    """
    candidates = [uid for uid, when in readRecord(maildir).items() if when < before]
    if not candidates:
        return []
    present = stored()
    return [uid for uid in candidates if uid in present]
