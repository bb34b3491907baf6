"""
The client side of a POP3 session without I/O: commands out, response events in.

L{ClientConnection} is the client's half of the vocabulary L{ServerConnection
<pop3kit.core.ServerConnection>} speaks: L{ClientConnection.send} takes a L{Command}
value, formats it with L{Command.toLine} and advances the session's state, as h11's
C{Connection.send} does; L{ClientConnection.nextEvent} turns the server's octets, fed in
chunks of any size, into L{StatusLine}, L{Continuation}, L{BodyData} and L{EndOfBody}
events.  It knows, for every command sent,
which answer to expect (L{Command.responseKind}), so it frames pipelined responses in order
without help, and it knows what each answer does to the session:

    - nothing may be sent before the greeting; after a C{-ERR} greeting, nothing at all;
    - after C{STLS} or C{AUTH} nothing may be sent until the answer (during C{AUTH}, only
      SASL responses, with L{ClientConnection.sendSASLResponse}); after C{+OK} to
      C{STLS}, octets already received are discarded and nothing may be sent or received
      until L{ClientConnection.startedTLS};
    - a C{+OK} to C{PASS}, C{APOP} or C{AUTH} enters TRANSACTION, where the login
      commands are refused (L{pop3kit.core.LEGAL_COMMANDS}, the table the server uses);
    - after C{QUIT} nothing more may be sent; its C{+OK} in TRANSACTION enters UPDATE.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from enum import Enum

from pop3kit.core._commands import Apop, Command, Pass, Quit, Stls
from pop3kit.core._dotstuff import MultilineDecoder
from pop3kit.core._errors import LocalProtocolError, ServerProtocolError
from pop3kit.core._replies import Continuation, ResponseKind, StatusLine, parseStatusLine
from pop3kit.core._responses import MAX_RESPONSE_LINE
from pop3kit.core._states import State, isLegal

#: The longest status or continuation line the client accepts, CRLF included: twice the
#: RFC 2449 limit, to tolerate servers that overstep it a little.
MAX_CLIENT_RESPONSE_LINE = 2 * MAX_RESPONSE_LINE

_FORBIDDEN_IN_ARGUMENT = re.compile(rb"[\x00\r\n]")


@dataclass(frozen=True, slots=True)
class BodyData:
    """
    Octets of a multi-line response body: un-stuffed, CRLF line ends kept.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfBody:
    """
    The terminating C{.} of a multi-line response was received.
    """


ClientEvent = StatusLine | Continuation | BodyData | EndOfBody


class _Phase(Enum):
    """
    What the client may send now.

    @cvar GREETING: Nothing: the greeting has not arrived.
    @cvar OPEN: Commands.
    @cvar EXCHANGE: Only SASL responses: C{STLS} or C{AUTH} waits for its answer.
    @cvar HANDSHAKE: Nothing, and nothing may arrive: C{STLS} was accepted and the TLS
        handshake is under way.
    @cvar ENDED: Nothing: C{QUIT} was sent, or the server refused the session.
    """

    GREETING = "greeting"
    OPEN = "open"
    EXCHANGE = "exchange"
    HANDSHAKE = "handshake"
    ENDED = "ended"


_REFUSED = {
    _Phase.GREETING: "nothing may be sent before the greeting",
    _Phase.EXCHANGE: "nothing may be sent before the answer to STLS or AUTH",
    _Phase.HANDSHAKE: "nothing may be sent before the TLS handshake is done",
    _Phase.ENDED: "the session is over",
}

#: An answer waited for: its shape, and the command it answers (L{None}: the greeting).
_Pending = tuple[ResponseKind, Command | None]


