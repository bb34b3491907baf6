# -*- test-case-name: tests.test_fetch -*-
"""
The account to fetch from: its C{pop3://} or C{pop3s://} URL, its password, and how to
connect to its server.
"""

from __future__ import annotations

import getpass
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

from pop3kit._clientlimits import (
    DEFAULT_MAX_LISTING_ENTRIES,
    DEFAULT_MAX_LISTING_OCTETS,
    DEFAULT_MINIMUM_RATE,
    DEFAULT_RESPONSE_TIMEOUT,
)
from pop3kit._exits import ExitError, ExitStatus, describeOSError

__all__ = ["POP3S_PORT", "POP3_PORT", "Account", "ConnectOptions", "parseURL", "readPassword"]

#: Default ports.
POP3_PORT = 110
POP3S_PORT = 995


@dataclass(frozen=True)
class Account:
    """
    A maildrop on a POP3 server, as named by a C{pop3://} or C{pop3s://} URL.

    @ivar implicitTLS: C{True} for C{pop3s://}: TLS from the first octet.
    @ivar user: The user name, percent-decoded.
    @ivar host: The host name or address (without brackets).
    @ivar port: The port.
    """

    implicitTLS: bool
    user: str
    host: str
    port: int

    def __str__(self) -> str:
        scheme = "pop3s" if self.implicitTLS else "pop3"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{urllib.parse.quote(self.user, safe='')}@{host}:{self.port}"


def _usage(message: str) -> ExitError:
    return ExitError(message, ExitStatus.USAGE)


def parseURL(url: str) -> Account:
    """
    Parse C{pop3://user@host[:port]} or C{pop3s://user@host[:port]}.

    @raise ExitError: With L{ExitStatus.USAGE} for anything else, including a URL with a
        password (passwords never go on the command line).
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise _usage(f"invalid URL {url!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("pop3", "pop3s"):
        raise _usage(f"invalid URL {url!r}: the scheme must be pop3:// or pop3s://")
    if parts.password is not None:
        raise _usage(
            "a password in the URL is not accepted: use --password-file or POP3KIT_PASSWORD"
        )
    if not parts.username:
        raise _usage(f"invalid URL {url!r}: no user name (pop3://USER@HOST)")
    if not parts.hostname:
        raise _usage(f"invalid URL {url!r}: no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _usage(f"invalid URL {url!r}: nothing may follow the host and port")
    implicitTLS = scheme == "pop3s"
    if port is None:
        port = POP3S_PORT if implicitTLS else POP3_PORT
    user = urllib.parse.unquote(parts.username, errors="strict")
    return Account(implicitTLS, user, parts.hostname, port)


def readPassword(
    passwordFile: str | None,
    environ: Mapping[str, str],
    stdin: TextIO,
    prompt: Callable[[str], str] = getpass.getpass,
    account: Account | None = None,
) -> str:
    """
    The password: the first line of C{passwordFile}, else C{POP3KIT_PASSWORD}, else asked
    for on the terminal.

    @raise ExitError: If there is none (L{ExitStatus.USAGE}), or the file cannot be read
        (L{ExitStatus.FAILURE}).
    """
    if passwordFile is not None:
        try:
            with open(passwordFile, encoding="utf-8") as f:
                line = f.readline()
        except OSError as e:
            raise ExitError(f"cannot read the password file: {describeOSError(e)}") from None
        password = line.removesuffix("\n").removesuffix("\r")
    elif "POP3KIT_PASSWORD" in environ:
        password = environ["POP3KIT_PASSWORD"]
    elif stdin.isatty():
        try:
            password = prompt(f"Password for {account or 'the server'}: ")
        except EOFError:
            password = ""
    else:
        raise _usage("no password: use --password-file FILE, or set POP3KIT_PASSWORD")
    if not password:
        raise _usage("empty password")
    return password


@dataclass(frozen=True)
class ConnectOptions:
    """
    How to reach and log in to the server.

    @ivar noTLS: With C{pop3://}, do not use STLS (everything in clear text).
    @ivar cafile: PEM file of the authorities to trust instead of the system's.
    @ivar mechanism: The login mechanism (see L{pop3kit.client.POP3Client.login}), or
        L{None} for the client's choice.
    @ivar timeout: Seconds to wait for the server at any step.
    @ivar responseTimeout: Seconds by which each answer that is not a body must be
        complete, and the window of a body's minimum rate (see L{pop3kit.client}).
    @ivar minimumRate: The slowest a message or listing may arrive, in octets per second.
    @ivar maxListingEntries: The most lines of a listing (UIDL, LIST, CAPA).
    @ivar maxListingOctets: The most octets of a listing.
    """

    noTLS: bool = False
    cafile: str | None = None
    mechanism: str | None = None
    timeout: float = 60.0
    responseTimeout: float = DEFAULT_RESPONSE_TIMEOUT
    minimumRate: float = DEFAULT_MINIMUM_RATE
    maxListingEntries: int = DEFAULT_MAX_LISTING_ENTRIES
    maxListingOctets: int = DEFAULT_MAX_LISTING_OCTETS
