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

Errors print one line on standard error and exit with status 1; usage errors exit with 2.
C{deliver} exits with 75 (C{EX_TEMPFAIL}) when the message could not be written, so that
a mail transfer agent running it keeps the message and tries again instead of bouncing it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from pop3kit._layout import DEFAULT_DATA_DIR, maildirRoot, passwdPath
from pop3kit.checkers import passwdfile

__all__ = ["DEFAULT_DATA_DIR", "EX_TEMPFAIL", "main"]

EX_TEMPFAIL = 75
"""
The exit status (from C{sysexits.h}) of a delivery that failed for a reason that may go
away, such as a full disk.
"""


class _Failure(Exception):
    """
    An error to report in one line, with an exit status.
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


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
        raise _Failure(f"invalid user name {name!r}: {e}") from None


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
            raise _Failure("no password given") from None
        if password != again:
            raise _Failure("passwords do not match")
    if not password:
        raise _Failure("empty password")
    return password


def _hash(args: argparse.Namespace, password: str) -> str:
    try:
        return passwdfile.hashPassword(password, args.scheme)
    except ValueError as e:
        raise _Failure(f"cannot hash the password: {e}") from None


def _userAdd(args: argparse.Namespace) -> int:
    name = _validName(args.name)
    path = _passwdPath(args)
    try:
        exists = name in passwdfile.listUsers(path)
    except FileNotFoundError:
        exists = False
    if exists:
        raise _Failure(f"user {name!r} already exists in {path}; use 'pop3kit user passwd'")
    passwordHash = _hash(args, _readPassword(args))
    try:
        passwdfile.addUser(path, name, passwordHash)
    except passwdfile.DuplicateUser:
        raise _Failure(f"user {name!r} already exists in {path}") from None
    print(f"added user {name!r} to {path}")
    return 0


def _userPasswd(args: argparse.Namespace) -> int:
    name = _validName(args.name)
    path = _passwdPath(args)
    if name not in passwdfile.listUsers(path):
        raise _Failure(f"no user {name!r} in {path}")
    passwordHash = _hash(args, _readPassword(args))
    try:
        passwdfile.setPassword(path, name, passwordHash)
    except passwdfile.UnknownUser:
        raise _Failure(f"no user {name!r} in {path}") from None
    print(f"changed the password of {name!r} in {path}")
    return 0


def _userRemove(args: argparse.Namespace) -> int:
    name = _validName(args.name)
    path = _passwdPath(args)
    try:
        passwdfile.removeUser(path, name)
    except passwdfile.UnknownUser:
        raise _Failure(f"no user {name!r} in {path}") from None
    print(f"removed user {name!r} from {path}")
    return 0


def _userList(args: argparse.Namespace) -> int:
    for name in passwdfile.listUsers(_passwdPath(args)):
        print(name)
    return 0


def _deliver(args: argparse.Namespace) -> int:
    from pop3kit.backends import maildir

    root: str | None = args.maildir_root
    if root is None:
        root = maildirRoot(args.data_dir)
    try:
        path = maildir.mailboxPath(root, args.name)
    except ValueError as e:
        raise _Failure(f"invalid user name {args.name!r}: {e}") from None
    try:
        maildir.deliver(path, sys.stdin.buffer)
    except OSError as e:
        raise _Failure(_describe(e), EX_TEMPFAIL) from None
    return 0


def _describe(error: OSError) -> str:
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}"


def _makeParser() -> argparse.ArgumentParser:
    # --data-dir is accepted before or after the subcommand; SUPPRESS keeps a
    # subcommand's parser from overwriting a value given before it.
    dataDir = argparse.ArgumentParser(add_help=False)
    dataDir.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="pop3kit", description="Manage pop3kit users and deliver mail."
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
    deliver.set_defaults(handler=_deliver)
    return parser


def main(argv: list[str] | None = None) -> int:
    """
    Run the C{pop3kit} command.

    @param argv: The arguments, without the program name; C{sys.argv[1:]} by default.
    @return: The exit status: 0 on success, 1 on errors, 2 on usage errors, 75 if a
        delivery failed for a reason that may go away.
    """
    parser = _makeParser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except _Failure as e:
        message, status = str(e), e.status
    except OSError as e:
        message, status = _describe(e), 1
    except KeyboardInterrupt:
        message, status = "interrupted", 130
    print(f"pop3kit: error: {message}", file=sys.stderr)
    return status
