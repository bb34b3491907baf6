"""
Tests for L{pop3kit._exits} and L{pop3kit._fetch._failures}: the exit statuses, and the
exact status and message that L{describeFailure} gives every failure its table handles,
during every activity.
"""

from __future__ import annotations

import socket
import subprocess
import sys

from OpenSSL import SSL
from service_identity import VerificationError
from service_identity.exceptions import DNSMismatch
from service_identity.hazmat import DNS_ID
from twisted.internet import defer
from twisted.internet import error as neterror
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pop3kit import _exits, _fetch, cli
from pop3kit._clienttls import (
    CertificateNotYetValid,
    CertificateRejected,
    ExpiredCertificate,
    UntrustedCertificate,
)
from pop3kit._exits import ExitError, ExitStatus
from pop3kit._fetch import _failures, parseURL
from pop3kit._fetch._failures import (
    FAILURES,
    UNKNOWN_FAILURE,
    Activity,
    FailureRule,
    describeFailure,
)
from pop3kit.client import (
    ClientError,
    InvalidState,
    ListingTooLarge,
    MechanismUnavailable,
    ResponseTooLarge,
    ServerError,
    ServerProtocolError,
    ServerStalled,
    TLSFailed,
    TLSUnavailable,
)
from pop3kit.errors import ResponseCode

#: The account of every case: its server is C{mail.example.com:995}.
ACCOUNT = parseURL("pop3s://alice@mail.example.com")

#: What each activity reads like before the server's address...
DOING = {
    Activity.CONNECTING: "connecting to",
    Activity.LOGGING_IN: "logging in to",
    Activity.LISTING: "listing messages on",
    Activity.DOWNLOADING: "downloading from",
    Activity.READING_HEADERS: "reading headers from",
    Activity.DELETING: "deleting on",
}

#: ... and after "while".
DURING = {
    Activity.CONNECTING: "connecting",
    Activity.LOGGING_IN: "logging in",
    Activity.LISTING: "listing messages",
    Activity.DOWNLOADING: "downloading",
    Activity.READING_HEADERS: "reading headers",
    Activity.DELETING: "deleting",
}

#: An expected outcome for each activity.
Expected = dict[Activity, tuple[ExitStatus, str]]


def always(status: ExitStatus, message: str) -> Expected:
    """
    The same status and message during every activity.
    """
    return {activity: (status, message) for activity in Activity}


def wrapped(error: BaseException) -> BaseException:
    """
    An exception that holds C{error} as a L{Failure} in its C{value}, as some Twisted
    errors do.
    """
    outer = Exception("wrapper")
    outer.value = Failure(error)  # type: ignore[attr-defined]
    return outer


def caused(error: BaseException, outer: BaseException) -> BaseException:
    """
    C{outer}, raised from C{error}.
    """
    outer.__cause__ = error
    return outer


_VERIFICATION = VerificationError(errors=[DNSMismatch(mismatched_id=DNS_ID("mail.example.com"))])

