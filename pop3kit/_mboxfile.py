"""
mbox files, shared by the mbox backend and C{pop3kit fetch --to mbox:}: locking, parsing,
all-or-nothing appends, crash recovery and crash-safe rewriting.

B{Locking.}  A writer takes, in this order, the dot-lock C{FILE.lock} and then an C{fcntl}
write lock on the whole file, as Postfix's C{local} and procmail do (both dot-lock before
they open the file).  The dot-lock is made the NFS-safe way: a uniquely named file holding
C{PID:HOST} is hard-linked to C{FILE.lock}, and the link count tells whether it worked.  A
dot-lock is I{stale}, and is broken, when the process it names is dead on this host, or
when it is older than L{STALE_AFTER} seconds (Dovecot's C{mbox_dotlock_change_timeout},
Postfix's C{stale_lock_time}).  It is broken by renaming it aside and checking that what
was renamed is the lock judged stale, so a lock taken meanwhile by someone else is put
back, not lost.  The C{fcntl} lock is an open-file-description lock (C{F_OFD_SETLK}) where
Linux has one, so that closing another descriptor of the file in the same process does not
drop it; it conflicts with the classic C{fcntl}/C{lockf} locks of other programs.  After
both are held, the path is checked to still name the file opened: a file renamed over
meanwhile is opened again.

B{Parsing.}  A message starts with a C{From } line at the start of the file or after an
empty line (the rule Dovecot and mutt use, which tolerates an unquoted C{From } in a body
that does not follow an empty line).  The empty line before the next C{From } line is the
separator, not part of the message.  A valid C{Content-Length:} header (one pointing
exactly at the end of the file or at an empty line and a C{From } line, as Solaris mail
writes it) gives the body's length, and a body read that way is not unquoted.  Otherwise
lines quoted the mboxrd way are unquoted on reading: C{>From }, C{>>From } ... lose one
C{>}.  Appends quote the mboxrd way, so messages come back exactly as written; a line
C{>From } that an mboxo writer (Postfix, procmail) left unquoted is read as C{From }.

B{Unique-ids.}  See L{MboxMessage.uid}: a C{X-Pop3kit-UIDL:} header that pop3kit wrote as the
first header line, or else a digest of the C{From } line and the headers (those that mail
readers rewrite left out), with C{-2}, C{-3} ... for identical messages.  The header is
stripped on the way out and not counted in sizes.

B{All-or-nothing appends.}  An append seeks to the end and writes; it never reads the
mbox.  Before writing, it records the file's size, the size after the append and where
each appended C{From } line will be in a journal C{FILE.pop3kit-append} (synced); after
the mbox is synced the journal is removed.  Whoever takes the locks next and finds a
journal cuts the file back to the recorded size (L{recover}): the batch was never
reported stored, so it is retried as a whole, never torn and never twice.  The cut is
made only when nothing but the recorded batch lies beyond that size (same file, not
longer than recorded, C{From } lines only where recorded), so mail another program
appended after a crash is never cut away.

B{Crash-safe rewriting.}  L{rewrite} (the POP3 expunge) writes the new mailbox to
C{FILE.pop3kit-new} beside it, under both locks, with everything the file holds at that
moment (mail delivered during the session included), syncs it, gives it the old file's
mode, owner and group, and renames it over the mbox: a kill at any point leaves either
the old file or the new one.  A left-over C{FILE.pop3kit-new} is removed under the locks.
Renaming changes the file's inode: writers that lock before appending (Postfix and
procmail dot-lock before they open; Dovecot checks for a replaced file after locking)
append to the new file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import mmap
import os
import re
import secrets
import socket
import struct
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, BinaryIO, Protocol

from twisted.logger import Logger

from pop3kit.core import WireSizeCounter, isValidUid

__all__ = [
    "DOTLOCK_SUFFIX",
    "FSYNC",
    "JOURNAL_SUFFIX",
    "REWRITE_SUFFIX",
    "STALE_AFTER",
    "UIDL_HEADER",
    "Checkpoint",
    "Durability",
    "ListingCache",
    "LockBusy",
    "MboxLock",
    "MboxMessage",
    "MessageStream",
    "OutgoingMessage",
    "appendMessages",
    "fromLine",
    "iterMessages",
    "lineEndAfter",
    "lockMbox",
    "openMessage",
    "outgoing",
    "quoteMessage",
    "quoter",
    "recover",
    "rewrite",
    "scanMbox",
    "tryLockMbox",
    "unquoter",
]

_log = Logger(namespace="pop3kit.mbox")

#: Seconds after which a dot-lock is stale whoever holds it.
STALE_AFTER = 300.0

#: The suffixes of the files pop3kit keeps beside an mbox.
DOTLOCK_SUFFIX = ".lock"
JOURNAL_SUFFIX = ".pop3kit-append"
REWRITE_SUFFIX = ".pop3kit-new"

#: The bookkeeping header pop3kit writes as a message's first header line.
UIDL_HEADER = b"X-Pop3kit-UIDL: "

#: Headers left out of the unique-id digest: those mail readers add or rewrite in place
#: (mutt's Status, Dovecot's X-UID ...), and pop3kit's own.
_VOLATILE_HEADERS = frozenset(
    {
        b"status",
        b"x-status",
        b"x-keywords",
        b"x-uid",
        b"x-imap",
        b"x-imapbase",
        b"content-length",
        b"lines",
        b"x-uidl",
        b"x-pop3kit-uidl",
    }
)

#: The headers mail stores keep their bookkeeping in, hidden from POP3 clients and not
#: counted in sizes, as Dovecot hides them (its C{mbox_hide_headers}).
_HIDDEN_HEADERS = frozenset(
    {b"content-length", b"status", b"x-imap", b"x-imapbase", b"x-keywords", b"x-status", b"x-uid"}
)

_CHUNK_SIZE = 256 * 1024
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

#: A body line quoted the mboxrd way, after a line end: C{>From }, C{>>From } ...
_QUOTED = re.compile(rb"\n>(>*From )")
#: A line to quote the mboxrd way, after a line end: C{From }, C{>From } ...
_TO_QUOTE = re.compile(rb"\n(>*From )")
#: The start of a partial line that might still become a line to (un)quote.
_MAYBE_FROM = re.compile(rb">*(F(r(o(m)?)?)?)?\Z")
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d{1,15})[ \t]*\r?$")


class Durability(Protocol):
    """
    How written files are made durable (L{pop3kit._fetch.DiskSync} is one).
    """

    def syncFile(self, path: str) -> None:
        """
        Write the data of the file at C{path} to disk.
        """

    def syncDirectory(self, path: str) -> None:
        """
        Make the entries of the directory at C{path} durable.
        """


class _Fsync:
    """
    The default L{Durability}: C{fsync(2)}.
    """

    def syncFile(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def syncDirectory(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


FSYNC: Durability = _Fsync()

#: A hook called with the name of each step of an append, recovery or rewrite, before
#: the step is taken: tests end the process there, or raise, to prove crash safety.
Checkpoint = Callable[[str], None]


def _noCheckpoint(step: str) -> None:
    """
    The default L{Checkpoint}: nothing.
    """


class LockBusy(Exception):
    """
    Another process holds the mbox's dot-lock or C{fcntl} lock.
    """


# ---------------------------------------------------------------------------------------
# Locking
# ---------------------------------------------------------------------------------------

_F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None) if sys.platform == "linux" else None


def _fcntlLock(fd: int, exclusive: bool) -> bool:
    """
    Take a non-blocking C{fcntl} lock on the whole file.

    @return: C{False} if another lock conflicts.
    """
    kind = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
    try:
        if _F_OFD_SETLK is not None:
            # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks).
            flock = struct.pack("hhqqi", kind, os.SEEK_SET, 0, 0, 0)
            flock += b"\0" * 8
            fcntl.fcntl(fd, _F_OFD_SETLK, flock)
        else:
            fcntl.lockf(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


#: The dot-locks this process holds, so that a lock naming this process's id but not
#: held is recognised as left by an earlier process with the same id.
_HELD: set[str] = set()

_LOCK_OWNER = re.compile(rb"\s*(\d+)(?::([^\s]+))?")


def _hostName() -> str:
    return socket.gethostname() or "localhost"


def _processAlive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _isStale(lockPath: str, content: bytes, mtime: float, staleAfter: float) -> bool:
    """
    Whether the dot-lock at C{lockPath} holding C{content} is stale.
    """
    if time.time() - mtime > staleAfter:
        return True
    owner = _LOCK_OWNER.match(content)
    if owner is None:
        return False
    pid = int(owner.group(1))
    host = owner.group(2)
    if host is not None and host.decode("utf-8", "replace") != _hostName():
        return False
    if pid <= 0:
        return False
    if pid == os.getpid():
        return lockPath not in _HELD
    return not _processAlive(pid)


def _breakStale(lockPath: str, staleAfter: float) -> bool:
    """
    Remove the dot-lock at C{lockPath} if it is stale.

    It is renamed aside first and what was renamed is checked to be the lock that was
    judged stale; a lock taken meanwhile by someone else is put back.

    @return: Whether a stale lock was removed (or the lock vanished meanwhile).
    """
    try:
        with open(lockPath, "rb") as f:
            before = os.fstat(f.fileno())
            content = f.read(256)
    except FileNotFoundError:
        return True
    if not _isStale(lockPath, content, before.st_mtime, staleAfter):
        return False
    aside = f"{lockPath}.stale.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        os.rename(lockPath, aside)
    except FileNotFoundError:
        return True
    moved = os.stat(aside)
    if (moved.st_dev, moved.st_ino) != (before.st_dev, before.st_ino):
        # Someone took the lock between the check and the rename: give it back.
        with contextlib.suppress(FileExistsError):
            os.link(aside, lockPath)
        os.unlink(aside)
        return False
    os.unlink(aside)
    _log.warn(
        "Broke the stale dot-lock {lock} (held by {owner!r})",
        lock=lockPath,
        owner=content.decode("utf-8", "replace").strip(),
    )
    return True


def _tryDotlock(path: str, staleAfter: float) -> bool:
    """
    Create the dot-lock of the mbox C{path}, breaking a stale one.

    @return: Whether the lock is now held.
    """
    lockPath = path + DOTLOCK_SUFFIX
    temporary = f"{lockPath}.{os.getpid()}.{secrets.token_hex(6)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
    try:
        try:
            os.write(fd, f"{os.getpid()}:{_hostName()}\n".encode())
        finally:
            os.close(fd)
        for _ in range(2):
            try:
                os.link(temporary, lockPath)
                taken = True
            except FileExistsError:
                taken = False
            except OSError:
                # NFS may report failure for a link that was made: the count tells.
                taken = os.stat(temporary).st_nlink == 2
            if taken:
                _HELD.add(lockPath)
                return True
            if not _breakStale(lockPath, staleAfter):
                return False
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _removeDotlock(path: str) -> None:
    """
    Remove the dot-lock of the mbox C{path}.  Failing to is a warning, not an error: the
    work done under the lock is done (an error here would have a delivery retried, and
    stored twice), and the lock left names a process that no longer holds it, so the
    next locker breaks it as stale.
    """
    lockPath = path + DOTLOCK_SUFFIX
    _HELD.discard(lockPath)
    try:
        os.unlink(lockPath)
    except FileNotFoundError:
        pass
    except OSError as e:
        _log.warn(
            "Cannot remove the dot-lock {lock} ({error}); it will be broken as stale",
            lock=lockPath,
            error=e.strerror or str(e),
        )


class MboxLock:
    """
    The dot-lock and the C{fcntl} write lock of one mbox file, held.

    @ivar path: The mbox file.
    @ivar fd: A descriptor of the file, open for reading and writing, which holds the
        C{fcntl} lock.
    """

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    def __enter__(self) -> MboxLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """
        Close the file (dropping the C{fcntl} lock) and remove the dot-lock.  Releasing
        twice is harmless.  Errors are warnings: what was written under the lock was
        synced before (an error here would have a delivery retried, and stored twice),
        and the descriptor is closed whatever C{close} reports.
        """
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError as e:
                _log.warn("Closing {path}: {error}", path=self.path, error=e.strerror or str(e))
            _removeDotlock(self.path)


def tryLockMbox(
    path: str,
    *,
    create: bool = False,
    staleAfter: float = STALE_AFTER,
    checkpoint: Checkpoint = _noCheckpoint,
) -> MboxLock:
    """
    Lock the mbox C{path} without waiting, then recover it from a writer that died (see
    L{recover}).

    @param create: Create the file (mode 0600) if missing.
    @raise LockBusy: If another process holds a lock.
    @raise FileNotFoundError: If the file is missing and C{create} is false.
    @raise OSError: If the locks cannot be taken for another reason (no permission to
        create the dot-lock, ...).
    """
    if not _tryDotlock(path, staleAfter):
        raise LockBusy(f"{path} is dot-locked by another process")
    try:
        for _ in range(3):
            flags = os.O_RDWR | _O_CLOEXEC | _O_NOFOLLOW | (os.O_CREAT if create else 0)
            fd = os.open(path, flags, 0o600)
            try:
                if not _fcntlLock(fd, exclusive=True):
                    raise LockBusy(f"{path} is locked by another process")
                opened = os.fstat(fd)
                try:
                    named = os.stat(path)
                except FileNotFoundError:
                    named = None
                if named is not None and (named.st_dev, named.st_ino) == (
                    opened.st_dev,
                    opened.st_ino,
                ):
                    lock = MboxLock(path, fd)
                    break
            except BaseException:
                os.close(fd)
                raise
            # Replaced while we locked it: lock the new file.
            os.close(fd)
        else:
            raise LockBusy(f"{path} keeps being replaced")
    except BaseException:
        _removeDotlock(path)
        raise
    try:
        recover(lock, checkpoint=checkpoint)
    except BaseException:
        lock.release()
        raise
    return lock


def lockMbox(
    path: str,
    *,
    timeout: float = 30.0,
    create: bool = False,
    staleAfter: float = STALE_AFTER,
    sleep: Callable[[float], None] = time.sleep,
    checkpoint: Checkpoint = _noCheckpoint,
) -> MboxLock:
    """
    Lock the mbox C{path}, waiting up to C{timeout} seconds for another process to let
    go (blocking: call it from a thread or a command-line tool), then recover it.

    @raise LockBusy: If the locks could not be taken in time.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return tryLockMbox(path, create=create, staleAfter=staleAfter, checkpoint=checkpoint)
        except LockBusy:
            if time.monotonic() + delay > deadline:
                raise
        sleep(delay)
        delay = min(delay * 2, 1.0)


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MboxMessage:
    """
    Where one message lies in an mbox file.

    @ivar offset: Where its C{From } line starts.
    @ivar fromLine: Its C{From } line, line end included.
    @ivar start: Where its content starts: after the C{From } line and after a
        C{X-Pop3kit-UIDL:} line that pop3kit stored.
    @ivar end: Where its content ends: before the empty line that separates it from the
        next message (or the end of the file).
    @ivar uid: Its unique-id: the value of the C{X-Pop3kit-UIDL:} header if pop3kit stored one
        (as the first header line), otherwise the SHA-1 of its C{From } line and its
        headers, the headers that mail readers add or rewrite (C{Status}, C{X-UID},
        C{Content-Length} ...) left out; the second, third ... message with the same
        digest gets C{-2}, C{-3} ... appended.  A stored value already used by an
        earlier message is replaced by the digest.
    @ivar stored: Whether the unique-id was read from a stored header.
    @ivar size: Its size as POP3 counts it (CRLF line ends, unquoted, without the stored
        header).
    @ivar unquote: Whether C{>From } lines are unquoted on reading (not for a message
        delimited by its C{Content-Length}).
    @ivar hidden: The C{(start, end)} of each header line (with its continuation lines)
        that mail stores keep their bookkeeping in (C{Status}, C{X-Status},
        C{X-Keywords}, C{X-UID}, C{X-IMAP}, C{X-IMAPbase}, C{Content-Length}): never sent,
        not counted in the size, as Dovecot hides them.
    """

    offset: int
    fromLine: bytes
    start: int
    end: int
    uid: str
    stored: bool
    size: int
    unquote: bool
    hidden: tuple[tuple[int, int], ...] = ()

    def segments(self) -> Iterator[tuple[int, int]]:
        """
        The C{(start, end)} of the parts of the content that are sent.
        """
        position = self.start
        for start, end in self.hidden:
            if start > position:
                yield position, start
            position = end
        if self.end > position:
            yield position, self.end


