"""
Tests for C{pop3kit fetch} (L{pop3kit._fetch}): its pieces on their own, then whole fetches
from pop3kit's own server joined to the client in memory (L{pop3kit.testing.MemoryNetwork}:
no sockets, no threads, no global reactor), including lost connections, time-outs and the
order in which messages are made durable and deleted.  The command line in a subprocess
over loopback TCP (exit statuses, a process killed half-way) is in
L{tests.test_fetch_command}; fetches from Dovecot are in L{tests.test_interop_dovecot}.
"""

from __future__ import annotations

import errno
import io
import mailbox
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pop3kit import _fetch
from pop3kit._exits import ExitError, ExitStatus
from pop3kit._fetch import (
    Account,
    ConnectOptions,
    DiskSync,
    FetchOptions,
    FetchResult,
    StateFile,
    parseDestination,
    parseURL,
    readPassword,
)
from pop3kit._fetch._destinations import _LFWriter
from pop3kit.backends import maildir as maildirbackend
from pop3kit.backends.maildir import MaildirMailbox, MaildirRealm, _deliveryOrder, deliver
from pop3kit.backends.maildir import mailboxPath as _mailboxPath
from pop3kit.client import POP3Client
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import CONTRACT_MESSAGES, MemoryNetwork
from tests._fetchtesting import exitErrorOf, wrappingConnector
from tests._oracle import lfForm, readMaildir

#: alice's password.
SECRET = "secret"

#: Messages of every shape that is easy to get wrong: the contract's, and a few more.
FIXTURES: dict[str, bytes] = {
    **CONTRACT_MESSAGES,
    "dotLast": b"Subject: a final dot without line end\n\ntext\n.",
    "emptyBody": b"Subject: nothing to say\n\n",
    "loneCR": b"Subject: CR\n\nlone CR\r inside\r\nand at the end\r",
    "longLine": b"Subject: long\n\n" + b"x" * 2000 + b"\n",
    "fromLine": b"Subject: from\n\nFrom the start of a line\n",
    "dots": (
        b"Subject: dots\n\n.\n..\n...\n.leading dot\n..two leading dots\n. \nmiddle.\nend .\n.\n"
    ),
    "controls": b"Subject: controls\n\n\x00\x01\x7f\x1b[0m\x0c\n",
}

#: Three plain messages for the keep / only-new runs, and the one delivered later.
FIRST_MESSAGES = [FIXTURES["lf"], FIXTURES["crlf"], FIXTURES["dotLines"]]
LATER_MESSAGE = FIXTURES["utf8"]


def inDeliveryOrder(path: str) -> list[bytes]:
    """
    The messages of the Maildir at C{path}, in the order they were delivered (the order
    of the time stamps at the start of their names).
    """
    found = readMaildir(path)
    return [found[name] for name in sorted(found, key=_deliveryOrder)]


