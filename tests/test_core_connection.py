"""
Tests for L{pop3kit.core.ServerConnection}: the state machine and the answers the core
gives without storage.
"""

from __future__ import annotations

from typing import cast

from twisted.trial.unittest import SynchronousTestCase

from pop3kit.core import (
    LEGAL_COMMANDS,
    NEVER,
    TRANSITIONS,
    APOPLogin,
    BodyFollows,
    BodySent,
    Capabilities,
    Command,
    Err,
    Evicted,
    Expunge,
    Goodbye,
    Greeting,
    List,
    LocalProtocolError,
    LoginAccepted,
    LoginRefused,
    MaildropView,
    MessageInfo,
    MessageUnavailable,
    PasswordLogin,
    PermanentFailure,
    Retr,
    Retrieve,
    ServerConnection,
    ServerEvent,
    State,
    TemporaryFailure,
    User,
    isLegal,
)


def greeted(capabilities: Capabilities | None = None, **options: int) -> ServerConnection:
    """
    A connection that has sent its greeting, without an APOP timestamp.
    """
    connection = ServerConnection(capabilities or Capabilities(), **options)
    connection.send(Greeting())
    return connection


def events(connection: ServerConnection, data: bytes) -> list[ServerEvent | bytes]:
    """
    Feed C{data} and collect, in order, the events and the octets the core answered by
    itself in between (one C{bytes} item for consecutive answers).
    """
    connection.receiveData(data)
    out: list[ServerEvent | bytes] = []
    while True:
        event = connection.nextEvent()
        sent = connection.dataToSend()
        if sent:
            out.append(sent)
        if event is None:
            return out
        out.append(event)


def answers(connection: ServerConnection, data: bytes) -> bytes:
    """
    Feed C{data}, which the core must answer by itself, and return the answers.
    """
    result = events(connection, data)
    assert all(isinstance(item, bytes) for item in result), result
    return b"".join(cast(list[bytes], result))


def loggedIn(*sizes: int, capabilities: Capabilities | None = None) -> ServerConnection:
    """
    A connection in TRANSACTION with messages of the given sizes (uids C{u1}, C{u2}...).
    """
    connection = greeted(capabilities)
    [_, login] = events(connection, b"USER alice\r\nPASS secret\r\n")
    assert login == PasswordLogin("alice", b"secret"), login
    view = MaildropView(MessageInfo(f"u{n}", size) for n, size in enumerate(sizes, 1))
    connection.send(LoginAccepted(view))
    return connection


class GreetingTests(SynchronousTestCase):
    """
    The session starts with the greeting, which the core words and remembers.
    """

    def test_greetingFirst(self) -> None:
        """
        Nothing received is processed before the greeting is sent.
        """
        connection = ServerConnection(Capabilities())
        self.assertIs(connection.state, State.GREETING)
        self.assertEqual(events(connection, b"NOOP\r\n"), [])
        self.assertEqual(connection.send(Greeting()), b"+OK POP3 server ready\r\n")
        self.assertIs(connection.state, State.AUTHORIZATION)
        self.assertEqual(events(connection, b""), [b"-ERR command not valid in this state\r\n"])

    def test_apopTimestamp(self) -> None:
        """
        APOP is handed over with the greeting's timestamp; without one it is refused.
        """
        digest = b"c4c9334bac560ecc979e58001b3e22fb"
        connection = ServerConnection(Capabilities())
        self.assertEqual(
            connection.send(Greeting(timestamp=b"<1.2@x>")), b"+OK POP3 server ready <1.2@x>\r\n"
        )
        self.assertEqual(
            events(connection, b"APOP alice " + digest + b"\r\n"),
            [APOPLogin("alice", digest, b"<1.2@x>")],
        )
        self.assertIs(connection.state, State.LOGIN)
        self.assertEqual(
            answers(greeted(), b"APOP alice " + digest + b"\r\n"),
            b"-ERR APOP is not available, use another login method\r\n",
        )


