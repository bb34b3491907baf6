"""
A storage backend for Maildir (and Maildir++) maildrops.

Reads maildrops written by Postfix, Exim, Dovecot's LDA, procmail, Courier and Python's
L{mailbox.Maildir}: the messages are the files in C{new/} and C{cur/}; C{tmp/}, dot-files
and Maildir++ sub-folders (C{.Sent} ...) are not part of the maildrop.

A message's unique-id is the I{unique part} of its file name (everything before the
C{:2,} flags suffix, or its C{!2,} variant), so it survives flag changes and the move from
C{new/} to C{cur/}.  A unique part that is not a valid RFC 1939 unique-id is replaced by its
SHA-1 in hexadecimal.

Message sizes come from Dovecot's C{,W=<n>} in the file name where present; otherwise the
file is read once and the size kept in a L{SizeCache} shared by all sessions (files in a
Maildir never change their contents).  L{deliver} writes names that carry C{,S=} and
C{,W=}, so maildrops it fills list without reading any file.

File I/O happens in the reactor thread: this is meant for local disks, as
L{twisted.protocols.basic.FileSender} is.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import socket
import threading
import time
import unicodedata
from collections.abc import Callable, Collection, Container, Mapping, Sequence
from typing import BinaryIO

from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import Interface, implementer

from pop3kit.backends import _retrieval
from pop3kit.backends._maildirindex import (
    Snapshot,
    directoryStamps,
    isSettled,
    readIndex,
    writeIndex,
)
from pop3kit.backends.memory import _avatarName
from pop3kit.core import (
    MessageInfo,
    WireSizeCounter,
    isValidUid,
)
from pop3kit.errors import MessageUnavailable, PermanentFailure, TemporaryFailure
from pop3kit.interfaces import IMailbox, IRetrievalLog

__all__ = [
    "DEFAULT_SIZE_CACHE_ENTRIES",
    "LOCK_FILE_NAME",
    "TMP_MAX_AGE",
    "MaildirMailbox",
    "MaildirRealm",
    "SizeCache",
    "cleanTmp",
    "deliver",
    "mailboxPath",
    "maildirLockPath",
]

#: The file inside a Maildir on which L{pop3kit.locking.FileLocker} takes its lock (see
#: L{maildirLockPath}).  Maildir readers ignore files outside C{new/}, C{cur/} and C{tmp/}.
LOCK_FILE_NAME = "pop3kit.lock"


def maildirLockPath(maildropId: str) -> str:
    """
    The lock file of the Maildir whose
    L{maildropId <pop3kit.interfaces.IMailbox.maildropId>} is C{maildropId} (the real
    path of the Maildir, as L{MaildirMailbox} gives it): C{<maildir>/pop3kit.lock}, for
    L{pop3kit.locking.FileLocker}.
    """
    return os.path.join(maildropId, LOCK_FILE_NAME)


#: How many octets are read or written at a time.
_CHUNK_SIZE = 64 * 1024

#: The sub-directories of a Maildir that hold messages, in the order they are scanned:
#: C{new/} first, so that a message moved to C{cur/} during a scan is still seen.
_MESSAGE_DIRS = ("new", "cur")

#: The delivery time at the start of a Maildir file name: seconds, then optionally
#: microseconds (C{M} or Exim's C{H}), a process id and a per-process counter (C{Q}).
_DELIVERY_TIME = re.compile(r"(\d+)\.(?:[MH](\d+))?(?:P\d+)?(?:Q(\d+))?")

#: Dovecot's CRLF size field in a file name.
_WIRE_SIZE = re.compile(r",W=(\d+)(?=,|$)")

#: Octets of a host name that are kept as they are in a delivered file's name.
_HOST_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")

#: The default bound of L{SizeCache}: about 25 MB of memory at most.
DEFAULT_SIZE_CACHE_ENTRIES = 100_000

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _openReadOnly(path: str) -> BinaryIO:
    """
    Open a message file for reading, without following a symbolic link.
    """
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    return os.fdopen(fd, "rb")


def _uidFor(unique: str) -> str:
    """
    The unique-id of a message whose file name has the unique part C{unique}: the unique
    part itself if it is a valid RFC 1939 unique-id, its SHA-1 in hexadecimal otherwise.
    """
    if isValidUid(unique):
        return unique
    return _hashed(unique)


def _hashed(unique: str) -> str:
    """
    The SHA-1 of C{unique} in hexadecimal (file names that are not UTF-8 included).
    """
    return hashlib.sha1(
        unique.encode("utf-8", "surrogateescape"), usedforsecurity=False
    ).hexdigest()


def _deliveryOrder(unique: str) -> tuple[int, int, int, str]:
    """
    The sort key that puts messages in delivery order: the time stamp at the start of the
    name, then the name.  Names without a time stamp come last.
    """
    match = _DELIVERY_TIME.match(unique)
    if match is None:
        return (1 << 62, 0, 0, unique)
    seconds, micros, counter = match.groups()
    return (int(seconds), int(micros or 0), int(counter or 0), unique)


def _wireSizeOfFile(path: str) -> int:
    """
    The CRLF size of the message in the file at C{path}, read in chunks.
    """
    counter = WireSizeCounter()
    with _openReadOnly(path) as f:
        while chunk := f.read(_CHUNK_SIZE):
            counter.feed(chunk)
    return counter.octets


def _scanMaildir(maildir: str) -> dict[str, list[str]]:
    """
    Find the messages of a Maildir.

    @return: The paths of the message files, by the unique part of their names, in the
        order found (C{new/} before C{cur/}).  Normally one path each; a message found in
        both C{new/} and C{cur/} (an interrupted move) has several.
    """
    found: dict[str, list[str]] = {}
    for subdir in _MESSAGE_DIRS:
        directory = os.path.join(maildir, subdir)
        try:
            entries = os.scandir(directory)
        except FileNotFoundError:
            continue
        with entries:
            # This loop runs for every message of every listing: keep it lean.
            for entry in entries:
                name = entry.name
                if name[0] == "." or not entry.is_file(follow_symlinks=False):
                    continue
                cut = name.rfind(":2,")
                if cut < 0:
                    cut = name.rfind("!2,")
                unique = name if cut < 0 else name[:cut]
                if unique in found:
                    found[unique].append(entry.path)
                else:
                    found[unique] = [entry.path]
    return found


#: What L{SizeCache} keeps about a message: its sort key and its listing entry.
_Known = tuple[tuple[int, int, int, str], MessageInfo]


class SizeCache:
    """
    What listing a Maildir message costs to find out, shared by all sessions of a server:
    its size (read from the file when the name does not carry it), its unique-id and its
    place in the delivery order.

    Everything kept is derived from the file name and the file contents, which in a Maildir
    never change, so entries never go stale.  Entries are kept per Maildir and replaced by
    each listing of that Maildir, so messages that are gone are forgotten.  At most
    C{maxEntries} messages are kept; beyond that the Maildirs listed longest ago are
    forgotten.  An entry takes about 250 octets.
    """

    def __init__(self, maxEntries: int = DEFAULT_SIZE_CACHE_ENTRIES) -> None:
        """
        @param maxEntries: The most messages kept, over all Maildirs.
        """
        self._maxEntries = maxEntries
        self._maildirs: dict[str, dict[str, _Known]] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._entries = 0

    def __len__(self) -> int:
        """
        The number of messages kept.
        """
        return self._entries

    def _knownIn(self, maildir: str) -> Mapping[str, _Known]:
        """
        What is known about the messages of C{maildir}, by the unique part of their names.
        """
        return self._maildirs.get(maildir, {})

    def _remember(self, maildir: str, known: dict[str, _Known]) -> None:
        """
        Replace what is known about C{maildir} by C{known}, and make it the most recently
        used Maildir.
        """
        old = self._maildirs.pop(maildir, None)
        if old is not None:
            self._entries -= len(old)
        if not known or len(known) > self._maxEntries:
            return
        self._maildirs[maildir] = known
        self._entries += len(known)
        while self._entries > self._maxEntries:
            oldest = next(iter(self._maildirs))
            self._entries -= len(self._maildirs.pop(oldest))
            self._snapshots.pop(oldest, None)

    def _snapshot(self, maildir: str, stamps: tuple[int, int]) -> Snapshot | None:
        """
        The last listing of C{maildir}, if its directories still have these times.
        """
        snapshot = self._snapshots.get(maildir)
        if snapshot is None or snapshot.stamps != stamps:
            return None
        return snapshot

    def _keepSnapshot(self, maildir: str, snapshot: Snapshot) -> None:
        """
        Remember a listing of C{maildir} that its directory times vouch for.
        """
        if len(snapshot.listing) <= self._maxEntries:
            self._snapshots[maildir] = snapshot


@implementer(IMailbox, IRetrievalLog)
class MaildirMailbox:
    """
    One user's Maildir as a L{IMailbox}.

    As an L{IRetrievalLog} it keeps when messages were retrieved in the Maildir's
    C{pop3kit-retrieved} file (see L{pop3kit.backends._retrieval}), for C{EXPIRE n}.

    Messages are listed oldest first, by the delivery time at the start of their file
    names.  The mailbox remembers where the last listing found each message and looks again
    when a message has been renamed (new flags) or moved from C{new/} to C{cur/} since.
    """

    log = Logger()

    def __init__(self, path: str, sizeCache: SizeCache | None = None, index: bool = True) -> None:
        """
        @param path: The Maildir: the directory holding C{new/}, C{cur/} and C{tmp/}.
        @param sizeCache: Where what listing finds out is kept; share one between all
            sessions.  By default this mailbox has a cache of its own.
        @param index: Whether the listing index file (C{pop3kit-index}, see
            L{pop3kit.backends._maildirindex}) is read and written.  The index kept in
            C{sizeCache} is used either way.
        """
        self._path = path
        self.maildropId = os.path.realpath(path)
        self._sizeCache = SizeCache() if sizeCache is None else sizeCache
        # The unique parts of listed messages whose unique-id is something else.
        self._uniques: dict[str, str] = {}
        # The files of the listed messages, by unique part; shared with the size cache's
        # snapshot (and copied before a change) while _sharedPaths is true.
        self._paths: dict[str, list[str]] = {}
        self._sharedPaths = False
        self._index = index

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._path!r}>"

    def listMessages(self) -> Deferred[Sequence[MessageInfo]]:
        """
        List the messages in C{new/} and C{cur/}, oldest first.

        Fails with L{pop3kit.errors.TemporaryFailure} if the Maildir cannot be read.
        """
        try:
            return succeed(self._list())
        except OSError as e:
            where = e.filename if isinstance(e.filename, str) else self._path
            self.log.error(
                "Cannot read Maildir {path} ({owner}) as {user}: {reason}",
                path=os.path.abspath(where),
                owner=_ownership(where),
                user=_userName(os.geteuid()),
                reason=e.strerror or str(e),
            )
            return fail(TemporaryFailure(f"cannot read maildrop ({e.strerror})"))

    def _list(self) -> Sequence[MessageInfo]:
        try:
            stamps = directoryStamps(self._path)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such Maildir", self._path) from None
        snapshot = self._sizeCache._snapshot(self._path, stamps)
        if snapshot is None and self._index:
            snapshot = readIndex(self._path, stamps)
            if snapshot is not None:
                self._sizeCache._keepSnapshot(self._path, snapshot)
        if snapshot is not None:
            self._uniques = snapshot.uniques
            self._paths = snapshot.paths
            self._sharedPaths = True
            # The same tuple for every session: the core checks and renders it once.
            return snapshot.listing
        # Taken before the scan: a change during the scan moves the times past these.
        settled = isSettled(stamps)
        listing = self._scan()
        if settled:
            snapshot = Snapshot(stamps, tuple(listing), self._uniques, self._paths)
            self._sizeCache._keepSnapshot(self._path, snapshot)
            self._sharedPaths = True
            if self._index:
                writeIndex(self._path, snapshot)
        return listing

    def _scan(self) -> list[MessageInfo]:
        """
        List the Maildir from its directories.
        """
        found = _scanMaildir(self._path)
        known = self._sizeCache._knownIn(self._path)
        # The cache keeps the last listing's order, so this list is nearly sorted already
        # and sorting it is cheap.
        entries = [entry for unique, entry in known.items() if unique in found]
        for unique, candidates in found.items():
            if unique not in known:
                entry = self._describe(unique, candidates)
                if entry is not None:
                    entries.append(entry)
        entries.sort()
        self._sizeCache._remember(self._path, {entry[0][3]: entry for entry in entries})
        listing: list[MessageInfo] = []
        seen: set[str] = set()
        uniques: dict[str, str] = {}
        for order, info in entries:
            unique = order[3]
            if info.uid in seen:
                info = MessageInfo(_hashed(unique), info.size)
                if info.uid in seen:
                    self.log.warn(
                        "Maildir {path}: skipping {unique!r}, its unique-id is taken",
                        path=self._path,
                        unique=unique,
                    )
                    continue
            seen.add(info.uid)
            if info.uid != unique:
                uniques[info.uid] = unique
            listing.append(info)
        self._uniques = uniques
        self._paths = found
        self._sharedPaths = False
        return listing

    def _ownPaths(self) -> dict[str, list[str]]:
        """
        The message files by unique part, as this mailbox's own to change.
        """
        if self._sharedPaths:
            self._paths = dict(self._paths)
            self._sharedPaths = False
        return self._paths

    def _describe(self, unique: str, candidates: list[str]) -> _Known | None:
        """
        Work out the sort key and listing entry of a message.

        @return: L{None} if the message vanished before its size could be read.
        """
        wire = _WIRE_SIZE.search(unique)
        if wire is not None:
            size = int(wire.group(1))
        else:
            sized = self._computeSize(unique, candidates)
            if sized is None:
                return None
            size = sized
        return _deliveryOrder(unique), MessageInfo(_uidFor(unique), size)

    def _computeSize(self, unique: str, candidates: list[str]) -> int | None:
        """
        Read a message to find its CRLF size, following it if it is renamed meanwhile.

        @return: The size, or L{None} if the message is gone.
        """
        for attempt in range(2):
            for path in candidates:
                try:
                    return _wireSizeOfFile(path)
                except FileNotFoundError:
                    pass
            if attempt == 0:
                candidates[:] = _scanMaildir(self._path).get(unique, [])
        return None

    def _uniqueOf(self, uid: str) -> str | None:
        """
        The unique part of the listed message C{uid}, or L{None} if it is not listed.
        """
        unique = self._uniques.get(uid, uid)
        return unique if unique in self._paths else None

    def _rememberedPaths(self, uid: str) -> list[str]:
        """
        Where the last listing found the message C{uid}.
        """
        unique = self._uniqueOf(uid)
        if unique is None:
            return []
        return list(self._paths[unique])

    def _foundPaths(self, uid: str, scan: _Scan) -> list[str]:
        """
        Where a new scan of the Maildir finds the message C{uid}; the mailbox remembers it.
        """
        unique = self._uniqueOf(uid)
        if unique is None:
            return scan.byUid().get(uid, [])
        paths = scan.byUnique.get(unique, [])
        if paths:
            self._ownPaths()[unique] = paths
        return paths

    def openMessage(self, uid: str) -> Deferred[BinaryIO]:
        """
        Open the message C{uid} for reading.

        Fails with L{pop3kit.errors.MessageUnavailable} if it is no longer in the Maildir,
        and with L{pop3kit.errors.TemporaryFailure} if it cannot be read.
        """
        remembered = self._rememberedPaths(uid)
        for attempt in range(2):
            paths = remembered if attempt == 0 else self._foundPaths(uid, _Scan(self._path))
            for path in paths:
                try:
                    return succeed(_openReadOnly(path))
                except FileNotFoundError:
                    continue
                except OSError as e:
                    self.log.failure("Cannot open {path}", path=path)
                    return fail(TemporaryFailure(f"cannot read message ({e.strerror})"))
        return fail(MessageUnavailable())

    def expunge(self, uids: Collection[str]) -> Deferred[None]:
        """
        Delete the files of the messages C{uids}.

        A message that is already gone counts as deleted.  If some file cannot be deleted
        the others still are, and the result fails with
        L{pop3kit.errors.TemporaryFailure}.
        """
        problems: list[str] = []
        scan: _Scan | None = None
        for uid in uids:
            remembered = self._rememberedPaths(uid)
            for attempt in range(2):
                if attempt == 0:
                    paths = remembered
                else:
                    if scan is None:
                        scan = _Scan(self._path)
                    paths = self._foundPaths(uid, scan)
                vanished = not paths
                for path in paths:
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        vanished = True
                    except OSError as e:
                        self.log.failure("Cannot delete {path}", path=path)
                        problems.append(e.strerror or str(e))
                if not vanished:
                    break
            unique = self._uniqueOf(uid)
            if unique is not None:
                del self._ownPaths()[unique]
        if problems:
            return fail(
                TemporaryFailure(f"could not delete {len(problems)} message(s): {problems[0]}")
            )
        return succeed(None)

    def markRetrieved(self, uids: Collection[str], when: float) -> Deferred[None]:
        """
        Record in the Maildir's C{pop3kit-retrieved} file that the messages C{uids} were
        retrieved at C{when}; fails with L{pop3kit.errors.TemporaryFailure} if the record
        cannot be written.
        """
        try:
            _retrieval.markRetrieved(self._path, uids, when, self._storedUids)
        except OSError as e:
            self.log.failure("Cannot record retrievals in {path}", path=self._path)
            return fail(TemporaryFailure(f"cannot record retrieved messages ({e.strerror})"))
        return succeed(None)

    def expired(self, before: float) -> Deferred[Collection[str]]:
        """
        The messages first retrieved before C{before}, from the Maildir's
        C{pop3kit-retrieved} file; fails with L{pop3kit.errors.TemporaryFailure} if it
        cannot be read.
        """
        try:
            uids = _retrieval.expiredUids(self._path, before, self._storedUids)
        except OSError as e:
            self.log.failure("Cannot read the retrieval record of {path}", path=self._path)
            return fail(TemporaryFailure(f"cannot read retrieved messages ({e.strerror})"))
        return succeed(uids)

    def _storedUids(self) -> Container[str]:
        """
        The unique-ids of the messages in the Maildir now, from a new scan.
        """
        return _Scan(self._path).byUid()


class _Scan:
    """
    One scan of a Maildir, for finding messages that moved since the listing.

    @ivar byUnique: The message files by the unique part of their names.
    """

    def __init__(self, maildir: str) -> None:
        self.byUnique = _scanMaildir(maildir)
        self._byUid: dict[str, list[str]] | None = None

    def byUid(self) -> dict[str, list[str]]:
        """
        The message files by unique-id.
        """
        if self._byUid is None:
            self._byUid = {}
            for unique, paths in self.byUnique.items():
                self._byUid.setdefault(_uidFor(unique), paths)
        return self._byUid


def mailboxPath(root: str, name: str) -> str:
    """
    The Maildir of user C{name} under C{root}.

    The name is checked against a whitelist: letters, marks and digits of any script, and
    C{. - _ @ + = ~ %}; it must not start with C{.} nor hold C{..}, and must fit in 255
    octets of UTF-8.  So no name can climb out of C{root} or hide from a directory listing.

    @raise ValueError: If C{name} is not safe to use as a directory name.
    """
    if not name:
        raise ValueError("empty user name")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"user name {name!r} is not valid Unicode") from None
    if len(encoded) > 255:
        raise ValueError("user name longer than 255 octets")
    if name.startswith("."):
        raise ValueError(f"user name {name!r} starts with '.'")
    if ".." in name:
        raise ValueError(f"user name {name!r} holds '..'")
    for c in name:
        if c not in _NAME_PUNCTUATION and unicodedata.category(c)[0] not in "LMN":
            raise ValueError(f"user name {name!r} holds {c!r}, which a mailbox name may not")
    return os.path.join(root, name)


#: The characters other than letters, marks and digits that a mailbox name may hold.
_NAME_PUNCTUATION = frozenset(".-_@+=~%")


def _makeMaildir(path: str, parents: bool) -> None:
    """
    Create the Maildir C{path} and its C{new/}, C{cur/} and C{tmp/} where missing, with
    mode 0700, and sync the directories that gained an entry.

    @param parents: Whether missing parent directories are created too.
    """
    created: list[str] = []
    if parents and not os.path.isdir(path):
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o700, exist_ok=True)
    for directory in (path, *(os.path.join(path, sub) for sub in ("new", "cur", "tmp"))):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue
        created.append(directory)
    # A new directory's entry is durable once its parent is synced: a delivery into a
    # Maildir created just now must not vanish with it in a crash.
    for parent in dict.fromkeys(os.path.dirname(os.path.abspath(d)) for d in created):
        _syncDirectory(parent)


@implementer(IRealm)
class MaildirRealm:
    """
    A realm that hands out the Maildir C{<root>/<user>/} of each user as a
    L{MaildirMailbox}.
    """

    log = Logger()

    def __init__(self, root: str, sizeCache: SizeCache | None = None, create: bool = True):
        """
        @param root: The directory holding the users' Maildirs.  It must exist.
        @param sizeCache: The size cache shared by all sessions; by default a new one.
        @param create: Whether a user's Maildir is created at the first login; if false, a
            user without one fails to log in with L{pop3kit.errors.PermanentFailure}.
        """
        self._root = root
        self._sizeCache = SizeCache() if sizeCache is None else sizeCache
        self._create = create

    def requestAvatar(
        self, avatarId: bytes | str | tuple[()], mind: object, *interfaces: type[Interface]
    ) -> tuple[type[Interface], object, Callable[[], None]]:
        """
        Return C{(IMailbox, mailbox, logout)} for C{avatarId}.

        @raise NotImplementedError: If L{IMailbox} is not among C{interfaces}.
        @raise PermanentFailure: If C{avatarId} is not a safe user name (see
            L{mailboxPath}) or the user has no Maildir and the realm does not create them.
        @raise TemporaryFailure: If the Maildir cannot be created.
        """
        if IMailbox not in interfaces:
            raise NotImplementedError("MaildirRealm only provides IMailbox")
        name = _avatarName(avatarId)
        try:
            path = mailboxPath(self._root, name)
        except ValueError:
            raise PermanentFailure("user name not allowed for a maildrop") from None
        if self._create:
            try:
                _makeMaildir(path, parents=False)
            except OSError as e:
                # A Maildir that is there but cannot be entered (another owner, a file in
                # its place) is not one that could not be created: say which, and whose.
                verb = "open" if os.path.lexists(path) else "create"
                self.log.error(
                    "Cannot {verb} Maildir {path} ({owner}) as {user}: {reason}",
                    verb=verb,
                    path=os.path.abspath(path),
                    owner=_ownership(path),
                    user=_userName(os.geteuid()),
                    reason=e.strerror or str(e),
                )
                raise TemporaryFailure(f"cannot {verb} maildrop ({e.strerror})") from None
        elif not os.path.isdir(path):
            raise PermanentFailure("no maildrop for this user")
        try:
            cleanTmp(path)
        except OSError:
            self.log.failure("Cannot clean {path}/tmp", path=path)
        return IMailbox, MaildirMailbox(path, self._sizeCache), _noLogout


def _userName(uid: int) -> str:
    """
    The name of the user C{uid}, or C{"uid N"} if it has none.
    """
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def _ownership(path: str) -> str:
    """
    Who owns C{path} and its mode, for a log line: C{"owner alice, mode 0700"}.
    """
    try:
        status = os.lstat(path)
    except OSError as e:
        return f"not found: {e.strerror}"
    return f"owner {_userName(status.st_uid)}, mode {status.st_mode & 0o7777:04o}"


def _noLogout() -> None:
    """
    Nothing to do when a L{MaildirMailbox} avatar logs out.
    """


def _hostPart() -> str:
    """
    This host's name for a delivered file's name, with unsafe octets written as C{\\ooo}.
    """
    host = socket.gethostname() or "localhost"
    return "".join(c if c in _HOST_SAFE else f"\\{ord(c):03o}" for c in host)


class _UniqueNames:
    """
    Makes unique parts for delivered files' names:
    C{<seconds>.M<microseconds>P<pid>Q<counter>R<random>.<host>}.

    Time stamps strictly increase within the process, so delivery order is name order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = 0
        self._lastStamp = 0

    def next(self) -> str:
        """
        A new unique part.
        """
        with self._lock:
            self._counter += 1
            stamp = max(time.time_ns() // 1000, self._lastStamp + 1)
            self._lastStamp = stamp
            counter = self._counter
        seconds, micros = divmod(stamp, 1_000_000)
        random = secrets.token_hex(8)
        return f"{seconds}.M{micros}P{os.getpid()}Q{counter}R{random}.{_hostPart()}"


_UNIQUE_NAMES = _UniqueNames()


class _Delivery:
    """
    One message on its way into a Maildir, the Maildir way: written to C{tmp/} in pieces,
    synced to disk, then linked into C{new/}.

    Call L{write} with the message's octets as they are to be stored (LF or CRLF line
    ends), then either L{commit} or L{abort}.  The file name given by L{commit} carries
    Dovecot's C{,S=<stored size>,W=<CRLF size>}, so listing it needs no reading.

    @ivar tmpPath: The path of the file in C{tmp/}.
    @ivar newPath: The path of the file in C{new/}, once published.
    @ivar leftover: Why the file could not be removed from C{tmp/} after it was published,
        if it could not.
    """

    def __init__(self, maildir: str, create: bool = True, countWireSize: bool = True) -> None:
        """
        Start a delivery: create the Maildir (and its parents) if missing and open a new
        file in its C{tmp/}.

        @param maildir: The Maildir.
        @param create: Create the Maildir if missing (C{False}: the caller did).
        @param countWireSize: Count the CRLF size while writing; C{False} if the caller
            gives it to L{commit}.
        """
        if create:
            _makeMaildir(maildir, parents=True)
        self._maildir = maildir
        self._unique = _UNIQUE_NAMES.next()
        self.tmpPath = os.path.join(maildir, "tmp", self._unique)
        fd = os.open(self.tmpPath, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._counter = WireSizeCounter() if countWireSize else None
        self._stored = 0
        self.newPath: str | None = None
        self.leftover: OSError | None = None

    def write(self, data: bytes) -> None:
        """
        Append C{data} to the message.
        """
        assert self._file is not None, "the delivery is over"
        self._file.write(data)
        if self._counter is not None:
            self._counter.feed(data)
        self._stored += len(data)

    def commit(self, wireSize: int | None = None) -> str:
        """
        Sync the message to disk and link it into C{new/}; the entry in C{new/} is synced
        too before this returns.  Blocking: may be called from a thread.

        @param wireSize: The message's CRLF size, if it was not counted.
        @return: The new file's name in C{new/}.
        """
        if wireSize is None:
            assert self._counter is not None, "the wire size was neither counted nor given"
            wireSize = self._counter.octets
        out, self._file = self._file, None
        assert out is not None, "the delivery is over"
        try:
            with out:
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmpPath)
            raise
        name = self.publish(wireSize)
        try:
            _syncDirectory(os.path.join(self._maildir, "new"))
        except BaseException:
            # Not known to be durable: take it back, so that the caller's retry does not
            # deliver it twice.
            assert self.newPath is not None
            with contextlib.suppress(OSError):
                os.unlink(self.newPath)
            raise
        return name

    def closeFile(self) -> None:
        """
        Finish writing without syncing: the first half of a commit whose sync the caller
        does itself (for many messages at once, with C{os.sync}).  Then call L{publish}.
        """
        out, self._file = self._file, None
        assert out is not None, "the delivery is over"
        out.close()

    def publish(self, wireSize: int) -> str:
        """
        Link the closed file into C{new/} (the second half of a commit, after the caller
        made the file durable), without syncing C{new/}, then remove it from C{tmp/}.

        Once the message is in C{new/}, a failure to remove the file from C{tmp/} does not
        fail the delivery (failing it would have the message delivered twice): it is kept
        in L{leftover}, and the file is removed by L{cleanTmp} once it is old.

        @return: The new file's name in C{new/}.
        """
        name = f"{self._unique},S={self._stored},W={wireSize}"
        newPath = os.path.join(self._maildir, "new", name)
        try:
            try:
                os.link(self.tmpPath, newPath)
            except FileExistsError:
                raise
            except OSError:
                # File systems without hard links: rename instead.
                os.rename(self.tmpPath, newPath)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(self.tmpPath)
            raise
        self.newPath = newPath
        try:
            os.unlink(self.tmpPath)
        except FileNotFoundError:
            pass
        except OSError as e:
            self.leftover = e
        return name

    def abort(self) -> None:
        """
        Give up: close and remove the file in C{tmp/}.  Does nothing after L{commit}.
        """
        out, self._file = self._file, None
        if out is not None:
            out.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmpPath)


