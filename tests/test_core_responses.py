"""
Tests for L{pop3kit.core._responses}: status lines are safe and within RFC 2449's limit.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.core import (
    MAX_RESPONSE_LINE,
    NoSuchMessage,
    ResponseCode,
)
from pop3kit.core._responses import continuation, err, errorResponse, multiline, ok


class StatusLineTests(SynchronousTestCase):
    """
    C{+OK} and C{-ERR} lines.
    """

    def test_format(self) -> None:
        """
        The indicator, a space, an optional code in brackets, the text, CRLF.
        """
        self.assertEqual(ok("hello"), b"+OK hello\r\n")
        self.assertEqual(err("no", ResponseCode.SYS_TEMP), b"-ERR [SYS/TEMP] no\r\n")
        self.assertEqual(err("", ResponseCode.AUTH), b"-ERR [AUTH]\r\n")
        self.assertEqual(ok(), b"+OK \r\n")

    def test_errorResponse(self) -> None:
        """
        A L{pop3kit.core.POP3Error} is formatted with its text and code.
        """
        self.assertEqual(errorResponse(NoSuchMessage()), b"-ERR no such message\r\n")
        self.assertEqual(
            errorResponse(NoSuchMessage("gone", ResponseCode.SYS_PERM)),
            b"-ERR [SYS/PERM] gone\r\n",
        )

    def test_lineEndsInTextNeutralised(self) -> None:
        """
        CR, LF and NUL in the text cannot end the line early or inject a response.
        """
        line = err("bad\r\n+OK injected\0")
        self.assertEqual(line, b"-ERR bad  +OK injected \r\n")
        self.assertEqual(line.count(b"\r\n"), 1)

    def test_truncatedTo512(self) -> None:
        """
        A long text is cut so the whole line, CRLF included, is at most 512 octets.
        """
        line = ok("x" * 1000)
        self.assertEqual(len(line), MAX_RESPONSE_LINE)
        self.assertTrue(line.endswith(b"\r\n"))

    def test_truncationKeepsUTF8Whole(self) -> None:
        """
        Truncation never splits a UTF-8 sequence.
        """
        line = err("\u00e9" * 600)
        self.assertLessEqual(len(line), MAX_RESPONSE_LINE)
        line[:-2].decode("utf-8")

    @given(st.text(), st.sampled_from([None, *ResponseCode]))
    def test_anyText(self, text: str, code: ResponseCode | None) -> None:
        """
        Any text gives exactly one line of at most 512 octets.
        """
        for line in (ok(text, code), err(text, code)):
            self.assertLessEqual(len(line), MAX_RESPONSE_LINE)
            self.assertTrue(line.endswith(b"\r\n"))
            self.assertNotIn(b"\n", line[:-1])
            self.assertNotIn(b"\r", line[:-2])

    def test_multiline(self) -> None:
        """
        Multi-line responses are stuffed and terminated.
        """
        self.assertEqual(multiline(ok("x"), [b"a", b".b"]), b"+OK x\r\na\r\n..b\r\n.\r\n")

    def test_continuation(self) -> None:
        """
        SASL continuations are C{+}, a space, and the payload.
        """
        self.assertEqual(continuation(b"abc="), b"+ abc=\r\n")
        self.assertEqual(continuation(), b"+ \r\n")