class AuthorizationTests(SynchronousTestCase):
    """
    AUTHORIZATION state: USER/PASS sequencing, the login's outcome and refused commands.
    """

    def test_userThenPass(self) -> None:
        """
        USER is accepted locally; PASS is handed to the adapter with the name.
        """
        connection = greeted()
        self.assertEqual(
            events(connection, b"USER alice\r\nPASS s3cret\r\nSTAT\r\n"),
            [b"+OK send PASS\r\n", PasswordLogin("alice", b"s3cret")],
        )
        self.assertIs(connection.state, State.LOGIN)
        self.assertIsNone(connection.nextEvent(), "nothing is processed during the login")
        self.assertNotIn("s3cret", repr(PasswordLogin("alice", b"s3cret")))

    def test_passWithoutUser(self) -> None:
        """
        PASS is valid only right after a successful USER.
        """
        self.assertEqual(
            answers(greeted(), b"PASS x\r\nUSER a\r\nNOOP\r\nPASS x\r\n"),
            b"-ERR PASS must follow USER\r\n"
            b"+OK send PASS\r\n"
            b"-ERR command not valid in this state\r\n"
            b"-ERR PASS must follow USER\r\n",
        )

    def test_loginAccepted(self) -> None:
        """
        L{LoginAccepted} answers with the maildrop's count and size and enters
        TRANSACTION; the commands pipelined behind PASS are processed then.
        """
        connection = greeted()
        events(connection, b"USER a\r\nPASS x\r\nSTAT\r\n")
        view = MaildropView([MessageInfo("a", 5), MessageInfo("b", 7)])
        response = connection.send(LoginAccepted(view))
        self.assertEqual(response, b"+OK maildrop has 2 messages (12 octets)\r\n")
        self.assertIs(connection.state, State.TRANSACTION)
        self.assertIs(connection.maildrop, view)
        self.assertEqual(events(connection, b""), [b"+OK 2 12\r\n"])

    def test_loginRefused(self) -> None:
        """
        L{LoginRefused} answers with the error's code and text; after it PASS needs a
        new USER.
        """
        connection = greeted()
        events(connection, b"USER a\r\nPASS x\r\n")
        response = connection.send(LoginRefused(TemporaryFailure()))
        self.assertEqual(response, b"-ERR [SYS/TEMP] temporary system problem, try again later\r\n")
        self.assertIs(connection.state, State.AUTHORIZATION)
        self.assertEqual(answers(connection, b"PASS x\r\n"), b"-ERR PASS must follow USER\r\n")

    def test_transactionCommandsRefused(self) -> None:
        """
        STAT, LIST, RETR, DELE, RSET, TOP, UIDL and NOOP get C{-ERR} before login.
        """
        connection = greeted(maxBadCommands=100)
        lines = b"STAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nRSET\r\nTOP 1 1\r\nUIDL\r\nNOOP\r\n"
        self.assertEqual(
            answers(connection, lines), b"-ERR command not valid in this state\r\n" * 8
        )
        self.assertIs(connection.state, State.AUTHORIZATION)

    def test_userDisabled(self) -> None:
        """
        Without the USER capability, USER is refused.
        """
        connection = greeted(Capabilities(user=False))
        self.assertTrue(answers(connection, b"USER a\r\n").startswith(b"-ERR "))
        self.assertIsNone(connection.pendingUser)

    def test_quitBeforeLogin(self) -> None:
        """
        QUIT in AUTHORIZATION is answered by the core, which closes the session.
        """
        connection = greeted()
        self.assertEqual(events(connection, b"QUIT\r\nNOOP\r\n"), [b"+OK bye\r\n"])
        self.assertIs(connection.state, State.CLOSED)

    def test_overLongLine(self) -> None:
        """
        An over-long line gets one C{-ERR} and its tail is never executed.
        """
        connection = greeted()
        result = answers(connection, b"USER " + b"x" * 300 + b" QUIT\r\nCAPA\r\n")
        first, rest = result.split(b"\r\n", 1)
        self.assertEqual(first, b"-ERR command line too long")
        self.assertTrue(rest.startswith(b"+OK capability"))


