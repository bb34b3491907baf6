"""
Message metadata shared by the session and the storage backends.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The longest unique-id RFC 1939 section 7 allows.
MAX_UID_LENGTH = 70


def isValidUid(uid: str) -> bool:
    """
    Whether C{uid} is a valid RFC 1939 unique-id: 1 to 70 characters in 0x21-0x7E.
    """
    return 0 < len(uid) <= MAX_UID_LENGTH and uid.isascii() and uid.isprintable() and " " not in uid


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """
    One message of a maildrop listing, as a backend reports it.

    @ivar uid: The message's unique-id: stable across sessions, 1-70 characters in
        0x21-0x7E, and unique within the maildrop.
    @ivar size: The message's size in octets as transmitted: with CRLF line ends, before
        byte-stuffing (see L{pop3kit.core.wireSize}).
    """

    uid: str
    size: int

    def __post_init__(self) -> None:
        if not isValidUid(self.uid):
            raise ValueError(f"invalid unique-id {self.uid!r}")
        if self.size < 0:
            raise ValueError(f"negative size {self.size!r}")
