"""
The programs the interoperability tests run (curl, openssl, mpop, fetchmail, getmail, perl,
Dovecot), and what a test does when one is missing.

On a developer's machine a test whose program is missing is skipped.  Under continuous
integration (the environment variable C{CI} set, as C{.ci/run} runs and as CI services set
it) it fails instead: C{.ci/run} installs every one of these programs, so a missing one
means a broken CI set-up, which must not pass as a few dozen quiet skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping
from typing import NoReturn

from twisted.trial.unittest import FailTest, SkipTest

#: Values of C{CI} that mean "not under CI".
_NOT_CI = frozenset({"", "0", "false", "no", "off"})

#: Where daemons live on Debian; not on the C{PATH} of every user.
_SYSTEM_DIRECTORIES = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def underCI(environ: Mapping[str, str] | None = None) -> bool:
    """
    Whether the tests run under continuous integration: C{CI} is set to something other
    than an empty, zero or false value.

    @param environ: The environment; L{os.environ} by default.
    """
    if environ is None:
        environ = os.environ
    return environ.get("CI", "").strip().lower() not in _NOT_CI


def findTool(name: str) -> str | None:
    """
    The path of the program C{name}, looked for on the C{PATH} and then in the system
    directories, or L{None}.
    """
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SYSTEM_DIRECTORIES])
    return shutil.which(name, path=search)


def missingTool(reason: str, environ: Mapping[str, str] | None = None) -> NoReturn:
    """
    Give up the running test because a program it needs is missing: skip it, or fail it
    under CI.

    @param reason: What is missing, and which Debian package provides it.
    @param environ: The environment; L{os.environ} by default.

    @raise SkipTest: Outside CI.
    @raise FailTest: Under CI.
    """
    if underCI(environ):
        raise FailTest(f"{reason}; under CI a missing interoperability tool fails the tests")
    raise SkipTest(reason)


def requireTool(
    name: str,
    package: str,
    check: Callable[[str], str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """
    The path of the program C{name}, which the running test needs; call it from C{setUp}.

    @param name: The program's name.
    @param package: The Debian package that provides it.
    @param check: Called with the program's path, returns why the program cannot serve the
        tests (say, a missing module), or L{None} if it can.
    @param environ: The environment; L{os.environ} by default.

    @raise SkipTest: If the program is missing or fails C{check}, outside CI.
    @raise FailTest: If the program is missing or fails C{check}, under CI.
    """
    path = findTool(name)
    if path is None:
        missingTool(f"{name} is not installed (Debian package {package})", environ)
    if check is not None:
        problem = check(path)
        if problem is not None:
            missingTool(f"{problem} (Debian package {package})", environ)
    return path


def stopProcess(
    process: subprocess.Popen[bytes] | None, stopSignal: int = signal.SIGTERM, wait: float = 10
) -> None:
    """
    Stop a program the tests started, by its process id: C{stopSignal}, then SIGKILL if it
    has not exited within C{wait} seconds.  Does nothing for L{None} or an exited process.
    """
    if process is None or process.poll() is not None:
        return
    process.send_signal(stopSignal)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def freePort(host: str = "127.0.0.1") -> int:
    """
    A TCP port on C{host} that nobody listens on right now (for a program the tests
    start, which binds it itself).
    """
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