class TransactionTests(SynchronousTestCase):
    """
    TRANSACTION state: the answers computed from the session's maildrop view.
    """

    def test_statListUidl(self) -> None:
        """
        STAT, LIST and UIDL agree, in both forms.
        """
        connection = loggedIn(10, 20)
        self.assertEqual(
            answers(connection, b"STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 1\r\n"),
            b"+OK 2 30\r\n"
            b"+OK 2 messages (30 octets)\r\n1 10\r\n2 20\r\n.\r\n"
            b"+OK 2 20\r\n"
            b"+OK unique-id listing follows\r\n1 u1\r\n2 u2\r\n.\r\n"
            b"+OK 1 u1\r\n",
        )

    def test_deletedMessageIsRefused(self) -> None:
        """
        After DELE, every reference to the message gets C{-ERR} and listings omit it
        without renumbering the others.
        """
        connection = loggedIn(10, 20, 30)
        self.assertEqual(answers(connection, b"DELE 2\r\n"), b"+OK message 2 deleted\r\n")
        refused = answers(connection, b"LIST 2\r\nRETR 2\r\nTOP 2 0\r\nUIDL 2\r\nDELE 2\r\n")
        self.assertEqual(refused, b"-ERR no such message\r\n" * 5)
        self.assertEqual(
            answers(connection, b"STAT\r\nLIST\r\nUIDL\r\n"),
            b"+OK 2 40\r\n"
            b"+OK 2 messages (40 octets)\r\n1 10\r\n3 30\r\n.\r\n"
            b"+OK unique-id listing follows\r\n1 u1\r\n3 u3\r\n.\r\n",
        )

    def test_rset(self) -> None:
        """
        RSET unmarks every deleted message: QUIT then removes nothing.
        """
        connection = loggedIn(10, 20)
        answers(connection, b"DELE 1\r\nDELE 2\r\n")
        self.assertEqual(
            answers(connection, b"RSET\r\nSTAT\r\n"),
            b"+OK maildrop has 2 messages (30 octets)\r\n+OK 2 30\r\n",
        )
        self.assertEqual(events(connection, b"QUIT\r\n"), [Expunge(frozenset())])

    def test_quitExpungesDeleted(self) -> None:
        """
        QUIT enters UPDATE and hands over the deleted unique-ids; L{Goodbye} closes.
        """
        connection = loggedIn(1, 2, 3)
        self.assertEqual(
            events(connection, b"DELE 1\r\nDELE 3\r\nQUIT\r\nNOOP\r\n"),
            [
                b"+OK message 1 deleted\r\n+OK message 3 deleted\r\n",
                Expunge(frozenset({"u1", "u3"})),
            ],
        )
        self.assertIs(connection.state, State.UPDATE)
        self.assertIsNone(connection.nextEvent(), "nothing is processed after QUIT")
        self.assertEqual(connection.send(Goodbye()), b"+OK bye\r\n")
        self.assertIs(connection.state, State.CLOSED)

    def test_quitFailed(self) -> None:
        """
        A failed expunge is answered with RFC 1939's words and the backend's SYS code.
        """
        for error, code in [
            (PermanentFailure(), b"SYS/PERM"),
            (TemporaryFailure(), b"SYS/TEMP"),
            (MessageUnavailable(), b"SYS/TEMP"),
        ]:
            connection = loggedIn(1)
            events(connection, b"QUIT\r\n")
            self.assertEqual(
                connection.send(Goodbye(error)),
                b"-ERR [" + code + b"] some deleted messages not removed\r\n",
            )

    def test_expireZeroRemovesRetrieved(self) -> None:
        """
        With C{EXPIRE 0}, QUIT also removes the messages retrieved with RETR (not TOP).
        """
        connection = loggedIn(1, 2, 3, capabilities=Capabilities(expire=0))
        for line in (b"RETR 1\r\n", b"TOP 2 0\r\n"):
            events(connection, line)
            connection.send(BodyFollows())
            connection.send(BodySent())
        self.assertEqual(events(connection, b"QUIT\r\n"), [Expunge(frozenset({"u1"}))])

    def test_retrieve(self) -> None:
        """
        RETR and TOP of existing messages go to the adapter, which starts the body with
        L{BodyFollows}; the next command waits for L{BodySent}.
        """
        connection = loggedIn(7)
        info = MessageInfo("u1", 7)
        self.assertEqual(events(connection, b"RETR 1\r\nNOOP\r\n"), [Retrieve(info)])
        self.assertIs(connection.state, State.MESSAGE)
        self.assertEqual(connection.send(BodyFollows()), b"+OK 7 octets\r\n")
        self.assertIs(connection.state, State.BODY)
        self.assertIsNone(connection.nextEvent())
        self.assertEqual(connection.send(BodySent()), b"")
        self.assertEqual(events(connection, b"TOP 1 5\r\n"), [b"+OK \r\n", Retrieve(info, 5)])
        self.assertEqual(connection.send(BodyFollows()), b"+OK top of message follows\r\n")

    def test_retrieveFailed(self) -> None:
        """
        A message that cannot be opened is answered with the error's C{-ERR}.
        """
        connection = loggedIn(7)
        events(connection, b"RETR 1\r\n")
        self.assertEqual(
            connection.send(Err.fromError(MessageUnavailable())),
            b"-ERR message is no longer available\r\n",
        )
        self.assertIs(connection.state, State.TRANSACTION)

    def test_missingMessagesRefused(self) -> None:
        """
        RETR and TOP of messages that do not exist get C{-ERR} from the core.
        """
        connection = loggedIn(1)
        self.assertEqual(
            answers(connection, b"RETR 2\r\nTOP 9 0\r\n"), b"-ERR no such message\r\n" * 2
        )

    def test_authorizationCommandsRefused(self) -> None:
        """
        USER, PASS and APOP get C{-ERR} in TRANSACTION.
        """
        connection = loggedIn(1)
        result = answers(
            connection, b"USER a\r\nPASS b\r\nAPOP a c4c9334bac560ecc979e58001b3e22fb\r\n"
        )
        self.assertEqual(result, b"-ERR command not valid in this state\r\n" * 3)

    def test_emptyMaildrop(self) -> None:
        """
        An empty maildrop answers C{+OK 0 0} and empty listings.
        """
        self.assertEqual(
            answers(loggedIn(), b"STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\n"),
            b"+OK 0 0\r\n"
            b"+OK 0 messages (0 octets)\r\n.\r\n"
            b"+OK unique-id listing follows\r\n.\r\n"
            b"-ERR no such message\r\n",
        )

    def test_malformedArgumentsKeepSession(self) -> None:
        """
        Each malformed argument gets C{-ERR} and the session goes on.
        """
        connection = loggedIn(1)
        bad = [b"RETR", b"RETR 0", b"RETR -1", b"RETR x", b"RETR 99999999999999999999", b"DELE 1 2"]
        result = answers(connection, b"".join(line + b"\r\n" for line in bad) + b"LIST 1\r\n")
        replies = result.split(b"\r\n")[:-1]
        self.assertEqual(len(replies), len(bad) + 1)
        for reply in replies[:-1]:
            self.assertTrue(reply.startswith(b"-ERR "))
        self.assertEqual(replies[-1], b"+OK 1 1")
        self.assertEqual(answers(connection, b"LIST 1\r\n"), b"+OK 1 1\r\n")
        self.assertEqual(List(1), List(1))


