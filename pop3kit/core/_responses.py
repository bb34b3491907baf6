"""
Formatting of status lines and short multi-line responses.

Status lines are C{+OK} or C{-ERR}, a space, an optional C{[CODE]} and text, CRLF; at most
512 octets in all (RFC 2449 section 4).  Text is sanitised so that no CR, LF or NUL from an
error message can reach the wire.
"""

from __future__ import annotations

from collections.abc import Iterable

from pop3kit.core._dotstuff import encodeLines
from pop3kit.core._errors import POP3Error, ResponseCode

#: The longest status line, CRLF included (RFC 2449 section 4).
MAX_RESPONSE_LINE = 512


def _statusLine(indicator: bytes, text: str, code: ResponseCode | None) -> bytes:
    cleaned = text if text.isprintable() else "".join(c if c.isprintable() else " " for c in text)
    if code is not None:
        cleaned = f"[{code.value}] {cleaned}" if cleaned else f"[{code.value}]"
    encoded = cleaned.encode("utf-8", "replace")
    room = MAX_RESPONSE_LINE - len(indicator) - 3
    if len(encoded) > room:
        encoded = encoded[:room].decode("utf-8", "ignore").encode("utf-8")
    return indicator + b" " + encoded + b"\r\n"


def ok(text: str = "", code: ResponseCode | None = None) -> bytes:
    """
    Format a positive status line.
    """
    return _statusLine(b"+OK", text, code)


def err(text: str, code: ResponseCode | None = None) -> bytes:
    """
    Format a negative status line.
    """
    return _statusLine(b"-ERR", text, code)


def errorResponse(error: POP3Error) -> bytes:
    """
    Format the C{-ERR} line for a L{POP3Error}, with its response code.
    """
    return err(error.text, error.code)


def continuation(payload: bytes = b"") -> bytes:
    """
    Format a SASL continuation line: C{+}, a space, and base64 data.
    """
    return b"+ " + payload + b"\r\n"


def multiline(first: bytes, lines: Iterable[bytes]) -> bytes:
    """
    Format a whole multi-line response: a status line from L{ok}, then C{lines} (without
    line ends), byte-stuffed, then the terminator.
    """
    return first + encodeLines(lines)
