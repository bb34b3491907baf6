# -*- test-case-name: tests.test_checker_checkpassword -*-
"""
A credentials checker that runs an external program speaking qmail's I{checkpassword}
interface (U{https://cr.yp.to/checkpwd/interface.html}).

The program is run as C{program [its arguments] subprogram}.  It reads descriptor 3 to
end of file: at most 512 bytes, the login name, the password and a timestamp, each
terminated by a NUL byte (pop3kit sends an empty timestamp).  Then:

  - exit status 0: the password is acceptable; the program has run C{subprogram}, which
    pop3kit chooses to be harmless (C{true});
  - exit status 1: the password is unacceptable: L{UnauthorizedLogin}, C{-ERR [AUTH]};
  - exit status 111 (a temporary problem), 2 (misuse), any other status, death by a
    signal, no answer within the timeout (the program is then killed), or a program that
    cannot be started: L{pop3kit.errors.TemporaryFailure}, C{-ERR [SYS/TEMP]}, and an
    error on the log naming the program and the problem, with the start of the program's
    standard error (withheld if the password occurs in it).  pop3kit never logs the
    password, nor, as the interface asks of callers, the login name.

The password travels only through the pipe on descriptor 3: never on the command line
nor in the environment.  The program inherits the server's environment and working
directory; its standard input is empty and its standard output is discarded.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.strcred import ICheckerFactory
from twisted.internet.defer import Deferred, DeferredSemaphore, fail
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IProcessTransport, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from pop3kit.errors import TemporaryFailure

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorProcess

__all__ = [
    "DEFAULT_MAX_PROCESSES",
    "DEFAULT_SUBPROGRAM",
    "DEFAULT_TIMEOUT",
    "MAX_INPUT_LENGTH",
    "CheckpasswordChecker",
    "CheckpasswordCheckerFactory",
]

#: Seconds a checkpassword program may run before it is killed.
DEFAULT_TIMEOUT = 10.0

#: How many checkpassword programs one checker runs at a time; further logins wait.
DEFAULT_MAX_PROCESSES = 16

#: What an accepting checkpassword program runs: a program that does nothing, found on
#: C{PATH} (on Debian, C{/bin/true} and C{/usr/bin/true}).
DEFAULT_SUBPROGRAM = ("true",)

#: The most bytes the interface allows on descriptor 3: name, password and timestamp, each
#: with its terminating NUL.
MAX_INPUT_LENGTH = 512

#: Exit statuses with a meaning in the interface.
_ACCEPTED = 0
_REJECTED = 1
_MISUSED = 2
_TEMPORARY = 111

#: How much of the program's standard error is kept for the log.
_STDERR_LIMIT = 2000

#: How much of a longer standard error is logged: any password overlapping this part
#: lies wholly within the part kept.
_STDERR_SHOWN = _STDERR_LIMIT - MAX_INPUT_LENGTH

_FAILURE_MESSAGE = "Authentication failed."


class _ProgramTrouble(Exception):
    """
    The program could not give an answer: it could not be started, reported a temporary
    problem, exited with a status the interface does not define, was killed, or timed out.
    The message completes the sentence "checkpassword program P ...".
    """


def _verdict(reason: BaseException | None) -> bool:
    """
    Interpret how a checkpassword program ended.

    @param reason: The C{value} of the failure given to C{processEnded}.
    @return: C{True} if the password is acceptable, C{False} if not.
    @raise _ProgramTrouble: If the program gave no answer.
    """
    if isinstance(reason, ProcessDone):
        return True
    if isinstance(reason, ProcessTerminated):
        if reason.signal is not None:
            raise _ProgramTrouble(f"was killed by signal {reason.signal}")
        if reason.exitCode == _REJECTED:
            return False
        if reason.exitCode == _TEMPORARY:
            raise _ProgramTrouble("exited with status 111 (temporary problem)")
        if reason.exitCode == _MISUSED:
            raise _ProgramTrouble("exited with status 2 (misused)")
        if reason.exitCode != _ACCEPTED:
            raise _ProgramTrouble(f"exited with status {reason.exitCode}")
        return True
    raise _ProgramTrouble(f"ended unexpectedly: {reason}")


class _CheckpasswordProcess(ProcessProtocol):
    """
    One run of a checkpassword program: write the data to its descriptor 3, keep the
    start of its standard error, kill it when it takes too long.

    @ivar result: Fires with L{_verdict}'s answer, or fails with L{_ProgramTrouble}: at
        the latest when the time is up, even if the process has not gone yet.
        Cancelling it kills the process.
    @ivar ended: Fires once the process has exited and all its pipes are closed.
    @ivar stderr: The start of the program's standard error.
    @ivar stderrTruncated: Whether the program wrote more to standard error than kept.
    """

    def __init__(self, data: bytes, clock: IReactorTime, timeout: float) -> None:
        self._data = data
        self._clock = clock
        self._timeout = timeout
        self._timer: IDelayedCall | None = None
        self._exited = False
        self.result: Deferred[bool] = Deferred(self._cancel)
        self.ended: Deferred[None] = Deferred()
        self.stderr = b""
        self.stderrTruncated = False

    def _process(self) -> IProcessTransport:
        return cast(IProcessTransport, self.transport)

    def connectionMade(self) -> None:
        """
        Close the program's standard input, hand it the data on descriptor 3 and start
        the clock.
        """
        process = self._process()
        process.closeStdin()
        process.writeToChild(3, self._data)
        process.closeChildFD(3)
        self._timer = self._clock.callLater(self._timeout, self._timedOut)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """
        Keep the start of standard error; discard standard output.
        """
        if childFD != 2:
            return
        room = _STDERR_LIMIT - len(self.stderr)
        if len(data) > room:
            self.stderrTruncated = True
        self.stderr += data[: max(room, 0)]

    def processExited(self, reason: Failure) -> None:
        """
        The process is gone, though perhaps not yet all its pipes.
        """
        self._exited = True

    def processEnded(self, reason: Failure) -> None:
        """
        The process is gone and its pipes are closed: give the verdict, unless the time
        ran out first.
        """
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if not self.result.called:
            try:
                accepted = _verdict(reason.value)
            except _ProgramTrouble as trouble:
                self.result.errback(trouble)
            else:
                self.result.callback(accepted)
        self.ended.callback(None)

    def _timedOut(self) -> None:
        self._timer = None
        if not self._exited:
            self._kill()
            if not self.result.called:
                self.result.errback(
                    _ProgramTrouble(f"did not finish within {self._timeout:g} seconds; killed")
                )
        # Close our ends of the pipes too: a child of the program may be holding them
        # open, and processEnded waits for them.
        self._process().loseConnection()

    def _kill(self) -> None:
        try:
            self._process().signalProcess("KILL")
        except ProcessExitedAlready:
            pass

    def _cancel(self, result: Deferred[bool]) -> None:
        if not self._exited:
            self._kill()


def _logText(stderr: bytes, truncated: bool, password: bytes) -> str:
    """
    The program's standard error as it may go to the log.

    If the password occurs in it, none of it is shown: replacing the password by a marker
    would tell a reader of the log where a short password sat in a known message.  If
    the program wrote more than was kept, only the first L{_STDERR_SHOWN} bytes are
    shown, so that a password cut in two by the limit cannot appear in part.
    """
    if password and password in stderr:
        return "(withheld: it contains the password)"
    if truncated:
        stderr = stderr[:_STDERR_SHOWN]
    text = stderr.decode("utf-8", "backslashreplace").strip()
    if truncated:
        text += " [...]"
    return text


@implementer(ICredentialsChecker)
class CheckpasswordChecker:
    """
    Check C{USER}/C{PASS} credentials by running a program that speaks the checkpassword
    interface, as qmail-popup does (see the module docstring for the protocol and what
    each outcome becomes).

    At most C{maxProcesses} programs run at a time; further logins wait for a free slot,
    so that a flood of logins cannot exhaust the host's processes.  A program killed for
    taking too long keeps its slot until it is really gone.

    User names and passwords that the interface cannot carry (a NUL byte, more than
    L{MAX_INPUT_LENGTH} bytes in all), empty user names and user names that are not UTF-8
    are refused with L{UnauthorizedLogin} without running the program.

    The avatar ID is the user name as a L{str}.
    """

    credentialInterfaces = (IUsernamePassword,)

    log = Logger()

    def __init__(
        self,
        program: str | Sequence[str],
        *,
        subprogram: str | Sequence[str] = DEFAULT_SUBPROGRAM,
        timeout: float = DEFAULT_TIMEOUT,
        maxProcesses: int = DEFAULT_MAX_PROCESSES,
        reactor: IReactorProcess | None = None,
    ) -> None:
        """
        @param program: The checkpassword program: its path (or a name found on C{PATH}),
            or a sequence of its path and its own arguments, which come before the
            subprogram on its command line.
        @param subprogram: What the program runs when the password is acceptable, a name
            or a sequence of a name and arguments; it must exit with status 0.  Found on
            C{PATH} unless it is a path.
        @param timeout: Seconds the program may take; it is then killed with C{SIGKILL}
            and the login fails with L{TemporaryFailure}.
        @param maxProcesses: How many programs may run at a time.
        @param reactor: Runs and times the programs; it must also provide
            L{IReactorTime}.  The global reactor by default.
        @raise ValueError: If the program or the subprogram is empty, the timeout not
            positive or C{maxProcesses} less than 1.
        @raise TypeError: If the reactor does not provide L{IReactorTime}.
        """
        argv = (program,) if isinstance(program, str) else tuple(program)
        if not argv or not argv[0]:
            raise ValueError("a checkpassword program is required")
        subargv = (subprogram,) if isinstance(subprogram, str) else tuple(subprogram)
        if not subargv or not subargv[0]:
            raise ValueError("the subprogram must not be empty")
        if not timeout > 0:
            raise ValueError(f"the timeout must be positive, not {timeout!r}")
        if maxProcesses < 1:
            raise ValueError(f"maxProcesses must be at least 1, not {maxProcesses!r}")
        if reactor is None:
            from twisted.internet import reactor as installed

            reactor = cast("IReactorProcess", installed)
        self._program = argv
        self._subprogram = subargv
        self._timeout = timeout
        self._reactor = reactor
        self._clock = IReactorTime(reactor)
        self._slots = DeferredSemaphore(maxProcesses)

    # pop3kit's avatar IDs are user names as str, not Twisted's historical bytes.
    def requestAvatarId(self, credentials: ICredentials) -> Deferred[str]:  # type: ignore[override]
        """
        Check C{USER}/C{PASS} credentials (L{IUsernamePassword}) with the program.

        @param credentials: The credentials to check.
        @return: A L{Deferred} firing with the user name; or failing with
            L{UnauthorizedLogin} if the program refuses the password (or it cannot be
            sent to the program), or with L{TemporaryFailure} if the program gives no
            answer.
        """
        up = IUsernamePassword(credentials, None)
        if up is None:
            return fail(UnhandledCredentials(f"cannot check {credentials!r}"))
        username: bytes = up.username
        password: bytes = up.password
        data = username + b"\0" + password + b"\0" + b"\0"
        if not username or b"\0" in username or b"\0" in password or len(data) > MAX_INPUT_LENGTH:
            return fail(UnauthorizedLogin(_FAILURE_MESSAGE))
        try:
            name = username.decode("utf-8")
        except UnicodeDecodeError:
            return fail(UnauthorizedLogin(_FAILURE_MESSAGE))
        return Deferred.fromCoroutine(self._check(name, data, password))

    async def _check(self, name: str, data: bytes, password: bytes) -> str:
        await self._slots.acquire()
        try:
            run = self._spawn(data)
        except BaseException as e:
            self._slots.release()
            if isinstance(e, _ProgramTrouble):
                raise self._temporaryFailure(e) from None
            raise
        run.ended.addBoth(lambda _: self._slots.release())
        try:
            accepted = await run.result
        except _ProgramTrouble as trouble:
            stderr = _logText(run.stderr, run.stderrTruncated, password)
            raise self._temporaryFailure(trouble, stderr) from None
        if not accepted:
            raise UnauthorizedLogin(_FAILURE_MESSAGE)
        return name

    def _temporaryFailure(self, trouble: _ProgramTrouble, stderr: str = "") -> TemporaryFailure:
        """
        Log why the program gave no answer, and make the error the client sees.
        """
        self.log.error(
            "checkpassword program {program} {problem}; the login failed with "
            "[SYS/TEMP]{stderrNote}",
            program=shlex.join(self._program),
            problem=str(trouble),
            stderrNote=f"; its standard error: {stderr}" if stderr else "",
        )
        return TemporaryFailure()

    def _spawn(self, data: bytes) -> _CheckpasswordProcess:
        """
        Start the program with C{data} for its descriptor 3.

        @raise _ProgramTrouble: If it cannot be started.
        """
        executable = shutil.which(self._program[0])
        if executable is None:
            raise _ProgramTrouble("cannot be run: not found, or not an executable file")
        run = _CheckpasswordProcess(data, self._clock, self._timeout)
        try:
            self._reactor.spawnProcess(
                run,
                executable,
                [*self._program, *self._subprogram],
                # Explicitly: with env=None, Twisted's fork-based fallback would fail in
                # the child, which then exits 1, the status for a wrong password.
                env=dict(os.environ),
                childFDs={0: "w", 1: "r", 2: "r", 3: "w"},
            )
        except OSError as e:
            raise _ProgramTrouble(f"cannot be run: {e.strerror or e}") from None
        return run


@implementer(ICheckerFactory, IPlugin)
class CheckpasswordCheckerFactory:
    """
    Makes L{CheckpasswordChecker}s for C{twistd}'s C{--auth checkpassword:PROGRAM}.

    The argument string is the program's path, optionally followed by its own
    arguments, split as a POSIX shell would (quote a path with spaces).  The checkers
    use L{DEFAULT_TIMEOUT}, L{DEFAULT_MAX_PROCESSES} and L{DEFAULT_SUBPROGRAM}; for other
    values, build a L{CheckpasswordChecker} in code.
    """

    authType = "checkpassword"
    authHelp = f"""
