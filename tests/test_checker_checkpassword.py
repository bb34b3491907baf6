"""
Tests for L{pop3kit.checkers.checkpassword}, with real checkpassword programs.

The programs are small Python scripts written into each test's temporary directory.  One
script, L{PROGRAM}, behaves according to the login name it reads on descriptor 3 (the part
before any C{-}): C{alice} is accepted with the password C{secret}, C{temporary} exits 111,
C{hang} never finishes, and so on.  Every run records what it received (arguments,
environment, descriptor 3, standard input) in C{record.json} of the directory given as
its first argument.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from io import StringIO
from typing import Any, AnyStr, cast

from twisted.cred import strcred
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet import reactor as _reactor
from twisted.internet.defer import CancelledError, Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IProcessProtocol, IProcessTransport, IReactorProcess
from twisted.internet.task import Clock, deferLater
from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from pop3kit.checkers import checkpassword
from pop3kit.checkers.checkpassword import (
    DEFAULT_MAX_PROCESSES,
    DEFAULT_SUBPROGRAM,
    DEFAULT_TIMEOUT,
    MAX_INPUT_LENGTH,
    CheckpasswordChecker,
    CheckpasswordCheckerFactory,
)
from pop3kit.cred import APOPCredentials
from pop3kit.errors import TemporaryFailure
from pop3kit.tap import Options, makeFactory
from tests.test_server_loopback import POP3TestClient

#: The global reactor, which trial runs and which runs the programs.
reactor = cast(Any, _reactor)

#: The example checkpassword program of the documentation.
EXAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "examples", "checkpw.py"
)

#: A checkpassword program whose behaviour depends on the login name; see the module
#: docstring.
PROGRAM = r"""
import json, os, signal, sys, time

workdir = sys.argv[1]
data = b""
while True:
    chunk = os.read(3, 4096)
    if not chunk:
        break
    data += chunk
record = {
    "argv": sys.argv,
    "env": dict(os.environ),
    "fd3": data.decode("latin-1"),
    "stdin": sys.stdin.buffer.read().decode("latin-1"),
}
temporary = os.path.join(workdir, "record.%d" % os.getpid())
with open(temporary, "w") as f:
    json.dump(record, f)
os.replace(temporary, os.path.join(workdir, "record.json"))

fields = data.split(b"\0")
if len(fields) < 4 or fields[3] != b"":
    sys.exit(2)
user, password, timestamp = fields[:3]
kind = user.split(b"-")[0]


def accept():
    os.execvp(sys.argv[2], sys.argv[2:])


def writePid(name, pid):
    with open(os.path.join(workdir, name + ".new"), "w") as f:
        f.write(str(pid))
    os.replace(os.path.join(workdir, name + ".new"), os.path.join(workdir, name))


if kind == b"alice" and password == b"secret":
    accept()
elif kind == b"temporary":
    sys.stderr.write("database down\n")
    sys.exit(111)
elif kind == b"misuse":
    sys.exit(2)
elif kind == b"seven":
    sys.exit(7)
elif kind == b"signal":
    os.kill(os.getpid(), signal.SIGTERM)
elif kind == b"hang":
    writePid("hang.pid", os.getpid())
    time.sleep(1000)
elif kind == b"noisy":
    sys.stderr.write("database refused password " + password.decode() + "\n")
    sys.exit(111)
elif kind == b"verbose":
    # The checker keeps 2000 bytes: the password straddles the cut.
    sys.stderr.write(("x" * 1997) + password.decode() + ("x" * 3000) + "\n")
    sys.exit(111)
elif kind == b"chatty":
    for _ in range(64):
        sys.stdout.write("y" * 16384)
    sys.stdout.flush()
    accept()
elif kind == b"gate":
    open(os.path.join(workdir, "started-%d" % os.getpid()), "w").close()
    while not os.path.exists(os.path.join(workdir, "release")):
        time.sleep(0.01)
    accept()
elif kind == b"orphan":
    pid = os.fork()
    if pid == 0:
        time.sleep(1000)
        os._exit(0)
    writePid("orphan.pid", pid)
    sys.exit(0)
