"""
A storage backend for mbox files: C{/var/mail/USER} as MTAs (Postfix, Exim, sendmail's
mail.local, procmail, Dovecot's LDA) and mail readers write them.

See L{pop3kit._mboxfile} for the format read, the locking and the crash safety, and
C{docs/backend-mbox.rst} for the whole story.  In short:

  - Listing takes the mbox's dot-lock and C{fcntl} write lock (waiting, without blocking
    the reactor, for an MTA that holds them), finishes or undoes what a writer that died
    left, reads the file (only what was appended since the last login, through a
    L{ListingCache <pop3kit._mboxfile.ListingCache>} shared by the realm's sessions),
    and lets go: MTAs deliver during a session.  The session's
    exclusive hold on the maildrop is the server's L{pop3kit.interfaces.IMaildropLocker},
    keyed on the mbox's real path (L{MboxMailbox.maildropId}).
  - Reading a message holds an C{fcntl} read lock on the file until the message is read
    (as Dovecot does), and checks that the message is still where it was listed.
  - Unique-ids are stored in an C{X-Pop3kit-UIDL:} first header line when the file is rewritten,
    and derived from the C{From } line and headers until then (L{MboxMessage.uid
    <pop3kit._mboxfile.MboxMessage.uid>}); the header is never sent and not counted.
  - Expunge rewrites the file beside it and renames it over the old one, under the locks,
    with the mail delivered during the session.

File I/O happens in the reactor thread, as for L{pop3kit.backends.maildir}: for local
disks.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Collection, Sequence
from typing import BinaryIO, TypeVar, cast

from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorFromThreads, IReactorThreads, IReactorTime
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from pop3kit import _mboxfile
from pop3kit._mboxfile import (
    STALE_AFTER,
    Durability,
    ListingCache,
    LockBusy,
    MboxLock,
    MboxMessage,
)
from pop3kit.backends.maildir import mailboxPath
from pop3kit.backends.memory import _avatarName
from pop3kit.core import MessageInfo
from pop3kit.errors import MessageUnavailable, PermanentFailure, TemporaryFailure
from pop3kit.interfaces import IMailbox, IMaildropDelivery

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "DELIVERY_LOCK_TIMEOUT",
    "MboxDelivery",
    "MboxMailbox",
    "MboxRealm",
    "appendMessage",
    "expandTemplate",
]

#: Seconds a session waits for another program to let go of an mbox's locks.
DEFAULT_LOCK_TIMEOUT = 10.0

#: Seconds a delivery waits for another program (a POP3 session expunging, a mail
#: reader) to let go of an mbox's locks before failing temporarily.
DELIVERY_LOCK_TIMEOUT = 30.0

#: Messages up to this size are spooled in memory before they are appended.
_SPOOL_IN_MEMORY = 1024 * 1024

#: The sender of a C{Return-Path:} first line, for the C{From } line.
_RETURN_PATH = re.compile(rb"Return-Path:[ \t]*<([^<>\s]*)>[ \t]*\r?\n", re.IGNORECASE)

_T = TypeVar("_T")


def _defaultClock() -> IReactorTime:
    from twisted.internet import reactor

    return cast(IReactorTime, reactor)


@implementer(IMailbox)
class MboxMailbox:
    """
    One user's mbox file as an L{IMailbox}.  A missing file is an empty maildrop.
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        *,
        clock: IReactorTime | None = None,
        lockTimeout: float = DEFAULT_LOCK_TIMEOUT,
        staleAfter: float = STALE_AFTER,
        durability: Durability = _mboxfile.FSYNC,
        listingCache: ListingCache | None = None,
    ) -> None:
        """
        @param path: The mbox file.
        @param clock: Paces the retries while another program holds the locks; the
            global reactor by default.
        @param lockTimeout: Seconds to wait for the locks before failing with
            L{pop3kit.errors.TemporaryFailure}.
        @param staleAfter: Seconds after which another program's dot-lock is broken.
        @param durability: Makes rewritten files durable.
        @param listingCache: Where listings are kept between sessions, so that a login
            reads only the mail appended since the last; share one between all
            sessions.  By default this mailbox has a cache of its own.
        """
        self._path = path
        self.maildropId = os.path.realpath(path)
        self._clock = clock
        self._lockTimeout = lockTimeout
        self._staleAfter = staleAfter
        self._durability = durability
        self._cache = ListingCache() if listingCache is None else listingCache
        self._messages: dict[str, MboxMessage] = {}
        self._identity: tuple[int, int] = (0, 0)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._path!r}>"

    async def _retrying(self, attempt: Callable[[], _T]) -> _T:
        """
        Call C{attempt} until it does not raise L{LockBusy}, pausing between tries, for
        at most the lock timeout.
        """
        try:
            return attempt()
        except LockBusy:
            pass
        clock = self._clock if self._clock is not None else _defaultClock()
        deadline = clock.seconds() + self._lockTimeout
        delay = 0.05
        while True:
            await deferLater(clock, delay, lambda: None)
            delay = min(delay * 2, 1.0)
            try:
                return attempt()
            except LockBusy:
                if clock.seconds() + delay > deadline:
                    self.log.warn("{path} stayed locked by another program", path=self._path)
                    raise TemporaryFailure(
                        "maildrop locked by another program, try again later"
                    ) from None

    async def _underLock(self, work: Callable[[MboxLock], _T], missing: _T) -> _T:
        """
        Run C{work} with the mbox locked; C{missing} if the file does not exist.
        """

        def attempt() -> _T:
            try:
                lock = _mboxfile.tryLockMbox(self._path, staleAfter=self._staleAfter)
            except FileNotFoundError:
                return missing
            with lock:
                return work(lock)

        try:
            return await self._retrying(attempt)
        except OSError as e:
            self.log.failure("Cannot use mbox {path}", path=self._path)
            raise TemporaryFailure(f"cannot use maildrop ({e.strerror or e})") from None

    def listMessages(self) -> Deferred[Sequence[MessageInfo]]:
        """
        List the messages of the mbox, oldest first.

        Fails with L{pop3kit.errors.TemporaryFailure} if the file cannot be read or stays
        locked.
        """
        return Deferred.fromCoroutine(self._list())

    async def _list(self) -> Sequence[MessageInfo]:
        def scan(lock: MboxLock) -> tuple[tuple[int, int], list[MboxMessage]]:
            st = os.fstat(lock.fd)
            return (st.st_dev, st.st_ino), self._cache.scan(self.maildropId, lock.fd)

        empty: tuple[tuple[int, int], list[MboxMessage]] = ((0, 0), [])
        self._identity, messages = await self._underLock(scan, empty)
        self._messages = {m.uid: m for m in messages}
        return [MessageInfo(m.uid, m.size) for m in messages]

    def openMessage(self, uid: str) -> Deferred[BinaryIO]:
        """
        Open the message C{uid} for reading (unquoted, without the stored header).

        Fails with L{pop3kit.errors.MessageUnavailable} if it is no longer in the file.
        """
        return Deferred.fromCoroutine(self._open(uid))

    async def _open(self, uid: str) -> BinaryIO:
        message = self._messages.get(uid)
        if message is None:
            raise MessageUnavailable()

        def attempt() -> _mboxfile.MessageStream:
            current = self._messages.get(uid)
            if current is None:
                raise MessageUnavailable()
            try:
                return _mboxfile.openMessage(self._path, current, self._identity)
            except LookupError:
                pass
            # The file changed since the listing (another reader rewrote it): find the
            # message again by its unique-id.
            self._relocate()
            current = self._messages.get(uid)
            if current is None:
                raise MessageUnavailable() from None
            try:
                return _mboxfile.openMessage(self._path, current, self._identity)
            except LookupError:
                raise MessageUnavailable() from None

        try:
            return cast(BinaryIO, await self._retrying(attempt))
        except FileNotFoundError:
            raise MessageUnavailable() from None
        except OSError as e:
            self.log.failure("Cannot read mbox {path}", path=self._path)
            raise TemporaryFailure(f"cannot read message ({e.strerror or e})") from None

    def _relocate(self) -> None:
        """
        Read the file again (under a read lock) and update where the listed messages are.
        """
        fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            if not _mboxfile._fcntlLock(fd, exclusive=False):
                raise LockBusy(self._path)
            st = os.fstat(fd)
            found = {m.uid: m for m in _mboxfile.scanMbox(fd)}
        finally:
            os.close(fd)
        self._identity = (st.st_dev, st.st_ino)
        self._messages = {uid: found[uid] for uid in self._messages if uid in found}

    def expunge(self, uids: Collection[str]) -> Deferred[None]:
        """
        Remove the messages C{uids} by rewriting the file (see L{pop3kit._mboxfile.rewrite}).

        Unknown unique-ids are ignored; mail delivered during the session is kept.
        """
        return Deferred.fromCoroutine(self._expunge(uids))

    async def _expunge(self, uids: Collection[str]) -> None:
        wanted = frozenset(uids)
        if not wanted:
            return

        def rewrite(lock: MboxLock) -> None:
            _mboxfile.rewrite(lock, wanted, self._durability)

        await self._underLock(rewrite, None)
        for uid in wanted:
            self._messages.pop(uid, None)
        self._identity = (0, 0)