Checks user names and passwords by running a program that speaks qmail's
checkpassword interface (https://cr.yp.to/checkpwd/interface.html), as
'PROGRAM [ARGUMENTS] true', with name, password and an empty timestamp on
descriptor 3.  Exit status 0 accepts the password; 1 refuses it (-ERR [AUTH]);
111 or anything else, a signal or a run over {DEFAULT_TIMEOUT:g} seconds (the
program is then killed) is a temporary failure (-ERR [SYS/TEMP]) and is logged.
At most {DEFAULT_MAX_PROCESSES} programs run at a time; further logins wait.
"""
    argStringFormat = (
        "The program's path, optionally followed by its own arguments, split as a shell "
        "would: checkpassword:/usr/local/bin/checkpw or "
        "checkpassword:'/opt/my auth/checkpw' --some-option"
    )
    credentialInterfaces = (IUsernamePassword,)

    def generateChecker(self, argstring: str) -> CheckpasswordChecker:
        """
        Make a checker running the program named by C{argstring}.

        @param argstring: The program's path, optionally followed by its arguments.
        @raise ValueError: If no program is given, the quoting is unbalanced, or the
            program cannot be found or is not executable.
        """
        argv = shlex.split(argstring)
        if not argv:
            raise ValueError(f"{self.authType!r} requires the path of a program")
        if shutil.which(argv[0]) is None:
            raise ValueError(f"checkpassword program {argv[0]!r}: not found or not executable")
        return CheckpasswordChecker(argv)
