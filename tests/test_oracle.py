"""
Tests for L{tests._oracle}, the independent expectation of what a client receives: checked
against fixed bytes only, so that it owes nothing to the code it judges.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests._oracle import crlfForm, stuffed, topLines, wireForm


class CrlfFormTests(SynchronousTestCase):
    """
    L{crlfForm} makes every line end CRLF and adds a final one where missing.
    """

    def test_lfAndCrlf(self) -> None:
        """
        LF and CRLF line ends both become CRLF.
        """
        self.assertEqual(crlfForm(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n")

    def test_bareCR(self) -> None:
        """
        A CR not followed by LF stays; one before an LF is part of the line end.
        """
        self.assertEqual(crlfForm(b"a\rb\n"), b"a\rb\r\n")
        self.assertEqual(crlfForm(b"a\r\r\n"), b"a\r\r\n")

    def test_missingFinalLineEnd(self) -> None:
        """
        A last line without a line end gets CRLF, even one ending in a bare CR.
        """
        self.assertEqual(crlfForm(b"a\nb"), b"a\r\nb\r\n")
        self.assertEqual(crlfForm(b"a\r"), b"a\r\r\n")

    def test_emptyAndBlank(self) -> None:
        """
        An empty message stays empty; blank lines are kept.
        """
        self.assertEqual(crlfForm(b""), b"")
        self.assertEqual(crlfForm(b"\n"), b"\r\n")
        self.assertEqual(crlfForm(b"\r\n\n"), b"\r\n\r\n")


class WireFormTests(SynchronousTestCase):
    """
    L{stuffed}, L{topLines} and L{wireForm} give the multi-line response body.
    """

    def test_stuffing(self) -> None:
        """
        Lines starting with a dot get one more; the body ends with C{.CRLF}.
        """
        self.assertEqual(stuffed(b".\r\n..\r\nx.\r\n"), b"..\r\n...\r\nx.\r\n.\r\n")
        self.assertEqual(stuffed(b""), b".\r\n")

    def test_wireForm(self) -> None:
        """
        RETR's body: CRLF lines, stuffed, terminated.
        """
        self.assertEqual(wireForm(b".a\nb\r\n."), b"..a\r\nb\r\n..\r\n.\r\n")

    def test_top(self) -> None:
        """
        TOP's body: the headers, the blank line and at most the requested body lines.
        """
        message = b"H: v\n\n.one\ntwo\n"
        self.assertEqual(topLines(message, 0), b"H: v\r\n\r\n")
        self.assertEqual(topLines(message, 1), b"H: v\r\n\r\n.one\r\n")
        self.assertEqual(topLines(message, 9), b"H: v\r\n\r\n.one\r\ntwo\r\n")
        self.assertEqual(topLines(b"H: v\nX: y", 0), b"H: v\r\nX: y\r\n")
        self.assertEqual(wireForm(message, 1), b"H: v\r\n\r\n..one\r\n.\r\n")
