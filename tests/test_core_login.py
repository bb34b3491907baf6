"""
Tests for the login-related parts of the sans-IO core: AUTH, STLS, UTF8 and LANG
parsing, the cleartext policy in CAPA and in the answers, SASL exchanges, what STLS
forgets, and the limits on bad commands and failed logins.
"""

from __future__ import annotations

import base64

from twisted.trial.unittest import SynchronousTestCase

from pop3kit.core import (
    MAX_COMMAND_LINE,
    Auth,
    AuthenticationFailed,
    BeginTLS,
    Capabilities,
    InitialResponseRefused,
    Lang,
    LoginAccepted,
    LoginRefused,
    MaildropView,
    PasswordLogin,
    RemoteProtocolError,
    SASLAborted,
    SASLChallenge,
    SASLLogin,
    SASLResponse,
    ServerConnection,
    StartTLS,
    State,
    Stls,
    Utf8,
    parseCommand,
)
from pop3kit.core._commands import decodeBase64
from tests.test_core_connection import answers, events, greeted, loggedIn

_SASL = ("SCRAM-SHA-256", "PLAIN", "LOGIN", "EXTERNAL")


def capabilities(**fields: object) -> Capabilities:
    """
    Capabilities of a server offering STLS and several SASL mechanisms, on a connection
    where cleartext passwords are refused.
    """
    values: dict[str, object] = {"sasl": _SASL, "stls": True, "cleartext": False}
    values.update(fields)
    return Capabilities(**values)  # type: ignore[arg-type]


class ParsingTests(SynchronousTestCase):
    """
    The new commands are parsed into validated values.
    """

    def test_auth(self) -> None:
        """
        AUTH takes an optional mechanism (upper-cased) and an optional base64 initial
        response, C{=} meaning empty.
        """
        self.assertEqual(parseCommand(b"AUTH"), Auth())
        self.assertEqual(parseCommand(b"auth plain"), Auth("PLAIN"))
        self.assertEqual(parseCommand(b"AUTH PLAIN ="), Auth("PLAIN", b""))
        self.assertEqual(parseCommand(b"AUTH PLAIN AGEAYg=="), Auth("PLAIN", b"\0a\0b"))

    def test_authRejects(self) -> None:
        """
        Bad base64, a bad mechanism name and extra arguments are protocol errors.
        """
        for line in (
            b"AUTH PLAIN !!!",
            b"AUTH PLAIN AGEAYg",
            b"AUTH PL\xc3\xa9",
            b"AUTH " + b"X" * 21,
            b"AUTH PLAIN = x",
        ):
            self.assertRaises(RemoteProtocolError, parseCommand, line)

    def test_initialResponseRedacted(self) -> None:
        """
        An initial response, which may hold a password, never shows in a repr.
        """
        self.assertNotIn("secret", repr(Auth("PLAIN", b"\0alice\0secret")))

    def test_decodeBase64(self) -> None:
        """
        SASL responses are strict base64; C{=} is the empty response.
        """
        self.assertEqual(decodeBase64(b"YWJj"), b"abc")
        self.assertEqual(decodeBase64(b"="), b"")
        self.assertEqual(decodeBase64(b""), b"")
        for bad in (b"YWJ", b"YW Jj", b"YWJj\x00", b"*"):
            self.assertRaises(RemoteProtocolError, decodeBase64, bad)

    def test_stlsUtf8Lang(self) -> None:
        """
        STLS and UTF8 take no argument; LANG takes an optional tag or C{*}.
        """
        self.assertEqual(parseCommand(b"stls"), Stls())
        self.assertEqual(parseCommand(b"UTF8"), Utf8())
        self.assertEqual(parseCommand(b"LANG"), Lang())
        self.assertEqual(parseCommand(b"LANG en-GB"), Lang("en-GB"))
        self.assertEqual(parseCommand(b"LANG *"), Lang("*"))
        for line in (b"STLS now", b"UTF8 USER", b"LANG en_GB", b"LANG a b"):
            self.assertRaises(RemoteProtocolError, parseCommand, line)


