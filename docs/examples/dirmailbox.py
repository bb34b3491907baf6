# mypy: allow-untyped-calls
"""
A pop3kit storage backend in one file: each user's mail is a directory of C{.eml} files.

The layout is C{<root>/<user>/<name>.eml}, one message per file, as stored (LF or CRLF line
ends).  Messages are listed in file name order, so name files in delivery order (a time
stamp prefix does it).  POP3 clients can read the messages and delete them; nothing else is
ever written.

Run it with a root directory and one or more C{user:password} pairs::

    python dirmailbox.py ./mail alice:secret

and read the mail of C{./mail/alice/*.eml} with any POP3 client on port 1110 of the local
host (C{curl pop3://127.0.0.1:1110/ -u alice:secret}).  C{--listen ENDPOINT} listens
elsewhere (C{--listen tcp:0} takes a free port, printed at the start), and
C{--tls-certificate PEM --tls-key PEM} offers STLS.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import BinaryIO, cast

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.internet.task import react
from zope.interface import Interface, implementer

from pop3kit.core import (
    MessageInfo,
    WireSizeCounter,
    isValidUid,
)
from pop3kit.errors import MessageUnavailable, PermanentFailure, TemporaryFailure
from pop3kit.interfaces import IMailbox
from pop3kit.server import POP3ServerFactory
from pop3kit.tls import ServerTLS, TLSConfigurationError

#: How many octets are read from a file at a time.
CHUNK_SIZE = 64 * 1024

#: The suffix of message files; other files in a user's directory are ignored.
SUFFIX = ".eml"


def uidFor(name: str) -> str:
    """
    The unique-id of the message in the file C{name}: the name itself when it is a valid
    RFC 1939 unique-id (1 to 70 characters in 0x21-0x7E), else its SHA-1 in hexadecimal.

    Either way it depends on the name only, so it is the same in every session.
    """
    if isValidUid(name):
        return name
    return hashlib.sha1(name.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()


def wireSizeOfFile(path: str) -> int:
    """
    The size POP3 reports for the message in the file at C{path}: CRLF line ends, a final
    line end included, byte-stuffing not counted.  The file is read in chunks.
    """
    counter = WireSizeCounter()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            counter.feed(chunk)
    return counter.octets


@implementer(IMailbox)
class DirectoryMailbox:
    """
    One user's directory of C{.eml} files as an L{IMailbox}.

    File I/O happens in the reactor thread, which is fine for a local disk.

    @ivar maildropId: The directory's real path: sessions on the same directory exclude
        each other.
    """

    def __init__(self, path: str) -> None:
        """
        @param path: The directory holding the user's C{.eml} files.
        """
        self._path = path
        self.maildropId = os.path.realpath(path)
        # The file name of every listed message, by unique-id, from the last listing.
        self._names: dict[str, str] = {}

    def listMessages(self) -> Deferred[Sequence[MessageInfo]]:
        """
        List the C{.eml} files in name order, with their unique-ids and POP3 sizes.

        Fails with L{TemporaryFailure} if the directory cannot be read.
        """
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(self._path)
                if entry.name.endswith(SUFFIX)
                and not entry.name.startswith(".")
                and entry.is_file(follow_symlinks=False)
            )
        except OSError as e:
            return fail(TemporaryFailure(f"cannot read maildrop ({e.strerror})"))
        listing: list[MessageInfo] = []
        self._names = {}
        for name in names:
            uid = uidFor(name)
            if uid in self._names:
                continue  # A file named like another file's hash: unique-ids must be unique.
            try:
                size = wireSizeOfFile(os.path.join(self._path, name))
            except FileNotFoundError:
                continue  # Deleted since the scan: not part of this snapshot.
            except OSError as e:
                return fail(TemporaryFailure(f"cannot read message ({e.strerror})"))
            self._names[uid] = name
            listing.append(MessageInfo(uid, size))
        return succeed(listing)

    def openMessage(self, uid: str) -> Deferred[BinaryIO]:
        """
        Open the file of the message C{uid} for reading.

        Fails with L{MessageUnavailable} if the message is not in the last listing or its
        file is gone, and with L{TemporaryFailure} if the file cannot be read.
        """
        name = self._names.get(uid)
        if name is None:
            return fail(MessageUnavailable())
        try:
            return succeed(open(os.path.join(self._path, name), "rb"))
        except FileNotFoundError:
            return fail(MessageUnavailable())
        except OSError as e:
            return fail(TemporaryFailure(f"cannot read message ({e.strerror})"))

    def expunge(self, uids: Collection[str]) -> Deferred[None]:
        """
        Delete the files of the messages C{uids}.

        A file that is already gone counts as deleted.  If some file cannot be deleted the
        others still are, and the result fails with L{TemporaryFailure}.
        """
        problems: list[str] = []
        for uid in uids:
            name = self._names.pop(uid, None)
            if name is None:
                continue
            try:
                os.unlink(os.path.join(self._path, name))
            except FileNotFoundError:
                pass
            except OSError as e:
                problems.append(f"{name}: {e.strerror}")
        if problems:
            return fail(TemporaryFailure(f"could not delete {len(problems)} message(s)"))
        return succeed(None)


def _noLogout() -> None:
    """
    A L{DirectoryMailbox} holds no resources: nothing to do at logout.
    """


@implementer(IRealm)
class DirectoryRealm:
    """
    Hands out the directory C{<root>/<user>} of each user as a L{DirectoryMailbox}.
    """

    def __init__(self, root: str) -> None:
        """
        @param root: The directory holding one directory per user.
        """
        self._root = root

    def requestAvatar(
        self, avatarId: bytes | str | tuple[()], mind: object, *interfaces: type[Interface]
    ) -> tuple[type[Interface], object, Callable[[], None]]:
        """
        Return C{(IMailbox, mailbox, logout)} for the user C{avatarId}.

        @raise NotImplementedError: If L{IMailbox} is not among C{interfaces}.
        @raise PermanentFailure: If C{avatarId} is not a usable user name or the user has
            no directory.
        """
        if IMailbox not in interfaces:
            raise NotImplementedError("DirectoryRealm only provides IMailbox")
        # Twisted's own checkers give user names as bytes, pop3kit's as str.
        if isinstance(avatarId, bytes):
            avatarId = avatarId.decode("utf-8", "replace")
        if not isinstance(avatarId, str) or not avatarId or avatarId.startswith("."):
            raise PermanentFailure("user name not allowed for a maildrop")
        if "/" in avatarId or "\\" in avatarId or "\0" in avatarId:
            raise PermanentFailure("user name not allowed for a maildrop")
        path = os.path.join(self._root, avatarId)
        if not os.path.isdir(path):
            raise PermanentFailure("no maildrop for this user")
        return IMailbox, DirectoryMailbox(path), _noLogout


def makeFactory(
    root: str,
    users: dict[str, str],
    clock: IReactorTime | None = None,
    tls: ServerTLS | None = None,
) -> POP3ServerFactory:
    """
    A POP3 server factory serving the directories under C{root} to C{users}.

    @param root: The directory holding one directory per user.
    @param users: The passwords, by user name.
    @param clock: The reactor (or a test clock) for timeouts; the global reactor by default.
    @param tls: The certificate for STLS, or L{None} for none.
    """
    checker = InMemoryUsernamePasswordDatabaseDontUse()
    for name, password in users.items():
        checker.addUser(name.encode("utf-8"), password.encode("utf-8"))
    return POP3ServerFactory(Portal(DirectoryRealm(root), [checker]), clock=clock, tls=tls)


#: Where C{main} listens unless told otherwise: port 1110 of the local host.
DEFAULT_LISTEN = "tcp:1110:interface=127.0.0.1"


def parseArguments(argv: Sequence[str], environ: Mapping[str, str]) -> argparse.Namespace:
    """
    The command line: C{ROOT USER:PASSWORD... [--listen ENDPOINT] [--tls-certificate PEM
    --tls-key PEM]}; the options default to C{$POP3_LISTEN}, C{$POP3_TLS_CERTIFICATE} and
    C{$POP3_TLS_KEY}.
    """
    parser = argparse.ArgumentParser(
        prog="dirmailbox.py", description="Serve directories of .eml files over POP3."
    )
    parser.add_argument("root", help="the directory holding one directory per user")
    parser.add_argument("users", nargs="+", metavar="USER:PASSWORD")
    parser.add_argument(
        "--listen",
        default=environ.get("POP3_LISTEN", DEFAULT_LISTEN),
        metavar="ENDPOINT",
        help="a Twisted endpoint: tcp:PORT[:interface=ADDRESS], or "
        "ssl:PORT:privateKey=KEY:certKey=CERT for implicit TLS (default: %(default)s)",
    )
    parser.add_argument(
        "--tls-certificate",
        default=environ.get("POP3_TLS_CERTIFICATE"),
        metavar="PEM",
        help="offer STLS with this certificate (and --tls-key)",
    )
    parser.add_argument("--tls-key", default=environ.get("POP3_TLS_KEY"), metavar="PEM")
    return parser.parse_args(argv)


async def main(reactor: IReactorCore, *argv: str) -> None:
    """
    Serve the directories under the given root until interrupted, on port 1110 of the
    local host unless C{--listen} says otherwise.  A port that cannot be bound, or TLS
    files that cannot be used, end it with one line on standard error.
    """
    arguments = parseArguments(argv, os.environ)
    passwords = dict(user.partition(":")[::2] for user in arguments.users)
    tls = None
    if arguments.tls_certificate or arguments.tls_key:
        try:
            tls = ServerTLS(arguments.tls_certificate, arguments.tls_key)
        except (TLSConfigurationError, TypeError) as e:
            raise SystemExit(f"dirmailbox.py: {e}") from None
    factory = makeFactory(arguments.root, passwords, clock=cast(IReactorTime, reactor), tls=tls)
    try:
        port = await serverFromString(reactor, arguments.listen).listen(factory)
    except (CannotListenError, ValueError) as e:
        raise SystemExit(f"dirmailbox.py: cannot listen on {arguments.listen}: {e}") from None
    address: object = port.getHost()
    if isinstance(address, IPv4Address | IPv6Address):
        address = f"{address.host}:{address.port}"
    print(f"serving {arguments.root} on {address}", flush=True)
    await Deferred()  # never fires: run until Ctrl-C


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:])))
