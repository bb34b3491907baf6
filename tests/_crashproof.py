"""
The crash proof: run a command that writes mail, kill it at each of its file-mutating
system calls in turn (and, separately, fail that call with C{EIO} and with C{ENOSPC}), then
check that nothing kept is lost, nothing is torn, nothing appears twice beyond one
documented batch, and that the next run succeeds without a hand repair.

How it works
============
A small C library, C{tests/crashshim.c}, compiled at test time with the system C{cc}
(L{compileShim}; missing C{cc} skips, or fails under CI) and loaded with C{LD_PRELOAD},
counts the calls of the whole process (one atomic counter shared by every thread: strace's
C{inject=...:when=N} counts per thread, which is wrong for a threaded Python process) on
files under one I{watched} directory: C{open} for writing or creating, C{write},
C{close} of a written file, C{fsync}, C{fdatasync}, C{ftruncate}, C{rename}, C{link},
C{symlink}, C{unlink}, C{rmdir}, C{mkdir}.  At call number C{N} it kills the process with
C{SIGKILL} before the call is made, or fails it with the error asked for.

L{sweep} first runs the command once only counting (a clean run, which must succeed and
pass the checks), then once per chosen call number and action.  If there are more runs
than C{maxRuns}, the call numbers are sampled, deterministically from a seed that is
printed (C{CRASHPROOF_SEED=S} repeats a sample; C{CRASHPROOF_FULL=1} runs every call;
C{CRASHPROOF_AT=N,M} runs only those calls, to repeat one failure).

Plugging in a backend or a destination
======================================
Write a L{Target} (any object with these five members) and call L{sweep} from a test::

    class MboxDeliverTarget:
        name = "deliver into mbox"

        def prepare(self, directory):
            # A fresh fixture; only calls under `directory` are counted and faulted.
            ...

        def command(self, directory):
            return Command([*PYTHON, "-m", "tests._crashproof", "...", directory], stdin=b"...")

        def checkFault(self, directory, run):
            # Right after the faulted run (`run.status` < 0 if killed, `run.acted` the call
            # faulted): nothing torn, nothing kept lost.  Raise AssertionError otherwise.
            ...

        def recover(self, directory, run):
            # The command that runs next (an MTA's retry, the same fetch again), or None.
            return self.command(directory) if run.status != 0 else None

        def checkRecovered(self, directory, run, recovery):
            # After the recovery run (None if there was none): everything is there, once
            # (or twice within the documented batch).
            ...

    class MboxCrashTests(SynchronousTestCase):
        def test_deliver(self):
            sweep(self, MboxDeliverTarget(), maxRuns=30)

Ready targets: L{DeliverTarget} (C{pop3kit deliver}), L{FetchTarget} (a fetch into any
destination, given a reader for it; the POP3 server runs in its own process, see
L{ServerProcess}), L{ExpungeTarget} (a backend's expunge, the server's UPDATE state, run
by this module's C{expunge} driver for any realm factory).  For the mbox backend and
destination, a few lines do::

    def readMbox(path):
        box = mailbox.mbox(path)
        try:
            return [box.get_bytes(key) for key in box.iterkeys()]
        finally:
            box.close()

    class MboxFetchTarget(FetchTarget):
        def unrecorded(self, run):
            # The messages appended since the state file was last synced (a batch may
            # outgrow `batch` while the previous one is being committed): count them
            # from run.calls, as FetchTarget.unrecorded counts links into new/.
            ...

    sweep(self, MboxFetchTarget(self, "mbox", readMbox))
    sweep(self, ExpungeTarget("mbox expunge", "my.module:mboxRealm", fillMbox, readMboxRoot))

(C{tests/test_crashproof_mbox.py} does this, and runs L{DeliverTarget}'s checks on the
mbox delivery), where C{mboxRealm(root)} builds the realm serving C{root} (alice's mbox under it),
C{fillMbox(root, messages)} stores the messages and returns their UIDs as the backend
lists them, and C{readMboxRoot(root)} returns alice's messages as the backend stores them.
Every call under the watched directory counts, the dot-lock's C{open}/C{link}/C{unlink}
included: a kill while the lock is held is then checked to leave no lock that stops the
next run.

This module is also the driver run in the subprocesses: C{python -m tests._crashproof
serve|fetch|expunge ...}.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import random
import shutil
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from twisted.trial.unittest import SynchronousTestCase as _TrialTestCase

from tests._tools import missingTool, requireTool

__all__ = [
    "ACTIONS",
    "PYTHON",
    "Call",
    "Command",
    "DeliverTarget",
    "ExpungeTarget",
    "FetchTarget",
    "Run",
    "ServerProcess",
    "Target",
    "compileShim",
    "sweep",
]

#: The repository root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The shim's source.
SHIM_SOURCE = os.path.join(ROOT, "tests", "crashshim.c")

#: The faults: a kill before the call, or the call failing with an error.
ACTIONS = ("kill", "eio", "enospc")

#: How to run Python in a subprocess, with this repository importable.
PYTHON = [sys.executable]

_shims: dict[str, str] = {}


def compileShim(testCase: _TrialTestCase) -> str:
    """
    Compile C{tests/crashshim.c} with the system C{cc} (once per test process).  A
    missing C{cc}, or one that cannot compile it (no C library headers), skips the test,
    or fails it under CI.

    @param testCase: The running test (its C{mktemp} gives the directory).
    @return: The path of the shared library.
    """
    cc = requireTool("cc", "gcc")
    if cc in _shims and os.path.exists(_shims[cc]):
        return _shims[cc]
    directory = os.path.abspath(testCase.mktemp())
    os.makedirs(directory)
    library = os.path.join(directory, "crashshim.so")
    compiled = subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-Wall", "-o", library, SHIM_SOURCE, "-ldl"],
        capture_output=True,
    )
    if compiled.returncode != 0:
        missingTool(
            f"{cc} cannot compile the crash shim (Debian packages gcc, libc6-dev): "
            + compiled.stderr.decode("utf-8", "replace").strip()
        )
    _shims[cc] = library
    return library


@dataclasses.dataclass(frozen=True)
class Call:
    """
    One counted call: its number, operation (C{open}, C{write}, C{fsync}...) and path
    (the base name for calls on a file descriptor).
    """

    number: int
    operation: str
    path: str

    def __str__(self) -> str:
        return f"#{self.number} {self.operation} {self.path}"


@dataclasses.dataclass
class Command:
    """
    A command to run: its arguments, standard input and extra environment.
    """

    argv: Sequence[str]
    stdin: bytes = b""
    env: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Run:
    """
    One run of a command.

    @ivar status: The exit status, or minus the signal that ended it.
    @ivar calls: The counted calls, in order (with the shim).
    @ivar acted: The call faulted, if the run reached it.
    @ivar action: The fault (C{kill}, C{eio}, C{enospc}), or L{None}.
    """

    status: int
    stdout: bytes
    stderr: bytes
    calls: list[Call]
    acted: Call | None = None
    action: str | None = None

    @property
    def errorText(self) -> str:
        """
        Standard error, decoded.
        """
        return self.stderr.decode("utf-8", "replace")

    def describe(self) -> str:
        """
        What happened, for a failure message.
        """
        fault = f"{self.action} at {self.acted}" if self.acted else f"{self.action} (not reached)"
        return f"{fault}: exit {self.status}, stderr {self.errorText!r}"


class Target(Protocol):
    """
    A command under the crash proof, and its checks (see the module's docstring).
    """

    name: str

    def prepare(self, directory: str) -> None: ...

    def command(self, directory: str) -> Command: ...

    def checkFault(self, directory: str, run: Run) -> None: ...

    def recover(self, directory: str, run: Run) -> Command | None: ...

    def checkRecovered(self, directory: str, run: Run, recovery: Run | None) -> None: ...


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": ROOT,
        "LC_ALL": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


def runCommand(
    command: Command,
    shim: str | None = None,
    watched: str | None = None,
    at: int = 0,
    action: str = "kill",
    log: str | None = None,
) -> Run:
    """
    Run C{command} to its end, with the shim counting calls under C{watched} and acting at
    call C{at} (0: only counting) if C{shim} is given.
    """
    env = _environment(command.env)
    if shim is not None:
        assert watched is not None and log is not None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(log)
        env.update(
            LD_PRELOAD=shim,
            CRASHSHIM_PREFIX=watched,
            CRASHSHIM_AT=str(at),
            CRASHSHIM_ACTION=action,
            CRASHSHIM_LOG=log,
        )
    done = subprocess.run(
        list(command.argv), input=command.stdin, capture_output=True, env=env, cwd=ROOT, timeout=120
    )
    calls: list[Call] = []
    acted = None
    if shim is not None and log is not None and os.path.exists(log):
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                number, operation, rest = line.rstrip("\n").split(" ", 2)
                path = rest.removesuffix(" *")
                if watched is not None and path.startswith(watched + os.sep):
                    path = path[len(watched) + 1 :]
                call = Call(int(number), operation, path)
                calls.append(call)
                if rest.endswith(" *"):
                    acted = call
    return Run(done.returncode, done.stdout, done.stderr, calls, acted, action if at else None)


def _choose(total: int, maxRuns: int, actions: Sequence[str], seed: int) -> list[tuple[str, int]]:
    """
    The (action, call number) pairs to run: all of them, or a deterministic sample of at
    most C{maxRuns} that always holds the first and last calls for each action.
    """
    everything = [(action, n) for action in actions for n in range(1, total + 1)]
    if len(everything) <= maxRuns:
        return everything
    chooser = random.Random(seed)
    perAction = max(2, maxRuns // len(actions))
    chosen: list[tuple[str, int]] = []
    for action in actions:
        inner = list(range(2, total))
        picks = {1, total, *chooser.sample(inner, min(len(inner), perAction - 2))}
        chosen.extend((action, n) for n in sorted(picks))
    return chosen


def sweep(
    testCase: _TrialTestCase,
    target: Target,
    actions: Sequence[str] = ACTIONS,
    maxRuns: int = 45,
    seed: int | None = None,
) -> list[Run]:
    """
    Run the crash proof of C{target}: see the module's docstring.

    @param testCase: The running test.
    @param actions: The faults to inject.
    @param maxRuns: At most this many faulted runs (sampled beyond); the environment's
        C{CRASHPROOF_FULL=1} lifts the limit.
    @param seed: The sampling seed; C{CRASHPROOF_SEED}, else one derived from the target's
        name.
    @return: The faulted runs.
    @raise AssertionError: From the first check that fails, with the fault, the
        command's standard error and how to repeat it.
    """
    shim = compileShim(testCase)
    base = os.path.abspath(testCase.mktemp())
    os.makedirs(base)
    directory = os.path.join(base, "watched")
    log = os.path.join(base, "calls.log")
    if seed is None:
        seed = int(os.environ.get("CRASHPROOF_SEED", zlib.crc32(target.name.encode())))
    if os.environ.get("CRASHPROOF_FULL", "") not in ("", "0"):
        maxRuns = 1 << 30

    def fresh() -> None:
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.makedirs(directory)
        target.prepare(directory)

    fresh()
    clean = runCommand(target.command(directory), shim, directory, 0, "kill", log)
    if clean.status != 0 or not clean.calls:
        raise AssertionError(
            f"{target.name}: the clean run failed (exit {clean.status}, "
            f"{len(clean.calls)} calls): {clean.errorText}"
        )
    target.checkFault(directory, clean)
    target.checkRecovered(directory, clean, None)
    total = len(clean.calls)
    chosen = _choose(total, maxRuns, actions, seed)
    only = os.environ.get("CRASHPROOF_AT", "")
    if only:
        chosen = [(action, int(n)) for action in actions for n in only.split(",")]
    sys.stderr.write(
        f"\ncrash proof of {target.name}: {total} calls, {len(chosen)} faulted runs"
        f" of {total * len(actions)} (seed {seed}; CRASHPROOF_SEED={seed} repeats, "
        "CRASHPROOF_FULL=1 runs all)\n"
    )
    runs = []
    for action, number in chosen:
        fresh()
        run = runCommand(target.command(directory), shim, directory, number, action, log)
        runs.append(run)
        where = (
            f"{target.name}, {run.describe()} (repeat: CRASHPROOF_SEED={seed}; calls of "
            f"the clean run: {'; '.join(str(c) for c in clean.calls)})\n"
        )
        try:
            target.checkFault(directory, run)
            again = target.recover(directory, run)
            recovery = runCommand(again) if again is not None else None
            target.checkRecovered(directory, run, recovery)
        except AssertionError as e:
            raise AssertionError(f"{where}: {e}") from None
    return runs


def _oneLineErrors(run: Run) -> None:
    """
    A faulted run that did not die says what went wrong in lines of its own, never with a
    traceback.
    """
    text = run.errorText
    if "Traceback" in text:
        raise AssertionError(f"a traceback: {text}")
    for line in text.splitlines():
        if not line.startswith("pop3kit: "):
            raise AssertionError(f"not a pop3kit message: {line!r}")


def _maildirMessages(path: str) -> list[bytes]:
    """
    The messages in C{new/} and C{cur/} of the Maildir C{path} (none if it is missing).
    """
    out = []
    for sub in ("new", "cur"):
        where = os.path.join(path, sub)
        if not os.path.isdir(where):
            continue
        for name in sorted(os.listdir(where)):
            with open(os.path.join(where, name), "rb") as f:
                out.append(f.read())
    return out


class DeliverTarget:
    """
    C{pop3kit deliver alice}, as a mail transfer agent runs it: retried while it exits 75
    or is killed.  Each fault leaves the message in C{new/} whole or not at all; an exit
    0 means once; the retry ends with it there once, or twice only if the kill came after
    the message was linked into C{new/} (the MTA cannot know it was delivered).
    """

    name = "pop3kit deliver into a Maildir"

    #: The message: several chunks of the delivery's copy loop.
    message = b"Subject: crash\n\n" + b"0123456789abcdef\n" * 9000

    def prepare(self, directory: str) -> None:
        pass

    def maildir(self, directory: str) -> str:
        return os.path.join(directory, "mail", "alice")

    def command(self, directory: str) -> Command:
        return Command(
            [
                *PYTHON,
                "-c",
                "import sys; from pop3kit.cli import main; sys.exit(main())",
                "deliver",
                "alice",
                "--maildir-root",
                os.path.join(directory, "mail"),
            ],
            stdin=self.message,
        )

    def checkFault(self, directory: str, run: Run) -> None:
        stored = _maildirMessages(self.maildir(directory))
        for message in stored:
            assert message == self.message, f"a torn message of {len(message)} octets"
        if run.status == 0:
            assert len(stored) == 1, f"exit 0 with {len(stored)} copies"
            return
        if run.status > 0:
            _oneLineErrors(run)
            assert run.status == 75, f"exit {run.status} for a temporary fault"
            assert stored == [], "failed, and yet the message is in new/: the retry makes two"
        else:
            assert len(stored) <= 1

    def recover(self, directory: str, run: Run) -> Command | None:
        return None if run.status == 0 else self.command(directory)

    def checkRecovered(self, directory: str, run: Run, recovery: Run | None) -> None:
        stored = _maildirMessages(self.maildir(directory))
        if recovery is None:
            assert len(stored) == 1
            return
        assert recovery.status == 0, f"the retry failed: {recovery.errorText}"
        linked = any(
            c.operation in ("link", "rename") and "/new/" in c.path
            for c in run.calls
            if run.acted is not None and c.number < run.acted.number
        )
        expected = 2 if (run.status < 0 and linked) else 1
        assert len(stored) == expected, f"{len(stored)} copies after the retry, not {expected}"
        assert all(m == self.message for m in stored)


class ServerProcess:
    """
    pop3kit's POP3 server in a process of its own, serving the Maildirs under C{root}
    (alice's password: C{secret}), on 127.0.0.1; stopped by its PID when the test ends.
    """

    def __init__(self, testCase: _TrialTestCase, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.process = subprocess.Popen(
            [*PYTHON, "-m", "tests._crashproof", "serve", root],
            stdout=subprocess.PIPE,
            env=_environment({}),
            cwd=ROOT,
        )
        testCase.addCleanup(self.stop)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError("the server process did not start")
        self.port = int(line)

    def stop(self) -> None:
        """
        Stop the server (by its PID).
        """
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class FetchTarget:
    """
    A fetch with C{--delete} from L{ServerProcess} (alice's maildrop, C{messages}) into
    a destination, made durable in batches of C{batch} messages; run by this module's
    C{fetch} driver, with the state file beside the destination.

    After a fault: the destination holds only whole messages, and every message gone from
    the server is in it.  The same fetch again (retried while the server still holds the
    maildrop of the killed session) succeeds; then the destination holds every message,
    at most one batch of them twice, and the server none.

    @param read: The messages of the destination at a path, in any order.
    @param kind: The destination's kind, C{maildir} or C{mbox}.
    """

    def __init__(
        self,
        testCase: _TrialTestCase,
        kind: str = "maildir",
        read: Callable[[str], list[bytes]] = _maildirMessages,
        count: int = 6,
        batch: int = 2,
    ) -> None:
        self.name = f"pop3kit fetch --delete into {kind}"
        self.kind = kind
        self.read = read
        self.batch = batch
        base = os.path.abspath(testCase.mktemp())
        self.server = ServerProcess(testCase, os.path.join(base, "mail"))
        self.source = os.path.join(self.server.root, "alice")
        self.messages = [
            b"Subject: %d\n\n" % i + b"line of text\n" * (300 * i + 1) for i in range(count)
        ]

    def prepare(self, directory: str) -> None:
        from pop3kit.backends.maildir import _makeMaildir, deliver

        if os.path.exists(self.source):
            shutil.rmtree(self.source)
        _makeMaildir(self.source, parents=True)
        for message in self.messages:
            deliver(self.source, io.BytesIO(message))

    def destination(self, directory: str) -> str:
        return os.path.join(directory, "Maildir" if self.kind == "maildir" else "inbox.mbox")

    def command(self, directory: str) -> Command:
        return Command(
            [
                *PYTHON,
                "-m",
                "tests._crashproof",
                "fetch",
                str(self.server.port),
                f"{self.kind}:{self.destination(directory)}",
                os.path.join(directory, "state"),
                str(self.batch),
            ]
        )

    def onServer(self) -> list[bytes]:
        return sorted(_maildirMessages(self.source))

    def checkFault(self, directory: str, run: Run) -> None:
        stored = (
            self.read(self.destination(directory))
            if os.path.exists(self.destination(directory))
            else []
        )
        for message in stored:
            assert message in self.messages, f"a torn or unknown message: {message[:60]!r}..."
        gone = [m for m in self.messages if m not in self.onServer()]
        for message in gone:
            assert message in stored, f"deleted on the server, not stored: {message[:20]!r}"
        if run.status > 0:
            _oneLineErrors(run)
            assert run.status == 73, f"exit {run.status} for a disk error, not 73"
            assert "[Errno" not in run.errorText, "a raw OSError"
            if self.kind == "maildir":
                tmp = os.path.join(self.destination(directory), "tmp")
                assert not os.path.isdir(tmp) or os.listdir(tmp) == [], (
                    "a failed run left files in tmp/"
                )

    def recover(self, directory: str, run: Run) -> Command | None:
        return self.command(directory)

    def unrecorded(self, run: Run) -> int:
        """
        The documented batch that a fault may have stored twice: the messages the run
        stored (for a Maildir, linked into C{new/}) since it last synced the state file,
        before the fault.  (An mbox destination counts its appended messages instead.)
        """
        if run.acted is None:
            return 0
        count = 0
        for call in run.calls[: run.acted.number - 1]:
            if call.operation in ("fsync", "fdatasync") and call.path == "state":
                count = 0
            elif call.operation in ("link", "rename") and "/new/" in call.path:
                count += 1
        return count

    def checkRecovered(self, directory: str, run: Run, recovery: Run | None) -> None:
        for _ in range(50):
            if recovery is None or recovery.status != 75 or "IN-USE" not in recovery.errorText:
                break
            # The server has not yet seen the killed session go: its maildrop is locked.
            recovery = runCommand(self.command(directory))
        if recovery is not None:
            assert recovery.status == 0, f"the next run failed: {recovery.errorText}"
        stored = self.read(self.destination(directory))
        assert sorted(set(stored)) == sorted(self.messages), "messages lost"
        twice = sum(n - 1 for n in Counter(stored).values())
        allowed = self.unrecorded(run)
        assert twice <= allowed, (
            f"{twice} messages stored twice, more than the {allowed} of the batch stored "
            "but not yet recorded in the state file"
        )
        assert self.onServer() == [], "messages left on the server"


class ExpungeTarget:
    """
    A backend's expunge of some messages (the server's UPDATE state), run by this module's
    C{expunge} driver: C{python -m tests._crashproof expunge REALM ROOT UID...}, where
    REALM is C{module:callable} taking the root and giving a realm.

    After a fault: every message kept is there, whole; the expunge run again ends with the
    deleted ones gone.

    @param realm: The C{module:callable} of the realm factory.
    @param fill: Fills the store under a root with messages for alice; returns their UIDs.
    @param read: The messages alice's maildrop holds under a root.
    """

    def __init__(
        self,
        name: str,
        realm: str,
        fill: Callable[[str, list[bytes]], list[str]],
        read: Callable[[str], list[bytes]],
        count: int = 6,
    ) -> None:
        self.name = name
        self.realm = realm
        self.fill = fill
        self.read = read
        self.messages = [b"Subject: %d\n\n" % i + b"body\n" * (50 * i + 1) for i in range(count)]
        self.uids: list[str] = []

    def prepare(self, directory: str) -> None:
        self.uids = self.fill(directory, self.messages)

    def doomed(self) -> list[str]:
        return self.uids[::2]

    def kept(self) -> list[bytes]:
        return self.messages[1::2]

    def command(self, directory: str) -> Command:
        return Command(
            [*PYTHON, "-m", "tests._crashproof", "expunge", self.realm, directory, *self.doomed()]
        )

    def checkFault(self, directory: str, run: Run) -> None:
        held = self.read(directory)
        for message in held:
            assert message in self.messages, f"a torn message: {message[:60]!r}"
        for message in self.kept():
            assert held.count(message) == 1, f"a kept message lost or doubled: {message[:20]!r}"
        if run.status > 0:
            assert run.status == 75, f"exit {run.status}: {run.errorText}"

    def recover(self, directory: str, run: Run) -> Command | None:
        return None if run.status == 0 else self.command(directory)

    def checkRecovered(self, directory: str, run: Run, recovery: Run | None) -> None:
        if recovery is not None:
            assert recovery.status == 0, f"the expunge run again failed: {recovery.errorText}"
        assert sorted(self.read(directory)) == sorted(self.kept())


def fillMaildir(root: str, messages: list[bytes]) -> list[str]:
    """
    Deliver C{messages} into alice's Maildir under C{root}; their UIDs.
    """
    from pop3kit.backends.maildir import MaildirMailbox, deliver, mailboxPath

    path = mailboxPath(root, "alice")
    for message in messages:
        deliver(path, io.BytesIO(message))
    listed: list[object] = []
    MaildirMailbox(path).listMessages().addCallback(listed.append)
    return [info.uid for info in listed[0]]  # type: ignore[attr-defined]


def readMaildirRoot(root: str) -> list[bytes]:
    """
    The messages of alice's Maildir under C{root}.
    """
    return _maildirMessages(os.path.join(root, "alice"))


def maildirRealm(root: str) -> object:
    """
    The Maildir realm of C{root}: the realm factory of the Maildir L{ExpungeTarget}.
    """
    from pop3kit.backends.maildir import MaildirRealm

    return MaildirRealm(root)


# The drivers run in subprocesses.


def _serve(root: str) -> None:
    from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
    from twisted.cred.portal import Portal
    from twisted.internet import reactor

    from pop3kit.backends.maildir import MaildirRealm
    from pop3kit.server import POP3ServerFactory

    portal = Portal(MaildirRealm(root), [InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")])
    factory = POP3ServerFactory(portal, clock=reactor, failedLoginDelay=0)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    sys.stdout.write(f"{port.getHost().port}\n")  # type: ignore[attr-defined]
    sys.stdout.flush()
    reactor.run()  # type: ignore[attr-defined]


def _fetch(port: str, to: str, state: str, batch: str) -> int:
    from typing import Any

    from pop3kit import _fetch

    account = _fetch.parseURL(f"pop3://alice@127.0.0.1:{port}")
    options = _fetch.FetchOptions(
        destination=to,
        delete=True,
        stateFile=state,
        connect=_fetch.ConnectOptions(noTLS=True, timeout=30),
    )

    async def work(reactor: Any) -> None:
        await _fetch.fetch(reactor, account, options, "secret", batchMessages=int(batch))

    return _fetch.runInReactor(work)


def _expunge(realmFactory: str, root: str, uids: list[str]) -> int:
    import importlib

    from twisted.internet.defer import Deferred
    from twisted.python.failure import Failure

    from pop3kit.interfaces import IMailbox

    moduleName, _, attribute = realmFactory.partition(":")
    realm = getattr(importlib.import_module(moduleName), attribute)(root)
    try:
        _, mailbox, logout = realm.requestAvatar("alice", None, IMailbox)
    except Exception as e:
        sys.stderr.write(f"pop3kit: error: login failed: {e}\n")
        return 75
    outcome: list[object] = []
    d: Deferred[None] = mailbox.listMessages().addCallback(lambda _: mailbox.expunge(uids))
    d.addBoth(outcome.append)
    logout()
    if outcome and isinstance(outcome[0], Failure):
        sys.stderr.write(f"pop3kit: error: expunge failed: {outcome[0].getErrorMessage()}\n")
        return 75
    assert outcome, "a synchronous backend was expected"
    return 0


def main(argv: list[str]) -> int:
    """
    The drivers: C{serve ROOT}, C{fetch PORT DEST STATE BATCH}, C{expunge REALM ROOT UID...}.
    """
    command, *args = argv
    if command == "serve":
        _serve(*args)
        return 0
    if command == "fetch":
        return _fetch(*args)
    if command == "expunge":
        return _expunge(args[0], args[1], args[2:])
    raise SystemExit(f"unknown driver {command!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
