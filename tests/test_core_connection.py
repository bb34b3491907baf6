"""
Tests for L{pop3kit.core.ServerConnection}: the state machine and the answers the core
gives without storage.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pop3kit.core import (
    LEGAL_COMMANDS,
    NEVER,
    Capabilities,
    Command,
    List,
    MaildropView,
    MessageInfo,
    Pass,
    Quit,
    Retr,
    ServerConnection,
    State,
    Top,
    User,
)


def events(connection: ServerConnection, data: bytes) -> list[Command | bytes]:
    """
    Feed C{data} and collect every event.
    """
    connection.receiveData(data)
    out: list[Command | bytes] = []
    while (event := connection.nextEvent()) is not None:
        out.append(event)
    return out


def loggedIn(*sizes: int) -> ServerConnection:
    """
    A connection in TRANSACTION with messages of the given sizes (uids C{u1}, C{u2}...).
    """
    connection = ServerConnection(Capabilities())
    connection.loggedIn(MaildropView(MessageInfo(f"u{n}", size) for n, size in enumerate(sizes, 1)))
    return connection


class AuthorizationTests(SynchronousTestCase):
    """
    AUTHORIZATION state: USER/PASS sequencing and refused commands.
    """

    def test_userThenPass(self) -> None:
        """
        USER is accepted locally; PASS is handed to the adapter with the name pending.
        """
        connection = ServerConnection(Capabilities())
        self.assertEqual(
            events(connection, b"USER alice\r\nPASS s3cret\r\n"),
            [b"+OK send PASS\r\n", Pass(b"s3cret")],
        )
        self.assertEqual(connection.pendingUser, "alice")

    def test_passWithoutUser(self) -> None:
        """
        PASS is valid only right after a successful USER.
        """
        connection = ServerConnection(Capabilities())
        self.assertEqual(
            events(connection, b"PASS x\r\nUSER a\r\nNOOP\r\nPASS x\r\n"),
            [
                b"-ERR PASS must follow USER\r\n",
                b"+OK send PASS\r\n",
                b"-ERR command not valid in this state\r\n",
                b"-ERR PASS must follow USER\r\n",
            ],
        )

    def test_loginFailedForgetsUser(self) -> None:
        """
        After a failed login PASS needs a new USER.
        """
        connection = ServerConnection(Capabilities())
        events(connection, b"USER a\r\nPASS x\r\n")
        connection.loginFailed()
        self.assertEqual(events(connection, b"PASS x\r\n"), [b"-ERR PASS must follow USER\r\n"])

    def test_transactionCommandsRefused(self) -> None:
        """
        STAT, LIST, RETR, DELE, RSET, TOP, UIDL and NOOP get C{-ERR} before login.
        """
        connection = ServerConnection(Capabilities())
        lines = b"STAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nRSET\r\nTOP 1 1\r\nUIDL\r\nNOOP\r\n"
        for event in events(connection, lines):
            self.assertIsInstance(event, bytes)
            assert isinstance(event, bytes)
            self.assertTrue(event.startswith(b"-ERR "), event)
        self.assertIs(connection.state, State.AUTHORIZATION)

    def test_userDisabled(self) -> None:
        """
        Without the USER capability, USER is refused.
        """
        connection = ServerConnection(Capabilities(user=False))
        (event,) = events(connection, b"USER a\r\n")
        assert isinstance(event, bytes)
        self.assertTrue(event.startswith(b"-ERR "))
        self.assertIsNone(connection.pendingUser)

    def test_quitHandedOver(self) -> None:
        """
        QUIT in AUTHORIZATION goes to the adapter, and nothing is to be expunged.
        """
        connection = ServerConnection(Capabilities())
        self.assertEqual(events(connection, b"QUIT\r\n"), [Quit()])
        self.assertEqual(connection.quit(), frozenset())
        self.assertIs(connection.state, State.UPDATE)

    def test_overLongLine(self) -> None:
        """
        An over-long line gets one C{-ERR} and its tail is never executed.
        """
        connection = ServerConnection(Capabilities())
        result = events(connection, b"USER " + b"x" * 300 + b" QUIT\r\nCAPA\r\n")
        self.assertEqual(result[0], b"-ERR command line too long\r\n")
        self.assertEqual(len(result), 2)
        self.assertTrue(result[1].startswith(b"+OK capability"))  # type: ignore[union-attr]


class TransactionTests(SynchronousTestCase):
    """
    TRANSACTION state: the answers computed from the session's maildrop view.
    """

    def test_greetingAfterLogin(self) -> None:
        """
        L{ServerConnection.loggedIn} answers with the maildrop's count and size.
        """
        connection = ServerConnection(Capabilities())
        response = connection.loggedIn(MaildropView([MessageInfo("a", 5), MessageInfo("b", 7)]))
        self.assertEqual(response, b"+OK maildrop has 2 messages (12 octets)\r\n")
        self.assertIs(connection.state, State.TRANSACTION)

    def test_statListUidl(self) -> None:
        """
        STAT, LIST and UIDL agree, in both forms.
        """
        connection = loggedIn(10, 20)
        self.assertEqual(
            events(connection, b"STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 1\r\n"),
            [
                b"+OK 2 30\r\n",
                b"+OK 2 messages (30 octets)\r\n1 10\r\n2 20\r\n.\r\n",
                b"+OK 2 20\r\n",
                b"+OK unique-id listing follows\r\n1 u1\r\n2 u2\r\n.\r\n",
                b"+OK 1 u1\r\n",
            ],
        )

    def test_deletedMessageIsRefused(self) -> None:
        """
        After DELE, every reference to the message gets C{-ERR} and listings omit it
        without renumbering the others.
        """
        connection = loggedIn(10, 20, 30)
        self.assertEqual(events(connection, b"DELE 2\r\n"), [b"+OK message 2 deleted\r\n"])
        refused = events(connection, b"LIST 2\r\nRETR 2\r\nTOP 2 0\r\nUIDL 2\r\nDELE 2\r\n")
        self.assertEqual(refused, [b"-ERR no such message\r\n"] * 5)
        self.assertEqual(
            events(connection, b"STAT\r\nLIST\r\nUIDL\r\n"),
            [
                b"+OK 2 40\r\n",
                b"+OK 2 messages (40 octets)\r\n1 10\r\n3 30\r\n.\r\n",
                b"+OK unique-id listing follows\r\n1 u1\r\n3 u3\r\n.\r\n",
            ],
        )

    def test_rset(self) -> None:
        """
        RSET unmarks every deleted message.
        """
        connection = loggedIn(10, 20)
        events(connection, b"DELE 1\r\nDELE 2\r\n")
        self.assertEqual(
            events(connection, b"RSET\r\nSTAT\r\n"),
            [b"+OK maildrop has 2 messages (30 octets)\r\n", b"+OK 2 30\r\n"],
        )
        self.assertEqual(connection.quit(), frozenset())

    def test_quitReturnsDeleted(self) -> None:
        """
        QUIT enters UPDATE and hands over the deleted unique-ids.
        """
        connection = loggedIn(1, 2, 3)
        self.assertEqual(
            events(connection, b"DELE 1\r\nDELE 3\r\nQUIT\r\nNOOP\r\n"),
            [b"+OK message 1 deleted\r\n", b"+OK message 3 deleted\r\n", Quit()],
        )
        self.assertEqual(connection.quit(), frozenset({"u1", "u3"}))
        self.assertIsNone(connection.nextEvent(), "nothing is processed after QUIT")

    def test_retrAndTopHandedOver(self) -> None:
        """
        RETR and TOP of existing messages go to the adapter; others get C{-ERR}.
        """
        connection = loggedIn(1)
        self.assertEqual(
            events(connection, b"RETR 1\r\nTOP 1 5\r\nRETR 2\r\nTOP 9 0\r\n"),
            [Retr(1), Top(1, 5), b"-ERR no such message\r\n", b"-ERR no such message\r\n"],
        )

    def test_authorizationCommandsRefused(self) -> None:
        """
        USER, PASS and APOP get C{-ERR} in TRANSACTION.
        """
        connection = loggedIn(1)
        result = events(
            connection, b"USER a\r\nPASS b\r\nAPOP a c4c9334bac560ecc979e58001b3e22fb\r\n"
        )
        self.assertEqual(result, [b"-ERR command not valid in this state\r\n"] * 3)

    def test_emptyMaildrop(self) -> None:
        """
        An empty maildrop answers C{+OK 0 0} and empty listings.
        """
        connection = loggedIn()
        self.assertEqual(
            events(connection, b"STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\n"),
            [
                b"+OK 0 0\r\n",
                b"+OK 0 messages (0 octets)\r\n.\r\n",
                b"+OK unique-id listing follows\r\n.\r\n",
                b"-ERR no such message\r\n",
            ],
        )

    def test_malformedArgumentsKeepSession(self) -> None:
        """
        Each malformed argument gets C{-ERR} and the session goes on.
        """
        connection = loggedIn(1)
        bad = [b"RETR", b"RETR 0", b"RETR -1", b"RETR x", b"RETR 99999999999999999999", b"DELE 1 2"]
        result = events(connection, b"".join(line + b"\r\n" for line in bad) + b"LIST 1\r\n")
        self.assertEqual(len(result), len(bad) + 1)
        for event in result[:-1]:
            assert isinstance(event, bytes)
            self.assertTrue(event.startswith(b"-ERR "))
        self.assertEqual(result[-1], b"+OK 1 1\r\n")
        self.assertEqual(events(connection, b"LIST 1\r\n"), [b"+OK 1 1\r\n"])
        self.assertEqual(List(1), List(1))


class CapabilityTests(SynchronousTestCase):
    """
    CAPA lists exactly what is enabled, the same in both states.
    """

    def test_default(self) -> None:
        """
        The default capabilities.
        """
        self.assertEqual(
            Capabilities().lines(State.AUTHORIZATION),
            [
                b"TOP",
                b"USER",
                b"UIDL",
                b"RESP-CODES",
                b"AUTH-RESP-CODE",
                b"PIPELINING",
                b"UTF8 USER",
                b"LANG",
            ],
        )

    def test_configured(self) -> None:
        """
        LOGIN-DELAY, EXPIRE and IMPLEMENTATION appear when configured.
        """
        lines = Capabilities(loginDelay=900, expire=NEVER, implementation="pop3kit").lines(
            State.TRANSACTION
        )
        self.assertIn(b"LOGIN-DELAY 900", lines)
        self.assertIn(b"EXPIRE NEVER", lines)
        self.assertIn(b"IMPLEMENTATION pop3kit", lines)
        self.assertIn(b"EXPIRE 0", Capabilities(expire=0).lines(State.AUTHORIZATION))

    def test_bothStates(self) -> None:
        """
        What is announced in AUTHORIZATION is announced in TRANSACTION (RFC 2449 section 5).
        """
        capabilities = Capabilities(loginDelay=60, expire=30, implementation="x")
        self.assertLessEqual(
            set(capabilities.lines(State.AUTHORIZATION)),
            set(capabilities.lines(State.TRANSACTION)),
        )
        connection = loggedIn()
        (response,) = events(connection, b"CAPA\r\n")
        assert isinstance(response, bytes)
        self.assertTrue(response.startswith(b"+OK "))
        self.assertTrue(response.endswith(b"\r\n.\r\n"))

    def test_invalidValues(self) -> None:
        """
        Nonsense capability values are refused at construction.
        """
        self.assertRaises(ValueError, Capabilities, loginDelay=-1)
        self.assertRaises(ValueError, Capabilities, expire=-1)
        self.assertRaises(ValueError, Capabilities, expire="sometimes")
        self.assertRaises(ValueError, Capabilities, implementation="a\r\nb")


class LegalityTableTests(SynchronousTestCase):
    """
    The legality table matches RFC 1939.
    """

    def test_updateAcceptsNothing(self) -> None:
        """
        No command is processed in UPDATE.
        """
        self.assertEqual(LEGAL_COMMANDS[State.UPDATE], frozenset())

    def test_userOnlyBeforeLogin(self) -> None:
        """
        USER and PASS belong to AUTHORIZATION only; RETR to TRANSACTION only.
        """
        self.assertIn(User, LEGAL_COMMANDS[State.AUTHORIZATION])
        self.assertNotIn(User, LEGAL_COMMANDS[State.TRANSACTION])
        self.assertIn(Retr, LEGAL_COMMANDS[State.TRANSACTION])
        self.assertNotIn(Retr, LEGAL_COMMANDS[State.AUTHORIZATION])


class MaildropViewTests(SynchronousTestCase):
    """
    L{MaildropView} refuses listings a session could not use safely.
    """

    def test_duplicateUidsRefused(self) -> None:
        """
        Duplicate unique-ids would make expunge ambiguous, so they are refused.
        """
        self.assertRaises(ValueError, MaildropView, [MessageInfo("a", 1), MessageInfo("a", 2)])

    def test_invalidUid(self) -> None:
        """
        Unique-ids outside RFC 1939's syntax cannot be built.
        """
        self.assertRaises(ValueError, MessageInfo, "", 1)
        self.assertRaises(ValueError, MessageInfo, "a b", 1)
        self.assertRaises(ValueError, MessageInfo, "x" * 71, 1)
        self.assertEqual(MessageInfo("x" * 70, 1).uid, "x" * 70)
