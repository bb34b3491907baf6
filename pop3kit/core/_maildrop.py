"""
The session's view of a maildrop: message numbers, deletion marks, RSET.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pop3kit.core._errors import NoSuchMessage
from pop3kit.core._messages import MessageInfo


class MaildropView:
    """
    The listing a session took at login, with the session's deletion marks.

    Message numbers are fixed for the session (a deletion does not renumber); deleted
    messages are left out of L{stat} and L{listing} and cannot be referenced.
    """

    def __init__(self, messages: Iterable[MessageInfo]) -> None:
        self._messages = tuple(messages)
        uids = {message.uid for message in self._messages}
        if len(uids) != len(self._messages):
            raise ValueError("unique-ids in a maildrop listing must be unique")
        self._deleted: set[int] = set()
        self._totalOctets = sum(message.size for message in self._messages)
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
        lines = [
            b"%d %d\r\n" % (index, message.size)
            for index, message in enumerate(self._messages, 1)
            if index not in deleted
        ]
        lines.append(b".\r\n")
        return b"".join(lines)

    def uidListing(self) -> bytes:
        """
        The body of a UIDL response: C{number unique-id} CRLF for each message not marked
        deleted, then the terminator.
        """
        deleted = self._deleted
        lines = [
            f"{index} {message.uid}\r\n"
            for index, message in enumerate(self._messages, 1)
            if index not in deleted
        ]
        lines.append(".\r\n")
        # Unique-ids are ASCII (see isValidUid); str formatting is the faster path here.
        return "".join(lines).encode("ascii")

    def delete(self, number: int) -> None:
        """
        Mark a message deleted.

        @raise NoSuchMessage: if it does not exist or is already marked deleted.
        """
        message = self.get(number)
        self._deleted.add(number)
        self._deletedOctets += message.size

    def reset(self) -> None:
        """
        Unmark every message.
        """
        self._deleted.clear()
        self._deletedOctets = 0

    def deletedUids(self) -> frozenset[str]:
        """
        The unique-ids of the messages marked deleted.
        """
        return frozenset(self._messages[number - 1].uid for number in self._deleted)
