"""
Tests for L{pop3kit.core._dotstuff}: line-end normalisation, byte-stuffing and sizes.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.core import (
    MessageEncoder,
    MultilineDecoder,
    WireSizeCounter,
    wireSize,
)
from pop3kit.core._dotstuff import encodeLines, encodeMessage
from tests._oracle import crlfForm, topLines, wireForm

#: Messages made of the octets that matter to framing, so that edge cases come up often.
messages = st.lists(
    st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"..", b"\n.\r\n", b"\xff"]),
    max_size=40,
).map(b"".join) | st.binary(max_size=200)

chunkings = st.lists(st.integers(min_value=1, max_value=17), max_size=30)


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    """
    Split C{data} into pieces of the given sizes, then the rest.
    """
    pieces = []
    position = 0
    for size in sizes:
        pieces.append(data[position : position + size])
        position += size
    pieces.append(data[position:])
    return pieces


def encodeChunked(message: bytes, sizes: list[int], bodyLines: int | None = None) -> bytes:
    """
    Encode C{message} fed in chunks.
    """
    encoder = MessageEncoder(bodyLines)
    out = b"".join(encoder.feed(piece) for piece in split(message, sizes))
    return out + encoder.finish()


def decodeChunked(wire: bytes, sizes: list[int]) -> tuple[bytes, MultilineDecoder]:
    """
    Decode C{wire} fed in chunks.
    """
    decoder = MultilineDecoder()
    out = b"".join(decoder.feed(piece) for piece in split(wire, sizes))
    return out, decoder


class EncoderTests(SynchronousTestCase):
    """
    L{MessageEncoder} produces a correctly stuffed, CRLF, terminated response body.
    """

    def test_dotLines(self) -> None:
        """
        Lines starting with a dot get one more dot; others are untouched.
        """
        self.assertEqual(
            encodeMessage(b".\n..\n.x\nx.\n"),
            b"..\r\n...\r\n..x\r\nx.\r\n.\r\n",
        )

    def test_lfAndCrlf(self) -> None:
        """
        LF and CRLF line ends both become CRLF; a bare CR stays.
        """
        self.assertEqual(encodeMessage(b"a\nb\r\nc\rd\n"), b"a\r\nb\r\nc\rd\r\n.\r\n")

    def test_missingFinalLineEnd(self) -> None:
        """
        A message whose last line has no line end gets CRLF before the terminator.
        """
        self.assertEqual(encodeMessage(b"a\nlast"), b"a\r\nlast\r\n.\r\n")
        self.assertEqual(wireSize(b"a\nlast"), len(b"a\r\nlast\r\n"))

    def test_emptyMessage(self) -> None:
        """
        An empty message is just the terminator, of size 0.
        """
        self.assertEqual(encodeMessage(b""), b".\r\n")
        self.assertEqual(wireSize(b""), 0)

    def test_dotAtChunkBoundary(self) -> None:
        """
        A dot that starts a chunk right after a line end is stuffed (twisted.mail's
        16 KiB-chunk defect).
        """
        encoder = MessageEncoder()
        out = encoder.feed(b"a" * 16383 + b"\n") + encoder.feed(b".\nb\n") + encoder.finish()
        self.assertEqual(out, b"a" * 16383 + b"\r\n..\r\nb\r\n.\r\n")

    def test_crAtChunkBoundary(self) -> None:
        """
        A CRLF split between chunks stays one line end.
        """
        encoder = MessageEncoder()
        out = (
            encoder.feed(b"a\r") + encoder.feed(b"\n.b\r") + encoder.feed(b"\n") + encoder.finish()
        )
        self.assertEqual(out, b"a\r\n..b\r\n.\r\n")

    def test_top(self) -> None:
        """
        TOP gives the headers, the blank line and the first n body lines.
        """
        message = b"Subject: x\nFrom: y\n\n.one\ntwo\nthree\n"
        self.assertEqual(encodeMessage(message, 0), b"Subject: x\r\nFrom: y\r\n\r\n.\r\n")
        self.assertEqual(
            encodeMessage(message, 2), b"Subject: x\r\nFrom: y\r\n\r\n..one\r\ntwo\r\n.\r\n"
        )
        self.assertEqual(encodeMessage(message, 100), encodeMessage(message))

    def test_topWithoutBody(self) -> None:
        """
        TOP of a message without a blank line gives all of it.
        """
        self.assertEqual(
            encodeMessage(b"Subject: x\nFrom: y", 0), b"Subject: x\r\nFrom: y\r\n.\r\n"
        )

    def test_topCompleteStopsReading(self) -> None:
        """
        Once TOP has its lines, the encoder says so and ignores further input.
        """
        encoder = MessageEncoder(bodyLines=1)
        first = encoder.feed(b"H: v\n\nline1\nline2\n")
        self.assertTrue(encoder.complete)
        self.assertEqual(encoder.feed(b"more\n"), b"")
        self.assertEqual(first + encoder.finish(), b"H: v\r\n\r\nline1\r\n.\r\n")

    def test_denseThenSparseDots(self) -> None:
        """
        A message whose first chunk is full of dot lines (switching the encoder to its
        dense strategy) and whose later chunks have few is stuffed correctly throughout.
        """
        message = b".\n" * 5000 + (b"text\n" * 99 + b".dot\n") * 200
        wire = encodeChunked(message, [4096] * 100)
        decoded, decoder = decodeChunked(wire, [])
        self.assertTrue(decoder.done)
        self.assertEqual(decoded, crlfForm(message))
        self.assertEqual(wire.count(b"\r\n..dot\r\n"), 200)

    def test_encodeLines(self) -> None:
        """
        Short multi-line responses are stuffed and terminated too.
        """
        self.assertEqual(encodeLines([b"1 2", b".x"]), b"1 2\r\n..x\r\n.\r\n")
        self.assertEqual(encodeLines([]), b".\r\n")

    @given(messages, chunkings, chunkings)
    def test_roundTrip(
        self, message: bytes, encodeSizes: list[int], decodeSizes: list[int]
    ) -> None:
        """
        For any message and any chunking, un-stuffing the output gives the canonical form,
        whose length is the reported size, and nothing ends early.
        """
        wire = encodeChunked(message, encodeSizes)
        self.assertEqual(wire, wireForm(message))
        self.assertTrue(wire.endswith(b"\r\n.\r\n") or wire == b".\r\n")
        self.assertNotIn(b"\r\n.\r\n", wire[:-3])
        decoded, decoder = decodeChunked(wire + b"+OK next", decodeSizes)
        self.assertTrue(decoder.done)
        self.assertEqual(decoded, crlfForm(message))
        self.assertEqual(decoder.remainder, b"+OK next")
        self.assertEqual(len(decoded), wireSize(message))

    @given(messages, chunkings)
    def test_sizeCounterChunked(self, message: bytes, sizes: list[int]) -> None:
        """
        L{WireSizeCounter} gives the same size however the message is split.
        """
        counter = WireSizeCounter()
        for piece in split(message, sizes):
            counter.feed(piece)
        self.assertEqual(counter.octets, len(crlfForm(message)))

    @given(messages, st.integers(min_value=0, max_value=5), chunkings)
    def test_topAnyChunking(self, message: bytes, lines: int, sizes: list[int]) -> None:
        """
        TOP output is the headers, the blank line and the first body lines, whatever the
        chunking.
        """
        top = encodeChunked(message, sizes, lines)
        self.assertEqual(top, wireForm(message, lines))
        decoded, decoder = decodeChunked(top, [])
        self.assertTrue(decoder.done)
        self.assertEqual(decoded, topLines(message, lines))


class DecoderTests(SynchronousTestCase):
    """
    L{MultilineDecoder} removes stuffing and finds the terminator.
    """

    def test_stuffedLines(self) -> None:
        """
        One leading dot is removed; C{..} alone is a line with one dot.
        """
        decoded, decoder = decodeChunked(b"..\r\n...x\r\na\r\n.\r\n", [1] * 20)
        self.assertEqual(decoded, b".\r\n..x\r\na\r\n")
        self.assertTrue(decoder.done)

    def test_notDoneWithoutTerminator(self) -> None:
        """
        A response cut short is not done.
        """
        decoded, decoder = decodeChunked(b"a\r\n.", [])
        self.assertFalse(decoder.done)
        self.assertEqual(decoded, b"a\r\n")