#: The placeholders of an mbox path template.
_PLACEHOLDER = re.compile(r"%(.)")


def _checkTemplate(template: str) -> None:
    """
    @raise ValueError: If C{template} holds an unknown placeholder or none naming the user.
    """
    keys = set(_PLACEHOLDER.findall(template))
    unknown = keys - set("und%")
    if unknown:
        raise ValueError(
            f"unknown placeholder %{sorted(unknown)[0]} in {template!r} (use %u, %n, %d, %%)"
        )
    if not keys & {"u", "n"}:
        raise ValueError(f"{template!r} names no user: put %u (or %n) in it")


def expandTemplate(template: str, user: str) -> str:
    """
    The mbox path of C{user}: C{%u} is the user name, C{%n} its local part (before the
    last C{@}), C{%d} its domain (after it, empty without one), C{%%} a C{%}.

    @raise ValueError: If a part substituted is not safe as a file name (see
        L{pop3kit.backends.maildir.mailboxPath}), or the template is invalid.
    """
    _checkTemplate(template)
    local, at, domain = user.rpartition("@")
    if not at:
        local, domain = user, ""
    parts = {"u": user, "n": local, "d": domain, "%": "%"}

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        value = parts[key]
        if key != "%":
            if not value:
                raise ValueError(f"%{key} is empty for user {user!r}")
            mailboxPath("/", value)
        return value

    return _PLACEHOLDER.sub(substitute, template)