class OutcomeTests(SynchronousTestCase):
    """
    L{ServerConnection.send} takes only outcomes that fit the state, keeps answers in
    order, and takes anything once the session is closed.
    """

    def test_outOfState(self) -> None:
        """
        An outcome that does not fit the state is a L{LocalProtocolError}; nothing
        changes.
        """
        connection = greeted()
        self.assertRaises(LocalProtocolError, connection.send, BodyFollows())
        self.assertRaises(LocalProtocolError, connection.send, Greeting())
        self.assertRaises(LocalProtocolError, loggedIn().send, Evicted())
        self.assertIs(connection.state, State.AUTHORIZATION)

    def test_queuedAnswersFirst(self) -> None:
        """
        Answers the adapter has not collected with L{ServerConnection.dataToSend} come
        before the outcome's reply.
        """
        connection = greeted()
        connection.receiveData(b"NOOP\r\nUSER a\r\nPASS b\r\n")
        self.assertEqual(connection.nextEvent(), PasswordLogin("a", b"b"))
        self.assertEqual(
            connection.send(LoginRefused(TemporaryFailure("down"))),
            b"-ERR command not valid in this state\r\n+OK send PASS\r\n-ERR [SYS/TEMP] down\r\n",
        )
        self.assertEqual(connection.dataToSend(), b"")

    def test_evicted(self) -> None:
        """
        A session not logged in yet can be closed with C{-ERR [SYS/TEMP]}.
        """
        connection = greeted()
        self.assertEqual(
            connection.send(Evicted()),
            b"-ERR [SYS/TEMP] too many connections waiting to log in, try again later\r\n",
        )
        self.assertIs(connection.state, State.CLOSED)

    def test_connectionLost(self) -> None:
        """
        Once the connection is lost nothing received is processed, and outcomes still
        coming (a login that finishes late) are taken and give nothing to send.
        """
        connection = greeted()
        events(connection, b"USER a\r\nPASS b\r\n")
        connection.receiveData(b"STAT\r\n")
        connection.connectionLost()
        self.assertIs(connection.state, State.CLOSED)
        self.assertEqual(connection.send(LoginAccepted(MaildropView([]))), b"")
        self.assertEqual(events(connection, b"NOOP\r\n"), [])


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
        response = answers(loggedIn(), b"CAPA\r\n")
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
    The legality table derives from the transitions and matches RFC 1939.
    """

    def test_updateAcceptsNothing(self) -> None:
        """
        No command is processed in UPDATE, nor in any state but AUTHORIZATION and
        TRANSACTION.
        """
        self.assertEqual(LEGAL_COMMANDS[State.UPDATE], frozenset())
        for state in State:
            if state not in (State.AUTHORIZATION, State.TRANSACTION):
                self.assertEqual(LEGAL_COMMANDS[state], frozenset(), state)

    def test_userOnlyBeforeLogin(self) -> None:
        """
        USER and PASS belong to AUTHORIZATION only; RETR to TRANSACTION only.
        """
        self.assertIn(User, LEGAL_COMMANDS[State.AUTHORIZATION])
        self.assertNotIn(User, LEGAL_COMMANDS[State.TRANSACTION])
        self.assertIn(Retr, LEGAL_COMMANDS[State.TRANSACTION])
        self.assertNotIn(Retr, LEGAL_COMMANDS[State.AUTHORIZATION])
        self.assertTrue(isLegal(State.TRANSACTION, Retr(1)))
        self.assertFalse(isLegal(State.SASL_RESPONSE, Retr(1)))

    def test_derivedFromTransitions(self) -> None:
        """
        A command is legal in a state exactly when the transition table has an entry
        for it there.
        """
        for (state, kind), target in TRANSITIONS.items():
            self.assertIsInstance(target, State)
            if issubclass(kind, Command):
                self.assertIn(kind, LEGAL_COMMANDS[state])

    def test_everyStateReachable(self) -> None:
        """
        Every state but the first is entered by some transition, and every state but
        CLOSED is left by one.
        """
        entered = set(TRANSITIONS.values())
        left = {state for state, _ in TRANSITIONS}
        self.assertEqual(entered, set(State) - {State.GREETING})
        self.assertEqual(left, set(State) - {State.CLOSED})


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
