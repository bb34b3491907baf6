"""
Tests for L{pop3kit.core.LineFramer}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.core import (
    MAX_COMMAND_LINE,
)
from pop3kit.core._framing import LineFramer, LineTooLong


def frame(data: bytes, chunks: list[int] | None = None) -> list[bytes | LineTooLong]:
    """
    Frame C{data}, fed in pieces of the given sizes (then the rest).
    """
    framer = LineFramer()
    out: list[bytes | LineTooLong] = []
    position = 0
    for size in chunks or []:
        out.extend(framer.feed(data[position : position + size]))
        position += size
    out.extend(framer.feed(data[position:]))
    return out


class LineFramerTests(SynchronousTestCase):
    """
    Lines are split on LF with the CR removed, and over-long lines are refused whole.
    """

    def test_crlfAndBareLF(self) -> None:
        """
        CRLF and bare LF both end a line; an incomplete line waits.
        """
        framer = LineFramer()
        self.assertEqual(list(framer.feed(b"STAT\r\nNOOP\nLI")), [b"STAT", b"NOOP"])
        self.assertEqual(framer.pending, 2)
        self.assertEqual(list(framer.feed(b"ST\r\n")), [b"LIST"])

    def test_longestAcceptedLine(self) -> None:
        """
        A 255-octet line, CRLF included, is accepted (RFC 2449 section 4).
        """
        line = b"USER " + b"a" * (MAX_COMMAND_LINE - 7)
        self.assertEqual(len(line + b"\r\n"), MAX_COMMAND_LINE)
        self.assertEqual(frame(line + b"\r\n"), [line])
        self.assertEqual(frame(line + b"\r\n", [MAX_COMMAND_LINE - 1]), [line])

    def test_overLongLineRefusedOnce(self) -> None:
        """
        A line of 256 octets or more yields one L{LineTooLong} and nothing of its tail.
        """
        tooLong = b"USER " + b"a" * (MAX_COMMAND_LINE - 6) + b"\r\n"
        self.assertEqual(frame(tooLong + b"STAT\r\n"), [LineTooLong(), b"STAT"])
        hostile = b"X" * 5000 + b"\r\nQUIT\r\n"
        for chunks in ([], [1], [255], [256], [4999], [5000, 1], [100] * 50):
            self.assertEqual(frame(hostile, chunks), [LineTooLong(), b"QUIT"], chunks)

    def test_overLongLineWithoutEnd(self) -> None:
        """
        An unterminated over-long line is refused as soon as the limit is passed and does
        not grow the buffer.
        """
        framer = LineFramer()
        self.assertEqual(list(framer.feed(b"A" * 300)), [LineTooLong()])
        self.assertEqual(list(framer.feed(b"A" * 300000)), [])
        self.assertEqual(framer.pending, 0)
        self.assertEqual(list(framer.feed(b"STAT\r\nNOOP\r\n")), [b"NOOP"])

    @given(
        st.lists(st.binary(max_size=300).filter(lambda b: b"\n" not in b), max_size=10),
        st.lists(st.integers(min_value=1, max_value=50), max_size=20),
    )
    def test_anyChunking(self, lines: list[bytes], chunks: list[int]) -> None:
        """
        However the stream is split, the framer yields the same events.
        """
        data = b"".join(line + b"\r\n" for line in lines)
        expected: list[bytes | LineTooLong] = [
            line if len(line) + 2 <= MAX_COMMAND_LINE else LineTooLong() for line in lines
        ]
        self.assertEqual(frame(data, chunks), expected)