else:
    sys.exit(1)
"""


def messages(events: Sequence[LogEvent]) -> list[str]:
    """
    Render captured log events.
    """
    return [formatEvent(event) for event in events]


def writeScript(path: str, body: str, interpreter: str = sys.executable) -> str:
    """
    Write an executable script with a C{#!} line for C{interpreter}; return its path.
    """
    with open(path, "w") as f:
        f.write(f"#!{interpreter}\n{body}")
    os.chmod(path, 0o700)
    return path


def gone(pid: int) -> bool:
    """
    Whether the process C{pid} no longer exists (it has been reaped).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def waitUntil(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """
    Poll C{condition} on the reactor until it holds; fail after C{timeout} seconds.
    """
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError(f"{condition} did not become true within {timeout} seconds")
        await deferLater(reactor, 0.02)


class ProgramTestsMixin:
    """
    Write L{PROGRAM} into the test's temporary directory.
    """

    mktemp: Callable[[], str]

    def setUp(self) -> None:
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.program = writeScript(os.path.join(self.workdir, "checkpw"), PROGRAM)

    def checker(self, **kwargs: Any) -> CheckpasswordChecker:
        """
        A checker running L{PROGRAM} with the test's directory as its argument.
        """
        return CheckpasswordChecker([self.program, self.workdir], reactor=reactor, **kwargs)

    def record(self) -> dict[str, Any]:
        """
        What the last run of the program received.
        """
        with open(os.path.join(self.workdir, "record.json")) as f:
            result: dict[str, Any] = json.load(f)
        return result

    def readPid(self, name: str) -> int:
        """
        The process ID the program wrote into the file C{name}.
        """
        with open(os.path.join(self.workdir, name)) as f:
            return int(f.read())

    def pidWritten(self, name: str) -> Callable[[], bool]:
        """
        A condition: the program has written the file C{name}.
        """
        return lambda: os.path.exists(os.path.join(self.workdir, name))


class CheckpasswordCheckerTests(ProgramTestsMixin, TestCase):
    """
    Tests for L{CheckpasswordChecker} running real programs.
    """

    async def login(
        self, checker: CheckpasswordChecker, user: bytes, password: bytes
    ) -> str | Exception:
        """
        Check C{user} and C{password}; return the avatar ID or the failure's exception.
        """
        try:
            return await checker.requestAvatarId(UsernamePassword(user, password))
        except (UnauthorizedLogin, TemporaryFailure) as e:
            return e

    async def assertTemporary(
        self, checker: CheckpasswordChecker, user: bytes, password: bytes = b"pw"
    ) -> list[str]:
        """
        The login fails with L{TemporaryFailure}; return what was logged meanwhile.
        """
        with capturedLogs() as events:
            result = await self.login(checker, user, password)
        self.assertIsInstance(result, TemporaryFailure)
        return messages(events)

    def test_interface(self) -> None:
        """
        The checker provides L{ICredentialsChecker} for L{IUsernamePassword} only.
        """
        checker = self.checker()
        self.assertTrue(verifyObject(ICredentialsChecker, checker))
        self.assertEqual([i.__name__ for i in checker.credentialInterfaces], ["IUsernamePassword"])

    async def test_accepted(self) -> None:
        """
        Exit status 0 (after running the subprogram) accepts the password; the avatar ID
        is the user name as a L{str}.
        """
        result = await self.login(self.checker(), b"alice", b"secret")
        self.assertEqual(result, "alice")
        self.assertIsInstance(result, str)

    async def test_rejected(self) -> None:
        """
        Exit status 1 refuses the password with L{UnauthorizedLogin}, and logs nothing.
        """
        with capturedLogs() as events:
            result = await self.login(self.checker(), b"alice", b"wrong")
        self.assertIsInstance(result, UnauthorizedLogin)
        self.assertEqual(messages(events), [])

    async def test_utf8Name(self) -> None:
        """
        A UTF-8 user name is sent as is and becomes a L{str} avatar ID.
        """
        name = "alice-caf\u00e9"
        result = await self.login(self.checker(), name.encode("utf-8"), b"secret")
        self.assertEqual(result, name)

    async def test_descriptor3(self) -> None:
        """
        The program reads exactly C{name NUL password NUL NUL} (an empty timestamp) on
        descriptor 3, and an empty standard input.
        """
        await self.login(self.checker(), b"alice", b"pass word")
        record = self.record()
        self.assertEqual(record["fd3"].encode("latin-1"), b"alice\0pass word\0\0")
        self.assertEqual(record["stdin"], "")

    async def test_commandLine(self) -> None:
        """
        The program runs with its own arguments followed by the subprogram, C{true} by
        default.
        """
        await self.login(self.checker(), b"alice", b"secret")
        self.assertEqual(self.record()["argv"], [self.program, self.workdir, "true"])
        self.assertEqual(DEFAULT_SUBPROGRAM, ("true",))

    async def test_subprogram(self) -> None:
        """
        The subprogram can be chosen, and it is what an accepting program runs: with
        C{false}, the right password is refused.
        """
        for subprogram in ("false", ["false", "--ignored"]):
            checker = self.checker(subprogram=subprogram)
            result = await self.login(checker, b"alice", b"secret")
            self.assertIsInstance(result, UnauthorizedLogin)
            self.assertEqual(self.record()["argv"][2], "false")

    async def test_passwordNotInArgumentsOrEnvironment(self) -> None:
        """
        Neither the command line nor the environment of the program holds the password,
        and the environment is the server's.
        """
        os.environ["POP3KIT_TEST_MARKER"] = "inherited"
        self.addCleanup(os.environ.pop, "POP3KIT_TEST_MARKER")
        password = "Sup3r-s3cret-pw"
        await self.login(self.checker(), b"alice", password.encode())
        record = self.record()
        self.assertEqual(record["env"]["POP3KIT_TEST_MARKER"], "inherited")
        self.assertNotIn(password, json.dumps(record["argv"]))
        self.assertNotIn(password, json.dumps(record["env"]))
        self.assertIn(password, record["fd3"])

    async def test_temporaryFailure(self) -> None:
        """
        Exit status 111 is a L{TemporaryFailure}, logged with the program and the status.
        """
        logged = await self.assertTemporary(self.checker(), b"temporary")
        self.assertEqual(len(logged), 1)
        self.assertIn(self.program, logged[0])
        self.assertIn("exited with status 111", logged[0])

    async def test_misuse(self) -> None:
        """
        Exit status 2, the interface's "misused", is a logged L{TemporaryFailure}.
        """
        logged = await self.assertTemporary(self.checker(), b"misuse")
        self.assertIn("exited with status 2", logged[0])

    async def test_otherStatus(self) -> None:
        """
        An exit status the interface does not define is a logged L{TemporaryFailure}.
        """
        logged = await self.assertTemporary(self.checker(), b"seven")
        self.assertIn("exited with status 7", logged[0])

    async def test_signal(self) -> None:
        """
        A program killed by a signal gives a logged L{TemporaryFailure}.
        """
        logged = await self.assertTemporary(self.checker(), b"signal")
        self.assertIn(f"killed by signal {int(signal.SIGTERM)}", logged[0])

    async def test_timeout(self) -> None:
        """
        A program that does not finish in time is killed, and the login fails with a
        logged L{TemporaryFailure} without waiting longer.
        """
        checker = self.checker(timeout=0.5)
        started = reactor.seconds()
        logged = await self.assertTemporary(checker, b"hang")
        self.assertLess(reactor.seconds() - started, DEFAULT_TIMEOUT)
        self.assertIn("did not finish within 0.5 seconds; killed", logged[0])
        pid = self.readPid("hang.pid")
        await waitUntil(lambda: gone(pid))

    async def test_slotReleasedAfterKill(self) -> None:
        """
        With one slot, a login after a killed program still gets to run the program.
        """
        checker = self.checker(timeout=0.5, maxProcesses=1)
        await self.assertTemporary(checker, b"hang")
        self.assertEqual(await self.login(checker, b"alice", b"secret"), "alice")
        await waitUntil(lambda: gone(self.readPid("hang.pid")))

    async def test_cancel(self) -> None:
        """
        Cancelling a check kills the program.
        """
        d = self.checker(timeout=60.0).requestAvatarId(UsernamePassword(b"hang", b"pw"))
        await waitUntil(self.pidWritten("hang.pid"))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        pid = self.readPid("hang.pid")
        await waitUntil(lambda: gone(pid), timeout=10.0)

    async def test_orphanHoldingPipes(self) -> None:
        """
        A program that exits but leaves a child holding its output pipes is judged by
        its exit status once the time is up.
        """
        checker = self.checker(timeout=0.5)
        d = checker.requestAvatarId(UsernamePassword(b"orphan", b"pw"))
        await waitUntil(self.pidWritten("orphan.pid"))
        orphan = self.readPid("orphan.pid")
        self.addCleanup(os.kill, orphan, signal.SIGKILL)
        self.assertEqual(await d, "orphan")

    async def test_standardErrorLogged(self) -> None:
        """
        The program's standard error is logged with the temporary failure; the login
        name is not logged.
        """
        logged = await self.assertTemporary(self.checker(), b"temporary-Kx7name", b"Zq8-pw")
        self.assertEqual(len(logged), 1)
        self.assertIn("its standard error: database down", logged[0])
        self.assertNotIn("Kx7name", logged[0])

    async def test_standardErrorWithPassword(self) -> None:
        """
        A standard error that holds the password is not logged at all.
        """
        password = "Zq8-secret"
        logged = await self.assertTemporary(self.checker(), b"noisy", password.encode())
        self.assertEqual(len(logged), 1)
        self.assertIn("standard error: (withheld: it contains the password)", logged[0])
        self.assertNotIn(password, logged[0])
        self.assertNotIn("database", logged[0])

    async def test_standardErrorTruncated(self) -> None:
        """
        Only the start of a long standard error is logged, short of any password cut in
        two by the limit of what is kept.
        """
        self.assertEqual(checkpassword._STDERR_LIMIT, 2000)
        password = "Zq8-secret"
        logged = await self.assertTemporary(self.checker(), b"verbose", password.encode())
        self.assertIn("x" * 1000, logged[0])
        self.assertLess(len(logged[0]), 2000)
        self.assertIn("xxxx [...]", logged[0])
        self.assertNotIn("Zq8", logged[0])

    async def test_standardOutputDrained(self) -> None:
        """
        A program writing a megabyte to standard output does not block: its output is
        read and discarded.
        """
        result = await self.login(self.checker(timeout=5.0), b"chatty", b"pw")
        self.assertEqual(result, "chatty")

    async def test_programMissing(self) -> None:
        """
        A program that does not exist gives a logged L{TemporaryFailure}.
        """
        checker = CheckpasswordChecker(os.path.join(self.workdir, "missing"), reactor=reactor)
        logged = await self.assertTemporary(checker, b"alice", b"secret")
        self.assertIn("cannot be run: not found", logged[0])

    async def test_programNotExecutable(self) -> None:
        """
        A program file without execute permission gives a logged L{TemporaryFailure}.
        """
        os.chmod(self.program, 0o644)
        logged = await self.assertTemporary(self.checker(), b"alice", b"secret")
        self.assertIn("cannot be run", logged[0])

    async def test_programCannotStart(self) -> None:
        """
        A script whose interpreter is missing gives a logged L{TemporaryFailure}, not a
        refused password.
        """
        path = writeScript(
            os.path.join(self.workdir, "broken"), "exit 0\n", "/nonexistent/interpreter"
        )
        checker = CheckpasswordChecker(path, reactor=reactor)
        logged = await self.assertTemporary(checker, b"alice", b"secret")
        self.assertIn("cannot be run", logged[0])

    async def test_inputLimit(self) -> None:
        """
        Name and password filling the 512 bytes of descriptor 3 exactly reach the
        program; one byte more is refused without running it.
        """
        checker = self.checker()
        longest = b"x" * (MAX_INPUT_LENGTH - len(b"alice") - 3)
        self.assertIsInstance(await self.login(checker, b"alice", longest), UnauthorizedLogin)
        self.assertEqual(len(self.record()["fd3"]), MAX_INPUT_LENGTH)
        os.remove(os.path.join(self.workdir, "record.json"))
        self.assertIsInstance(
            await self.login(checker, b"alice", longest + b"x"), UnauthorizedLogin
        )
        self.assertFalse(os.path.exists(os.path.join(self.workdir, "record.json")))

    async def test_concurrencyCap(self) -> None:
        """
        No more than C{maxProcesses} programs run at a time; the other logins wait for
        a free slot and then succeed.
        """
        checker = self.checker(maxProcesses=2)

        def started() -> list[str]:
            return [n for n in os.listdir(self.workdir) if n.startswith("started-")]

        logins = [
            checker.requestAvatarId(UsernamePassword(b"gate-%d" % i, b"pw")) for i in range(5)
        ]
        release = os.path.join(self.workdir, "release")

        def cleanUp() -> Deferred[object]:
            open(release, "w").close()
            return gatherResults(logins, consumeErrors=True).addErrback(lambda _: None)

        self.addCleanup(cleanUp)
        await waitUntil(lambda: len(started()) >= 2)
        await deferLater(reactor, 0.5)
        self.assertEqual(len(started()), 2)
        open(release, "w").close()
        results = await gatherResults(logins)
        self.assertEqual(sorted(results), [f"gate-{i}" for i in range(5)])
        self.assertEqual(len(started()), 5)


@implementer(IReactorProcess)
class ProcessReactor(Clock):
    """
    A fake reactor that records the programs it is asked to run, and runs none.
    """

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[list[str]] = []

    def spawnProcess(
        self,
        processProtocol: IProcessProtocol,
        executable: bytes | str,
        args: Sequence[bytes | str],
        env: Mapping[AnyStr, AnyStr] | None = None,
        path: bytes | str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool = False,
        childFDs: Mapping[int, int | str] | None = None,
    ) -> IProcessTransport:
        """
        Record the command line, then fail as a system out of processes would.
        """
        self.spawned.append([os.fsdecode(arg) for arg in args])
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))


