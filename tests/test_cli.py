"""
Tests for L{pop3kit.cli}.
"""

from __future__ import annotations

import errno
import getpass
import io
import os
import stat
import sys
from typing import BinaryIO

from twisted.cred.credentials import UsernamePassword
from twisted.trial.unittest import SynchronousTestCase

from pop3kit import cli
from pop3kit.backends import maildir
from pop3kit.checkers.passwdfile import PasswdFileChecker, listUsers, verifyPassword
from tests.test_checker_passwdfile import ThreadedReactor


class _FakeInput(io.TextIOWrapper):
    """
    Standard input from bytes, a terminal or not.
    """

    def __init__(self, data: io.BytesIO, terminal: bool) -> None:
        super().__init__(data, encoding="utf-8")
        self._terminal = terminal

    def isatty(self) -> bool:
        return self._terminal


class CLITestCase(SynchronousTestCase):
    """
    Run L{cli.main} with captured standard streams, in a scratch directory.
    """

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.dataDir = os.path.join(self.base, "data")
        self.passwd = os.path.join(self.dataDir, "passwd")
        self.prompts: list[str] = []
        self.terminal = False

    def runCommand(self, *argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
        """
        Run the command with C{--data-dir} pointing into the scratch directory.

        @return: The exit status, standard output and standard error.
        """
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdin", _FakeInput(io.BytesIO(stdin), self.terminal))
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        status = cli.main(["--data-dir", self.dataDir, *argv])
        return status, out.getvalue(), err.getvalue()

    def assertError(self, result: tuple[int, str, str], text: str, status: int = 1) -> None:
        """
        The command failed with C{status} and one line on standard error holding C{text}.
        """
        self.assertEqual(result[0], status, result)
        self.assertIn(text, result[2])
        self.assertEqual(result[2].count("\n"), 1, result[2])
        self.assertTrue(result[2].startswith("pop3kit: error: "), result[2])

    def patchGetpass(self, *answers: str | type[BaseException]) -> None:
        """
        Answer the password prompts in turn, standard input being a terminal.
        """
        self.terminal = True
        remaining = list(answers)

        def fakeGetpass(prompt: str = "Password: ", stream: object = None) -> str:
            self.prompts.append(prompt)
            answer = remaining.pop(0)
            if isinstance(answer, str):
                return answer
            raise answer()

        self.patch(getpass, "getpass", fakeGetpass)

    def login(self, name: str, password: str) -> bool:
        """
        Whether the checker accepts C{name} and C{password} from the passwd file.
        """
        checker = PasswdFileChecker(self.passwd, reactor=ThreadedReactor())
        d = checker.requestAvatarId(UsernamePassword(name.encode(), password.encode()))
        results: list[object] = []
        d.addBoth(results.append)
        [result] = results
        if result == name:
            return True
        self.assertIsNot(result, None)
        return False


class UserAddTests(CLITestCase):
    """
    Tests for C{pop3kit user add}.
    """

    def test_passwordStdin(self) -> None:
        """
        With C{--password-stdin}, one line is read, only its line end stripped; the file
        is created with mode C{0o600} and read by the checker.
        """
        status, out, err = self.runCommand(
            "user", "add", "alice", "--password-stdin", stdin=b" pass word \nignored\n"
        )
        self.assertEqual((status, err), (0, ""))
        self.assertIn("alice", out)
        self.assertEqual(stat.S_IMODE(os.stat(self.passwd).st_mode), 0o600)
        with open(self.passwd) as f:
            self.assertTrue(f.read().startswith("alice:{SCRAM-SHA-256}4096,"))
        self.assertTrue(self.login("alice", " pass word "))
        self.assertFalse(self.login("alice", "pass word"))
        self.assertFalse(self.login("alice", "ignored"))

    def test_crlfAndNoLineEnd(self) -> None:
        """
        A CRLF line end is stripped; input without a line end is taken whole.
        """
        self.assertEqual(
            self.runCommand(
                "user", "add", "a", "--password-stdin", "--scheme", "plain", stdin=b"x\r\n"
            )[0],
            0,
        )
        self.assertEqual(
            self.runCommand(
                "user", "add", "b", "--password-stdin", "--scheme", "PLAIN", stdin=b"y"
            )[0],
            0,
        )
        with open(self.passwd) as f:
            self.assertEqual(f.read(), "a:{PLAIN}x\nb:{PLAIN}y\n")

    def test_schemes(self) -> None:
        """
        C{--scheme} selects the scheme, case-insensitively.
        """
        self.runCommand(
            "user", "add", "alice", "--password-stdin", "--scheme", "ssha512", stdin=b"pw\n"
        )
        with open(self.passwd) as f:
            field = f.read().split(":")[1].strip()
        self.assertTrue(field.startswith("{SSHA512}"))
        self.assertTrue(verifyPassword("pw", field))

    def test_prompt(self) -> None:
        """
        Without C{--password-stdin} the password is asked for twice.
        """
        self.patchGetpass("s3cret", "s3cret")
        status, _, err = self.runCommand("user", "add", "alice", "--scheme", "SSHA512")
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(len(self.prompts), 2)
        self.assertTrue(self.login("alice", "s3cret"))

    def test_promptMismatch(self) -> None:
        """
        Two different answers are an error, and nothing is written.
        """
        self.patchGetpass("one", "two")
        self.assertError(self.runCommand("user", "add", "alice"), "do not match")
        self.assertFalse(os.path.exists(self.passwd))

    def test_promptEOF(self) -> None:
        """
        End of input at the prompt is an error.
        """
        self.patchGetpass(EOFError)
        self.assertError(self.runCommand("user", "add", "alice"), "no password")

    def test_emptyPassword(self) -> None:
        """
        An empty password is refused.
        """
        self.assertError(
            self.runCommand("user", "add", "alice", "--password-stdin", stdin=b"\n"), "empty"
        )
        self.patchGetpass("", "")
        self.assertError(self.runCommand("user", "add", "alice"), "empty")
        self.assertFalse(os.path.exists(self.passwd))

    def test_badNames(self) -> None:
        """
        Names that cannot be written to the file, or cannot name a Maildir, are refused
        before any prompt.
        """
        self.patchGetpass()
        for name in ("a:b", "", "#x", "a\nb", "a b", ".alice", "../x"):
            self.assertError(self.runCommand("user", "add", name), "invalid user name")
        self.assertEqual(self.prompts, [])
        self.assertFalse(os.path.exists(self.passwd))

    def test_existing(self) -> None:
        """
        Adding an existing user fails, before any prompt, and keeps the password.
        """
        self.runCommand(
            "user", "add", "alice", "--password-stdin", "--scheme", "PLAIN", stdin=b"one\n"
        )
        self.patchGetpass()
        self.assertError(self.runCommand("user", "add", "alice"), "already exists")
        self.assertTrue(self.login("alice", "one"))

    def test_passwordTooLongForScheme(self) -> None:
        """
        A password the scheme cannot hash is reported in one line.
        """
        result = self.runCommand(
            "user", "add", "alice", "--password-stdin", "--scheme", "BLF-CRYPT", stdin=b"x" * 80
        )
        self.assertError(result, "72")

    def test_passwdOption(self) -> None:
        """
        C{--passwd} names another file; C{--data-dir} may follow the subcommand.
        """
        other = os.path.join(self.base, "elsewhere", "users")
        status = self.runCommand(
            "user", "add", "bob", "--passwd", other, "--password-stdin", stdin=b"pw\n"
        )[0]
        self.assertEqual(status, 0)
        self.assertEqual(listUsers(other), ["bob"])
        self.assertFalse(os.path.exists(self.passwd))
        dataDir = os.path.join(self.base, "later")
        self.patch(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"pw\n"), encoding="utf-8"))
        self.patch(sys, "stdout", io.StringIO())
        argv = ["user", "add", "carol", "--password-stdin", "--data-dir", dataDir]
        self.assertEqual(cli.main(argv), 0)
        self.assertEqual(listUsers(os.path.join(dataDir, "passwd")), ["carol"])

    def test_defaultDataDir(self) -> None:
        """
        Without C{--data-dir}, the file is C{./pop3kit-data/passwd}, read from C{sys.argv}.
        """
        here = os.getcwd()
        self.addCleanup(os.chdir, here)
        os.chdir(self.base)
        self.patch(sys, "argv", ["pop3kit", "user", "add", "alice", "--password-stdin"])
        self.patch(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"pw\n"), encoding="utf-8"))
        self.patch(sys, "stdout", io.StringIO())
        self.assertEqual(cli.main(), 0)
        self.assertEqual(listUsers(os.path.join(self.base, "pop3kit-data", "passwd")), ["alice"])


