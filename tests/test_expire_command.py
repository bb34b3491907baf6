"""
Tests for C{pop3kit expire}: removes from Maildirs the messages retrieved more than
C{--days} days ago, as recorded by the server, with per-user values from the
passwd-file.
"""

from __future__ import annotations

import io
import os
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from pop3kit.backends import _retrieval
from pop3kit.backends.maildir import MaildirMailbox, deliver
from pop3kit.cli import main

DAY = 86400.0


class ExpireCommandTests(SynchronousTestCase):
    """
    C{pop3kit expire} over a data directory of Maildirs.
    """

    def setUp(self) -> None:
        self.dataDir = self.mktemp()
        self.root = os.path.join(self.dataDir, "mail")
        os.makedirs(self.root)

    def run_(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        status = main(["--data-dir", self.dataDir, "expire", *argv])
        return status, out.getvalue(), err.getvalue()

    def maildrop(self, name: str, retrievedDaysAgo: list[float | None]) -> list[str]:
        """
        A Maildir with one message per entry, recorded as retrieved that many days ago
        (L{None}: never); return the unique-ids.
        """
        path = os.path.join(self.root, name)
        for n, _ in enumerate(retrievedDaysAgo):
            deliver(path, io.BytesIO(b"message %d\n" % n))
        listed: list[object] = []
        MaildirMailbox(path).listMessages().addCallback(listed.append)
        uids = [info.uid for info in listed[0]]  # type: ignore[attr-defined]
        now = time.time()
        for uid, ago in zip(uids, retrievedDaysAgo, strict=True):
            if ago is not None:
                _retrieval.markRetrieved(path, [uid], now - ago * DAY, lambda: set(uids))
        return uids

    def remaining(self, name: str) -> int:
        path = os.path.join(self.root, name)
        return sum(len(os.listdir(os.path.join(path, sub))) for sub in ("new", "cur"))

    def test_removesExpired(self) -> None:
        """
        Messages retrieved more than C{--days} ago go; recent and never retrieved ones
        stay; the summary counts them; the record forgets those removed.
        """
        self.maildrop("alice", [40, 10, None])
        self.maildrop("bob", [31, 45])
        self.maildrop("carol", [None])
        status, out, err = self.run_("--days", "30")
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, "removed 3 message(s) from 2 of 3 maildrop(s)\n")
        self.assertEqual([self.remaining(name) for name in ("alice", "bob", "carol")], [2, 0, 1])
        self.assertEqual(len(_retrieval.readRecord(os.path.join(self.root, "alice"))), 1)

    def test_dryRun(self) -> None:
        """
        C{--dry-run} counts and removes nothing.
        """
        self.maildrop("alice", [40, 10])
        status, out, _ = self.run_("--days", "30", "--dry-run")
        self.assertEqual(status, 0)
        self.assertEqual(out, "would remove 1 message(s) from 1 of 1 maildrop(s)\n")
        self.assertEqual(self.remaining("alice"), 2)

    def test_named(self) -> None:
        """
        Only the users named are expired.
        """
        self.maildrop("alice", [40])
        self.maildrop("bob", [40])
        status, out, _ = self.run_("--days", "30", "bob")
        self.assertEqual((status, self.remaining("alice"), self.remaining("bob")), (0, 1, 0))
        self.assertEqual(out, "removed 1 message(s) from 1 of 1 maildrop(s)\n")

    def test_never(self) -> None:
        """
        C{--days NEVER} removes nothing.
        """
        self.maildrop("alice", [4000])
        status, out, _ = self.run_("--days", "never")
        self.assertEqual((status, self.remaining("alice")), (0, 1))
        self.assertEqual(out, "removed 0 message(s) from 0 of 1 maildrop(s)\n")

    def test_perUser(self) -> None:
        """
        A user's C{pop3kit_expire} in the passwd-file replaces C{--days}.
        """
        self.maildrop("alice", [40])
        self.maildrop("bob", [10])
        self.maildrop("carol", [40])
        with open(os.path.join(self.dataDir, "passwd"), "w") as f:
            f.write(
                "alice:{PLAIN}x::::::pop3kit_expire=NEVER\n"
                "bob:{PLAIN}x::::::userdb_pop3kit_expire=5\n"
                "carol:{PLAIN}x\n"
            )
        status, out, _ = self.run_("--days", "30")
        self.assertEqual([self.remaining(name) for name in ("alice", "bob", "carol")], [1, 0, 0])
        self.assertEqual((status, out), (0, "removed 2 message(s) from 2 of 3 maildrop(s)\n"))

    def test_usage(self) -> None:
        """
        A bad C{--days} is a usage error (2), with one line, no traceback.
        """
        status, out, err = self.run_("--days", "soon")
        self.assertEqual((status, out), (2, ""))
        self.assertIn("not a number of days", err)
        self.assertNotIn("Traceback", err)

    def test_missingUser(self) -> None:
        """
        A named user without a Maildir is reported on one line; the others are still
        expired, and the exit status is 1.
        """
        self.maildrop("alice", [40])
        status, out, err = self.run_("--days", "30", "nobody", "alice")
        self.assertEqual(status, 1)
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("nobody", err)
        self.assertEqual(self.remaining("alice"), 0)
        self.assertEqual(
            out, "removed 1 message(s) from 1 of 2 maildrop(s); 1 maildrop(s) failed\n"
        )

    def test_missingRoot(self) -> None:
        """
        A Maildir root that does not exist is one error line and status 1.
        """
        status, out, err = self.run_("--days", "30", "--maildir-root", self.mktemp())
        self.assertEqual((status, out), (1, ""))
        self.assertTrue(err.startswith("pop3kit: error: "), err)
        self.assertEqual(err.count("\n"), 1)
