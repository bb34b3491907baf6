# -*- test-case-name: tests.test_lmtp -*-
"""
An LMTP listener (RFC 2033): how Postfix, Exim or any mail transfer agent hands mail to
pop3kit, whatever the backend.

LMTP is SMTP without the queue: the client says C{LHLO} instead of C{EHLO}, and after
C{DATA} the server answers once per accepted recipient, each answer saying whether that
recipient's copy is stored.  A C{250} is sent only once the copy is durable, so the mail
transfer agent can drop it from its queue.

The protocol is Twisted's ESMTP server (L{twisted.mail.smtp.ESMTP}); this module gives it
the LMTP greeting and replies, and stores through an L{IMaildropDelivery}::

    from pop3kit.delivery import MaildirDelivery
    from pop3kit.lmtp import LMTPFactory

    factory = LMTPFactory(MaildirDelivery("/srv/mail", reactor))
    serverFromString(reactor, "unix:/run/pop3kit/lmtp").listen(factory)
"""

from __future__ import annotations

import email.utils
import socket
import tempfile
from collections.abc import Callable
from typing import IO, BinaryIO, cast

from twisted.internet.defer import Deferred, DeferredLock, maybeDeferred
from twisted.internet.interfaces import IAddress, IReactorTime, ITransport
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.mail.smtp import COMMAND, ESMTP, Address, SMTPServerError, User
from twisted.python.failure import Failure

from pop3kit.delivery import StorageFull, UnknownRecipient
from pop3kit.errors import PermanentFailure
from pop3kit.interfaces import IMaildropDelivery

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "DEFAULT_TIMEOUT", "LMTPFactory", "LMTPServer"]

#: The default largest message accepted, in octets (as Postfix's C{message_size_limit}
#: default, doubled).
DEFAULT_MAX_MESSAGE_SIZE = 100 * 1024 * 1024

#: The default seconds of silence after which an LMTP session is closed (RFC 5321's five
#: minutes for a DATA block, doubled).
DEFAULT_TIMEOUT = 600.0

#: How much of a message is kept in memory before it is spooled to a temporary file.
_SPOOL_IN_MEMORY = 1024 * 1024


def _reply(failure: Failure) -> tuple[int, str]:
    """
    The LMTP reply (code and text with its enhanced status code, RFC 3463) for a
    delivery that failed.
    """
    error = failure.value
    if isinstance(error, UnknownRecipient):
        return 550, f"5.1.1 {error}"
    if isinstance(error, StorageFull):
        return 452, f"4.3.1 {error}"
    if isinstance(error, PermanentFailure):
        return 554, f"5.3.0 {error}"
    if isinstance(error, SMTPServerError):
        return error.code, str(error.resp)
    return 451, "4.3.0 temporary failure, try again later"


