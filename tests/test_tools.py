"""
Tests for L{tests._tools}: a missing interoperability tool skips a test on a developer's
machine and fails it under CI.
"""

from __future__ import annotations

import os
import stat

from twisted.trial.unittest import FailTest, SkipTest, SynchronousTestCase

from tests._tools import findTool, missingTool, requireTool, underCI

#: A program no machine has.
MISSING = "pop3kit-test-no-such-program"


class UnderCITests(SynchronousTestCase):
    """
    L{underCI} reads the C{CI} environment variable.
    """

    def test_set(self) -> None:
        """
        C{CI=true}, as C{.ci/run} and CI services set it, and other true values mean CI.
        """
        for value in ["true", "TRUE", "1", "yes"]:
            self.assertTrue(underCI({"CI": value}), value)

    def test_unsetOrFalse(self) -> None:
        """
        No C{CI}, an empty one or a false value mean a developer's machine.
        """
        self.assertFalse(underCI({}))
        for value in ["", "0", "false", "False", "no", "off"]:
            self.assertFalse(underCI({"CI": value}), value)


class RequireToolTests(SynchronousTestCase):
    """
    L{requireTool} finds a program, or skips the test, or fails it under CI.
    """

    def test_found(self) -> None:
        """
        An installed program's path is returned, whether under CI or not.
        """
        for environ in [{}, {"CI": "true"}]:
            path = requireTool("sh", "dash", environ=environ)
            self.assertTrue(os.path.isabs(path), path)
            self.assertTrue(os.access(path, os.X_OK), path)

    def test_missingSkipsLocally(self) -> None:
        """
        Outside CI a missing program skips the test, naming its Debian package.
        """
        for environ in [{}, {"CI": "false"}]:
            skipped = self.assertRaises(
                SkipTest, requireTool, MISSING, "pop3kit-pkg", None, environ
            )
            self.assertEqual(
                str(skipped), f"{MISSING} is not installed (Debian package pop3kit-pkg)"
            )

    def test_missingFailsUnderCI(self) -> None:
        """
        Under CI a missing program fails the test, naming its Debian package.
        """
        failed = self.assertRaises(
            FailTest, requireTool, MISSING, "pop3kit-pkg", None, {"CI": "true"}
        )
        self.assertIn(f"{MISSING} is not installed (Debian package pop3kit-pkg)", str(failed))

    def test_checkFailed(self) -> None:
        """
        A program that C{check} finds unfit skips the test, or fails it under CI, with
        the check's reason.
        """

        def check(path: str) -> str:
            return f"{path} lacks a module"

        skipped = self.assertRaises(SkipTest, requireTool, "sh", "dash", check, {})
        self.assertIn("lacks a module (Debian package dash)", str(skipped))
        failed = self.assertRaises(FailTest, requireTool, "sh", "dash", check, {"CI": "1"})
        self.assertIn("lacks a module (Debian package dash)", str(failed))

    def test_checkPassed(self) -> None:
        """
        A program that C{check} finds fit is returned; the check gets its path.
        """
        checked = []

        def check(path: str) -> None:
            checked.append(path)

        path = requireTool("sh", "dash", check, {"CI": "true"})
        self.assertEqual(checked, [path])

    def test_missingTool(self) -> None:
        """
        L{missingTool} skips with the reason outside CI, and fails under CI.
        """
        self.assertEqual(str(self.assertRaises(SkipTest, missingTool, "why", {})), "why")
        self.assertIn("why", str(self.assertRaises(FailTest, missingTool, "why", {"CI": "1"})))


class FindToolTests(SynchronousTestCase):
    """
    L{findTool} looks on the C{PATH}.
    """

    def test_onPath(self) -> None:
        """
        An executable in a directory on the C{PATH} is found; a missing one is not.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        program = os.path.join(directory, "pop3kit-test-tool")
        with open(program, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(program, stat.S_IRWXU)
        self.patch(os, "environ", {**os.environ, "PATH": directory})
        self.assertEqual(findTool("pop3kit-test-tool"), program)
        self.assertIsNone(findTool(MISSING))
