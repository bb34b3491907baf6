# -*- test-case-name: tests.test_scan -*-
"""
C{pop3kit scan}: one line per message (number, size, date, sender, subject) from the
headers alone, then deletions by number.

Every C{TOP n 0} is queued with the client at once: the client's pipelining window bounds
what is in flight.
"""

from __future__ import annotations

import contextlib
import email.header
import email.parser
import email.policy
import email.utils
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from twisted.internet.defer import Deferred

from pop3kit._exits import ExitError, ExitStatus
from pop3kit._fetch._account import Account, ConnectOptions
from pop3kit._fetch._failures import Activity, describeFailure
from pop3kit._fetch._session import Connector, abortSession, closeSession, openSession
from pop3kit.client import POP3Client, connect

__all__ = ["Scanner", "scan", "summarise"]


def _decodeHeader(value: object) -> str:
    """
    A header value as text: RFC 2047 words decoded, unknown charsets and garbage replaced,
    folding and control characters turned into spaces.
    """
    if value is None:
        return ""
    raw = str(value)
    try:
        text = str(email.header.make_header(email.header.decode_header(raw)))
    except Exception:
        text = raw
    return "".join(c if c.isprintable() else " " for c in " ".join(text.split()))


def _formatDate(value: object) -> str:
    """
    A C{Date:} header as C{YYYY-MM-DD HH:MM} (in its own time zone), or what it says.
    """
    if value is None:
        return "-"
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return _decodeHeader(value)[:16] or "-"
    return when.strftime("%Y-%m-%d %H:%M")


def summarise(number: int, size: int, headers: bytes) -> str:
    """
    One line of C{scan}: number, size, date, sender, subject.
    """
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(headers)
    date = _formatDate(parsed.get("Date"))
    sender = _decodeHeader(parsed.get("From"))
    with contextlib.suppress(Exception):
        name, address = email.utils.parseaddr(sender)
        sender = name or address or sender
    subject = _decodeHeader(parsed.get("Subject"))
    return f"{number:>5} {size:>9} {date:<16} {sender[:28]:<28} {subject}"


def _ignore(reason: object) -> None:
    return None


class Scanner:
    """
    One run of C{pop3kit scan} over a session that is logged in, in steps:
    L{listMessages}, L{checkNumbers}, L{printSummaries} and L{deleteMessages}.  L{run}
    takes them in turn; on any failure it drops the connection without C{QUIT}, so
    nothing is deleted.
    """

    def __init__(self, client: POP3Client, account: Account, output: TextIO) -> None:
        """
        @param client: The session, logged in.
        @param output: Where the lines go.
        """
        self.client = client
        self.account = account
        self.output = output
        self._pending: deque[Deferred[Any]] = deque()

    async def run(self, delete: Iterable[int] = ()) -> int:
        """
        Take every step.

        @param delete: The numbers of the messages to delete after listing.
        @return: The number of messages listed.
        @raise ExitError: On any failure.
        """
        try:
            sizes = await self.listMessages()
            toDelete = self.checkNumbers(sizes, delete)
            await self.printSummaries(sizes)
            await self.deleteMessages(toDelete)
            return len(sizes)
        except BaseException:
            abortSession(self.client)
            for command in self._pending:
                command.addErrback(_ignore)
            raise

    async def listMessages(self) -> dict[int, int]:
        """
        The size of every message, by number (LIST).
        """
        try:
            return await self.client.listSizes()
        except Exception as e:
            raise describeFailure(e, self.account, Activity.LISTING) from None

    def checkNumbers(self, sizes: dict[int, int], delete: Iterable[int]) -> list[int]:
        """
        The numbers to delete, in order, once each.

        @raise ExitError: With L{ExitStatus.USAGE} if the maildrop has no such message.
        """
        numbers = sorted(set(delete))
        unknown = [n for n in numbers if n not in sizes]
        if unknown:
            raise ExitError(
                f"no message {', '.join(map(str, unknown))} on {self.account.host}",
                ExitStatus.USAGE,
            )
        return numbers

    async def printSummaries(self, sizes: dict[int, int]) -> None:
        """
        Ask for C{TOP n 0} of every message, as many at a time as the client pipelines
        (its C{maxPipeline}), and print a line for each as its headers arrive, in order.
        """
        waiting = deque(sorted(sizes))
        asked: deque[int] = deque()
        while waiting or asked:
            while waiting and len(asked) < self.client.maxPipeline:
                asked.append(waiting.popleft())
                self._pending.append(self.client.top(asked[-1], 0))
            number = asked.popleft()
            try:
                headers = await self._pending.popleft()
            except Exception as e:
                raise describeFailure(e, self.account, Activity.READING_HEADERS) from None
            self.output.write(summarise(number, sizes[number], headers) + "\n")
        self.output.flush()

    async def deleteMessages(self, numbers: Sequence[int]) -> None:
        """
        Send C{DELE} for each of C{numbers}, then C{QUIT}, which makes the deletions
        take effect.
        """
        self._pending.extend(self.client.delete(number) for number in numbers)
        await closeSession(self.client, self.account, self._pending)


async def scan(
    reactor: Any,
    account: Account,
    options: ConnectOptions,
    password: str,
    output: TextIO,
    delete: Iterable[int] = (),
    *,
    connector: Connector = connect,
) -> int:
    """
    Print one line per message (number, size, date, sender, subject) from C{TOP n 0},
    without downloading bodies; then delete the messages numbered in C{delete}.

    @param reactor: Given to C{connector}.
    @param connector: Connects and negotiates TLS: L{pop3kit.client.connect} by default.
    @return: The number of messages listed.
    @raise ExitError: On any failure.
    """
    client = await openSession(reactor, account, options, password, connector=connector)
    return await Scanner(client, account, output).run(delete)
