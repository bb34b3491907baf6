"""
Password schemes of Dovecot's passwd-file: parsing stored password fields, verifying
candidates against them, and hashing new passwords.  The supported schemes are listed in
L{pop3kit.checkers.passwdfile}, which exports the public names.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pop3kit._scram import SCRAM_HASHES, SCRAMKeys, _saslprep, derivedSalt

if TYPE_CHECKING:
    pass

DEFAULT_SCHEME = "SCRAM-SHA-256"
"""
The scheme L{hashPassword} uses unless told otherwise.  SCRAM-SHA-256 keys serve every
login a pop3kit server offers except C{APOP} and C{CRAM-MD5}: C{USER}/C{PASS}, SASL
C{PLAIN} and C{LOGIN} (verified like any hash), and SASL C{SCRAM-SHA-256}, which never
sends the password and also proves the server's knowledge of it to the client.  The
price: with its 4096 PBKDF2 iterations, a stolen file is cheaper to attack than one of
C{ARGON2ID} hashes.  Choose C{ARGON2ID} for accounts that log in only with a password
sent in clear (over TLS).
"""

HASH_SCHEMES = (
    "SCRAM-SHA-256",
    "ARGON2ID",
    "SHA512-CRYPT",
    "SHA256-CRYPT",
    "BLF-CRYPT",
    "SSHA512",
    "SCRAM-SHA-1",
    "PLAIN",
)
"""
The schemes L{hashPassword} can write, the default first.
"""

SCRAM_ITERATIONS = 4096
"""
The PBKDF2 iteration count of new C{SCRAM-SHA-1} and C{SCRAM-SHA-256} entries: RFC 7677's
minimum and Dovecot's default.  A client spends this on each login, and the server on
each clear-text login of such a user (a few milliseconds).
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
    @ivar scram: For the C{SCRAM-*} schemes, the mechanism and the stored keys.
    """

    check: Callable[[bytes], bool]
    plaintext: bytes | None = None
    scram: tuple[str, SCRAMKeys] | None = None


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


def _scramVerifier(mechanism: str, data: str) -> _Verifier:
    """
    Parse Dovecot's SCRAM field C{iterations,b64(salt),b64(StoredKey),b64(ServerKey)}.
    """
    fields = data.split(",")
    if len(fields) != 4 or not fields[0].isdigit() or not fields[0].isascii():
        raise _BadEntry(f"malformed {mechanism} entry")
    try:
        salt, storedKey, serverKey = (base64.b64decode(f, validate=True) for f in fields[1:])
        keys = SCRAMKeys(int(fields[0]), salt, storedKey, serverKey)
    except (ValueError, binascii.Error) as e:
        raise _BadEntry(f"unusable {mechanism} entry: {e}") from None
    if not keys.matchesMechanism(mechanism):
        raise _BadEntry(f"{mechanism} keys have the wrong length")

    def check(candidate: bytes) -> bool:
        try:
            derived = SCRAMKeys.fromPassword(
                candidate.decode("utf-8"), mechanism, iterations=keys.iterations, salt=keys.salt
            )
        except ValueError:
            # Not UTF-8, or prohibited by SASLprep: no SCRAM client could use it either.
            return False
        return hmac.compare_digest(derived.storedKey, keys.storedKey)

    return _Verifier(check, scram=(mechanism, keys))


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
    if base in SCRAM_HASHES:
        return _scramVerifier(base, data)
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


def _derivedSCRAMKeys(username: str, mechanism: str, plaintext: bytes) -> SCRAMKeys | None:
    """
    SCRAM keys for a user whose password is stored in clear, with a salt that stays the
    same for the user while the process runs.  Remembered, since each derivation costs
    a PBKDF2.

    @return: The keys, or L{None} if the password is not UTF-8 or SASLprep prohibits it.
    """
    return _derivedSCRAMKeysCached(username, mechanism.upper(), plaintext)


@functools.lru_cache(maxsize=1024)
def _derivedSCRAMKeysCached(username: str, mechanism: str, plaintext: bytes) -> SCRAMKeys | None:
    try:
        password = plaintext.decode("utf-8")
        return SCRAMKeys.fromPassword(
            password, mechanism, iterations=SCRAM_ITERATIONS, salt=derivedSalt(username, mechanism)
        )
    except ValueError:
        return None


# --- writing ----------------------------------------------------------------------------


def hashPassword(password: str, scheme: str = DEFAULT_SCHEME) -> str:
    """
    Hash a password for a passwd-file, in a form Dovecot also understands.

    This takes tens of milliseconds of CPU (see L{ARGON2_MEMORY_COST},
    L{SHA_CRYPT_ROUNDS}, L{BCRYPT_COST}).

    The password is first prepared with SASLprep (RFC 4013), as the server prepares
    the passwords it receives and as SCRAM clients prepare theirs: a no-break space
    becomes a space, a soft hyphen disappears, text is normalised to NFKC.

    @param password: The new password.
    @param scheme: One of L{HASH_SCHEMES} (case-insensitive).  C{PLAIN} writes
        C{{PLAIN.b64}} when the password contains C{:}, a line break or NUL, and keeps a
        password that SASLprep prohibits as it is (only APOP and CRAM-MD5, which use it
        verbatim, can then log in).  The C{SCRAM-*} schemes write Dovecot's
        C{{SCRAM-SHA-256}iterations,salt,StoredKey,ServerKey} (base64, a 16-octet salt,
        L{SCRAM_ITERATIONS}).
    @return: The password field, e.g. C{"{SCRAM-SHA-256}4096,..."}.
    @raise ValueError: For an unknown scheme, an empty password, a password with a
        character SASLprep prohibits (a control character, say; except for C{PLAIN}),
        or one longer than the 72 bytes that C{BLF-CRYPT} uses.
    """
    from passlib.hash import argon2, bcrypt, ldap_salted_sha512, sha256_crypt, sha512_crypt

    scheme = scheme.upper()
    if scheme not in HASH_SCHEMES:
        raise ValueError(f"unsupported scheme {scheme!r}; choose from {', '.join(HASH_SCHEMES)}")
    if not password:
        raise ValueError("password is empty")
    try:
        prepared = _saslprep(password)
    except ValueError as e:
        if scheme != "PLAIN":
            raise ValueError(f"SASLprep refuses this password: {e}") from None
    else:
        if not prepared and scheme != "PLAIN":
            raise ValueError("password is empty after SASLprep")
        password = prepared or password
    secret = password.encode("utf-8")
    if scheme == "PLAIN":
        if any(bad in password for bad in _FORBIDDEN_IN_FIELD):
            return "{PLAIN.b64}" + base64.b64encode(secret).decode("ascii")
        return "{PLAIN}" + password
    if scheme in SCRAM_HASHES:
        keys = SCRAMKeys.fromPassword(password, scheme, iterations=SCRAM_ITERATIONS)
        fields = [str(keys.iterations)] + [
            base64.b64encode(k).decode("ascii") for k in (keys.salt, keys.storedKey, keys.serverKey)
        ]
        return "{" + scheme + "}" + ",".join(fields)
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
