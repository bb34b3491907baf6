"""
Fixed-input tests for L{pop3kit.core._dotstuff}: the chunk-boundary cases of byte-stuffing
and line-end normalisation, fed in every possible chunking.

The Hypothesis round trip in L{tests.test_core_dotstuff} explores random messages and
chunkings and finds a planted stuffing bug only some of the time; these tests feed the
known hard cases (a dot line starting a chunk, a CRLF split between chunks, the terminator
split anywhere, dot lines at the very start, a message without a final line end) in every
way of cutting them, every time, and compare with fixed bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

from twisted.trial.unittest import SynchronousTestCase

from pop3kit.core import (
    MessageEncoder,
    MultilineDecoder,
    WireSizeCounter,
    wireSize,
)
from pop3kit.core._dotstuff import canonicalForm, encodeMessage
from tests._oracle import crlfForm, wireForm

#: Inputs up to this long are cut in every possible way; longer ones into 2 or 3 pieces.
_EXHAUSTIVE = 12


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    """
    Ways to cut C{data} into consecutive non-empty pieces: all of them for short inputs,
    every cut into two or three pieces for longer ones.
    """
    size = len(data)
    if size <= _EXHAUSTIVE:
        for mask in range(1 << max(size - 1, 0)):
            pieces = []
            start = 0
            for position in range(1, size):
                if mask & (1 << (position - 1)):
                    pieces.append(data[start:position])
                    start = position
            pieces.append(data[start:])
            yield pieces
        return
    yield [data]
    for first in range(1, size):
        yield [data[:first], data[first:]]
        for second in range(first + 1, size):
            yield [data[:first], data[first:second], data[second:]]


def encodePieces(pieces: list[bytes], bodyLines: int | None = None) -> bytes:
    """
    Encode a message fed to one L{MessageEncoder} as C{pieces}.
    """
    encoder = MessageEncoder(bodyLines)
    return b"".join(encoder.feed(piece) for piece in pieces) + encoder.finish()


def decodePieces(pieces: list[bytes]) -> tuple[bytes, MultilineDecoder]:
    """
    Decode a response body fed to one L{MultilineDecoder} as C{pieces}.
    """
    decoder = MultilineDecoder()
    return b"".join(decoder.feed(piece) for piece in pieces), decoder


class _ChunkingAssertions(SynchronousTestCase):
    """
    Assertions that run an encoder or decoder over every chunking of an input.
    """

    def assertEncodes(self, message: bytes, expected: bytes, bodyLines: int | None = None) -> None:
        """
        However C{message} is cut into chunks, L{MessageEncoder} gives C{expected}.
        """
        wrong = [
            (pieces, out)
            for pieces in chunkings(message)
            if (out := encodePieces(pieces, bodyLines)) != expected
        ]
        self.assertEqual(wrong[:3], [], f"{len(wrong)} chunkings of {message!r} misencoded")

    def assertDecodes(self, wire: bytes, expected: bytes, remainder: bytes = b"") -> None:
        """
        However C{wire} is cut into chunks, L{MultilineDecoder} gives C{expected}, is done,
        and keeps C{remainder}.
        """
        wrong = []
        for pieces in chunkings(wire):
            out, decoder = decodePieces(pieces)
            if (out, decoder.done, decoder.remainder) != (expected, True, remainder):
                wrong.append((pieces, out, decoder.done, decoder.remainder))
        self.assertEqual(wrong[:3], [], f"{len(wrong)} chunkings of {wire!r} misdecoded")


class CanonicalFormTests(SynchronousTestCase):
    """
    L{canonicalForm} and L{wireSize} against fixed bytes.
    """

    def test_lineEnds(self) -> None:
        """
        LF and CRLF become CRLF; a bare CR stays; a CR before a split-off LF is one CRLF.
        """
        self.assertEqual(canonicalForm(b"a\nb\r\nc\rd\n"), b"a\r\nb\r\nc\rd\r\n")
        self.assertEqual(canonicalForm(b"\n\n"), b"\r\n\r\n")
        self.assertEqual(canonicalForm(b"a\r\r\n"), b"a\r\r\n")

    def test_finalLineEnd(self) -> None:
        """
        A last line without a line end gets CRLF, also one ending in a bare CR.
        """
        self.assertEqual(canonicalForm(b"a\nlast"), b"a\r\nlast\r\n")
        self.assertEqual(canonicalForm(b"."), b".\r\n")
        self.assertEqual(canonicalForm(b"a\r"), b"a\r\r\n")

    def test_empty(self) -> None:
        """
        An empty message stays empty, of size 0.
        """
        self.assertEqual(canonicalForm(b""), b"")
        self.assertEqual(wireSize(b""), 0)

    def test_dotsUntouched(self) -> None:
        """
        The canonical form is before byte-stuffing: dots stay as they are.
        """
        self.assertEqual(canonicalForm(b".\n..\n.x"), b".\r\n..\r\n.x\r\n")

    def test_wireSize(self) -> None:
        """
        L{wireSize} is the length of the canonical form, whichever line ends are stored.
        """
        self.assertEqual(wireSize(b"a\nb\r\nc\rd\n"), 11)
        self.assertEqual(wireSize(b"a\nlast"), 9)
        self.assertEqual(wireSize(b"a\r"), 4)

    def test_sizeCounterAcrossChunks(self) -> None:
        """
        L{WireSizeCounter} counts a CRLF split between chunks once, however it is cut.
        """
        message = b"a\r\n.\r\nb\nc\r"
        expected = len(b"a\r\n.\r\nb\r\nc\r\r\n")
        for pieces in chunkings(message):
            counter = WireSizeCounter()
            for piece in pieces:
                counter.feed(piece)
            self.assertEqual(counter.octets, expected, pieces)


class EncoderBoundaryTests(_ChunkingAssertions):
    """
    L{MessageEncoder} stuffs and normalises correctly wherever the chunks are cut.
    """

    def test_dotLineStartsChunk(self) -> None:
        """
        A dot at the start of a line that starts a chunk (the previous chunk ended right
        after the LF) is stuffed.
        """
        encoder = MessageEncoder()
        out = encoder.feed(b"ab\n") + encoder.feed(b".c\n") + encoder.finish()
        self.assertEqual(out, b"ab\r\n..c\r\n.\r\n")
        encoder = MessageEncoder()
        out = encoder.feed(b"ab\r\n") + encoder.feed(b".\r\n") + encoder.finish()
        self.assertEqual(out, b"ab\r\n..\r\n.\r\n")

    def test_dotLineStartsChunkAnyCut(self) -> None:
        """
        Dot lines after LF and after CRLF are stuffed in every chunking.
        """
        self.assertEncodes(b"ab\n.c\n", b"ab\r\n..c\r\n.\r\n")
        self.assertEncodes(b"ab\r\n.c\r\n", b"ab\r\n..c\r\n.\r\n")

    def test_dotAfterChunkOfDotLines(self) -> None:
        """
        A dot line starting a chunk is stuffed also after a chunk dense with dot lines.
        """
        encoder = MessageEncoder()
        out = encoder.feed(b".\n" * 64) + encoder.feed(b".x\n") + encoder.finish()
        self.assertEqual(out, b"..\r\n" * 64 + b"..x\r\n.\r\n")

    def test_noDotAfterChunkEndingMidLine(self) -> None:
        """
        A dot starting a chunk that continues a line is not stuffed.
        """
        encoder = MessageEncoder()
        out = encoder.feed(b"ab") + encoder.feed(b".c\n") + encoder.finish()
        self.assertEqual(out, b"ab.c\r\n.\r\n")
        self.assertEncodes(b"ab.c\nx.\n", b"ab.c\r\nx.\r\n.\r\n")

    def test_crlfSplitBetweenChunks(self) -> None:
        """
        A CR ending one chunk and the LF starting the next make one CRLF, and a dot after
        them is stuffed.
        """
        encoder = MessageEncoder()
        out = (
            encoder.feed(b"a\r") + encoder.feed(b"\n.b\r") + encoder.feed(b"\n") + encoder.finish()
        )
        self.assertEqual(out, b"a\r\n..b\r\n.\r\n")
        encoder = MessageEncoder()
        out = encoder.feed(b"a\r") + encoder.feed(b"\n") + encoder.feed(b".") + encoder.finish()
        self.assertEqual(out, b"a\r\n..\r\n.\r\n")

    def test_storedTerminatorAnyCut(self) -> None:
        """
        A stored C{.CRLF} line, cut at every position, is stuffed and never ends the
        response early.
        """
        self.assertEncodes(b"x\r\n.\r\ny\r\n", b"x\r\n..\r\ny\r\n.\r\n")
        self.assertEncodes(b"x\r\n.\r\n", b"x\r\n..\r\n.\r\n")
        self.assertEncodes(b".\r\n.\r\n", b"..\r\n..\r\n.\r\n")

    def test_loneDotLine(self) -> None:
        """
        A message that is just one dot line, with or without its line end, is one stuffed
        line.
        """
        for message in [b".\n", b".\r\n", b"."]:
            self.assertEncodes(message, b"..\r\n.\r\n")

    def test_noFinalLineEnd(self) -> None:
        """
        A message whose last line has no line end gets CRLF before the terminator, in
        every chunking, also when that line is a dot line or ends in a bare CR.
        """
        self.assertEncodes(b"a\nb", b"a\r\nb\r\n.\r\n")
        self.assertEncodes(b"a\n.", b"a\r\n..\r\n.\r\n")
        self.assertEncodes(b"a\n.b", b"a\r\n..b\r\n.\r\n")
        self.assertEncodes(b"a\r", b"a\r\r\n.\r\n")

    def test_dotLinesAtStart(self) -> None:
        """
        Dot lines at the very start of the message are stuffed, in every chunking.
        """
        self.assertEncodes(b"..\n.\nx\n", b"...\r\n..\r\nx\r\n.\r\n")
        self.assertEncodes(b".x", b"..x\r\n.\r\n")
        encoder = MessageEncoder()
        self.assertEqual(encoder.feed(b"."), b"..")
        self.assertEqual(encoder.feed(b"x\n"), b"x\r\n")
        self.assertEqual(encoder.finish(), b".\r\n")

    def test_bareCRDoesNotStartLine(self) -> None:
        """
        A dot after a bare CR is inside a line and is not stuffed.
        """
        self.assertEncodes(b"a\r.b\n", b"a\r.b\r\n.\r\n")

    def test_emptyChunks(self) -> None:
        """
        Empty chunks between the others change nothing.
        """
        encoder = MessageEncoder()
        out = b""
        for byte in b"a\r\n.\r\n.":
            out += encoder.feed(b"") + encoder.feed(bytes([byte]))
        out += encoder.feed(b"") + encoder.finish()
        self.assertEqual(out, b"a\r\n..\r\n..\r\n.\r\n")

    def test_topAnyCut(self) -> None:
        """
        TOP stuffs its dot lines and stops after the requested body lines in every
        chunking.
        """
        message = b"H: v\n\n.one\n.two\n"
        self.assertEncodes(message, b"H: v\r\n\r\n..one\r\n.\r\n", bodyLines=1)
        self.assertEncodes(message, b"H: v\r\n\r\n.\r\n", bodyLines=0)
        self.assertEncodes(b".H: v\r\n\r\n.", b"..H: v\r\n\r\n..\r\n.\r\n", bodyLines=5)

    def test_oneShotMatchesOracle(self) -> None:
        """
        L{encodeMessage} agrees with the independent oracle on the boundary cases.
        """
        for message in [b"ab\n.c\n", b"x\r\n.\r\n", b".", b"a\r", b"a\r.b\n", b"..\n.\nx"]:
            self.assertEqual(encodeMessage(message), wireForm(message), message)


class DecoderBoundaryTests(_ChunkingAssertions):
    """
    L{MultilineDecoder} un-stuffs and finds the terminator wherever the chunks are cut.
    """

    def test_dotLineStartsChunk(self) -> None:
        """
        A stuffed dot line starting a chunk right after a CRLF loses one dot.
        """
        decoder = MultilineDecoder()
        out = decoder.feed(b"ab\r\n") + decoder.feed(b"..c\r\n") + decoder.feed(b".\r\n")
        self.assertEqual(out, b"ab\r\n.c\r\n")
        self.assertTrue(decoder.done)
        self.assertDecodes(b"ab\r\n..c\r\n.\r\n", b"ab\r\n.c\r\n")

    def test_crlfSplitBeforeDotLine(self) -> None:
        """
        A CR ending one chunk, the LF starting the next and a dot line after them: the
        dot line is un-stuffed, and a lone dot there is the terminator.
        """
        decoder = MultilineDecoder()
        out = decoder.feed(b"a\r") + decoder.feed(b"\n..b\r") + decoder.feed(b"\n.\r\n")
        self.assertEqual(out, b"a\r\n.b\r\n")
        self.assertTrue(decoder.done)
        decoder = MultilineDecoder()
        out = decoder.feed(b"a\r") + decoder.feed(b"\n.") + decoder.feed(b"\r\nrest")
        self.assertEqual((out, decoder.done, decoder.remainder), (b"a\r\n", True, b"rest"))

    def test_terminatorAnyCut(self) -> None:
        """
        The terminator cut at every position ends the body, and what follows it is kept.
        """
        self.assertDecodes(b"x\r\n.\r\n+OK next\r\n", b"x\r\n", b"+OK next\r\n")
        self.assertDecodes(b".\r\n", b"")
        self.assertDecodes(b".\r\n-ERR", b"", b"-ERR")

    def test_stuffedTerminatorAnyCut(self) -> None:
        """
        A stuffed C{..CRLF} line cut anywhere is a line holding one dot, not the end.
        """
        self.assertDecodes(b"x\r\n..\r\ny\r\n.\r\n", b"x\r\n.\r\ny\r\n")

    def test_loneDotLine(self) -> None:
        """
        A body that is one stuffed dot line decodes to that line.
        """
        self.assertDecodes(b"..\r\n.\r\n", b".\r\n")

    def test_dotLinesAtStart(self) -> None:
        """
        Stuffed dot lines at the very start of the body lose one dot each.
        """
        self.assertDecodes(b"...\r\n..x\r\n.\r\n", b"..\r\n.x\r\n")

    def test_dotInsideLine(self) -> None:
        """
        A dot that is not at a line start is kept, also where a chunk starts with it, and
        C{.CRLF} at the end of a line does not end the body.
        """
        self.assertDecodes(b"a.\r\n.\r\n", b"a.\r\n")
        self.assertDecodes(b"a\r.b\r\n.\r\n", b"a\r.b\r\n")
        self.assertDecodes(b"a\n.b\r\n.\r\n", b"a\n.b\r\n")

    def test_unterminatedNeverDone(self) -> None:
        """
        No proper prefix of a response body, however cut, is taken for a whole one, and
        what it decodes to is a prefix of the whole.
        """
        wire = b"..\r\na\r\n..\r\n.\r\n"
        whole = b".\r\na\r\n.\r\n"
        for end in range(len(wire)):
            for pieces in chunkings(wire[:end]):
                out, decoder = decodePieces(pieces)
                self.assertFalse(decoder.done, pieces)
                self.assertTrue(whole.startswith(out), (pieces, out))


class RoundTripBoundaryTests(_ChunkingAssertions):
    """
    Encoding then decoding the boundary cases, each cut in every way, gives the CRLF form
    of the stored message.
    """

    def test_roundTrip(self) -> None:
        """
        For each boundary case and every chunking of its encoding, the decoder returns
        the oracle's CRLF form.
        """
        for message in [
            b".\n",
            b".",
            b"..\n.\nx",
            b"ab\n.c\n",
            b"x\r\n.\r\ny",
            b"a\r\n.\r",
            b"a\r.b\n.",
        ]:
            self.assertEncodes(message, wireForm(message))
            self.assertDecodes(wireForm(message) + b"+OK", crlfForm(message), b"+OK")
