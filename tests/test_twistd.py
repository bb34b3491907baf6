"""
End-to-end tests: C{twistd pop3kit} (and C{twist pop3kit}) as a child process in the
zero-configuration mode, a user added and a message delivered with the C{pop3kit}
command, and the message retrieved with L{poplib}.

The server listens on C{tcp:0:interface=127.0.0.1}, so the kernel picks a free port, and
the test reads the port number from the server's log: no race with other processes for a
port chosen in advance.
"""

from __future__ import annotations

import os
import poplib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

import pop3kit
import twisted.plugins
from tests._oracle import crlfForm

_T = TypeVar("_T")

#: Run C{twistd}; C{python -m twisted} runs C{twist}, which has other options.
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.exit(run())"

#: Run the C{pop3kit} command; the package has no C{__main__} module.
POP3KIT = "import sys; from pop3kit.cli import main; sys.exit(main())"

#: What Twisted logs when a TCP port starts listening, e.g. C{POP3ServerFactory
#: starting on 40123}.
_LISTENING = re.compile(r"POP3ServerFactory starting on (\d+)")

MESSAGE = b"From: a@example.com\nSubject: end to end\n\n.\n..dots\nthe end\n"


def childPythonPath() -> str:
    """
    A C{PYTHONPATH} for child processes that run elsewhere than the project root, so
    they import this pop3kit and find its twistd plugin.

    With a strict editable install (setuptools' default), the plugin under
    C{twisted/plugins/} is found only through the project directory being on
    C{sys.path}; the tests run from there, their children do not.
    """
    entries = [os.path.dirname(os.path.dirname(os.path.abspath(pop3kit.__file__)))]
    for directory in twisted.plugins.__path__:
        if os.path.exists(os.path.join(directory, "pop3kit_plugin.py")):
            entries.append(os.path.dirname(os.path.dirname(os.path.abspath(directory))))
    existing = os.environ.get("PYTHONPATH")
    if existing:
        entries.append(existing)
    return os.pathsep.join(dict.fromkeys(entries))


