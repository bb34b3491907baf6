# -*- test-case-name: tests.test_cli -*-
"""
The C{pop3kit} command: manage users of a passwd-file and deliver mail into Maildirs.

The defaults match the server's zero-configuration mode: everything lives under
C{./pop3kit-data/} (the global option C{--data-dir} moves it), users in its C{passwd} file,
Maildirs under its C{mail/} directory::

    pop3kit user add alice                      # asks for the password twice
    printf '%s\\n' "$PW" | pop3kit user passwd alice --password-stdin
    pop3kit user remove alice
    pop3kit user test alice                     # checks a password, as the server would
    pop3kit deliver alice < message.eml
    pop3kit expire --days 30                    # for cron: see docs/deployment.rst
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

from pop3kit._clientlimits import (
    DEFAULT_MAX_LISTING_ENTRIES,
    DEFAULT_MAX_LISTING_OCTETS,
    DEFAULT_MINIMUM_RATE,
    DEFAULT_RESPONSE_TIMEOUT,
)
from pop3kit._exits import EX_TEMPFAIL, ExitError, ExitStatus, describeOSError
from pop3kit._layout import DEFAULT_DATA_DIR, maildirRoot, passwdPath
from pop3kit.checkers import passwdfile
from pop3kit.core._mechanisms import PASSWORD_LOGINS

if TYPE_CHECKING:
    from pop3kit._fetch import Account, ConnectOptions

__all__ = ["DEFAULT_DATA_DIR", "EX_TEMPFAIL", "main"]

#: The login mechanisms C{fetch} and C{scan} accept for C{--auth}: every login method that
#: works with a password, a Kerberos ticket (GSSAPI) or an access token (OAUTHBEARER,
#: XOAUTH2).
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
        if not sys.stdin.isatty():
            # getpass would ask on the terminal and ignore what is piped in.
            raise ExitError(
                "standard input is not a terminal: to give the password on it, "
                "use --password-stdin",
                ExitStatus.USAGE,
            )
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


def _userTest(args: argparse.Namespace) -> int:
    from pop3kit import _fetch, _usertest

    checkers = _usertest.makeCheckers(args.auth or [], _passwdPath(args))
    password = _usertest.readPassword(args.password_stdin)

    statuses: list[int] = []

    async def work(reactor: Any) -> None:
        statuses.append(await _usertest.testPassword(checkers, args.name, password, sys.stdout))

    return _fetch.runInReactor(work) or statuses[0]


def _deliver(args: argparse.Namespace) -> int:
    from pop3kit._deliver import deliverMessage

    root: str | None = args.maildir_root
    if root is None:
        root = maildirRoot(args.data_dir)
    passwd: str | None = args.passwd
    if passwd is None and os.path.exists(passwdPath(args.data_dir)):
        passwd = passwdPath(args.data_dir)
    if args.storage is not None:
        from pop3kit.storage import InvalidStorage, MaildirStorage, parseStorage

        try:
            storage = parseStorage(args.storage)
        except InvalidStorage as e:
            raise ExitError(str(e), ExitStatus.CANTCREAT) from None
        if isinstance(storage, MaildirStorage):
            root = storage.root
        else:
            from pop3kit import _fetch
            from pop3kit._deliver import deliverToStorage

            async def work(reactor: Any) -> None:
                await deliverToStorage(storage, args.name, sys.stdin.buffer, passwd=passwd)

            return _fetch.runInReactor(work)
    deliverMessage(root, args.name, sys.stdin.buffer, passwd=passwd)
    return 0


def _storageInit(args: argparse.Namespace) -> int:
    try:
        from pop3kit.backends.postgresql import migrateSchema
    except ImportError:
        raise ExitError(
            "PostgreSQL support is not installed: pip install 'pop3kit[postgresql]'"
        ) from None
    import psycopg

    from pop3kit.errors import PermanentFailure

    if not args.url.startswith(("postgresql://", "postgres://")):
        raise ExitError(f"{args.url!r} is not a postgresql:// URL")
    try:
        before, after = migrateSchema(args.url)
    except psycopg.Error as e:
        raise ExitError(f"cannot set up the database: {str(e).strip()}") from None
    except PermanentFailure as e:
        raise ExitError(str(e)) from None
    if before == after:
        print(f"the schema is up to date (version {after})")
    else:
        print(f"schema upgraded from version {before} to {after}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from pop3kit._migrate import migrate, openEnd

    source = openEnd(args.source)
    report = migrate(source, openEnd(args.destination, destination=True), progress=not args.quiet)
    print(f"{report.copied} messages copied, {report.skipped} already there")
    for old, new in report.renamed or []:
        print(f"UIDL {old!r} cannot be kept in a Maildir file name; now {new!r}", file=sys.stderr)
    return 0


def _connectOptions(args: argparse.Namespace) -> tuple[Account, ConnectOptions, str]:
    """
    The account, connection options and password (or access token) of C{fetch} and
    C{scan}.
    """
    from pop3kit import _fetch

    account = _fetch.parseURL(args.url)
    if args.no_tls and account.implicitTLS:
        raise ExitError("--no-tls contradicts a pop3s:// URL", ExitStatus.USAGE)
    if args.timeout <= 0:
        raise ExitError("--timeout must be positive", ExitStatus.USAGE)
    if not args.response_timeout > 0:
        raise ExitError("--response-timeout must be positive", ExitStatus.USAGE)
    if not args.min_rate >= 0:
        raise ExitError("--min-rate must not be negative", ExitStatus.USAGE)
    if args.max_listing < 1 or args.max_listing_octets < 1:
        raise ExitError(
            "--max-listing and --max-listing-octets must be at least 1", ExitStatus.USAGE
        )
    options = _fetch.ConnectOptions(
        noTLS=args.no_tls,
        cafile=args.cafile,
        mechanism=args.auth,
        timeout=args.timeout,
        responseTimeout=args.response_timeout,
        minimumRate=args.min_rate,
        maxListingEntries=args.max_listing,
        maxListingOctets=args.max_listing_octets,
    )
    password = _secret(args, account)
    return account, options, password


def _secret(args: argparse.Namespace, account: Account) -> str:
    """
    What C{fetch} and C{scan} log in with: the access token for OAUTHBEARER and XOAUTH2,
    nothing for GSSAPI (the Kerberos ticket), else the password.  Without C{--auth}, a
    Kerberos ticket stands in for a password that was not given (GSSAPI is then used if
    the server offers it).
    """
    from pop3kit import _fetch, _gssapi, _oauth2

    if args.auth in ("oauthbearer", "xoauth2"):
        if args.token_command is not None:
            try:
                return _oauth2.tokenFromCommand(args.token_command)
            except ValueError as e:
                raise ExitError(str(e)) from None
        if os.environ.get("POP3KIT_TOKEN"):
            return os.environ["POP3KIT_TOKEN"]
        raise ExitError(
            f"--auth {args.auth} needs an access token: use --token-command CMD, or set "
            "POP3KIT_TOKEN",
            ExitStatus.USAGE,
        )
    if args.token_command is not None:
        raise ExitError("--token-command goes with --auth oauthbearer or xoauth2", ExitStatus.USAGE)
    if args.auth == "gssapi":
        if not _gssapi.available():
            raise ExitError(_gssapi.INSTALL_HINT, ExitStatus.USAGE)
        return ""
    if (
        args.auth is None
        and args.password_file is None
        and "POP3KIT_PASSWORD" not in os.environ
        and _gssapi.hasTicket()
    ):
        return ""
    return _fetch.readPassword(args.password_file, os.environ, sys.stdin, account=account)


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


def _versionText() -> str:
    """
    What C{--version} prints: pop3kit's version, then Twisted's.
    """
    import twisted
    from pop3kit import __version__

    return f"pop3kit {__version__} (Twisted {twisted.__version__})"


def _makeParser() -> argparse.ArgumentParser:
    # --data-dir is accepted before or after the subcommand; SUPPRESS keeps a
    # subcommand's parser from overwriting a value given before it.
    dataDir = argparse.ArgumentParser(add_help=False)
    dataDir.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="pop3kit", description="Manage pop3kit users, deliver and fetch mail."
    )
    parser.add_argument("--version", action="version", version=_versionText())
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
    test = userCommand(
        "test",
        "check a password against the server's checkers and say which one answered "
        "(exit 0: accepted, 1: refused, 67: unknown user, 75: a checker failed)",
        _userTest,
    )
    test.add_argument("name")
    test.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from one line of standard input instead of asking",
    )
    test.add_argument(
        "--auth",
        action="append",
        metavar="TYPE:ARGS",
        help="a checker as twistd pop3kit --auth takes it (repeatable, tried in order; "
        "default: the passwd-file)",
    )

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
    deliver.add_argument(
        "--storage",
        metavar="SPEC",
        help="deliver into this storage, as twistd pop3kit --storage takes it "
        "(e.g. postgresql://...; default: the Maildirs)",
    )
    deliver.set_defaults(handler=_deliver)

    from pop3kit._expirecommand import addExpireCommand

    addExpireCommand(commands, [dataDir])

    storage = commands.add_parser("storage", help="set up a mail store")
    storageCommands = storage.add_subparsers(dest="storageCommand", required=True, metavar="ACTION")
    init = storageCommands.add_parser(
        "init", help="create or upgrade pop3kit's tables in a PostgreSQL database"
    )
    init.add_argument("url", metavar="URL", help="postgresql://USER@HOST[:PORT]/DATABASE")
    init.set_defaults(handler=_storageInit)

    migrateCommand = commands.add_parser(
        "migrate",
        help="copy every maildrop from one store to another, keeping UIDLs (resumable)",
    )
    migrateCommand.add_argument(
        "source", help="maildir:ROOT, mbox:TEMPLATE (e.g. mbox:/var/mail/%%u) or postgresql://..."
    )
    migrateCommand.add_argument("destination", help="maildir:ROOT or postgresql://...")
    migrateCommand.add_argument("-q", "--quiet", action="store_true", help="no progress")
    migrateCommand.set_defaults(handler=_migrate)

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
        "else a Kerberos ticket if there is one and the server offers GSSAPI, else ask on "
        "the terminal)",
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
        "--token-command",
        metavar="CMD",
        help="with --auth oauthbearer or xoauth2: run CMD with the shell and use the first "
        "line it prints as the OAuth 2.0 access token (default: $POP3KIT_TOKEN)",
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
    connection.add_argument(
        "--response-timeout",
        type=float,
        default=DEFAULT_RESPONSE_TIMEOUT,
        metavar="S",
        help="seconds by which each answer that is not a message or listing must be "
        "complete; also the window of --min-rate (default: %(default)s)",
    )
    connection.add_argument(
        "--min-rate",
        type=float,
        default=DEFAULT_MINIMUM_RATE,
        metavar="OCTETS",
        help="the slowest a message or listing may arrive, in octets a second over each "
        "--response-timeout window; 0 for no minimum (default: %(default)s)",
    )
    connection.add_argument(
        "--max-listing",
        type=int,
        default=DEFAULT_MAX_LISTING_ENTRIES,
        metavar="N",
        help="the most lines of a UIDL or LIST listing (default: %(default)s)",
    )
    connection.add_argument(
        "--max-listing-octets",
        type=int,
        default=DEFAULT_MAX_LISTING_OCTETS,
        metavar="OCTETS",
        help="the most octets of a UIDL or LIST listing (default: %(default)s)",
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
