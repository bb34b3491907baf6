# -*- test-case-name: tests.test_fetch,tests.test_scan -*-
"""
Opening a session for C{fetch} and C{scan}: connect, secure the connection as the URL and
options say, and log in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Sequence
from typing import Any, Literal, Protocol

from pop3kit._fetch._account import Account, ConnectOptions
from pop3kit._fetch._failures import Activity, describeFailure
from pop3kit.client import POP3Client, TLSMode, connect

__all__ = ["Connector", "abortSession", "closeSession", "openSession"]


class Connector(Protocol):
    """
    Connects to a server and negotiates TLS, as L{pop3kit.client.connect} does; tests
    give one that connects in memory.
    """

    def __call__(
        self,
        reactor: Any,
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = "starttls",
        cafile: str | None = None,
        hostname: str | None = None,
        timeout: float = 60.0,
        responseTimeout: float = ...,
        minimumRate: float = ...,
        maxListingEntries: int = ...,
        maxListingOctets: int = ...,
    ) -> Awaitable[POP3Client]: ...


def _tlsMode(account: Account, options: ConnectOptions) -> Literal["implicit", "starttls", "none"]:
    if account.implicitTLS:
        return "implicit"
    return "none" if options.noTLS else "starttls"


async def openSession(
    reactor: Any,
    account: Account,
    options: ConnectOptions,
    password: str,
    *,
    connector: Connector = connect,
) -> POP3Client:
    """
    Connect, secure the connection as the URL and options say, and log in.

    @param reactor: Given to C{connector}.
    @param connector: Connects and negotiates TLS: L{pop3kit.client.connect} by default.
    @raise pop3kit._exits.ExitError: For every failure, with its exit status.
    """
    try:
        client = await connector(
            reactor,
            account.host,
            account.port,
            tls=_tlsMode(account, options),
            cafile=options.cafile,
            hostname=account.host,
            timeout=options.timeout,
            responseTimeout=options.responseTimeout,
            minimumRate=options.minimumRate,
            maxListingEntries=options.maxListingEntries,
            maxListingOctets=options.maxListingOctets,
        )
    except Exception as e:
        raise describeFailure(e, account, Activity.CONNECTING) from None
    try:
        await client.login(account.user, password, mechanism=options.mechanism)
    except Exception as e:
        abortSession(client)
        raise describeFailure(e, account, Activity.LOGGING_IN) from None
    return client


async def closeSession(
    client: POP3Client, account: Account, deletions: Sequence[Awaitable[None]]
) -> None:
    """
    Wait for the C{DELE}s already sent, then C{QUIT}, which makes them take effect.

    @raise pop3kit._exits.ExitError: When a C{DELE} or the C{QUIT} fails.
    """
    try:
        for deletion in deletions:
            await deletion
        await client.quit()
    except Exception as e:
        raise describeFailure(e, account, Activity.DELETING) from None


def abortSession(client: POP3Client) -> None:
    """
    Drop the connection without QUIT, so nothing marked is deleted.
    """
    with contextlib.suppress(Exception):
        client.abort()
