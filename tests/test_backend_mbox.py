"""
Tests for L{pop3kit.backends.mbox}.
"""

from __future__ import annotations

import mailbox as stdlibmailbox
import os
import stat
import subprocess
import sys

from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface import Interface
from zope.interface.verify import verifyObject

from pop3kit import _mboxfile
from pop3kit.backends.mbox import MboxMailbox, MboxRealm, expandTemplate
from pop3kit.core import MessageInfo, wireSize
from pop3kit.core._dotstuff import canonicalForm
from pop3kit.errors import MessageUnavailable, PermanentFailure, TemporaryFailure
from pop3kit.interfaces import IMailbox
from pop3kit.testing import IMailboxContractMixin


def appendTo(path: str, *messages: bytes) -> None:
    """
    Append C{messages} to the mbox C{path} the way pop3kit does.
    """
    with _mboxfile.lockMbox(path, create=True) as lock:
        _mboxfile.appendMessages(lock, _mboxfile.outgoing(messages))


def pathOf(mailbox: IMailbox) -> str:
    """
    The file of a L{MboxMailbox}.
    """
    assert isinstance(mailbox, MboxMailbox)
    return mailbox._path


def deadPid() -> int:
    """
    The id of a process that has ended.
    """
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class AppendedContractTests(IMailboxContractMixin, TestCase):
    """
    L{MboxMailbox} keeps the L{IMailbox} contract for mbox files pop3kit appended to.
    """

    def mailboxWithMessages(self, messages: list[bytes]) -> Deferred[IMailbox]:
        path = os.path.abspath(self.mktemp())
        appendTo(path, *messages)
        return succeed(MboxMailbox(path))

    def deliverMore(self, mailbox: IMailbox, message: bytes) -> Deferred[None]:
        appendTo(pathOf(mailbox), message)
        return succeed(None)

    def reopen(self, mailbox: IMailbox) -> Deferred[IMailbox]:
        return succeed(MboxMailbox(pathOf(mailbox)))


class PythonMboxContractTests(IMailboxContractMixin, TestCase):
    """
    L{MboxMailbox} keeps the L{IMailbox} contract for mbox files written by Python's
    L{mailbox.mbox} (mboxo quoting, its own locking).
    """

    def mailboxWithMessages(self, messages: list[bytes]) -> Deferred[IMailbox]:
        path = os.path.abspath(self.mktemp())
        box = stdlibmailbox.mbox(path, create=True)
        box.lock()
        for message in messages:
            box.add(message)
        box.flush()
        box.unlock()
        return succeed(MboxMailbox(path))

    def deliverMore(self, mailbox: IMailbox, message: bytes) -> Deferred[None]:
        box = stdlibmailbox.mbox(pathOf(mailbox))
        box.lock()
        box.add(message)
        box.flush()
        box.unlock()
        return succeed(None)

    def reopen(self, mailbox: IMailbox) -> Deferred[IMailbox]:
        return succeed(MboxMailbox(pathOf(mailbox)))

    async def test_sizes(self) -> None:
        """
        Skipped: see C{_EMPTY_MESSAGE}.
        """
        raise SkipTest(_EMPTY_MESSAGE)

    async def test_readBack(self) -> None:
        """
        Skipped: see C{_EMPTY_MESSAGE}.
        """
        raise SkipTest(_EMPTY_MESSAGE)


_EMPTY_MESSAGE = (
    "mailbox.mbox stores an empty message as one empty line (and reads it back so): "
    "there is no empty message in its file to serve"
)


