"""
Tests for the start-up mistakes of C{twistd pop3kit}: each is one line naming the option
or the path, never a traceback, and the server says it serves only once its ports are
bound.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from pop3kit import tap
from tests.test_tap import LogCapture, parse
from tests.test_twistd import TWISTD, ServerProcess, childPythonPath


def busyPort(testCase: TestCase) -> int:
    """
    A loopback port that a listening socket holds until the test ends.
    """
    holder = socket.socket()
    testCase.addCleanup(holder.close)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port: int = holder.getsockname()[1]
    return port


class CheckLayoutTests(TestCase):
    """
    L{tap.makeService} refuses directories that cannot serve, before anything listens.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.file = os.path.join(self.directory, "file")
        with open(self.file, "w") as f:
            f.write("not a directory\n")

    def assertCannotStart(self, expected: str, *arguments: str) -> None:
        """
        Building the service from C{arguments} raises L{tap.CannotStart} with the message
        C{expected}.
        """
        options = parse("--listen", "tcp:0:interface=127.0.0.1", *arguments)
        error = self.assertRaises(tap.CannotStart, tap.makeService, options)
        self.assertEqual(error.code, f"twistd pop3kit: {expected}")

    def test_missingMaildirRoot(self) -> None:
        """
        A C{--maildir-root} that does not exist is refused: a typo must not become an
        empty maildrop for everyone, nor a C{[SYS/TEMP]} at every login.
        """
        root = os.path.join(self.directory, "typo")
        self.assertCannotStart(
            f"--maildir-root {root}: no such directory",
            *("--maildir-root", root, "--auth", "memory:alice:secret"),
        )
        self.assertFalse(os.path.exists(root))

    def test_maildirRootIsAFile(self) -> None:
        """
        A C{--maildir-root} that is a file is refused.
        """
        self.assertCannotStart(
            f"--maildir-root {self.file}: not a directory",
            *("--maildir-root", self.file, "--auth", "memory:alice:secret"),
        )

    def test_dataDirIsAFile(self) -> None:
        """
        A C{--data-dir} that is a file is refused.
        """
        self.assertCannotStart(f"--data-dir {self.file}: not a directory", "--data-dir", self.file)

    def test_dataDirMailIsAFile(self) -> None:
        """
        A C{mail} file where the zero-configuration layout keeps its Maildirs is refused.
        """
        mail = os.path.join(self.directory, "mail")
        with open(mail, "w"):
            pass
        self.assertCannotStart(f"--data-dir {mail}: not a directory", "--data-dir", self.directory)

    def test_missingDataDirIsCreatedLater(self) -> None:
        """
        A missing C{--data-dir} is fine: it is created when the service starts.
        """
        tap.makeService(parse("--data-dir", os.path.join(self.directory, "new")))

    def test_dataDirCannotBeCreated(self) -> None:
        """
        A C{--data-dir} that cannot be created when the service starts (under a file,
        here; as the service user, in production) stops the start with one line.
        """
        dataDir = os.path.join(self.file, "data")
        service = tap.makeService(
            parse("--listen", "tcp:0:interface=127.0.0.1", "--data-dir", dataDir)
        )
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        error = self.assertRaises(tap.CannotStart, service.startService)
        self.assertEqual(error.code, f"twistd pop3kit: --data-dir {dataDir}: Not a directory")

    def test_invalidListen(self) -> None:
        """
        A C{--listen} description that is not a Twisted endpoint is refused, naming it.
        """
        for description in ("tcp:abc", "nosuchtype:110", "tcp:110:bogus=1"):
            options = parse("--listen", description, "--data-dir", self.directory)
            error = self.assertRaises(tap.CannotStart, tap.makeService, options)
            self.assertIn(f"--listen {description!r} is not a valid endpoint: ", str(error.code))

    def test_systemdWithoutSocket(self) -> None:
        """
        A C{systemd:} endpoint without the socket systemd should have passed.
        """
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if k != "LISTEN_FDS"})
        options = parse("--listen", "systemd:domain=INET:index=0", "--data-dir", self.directory)
        error = self.assertRaises(tap.CannotStart, tap.makeService, options)
        self.assertIn("systemd passed no such socket", str(error.code))

    def test_portInUse(self) -> None:
        """
        A port already in use stops the start with one line naming the description; the
        server never says it serves.
        """
        log = LogCapture()
        globalLogPublisher.addObserver(log)
        self.addCleanup(globalLogPublisher.removeObserver, log)
        description = f"tcp:{busyPort(self)}:interface=127.0.0.1"
        service = tap.makeService(parse("--listen", description, "--data-dir", self.directory))
        error = self.assertRaises(tap.CannotStart, service.privilegedStartService)
        self.assertEqual(
            error.code,
            f"twistd pop3kit: cannot listen on {description}: Address already in use",
        )
        self.assertFalse([m for m in log.messages if "serving" in m], log.messages)

    def test_servingAfterBinding(self) -> None:
        """
        "serving" is logged when the service starts, with the address actually bound.
        """
        log = LogCapture()
        globalLogPublisher.addObserver(log)
        self.addCleanup(globalLogPublisher.removeObserver, log)
        service = tap.makeService(
            parse("--listen", "tcp:0:interface=127.0.0.1", "--data-dir", self.directory)
        )
        self.assertFalse([m for m in log.messages if "serving" in m], log.messages)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        [serving] = [m for m in log.messages if "pop3kit serving" in m]
        self.assertRegex(serving, r"on 127\.0\.0\.1:[1-9]\d*$")


