"""
Tests for L{pop3kit.backends.memory}.
"""

from __future__ import annotations

import io

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import UsernamePassword
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, succeed
from twisted.trial.reporter import TestResult
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import Interface
from zope.interface.verify import verifyObject

from pop3kit.backends.memory import MemoryMailbox, MemoryRealm
from pop3kit.core import (
    MessageInfo,
    wireSize,
)
from pop3kit.errors import MessageUnavailable, PermanentFailure
from pop3kit.interfaces import IMailbox
from pop3kit.testing import IMailboxContractMixin


class MemoryMailboxContractTests(IMailboxContractMixin, TestCase):
    """
    L{MemoryMailbox} keeps the L{IMailbox} contract.
    """

    def mailboxWithMessages(self, messages: list[bytes]) -> Deferred[IMailbox]:
        return succeed(MemoryMailbox(messages))

    def deliverMore(self, mailbox: IMailbox, message: bytes) -> Deferred[None]:
        assert isinstance(mailbox, MemoryMailbox)
        mailbox.deliver(message)
        return succeed(None)


class MemoryMailboxTests(SynchronousTestCase):
    """
    Tests for the parts of L{MemoryMailbox} beyond L{IMailbox}.
    """

    def test_deliver(self) -> None:
        """
        C{deliver} returns the unique-id under which the next listing shows the message.
        """
        mailbox = MemoryMailbox([b"one\n"])
        uid = mailbox.deliver(b"two\n")
        listing = self.successResultOf(mailbox.listMessages())
        self.assertEqual(listing[1], MessageInfo(uid, wireSize(b"two\n")))

    def test_uidsNotReused(self) -> None:
        """
        A message delivered after an expunge does not get an expunged message's
        unique-id.
        """
        mailbox = MemoryMailbox([b"one\n", b"two\n"])
        uids = [info.uid for info in self.successResultOf(mailbox.listMessages())]
        self.successResultOf(mailbox.expunge(uids))
        self.assertNotIn(mailbox.deliver(b"three\n"), uids)

    def test_messages(self) -> None:
        """
        C{messages} is a copy of the stored messages, without the expunged ones.
        """
        mailbox = MemoryMailbox(iter([b"one\n", b"two\n", b"three\n"]))
        [first, _, _] = self.successResultOf(mailbox.listMessages())
        self.successResultOf(mailbox.expunge([first.uid]))
        messages = mailbox.messages
        messages.clear()
        self.assertEqual(mailbox.messages, [b"two\n", b"three\n"])

    def test_openReturnsBytesIO(self) -> None:
        """
        C{openMessage} gives an L{io.BytesIO} of the message as stored.
        """
        mailbox = MemoryMailbox([b"a\r\nb\n"])
        [info] = self.successResultOf(mailbox.listMessages())
        stream = self.successResultOf(mailbox.openMessage(info.uid))
        self.assertIsInstance(stream, io.BytesIO)
        self.assertEqual(stream.read(), b"a\r\nb\n")

    def test_openUnknown(self) -> None:
        """
        Opening a unique-id that was never stored fails with L{MessageUnavailable}.
        """
        self.failureResultOf(MemoryMailbox().openMessage("nope"), MessageUnavailable)


