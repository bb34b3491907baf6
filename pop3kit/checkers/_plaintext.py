# -*- test-case-name: tests.test_tap_scram -*-
"""
SCRAM for the checkers of C{twistd --auth memory:} and C{--auth file:}, which know each
password in clear: L{PlaintextSCRAMSource} adds L{ISCRAMKeySource} to such a checker, the
keys derived from the password (once: the derivation is remembered, as for a C{PLAIN}
entry of a passwd-file).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from twisted.cred.checkers import (
    FilePasswordDB,
    ICredentialsChecker,
    InMemoryUsernamePasswordDatabaseDontUse,
)
from twisted.cred.credentials import ICredentials
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from pop3kit._scram import SCRAM_HASHES, SCRAMKeys
from pop3kit.checkers._schemes import _derivedSCRAMKeys
from pop3kit.interfaces import ISCRAMKeySource

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorThreads

__all__ = ["PlaintextSCRAMSource", "withBytesPasswords", "withSCRAM"]


@implementer(ICredentialsChecker, ISCRAMKeySource)
class PlaintextSCRAMSource:
    """
    A checker that knows the users' passwords in clear, also serving SCRAM keys derived
    from them.  Credentials are checked by the checker it wraps.
    """

    def __init__(
        self,
        checker: ICredentialsChecker,
        passwordOf: Callable[[bytes], bytes | None],
        reactor: IReactorThreads | None = None,
    ) -> None:
        """
        @param checker: Checks the credentials.
        @param passwordOf: The clear-text password of a user name (UTF-8), or L{None}
            for an unknown user.
        @param reactor: Runs the key derivation (a PBKDF2) in its thread pool; the
            global reactor by default.
        """
        self._checker = checker
        self._passwordOf = passwordOf
        self._reactor = reactor
        self.credentialInterfaces = checker.credentialInterfaces

    def hasUser(self, name: str) -> bool:
        """
        Whether C{name} is one of the users (the LMTP listener takes mail for those only).
        """
        return self._passwordOf(name.encode("utf-8")) is not None

    def requestAvatarId(self, credentials: ICredentials) -> Deferred[object]:  # type: ignore[override]
        """
        What the wrapped checker says.
        """
        return cast("Deferred[object]", self._checker.requestAvatarId(credentials))

    def scramKeys(self, username: str, mechanism: str) -> Deferred[SCRAMKeys | None]:
        """
        Keys derived from the user's password, with a salt that stays the same while the
        process runs; L{None} for an unknown user.
        """
        if mechanism.upper() not in SCRAM_HASHES:
            return succeed(None)
        password = self._passwordOf(username.encode("utf-8"))
        if password is None:
            return succeed(None)
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor as installed

            reactor = cast("IReactorThreads", installed)
        return deferToThreadPool(
            reactor,  # type: ignore[arg-type]
            reactor.getThreadPool(),
            _derivedSCRAMKeys,
            username,
            mechanism,
            password,
        )


def _filePassword(database: FilePasswordDB, name: bytes) -> bytes | None:
    """
    The password of C{name} in a L{FilePasswordDB} that stores passwords in clear.
    """
    try:
        _, password = database.getUser(name)
    except KeyError:
        return None
    return password


def withSCRAM(
    checker: ICredentialsChecker, reactor: IReactorThreads | None = None
) -> ICredentialsChecker:
    """
    C{checker}, offering SCRAM if it is one of Twisted's that know the passwords in clear
    (C{--auth memory:}, C{--auth file:} without a hash function), else as it is.
    """
    if isinstance(checker, InMemoryUsernamePasswordDatabaseDontUse):
        users = checker.users
        return PlaintextSCRAMSource(checker, users.get, reactor)
    if isinstance(checker, FilePasswordDB) and checker.hash is None:
        return PlaintextSCRAMSource(checker, lambda name: _filePassword(checker, name), reactor)
    return checker


def withBytesPasswords(checker: ICredentialsChecker) -> ICredentialsChecker:
    """
    C{checker}, with names and passwords as UTF-8 L{bytes} if it is Twisted's C{--auth
    memory:} checker: its factory stores them as L{str}, while
    L{twisted.cred.credentials.IUsernamePassword} credentials carry L{bytes}, so nobody
    could log in.  Any other checker is returned as it is.
    """
    if isinstance(checker, InMemoryUsernamePasswordDatabaseDontUse):
        checker.users = {
            (name.encode("utf-8") if isinstance(name, str) else name): (
                password.encode("utf-8") if isinstance(password, str) else password
            )
            for name, password in checker.users.items()
        }
    return checker