class TwistdStartupTests(TestCase):
    """
    C{twistd -n pop3kit} started wrongly prints one line and exits with status 1.
    """

    timeout = 120

    def twistd(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """
        Run C{twistd -n pop3kit} with C{arguments}, its log on standard output.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        return subprocess.run(
            [*(sys.executable, "-c", TWISTD), *("--nodaemon", "--pidfile="), "pop3kit", *arguments],
            cwd=directory,
            env=dict(os.environ, PYTHONPATH=childPythonPath()),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    async def assertOneLine(self, expected: str, *arguments: str) -> None:
        """
        twistd with C{arguments} exits with status 1 and prints only C{expected}: on
        standard error if the log has not started yet, else as a line of the log.
        """
        result = await deferToThread(self.twistd, *arguments)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        line = f"twistd pop3kit: {expected}"
        if result.stderr:
            self.assertEqual((result.stderr, result.stdout), (line + "\n", ""))
        else:
            self.assertNotIn("Traceback", result.stdout)
            self.assertEqual(result.stdout.count("twistd pop3kit:"), 1, result.stdout)
            self.assertIn(f"] {line}\n", result.stdout)

    async def test_portInUse(self) -> None:
        """
        A port already in use.
        """
        directory = os.path.abspath(self.mktemp())
        description = f"tcp:{busyPort(self)}:interface=127.0.0.1"
        await self.assertOneLine(
            f"cannot listen on {description}: Address already in use",
            *("--listen", description, "--data-dir", directory),
        )

    async def test_portInUseDaemon(self) -> None:
        """
        Daemonizing (no C{-n}), the waiting parent process reports the line and exits
        with status 1, instead of waiting for ever; the log has the line, no traceback;
        no PID file is left.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        description = f"tcp:{busyPort(self)}:interface=127.0.0.1"
        pidfile = os.path.join(directory, "twistd.pid")
        command = [
            *(sys.executable, "-c", TWISTD, "--pidfile", pidfile),
            *("--logfile", os.path.join(directory, "log")),
            *("pop3kit", "--listen", description, "--data-dir", directory),
        ]
        result = await deferToThread(
            subprocess.run,
            command,
            cwd=directory,
            env=dict(os.environ, PYTHONPATH=childPythonPath()),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertEqual(result.returncode, 1, result.stderr)
        # twistd passes the parent at most 100 octets; the log has the whole line.
        self.assertIn("twistd pop3kit: cannot listen on tcp:", result.stderr)
        # The daemon writes it as it exits, maybe after the parent did.
        line = f"twistd pop3kit: cannot listen on {description}: Address already in use\n"
        for _ in range(600):
            with open(os.path.join(directory, "log")) as f:
                log = f.read()
            if line in log:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertIn(line, log)
        self.assertNotIn("Traceback", log)
        self.assertFalse(os.path.exists(pidfile))

    async def test_badListen(self) -> None:
        """
        A C{--listen} that is not an endpoint.
        """
        result = await deferToThread(self.twistd, "--listen", "tcp:abc")
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertIn("--listen 'tcp:abc' is not a valid endpoint", result.stderr)

    async def test_dataDirIsAFile(self) -> None:
        """
        A C{--data-dir} that is a file.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "w"):
            pass
        await self.assertOneLine(f"--data-dir {path}: not a directory", "--data-dir", path)

    async def test_missingMaildirRoot(self) -> None:
        """
        A C{--maildir-root} that does not exist.
        """
        root = os.path.abspath(self.mktemp())
        await self.assertOneLine(
            f"--maildir-root {root}: no such directory",
            *("--maildir-root", root, "--auth", "memory:alice:secret"),
        )

    async def test_servingLoggedAfterBinding(self) -> None:
        """
        A server that starts says what it serves, with the bound address.
        """
        server = ServerProcess(self)
        server.start(
            [
                *(sys.executable, "-c", TWISTD),
                *("--nodaemon", "--pidfile=", "--logfile", server.logFile),
            ]
        )
        port = await server.waitUntilListening()
        await server.waitForLog(f"on 127.0.0.1:{port}")