class ServerProcess:
    """
    C{twistd}/C{twist} running C{pop3kit} in a temporary directory, stopped by its
    process id when the test ends, whatever happens.
    """

    def __init__(self, testCase: TestCase) -> None:
        self.testCase = testCase
        self.directory = os.path.abspath(testCase.mktemp())
        os.makedirs(self.directory)
        self.dataDir = os.path.join(self.directory, "data")
        self.logFile = os.path.join(self.directory, "server.log")
        self.environment = dict(os.environ, PYTHONPATH=childPythonPath())
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, runner: Sequence[str], arguments: Sequence[str] | None = None) -> None:
        """
        Start the server with the runner's command line (Python, its arguments and the
        runner's options, which must send the log to L{logFile}).

        @param arguments: The plugin's options; by default one port on loopback chosen by
            the kernel and the zero-configuration layout in L{dataDir}.
        """
        if arguments is None:
            arguments = [
                *("--listen", "tcp:0:interface=127.0.0.1"),
                *("--data-dir", self.dataDir, "--failed-login-delay", "0"),
            ]
        output = open(os.path.join(self.directory, "output"), "wb")  # noqa: SIM115
        self.testCase.addCleanup(output.close)
        self.process = subprocess.Popen(
            [*runner, "pop3kit", *arguments],
            cwd=self.directory,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        self.testCase.addCleanup(self.stop)

    def log(self) -> str:
        """
        The server's log so far (and what it wrote to its output).
        """
        text = ""
        for name in (self.logFile, os.path.join(self.directory, "output")):
            try:
                with open(name, encoding="utf-8", errors="replace") as f:
                    text += f.read()
            except FileNotFoundError:
                pass
        return text

    async def waitUntilListening(self, timeout: float = 30) -> int:
        """
        Wait until the server logs the port it listens on.

        @return: The port number.
        """
        match = await self._waitUntil(_LISTENING.search, "a listening port", timeout)
        self.port = int(match.group(1))
        return self.port

    async def waitForLog(self, text: str, count: int = 1, timeout: float = 30) -> None:
        """
        Wait until C{text} appears C{count} times in the server's log.
        """

        def found(log: str) -> bool | None:
            return log.count(text) >= count or None

        await self._waitUntil(found, repr(text), timeout)

    async def _waitUntil(self, found: Callable[[str], _T | None], what: str, timeout: float) -> _T:
        """
        Poll the log until C{found} gives something; fail if the server exits or the time
        is up.
        """
        from twisted.internet import reactor

        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            result = found(self.log())
            if result is not None:
                return result
            if self.process.poll() is not None:
                self.testCase.fail(
                    f"the server exited with {self.process.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                self.testCase.fail(f"the server never logged {what}:\n{self.log()}")
            await deferLater(reactor, 0.05, lambda: None)

    async def stop(self) -> int:
        """
        Stop the server with SIGTERM (SIGKILL if it does not exit within ten seconds).

        @return: Its exit status.
        """
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await deferToThread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await deferToThread(process.wait)
        return process.returncode

    async def pop3kit(
        self, *arguments: str, stdin: bytes = b""
    ) -> subprocess.CompletedProcess[bytes]:
        """
        Run the C{pop3kit} command on the server's data directory.
        """
        return await deferToThread(
            subprocess.run,
            [sys.executable, "-c", POP3KIT, "--data-dir", self.dataDir, *arguments],
            input=stdin,
            capture_output=True,
            cwd=self.directory,
            env=self.environment,
            timeout=60,
            check=False,
        )


class TwistdTests(TestCase):
    """
    The server run by twistd (and twist), used as a user would.
    """

    timeout = 120

    async def _endToEnd(self, runner: Callable[[str], Sequence[str]]) -> None:
        """
        Start the server with C{runner(logFile)}, add alice, deliver a message, retrieve
        it with poplib, and stop the server.
        """
        server = ServerProcess(self)
        server.start(runner(server.logFile))
        port = await server.waitUntilListening()
        # The ports are bound before the services start, and the data directory is made
        # (and the hint logged) only when they start: wait for it.
        hint = f"add one with: pop3kit --data-dir {server.dataDir} user add NAME"
        await server.waitForLog(hint)
        self.assertTrue(os.path.exists(os.path.join(server.dataDir, "passwd")))

        added = await server.pop3kit("user", "add", "alice", "--password-stdin", stdin=b"secret\n")
        self.assertEqual(added.returncode, 0, added.stderr)
        delivered = await server.pop3kit("deliver", "alice", stdin=MESSAGE)
        self.assertEqual(delivered.returncode, 0, delivered.stderr)

        def session() -> tuple[tuple[int, int], list[bytes], int, bytes]:
            client = poplib.POP3("127.0.0.1", port, timeout=30)
            try:
                client.user("alice")
                client.pass_("secret")
                stat = client.stat()
                _, lines, octets = client.retr(1)
                return stat, lines, octets, client.quit()
            finally:
                client.close()

        stat, lines, octets, bye = await deferToThread(session)
        expected = crlfForm(MESSAGE)
        self.assertEqual(stat, (1, len(expected)))
        self.assertEqual(b"".join(line + b"\r\n" for line in lines), expected)
        self.assertEqual(octets, len(expected))
        self.assertEqual(bye, b"+OK bye")

        # twistd re-raises the signal that stopped it, so that its exit status tells.
        self.assertIn(await server.stop(), (0, -signal.SIGTERM), server.log())
        self.assertIn("Main loop terminated.", server.log())

    async def test_twistd(self) -> None:
        """
        C{twistd -n pop3kit} with no configuration serves a user added and a message
        delivered with the C{pop3kit} command, and stops cleanly on SIGTERM.
        """
        await self._endToEnd(
            lambda logFile: [
                *(sys.executable, "-c", TWISTD),
                *("--nodaemon", "--pidfile=", "--logfile", logFile),
            ]
        )

    async def test_twist(self) -> None:
        """
        C{python -m twisted pop3kit} (the C{twist} runner) works the same way.
        """
        await self._endToEnd(
            lambda logFile: [
                *(sys.executable, "-m", "twisted"),
                *("--log-file", logFile, "--log-format", "text"),
            ]
        )
