"""
Tests for C{pop3kit user test NAME}: a password checked against the configured checkers,
run as the command a user types.
"""

from __future__ import annotations

import getpass
import io
import os
import subprocess
import sys

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit import _usertest
from pop3kit._exits import ExitError, ExitStatus
from pop3kit.checkers.passwdfile import addUser, hashPassword
from tests.test_twistd import POP3KIT, childPythonPath


class UserTestCommandTests(TestCase):
    """
    C{pop3kit user test} says which checker answered, and exits with its verdict.
    """

    timeout = 120

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.dataDir = os.path.join(self.base, "data")
        os.makedirs(self.dataDir)
        self.passwd = os.path.join(self.dataDir, "passwd")
        addUser(self.passwd, "alice", hashPassword("secret", "PLAIN"))

    async def userTest(
        self,
        *arguments: str,
        password: str = "secret",  # noqa: S107
    ) -> tuple[int, str, str]:
        """
        Run C{pop3kit user test ARGUMENTS --password-stdin} with C{password}.
        """
        result = await deferToThread(
            subprocess.run,
            [
                *(sys.executable, "-c", POP3KIT, "--data-dir", self.dataDir, "user", "test"),
                *(*arguments, "--password-stdin"),
            ],
            input=(password + "\n").encode(),
            capture_output=True,
            env=dict(os.environ, PYTHONPATH=childPythonPath()),
            cwd=self.base,
            timeout=60,
            check=False,
        )
        return result.returncode, result.stdout.decode(), result.stderr.decode()

    async def test_accepted(self) -> None:
        """
        The right password: exit 0, naming the passwd-file that accepted it.
        """
        status, out, err = await self.userTest("alice")
        self.assertEqual(status, 0, err)
        self.assertEqual(
            out.splitlines(),
            [
                f"passwd-file:{self.passwd}: accepted as 'alice'",
                f"alice: accepted by passwd-file:{self.passwd}",
            ],
        )

    async def test_wrongPassword(self) -> None:
        """
        A wrong password: exit 1, saying so.
        """
        status, out, err = await self.userTest("alice", password="nope")
        self.assertEqual(status, 1, err)
        self.assertEqual(out, f"passwd-file:{self.passwd}: wrong password\nalice: refused\n")

    async def test_unknownUser(self) -> None:
        """
        An unknown user: exit 67 (EX_NOUSER).
        """
        status, out, err = await self.userTest("bob")
        self.assertEqual(status, 67, err)
        self.assertEqual(out, f"passwd-file:{self.passwd}: unknown user\nbob: unknown user\n")

    async def test_chain(self) -> None:
        """
        With several C{--auth} checkers, each is tried in turn until one accepts.
        """
        status, out, err = await self.userTest(
            "alice", "--auth", "memory:bob:pw", "--auth", f"passwd-file:{self.passwd}"
        )
        self.assertEqual(status, 0, err)
        self.assertEqual(
            out.splitlines(),
            [
                "memory:bob:pw: refused",
                f"passwd-file:{self.passwd}: accepted as 'alice'",
                f"alice: accepted by passwd-file:{self.passwd}",
            ],
        )
        status, out, err = await self.userTest("bob", "--auth", "memory:bob:pw", password="pw")
        self.assertEqual(status, 0, err)
        self.assertIn("bob: accepted by memory:bob:pw", out)

    async def test_checkerFails(self) -> None:
        """
        A checker that fails (a checkpassword program exiting 111): exit 75.
        """
        program = os.path.join(self.base, "broken")
        with open(program, "w") as f:
            f.write("#!/bin/sh\nexit 111\n")
        os.chmod(program, 0o700)
        status, out, err = await self.userTest("alice", "--auth", f"checkpassword:{program}")
        self.assertEqual(status, 75, err)
        self.assertIn(f"checkpassword:{program}: failed: ", out)
        self.assertTrue(out.endswith("alice: not checked: a checker failed\n"), out)

    async def test_badAuth(self) -> None:
        """
        An C{--auth} type nobody knows is a usage error in one line.
        """
        status, out, err = await self.userTest("alice", "--auth", "nosuch:thing")
        self.assertEqual(status, 2, out)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn("--auth nosuch:thing", err)


class ReadPasswordTests(SynchronousTestCase):
    """
    L{_usertest.readPassword} asks once on the terminal, or reads one line.
    """

    def test_prompt(self) -> None:
        """
        Without C{--password-stdin}, the password is asked for once.
        """
        prompts: list[str] = []

        def fake(prompt: str = "Password: ", stream: object = None) -> str:
            prompts.append(prompt)
            return "secret"

        self.patch(getpass, "getpass", fake)
        self.assertEqual(_usertest.readPassword(False), "secret")
        self.assertEqual(prompts, ["Password: "])

    def test_noTerminal(self) -> None:
        """
        No terminal and no C{--password-stdin}: a clear error naming the option.
        """

        def fake(prompt: str = "", stream: object = None) -> str:
            raise EOFError()

        self.patch(getpass, "getpass", fake)
        error = self.assertRaises(ExitError, _usertest.readPassword, False)
        self.assertIn("--password-stdin", str(error))

    def test_stdin(self) -> None:
        """
        One line of standard input, without its line end; an empty one is refused.
        """
        self.assertEqual(_usertest.readPassword(True, io.StringIO("pw\r\nmore\n")), "pw")
        error = self.assertRaises(ExitError, _usertest.readPassword, True, io.StringIO("\n"))
        self.assertEqual(error.status, ExitStatus.FAILURE)