#: Every kind of failure the table handles: the exception, and what it becomes.
CASES: dict[str, list[tuple[BaseException, Expected]]] = {
    "tls": [
        (
            TLSUnavailable("the server does not offer STLS"),
            always(
                ExitStatus.CONFIG,
                "mail.example.com offers no STLS: use pop3s://, or --no-tls on a trusted network",
            ),
        ),
        (
            TLSFailed("certificate verify failed"),
            always(
                ExitStatus.CONFIG,
                "TLS with mail.example.com:995 failed: Connection to the other "
                "side was lost in a non-clean fashion: certificate verify failed.",
            ),
        ),
        (
            SSL.Error([("SSL routines", "", "certificate verify failed")]),
            always(
                ExitStatus.CONFIG,
                "the TLS handshake with mail.example.com:995 failed: certificate verify failed",
            ),
        ),
        (
            _VERIFICATION,
            always(
                ExitStatus.CONFIG,
                "the certificate of mail.example.com:995 is not valid for the name "
                "mail.example.com: connect with a name the certificate holds",
            ),
        ),
        (
            caused(SSL.Error("handshake failure"), neterror.ConnectionLost("gone")),
            always(
                ExitStatus.CONFIG,
                "the TLS handshake with mail.example.com:995 failed: handshake failure",
            ),
        ),
        (
            wrapped(_VERIFICATION),
            always(
                ExitStatus.CONFIG,
                "the certificate of mail.example.com:995 is not valid for the name "
                "mail.example.com: connect with a name the certificate holds",
            ),
        ),
        (
            caused(UntrustedCertificate(20, 1, "CN=Private CA"), TLSFailed("verify failed")),
            always(
                ExitStatus.CONFIG,
                "the certificate of mail.example.com is not trusted (unknown CA: CN=Private "
                "CA): pass --cafile PEM with the authority that issued it",
            ),
        ),
        (
            caused(ExpiredCertificate(10, 0, "CN=mail.example.com"), TLSFailed("failed")),
            always(
                ExitStatus.CONFIG,
                "the certificate of mail.example.com has expired (CN=mail.example.com): "
                "the server must renew it",
            ),
        ),
        (
            CertificateNotYetValid(9, 0, "CN=mail.example.com"),
            always(
                ExitStatus.CONFIG,
                "the certificate of mail.example.com is not valid yet (CN=mail.example.com): "
                "check this host's clock",
            ),
        ),
        (
            CertificateRejected(23, 0, "CN=mail.example.com"),
            always(
                ExitStatus.CONFIG,
                "the certificate of mail.example.com was refused: certificate verification "
                "failed (OpenSSL error 23) for CN=mail.example.com",
            ),
        ),
    ],
    "tryLater": [
        (
            ServerError("busy", ResponseCode.IN_USE),
            always(ExitStatus.TEMPFAIL, "mail.example.com:995 says, try later: busy"),
        ),
        (
            ServerError("too soon", ResponseCode.LOGIN_DELAY),
            always(ExitStatus.TEMPFAIL, "mail.example.com:995 says, try later: too soon"),
        ),
        (
            ServerError("oops", ResponseCode.SYS_TEMP),
            always(ExitStatus.TEMPFAIL, "mail.example.com:995 says, try later: oops"),
        ),
    ],
    "serverFailure": [
        (
            ServerError("broken", ResponseCode.SYS_PERM),
            always(ExitStatus.PROTOCOL, "mail.example.com:995 reports a failure: broken"),
        ),
    ],
    "refused": [
        (
            ServerError(text, code),
            {
                activity: (
                    (
                        ExitStatus.NOPERM,
                        f"login to mail.example.com:995 as 'alice' refused: {text}",
                    )
                    if activity is Activity.LOGGING_IN
                    else (ExitStatus.PROTOCOL, f"mail.example.com:995 refused: {text}")
                )
                for activity in Activity
            },
        )
        for text, code in [
            ("authentication failed", ResponseCode.AUTH),
            ("no such message", None),
            ("not in UTF-8 mode", ResponseCode.UTF8),
        ]
    ],
    "noMechanism": [
        (
            MechanismUnavailable("refusing to send the password with PLAIN without TLS"),
            always(
                ExitStatus.NOPERM,
                "cannot log in to mail.example.com:995: "
                "refusing to send the password with PLAIN without TLS",
            ),
        ),
    ],
    "protocol": [
        (
            error,
            {
                activity: (
                    ExitStatus.PROTOCOL,
                    f"{DOING[activity]} mail.example.com:995: {text}",
                )
                for activity in Activity
            },
        )
        for error, text in [
            (
                ServerProtocolError("malformed LIST line b'x'"),
                "ServerProtocolError: malformed LIST line b'x'",
            ),
            (
                ResponseTooLarge("response of 70 octets exceeds 64"),
                "ResponseTooLarge: response of 70 octets exceeds 64",
            ),
            (
                InvalidState("QUIT was already sent"),
                "InvalidState: QUIT was already sent",
            ),
            (
                ClientError("the consumer stopped the transfer"),
                "ClientError: the consumer stopped the transfer",
            ),
        ]
    ],
    "unknownHost": [
        (
            neterror.DNSLookupError("mail.example.com"),
            always(ExitStatus.NOHOST, "unknown host 'mail.example.com': check the name in the URL"),
        ),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            always(ExitStatus.NOHOST, "unknown host 'mail.example.com': check the name in the URL"),
        ),
    ],
    "unreachable": [
        (
            neterror.ConnectionRefusedError(),
            always(
                ExitStatus.UNAVAILABLE,
                "cannot connect to mail.example.com:995: connection refused "
                "(no server listens on that port)",
            ),
        ),
        (
            neterror.NoRouteError(),
            always(
                ExitStatus.UNAVAILABLE,
                "cannot connect to mail.example.com:995: no route to the host",
            ),
        ),
        (
            ConnectionRefusedError(111, "Connection refused"),
            always(
                ExitStatus.UNAVAILABLE,
                "cannot connect to mail.example.com:995: connection refused "
                "(no server listens on that port)",
            ),
        ),
    ],
    "timeout": [
        (
            error,
            {
                activity: (
                    ExitStatus.TEMPFAIL,
                    f"mail.example.com:995 did not answer in time while {DURING[activity]}",
                )
                for activity in Activity
            },
        )
        for error in [
            neterror.TimeoutError(),
            defer.TimeoutError(),
            TimeoutError(110, "Connection timed out"),
        ]
    ],
    "stalled": [
        (
            ServerStalled("no complete answer to RETR 1 within 30 s"),
            {
                activity: (
                    ExitStatus.TEMPFAIL,
                    "mail.example.com:995 stopped making progress while "
                    f"{DURING[activity]}: no complete answer to RETR 1 within 30 s; nothing "
                    "was deleted (see --response-timeout and --min-rate)",
                )
                for activity in Activity
            },
        ),
        (
            ListingTooLarge("a listing of more than 10 entries"),
            {
                activity: (
                    ExitStatus.TEMPFAIL,
                    "mail.example.com:995 sent a listing of more than 10 entries while "
                    f"{DURING[activity]}; nothing was deleted (see --max-listing and "
                    "--max-listing-octets)",
                )
                for activity in Activity
            },
        ),
    ],
    "interrupted": [
        (
            error,
            {
                activity: (ExitStatus.INTERRUPTED, f"interrupted while {DURING[activity]}")
                for activity in Activity
            },
        )
        for error in [defer.CancelledError(), neterror.ConnectingCancelledError(None)]
    ],
    "cannotConnect": [
        (
            neterror.ConnectError("x"),
            always(
                ExitStatus.UNAVAILABLE,
                "cannot connect to mail.example.com:995: "
                "ConnectError: An error occurred while connecting: x.",
            ),
        ),
    ],
    "lost": [
        (
            error,
            always(
                ExitStatus.TEMPFAIL,
                f"the connection to mail.example.com:995 was lost: {text}",
            ),
        )
        for error, text in [
            (neterror.ConnectionDone(), "ConnectionDone: Connection was closed cleanly."),
            (
                neterror.ConnectionLost("gone"),
                "ConnectionLost: Connection to the other side was lost in a non-clean "
                "fashion: gone.",
            ),
            (
                ConnectionResetError(104, "Connection reset by peer"),
                "ConnectionResetError: [Errno 104] Connection reset by peer",
            ),
        ]
    ],
    "disk": [
        (
            OSError(28, "No space left on device", "/home/alice/Maildir/tmp/1"),
            always(ExitStatus.CANTCREAT, "/home/alice/Maildir/tmp/1: No space left on device"),
        ),
        (
            PermissionError(13, "Permission denied"),
            always(ExitStatus.CANTCREAT, "Permission denied"),
        ),
    ],
}

