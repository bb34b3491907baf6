# -*- test-case-name: tests.test_exits,tests.test_cli -*-
"""
How the C{pop3kit} command ends: its exit statuses, the one exception that carries a
status and a one-line message (L{ExitError}), and the one table (L{FAILURES}) that turns a
failure of the network, the server or the disk into such an exception.

The statuses come from C{sysexits.h} and are documented in docs/fetch.rst.  Failures are
classified by their types only, never by the words of their messages: L{describeFailure}
walks L{FAILURES} in order, most specific rule first, and looks at the failure and at what
it wraps (a L{Failure} in its C{value}, its C{__cause__}).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import TYPE_CHECKING

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import defer
from twisted.internet import error as neterror
from twisted.python.failure import Failure

from pop3kit.client import (
    ClientError,
    MechanismUnavailable,
    ServerError,
    ServerProtocolError,
    TLSFailed,
    TLSUnavailable,
)
from pop3kit.errors import ResponseCode

if TYPE_CHECKING:
    from pop3kit._fetch._account import Account

__all__ = [
    "EX_CANTCREAT",
    "EX_NOHOST",
    "EX_NOPERM",
    "EX_PROTOCOL",
    "EX_TEMPFAIL",
    "EX_TLS",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "FAILURES",
    "Activity",
    "ExitError",
    "ExitStatus",
    "FailureRule",
    "describeFailure",
    "describeOSError",
    "errorText",
]


class ExitStatus(IntEnum):
    """
    The exit statuses of the C{pop3kit} command, from C{sysexits.h} where it has one.

    @cvar OK: Success.
    @cvar FAILURE: Any other error.
    @cvar USAGE: A bad command line, URL or option (argparse's own status).
    @cvar NOHOST: The server's host name could not be resolved.
    @cvar UNAVAILABLE: The server could not be reached: connection refused, network
        unreachable.
    @cvar CANTCREAT: The destination or the state file could not be written.
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


class Activity(Enum):
    """
    What the command was doing with the server when something failed, as the messages of
    L{FAILURES} say it: C{"{doing} mail.example.com:995"} and C{"while {during}"}.
    """

    CONNECTING = ("connecting to", "connecting")
    LOGGING_IN = ("logging in to", "logging in")
    LISTING = ("listing messages on", "listing messages")
    DOWNLOADING = ("downloading from", "downloading")
    READING_HEADERS = ("reading headers from", "reading headers")
    DELETING = ("deleting on", "deleting")

    @property
    def doing(self) -> str:
        """
        The activity, followed by the server: C{"downloading from"}.
        """
        doing: str = self.value[0]
        return doing

    @property
    def during(self) -> str:
        """
        The activity on its own, after C{"while"}: C{"downloading"}.
        """
        during: str = self.value[1]
        return during


@dataclass(frozen=True)
class FailureRule:
    """
    One row of L{FAILURES}: which failures it takes, their exit status and their message.

    @ivar types: The exception types the rule takes (subclasses included).
    @ivar status: The exit status.
    @ivar template: The message, a L{str.format} template with the fields C{where}
        (C{host:port}), C{host}, C{user}, C{doing} and C{during} (see L{Activity}),
        C{error} (the exception's type and text), C{message} (its text), C{text} (the
        text of a server's C{-ERR}) and C{oserror} (the file and the reason of an
        L{OSError}).
    @ivar codes: If not empty, the rule takes only failures whose C{code} is one of
        these response codes.
    @ivar activities: If not empty, the rule takes failures only during these activities.
    """

    types: tuple[type[BaseException], ...]
    status: ExitStatus
    template: str
    codes: frozenset[ResponseCode] = frozenset()
    activities: frozenset[Activity] = frozenset()

    def matches(self, error: BaseException, activity: Activity) -> bool:
        """
        Whether this rule takes C{error}, raised during C{activity}.
        """
        if not isinstance(error, self.types):
            return False
        if self.activities and activity not in self.activities:
            return False
        return not self.codes or getattr(error, "code", None) in self.codes

    def describe(self, error: BaseException, account: Account, activity: Activity) -> ExitError:
        """
        The L{ExitError} for C{error}, raised during C{activity} with C{account}'s server.
        """
        text = getattr(error, "text", None)
        fields = {
            "where": f"{account.host}:{account.port}",
            "host": account.host,
            "user": account.user,
            "doing": activity.doing,
            "during": activity.during,
            "error": errorText(error),
            "message": str(error),
            "text": text if isinstance(text, str) else repr(text),
            "oserror": describeOSError(error) if isinstance(error, OSError) else str(error),
        }
        return ExitError(" ".join(self.template.format(**fields).splitlines()), self.status)


#: What went wrong with a server, in the order L{describeFailure} tries the rules: the
#: first rule that takes the failure, or something it wraps, gives the status and message.
FAILURES: tuple[FailureRule, ...] = (
    # TLS first: a TLS failure is reported as one even when a lost connection wraps it.
    FailureRule(
        (TLSUnavailable, TLSFailed, SSL.Error, VerificationError),
        ExitStatus.CONFIG,
        "TLS with {where} failed: {error}",
    ),
    FailureRule(
        (ServerError,),
        ExitStatus.TEMPFAIL,
        "{where} says, try later: {text}",
        codes=frozenset({ResponseCode.IN_USE, ResponseCode.LOGIN_DELAY, ResponseCode.SYS_TEMP}),
    ),
    FailureRule(
        (ServerError,),
        ExitStatus.PROTOCOL,
        "{where} reports a failure: {text}",
        codes=frozenset({ResponseCode.SYS_PERM}),
    ),
    FailureRule(
        (ServerError,),
        ExitStatus.NOPERM,
        "login to {where} as {user!r} refused: {text}",
        activities=frozenset({Activity.LOGGING_IN}),
    ),
    FailureRule((ServerError,), ExitStatus.PROTOCOL, "{where} refused: {text}"),
    FailureRule((MechanismUnavailable,), ExitStatus.NOPERM, "cannot log in to {where}: {message}"),
    FailureRule(
        (ServerProtocolError, ClientError), ExitStatus.PROTOCOL, "{doing} {where}: {error}"
    ),
    FailureRule(
        (neterror.DNSLookupError, socket.gaierror), ExitStatus.NOHOST, "unknown host {host!r}"
    ),
    FailureRule(
        (neterror.ConnectionRefusedError, neterror.NoRouteError, ConnectionRefusedError),
        ExitStatus.UNAVAILABLE,
        "cannot connect to {where}: {error}",
    ),
    # Before ConnectError and OSError: Twisted's TimeoutError is a ConnectError, the
    # builtin one an OSError.
    FailureRule(
        (neterror.TimeoutError, defer.TimeoutError, TimeoutError),
        ExitStatus.TEMPFAIL,
        "{where} did not answer in time while {during}",
    ),
    FailureRule(
        (defer.CancelledError, neterror.ConnectingCancelledError),
        ExitStatus.INTERRUPTED,
        "interrupted while {during}",
    ),
    FailureRule(
        (neterror.ConnectError,), ExitStatus.UNAVAILABLE, "cannot connect to {where}: {error}"
    ),
    FailureRule(
        (neterror.ConnectionDone, neterror.ConnectionLost, ConnectionError),
        ExitStatus.TEMPFAIL,
        "the connection to {where} was lost: {error}",
    ),
    FailureRule((OSError,), ExitStatus.CANTCREAT, "{oserror}"),
)

#: The rule for failures that no rule of L{FAILURES} takes.
UNKNOWN_FAILURE = FailureRule((BaseException,), ExitStatus.PROTOCOL, "{doing} {where}: {error}")


def describeFailure(error: BaseException, account: Account, activity: Activity) -> ExitError:
    """
    Turn an exception from the client, the network or the disk, raised while doing
    C{activity} with C{account}'s server, into an L{ExitError}: the first rule of
    L{FAILURES} that takes the exception or one it wraps gives its status and message.
    An L{ExitError} is returned as it is.
    """
    if isinstance(error, ExitError):
        return error
    chain = list(_chain(error))
    for rule in FAILURES:
        for cause in chain:
            if rule.matches(cause, activity):
                return rule.describe(cause, account, activity)
    return UNKNOWN_FAILURE.describe(error, account, activity)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """
    C{error}, then what it wraps: the exception of a L{Failure} (or the exception) in its
    C{value}, else its C{__cause__}; and so on.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "value", None)
        if isinstance(wrapped, Failure):
            wrapped = wrapped.value
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__


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