def _headerEnd(data: mmap.mmap | bytes, start: int, limit: int) -> int:
    """
    Where the header block starting at C{start} ends (after its empty line), or C{limit}.
    """
    if data[start : start + 1] == b"\n" or data[start : start + 2] == b"\r\n":
        return start + (1 if data[start : start + 1] == b"\n" else 2)
    lf = data.find(b"\n\n", start, limit)
    # A CRLF empty line counts only if it comes first: look no further than the LF one.
    crlf = data.find(b"\n\r\n", start, limit if lf < 0 else lf + 2)
    if crlf >= 0:
        return crlf + 3
    return limit if lf < 0 else lf + 2


def _lines(data: bytes) -> Iterator[bytes]:
    """
    The lines of C{data}, each with its LF (a lone CR does not end a line).
    """
    position = 0
    while position < len(data):
        lineEnd = data.find(b"\n", position)
        end = len(data) if lineEnd < 0 else lineEnd + 1
        yield data[position:end]
        position = end


def _headerName(line: bytes) -> bytes | None:
    """
    The lower-case name of the header that starts on C{line}, or L{None} if there is no
    colon on it.
    """
    name, colon, _ = line.partition(b":")
    return name.rstrip(b" \t").lower() if colon else None


#: A header line that L{_readHeaders} must look at one by one: a volatile one.
_SPECIAL_HEADER = re.compile(
    rb"(?im)^(?:" + b"|".join(re.escape(name) for name in sorted(_VOLATILE_HEADERS)) + rb")[ \t]*:"
)


