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
from enum import Enum

from pop3kit.core._dotstuff import MultilineDecoder
from pop3kit.core._errors import LocalProtocolError, RemoteProtocolError, ResponseCode
from pop3kit.core._framing import MAX_COMMAND_LINE
from pop3kit.core._responses import MAX_RESPONSE_LINE

#: The longest status or continuation line the client accepts, CRLF included: twice the
#: RFC 2449 limit, to tolerate servers that overstep it a little.
MAX_CLIENT_RESPONSE_LINE = 2 * MAX_RESPONSE_LINE

_RESPONSE_CODE = re.compile(rb"\[([\x21-\x5a\x5c\x5e-\x7e]+)\] ?")
_TIMESTAMP = re.compile(rb"<[^<>\s]*@[^<>\s]*>")
_KEYWORD = re.compile(rb"[A-Za-z0-9-]{3,4}")
_FORBIDDEN_IN_ARGUMENT = re.compile(rb"[\x00\r\n]")


class ServerProtocolError(RemoteProtocolError):
    """
    The L{RemoteProtocolError} a client sees: the server sent something a POP3 client
    cannot make sense of (no status indicator, a status line longer than the limit, bad
    base64 in a challenge).  The session cannot be trusted to stay in step after this:
    the client closes the connection.
    """

    defaultText = "the server broke the POP3 protocol"


class CommandTooLong(LocalProtocolError):
    """
    A command line would exceed the 255 octets (CRLF included) a POP3 server must accept
    (RFC 2449 section 4); it is never sent.
    """


class ResponseKind(Enum):
    """
    What a command's answer looks like on the wire.

    @cvar SINGLE: One status line.
    @cvar MULTILINE: A status line, and after C{+OK} a byte-stuffed body ending in C{.}.
    @cvar SASL: C{+ challenge} lines, each answered by the client, until a status line.
    @cvar STLS: One status line; after C{+OK} the TLS handshake starts, so any octets that
        arrived after it are discarded.
    """

    SINGLE = "single"
    MULTILINE = "multiline"
    SASL = "sasl"
    STLS = "stls"


@dataclass(frozen=True, slots=True)
class StatusLine:
    """
    A C{+OK} or C{-ERR} line.

    @ivar ok: C{True} for C{+OK}.
    @ivar text: The text after the indicator and after the response code, if any.
    @ivar code: The response code as sent (C{"SYS/TEMP"}), without brackets, or L{None}.
    """

    ok: bool
    text: bytes
    code: str | None = None

    @property
    def responseCode(self) -> ResponseCode | None:
        """
        The known L{ResponseCode} this line's code belongs to: the code itself or, for an
        unknown code, its longest known ancestor in the hierarchy (C{SYS/TEMP/DISK} is
        C{SYS/TEMP}); L{None} when there is no code or no known ancestor.
        """
        return responseCodeFor(self.code)


@dataclass(frozen=True, slots=True)
class Continuation:
    """
    A SASL challenge line, C{+ base64}; C{payload} is the base64 text, not yet decoded (a
    bare C{+} gives an empty payload).
    """

    payload: bytes


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


def responseCodeFor(code: str | None) -> ResponseCode | None:
    """
    Map a response code as sent to the known L{ResponseCode} it is, or descends from.
    Codes are case-insensitive; unknown codes with no known ancestor give L{None}.
    """
    if not code:
        return None
    levels = code.upper().split("/")
    for end in range(len(levels), 0, -1):
        candidate = "/".join(levels[:end])
        try:
            return ResponseCode(candidate)
        except ValueError:
            continue
    return None


def parseStatusLine(line: bytes) -> StatusLine:
    """
    Parse a status line (without its line end), tolerating a missing space after the
    indicator (RFC 1957) and any text.

    @raise ServerProtocolError: when the line starts with neither C{+OK} nor C{-ERR}.
    """
    if line[:3].upper() == b"+OK":
        ok, rest = True, line[3:]
    elif line[:4].upper() == b"-ERR":
        ok, rest = False, line[4:]
    else:
        raise ServerProtocolError(f"expected +OK or -ERR, got {line[:40]!r}")
    rest = rest[1:] if rest[:1] == b" " else rest
    code = None
    match = _RESPONSE_CODE.match(rest)
    if match is not None:
        code = match.group(1).decode("ascii")
        rest = rest[match.end() :]
    return StatusLine(ok, rest, code)


def apopTimestamp(greeting: bytes) -> bytes | None:
    """
    The APOP timestamp (C{<...@...>}, brackets included) in a greeting's text, or L{None}.
    """
    match = _TIMESTAMP.search(greeting)
    return match.group(0) if match is not None else None


def formatCommand(keyword: bytes, *arguments: bytes) -> bytes:
    """
    Format one command line: the keyword, arguments separated by single spaces, CRLF.

    @raise LocalProtocolError: (a L{ValueError}) for a keyword that is not 3-4 letters,
        digits or hyphens, or an argument that is empty or holds CR, LF or NUL.
    @raise CommandTooLong: when the line would exceed 255 octets, CRLF included.
    """
    if not _KEYWORD.fullmatch(keyword):
        raise LocalProtocolError(f"not a POP3 keyword: {keyword!r}")
    for argument in arguments:
        if not argument or _FORBIDDEN_IN_ARGUMENT.search(argument):
            raise LocalProtocolError(
                "command arguments must be non-empty and hold no CR, LF or NUL"
            )
    line = b" ".join((keyword, *arguments)) + b"\r\n"
    if len(line) > MAX_COMMAND_LINE:
        raise CommandTooLong(
            f"{keyword.decode('ascii')} command line of {len(line)} octets is over the "
            f"{MAX_COMMAND_LINE}-octet limit"
        )
    return line


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
