# -*- test-case-name: tests.test_exits -*-
"""
The one table (L{FAILURES}) that turns a failure of the network, the server or the disk,
met by C{pop3kit fetch} or C{pop3kit scan}, into an L{ExitError}.

Failures are classified by their types only, never by the words of their messages:
L{describeFailure} walks L{FAILURES} in order, most specific rule first, and looks at the
failure and at what it wraps (a L{Failure} in its C{value}, its C{__cause__}).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import defer
from twisted.internet import error as neterror
from twisted.python.failure import Failure

from pop3kit._clienttls import (
    CertificateNotYetValid,
    CertificateRejected,
    ExpiredCertificate,
    UntrustedCertificate,
)
from pop3kit._exits import ExitError, ExitStatus, describeOSError, errorText
from pop3kit.client import (
    ClientError,
    ListingTooLarge,
    MechanismUnavailable,
    ServerError,
    ServerProtocolError,
    ServerStalled,
    TLSFailed,
    TLSUnavailable,
)
from pop3kit.errors import ResponseCode

if TYPE_CHECKING:
    from pop3kit._fetch._account import Account

__all__ = ["FAILURES", "UNKNOWN_FAILURE", "Activity", "FailureRule", "describeFailure"]


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
        text of a server's C{-ERR}), C{oserror} (the file and the reason of an
        L{OSError}), C{subject} (the certificate a
        L{CertificateRejected <pop3kit._clienttls.CertificateRejected>} names) and
        C{sslReason} (the reasons of an OpenSSL error, without its tuples).
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
            "subject": getattr(error, "subject", ""),
            "sslReason": _sslReason(error),
        }
        return ExitError(" ".join(self.template.format(**fields).splitlines()), self.status)


#: What went wrong with a server, in the order L{describeFailure} tries the rules: the
#: first rule that takes the failure, or something it wraps, gives the status and message.
FAILURES: tuple[FailureRule, ...] = (
    # TLS first: a TLS failure is reported as one even when a lost connection wraps it.
    # The refused certificates, by why (TLSFailed carries the reason as its cause).
    FailureRule(
        (UntrustedCertificate,),
        ExitStatus.CONFIG,
        "the certificate of {host} is not trusted (unknown CA: {subject}): "
        "pass --cafile PEM with the authority that issued it",
    ),
    FailureRule(
        (VerificationError,),
        ExitStatus.CONFIG,
        "the certificate of {where} is not valid for the name {host}: "
        "connect with a name the certificate holds",
    ),
    FailureRule(
        (ExpiredCertificate,),
        ExitStatus.CONFIG,
        "the certificate of {host} has expired ({subject}): the server must renew it",
    ),
    FailureRule(
        (CertificateNotYetValid,),
        ExitStatus.CONFIG,
        "the certificate of {host} is not valid yet ({subject}): check this host's clock",
    ),
    FailureRule(
        (CertificateRejected,),
        ExitStatus.CONFIG,
        "the certificate of {host} was refused: {message}",
    ),
    FailureRule(
        (TLSUnavailable,),
        ExitStatus.CONFIG,
        "{host} offers no STLS: use pop3s://, or --no-tls on a trusted network",
    ),
    FailureRule(
        (SSL.Error,),
        ExitStatus.CONFIG,
        "the TLS handshake with {where} failed: {sslReason}",
    ),
    FailureRule((TLSFailed,), ExitStatus.CONFIG, "TLS with {where} failed: {message}"),
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
    # Before ClientError: the server may do better later; the connection was closed
    # without QUIT, so nothing was deleted.
    FailureRule(
        (ServerStalled,),
        ExitStatus.TEMPFAIL,
        "{where} stopped making progress while {during}: {message}; nothing was deleted "
        "(see --response-timeout and --min-rate)",
    ),
    FailureRule(
        (ListingTooLarge,),
        ExitStatus.TEMPFAIL,
        "{where} sent {message} while {during}; nothing was deleted (see --max-listing "
        "and --max-listing-octets)",
    ),
    FailureRule(
        (ServerProtocolError, ClientError), ExitStatus.PROTOCOL, "{doing} {where}: {error}"
    ),
    FailureRule(
        (neterror.DNSLookupError, socket.gaierror),
        ExitStatus.NOHOST,
        "unknown host {host!r}: check the name in the URL",
    ),
    FailureRule(
        (neterror.ConnectionRefusedError, ConnectionRefusedError),
        ExitStatus.UNAVAILABLE,
        "cannot connect to {where}: connection refused (no server listens on that port)",
    ),
    FailureRule(
        (neterror.NoRouteError,),
        ExitStatus.UNAVAILABLE,
        "cannot connect to {where}: no route to the host",
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


def _sslReason(error: BaseException) -> str:
    """
    The reasons of an OpenSSL error, without its tuples: C{"wrong version number"}.
    """
    if not isinstance(error, SSL.Error):
        return str(error)
    reasons = [
        entry[-1]
        for argument in error.args
        if isinstance(argument, list)
        for entry in argument
        if isinstance(entry, tuple) and entry and isinstance(entry[-1], str) and entry[-1]
    ]
    return "; ".join(reasons) or str(error) or type(error).__name__


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