class UserPasswdRemoveListTests(CLITestCase):
    """
    Tests for C{pop3kit user passwd}, C{remove} and C{list}.
    """

    def setUp(self) -> None:
        super().setUp()
        os.makedirs(self.dataDir)
        with open(self.passwd, "w") as f:
            f.write("# users\nalice:{PLAIN}old:1000:1000::/home/alice::\nbob:{PLAIN}b\n")

    def test_passwd(self) -> None:
        """
        The password changes; the other fields, lines and comments stay.
        """
        status, out, err = self.runCommand(
            "user", "passwd", "alice", "--password-stdin", "--scheme", "PLAIN", stdin=b"new\n"
        )
        self.assertEqual((status, err), (0, ""))
        self.assertIn("alice", out)
        with open(self.passwd) as f:
            self.assertEqual(
                f.read(), "# users\nalice:{PLAIN}new:1000:1000::/home/alice::\nbob:{PLAIN}b\n"
            )

    def test_passwdPrompt(self) -> None:
        """
        The new password can be typed at the prompt.
        """
        self.patchGetpass("n3w", "n3w")
        self.assertEqual(self.runCommand("user", "passwd", "bob", "--scheme", "SSHA512")[0], 0)
        self.assertTrue(self.login("bob", "n3w"))
        self.assertFalse(self.login("bob", "b"))

    def test_passwdUnknownUser(self) -> None:
        """
        Changing the password of an unknown user fails before any prompt.
        """
        self.patchGetpass()
        self.assertError(self.runCommand("user", "passwd", "carol"), "no user 'carol'")

    def test_passwdMissingFile(self) -> None:
        """
        A missing file is reported in one line.
        """
        os.remove(self.passwd)
        self.assertError(self.runCommand("user", "passwd", "alice"), "No such file")

    def test_unreadableFile(self) -> None:
        """
        A passwd path that cannot be read is reported in one line, for every command.
        """
        os.remove(self.passwd)
        os.makedirs(self.passwd)
        self.assertError(self.runCommand("user", "list"), self.passwd)
        self.assertError(
            self.runCommand(
                "user", "add", "x", "--password-stdin", "--scheme", "PLAIN", stdin=b"p\n"
            ),
            self.passwd,
        )

    def test_remove(self) -> None:
        """
        C{remove} drops the user; removing an unknown user fails.
        """
        self.assertEqual(self.runCommand("user", "remove", "alice")[0], 0)
        self.assertEqual(listUsers(self.passwd), ["bob"])
        self.assertError(self.runCommand("user", "remove", "alice"), "no user 'alice'")

    def test_list(self) -> None:
        """
        C{list} prints the user names, one a line.
        """
        self.assertEqual(self.runCommand("user", "list"), (0, "alice\nbob\n", ""))