def deliver(
    maildir: str, message: BinaryIO, cleanupFailed: Callable[[OSError], None] | None = None
) -> str:
    """
    Deliver a message into a Maildir, the Maildir way: write it to C{tmp/}, sync it to
    disk, then link it into C{new/}.

    The message is copied in chunks, never held in memory whole.  The file name carries
    Dovecot's C{,S=<stored size>,W=<CRLF size>}, so listing it needs no reading.  The
    Maildir (and its parents) is created if missing.

    @param maildir: The Maildir.
    @param message: The message as it is to be stored (LF or CRLF line ends), read from its
        current position to its end.
    @param cleanupFailed: Called with the error if the message is delivered but its file
        could not be removed from C{tmp/} (which is then no failure).
    @return: The new file's name in C{new/}.
    @raise OSError: If the message could not be stored durably; then it is not in C{new/}.
    """
    delivery = _Delivery(maildir)
    try:
        while chunk := message.read(_CHUNK_SIZE):
            delivery.write(chunk)
    except BaseException:
        delivery.abort()
        raise
    name = delivery.commit()
    if delivery.leftover is not None and cleanupFailed is not None:
        cleanupFailed(delivery.leftover)
    return name


#: The C{errno} values of a directory's C{fsync} that mean the platform cannot sync
#: directories, not that the data is in danger.
_NO_DIRECTORY_SYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF})


