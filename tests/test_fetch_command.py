"""
C{pop3kit fetch} on the command line, in a subprocess, against pop3kit's own server over
loopback TCP: the exit statuses and messages that reach standard error, and a process
killed with SIGKILL half-way.  These need a real process and real sockets; everything else
about fetching is tested in memory in L{tests.test_fetch}.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, BinaryIO, cast

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from pop3kit._exits import ExitStatus
from pop3kit.backends.maildir import MaildirMailbox
from tests._oracle import lfForm, readMaildir
from tests.test_fetch import FIRST_MESSAGES, inDeliveryOrder
from tests.test_interop_clients import SECRET, _Collector, serverUids
from tests.test_interop_poplib import MaildirServer

reactor = cast(Any, _reactor)

#: The repository root, for running the command line in a subprocess.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The command line, run by a subprocess.
COMMAND = [sys.executable, "-c", "import sys; from pop3kit.cli import main; sys.exit(main())"]


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
        its one-line message on standard error.
        """
        to = ["--to", f"maildir:{self.target}"]
        where = f"127.0.0.1:{self.server.port}"
        cases = [
            (
                (self.url(), "--no-tls", *to),
                "wrong",
                ExitStatus.NOPERM,
                f"login to {where} as 'alice' refused: authentication failed",
            ),
            (
                (self.url(), "--no-tls", *to),
                None,
                ExitStatus.USAGE,
                "no password: use --password-file FILE, or set POP3KIT_PASSWORD",
            ),
            (
                ("http://alice@h", *to),
                "secret",
                ExitStatus.USAGE,
                "invalid URL 'http://alice@h': the scheme must be pop3:// or pop3s://",
            ),
            (
                (self.url(), *to),
                "secret",
                ExitStatus.CONFIG,
                "127.0.0.1 offers no STLS: use pop3s://, or --no-tls on a trusted network",
            ),
        ]
        for args, password, expected, message in cases:
            status, err = await self.runCommand("fetch", *args, password=password)
            self.assertEqual((status, err), (expected, f"pop3kit: error: {message}\n"), args)

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

    async def test_interruptedThenRerun(self) -> None:
        """
        Ctrl-C (SIGINT) during C{fetch --delete} exits 130, deletes nothing, and says how
        many messages were stored and that none was deleted; the same command again
        stores only the others (nothing twice: what was stored is recorded) and deletes
        everything.
        """
        messages = [b"Subject: %d\n\n" % i + b"z" * 1_000_000 + b"\n" for i in range(80)]
        self.server.deliver(*messages)
        uids = await serverUids(self.server)
        # The server stalls after 70 messages (a first batch of 64 MiB is stored by then),
        # so the interrupt always lands mid-fetch.
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
        args = ("fetch", self.url(), "--no-tls", "--delete", "--to", f"maildir:{self.target}")
        collector, transport = self.spawn(*args)
        newDir = os.path.join(self.target, "new")
        for _ in range(1000):
            if collector.status is not None:
                break
            if os.path.isdir(newDir) and len(os.listdir(newDir)) >= 3:
                break
            await deferLater(reactor, 0.02, lambda: None)
        if collector.status is None:
            transport.signalProcess("INT")
        status = await collector.whenEnded()
        err = b"".join(collector.err).decode()
        self.assertEqual(status, ExitStatus.INTERRUPTED, err)
        lines = err.splitlines()
        self.assertEqual(lines[0], "pop3kit: error: interrupted", err)
        stored = inDeliveryOrder(self.target)
        self.assertGreaterEqual(len(stored), 3)
        self.assertLess(len(stored), len(messages))
        self.assertEqual(stored, messages[: len(stored)])
        self.assertEqual(
            lines[1:],
            [
                f"pop3kit: {len(stored)} of {len(messages)} messages were stored in "
                f"maildir:{self.target} and recorded in "
                f"{os.path.join(self.base, '.local', 'state', 'pop3kit', 'fetch')}"
                f"/alice@127.0.0.1:{self.server.port}-"
                + lines[1].rpartition("-")[2].partition(";")[0]
                + "; none was deleted on the server: the same command again deletes them "
                "there without downloading them again"
            ],
        )
        for session in self.server.server.factory.servers:
            await session.lost
        self.assertEqual(await serverUids(self.server), uids)

        stalling = False
        status, err = await self.runCommand(*args)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(inDeliveryOrder(self.target), messages)
        self.assertEqual(await serverUids(self.server), [])

    async def test_connectionRefused(self) -> None:
        """
        An unreachable server exits 69, and says so.
        """
        await self.server.server.stop()
        status, err = await self.runCommand(
            "fetch", self.url(), "--no-tls", "--to", f"maildir:{self.target}"
        )
        self.assertEqual(status, ExitStatus.UNAVAILABLE, err)
        self.assertEqual(
            err,
            f"pop3kit: error: cannot connect to 127.0.0.1:{self.server.port}: "
            "connection refused (no server listens on that port)\n",
        )
        self.assertEqual(err.count("\n"), 1, err)
