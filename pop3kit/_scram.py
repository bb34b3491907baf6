"""
SCRAM key material (RFC 5802 section 3): what a server stores instead of a password.

This module imports nothing of pop3kit's, so that L{pop3kit.interfaces} can name
L{SCRAMKeys} without an import cycle.  The public names are exported by L{pop3kit.sasl}.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCRAM_HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}
"""
The SCRAM mechanisms pop3kit implements, with the name of their hash in L{hashlib}.
"""

MIN_ITERATIONS = 4096
"""
The fewest PBKDF2 iterations accepted (RFC 7677 section 4; scramp refuses fewer).
"""

MAX_ITERATIONS = 10_000_000
"""
The most PBKDF2 iterations accepted (scramp's guard against a client being made to
spend minutes on one login).
"""

MIN_SALT_LENGTH = 12
"""
The shortest salt accepted, in octets (scramp refuses shorter ones).
"""

DEFAULT_SALT_LENGTH = 16
"""
The length of new salts, in octets, as Dovecot writes them.
"""

_PROCESS_SECRET = secrets.token_bytes(32)
"""
A random key, new in each process, from which salts and dummy keys are derived for users
whose keys are not stored.
"""


def _hashName(mechanism: str) -> str:
    try:
        return SCRAM_HASHES[mechanism.upper()]
    except KeyError:
        raise ValueError(f"unsupported SCRAM mechanism {mechanism!r}") from None


@dataclass(frozen=True, repr=False)
class SCRAMKeys:
    """
    The keys a server stores for one user and one SCRAM mechanism.

    With them the server verifies a client's proof and proves itself to the client,
    without knowing the password.  They are still secrets: whoever holds them and
    listens to one exchange can impersonate the user, so C{repr} does not show them.

    @ivar iterations: The PBKDF2 iteration count, between L{MIN_ITERATIONS} and
        L{MAX_ITERATIONS}.
    @ivar salt: The PBKDF2 salt, at least L{MIN_SALT_LENGTH} octets.
    @ivar storedKey: C{H(HMAC(SaltedPassword, "Client Key"))}.
    @ivar serverKey: C{HMAC(SaltedPassword, "Server Key")}.
    """

    iterations: int
    salt: bytes
    storedKey: bytes
    serverKey: bytes

    def __post_init__(self) -> None:
        """
        Check that the keys can be used by a SCRAM exchange.

        @raise ValueError: If the iteration count or the salt length is out of range, or
            a key is empty or not L{bytes}.
        """
        if type(self.iterations) is not int or not (
            MIN_ITERATIONS <= self.iterations <= MAX_ITERATIONS
        ):
            raise ValueError(
                f"SCRAM iteration count must be from {MIN_ITERATIONS} to {MAX_ITERATIONS}"
            )
        for name in ("salt", "storedKey", "serverKey"):
            if not isinstance(getattr(self, name), bytes):
                raise ValueError(f"SCRAM {name} must be bytes")
        if len(self.salt) < MIN_SALT_LENGTH:
            raise ValueError(f"SCRAM salt must be at least {MIN_SALT_LENGTH} octets")
        if not self.storedKey or len(self.storedKey) != len(self.serverKey):
            raise ValueError("SCRAM keys must be non-empty and of the same length")

    def __repr__(self) -> str:
        """
        Show the iteration count and salt length, never the keys.
        """
        return (
            f"<SCRAMKeys iterations={self.iterations} salt=<{len(self.salt)} octets>"
            " keys=<redacted>>"
        )

    def matchesMechanism(self, mechanism: str) -> bool:
        """
        Whether the keys have the length of C{mechanism}'s hash.

        @param mechanism: C{"SCRAM-SHA-1"} or C{"SCRAM-SHA-256"}.
        @raise ValueError: For another mechanism.
        """
        return len(self.storedKey) == hashlib.new(_hashName(mechanism)).digest_size

    @classmethod
    def fromPassword(
        cls,
        password: str,
        mechanism: str,
        *,
        iterations: int = MIN_ITERATIONS,
        salt: bytes | None = None,
    ) -> SCRAMKeys:
        """
        Derive the keys of a password.

        The password is prepared with SASLprep (RFC 4013) first, as RFC 5802 requires,
        so the keys match what a SCRAM client computes.  This runs PBKDF2 C{iterations}
        times: some milliseconds of CPU for the default count.

        @param password: The clear-text password.
        @param mechanism: C{"SCRAM-SHA-1"} or C{"SCRAM-SHA-256"} (case-insensitive).
        @param iterations: The PBKDF2 iteration count.
        @param salt: The salt; by default L{DEFAULT_SALT_LENGTH} random octets.
        @raise ValueError: For an unknown mechanism, an iteration count or salt out of
            range, or a password that SASLprep prohibits (a control character, say).
        """
        from scramp import ScramException, ScramMechanism

        hashName = _hashName(mechanism)
        if salt is None:
            salt = secrets.token_bytes(DEFAULT_SALT_LENGTH)
        # Check the ranges ourselves, with our message, before scramp does.
        cls(iterations, salt, b"\0", b"\0")
        try:
            _, storedKey, serverKey, _ = ScramMechanism(mechanism.upper()).make_auth_info(
                _saslprep(password), iterations, salt
            )
        except ScramException as e:
            raise ValueError(f"cannot derive SCRAM keys: {e}") from None
        assert len(storedKey) == hashlib.new(hashName).digest_size
        return cls(iterations, salt, storedKey, serverKey)


def _saslprep(text: str) -> str:
    """
    SASLprep (RFC 4013, stored strings) through passlib.

    @raise ValueError: If the string holds a prohibited character.
    """
    if text.isascii() and text.isprintable():
        # Printable ASCII maps to itself and holds nothing prohibited: skip the tables
        # (a third of a plain session's CPU time otherwise).
        return text
    from passlib.utils import saslprep

    prepared: str = saslprep(text)
    return prepared


def derivedSalt(username: str, mechanism: str) -> bytes:
    """
    A salt for a user without stored SCRAM keys: the same for the same user name for the
    life of the process, and unpredictable without the process's secret.

    @param username: The (prepared) user name.
    @param mechanism: The SCRAM mechanism.
    """
    message = b"salt\0" + mechanism.upper().encode("ascii") + b"\0" + username.encode("utf-8")
    return hmac.new(_PROCESS_SECRET, message, "sha256").digest()[:DEFAULT_SALT_LENGTH]


def dummyKeys(username: str, mechanism: str) -> SCRAMKeys:
    """
    Keys for a user who has none (unknown, or no SCRAM-capable password), which match
    no password anybody knows, with the same iteration count and kind of salt as real
    keys, so that the exchange looks alike until its end.

    Deriving them costs two HMACs, no PBKDF2.

    @param username: The (prepared) user name.
    @param mechanism: The SCRAM mechanism.
    """
    hashName = _hashName(mechanism)
    base = mechanism.upper().encode("ascii") + b"\0" + username.encode("utf-8")
    storedKey = hmac.new(_PROCESS_SECRET, b"stored\0" + base, hashName).digest()
    serverKey = hmac.new(_PROCESS_SECRET, b"server\0" + base, hashName).digest()
    return SCRAMKeys(MIN_ITERATIONS, derivedSalt(username, mechanism), storedKey, serverKey)
