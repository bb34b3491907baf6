# -*- test-case-name: tests.test_expire_command -*-
"""
C{pop3kit expire}: remove the messages retrieved more than EXPIRE days ago from Maildirs,
for cron; the server does the same at each QUIT, for the maildrop of that session.
C{pop3kit expire --days 30} handles every Maildir under C{DATA_DIR/mail};
C{pop3kit expire --days 30 alice bob --dry-run} only counts, for two users.

Retrieval times come from each Maildir's C{pop3kit-retrieved} record
(L{pop3kit.backends._retrieval}), which the server writes at QUIT when it announces
C{EXPIRE n} or C{EXPIRE NEVER}.  A user whose passwd-file line sets C{pop3kit_expire}
(see L{pop3kit.checkers._usersettings}) gets that value instead of C{--days}; with
C{NEVER} nothing of theirs is removed.

It prints one summary line on standard output, and one line on standard error for each
maildrop it could not handle; it then exits with 1 (the others were handled).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

from pop3kit._exits import ExitError, ExitStatus, describeOSError
from pop3kit.core import NEVER, UserSettings

__all__ = ["addExpireCommand"]

#: Seconds in a day.
_DAY = 86400


def _days(value: str) -> int | str:
    """
    C{--days}: a number of days or C{NEVER}.
    """
    if value.upper() == NEVER:
        return NEVER
    if not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days nor {NEVER}")
    return int(value)


def addExpireCommand(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    """
    Add the C{expire} command to the C{pop3kit} command's sub-commands.

    @param parents: Parsers of the options every command shares (C{--data-dir}).
    """
    expire = commands.add_parser(
        "expire",
        parents=parents,
        help="remove messages retrieved more than EXPIRE days ago from the Maildirs",
    )
    expire.add_argument(
        "names", nargs="*", metavar="NAME", help="the users to expire (default: all)"
    )
    expire.add_argument(
        "--days",
        type=_days,
        required=True,
        metavar="N|NEVER",
        help="the server's EXPIRE: days a retrieved message is kept",
    )
    expire.add_argument(
        "--maildir-root", metavar="DIR", help="the Maildirs' parent (default: DATA_DIR/mail)"
    )
    expire.add_argument(
        "--passwd",
        metavar="FILE",
        help="read users' own EXPIRE (pop3kit_expire=) from this passwd-file "
        "(default: DATA_DIR/passwd, if it exists)",
    )
    expire.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    expire.set_defaults(handler=runExpire)


@dataclass
class _Totals:
    messages: int = 0
    maildrops: int = 0
    scanned: int = 0
    failed: int = 0


def _userSettings(path: str | None, explicit: bool) -> dict[str, UserSettings]:
    """
    The per-user settings of the passwd-file C{path}; none if it does not exist and was
    not named on the command line.
    """
    from pop3kit.checkers._usersettings import parseUserSettings

    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if explicit:
            raise ExitError(f"{path}: no such passwd-file") from None
        return {}
    except OSError as e:
        raise ExitError(describeOSError(e)) from None

    def warn(lineNumber: int, user: str, problem: str) -> None:
        print(f"pop3kit: warning: {path}: line {lineNumber}: {user}: {problem}", file=sys.stderr)

    return parseUserSettings(data, warn)


def _maildrops(root: str, names: list[str]) -> list[tuple[str, str]]:
    """
    The C{(name, Maildir)} pairs to expire: those of C{names}, or every Maildir under
    C{root}.
    """
    from pop3kit.backends.maildir import mailboxPath

    if names:
        found = []
        for name in names:
            try:
                found.append((name, mailboxPath(root, name)))
            except ValueError as e:
                raise ExitError(f"invalid user name {name!r}: {e}") from None
        return found
    try:
        entries = sorted(os.listdir(root))
    except OSError as e:
        raise ExitError(describeOSError(e)) from None
    found = []
    for name in entries:
        try:
            path = mailboxPath(root, name)
        except ValueError:
            continue
        if os.path.isdir(os.path.join(path, "cur")) or os.path.isdir(os.path.join(path, "new")):
            found.append((name, path))
    return found


def _expireOne(path: str, before: float, now: float, dryRun: bool) -> int:
    """
    Remove (or count) the messages of the Maildir C{path} first retrieved before
    C{before}.

    @return: How many.
    @raise OSError: If the Maildir or its record cannot be read or changed.
    """
    from twisted.python.failure import Failure

    from pop3kit.backends import _retrieval
    from pop3kit.backends.maildir import MaildirMailbox, _Scan

    if not os.path.isdir(path):
        raise FileNotFoundError(2, "no such Maildir", path)
    uids = _retrieval.expiredUids(path, before, lambda: _Scan(path).byUid())
    if dryRun or not uids:
        return len(uids)
    outcome: list[object] = []
    MaildirMailbox(path).expunge(uids).addBoth(outcome.append)
    if isinstance(outcome[0], Failure):
        raise OSError(0, str(outcome[0].value), path)
    # Drop the records of the messages removed.
    _retrieval.markRetrieved(path, (), now, lambda: _Scan(path).byUid())
    return len(uids)


def runExpire(args: argparse.Namespace) -> int:
    """
    Run C{pop3kit expire}.
    """
    from pop3kit._layout import maildirRoot, passwdPath

    root: str = args.maildir_root if args.maildir_root is not None else maildirRoot(args.data_dir)
    explicit = args.passwd is not None
    passwd = args.passwd if explicit else passwdPath(args.data_dir)
    settings = _userSettings(passwd, explicit)
    now = time.time()
    totals = _Totals()
    for name, path in _maildrops(root, args.names):
        totals.scanned += 1
        days = args.days
        own = settings.get(name)
        if own is not None and own.expire is not None:
            days = own.expire
        if not isinstance(days, int):
            continue
        try:
            count = _expireOne(path, now - days * _DAY, now, args.dry_run)
        except OSError as e:
            totals.failed += 1
            print(f"pop3kit: error: {name}: {describeOSError(e)}", file=sys.stderr)
            continue
        if count:
            totals.messages += count
            totals.maildrops += 1
    verb = "would remove" if args.dry_run else "removed"
    summary = (
        f"{verb} {totals.messages} message(s) from {totals.maildrops} of "
        f"{totals.scanned} maildrop(s)"
    )
    if totals.failed:
        summary += f"; {totals.failed} maildrop(s) failed"
    print(summary)
    return ExitStatus.FAILURE if totals.failed else 0