class MboxMailboxTests(TestCase):
    """
    What L{MboxMailbox} does beyond the contract.
    """

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())

    async def listing(self, mailbox: MboxMailbox | None = None) -> list[MessageInfo]:
        return list(await (mailbox or MboxMailbox(self.path)).listMessages())

    async def read(self, mailbox: MboxMailbox, uid: str) -> bytes:
        stream = await mailbox.openMessage(uid)
        try:
            return stream.read()
        finally:
            stream.close()

    async def test_missingFileIsEmpty(self) -> None:
        """
        A user without an mbox file has an empty maildrop, and expunging changes nothing.
        """
        mailbox = MboxMailbox(self.path)
        self.assertEqual(await self.listing(mailbox), [])
        await mailbox.expunge(["x"])
        self.assertFalse(os.path.exists(self.path))

    async def test_fromLinesRoundTrip(self) -> None:
        """
        Body lines starting with C{From }, C{>From } ... come back as they were appended.
        """
        message = b"Subject: q\n\nFrom here\n>From there\n>>From everywhere\nFrom"
        appendTo(self.path, message)
        mailbox = MboxMailbox(self.path)
        [info] = await self.listing(mailbox)
        self.assertEqual(info.size, wireSize(message))
        self.assertEqual(canonicalForm(await self.read(mailbox, info.uid)), canonicalForm(message))

    async def test_postfixStyle(self) -> None:
        """
        An mbox as Postfix writes it (mboxo: only C{From } quoted, a C{Return-Path} and
        an empty line after each message) lists and reads back.
        """
        with open(self.path, "wb") as f:
            f.write(
                b"From alice@example.com  Mon Jan  5 10:00:00 2026\n"
                b"Return-Path: <alice@example.com>\nSubject: one\n\nhi\n>From me\n\n"
                b"From bob@example.com  Mon Jan  5 10:01:00 2026\n"
                b"Return-Path: <bob@example.com>\nSubject: two\n\nyo\n\n"
            )
        mailbox = MboxMailbox(self.path)
        first, second = await self.listing(mailbox)
        self.assertEqual(
            await self.read(mailbox, first.uid),
            b"Return-Path: <alice@example.com>\nSubject: one\n\nhi\nFrom me\n",
        )
        self.assertEqual(
            await self.read(mailbox, second.uid),
            b"Return-Path: <bob@example.com>\nSubject: two\n\nyo\n",
        )

    async def test_contentLength(self) -> None:
        """
        A valid C{Content-Length:} delimits the body, so an unquoted C{From } line after
        an empty line inside it does not split the message, and nothing is unquoted; the
        header itself is bookkeeping, not sent.
        """
        body = b"text\n\nFrom the start\n>From kept\n"
        with open(self.path, "wb") as f:
            f.write(
                b"From a Mon Jan  5 10:00:00 2026\nContent-Length: %d\nSubject: s\n\n%s\n"
                b"From b Mon Jan  5 10:01:00 2026\nSubject: t\n\nsecond\n\n" % (len(body), body)
            )
        mailbox = MboxMailbox(self.path)
        first, second = await self.listing(mailbox)
        self.assertEqual(await self.read(mailbox, first.uid), b"Subject: s\n\n%s" % body)
        self.assertEqual(await self.read(mailbox, second.uid), b"Subject: t\n\nsecond\n")

    async def test_dovecotBookkeepingHidden(self) -> None:
        """
        An mbox as Dovecot's LDA writes it (no quoting but a C{Content-Length:}, its
        C{X-IMAPbase}, C{X-UID}, C{Status} and padded C{X-Keywords} headers, a body
        starting with C{From } right after the headers) lists and reads without Dovecot's
        headers, as Dovecot's own POP3 server sends it; Dovecot updating them in place
        changes no unique-id.
        """
        dovecot = (
            b"From bob@example.com  Wed Dec 02 10:14:08 2026\n"
            b"Subject: from lda\nX-IMAPbase: 1796206448 0000000002\nX-UID: 1\nStatus: \n"
            b"X-Keywords:" + b" " * 72 + b"\n\t$Junk\nContent-Length: 17\n\nFrom inside\nbody\n\n"
            b"From carol@example.com  Wed Dec 02 10:14:20 2026\n"
            b"Subject: second\nX-UID: 2\nStatus: RO\nX-Status: A\nContent-Length: 2\n\nx\n"
        )
        with open(self.path, "wb") as f:
            f.write(dovecot)
        mailbox = MboxMailbox(self.path)
        first, second = await self.listing(mailbox)
        expected = [b"Subject: from lda\n\nFrom inside\nbody\n", b"Subject: second\n\nx\n"]
        self.assertEqual(
            [await self.read(mailbox, first.uid), await self.read(mailbox, second.uid)], expected
        )
        self.assertEqual([first.size, second.size], [wireSize(m) for m in expected])
        with open(self.path, "wb") as f:
            f.write(
                dovecot.replace(b"0000000002", b"0000000003").replace(b"Status: \n", b"Status: O\n")
            )
        self.assertEqual(await self.listing(), [first, second])

    async def test_storedUidNeverSent(self) -> None:
        """
        The C{X-Pop3kit-UIDL:} line pop3kit stores is the unique-id, is not sent and is not
        counted in the size.
        """
        with open(self.path, "wb") as f:
            f.write(
                b"From a Mon Jan  5 10:00:00 2026\nX-Pop3kit-UIDL: abc123\nSubject: s\n\nbody\n\n"
            )
        mailbox = MboxMailbox(self.path)
        [info] = await self.listing(mailbox)
        self.assertEqual(info, MessageInfo("abc123", wireSize(b"Subject: s\n\nbody\n")))
        self.assertEqual(await self.read(mailbox, "abc123"), b"Subject: s\n\nbody\n")

    async def test_foreignUidlHeaderSent(self) -> None:
        """
        A message whose first header is qpopper's C{X-UIDL:} (not pop3kit's own) is sent
        whole.
        """
        message = b"X-UIDL: 1234\nSubject: s\n\nbody\n"
        appendTo(self.path, message)
        mailbox = MboxMailbox(self.path)
        [info] = await self.listing(mailbox)
        self.assertNotEqual(info.uid, "1234")
        self.assertEqual(await self.read(mailbox, info.uid), message)

    async def test_spoofedUidNotTrustedTwice(self) -> None:
        """
        A C{X-Pop3kit-UIDL:} value that an earlier message already uses (a sender forging the
        header) does not give a second message the same unique-id.
        """
        with open(self.path, "wb") as f:
            for subject in (b"one", b"two"):
                f.write(
                    b"From a Mon Jan  5 10:00:00 2026\nX-Pop3kit-UIDL: same\nSubject: %s\n\n\n"
                    % subject
                )
        uids = [info.uid for info in await self.listing()]
        self.assertEqual(uids[0], "same")
        self.assertEqual(len(set(uids)), 2)

    async def test_uidsSurviveDeliveriesAndExpunges(self) -> None:
        """
        Unique-ids stay the same when mail is delivered, when mail readers add status
        headers, and when an identical earlier message is expunged.
        """
        same = b"Subject: same\n\nidentical\n"
        appendTo(self.path, same, same, same)
        first = await self.listing()
        appendTo(self.path, b"Subject: later\n\n\n")
        second = await self.listing()
        self.assertEqual(second[:3], first)
        mailbox = MboxMailbox(self.path)
        await self.listing(mailbox)
        await mailbox.expunge([first[0].uid])
        third = await self.listing()
        self.assertEqual(third, second[1:])
        # A mail reader adds Status: headers in place.
        with open(self.path, "rb") as f:
            content = f.read()
        with open(self.path, "wb") as f:
            f.write(content.replace(b"Subject: later\n", b"Subject: later\nStatus: RO\n"))
        fourth = await self.listing()
        self.assertEqual([info.uid for info in fourth], [info.uid for info in third])

    async def test_expungeKeepsMailDeliveredDuringSession(self) -> None:
        """
        Mail delivered after the listing survives the expunge; the file keeps its mode.
        """
        appendTo(self.path, b"Subject: 1\n\n\n", b"Subject: 2\n\n\n")
        os.chmod(self.path, 0o660)
        mailbox = MboxMailbox(self.path)
        one, two = await self.listing(mailbox)
        appendTo(self.path, b"Subject: 3\n\nlate\n")
        await mailbox.expunge([one.uid, two.uid])
        self.assertEqual(list(_mboxfile.iterMessages(self.path)), [b"Subject: 3\n\nlate\n"])
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o660)
        self.assertEqual(
            sorted(os.listdir(os.path.dirname(self.path))), [os.path.basename(self.path)]
        )

    async def test_readAfterForeignRewrite(self) -> None:
        """
        A message is still read after another program rewrote the file (by renaming a
        new one over it) since the listing; one it removed is unavailable.
        """
        appendTo(self.path, b"Subject: 1\n\n\n", b"Subject: 2\n\nsecond\n")
        mailbox = MboxMailbox(self.path)
        one, two = await self.listing(mailbox)
        other = MboxMailbox(self.path)
        await self.listing(other)
        await other.expunge([one.uid])
        self.assertEqual(await self.read(mailbox, two.uid), b"Subject: 2\n\nsecond\n")
        await self.assertFailure(mailbox.openMessage(one.uid), MessageUnavailable)

    async def test_readingHoldsReadLock(self) -> None:
        """
        While a message is being read, a writer (an MTA, or a mail reader rewriting the
        file) waits; once the message is closed it can write.
        """
        appendTo(self.path, b"Subject: 1\n\n\n")
        mailbox = MboxMailbox(self.path)
        [info] = await self.listing(mailbox)
        stream = await mailbox.openMessage(info.uid)
        self.assertRaises(_mboxfile.LockBusy, _mboxfile.tryLockMbox, self.path)
        stream.close()
        _mboxfile.tryLockMbox(self.path).release()

    async def test_staleDotlockBroken(self) -> None:
        """
        A dot-lock left by a process that died is broken at the next login.
        """
        appendTo(self.path, b"Subject: 1\n\n\n")
        with open(self.path + ".lock", "w") as f:
            f.write(f"{deadPid()}:{os.uname().nodename}\n")
        self.assertEqual(len(await self.listing()), 1)
        self.assertFalse(os.path.exists(self.path + ".lock"))

    def test_liveDotlockWaitedFor(self) -> None:
        """
        While a live process holds the dot-lock the listing waits, without blocking the
        reactor, and fails with L{TemporaryFailure} after the lock timeout.
        """
        appendTo(self.path, b"Subject: 1\n\n\n")
        with open(self.path + ".lock", "w") as f:
            f.write(f"1:{os.uname().nodename}\n")
        clock = Clock()
        d = MboxMailbox(self.path, clock=clock, lockTimeout=5).listMessages()
        self.assertNoResult(d)
        clock.pump([0.5] * 20)
        self.failureResultOf(d, TemporaryFailure)

    def test_lockedByAnotherProgramThenFreed(self) -> None:
        """
        When the dot-lock goes away before the timeout, the listing goes ahead.
        """
        appendTo(self.path, b"Subject: 1\n\n\n")
        with open(self.path + ".lock", "w") as f:
            f.write(f"1:{os.uname().nodename}\n")
        clock = Clock()
        d = MboxMailbox(self.path, clock=clock, lockTimeout=5).listMessages()
        clock.advance(1)
        self.assertNoResult(d)
        os.unlink(self.path + ".lock")
        clock.advance(1)
        self.assertEqual(len(self.successResultOf(d)), 1)


