"""
The interfaces a storage backend, a maildrop lock, the login bookkeeping and a store of
SCRAM keys implement.

Every method returns a L{Deferred}; a synchronous implementation returns
C{succeed(value)} or C{fail(error)}.  Errors are the types of L{pop3kit.errors}, which carry
the response code the client sees (C{[SYS/TEMP]}, C{[SYS/PERM]}, C{[IN-USE]} ...); any other
exception is reported to the client as C{-ERR [SYS/TEMP]} and logged.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import BinaryIO

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from pop3kit._scram import SCRAMKeys
from pop3kit.core import (
    MessageInfo,
    UserSettings,
)

__all__ = [
    "IFencedMaildropLock",
    "ILoginHistory",
    "IMailbox",
    "IMaildropDelivery",
    "IMaildropLock",
    "IMaildropLocker",
    "IRetrievalLog",
    "ISCRAMKeySource",
    "IUserSettingsSource",
]


class IMailbox(Interface):  # type: ignore[misc]
    """
    One user's maildrop: the avatar that a L{twisted.cred.portal.IRealm} hands out.

    The POP3 session owns message numbers and deletion marks; the mailbox is storage only.
    """

    maildropId = Attribute(
        """
        A string naming the storage this mailbox reads (for a Maildir, its path).  Sessions
        whose mailboxes share a C{maildropId} exclude each other (the maildrop lock), and
        LOGIN-DELAY is counted per C{maildropId}.
        """
    )

    def listMessages() -> Deferred[Sequence[MessageInfo]]:
        """
        Take a snapshot of the maildrop.

        The order of the result gives the session's message numbers (the first entry is
        message 1).  Unique-ids are unique within the listing and stable across sessions;
        sizes are the octets transmitted (CRLF line ends, before byte-stuffing).  Messages
        delivered after this call are not part of the snapshot.
        """

    def openMessage(uid: str) -> Deferred[BinaryIO]:
        """
        Open one message of the snapshot for reading, as stored (LF or CRLF line ends).

        The caller reads it in chunks and closes it; reads should not block for long (a
        local file is fine).  Fails with L{pop3kit.errors.MessageUnavailable} when the
        message has vanished from storage.
        """

    def expunge(uids: Collection[str]) -> Deferred[None]:
        """
        Permanently remove the messages with these unique-ids (the session's UPDATE state).

        A message that is already gone counts as removed.  Fails (typically with
        L{pop3kit.errors.TemporaryFailure}) if any message could not be removed; messages
        not named are never touched.
        """


class IMaildropLock(Interface):  # type: ignore[misc]
    """
    A held lock on one maildrop.
    """

    def release() -> Deferred[None]:
        """
        Release the lock.  Releasing twice is harmless.
        """


class IFencedMaildropLock(IMaildropLock):
    """
    A maildrop lock that can be lost while it is held: a lease, which expires unless it
    is renewed (L{pop3kit.redisstate.RedisLocker}).  The session confirms it is still
    held before it removes messages, so that a holder whose lease has passed to another
    session removes nothing.
    """

    token = Attribute(
        """
        The fencing token: an integer larger than that of every lock on the maildrop
        granted before this one.  Storage that can check it may refuse the writes of an
        older holder.
        """
    )

    def confirm() -> Deferred[None]:
        """
        Check that the lock is still held, renewing it if it is a lease; fails with
        L{pop3kit.errors.TemporaryFailure} if it is not, or if that cannot be known.
        """


class IMaildropLocker(Interface):  # type: ignore[misc]
    """
    Grants exclusive access to a maildrop for the length of a POP3 session (RFC 1939
    section 4).  The in-process default is L{pop3kit.locking.InProcessLocker}; a
    cross-process or cross-host implementation plugs in here.
    """

    def acquire(avatarId: str) -> Deferred[IMaildropLock]:
        """
        Lock the maildrop of C{avatarId}; fails with L{pop3kit.errors.MaildropInUse} when
        another session holds it.
        """


class ILoginHistory(Interface):  # type: ignore[misc]
    """
    The per-client and per-user counters that login policy needs: failed logins (for the
    failed-login delay) and the time of the last login (for LOGIN-DELAY).  The in-process
    default is L{pop3kit.locking.InProcessLoginHistory}.
    """

    def recordFailure(client: str) -> Deferred[int]:
        """
        Count one failed login from C{client} (usually the peer's address) and return how
        many failures it has now.
        """

    def clearFailures(client: str) -> Deferred[None]:
        """
        Forget the failed logins of C{client} after a successful login.
        """

    def lastLogin(avatarId: str) -> Deferred[float | None]:
        """
        The time (seconds since the epoch, as the reactor's clock counts) of the last
        successful login of C{avatarId}, or L{None}.
        """

    def recordLogin(avatarId: str, when: float) -> Deferred[None]:
        """
        Remember a successful login of C{avatarId} at C{when}.
        """


class ISCRAMKeySource(Interface):  # type: ignore[misc]
    """
    A store of SCRAM keys (RFC 5802), which the server asks during a C{SCRAM-SHA-1} or
    C{SCRAM-SHA-256} login.  A checker of the server's portal that also provides this
    interface (as L{pop3kit.checkers.passwdfile.PasswdFileChecker} does) enables SCRAM.
    """

    def scramKeys(username: str, mechanism: str) -> Deferred[SCRAMKeys | None]:
        """
        The SCRAM keys of one user for one mechanism.

        Fires with L{None} for an unknown user, and for a user who has no keys for this
        mechanism (a password stored as an Argon2 hash, say, or SCRAM-SHA-256 keys when
        SCRAM-SHA-1 is asked for); the server then goes on with dummy keys, so the
        client cannot tell, and the login fails at the end.  Fails (typically with
        L{pop3kit.errors.TemporaryFailure}) if the store cannot be read.

        @param username: The user name, prepared with SASLprep
            (L{pop3kit.sasl.prepareUsername}).
        @param mechanism: C{"SCRAM-SHA-1"} or C{"SCRAM-SHA-256"}.
        """


class IMaildropDelivery(Interface):  # type: ignore[misc]
    """
    Stores new mail into maildrops: what C{pop3kit deliver} and the LMTP listener
    (L{pop3kit.lmtp}) write through, whatever the backend.  The Maildir implementation is
    L{pop3kit.delivery.MaildirDelivery}.
    """

    def recipient(address: str) -> Deferred[str]:
        """
        Find the maildrop that mail for C{address} goes to.

        @param address: A recipient as the mail transfer agent gave it: a user name, or an
            address C{local@domain} (a C{+detail} in the local part is the backend's to
            interpret).
        @return: A L{Deferred} firing with the maildrop's name (the avatar ID its owner
            logs in as), or failing with L{pop3kit.delivery.UnknownRecipient} when no
            maildrop takes mail for C{address}, or with L{pop3kit.errors.TemporaryFailure}
            when that cannot be told now.
        """

    def deliver(maildrop: str, message: BinaryIO) -> Deferred[None]:
        """
        Store a message as new mail of one maildrop.

        @param maildrop: A name that L{recipient} returned.
        @param message: The message with LF or CRLF line ends, read from its current
            position to its end; the caller keeps it open until the L{Deferred} fires.
        @return: A L{Deferred} that fires once the message is durable (a crash after it
            fires loses nothing), or fails, having stored nothing.
        """


class IRetrievalLog(Interface):  # type: ignore[misc]
    """
    A mailbox that records when its messages were retrieved, durably, so that
    C{EXPIRE n} (RFC 2449 section 6.7) can be kept: a session's QUIT records the messages
    it retrieved (RETR) and removes those retrieved more than C{n} days before, and so
    does C{pop3kit expire}.

    An L{IMailbox} avatar that does not provide it keeps every message: a server whose
    policy says C{EXPIRE n} announces C{EXPIRE NEVER} to its users after login.  Both
    methods are called while the session holds the maildrop lock (or, for
    C{pop3kit expire}, outside any session); records must survive restarts and crashes
    and must not change unique-ids.
    """

    def markRetrieved(uids: Collection[str], when: float) -> Deferred[None]:
        """
        Record that the messages C{uids} were retrieved at C{when} (seconds since the
        epoch).  A message recorded before keeps its first time; records of messages no
        longer stored may be dropped.  Fails (typically with
        L{pop3kit.errors.TemporaryFailure}) if the record could not be made durable.
        """

    def expired(before: float) -> Deferred[Collection[str]]:
        """
        The unique-ids of the stored messages first retrieved before C{before} (seconds
        since the epoch).
        """


class IUserSettingsSource(Interface):  # type: ignore[misc]
    """
    Per-user LOGIN-DELAY and EXPIRE values.  The server asks the avatar (an L{IMailbox}
    that also provides this interface), then the portal's checkers that provide it (as
    L{pop3kit.checkers.passwdfile.PasswdFileChecker} does); a value that no source gives
    is the server's (L{pop3kit.policy.ServerPolicy}).
    """

    def userSettings(avatarId: str) -> Deferred[UserSettings]:
        """
        The settings of the user C{avatarId}: in the result, L{None} for a value means
        "the server's".  Fails (typically with L{pop3kit.errors.TemporaryFailure}) if
        the store cannot be read.
        """