class CleartextPolicyTests(SynchronousTestCase):
    """
    Before TLS, with cleartext refused, password logins are neither offered nor accepted.
    """

    def test_capaBeforeTLS(self) -> None:
        """
        CAPA lists STLS and the mechanisms that send no password, and neither USER nor
        PLAIN/LOGIN nor EXTERNAL.
        """
        lines = capabilities().lines(State.AUTHORIZATION)
        self.assertIn(b"STLS", lines)
        self.assertIn(b"SASL SCRAM-SHA-256", lines)
        self.assertNotIn(b"USER", lines)

    def test_capaAfterTLS(self) -> None:
        """
        Once TLS is active CAPA lists USER and every mechanism, and no longer STLS.
        """
        lines = capabilities().secured().lines(State.AUTHORIZATION)
        self.assertIn(b"USER", lines)
        self.assertIn(b"SASL SCRAM-SHA-256 PLAIN LOGIN EXTERNAL", lines)
        self.assertNotIn(b"STLS", lines)

    def test_userRefused(self) -> None:
        """
        USER before TLS gets C{-ERR [AUTH]}, and a following PASS is not executed.
        """
        result = answers(greeted(capabilities()), b"USER alice\r\nPASS secret\r\n")
        first, second = result.split(b"\r\n")[:2]
        self.assertTrue(first.startswith(b"-ERR [AUTH] "))
        self.assertEqual(second, b"-ERR PASS must follow USER")

    def test_plainRefused(self) -> None:
        """
        AUTH PLAIN before TLS gets C{-ERR [AUTH]}; SCRAM is handed to the adapter.
        """
        connection = greeted(capabilities())
        plain = answers(connection, b"AUTH PLAIN AGEAYg==\r\n")
        self.assertTrue(plain.startswith(b"-ERR [AUTH] "))
        self.assertEqual(
            events(connection, b"AUTH SCRAM-SHA-256\r\n"), [SASLLogin("SCRAM-SHA-256")]
        )
        self.assertIs(connection.state, State.SASL)

    def test_unknownMechanism(self) -> None:
        """
        A mechanism the server does not offer gets a plain C{-ERR}.
        """
        self.assertEqual(
            answers(greeted(capabilities()), b"AUTH CRAM-MD5\r\n"),
            b"-ERR unsupported SASL mechanism\r\n",
        )

    def test_externalNeedsTLS(self) -> None:
        """
        EXTERNAL is refused without TLS even where cleartext is allowed.
        """
        answer = answers(greeted(capabilities(cleartext=True)), b"AUTH EXTERNAL\r\n")
        self.assertTrue(answer.startswith(b"-ERR "))

    def test_mechanismList(self) -> None:
        """
        AUTH without an argument lists the mechanisms usable now, RFC 1734 style.
        """
        self.assertEqual(
            answers(greeted(capabilities()), b"AUTH\r\n"),
            b"+OK SASL mechanisms follow\r\nSCRAM-SHA-256\r\n.\r\n",
        )


class STLSTests(SynchronousTestCase):
    """
    STLS is handed over once, and starting TLS forgets everything said in the clear.
    """

    def test_handedOver(self) -> None:
        """
        STLS in AUTHORIZATION is an event for the adapter, which answers with
        L{BeginTLS}.
        """
        connection = greeted(capabilities())
        self.assertEqual(events(connection, b"STLS\r\n"), [StartTLS()])
        self.assertIs(connection.state, State.STLS)
        self.assertEqual(connection.send(BeginTLS()), b"+OK begin TLS negotiation\r\n")
        self.assertIs(connection.state, State.AUTHORIZATION)

    def test_notOffered(self) -> None:
        """
        STLS without a certificate, a second STLS, and STLS after login get C{-ERR}.
        """
        self.assertEqual(
            answers(greeted(capabilities(stls=False)), b"STLS\r\n"),
            b"-ERR STLS is not available\r\n",
        )
        self.assertEqual(
            answers(greeted(capabilities().secured()), b"STLS\r\n"),
            b"-ERR TLS is already active\r\n",
        )
        self.assertTrue(answers(loggedIn(10), b"STLS\r\n").startswith(b"-ERR "))

    def test_injectedCommandsDiscarded(self) -> None:
        """
        Commands sent in the clear behind STLS, whole or partial, are never executed.
        """
        connection = greeted(capabilities(cleartext=True))
        connection.receiveData(b"USER alice\r\nSTLS\r\nPASS secret\r\nCAPA\r\nUS")
        self.assertEqual(connection.nextEvent(), StartTLS())
        self.assertEqual(connection.dataToSend(), b"+OK send PASS\r\n")
        self.assertIsNone(connection.nextEvent(), "nothing is processed before TLS starts")
        connection.send(BeginTLS())
        self.assertIsNone(connection.nextEvent())
        self.assertIsNone(connection.pendingUser)
        self.assertEqual(answers(connection, b"ER bob\r\n"), b"-ERR unknown command\r\n")

    def test_pendingUserForgotten(self) -> None:
        """
        A USER given before STLS does not let PASS complete after it.
        """
        connection = greeted(capabilities(cleartext=True))
        events(connection, b"USER alice\r\nSTLS\r\n")
        connection.send(BeginTLS())
        self.assertEqual(answers(connection, b"PASS secret\r\n"), b"-ERR PASS must follow USER\r\n")

    def test_capabilitiesSecured(self) -> None:
        """
        After STLS, CAPA no longer lists STLS, and USER is accepted.
        """
        connection = greeted(capabilities())
        events(connection, b"STLS\r\n")
        connection.send(BeginTLS())
        self.assertNotIn(b"STLS", answers(connection, b"CAPA\r\n"))
        self.assertEqual(answers(connection, b"USER alice\r\n"), b"+OK send PASS\r\n")


