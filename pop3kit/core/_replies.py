"""
Replies as values, for both roles: what a server sends and a client receives.

A server builds L{Ok}, L{Err}, L{MultiLine}, L{Continuation} and L{Greeting} values and
turns them into octets with C{toBytes()}; a client parses status lines into
L{StatusLine}s and the bodies of the standard multi-line answers with the C{parse*}
functions here, so that both roles read and write one vocabulary.  L{ResponseKind} says
which shape of answer each command gets (see L{pop3kit.core.Command.responseKind}).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from pop3kit.core._errors import POP3Error, ResponseCode, ServerProtocolError
from pop3kit.core._responses import continuation, err, multiline, ok


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
class Ok:
    """
    A C{+OK} status line.

    @ivar text: The text after the indicator (and the code); control characters are
        replaced by spaces when formatted.
    @ivar code: An extended response code, or L{None}.
    """

    text: str = ""
    code: ResponseCode | None = None

    def toBytes(self) -> bytes:
        """
        The status line, CRLF included, at most 512 octets.
        """
        return ok(self.text, self.code)


@dataclass(frozen=True, slots=True)
class Err:
    """
    A C{-ERR} status line.

    @ivar text: The text after the indicator and the code.
    @ivar code: An extended response code (RFC 2449, RFC 3206), or L{None}.
    """

    text: str
    code: ResponseCode | None = None

    @classmethod
    def fromError(cls, error: POP3Error) -> Err:
        """
        The answer to a L{POP3Error}: its text and its response code.
        """
        return cls(error.text, error.code)

    def toBytes(self) -> bytes:
        """
        The status line, CRLF included, at most 512 octets.
        """
        return err(self.text, self.code)


@dataclass(frozen=True, slots=True)
class MultiLine:
    """
    A short multi-line answer held whole: a C{+OK} line, lines of text, the terminator.

    @ivar status: The C{+OK} line.
    @ivar lines: The lines, without line ends and not yet byte-stuffed.
    """

    status: Ok
    lines: tuple[bytes, ...] = ()

    def toBytes(self) -> bytes:
        """
        The whole answer: status line, byte-stuffed lines, terminator.
        """
        return multiline(self.status.toBytes(), self.lines)


@dataclass(frozen=True, slots=True)
class Continuation:
    """
    A SASL challenge line, C{+ base64} (RFC 5034 section 4).

    @ivar payload: The base64 text, not decoded (empty for a bare C{+}).
    """

    payload: bytes

    def toBytes(self) -> bytes:
        """
        The challenge line, CRLF included.
        """
        return continuation(self.payload)


_TIMESTAMP = re.compile(rb"<[^<>\s]*@[^<>\s]*>")
_RESPONSE_CODE = re.compile(rb"\[([\x21-\x5a\x5c\x5e-\x7e]+)\] ?")


@dataclass(frozen=True, slots=True)
class Greeting:
    """
    The server's greeting: C{+OK}, text and, when APOP is offered, its timestamp.

    @ivar text: The greeting's text.
    @ivar timestamp: The APOP timestamp, C{<...@...>} with its brackets, or L{None}.
    """

    text: str = "POP3 server ready"
    timestamp: bytes | None = None

    def toBytes(self) -> bytes:
        """
        The greeting line, CRLF included.
        """
        if self.timestamp is None:
            return ok(self.text)
        return ok(f"{self.text} {self.timestamp.decode('ascii')}")

    @classmethod
    def fromText(cls, text: bytes) -> Greeting:
        """
        A greeting from the text of a received C{+OK} greeting line: the APOP timestamp
        is the first C{<...@...>} in it, if any.
        """
        return cls(text.decode("utf-8", "replace"), apopTimestamp(text))


Reply = Ok | Err | MultiLine | Continuation | Greeting


# Parsing the answers a client receives.


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


_UID = re.compile(rb"[\x21-\x7e]+")


def parseNumbers(text: bytes, count: int, what: str) -> list[int]:
    """
    The first C{count} words of C{text} as decimal numbers; any text after them is
    ignored (RFC 1939 allows it).

    @param what: The command, for the error message.
    @raise ServerProtocolError: when there are fewer words, or one is not a number.
    """
    words = text.split()[:count]
    if len(words) < count or not all(word.isdigit() for word in words):
        raise ServerProtocolError(f"malformed {what} answer {text[:60]!r}")
    return [int(word) for word in words]


def parseUid(text: bytes) -> str:
    """
    The unique-id at the start of C{text}: printable ASCII without spaces (RFC 1939
    section 7).  Longer ids than the RFC's 70 characters are tolerated.

    @raise ServerProtocolError: when C{text} starts with no unique-id.
    """
    words = text.split()
    if not words or not _UID.fullmatch(words[0]):
        raise ServerProtocolError(f"malformed unique-id {text[:80]!r}")
    return words[0].decode("ascii")


def _listingLines(body: bytes, what: str) -> list[tuple[int, bytes]]:
    entries = []
    for line in body.split(b"\r\n"):
        if not line.strip():
            continue
        number, _, rest = line.strip().partition(b" ")
        if not number.isdigit() or not rest.strip():
            raise ServerProtocolError(f"malformed {what} line {line[:60]!r}")
        entries.append((int(number), rest.strip()))
    return entries


def parseScanListing(body: bytes) -> dict[int, int]:
    """
    The sizes in the body of a LIST answer (un-stuffed, CRLF line ends), by number.

    @raise ServerProtocolError: for a malformed line.
    """
    return {
        number: parseNumbers(rest, 1, "LIST")[0] for number, rest in _listingLines(body, "LIST")
    }


def parseUidListing(body: bytes) -> dict[int, str]:
    """
    The unique-ids in the body of a UIDL answer (un-stuffed, CRLF line ends), by number.

    @raise ServerProtocolError: for a malformed line.
    """
    return {number: parseUid(rest) for number, rest in _listingLines(body, "UIDL")}


def parseUidLine(text: bytes) -> str:
    """
    The unique-id in the text of a C{+OK} answer to C{UIDL n}: C{n uid}.

    @raise ServerProtocolError: when it is malformed.
    """
    number, _, rest = text.strip().partition(b" ")
    if not number.isdigit():
        raise ServerProtocolError(f"malformed UIDL answer {text[:60]!r}")
    return parseUid(rest)


def parseCapabilityLines(body: bytes) -> dict[str, list[str]]:
    """
    The capabilities in the body of a CAPA answer: tags upper case, each with its
    parameters as sent.
    """
    capabilities: dict[str, list[str]] = {}
    for line in body.split(b"\r\n"):
        words = line.decode("utf-8", "replace").split()
        if words:
            capabilities[words[0].upper()] = words[1:]
    return capabilities
