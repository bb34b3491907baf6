"""
Tests for the vocabulary both roles share: commands formatting themselves
(L{pop3kit.core.Command.toLine}), reply values (L{pop3kit.core._replies}) and
L{pop3kit.core.Capabilities.fromLines}.

Expected octets are written out by hand, never computed by the code under test.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.core import (
    NEVER,
    Apop,
    Auth,
    Capa,
    Capabilities,
    Command,
    CommandTooLong,
    Continuation,
    Dele,
    Err,
    Greeting,
    Lang,
    List,
    LocalProtocolError,
    MultiLine,
    Noop,
    Ok,
    Pass,
    Quit,
    ResponseCode,
    ResponseKind,
    Retr,
    Rset,
    ServerProtocolError,
    Stat,
    State,
    Stls,
    TemporaryFailure,
    Top,
    Uidl,
    User,
    Utf8,
    parseCommand,
)
from pop3kit.core._replies import (
    parseCapabilityLines,
    parseNumbers,
    parseScanListing,
    parseUid,
    parseUidLine,
    parseUidListing,
)

#: Every command, the line it formats to, and the answer it expects.
_COMMANDS: list[tuple[Command, bytes | None, ResponseKind]] = [
    (User("alice"), b"USER alice\r\n", ResponseKind.SINGLE),
    (User("j\u00f6rg"), b"USER j\xc3\xb6rg\r\n", ResponseKind.SINGLE),
    (Pass(b"two words"), b"PASS two words\r\n", ResponseKind.SINGLE),
    (Apop("bob", b"c4c9334bac560ecc979e58001b3e22fb"), None, ResponseKind.SINGLE),
    (Quit(), b"QUIT\r\n", ResponseKind.SINGLE),
    (Stat(), b"STAT\r\n", ResponseKind.SINGLE),
    (List(), b"LIST\r\n", ResponseKind.MULTILINE),
    (List(2), b"LIST 2\r\n", ResponseKind.SINGLE),
    (Retr(10), b"RETR 10\r\n", ResponseKind.MULTILINE),
    (Dele(3), b"DELE 3\r\n", ResponseKind.SINGLE),
    (Noop(), b"NOOP\r\n", ResponseKind.SINGLE),
    (Rset(), b"RSET\r\n", ResponseKind.SINGLE),
    (Top(1, 0), b"TOP 1 0\r\n", ResponseKind.MULTILINE),
    (Uidl(), b"UIDL\r\n", ResponseKind.MULTILINE),
    (Uidl(7), b"UIDL 7\r\n", ResponseKind.SINGLE),
    (Capa(), b"CAPA\r\n", ResponseKind.MULTILINE),
    (Auth(), b"AUTH\r\n", ResponseKind.MULTILINE),
    (Auth("PLAIN"), b"AUTH PLAIN\r\n", ResponseKind.SASL),
    (Auth("PLAIN", b"\0a\0b"), b"AUTH PLAIN AGEAYg==\r\n", ResponseKind.SASL),
    (Auth("EXTERNAL", b""), b"AUTH EXTERNAL =\r\n", ResponseKind.SASL),
    (Stls(), b"STLS\r\n", ResponseKind.STLS),
    (Utf8(), b"UTF8\r\n", ResponseKind.SINGLE),
    (Lang(), b"LANG\r\n", ResponseKind.MULTILINE),
    (Lang("fr"), b"LANG fr\r\n", ResponseKind.SINGLE),
]


class CommandLineTests(SynchronousTestCase):
    """
    Tests for L{Command.toLine}, L{Command.responseKind} and L{Command.redacted}.
    """

    def test_lines(self) -> None:
        """
        Each command formats to its line and expects its kind of answer.
        """
        for command, line, kind in _COMMANDS:
            if line is not None:
                self.assertEqual(command.toLine(), line, command)
            self.assertIs(command.responseKind, kind, command)

    def test_apopLine(self) -> None:
        """
        APOP sends the name and the digest.
        """
        self.assertEqual(
            Apop("bob", b"c4c9334bac560ecc979e58001b3e22fb").toLine(),
            b"APOP bob c4c9334bac560ecc979e58001b3e22fb\r\n",
        )

    def test_parsedBack(self) -> None:
        """
        What a command formats, the server's parser reads back as the same command.
        """
        for command, _, _ in _COMMANDS:
            self.assertEqual(parseCommand(command.toLine()[:-2]), command)

    def test_redacted(self) -> None:
        """
        Passwords, APOP digests and SASL initial responses never appear in the redacted
        form; other arguments do.
        """
        self.assertEqual(Pass(b"secret").redacted(), b"PASS <redacted>")
        self.assertEqual(
            Apop("bob", b"c4c9334bac560ecc979e58001b3e22fb").redacted(), b"APOP bob <redacted>"
        )
        self.assertEqual(Auth("PLAIN", b"\0a\0secret").redacted(), b"AUTH PLAIN <redacted>")
        self.assertEqual(Auth("SCRAM-SHA-1").redacted(), b"AUTH SCRAM-SHA-1")
        self.assertEqual(Retr(4).redacted(), b"RETR 4")

    def test_tooLong(self) -> None:
        """
        A line over 255 octets is refused with L{CommandTooLong}, a
        L{LocalProtocolError} and a L{ValueError}.
        """
        command = User("a" * 250)
        error = self.assertRaises(CommandTooLong, command.toLine)
        self.assertIsInstance(error, LocalProtocolError)
        self.assertIsInstance(error, ValueError)
        self.assertEqual(len(User("a" * 248).toLine()), 255)

    def test_invalidValues(self) -> None:
        """
        Commands refuse invalid values with L{LocalProtocolError} carrying the text the
        client used to repeat.
        """
        error = self.assertRaises(LocalProtocolError, Retr, 0)
        self.assertEqual(str(error), "message numbers start at 1, not 0")
        self.assertRaises(ValueError, Top, 1, -1)
        self.assertRaises(LocalProtocolError, Pass(b"a\r\nDELE 1").toLine)

    def test_namesAreOneArgument(self) -> None:
        """
        A USER or APOP name with a space or a control character cannot be built: it would
        not be one argument on the wire.
        """
        digest = b"c4c9334bac560ecc979e58001b3e22fb"
        error = self.assertRaises(LocalProtocolError, User, "alice smith")
        self.assertEqual(str(error), "USER names cannot contain spaces")
        error = self.assertRaises(LocalProtocolError, Apop, "alice smith", digest)
        self.assertEqual(str(error), "APOP names cannot contain spaces")
        self.assertRaises(LocalProtocolError, User, "alice\r\nDELE 1")
        self.assertRaises(LocalProtocolError, User, "")

    def test_booleansAreNotNumbers(self) -> None:
        """
        C{True} is not message number 1, nor a line count.
        """
        self.assertRaises(LocalProtocolError, Retr, True)
        self.assertRaises(LocalProtocolError, List, True)
        self.assertRaises(LocalProtocolError, Top, 1, False)

    @given(number=st.integers(min_value=1, max_value=10**9), lines=st.integers(0, 10**6))
    def test_topRoundTrip(self, number: int, lines: int) -> None:
        """
        Any valid TOP command survives formatting and parsing.
        """
        command = Top(number, lines)
        self.assertEqual(parseCommand(command.toLine()[:-2]), command)


class ReplyValueTests(SynchronousTestCase):
    """
    Tests for the reply values' C{toBytes}.
    """

    def test_ok(self) -> None:
        """
        L{Ok} is C{+OK}, an optional code and text.
        """
        self.assertEqual(Ok("2 320").toBytes(), b"+OK 2 320\r\n")
        self.assertEqual(Ok().toBytes(), b"+OK \r\n")

    def test_err(self) -> None:
        """
        L{Err} carries its response code; L{Err.fromError} takes an error's text and code.
        """
        self.assertEqual(Err("in use", ResponseCode.IN_USE).toBytes(), b"-ERR [IN-USE] in use\r\n")
        self.assertEqual(
            Err.fromError(TemporaryFailure()).toBytes(),
            b"-ERR [SYS/TEMP] temporary system problem, try again later\r\n",
        )

    def test_controlCharactersNeverReachTheWire(self) -> None:
        """
        A CR or LF in a reply's text becomes a space.
        """
        self.assertEqual(Err("a\r\nb").toBytes(), b"-ERR a  b\r\n")

    def test_multiLine(self) -> None:
        """
        L{MultiLine} byte-stuffs its lines and ends with the terminator.
        """
        reply = MultiLine(Ok("list follows"), (b"one", b".two", b""))
        self.assertEqual(reply.toBytes(), b"+OK list follows\r\none\r\n..two\r\n\r\n.\r\n")
        self.assertEqual(MultiLine(Ok()).toBytes(), b"+OK \r\n.\r\n")

    def test_continuation(self) -> None:
        """
        L{Continuation} is C{+}, a space and the base64 payload.
        """
        self.assertEqual(Continuation(b"PDE+").toBytes(), b"+ PDE+\r\n")
        self.assertEqual(Continuation(b"").toBytes(), b"+ \r\n")

    def test_greeting(self) -> None:
        """
        L{Greeting} adds the APOP timestamp when there is one, and reads it back.
        """
        self.assertEqual(Greeting().toBytes(), b"+OK POP3 server ready\r\n")
        greeting = Greeting("ready", b"<1.2@host>")
        self.assertEqual(greeting.toBytes(), b"+OK ready <1.2@host>\r\n")
        self.assertEqual(Greeting.fromText(b"ready <1.2@host>").timestamp, b"<1.2@host>")
        self.assertIsNone(Greeting.fromText(b"POP3 ready").timestamp)


class ListingParserTests(SynchronousTestCase):
    """
    Tests for the parsers of the answers a client receives.
    """

    def test_numbers(self) -> None:
        """
        L{parseNumbers} takes the leading numbers and ignores the text after them.
        """
        self.assertEqual(parseNumbers(b"2 320 messages", 2, "STAT"), [2, 320])
        error = self.assertRaises(ServerProtocolError, parseNumbers, b"2 x", 2, "STAT")
        self.assertEqual(str(error), "malformed STAT answer b'2 x'")

    def test_scanListing(self) -> None:
        """
        A LIST body gives sizes by number.
        """
        self.assertEqual(parseScanListing(b"1 120\r\n3 200 extra\r\n"), {1: 120, 3: 200})
        self.assertEqual(parseScanListing(b""), {})
        self.assertRaises(ServerProtocolError, parseScanListing, b"1\r\n")
        self.assertRaises(ServerProtocolError, parseScanListing, b"x 12\r\n")

    def test_uidListing(self) -> None:
        """
        A UIDL body gives unique-ids by number; spaces or control characters in an id
        are refused.
        """
        self.assertEqual(parseUidListing(b"1 abc\r\n2 d-e.f\r\n"), {1: "abc", 2: "d-e.f"})
        self.assertRaises(ServerProtocolError, parseUidListing, b"1 \x01bc\r\n")

    def test_uidLine(self) -> None:
        """
        The answer to C{UIDL n} is C{n uid}.
        """
        self.assertEqual(parseUidLine(b"2 QhdPYR:00WBw1Ph7x7"), "QhdPYR:00WBw1Ph7x7")
        self.assertRaises(ServerProtocolError, parseUidLine, b"two x")
        self.assertRaises(ServerProtocolError, parseUid, b"")

    def test_capabilityLines(self) -> None:
        """
        CAPA tags come out upper case with their parameters.
        """
        self.assertEqual(
            parseCapabilityLines(b"top\r\nSASL PLAIN LOGIN\r\n\r\n"),
            {"TOP": [], "SASL": ["PLAIN", "LOGIN"]},
        )


class CapabilitiesFromLinesTests(SynchronousTestCase):
    """
    Tests for L{Capabilities.fromLines}.
    """

    def test_typical(self) -> None:
        """
        A typical server's announcement is read into a typed value.
        """
        capabilities = Capabilities.fromLines(
            [
                b"TOP",
                b"USER",
                b"SASL scram-sha-256 PLAIN",
                b"STLS",
                b"UIDL",
                b"PIPELINING",
                b"LOGIN-DELAY 900",
                b"EXPIRE NEVER",
                b"IMPLEMENTATION Dovecot",
            ]
        )
        self.assertEqual(
            capabilities,
            Capabilities(
                user=True,
                sasl=("SCRAM-SHA-256", "PLAIN"),
                stls=True,
                utf8=False,
                lang=False,
                loginDelay=900,
                expire=NEVER,
                implementation="Dovecot",
                respCodes=False,
                authRespCode=False,
            ),
        )

    def test_nothing(self) -> None:
        """
        An empty announcement offers nothing optional.
        """
        capabilities = Capabilities.fromLines([])
        self.assertFalse(capabilities.user or capabilities.stls or capabilities.pipelining)
        self.assertEqual(capabilities.sasl, ())
        self.assertIsNone(capabilities.loginDelay)

    def test_malformedValuesIgnored(self) -> None:
        """
        Malformed LOGIN-DELAY, EXPIRE and IMPLEMENTATION values are ignored, never raised.
        """
        capabilities = Capabilities.fromLines(
            [b"LOGIN-DELAY soon", b"EXPIRE -1", b"IMPLEMENTATION"]
        )
        self.assertIsNone(capabilities.loginDelay)
        self.assertIsNone(capabilities.expire)
        self.assertIsNone(capabilities.implementation)

    def test_roundTrip(self) -> None:
        """
        What a server announces, a client reads back, in every state.
        """
        offered = Capabilities(
            sasl=("SCRAM-SHA-1", "PLAIN"),
            stls=True,
            loginDelay=60,
            expire=30,
            implementation="pop3kit",
        )
        for state in (State.AUTHORIZATION, State.TRANSACTION):
            self.assertEqual(Capabilities.fromLines(offered.lines(state)), offered)
