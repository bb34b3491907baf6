"""
Tests for C{pop3kit migrate} and C{pop3kit storage init}: maildrops moved between Maildir
and PostgreSQL (a private server, L{tests._postgres}) keep every UIDL, every octet and
their order, and a second run copies nothing.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pop3kit._migrate import migrate, openEnd
from pop3kit.backends.maildir import MaildirMailbox, deliver
from pop3kit.backends.mbox import MboxMailbox
from pop3kit.cli import main
from tests._postgres import postgresql
from tests.test_backend_mbox import appendTo

MESSAGES = {
    "alice": [b"Subject: one\n\nfirst\n", b"Subject: two\r\n\r\n.dot\r\n", b""],
    "bob": [b"Subject: bob\n\n" + bytes(range(256)) + b"\n"],
}


def snapshot(root: str) -> dict[str, list[tuple[str, int, bytes]]]:
    """
    Every maildrop under a Maildir root: UIDL, size and content, in listing order.
    """
    result = {}
    for user in sorted(os.listdir(root)):
        mailbox = MaildirMailbox(os.path.join(root, user))
        listing = migrateResult(mailbox.listMessages())
        result[user] = [
            (info.uid, info.size, migrateResult(mailbox.openMessage(info.uid)).read())
            for info in listing
        ]
    return result


def migrateResult(d: Any) -> Any:
    from pop3kit._migrate import _result

    return _result(d)  # type: ignore[arg-type]


class MigrateTests(SynchronousTestCase):
    """
    Maildir to PostgreSQL and back.
    """

    def setUp(self) -> None:
        self.root = self.mktemp()
        for user, messages in MESSAGES.items():
            for message in messages:
                deliver(os.path.join(self.root, user), io.BytesIO(message))
        self.dsn = postgresql().newDatabase()
        self.run_("storage", "init", self.dsn)

    def run_(self, *arguments: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            status = main(list(arguments))
        return status, out.getvalue(), err.getvalue()

    def test_roundTripKeepsUidls(self) -> None:
        """
        Maildir to PostgreSQL to a new Maildir: the same UIDLs, sizes, octets and order.
        """
        before = snapshot(self.root)
        status, out, _ = self.run_("migrate", "-q", f"maildir:{self.root}", self.dsn)
        self.assertEqual((status, out), (0, "4 messages copied, 0 already there\n"))
        database = openEnd(self.dsn)
        for user, messages in before.items():
            self.assertEqual(
                [(info.uid, info.size) for info in database.listing(user)],
                [(uid, size) for uid, size, _ in messages],
            )
        back = self.mktemp()
        os.makedirs(back)
        status, out, _ = self.run_("migrate", "-q", self.dsn, f"maildir:{back}")
        self.assertEqual((status, out), (0, "4 messages copied, 0 already there\n"))
        self.assertEqual(snapshot(back), before)

    def test_secondRunCopiesNothing(self) -> None:
        """
        Running again (after an interruption, say) copies only what is missing.
        """
        report = migrate(openEnd(f"maildir:{self.root}"), openEnd(self.dsn))
        self.assertEqual((report.copied, report.skipped), (4, 0))
        deliver(os.path.join(self.root, "alice"), io.BytesIO(b"Subject: late\n\n"))
        report = migrate(openEnd(f"maildir:{self.root}"), openEnd(self.dsn))
        self.assertEqual((report.copied, report.skipped), (1, 4))

    def test_progress(self) -> None:
        """
        Without C{-q}, progress goes to standard error, one line per maildrop.
        """
        status, _, err = self.run_("migrate", f"maildir:{self.root}", self.dsn)
        self.assertEqual(status, 0)
        self.assertIn("[1/2] alice: 3/3 messages copied, 0 already there", err)
        self.assertIn("[2/2] bob: 1/1 messages copied, 0 already there", err)

    def test_unknownStorage(self) -> None:
        """
        A storage the command does not know is one clear error line.
        """
        status, _, err = self.run_("migrate", "imap://x", self.dsn)
        self.assertEqual(status, 1)
        self.assertEqual(
            err,
            "pop3kit: error: unknown storage 'imap://x': give maildir:ROOT, mbox:TEMPLATE "
            "(a source) or postgresql://USER@HOST/DB\n",
        )

    def test_fromMbox(self) -> None:
        """
        From mbox files (a source), each user's messages arrive with the UIDLs the mbox
        backend serves, as delivered, and an mbox is refused as a destination.
        """
        spool = self.mktemp()
        os.makedirs(spool)
        for user, messages in MESSAGES.items():
            appendTo(os.path.join(spool, user), *[m for m in messages if m])
        served: dict[str, list[tuple[str, bytes]]] = {}
        for user in MESSAGES:
            mailbox = MboxMailbox(os.path.join(spool, user))
            listing = migrateResult(mailbox.listMessages())
            served[user] = [
                (info.uid, migrateResult(mailbox.openMessage(info.uid)).read()) for info in listing
            ]
        status, out, _ = self.run_("migrate", "-q", f"mbox:{spool}/%u", self.dsn)
        self.assertEqual((status, out), (0, "3 messages copied, 0 already there\n"))
        database = openEnd(self.dsn)
        for user, expected in served.items():
            self.assertEqual(
                [(info.uid, database.read(user, info.uid)) for info in database.listing(user)],
                expected,
            )
        status, _, err = self.run_("migrate", self.dsn, f"mbox:{spool}/%u")
        self.assertEqual(status, 1)
        self.assertIn("an mbox is a migration source only", err)

    def test_initAgain(self) -> None:
        """
        C{storage init} on a current schema says so.
        """
        self.assertEqual(
            self.run_("storage", "init", self.dsn)[:2],
            (0, "the schema is up to date (version 1)\n"),
        )

    def test_databaseWithoutSchema(self) -> None:
        """
        Migrating into a database without the schema says to run C{storage init}.
        """
        status, _, err = self.run_("migrate", f"maildir:{self.root}", postgresql().newDatabase())
        self.assertEqual(status, 1)
        self.assertIn("run pop3kit storage init", err)