class RefusedBeforeRunningTests(ProgramTestsMixin, SynchronousTestCase):
    """
    Credentials the interface cannot carry are refused without running the program.
    """

    def assertRefusedUnrun(self, user: bytes, password: bytes) -> None:
        """
        The credentials are refused at once, and no program was run.
        """
        reactor = ProcessReactor()
        checker = CheckpasswordChecker(self.program, reactor=reactor)
        d = checker.requestAvatarId(UsernamePassword(user, password))
        self.failureResultOf(d, UnauthorizedLogin)
        self.assertEqual(reactor.spawned, [])

    def test_nulInName(self) -> None:
        """
        A user name containing NUL is refused.
        """
        self.assertRefusedUnrun(b"alice\0bob", b"secret")

    def test_nulInPassword(self) -> None:
        """
        A password containing NUL is refused.
        """
        self.assertRefusedUnrun(b"alice", b"sec\0ret")

    def test_tooLong(self) -> None:
        """
        Credentials over the interface's 512 bytes are refused.
        """
        self.assertRefusedUnrun(b"alice", b"x" * 600)
        self.assertRefusedUnrun(b"a" * 510, b"")

    def test_emptyName(self) -> None:
        """
        An empty user name is refused.
        """
        self.assertRefusedUnrun(b"", b"secret")

    def test_nameNotUTF8(self) -> None:
        """
        A user name that is not UTF-8 is refused.
        """
        self.assertRefusedUnrun(b"caf\xe9", b"secret")

    def test_validCredentialsRun(self) -> None:
        """
        Ordinary credentials do run the program (so the refusals above are not by
        accident); a program the system cannot start is a logged L{TemporaryFailure}.
        """
        reactor = ProcessReactor()
        checker = CheckpasswordChecker([self.program, "-x"], reactor=reactor)
        with capturedLogs() as events:
            d = checker.requestAvatarId(UsernamePassword(b"alice", b"secret"))
        self.failureResultOf(d, TemporaryFailure)
        self.assertEqual(reactor.spawned, [[self.program, "-x", "true"]])
        [logged] = messages(events)
        self.assertIn("cannot be run: Resource temporarily unavailable", logged)

    def test_unhandledCredentials(self) -> None:
        """
        Credentials other than L{IUsernamePassword} fail with L{UnhandledCredentials}.
        """
        checker = CheckpasswordChecker(self.program, reactor=ProcessReactor())
        d = checker.requestAvatarId(APOPCredentials(b"<1@x>", b"alice", b"0" * 32))
        self.failureResultOf(d, UnhandledCredentials)

    def test_badArguments(self) -> None:
        """
        An empty program or subprogram, a timeout that is not positive and fewer than one
        process slot are refused.
        """
        fake = ProcessReactor()
        for program in ("", [], [""]):
            self.assertRaises(ValueError, CheckpasswordChecker, program, reactor=fake)
        for subprogram in ("", [], [""]):
            self.assertRaises(
                ValueError, CheckpasswordChecker, "p", subprogram=subprogram, reactor=fake
            )
        for timeout in (0, -1, float("nan")):
            self.assertRaises(ValueError, CheckpasswordChecker, "p", timeout=timeout, reactor=fake)
        self.assertRaises(ValueError, CheckpasswordChecker, "p", maxProcesses=0, reactor=fake)

    def test_reactorWithoutClock(self) -> None:
        """
        A reactor that cannot time the program out is refused.
        """

        @implementer(IReactorProcess)
        class NoClock:
            def spawnProcess(self, *a: Any, **kw: Any) -> Any:
                return None

        self.assertRaises(TypeError, CheckpasswordChecker, "p", reactor=NoClock())

    def test_defaults(self) -> None:
        """
        The default timeout is 10 seconds and 16 programs may run at a time.
        """
        self.assertEqual((DEFAULT_TIMEOUT, DEFAULT_MAX_PROCESSES), (10.0, 16))