class ExchangeTests(SynchronousTestCase):
    """
    During a SASL exchange, lines are responses, not commands.
    """

    def exchange(self, **options: int) -> ServerConnection:
        """
        A secure connection where AUTH PLAIN was handed over and answered with an empty
        challenge.
        """
        connection = greeted(capabilities().secured(), **options)
        self.assertEqual(events(connection, b"AUTH PLAIN\r\n"), [SASLLogin("PLAIN")])
        self.assertEqual(connection.send(SASLChallenge(b"")), b"+ \r\n")
        self.assertIs(connection.state, State.SASL_RESPONSE)
        return connection

    def test_responsesNotCommands(self) -> None:
        """
        The line received after a challenge is a response, decoded; commands resume
        once the exchange has ended.
        """
        connection = self.exchange()
        self.assertEqual(events(connection, b"AGEAYg==\r\nQUIT\r\n"), [SASLResponse(b"\0a\0b")])
        self.assertIs(connection.state, State.SASL)
        self.assertIsNone(connection.nextEvent(), "the next line waits for a challenge")
        self.assertEqual(connection.send(SASLChallenge(b"more")), b"+ bW9yZQ==\r\n")
        self.assertEqual(connection.nextEvent(), SASLResponse(base64.b64decode(b"QUIT")))

    def test_accepted(self) -> None:
        """
        The exchange ends with the login's outcome; a refusal counts as a failed login.
        """
        connection = self.exchange()
        events(connection, b"AGEAYg==\r\n")
        self.assertEqual(
            connection.send(LoginRefused(AuthenticationFailed())),
            b"-ERR [AUTH] authentication failed\r\n",
        )
        connection = self.exchange()
        events(connection, b"AGEAYg==\r\n")
        connection.send(LoginAccepted(MaildropView([])))
        self.assertIs(connection.state, State.TRANSACTION)

    def test_cancel(self) -> None:
        """
        C{*} ends the exchange with C{-ERR}, and is not a failed login.
        """
        connection = self.exchange(maxFailedLogins=1)
        [cancelled, aborted, answer] = events(connection, b"*\r\nNOOP\r\n")
        self.assertEqual(cancelled, b"-ERR authentication cancelled\r\n")
        self.assertIsInstance(aborted, SASLAborted)
        self.assertEqual(answer, b"-ERR command not valid in this state\r\n")
        self.assertIs(connection.state, State.AUTHORIZATION)

    def test_malformedCounts(self) -> None:
        """
        A response that is not base64 ends the exchange and counts as a failed login.
        """
        connection = self.exchange(maxFailedLogins=1)
        [answer, aborted] = events(connection, b"not base64!\r\nNOOP\r\n")
        self.assertEqual(answer, b"-ERR invalid base64 data\r\n")
        self.assertIsInstance(aborted, SASLAborted)
        self.assertIs(connection.state, State.CLOSED)

    def test_initialResponseRefused(self) -> None:
        """
        A server-first mechanism given an initial response is refused without counting
        a failed login.
        """
        connection = greeted(capabilities().secured(), maxFailedLogins=1)
        events(connection, b"AUTH PLAIN =\r\n")
        self.assertEqual(
            connection.send(InitialResponseRefused("CRAM-MD5")),
            b"-ERR CRAM-MD5 does not take an initial response\r\n",
        )
        self.assertIs(connection.state, State.AUTHORIZATION)

    def test_longResponses(self) -> None:
        """
        SASL responses and AUTH lines may be longer than a command line, up to a limit.
        """
        connection = greeted(capabilities().secured(), maxSASLLineLength=4096)
        longAuth = b"AUTH PLAIN " + b"QUFB" * 500
        [auth] = events(connection, longAuth + b"\r\n")
        self.assertIsInstance(auth, SASLLogin)
        connection.send(SASLChallenge(b""))
        connection.receiveData(b"QUFB" * 1000 + b"\r\n" + b"x" * 5000 + b"\r\n")
        self.assertEqual(connection.nextEvent(), SASLResponse(b"AAA" * 1000))
        connection.send(SASLChallenge(b""))
        self.assertIsInstance(connection.nextEvent(), SASLAborted)
        self.assertEqual(connection.dataToSend(), b"-ERR SASL response too long\r\n")

    def test_longCommandStillRefused(self) -> None:
        """
        Other commands keep the RFC 2449 limit of 255 octets.
        """
        connection = greeted(capabilities(cleartext=True))
        line = b"USER " + b"a" * (MAX_COMMAND_LINE - 6) + b"\r\n"
        self.assertEqual(answers(connection, line), b"-ERR command line too long\r\n")


