# -*- test-case-name: tests.test_backend_maildir_index -*-
"""
The listing index of a Maildir: what the last full listing found, kept in memory (shared
by every session of a server) and in the file C{pop3kit-index} of the Maildir (shared by
every process, and kept across restarts), so that a login does not scan thousands of
directory entries when nothing changed.

An index is only ever a shortcut, checked before each use and never trusted for a
message's content:
  - It records the modification times of C{new/} and C{cur/} (in nanoseconds) taken
    I{before} the scan it describes.  Delivering, moving, renaming or deleting a message
    changes the time of its directory, so the index is used only while both times are the
    same as recorded.
  - A directory changed less than L{SETTLED} seconds before the scan could change again
    within the same clock tick without its time moving; such a listing is not recorded,
    and the next login scans again (as Dovecot does with its C{dovecot-uidlist}).
  - The file is written whole to a temporary name and renamed into place, ends with a
    count that is checked, and is ignored (then rewritten) if it cannot be read, is torn
    or corrupt, or describes other times.  It holds names, unique-ids and sizes, never
    mail; a message is always read from its own file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from pop3kit.core import MessageInfo

__all__ = ["INDEX_NAME", "SETTLED", "Snapshot", "directoryStamps", "readIndex", "writeIndex"]

#: The index file's name in a Maildir (Maildir readers look only in C{new/} and C{cur/}).
INDEX_NAME = "pop3kit-index"

#: Seconds a directory must have been unchanged before its time vouches for a listing.
SETTLED = 2.0

_MAGIC = "pop3kit-index 1"

# Each message is a line: its size, its unique-id where it is not the unique part of its
# file name (else empty), and its files relative to the Maildir, separated by tabs.


@dataclass(frozen=True)
class Snapshot:
    """
    One listing of a Maildir and where its messages were.

    @ivar stamps: The modification times of C{new/} and C{cur/} before the scan (-1 for a
        missing directory).
    @ivar listing: The messages in listing order.
    @ivar uniques: The unique part of each listed message whose unique-id differs from it.
    @ivar paths: The files of each message, by unique part.
    """

    stamps: tuple[int, int]
    listing: tuple[MessageInfo, ...]
    uniques: dict[str, str] = field(default_factory=dict)
    paths: dict[str, list[str]] = field(default_factory=dict)


def directoryStamps(maildir: str) -> tuple[int, int]:
    """
    The modification times (nanoseconds) of C{new/} and C{cur/}; -1 for a missing one.

    @raise FileNotFoundError: If the Maildir itself is missing.
    @raise OSError: If it cannot be read.
    """
    stamps = []
    for sub in ("new", "cur"):
        try:
            stamps.append(os.stat(os.path.join(maildir, sub)).st_mtime_ns)
        except FileNotFoundError:
            if not os.path.isdir(maildir):
                raise
            stamps.append(-1)
    return stamps[0], stamps[1]


def isSettled(stamps: tuple[int, int], now: float | None = None) -> bool:
    """
    Whether both directories have been unchanged for L{SETTLED} seconds at C{now} (the
    wall clock by default), so that their times vouch for a listing taken now.
    """
    if now is None:
        now = time.time()
    return now * 1e9 - max(stamps) >= SETTLED * 1e9


def writeIndex(maildir: str, snapshot: Snapshot) -> bool:
    """
    Write C{snapshot} to the Maildir's index file, atomically.

    @return: Whether it was written; a Maildir that cannot be written to, or a name that
        cannot be recorded, leaves no index (listings then scan, as without one).
    """
    lines = [f"{_MAGIC} {snapshot.stamps[0]} {snapshot.stamps[1]}"]
    byUid = {info.uid: snapshot.uniques.get(info.uid, info.uid) for info in snapshot.listing}
    prefix = len(maildir) + 1
    for info in snapshot.listing:
        unique = byUid[info.uid]
        relative = [path[prefix:] for path in snapshot.paths.get(unique, [])]
        if not relative or any("\t" in r or "\n" in r for r in relative):
            return False
        # The unique-id is written only where it is not the file name's unique part.
        uid = "" if unique == info.uid else info.uid
        lines.append("\t".join([str(info.size), uid, *relative]))
    lines.append(f"end {len(snapshot.listing)}")
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    temporary = os.path.join(maildir, f".{INDEX_NAME}.{os.getpid()}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, os.path.join(maildir, INDEX_NAME))
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return False
    return True


def readIndex(maildir: str, stamps: tuple[int, int]) -> Snapshot | None:
    """
    The snapshot in the Maildir's index file, if it describes these directory times.

    @return: L{None} if there is no usable index: missing, unreadable, torn, corrupt, or
        of other times.
    """
    try:
        with open(os.path.join(maildir, INDEX_NAME), "rb") as f:
            text = f.read().decode("utf-8", "surrogateescape")
    except OSError:
        return None
    lines = text.split("\n")
    if len(lines) < 3 or lines[-1] != "":
        return None
    header = lines[0].rsplit(" ", 2)
    if header[0] != _MAGIC or header[1:] != [str(stamps[0]), str(stamps[1])]:
        return None
    body = lines[1:-2]
    if lines[-2] != f"end {len(body)}":
        return None
    listing = []
    uniques: dict[str, str] = {}
    paths: dict[str, list[str]] = {}
    try:
        for line in body:
            size, uid, *relative = line.split("\t")
            if not relative:
                return None
            unique = _uniquePart(os.path.basename(relative[0]))
            if uid:
                uniques[uid] = unique
            else:
                uid = unique
            listing.append(MessageInfo(uid, int(size)))
            paths[unique] = [os.path.join(maildir, r) for r in relative]
    except ValueError:
        return None
    return Snapshot(stamps, tuple(listing), uniques, paths)


def _uniquePart(name: str) -> str:
    """
    A Maildir file name without its C{:2,} (or C{!2,}) flags suffix.
    """
    cut = name.rfind(":2,")
    if cut < 0:
        cut = name.rfind("!2,")
    return name if cut < 0 else name[:cut]
