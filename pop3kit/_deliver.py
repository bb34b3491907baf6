# -*- test-case-name: tests.test_deliver -*-
"""
C{pop3kit deliver NAME}: the local delivery agent a mail transfer agent runs for each
message (Postfix C{mailbox_command} or a C{pipe} transport, Exim C{pipe}, procmail-style).

What an MTA needs from it is an exit status it can act on, from C{sysexits.h}:

  - 0: the message is in the Maildir's C{new/}, synced to disk.  A failure to tidy up
    afterwards (removing the file from C{tmp/}) is only a warning: exiting otherwise would
    make the MTA deliver the message a second time.
  - 65 (C{EX_DATAERR}): the message is empty.  Permanent: the MTA bounces it.
  - 67 (C{EX_NOUSER}): no such user: a name no mailbox may have, or (when a passwd-file is
    in use) a name the passwd-file does not list.  No Maildir is created.  Permanent.
  - 73 (C{EX_CANTCREAT}): the Maildir can never be written where it is configured (a
    path through a file, a name too long, a loop of symbolic links).  Permanent.
  - 75 (C{EX_TEMPFAIL}): anything that may go away: a full disk or quota, an I/O error,
    a permission to fix, too many open files.  The MTA keeps the message and tries again;
    nothing was left in C{new/}.

A passwd-file is in use when C{--passwd FILE} is given, or when the data directory's
C{passwd} exists (the zero-configuration layout of C{twistd pop3kit}).
"""

from __future__ import annotations

import errno
import sys
from typing import BinaryIO, TextIO, cast

from pop3kit._exits import ExitError, ExitStatus, describeOSError

__all__ = ["PERMANENT_ERRNOS", "deliverMessage"]

#: The C{errno} values that a later attempt cannot cure: C{deliver} exits with
#: L{ExitStatus.CANTCREAT} for them, and with L{ExitStatus.TEMPFAIL} for all others.
PERMANENT_ERRNOS = frozenset(
    {errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.EEXIST}
)


class _Prefixed:
    """
    A binary stream that gives C{first}, then the rest of C{rest}.
    """

    def __init__(self, first: bytes, rest: BinaryIO) -> None:
        self._first = first
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._first:
            data, self._first = self._first, b""
            return data
        return self._rest.read(size)


def _checkUser(name: str, passwd: str | None) -> None:
    """
    With a passwd-file, check that it lists C{name}.

    @raise ExitError: With L{ExitStatus.NOUSER} if it does not, L{ExitStatus.TEMPFAIL}
        if it cannot be read.
    """
    if passwd is None:
        return
    from pop3kit.checkers._editing import listUsers

    try:
        users = listUsers(passwd)
    except OSError as e:
        raise ExitError(
            f"cannot read the passwd-file: {describeOSError(e)}", ExitStatus.TEMPFAIL
        ) from None
    if name not in users:
        raise ExitError(f"no user {name!r} in {passwd}", ExitStatus.NOUSER)


def deliverMessage(
    root: str,
    name: str,
    message: BinaryIO,
    passwd: str | None = None,
    warnings: TextIO | None = None,
) -> str:
    """
    Deliver C{message} into the Maildir of C{name} under C{root}, with the exit statuses
    described above.

    @param root: The directory of the users' Maildirs.
    @param name: The user.
    @param message: The message, read to its end.
    @param passwd: The passwd-file in use, if any: C{name} must be in it.
    @param warnings: Where a warning goes (standard error by default).
    @return: The name of the new file in C{new/}.
    @raise ExitError: With the exit status for the mail transfer agent.
    """
    from pop3kit.backends import maildir

    try:
        path = maildir.mailboxPath(root, name)
    except ValueError as e:
        raise ExitError(f"invalid user name {name!r}: {e}", ExitStatus.NOUSER) from None
    _checkUser(name, passwd)
    try:
        first = message.read(maildir._CHUNK_SIZE)
    except OSError as e:
        raise ExitError(
            f"cannot read the message: {describeOSError(e)}", ExitStatus.TEMPFAIL
        ) from None
    if not first:
        raise ExitError("empty message on standard input", ExitStatus.DATAERR)
    problems: list[OSError] = []
    try:
        delivered = maildir.deliver(
            path, cast(BinaryIO, _Prefixed(first, message)), cleanupFailed=problems.append
        )
    except OSError as e:
        status = ExitStatus.CANTCREAT if e.errno in PERMANENT_ERRNOS else ExitStatus.TEMPFAIL
        raise ExitError(describeOSError(e), status) from None
    out = sys.stderr if warnings is None else warnings
    for problem in problems:
        out.write(
            f"pop3kit: warning: delivered as {delivered}, but could not tidy up: "
            f"{describeOSError(problem)}\n"
        )
    try:
        maildir.cleanTmp(path)
    except OSError as e:
        out.write(f"pop3kit: warning: cannot clean up old files of {path}: {describeOSError(e)}\n")
    return delivered
