# -*- test-case-name: tests.test_checker_passwdfile -*-
"""
A credentials checker for Dovecot's C{passwd-file} format, and tools to edit such files.

Each line of the file is C{user:password:uid:gid:gecos:home:shell:extra_fields}; only the
first two fields matter here, and a line may stop after the password.  Empty lines and
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
    length says so, as Dovecot does).

A user whose entry cannot be understood cannot log in, and a warning naming the file, the
line and the user (never the password field) is logged.

L{hashPassword}, L{addUser}, L{setPassword} and L{removeUser} write files that both this
checker and Dovecot read; C{pop3kit user add} uses them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

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

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorThreads

__all__ = [
    "ARGON2_MEMORY_COST",
    "ARGON2_PARALLELISM",
    "ARGON2_TIME_COST",
    "BCRYPT_COST",
    "DEFAULT_SCHEME",
    "HASH_SCHEMES",
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

DEFAULT_SCHEME = "ARGON2ID"
"""
The scheme L{hashPassword} uses unless told otherwise.
"""

HASH_SCHEMES = ("ARGON2ID", "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "SSHA512", "PLAIN")
"""
The schemes L{hashPassword} can write, best first.
"""

ARGON2_MEMORY_COST = 19456
"""
Argon2id memory cost in KiB (19 MiB), with L{ARGON2_TIME_COST} passes and
L{ARGON2_PARALLELISM} lane: the OWASP minimum recommendation.  A verification takes some
30 ms of one core, and the memory is held only while it runs, which suits a mail server
where clients log in every few minutes.  Dovecot verifies through libsodium, which accepts
only one lane; the hash is 32 bytes with a 16-byte salt, as libsodium writes them.
"""

ARGON2_TIME_COST = 2
"""
Argon2id passes over memory; see L{ARGON2_MEMORY_COST}.
"""

ARGON2_PARALLELISM = 1
"""
Argon2id lanes; must be 1 for libsodium (and so Dovecot) to verify the hash.
"""

SHA_CRYPT_ROUNDS = 100_000
"""
Rounds for C{SHA512-CRYPT} and C{SHA256-CRYPT} (glibc's default is 5000, far too few
today; this is some 50 ms per verification).
"""

BCRYPT_COST = 10
"""
The C{BLF-CRYPT} cost (2**10 rounds, some 60 ms per verification).
"""

_FAILURE_MESSAGE = "Authentication failed."
_BCRYPT_MAX_BYTES = 72
_FORBIDDEN_IN_FIELD = (":", "\n", "\r", "\0")

_log = Logger()


class DuplicateUser(ValueError):
    """
    L{addUser} was asked to add a user who is already in the file.
    """


class UnknownUser(LookupError):
    """
    L{setPassword} or L{removeUser} was asked about a user who is not in the file.
    """


def validateUserName(name: str) -> str:
    """
    Check that C{name} can be written to a passwd-file.

    @param name: The user name.
    @return: C{name}, unchanged.
    @raise ValueError: If the name is empty, starts with C{#} (a comment), or contains
        C{:}, a line break or NUL.
    """
    if not name:
        raise ValueError("user name is empty")
    if name.startswith("#"):
        raise ValueError("user name must not start with '#'")
    for bad in _FORBIDDEN_IN_FIELD:
        if bad in name:
            raise ValueError(f"user name must not contain {bad!r}")
    return name


# --- verifying stored passwords -------------------------------------------------------


class _BadEntry(ValueError):
    """
    A password field that cannot be understood; the message never contains the field.
    """


@dataclass(frozen=True)
class _Verifier:
    """
    A parsed password field.

    @ivar check: Compare a candidate password against the stored one.
    @ivar plaintext: The clear-text password for C{PLAIN} schemes (so C{APOP} can be
        checked and verification needs no thread), else L{None}.
    """

    check: Callable[[bytes], bool]
    plaintext: bytes | None = None


def _plainVerifier(stored: bytes) -> _Verifier:
    return _Verifier(functools.partial(_compareBytes, stored), stored)


def _compareBytes(stored: bytes, candidate: bytes) -> bool:
    return hmac.compare_digest(stored, candidate)


def _passlibVerifier(handler: Any, stored: str, truncate: int | None = None) -> _Verifier:
    try:
        parsed = handler.from_string(stored)
    except ValueError as e:
        raise _BadEntry(f"malformed {handler.name} hash") from e
    if not parsed.checksum:
        # passlib also parses bare settings such as "$6$salt", which match nothing.
        raise _BadEntry(f"malformed {handler.name} hash")

    def check(candidate: bytes) -> bool:
        if truncate is not None:
            # crypt_blowfish (and so Dovecot) uses only the first 72 bytes.
            candidate = candidate[:truncate]
        return bool(handler.verify(candidate, stored))

    return _Verifier(check)


def _cryptVerifier(stored: str, prefixes: tuple[str, ...] | None = None) -> _Verifier:
    from passlib.hash import argon2, bcrypt, md5_crypt, sha256_crypt, sha512_crypt

    table: tuple[tuple[str, Any, int | None], ...] = (
        ("$6$", sha512_crypt, None),
        ("$5$", sha256_crypt, None),
        ("$2y$", bcrypt, _BCRYPT_MAX_BYTES),
        ("$2b$", bcrypt, _BCRYPT_MAX_BYTES),
        ("$2a$", bcrypt, _BCRYPT_MAX_BYTES),
        ("$argon2id$", argon2, None),
        ("$argon2i$", argon2, None),
        ("$1$", md5_crypt, None),
    )
    for prefix, handler, truncate in table:
        if stored.startswith(prefix) and (prefixes is None or prefix in prefixes):
            return _passlibVerifier(handler, stored, truncate)
    raise _BadEntry("unsupported or malformed crypt hash")


def _decode(data: str, encoding: str, rawLength: int | None) -> bytes:
    """
    Decode a Dovecot-encoded password: C{encoding} is C{"base64"}, C{"hex"} or C{""}
    (the scheme's default, base64, but hex if the length says so, as Dovecot does).
    """
    try:
        if encoding == "hex" or (
            encoding == "" and rawLength is not None and len(data) == 2 * rawLength
        ):
            return bytes.fromhex(data)
        return base64.b64decode(data, validate=True)
    except (ValueError, binascii.Error) as e:
        raise _BadEntry("password data is not validly encoded") from e


def _digestVerifier(algorithm: str, data: str, encoding: str, salted: bool) -> _Verifier:
    size = hashlib.new(algorithm).digest_size
    raw = _decode(data, encoding, None if salted else size)
    if len(raw) < size or (not salted and len(raw) != size):
        raise _BadEntry(f"password data has the wrong length for {algorithm}")
    expected, salt = raw[:size], raw[size:]

    def check(candidate: bytes) -> bool:
        return hmac.compare_digest(hashlib.new(algorithm, candidate + salt).digest(), expected)

    return _Verifier(check)


_DIGESTS = {
    "SHA": ("sha1", False),
    "SHA1": ("sha1", False),
    "SHA256": ("sha256", False),
    "SHA512": ("sha512", False),
    "SSHA": ("sha1", True),
    "SSHA256": ("sha256", True),
    "SSHA512": ("sha512", True),
}

_CRYPT_PREFIXES = {
    "SHA512-CRYPT": ("$6$",),
    "SHA256-CRYPT": ("$5$",),
    "BLF-CRYPT": ("$2y$", "$2b$", "$2a$"),
    "MD5-CRYPT": ("$1$",),
    "MD5": ("$1$",),
    "ARGON2ID": ("$argon2id$",),
    "ARGON2I": ("$argon2i$",),
}

_ENCODINGS = {"B64": "base64", "BASE64": "base64", "HEX": "hex"}


def _parseStored(field: str) -> _Verifier:
    """
    Parse one password field.

    @raise _BadEntry: If the scheme is unknown or the data malformed.
    """
    if field.startswith("{") and "}" in field:
        scheme, _, data = field[1:].partition("}")
        scheme = scheme.upper()
    else:
        scheme, data = "CRYPT", field
    base, dot, suffix = scheme.partition(".")
    encoding = _ENCODINGS.get(suffix, "?") if dot else ""
    if encoding == "?":
        raise _BadEntry(f"unknown password encoding in scheme {scheme!r}")
    if base in ("PLAIN", "CLEARTEXT"):
        if encoding == "":
            return _plainVerifier(data.encode("utf-8"))
        if encoding == "hex":
            try:
                return _plainVerifier(bytes.fromhex(data))
            except ValueError as e:
                raise _BadEntry("password data is not validly encoded") from e
        return _plainVerifier(_decode(data, encoding, None))
    if base in _DIGESTS:
        algorithm, salted = _DIGESTS[base]
        return _digestVerifier(algorithm, data, encoding, salted)
    if encoding:
        raise _BadEntry(f"unknown password scheme {scheme!r}")
    if base == "CRYPT":
        return _cryptVerifier(data)
    if base in _CRYPT_PREFIXES:
        return _cryptVerifier(data, _CRYPT_PREFIXES[base])
    raise _BadEntry(f"unknown password scheme {scheme!r}")


def _safeCheck(verifier: _Verifier, password: bytes) -> bool:
    try:
        return verifier.check(password)
    except ValueError:
        # passlib refuses some inputs (a NUL byte for the SHA crypts); a refused password
        # is a wrong password.
        return False


def verifyPassword(password: str | bytes, stored: str) -> bool:
    """
    Check a password against one passwd-file password field, in constant time.

    This may take tens of milliseconds of CPU; do not call it in the reactor thread.

    @param password: The candidate password; L{str} is encoded as UTF-8.
    @param stored: The password field, e.g. C{"{SSHA512}..."}.
    @return: C{True} if the password matches.
    @raise ValueError: If the scheme is unknown or the field malformed.
    """
    if isinstance(password, str):
        password = password.encode("utf-8")
    return _safeCheck(_parseStored(stored), password)


@functools.cache
def _dummyVerifier() -> _Verifier:
    """
    A verifier of the default scheme for a random password, to spend as much time on an
    unknown user as on a known one.
    """
    return _parseStored(hashPassword(secrets.token_urlsafe(16)))


def _checkUnknownUser(password: bytes) -> bool:
    _safeCheck(_dummyVerifier(), password)
    return False


# --- the file and the checker --------------------------------------------------------


def _iterEntries(data: bytes) -> Iterator[tuple[int, str | None, str | None]]:
    """
    Split a passwd-file into entries.

    @return: An iterator of C{(lineNumber, name, passwordField)}, skipping blank and
        comment lines; C{name} is L{None} for a line that has no usable user name (or
        no C{:} at all), C{passwordField} is L{None} if it is not valid UTF-8.
    """
    for lineNumber, rawLine in enumerate(data.split(b"\n"), start=1):
        line = rawLine.removesuffix(b"\r")
        if not line.strip() or line.startswith(b"#"):
            continue
        rawName, colon, rest = line.partition(b":")
        if not colon:
            # Perhaps a password pasted on a line of its own: do not call it a name.
            yield lineNumber, None, None
            continue
        try:
            name: str | None = rawName.decode("utf-8")
        except UnicodeDecodeError:
            name = None
        if name == "" or (name is not None and "\0" in name):
            name = None
        try:
            password: str | None = rest.partition(b":")[0].decode("utf-8")
        except UnicodeDecodeError:
            password = None
        yield lineNumber, name, password


@implementer(ICredentialsChecker)
class PasswdFileChecker:
    """
    Check passwords against a Dovecot C{passwd-file}.

    The file is read again whenever its size, modification time or inode change (one
    C{stat} per login), so edits such as C{pop3kit user add} take effect at once.  Hashed
    passwords are verified in the reactor's thread pool; C{PLAIN} ones in place.  An
    unknown user costs a verification against a dummy hash of L{DEFAULT_SCHEME}, so that
    the time taken does not tell whether the user exists.

    C{APOP} credentials (L{IUsernameHashedPassword}) can only be checked for users whose
    password is stored in a C{PLAIN} scheme; for any other user they fail.

    The avatar ID is the user name as a L{str}.
    """

    credentialInterfaces = (IUsernamePassword, IUsernameHashedPassword)

    _log = _log

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
        try:
            with open(self._path, "rb") as f:
                data = f.read()
        except OSError as e:
            self._log.warn(
                "passwd-file {path}: cannot read ({error}); nobody can log in",
                path=self._path,
                error=e.strerror,
            )
            return
        self._entries = self._parse(data)

    def _parse(self, data: bytes) -> dict[str, _Verifier | None]:
        entries: dict[str, _Verifier | None] = {}
        for lineNumber, name, field in _iterEntries(data):
            if name is None:
                self._log.warn(
                    "passwd-file {path}: line {lineNumber}: no ':' or no valid user name; ignored",
                    path=self._path,
                    lineNumber=lineNumber,
                )
                continue
            if name in entries:
                self._log.warn(
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
            self._log.warn(
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

    # pop3kit's avatar IDs are user names as str, not Twisted's historical bytes.
    def requestAvatarId(self, credentials: ICredentials) -> Deferred[str]:  # type: ignore[override]
        """
        Check C{USER}/C{PASS} (L{IUsernamePassword}) or C{APOP}
        (L{IUsernameHashedPassword}) credentials.

        @param credentials: The credentials to check.
        @return: A L{Deferred} firing with the user name, or failing with
            L{UnauthorizedLogin} (the same message whether the user is unknown or the
            password wrong).
        """
        up = IUsernamePassword(credentials, None)
        if up is not None:
            name, verifier = self._lookup(up.username)
            password: bytes = up.password
            if verifier is None or name is None:
                d: Deferred[bool] = self._inThread(_checkUnknownUser, password)
            elif verifier.plaintext is not None:
                d = succeed(_safeCheck(verifier, password))
            else:
                d = self._inThread(_safeCheck, verifier, password)
            return d.addCallback(_matched, name)
        hp = IUsernameHashedPassword(credentials, None)
        if hp is not None:
            name, verifier = self._lookup(hp.username)
            if name is None or verifier is None or verifier.plaintext is None:
                return fail(UnauthorizedLogin(_FAILURE_MESSAGE))
            return maybeDeferred(hp.checkPassword, verifier.plaintext).addCallback(_matched, name)
        return fail(UnhandledCredentials(f"cannot check {credentials!r}"))

    def _inThread(self, f: Callable[..., bool], *args: object) -> Deferred[bool]:
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), f, *args)


def _matched(result: object, name: str | None) -> str:
    if result is True and name is not None:
        return name
    raise UnauthorizedLogin(_FAILURE_MESSAGE)


@implementer(ICheckerFactory, IPlugin)
class PasswdFileCheckerFactory:
    """
    Makes L{PasswdFileChecker}s for C{twistd}'s C{--auth passwd-file:PATH}.
    """

    authType = "passwd-file"
    authHelp = """
Checks user names and passwords against a Dovecot passwd-file: one
'user:password' line per user (further ':'-separated fields are ignored),
where the password is '{SCHEME}data' (ARGON2ID, SHA512-CRYPT, BLF-CRYPT,
SSHA512, PLAIN and more) or a bare crypt(3) hash.  The file is re-read when it
changes.  Create entries with 'pop3kit user add'.
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


# --- writing ----------------------------------------------------------------------------


def hashPassword(password: str, scheme: str = DEFAULT_SCHEME) -> str:
    """
    Hash a password for a passwd-file, in a form Dovecot also understands.

    This takes tens of milliseconds of CPU (see L{ARGON2_MEMORY_COST},
    L{SHA_CRYPT_ROUNDS}, L{BCRYPT_COST}).

    @param password: The new password.
    @param scheme: One of L{HASH_SCHEMES} (case-insensitive).  C{PLAIN} writes
        C{{PLAIN.b64}} when the password contains C{:}, a line break or NUL.
    @return: The password field, e.g. C{"{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$..."}.
    @raise ValueError: For an unknown scheme, an empty password, a password that the
        scheme cannot hash (a NUL byte for the SHA crypts), or one longer than the 72
        bytes that C{BLF-CRYPT} uses.
    """
    from passlib.hash import argon2, bcrypt, ldap_salted_sha512, sha256_crypt, sha512_crypt

    scheme = scheme.upper()
    if scheme not in HASH_SCHEMES:
        raise ValueError(f"unsupported scheme {scheme!r}; choose from {', '.join(HASH_SCHEMES)}")
    if not password:
        raise ValueError("password is empty")
    secret = password.encode("utf-8")
    if scheme == "PLAIN":
        if any(bad in password for bad in _FORBIDDEN_IN_FIELD):
            return "{PLAIN.b64}" + base64.b64encode(secret).decode("ascii")
        return "{PLAIN}" + password
    if scheme == "SSHA512":
        hashed: str = ldap_salted_sha512.using(salt_size=16).hash(secret)
        return hashed  # passlib writes the "{SSHA512}" prefix itself
    if scheme == "ARGON2ID":
        hashed = argon2.using(
            type="ID",
            memory_cost=ARGON2_MEMORY_COST,
            rounds=ARGON2_TIME_COST,
            parallelism=ARGON2_PARALLELISM,
            salt_size=16,
            digest_size=32,
        ).hash(secret)
    elif scheme == "SHA512-CRYPT":
        hashed = sha512_crypt.using(rounds=SHA_CRYPT_ROUNDS).hash(secret)
    elif scheme == "SHA256-CRYPT":
        hashed = sha256_crypt.using(rounds=SHA_CRYPT_ROUNDS).hash(secret)
    else:
        if len(secret) > _BCRYPT_MAX_BYTES:
            raise ValueError(f"BLF-CRYPT uses only the first {_BCRYPT_MAX_BYTES} bytes")
        hashed = bcrypt.using(rounds=BCRYPT_COST, ident="2y").hash(secret)
    return "{" + scheme + "}" + hashed


def _validateField(passwordHash: str) -> bytes:
    if not passwordHash:
        raise ValueError("password field is empty")
    for bad in _FORBIDDEN_IN_FIELD:
        if bad in passwordHash:
            raise ValueError(f"password field must not contain {bad!r}")
    return passwordHash.encode("utf-8")


def _lineName(line: bytes) -> bytes | None:
    line = line.rstrip(b"\r\n")
    if not line.strip() or line.startswith(b"#"):
        return None
    return line.partition(b":")[0]


def _splitLines(data: bytes) -> list[bytes]:
    """
    Split into lines at LF only, as the checker does, keeping the line ends.
    """
    lines = [line + b"\n" for line in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        del lines[-1]
    return lines


@contextlib.contextmanager
def _locked(directory: str) -> Iterator[None]:
    """
    Hold an exclusive lock on C{directory} (where the platform allows), so two
    concurrent edits of a file in it do not lose one another's changes.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _rewrite(path: str, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    """
    Apply C{edit} to the lines of C{path} (line ends included) and replace the file
    atomically: write a temporary file in the same directory, C{fsync} it, and
    C{os.replace} it over the old one.  A new file gets mode C{0o600}; an existing file
    keeps its mode.  Missing parent directories are created (mode C{0o700}).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with _locked(directory):
        try:
            with open(path, "rb") as f:
                lines = _splitLines(f.read())
                mode = os.fstat(f.fileno()).st_mode & 0o7777
        except FileNotFoundError:
            lines, mode = [], 0o600
        if lines and not lines[-1].endswith(b"\n"):
            lines[-1] += b"\n"
        newLines = edit(lines)
        fd, temporary = tempfile.mkstemp(
            dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), mode)
                f.write(b"".join(newLines))
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        with contextlib.suppress(OSError):
            dirfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)


def addUser(path: str, name: str, passwordHash: str) -> None:
    """
    Add a user to a passwd-file, creating the file (mode C{0o600}) if need be.

    Other lines, comments included, are kept as they are.

    @param path: The passwd-file.
    @param name: The user name (see L{validateUserName}).
    @param passwordHash: The password field, e.g. from L{hashPassword}.
    @raise ValueError: If the name or the password field is invalid.
    @raise DuplicateUser: If the user is already in the file.
    @raise OSError: If the file cannot be read or written.
    """
    nameBytes = validateUserName(name).encode("utf-8")
    field = _validateField(passwordHash)

    def edit(lines: list[bytes]) -> list[bytes]:
        if any(_lineName(line) == nameBytes for line in lines):
            raise DuplicateUser(f"user {name!r} already exists")
        return [*lines, nameBytes + b":" + field + b"\n"]

    _rewrite(path, edit)


def listUsers(path: str) -> list[str]:
    """
    List the user names in a passwd-file, in file order.

    @param path: The passwd-file.
    @return: The names; lines without a valid UTF-8 name are left out.
    @raise OSError: If the file cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read()
    return [name for _, name, _ in _iterEntries(data) if name is not None]


def setPassword(path: str, name: str, passwordHash: str) -> None:
    """
    Replace a user's password field, keeping the other fields of the line and the rest
    of the file.

    @param path: The passwd-file.
    @param name: The user name.
    @param passwordHash: The new password field, e.g. from L{hashPassword}.
    @raise ValueError: If the name or the password field is invalid.
    @raise UnknownUser: If the user is not in the file.
    @raise OSError: If the file cannot be read or written.
    """
    nameBytes = validateUserName(name).encode("utf-8")
    field = _validateField(passwordHash)

    def edit(lines: list[bytes]) -> list[bytes]:
        for index, line in enumerate(lines):
            if _lineName(line) == nameBytes:
                body = line.rstrip(b"\r\n")
                fields = body.split(b":")
                fields[1:2] = [field]
                lines[index] = b":".join(fields) + line[len(body) :]
                return lines
        raise UnknownUser(f"no user {name!r}")

    _rewrite(path, edit)


def removeUser(path: str, name: str) -> None:
    """
    Remove a user's line from a passwd-file.

    @param path: The passwd-file.
    @param name: The user name.
    @raise ValueError: If the name is invalid.
    @raise UnknownUser: If the user is not in the file.
    @raise OSError: If the file cannot be read or written.
    """
    nameBytes = validateUserName(name).encode("utf-8")

    def edit(lines: list[bytes]) -> list[bytes]:
        kept = [line for line in lines if _lineName(line) != nameBytes]
        if len(kept) == len(lines):
            raise UnknownUser(f"no user {name!r}")
        return kept

    _rewrite(path, edit)
