"""
Tests for C{pop3kit scan}: the summary line made from a message's headers, and whole scans
of pop3kit's own server joined to the client in memory (L{pop3kit.testing.MemoryNetwork}:
no sockets, no threads, no global reactor).  Scans of Dovecot are in
L{tests.test_interop_dovecot}.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pop3kit import _fetch
from pop3kit._exits import ExitError, ExitStatus
from pop3kit._fetch import ConnectOptions, parseURL, summarise
from pop3kit.client import POP3Client, connect
from tests._fetchtesting import exitErrorOf, wrappingConnector
from tests.test_fetch import SECRET, _MemoryServer


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


class _TopRecorder:
    """
    A client that records when each TOP is asked for and answered, and passes everything
    on to the real one.
    """

    def __init__(self, client: POP3Client, events: list[tuple[str, int]]) -> None:
        self._client = client
        self._events = events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def top(self, n: int, lines: int) -> Deferred[bytes]:
        self._events.append(("TOP", n))

        def answered(headers: bytes) -> bytes:
            self._events.append(("answered", n))
            return headers

        return self._client.top(n, lines).addCallback(answered)


class _DropAfterFirstLine(io.StringIO):
    """
    An output that drops every server connection once the first line is written.
    """

    def __init__(self, server: _MemoryServer) -> None:
        super().__init__()
        self.server = server

    def write(self, text: str) -> int:
        self.server.dropAll()
        return super().write(text)


class ScanTests(SynchronousTestCase):
    """
    Whole scans of pop3kit's own server, joined to the client in memory.
    """

    def setUp(self) -> None:
        self.server = _MemoryServer(self)
        self.account = parseURL("pop3://alice@mail.example.com")
        self.options = ConnectOptions(noTLS=True, timeout=20)

    def scan(
        self,
        delete: list[int] | None = None,
        password: str = SECRET,
        connector: _fetch.Connector = connect,
        output: io.StringIO | None = None,
    ) -> list[str]:
        """
        Scan alice's maildrop; return the lines printed, once the server has seen the
        session end.
        """
        output = io.StringIO() if output is None else output
        network = self.server.network
        try:
            network.run(
                _fetch.scan(
                    network.reactor,
                    self.account,
                    self.options,
                    password,
                    output,
                    delete or (),
                    connector=connector,
                )
            )
        finally:
            network.flush()
        return output.getvalue().splitlines()

    def scanFails(self, **options: Any) -> ExitError:
        """
        Scan as L{scan} does, and return the L{ExitError} it fails with (after checking
        that no command was left failing unhandled).
        """
        return exitErrorOf(self, self.scan, **options)

    def test_oneLinePerMessage(self) -> None:
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
        lines = self.scan()
        self.assertEqual(len(lines), len(messages))
        self.assertEqual(lines[0].split()[:2], ["1", "45"])
        self.assertTrue(lines[0].endswith("first"))
        self.assertTrue(lines[1].endswith("café"))
        self.assertEqual(lines[2].split(), ["3", "0", "-"])
        self.assertTrue(lines[-1].endswith("m39"))

    def test_oneWindow(self) -> None:
        """
        The client gets as many TOPs as it pipelines before the first answer, and never
        holds more: its window is the only one.
        """
        self.server.deliver(*[b"Subject: %d\n\n" % i for i in range(100)])
        events: list[tuple[str, int]] = []

        connector = wrappingConnector(lambda client: _TopRecorder(client, events))

        lines = self.scan(connector=connector)
        self.assertEqual(len(lines), 100)
        window = POP3Client(clock=Clock()).maxPipeline
        self.assertLess(window, 100)
        firstAnswer = events.index(("answered", 1))
        self.assertEqual(events[:firstAnswer], [("TOP", n) for n in range(1, window + 1)])
        asked = answered = 0
        for kind, _ in events:
            asked += kind == "TOP"
            answered += kind == "answered"
            self.assertLessEqual(asked - answered, window)
        self.assertEqual(asked, 100)

    def test_delete(self) -> None:
        """
        C{--delete N ...} deletes exactly the messages numbered.
        """
        self.server.deliver(*[b"Subject: %d\n\n" % i for i in range(4)])
        before = self.server.uids()
        lines = self.scan(delete=[2, 4])
        self.assertEqual(len(lines), 4)
        after = self.server.uids()
        self.assertEqual(len(after), 2)
        self.assertTrue(set(after) <= set(before))

    def test_deleteUnknown(self) -> None:
        """
        A number that is not in the maildrop is a usage error, and nothing is deleted.
        """
        self.server.deliver(b"Subject: only\n\n")
        error = self.scanFails(delete=[1, 5, 7])
        self.assertEqual(
            (str(error), error.status),
            ("no message 5, 7 on mail.example.com", ExitStatus.USAGE),
        )
        self.assertEqual(len(self.server.uids()), 1)

    def test_wrongPassword(self) -> None:
        """
        A refused login is L{ExitStatus.NOPERM}.
        """
        error = self.scanFails(password="wrong")
        self.assertEqual(
            (str(error), error.status),
            (
                "login to mail.example.com:110 as 'alice' refused: authentication failed",
                ExitStatus.NOPERM,
            ),
        )

    def test_lostConnection(self) -> None:
        """
        A connection lost half-way is L{ExitStatus.TEMPFAIL}, the TOPs still queued fail
        quietly, and nothing is deleted.
        """
        self.server.deliver(*[b"Subject: %d\n\n" % i for i in range(80)])
        uids = self.server.uids()
        error = self.scanFails(delete=[1], output=_DropAfterFirstLine(self.server))
        self.assertEqual(error.status, ExitStatus.TEMPFAIL, str(error))
        self.assertTrue(
            str(error).startswith("the connection to mail.example.com:110 was lost: "), error
        )
        self.assertEqual(self.server.uids(), uids)
