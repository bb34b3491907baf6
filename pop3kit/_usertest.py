# -*- test-case-name: tests.test_cli_usertest -*-
"""
C{pop3kit user test NAME}: check a password against the checkers a server would use, as
Dovecot's C{doveadm auth test} does, and say which checker answered.

The checkers are tried in order, as the server's chain tries them
(L{pop3kit.cred.ChainedChecker}): the first to accept wins; a refusal moves on to the
next.  The exit status says how it ended:

  - 0: accepted;
  - 1: refused (a checker knows the user, or would not say, and the password does not
    match);
  - 67 (C{EX_NOUSER}): no checker knows the user;
  - 75 (C{EX_TEMPFAIL}): a checker failed (a program or a store that is down);
  - 2: a usage error (an unknown C{--auth} type, ...).
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Sequence
from typing import TextIO

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import maybeDeferred

from pop3kit._exits import ExitError, ExitStatus, errorText
from pop3kit.checkers._plaintext import withBytesPasswords
from pop3kit.cred import NoSuchUser, WrongPassword
from pop3kit.errors import POP3Error
from pop3kit.sasl import preparePassword, prepareUsername

__all__ = ["makeCheckers", "readPassword", "testPassword"]


def makeCheckers(descriptions: Sequence[str], passwd: str) -> list[tuple[str, ICredentialsChecker]]:
    """
    The checkers the server's C{--auth} options describe, each with its description;
    with none, the passwd-file C{passwd}, as the server's zero-configuration mode.

    @raise ExitError: (usage) For a description Twisted's C{strcred} cannot make.
    """
    from twisted.cred import strcred

    if not descriptions:
        from pop3kit.checkers.passwdfile import PasswdFileChecker

        return [(f"passwd-file:{passwd}", PasswdFileChecker(passwd))]
    checkers = []
    for description in descriptions:
        try:
            checker = strcred.makeChecker(description)  # type: ignore[no-untyped-call]
        except Exception as e:
            raise ExitError(f"--auth {description}: {errorText(e)}", ExitStatus.USAGE) from None
        checkers.append((description, withBytesPasswords(checker)))
    return checkers


def readPassword(fromStdin: bool, stdin: TextIO | None = None) -> str:
    """
    The password to test: one line of standard input, or asked for on the terminal.

    @raise ExitError: If there is none.
    """
    if fromStdin:
        line = (sys.stdin if stdin is None else stdin).readline()
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        try:
            password = getpass.getpass("Password: ")
        except EOFError:
            raise ExitError("no password given; use --password-stdin on a pipe") from None
    if not password:
        raise ExitError("empty password")
    return password


async def testPassword(
    checkers: Sequence[tuple[str, ICredentialsChecker]],
    name: str,
    password: str,
    out: TextIO,
) -> ExitStatus:
    """
    Check C{password} for the user C{name} against each checker in turn, printing on
    C{out} what each answered and then the verdict.

    @return: The exit status (see the module's docstring).
    """
    try:
        username = prepareUsername(name)
        prepared = preparePassword(password)
    except POP3Error as e:
        print(f"{name}: refused: {e.text}", file=out)
        return ExitStatus.FAILURE
    credentials = UsernamePassword(username.encode("utf-8"), prepared.encode("utf-8"))
    status = ExitStatus.NOUSER
    for description, checker in checkers:
        if IUsernamePassword not in checker.credentialInterfaces:
            print(f"{description}: cannot check passwords", file=out)
            continue
        try:
            avatarId = await maybeDeferred(checker.requestAvatarId, credentials)
        except NoSuchUser:
            print(f"{description}: unknown user", file=out)
            continue
        except UnauthorizedLogin as e:
            reason = "wrong password" if isinstance(e, WrongPassword) else "refused"
            print(f"{description}: {reason}", file=out)
            status = ExitStatus.FAILURE
            continue
        except Exception as e:
            print(f"{description}: failed: {errorText(e)}", file=out)
            print(f"{name}: not checked: a checker failed", file=out)
            return ExitStatus.TEMPFAIL
        who = avatarId.decode("utf-8", "replace") if isinstance(avatarId, bytes) else avatarId
        print(f"{description}: accepted as {who!r}", file=out)
        print(f"{name}: accepted by {description}", file=out)
        return ExitStatus.OK
    verdict = "unknown user" if status is ExitStatus.NOUSER else "refused"
    print(f"{name}: {verdict}", file=out)
    return status
