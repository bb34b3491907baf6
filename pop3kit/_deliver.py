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

With C{--storage SPEC} (the specifications of C{twistd pop3kit --storage}), a storage that
takes deliveries (one with C{makeDelivery}, such as C{postgresql://...}) gets the message
through its L{IMaildropDelivery <pop3kit.interfaces.IMaildropDelivery>}
(L{deliverToStorage}), with the same statuses: 0 once the storage has it durably (the
database transaction committed), 65 for an empty message, 67 for a user the passwd-file
does not list (or the storage refuses as unknown), 73 for a storage that can never take
the message (an unusable specification, a storage without deliveries), 75 for anything
temporary (the database unreachable, a quota of messages reached).  C{--storage
maildir:ROOT} is the Maildir delivery above.
"""

from __future__ import annotations

import errno
import sys
import tempfile
from typing import Any, BinaryIO, TextIO, cast

from pop3kit._exits import ExitError, ExitStatus, describeOSError, errorText

__all__ = ["PERMANENT_ERRNOS", "deliverMessage", "deliverToStorage"]

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


def _checkUser(name: str, passwd: str | None) -> frozenset[str] | None:
    """
    With a passwd-file, check that it lists C{name}.

    @return: The users the passwd-file lists, or L{None} without one.
    @raise ExitError: With L{ExitStatus.NOUSER} if it does not, L{ExitStatus.TEMPFAIL}
        if it cannot be read.
    """
    if passwd is None:
        return None
    from pop3kit.checkers._editing import listUsers

    try:
        users = frozenset(listUsers(passwd))
    except OSError as e:
        raise ExitError(
            f"cannot read the passwd-file: {describeOSError(e)}", ExitStatus.TEMPFAIL
        ) from None
    if name not in users:
        raise ExitError(f"no user {name!r} in {passwd}", ExitStatus.NOUSER)
    return users


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


def _spoolMessage(message: BinaryIO) -> BinaryIO:
    """
    Copy C{message} into a spooled temporary file (in memory up to 1 MiB), rewound.

    @raise ExitError: With L{ExitStatus.TEMPFAIL} if it cannot be read or spooled,
        L{ExitStatus.DATAERR} if it is empty.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115
    try:
        while chunk := message.read(1 << 20):
            spool.write(chunk)
        empty = spool.tell() == 0
        spool.seek(0)
    except OSError as e:
        spool.close()
        raise ExitError(
            f"cannot read the message: {describeOSError(e)}", ExitStatus.TEMPFAIL
        ) from None
    if empty:
        spool.close()
        raise ExitError("empty message on standard input", ExitStatus.DATAERR)
    return cast(BinaryIO, spool)


async def deliverToStorage(
    storage: Any, name: str, message: BinaryIO, passwd: str | None = None
) -> str:
    """
    Deliver C{message} to C{name} through a storage's delivery (C{pop3kit deliver
    --storage SPEC}), with the exit statuses described above.  Runs on the reactor the
    storage uses (the global one).

    @param storage: What L{pop3kit.storage.parseStorage} returned; it must have
        C{makeDelivery(knownUser)} returning an
        L{IMaildropDelivery <pop3kit.interfaces.IMaildropDelivery>}.
    @param name: The user (or a recipient address, resolved as LMTP resolves it).
    @param message: The message, read to its end.
    @param passwd: The passwd-file in use, if any: C{name} must be in it.
    @return: The maildrop the message went to.
    @raise ExitError: With the exit status for the mail transfer agent.
    """
    from pop3kit.delivery import UnknownRecipient
    from pop3kit.errors import PermanentFailure, TemporaryFailure

    makeDelivery = getattr(storage, "makeDelivery", None)
    if makeDelivery is None:
        raise ExitError(f"cannot deliver into {storage.description}", ExitStatus.CANTCREAT)
    users = _checkUser(name, passwd)
    spool = _spoolMessage(message)
    try:
        delivery = makeDelivery(None if users is None else users.__contains__)
        maildrop: str = await delivery.recipient(name)
        await delivery.deliver(maildrop, spool)
    except UnknownRecipient as e:
        raise ExitError(f"no user {name!r}: {e}", ExitStatus.NOUSER) from None
    except TemporaryFailure as e:
        raise ExitError(
            f"cannot deliver into {storage.description}: {e}", ExitStatus.TEMPFAIL
        ) from None
    except PermanentFailure as e:
        raise ExitError(
            f"cannot deliver into {storage.description}: {e}", ExitStatus.CANTCREAT
        ) from None
    except Exception as e:
        raise ExitError(
            f"cannot deliver into {storage.description}: {errorText(e)}", ExitStatus.TEMPFAIL
        ) from None
    finally:
        spool.close()
    return maildrop
