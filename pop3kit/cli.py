# -*- test-case-name: tests.test_cli -*-
"""
The C{pop3kit} command: manage users of a passwd-file and deliver mail into Maildirs.

The defaults match the server's zero-configuration mode: everything lives under
C{./pop3kit-data/} (the global option C{--data-dir} moves it), users in its C{passwd} file,
Maildirs under its C{mail/} directory::

    pop3kit user add alice                      # asks for the password twice
    printf '%s\\n' "$PW" | pop3kit user passwd alice --password-stdin
    pop3kit user remove alice
    pop3kit deliver alice < message.eml
    pop3kit fetch pop3s://alice@mail.example.com --to maildir:~/Maildir
    pop3kit scan pop3s://alice@mail.example.com

Errors print one line on standard error and exit with status 1; usage errors exit with 2.
C{deliver} exits with 75 (C{EX_TEMPFAIL}) when the message could not be written for a
reason that may go away, so that a mail transfer agent running it keeps the message and
tries again instead of bouncing it; with 67 (C{EX_NOUSER}) for an unknown user, 65
(C{EX_DATAERR}) for an empty message, 73 (C{EX_CANTCREAT}) for a Maildir that can never be
written (see L{pop3kit._deliver}).
C{fetch} and C{scan} exit with the statuses of L{pop3kit._exits} (see docs/fetch.rst).
Every failure is an L{ExitError}, which carries its message and its exit status.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pop3kit._exits import EX_TEMPFAIL, ExitError, ExitStatus, describeOSError
from pop3kit._layout import DEFAULT_DATA_DIR, maildirRoot, passwdPath
from pop3kit.checkers import passwdfile
from pop3kit.core._mechanisms import PASSWORD_LOGINS

if TYPE_CHECKING:
    from pop3kit._fetch import Account, ConnectOptions

__all__ = ["DEFAULT_DATA_DIR", "EX_TEMPFAIL", "main"]

#: The login mechanisms C{fetch} and C{scan} accept for C{--auth}: every login method that
#: works with a password.
AUTH_MECHANISMS = PASSWORD_LOGINS


def _passwdPath(args: argparse.Namespace) -> str:
    path: str | None = args.passwd
    return path if path is not None else passwdPath(args.data_dir)


def _validName(name: str) -> str:
    try:
        from pop3kit.backends.maildir import mailboxPath

        # The name must be a passwd-file entry and, with the Maildir realm, a mailbox.
        mailboxPath(".", name)
        return passwdfile.validateUserName(name)
    except ValueError as e:
        raise ExitError(f"invalid user name {name!r}: {e}") from None


def _readPassword(args: argparse.Namespace) -> str:
    """
    Read the new password from one line of standard input, or ask for it twice.
    """
    if args.password_stdin:
        line = sys.stdin.readline()
        if line.endswith("\n"):
            line = line[:-1].removesuffix("\r")
        password = line
    else:
        try:
            password = getpass.getpass("New password: ")
            again = getpass.getpass("Retype new password: ")
        except EOFError:
            raise ExitError("no password given") from None
        if password != again:
            raise ExitError("passwords do not match")
    if not password:
        raise ExitError("empty password")
    return password


def _hash(args: argparse.Namespace, password: str) -> str:
    try:
        return passwdfile.hashPassword(password, args.scheme)
    except ValueError as e:
        raise ExitError(f"cannot hash the password: {e}") from None


def _userAdd(args: argparse.Namespace) -> int:
    name = _validName(args.name)
    path = _passwdPath(args)
    try:
        exists = name in passwdfile.listUsers(path)
    except FileNotFoundError:
        exists = False
    if exists:
        raise ExitError(f"user {name!r} already exists in {path}; use 'pop3kit user passwd'")
    passwordHash = _hash(args, _readPassword(args))
    try:
        passwdfile.addUser(path, name, passwordHash)
    except passwdfile.DuplicateUser:
        raise ExitError(f"user {name!r} already exists in {path}") from None
    print(f"added user {name!r} to {path}")
    return 0


def _userPasswd(args: argparse.Namespace) -> int:
    name = _validName(args.name)
    path = _passwdPath(args)
    if name not in passwdfile.listUsers(path):
        raise ExitError(f"no user {name!r} in {path}")
    passwordHash = _hash(args, _readPassword(args))
    try:
        passwdfile.setPassword(path, name, passwordHash)
    except passwdfile.UnknownUser:
        raise ExitError(f"no user {name!r} in {path}") from None
    print(f"changed the password of {name!r} in {path}")
    return 0


def _userRemove(args: argparse.Namespace) -> int:
    name = _validName(args.name)
    path = _passwdPath(args)
    try:
        passwdfile.removeUser(path, name)
    except passwdfile.UnknownUser:
        raise ExitError(f"no user {name!r} in {path}") from None
    print(f"removed user {name!r} from {path}")
    return 0


def _userList(args: argparse.Namespace) -> int:
    for name in passwdfile.listUsers(_passwdPath(args)):
        print(name)
    return 0


def _deliver(args: argparse.Namespace) -> int:
    from pop3kit._deliver import deliverMessage

    root: str | None = args.maildir_root
    if root is None:
        root = maildirRoot(args.data_dir)
    passwd: str | None = args.passwd
    if passwd is None and os.path.exists(passwdPath(args.data_dir)):
        passwd = passwdPath(args.data_dir)
    deliverMessage(root, args.name, sys.stdin.buffer, passwd=passwd)
    return 0


def _connectOptions(args: argparse.Namespace) -> tuple[Account, ConnectOptions, str]:
    """
    The account, connection options and password of C{fetch} and C{scan}.
    """
    from pop3kit import _fetch

    account = _fetch.parseURL(args.url)
    if args.no_tls and account.implicitTLS:
        raise ExitError("--no-tls contradicts a pop3s:// URL", ExitStatus.USAGE)
    if args.timeout <= 0:
        raise ExitError("--timeout must be positive", ExitStatus.USAGE)
    options = _fetch.ConnectOptions(
        noTLS=args.no_tls, cafile=args.cafile, mechanism=args.auth, timeout=args.timeout
    )
    password = _fetch.readPassword(args.password_file, os.environ, sys.stdin, account=account)
    return account, options, password


def _runFetch(args: argparse.Namespace) -> int:
    from pop3kit import _fetch

    account, connectOptions, password = _connectOptions(args)
    options = _fetch.FetchOptions(
        destination=args.to,
        delete=args.delete,
        sinceLast=args.since_last,
        stateFile=args.state_file,
        connect=connectOptions,
    )
    _fetch.parseDestination(args.to)
    progress = _fetch.Progress(sys.stderr) if sys.stderr.isatty() and not args.quiet else None

    async def work(reactor: Any) -> None:
        result = await _fetch.fetch(reactor, account, options, password, progress=progress)
        if args.verbose:
            print(
                f"{result.fetched} fetched ({result.octets} octets), "
                f"{result.skipped} skipped, {result.deleted} deleted"
            )

    return _fetch.runInReactor(work)


def _runScan(args: argparse.Namespace) -> int:
    from pop3kit import _fetch

    account, options, password = _connectOptions(args)

    async def work(reactor: Any) -> None:
        await _fetch.scan(reactor, account, options, password, sys.stdout, args.delete or ())

    return _fetch.runInReactor(work)


def _makeParser() -> argparse.ArgumentParser:
    # --data-dir is accepted before or after the subcommand; SUPPRESS keeps a
    # subcommand's parser from overwriting a value given before it.
    dataDir = argparse.ArgumentParser(add_help=False)
    dataDir.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="pop3kit", description="Manage pop3kit users, deliver and fetch mail."
    )
    parser.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help="base directory of the passwd file and the Maildirs (default: %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    user = commands.add_parser("user", help="manage the users of a passwd-file")
    userCommands = user.add_subparsers(dest="userCommand", required=True, metavar="ACTION")

    passwdOption = argparse.ArgumentParser(add_help=False)
    passwdOption.add_argument(
        "--passwd", metavar="FILE", help="the passwd-file (default: DATA_DIR/passwd)"
    )
    passwordOptions = argparse.ArgumentParser(add_help=False)
    passwordOptions.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from one line of standard input instead of asking",
    )
    passwordOptions.add_argument(
        "--scheme",
        type=str.upper,
        choices=passwdfile.HASH_SCHEMES,
        default=passwdfile.DEFAULT_SCHEME,
        help=(
            "the password scheme (default: %(default)s, which also serves SASL SCRAM "
            "logins; APOP and CRAM-MD5 need PLAIN)"
        ),
    )

    def userCommand(
        name: str,
        helpText: str,
        handler: Callable[[argparse.Namespace], int],
        *parents: argparse.ArgumentParser,
    ) -> argparse.ArgumentParser:
        command = userCommands.add_parser(
            name, help=helpText, parents=[dataDir, passwdOption, *parents]
        )
        command.set_defaults(handler=handler)
        return command

    userCommand("add", "add a user", _userAdd, passwordOptions).add_argument("name")
    userCommand("passwd", "change a user's password", _userPasswd, passwordOptions).add_argument(
        "name"
    )
    userCommand("remove", "remove a user", _userRemove).add_argument("name")
    userCommand("list", "list the users", _userList)

    deliver = commands.add_parser(
        "deliver",
        parents=[dataDir],
        help="deliver a message from standard input into a user's Maildir",
    )
    deliver.add_argument("name")
    deliver.add_argument(
        "--maildir-root", metavar="DIR", help="the Maildirs' parent (default: DATA_DIR/mail)"
    )
    deliver.add_argument(
        "--passwd",
        metavar="FILE",
        help="refuse users this passwd-file does not list, with exit status 67 "
        "(default: DATA_DIR/passwd if it exists)",
    )
    deliver.set_defaults(handler=_deliver)

    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "url",
        metavar="URL",
        help="pop3s://USER@HOST[:PORT] (implicit TLS, port 995) or pop3://USER@HOST[:PORT] "
        "(port 110, STLS required unless --no-tls); USER is percent-decoded",
    )
    connection.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the password from the first line of FILE (default: $POP3KIT_PASSWORD, "
        "else ask on the terminal)",
    )
    connection.add_argument(
        "--cafile", metavar="PEM", help="trust these certificate authorities, not the system's"
    )
    connection.add_argument(
        "--auth",
        metavar="MECH",
        type=str.lower,
        choices=AUTH_MECHANISMS,
        help="login mechanism: %(choices)s (default: the best the server offers)",
    )
    connection.add_argument(
        "--no-tls",
        action="store_true",
        help="with pop3://, talk in clear text instead of requiring STLS",
    )
    connection.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for the server at any step (default: %(default)s)",
    )

    fetch = commands.add_parser(
        "fetch",
        parents=[dataDir, connection],
        help="download mail from a POP3 server into a Maildir or an mbox file",
    )
    fetch.add_argument(
        "--to",
        required=True,
        metavar="maildir:DIR|mbox:FILE",
        help="where the messages go (created if missing)",
    )
    mode = fetch.add_mutually_exclusive_group()
    mode.add_argument(
        "--keep",
        dest="delete",
        action="store_false",
        help="leave the messages on the server, fetch only those not fetched before (the default)",
    )
    mode.add_argument(
        "--delete",
        dest="delete",
        action="store_true",
        help="delete each message on the server once it is safely stored",
    )
    fetch.set_defaults(delete=False)
    fetch.add_argument(
        "--since-last",
        action="store_true",
        help="skip messages fetched before (always so with --keep; with --delete they are "
        "deleted without being downloaded again)",
    )
    fetch.add_argument(
        "--state-file",
        metavar="FILE",
        help="the record of messages fetched (default: "
        "~/.local/state/pop3kit/fetch/USER@HOST:PORT-HASH)",
    )
    fetch.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    fetch.add_argument(
        "-v", "--verbose", action="store_true", help="print a summary line at the end"
    )
    fetch.set_defaults(handler=_runFetch)

    scan = commands.add_parser(
        "scan",
        parents=[dataDir, connection],
        help="list the messages on a POP3 server: number, size, date, sender, subject",
    )
    scan.add_argument(
        "--delete",
        type=int,
        nargs="+",
        metavar="N",
        help="then delete the messages with these numbers",
    )
    scan.set_defaults(handler=_runScan)
    return parser


def main(argv: list[str] | None = None) -> int:
    """
    Run the C{pop3kit} command.

    @param argv: The arguments, without the program name; C{sys.argv[1:]} by default.
    @return: The exit status: 0 on success, 1 on errors, 2 on usage errors; for
        C{deliver}, the statuses of L{pop3kit._deliver}.
    """
    parser = _makeParser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ExitError as e:
        message, status = str(e), e.status
    except OSError as e:
        message, status = describeOSError(e), ExitStatus.FAILURE
    except KeyboardInterrupt:
        message, status = "interrupted", ExitStatus.INTERRUPTED
    print(f"pop3kit: error: {message}", file=sys.stderr)
    return status
