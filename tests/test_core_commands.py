"""
Tests for L{pop3kit.core._commands}: command values and the command-line parser.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.core import (
    Apop,
    Capa,
    Dele,
    List,
    Noop,
    NoSuchMessage,
    Pass,
    POP3Error,
    Quit,
    RemoteProtocolError,
    Retr,
    Rset,
    Stat,
    Top,
    Uidl,
    User,
    parseCommand,
)


class CommandValueTests(SynchronousTestCase):
    """
    Command objects cannot hold invalid arguments.
    """

    def test_messageNumbersStartAtOne(self) -> None:
        """
        A message number below 1 cannot be built into any command.
        """
        for build in (Retr, Dele, List, Uidl, lambda n: Top(n, 0)):
            self.assertRaises(ValueError, build, 0)
            self.assertRaises(ValueError, build, -1)

    def test_topLineCountNotNegative(self) -> None:
        """
        TOP's line count cannot be negative.
        """
        self.assertRaises(ValueError, Top, 1, -1)
        self.assertEqual(Top(1, 0).lines, 0)

    def test_emptyUserName(self) -> None:
        """
        USER and APOP need a non-empty name.
        """
        self.assertRaises(ValueError, User, "")
        self.assertRaises(ValueError, Apop, "", b"0" * 32)

    def test_apopDigestFormat(self) -> None:
        """
        An APOP digest is 32 lower-case hex digits.
        """
        self.assertRaises(ValueError, Apop, "bob", b"0" * 31)
        self.assertRaises(ValueError, Apop, "bob", b"A" * 32)
        self.assertEqual(Apop("bob", b"a" * 32).digest, b"a" * 32)

    def test_secretsAreRedacted(self) -> None:
        """
        The repr of PASS and APOP does not show the secret.
        """
        self.assertNotIn("hunter2", repr(Pass(b"hunter2")))
        self.assertNotIn("c4c9334b", repr(Apop("bob", b"c4c9334bac560ecc979e58001b3e22fb")))


class ParseCommandTests(SynchronousTestCase):
    """
    L{parseCommand} turns lines into commands or wire-ready errors.
    """

    def test_everyCommand(self) -> None:
        """
        Each RFC 1939 / 2449 command parses into its value.
        """
        cases = {
            b"USER alice": User("alice"),
            b"PASS a secret with spaces ": Pass(b"a secret with spaces "),
            b"APOP bob c4c9334bac560ecc979e58001b3e22fb": Apop(
                "bob", b"c4c9334bac560ecc979e58001b3e22fb"
            ),
            b"QUIT": Quit(),
            b"STAT": Stat(),
            b"LIST": List(),
            b"LIST 3": List(3),
            b"RETR 1": Retr(1),
            b"DELE 12": Dele(12),
            b"NOOP": Noop(),
            b"RSET": Rset(),
            b"TOP 1 0": Top(1, 0),
            b"UIDL": Uidl(),
            b"UIDL 7": Uidl(7),
            b"CAPA": Capa(),
        }
        for line, expected in cases.items():
            self.assertEqual(parseCommand(line), expected, line)

    def test_keywordsCaseInsensitive(self) -> None:
        """
        Keywords are matched regardless of case.
        """
        self.assertEqual(parseCommand(b"capa"), Capa())
        self.assertEqual(parseCommand(b"uSeR alice"), User("alice"))
        self.assertEqual(parseCommand(b"rEtR 2"), Retr(2))

    def test_trailingSpacesIgnored(self) -> None:
        """
        Trailing spaces after a command are tolerated, except in PASS.
        """
        self.assertEqual(parseCommand(b"STAT  "), Stat())
        self.assertEqual(parseCommand(b"RETR 1 "), Retr(1))
        self.assertEqual(parseCommand(b"PASS x "), Pass(b"x "))

    def test_apopDigestLowerCased(self) -> None:
        """
        An upper-case APOP digest is accepted and normalised.
        """
        command = parseCommand(b"APOP bob C4C9334BAC560ECC979E58001B3E22FB")
        self.assertEqual(command, Apop("bob", b"c4c9334bac560ecc979e58001b3e22fb"))

    def assertRefused(self, line: bytes, error: type[POP3Error] = RemoteProtocolError) -> None:
        """
        Parsing C{line} raises C{error}.
        """
        self.assertRaises(error, parseCommand, line)

    def test_malformedMessageNumbers(self) -> None:
        """
        Missing, signed, non-decimal and extra arguments are refused.
        """
        for line in (
            b"RETR",
            b"RETR -1",
            b"RETR +1",
            b"RETR x",
            b"RETR 1x",
            b"RETR 1_0",
            b"RETR \xd9\xa1",
            b"RETR 1 2",
            b"DELE",
            b"DELE 1 2",
            b"DELE x",
            b"LIST abc",
            b"LIST 1 2",
            b"UIDL x",
            b"TOP",
            b"TOP 1",
            b"TOP 1 -1",
            b"TOP 1 x",
            b"TOP x 1",
            b"RETR  1",
        ):
            self.assertRefused(line)

    def test_impossibleMessageNumbers(self) -> None:
        """
        Zero and absurdly large numbers are "no such message".
        """
        self.assertRefused(b"RETR 0", NoSuchMessage)
        self.assertRefused(b"RETR 99999999999999999999", NoSuchMessage)
        self.assertRefused(b"LIST 0", NoSuchMessage)

    def test_hugeTopLineCount(self) -> None:
        """
        A huge TOP line count simply means the whole message.
        """
        self.assertEqual(parseCommand(b"TOP 1 99999999999999999999"), Top(1, 10**20 - 1))

    def test_unknownCommand(self) -> None:
        """
        Unknown keywords are refused.
        """
        self.assertRefused(b"XYZZY")
        self.assertRefused(b"")
        self.assertRefused(b"\xff\xfe")

    def test_nulByte(self) -> None:
        """
        A NUL byte anywhere in the line is refused; it never truncates a name.
        """
        self.assertRefused(b"USER alice\0evil")
        self.assertRefused(b"PASS se\0cret")
        self.assertRefused(b"\0STAT")

    def test_argumentCounts(self) -> None:
        """
        Commands without arguments refuse them; USER takes exactly one.
        """
        for line in (b"STAT 1", b"QUIT now", b"NOOP x", b"RSET 1", b"CAPA x", b"USER", b"PASS"):
            self.assertRefused(line)
        self.assertRefused(b"USER a b")

    def test_badUserNames(self) -> None:
        """
        User names must be UTF-8 without control characters.
        """
        self.assertRefused(b"USER \xff")
        self.assertRefused(b"USER a\x1bb")
        self.assertEqual(parseCommand("USER jürgen".encode()), User("jürgen"))

    @given(st.binary(max_size=300))
    def test_anyLineIsCommandOrPOP3Error(self, line: bytes) -> None:
        """
        Any line either parses or raises a L{POP3Error}: never another exception.
        """
        try:
            parseCommand(line)
        except POP3Error:
            pass