@implementer(IRealm)
class MboxRealm:
    """
    A realm that hands out each user's mbox file, found through a path template such as
    C{/var/mail/%u} (see L{expandTemplate}), as a L{MboxMailbox}.
    """

    def __init__(
        self,
        template: str,
        *,
        clock: IReactorTime | None = None,
        lockTimeout: float = DEFAULT_LOCK_TIMEOUT,
        staleAfter: float = STALE_AFTER,
    ) -> None:
        """
        @param template: The path template.
        @param clock: Paces lock retries; the global reactor by default.
        @param lockTimeout: See L{MboxMailbox}.
        @param staleAfter: See L{MboxMailbox}.
        @raise ValueError: If the template is invalid.
        """
        _checkTemplate(template)
        self.template = template
        self._clock = clock
        self._lockTimeout = lockTimeout
        self._staleAfter = staleAfter
        self._cache = ListingCache()

    def requestAvatar(
        self, avatarId: bytes | str | tuple[()], mind: object, *interfaces: type[Interface]
    ) -> tuple[type[Interface], object, Callable[[], None]]:
        """
        Return C{(IMailbox, mailbox, logout)} for C{avatarId}.

        @raise NotImplementedError: If L{IMailbox} is not among C{interfaces}.
        @raise PermanentFailure: If C{avatarId} cannot name an mbox file.
        """
        if IMailbox not in interfaces:
            raise NotImplementedError("MboxRealm only provides IMailbox")
        try:
            path = expandTemplate(self.template, _avatarName(avatarId))
        except ValueError:
            raise PermanentFailure("user name not allowed for a maildrop") from None
        mailbox = MboxMailbox(
            path,
            clock=self._clock,
            lockTimeout=self._lockTimeout,
            staleAfter=self._staleAfter,
            listingCache=self._cache,
        )
        return IMailbox, mailbox, _noLogout


def _noLogout() -> None:
    """
    Nothing to do when a L{MboxMailbox} avatar logs out.
    """


