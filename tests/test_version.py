"""
Tests for C{--version} of C{pop3kit}, C{python -m pop3kit} and C{twistd pop3kit}, and for
the hint to use C{--password-stdin} when a password is piped in.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

import pop3kit
import twisted
from pop3kit import tap
from tests.test_cli import CLITestCase
from tests.test_twistd import TWISTD, childPythonPath

#: What every C{--version} prints.
VERSION = f"pop3kit {pop3kit.__version__} (Twisted {twisted.__version__})\n"


def run(*command: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """
    Run C{command} with this pop3kit importable.
    """
    return subprocess.run(
        command,
        input=stdin.decode(),
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=childPythonPath()),
        timeout=60,
        check=False,
    )


class VersionTests(TestCase):
    """
    Each way of running pop3kit tells pop3kit's version.
    """

    timeout = 120

    async def test_module(self) -> None:
        """
        C{python -m pop3kit --version}.
        """
        result = await deferToThread(run, sys.executable, "-m", "pop3kit", "--version")
        self.assertEqual((result.returncode, result.stdout), (0, VERSION), result.stderr)

    async def test_moduleRunsCommand(self) -> None:
        """
        C{python -m pop3kit} is the C{pop3kit} command: with no arguments, its usage.
        """
        result = await deferToThread(run, sys.executable, "-m", "pop3kit")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("usage: pop3kit", result.stderr)

    async def test_twistd(self) -> None:
        """
        C{twistd pop3kit --version}: pop3kit's version, not only Twisted's.
        """
        result = await deferToThread(run, sys.executable, "-c", TWISTD, "pop3kit", "--version")
        self.assertEqual((result.returncode, result.stdout), (0, VERSION), result.stderr)

    def test_options(self) -> None:
        """
        L{tap.Options} takes C{--version} and exits with status 0.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        error = self.assertRaises(SystemExit, tap.Options().parseOptions, ["--version"])
        self.assertEqual(error.code, 0)
        self.assertEqual(out.getvalue(), VERSION)


class CommandTests(CLITestCase):
    """
    C{pop3kit --version}; and a password piped into C{pop3kit user add} without
    C{--password-stdin}, which is not asked for on the terminal (that would ignore the
    pipe): the command says what to use.
    """

    def test_userAdd(self) -> None:
        """
        C{user add}: a usage error naming C{--password-stdin}, and nobody added.
        """
        self.assertError(
            self.runCommand("user", "add", "alice", stdin=b"secret\n"), "use --password-stdin", 2
        )
        self.assertFalse(os.path.exists(self.passwd))

    def test_version(self) -> None:
        """
        C{pop3kit --version}.
        """
        self.assertEqual(self.runCommand("--version"), (0, VERSION, ""))

    def test_userPasswd(self) -> None:
        """
        C{user passwd}: the same.
        """
        self.runCommand("user", "add", "alice", "--password-stdin", stdin=b"secret\n")
        self.assertError(
            self.runCommand("user", "passwd", "alice", stdin=b"new\n"), "use --password-stdin", 2
        )
