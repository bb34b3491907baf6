# -*- test-case-name: tests.test_exits,tests.test_cli -*-
"""
How the C{pop3kit} command ends: its exit statuses and the one exception that carries a
status and a one-line message (L{ExitError}).  The statuses come from C{sysexits.h} and
are documented in docs/fetch.rst.  L{pop3kit._fetch._failures} turns a failure of the
network, the server or the disk into an L{ExitError}.

This module imports nothing heavy: C{pop3kit deliver}, run by a mail transfer agent for
every message, needs it and must start fast.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "EX_CANTCREAT",
    "EX_DATAERR",
    "EX_NOHOST",
    "EX_NOPERM",
    "EX_NOUSER",
    "EX_PROTOCOL",
    "EX_TEMPFAIL",
    "EX_TLS",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "ExitError",
    "ExitStatus",
    "describeOSError",
    "errorText",
]


class ExitStatus(IntEnum):
    """
    The exit statuses of the C{pop3kit} command, from C{sysexits.h} where it has one.

    @cvar OK: Success.
    @cvar FAILURE: Any other error.
    @cvar USAGE: A bad command line, URL or option (argparse's own status).
    @cvar DATAERR: C{deliver}: the message is unusable (empty).
    @cvar NOUSER: No such user: C{deliver} (not in the passwd-file in use, or a name no
        mailbox may have) and C{user test}.
    @cvar NOHOST: The server's host name could not be resolved.
    @cvar UNAVAILABLE: The server could not be reached: connection refused, network
        unreachable.
    @cvar CANTCREAT: The destination or the state file could not be written (for
        C{fetch}, a full disk too); for C{deliver}, a Maildir that can never be written
        where it is configured (a path through a file, a name too long).
    @cvar TEMPFAIL: A failure that may go away: a time-out, a lost connection,
        C{[IN-USE]}, C{[LOGIN-DELAY]}, C{[SYS/TEMP]}; for C{deliver}, a message that could
        not be written (the mail transfer agent then tries again).
    @cvar PROTOCOL: The server answered something it should not have, or refused a command
        it offered.
    @cvar NOPERM: The server refused the login (a wrong user name or password, C{[AUTH]}).
    @cvar CONFIG: TLS could not be set up safely: the certificate was refused (unknown
        authority, wrong host name, expired), the handshake failed, or a C{pop3://} server
        offers no STLS.
    @cvar INTERRUPTED: Interrupted by Ctrl-C or SIGTERM.
    """

    OK = 0
    FAILURE = 1
    USAGE = 2
    DATAERR = 65
    NOUSER = 67
    NOHOST = 68
    UNAVAILABLE = 69
    CANTCREAT = 73
    TEMPFAIL = 75
    PROTOCOL = 76
    NOPERM = 77
    CONFIG = 78
    INTERRUPTED = 130


# The module-level names that docs/fetch.rst, the command line and the tests use.
EX_USAGE = ExitStatus.USAGE
"""A bad command line, URL or option."""
EX_DATAERR = ExitStatus.DATAERR
"""C{deliver}: the message is unusable."""
EX_NOUSER = ExitStatus.NOUSER
"""C{deliver} and C{user test}: no such user."""
EX_NOHOST = ExitStatus.NOHOST
"""The server's host name could not be resolved."""
EX_UNAVAILABLE = ExitStatus.UNAVAILABLE
"""The server could not be reached."""
EX_CANTCREAT = ExitStatus.CANTCREAT
"""The destination or the state file could not be written."""
EX_TEMPFAIL = ExitStatus.TEMPFAIL
"""A failure that may go away."""
EX_PROTOCOL = ExitStatus.PROTOCOL
"""The server answered something it should not have."""
EX_NOPERM = ExitStatus.NOPERM
"""The server refused the login."""
EX_TLS = ExitStatus.CONFIG
"""TLS could not be set up safely (C{EX_CONFIG} in C{sysexits.h})."""


class ExitError(Exception):
    """
    A failure that ends the command: one line for standard error, and the exit status.

    @ivar status: The exit status.
    """

    def __init__(self, message: str, status: ExitStatus = ExitStatus.FAILURE) -> None:
        """
        @param message: The one-line message, without the C{pop3kit: error: } prefix.
        @param status: The exit status.
        """
        super().__init__(message)
        self.status = status


def describeOSError(error: OSError) -> str:
    """
    The file and the reason of an L{OSError}: C{"/path: Permission denied"}.
    """
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}"


def errorText(error: BaseException) -> str:
    """
    An exception's type and text on one line: C{"ConnectionLost: gone"}.
    """
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