class _Transaction:
    """
    One message on its way to every recipient of one C{DATA}: spooled once, then stored
    for each recipient in turn, under the session's delivery lock so that the replies go
    out in C{RCPT} order.
    """

    def __init__(self, server: LMTPServer, header: bytes, maxSize: int) -> None:
        self._server = server
        # Closed by close(), once every copy is stored or the message is abandoned.
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY)  # noqa: SIM115
        self._spool.write(header)
        self._size = len(header)
        self._maxSize = maxSize
        self._writer: _RecipientMessage | None = None
        self._outstanding = 0
        self.recipients: list[str] = []

    def add(self, message: _RecipientMessage) -> None:
        """
        Register the view of one recipient; the first one feeds the spool.
        """
        if self._writer is None:
            self._writer = message
        self.recipients.append(message.address)
        self._outstanding += 1

    def lineReceived(self, line: bytes, message: _RecipientMessage) -> None:
        """
        Spool one line of the message (already unstuffed), as fed to C{message}.

        @raise SMTPServerError: If the message grows past the size limit, or cannot be
            spooled.
        """
        if message is not self._writer:
            return
        self._size += len(line) + 1
        if self._size > self._maxSize:
            raise SMTPServerError(552, f"5.3.4 message larger than {self._maxSize} octets")
        try:
            self._spool.write(line + b"\n")
        except OSError as e:
            raise SMTPServerError(452, f"4.3.1 cannot spool the message ({e.strerror})") from e

    def store(self, message: _RecipientMessage) -> Deferred[None]:
        """
        Store the spooled message for one recipient, after every earlier one, and reply.
        """

        def attempt() -> Deferred[None]:
            self._spool.seek(0)
            delivery = self._server.maildropDelivery
            d: Deferred[None] = maybeDeferred(
                delivery.deliver, message.maildrop, cast(BinaryIO, self._spool)
            )
            return d.addBoth(self._stored, message.address)

        return self._server.deliveryLock.run(attempt)

    def _stored(self, result: Failure | None, address: str) -> None:
        self._server.recipientDone(address, result)
        self._outstanding -= 1
        if self._outstanding == 0:
            self.close()

    def close(self) -> None:
        """
        Drop the spool.
        """
        self._spool.close()


class _RecipientMessage:
    """
    What Twisted's SMTP server feeds one recipient's copy to (an
    C{twisted.mail.interfaces.IMessageSMTP}): a view of the shared L{_Transaction}.
    """

    def __init__(self, transaction: _Transaction, address: str, maildrop: str) -> None:
        self._transaction = transaction
        self.address = address
        self.maildrop = maildrop
        transaction.add(self)

    def lineReceived(self, line: bytes) -> None:
        """
        One line of the message.
        """
        self._transaction.lineReceived(line, self)

    def eomReceived(self) -> Deferred[None]:
        """
        The message is complete: store this recipient's copy (and reply).
        """
        return self._transaction.store(self)

    def connectionLost(self) -> None:
        """
        The message will not complete; nothing is stored.
        """
        self._transaction.close()


