"""
An independent oracle for what a POP3 client receives for a stored message.

The tests compare what pop3kit sends (or decodes) against these functions instead of
against L{pop3kit.core.canonicalForm}, which shares its line-end code with the encoder
under test: a line-end bug in both would pass every comparison.  This module is
deliberately naive and imports nothing from pop3kit; it works line by line, without
regular expressions, so that it is obviously correct by reading it.

The rules (RFC 1939 section 3, and pop3kit's treatment of stored messages):
  - a line ends at an LF; a CR right before that LF belongs to the line end;
  - every line end becomes CRLF; a CR anywhere else stays as it is;
  - a last line without a line end (even one ending in a bare CR) gets CRLF;
  - on the wire, a line starting with C{.} gets one more C{.}, and C{.CRLF} ends the body.

L{lfForm} and L{readMaildir} give the other side: what clients that store with LF line
ends (C{pop3kit fetch}, mpop, getmail6, Net::POP3) should have written.
"""

from __future__ import annotations

import os


def _lines(message: bytes) -> list[bytes]:
    """
    The lines of C{message} without their line ends, the last one included even if it had
    no line end.
    """
    pieces = message.split(b"\n")
    # The text after the last LF: empty when the message ends with an LF (or is empty).
    last = pieces.pop()
    lines = []
    for piece in pieces:
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        lines.append(piece)
    if last:
        lines.append(last)
    return lines


def crlfForm(message: bytes) -> bytes:
    """
    C{message} with LF and CRLF line ends made CRLF and a final CRLF added if missing: the
    octets a client receives once it has removed the byte-stuffing.
    """
    return b"".join(line + b"\r\n" for line in _lines(message))


def topLines(message: bytes, bodyLines: int) -> bytes:
    """
    What TOP with C{bodyLines} gives of C{message}, before byte-stuffing: the headers, the
    blank line after them and at most C{bodyLines} lines of the body, in CRLF form.
    """
    kept = []
    inBody = False
    remaining = bodyLines
    for line in _lines(message):
        if inBody:
            if remaining <= 0:
                break
            remaining -= 1
        elif line == b"":
            inBody = True
        kept.append(line + b"\r\n")
    return b"".join(kept)


def stuffed(canonical: bytes) -> bytes:
    """
    The body of a multi-line response carrying C{canonical} (CRLF lines, as
    L{crlfForm} returns): each line starting with C{.} gets one more, then C{.CRLF}.
    """
    out = []
    for line in canonical.split(b"\r\n")[:-1]:
        if line.startswith(b"."):
            line = b"." + line
        out.append(line + b"\r\n")
    out.append(b".\r\n")
    return b"".join(out)


def wireForm(message: bytes, bodyLines: int | None = None) -> bytes:
    """
    The multi-line response body a server sends for C{message}: RETR, or TOP with
    C{bodyLines}.
    """
    if bodyLines is None:
        return stuffed(crlfForm(message))
    return stuffed(topLines(message, bodyLines))


def lfForm(message: bytes) -> bytes:
    """
    L{crlfForm} of C{message} with the CR of each CRLF removed (a lone CR stays): what
    C{pop3kit fetch}, mpop, getmail6 and Net::POP3 store.
    """
    return crlfForm(message).replace(b"\r\n", b"\n")


def readMaildir(path: str) -> dict[str, bytes]:
    """
    The messages in the Maildir at C{path} (in C{new} and C{cur}), by file name.
    """
    messages = {}
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(path, sub)):
            with open(os.path.join(path, sub, name), "rb") as f:
                messages[name] = f.read()
    return messages