def _readHeaders(
    fromLine: bytes, headers: bytes, offset: int
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """
    The SHA-1, in hexadecimal, of a C{From } line and a header block (found at
    C{offset}), volatile headers left out; and where the hidden header lines are.

    Header blocks without a volatile header (most of them) are digested in one go.
    """
    if _SPECIAL_HEADER.search(headers) is None:
        digest = hashlib.sha1(fromLine.rstrip(b"\r\n"), usedforsecurity=False)
        digest.update(headers[: _blankLine(headers)])
        return digest.hexdigest(), ()
    return _readHeaderLines(fromLine, headers, offset)


def _blankLine(headers: bytes) -> int:
    """
    Where the first empty line of C{headers} starts, or its length.
    """
    if headers[:1] == b"\n" or headers[:2] == b"\r\n":
        return 0
    found = [i + 1 for i in (headers.find(b"\n\n"), headers.find(b"\n\r\n")) if i >= 0]
    return min(found) if found else len(headers)


def _readHeaderLines(
    fromLine: bytes, headers: bytes, offset: int
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """
    What L{_readHeaders} returns, worked out line by line.
    """
    digest = hashlib.sha1(fromLine.rstrip(b"\r\n"), usedforsecurity=False)
    hidden: list[tuple[int, int]] = []
    keep = True
    hide = False
    position = offset
    for line in _lines(headers):
        lineStart, position = position, position + len(line)
        if line[:1] in (b" ", b"\t"):
            if keep:
                digest.update(line)
            if hide:
                hidden[-1] = (hidden[-1][0], position)
            continue
        if line in (b"\n", b"\r\n"):
            break
        name = _headerName(line)
        keep = name not in _VOLATILE_HEADERS
        if keep:
            digest.update(line)
        hide = name in _HIDDEN_HEADERS
        if hide:
            hidden.append((lineStart, position))
    return digest.hexdigest(), tuple(hidden)


def _firstFrom(data: mmap.mmap | bytes, size: int) -> int:
    """
    Where the first C{From } line starts (at the start of any line), or C{size}.
    """
    if data[:5] == b"From ":
        return 0
    found = data.find(b"\nFrom ")
    return size if found < 0 else found + 1


@dataclass
class _Numbering:
    """
    What giving unique-ids to later messages needs to know about earlier ones: how many
    had each digest, and which unique-ids are taken.
    """

    seen: dict[str, int]
    used: set[str]

    def copy(self) -> _Numbering:
        return _Numbering(dict(self.seen), set(self.used))


def _parse(
    data: mmap.mmap | bytes, size: int, pos: int | None = None, numbering: _Numbering | None = None
) -> list[MboxMessage]:
    """
    Find the messages of the mbox whose octets are C{data}: all of them, or those from
    the C{From } line at C{pos} on, numbered after the earlier ones (C{numbering}, which
    is updated).
    """
    messages: list[MboxMessage] = []
    if numbering is None:
        numbering = _Numbering({}, set())
    seen, used = numbering.seen, numbering.used
    if pos is None:
        pos = _firstFrom(data, size)
    released = 0
    while pos < size:
        lineEnd = data.find(b"\n", pos, size)
        if lineEnd < 0:
            # A From line without its end: a torn tail, not a message.
            break
        fromLine = bytes(data[pos : lineEnd + 1])
        start = lineEnd + 1
        storedUid: str | None = None
        if data[start : start + len(UIDL_HEADER)].lower() == UIDL_HEADER.lower():
            uidEnd = data.find(b"\n", start, size)
            if uidEnd >= 0:
                value = bytes(data[start + len(UIDL_HEADER) : uidEnd]).strip()
                text = value.decode("ascii", "replace")
                if isValidUid(text):
                    storedUid = text
                start = uidEnd + 1
        separator = _findSeparator(data, start - 1, size)
        # The empty line before the next From line may end the headers too (a body
        # that starts with an unquoted From line, delimited by its Content-Length).
        limit = size if separator < 0 else separator + 2
        headerEnd = _headerEnd(data, start, limit)
        headers = bytes(data[start:headerEnd])
        end, following, unquote = _bodyBounds(data, size, headers, headerEnd, separator)
        base, hidden = _readHeaders(fromLine, headers, start)
        hidden = tuple((a, min(b, end)) for a, b in hidden if a < end)
        if hidden:
            segments = _segmentsOf(start, end, hidden)
            wire = sum(_wireSize(data, a, b, unquote) for a, b in segments)
        else:
            wire = _wireSize(data, start, end, unquote)
        count = seen.get(base, 0) + 1
        seen[base] = count
        derived = base if count == 1 else f"{base}-{count}"
        stored = storedUid is not None and storedUid not in used
        uid = storedUid if stored and storedUid is not None else derived
        suffix = count
        while uid in used:
            suffix += 1
            uid = f"{base}-{suffix}"
        used.add(uid)
        messages.append(MboxMessage(pos, fromLine, start, end, uid, stored, wire, unquote, hidden))
        pos = following
        if pos - released >= _RELEASE_EVERY:
            released = _release(data, released, pos)
    return messages


def _segmentsOf(
    start: int, end: int, hidden: tuple[tuple[int, int], ...]
) -> Iterator[tuple[int, int]]:
    """
    The parts of the content from C{start} to C{end} outside the C{hidden} ranges.
    """
    return MboxMessage(0, b"", start, end, "", False, 0, False, hidden).segments()


#: How many octets of a memory-mapped file are read before their pages are let go.
_RELEASE_EVERY = 4 * 1024 * 1024


def _release(data: mmap.mmap | bytes, start: int, end: int) -> int:
    """
    Let go of the pages of a memory-mapped file from C{start} to C{end} (whole pages
    only), which were read and are not needed again: the file's pages stay in the page
    cache, but do not swell the process's resident size while a large file is read.

    @return: Where the pages let go end.
    """
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if not isinstance(data, mmap.mmap) or advice is None:
        return end
    first = start - start % mmap.PAGESIZE
    last = end - end % mmap.PAGESIZE
    if last > first:
        data.madvise(advice, first, last - first)
    return last


def _findSeparator(data: mmap.mmap | bytes, start: int, size: int) -> int:
    """
    Where the next empty line followed by a C{From } line starts, or -1: searched a
    window at a time, letting go of the pages searched.
    """
    position = start
    while position < size:
        stop = min(position + _RELEASE_EVERY, size)
        found = data.find(b"\n\nFrom ", position, min(stop + 6, size))
        if found >= 0:
            return found
        if stop < size:
            _release(data, position, stop)
        position = stop
    return -1


def _wireSize(data: mmap.mmap | bytes, start: int, end: int, unquote: bool) -> int:
    """
    The size POP3 sends for the content from C{start} to C{end}: CRLF line ends, less
    one octet for each quoted C{From } line if C{unquote}.  Read a chunk at a time, so a
    large message is never copied whole.
    """
    counter = WireSizeCounter()
    quoted = 0
    if unquote and _QUOTED.match(b"\n" + data[start : min(start + 1024, end)]):
        quoted += 1
    position = start
    while position < end:
        stop = min(position + _CHUNK_SIZE, end)
        chunk = data[position:stop]
        counter.feed(chunk)
        if unquote:
            # Quoted lines whose line end before them is in this chunk; the window runs a
            # little past the chunk so that a line cut by its end is seen whole.
            window = chunk if stop == end else data[position : min(stop + 1024, end)]
            if b">From " in window:
                quoted += sum(1 for m in _QUOTED.finditer(window) if m.start() < stop - position)
        position = stop
        if end - start > _RELEASE_EVERY:
            _release(data, position - len(chunk), position)
    return counter.octets - quoted


def _bodyBounds(
    data: mmap.mmap | bytes, size: int, headers: bytes, headerEnd: int, separator: int
) -> tuple[int, int, bool]:
    """
    Where a message's content ends, where the next message starts, and whether its
    body is unquoted.
    """
    length = _CONTENT_LENGTH.search(headers)
    if length is not None:
        target = headerEnd + int(length.group(1))
        if target == size:
            return target, size, False
        if target < size and data[target : target + 6] == b"\nFrom ":
            return target, target + 1, False
        if target == size - 1 and data[target:size] == b"\n":
            return target, size, False
    if separator >= 0:
        return separator + 1, separator + 2, True
    if size >= 2 and data[size - 2 : size] == b"\n\n":
        return size - 1, size, True
    return size, size, True


def scanMbox(fd: int) -> list[MboxMessage]:
    """
    Find the messages of the mbox file open as C{fd} (read through a memory map).
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return []
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as data:
        return _parse(data, size)


@dataclass
class _Listed:
    """
    What L{ListingCache} keeps about one mbox file.
    """

    identity: tuple[int, int]
    size: int
    mtime: int
    messages: list[MboxMessage]
    numbering: _Numbering


class ListingCache:
    """
    The listings of mbox files, shared by the sessions of a server, so that a login reads
    only what was appended since the last one.

    A listing is reused when the file is the same (device and inode), and either
    unchanged (size and modification time) or only grown: it ended with an empty line,
    its octets there are still an empty line, and the C{From } lines of its first and
    last messages are still where they were.  Anything else (a file rewritten by pop3kit
    or a mail reader) is read again whole.  At most C{maxMessages} messages are kept,
    the files listed longest ago forgotten first.
    """

    def __init__(self, maxMessages: int = 200_000) -> None:
        self._maxMessages = maxMessages
        self._files: dict[str, _Listed] = {}
        self._count = 0

    def __len__(self) -> int:
        """
        The number of messages kept.
        """
        return self._count

    def scan(self, path: str, fd: int) -> list[MboxMessage]:
        """
        The messages of the mbox C{path}, open (and locked) as C{fd}.
        """
        st = os.fstat(fd)
        identity = (st.st_dev, st.st_ino)
        known = self._files.pop(path, None)
        if known is not None:
            self._count -= len(known.messages)
        size = st.st_size
        if size == 0:
            return []
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as data:
            if known is not None and self._reusable(known, identity, st, data):
                if size == known.size:
                    messages = known.messages
                    numbering = known.numbering
                else:
                    numbering = known.numbering.copy()
                    messages = known.messages + _parse(data, size, known.size, numbering)
            else:
                numbering = _Numbering({}, set())
                messages = _parse(data, size, None, numbering)
        self._remember(path, _Listed(identity, size, st.st_mtime_ns, messages, numbering))
        return messages

    def forget(self, path: str) -> None:
        """
        Forget the listing of C{path}.
        """
        known = self._files.pop(path, None)
        if known is not None:
            self._count -= len(known.messages)

    @staticmethod
    def _reusable(
        known: _Listed, identity: tuple[int, int], st: os.stat_result, data: mmap.mmap
    ) -> bool:
        if known.identity != identity or st.st_size < known.size:
            return False
        if st.st_size == known.size:
            return st.st_mtime_ns == known.mtime
        if not known.messages or data[known.size - 2 : known.size] != b"\n\n":
            return False
        for message in (known.messages[0], known.messages[-1]):
            if data[message.offset : message.offset + len(message.fromLine)] != message.fromLine:
                return False
        return True

    def _remember(self, path: str, listed: _Listed) -> None:
        if len(listed.messages) > self._maxMessages:
            return
        self._files[path] = listed
        self._count += len(listed.messages)
        while self._count > self._maxMessages:
            oldest = next(iter(self._files))
            self._count -= len(self._files.pop(oldest).messages)


# ---------------------------------------------------------------------------------------
# Reading a message
# ---------------------------------------------------------------------------------------


class _LineRewriter:
    """
    Apply a line-start substitution (quoting or unquoting C{From } lines) to a stream
    fed in chunks, correct across chunk boundaries.
    """

    def __init__(self, pattern: re.Pattern[bytes], replacement: bytes, needle: bytes) -> None:
        self._pattern = pattern
        self._needle = needle
        self._replacement = replacement
        self._held = b""
        self._atLineStart = True

    def feed(self, data: bytes) -> bytes:
        data = self._held + data
        self._held = b""
        if not data:
            return b""
        last = data.rfind(b"\n")
        tailStart = last + 1
        tail = data[tailStart:]
        tailAtLineStart = last >= 0 or self._atLineStart
        if tailAtLineStart and _MAYBE_FROM.match(tail) and len(tail) < 1024:
            self._held = tail
            data = data[:tailStart]
        out = self._substitute(data)
        if data:
            self._atLineStart = data.endswith(b"\n")
        return out

    def _substitute(self, data: bytes) -> bytes:
        if self._needle not in data:
            return data
        if self._atLineStart:
            return self._pattern.sub(self._replacement, b"\n" + data)[1:]
        first = data.find(b"\n")
        if first < 0:
            return data
        return data[:first] + self._pattern.sub(self._replacement, data[first:])

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        out = self._substitute(held)
        if held:
            self._atLineStart = held.endswith(b"\n")
        return out


def unquoter() -> _LineRewriter:
    """
    A streaming mboxrd unquoter: C{>From } lines lose one C{>}.
    """
    return _LineRewriter(_QUOTED, rb"\n\1", b">From ")


def quoter() -> _LineRewriter:
    """
    A streaming mboxrd quoter: C{From }, C{>From } ... lines gain one C{>}.
    """
    return _LineRewriter(_TO_QUOTE, rb"\n>\1", b"From ")


class MessageStream:
    """
    One message of an mbox, read from an open file: its content unquoted, the stored
    C{X-Pop3kit-UIDL:} line left out.  Closing it closes the file (and drops its lock).
    """

    def __init__(self, f: BinaryIO, message: MboxMessage) -> None:
        self._file = f
        self._segments = list(message.segments())
        self._remaining = 0
        self._unquoter = unquoter() if message.unquote else None
        self._buffer = b""
        self._position = 0

    def _fill(self) -> bool:
        """
        Read the next chunk into the buffer.

        @return: Whether there was more to read.
        """
        while self._remaining <= 0:
            if not self._segments:
                return False
            start, end = self._segments.pop(0)
            self._file.seek(start)
            self._remaining = end - start
        chunk = self._file.read(min(_CHUNK_SIZE, self._remaining))
        if chunk:
            self._remaining -= len(chunk)
        else:
            # The file is shorter than listed: what there is, is all.
            self._remaining = 0
            self._segments = []
        if self._unquoter is not None:
            chunk = self._unquoter.feed(chunk)
            if self._remaining <= 0 and not self._segments:
                chunk += self._unquoter.flush()
        if self._position >= len(self._buffer):
            self._buffer = chunk
        else:
            self._buffer = self._buffer[self._position :] + chunk
        self._position = 0
        return True

    def read(self, size: int | None = -1) -> bytes:
        """
        Read up to C{size} octets (everything if negative).
        """
        if size is None or size < 0:
            while self._fill():
                pass
            size = len(self._buffer) - self._position
        while len(self._buffer) - self._position < size and self._fill():
            pass
        end = self._position + size
        result = self._buffer[self._position : end]
        self._position = min(end, len(self._buffer))
        return result

    def close(self) -> None:
        """
        Close the file.
        """
        self._file.close()

    @property
    def closed(self) -> bool:
        """
        Whether the stream is closed.
        """
        return self._file.closed

    def __enter__(self) -> MessageStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def openMessage(path: str, message: MboxMessage, identity: tuple[int, int]) -> MessageStream:
    """
    Open one listed message for reading, holding an C{fcntl} read lock on the file until
    the stream is closed (so that a mail reader rewriting the file in place waits).

    @param identity: The C{(st_dev, st_ino)} of the file when it was listed.
    @raise LockBusy: If a writer holds the file.
    @raise LookupError: If the file no longer holds the message where it was listed.
    """
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW)
    f = os.fdopen(fd, "rb")
    try:
        if not _fcntlLock(fd, exclusive=False):
            raise LockBusy(f"{path} is locked by another process")
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != identity or st.st_size < message.end:
            raise LookupError(message.uid)
        f.seek(message.offset)
        if f.read(len(message.fromLine)) != message.fromLine:
            raise LookupError(message.uid)
        return MessageStream(f, message)
    except BaseException:
        f.close()
        raise


# ---------------------------------------------------------------------------------------
# Appending
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingMessage:
    """
    A message ready to be appended: its C{From } line, and a file holding its content
    already quoted (see L{quoter}).

    @ivar fromLine: The C{From } line, line end included.
    @ivar content: A file holding the quoted content, read from the start.
    @ivar length: How many octets C{content} holds.
    @ivar last: The last octet of the content (empty for an empty message): a line end
        is added after a last line without one (see L{lineEndAfter}).
    """

    fromLine: bytes
    content: IO[bytes]
    length: int
    last: bytes


def lineEndAfter(last: bytes) -> bytes:
    """
    What to write after content whose last octet is C{last} so that it ends with a line
    end, without changing the message POP3 sends: nothing after a line end (or empty
    content), C{CRLF} after a lone CR (which POP3 sends as C{CR CRLF}), C{LF} otherwise.
    """
    if last in (b"", b"\n"):
        return b""
    if last == b"\r":
        return b"\r\n"
    return b"\n"


def fromLine(sender: str = "MAILER-DAEMON", when: float | None = None) -> bytes:
    """
    A C{From } line as MTAs write it: C{From}, the sender, and the time in the form of
    L{time.asctime}, in UTC.
    """
    stamp = time.asctime(time.gmtime(time.time() if when is None else when))
    return f"From {sender} {stamp}\n".encode()


def _separatorFor(fd: int, size: int) -> bytes:
    """
    What to write at the end of a file of C{size} octets before a new C{From } line, so
    that it follows an empty line: the two last octets are read, nothing more.
    """
    if size == 0:
        return b""
    tail = os.pread(fd, 2, size - 2) if size >= 2 else os.pread(fd, 1, 0)
    if tail.endswith(b"\n\n") or (size == 1 and tail == b"\n"):
        return b""
    if tail.endswith(b"\n"):
        return b"\n"
    return b"\n\n"


def _writeAll(fd: int, data: bytes, offset: int) -> int:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        offset += written
        view = view[written:]
    return offset


def appendMessages(
    lock: MboxLock,
    messages: Sequence[OutgoingMessage],
    durability: Durability = FSYNC,
    checkpoint: Checkpoint = _noCheckpoint,
) -> None:
    """
    Append C{messages} to the locked mbox, all or nothing, and make them durable.

    Costs the same whatever the size of the mbox: it seeks to the end and never reads
    the file (bar its last two octets).  The journal (see the module's docstring) is
    written and synced first; the mbox is synced, then the journal removed.  If any of it
    fails (the journal's removal included), the file is cut back to its old size and the
    error raised.  The caller syncs the mbox's directory, which makes the removal of the
    journal durable.
    """
    if not messages:
        return
    fd = lock.fd
    st = os.fstat(fd)
    size = st.st_size
    separator = _separatorFor(fd, size)
    offsets = []
    position = size + len(separator)
    for message in messages:
        offsets.append(position)
        position += len(message.fromLine) + message.length
        position += len(lineEndAfter(message.last)) + 1
    journal = lock.path + JOURNAL_SUFFIX
    record = (
        f"pop3kit-append 1\n{st.st_dev} {st.st_ino}\n{size} {position}\n"
        + " ".join(map(str, offsets))
        + "\nend\n"
    ).encode()
    checkpoint("journal")
    jfd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o600)
    try:
        try:
            _writeAll(jfd, record, 0)
        finally:
            os.close(jfd)
        checkpoint("sync-journal")
        durability.syncFile(journal)
        durability.syncDirectory(os.path.dirname(os.path.abspath(lock.path)))
        offset = _writeAll(fd, separator, size)
        for message in messages:
            checkpoint("write")
            offset = _writeAll(fd, message.fromLine, offset)
            message.content.seek(0)
            while chunk := message.content.read(_CHUNK_SIZE):
                offset = _writeAll(fd, chunk, offset)
            offset = _writeAll(fd, lineEndAfter(message.last) + b"\n", offset)
        checkpoint("sync")
        durability.syncFile(lock.path)
        # A journal that cannot be removed would have the batch cut back by the next
        # writer: cut it back now and fail, so that the caller's retry stores it once.
        checkpoint("unjournal")
        os.unlink(journal)
    except BaseException:
        # Cut back what was written, so the file is as before.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
            os.fsync(fd)
            os.unlink(journal)
        raise


def _readJournal(journal: str) -> tuple[tuple[int, int], int, int, list[int]] | None:
    """
    The file identity, old size, new size and C{From } line offsets a journal records,
    or L{None} if it is incomplete.
    """
    try:
        with open(journal, "rb") as f:
            lines = f.read().decode("ascii").split("\n")
        if lines[0] != "pop3kit-append 1" or lines[4] != "end":
            return None
        dev, ino = map(int, lines[1].split())
        old, new = map(int, lines[2].split())
        offsets = [int(o) for o in lines[3].split()]
    except (UnicodeDecodeError, ValueError, IndexError):
        return None
    return (dev, ino), old, new, offsets


def _onlyRecordedFromLines(fd: int, old: int, size: int, offsets: list[int]) -> bool:
    """
    Whether every C{From } line in the octets C{old} to C{size} is one the journal
    recorded.
    """
    if size <= old:
        return True
    recorded = set(offsets)
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as data:
        position = old - 1 if old > 0 else 0
        if old == 0 and data[:5] == b"From " and 0 not in recorded:
            return False
        while True:
            found = data.find(b"\nFrom ", position, size)
            if found < 0:
                return True
            if found + 1 > old and found + 1 not in recorded:
                return False
            position = found + 1


def recover(lock: MboxLock, checkpoint: Checkpoint = _noCheckpoint) -> None:
    """
    Undo what a writer that died left in the locked mbox: cut back an append that its
    journal records as unfinished (if nothing else was written after it), and remove a
    left-over rewrite.  Called by L{tryLockMbox}.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock.path + REWRITE_SUFFIX)
    journal = lock.path + JOURNAL_SUFFIX
    if not os.path.lexists(journal):
        return
    record = _readJournal(journal)
    st = os.fstat(lock.fd)
    if record is None:
        # The journal itself was torn: the mbox was not touched yet.
        checkpoint("recover-unlink")
        os.unlink(journal)
        return
    identity, old, new, offsets = record
    size = st.st_size
    if (st.st_dev, st.st_ino) != identity or size < old:
        _log.warn("{path}: replaced since an unfinished append; left as it is", path=lock.path)
    elif size > new or not _onlyRecordedFromLines(lock.fd, old, size, offsets):
        _log.warn(
            "{path}: mail was added after an unfinished append; the unfinished "
            "append (from octet {old}) is left as it is",
            path=lock.path,
            old=old,
        )
    elif size > old:
        checkpoint("recover-truncate")
        os.ftruncate(lock.fd, old)
        os.fsync(lock.fd)
        _log.info(
            "{path}: cut back {octets} octets of an unfinished append",
            path=lock.path,
            octets=size - old,
        )
    checkpoint("recover-unlink")
    os.unlink(journal)
    with contextlib.suppress(OSError):
        FSYNC.syncDirectory(os.path.dirname(os.path.abspath(lock.path)))


# ---------------------------------------------------------------------------------------
# Rewriting
# ---------------------------------------------------------------------------------------


def _copyRange(src: int, dst: int, start: int, end: int, offset: int) -> int:
    """
    Copy the octets C{start} to C{end} of C{src} to C{dst} at C{offset}.
    """
    while start < end:
        chunk = os.pread(src, min(_CHUNK_SIZE, end - start), start)
        if not chunk:
            raise OSError(errno.EIO, "the mbox shrank while it was copied")
        offset = _writeAll(dst, chunk, offset)
        start += len(chunk)
    return offset


def rewrite(
    lock: MboxLock,
    removeUids: Collection[str],
    durability: Durability = FSYNC,
    checkpoint: Checkpoint = _noCheckpoint,
) -> list[MboxMessage]:
    """
    Remove the messages whose unique-ids are C{removeUids} from the locked mbox, crash-
    safely: the new file is written beside it, synced and renamed over it.

    The file is read again under the lock, so mail delivered since any earlier listing
    is kept.  Messages before the first removed one are copied as they are; later ones
    get their unique-id stored as an C{X-Pop3kit-UIDL:} first header line (so that removing an
    identical earlier message cannot change it).  Nothing is written when no listed
    message is removed.

    @return: The messages removed.
    """
    fd = lock.fd
    messages = scanMbox(fd)
    removed = [m for m in messages if m.uid in removeUids]
    if not removed:
        return []
    old = os.fstat(fd)
    first = removed[0].offset
    dropped = {m.offset for m in removed}
    newPath = lock.path + REWRITE_SUFFIX
    checkpoint("create")
    out = os.open(newPath, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW, 0o600)
    try:
        try:
            offset = _copyRange(fd, out, 0, first, 0)
            for message in messages:
                if message.offset < first or message.offset in dropped:
                    continue
                checkpoint("copy")
                offset = _writeAll(out, message.fromLine, offset)
                if not message.stored:
                    offset = _writeAll(out, UIDL_HEADER + message.uid.encode() + b"\n", offset)
                offset = _copyRange(fd, out, message.start, message.end, offset)
                last = os.pread(fd, 1, message.end - 1) if message.end > message.start else b""
                offset = _writeAll(out, lineEndAfter(last) + b"\n", offset)
            checkpoint("owner")
            os.fchmod(out, old.st_mode & 0o7777)
            if (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
                try:
                    os.fchown(out, old.st_uid, old.st_gid)
                except PermissionError:
                    raise PermissionError(
                        errno.EPERM,
                        f"cannot give the rewritten mbox the owner {old.st_uid}:"
                        f"{old.st_gid} of the old one",
                        lock.path,
                    ) from None
            checkpoint("sync")
            durability.syncFile(newPath)
        finally:
            os.close(out)
        checkpoint("rename")
        os.rename(newPath, lock.path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(newPath)
        raise
    checkpoint("sync-directory")
    durability.syncDirectory(os.path.dirname(os.path.abspath(lock.path)))
    return removed


def iterMessages(path: str) -> Iterator[bytes]:
    """
    The contents of the messages of the mbox C{path}, as read back (unquoted, without
    the stored header), without locking: for tests and tools.
    """
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    try:
        listing = scanMbox(fd)
    finally:
        os.close(fd)
    for message in listing:
        with open(path, "rb") as f:
            yield MessageStream(f, message).read()


def quoteMessage(content: bytes) -> bytes:
    """
    C{content} quoted the mboxrd way.
    """
    q = quoter()
    return q.feed(content) + q.flush()


def outgoing(contents: Iterable[bytes]) -> list[OutgoingMessage]:
    """
    L{OutgoingMessage}s for messages held in memory (tests, small tools).
    """
    result = []
    for content in contents:
        quoted = quoteMessage(content)
        result.append(OutgoingMessage(fromLine(), io.BytesIO(quoted), len(quoted), quoted[-1:]))
    return result
