"""
An in-memory storage backend: the public test double for L{pop3kit.interfaces.IMailbox}.

L{MemoryMailbox} keeps messages as L{bytes} in a list-like order; L{MemoryRealm} hands one
out per user.  Nothing is persisted.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import BinaryIO

from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import Interface, implementer

from pop3kit.core import (
    MessageInfo,
    wireSize,
)
from pop3kit.errors import MessageUnavailable, PermanentFailure
from pop3kit.interfaces import IMailbox, IRetrievalLog

__all__ = ["MemoryMailbox", "MemoryRealm"]


@implementer(IMailbox, IRetrievalLog)
class MemoryMailbox:
    """
    A maildrop held in memory.

    Each message gets the unique-id C{"m<n>"}, where C{n} counts the messages this mailbox
    has received; unique-ids are never reused, even after an expunge.

    As an L{IRetrievalLog} it remembers when each message was first retrieved
    (L{retrievedAt}), for as long as the object lives.
    """

    def __init__(self, messages: Iterable[bytes] = (), maildropId: str | None = None) -> None:
        """
        @param messages: The initial messages, oldest first, as stored (LF or CRLF line
            ends).
        @param maildropId: The name sessions lock this mailbox by; unique to this object by
            default.
        """
        self.maildropId = f"memory:{id(self):x}" if maildropId is None else maildropId
        self._messages: dict[str, bytes] = {}
        self._retrieved: dict[str, float] = {}
        self._delivered = 0
        for message in messages:
            self.deliver(message)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} with {len(self._messages)} messages>"

    @property
    def messages(self) -> list[bytes]:
        """
        The messages currently stored, oldest first (a copy).
        """
        return list(self._messages.values())

    def deliver(self, message: bytes) -> str:
        """
        Add a message after the existing ones, as a mail delivery would.

        Listings taken before the delivery do not change.

        @return: The new message's unique-id.
        """
        self._delivered += 1
        uid = f"m{self._delivered}"
        self._messages[uid] = message
        return uid

    def listMessages(self) -> Deferred[Sequence[MessageInfo]]:
        """
        Take a snapshot of the stored messages, oldest first.
        """
        snapshot = [MessageInfo(uid, wireSize(body)) for uid, body in self._messages.items()]
        return succeed(snapshot)

    def openMessage(self, uid: str) -> Deferred[BinaryIO]:
        """
        Open the message C{uid} as a L{io.BytesIO}; fails with
        L{pop3kit.errors.MessageUnavailable} when it is no longer stored.
        """
        body = self._messages.get(uid)
        if body is None:
            return fail(MessageUnavailable())
        return succeed(io.BytesIO(body))

    def expunge(self, uids: Collection[str]) -> Deferred[None]:
        """
        Remove the messages with these unique-ids; unknown ones are ignored.
        """
        for uid in uids:
            self._messages.pop(uid, None)
            self._retrieved.pop(uid, None)
        return succeed(None)

    @property
    def retrievedAt(self) -> dict[str, float]:
        """
        When each stored message was first retrieved, by unique-id (a copy).
        """
        return dict(self._retrieved)

    def markRetrieved(self, uids: Collection[str], when: float) -> Deferred[None]:
        """
        Record that the messages C{uids} were retrieved at C{when}; a message keeps its
        first time, and unknown ones are ignored.
        """
        for uid in uids:
            if uid in self._messages:
                self._retrieved.setdefault(uid, when)
        return succeed(None)

    def expired(self, before: float) -> Deferred[Collection[str]]:
        """
        The unique-ids of the messages first retrieved before C{before}.
        """
        return succeed([uid for uid, when in self._retrieved.items() if when < before])


def _avatarName(avatarId: object) -> str:
    """
    Turn an avatar id from a checker into a user name; bytes are decoded as UTF-8.

    @raise PermanentFailure: For the anonymous avatar id, bytes that are not UTF-8, and
        anything else that is not a string.
    """
    if isinstance(avatarId, str):
        return avatarId
    if isinstance(avatarId, bytes):
        try:
            return avatarId.decode("utf-8")
        except UnicodeDecodeError:
            raise PermanentFailure("user name is not UTF-8") from None
    raise PermanentFailure("anonymous access is not supported")


@implementer(IRealm)
class MemoryRealm:
    """
    A realm that hands out a L{MemoryMailbox} per user.
    """

    def __init__(
        self, mailboxes: dict[str, MemoryMailbox] | None = None, create: bool = True
    ) -> None:
        """
        @param mailboxes: The known users' mailboxes, by user name.  The realm keeps its
            own copy of the dict (the mailboxes themselves are shared).
        @param create: Whether a user without a mailbox gets a new empty one on login; if
            false, such a login fails with L{pop3kit.errors.PermanentFailure}.
        """
        self._mailboxes: dict[str, MemoryMailbox] = dict(mailboxes or {})
        self._create = create
        self._sessions: dict[str, int] = {}

    def getMailbox(self, avatarId: str) -> MemoryMailbox:
        """
        The mailbox of C{avatarId}, created empty if the realm creates mailboxes.

        @raise KeyError: If there is no such mailbox and the realm does not create them.
        """
        mailbox = self._mailboxes.get(avatarId)
        if mailbox is None:
            if not self._create:
                raise KeyError(avatarId)
            mailbox = self._mailboxes[avatarId] = MemoryMailbox(maildropId=f"memory:{avatarId}")
        return mailbox

    @property
    def activeSessions(self) -> dict[str, int]:
        """
        How many avatars of each user are logged in (not yet logged out); a copy.
        """
        return dict(self._sessions)

    def requestAvatar(
        self, avatarId: bytes | str | tuple[()], mind: object, *interfaces: type[Interface]
    ) -> tuple[type[Interface], object, Callable[[], None]]:
        """
        Return C{(IMailbox, mailbox, logout)} for C{avatarId}.

        @raise NotImplementedError: If L{IMailbox} is not among C{interfaces}.
        @raise PermanentFailure: If the user has no mailbox and the realm does not create
            them, or C{avatarId} is not a user name.
        """
        if IMailbox not in interfaces:
            raise NotImplementedError("MemoryRealm only provides IMailbox")
        name = _avatarName(avatarId)
        try:
            mailbox = self.getMailbox(name)
        except KeyError:
            raise PermanentFailure("no maildrop for this user") from None
        self._sessions[name] = self._sessions.get(name, 0) + 1
        loggedOut = False

        def logout() -> None:
            nonlocal loggedOut
            if loggedOut:
                return
            loggedOut = True
            remaining = self._sessions[name] - 1
            if remaining:
                self._sessions[name] = remaining
            else:
                del self._sessions[name]

        return IMailbox, mailbox, logout
