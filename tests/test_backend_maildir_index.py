"""
Tests for the Maildir listing index (L{pop3kit.backends._maildirindex}): a listing is
reused, from memory or from the C{pop3kit-index} file, only while the directory times
vouch for it; every change is seen; a torn or foreign index is ignored and rewritten.
"""

from __future__ import annotations

import io
import os
import time

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit.backends import maildir as maildirModule  # noqa: N812
from pop3kit.backends._maildirindex import INDEX_NAME, SETTLED, directoryStamps, readIndex
from pop3kit.backends.maildir import MaildirMailbox, SizeCache, deliver
from pop3kit.core import MessageInfo
from pop3kit.errors import MessageUnavailable
from pop3kit.interfaces import IMailbox
from pop3kit.testing import IMailboxContractMixin


def settle(maildir: str) -> None:
    """
    Date C{new/} and C{cur/} an hour back, as if nothing had changed for a while.
    """
    past = time.time() - 3600
    for sub in ("new", "cur"):
        os.utime(os.path.join(maildir, sub), (past, past))


def listing(mailbox: MaildirMailbox) -> list[MessageInfo]:
    """
    The listing of a Maildir mailbox (which answers at once).
    """
    results: list[object] = []
    mailbox.listMessages().addBoth(results.append)
    [result] = results
    assert isinstance(result, (list, tuple)), result
    return list(result)