class PluginTests(ProgramTestsMixin, TestCase):
    """
    Tests for the C{checkpassword} strcred plugin and C{twistd pop3kit --auth}.
    """

    async def test_found(self) -> None:
        """
        C{--auth checkpassword:PROGRAM ARGS} finds the factory, which makes a working
        checker for the program with its arguments, split as a shell would.
        """
        factory = strcred.findCheckerFactory("checkpassword")
        self.assertEqual(factory.authHelp, CheckpasswordCheckerFactory.authHelp)
        self.assertTrue(verifyObject(strcred.ICheckerFactory, factory))
        checker = strcred.makeChecker("checkpassword:" + shlex.join([self.program, self.workdir]))
        self.assertIsInstance(checker, CheckpasswordChecker)
        self.assertEqual(
            await checker.requestAvatarId(UsernamePassword(b"alice", b"secret")), "alice"
        )
        self.assertEqual(self.record()["argv"], [self.program, self.workdir, "true"])

    def test_quotedPath(self) -> None:
        """
        A program path with spaces can be quoted.
        """
        spaced = os.path.join(self.workdir, "my checkpw")
        os.symlink(self.program, spaced)
        factory = CheckpasswordCheckerFactory()
        checker = factory.generateChecker(shlex.quote(spaced) + " --flag")
        self.assertEqual(checker._program, (spaced, "--flag"))

    def test_badArgument(self) -> None:
        """
        No program, unbalanced quotes, or a program that is missing are refused when the
        checker is made.
        """
        factory = CheckpasswordCheckerFactory()
        for argstring in ("", "  ", "'unbalanced", os.path.join(self.workdir, "missing")):
            self.assertRaises(ValueError, factory.generateChecker, argstring)

    def test_tapOptions(self) -> None:
        """
        C{twistd pop3kit --auth checkpassword:PROGRAM} adds the checker; a missing program
        is a usage error.
        """
        options = Options()
        options.parseOptions(["--auth", "checkpassword:" + self.program])
        [checker] = options["credCheckers"]
        self.assertIsInstance(checker, CheckpasswordChecker)
        self.assertRaises(
            usage.UsageError,
            Options().parseOptions,
            ["--auth", "checkpassword:" + os.path.join(self.workdir, "missing")],
        )

    def test_helpAuth(self) -> None:
        """
        C{--help-auth} lists the checkpassword plugin.
        """
        options = Options()
        options.authOutput = StringIO()
        self.assertRaises(SystemExit, options.parseOptions, ["--help-auth"])
        self.assertIn("checkpassword", options.authOutput.getvalue())


