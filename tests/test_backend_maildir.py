"""
Tests for L{pop3kit.backends.maildir}.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import stat
from collections.abc import Sequence
from mailbox import Maildir as PythonMaildir
from typing import BinaryIO

from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import Interface
from zope.interface.verify import verifyObject

from pop3kit.backends import maildir
from pop3kit.backends.maildir import (
    MaildirMailbox,
    MaildirRealm,
    SizeCache,
    deliver,
    mailboxPath,
)
from pop3kit.core import (
    MessageInfo,
    isValidUid,
    wireSize,
)
from pop3kit.errors import MessageUnavailable, PermanentFailure, TemporaryFailure
from pop3kit.interfaces import IMailbox
from pop3kit.testing import IMailboxContractMixin
from tests._oracle import crlfForm


def makeMaildir(path: str) -> str:
    """
    Create an empty Maildir at C{path} and return C{path}.
    """
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(path, sub))
    return path


def makeMaildirIfMissing(path: str) -> str:
    """
    Create an empty Maildir at C{path} unless there is one, and return C{path}.
    """
    if not os.path.isdir(path):
        makeMaildir(path)
    return path


def writeFile(path: str, content: bytes) -> None:
    """
    Write C{content} to a new file at C{path}.
    """
    with open(path, "wb") as f:
        f.write(content)


def uidOf(name: str) -> str:
    """
    The unique-id expected for a file name without flags: the name, or its SHA-1 if the
    name is not a valid unique-id.
    """
    return name if isValidUid(name) else hashlib.sha1(name.encode()).hexdigest()


def pathOf(mailbox: IMailbox) -> str:
    """
    The Maildir of a L{MaildirMailbox}.
    """
    assert isinstance(mailbox, MaildirMailbox)
    return mailbox._path


class DeliveredContractTests(IMailboxContractMixin, TestCase):
    """
    L{MaildirMailbox} keeps the L{IMailbox} contract for messages written by L{deliver}
    (sizes taken from the C{,W=} in the names).
    """

    def mailboxWithMessages(self, messages: list[bytes]) -> Deferred[IMailbox]:
        path = self.mktemp()
        for message in messages:
            deliver(path, io.BytesIO(message))
        return succeed(MaildirMailbox(makeMaildirIfMissing(path), SizeCache()))

    def deliverMore(self, mailbox: IMailbox, message: bytes) -> Deferred[None]:
        deliver(pathOf(mailbox), io.BytesIO(message))
        return succeed(None)

    def reopen(self, mailbox: IMailbox) -> Deferred[IMailbox]:
        return succeed(MaildirMailbox(pathOf(mailbox), SizeCache()))


class PythonMaildirContractTests(IMailboxContractMixin, TestCase):
    """
    L{MaildirMailbox} keeps the L{IMailbox} contract for messages written by
    L{mailbox.Maildir} (sizes computed by reading the files).
    """

    def mailboxWithMessages(self, messages: list[bytes]) -> Deferred[IMailbox]:
        path = self.mktemp()
        writer = PythonMaildir(path, create=True)
        for message in messages:
            writer.add(message)
        self.sizeCache = SizeCache()
        return succeed(MaildirMailbox(path, self.sizeCache))

    def deliverMore(self, mailbox: IMailbox, message: bytes) -> Deferred[None]:
        PythonMaildir(pathOf(mailbox), create=False).add(message)
        return succeed(None)

    def reopen(self, mailbox: IMailbox) -> Deferred[IMailbox]:
        return succeed(MaildirMailbox(pathOf(mailbox), self.sizeCache))


class CurWithFlagsContractTests(IMailboxContractMixin, TestCase):
    """
    L{MaildirMailbox} keeps the L{IMailbox} contract for procmail-style names in C{cur/}
    with flags.
    """

    def mailboxWithMessages(self, messages: list[bytes]) -> Deferred[IMailbox]:
        path = makeMaildir(self.mktemp())
        self.delivered = 0
        for message in messages:
            self.delivered += 1
            name = f"{1_600_000_000 + self.delivered}.{4000 + self.delivered}_0.mx:2,S"
            writeFile(os.path.join(path, "cur", name), message)
        return succeed(MaildirMailbox(path))

    def deliverMore(self, mailbox: IMailbox, message: bytes) -> Deferred[None]:
        self.delivered += 1
        name = f"{1_600_000_000 + self.delivered}.{4000 + self.delivered}_0.mx"
        writeFile(os.path.join(pathOf(mailbox), "new", name), message)
        return succeed(None)

    def reopen(self, mailbox: IMailbox) -> Deferred[IMailbox]:
        return succeed(MaildirMailbox(pathOf(mailbox)))


class CountingOpen:
    """
    A replacement for L{maildir._openReadOnly} that counts calls.
    """

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._original = maildir._openReadOnly

    def __call__(self, path: str) -> BinaryIO:
        self.paths.append(path)
        return self._original(path)


class MaildirMailboxTests(SynchronousTestCase):
    """
    Tests for L{MaildirMailbox} on Maildirs as various delivery agents write them.
    """

    def setUp(self) -> None:
        self.path = makeMaildir(self.mktemp())

    def listing(self, mailbox: MaildirMailbox | None = None) -> list[MessageInfo]:
        """
        List C{mailbox}, by default a new mailbox on C{self.path}.
        """
        if mailbox is None:
            mailbox = MaildirMailbox(self.path)
        listing: Sequence[MessageInfo] = self.successResultOf(mailbox.listMessages())
        return list(listing)

    def read(self, mailbox: MaildirMailbox, uid: str) -> bytes:
        """
        Read a whole message.
        """
        with self.successResultOf(mailbox.openMessage(uid)) as f:
            return f.read()

    def test_interface(self) -> None:
        """
        L{MaildirMailbox} provides L{IMailbox}.
        """
        self.assertTrue(verifyObject(IMailbox, MaildirMailbox(self.path)))

    def test_pythonMailboxKeys(self) -> None:
        """
        The unique-ids of messages written by L{mailbox.Maildir} are the keys it uses, in
        C{new/} and after moving to C{cur/} with flags.
        """
        writer = PythonMaildir(self.path, create=False)
        keys = [writer.add(b"Subject: %d\n\nbody\n" % i) for i in range(3)]
        self.assertEqual([info.uid for info in self.listing()], keys)
        message = writer[keys[1]]
        message.set_subdir("cur")
        message.set_flags("RS")
        writer[keys[1]] = message
        self.assertEqual(len(os.listdir(os.path.join(self.path, "cur"))), 1)
        self.assertEqual(sorted(info.uid for info in self.listing()), sorted(keys))

    def test_dovecotNames(self) -> None:
        """
        Sizes come from C{,W=} in the name, with or without flags, without reading the
        file; the C{,S=} is not mistaken for it.
        """
        writeFile(
            os.path.join(self.path, "cur", "1700000000.M1P1.mx,S=10,W=12:2,S"), b"1234\n56789\n"
        )
        writeFile(os.path.join(self.path, "new", "1700000001.M1P1.mx,S=3,W=999"), b"ab\n")

        def noOpen(path: str) -> BinaryIO:
            raise AssertionError(f"opened {path}")

        self.patch(maildir, "_openReadOnly", noOpen)
        self.assertEqual(
            self.listing(),
            [
                MessageInfo("1700000000.M1P1.mx,S=10,W=12", 12),
                MessageInfo("1700000001.M1P1.mx,S=3,W=999", 999),
            ],
        )

    def test_procmailName(self) -> None:
        """
        A procmail-style name without flags is listed under its full name, with the size
        computed from the contents.
        """
        writeFile(os.path.join(self.path, "new", "1234567890.12345_0.host"), b"a\nb\n")
        self.assertEqual(self.listing(), [MessageInfo("1234567890.12345_0.host", 6)])

    def test_alternativeSeparator(self) -> None:
        """
        C{!2,} separates the flags just as C{:2,} does.
        """
        writeFile(os.path.join(self.path, "cur", "1234567890.1_0.host!2,S"), b"a\n")
        self.assertEqual([info.uid for info in self.listing()], ["1234567890.1_0.host"])

    def test_lfAndCrlfSizes(self) -> None:
        """
        LF-stored and CRLF-stored messages both report the size of their canonical form.
        """
        lf = b"Subject: lf\n\none\n.two\nthree"
        crlf = b"Subject: crlf\r\n\r\none\r\n.two\r\n"
        writeFile(os.path.join(self.path, "new", "1000000001.M1P1.h"), lf)
        writeFile(os.path.join(self.path, "new", "1000000002.M1P1.h"), crlf)
        self.assertEqual(
            [info.size for info in self.listing()],
            [len(crlfForm(lf)), len(crlfForm(crlf))],
        )

    def test_largeFileSizedInChunks(self) -> None:
        """
        A file larger than one read chunk, with a CRLF split across the chunk boundary, is
        sized correctly.
        """
        content = b"x" * (64 * 1024 - 1) + b"\r\n" + b"y\n" * 50000
        writeFile(os.path.join(self.path, "new", "1000000001.M1P1.h"), content)
        self.assertEqual([info.size for info in self.listing()], [wireSize(content)])

    def test_deliveryOrder(self) -> None:
        """
        Messages are listed by the time stamp at the start of their names, microseconds
        and counters compared as numbers, whether in C{new/} or C{cur/}; names without a
        time stamp come last.
        """
        names = [
            ("cur", "1000000000.M9P1Q1.h:2,S"),
            ("new", "1000000000.M10P1Q1.h"),
            ("cur", "1000000000.M10P1Q10.h:2,"),
            ("new", "1000000000.M10P1Q9.h"),
            ("new", "999999999.H5P3.h"),
            ("cur", "1000000001.23_0.h:2,RS"),
            ("new", "not-a-time-stamp"),
        ]
        for sub, name in names:
            writeFile(os.path.join(self.path, sub, name), b"x\n")
        self.assertEqual(
            [info.uid for info in self.listing()],
            [
                "999999999.H5P3.h",
                "1000000000.M9P1Q1.h",
                "1000000000.M10P1Q1.h",
                "1000000000.M10P1Q9.h",
                "1000000000.M10P1Q10.h",
                "1000000001.23_0.h",
                "not-a-time-stamp",
            ],
        )

    def test_tmpAndDotFilesIgnored(self) -> None:
        """
        Files in C{tmp/}, dot-files, directories inside C{new/} and C{cur/}, and Maildir++
        folders are not part of the maildrop.
        """
        writeFile(os.path.join(self.path, "tmp", "1000000000.M1P1.h"), b"in tmp\n")
        writeFile(os.path.join(self.path, "new", ".hidden"), b"dot file\n")
        os.mkdir(os.path.join(self.path, "cur", "1000000000.M2P1.h"))
        makeMaildir(os.path.join(self.path, ".Sent"))
        writeFile(os.path.join(self.path, ".Sent", "cur", "1000000000.M3P1.h:2,S"), b"sent\n")
        writeFile(os.path.join(self.path, "new", "1000000000.M4P1.h"), b"real\n")
        self.assertEqual([info.uid for info in self.listing()], ["1000000000.M4P1.h"])

    def test_symlinkIgnored(self) -> None:
        """
        A symbolic link in C{new/} is not listed, so it cannot expose a file outside the
        Maildir.
        """
        secret = os.path.abspath(self.mktemp())
        writeFile(secret, b"secret\n")
        os.symlink(secret, os.path.join(self.path, "new", "1000000000.M1P1.h"))
        self.assertEqual(self.listing(), [])
        mailbox = MaildirMailbox(self.path)
        self.failureResultOf(mailbox.openMessage("1000000000.M1P1.h"), MessageUnavailable)

    def test_unsafeUniquePartHashed(self) -> None:
        """
        A unique part that is not a valid unique-id (a space, too long, not ASCII, not
        UTF-8) is replaced by its SHA-1 in hexadecimal, which survives flag changes.
        """
        long = "1700000003.M1P1Q1R" + "0" * 40 + ".mail.example.com,S=3,W=4"
        names = ["1700000001.with space.h", "1700000002.caf\u00e9.h", long]
        for name in names:
            writeFile(os.path.join(self.path, "new", name), b"ab\n")
        rawName = os.path.join(os.fsencode(self.path), b"new", b"1700000004.\xff\xfe.h")
        with open(rawName, "wb") as f:
            f.write(b"ab\n")
        expected = [hashlib.sha1(name.encode()).hexdigest() for name in names]
        expected.append(hashlib.sha1(b"1700000004.\xff\xfe.h").hexdigest())
        mailbox = MaildirMailbox(self.path)
        self.assertEqual([info.uid for info in self.listing(mailbox)], expected)
        self.assertTrue(all(isValidUid(uid) for uid in expected))
        os.rename(
            os.path.join(self.path, "new", long), os.path.join(self.path, "cur", long + ":2,S")
        )
        self.assertEqual([info.uid for info in self.listing()], expected)
        self.assertEqual(self.read(mailbox, expected[2]), b"ab\n")
        self.assertEqual(self.read(mailbox, expected[3]), b"ab\n")

    def test_flagRenameBetweenListingAndOpen(self) -> None:
        """
        A message whose flags changed after the listing can still be opened and expunged.
        """
        cur = os.path.join(self.path, "cur")
        writeFile(os.path.join(cur, "1000000000.M1P1.h:2,"), b"first\n")
        writeFile(os.path.join(cur, "1000000001.M1P1.h:2,"), b"second\n")
        mailbox = MaildirMailbox(self.path)
        first, second = self.listing(mailbox)
        os.rename(
            os.path.join(cur, "1000000000.M1P1.h:2,"), os.path.join(cur, "1000000000.M1P1.h:2,S")
        )
        os.rename(
            os.path.join(cur, "1000000001.M1P1.h:2,"), os.path.join(cur, "1000000001.M1P1.h:2,RS")
        )
        self.assertEqual(self.read(mailbox, first.uid), b"first\n")
        self.successResultOf(mailbox.expunge([second.uid]))
        self.assertEqual(os.listdir(cur), ["1000000000.M1P1.h:2,S"])

    def test_moveNewToCur(self) -> None:
        """
        A message moved from C{new/} to C{cur/} after the listing can still be opened and
        expunged, and keeps its unique-id.
        """
        writeFile(os.path.join(self.path, "new", "1000000000.M1P1.h"), b"moved\n")
        mailbox = MaildirMailbox(self.path)
        [info] = self.listing(mailbox)
        os.rename(
            os.path.join(self.path, "new", "1000000000.M1P1.h"),
            os.path.join(self.path, "cur", "1000000000.M1P1.h:2,S"),
        )
        self.assertEqual(self.read(mailbox, info.uid), b"moved\n")
        self.assertEqual(self.listing(), [info])
        self.successResultOf(mailbox.expunge([info.uid]))
        self.assertEqual(os.listdir(os.path.join(self.path, "cur")), [])

    def test_vanishedMessage(self) -> None:
        """
        A message deleted by someone else after the listing fails to open with
        L{MessageUnavailable}; expunging it succeeds.
        """
        path = os.path.join(self.path, "new", "1000000000.M1P1.h")
        writeFile(path, b"gone\n")
        mailbox = MaildirMailbox(self.path)
        [info] = self.listing(mailbox)
        os.unlink(path)
        self.failureResultOf(mailbox.openMessage(info.uid), MessageUnavailable)
        self.successResultOf(mailbox.expunge([info.uid]))

    def test_duplicateInNewAndCur(self) -> None:
        """
        A message found in both C{new/} and C{cur/} (an interrupted move) is listed once,
        and expunging it removes both files.
        """
        writeFile(os.path.join(self.path, "new", "1000000000.M1P1.h"), b"twice\n")
        writeFile(os.path.join(self.path, "cur", "1000000000.M1P1.h:2,S"), b"twice\n")
        mailbox = MaildirMailbox(self.path)
        [info] = self.listing(mailbox)
        self.successResultOf(mailbox.expunge([info.uid]))
        self.assertEqual(
            os.listdir(os.path.join(self.path, "new")) + os.listdir(os.path.join(self.path, "cur")),
            [],
        )

    def test_expungeOnlyNamed(self) -> None:
        """
        Expunging a unique-id removes its file and no other, including a message delivered
        after the listing.
        """
        writeFile(os.path.join(self.path, "new", "1000000000.M1P1.h"), b"one\n")
        writeFile(os.path.join(self.path, "new", "1000000001.M1P1.h"), b"two\n")
        mailbox = MaildirMailbox(self.path)
        first, _ = self.listing(mailbox)
        writeFile(os.path.join(self.path, "new", "1000000002.M1P1.h"), b"three\n")
        self.successResultOf(mailbox.expunge([first.uid]))
        self.assertEqual(
            sorted(os.listdir(os.path.join(self.path, "new"))),
            ["1000000001.M1P1.h", "1000000002.M1P1.h"],
        )

    def test_expungeErrorIsTemporaryFailure(self) -> None:
        """
        When a file cannot be deleted for a reason other than being gone, the other
        messages are still deleted and the expunge fails with L{TemporaryFailure}.
        """
        for i in range(3):
            writeFile(os.path.join(self.path, "new", f"100000000{i}.M1P1.h"), b"%d\n" % i)
        mailbox = MaildirMailbox(self.path)
        uids = [info.uid for info in self.listing(mailbox)]
        stuck = os.path.join(self.path, "new", "1000000001.M1P1.h")
        realUnlink = os.unlink

        def unlink(path: str, *args: object, **kwargs: object) -> None:
            if path == stuck:
                raise PermissionError(errno.EACCES, "Permission denied", path)
            realUnlink(path)

        self.patch(os, "unlink", unlink)
        failure = self.failureResultOf(mailbox.expunge(uids), TemporaryFailure)
        self.assertIn("Permission denied", failure.value.text)
        self.assertEqual(os.listdir(os.path.join(self.path, "new")), ["1000000001.M1P1.h"])
        self.flushLoggedErrors(PermissionError)

    def test_openErrorIsTemporaryFailure(self) -> None:
        """
        A message that exists but cannot be opened fails with L{TemporaryFailure}.
        """
        writeFile(os.path.join(self.path, "new", "1000000000.M1P1.h,W=2"), b"x\n")
        mailbox = MaildirMailbox(self.path)
        [info] = self.listing(mailbox)

        def denied(path: str) -> BinaryIO:
            raise PermissionError(errno.EACCES, "Permission denied", path)

        self.patch(maildir, "_openReadOnly", denied)
        self.failureResultOf(mailbox.openMessage(info.uid), TemporaryFailure)
        self.flushLoggedErrors(PermissionError)

    def test_missingMaildir(self) -> None:
        """
        Listing a Maildir that does not exist fails with L{TemporaryFailure}.
        """
        mailbox = MaildirMailbox(self.mktemp())
        self.failureResultOf(mailbox.listMessages(), TemporaryFailure)
        self.flushLoggedErrors(FileNotFoundError)

    def test_sizeCacheUsed(self) -> None:
        """
        A second listing, by another mailbox object sharing the size cache, reads no file;
        a mailbox with another cache reads them again.
        """
        for i in range(3):
            writeFile(os.path.join(self.path, "new", f"100000000{i}.M1P1.h"), b"m\n" * i)
        counting = CountingOpen()
        self.patch(maildir, "_openReadOnly", counting)
        cache = SizeCache()
        first = self.listing(MaildirMailbox(self.path, cache))
        self.assertEqual(len(counting.paths), 3)
        self.assertEqual(len(cache), 3)
        second = self.listing(MaildirMailbox(self.path, cache))
        self.assertEqual(len(counting.paths), 3)
        self.assertEqual(second, first)
        self.listing(MaildirMailbox(self.path, SizeCache()))
        self.assertEqual(len(counting.paths), 6)

    def test_sizeCachePruned(self) -> None:
        """
        A listing drops cache entries of messages that are gone, and a new message is read
        once.
        """
        for i in range(3):
            writeFile(os.path.join(self.path, "new", f"100000000{i}.M1P1.h"), b"m\n")
        cache = SizeCache()
        mailbox = MaildirMailbox(self.path, cache)
        uids = [info.uid for info in self.listing(mailbox)]
        self.successResultOf(mailbox.expunge(uids[:2]))
        writeFile(os.path.join(self.path, "new", "1000000009.M1P1.h"), b"new\n")
        counting = CountingOpen()
        self.patch(maildir, "_openReadOnly", counting)
        self.assertEqual(
            [info.uid for info in self.listing(mailbox)],
            ["1000000002.M1P1.h", "1000000009.M1P1.h"],
        )
        self.assertEqual(len(cache), 2)
        self.assertEqual(counting.paths, [os.path.join(self.path, "new", "1000000009.M1P1.h")])


class SizeCacheTests(SynchronousTestCase):
    """
    Tests for the bound of L{SizeCache}.
    """

    def test_bounded(self) -> None:
        """
        Beyond C{maxEntries}, the Maildir listed longest ago is forgotten.
        """
        cache = SizeCache(maxEntries=4)
        paths = []
        for name in ("a", "b", "c"):
            path = makeMaildir(self.mktemp())
            writeFile(os.path.join(path, "new", f"1000000000.M1P1.{name}1"), b"1\n")
            writeFile(os.path.join(path, "new", f"1000000000.M1P1.{name}2"), b"2\n")
            paths.append(path)
            self.successResultOf(MaildirMailbox(path, cache).listMessages())
        self.assertEqual(len(cache), 4)
        counting = CountingOpen()
        self.patch(maildir, "_openReadOnly", counting)
        for path in paths[1:]:
            self.successResultOf(MaildirMailbox(path, cache).listMessages())
        self.assertEqual(counting.paths, [])
        self.successResultOf(MaildirMailbox(paths[0], cache).listMessages())
        self.assertEqual(len(counting.paths), 2)
        self.assertEqual(len(cache), 4)

    def test_tooLargeNotCached(self) -> None:
        """
        A Maildir with more messages than the cache holds is not cached.
        """
        cache = SizeCache(maxEntries=1)
        path = makeMaildir(self.mktemp())
        writeFile(os.path.join(path, "new", "1000000000.M1P1.a"), b"1\n")
        writeFile(os.path.join(path, "new", "1000000000.M1P1.b"), b"2\n")
        self.successResultOf(MaildirMailbox(path, cache).listMessages())
        self.assertEqual(len(cache), 0)


class ChunkedReader(io.RawIOBase):
    """
    A stream of C{size} octets that records how it is read and never holds them all.
    """

    def __init__(self, size: int, line: bytes) -> None:
        self._remaining = size
        self._line = line
        self._position = 0
        self.requests: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.requests.append(n)
        if n < 0:
            raise AssertionError("read the whole message at once")
        n = min(n, self._remaining)
        self._remaining -= n
        start = self._position % len(self._line)
        self._position += n
        return (self._line * (n // len(self._line) + 2))[start : start + n]


class DeliverTests(SynchronousTestCase):
    """
    Tests for L{deliver}.
    """

    def test_roundTrip(self) -> None:
        """
        L{deliver} writes the message as given into C{new/}, under a name carrying
        C{,S=} and C{,W=}, and leaves C{tmp/} empty.
        """
        path = self.mktemp()
        message = b"Subject: hi\n\n.dot\r\nlast"
        name = deliver(path, io.BytesIO(message))
        self.assertTrue(name.endswith(f",S={len(message)},W={wireSize(message)}"))
        with open(os.path.join(path, "new", name), "rb") as f:
            self.assertEqual(f.read(), message)
        self.assertEqual(os.listdir(os.path.join(path, "tmp")), [])
        self.assertEqual(
            self.successResultOf(MaildirMailbox(path).listMessages()),
            [MessageInfo(uidOf(name), wireSize(message))],
        )

    def test_createsMaildir(self) -> None:
        """
        L{deliver} creates a missing Maildir, with its parents, private to its owner.
        """
        path = os.path.join(self.mktemp(), "deep", "alice")
        deliver(path, io.BytesIO(b"x\n"))
        for sub in ("new", "cur", "tmp"):
            mode = os.stat(os.path.join(path, sub)).st_mode
            self.assertTrue(stat.S_ISDIR(mode))
            self.assertEqual(stat.S_IMODE(mode) & 0o077, 0)

    def test_uniqueNamesInOrder(self) -> None:
        """
        Quick deliveries get distinct names, listed in delivery order.
        """
        path = self.mktemp()
        names = [deliver(path, io.BytesIO(b"%d\n" % i)) for i in range(50)]
        self.assertEqual(len(set(names)), 50)
        mailbox = MaildirMailbox(path)
        listing = self.successResultOf(mailbox.listMessages())
        contents = []
        for info in listing:
            with self.successResultOf(mailbox.openMessage(info.uid)) as f:
                contents.append(f.read())
        self.assertEqual(contents, [b"%d\n" % i for i in range(50)])

    def test_largeMessageStreamed(self) -> None:
        """
        A message of several megabytes is copied in chunks of at most 64 KiB, and its
        name's C{,W=} is its L{wireSize}.
        """
        line = b"a line of a large message, stored with LF only\n"
        size = 5 * 1024 * 1024 + 17
        reader = ChunkedReader(size, line)
        path = self.mktemp()
        name = deliver(path, reader)  # type: ignore[arg-type]
        self.assertLessEqual(max(reader.requests), 64 * 1024)
        self.assertGreater(len(reader.requests), size // (64 * 1024))
        expected = (line * (size // len(line) + 1))[:size]
        stored = os.path.join(path, "new", name)
        self.assertEqual(os.path.getsize(stored), size)
        self.assertTrue(name.endswith(f",S={size},W={wireSize(expected)}"))
        [info] = self.successResultOf(MaildirMailbox(path).listMessages())
        self.assertEqual(info.size, wireSize(expected))

    def test_hostNameSanitised(self) -> None:
        """
        Characters of the host name that would confuse Maildir readers are escaped, so the
        name carries the right C{,W=} and no flags separator.
        """
        self.patch(socket, "gethostname", lambda: "evil/host:2,S,W=1")
        path = self.mktemp()
        name = deliver(path, io.BytesIO(b"abc\n"))
        self.assertNotIn("/", name)
        self.assertNotIn(":", name)
        self.assertEqual(name.count(",W="), 1)
        self.assertTrue(name.endswith(",S=4,W=5"))
        [info] = self.successResultOf(MaildirMailbox(path).listMessages())
        self.assertEqual(info.size, 5)

    def test_failureLeavesNothing(self) -> None:
        """
        If reading the message fails, the error propagates and neither C{tmp/} nor
        C{new/} keeps a file.
        """

        class Broken(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def read(self, n: int = -1) -> bytes:
                raise OSError(errno.EIO, "read error")

        path = self.mktemp()
        self.assertRaises(OSError, deliver, path, Broken())
        self.assertEqual(os.listdir(os.path.join(path, "tmp")), [])
        self.assertEqual(os.listdir(os.path.join(path, "new")), [])


class MailboxPathTests(SynchronousTestCase):
    """
    Tests for L{mailboxPath}.
    """

    def test_goodNames(self) -> None:
        """
        Ordinary names, including non-ASCII ones and dots inside, map to a directory
        under the root.
        """
        good = ["alice", "bob.smith", "j\u00fcrgen", "a@example.com", "x" * 255, "a+b=c~d%e"]
        good += ["\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u5c71\u7530", "Zo\u0308e"]
        for name in good:
            self.assertEqual(mailboxPath("/srv/mail", name), os.path.join("/srv/mail", name))

    def test_badNames(self) -> None:
        """
        Names that could leave the root, confuse the file system or a shell are refused:
        only letters, marks, digits and a few punctuation characters pass.
        """
        bad = ["", ".", "..", "a/b", "/etc", "a\\b", ".hidden", "a..b", "a\x00b", "a\nb"]
        bad += ["a\x7fb", "a\x85b", "x" * 256, "\u00e9" * 128, "\udcff"]
        # The whitelist refuses what a blacklist would let through.
        bad += ["a b", "a:b", "a*", "a\u2215b", "a\u200bb", "~/x", "a;b", "a|b", "a'b"]
        for name in bad:
            self.assertRaises(ValueError, mailboxPath, "/srv/mail", name)


class MaildirRealmTests(SynchronousTestCase):
    """
    Tests for L{MaildirRealm}.
    """

    def setUp(self) -> None:
        self.root = self.mktemp()
        os.mkdir(self.root)

    def test_interface(self) -> None:
        """
        The realm provides L{IRealm}.
        """
        self.assertTrue(verifyObject(IRealm, MaildirRealm(self.root)))

    def test_createsMaildir(self) -> None:
        """
        The first login creates the user's Maildir, private to its owner, and the avatar
        is a L{MaildirMailbox} on it.
        """
        interface, avatar, logout = MaildirRealm(self.root).requestAvatar(b"alice", None, IMailbox)
        self.assertIs(interface, IMailbox)
        self.assertIsInstance(avatar, MaildirMailbox)
        path = os.path.join(self.root, "alice")
        for sub in ("", "new", "cur", "tmp"):
            mode = os.stat(os.path.join(path, sub)).st_mode
            self.assertEqual(stat.S_IMODE(mode) & 0o077, 0)
        deliver(path, io.BytesIO(b"hello\n"))
        assert isinstance(avatar, MaildirMailbox)
        self.assertEqual(len(self.successResultOf(avatar.listMessages())), 1)
        logout()

    def test_existingMaildir(self) -> None:
        """
        A user with a Maildir gets it, with its messages.
        """
        deliver(os.path.join(self.root, "bob"), io.BytesIO(b"hello\n"))
        _, avatar, _ = MaildirRealm(self.root, create=False).requestAvatar("bob", None, IMailbox)
        assert isinstance(avatar, MaildirMailbox)
        self.assertEqual(len(self.successResultOf(avatar.listMessages())), 1)

    def test_noCreate(self) -> None:
        """
        With C{create=False}, a user without a Maildir gets L{PermanentFailure} and
        nothing is created.
        """
        realm = MaildirRealm(self.root, create=False)
        self.assertRaises(PermanentFailure, realm.requestAvatar, b"carol", None, IMailbox)
        self.assertEqual(os.listdir(self.root), [])

    def test_badNames(self) -> None:
        """
        Unsafe user names get L{PermanentFailure}, and nothing is created.
        """
        realm = MaildirRealm(self.root)
        for name in [b"..", b"a/b", b".hidden", b"a\x00b", b"", b"../escape", b"\xff"]:
            self.assertRaises(PermanentFailure, realm.requestAvatar, name, None, IMailbox)
        self.assertRaises(PermanentFailure, realm.requestAvatar, (), None, IMailbox)
        self.assertEqual(os.listdir(self.root), [])
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.root), "escape")))

    def test_missingRoot(self) -> None:
        """
        If the root is missing, logins fail with L{TemporaryFailure} and the root is not
        created.
        """
        root = self.mktemp()
        realm = MaildirRealm(root)
        self.assertRaises(TemporaryFailure, realm.requestAvatar, b"alice", None, IMailbox)
        self.assertFalse(os.path.exists(root))
        self.flushLoggedErrors(FileNotFoundError)

    def test_otherInterface(self) -> None:
        """
        Asking for anything but L{IMailbox} raises L{NotImplementedError}.
        """

        class IOther(Interface):  # type: ignore[misc]
            pass

        realm = MaildirRealm(self.root)
        self.assertRaises(NotImplementedError, realm.requestAvatar, b"alice", None, IOther)

    def test_sharedSizeCache(self) -> None:
        """
        Sessions of the realm share its size cache: the second session reads no file.
        """
        path = makeMaildir(os.path.join(self.root, "alice"))
        writeFile(os.path.join(path, "new", "1000000000.M1P1.h"), b"hello\n")
        cache = SizeCache()
        realm = MaildirRealm(self.root, cache)

        def request() -> object:
            return realm.requestAvatar("alice", None, IMailbox)[1]

        first = request()
        assert isinstance(first, MaildirMailbox)
        self.successResultOf(first.listMessages())
        counting = CountingOpen()
        self.patch(maildir, "_openReadOnly", counting)
        second = request()
        assert isinstance(second, MaildirMailbox)
        self.assertEqual(
            self.successResultOf(second.listMessages()), [MessageInfo("1000000000.M1P1.h", 7)]
        )
        self.assertEqual(counting.paths, [])