class TemplateTests(SynchronousTestCase):
    """
    L{expandTemplate} and L{MboxRealm}.
    """

    def test_placeholders(self) -> None:
        """
        C{%u}, C{%n}, C{%d} and C{%%} expand as in Dovecot.
        """
        self.assertEqual(expandTemplate("/var/mail/%u", "alice"), "/var/mail/alice")
        self.assertEqual(
            expandTemplate("/m/%d/%n/100%%", "bob@example.org"), "/m/example.org/bob/100%"
        )

    def test_invalidTemplates(self) -> None:
        """
        A template without the user, or with an unknown placeholder, is refused.
        """
        for template in ("/var/mail/inbox", "/m/%d", "/m/%x/%u"):
            self.assertRaises(ValueError, MboxRealm, template)

    def test_unsafeNames(self) -> None:
        """
        A user name that could climb out of the directory gets no mailbox.
        """
        realm = MboxRealm("/var/mail/%u")
        self.assertTrue(verifyObject(IRealm, realm))
        for name in ("../etc/passwd", "a/b", ".hidden", ""):
            self.assertRaises(PermanentFailure, realm.requestAvatar, name, None, IMailbox)
        self.assertRaises(
            PermanentFailure, MboxRealm("/m/%d/%n").requestAvatar, "alice", None, IMailbox
        )

    def test_avatar(self) -> None:
        """
        The realm hands out a L{MboxMailbox} on the expanded path.
        """
        interface, avatar, logout = MboxRealm("/var/mail/%u").requestAvatar(
            b"alice", None, IMailbox
        )
        self.assertIs(interface, IMailbox)
        assert isinstance(avatar, MboxMailbox)
        self.assertEqual(avatar._path, "/var/mail/alice")
        logout()
        self.assertRaises(
            NotImplementedError, MboxRealm("/m/%u").requestAvatar, "a", None, Interface
        )