class UsageTests(CLITestCase):
    """
    Usage errors exit with 2, as argparse does.
    """

    def test_usageErrors(self) -> None:
        """
        A missing command, argument, or a bad choice is a usage error.
        """
        for argv in (
            (),
            ("user",),
            ("user", "add"),
            ("user", "frobnicate"),
            ("user", "add", "x", "--scheme", "ROT13"),
            ("deliver",),
        ):
            status, _, err = self.runCommand(*argv)
            self.assertEqual(status, 2, argv)
            self.assertIn("usage:", err)

    def test_help(self) -> None:
        """
        C{--help} exits with 0.
        """
        status, out, _ = self.runCommand("--help")
        self.assertEqual(status, 0)
        self.assertIn("deliver", out)


class DeliverTests(CLITestCase):
    """
    Tests for C{pop3kit deliver}.
    """

    message = b"From: a@example.com\nSubject: hi\n\n.\nbody\r\n"

    def newMessages(self, maildirPath: str) -> list[bytes]:
        contents = []
        for name in sorted(os.listdir(os.path.join(maildirPath, "new"))):
            with open(os.path.join(maildirPath, "new", name), "rb") as f:
                contents.append(f.read())
        return contents

    def test_deliver(self) -> None:
        """
        The message on standard input lands, unchanged, in the user's Maildir under the
        data directory.
        """
        status, out, err = self.runCommand("deliver", "alice", stdin=self.message)
        self.assertEqual((status, out, err), (0, "", ""))
        self.assertEqual(
            self.newMessages(os.path.join(self.dataDir, "mail", "alice")), [self.message]
        )

    def test_maildirRoot(self) -> None:
        """
        C{--maildir-root} chooses the Maildirs' parent, through L{maildir.mailboxPath}.
        """
        root = os.path.join(self.base, "maildirs")
        self.assertEqual(
            self.runCommand("deliver", "bob", "--maildir-root", root, stdin=b"x\n")[0], 0
        )
        self.assertEqual(self.newMessages(maildir.mailboxPath(root, "bob")), [b"x\n"])

    def test_badName(self) -> None:
        """
        An unsafe name is refused as no such user (67, EX_NOUSER), and nothing is created.
        """
        for name in ("../escape", ".hidden", "a/b"):
            self.assertError(
                self.runCommand("deliver", name, stdin=b"x\n"), "invalid user name", 67
            )
        self.assertFalse(os.path.exists(os.path.join(self.dataDir, "mail")))

    def test_writeFailureIsTemporary(self) -> None:
        """
        A failed write exits with 75 (EX_TEMPFAIL) so that the MTA tries again.
        """

        def deliver(path: str, message: BinaryIO, **kwargs: object) -> str:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

        self.patch(maildir, "deliver", deliver)
        self.assertError(
            self.runCommand("deliver", "alice", stdin=b"x\n"), "No space", cli.EX_TEMPFAIL
        )

    def test_rootIsAFile(self) -> None:
        """
        A Maildir root that is a file is reported in one line, as a permanent failure (73,
        EX_CANTCREAT): trying again cannot help.
        """
        root = os.path.join(self.base, "file")
        with open(root, "w"):
            pass
        result = self.runCommand("deliver", "alice", "--maildir-root", root, stdin=b"x\n")
        self.assertError(result, root, 73)
