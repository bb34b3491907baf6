"""
List a POP3 maildrop (message numbers, sizes and unique-ids) in callback style, with
L{Deferred}s and no C{async def}.

Run it as a script::

    python listing.py pop.example.org alice [--port N] [--tls starttls|implicit|none]
        [--cafile PEM]
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from pop3kit.client import POP3Client, TLSMode, connect

Entry = tuple[int, int, str]


def listMaildrop(client: POP3Client) -> Deferred[list[Entry]]:
    """
    The number, size and unique-id of every message of a logged-in session.  LIST and
    UIDL are asked for together: with a server that announces PIPELINING both go out in
    one write.
    """
    sizes = client.listSizes()
    uids = client.listUids()

    def combine(uidMap: dict[int, str], sizeMap: dict[int, int]) -> list[Entry]:
        return [(number, size, uidMap.get(number, "?")) for number, size in sizeMap.items()]

    def withSizes(sizeMap: dict[int, int]) -> Deferred[list[Entry]]:
        return uids.addCallback(combine, sizeMap)

    return sizes.addCallback(withSizes)


def listing(
    reactor: Any,
    host: str,
    username: str,
    password: str,
    *,
    port: int | None = None,
    tls: TLSMode = "starttls",
    cafile: str | None = None,
) -> Deferred[list[Entry]]:
    """
    Connect, log in, list, QUIT.
    """

    def finish(entries: list[Entry], client: POP3Client) -> Deferred[list[Entry]]:
        return client.quit().addCallback(lambda _: entries)

    def loggedIn(_: object, client: POP3Client) -> Deferred[list[Entry]]:
        return listMaildrop(client).addCallback(finish, client)

    def login(client: POP3Client) -> Deferred[list[Entry]]:
        return client.login(username, password).addCallback(loggedIn, client)

    connected = Deferred.fromCoroutine(connect(reactor, host, port, tls=tls, cafile=cafile))
    return connected.addCallback(login)


def main(reactor: Any, *argv: str) -> Deferred[None]:
    """
    The command line: C{HOST USER [--port N] [--tls MODE] [--cafile PEM]}; the password
    comes from C{$POP3_PASSWORD}, else the terminal.
    """
    parser = argparse.ArgumentParser(prog="listing.py", description="List a POP3 maildrop.")
    parser.add_argument("host")
    parser.add_argument("username", metavar="USER")
    parser.add_argument("--port", type=int, help="default: 995 with --tls implicit, else 110")
    parser.add_argument("--tls", choices=["starttls", "implicit", "none"], default="starttls")
    parser.add_argument("--cafile", metavar="PEM", help="trust these authorities only")
    arguments = parser.parse_args(argv)
    host, username = arguments.host, arguments.username
    password = os.environ.get("POP3_PASSWORD") or getpass.getpass(
        f"Password for {username}@{host}: "
    )

    def show(entries: list[Entry]) -> None:
        for number, size, uid in entries:
            print(f"{number:5d} {size:10d} {uid}")

    listed = listing(
        reactor,
        host,
        username,
        password,
        port=arguments.port,
        tls=arguments.tls,
        cafile=arguments.cafile,
    )
    return listed.addCallback(show)


if __name__ == "__main__":
    react(main, sys.argv[1:])