#: What no rule takes.
UNKNOWN = (
    ValueError("odd"),
    {
        activity: (ExitStatus.PROTOCOL, f"{DOING[activity]} mail.example.com:995: ValueError: odd")
        for activity in Activity
    },
)


class DescribeFailureTests(SynchronousTestCase):
    """
    L{describeFailure} gives each failure its documented exit status and a one-line
    message that reads right during every activity.
    """

    def check(self, name: str) -> None:
        """
        Every case of C{CASES[name]} gets its status and message during every activity.
        """
        for error, expected in CASES[name]:
            for activity in Activity:
                described = describeFailure(error, ACCOUNT, activity)
                self.assertIsInstance(described, ExitError)
                self.assertEqual(
                    (described.status, str(described)), expected[activity], (error, activity)
                )

    def test_tls(self) -> None:
        """
        TLS refused, failed or not offered is L{ExitStatus.CONFIG}, also when a lost
        connection wraps the TLS error (as its cause, or as a L{Failure}).
        """
        self.check("tls")

    def test_tryLater(self) -> None:
        """
        C{[IN-USE]}, C{[LOGIN-DELAY]} and C{[SYS/TEMP]} are L{ExitStatus.TEMPFAIL}.
        """
        self.check("tryLater")

    def test_serverFailure(self) -> None:
        """
        C{[SYS/PERM]} is L{ExitStatus.PROTOCOL}: the server reports a failure.
        """
        self.check("serverFailure")

    def test_refused(self) -> None:
        """
        Another C{-ERR} is a refused login (L{ExitStatus.NOPERM}) while logging in, and a
        refused command (L{ExitStatus.PROTOCOL}) otherwise.
        """
        self.check("refused")

    def test_noMechanism(self) -> None:
        """
        No login method left is L{ExitStatus.NOPERM}.
        """
        self.check("noMechanism")

    def test_protocol(self) -> None:
        """
        A malformed answer or a client-side error is L{ExitStatus.PROTOCOL}, saying what
        was being done.
        """
        self.check("protocol")

    def test_unknownHost(self) -> None:
        """
        A failed name lookup is L{ExitStatus.NOHOST}.
        """
        self.check("unknownHost")

    def test_unreachable(self) -> None:
        """
        A refused connection or no route, Twisted's or the builtin one, is
        L{ExitStatus.UNAVAILABLE}.
        """
        self.check("unreachable")

    def test_timeout(self) -> None:
        """
        Every kind of time-out is L{ExitStatus.TEMPFAIL}, with the activity worded right
        (once "while downloading fing").
        """
        self.check("timeout")

    def test_stalled(self) -> None:
        """
        A server that stopped making progress, or sent a listing past the caps, is
        L{ExitStatus.TEMPFAIL}, and the message says nothing was deleted.
        """
        self.check("stalled")

    def test_interrupted(self) -> None:
        """
        A cancelled step (Ctrl-C, SIGTERM) is L{ExitStatus.INTERRUPTED}.
        """
        self.check("interrupted")

    def test_cannotConnect(self) -> None:
        """
        Any other failure to connect is L{ExitStatus.UNAVAILABLE}.
        """
        self.check("cannotConnect")

    def test_lost(self) -> None:
        """
        A closed or reset connection is L{ExitStatus.TEMPFAIL}.
        """
        self.check("lost")

    def test_disk(self) -> None:
        """
        Any other L{OSError} is a local one: L{ExitStatus.CANTCREAT}, naming the file.
        """
        self.check("disk")

    def test_unknown(self) -> None:
        """
        What no rule takes is L{ExitStatus.PROTOCOL}, saying what was being done.
        """
        error, expected = UNKNOWN
        for activity in Activity:
            described = describeFailure(error, ACCOUNT, activity)
            self.assertEqual((described.status, str(described)), expected[activity])

    def test_exitErrorKept(self) -> None:
        """
        An L{ExitError} is returned as it is.
        """
        error = ExitError("cannot store messages: full", ExitStatus.CANTCREAT)
        self.assertIs(describeFailure(error, ACCOUNT, Activity.DOWNLOADING), error)

    def test_oneLine(self) -> None:
        """
        A message with line breaks in it is put on one line.
        """
        described = describeFailure(ValueError("one\ntwo\r\nthree"), ACCOUNT, Activity.LISTING)
        self.assertEqual(
            str(described), "listing messages on mail.example.com:995: ValueError: one two three"
        )

    def test_everyRuleTested(self) -> None:
        """
        Each rule of L{FAILURES} is the one that takes some case of these tests.
        """

        def firstRule(error: BaseException, activity: Activity) -> FailureRule:
            for rule in FAILURES:
                if any(rule.matches(cause, activity) for cause in _failures._chain(error)):
                    return rule
            return UNKNOWN_FAILURE

        used = {
            firstRule(error, activity)
            for cases in CASES.values()
            for error, _ in cases
            for activity in Activity
        }
        self.assertEqual(set(FAILURES) - used, set())