def runNow(call: Callable[[], None]) -> Deferred[None]:
    """
    Run a blocking call at once, in this thread: the thread hop of in-memory fetches.
    """
    return maybeDeferred(call)


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
            with self.assertRaises(ExitError, msg=url) as caught:
                parseURL(url)
            self.assertEqual(caught.exception.status, ExitStatus.USAGE, url)

    def test_passwordNeverEchoed(self) -> None:
        """
        The error for a URL with a password does not repeat the password.
        """
        with self.assertRaises(ExitError) as caught:
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
        with self.assertRaises(ExitError) as caught:
            readPassword(None, {}, io.StringIO())
        self.assertEqual(caught.exception.status, ExitStatus.USAGE)

    def test_empty(self) -> None:
        """
        An empty password is refused.
        """
        with self.assertRaises(ExitError):
            readPassword(None, {"POP3KIT_PASSWORD": ""}, io.StringIO())

    def test_missingFile(self) -> None:
        """
        A password file that cannot be read is an error naming the file, with status 1.
        """
        with self.assertRaises(ExitError) as caught:
            readPassword("/nonexistent/pw", {}, io.StringIO())
        self.assertEqual(
            (str(caught.exception), caught.exception.status),
            (
                "cannot read the password file: /nonexistent/pw: No such file or directory",
                ExitStatus.FAILURE,
            ),
        )


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

    def test_recordAllSyncs(self) -> None:
        """
        L{StateFile.recordAll} appends a batch of UIDLs and syncs the file (and, for a new
        file, its directory) before returning: the record survives a crash.
        """
        path = os.path.join(self.mktemp(), "state")
        synced: list[str] = []
        realFsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            realFsync(fd)

        self.patch(os, "fsync", fsync)
        state = StateFile(os.path.abspath(path))
        state.recordAll(["one", "two"])
        self.assertEqual(synced, [os.path.abspath(path), os.path.dirname(os.path.abspath(path))])
        state.recordAll(["three"])
        self.assertEqual(synced[2:], [os.path.abspath(path)])
        state.close()
        again = StateFile(path)
        again.load()
        self.assertEqual(again.uids, {"one", "two", "three"})

    def test_tornLastLineIgnored(self) -> None:
        """
        A last line without its line end (a crash while it was written) is not taken as
        a UIDL: that message was not known to be stored.
        """
        path = os.path.join(self.mktemp(), "state")
        state = StateFile(path)
        state.recordAll(["one", "two"])
        state.close()
        with open(path, "a") as f:
            f.write("thr")
        again = StateFile(path)
        again.load()
        self.assertEqual(again.uids, {"one", "two"})

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

    def test_saveRemovesStaleTemporaries(self) -> None:
        """
        A save removes the temporary files that runs killed while rewriting a state file
        left in its directory over an hour ago, and keeps younger ones (a rewrite may be
        under way).
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        stale = os.path.join(directory, ".state-stale")
        young = os.path.join(directory, ".state-young")
        for path in (stale, young):
            with open(path, "w") as f:
                f.write("x\n")
        old = time.time() - 7200
        os.utime(stale, (old, old))
        StateFile(os.path.join(directory, "state")).save({"a"})
        self.assertEqual(sorted(os.listdir(directory)), [".state-young", "state"])

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
            with self.assertRaises(ExitError, msg=text) as caught:
                parseDestination(text)
            self.assertEqual(
                (str(caught.exception), caught.exception.status),
                (f"invalid destination {text!r}: use maildir:DIR or mbox:FILE", ExitStatus.USAGE),
            )

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

    def test_fileOpenedOnFirstWrite(self) -> None:
        """
        A Maildir or mbox sink opens no file until its first write; an empty message opens
        one when it is closed, and is stored.
        """
        for kind in ("maildir", "mbox"):
            base = os.path.abspath(self.mktemp())
            destination = parseDestination(f"{kind}:{base}/box")
            destination.check()
            files = set(os.listdir(base))
            opened = [destination.open() for _ in range(3)]
            self.assertEqual(set(os.listdir(base)), files, kind)
            if kind == "maildir":
                self.assertEqual(os.listdir(os.path.join(base, "box", "tmp")), [])
            opened[0].close(0)
            opened[1].write(b"Subject: one\n\n")
            opened[1].close(16)
            destination.commitBatch(opened[:2])
            opened[2].abort()
            if kind == "maildir":
                stored = sorted(readMaildir(os.path.join(base, "box")).values())
            else:
                box = mailbox.mbox(os.path.join(base, "box"))
                stored = sorted(box.get_bytes(key) for key in box.iterkeys())
            self.assertEqual(stored, [b"", b"Subject: one\n\n"], kind)

    def test_checkCleansOldTmpFiles(self) -> None:
        """
        Checking a Maildir destination removes the files a killed run left in C{tmp/}
        36 hours ago or more, and keeps younger ones.
        """
        path = os.path.abspath(self.mktemp())
        destination = parseDestination(f"maildir:{path}")
        destination.check()
        leftover = os.path.join(path, "tmp", "leftover")
        with open(leftover, "wb") as f:
            f.write(b"partial")
        destination.check()
        self.assertTrue(os.path.exists(leftover))
        self.patch(maildirbackend, "TMP_MAX_AGE", -60)
        destination.check()
        self.assertFalse(os.path.exists(leftover))

    def test_mboxSpoolsInMemory(self) -> None:
        """
        An mbox sink keeps a message waiting for its batch in memory, without a file
        descriptor, up to C{SPOOL_IN_MEMORY} octets: a batch of a thousand
        messages does not run out of descriptors.
        """
        path = os.path.join(os.path.abspath(self.mktemp()), "box")
        destination = parseDestination(f"mbox:{path}")
        destination.check()
        before = len(os.listdir("/proc/self/fd"))
        sinks = []
        for i in range(1000):
            sink = destination.open()
            sink.write(b"Subject: %d\n\nbody\n" % i)
            sink.close(0)
            sinks.append(sink)
        self.assertLess(len(os.listdir("/proc/self/fd")), before + 5)
        destination.commitBatch(sinks)
        box = mailbox.mbox(path)
        self.assertEqual(len(box), 1000)
        box.close()

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
        blocker = os.path.abspath(self.mktemp())
        with open(blocker, "w"):
            pass
        with self.assertRaises(ExitError) as caught:
            parseDestination(f"maildir:{blocker}/m").check()
        self.assertEqual(
            (str(caught.exception), caught.exception.status),
            (
                f"cannot use maildir:{blocker}/m: {blocker}/m: Not a directory",
                ExitStatus.CANTCREAT,
            ),
        )


class _MemoryServer:
    """
    pop3kit's server on port 110 of a L{MemoryNetwork} (any host name reaches it), serving
    Maildirs under a temporary directory; alice's password is L{SECRET}.

    @ivar network: The network; fetches connect through C{network.reactor}.
    @ivar maildir: alice's Maildir.
    """

    def __init__(self, testCase: SynchronousTestCase) -> None:
        base = os.path.abspath(testCase.mktemp())
        root = os.path.join(base, "mail")
        os.makedirs(root)
        self.maildir = _mailboxPath(root, "alice")
        self.network = MemoryNetwork()
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=SECRET.encode())
        self.factory = POP3ServerFactory(
            Portal(MaildirRealm(root), [checker]),
            clock=self.network.reactor,
            failedLoginDelay=0,
        )
        self.network.listen(self.factory)

    def deliver(self, *messages: bytes) -> None:
        """
        Deliver C{messages} into alice's Maildir, in this order.
        """
        for message in messages:
            deliver(self.maildir, io.BytesIO(message))

    def uids(self) -> list[str]:
        """
        The unique-ids the server gives alice's messages now, asked with UIDL.
        """
        client = cast(POP3Client, self.network.connectClient().client)
        self.network.run(client.login("alice", SECRET))
        uids = self.network.run(client.listUids())
        self.network.run(client.quit())
        return sorted(uids.values())

    def dropAll(self) -> None:
        """
        Drop every connection from the server's side, as a crash would.
        """
        for connection in self.network.connections:
            connection.serverTransport.abortConnection()


class _Abort(_fetch.Progress):
    """
    A progress display that drops every server connection once C{after} messages are
    stored: a connection lost half-way through a fetch.
    """

    def __init__(self, server: _MemoryServer, after: int) -> None:
        super().__init__(io.StringIO())
        self.server = server
        self.after = after

    def update(self, done: int, octets: int, force: bool = False) -> None:
        if done >= self.after:
            self.server.dropAll()


class _RecordingSync(DiskSync):
    """
    A L{DiskSync} that records each call, with what the Maildir or mbox holds at that
    moment, before doing it.
    """

    def __init__(self, events: list[tuple[object, ...]]) -> None:
        self.events = events

    def syncFile(self, path: str) -> None:
        with open(path, "rb") as f:
            self.events.append(("syncFile", path, f.read()))
        super().syncFile(path)

    def syncDirectory(self, path: str) -> None:
        self.events.append(("syncDirectory", path, sorted(os.listdir(path))))
        super().syncDirectory(path)


class _FailingMboxSync(DiskSync):
    """
    A L{DiskSync} whose sync of one file fails with EIO.
    """

    def __init__(self, path: str) -> None:
        self._path = path

    def syncFile(self, path: str) -> None:
        if path == self._path:
            raise OSError(errno.EIO, "Input/output error", path)
        super().syncFile(path)


class _FailingDirectorySync(DiskSync):
    """
    A L{DiskSync} whose sync of one directory fails with EIO.
    """

    def __init__(self, path: str) -> None:
        self._path = path

    def syncDirectory(self, path: str) -> None:
        if path == self._path:
            raise OSError(errno.EIO, "Input/output error", path)
        super().syncDirectory(path)


def _writeFile(path: str, content: bytes) -> os.stat_result:
    """
    Write C{content} to a new file at C{path}; return its status.
    """
    with open(path, "wb") as f:
        f.write(content)
    return os.stat(path)


def _deadPid() -> int:
    """
    The id of a process that has ended.
    """
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class _RecordingClient:
    """
    A client that records which RETRs and DELEs it is asked for, and passes everything
    on to the real one.
    """

    def __init__(
        self, client: POP3Client, events: list[tuple[object, ...]], tmp: str | None
    ) -> None:
        self._client = client
        self._events = events
        self._tmp = tmp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def retrieve(self, n: int, consumer: BinaryIO) -> Deferred[int]:
        files = len(os.listdir(self._tmp)) if self._tmp is not None else None
        self._events.append(("RETR", n, files))
        d = self._client.retrieve(n, consumer)

        def received(octets: int) -> int:
            self._events.append(("received", n))
            return octets

        return d.addCallback(received)

    def delete(self, n: int) -> Deferred[None]:
        self._events.append(("DELE", n))
        return self._client.delete(n)


class _SlowThread:
    """
    A thread hop whose calls run one second (on the clock) after they are asked for, as
    a slow disk would; it counts how many run at once.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.running = 0
        self.mostAtOnce = 0

    def __call__(self, call: Callable[[], None]) -> Deferred[None]:
        self.running += 1
        self.mostAtOnce = max(self.mostAtOnce, self.running)

        def done(result: object) -> object:
            self.running -= 1
            return result

        return deferLater(self.clock, 1, call).addBoth(done)