class LMTPServer(ESMTP):
    """
    One LMTP session (RFC 2033), delivering through an L{IMaildropDelivery}.

    Replies carry enhanced status codes (RFC 3463).  After C{DATA}, one reply per accepted
    recipient, in C{RCPT} order: C{250 2.0.0} once that copy is durable, C{452 4.3.1}
    when its storage is full, C{451 4.3.0} for other temporary failures.
    """

    log = Logger()
    noisy = False
    # A line of mail may be far longer than SMTP's 1,000 octets; refuse only the absurd.
    MAX_LENGTH = 1024 * 1024

    def __init__(self, delivery: IMaildropDelivery, hostname: bytes, maxSize: int) -> None:
        """
        @param delivery: Where accepted mail is stored.
        @param hostname: This server's name, for the greeting and C{Received:} headers.
        @param maxSize: The largest message accepted, in octets.
        """
        super().__init__()
        self.host = hostname
        self.maildropDelivery = delivery
        self.deliveryLock = DeferredLock()
        self._maxSize = maxSize
        self._transaction: _Transaction | None = None

    def _transport(self) -> ITransport:
        assert self.transport is not None
        return self.transport

    def timeoutConnection(self) -> None:
        """
        Close a session silent for too long.
        """
        self.sendCode(421, b"4.4.2 " + self.host + b" idle for too long")
        self._transport().loseConnection()

    def greeting(self) -> bytes:
        """
        The C{220} greeting.
        """
        host: bytes = self.host
        return host + b" LMTP pop3kit ready"

    def extensions(self) -> dict[bytes, list[bytes] | None]:
        """
        The extensions announced in reply to C{LHLO}.
        """
        return {
            b"PIPELINING": None,
            b"ENHANCEDSTATUSCODES": None,
            b"8BITMIME": None,
            b"SIZE": [str(self._maxSize).encode("ascii")],
        }

    def do_LHLO(self, rest: bytes) -> None:
        """
        C{LHLO}: as SMTP's C{EHLO} (RFC 2033 section 4.1), over TCP or a UNIX socket.
        """
        peer = self._transport().getPeer()
        self._helo = (rest, getattr(peer, "host", "local").encode("idna"))
        self._from = None
        self._to = []
        self.sendCode(250, self.host + b"\n" + self.listExtensions())

    def do_HELO(self, rest: bytes) -> None:
        """
        C{HELO} is not LMTP.
        """
        self.sendCode(500, b"5.5.1 this is LMTP: say LHLO (RFC 2033)")

    def do_EHLO(self, rest: bytes) -> None:
        """
        C{EHLO} is not LMTP.
        """
        self.sendCode(500, b"5.5.1 this is LMTP: say LHLO (RFC 2033)")

    def do_MAIL(self, rest: bytes) -> None:
        """
        C{MAIL FROM}: only after C{LHLO}.
        """
        helo = cast("tuple[bytes | None, bytes]", self._helo)
        if helo[0] is None:
            self.sendCode(503, b"5.5.1 say LHLO first")
            return
        super().do_MAIL(rest)

    def _cbFromValidate(self, fromEmail: Address, code: int = 250, msg: bytes = b"") -> None:
        super()._cbFromValidate(fromEmail, code, b"2.1.0 sender ok")

    def _cbToValidate(
        self, to: object, user: User | None = None, code: int = 250, msg: bytes = b""
    ) -> None:
        address = str(user.dest) if user is not None else ""
        super()._cbToValidate(to, user, code, f"2.1.5 <{address}> ok".encode())

    def do_RSET(self, rest: bytes) -> None:
        """
        C{RSET}: forget the sender and recipients.
        """
        self._from = None
        self._to = []
        self.sendCode(250, b"2.0.0 ok")

    def do_NOOP(self, rest: bytes) -> None:
        """
        C{NOOP}.
        """
        self.sendCode(250, b"2.0.0 ok")

    def do_QUIT(self, rest: bytes) -> None:
        """
        C{QUIT}: say goodbye and close.
        """
        self.sendCode(221, b"2.0.0 bye")
        self._transport().loseConnection()

    def do_UNKNOWN(self, rest: bytes) -> None:
        """
        A command LMTP does not know.
        """
        self.sendCode(500, b"5.5.1 command not recognised")

    def sendSyntaxError(self) -> None:
        """
        An empty or malformed command line.
        """
        self.sendCode(500, b"5.5.2 syntax error")

    def validateFrom(self, helo: tuple[bytes, bytes], origin: Address) -> Address:
        """
        Accept any sender: the mail transfer agent has checked it.
        """
        return origin

    def validateTo(self, user: User) -> Deferred[Callable[[], _RecipientMessage]]:
        """
        Accept a recipient that the delivery knows, refuse the others at once.
        """
        address = str(user.dest)

        def accepted(maildrop: str) -> Callable[[], _RecipientMessage]:
            self.log.debug(
                "LMTP recipient {address} goes to {maildrop}", address=address, maildrop=maildrop
            )
            return lambda: self._messageFor(address, maildrop)

        def refused(failure: Failure) -> Callable[[], _RecipientMessage]:
            code, text = _reply(failure)
            if not failure.check(UnknownRecipient, PermanentFailure, StorageFull):
                self.log.failure("LMTP recipient {address}", failure, address=address)
            raise SMTPServerError(code, f"{text} <{address}>")

        d: Deferred[str] = maybeDeferred(self.maildropDelivery.recipient, address)
        return d.addCallbacks(accepted, refused)

    def _messageFor(self, address: str, maildrop: str) -> _RecipientMessage:
        assert self._transaction is not None
        return _RecipientMessage(self._transaction, address, maildrop)

    def receivedHeader(self, helo: object, origin: object, recipients: object) -> None:
        """
        No header per recipient: L{do_DATA} writes one for the message.
        """
        return None

    def do_DATA(self, rest: bytes) -> None:
        """
        C{DATA}: spool the message once for all recipients.
        """
        if self._from is not None and self._to:
            self._transaction = _Transaction(self, self._headers(), self._maxSize)
        super().do_DATA(rest)

    def _headers(self) -> bytes:
        """
        The C{Return-Path:} and C{Received:} headers every copy starts with.
        """
        helo, peer = cast("tuple[bytes | None, bytes]", self._helo)
        to: list[tuple[User, object]] = self._to
        recipients = [str(user.dest) for user, _ in to]
        forClause = f"\n\tfor <{recipients[0]}>" if len(recipients) == 1 else ""
        received = (
            f"Received: from {_text(helo)} ([{_text(peer)}])\n"
            f"\tby {_text(self.host)} with LMTP (pop3kit){forClause};\n"
            f"\t{email.utils.formatdate(localtime=True)}\n"
        )
        return f"Return-Path: <{self._from}>\n{received}".encode()

    def dataLineReceived(self, line: bytes) -> None:
        """
        One line of C{DATA}; at its end, the copies are stored and answered one by one.
        """
        transaction = self._transaction
        if line == b"." and transaction is not None:
            self._transaction = None
            failed = self.datafailed
            if failed is not None:
                # Twisted would answer once; LMTP answers once per recipient.
                self.mode = COMMAND
                transaction.close()

                def refuseAll() -> None:
                    for address in transaction.recipients:
                        self.recipientDone(address, Failure(failed))

                self.deliveryLock.run(refuseAll)
                return
        super().dataLineReceived(line)

    state_DATA = dataLineReceived

    def _messageHandled(self, resultList: object) -> None:
        """
        Nothing left to say: each recipient was answered as its copy was stored.
        """

    def recipientDone(self, address: str, result: Failure | None) -> None:
        """
        Answer for one recipient after C{DATA}: stored, or why not.
        """
        if result is None:
            self.log.info("LMTP delivered a message to {address}", address=address)
            self.sendCode(250, f"2.0.0 <{address}> delivered".encode())
            return
        code, text = _reply(result)
        if code >= 500 or isinstance(result.value, (StorageFull, SMTPServerError)):
            self.log.warn(
                "LMTP could not deliver to {address}: {reason}", address=address, reason=text
            )
        else:
            self.log.failure("LMTP could not deliver to {address}", result, address=address)
        self.sendCode(code, f"{text} <{address}>".encode())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Drop a message that did not complete.
        """
        super().connectionLost(reason)
        if self._transaction is not None:
            self._transaction.close()
            self._transaction = None


def _text(value: bytes | str | None) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return value


class LMTPFactory(ServerFactory):
    """
    Builds L{LMTPServer}s that deliver through one L{IMaildropDelivery}.
    """

    protocol = LMTPServer  # type: ignore[assignment]

    def __init__(
        self,
        delivery: IMaildropDelivery,
        hostname: str | None = None,
        maxSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param delivery: Where accepted mail is stored.
        @param hostname: This server's name in the greeting and C{Received:} headers; the
            host's fully qualified name by default.
        @param maxSize: The largest message accepted, in octets.
        @param timeout: Seconds of silence after which a session is closed.
        @param clock: Times the sessions out; the global reactor by default.
        """
        self.delivery = delivery
        self.hostname = (hostname or socket.getfqdn()).encode("idna")
        self.maxSize = maxSize
        self.timeout = timeout
        self._clock = clock

    def buildProtocol(self, addr: IAddress | None) -> LMTPServer:
        """
        A new LMTP session.
        """
        server = LMTPServer(self.delivery, self.hostname, self.maxSize)
        server.factory = self
        server.timeout = self.timeout  # type: ignore[assignment]
        if self._clock is not None:
            server.callLater = self._clock.callLater  # type: ignore[method-assign, assignment]
        return server