class LimitTests(SynchronousTestCase):
    """
    Too many bad commands or failed logins close the session.
    """

    def test_badCommands(self) -> None:
        """
        The last allowed bad command is answered and the session closed; nothing after
        it is processed.
        """
        connection = greeted(maxBadCommands=3)
        result = answers(connection, b"FOO\r\nSTAT\r\nBAR\r\nCAPA\r\n")
        replies = result.split(b"\r\n")[:-1]
        self.assertEqual(len(replies), 3)
        self.assertEqual(replies[2], b"-ERR too many invalid commands, closing the connection")
        self.assertIs(connection.state, State.CLOSED)

    def test_noSuchMessageIsNotBad(self) -> None:
        """
        Asking for a message that does not exist is not an invalid command.
        """
        connection = loggedIn(10)
        connection.maxBadCommands = 2
        answers(connection, b"RETR 5\r\nLIST 9\r\nDELE 7\r\n")
        self.assertIs(connection.state, State.TRANSACTION)

    def test_failedLogins(self) -> None:
        """
        At the failed-login limit the session is closed.
        """
        connection = greeted(maxFailedLogins=2)
        for expected in (State.AUTHORIZATION, State.CLOSED):
            self.assertEqual(
                events(connection, b"USER a\r\nPASS b\r\n"),
                [b"+OK send PASS\r\n", PasswordLogin("a", b"b")],
            )
            connection.send(LoginRefused(AuthenticationFailed()))
            self.assertIs(connection.state, expected)

    def test_refusedPlaintextIsBad(self) -> None:
        """
        Password commands refused by the cleartext policy count towards the bad-command
        limit, so a client cannot repeat them forever.
        """
        connection = greeted(capabilities(), maxBadCommands=3)
        result = answers(connection, b"USER a\r\nAUTH PLAIN\r\nUSER b\r\nCAPA\r\n")
        self.assertEqual(len(result.split(b"\r\n")[:-1]), 3)
        self.assertIs(connection.state, State.CLOSED)


class LanguageTests(SynchronousTestCase):
    """
    UTF8 and LANG (RFC 6856).
    """

    def test_utf8(self) -> None:
        """
        UTF8 is accepted in AUTHORIZATION and refused in TRANSACTION.
        """
        connection = greeted()
        self.assertEqual(answers(connection, b"UTF8\r\n"), b"+OK UTF-8 mode enabled\r\n")
        self.assertTrue(connection.utf8)
        self.assertTrue(answers(loggedIn(1), b"UTF8\r\n").startswith(b"-ERR "))

    def test_utf8UserName(self) -> None:
        """
        A UTF-8 user name is accepted and handed over as text.
        """
        connection = greeted()
        answers(connection, "USER jos\u00e9\r\n".encode())
        self.assertEqual(connection.pendingUser, "jos\u00e9")
        self.assertEqual(events(connection, b"PASS x\r\n"), [PasswordLogin("jos\u00e9", b"x")])

    def test_lang(self) -> None:
        """
        LANG lists English, accepts it, a regional variant and C{*}, and refuses others,
        in both states.
        """
        connection = greeted()
        self.assertEqual(
            answers(connection, b"LANG\r\n"),
            b"+OK language listing follows\r\nen English\r\n.\r\n",
        )
        self.assertEqual(
            answers(connection, b"LANG en-GB\r\nLANG *\r\nLANG fr\r\n"),
            b"+OK language changed to en\r\n"
            b"+OK language changed to en\r\n"
            b"-ERR unsupported language\r\n",
        )
        self.assertTrue(answers(loggedIn(1), b"LANG\r\n").startswith(b"+OK "))

    def test_disabled(self) -> None:
        """
        Without the capabilities, UTF8 and LANG are unknown commands.
        """
        self.assertEqual(
            answers(greeted(Capabilities(utf8=False, lang=False)), b"UTF8\r\nLANG\r\n"),
            b"-ERR unknown command\r\n-ERR unknown command\r\n",
        )