def appendMessage(
    path: str,
    message: BinaryIO,
    *,
    timeout: float = DELIVERY_LOCK_TIMEOUT,
    staleAfter: float = STALE_AFTER,
    durability: Durability = _mboxfile.FSYNC,
) -> None:
    """
    Append one message to the mbox C{path} (created, with its missing directories, if
    needed), all or nothing and durably; blocking.

    The message is quoted the mboxrd way into a spool file beside the mbox (in memory
    up to 1 MiB), then the mbox is locked (dot-lock and C{fcntl}, waiting up to
    C{timeout} seconds; a stale dot-lock is broken, an append a killed writer left
    unfinished is cut back) and the message appended by
    L{pop3kit._mboxfile.appendMessages}, and the directory synced, still under the locks
    (if that fails, the message is cut back: nothing was stored).  The C{From } line
    names the sender of a C{Return-Path:} first line, else C{MAILER-DAEMON}.

    @param message: The message (LF or CRLF line ends), read from its current position.
    @raise LockBusy: If the locks stayed held by another program.
    @raise OSError: If the message could not be stored; then nothing was appended.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    quote = _mboxfile.quoter()
    length = 0
    last = b""
    head = b""
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY, dir=directory) as spool:

        def put(quoted: bytes) -> None:
            nonlocal length, last
            if quoted:
                spool.write(quoted)
                length += len(quoted)
                last = quoted[-1:]

        while chunk := message.read(256 * 1024):
            if len(head) < 1024:
                head += chunk[: 1024 - len(head)]
            put(quote.feed(chunk))
        put(quote.flush())
        spool.flush()
        sender = "MAILER-DAEMON"
        found = _RETURN_PATH.match(head)
        if found is not None and found.group(1):
            sender = found.group(1).decode("ascii", "replace")
        outgoing = _mboxfile.OutgoingMessage(_mboxfile.fromLine(sender), spool, length, last)
        with _mboxfile.lockMbox(path, timeout=timeout, create=True, staleAfter=staleAfter) as lock:
            size = os.fstat(lock.fd).st_size
            _mboxfile.appendMessages(lock, [outgoing], durability)
            try:
                durability.syncDirectory(directory)
            except BaseException:
                # The journal's removal may not be durable: cut the message back, so
                # that the MTA's retry stores it once.
                with contextlib.suppress(OSError):
                    os.ftruncate(lock.fd, size)
                    os.fsync(lock.fd)
                raise


@implementer(IMaildropDelivery)
class MboxDelivery:
    """
    Delivers into the mbox files that L{MboxRealm} serves (C{template} expanded with the
    maildrop's name, see L{expandTemplate}), through L{appendMessage}: all or nothing,
    under the locks MTAs and mail readers take, durable before the L{Deferred} fires, in
    the reactor's thread pool so that the disk (or waiting for a lock) never stalls the
    reactor.

    Recipients are resolved as L{pop3kit.delivery.MaildirDelivery} does (see
    L{pop3kit.delivery.resolveRecipient}): with C{knownUser}, mail for anyone else is
    refused as L{pop3kit.delivery.UnknownRecipient}; without it, every name the
    template can take is accepted and its mbox created on delivery.
    """

    log = Logger()

    def __init__(
        self,
        template: str,
        reactor: IReactorThreads,
        knownUser: Callable[[str], bool] | None = None,
        delimiter: str = "+",
        *,
        lockTimeout: float = DELIVERY_LOCK_TIMEOUT,
        staleAfter: float = STALE_AFTER,
    ) -> None:
        """
        @param template: The path template (see L{expandTemplate}).
        @param reactor: Runs the file work in its thread pool.
        @param knownUser: Tells whether a user name has an account; L{None} to accept
            every name the template can take.
        @param delimiter: The recipient delimiter; see L{pop3kit.delivery.localPart}.
        @param lockTimeout: Seconds to wait for another program to let go of the locks
            before failing with L{TemporaryFailure}.
        @param staleAfter: Seconds after which another program's dot-lock is broken.
        @raise ValueError: If the template is invalid.
        """
        _checkTemplate(template)
        self.template = template
        self._reactor = reactor
        self._knownUser = knownUser
        self._delimiter = delimiter
        self._lockTimeout = lockTimeout
        self._staleAfter = staleAfter

    def recipient(self, address: str) -> Deferred[str]:
        """
        The maildrop of C{address}; see L{IMaildropDelivery.recipient}.
        """
        from pop3kit.delivery import resolveRecipient

        return resolveRecipient(address, self._knownUser, self._isValid, self._delimiter)

    def _isValid(self, name: str) -> bool:
        try:
            expandTemplate(self.template, name)
        except ValueError:
            return False
        return True

    def deliver(self, maildrop: str, message: BinaryIO) -> Deferred[None]:
        """
        Append C{message} to the mbox of C{maildrop}; see L{IMaildropDelivery.deliver}.

        Fails with L{TemporaryFailure} (L{pop3kit.delivery.StorageFull} for a full disk)
        if the file system refuses or the mbox stays locked; then nothing was appended.
        """
        from pop3kit.delivery import UnknownRecipient

        try:
            path = expandTemplate(self.template, maildrop)
        except ValueError as e:
            return fail(UnknownRecipient(str(e)))
        d = deferToThreadPool(
            cast(IReactorFromThreads, self._reactor),
            self._reactor.getThreadPool(),
            appendMessage,
            path,
            message,
            timeout=self._lockTimeout,
            staleAfter=self._staleAfter,
        )
        return d.addCallbacks(lambda _: None, self._failed, errbackArgs=(path,))

    def _failed(self, failure: Failure, path: str) -> None:
        from pop3kit.delivery import _describeFailure

        if isinstance(failure.value, LockBusy):
            self.log.warn("{path} stayed locked by another program", path=path)
            raise TemporaryFailure("maildrop locked by another program, try again later")
        _describeFailure(failure)