class FetchTests(SynchronousTestCase):
    """
    Whole fetches from pop3kit's own server, joined to the client in memory.
    """

    def setUp(self) -> None:
        self.server = _MemoryServer(self)
        self.base = os.path.abspath(self.mktemp())
        self.target = os.path.join(self.base, "Maildir")
        self.state = os.path.join(self.base, "state")
        self.account = parseURL("pop3://alice@mail.example.com")

    def fetch(self, password: str = SECRET, advance: bool = False, **options: Any) -> FetchResult:
        """
        Fetch alice's mail into L{target} (or C{to}), then let the server see the session
        end.  C{progress}, C{connector}, C{sync}, C{batchMessages} and C{runInThread}
        (L{runNow} by default) go to L{_fetch.fetch}, the rest into its L{FetchOptions}.
        """
        toFetch = ("progress", "connector", "sync", "batchMessages", "runInThread")
        extra = {name: options.pop(name) for name in toFetch if name in options}
        extra.setdefault("runInThread", runNow)
        options.setdefault("to", f"maildir:{self.target}")
        options.setdefault("stateFile", self.state)
        options.setdefault("connect", ConnectOptions(noTLS=True, timeout=20))
        fetchOptions = FetchOptions(destination=options.pop("to"), **options)
        try:
            return self.server.network.run(
                _fetch.fetch(
                    self.server.network.reactor,
                    self.account,
                    fetchOptions,
                    password,
                    environ={},
                    warnings=io.StringIO(),
                    **extra,
                ),
                advance=advance,
            )
        finally:
            self.server.network.flush()

    def fetchFails(self, **options: Any) -> ExitError:
        """
        Fetch as L{fetch} does, and return the L{ExitError} it fails with (after checking
        that no command was left failing unhandled).
        """
        return exitErrorOf(self, self.fetch, **options)

    def stored(self) -> list[bytes]:
        """
        The messages in L{target}, in delivery (file name) order.
        """
        return inDeliveryOrder(self.target)

    def recordingConnector(
        self, events: list[tuple[object, ...]], tmp: str | None = None
    ) -> _fetch.Connector:
        """
        A connector that connects through the memory network and gives a client that
        records its RETRs and DELEs into C{events} (with how many files C{tmp} holds when
        each RETR is asked for).
        """

        return wrappingConnector(lambda client: _RecordingClient(client, events, tmp))

    def test_keepByteExact(self) -> None:
        """
        Every fixture arrives byte for byte with LF line ends; the server keeps them all.
        """
        messages = list(FIXTURES.values())
        self.server.deliver(*messages)
        result = self.fetch()
        self.assertEqual(self.stored(), [lfForm(m) for m in messages])
        self.assertEqual((result.fetched, result.deleted), (len(messages), 0))
        self.assertEqual(len(self.server.uids()), len(messages))
        self.assertEqual(os.listdir(os.path.join(self.target, "tmp")), [])

    def test_keepFetchesOnlyNew(self) -> None:
        """
        With C{--keep}, a second run fetches nothing, and a third only the new message.
        """
        self.server.deliver(*FIRST_MESSAGES)
        first = self.fetch()
        second = self.fetch()
        self.server.deliver(LATER_MESSAGE)
        third = self.fetch()
        self.assertEqual([first.fetched, second.fetched, third.fetched], [3, 0, 1])
        self.assertEqual(third.skipped, 3)
        self.assertEqual(
            sorted(self.stored()), sorted(lfForm(m) for m in [*FIRST_MESSAGES, LATER_MESSAGE])
        )

    def test_delete(self) -> None:
        """
        With C{--delete}, everything is stored and then gone from the server; the state file
        forgets the deleted messages.
        """
        self.server.deliver(*FIRST_MESSAGES)
        result = self.fetch(delete=True)
        self.assertEqual((result.fetched, result.deleted), (3, 3))
        self.assertEqual(self.stored(), [lfForm(m) for m in FIRST_MESSAGES])
        self.assertEqual(self.server.uids(), [])
        state = StateFile(self.state)
        state.load()
        self.assertEqual(state.uids, set())

    def test_deleteSinceLastAfterKeep(self) -> None:
        """
        C{--delete --since-last} after a C{--keep} run deletes what was fetched before
        without downloading it again, and fetches only the new message.
        """
        self.server.deliver(*FIRST_MESSAGES)
        self.fetch()
        self.server.deliver(LATER_MESSAGE)
        result = self.fetch(delete=True, sinceLast=True)
        self.assertEqual((result.fetched, result.skipped, result.deleted), (1, 3, 4))
        self.assertEqual(self.server.uids(), [])
        self.assertEqual(
            sorted(self.stored()), sorted(lfForm(m) for m in [*FIRST_MESSAGES, LATER_MESSAGE])
        )

    def test_manyPipelined(self) -> None:
        """
        Several hundred messages, more than the client's pipelining window, all arrive in
        order.
        """
        messages = [
            b"Subject: %d\n\nbody %d\n" % (i, i) + b"x" * (i * 7) + b"\n" for i in range(300)
        ]
        self.server.deliver(*messages)
        result = self.fetch()
        self.assertEqual(result.fetched, 300)
        self.assertEqual(self.stored(), messages)

    def test_oneWindowNoFileUntilData(self) -> None:
        """
        The client gets as many RETRs as it pipelines before the first answer, and never
        holds more (its window is the only one, and a maildrop of any size costs the same
        memory); a RETR the client holds opens no file: C{tmp/} is empty when each is
        asked for.
        """
        messages = [b"Subject: %d\n\n" % i + b"y" * 1000 + b"\n" for i in range(150)]
        self.server.deliver(*messages)
        events: list[tuple[object, ...]] = []
        tmp = os.path.join(self.target, "tmp")
        result = self.fetch(connector=self.recordingConnector(events, tmp))
        self.assertEqual(result.fetched, 150)
        window = POP3Client(clock=Clock()).maxPipeline
        self.assertLess(window, 150)
        firstAnswer = events.index(("received", 1))
        self.assertEqual(events[:firstAnswer], [("RETR", n, 0) for n in range(1, window + 1)])
        asked = received = 0
        for event in events:
            asked += event[0] == "RETR"
            received += event[0] == "received"
            self.assertLessEqual(asked - received, window)
        self.assertEqual(asked, 150)
        self.assertEqual(self.stored(), messages)

    def test_downloadWhileCommitting(self) -> None:
        """
        While a batch is being made durable, messages keep arriving, and the next batch
        grows past its limit until the disk is free: one commit at a time, none lost.
        """
        messages = [b"Subject: %d\n\nbody\n" % i for i in range(10)]
        self.server.deliver(*messages)
        events: list[tuple[object, ...]] = []
        slow = _SlowThread(self.server.network.reactor)
        result = self.fetch(
            advance=True, batchMessages=2, runInThread=slow, sync=_RecordingSync(events)
        )
        self.assertEqual(result.fetched, 10)
        self.assertEqual(self.stored(), messages)
        self.assertEqual(slow.mostAtOnce, 1)
        newDir = os.path.join(self.target, "new")
        batches = [len(cast(list[str], e[2])) for e in events if e[:2] == ("syncDirectory", newDir)]
        # new/ holds 2 messages after the first batch, and all 10 after the second.
        self.assertEqual(batches, [2, 10])

    def test_mbox(self) -> None:
        """
        Messages go into an mbox file, readable with L{mailbox.mbox}, with their From lines
        quoted.
        """
        messages = [b"Subject: a\n\nFrom here\n", b"Subject: b\r\n\r\nbody\r\n"]
        self.server.deliver(*messages)
        path = os.path.join(self.base, "inbox.mbox")
        result = self.fetch(to=f"mbox:{path}")
        self.assertEqual(result.fetched, 2)
        box = mailbox.mbox(path)
        self.assertEqual(
            [box.get_bytes(key) for key in box.iterkeys()],
            [b"Subject: a\n\n>From here\n", b"Subject: b\n\nbody\n"],
        )

    def test_durableBeforeDeleteMaildir(self) -> None:
        """
        With C{--delete}, no DELE is sent before the messages are on disk: every file in
        C{tmp/} is synced (C{fsync}, each file: no C{sync(2)} of the whole host), then
        C{tmp/}, then each is linked into C{new/}, and C{new/} is synced first.
        """
        self.server.deliver(*FIRST_MESSAGES)
        events: list[tuple[object, ...]] = []
        self.fetch(
            delete=True, connector=self.recordingConnector(events), sync=_RecordingSync(events)
        )
        newDir = os.path.join(self.target, "new")
        tmpDir = os.path.join(self.target, "tmp")
        stored = sorted(os.listdir(newDir))
        synced = [event for event in events if event[0] not in ("RETR", "received")]
        # Each file is synced from tmp/, complete, with the name it gets in new/.
        files = synced[:3]
        self.assertEqual([e[0] for e in files], ["syncFile"] * 3)
        self.assertEqual([os.path.dirname(cast(str, e[1])) for e in files], [tmpDir] * 3)
        self.assertEqual([cast(bytes, e[2]) for e in files], [lfForm(m) for m in FIRST_MESSAGES])
        self.assertEqual(
            sorted(os.path.basename(cast(str, e[1])) for e in files),
            sorted(name.partition(",")[0] for name in stored),
        )
        self.assertEqual(
            synced[3:],
            [
                ("syncDirectory", tmpDir, sorted(os.path.basename(cast(str, e[1])) for e in files)),
                ("syncDirectory", newDir, stored),
                ("DELE", 1),
                ("DELE", 2),
                ("DELE", 3),
            ],
        )
        # What was synced is all of the messages, complete.
        receivedAll = events.index(("received", 3))
        self.assertLess(receivedAll, events.index(files[0]))
        self.assertEqual(self.stored(), [lfForm(m) for m in FIRST_MESSAGES])

    def test_recordedBeforeDelete(self) -> None:
        """
        With C{--delete}, each message's UIDL is in the state file (synced with its batch)
        before its DELE is sent: a crash between the two never has it downloaded again.
        """
        self.server.deliver(*FIRST_MESSAGES)
        client = cast(POP3Client, self.server.network.connectClient().client)
        self.server.network.run(client.login("alice", SECRET))
        byNumber = self.server.network.run(client.listUids())
        self.server.network.run(client.quit())
        events: list[tuple[object, ...]] = []
        statePath = self.state

        class Checking(_RecordingClient):
            def delete(self, n: int) -> Deferred[None]:
                state = StateFile(statePath)
                state.load()
                events.append(("recorded at DELE", n, sorted(state.uids)))
                return super().delete(n)

        self.fetch(
            delete=True,
            batchMessages=1,
            connector=wrappingConnector(lambda client: Checking(client, events, None)),
        )
        recorded = [event for event in events if event[0] == "recorded at DELE"]
        self.assertEqual(len(recorded), 3)
        for _, n, known in recorded:
            self.assertIn(byNumber[cast(int, n)], cast(list[str], known))

    def test_syncErrorDeletesNothing(self) -> None:
        """
        An I/O error from syncing C{new/} (the messages may not be on disk) fails the
        fetch with L{ExitStatus.CANTCREAT} and one line; no DELE is sent, the batch is
        taken back out of C{new/} and not recorded, and the next run stores it once.
        """
        self.server.deliver(*FIRST_MESSAGES)
        uids = self.server.uids()
        events: list[tuple[object, ...]] = []
        target = self.target

        class FailingSync(_RecordingSync):
            def syncDirectory(self, path: str) -> None:
                super().syncDirectory(path)
                if path == os.path.join(target, "new"):
                    raise OSError(errno.EIO, os.strerror(errno.EIO), path)

        error = self.fetchFails(
            delete=True, connector=self.recordingConnector(events), sync=FailingSync(events)
        )
        self.assertEqual(error.status, ExitStatus.CANTCREAT)
        self.assertEqual(
            str(error),
            f"cannot store messages in maildir:{self.target}: "
            f"{self.target}/new: Input/output error",
        )
        self.assertNotIn("DELE", [event[0] for event in events])
        self.assertEqual(self.server.uids(), uids)
        self.assertEqual(self.stored(), [])
        self.assertEqual(os.listdir(os.path.join(self.target, "tmp")), [])
        result = self.fetch(delete=True)
        self.assertEqual(result.fetched, 3)
        self.assertEqual(self.stored(), [lfForm(m) for m in FIRST_MESSAGES])

    def test_interruptDuringCommit(self) -> None:
        """
        An interrupt (the fetch's L{Deferred} cancelled, as Ctrl-C does) while a batch is
        being made durable in a thread lets that commit finish and be recorded; nothing
        is deleted; a line says how many messages were stored and that none was deleted;
        the same fetch again stores only the others, once each.
        """
        messages = [b"Subject: %d\n\nbody\n" % i for i in range(6)]
        self.server.deliver(*messages)
        uids = self.server.uids()
        held: list[tuple[Callable[[], None], Deferred[None]]] = []

        def runLater(call: Callable[[], None]) -> Deferred[None]:
            d: Deferred[None] = Deferred()
            held.append((call, d))
            return d

        warnings = io.StringIO()
        fetching = Deferred.fromCoroutine(
            _fetch.fetch(
                self.server.network.reactor,
                self.account,
                FetchOptions(
                    destination=f"maildir:{self.target}",
                    delete=True,
                    stateFile=self.state,
                    connect=ConnectOptions(noTLS=True, timeout=20),
                ),
                SECRET,
                environ={},
                warnings=warnings,
                runInThread=runLater,
                batchMessages=2,
            )
        )
        failures: list[Failure] = []
        fetching.addErrback(failures.append)
        self.server.network.flush()
        self.assertEqual(len(held), 1)
        self.assertEqual(os.listdir(os.path.join(self.target, "new")), [])
        fetching.cancel()
        self.server.network.flush()
        self.assertEqual(failures, [], "the fetch ended before the commit under way")
        call, d = held.pop()
        call()
        d.callback(None)
        self.server.network.flush()
        self.assertEqual(len(failures), 1)
        self.assertEqual(len(self.stored()), 2)
        self.assertEqual(self.stored(), messages[:2])
        self.assertEqual(self.server.uids(), uids)
        self.assertEqual(
            warnings.getvalue(),
            f"pop3kit: 2 of 6 messages were stored in maildir:{self.target} and recorded "
            f"in {self.state}; none was deleted on the server: the same command again "
            "deletes them there without downloading them again\n",
        )
        self.assertEqual(os.listdir(os.path.join(self.target, "tmp")), [])
        result = self.fetch(delete=True)
        self.assertEqual((result.fetched, result.skipped, result.deleted), (4, 2, 6))
        self.assertEqual(self.stored(), messages)
        self.assertEqual(self.server.uids(), [])

    def test_fullDisk(self) -> None:
        """
        A full disk while a message is written is L{ExitStatus.CANTCREAT} with one line
        naming the file, not a raw L{OSError}; nothing is deleted, and no file is left in
        C{tmp/}, also for messages whose octets were still arriving.
        """
        messages = [b"Subject: %d\n\n" % i + b"x" * 600_000 + b"\n" for i in range(4)]
        self.server.deliver(*messages)
        uids = self.server.uids()
        realWrite = maildirbackend._Delivery.write
        writes = 0

        def write(delivery: maildirbackend._Delivery, data: bytes) -> None:
            nonlocal writes
            writes += 1
            if writes == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), delivery.tmpPath)
            realWrite(delivery, data)

        self.patch(maildirbackend._Delivery, "write", write)
        error = self.fetchFails(delete=True)
        self.assertEqual(error.status, ExitStatus.CANTCREAT)
        self.assertRegex(
            str(error),
            f"^cannot store message 1: {self.target}/tmp/[^/]+: No space left on device$",
        )
        self.assertEqual(self.stored(), [])
        self.assertEqual(os.listdir(os.path.join(self.target, "tmp")), [])
        self.assertEqual(self.server.uids(), uids)

    def test_deleteRerunSkipsRecorded(self) -> None:
        """
        C{--delete} (without C{--since-last}) after an earlier run stored messages does
        not download them again: it deletes them.
        """
        self.server.deliver(*FIRST_MESSAGES)
        self.fetch()
        result = self.fetch(delete=True)
        self.assertEqual((result.fetched, result.skipped, result.deleted), (0, 3, 3))
        self.assertEqual(self.stored(), [lfForm(m) for m in FIRST_MESSAGES])
        self.assertEqual(self.server.uids(), [])

    def test_mboxRecoversFromKilledRun(self) -> None:
        """
        A run killed while appending to an mbox leaves its dot-lock, its journal and a
        torn message; the next run breaks the lock, cuts the torn message off, and stores
        every message once.
        """
        self.server.deliver(*FIRST_MESSAGES)
        path = os.path.join(self.base, "inbox.mbox")
        os.makedirs(self.base)
        before = b"From x Mon Jan  5 10:00:00 2026\nSubject: old\n\nkept\n\n"
        st = _writeFile(path, before + b"From MAILER-DAEMON Mon Jan  5 10:00:01 2026\nSubj")
        with open(path + ".pop3kit-append", "w") as f:
            f.write(f"pop3kit-append 1\n{st.st_dev} {st.st_ino}\n{len(before)} 999\n")
            f.write(f"{len(before)}\nend\n")
        with open(path + ".lock", "w") as f:
            f.write(f"{_deadPid()}:{os.uname().nodename}\n")
        result = self.fetch(to=f"mbox:{path}", delete=True)
        self.assertEqual((result.fetched, result.deleted), (3, 3))
        box = mailbox.mbox(path)
        self.assertEqual(
            [box.get_bytes(key) for key in box.iterkeys()],
            [b"Subject: old\n\nkept\n"] + [lfForm(m) for m in FIRST_MESSAGES],
        )
        self.assertEqual(sorted(os.listdir(self.base)), ["inbox.mbox", "state"])

    def test_mboxSyncFailureStoresNothing(self) -> None:
        """
        When the mbox cannot be synced (EIO), the append is cut back, nothing is deleted
        on the server, no lock or journal is left, and the next run stores everything once.
        """
        self.server.deliver(*FIRST_MESSAGES)
        path = os.path.join(self.base, "inbox.mbox")
        error = self.fetchFails(to=f"mbox:{path}", delete=True, sync=_FailingMboxSync(path))
        self.assertEqual(error.status, ExitStatus.CANTCREAT, str(error))
        self.assertEqual(os.path.getsize(path), 0)
        self.assertEqual(sorted(os.listdir(self.base)), ["inbox.mbox"])
        self.assertEqual(len(self.server.uids()), 3)
        result = self.fetch(to=f"mbox:{path}", delete=True)
        self.assertEqual(result.fetched, 3)
        box = mailbox.mbox(path)
        self.assertEqual(
            [box.get_bytes(key) for key in box.iterkeys()], [lfForm(m) for m in FIRST_MESSAGES]
        )

    def test_mboxDirectorySyncFailureStoresNothing(self) -> None:
        """
        When the mbox's directory cannot be synced after the append (the journal's removal
        may not be durable), the batch is cut back under the locks: nothing is deleted on
        the server and the next run stores every message once.
        """
        self.server.deliver(*FIRST_MESSAGES)
        path = os.path.join(self.base, "inbox.mbox")
        sync = _FailingDirectorySync(self.base)
        error = self.fetchFails(to=f"mbox:{path}", delete=True, sync=sync)
        self.assertEqual(error.status, ExitStatus.CANTCREAT, str(error))
        self.assertEqual(os.path.getsize(path), 0)
        self.assertEqual(len(self.server.uids()), 3)
        self.fetch(to=f"mbox:{path}", delete=True)
        box = mailbox.mbox(path)
        self.assertEqual(
            [box.get_bytes(key) for key in box.iterkeys()], [lfForm(m) for m in FIRST_MESSAGES]
        )

    def test_durableBeforeDeleteMbox(self) -> None:
        """
        With C{--delete} into an mbox, no DELE is sent before the mbox file, holding every
        message, and its directory are synced.
        """
        self.server.deliver(*FIRST_MESSAGES)
        events: list[tuple[object, ...]] = []
        path = os.path.join(self.base, "inbox.mbox")
        self.fetch(
            to=f"mbox:{path}",
            delete=True,
            connector=self.recordingConnector(events),
            sync=_RecordingSync(events),
        )
        with open(path, "rb") as f:
            content = f.read()
        self.assertEqual(content.count(b"From MAILER-DAEMON"), 3)
        journal = path + ".pop3kit-append"
        kept = [event for event in events if event[0] not in ("RETR", "received")]
        # The journal, recording the size before the append, is durable before the
        # mbox is touched; the mbox is durable, and the journal gone, before any DELE.
        self.assertEqual(kept[0][:2], ("syncFile", journal))
        self.assertIn(b"\n0 %d\n" % len(content), cast(bytes, kept[0][2]))
        self.assertEqual(
            kept[1:],
            [
                (
                    "syncDirectory",
                    self.base,
                    ["inbox.mbox", "inbox.mbox.lock", "inbox.mbox.pop3kit-append"],
                ),
                ("syncFile", path, content),
                # The journal's removal, made durable still under the locks.
                ("syncDirectory", self.base, ["inbox.mbox", "inbox.mbox.lock"]),
                ("DELE", 1),
                ("DELE", 2),
                ("DELE", 3),
            ],
        )

    def test_wrongPassword(self) -> None:
        """
        A refused login is L{ExitStatus.NOPERM}, and nothing is stored.
        """
        self.server.deliver(*FIRST_MESSAGES)
        error = self.fetchFails(password="wrong")
        self.assertEqual(
            (str(error), error.status),
            (
                "login to mail.example.com:110 as 'alice' refused: authentication failed",
                ExitStatus.NOPERM,
            ),
        )
        self.assertEqual(self.stored(), [])

    def test_connectionRefused(self) -> None:
        """
        A port nobody listens on is L{ExitStatus.UNAVAILABLE}.
        """
        self.account = parseURL("pop3://alice@mail.example.com:1110")
        error = self.fetchFails(advance=True)
        self.assertEqual(
            (str(error), error.status),
            (
                "cannot connect to mail.example.com:1110: connection refused "
                "(no server listens on that port)",
                ExitStatus.UNAVAILABLE,
            ),
        )

    def test_stlsRequired(self) -> None:
        """
        Without C{--no-tls}, a C{pop3://} server that offers no STLS is refused with
        L{ExitStatus.CONFIG}, before any password is sent.
        """
        self.server.deliver(*FIRST_MESSAGES)
        error = self.fetchFails(connect=ConnectOptions())
        self.assertEqual(
            (str(error), error.status),
            (
                "mail.example.com offers no STLS: use pop3s://, or --no-tls on a trusted network",
                ExitStatus.CONFIG,
            ),
        )
        self.assertEqual(self.stored(), [])

    def test_timeout(self) -> None:
        """
        A server that stops answering in the middle of a fetch is
        L{ExitStatus.TEMPFAIL}, with a message that says what was being done; the
        messages received but not yet made durable are removed, and nothing is deleted.
        """
        messages = [b"Subject: %d\n\nbody\n" % i for i in range(4)]
        self.server.deliver(*messages)
        opened = 0
        realOpen = MaildirMailbox.openMessage

        def openMessage(mailbox: MaildirMailbox, uid: str) -> Deferred[BinaryIO]:
            nonlocal opened
            opened += 1
            return Deferred() if opened > 2 else realOpen(mailbox, uid)

        self.patch(MaildirMailbox, "openMessage", openMessage)
        uids = self.server.uids()
        error = self.fetchFails(advance=True, delete=True)
        self.assertEqual(
            (str(error), error.status),
            (
                "mail.example.com:110 did not answer in time while downloading",
                ExitStatus.TEMPFAIL,
            ),
        )
        self.assertEqual(self.stored(), [])
        self.assertEqual(os.listdir(os.path.join(self.target, "tmp")), [])
        self.assertEqual(self.server.uids(), uids)

    def test_lostConnectionDeletesNothing(self) -> None:
        """
        A connection lost after two messages is L{ExitStatus.TEMPFAIL}: those stored are
        recorded, nothing is deleted, no partial file is left; the next run stores the rest
        once and deletes everything.
        """
        messages = [b"Subject: %d\n\n" % i + b"y" * 200_000 + b"\n" for i in range(6)]
        self.server.deliver(*messages)
        uids = self.server.uids()
        error = self.fetchFails(
            delete=True, sinceLast=True, progress=_Abort(self.server, 2), batchMessages=2
        )
        self.assertEqual(error.status, ExitStatus.TEMPFAIL, str(error))
        self.assertTrue(
            str(error).startswith("the connection to mail.example.com:110 was lost: "), error
        )
        stored = self.stored()
        self.assertGreaterEqual(len(stored), 2)
        self.assertLess(len(stored), len(messages))
        self.assertEqual(stored, messages[: len(stored)])
        self.assertEqual(self.server.uids(), uids)
        self.assertEqual(os.listdir(os.path.join(self.target, "tmp")), [])
        state = StateFile(self.state)
        state.load()
        self.assertEqual(len(state.uids), len(stored))

        result = self.fetch(delete=True, sinceLast=True)
        self.assertEqual(result.fetched + len(stored), len(messages))
        self.assertEqual(self.stored(), messages)
        self.assertEqual(self.server.uids(), [])
