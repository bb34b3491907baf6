# -*- test-case-name: tests.test_delivery -*-
"""
Delivering new mail into maildrops, whatever the backend: L{IMaildropDelivery} and its
Maildir implementation.

The LMTP listener (L{pop3kit.lmtp}) delivers through an L{IMaildropDelivery}; a backend
that wants mail delivered to it over LMTP provides one.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import BinaryIO, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from zope.interface import implementer

from pop3kit.backends.maildir import deliver, mailboxPath
from pop3kit.errors import PermanentFailure, TemporaryFailure
from pop3kit.interfaces import IMaildropDelivery

__all__ = [
    "MaildirDelivery",
    "StorageFull",
    "UnknownRecipient",
    "localPart",
    "resolveRecipient",
]


class UnknownRecipient(PermanentFailure):
    """
    No maildrop takes mail for this recipient.
    """


class StorageFull(TemporaryFailure):
    """
    The maildrop's storage is full (no space left, or over quota): try again later.
    """


def localPart(address: str, delimiter: str = "+") -> str:
    """
    The user part of a recipient address: what comes before the last C{@}, without a
    C{+detail} suffix.

    >>> localPart("alice+lists@example.com")
    'alice'
    >>> localPart("alice")
    'alice'

    @param address: C{local@domain} or a bare user name.
    @param delimiter: The recipient delimiter (Postfix's C{recipient_delimiter}); empty
        to keep details.
    """
    local = address.rpartition("@")[0] if "@" in address else address
    if delimiter and delimiter in local:
        local = local.partition(delimiter)[0]
    return local


def resolveRecipient(
    address: str,
    knownUser: Callable[[str], bool] | None,
    isValid: Callable[[str], bool],
    delimiter: str = "+",
) -> Deferred[str]:
    """
    The maildrop a recipient's mail goes to, the way pop3kit's deliveries decide.

    With a user list, C{local@domain} goes to the user C{local@domain} if there is one,
    else to C{local} (without a C{+detail}); without one, always to C{local}.

    @param address: The recipient.
    @param knownUser: Tells whether a user name has an account (it may raise L{OSError});
        L{None} to accept every valid name.
    @param isValid: Tells whether a name can name a maildrop of this backend.
    @param delimiter: The recipient delimiter; see L{localPart}.
    @return: A L{Deferred} firing with the maildrop's name, or failing with
        L{UnknownRecipient}, or L{TemporaryFailure} if the user list cannot be read.
    """
    local = localPart(address, delimiter)
    names = [address, local] if knownUser is not None and "@" in address else [local]
    for name in names:
        if not isValid(name):
            continue
        if knownUser is None:
            return succeed(name)
        try:
            known = knownUser(name)
        except OSError as e:
            return fail(TemporaryFailure(f"cannot read the user list ({e.strerror})"))
        if known:
            return succeed(name)
    return fail(UnknownRecipient("no such user here"))


@implementer(IMaildropDelivery)
class MaildirDelivery:
    """
    Delivers into the Maildirs C{<root>/<user>/} that L{pop3kit.backends.maildir.MaildirRealm}
    serves, the Maildir way (C{tmp/}, fsync, link into C{new/}), in the reactor's thread
    pool so that the disk never stalls the reactor.

    A recipient C{local@domain} goes to the maildrop C{local@domain} if that user is known,
    else to C{local} (a C{+detail} removed).  Without C{knownUser} every safe name is
    accepted and its Maildir created on delivery; with it (as C{twistd pop3kit} does with a
    passwd-file), mail for anyone else is refused as L{UnknownRecipient}, so that a typo in
    an address bounces instead of filling a maildrop nobody reads.
    """

    def __init__(
        self,
        root: str,
        reactor: IReactorThreads,
        knownUser: Callable[[str], bool] | None = None,
        delimiter: str = "+",
    ) -> None:
        """
        @param root: The directory holding one Maildir per user.
        @param reactor: Runs the file system work in its thread pool.
        @param knownUser: Tells whether a user name has an account; L{None} to accept
            every name that is safe as a Maildir name.
        @param delimiter: The recipient delimiter; see L{localPart}.
        """
        self._root = root
        self._reactor = reactor
        self._knownUser = knownUser
        self._delimiter = delimiter

    def recipient(self, address: str) -> Deferred[str]:
        """
        The maildrop of C{address}; see L{IMaildropDelivery.recipient}.
        """
        return resolveRecipient(address, self._knownUser, self._isSafe, self._delimiter)

    def _isSafe(self, name: str) -> bool:
        try:
            mailboxPath(self._root, name)
        except ValueError:
            return False
        return True

    def deliver(self, maildrop: str, message: BinaryIO) -> Deferred[None]:
        """
        Write C{message} into the Maildir of C{maildrop}; see L{IMaildropDelivery.deliver}.

        Fails with L{TemporaryFailure} if the file system refuses (a full disk, say).
        """
        try:
            path = mailboxPath(self._root, maildrop)
        except ValueError as e:
            return fail(UnknownRecipient(str(e)))
        d = deferToThreadPool(
            cast(IReactorFromThreads, self._reactor),
            self._reactor.getThreadPool(),
            deliver,
            path,
            message,
        )
        return d.addCallbacks(lambda _: None, _describeFailure)


def _describeFailure(failure: Failure) -> None:
    """
    Turn the file system's refusal into a L{TemporaryFailure} that says what happened.
    """
    error = failure.value
    if isinstance(error, OSError):
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(f"no space left for the message ({error.strerror})")
        raise TemporaryFailure(f"cannot store the message ({error.strerror})")
    failure.raiseException()