def _syncDirectory(path: str) -> None:
    """
    Make a new directory entry durable, where the platform allows.

    @raise OSError: If the directory cannot be opened, or its sync fails for another
        reason than the platform not syncing directories (C{EIO}: the entries may not be
        on disk).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _NO_DIRECTORY_SYNC:
            raise
    finally:
        os.close(fd)


#: How old a file in C{tmp/} must be before L{cleanTmp} removes it: 36 hours, as the
#: Maildir specification says.
TMP_MAX_AGE = 36 * 3600


def cleanTmp(maildir: str, now: float | None = None, maxAge: float | None = None) -> int:
    """
    Remove the files that a crashed delivery left in the C{tmp/} of C{maildir}: those not
    accessed, modified nor changed for C{maxAge} seconds (36 hours), as Maildir readers
    do.  A delivery under way touches its file far more often than that.

    @param now: The time; L{time.time} by default.
    @param maxAge: The age in seconds; L{TMP_MAX_AGE} by default.
    @return: How many files were removed.
    @raise OSError: If C{tmp/} cannot be listed (a missing one is no error).
    """
    tmp = os.path.join(maildir, "tmp")
    limit = (time.time() if now is None else now) - (TMP_MAX_AGE if maxAge is None else maxAge)
    removed = 0
    try:
        entries = os.scandir(tmp)
    except FileNotFoundError:
        return 0
    with entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if not entry.is_file(follow_symlinks=False):
                    continue
                if max(st.st_atime, st.st_mtime, st.st_ctime) >= limit:
                    continue
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                continue
    return removed
