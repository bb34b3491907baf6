"""
The session's view of a maildrop: message numbers, deletion marks, RSET.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet

from pop3kit.core._errors import NoSuchMessage
from pop3kit.core._messages import MessageInfo


class _Listing:
    """
    What is derived from one listing, whoever views it: its checks, its size, and its
    LIST and UIDL bodies while nothing is marked deleted.
    """

    __slots__ = ("messages", "scan", "totalOctets", "uids")

    def __init__(self, messages: tuple[MessageInfo, ...]) -> None:
        uids = {message.uid for message in messages}
        if len(uids) != len(messages):
            raise ValueError("unique-ids in a maildrop listing must be unique")
        self.messages = messages
        self.totalOctets = sum(message.size for message in messages)
        self.scan: bytes | None = None
        self.uids: bytes | None = None


#: The listings recently viewed, by the identity of their tuple.  A backend that hands
#: the same tuple to every session of an unchanged maildrop (as the Maildir backend's
#: index does) has it checked and rendered once for all of them.
_RECENT: OrderedDict[int, _Listing] = OrderedDict()

#: How many listings L{_RECENT} keeps.
_RECENT_LISTINGS = 64


def _listingOf(messages: Iterable[MessageInfo]) -> _Listing:
    """
    The shared L{_Listing} of C{messages} if it is a tuple seen recently, else a new one.
    """
    if not isinstance(messages, tuple):
        return _Listing(tuple(messages))
    key = id(messages)
    found = _RECENT.get(key)
    # The entry holds the tuple, so its identity cannot have been reused meanwhile.
    if found is not None and found.messages is messages:
        _RECENT.move_to_end(key)
        return found
    listing = _Listing(messages)
    _RECENT[key] = listing
    if len(_RECENT) > _RECENT_LISTINGS:
        _RECENT.popitem(last=False)
    return listing


#: The deletion marks of a session that has deleted nothing.
_NONE: frozenset[int] = frozenset()


class MaildropView:
    """
    The listing a session took at login, with the session's deletion marks.

    Message numbers are fixed for the session (a deletion does not renumber); deleted
    messages are left out of L{stat} and L{listing} and cannot be referenced.
    """

    __slots__ = (
        "_deleted",
        "_deletedOctets",
        "_listing",
        "_messages",
        "_totalOctets",
    )

    def __init__(self, messages: Iterable[MessageInfo]) -> None:
        self._listing = _listingOf(messages)
        self._messages = self._listing.messages
        # No set until a message is deleted: an empty set costs 216 octets a session.
        self._deleted: AbstractSet[int] = _NONE
        self._totalOctets = self._listing.totalOctets
        self._deletedOctets = 0

    def __len__(self) -> int:
        return len(self._messages)

    def stat(self) -> tuple[int, int]:
        """
        The number of messages not marked deleted, and their total size in octets.
        """
        return (
            len(self._messages) - len(self._deleted),
            self._totalOctets - self._deletedOctets,
        )

    def get(self, number: int) -> MessageInfo:
        """
        The message with this number.

        @raise NoSuchMessage: if it does not exist or is marked deleted.
        """
        if not 1 <= number <= len(self._messages) or number in self._deleted:
            raise NoSuchMessage()
        return self._messages[number - 1]

    def listing(self) -> Iterator[tuple[int, MessageInfo]]:
        """
        The messages not marked deleted, with their numbers, in order.
        """
        deleted = self._deleted
        for index, message in enumerate(self._messages, 1):
            if index not in deleted:
                yield index, message

    def scanListing(self) -> bytes:
        """
        The body of a LIST response: C{number size} CRLF for each message not marked
        deleted, then the terminator.  (No line starts with a dot, so nothing is stuffed.)
        """
        deleted = self._deleted
        if not deleted and self._listing.scan is not None:
            return self._listing.scan
        lines = [
            f"{index} {message.size}\r\n"
            for index, message in enumerate(self._messages, 1)
            if index not in deleted
        ]
        lines.append(".\r\n")
        body = "".join(lines).encode("ascii")
        if not deleted:
            self._listing.scan = body
        return body

    def uidListing(self) -> bytes:
        """
        The body of a UIDL response: C{number unique-id} CRLF for each message not marked
        deleted, then the terminator.
        """
        deleted = self._deleted
        if not deleted and self._listing.uids is not None:
            return self._listing.uids
        lines = [
            f"{index} {message.uid}\r\n"
            for index, message in enumerate(self._messages, 1)
            if index not in deleted
        ]
        lines.append(".\r\n")
        # Unique-ids are ASCII (see isValidUid); str formatting is the faster path here.
        body = "".join(lines).encode("ascii")
        if not deleted:
            self._listing.uids = body
        return body

    def delete(self, number: int) -> None:
        """
        Mark a message deleted.

        @raise NoSuchMessage: if it does not exist or is already marked deleted.
        """
        message = self.get(number)
        deleted = self._deleted
        if not isinstance(deleted, set):
            deleted = self._deleted = set()
        deleted.add(number)
        self._deletedOctets += message.size

    def reset(self) -> None:
        """
        Unmark every message.
        """
        self._deleted = _NONE
        self._deletedOctets = 0

    def deletedUids(self) -> frozenset[str]:
        """
        The unique-ids of the messages marked deleted.
        """
        return frozenset(self._messages[number - 1].uid for number in self._deleted)
