"""
Tests for C{pop3kit fetch} (L{pop3kit._fetch}): its pieces on their own, then whole fetches
from pop3kit's own server over loopback TCP (in this process, clear text), including
connections lost and processes killed half-way, and the command line's exit statuses in a
subprocess.  Fetches from Dovecot are in L{tests.test_interop_dovecot}.
"""

from __future__ import annotations

import io
import mailbox
import os
import signal
import sys
from typing import Any, BinaryIO, cast

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit import _fetch
from pop3kit._fetch import (
    EX_NOPERM,
    EX_TEMPFAIL,
    EX_TLS,
    EX_UNAVAILABLE,
    EX_USAGE,
    Account,
    ConnectOptions,
    FetchError,
    FetchOptions,
    StateFile,
    parseDestination,
    parseURL,
    readPassword,
)
from pop3kit._fetch._destinations import _LFWriter
from pop3kit.backends.maildir import MaildirMailbox, _deliveryOrder
from tests.test_interop_clients import (
    FIRST_MESSAGES,
    LATER_MESSAGE,
    SECRET,
    _Collector,
    lfForm,
    readMaildir,
    serverUids,
)
from tests.test_interop_poplib import FIXTURES, MaildirServer

reactor = cast(Any, _reactor)

#: The repository root, for running the command line in a subprocess.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The command line, run by a subprocess.
COMMAND = [sys.executable, "-c", "import sys; from pop3kit.cli import main; sys.exit(main())"]


def inDeliveryOrder(path: str) -> list[bytes]:
    """
    The messages of the Maildir at C{path}, in the order they were delivered (the order
    of the time stamps at the start of their names).
    """
    found = readMaildir(path)
    return [found[name] for name in sorted(found, key=_deliveryOrder)]


class _FakeTTY(io.StringIO):
    """
    A text stream that says it is a terminal.
    """

    def isatty(self) -> bool:
        return True


class URLTests(SynchronousTestCase):
    """
    L{parseURL} reads C{pop3://} and C{pop3s://} URLs.
    """

    def test_pop3sDefaultPort(self) -> None:
        """
        C{pop3s://} means implicit TLS on port 995 by default.
        """
        self.assertEqual(
            parseURL("pop3s://alice@mail.example.com"),
            Account(True, "alice", "mail.example.com", 995),
        )

    def test_pop3DefaultPort(self) -> None:
        """
        C{pop3://} means port 110 by default, without implicit TLS.
        """
        self.assertEqual(parseURL("POP3://bob@h:1110/"), Account(False, "bob", "h", 1110))
        self.assertEqual(parseURL("pop3://bob@h").port, 110)

    def test_percentDecodedUser(self) -> None:
        """
        The user name is percent-decoded, so it may hold C{@} and C{:}.
        """
        self.assertEqual(parseURL("pop3s://a%40b%3Ac%20d@h").user, "a@b:c d")

    def test_ipv6(self) -> None:
        """
        A bracketed IPv6 address is the host, without its brackets.
        """
        account = parseURL("pop3s://u@[::1]:1995")
        self.assertEqual((account.host, account.port), ("::1", 1995))
        self.assertEqual(str(account), "pop3s://u@[::1]:1995")

    def test_refused(self) -> None:
        """
        Other schemes, a password, no user, no host, a path or a bad port are usage errors.
        """
        for url in (
            "imap://u@h",
            "pop3://u:secret@h",
            "pop3://h",
            "pop3://u@",
            "pop3://u@h/INBOX",
            "pop3://u@h:99999",
            "pop3://u@h?x=1",
        ):
            with self.assertRaises(FetchError, msg=url) as caught:
                parseURL(url)
            self.assertEqual(caught.exception.status, EX_USAGE, url)

    def test_passwordNeverEchoed(self) -> None:
        """
        The error for a URL with a password does not repeat the password.
        """
        with self.assertRaises(FetchError) as caught:
            parseURL("pop3://u:hunter2@h")
        self.assertNotIn("hunter2", str(caught.exception))