class ClientConnection:
    """
    One POP3 session as seen by the client: what it sent, and what came back.

    The I/O adapter writes the octets L{send} returns, feeds received octets to
    L{receiveData} and takes events from L{nextEvent}.  Events for pipelined commands come
    strictly in the order the commands were sent; an answer is finished by a L{StatusLine}
    (single-line answers, C{-ERR}, the end of a SASL exchange) or an L{EndOfBody}.

    @ivar maxLineLength: The longest status or challenge line accepted, CRLF included.
    @ivar discardedBeforeTLS: How many octets that followed the C{+OK} to STLS were
        thrown away (they were sent in the clear, before the handshake).
    @ivar state: The session's state as the answers received so far make it:
        AUTHORIZATION, TRANSACTION after a successful login, UPDATE after a C{+OK} to
        C{QUIT} in TRANSACTION.
    """

    def __init__(self, maxLineLength: int = MAX_CLIENT_RESPONSE_LINE) -> None:
        self.maxLineLength = maxLineLength
        self.discardedBeforeTLS = 0
        self.state = State.AUTHORIZATION
        self._phase = _Phase.GREETING
        self._buffer = b""
        self._pending: deque[_Pending] = deque([(ResponseKind.SINGLE, None)])
        self._decoder: MultilineDecoder | None = None

    @property
    def outstanding(self) -> int:
        """
        How many answers (the greeting included) have not been completely received.
        """
        return len(self._pending)

    @property
    def canSend(self) -> bool:
        """
        Whether L{send} takes a command now: the greeting has arrived, no C{STLS} or
        C{AUTH} waits for its answer, no TLS handshake is under way, C{QUIT} was not sent.
        """
        return self._phase is _Phase.OPEN

    @property
    def awaitingTLS(self) -> bool:
        """
        Whether the server accepted C{STLS} and the TLS handshake is not done yet (see
        L{startedTLS}).
        """
        return self._phase is _Phase.HANDSHAKE

    def send(self, command: Command) -> bytes:
        """
        Format C{command}, expect its answer (L{Command.responseKind}) and advance the
        state: after C{STLS} and C{AUTH} nothing more may be sent until their answer,
        after C{QUIT} nothing at all.

        @return: The octets to send.
        @raise LocalProtocolError: (a L{ValueError}) when nothing may be sent now (see
            L{canSend}), or C{command} is not allowed in TRANSACTION.
        @raise CommandTooLong: when the line would exceed 255 octets.
        """
        if self._phase is not _Phase.OPEN:
            raise LocalProtocolError(_REFUSED[self._phase])
        if self.state is State.TRANSACTION and not isLegal(State.TRANSACTION, command):
            raise LocalProtocolError(f"{command.keyword} is not allowed after login")
        line = command.toLine()
        kind = command.responseKind
        self._pending.append((kind, command))
        if isinstance(command, Quit):
            self._phase = _Phase.ENDED
        elif kind is ResponseKind.SASL or kind is ResponseKind.STLS:
            self._phase = _Phase.EXCHANGE
        return line

    def sendSASLResponse(self, payload: bytes) -> bytes:
        """
        Format a line answering a SASL challenge: base64 text (or C{*} to cancel), CRLF.
        Such lines may be longer than 255 octets (RFC 5034 section 4).

        @raise LocalProtocolError: when no C{AUTH} exchange is under way, or C{payload}
            holds CR, LF or NUL.
        """
        if not self._pending or self._pending[0][0] is not ResponseKind.SASL:
            raise LocalProtocolError("no SASL exchange is under way")
        if _FORBIDDEN_IN_ARGUMENT.search(payload):
            raise LocalProtocolError("a SASL response line holds no CR, LF or NUL")
        return payload + b"\r\n"

    def startedTLS(self) -> None:
        """
        The TLS handshake that followed the C{+OK} to C{STLS} is done: commands may be
        sent again.

        @raise LocalProtocolError: when no handshake was under way.
        """
        if self._phase is not _Phase.HANDSHAKE:
            raise LocalProtocolError("the server has not accepted STLS")
        self._phase = _Phase.OPEN

    def receiveData(self, data: bytes) -> None:
        """
        Feed received octets; events wait for L{nextEvent}.
        """
        self._buffer += data

    def receiveBody(self, data: bytes) -> bytes | None:
        """
        A shortcut for the bulk of a multi-line answer: while a body is being received
        and nothing else is buffered, un-stuff C{data} at once and return the message
        octets, instead of queueing a L{BodyData} event.  L{None} when the shortcut does
        not apply (feed C{data} to L{receiveData} then).  Once L{bodyComplete} is true,
        L{nextEvent} gives the L{EndOfBody} and what follows.
        """
        decoder = self._decoder
        if decoder is None or self._buffer or decoder.done:
            return None
        return decoder.feed(data)

    @property
    def bodyComplete(self) -> bool:
        """
        The body being received has ended; its L{EndOfBody} waits for L{nextEvent}.
        """
        return self._decoder is not None and self._decoder.done

    def nextEvent(self) -> ClientEvent | None:
        """
        The next event from the received octets, or L{None} when more are needed.

        @raise ServerProtocolError: when the server sent something that is not a POP3
            response, a line over L{maxLineLength}, or anything at all when no answer was
            expected.
        """
        if self._decoder is not None:
            return self._nextBodyEvent(self._decoder)
        line = self._nextLine()
        if line is None:
            return None
        if not self._pending:
            raise ServerProtocolError(f"unexpected data from the server: {line[:40]!r}")
        kind, command = self._pending[0]
        if kind is ResponseKind.SASL and line[:1] == b"+" and line[:3].upper() != b"+OK":
            if line[1:2] not in (b"", b" "):
                raise ServerProtocolError(f"malformed SASL challenge {line[:40]!r}")
            return Continuation(line[2:].strip())
        status = parseStatusLine(line)
        if status.ok and kind is ResponseKind.MULTILINE:
            self._decoder = MultilineDecoder()
            return status
        self._pending.popleft()
        self._answered(command, status)
        return status

    def _nextLine(self) -> bytes | None:
        """
        The next status or challenge line, without its line end, or L{None}.
        """
        if not self._buffer:
            return None
        end = self._buffer.find(b"\n")
        if end == -1:
            if len(self._buffer) >= self.maxLineLength:
                raise ServerProtocolError(f"response line longer than {self.maxLineLength} octets")
            return None
        if end + 1 > self.maxLineLength:
            raise ServerProtocolError(f"response line longer than {self.maxLineLength} octets")
        line = self._buffer[:end]
        self._buffer = self._buffer[end + 1 :]
        return line[:-1] if line.endswith(b"\r") else line

    def _answered(self, command: Command | None, status: StatusLine) -> None:
        """
        Advance the state after the single-line answer to C{command} (L{None}: the
        greeting).
        """
        if command is None:
            self._phase = _Phase.OPEN if status.ok else _Phase.ENDED
        elif isinstance(command, Stls):
            self._phase = _Phase.HANDSHAKE if status.ok else _Phase.OPEN
            if status.ok:
                # Whatever follows the +OK was sent in the clear before the handshake: it
                # must never be taken for a response inside the TLS session.
                self.discardedBeforeTLS += len(self._buffer)
                self._buffer = b""
        elif command.responseKind is ResponseKind.SASL:
            self._phase = _Phase.OPEN
            if status.ok:
                self.state = State.TRANSACTION
        elif isinstance(command, Pass | Apop) and status.ok:
            self.state = State.TRANSACTION
        elif isinstance(command, Quit) and status.ok and self.state is State.TRANSACTION:
            self.state = State.UPDATE

    def _nextBodyEvent(self, decoder: MultilineDecoder) -> ClientEvent | None:
        if decoder.done:
            self._decoder = None
            self._pending.popleft()
            self._buffer = decoder.remainder + self._buffer
            return EndOfBody()
        if not self._buffer:
            return None
        data, self._buffer = self._buffer, b""
        out = decoder.feed(data)
        if out:
            return BodyData(out)
        return self._nextBodyEvent(decoder)