class ServerLoginTests(ProgramTestsMixin, TestCase):
    """
    Logins through a real C{twistd pop3kit --auth checkpassword:...} server over loopback
    TCP.
    """

    def setUp(self) -> None:
        super().setUp()
        root = os.path.join(self.workdir, "mail")
        os.makedirs(root)
        options = Options()
        options.parseOptions(
            [
                "--maildir-root",
                root,
                "--failed-login-delay",
                "0",
                "--auth",
                "checkpassword:" + shlex.join([self.program, self.workdir]),
            ]
        )
        factory = makeFactory(options)
        factory.clock = Clock()
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    async def loginAnswer(self, user: bytes, password: bytes) -> bytes:
        """
        Connect, log in with C{USER}/C{PASS}, quit; return the answer to C{PASS}.
        """
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        client = await connectProtocol(endpoint, POP3TestClient())
        await client.greeting
        answer: bytes
        [answer] = await client.login(user, password)
        await client.command(b"QUIT")
        await client.closed
        return answer

    async def test_logins(self) -> None:
        """
        The right password logs in, a wrong one gets C{-ERR [AUTH]}, and a program
        exiting 111 gets C{-ERR [SYS/TEMP]}.
        """
        self.assertTrue((await self.loginAnswer(b"alice", b"secret")).startswith(b"+OK "))
        self.assertTrue((await self.loginAnswer(b"alice", b"wrong")).startswith(b"-ERR [AUTH] "))
        with capturedLogs() as events:
            answer = await self.loginAnswer(b"temporary", b"secret")
        self.assertTrue(answer.startswith(b"-ERR [SYS/TEMP] "), answer)
        self.assertIn("exited with status 111", "\n".join(messages(list(events))))