class PasswordTests(SynchronousTestCase):
    """
    L{readPassword}: the file, then C{POP3KIT_PASSWORD}, then the terminal.
    """

    def test_file(self) -> None:
        """
        The first line of the password file, without its line end, wins over the rest.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("from file\r\nsecond line\n")
        password = readPassword(path, {"POP3KIT_PASSWORD": "env"}, _FakeTTY())
        self.assertEqual(password, "from file")

    def test_environment(self) -> None:
        """
        Without a file, C{POP3KIT_PASSWORD} is used.
        """
        self.assertEqual(
            readPassword(None, {"POP3KIT_PASSWORD": "env pw"}, io.StringIO()), "env pw"
        )

    def test_prompt(self) -> None:
        """
        On a terminal, the password is asked for.
        """
        asked: list[str] = []

        def prompt(text: str) -> str:
            asked.append(text)
            return "typed"

        account = parseURL("pop3s://alice@h")
        self.assertEqual(readPassword(None, {}, _FakeTTY(), prompt, account), "typed")
        self.assertEqual(asked, ["Password for pop3s://alice@h:995: "])

    def test_noTerminal(self) -> None:
        """
        Without a file, the variable or a terminal, there is no password: a usage error.
        """
        with self.assertRaises(FetchError) as caught:
            readPassword(None, {}, io.StringIO())
        self.assertEqual(caught.exception.status, EX_USAGE)

    def test_empty(self) -> None:
        """
        An empty password is refused.
        """
        with self.assertRaises(FetchError):
            readPassword(None, {"POP3KIT_PASSWORD": ""}, io.StringIO())

    def test_missingFile(self) -> None:
        """
        A password file that cannot be read is an error naming the file.
        """
        with self.assertRaises(FetchError) as caught:
            readPassword("/nonexistent/pw", {}, io.StringIO())
        self.assertIn("/nonexistent/pw", str(caught.exception))


class DescribeFailureTests(SynchronousTestCase):
    """
    L{_fetch.describeFailure} gives each failure its exit status.
    """

    def test_statuses(self) -> None:
        """
        Response codes, TLS, name resolution, refusal, time-outs and lost connections map
        to their documented exit statuses, each with a one-line message.
        """
        from twisted.internet import error

        from pop3kit.client import MechanismUnavailable, ServerError, TLSFailed, TLSUnavailable
        from pop3kit.errors import ResponseCode

        account = parseURL("pop3s://alice@mail.example.com")
        cases: list[tuple[BaseException, _fetch.Activity, int]] = [
            (ServerError("bad", ResponseCode.AUTH), _fetch.Activity.LOGGING_IN, EX_NOPERM),
            (ServerError("bad"), _fetch.Activity.LOGGING_IN, EX_NOPERM),
            (ServerError("busy", ResponseCode.IN_USE), _fetch.Activity.LOGGING_IN, EX_TEMPFAIL),
            (
                ServerError("later", ResponseCode.LOGIN_DELAY),
                _fetch.Activity.LOGGING_IN,
                EX_TEMPFAIL,
            ),
            (ServerError("oops", ResponseCode.SYS_TEMP), _fetch.Activity.DOWNLOADING, EX_TEMPFAIL),
            (
                ServerError("broken", ResponseCode.SYS_PERM),
                _fetch.Activity.DOWNLOADING,
                _fetch.EX_PROTOCOL,
            ),
            (ServerError("no such message"), _fetch.Activity.DOWNLOADING, _fetch.EX_PROTOCOL),
            (MechanismUnavailable("none left"), _fetch.Activity.LOGGING_IN, EX_NOPERM),
            (TLSUnavailable("the server does not offer STLS"), _fetch.Activity.CONNECTING, EX_TLS),
            (TLSFailed("certificate verify failed"), _fetch.Activity.CONNECTING, EX_TLS),
            (
                error.DNSLookupError("mail.example.com"),
                _fetch.Activity.CONNECTING,
                _fetch.EX_NOHOST,
            ),
            (error.ConnectionRefusedError(), _fetch.Activity.CONNECTING, EX_UNAVAILABLE),
            (error.TimeoutError(), _fetch.Activity.CONNECTING, EX_TEMPFAIL),
            (error.ConnectionLost("gone"), _fetch.Activity.DOWNLOADING, EX_TEMPFAIL),
        ]
        for exception, doing, status in cases:
            described = _fetch.describeFailure(exception, account, doing)
            self.assertEqual(described.status, status, repr(exception))
            self.assertNotIn("\n", str(described))


class _ListSink:
    """
    A sink that keeps what it is given.
    """

    def __init__(self) -> None:
        self.data: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.data.append(data)

    def close(self, wireSize: int) -> None:
        pass

    def abort(self) -> None:
        pass


class LFWriterTests(SynchronousTestCase):
    """
    L{_LFWriter} turns CRLF into LF across chunk boundaries.
    """

    def convert(self, chunks: list[bytes], batchSize: int = 1) -> bytes:
        sink = _ListSink()
        writer = _LFWriter(sink, batchSize)
        for chunk in chunks:
            writer.write(chunk)
        writer.finish()
        self.assertEqual(writer.received, sum(map(len, chunks)))
        return b"".join(sink.data)

    def test_everySplit(self) -> None:
        """
        Whatever the split, CRLF becomes LF and a lone CR stays.
        """
        message = b"a\r\nb\r\r\nc\rd\r\n\r\n.\r\ne\r"
        expected = b"a\nb\r\nc\rd\n\n.\ne\r"
        for i in range(len(message) + 1):
            for j in range(i, len(message) + 1):
                chunks = [message[:i], message[i:j], message[j:]]
                for batchSize in (1, 4, 1 << 20):
                    self.assertEqual(self.convert(chunks, batchSize), expected, (i, j, batchSize))


class StateFileTests(SynchronousTestCase):
    """
    L{StateFile} remembers UIDLs, appending at once and rewriting atomically.
    """

    def test_recordSurvivesWithoutSave(self) -> None:
        """
        UIDLs recorded are in the file at once, before any save.
        """
        path = os.path.join(self.mktemp(), "sub", "state")
        state = StateFile(path)
        state.load()
        state.record("one")
        state.record("two")
        again = StateFile(path)
        again.load()
        self.assertEqual(again.uids, {"one", "two"})
        state.close()

    def test_saveReplaces(self) -> None:
        """
        L{StateFile.save} keeps only the given UIDLs and leaves no temporary file.
        """
        path = os.path.join(self.mktemp(), "state")
        state = StateFile(path)
        for uid in ("a", "b", "c"):
            state.record(uid)
        state.save({"b", "c", "d"})
        again = StateFile(path)
        again.load()
        self.assertEqual(again.uids, {"b", "c", "d"})
        self.assertEqual(os.listdir(os.path.dirname(path)), ["state"])

    def test_defaultPath(self) -> None:
        """
        The default state file is per account and per destination, under
        C{$XDG_STATE_HOME/pop3kit/fetch/}.
        """
        account = parseURL("pop3s://a%2Fb@h:995")
        one = _fetch.defaultStatePath(
            account, parseDestination("maildir:/x"), {"XDG_STATE_HOME": "/s"}
        )
        two = _fetch.defaultStatePath(
            account, parseDestination("mbox:/x"), {"XDG_STATE_HOME": "/s"}
        )
        self.assertTrue(one.startswith("/s/pop3kit/fetch/a%2Fb@h:995-"), one)
        self.assertNotEqual(one, two)


class DestinationTests(SynchronousTestCase):
    """
    Destinations: C{maildir:DIR} and C{mbox:FILE}.
    """

    def test_parse(self) -> None:
        """
        Only C{maildir:} and C{mbox:} with a path are accepted.
        """
        self.assertEqual(parseDestination("maildir:/m").kind, "maildir")
        self.assertEqual(parseDestination("MBOX:/b").kind, "mbox")
        for text in ("/m", "mh:/m", "maildir:"):
            with self.assertRaises(FetchError, msg=text):
                parseDestination(text)

    def test_maildirAbortLeavesNothing(self) -> None:
        """
        An aborted Maildir delivery leaves nothing in C{tmp/} or C{new/}.
        """
        path = os.path.abspath(self.mktemp())
        destination = parseDestination(f"maildir:{path}")
        destination.check()
        sink = destination.open()
        sink.write(b"partial")
        sink.abort()
        self.assertEqual(readMaildir(path), {})
        self.assertEqual(os.listdir(os.path.join(path, "tmp")), [])

    def test_mboxQuotesFromLines(self) -> None:
        """
        Messages appended to an mbox read back through L{mailbox.mbox}; a body line that
        starts with C{From } is quoted.
        """
        path = os.path.abspath(self.mktemp())
        destination = parseDestination(f"mbox:{path}")
        destination.check()
        sinks = []
        for body in (b"Subject: one\n\nFrom me\n", b"Subject: two\n\nno newline"):
            sink = destination.open()
            sink.write(body)
            sink.close(len(body))
            sinks.append(sink)
        destination.commitBatch(sinks)
        box = mailbox.mbox(path)
        messages = [box.get_bytes(key) for key in box.iterkeys()]
        self.assertEqual(messages, [b"Subject: one\n\n>From me\n", b"Subject: two\n\nno newline\n"])
        self.assertFalse(os.path.exists(path + ".lock"))

    def test_unwritable(self) -> None:
        """
        A destination that cannot be created is reported before connecting.
        """
        blocker = self.mktemp()
        with open(blocker, "w"):
            pass
        with self.assertRaises(FetchError) as caught:
            parseDestination(f"maildir:{blocker}/m").check()
        self.assertEqual(caught.exception.status, _fetch.EX_CANTCREAT)


class _Abort(_fetch.Progress):
    """
    A progress display that drops every server connection once C{after} messages are
    stored: a connection lost half-way through a fetch.
    """

    def __init__(self, server: MaildirServer, after: int) -> None:
        super().__init__(io.StringIO())
        self.server = server
        self.after = after

    def update(self, done: int, octets: int, force: bool = False) -> None:
        if done >= self.after:
            for session in self.server.server.factory.servers:
                session.transport.abortConnection()  # type: ignore[union-attr]


class FetchTests(TestCase):
    """
    Whole fetches from pop3kit's own server over loopback TCP, in clear text.
    """

    timeout = 60

    def setUp(self) -> None:
        self.server = MaildirServer(self)
        self.base = os.path.abspath(self.mktemp())
        self.target = os.path.join(self.base, "Maildir")
        self.state = os.path.join(self.base, "state")
        self.account = parseURL(f"pop3://alice@127.0.0.1:{self.server.port}")

    async def fetch(self, password: str = SECRET, **options: Any) -> _fetch.FetchResult:
        """
        Fetch alice's mail into L{target} (or C{to}), then wait until the server has seen
        the session end.
        """
        progress = options.pop("progress", None)
        options.setdefault("to", f"maildir:{self.target}")
        options.setdefault("stateFile", self.state)
        fetchOptions = FetchOptions(
            destination=options.pop("to"),
            connect=ConnectOptions(noTLS=True, timeout=20),
            **options,
        )
        try:
            return await _fetch.fetch(
                reactor, self.account, fetchOptions, password, environ={}, progress=progress
            )
        finally:
            await self.sessionsOver()

    async def sessionsOver(self) -> None:
        """
        Wait until the server has seen every session end.
        """
        for session in self.server.server.factory.servers:
            await session.lost

    def stored(self) -> list[bytes]:
        """
        The messages in L{target}, in delivery (file name) order.
        """
        return inDeliveryOrder(self.target)

    async def test_keepByteExact(self) -> None:
        """
        Every fixture arrives byte for byte with LF line ends; the server keeps them all.
        """
        messages = list(FIXTURES.values())
        self.server.deliver(*messages)
        result = await self.fetch()
        self.assertEqual(self.stored(), [lfForm(m) for m in messages])
        self.assertEqual((result.fetched, result.deleted), (len(messages), 0))
        self.assertEqual(len(await serverUids(self.server)), len(messages))
        self.assertEqual(os.listdir(os.path.join(self.target, "tmp")), [])

    async def test_keepFetchesOnlyNew(self) -> None:
        """
        With C{--keep}, a second run fetches nothing, and a third only the new message.
        """
        self.server.deliver(*FIRST_MESSAGES)
        first = await self.fetch()
        second = await self.fetch()
        self.server.deliver(LATER_MESSAGE)
        third = await self.fetch()
        self.assertEqual([first.fetched, second.fetched, third.fetched], [3, 0, 1])
        self.assertEqual(third.skipped, 3)
        self.assertEqual(
            sorted(self.stored()), sorted(lfForm(m) for m in [*FIRST_MESSAGES, LATER_MESSAGE])
        )

    async def test_delete(self) -> None:
        """
        With C{--delete}, everything is stored and then gone from the server; the state file
        forgets the deleted messages.
        """
        self.server.deliver(*FIRST_MESSAGES)
        result = await self.fetch(delete=True)
        self.assertEqual((result.fetched, result.deleted), (3, 3))
        self.assertEqual(self.stored(), [lfForm(m) for m in FIRST_MESSAGES])
        self.assertEqual(await serverUids(self.server), [])
        state = StateFile(self.state)
        state.load()
        self.assertEqual(state.uids, set())

    async def test_deleteSinceLastAfterKeep(self) -> None:
        """
        C{--delete --since-last} after a C{--keep} run deletes what was fetched before
        without downloading it again, and fetches only the new message.
        """
        self.server.deliver(*FIRST_MESSAGES)
        await self.fetch()
        self.server.deliver(LATER_MESSAGE)
        result = await self.fetch(delete=True, sinceLast=True)
        self.assertEqual((result.fetched, result.skipped, result.deleted), (1, 3, 4))
        self.assertEqual(await serverUids(self.server), [])
        self.assertEqual(
            sorted(self.stored()), sorted(lfForm(m) for m in [*FIRST_MESSAGES, LATER_MESSAGE])
        )

    async def test_manyPipelined(self) -> None:
        """
        Several hundred messages, more than one pipeline window, all arrive in order.
        """
        messages = [
            b"Subject: %d\n\nbody %d\n" % (i, i) + b"x" * (i * 7) + b"\n" for i in range(300)
        ]
        self.server.deliver(*messages)
        result = await self.fetch()
        self.assertEqual(result.fetched, 300)
        self.assertEqual(self.stored(), messages)

    async def test_mbox(self) -> None:
        """
        Messages go into an mbox file, readable with L{mailbox.mbox}, with their From lines
        quoted.
        """
        messages = [b"Subject: a\n\nFrom here\n", b"Subject: b\r\n\r\nbody\r\n"]
        self.server.deliver(*messages)
        path = os.path.join(self.base, "inbox.mbox")
        result = await self.fetch(to=f"mbox:{path}")
        self.assertEqual(result.fetched, 2)
        box = mailbox.mbox(path)
        self.assertEqual(
            [box.get_bytes(key) for key in box.iterkeys()],
            [b"Subject: a\n\n>From here\n", b"Subject: b\n\nbody\n"],
        )

    async def test_wrongPassword(self) -> None:
        """
        A refused login is L{EX_NOPERM}, and nothing is stored.
        """
        self.server.deliver(*FIRST_MESSAGES)
        with self.assertRaises(FetchError) as caught:
            await self.fetch(password="wrong")
        self.assertEqual(caught.exception.status, EX_NOPERM, str(caught.exception))
        self.assertEqual(self.stored(), [])

    async def test_connectionRefused(self) -> None:
        """
        A port nobody listens on is L{EX_UNAVAILABLE}.
        """
        await self.server.server.stop()
        with self.assertRaises(FetchError) as caught:
            await self.fetch()
        self.assertEqual(caught.exception.status, EX_UNAVAILABLE, str(caught.exception))

    async def test_stlsRequired(self) -> None:
        """
        Without C{--no-tls}, a C{pop3://} server that offers no STLS is refused with
        L{EX_TLS}, before any password is sent.
        """
        self.server.deliver(*FIRST_MESSAGES)
        options = FetchOptions(destination=f"maildir:{self.target}", stateFile=self.state)
        with self.assertRaises(FetchError) as caught:
            await _fetch.fetch(reactor, self.account, options, "secret", environ={})
        await self.sessionsOver()
        self.assertEqual(caught.exception.status, EX_TLS, str(caught.exception))
        self.assertEqual(self.stored(), [])

    async def test_lostConnectionDeletesNothing(self) -> None:
        """
        A connection lost after two messages is L{EX_TEMPFAIL}: those two are stored and
        recorded, nothing is deleted, no partial file is left; the next run stores the rest
        once and deletes everything.
        """
        messages = [b"Subject: %d\n\n" % i + b"y" * 200_000 + b"\n" for i in range(6)]
        self.server.deliver(*messages)
        uids = await serverUids(self.server)
        with self.assertRaises(FetchError) as caught:
            await self.fetch(delete=True, sinceLast=True, progress=_Abort(self.server, 2))
        self.assertEqual(caught.exception.status, EX_TEMPFAIL, str(caught.exception))
        stored = self.stored()
        self.assertGreaterEqual(len(stored), 2)
        self.assertEqual(stored, messages[: len(stored)])
        self.assertEqual(await serverUids(self.server), uids)
        self.assertEqual(os.listdir(os.path.join(self.target, "tmp")), [])
        state = StateFile(self.state)
        state.load()
        self.assertEqual(len(state.uids), len(stored))

        result = await self.fetch(delete=True, sinceLast=True)
        self.assertEqual(result.fetched + len(stored), len(messages))
        self.assertEqual(self.stored(), messages)
        self.assertEqual(await serverUids(self.server), [])


class CommandLineTests(TestCase):
    """
    The command line in a subprocess: exit statuses, and a process killed mid-fetch.
    """

    timeout = 60

    def setUp(self) -> None:
        self.server = MaildirServer(self)
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.target = os.path.join(self.base, "Maildir")

    def spawn(
        self, *args: str, password: str | None = SECRET
    ) -> tuple[_Collector, IProcessTransport]:
        """
        Start C{pop3kit ARGS} with a minimal environment, C{HOME} in the test's directory.
        """
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.base,
            "PYTHONPATH": ROOT,
            "LC_ALL": "C.UTF-8",
        }
        if password is not None:
            env["POP3KIT_PASSWORD"] = password
        collector = _Collector()
        transport = reactor.spawnProcess(
            collector, COMMAND[0], [*COMMAND, *args], env=env, path=self.base
        )
        transport.closeStdin()

        async def killIfRunning() -> None:
            if collector.status is None:
                try:
                    transport.signalProcess("KILL")
                except ProcessExitedAlready:
                    pass
                await collector.whenEnded()

        self.addCleanup(killIfRunning)
        return collector, transport

    async def runCommand(self, *args: str, password: str | None = SECRET) -> tuple[int, str]:
        """
        Run C{pop3kit ARGS} to its end.

        @return: The exit status and standard error.
        """
        collector, _ = self.spawn(*args, password=password)
        status = await collector.whenEnded()
        return status, b"".join(collector.err).decode()

    def url(self) -> str:
        return f"pop3://alice@127.0.0.1:{self.server.port}"

    async def test_success(self) -> None:
        """
        A fetch exits with 0, prints nothing when not on a terminal, and stores the mail.
        """
        self.server.deliver(*FIRST_MESSAGES)
        status, err = await self.runCommand(
            "fetch", self.url(), "--no-tls", "--to", f"maildir:{self.target}"
        )
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(
            sorted(readMaildir(self.target).values()), sorted(lfForm(m) for m in FIRST_MESSAGES)
        )
        self.assertTrue(os.listdir(os.path.join(self.base, ".local", "state", "pop3kit", "fetch")))

    async def test_exitStatuses(self) -> None:
        """
        A wrong password exits 77, no password 2, a bad URL 2, STLS missing 78, each with
        one line on standard error.
        """
        to = ["--to", f"maildir:{self.target}"]
        cases = [
            ((self.url(), "--no-tls", *to), "wrong", EX_NOPERM),
            ((self.url(), "--no-tls", *to), None, EX_USAGE),
            (("http://alice@h", *to), "secret", EX_USAGE),
            ((self.url(), *to), "secret", EX_TLS),
        ]
        for args, password, expected in cases:
            status, err = await self.runCommand("fetch", *args, password=password)
            self.assertEqual(status, expected, (args, err))
            self.assertEqual(err.count("\n"), 1, err)
            self.assertTrue(err.startswith("pop3kit: error: "), err)

    async def test_killedMidFetch(self) -> None:
        """
        A fetch killed with SIGKILL half-way leaves only complete messages in C{new/} and
        deletes nothing on the server; the next run stores the rest (messages of the batch
        stored but not yet recorded when the kill came are stored twice, none is lost).
        """
        messages = [b"Subject: %d\n\n" % i + b"z" * 1_000_000 + b"\n" for i in range(100)]
        self.server.deliver(*messages)
        uids = await serverUids(self.server)
        # The server stalls after 70 messages, so the kill always lands mid-fetch.
        opened = 0
        realOpen = MaildirMailbox.openMessage

        def openMessage(mailbox: MaildirMailbox, uid: str) -> Deferred[BinaryIO]:
            nonlocal opened
            opened += 1
            if opened > 70 and stalling:
                return Deferred()
            return realOpen(mailbox, uid)

        stalling = True
        self.patch(MaildirMailbox, "openMessage", openMessage)
        args = (
            "fetch",
            self.url(),
            "--no-tls",
            "--delete",
            "--since-last",
            "--to",
            f"maildir:{self.target}",
        )
        collector, transport = self.spawn(*args)
        newDir = os.path.join(self.target, "new")
        for _ in range(400):
            if collector.status is not None:
                break
            if os.path.isdir(newDir) and len(os.listdir(newDir)) >= 3:
                break
            await deferLater(reactor, 0.02, lambda: None)
        if collector.status is None:
            transport.signalProcess("KILL")
        status = await collector.whenEnded()
        self.assertEqual(status, -signal.SIGKILL, "the fetch ended before it was killed")
        for session in self.server.server.factory.servers:
            await session.lost
        stored = inDeliveryOrder(self.target)
        self.assertGreaterEqual(len(stored), 3)
        self.assertLess(len(stored), len(messages))
        self.assertEqual(stored, messages[: len(stored)])
        self.assertEqual(await serverUids(self.server), uids)
        storedBeforeKill = len(stored)

        stalling = False
        status, err = await self.runCommand(*args)
        self.assertEqual((status, err), (0, ""))
        stored = list(readMaildir(self.target).values())
        self.assertEqual(sorted(set(stored)), sorted(messages))
        # Messages of the batch being linked when the kill came were stored but not yet
        # recorded: they may be stored again, but nothing else is.
        self.assertLessEqual(len(stored), len(messages) + storedBeforeKill)
        self.assertEqual(await serverUids(self.server), [])

    async def test_connectionRefused(self) -> None:
        """
        An unreachable server exits 69.
        """
        await self.server.server.stop()
        status, err = await self.runCommand(
            "fetch", self.url(), "--no-tls", "--to", f"maildir:{self.target}"
        )
        self.assertEqual(status, EX_UNAVAILABLE, err)