class ExitStatusTests(SynchronousTestCase):
    """
    The exit statuses: one set of values, under the names the command line, the docs and
    the tests use.
    """

    def test_sysexits(self) -> None:
        """
        The statuses are those of C{sysexits.h} (and argparse's 2 for usage errors).
        """
        self.assertEqual(
            {status.name: int(status) for status in ExitStatus},
            {
                "OK": 0,
                "FAILURE": 1,
                "USAGE": 2,
                "DATAERR": 65,
                "NOUSER": 67,
                "NOHOST": 68,
                "UNAVAILABLE": 69,
                "CANTCREAT": 73,
                "TEMPFAIL": 75,
                "PROTOCOL": 76,
                "NOPERM": 77,
                "CONFIG": 78,
                "INTERRUPTED": 130,
            },
        )

    def test_sharedNames(self) -> None:
        """
        C{pop3kit._fetch} and C{pop3kit.cli} export the same statuses and the same
        exception as L{pop3kit._exits}.
        """
        for name in ("EX_CANTCREAT", "EX_NOHOST", "EX_NOPERM", "EX_PROTOCOL", "EX_TEMPFAIL"):
            self.assertIs(getattr(_fetch, name), getattr(_exits, name))
        for name in ("EX_TLS", "EX_UNAVAILABLE", "EX_USAGE"):
            self.assertIs(getattr(_fetch, name), getattr(_exits, name))
        self.assertIs(cli.EX_TEMPFAIL, ExitStatus.TEMPFAIL)
        self.assertIs(_fetch.FetchError, ExitError)
        self.assertEqual(_fetch.EX_TLS, 78)

    def test_commandLineStartsLight(self) -> None:
        """
        Importing L{pop3kit.cli}, as C{pop3kit deliver} does for every message a mail
        transfer agent hands it, loads neither the client nor TLS.
        """
        code = (
            "import sys, pop3kit.cli; "
            "print(sorted(m for m in ('pop3kit.client', 'OpenSSL', 'pop3kit._fetch') "
            "if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, check=True, text=True
        ).stdout
        self.assertEqual(out.strip(), "[]")