class ExampleProgramTests(TestCase):
    """
    The example checkpassword program of the documentation, C{docs/examples/checkpw.py},
    works with the checker.
    """

    def setUp(self) -> None:
        self.users = os.path.abspath(self.mktemp())
        os.environ["CHECKPW_USERS"] = self.users
        self.addCleanup(os.environ.pop, "CHECKPW_USERS")
        self.checker = CheckpasswordChecker([sys.executable, EXAMPLE], reactor=reactor)

    def addUser(self, name: str, password: bytes) -> None:
        """
        Add a user to the example's user file with the entry C{checkpw.py --hash} makes.
        """
        entry = subprocess.run(
            [sys.executable, EXAMPLE, "--hash"], input=password, capture_output=True, check=True
        ).stdout.decode()
        with open(self.users, "a") as f:
            f.write(f"{name}:{entry.strip()}\n")

    async def test_logins(self) -> None:
        """
        The right password is accepted; a wrong one and an unknown user are refused.
        """
        self.addUser("bob", b"other")
        self.addUser("alice", b"s3cret pw")
        self.assertEqual(
            await self.checker.requestAvatarId(UsernamePassword(b"alice", b"s3cret pw")),
            "alice",
        )
        for user, password in [(b"alice", b"wrong"), (b"carol", b"s3cret pw")]:
            with self.assertRaises(UnauthorizedLogin):
                await self.checker.requestAvatarId(UsernamePassword(user, password))

    async def test_usersMissing(self) -> None:
        """
        A missing user file is a temporary failure, logged with the program's message.
        """
        with capturedLogs() as events, self.assertRaises(TemporaryFailure):
            await self.checker.requestAvatarId(UsernamePassword(b"alice", b"Zq8-pw"))
        [logged] = messages(events)
        self.assertIn("exited with status 111", logged)
        self.assertIn(f"checkpw: cannot read {self.users}", logged)