class MemoryRealmTests(SynchronousTestCase):
    """
    Tests for L{MemoryRealm}.
    """

    def test_interface(self) -> None:
        """
        The realm provides L{IRealm}.
        """
        self.assertTrue(verifyObject(IRealm, MemoryRealm()))

    def test_knownMailbox(self) -> None:
        """
        A user given to the constructor gets that mailbox; a L{bytes} avatar id is decoded
        as UTF-8.
        """
        mailbox = MemoryMailbox([b"hello\n"])
        realm = MemoryRealm({"j\u00fcrgen": mailbox})
        interface, avatar, logout = realm.requestAvatar("j\u00fcrgen".encode(), None, IMailbox)
        self.assertIs(interface, IMailbox)
        self.assertIs(avatar, mailbox)
        logout()

    def test_createOnDemand(self) -> None:
        """
        An unknown user gets a new empty mailbox, the same one on every login.
        """
        realm = MemoryRealm()
        _, first, _ = realm.requestAvatar(b"alice", None, IMailbox)
        _, second, _ = realm.requestAvatar("alice", None, IMailbox)
        _, other, _ = realm.requestAvatar("bob", None, IMailbox)
        self.assertIsInstance(first, MemoryMailbox)
        self.assertIs(first, second)
        self.assertIsNot(first, other)
        self.assertIs(realm.getMailbox("alice"), first)
        self.assertEqual(self.successResultOf(realm.getMailbox("alice").listMessages()), [])

    def test_noCreate(self) -> None:
        """
        With C{create=False}, an unknown user gets L{PermanentFailure} and
        C{getMailbox} raises L{KeyError}.
        """
        realm = MemoryRealm({"alice": MemoryMailbox()}, create=False)
        realm.requestAvatar("alice", None, IMailbox)
        self.assertRaises(PermanentFailure, realm.requestAvatar, "bob", None, IMailbox)
        self.assertRaises(KeyError, realm.getMailbox, "bob")

    def test_constructorDictCopied(self) -> None:
        """
        Mailboxes created on demand are not added to the caller's dict.
        """
        mailboxes: dict[str, MemoryMailbox] = {}
        realm = MemoryRealm(mailboxes)
        realm.requestAvatar("alice", None, IMailbox)
        self.assertEqual(mailboxes, {})

    def test_otherInterface(self) -> None:
        """
        Asking for anything but L{IMailbox} raises L{NotImplementedError}.
        """

        class IOther(Interface):  # type: ignore[misc]
            pass

        self.assertRaises(NotImplementedError, MemoryRealm().requestAvatar, "a", None, IOther)

    def test_badAvatarIds(self) -> None:
        """
        Non-UTF-8 bytes and the anonymous avatar id get L{PermanentFailure}.
        """
        realm = MemoryRealm()
        self.assertRaises(PermanentFailure, realm.requestAvatar, b"\xff", None, IMailbox)
        self.assertRaises(PermanentFailure, realm.requestAvatar, (), None, IMailbox)

    def test_activeSessions(self) -> None:
        """
        C{activeSessions} counts logins per user until their logout is called; calling a
        logout twice counts once.
        """
        realm = MemoryRealm()
        _, _, logoutA = realm.requestAvatar("alice", None, IMailbox)
        _, _, logoutB = realm.requestAvatar("alice", None, IMailbox)
        _, _, logoutC = realm.requestAvatar("bob", None, IMailbox)
        self.assertEqual(realm.activeSessions, {"alice": 2, "bob": 1})
        logoutA()
        logoutA()
        logoutC()
        self.assertEqual(realm.activeSessions, {"alice": 1})
        logoutB()
        self.assertEqual(realm.activeSessions, {})

    def test_portalLogin(self) -> None:
        """
        The realm works behind a L{Portal}: a login yields the user's mailbox.
        """
        mailbox = MemoryMailbox([b"hi\n"])
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        portal = Portal(MemoryRealm({"alice": mailbox}), [checker])
        interface, avatar, logout = self.successResultOf(
            portal.login(UsernamePassword(b"alice", b"secret"), None, IMailbox)
        )
        self.assertIs(interface, IMailbox)
        self.assertIs(avatar, mailbox)
        logout()


class ContractHookTests(SynchronousTestCase):
    """
    Tests for how L{IMailboxContractMixin} treats its hooks.
    """

    def test_hooksMustReturnDeferreds(self) -> None:
        """
        A hook that returns a plain value fails the contract test with a message that
        names the hook, rather than passing or failing somewhere inside the test.
        """

        class PlainValueHooks(IMailboxContractMixin, TestCase):
            def mailboxWithMessages(self, messages: list[bytes]) -> Deferred[IMailbox]:
                return MemoryMailbox(messages)  # type: ignore[return-value]

        result = TestResult()
        PlainValueHooks("test_emptyMailbox").run(result)
        self.assertEqual(len(result.failures), 1, result.errors)
        self.assertIn(
            "PlainValueHooks.mailboxWithMessages must return a Deferred",
            str(result.failures[0][1]),
        )
