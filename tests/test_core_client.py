"""
Tests for the client side of the sans-IO core, L{pop3kit.core.ClientConnection} and its
helpers: framing of pipelined answers, un-stuffing across chunks, status lines and
response codes, command formatting and its limits, the state C{send} advances, SASL
challenges and STLS.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.core import (
    Apop,
    Auth,
    BodyData,
    Capa,
    ClientConnection,
    ClientEvent,
    CommandTooLong,
    Continuation,
    EndOfBody,
    List,
    LocalProtocolError,
    Noop,
    Pass,
    Quit,
    ResponseCode,
    Retr,
    ServerProtocolError,
    Stat,
    State,
    StatusLine,
    Stls,
    Top,
    Uidl,
    User,
    Utf8,
)
from pop3kit.core._commands import formatCommand
from pop3kit.core._dotstuff import encodeMessage
from pop3kit.core._replies import apopTimestamp, parseStatusLine, responseCodeFor
from tests._oracle import crlfForm

#: A message whose lines start with dots in every way that needs byte-stuffing.
DOTS = b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n. \r\nend\r\n"


def drain(connection: ClientConnection) -> list[ClientEvent]:
    """
    Take every event the connection has ready, joining consecutive body chunks.
    """
    events: list[ClientEvent] = []
    while (event := connection.nextEvent()) is not None:
        if isinstance(event, BodyData) and events and isinstance(events[-1], BodyData):
            events[-1] = BodyData(events[-1].data + event.data)
        else:
            events.append(event)
    return events


def greeted() -> ClientConnection:
    """
    A connection that has received its greeting.
    """
    connection = ClientConnection()
    connection.receiveData(b"+OK ready\r\n")
    assert drain(connection) == [StatusLine(True, b"ready")]
    return connection


class StatusLineTests(SynchronousTestCase):
    """
    L{parseStatusLine} and L{responseCodeFor}.
    """

    def test_plain(self) -> None:
        """
        The indicator and text are split at the first space.
        """
        self.assertEqual(parseStatusLine(b"+OK 2 320"), StatusLine(True, b"2 320"))
        self.assertEqual(
            parseStatusLine(b"-ERR no such message"), StatusLine(False, b"no such message")
        )

    def test_tolerant(self) -> None:
        """
        A missing space, no text at all, and lower case indicators are all accepted.
        """
        self.assertEqual(parseStatusLine(b"+OK"), StatusLine(True, b""))
        self.assertEqual(parseStatusLine(b"+OK2 320"), StatusLine(True, b"2 320"))
        self.assertEqual(parseStatusLine(b"-err nope"), StatusLine(False, b"nope"))

    def test_responseCode(self) -> None:
        """
        A bracketed response code after the indicator is split off the text.
        """
        status = parseStatusLine(b"-ERR [IN-USE] maildrop locked")
        self.assertEqual(status, StatusLine(False, b"maildrop locked", "IN-USE"))
        self.assertIs(status.responseCode, ResponseCode.IN_USE)

    def test_hierarchicalCode(self) -> None:
        """
        An unknown code maps to its longest known ancestor; one with no known ancestor to
        L{None}.
        """
        self.assertIs(responseCodeFor("SYS/TEMP/DISK-FULL"), ResponseCode.SYS_TEMP)
        self.assertIs(responseCodeFor("auth/expired"), ResponseCode.AUTH)
        self.assertIsNone(responseCodeFor("X-SOMETHING"))
        self.assertIsNone(responseCodeFor(None))

    def test_bracketNotACode(self) -> None:
        """
        A bracket without a well-formed code stays part of the text.
        """
        self.assertEqual(parseStatusLine(b"-ERR [oops"), StatusLine(False, b"[oops"))

    def test_garbage(self) -> None:
        """
        A line with neither indicator is a protocol error.
        """
        self.assertRaises(ServerProtocolError, parseStatusLine, b"HTTP/1.1 400 Bad Request")

    def test_apopTimestamp(self) -> None:
        """
        The timestamp is found anywhere in the greeting, brackets included.
        """
        self.assertEqual(
            apopTimestamp(b"POP3 server ready <1896.697170952@dbc.mtview.ca.us>"),
            b"<1896.697170952@dbc.mtview.ca.us>",
        )
        self.assertIsNone(apopTimestamp(b"POP3 server ready"))
        self.assertIsNone(apopTimestamp(b"ready <no-at-sign>"))


class FormatCommandTests(SynchronousTestCase):
    """
    L{formatCommand} builds only lines a server must accept.
    """

    def test_format(self) -> None:
        """
        Keyword and arguments are joined by single spaces and end in CRLF.
        """
        self.assertEqual(formatCommand(b"TOP", b"1", b"10"), b"TOP 1 10\r\n")
        self.assertEqual(formatCommand(b"STAT"), b"STAT\r\n")

    def test_limit(self) -> None:
        """
        A line of 255 octets (CRLF included) is allowed; one octet more is not.
        """
        self.assertEqual(len(formatCommand(b"USER", b"a" * 248)), 255)
        self.assertRaises(CommandTooLong, formatCommand, b"USER", b"a" * 249)

    def test_noLineBreaks(self) -> None:
        """
        Arguments holding CR, LF or NUL, or empty ones, are refused: no command smuggling.
        """
        for argument in (b"a\r\nDELE 1", b"a\nb", b"a\0", b""):
            self.assertRaises(ValueError, formatCommand, b"USER", argument)

    def test_badKeyword(self) -> None:
        """
        A keyword must be 3 or 4 letters, digits or hyphens.
        """
        for keyword in (b"RETRIEVE", b"NO", b"RE T"):
            self.assertRaises(ValueError, formatCommand, keyword)


class FramingTests(SynchronousTestCase):
    """
    L{ClientConnection} frames answers in the order commands were sent.
    """

    def test_greetingFirst(self) -> None:
        """
        The first line is the greeting; nothing is outstanding after it.
        """
        connection = ClientConnection()
        self.assertEqual(connection.outstanding, 1)
        connection.receiveData(b"+OK hello\r\n")
        self.assertEqual(drain(connection), [StatusLine(True, b"hello")])
        self.assertEqual(connection.outstanding, 0)

    def test_partialLineWaits(self) -> None:
        """
        No event comes from a line until its LF arrives.
        """
        connection = ClientConnection()
        connection.receiveData(b"+OK hel")
        self.assertIsNone(connection.nextEvent())
        connection.receiveData(b"lo\r\n")
        self.assertEqual(drain(connection), [StatusLine(True, b"hello")])

    def test_pipelinedMix(self) -> None:
        """
        Single-line, multi-line and failed multi-line answers in one chunk are framed by
        the kinds the commands expect.
        """
        connection = greeted()
        self.assertEqual(connection.send(Stat()), b"STAT\r\n")
        connection.send(List())
        connection.send(Retr(9))
        connection.send(Noop())
        connection.receiveData(
            b"+OK 2 30\r\n+OK\r\n1 10\r\n2 20\r\n.\r\n-ERR no such message\r\n+OK\r\n"
        )
        self.assertEqual(
            drain(connection),
            [
                StatusLine(True, b"2 30"),
                StatusLine(True, b""),
                BodyData(b"1 10\r\n2 20\r\n"),
                EndOfBody(),
                StatusLine(False, b"no such message"),
                StatusLine(True, b""),
            ],
        )
        self.assertEqual(connection.outstanding, 0)

    def test_unstuffing(self) -> None:
        """
        A multi-line body is un-stuffed and ends at the lone dot.
        """
        connection = greeted()
        connection.send(Retr(1))
        connection.receiveData(b"+OK\r\n" + encodeMessage(DOTS))
        self.assertEqual(drain(connection), [StatusLine(True, b""), BodyData(DOTS), EndOfBody()])

    def test_everySplit(self) -> None:
        """
        Whatever single point the answers are split at, the events are the same.
        """
        wire = b"+OK\r\n" + encodeMessage(DOTS) + b"+OK 1 2\r\n"
        expected = [StatusLine(True, b""), BodyData(DOTS), EndOfBody(), StatusLine(True, b"1 2")]
        for split in range(len(wire) + 1):
            connection = greeted()
            connection.send(Retr(1))
            connection.send(Stat())
            connection.receiveData(wire[:split])
            events = drain(connection)
            connection.receiveData(wire[split:])
            events += drain(connection)
            self.assertEqual(_joinBodies(events), expected, f"split at {split}")

    @given(st.binary(max_size=300), st.lists(st.integers(1, 20), max_size=40))
    def test_anyMessageAnyChunking(self, message: bytes, sizes: list[int]) -> None:
        """
        Any message, sent as a server sends it and received in chunks of any sizes,
        comes out in its canonical form.
        """
        wire = b"+OK\r\n" + encodeMessage(message) + b"+OK\r\n"
        connection = greeted()
        connection.send(Retr(1))
        connection.send(Noop())
        events: list[ClientEvent] = []
        position = 0
        for size in [*sizes, len(wire)]:
            connection.receiveData(wire[position : position + size])
            position += size
            events += drain(connection)
        body = crlfForm(message)
        expected: list[ClientEvent] = [StatusLine(True, b"")]
        if body:
            expected.append(BodyData(body))
        expected += [EndOfBody(), StatusLine(True, b"")]
        self.assertEqual(_joinBodies(events), expected)

    @given(st.binary(max_size=300), st.lists(st.integers(1, 20), max_size=40))
    def test_bodyShortcut(self, message: bytes, sizes: list[int]) -> None:
        """
        Chunks given to L{ClientConnection.receiveBody} while a body is under way come
        out as the same message octets, then the same events, as through
        L{ClientConnection.receiveData}.
        """
        wire = b"+OK\r\n" + encodeMessage(message) + b"+OK\r\n"
        connection = greeted()
        connection.send(Retr(1))
        connection.send(Noop())
        events: list[ClientEvent] = []
        position = 0
        for size in [*sizes, len(wire)]:
            chunk = wire[position : position + size]
            position += size
            body = connection.receiveBody(chunk)
            if body is None:
                connection.receiveData(chunk)
            elif body:
                events.append(BodyData(body))
            if body is None or connection.bodyComplete:
                events += drain(connection)
        expected: list[ClientEvent] = [StatusLine(True, b"")]
        if crlfForm(message):
            expected.append(BodyData(crlfForm(message)))
        expected += [EndOfBody(), StatusLine(True, b"")]
        self.assertEqual(_joinBodies(events), expected)
        self.assertIsNone(connection.receiveBody(b"x"))

    def test_longStatusLine(self) -> None:
        """
        A status line over the limit is a protocol error, even before its LF arrives.
        """
        connection = ClientConnection(maxLineLength=100)
        connection.receiveData(b"+OK " + b"x" * 100)
        self.assertRaises(ServerProtocolError, connection.nextEvent)
        connection = ClientConnection(maxLineLength=100)
        connection.receiveData(b"+OK " + b"x" * 100 + b"\r\n")
        self.assertRaises(ServerProtocolError, connection.nextEvent)

    def test_longBodyLinesAllowed(self) -> None:
        """
        Body lines are streamed, so they are not limited by the status line limit.
        """
        connection = ClientConnection(maxLineLength=100)
        connection.receiveData(b"+OK\r\n")
        drain(connection)
        connection.send(Retr(1))
        body = b"x" * 5000 + b"\r\n"
        connection.receiveData(b"+OK\r\n" + body + b".\r\n")
        self.assertEqual(drain(connection), [StatusLine(True, b""), BodyData(body), EndOfBody()])

    def test_unexpectedData(self) -> None:
        """
        A line when no answer is expected is a protocol error.
        """
        connection = greeted()
        connection.receiveData(b"+OK surprise\r\n")
        self.assertRaises(ServerProtocolError, connection.nextEvent)

    def test_notAStatusLine(self) -> None:
        """
        An answer that starts with neither indicator is a protocol error.
        """
        connection = greeted()
        connection.send(Noop())
        connection.receiveData(b"* OK IMAP4 ready\r\n")
        self.assertRaises(ServerProtocolError, connection.nextEvent)


class SASLTests(SynchronousTestCase):
    """
    Continuation lines during AUTH.
    """

    def test_challenges(self) -> None:
        """
        C{+ base64} and a bare C{+} are challenges until the status line ends the
        exchange.
        """
        connection = greeted()
        connection.send(Auth("CRAM-MD5"))
        connection.receiveData(b"+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2U+\r\n+\r\n+OK\r\n")
        self.assertEqual(
            drain(connection),
            [
                Continuation(b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2U+"),
                Continuation(b""),
                StatusLine(True, b""),
            ],
        )
        self.assertEqual(connection.outstanding, 0)

    def test_challengeOnlyDuringSASL(self) -> None:
        """
        A continuation line in answer to another command is a protocol error.
        """
        connection = greeted()
        connection.send(Noop())
        connection.receiveData(b"+ abc\r\n")
        self.assertRaises(ServerProtocolError, connection.nextEvent)

    def test_responseLine(self) -> None:
        """
        SASL responses may exceed 255 octets but may not hold line breaks.
        """
        connection = greeted()
        connection.send(Auth("PLAIN"))
        connection.receiveData(b"+ \r\n")
        self.assertEqual(drain(connection), [Continuation(b"")])
        self.assertEqual(connection.sendSASLResponse(b"A" * 400), b"A" * 400 + b"\r\n")
        self.assertRaises(ValueError, connection.sendSASLResponse, b"a\r\nb")

    def test_responseOnlyDuringExchange(self) -> None:
        """
        A SASL response line without an C{AUTH} exchange under way is refused.
        """
        connection = greeted()
        self.assertRaises(LocalProtocolError, connection.sendSASLResponse, b"abc")
        connection.send(Noop())
        self.assertRaises(LocalProtocolError, connection.sendSASLResponse, b"abc")

    def test_exchangeIsExclusive(self) -> None:
        """
        Nothing but SASL responses may be sent until the answer ends the exchange; a
        C{+OK} enters TRANSACTION, a C{-ERR} leaves the session in AUTHORIZATION.
        """
        for answer, state in [
            (b"+OK\r\n", State.TRANSACTION),
            (b"-ERR no\r\n", State.AUTHORIZATION),
        ]:
            connection = greeted()
            connection.send(Auth("PLAIN", b"\0alice\0secret"))
            self.assertFalse(connection.canSend)
            self.assertRaises(LocalProtocolError, connection.send, Noop())
            connection.receiveData(answer)
            drain(connection)
            self.assertTrue(connection.canSend)
            self.assertIs(connection.state, state)


class STLSTests(SynchronousTestCase):
    """
    Octets after the C{+OK} to STLS are never taken as answers.
    """

    def test_discardAfterOK(self) -> None:
        """
        Everything buffered after the C{+OK} is thrown away and counted.
        """
        connection = greeted()
        connection.send(Stls())
        connection.receiveData(b"+OK begin TLS\r\n+OK injected\r\n")
        self.assertEqual(drain(connection), [StatusLine(True, b"begin TLS")])
        self.assertEqual(connection.discardedBeforeTLS, len(b"+OK injected\r\n"))
        self.assertEqual(connection.outstanding, 0)

    def test_refusal(self) -> None:
        """
        After C{-ERR} to STLS the session goes on in the clear as before.
        """
        connection = greeted()
        connection.send(Stls())
        self.assertRaises(LocalProtocolError, connection.send, Noop())
        connection.receiveData(b"-ERR not now\r\n")
        self.assertEqual(drain(connection), [StatusLine(False, b"not now")])
        self.assertTrue(connection.canSend)
        connection.send(Noop())
        connection.receiveData(b"+OK\r\n")
        self.assertEqual(drain(connection), [StatusLine(True, b"")])
        self.assertEqual(connection.discardedBeforeTLS, 0)

    def test_handshake(self) -> None:
        """
        After C{+OK} to STLS nothing may be sent, and nothing may arrive, until
        L{ClientConnection.startedTLS}.
        """
        connection = greeted()
        connection.send(Stls())
        connection.receiveData(b"+OK begin TLS\r\n")
        drain(connection)
        self.assertTrue(connection.awaitingTLS)
        self.assertRaises(LocalProtocolError, connection.send, Capa())
        connection.receiveData(b"+OK too early\r\n")
        self.assertRaises(ServerProtocolError, connection.nextEvent)
        connection = greeted()
        self.assertRaises(LocalProtocolError, connection.startedTLS)
        connection.send(Stls())
        connection.receiveData(b"+OK\r\n")
        drain(connection)
        connection.startedTLS()
        self.assertFalse(connection.awaitingTLS)
        self.assertEqual(connection.send(Capa()), b"CAPA\r\n")


class StateTests(SynchronousTestCase):
    """
    L{ClientConnection.send} formats commands and advances the session's state.
    """

    def test_greetingFirst(self) -> None:
        """
        Nothing may be sent before the greeting, and nothing at all after a C{-ERR} one.
        """
        connection = ClientConnection()
        self.assertFalse(connection.canSend)
        self.assertRaises(LocalProtocolError, connection.send, Capa())
        connection.receiveData(b"-ERR [SYS/TEMP] go away\r\n")
        drain(connection)
        self.assertRaises(LocalProtocolError, connection.send, Capa())

    def test_commandsFormatThemselves(self) -> None:
        """
        The line sent is the command's own, and its answer is framed by its kind.
        """
        connection = greeted()
        self.assertEqual(connection.send(Top(1, 0)), b"TOP 1 0\r\n")
        self.assertEqual(connection.send(Uidl(2)), b"UIDL 2\r\n")
        self.assertEqual(connection.outstanding, 2)
        connection.receiveData(b"+OK\r\nSubject: x\r\n\r\n.\r\n+OK 2 abc\r\n")
        self.assertEqual(
            drain(connection),
            [
                StatusLine(True, b""),
                BodyData(b"Subject: x\r\n\r\n"),
                EndOfBody(),
                StatusLine(True, b"2 abc"),
            ],
        )

    def test_tooLong(self) -> None:
        """
        A command whose line would exceed 255 octets is refused and not expected.
        """
        connection = greeted()
        self.assertRaises(CommandTooLong, connection.send, User("a" * 300))
        self.assertEqual(connection.outstanding, 0)

    def test_loginEntersTransaction(self) -> None:
        """
        A C{+OK} to PASS or APOP enters TRANSACTION, where the login commands, STLS and
        UTF8 are refused (the legality table the server uses); a C{-ERR} does not.
        """
        connection = greeted()
        connection.send(User("alice"))
        connection.send(Pass(b"wrong"))
        connection.receiveData(b"+OK\r\n-ERR [AUTH] no\r\n")
        drain(connection)
        self.assertIs(connection.state, State.AUTHORIZATION)
        connection.send(Apop("alice", b"c4c9334bac560ecc979e58001b3e22fb"))
        connection.receiveData(b"+OK\r\n")
        drain(connection)
        self.assertIs(connection.state, State.TRANSACTION)
        for command in (User("bob"), Pass(b"x"), Auth("PLAIN"), Stls(), Utf8()):
            self.assertRaises(LocalProtocolError, connection.send, command)
        self.assertEqual(connection.send(Stat()), b"STAT\r\n")

    def test_quit(self) -> None:
        """
        Nothing may follow QUIT; its C{+OK} in TRANSACTION enters UPDATE.
        """
        connection = greeted()
        connection.send(User("alice"))
        connection.send(Pass(b"secret"))
        connection.send(Quit())
        self.assertFalse(connection.canSend)
        self.assertRaises(LocalProtocolError, connection.send, Noop())
        connection.receiveData(b"+OK\r\n+OK\r\n+OK bye\r\n")
        self.assertEqual(len(drain(connection)), 3)
        self.assertIs(connection.state, State.UPDATE)

    def test_quitBeforeLogin(self) -> None:
        """
        QUIT in AUTHORIZATION ends the session without UPDATE.
        """
        connection = greeted()
        connection.send(Quit())
        connection.receiveData(b"+OK bye\r\n")
        drain(connection)
        self.assertIs(connection.state, State.AUTHORIZATION)
        self.assertRaises(LocalProtocolError, connection.send, Noop())


def _joinBodies(events: list[ClientEvent]) -> list[ClientEvent]:
    """
    C{events} with consecutive L{BodyData} joined into one.
    """
    out: list[ClientEvent] = []
    for event in events:
        if isinstance(event, BodyData) and out and isinstance(out[-1], BodyData):
            out[-1] = BodyData(out[-1].data + event.data)
        else:
            out.append(event)
    return out
