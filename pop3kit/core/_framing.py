"""
Splitting the client's byte stream into command lines, with RFC 2449 length limits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

#: The longest command line a server must accept, CRLF included (RFC 2449 section 4).
MAX_COMMAND_LINE = 255


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """
    Marks a command line that exceeded the limit.  It is reported once, when the limit is
    passed, and the rest of that line is discarded: no part of it is ever executed.
    """


class LineFramer:
    """
    Frame a byte stream into lines ending in LF (a preceding CR is removed; a bare LF is
    tolerated for old clients).

    @ivar maxLength: The longest line accepted, line end included.
    """

    __slots__ = (
        "_buffer",
        "_discarding",
        "maxLength",
    )

    def __init__(self, maxLength: int = MAX_COMMAND_LINE) -> None:
        self.maxLength = maxLength
        self._buffer = b""
        self._discarding = False

    def feed(self, data: bytes) -> Iterator[bytes | LineTooLong]:
        """
        Add received octets and yield each complete line (without its line end) or a
        L{LineTooLong} marker, in the order they were received.
        """
        buffer = self._buffer + data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end == -1:
                break
            if self._discarding:
                self._discarding = False
            elif end + 1 - start > self.maxLength:
                yield LineTooLong()
            else:
                line = buffer[start:end]
                yield line[:-1] if line.endswith(b"\r") else line
            start = end + 1
        rest = buffer[start:]
        if self._discarding:
            rest = b""
        elif len(rest) >= self.maxLength:
            self._discarding = True
            rest = b""
            yield LineTooLong()
        self._buffer = rest

    def reset(self) -> None:
        """
        Discard the incomplete line held back, as if nothing had been received.
        """
        self._buffer = b""
        self._discarding = False

    @property
    def pending(self) -> int:
        """
        The number of octets of an incomplete line held back.
        """
        return len(self._buffer)
