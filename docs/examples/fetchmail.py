"""
Download every message of a POP3 maildrop into a directory, with C{async}/C{await}.

Run it as a script::

    python fetchmail.py pop.example.org alice ./mail [--delete] [--port N]
        [--tls starttls|implicit|none] [--cafile PEM]

It asks for the password (or takes C{$POP3_PASSWORD}), connects with STLS (required: it
never sends the password in the clear), logs in with the best method the server offers,
streams each message into its own file (named after its unique-id, so a second run skips
what it already has), and with C{--delete} removes the downloaded messages from the server.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from pop3kit.client import POP3Client, ServerError, TLSMode, connect
from pop3kit.errors import ResponseCode


async def downloadAll(client: POP3Client, directory: str, *, delete: bool = False) -> int:
    """
    Download each message of a logged-in session that is not in C{directory} yet, as
    C{<unique-id>.eml}; mark it deleted if asked to.

    @return: The number of messages downloaded.
    """
    uids = await client.listUids()
    downloaded = 0
    for number, uid in uids.items():
        path = os.path.join(directory, uid.replace("/", "_") + ".eml")
        if not os.path.exists(path):
            partial = path + ".part"
            with open(partial, "wb") as f:
                # Streamed straight into the file: a large message never sits in memory.
                await client.retrieve(number, f)
            os.replace(partial, path)
            downloaded += 1
        if delete:
            await client.delete(number)
    return downloaded


async def fetchMail(
    reactor: Any,
    host: str,
    username: str,
    password: str,
    directory: str,
    *,
    port: int | None = None,
    tls: TLSMode = "starttls",
    cafile: str | None = None,
    delete: bool = False,
) -> int:
    """
    Connect, log in, download everything new, and QUIT (which commits the deletions).

    @return: The number of messages downloaded.
    """
    client = await connect(reactor, host, port, tls=tls, cafile=cafile)
    try:
        await client.login(username, password)
        downloaded = await downloadAll(client, directory, delete=delete)
    except BaseException:
        client.abort()  # no QUIT: the server deletes nothing
        raise
    await client.quit()
    return downloaded


def parseArguments(argv: Sequence[str]) -> argparse.Namespace:
    """
    The command line: C{HOST USER DIRECTORY [--delete] [--port N] [--tls MODE]
    [--cafile PEM]}.
    """
    parser = argparse.ArgumentParser(prog="fetchmail.py", description="Download POP3 mail.")
    parser.add_argument("host")
    parser.add_argument("username", metavar="USER")
    parser.add_argument("directory", metavar="DIRECTORY")
    parser.add_argument("--delete", action="store_true", help="delete what was downloaded")
    parser.add_argument("--port", type=int, help="default: 995 with --tls implicit, else 110")
    parser.add_argument(
        "--tls",
        choices=["starttls", "implicit", "none"],
        default="starttls",
        help="STLS (required, the default), implicit TLS (POP3S), or none at all",
    )
    parser.add_argument("--cafile", metavar="PEM", help="trust these authorities only")
    return parser.parse_args(argv)


async def main(reactor: Any, *argv: str) -> None:
    """
    Run the command line.  The password comes from C{$POP3_PASSWORD}, else the terminal.
    """
    arguments = parseArguments(argv)
    host, username, directory = arguments.host, arguments.username, arguments.directory
    os.makedirs(directory, exist_ok=True)
    password = os.environ.get("POP3_PASSWORD") or getpass.getpass(
        f"Password for {username}@{host}: "
    )
    try:
        count = await fetchMail(
            reactor,
            host,
            username,
            password,
            directory,
            port=arguments.port,
            tls=arguments.tls,
            cafile=arguments.cafile,
            delete=arguments.delete,
        )
    except ServerError as e:
        if e.code in (ResponseCode.IN_USE, ResponseCode.LOGIN_DELAY, ResponseCode.SYS_TEMP):
            print(f"{host} is busy, try again later: {e}", file=sys.stderr)
        else:
            print(f"{host} said no: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"{count} new message(s) in {directory}")


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:])))
