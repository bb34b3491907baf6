"""
Tests for C{pop3kit scan}: the summary line made from a message's headers, and whole scans
of pop3kit's own server over loopback TCP (clear text).  Scans of Dovecot are in
L{tests.test_interop_dovecot}.
"""

from __future__ import annotations

import io
from typing import Any, cast

from twisted.internet import reactor as _reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit import _fetch
from pop3kit._fetch import ConnectOptions, FetchError, parseURL, summarise
from tests.test_interop_clients import SECRET, serverUids
from tests.test_interop_poplib import MaildirServer

reactor = cast(Any, _reactor)


class SummaryTests(SynchronousTestCase):
    """
    L{summarise}: number, size, date, sender, subject from the headers alone.
    """

    def test_plain(self) -> None:
        """
        Plain headers give the date in the sender's zone, the display name and the subject.
        """
        line = summarise(
            3,
            1234,
            b"From: Alice Example <alice@example.com>\r\n"
            b"Date: Tue, 26 Nov 2024 12:34:56 +0100\r\n"
            b"Subject: Hello there\r\n\r\n",
        )
        self.assertEqual(
            line.split(), ["3", "1234", "2024-11-26", "12:34", "Alice", "Example", "Hello", "there"]
        )

    def test_encodedWords(self) -> None:
        """
        RFC 2047 encoded words are decoded, in the subject and the sender's name, folded
        headers are unfolded.
        """
        line = summarise(
            1,
            10,
            b"From: =?iso-8859-1?q?Andr=E9?= <andre@example.com>\r\n"
            b"Subject: =?utf-8?b?Y2Fmw6k=?=\r\n =?utf-8?q?_cr=C3=A8me?=\r\n\r\n",
        )
        self.assertIn("André", line)
        self.assertTrue(line.endswith("café crème"), line)

    def test_addressOnly(self) -> None:
        """
        A sender without a display name is shown by address.
        """
        self.assertIn("bob@example.org", summarise(1, 1, b"From: bob@example.org\r\n\r\n"))

    def test_missingHeaders(self) -> None:
        """
        A message without headers still gives a line, with C{-} for the date.
        """
        self.assertEqual(summarise(7, 0, b"").split(), ["7", "0", "-"])

    def test_garbage(self) -> None:
        """
        Unknown charsets, broken encoded words, a nonsense date, 8-bit octets and control
        characters give a printable line instead of an exception.
        """
        line = summarise(
            2,
            99,
            b"From: =?x-unknown?q?J=FCrgen?= <j@example.com>\r\n"
            b"Date: the day before yesterday\r\n"
            b"Subject: =?utf-8?b?broken?= \xff\xfe caf\xc3\xa9 \x1b[31mred\x07\r\n"
            b"\r\n",
        )
        self.assertTrue(line.isprintable(), repr(line))
        self.assertIn("the day before y", line)
        self.assertIn("red", line)

    def test_onlyOneLine(self) -> None:
        """
        A subject with line breaks inside encoded words stays on one line.
        """
        line = summarise(1, 1, b"Subject: =?utf-8?q?one=0Atwo=0Dthree?=\r\n\r\n")
        self.assertNotIn("\n", line)
        self.assertNotIn("\r", line)
        self.assertTrue(line.endswith("one two three"), line)


class ScanTests(TestCase):
    """
    Whole scans of pop3kit's own server.
    """

    timeout = 60

    def setUp(self) -> None:
        self.server = MaildirServer(self)
        self.account = parseURL(f"pop3://alice@127.0.0.1:{self.server.port}")
        self.options = ConnectOptions(noTLS=True, timeout=20)

    async def scan(self, delete: list[int] | None = None, password: str = SECRET) -> list[str]:
        """
        Scan alice's maildrop; return the lines printed, once the server has seen the
        session end.
        """
        output = io.StringIO()
        try:
            await _fetch.scan(reactor, self.account, self.options, password, output, delete or ())
        finally:
            for session in self.server.server.factory.servers:
                await session.lost
        return output.getvalue().splitlines()

    async def test_oneLinePerMessage(self) -> None:
        """
        Every message gets one line, in order, with its size as LIST gives it; bodies are
        not downloaded.
        """
        messages = [
            b"From: a@example.com\nSubject: first\n\nbody\n",
            b"Subject: =?utf-8?q?caf=C3=A9?=\n\n" + b"x" * 100_000 + b"\n",
            b"",
        ]
        messages += [b"Subject: m%d\n\n.\n" % i for i in range(40)]
        self.server.deliver(*messages)
        lines = await self.scan()
        self.assertEqual(len(lines), len(messages))
        self.assertEqual(lines[0].split()[:2], ["1", "45"])
        self.assertTrue(lines[0].endswith("first"))
        self.assertTrue(lines[1].endswith("café"))
        self.assertEqual(lines[2].split(), ["3", "0", "-"])
        self.assertTrue(lines[-1].endswith("m39"))

    async def test_delete(self) -> None:
        """
        C{--delete N ...} deletes exactly the messages numbered.
        """
        self.server.deliver(*[b"Subject: %d\n\n" % i for i in range(4)])
        before = await serverUids(self.server)
        lines = await self.scan(delete=[2, 4])
        self.assertEqual(len(lines), 4)
        after = await serverUids(self.server)
        self.assertEqual(len(after), 2)
        self.assertTrue(set(after) <= set(before))

    async def test_deleteUnknown(self) -> None:
        """
        A number that is not in the maildrop is a usage error, and nothing is deleted.
        """
        self.server.deliver(b"Subject: only\n\n")
        with self.assertRaises(FetchError) as caught:
            await self.scan(delete=[1, 5])
        self.assertEqual(caught.exception.status, _fetch.EX_USAGE)
        self.assertIn("5", str(caught.exception))
        self.assertEqual(len(await serverUids(self.server)), 1)

    async def test_wrongPassword(self) -> None:
        """
        A refused login is L{_fetch.EX_NOPERM}.
        """
        with self.assertRaises(FetchError) as caught:
            await self.scan(password="wrong")
        self.assertEqual(caught.exception.status, _fetch.EX_NOPERM)