class IndexTests(SynchronousTestCase):
    """
    When a listing is reused, and when it is not.
    """

    def setUp(self) -> None:
        self.path = self.mktemp()
        for number in range(5):
            deliver(self.path, io.BytesIO(b"Subject: %d\n\nbody\n" % number))
        self.scans = 0
        original = maildirModule._scanMaildir

        def counting(path: str) -> dict[str, list[str]]:
            self.scans += 1
            return original(path)

        self.patch(maildirModule, "_scanMaildir", counting)

    def test_settledListingReused(self) -> None:
        """
        Once the directories have settled, later listings do not scan.
        """
        settle(self.path)
        cache = SizeCache()
        first = listing(MaildirMailbox(self.path, cache))
        self.assertEqual(self.scans, 1)
        second = listing(MaildirMailbox(self.path, cache))
        self.assertEqual((second, self.scans), (first, 1))

    def test_recentChangeNotTrusted(self) -> None:
        """
        A directory changed just now is scanned at every listing.
        """
        cache = SizeCache()
        listing(MaildirMailbox(self.path, cache))
        listing(MaildirMailbox(self.path, cache))
        self.assertEqual(self.scans, 2)
        self.assertFalse(os.path.exists(os.path.join(self.path, INDEX_NAME)))

    def test_deliverySeen(self) -> None:
        """
        A message delivered after a reused listing is in the next one.
        """
        settle(self.path)
        cache = SizeCache()
        before = listing(MaildirMailbox(self.path, cache))
        deliver(self.path, io.BytesIO(b"Subject: late\n\n"))
        after = listing(MaildirMailbox(self.path, cache))
        self.assertEqual(after[:5], before)
        self.assertEqual(len(after), 6)

    def test_moveAndDeletionSeen(self) -> None:
        """
        A message moved to C{cur/} with flags keeps its unique-id; one deleted is gone.
        """
        settle(self.path)
        cache = SizeCache()
        before = listing(MaildirMailbox(self.path, cache))
        names = sorted(os.listdir(os.path.join(self.path, "new")))
        os.rename(
            os.path.join(self.path, "new", names[0]),
            os.path.join(self.path, "cur", names[0] + ":2,S"),
        )
        os.unlink(os.path.join(self.path, "new", names[1]))
        after = listing(MaildirMailbox(self.path, cache))
        self.assertEqual(
            [info.uid for info in after], [before[0].uid, *[i.uid for i in before[2:]]]
        )

    def test_indexFileAcrossProcesses(self) -> None:
        """
        A new cache (another process, or after a restart) lists from the index file.
        """
        settle(self.path)
        first = listing(MaildirMailbox(self.path, SizeCache()))
        self.assertTrue(os.path.exists(os.path.join(self.path, INDEX_NAME)))
        mailbox = MaildirMailbox(self.path, SizeCache())
        self.assertEqual((listing(mailbox), self.scans), (first, 1))
        with self.successResultOf(mailbox.openMessage(first[2].uid)) as message:
            self.assertEqual(message.read(), b"Subject: 2\n\nbody\n")

    def test_indexOfOtherTimesIgnored(self) -> None:
        """
        An index written before a change is not used after it.
        """
        settle(self.path)
        listing(MaildirMailbox(self.path, SizeCache()))
        deliver(self.path, io.BytesIO(b"Subject: late\n\n"))
        settle(self.path)
        self.assertIsNone(readIndex(self.path, (1, 2)))
        after = listing(MaildirMailbox(self.path, SizeCache()))
        self.assertEqual((len(after), self.scans), (6, 2))

    def test_tornOrCorruptIndexIgnored(self) -> None:
        """
        A torn or corrupt index is ignored, and rewritten by the scan that replaces it.
        """
        settle(self.path)
        expected = listing(MaildirMailbox(self.path, SizeCache()))
        index = os.path.join(self.path, INDEX_NAME)
        with open(index, "rb") as f:
            good = f.read()
        stamps = directoryStamps(self.path)
        lines = good.split(b"\n")
        lines[1] = b"x" + lines[1][lines[1].index(b"\t") :]
        sizeNotANumber = b"\n".join(lines)
        for damaged in (
            good[: len(good) // 2],
            good[:-1],
            good.replace(b"\t", b" ", 1),
            good.replace(b"end 5", b"end 4"),
            b"garbage\n",
            sizeNotANumber,
        ):
            with open(index, "wb") as f:
                f.write(damaged)
            self.assertIsNone(readIndex(self.path, stamps), damaged[-40:])
            self.assertEqual(listing(MaildirMailbox(self.path, SizeCache())), expected)
            with open(index, "rb") as f:
                self.assertEqual(f.read(), good)

    def test_withoutIndexFile(self) -> None:
        """
        C{index=False} neither reads nor writes the file; memory still serves.
        """
        settle(self.path)
        cache = SizeCache()
        listing(MaildirMailbox(self.path, cache, index=False))
        self.assertFalse(os.path.exists(os.path.join(self.path, INDEX_NAME)))
        listing(MaildirMailbox(self.path, cache, index=False))
        self.assertEqual(self.scans, 1)

    def test_sessionsDoNotShareChanges(self) -> None:
        """
        One session's expunge does not change what another session's listing holds: the
        other finds the message gone, as without an index.
        """
        settle(self.path)
        cache = SizeCache()
        first, second = MaildirMailbox(self.path, cache), MaildirMailbox(self.path, cache)
        uids = [info.uid for info in listing(first)]
        listing(second)
        self.successResultOf(first.expunge([uids[0]]))
        self.failureResultOf(second.openMessage(uids[0]), MessageUnavailable)
        with self.successResultOf(second.openMessage(uids[1])) as message:
            self.assertEqual(message.read(), b"Subject: 1\n\nbody\n")
        self.assertEqual(len(listing(MaildirMailbox(self.path, cache))), 4)

    def test_settledThreshold(self) -> None:
        """
        Directory times within L{SETTLED} seconds of now do not vouch for a listing.
        """
        cache = SizeCache()
        recent = time.time() - SETTLED / 2
        for sub in ("new", "cur"):
            os.utime(os.path.join(self.path, sub), (recent, recent))
        listing(MaildirMailbox(self.path, cache))
        listing(MaildirMailbox(self.path, cache))
        self.assertEqual(self.scans, 2)


class SettledContractTests(IMailboxContractMixin, TestCase):
    """
    L{MaildirMailbox} keeps the L{IMailbox} contract when its listings come from the
    index (directories dated an hour back, so that every listing may reuse the last).
    """

    def setUp(self) -> None:
        self.cache = SizeCache()

    def mailboxWithMessages(self, messages: list[bytes]) -> Deferred[IMailbox]:
        path = self.mktemp()
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(path, sub))
        for message in messages:
            deliver(path, io.BytesIO(message))
        settle(path)
        return succeed(MaildirMailbox(path, self.cache))

    def deliverMore(self, mailbox: IMailbox, message: bytes) -> Deferred[None]:
        assert isinstance(mailbox, MaildirMailbox)
        deliver(mailbox._path, io.BytesIO(message))
        settle(mailbox._path)
        return succeed(None)

    def reopen(self, mailbox: IMailbox) -> Deferred[IMailbox]:
        assert isinstance(mailbox, MaildirMailbox)
        return succeed(MaildirMailbox(mailbox._path, SizeCache()))
