"""
The client side of a POP3 session without I/O: command lines out, response events in.

L{ClientConnection} formats command lines (refusing any that RFC 2449 does not allow on the
wire) and turns the server's octets, fed in chunks of any size, into L{StatusLine},
L{Continuation}, L{BodyData} and L{EndOfBody} events.  It knows, for every command it
formatted, which answer to expect (one line, a multi-line response, SASL challenges), so
it frames pipelined responses in order without help.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from pop3kit.core._commands import formatCommand
from pop3kit.core._dotstuff import MultilineDecoder
from pop3kit.core._errors import LocalProtocolError, ServerProtocolError
from pop3kit.core._replies import Continuation, ResponseKind, StatusLine, parseStatusLine
from pop3kit.core._responses import MAX_RESPONSE_LINE

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


class ClientConnection:
    """
    One POP3 session as seen by the client: what it sent, and what came back.

    The first response expected is the greeting.  Each L{sendCommand} formats a line and
    records the kind of answer it will get; the I/O adapter writes the returned octets,
    feeds received octets to L{receiveData} and takes events from L{nextEvent}.  Events
    for pipelined commands come strictly in the order the commands were sent; an answer
    is finished by a L{StatusLine} (single-line answers, C{-ERR}, the end of a SASL
    exchange) or an L{EndOfBody}.

    @ivar maxLineLength: The longest status or challenge line accepted, CRLF included.
    @ivar discardedBeforeTLS: How many octets that followed the C{+OK} to STLS were
        thrown away (they were sent in the clear, before the handshake).
    """

    def __init__(self, maxLineLength: int = MAX_CLIENT_RESPONSE_LINE) -> None:
        self.maxLineLength = maxLineLength
        self.discardedBeforeTLS = 0
        self._buffer = b""
        self._expected: deque[ResponseKind] = deque([ResponseKind.SINGLE])
        self._decoder: MultilineDecoder | None = None

    @property
    def outstanding(self) -> int:
        """
        How many answers (the greeting included) have not been completely received.
        """
        return len(self._expected)

    def sendCommand(
        self, keyword: bytes, *arguments: bytes, kind: ResponseKind = ResponseKind.SINGLE
    ) -> bytes:
        """
        Format a command line (see L{formatCommand}) and expect an answer of C{kind}.

        @return: The octets to send.
        """
        line = formatCommand(keyword, *arguments)
        self.expect(kind)
        return line

    def expect(self, kind: ResponseKind) -> None:
        """
        Expect one more answer of C{kind}, for a command line the caller formatted
        itself (with L{formatCommand}) and is sending now.
        """
        self._expected.append(kind)

    def sendSASLResponse(self, payload: bytes) -> bytes:
        """
        Format a line answering a SASL challenge: base64 text (or C{*} to cancel), CRLF.
        Such lines may be longer than 255 octets (RFC 5034 section 4).
        """
        if _FORBIDDEN_IN_ARGUMENT.search(payload):
            raise LocalProtocolError("a SASL response line holds no CR, LF or NUL")
        return payload + b"\r\n"

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
        if line.endswith(b"\r"):
            line = line[:-1]
        if not self._expected:
            raise ServerProtocolError(f"unexpected data from the server: {line[:40]!r}")
        kind = self._expected[0]
        if kind is ResponseKind.SASL and line[:1] == b"+" and line[:3].upper() != b"+OK":
            if line[1:2] not in (b"", b" "):
                raise ServerProtocolError(f"malformed SASL challenge {line[:40]!r}")
            return Continuation(line[2:].strip())
        status = parseStatusLine(line)
        if status.ok and kind is ResponseKind.MULTILINE:
            self._decoder = MultilineDecoder()
            return status
        self._expected.popleft()
        if status.ok and kind is ResponseKind.STLS:
            # Whatever follows the +OK was sent in the clear before the handshake: it
            # must never be taken for a response inside the TLS session.
            self.discardedBeforeTLS += len(self._buffer)
            self._buffer = b""
        return status

    def _nextBodyEvent(self, decoder: MultilineDecoder) -> ClientEvent | None:
        if decoder.done:
            self._decoder = None
            self._expected.popleft()
            self._buffer = decoder.remainder + self._buffer
            return EndOfBody()
        if not self._buffer:
            return None
        data, self._buffer = self._buffer, b""
        out = decoder.feed(data)
        if out:
            return BodyData(out)
        return self._nextBodyEvent(decoder)
