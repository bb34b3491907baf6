# -*- test-case-name: tests.test_checker_passwdfile -*-
"""
A credentials checker for Dovecot's C{passwd-file} format, and tools to edit such files.

Each line of the file is C{user:password:uid:gid:gecos:home:shell:extra_fields}; the
first two fields matter here, and a line may stop after the password.  The extra fields
may give a user's own LOGIN-DELAY and EXPIRE (C{pop3kit_login_delay=900
pop3kit_expire=30}, also with Dovecot's C{userdb_} prefix; see
L{PasswdFileChecker.userSettings}).  Empty lines and
lines starting with C{#} are ignored.  The password field is C{{SCHEME}data}; without a
C{{SCHEME}} prefix it is a C{CRYPT} hash whose kind is recognised by its prefix (C{$6$},
C{$5$}, C{$2y$}, C{$argon2id$} ...).

Supported schemes, as Dovecot writes them (names are case-insensitive):

  - C{PLAIN} and C{CLEARTEXT}, also with the C{.b64}, C{.base64} or C{.hex} encoding
    suffix;
  - C{CRYPT}, C{SHA512-CRYPT}, C{SHA256-CRYPT}, C{BLF-CRYPT}, C{MD5-CRYPT} (alias C{MD5}),
    C{ARGON2ID}, C{ARGON2I};
  - C{SSHA512}, C{SSHA256}, C{SSHA}, C{SHA512}, C{SHA256}, C{SHA} (alias C{SHA1}):
    base64 by default, hex with a C{.hex} suffix (or, for the unsalted ones, when the
    length says so, as Dovecot does);
  - C{SCRAM-SHA-256} and C{SCRAM-SHA-1}: C{iterations,salt,StoredKey,ServerKey}, the
    last three in base64, as Dovecot writes them.  These serve SASL SCRAM logins (see
    L{PasswdFileChecker.scramKeys}) and are verified like any hash for the others.

A user whose entry cannot be understood cannot log in, and a warning naming the file, the
line and the user (never the password field) is logged.

L{hashPassword}, L{addUser}, L{setPassword} and L{removeUser} write files that both this
checker and Dovecot read; C{pop3kit user add} uses them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import (
    ICredentials,
    IUsernameHashedPassword,
    IUsernamePassword,
)
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.strcred import ICheckerFactory
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from pop3kit._scram import SCRAM_HASHES, SCRAMKeys
from pop3kit.checkers._editing import (
    DuplicateUser,
    UnknownUser,
    _iterEntries,
    addUser,
    listUsers,
    removeUser,
    setPassword,
    validateUserName,
)
from pop3kit.checkers._schemes import (
    ARGON2_MEMORY_COST,
    ARGON2_PARALLELISM,
    ARGON2_TIME_COST,
    BCRYPT_COST,
    DEFAULT_SCHEME,
    HASH_SCHEMES,
    SCRAM_ITERATIONS,
    SHA_CRYPT_ROUNDS,
    _BadEntry,
    _checkUnknownUser,
    _derivedSCRAMKeys,
    _parseStored,
    _safeCheck,
    _Verifier,
    hashPassword,
    verifyPassword,
)
from pop3kit.checkers._usersettings import parseUserSettings
from pop3kit.core import UserSettings
from pop3kit.cred import NoSuchUser, WrongPassword
from pop3kit.interfaces import ISCRAMKeySource, IUserSettingsSource

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorThreads

__all__ = [
    "ARGON2_MEMORY_COST",
    "ARGON2_PARALLELISM",
    "ARGON2_TIME_COST",
    "BCRYPT_COST",
    "DEFAULT_SCHEME",
    "HASH_SCHEMES",
    "SCRAM_ITERATIONS",
    "SHA_CRYPT_ROUNDS",
    "DuplicateUser",
    "PasswdFileChecker",
    "PasswdFileCheckerFactory",
    "UnknownUser",
    "addUser",
    "hashPassword",
    "listUsers",
    "removeUser",
    "setPassword",
    "validateUserName",
    "verifyPassword",
]

_FAILURE_MESSAGE = "Authentication failed."


@implementer(ICredentialsChecker, ISCRAMKeySource, IUserSettingsSource)
class PasswdFileChecker:
    """
    Check passwords against a Dovecot C{passwd-file}.

    The file is read again whenever its size, modification time or inode change (one
    C{stat} per login), so edits such as C{pop3kit user add} take effect at once.  Hashed
    passwords are verified in the reactor's thread pool; C{PLAIN} ones in place.  An
    unknown user costs a verification against a dummy hash of L{DEFAULT_SCHEME}, so that
    the time taken does not tell whether the user exists.

    C{APOP} and SASL C{CRAM-MD5} credentials (L{IUsernameHashedPassword}) can only be
    checked for users whose password is stored in a C{PLAIN} scheme; for any other user
    they fail.

    As an L{ISCRAMKeySource} it serves SASL C{SCRAM-SHA-1} and C{SCRAM-SHA-256} logins:
    see L{scramKeys}.

    As an L{IUserSettingsSource} it gives the LOGIN-DELAY and EXPIRE of the users whose
    extra fields set them: see L{userSettings}.

    The avatar ID is the user name as a L{str}.
    """

    credentialInterfaces = (IUsernamePassword, IUsernameHashedPassword)

    log = Logger()

    def __init__(self, path: str, reactor: IReactorThreads | None = None) -> None:
        """
        @param path: The passwd-file; it need not exist yet (nobody can log in until it
            does).
        @param reactor: Runs the password verifications in its thread pool; the global
            reactor by default.
        """
        if reactor is None:
            from twisted.internet import reactor as installed

            reactor = cast("IReactorThreads", installed)
        self._path = path
        self._reactor = reactor
        self._signature: object = None
        self._entries: dict[str, _Verifier | None] = {}
        self._settings: dict[str, UserSettings] = {}

    def _reload(self) -> None:
        """
        Read the file again if it changed since the last read.
        """
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            signature: object = "missing"
        except OSError as e:
            signature = ("error", e.errno)
        else:
            signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if signature == self._signature:
            return
        self._signature = signature
        self._entries = {}
        self._settings = {}
        try:
            with open(self._path, "rb") as f:
                data = f.read()
        except OSError as e:
            self.log.warn(
                "passwd-file {path}: cannot read ({error}); nobody can log in",
                path=self._path,
                error=e.strerror,
            )
            return
        self._entries = self._parse(data)
        self._settings = parseUserSettings(data, self._badSetting)

    def _badSetting(self, lineNumber: int, user: str, problem: str) -> None:
        self.log.warn(
            "passwd-file {path}: line {lineNumber}: user {user!r}: {problem}",
            path=self._path,
            lineNumber=lineNumber,
            user=user,
            problem=problem,
        )

    def userSettings(self, avatarId: str) -> Deferred[UserSettings]:
        """
        The LOGIN-DELAY and EXPIRE of C{avatarId} from the extra fields of its line:
        C{pop3kit_login_delay=<seconds>} and C{pop3kit_expire=<days>|NEVER}, each also
        with Dovecot's C{userdb_} prefix.  A value not given (or not valid, which is
        logged) is L{None}: the server's.
        """
        self._reload()
        return succeed(self._settings.get(avatarId, UserSettings()))

    def _parse(self, data: bytes) -> dict[str, _Verifier | None]:
        entries: dict[str, _Verifier | None] = {}
        for lineNumber, name, field in _iterEntries(data):
            if name is None:
                self.log.warn(
                    "passwd-file {path}: line {lineNumber}: no ':' or no valid user name; ignored",
                    path=self._path,
                    lineNumber=lineNumber,
                )
                continue
            if name in entries:
                self.log.warn(
                    "passwd-file {path}: line {lineNumber}: user {user!r} appears more "
                    "than once; the first entry counts",
                    path=self._path,
                    lineNumber=lineNumber,
                    user=name,
                )
                continue
            entries[name] = None
            if field == "":
                # Dovecot's userdb-only files leave the password empty: no login.
                continue
            if field is None:
                reason = "the password field is not valid UTF-8"
            else:
                try:
                    entries[name] = _parseStored(field)
                except _BadEntry as e:
                    reason = str(e)
                else:
                    continue
            self.log.warn(
                "passwd-file {path}: line {lineNumber}: user {user!r} cannot log in: {reason}",
                path=self._path,
                lineNumber=lineNumber,
                user=name,
                reason=reason,
            )
        return entries

    def _lookup(self, username: bytes) -> tuple[str | None, _Verifier | None]:
        self._reload()
        try:
            name = username.decode("utf-8")
        except UnicodeDecodeError:
            return None, None
        return name, self._entries.get(name)

    def hasUser(self, name: str) -> bool:
        """
        Whether the file has an entry for C{name}, whether or not it can log in (Dovecot's
        userdb-only entries have no password, and still receive mail).

        @raise OSError: Never: an unreadable file is logged and has no users.
        """
        self._reload()
        return name in self._entries

    # pop3kit's avatar IDs are user names as str, not Twisted's historical bytes.
    def requestAvatarId(self, credentials: ICredentials) -> Deferred[str]:  # type: ignore[override]
        """
        Check C{USER}/C{PASS} (L{IUsernamePassword}) or C{APOP}
        (L{IUsernameHashedPassword}) credentials.

        @param credentials: The credentials to check.
        @return: A L{Deferred} firing with the user name, or failing with
            L{UnauthorizedLogin}: L{pop3kit.cred.NoSuchUser} or
            L{pop3kit.cred.WrongPassword} for the server's log, with the same message.
        """
        up = IUsernamePassword(credentials, None)
        if up is not None:
            name, verifier = self._lookup(up.username)
            password: bytes = up.password
            if verifier is None or name is None:
                name = None
                d: Deferred[bool] = self._inThread(_checkUnknownUser, password)
            elif verifier.plaintext is not None:
                d = succeed(_safeCheck(verifier, password))
            else:
                d = self._inThread(_safeCheck, verifier, password)
            return d.addCallback(_matched, name)
        hp = IUsernameHashedPassword(credentials, None)
        if hp is not None:
            name, verifier = self._lookup(hp.username)
            if name is None or verifier is None:
                return fail(NoSuchUser(_FAILURE_MESSAGE))
            if verifier.plaintext is None:
                return fail(UnauthorizedLogin(_FAILURE_MESSAGE))
            return maybeDeferred(hp.checkPassword, verifier.plaintext).addCallback(_matched, name)
        return fail(UnhandledCredentials(f"cannot check {credentials!r}"))

    def scramKeys(self, username: str, mechanism: str) -> Deferred[SCRAMKeys | None]:
        """
        The SCRAM keys of C{username} for C{mechanism}.

        A C{SCRAM-SHA-256} or C{SCRAM-SHA-1} entry gives its stored keys, for its own
        mechanism only.  A C{PLAIN} entry gives keys derived from the password, with a
        salt derived from the user name and a secret of the process, so that repeated
        logins see the same salt while the process runs; the derivation (a PBKDF2 of
        L{SCRAM_ITERATIONS}) runs in the reactor's thread pool and is remembered.  Any
        other entry, and an unknown user, give L{None}.

        @param username: The user name, prepared with SASLprep.
        @param mechanism: C{"SCRAM-SHA-1"} or C{"SCRAM-SHA-256"} (case-insensitive).
        @return: A L{Deferred} firing with the keys or L{None}.
        """
        mechanism = mechanism.upper()
        if mechanism not in SCRAM_HASHES:
            return succeed(None)
        self._reload()
        verifier = self._entries.get(username)
        if verifier is None:
            return succeed(None)
        if verifier.scram is not None:
            storedMechanism, keys = verifier.scram
            return succeed(keys if storedMechanism == mechanism else None)
        if verifier.plaintext is not None:
            return deferToThreadPool(
                self._reactor,
                self._reactor.getThreadPool(),
                _derivedSCRAMKeys,
                username,
                mechanism,
                verifier.plaintext,
            )
        return succeed(None)

    def _inThread(self, f: Callable[..., bool], *args: object) -> Deferred[bool]:
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), f, *args)


def _matched(result: object, name: str | None) -> str:
    if name is None:
        raise NoSuchUser(_FAILURE_MESSAGE)
    if result is True:
        return name
    raise WrongPassword(_FAILURE_MESSAGE)


@implementer(ICheckerFactory, IPlugin)
class PasswdFileCheckerFactory:
    """
    Makes L{PasswdFileChecker}s for C{twistd}'s C{--auth passwd-file:PATH}.
    """

    authType = "passwd-file"
    authHelp = """
Checks user names and passwords against a Dovecot passwd-file: one
'user:password' line per user (further ':'-separated fields are ignored),
where the password is '{SCHEME}data' (SCRAM-SHA-256, ARGON2ID, SHA512-CRYPT,
BLF-CRYPT, SSHA512, PLAIN and more) or a bare crypt(3) hash.  SCRAM-SHA-256,
SCRAM-SHA-1 and PLAIN entries also serve SASL SCRAM logins.  The file is
re-read when it changes.  Create entries with 'pop3kit user add'.
"""
    argStringFormat = "The path of a Dovecot passwd-file."
    credentialInterfaces = (IUsernamePassword, IUsernameHashedPassword)

    def generateChecker(self, argstring: str) -> PasswdFileChecker:
        """
        Make a checker for the file named by C{argstring}.

        @param argstring: The path of the passwd-file.
        @raise ValueError: If no path is given.
        """
        if not argstring.strip():
            raise ValueError(f"{self.authType!r} requires the path of a passwd-file")
        return PasswdFileChecker(argstring)
