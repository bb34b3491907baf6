# -*- test-case-name: tests.test_fetch -*-
"""
The state file: the UIDLs of the messages already delivered from one account to one
destination.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import IO

from pop3kit._exits import ExitError, ExitStatus, describeOSError
from pop3kit._fetch._account import Account
from pop3kit._fetch._destinations import Destination
from pop3kit.backends import maildir as _maildir

__all__ = ["StateFile", "defaultStatePath"]

#: The first line of a state file.
_STATE_MAGIC = "# pop3kit fetch state 1: the UIDLs of the messages already delivered"


def defaultStatePath(account: Account, destination: Destination, environ: Mapping[str, str]) -> str:
    """
    The default state file of an account and destination:
    C{$XDG_STATE_HOME/pop3kit/fetch/USER@HOST:PORT-HASH}, where C{XDG_STATE_HOME} defaults
    to C{~/.local/state} and HASH is a short hash of the destination, so fetching one
    account into two places keeps two states.
    """
    base = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    key = f"{destination.kind}:{destination.path}".encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(key).hexdigest()[:12]
    name = urllib.parse.quote(f"{account.user}@{account.host}:{account.port}", safe="@:")
    return os.path.join(base, "pop3kit", "fetch", f"{name}-{digest}")


class StateFile:
    """
    The UIDLs of the messages already delivered from one account to one destination.

    The file holds a comment line, then one UIDL a line.  The UIDLs of each batch of
    messages stored are appended to it and synced to disk as soon as the batch is durable
    and before any of it is deleted on the server (L{recordAll}), so a process killed
    half-way keeps its record; L{save} rewrites it atomically (a temporary file, synced,
    renamed over the old one) with only the UIDLs that still matter.  A line torn by a
    crash (no line end) is ignored when the file is read.

    @ivar path: The file.
    @ivar uids: The UIDLs known.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.uids: set[str] = set()
        self._journal: IO[str] | None = None

    def load(self) -> None:
        """
        Read the file, if it exists.

        @raise ExitError: With L{ExitStatus.CANTCREAT} if it exists but cannot be read.
        """
        try:
            with open(self.path, encoding="ascii", errors="surrogateescape") as f:
                for line in f:
                    if not line.endswith("\n"):
                        # Torn by a crash: its message was not yet known to be stored.
                        break
                    line = line.strip()
                    if line and not line.startswith("#"):
                        self.uids.add(line)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ExitError(
                f"cannot read the state file: {describeOSError(e)}", ExitStatus.CANTCREAT
            ) from None

    def record(self, uid: str) -> None:
        """
        Remember C{uid}, appending it to the file at once (flushed to the kernel, not
        synced: see L{recordAll}).
        """
        self.recordAll([uid], sync=False)

    def recordAll(self, uids: Iterable[str], sync: bool = True) -> None:
        """
        Remember C{uids}, appending them to the file at once and (by default) syncing it
        to disk before returning, with its directory when the file is new: a process
        killed, or a machine that crashes, afterwards keeps the record, and the messages
        are not fetched twice.  Called once per batch of messages stored, from a thread.

        @raise OSError: If the file cannot be written or synced.
        """
        uids = list(uids)
        self.uids.update(uids)
        new = False
        if self._journal is None:
            new = not os.path.exists(self.path)
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            self._journal = open(  # noqa: SIM115
                self.path, "a", encoding="ascii", errors="surrogateescape"
            )
            if new:
                self._journal.write(_STATE_MAGIC + "\n")
        self._journal.write("".join(uid + "\n" for uid in uids))
        self._journal.flush()
        if sync:
            os.fsync(self._journal.fileno())
            if new:
                _maildir._syncDirectory(os.path.dirname(self.path))

    def close(self) -> None:
        """
        Close the appending handle, if open.
        """
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()

    def save(self, keep: Iterable[str]) -> None:
        """
        Rewrite the file atomically with just C{keep}; then remove temporary files that
        killed runs left in its directory over an hour ago.
        """
        self.close()
        self.uids = set(keep)
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="ascii", errors="surrogateescape") as f:
                f.write(_STATE_MAGIC + "\n")
                for uid in sorted(self.uids):
                    f.write(uid + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _maildir._syncDirectory(directory)
        _removeStaleTemporaries(directory)


#: How old a C{.state-*} temporary file must be before it is taken for one a killed run
#: left behind: an hour, far longer than any rewrite takes.
STALE_TEMPORARY_AGE = 3600.0


def _removeStaleTemporaries(directory: str, now: float | None = None) -> None:
    """
    Remove the C{.state-*} temporary files that runs killed while rewriting their state
    file left in C{directory} (shared by every account's state) over an hour ago.
    """
    limit = (time.time() if now is None else now) - STALE_TEMPORARY_AGE
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if not entry.name.startswith(".state-"):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < limit:
                    os.unlink(entry.path)
