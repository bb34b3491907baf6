"""
Tests for the login-related parts of the sans-IO core: AUTH, STLS, UTF8 and LANG
parsing, the cleartext policy in CAPA and in the answers, SASL exchanges, what STLS
forgets, and the limits on bad commands and failed logins.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pop3kit.core import (
    MAX_COMMAND_LINE,
    Auth,
    Capabilities,
    Lang,
    LineTooLong,
    Pass,
    RemoteProtocolError,
    ServerConnection,
    State,
    Stls,
    Utf8,
    decodeBase64,
    parseCommand,
)
from tests.test_core_connection import events, loggedIn

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
        answers = events(ServerConnection(capabilities()), b"USER alice\r\nPASS secret\r\n")
        self.assertTrue(answers[0].startswith(b"-ERR [AUTH] "))  # type: ignore[union-attr]
        self.assertEqual(answers[1], b"-ERR PASS must follow USER\r\n")

    def test_plainRefused(self) -> None:
        """
        AUTH PLAIN before TLS gets C{-ERR [AUTH]}; SCRAM is handed to the adapter.
        """
        connection = ServerConnection(capabilities())
        [plain] = events(connection, b"AUTH PLAIN AGEAYg==\r\n")
        self.assertTrue(plain.startswith(b"-ERR [AUTH] "))  # type: ignore[union-attr]
        self.assertEqual(events(connection, b"AUTH SCRAM-SHA-256\r\n"), [Auth("SCRAM-SHA-256")])

    def test_unknownMechanism(self) -> None:
        """
        A mechanism the server does not offer gets a plain C{-ERR}.
        """
        [answer] = events(ServerConnection(capabilities()), b"AUTH CRAM-MD5\r\n")
        self.assertEqual(answer, b"-ERR unsupported SASL mechanism\r\n")

    def test_externalNeedsTLS(self) -> None:
        """
        EXTERNAL is refused without TLS even where cleartext is allowed.
        """
        connection = ServerConnection(capabilities(cleartext=True))
        [answer] = events(connection, b"AUTH EXTERNAL\r\n")
        self.assertTrue(answer.startswith(b"-ERR "))  # type: ignore[union-attr]

    def test_mechanismList(self) -> None:
        """
        AUTH without an argument lists the mechanisms usable now, RFC 1734 style.
        """
        [answer] = events(ServerConnection(capabilities()), b"AUTH\r\n")
        self.assertEqual(answer, b"+OK SASL mechanisms follow\r\nSCRAM-SHA-256\r\n.\r\n")


class STLSTests(SynchronousTestCase):
    """
    STLS is handed over once, and starting TLS forgets everything said in the clear.
    """

    def test_handedOver(self) -> None:
        """
        STLS in AUTHORIZATION is a command for the adapter.
        """
        self.assertEqual(events(ServerConnection(capabilities()), b"STLS\r\n"), [Stls()])

    def test_notOffered(self) -> None:
        """
        STLS without a certificate, a second STLS, and STLS after login get C{-ERR}.
        """
        [answer] = events(ServerConnection(capabilities(stls=False)), b"STLS\r\n")
        self.assertEqual(answer, b"-ERR STLS is not available\r\n")
        [answer] = events(ServerConnection(capabilities().secured()), b"STLS\r\n")
        self.assertEqual(answer, b"-ERR TLS is already active\r\n")
        [answer] = events(loggedIn(10), b"STLS\r\n")
        self.assertTrue(answer.startswith(b"-ERR "))  # type: ignore[union-attr]

    def test_injectedCommandsDiscarded(self) -> None:
        """
        Commands sent in the clear behind STLS, whole or partial, are never executed.
        """
        connection = ServerConnection(capabilities(cleartext=True))
        connection.receiveData(b"USER alice\r\nSTLS\r\nPASS secret\r\nCAPA\r\nUS")
        self.assertEqual(connection.nextEvent(), b"+OK send PASS\r\n")
        self.assertEqual(connection.nextEvent(), Stls())
        connection.startedTLS()
        self.assertIsNone(connection.nextEvent())
        self.assertIsNone(connection.pendingUser)
        self.assertEqual(events(connection, b"ER bob\r\n"), [b"-ERR unknown command\r\n"])

    def test_pendingUserForgotten(self) -> None:
        """
        A USER given before STLS does not let PASS complete after it.
        """
        connection = ServerConnection(capabilities(cleartext=True))
        events(connection, b"USER alice\r\nSTLS\r\n")
        connection.startedTLS()
        self.assertEqual(
            events(connection, b"PASS secret\r\n"), [b"-ERR PASS must follow USER\r\n"]
        )

    def test_capabilitiesSecured(self) -> None:
        """
        After STLS, CAPA no longer lists STLS, and USER is accepted.
        """
        connection = ServerConnection(capabilities())
        events(connection, b"STLS\r\n")
        connection.startedTLS()
        [capa] = events(connection, b"CAPA\r\n")
        self.assertNotIn(b"STLS", capa)  # type: ignore[operator]
        self.assertEqual(events(connection, b"USER alice\r\n"), [b"+OK send PASS\r\n"])


class ExchangeTests(SynchronousTestCase):
    """
    During a SASL exchange, lines are responses, not commands.
    """

    def test_responsesNotCommands(self) -> None:
        """
        Lines received during an exchange come from L{ServerConnection.nextResponse}, and
        commands resume after L{ServerConnection.endExchange}.
        """
        connection = ServerConnection(capabilities().secured())
        self.assertEqual(events(connection, b"AUTH PLAIN\r\n"), [Auth("PLAIN")])
        connection.beginExchange()
        connection.receiveData(b"QUIT\r\nNOOP\r\n")
        self.assertIsNone(connection.nextEvent())
        self.assertEqual(connection.nextResponse(), b"QUIT")
        connection.endExchange()
        self.assertEqual(connection.state, State.AUTHORIZATION)
        self.assertEqual(events(connection, b""), [b"-ERR command not valid in this state\r\n"])

    def test_longResponses(self) -> None:
        """
        SASL responses and AUTH lines may be longer than a command line, up to a limit.
        """
        connection = ServerConnection(capabilities().secured(), maxSASLLineLength=4096)
        longAuth = b"AUTH PLAIN " + b"QUFB" * 500
        [auth] = events(connection, longAuth + b"\r\n")
        self.assertIsInstance(auth, Auth)
        connection.beginExchange()
        connection.receiveData(b"QUFB" * 1000 + b"\r\n" + b"x" * 5000 + b"\r\n")
        self.assertEqual(connection.nextResponse(), b"QUFB" * 1000)
        self.assertIsInstance(connection.nextResponse(), LineTooLong)

    def test_longCommandStillRefused(self) -> None:
        """
        Other commands keep the RFC 2449 limit of 255 octets.
        """
        connection = ServerConnection(capabilities(cleartext=True))
        line = b"USER " + b"a" * (MAX_COMMAND_LINE - 6) + b"\r\n"
        self.assertEqual(events(connection, line), [b"-ERR command line too long\r\n"])


class LimitTests(SynchronousTestCase):
    """
    Too many bad commands or failed logins close the session.
    """

    def test_badCommands(self) -> None:
        """
        The last allowed bad command is answered and the session marked closing; nothing
        after it is processed.
        """
        connection = ServerConnection(Capabilities(), maxBadCommands=3)
        answers = events(connection, b"FOO\r\nSTAT\r\nBAR\r\nCAPA\r\n")
        self.assertEqual(len(answers), 3)
        self.assertEqual(answers[2], b"-ERR too many invalid commands, closing the connection\r\n")
        self.assertTrue(connection.closing)

    def test_noSuchMessageIsNotBad(self) -> None:
        """
        Asking for a message that does not exist is not an invalid command.
        """
        connection = loggedIn(10)
        connection.maxBadCommands = 2
        events(connection, b"RETR 5\r\nLIST 9\r\nDELE 7\r\n")
        self.assertFalse(connection.closing)

    def test_failedLogins(self) -> None:
        """
        At the failed-login limit the session is marked closing.
        """
        connection = ServerConnection(Capabilities(), maxFailedLogins=2)
        connection.loginFailed()
        self.assertFalse(connection.closing)
        connection.loginFailed()
        self.assertTrue(connection.closing)

    def test_refusedPlaintextIsBad(self) -> None:
        """
        Password commands refused by the cleartext policy count towards the bad-command
        limit, so a client cannot repeat them forever.
        """
        connection = ServerConnection(capabilities(), maxBadCommands=3)
        answers = events(connection, b"USER a\r\nAUTH PLAIN\r\nUSER b\r\nCAPA\r\n")
        self.assertEqual(len(answers), 3)
        self.assertTrue(connection.closing)


class LanguageTests(SynchronousTestCase):
    """
    UTF8 and LANG (RFC 6856).
    """

    def test_utf8(self) -> None:
        """
        UTF8 is accepted in AUTHORIZATION and refused in TRANSACTION.
        """
        connection = ServerConnection(Capabilities())
        self.assertEqual(events(connection, b"UTF8\r\n"), [b"+OK UTF-8 mode enabled\r\n"])
        self.assertTrue(connection.utf8)
        [answer] = events(loggedIn(1), b"UTF8\r\n")
        self.assertTrue(answer.startswith(b"-ERR "))  # type: ignore[union-attr]

    def test_utf8UserName(self) -> None:
        """
        A UTF-8 user name is accepted and handed over as text.
        """
        connection = ServerConnection(Capabilities())
        events(connection, "USER jos\u00e9\r\n".encode())
        self.assertEqual(connection.pendingUser, "jos\u00e9")
        self.assertEqual(events(connection, b"PASS x\r\n"), [Pass(b"x")])

    def test_lang(self) -> None:
        """
        LANG lists English, accepts it, a regional variant and C{*}, and refuses others,
        in both states.
        """
        connection = ServerConnection(Capabilities())
        self.assertEqual(
            events(connection, b"LANG\r\n"),
            [b"+OK language listing follows\r\nen English\r\n.\r\n"],
        )
        self.assertEqual(events(connection, b"LANG en-GB\r\n"), [b"+OK language changed to en\r\n"])
        self.assertEqual(events(connection, b"LANG *\r\n"), [b"+OK language changed to en\r\n"])
        self.assertEqual(events(connection, b"LANG fr\r\n"), [b"-ERR unsupported language\r\n"])
        [answer] = events(loggedIn(1), b"LANG\r\n")
        self.assertTrue(answer.startswith(b"+OK "))  # type: ignore[union-attr]

    def test_disabled(self) -> None:
        """
        Without the capabilities, UTF8 and LANG are unknown commands.
        """
        connection = ServerConnection(Capabilities(utf8=False, lang=False))
        self.assertEqual(
            events(connection, b"UTF8\r\nLANG\r\n"),
            [b"-ERR unknown command\r\n", b"-ERR unknown command\r\n"],
        )
