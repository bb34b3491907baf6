"""
Tests for L{pop3kit.checkers.passwdfile}.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from twisted.cred import strcred
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import Anonymous, ICredentials, UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from pop3kit.checkers import _schemes, passwdfile
from pop3kit.checkers.passwdfile import (
    DuplicateUser,
    PasswdFileChecker,
    PasswdFileCheckerFactory,
    UnknownUser,
    addUser,
    hashPassword,
    listUsers,
    removeUser,
    setPassword,
    validateUserName,
    verifyPassword,
)
from pop3kit.cred import APOPCredentials, CRAMMD5Credentials
from pop3kit.errors import AuthenticationFailed
from pop3kit.interfaces import ISCRAMKeySource
from pop3kit.sasl import (
    Challenge,
    NeedSCRAMKeys,
    SCRAMKeys,
    Step,
    Verified,
    clientMechanism,
    serverMechanism,
)

_P = ParamSpec("_P")
_R = TypeVar("_R")

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Known-good vectors, each from a source independent of passlib: the SHA-crypt
# specification (Drepper), the crypt_blowfish test suite, the Argon2 reference
# implementation's test.c, glibc crypt(3) for MD5-crypt, and hashlib for the rest.
SHA512_CRYPT = (
    "Hello world!",
    "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcb"
    "YEdFCoEOfaS35inz1",
)
SHA512_CRYPT_ROUNDS = (
    "Hello world!",
    "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0"
    "Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
)
SHA256_CRYPT = ("Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5")
BLF_CRYPT = ("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")
MD5_CRYPT = ("password", "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/")
ARGON2I = (
    "password",
    "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
)
ARGON2ID = (
    "password",
    "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
)
# "password" with the salt 01..08.
SSHA512 = (
    "{SSHA512}cwNVhOuAAA1oPn+CL+wS1f0tPZracezN0yYU0xqYornXQBQ9qBELs44UJoU10/Tk7xHjUDA1r9zld"
    "rcPUqHBNAECAwQFBgcI"
)
SSHA256 = "{SSHA256}JDUXfxQQU2uq0qzBVcD5R4PVg4RXPLD3IVdENgYoXT8BAgMEBQYHCA=="
SSHA = "{SSHA}N+vXsN2ny8mTqd6ZYuHcJVHvE00BAgMEBQYHCA=="
SHA512 = (
    "{SHA512}sQnzu7wkTrgkQZF+0G1hi5AI3Qmzvv0bXgc5THBqi7mAsdd4Xll27ASbRt9fEyavWi6m0QP9B8lThf+"
    "rDKy8hg=="
)
SHA256 = "{SHA256}XohImNooBHFR0OVvjcYpJ3NgPQ1qq73WKhHvch0VQtg="
SHA = "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="
# Dovecot's own test vectors (src/auth/test-password-scheme.c), password "test".
DOVECOT_SCRAM_SHA1 = (
    "{SCRAM-SHA-1}4096,GetyLXdBuHzf1FWf8SLz2Q==,NA/OqmF4hhrsrB9KR7po+dliTGM=,"
    "QBiURvQaE6H6qYTmeghDHLANBFQ="
)
DOVECOT_SCRAM_SHA256 = (
    "{SCRAM-SHA-256}4096,LfNGSFqiFykEZ1xDAYlnKQ==,HACNf9CII7cMz3XjRy/Oh3Ae2LHApoDyNw74d3YtFws=,"
    "AQH0j7Hf8J12g8eNBadvzlNB2am3PxgNwFCFd3RxEaw="
)
# The RFC 7677 section 3 example (password "pencil"), as GNU SASL's test suite writes it.
RFC7677_ENTRY = (
    "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
)


class SynchronousThreadPool(ThreadPool):
    """
    A thread pool that runs each call at once, in the calling thread, and counts them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Callable[..., object]] = []

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, _R], object] | None,
        func: Callable[_P, _R],
        *args: _P.args,
        **kw: _P.kwargs,
    ) -> None:
        self.calls.append(func)
        try:
            result: Any = func(*args, **kw)
        except BaseException:
            ok, result = False, Failure()
        else:
            ok = True
        if onResult is not None:
            onResult(ok, result)


@implementer(IReactorThreads)
class ThreadedReactor:
    """
    Just enough of a reactor for L{twisted.internet.threads.deferToThreadPool}.
    """

    def __init__(self) -> None:
        self.pool = SynchronousThreadPool()

    def getThreadPool(self) -> ThreadPool:
        return self.pool

    def callFromThread(self, callable: Callable[..., Any], *args: object, **kwargs: object) -> None:
        callable(*args, **kwargs)

    def callInThread(self, callable: Callable[..., Any], *args: object, **kwargs: object) -> None:
        self.pool.callInThreadWithCallback(None, callable, *args, **kwargs)

    def suggestThreadPoolSize(self, size: int) -> None:
        pass


def messages(events: list[LogEvent] | Any) -> list[str]:
    """
    Render captured log events.
    """
    return [formatEvent(event) for event in events]


class VerifyPasswordTests(SynchronousTestCase):
    """
    Tests for L{verifyPassword}: every supported scheme, with fixed vectors.
    """

    def assertVerifies(self, stored: str, password: str) -> None:
        """
        C{stored} accepts C{password} and rejects a different one.
        """
        self.assertIs(verifyPassword(password, stored), True, stored)
        self.assertIs(verifyPassword(password.encode("utf-8"), stored), True, stored)
        self.assertIs(verifyPassword(password + "x", stored), False, stored)
        self.assertIs(verifyPassword("", stored), False, stored)

    def test_plain(self) -> None:
        """
        C{PLAIN} and C{CLEARTEXT} hold the password as it is; scheme names are
        case-insensitive.
        """
        for stored in ("{PLAIN}s3cr:et", "{CLEARTEXT}s3cr:et", "{plain}s3cr:et"):
            self.assertVerifies(stored, "s3cr:et")
        self.assertVerifies("{PLAIN}pässwörd", "pässwörd")

    def test_plainEncoded(self) -> None:
        """
        C{PLAIN.b64}, C{PLAIN.base64} and C{PLAIN.hex} decode the password first.
        """
        encoded = base64.b64encode(b"a:b\nc").decode()
        self.assertVerifies("{PLAIN.b64}" + encoded, "a:b\nc")
        self.assertVerifies("{PLAIN.BASE64}" + encoded, "a:b\nc")
        self.assertVerifies("{PLAIN.hex}" + b"secret".hex(), "secret")

    def test_cryptDetectedByPrefix(self) -> None:
        """
        A bare hash, or one marked C{CRYPT}, is recognised by its crypt prefix.
        """
        bcrypt2y = (BLF_CRYPT[0], BLF_CRYPT[1].replace("$2a$", "$2y$"))
        bcrypt2b = (BLF_CRYPT[0], BLF_CRYPT[1].replace("$2a$", "$2b$"))
        for password, stored in (
            SHA512_CRYPT,
            SHA512_CRYPT_ROUNDS,
            SHA256_CRYPT,
            BLF_CRYPT,
            bcrypt2y,
            bcrypt2b,
            MD5_CRYPT,
            ARGON2I,
            ARGON2ID,
        ):
            self.assertVerifies(stored, password)
            self.assertVerifies("{CRYPT}" + stored, password)

    def test_explicitCryptSchemes(self) -> None:
        """
        The named crypt schemes accept hashes of their own kind.
        """
        for scheme, (password, stored) in (
            ("SHA512-CRYPT", SHA512_CRYPT),
            ("SHA256-CRYPT", SHA256_CRYPT),
            ("BLF-CRYPT", BLF_CRYPT),
            ("MD5-CRYPT", MD5_CRYPT),
            ("MD5", MD5_CRYPT),
            ("ARGON2I", ARGON2I),
            ("ARGON2ID", ARGON2ID),
        ):
            self.assertVerifies("{" + scheme + "}" + stored, password)

    def test_schemeAndHashDisagree(self) -> None:
        """
        A named crypt scheme refuses a hash of another kind as malformed.
        """
        for stored in (
            "{SHA256-CRYPT}" + SHA512_CRYPT[1],
            "{BLF-CRYPT}" + SHA512_CRYPT[1],
            "{ARGON2ID}" + ARGON2I[1],
            "{ARGON2I}" + ARGON2ID[1],
        ):
            self.assertRaises(ValueError, verifyPassword, "password", stored)

    def test_saltedDigests(self) -> None:
        """
        C{SSHA512}, C{SSHA256} and C{SSHA} are base64 of digest-then-salt.
        """
        for stored in (SSHA512, SSHA256, SSHA):
            self.assertVerifies(stored, "password")

    def test_saltedDigestAnySaltLength(self) -> None:
        """
        The salt is whatever follows the digest, of any length, as Dovecot allows; a
        C{.hex} suffix selects hex encoding.
        """
        for salt in (b"", b"1", b"0123456789abcdef0123"):
            raw = hashlib.sha512(b"pw" + salt).digest() + salt
            self.assertVerifies("{SSHA512}" + base64.b64encode(raw).decode(), "pw")
            self.assertVerifies("{SSHA512.HEX}" + raw.hex(), "pw")

    def test_unsaltedDigests(self) -> None:
        """
        C{SHA512}, C{SHA256} and C{SHA} (alias C{SHA1}) are base64, or hex when the
        length says so.
        """
        for stored in (SHA512, SHA256, SHA, SHA.replace("{SHA}", "{SHA1}")):
            self.assertVerifies(stored, "password")
        self.assertVerifies("{SHA256}" + hashlib.sha256(b"password").hexdigest(), "password")
        self.assertVerifies("{SHA256.hex}" + hashlib.sha256(b"password").hexdigest(), "password")

    def test_bcryptUsesFirst72Bytes(self) -> None:
        """
        Like crypt_blowfish, C{BLF-CRYPT} ignores what follows the first 72 bytes.
        """
        from passlib.hash import bcrypt

        stored = "{BLF-CRYPT}" + bcrypt.using(rounds=4).hash("a" * 72)
        self.assertIs(verifyPassword("a" * 100, stored), True)
        self.assertIs(verifyPassword("a" * 71, stored), False)

    def test_malformed(self) -> None:
        """
        Unknown schemes and malformed data raise L{ValueError}.
        """
        for stored in (
            "{NOPE}x",
            "{SHA512.rot13}x",
            "{CRYPT.hex}00",
            "plaintext-password",
            "$6$",
            "{SHA512-CRYPT}$6$saltstring",
            "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ",
            "{SSHA512}not base64!",
            "{SSHA512}" + base64.b64encode(b"short").decode(),
            "{SHA256}" + base64.b64encode(b"x" * 31).decode(),
            "{PLAIN.hex}zz",
            "{BLF-CRYPT}$2y$05$short",
        ):
            self.assertRaises(ValueError, verifyPassword, "password", stored)

    def test_nulByteIsWrongPassword(self) -> None:
        """
        A password that a scheme refuses outright (NUL in a SHA crypt) is just wrong.
        """
        self.assertIs(verifyPassword("Hello\0world!", SHA512_CRYPT[1]), False)


class HashPasswordTests(SynchronousTestCase):
    """
    Tests for L{hashPassword}.
    """

    def test_default(self) -> None:
        """
        The default is SCRAM-SHA-256 in Dovecot's form, with a 16-octet salt and 4096
        iterations, whose keys an independent computation (hashlib) reproduces.
        """
        stored = hashPassword("correct horse")
        prefix = "{SCRAM-SHA-256}4096,"
        self.assertTrue(stored.startswith(prefix), stored)
        salt, storedKey, serverKey = (
            base64.b64decode(field, validate=True) for field in stored[len(prefix) :].split(",")
        )
        self.assertEqual(len(salt), 16)
        salted = hashlib.pbkdf2_hmac("sha256", b"correct horse", salt, 4096)
        clientKey = hmac.new(salted, b"Client Key", "sha256").digest()
        self.assertEqual(storedKey, hashlib.sha256(clientKey).digest())
        self.assertEqual(serverKey, hmac.new(salted, b"Server Key", "sha256").digest())
        self.assertIs(verifyPassword("correct horse", stored), True)
        self.assertIs(verifyPassword("wrong horse", stored), False)

    def test_argon2id(self) -> None:
        """
        C{ARGON2ID} has the documented cost, in the form libsodium (and so Dovecot)
        reads, and is independently verifiable with argon2-cffi.
        """
        from argon2 import PasswordHasher

        stored = hashPassword("correct horse", "ARGON2ID")
        prefix = "{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$"
        self.assertTrue(stored.startswith(prefix), stored)
        self.assertIs(PasswordHasher().verify(stored[len("{ARGON2ID}") :], "correct horse"), True)
        self.assertIs(verifyPassword("correct horse", stored), True)
        self.assertIs(verifyPassword("wrong horse", stored), False)

    def test_everySchemeRoundTrips(self) -> None:
        """
        Every scheme L{hashPassword} writes is read back by L{verifyPassword}, with a
        fresh salt each time.
        """
        for scheme in passwdfile.HASH_SCHEMES:
            stored = hashPassword("pässwörd", scheme.lower())
            self.assertTrue(stored.startswith("{" + scheme), stored)
            self.assertIs(verifyPassword("pässwörd", stored), True, scheme)
            self.assertIs(verifyPassword("passwort", stored), False, scheme)
            if scheme != "PLAIN":
                self.assertNotEqual(stored, hashPassword("pässwörd", scheme))

    def test_cryptForms(self) -> None:
        """
        The crypt schemes use the documented cost and the prefixes Dovecot writes, and
        an independent implementation (the bcrypt module) agrees.
        """
        import bcrypt

        stored = hashPassword("pw", "BLF-CRYPT")
        self.assertTrue(stored.startswith("{BLF-CRYPT}$2y$10$"), stored)
        self.assertTrue(bcrypt.checkpw(b"pw", stored[len("{BLF-CRYPT}") :].encode()))
        self.assertTrue(
            hashPassword("pw", "SHA512-CRYPT").startswith("{SHA512-CRYPT}$6$rounds=100000$")
        )
        self.assertTrue(
            hashPassword("pw", "SHA256-CRYPT").startswith("{SHA256-CRYPT}$5$rounds=100000$")
        )

    def test_ssha512Independent(self) -> None:
        """
        C{SSHA512} is base64 of SHA-512(password + salt) followed by the salt.
        """
        raw = base64.b64decode(hashPassword("pw", "SSHA512")[len("{SSHA512}") :])
        digest, salt = raw[:64], raw[64:]
        self.assertEqual(len(salt), 16)
        self.assertEqual(hashlib.sha512(b"pw" + salt).digest(), digest)

    def test_plain(self) -> None:
        """
        C{PLAIN} writes the password as it is, or base64 if it would break the line.
        """
        self.assertEqual(hashPassword("secret", "PLAIN"), "{PLAIN}secret")
        self.assertEqual(
            hashPassword("a:b", "PLAIN"), "{PLAIN.b64}" + base64.b64encode(b"a:b").decode()
        )
        self.assertIs(verifyPassword("line\nbreak", hashPassword("line\nbreak", "PLAIN")), True)

    def test_saslprep(self) -> None:
        """
        Every scheme stores the password prepared with SASLprep, as the server compares
        it; C{PLAIN} keeps one that SASLprep prohibits as it is, the others refuse it.
        """
        stored = hashPassword("a\u00a0b\u00ad", "SSHA512")
        self.assertIs(verifyPassword("a b", stored), True)
        self.assertIs(verifyPassword("a\u00a0b\u00ad", stored), False)
        self.assertEqual(hashPassword("a\u00a0b\u00ad", "PLAIN"), "{PLAIN}a b")
        self.assertEqual(hashPassword("bell\x07", "PLAIN"), "{PLAIN}bell\x07")
        self.assertEqual(hashPassword("\u00ad", "PLAIN"), "{PLAIN}\u00ad")
        for scheme in ("SSHA512", "SHA512-CRYPT", "BLF-CRYPT"):
            self.assertRaises(ValueError, hashPassword, "bell\x07", scheme)
            self.assertRaises(ValueError, hashPassword, "\u00ad", scheme)

    def test_refused(self) -> None:
        """
        Unknown schemes, empty passwords and passwords a scheme cannot take raise
        L{ValueError}.
        """
        self.assertRaises(ValueError, hashPassword, "pw", "MD5-CRYPT")
        self.assertRaises(ValueError, hashPassword, "pw", "NOPE")
        self.assertRaises(ValueError, hashPassword, "")
        self.assertRaises(ValueError, hashPassword, "x" * 73, "BLF-CRYPT")
        self.assertRaises(ValueError, hashPassword, "a\0b", "SHA512-CRYPT")


class CheckerTestsMixin(SynchronousTestCase):
    """
    Helpers for checker tests.
    """

    def setUp(self) -> None:
        self.reactor = ThreadedReactor()
        self.path = self.mktemp()

    def writeFile(self, text: str | bytes) -> None:
        """
        Replace the passwd-file, making sure its signature changes.
        """
        data = text.encode("utf-8") if isinstance(text, str) else text
        temporary = self.path + ".new"
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, self.path)

    def checker(self) -> PasswdFileChecker:
        return PasswdFileChecker(self.path, reactor=self.reactor)

    def login(
        self, checker: PasswdFileChecker, credentials: ICredentials
    ) -> str | UnauthorizedLogin:
        """
        Check credentials; the result must be available at once.
        """
        d: Deferred[str] = checker.requestAvatarId(credentials)
        results: list[object] = []
        d.addBoth(results.append)
        self.assertEqual(len(results), 1)
        [result] = results
        if isinstance(result, Failure):
            failure = result.value
            # NoSuchUser and WrongPassword are UnauthorizedLogin, told apart in the log only.
            self.assertIsInstance(failure, UnauthorizedLogin, result)
            assert isinstance(failure, UnauthorizedLogin)
            return failure
        assert isinstance(result, str)
        return result

    def assertRefused(self, checker: PasswdFileChecker, credentials: ICredentials) -> str:
        """
        The credentials are refused; return the failure's message.
        """
        result = self.login(checker, credentials)
        self.assertIsInstance(result, UnauthorizedLogin)
        return str(result)


class PasswdFileCheckerTests(CheckerTestsMixin):
    """
    Tests for L{PasswdFileChecker} with C{USER}/C{PASS} credentials.
    """

    def test_interface(self) -> None:
        """
        L{PasswdFileChecker} provides L{ICredentialsChecker}.
        """
        self.assertTrue(verifyObject(ICredentialsChecker, self.checker()))

    def test_defaultReactor(self) -> None:
        """
        Without a reactor, the checker uses the global one.
        """
        from twisted.internet import reactor

        self.assertIs(PasswdFileChecker(self.path)._reactor, reactor)

    def test_hashedPasswordInThread(self) -> None:
        """
        A hashed password is verified in the reactor's thread pool; the avatar ID is the
        user name as L{str}.
        """
        self.writeFile(
            "alice:{SHA512-CRYPT}" + SHA512_CRYPT[1] + "\n"
            "bob:" + ARGON2ID[1] + ":1000:1000::/home/bob::userdb_quota_rule=*:storage=1G\n"
        )
        checker = self.checker()
        self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"Hello world!")), "alice")
        self.assertEqual(len(self.reactor.pool.calls), 1)
        self.assertEqual(self.login(checker, UsernamePassword(b"bob", b"password")), "bob")
        self.assertEqual(len(self.reactor.pool.calls), 2)

    def test_plainInPlace(self) -> None:
        """
        A C{PLAIN} password is compared without the thread pool.
        """
        self.writeFile("alice:{PLAIN}secret\n")
        checker = self.checker()
        self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"secret")), "alice")
        self.assertRefused(checker, UsernamePassword(b"alice", b"Secret"))
        self.assertEqual(self.reactor.pool.calls, [])

    def test_utf8Names(self) -> None:
        """
        User names are compared after UTF-8 decoding, and case matters.
        """
        self.writeFile("jürgen:{PLAIN}pw\n")
        checker = self.checker()
        self.assertEqual(self.login(checker, UsernamePassword("jürgen".encode(), b"pw")), "jürgen")
        self.assertRefused(checker, UsernamePassword("Jürgen".encode(), b"pw"))
        self.assertRefused(checker, UsernamePassword("jürgen".encode("latin-1"), b"pw"))

    def test_unknownUserLooksLikeWrongPassword(self) -> None:
        """
        An unknown user and a wrong password fail with the same exception and message,
        and both spend one verification in the thread pool.
        """
        self.writeFile("alice:{SSHA512}" + SSHA512[len("{SSHA512}") :] + "\n")
        checker = self.checker()
        wrongPassword = self.assertRefused(checker, UsernamePassword(b"alice", b"wrong"))
        self.assertEqual(len(self.reactor.pool.calls), 1)
        unknownUser = self.assertRefused(checker, UsernamePassword(b"mallory", b"password"))
        self.assertEqual(len(self.reactor.pool.calls), 2)
        self.assertEqual(wrongPassword, unknownUser)

    def test_unknownUserVerifiesDummyHash(self) -> None:
        """
        For an unknown user, a dummy hash of the default scheme is verified, in the
        thread pool.
        """
        checked: list[bytes] = []
        real = _schemes._dummyVerifier()
        self.assertIsNone(real.plaintext)
        self.assertIs(real.check(b"anything"), False)

        def check(password: bytes) -> bool:
            checked.append(password)
            return True  # even a "match" must not let an unknown user in

        self.patch(_schemes, "_dummyVerifier", lambda: _schemes._Verifier(check))
        self.writeFile("alice:{PLAIN}pw\n")
        checker = self.checker()
        self.assertRefused(checker, UsernamePassword(b"mallory", b"guess"))
        self.assertRefused(checker, UsernamePassword(b"\xff", b"guess2"))
        self.assertEqual(checked, [b"guess", b"guess2"])
        self.assertEqual(len(self.reactor.pool.calls), 2)
        self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"pw")), "alice")
        self.assertEqual(checked, [b"guess", b"guess2"])

    def test_dummyHashIsDefaultScheme(self) -> None:
        """
        The dummy hash is made with L{hashPassword}'s default scheme.
        """
        schemes: list[str] = []
        real = passwdfile.hashPassword

        def spy(password: str, scheme: str = passwdfile.DEFAULT_SCHEME) -> str:
            schemes.append(scheme)
            return real(password, scheme)

        self.patch(_schemes, "hashPassword", spy)
        _schemes._dummyVerifier.cache_clear()
        self.addCleanup(_schemes._dummyVerifier.cache_clear)
        _schemes._dummyVerifier()
        self.assertEqual(schemes, ["SCRAM-SHA-256"])

    def test_reloadOnChange(self) -> None:
        """
        The file is read again when it changes: new users, changed passwords and
        removed users take effect without a new checker.
        """
        self.writeFile("alice:{PLAIN}one\n")
        checker = self.checker()
        self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"one")), "alice")
        self.assertRefused(checker, UsernamePassword(b"bob", b"two"))
        self.writeFile("alice:{PLAIN}uno\nbob:{PLAIN}two\n")
        self.assertRefused(checker, UsernamePassword(b"alice", b"one"))
        self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"uno")), "alice")
        self.assertEqual(self.login(checker, UsernamePassword(b"bob", b"two")), "bob")
        self.writeFile("bob:{PLAIN}two\n")
        self.assertRefused(checker, UsernamePassword(b"alice", b"uno"))

    def test_inPlaceEditSameSize(self) -> None:
        """
        An in-place rewrite of the same size is noticed through the modification time.
        """
        self.writeFile("alice:{PLAIN}aaaa\n")
        checker = self.checker()
        self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"aaaa")), "alice")
        with open(self.path, "r+b") as f:
            f.write(b"alice:{PLAIN}bbbb\n")
        st = os.stat(self.path)
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"bbbb")), "alice")

    def test_notReadWhenUnchanged(self) -> None:
        """
        While the file is unchanged it is not read again.
        """
        self.writeFile("alice:{PLAIN}pw\n")
        checker = self.checker()
        parsed: list[bytes] = []
        real = checker._parse

        def spy(data: bytes) -> dict[str, _schemes._Verifier | None]:
            parsed.append(data)
            return real(data)

        self.patch(checker, "_parse", spy)
        for _ in range(3):
            self.login(checker, UsernamePassword(b"alice", b"pw"))
        self.assertEqual(len(parsed), 1)

    def test_missingFile(self) -> None:
        """
        Without the file nobody logs in, and a warning is logged; once the file appears,
        it is used.
        """
        checker = self.checker()
        with capturedLogs() as events:
            self.assertRefused(checker, UsernamePassword(b"alice", b"pw"))
        self.assertEqual(len(events), 1)
        self.assertIn("cannot read", messages(events)[0])
        self.writeFile("alice:{PLAIN}pw\n")
        self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"pw")), "alice")

    def test_fileFormat(self) -> None:
        """
        Comments, blank lines, CRLF line ends, extra fields and a missing final line end
        are all understood.
        """
        self.writeFile(
            "# users\n\n   \r\n"
            "alice:{PLAIN}one:1000:1000::/home/alice::\r\n"
            "#bob:{PLAIN}commented\n"
            "carol:{PLAIN}three"
        )
        checker = self.checker()
        with capturedLogs() as events:
            self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"one")), "alice")
            self.assertEqual(self.login(checker, UsernamePassword(b"carol", b"three")), "carol")
            self.assertRefused(checker, UsernamePassword(b"#bob", b"commented"))
            self.assertRefused(checker, UsernamePassword(b"bob", b"commented"))
        self.assertEqual(events, [])

    def test_corruptLine(self) -> None:
        """
        A corrupt line is skipped with a warning naming the line but not its content;
        the other users still log in.
        """
        self.writeFile(
            b"alice:{PLAIN}one\n"
            b"hunter2-pasted-by-mistake\n"
            b":{PLAIN}nobody\n"
            b"\xff\xfe:{PLAIN}x\n"
            b"dave:{SSHA512}garbage!!\n"
            b"bob:{PLAIN}two\n"
        )
        checker = self.checker()
        with capturedLogs() as events:
            self.assertEqual(self.login(checker, UsernamePassword(b"bob", b"two")), "bob")
        self.assertRefused(checker, UsernamePassword(b"dave", b"garbage!!"))
        self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"one")), "alice")
        text = messages(events)
        self.assertEqual(len(text), 4, text)
        self.assertIn("line 2", text[0])
        self.assertIn("line 3", text[1])
        self.assertIn("line 4", text[2])
        self.assertIn("line 5", text[3])
        self.assertIn("'dave'", text[3])
        for line in text:
            self.assertNotIn("hunter2", line)
            self.assertNotIn("garbage", line)
            self.assertNotIn("nobody", line)

    def test_unknownScheme(self) -> None:
        """
        A user whose scheme is unknown cannot log in, whatever the password, and the
        scheme is named in a warning that does not show the password data.
        """
        self.writeFile("alice:{ROT13}frperg\n")
        checker = self.checker()
        with capturedLogs() as events:
            self.assertRefused(checker, UsernamePassword(b"alice", b"frperg"))
            self.assertRefused(checker, UsernamePassword(b"alice", b"secret"))
            self.assertRefused(checker, UsernamePassword(b"alice", b"{ROT13}frperg"))
        [message] = messages(events)
        self.assertIn("'alice'", message)
        self.assertIn("ROT13", message)
        self.assertNotIn("frperg", message)

    def test_bareUnknownCrypt(self) -> None:
        """
        A field without a scheme that is no known crypt hash (a clear-text password
        written by mistake, or DES crypt) is refused, and never compared as clear text.
        """
        self.writeFile("alice:secret\nbob:abJnggxhB/yJU\n")
        checker = self.checker()
        with capturedLogs() as events:
            self.assertRefused(checker, UsernamePassword(b"alice", b"secret"))
        self.assertEqual(len(events), 2)
        self.assertNotIn("secret", " ".join(messages(events)))

    def test_emptyPassword(self) -> None:
        """
        An empty password field (a userdb-only entry) lets nobody in, silently; a line
        without any C{:} is corrupt.
        """
        self.writeFile("alice::1000:1000::/home/alice::\nbob\n")
        checker = self.checker()
        with capturedLogs() as events:
            self.assertRefused(checker, UsernamePassword(b"alice", b""))
            self.assertRefused(checker, UsernamePassword(b"bob", b""))
        self.assertEqual(len(events), 1)
        self.assertIn("line 2", messages(events)[0])

    def test_duplicateUser(self) -> None:
        """
        When a user appears twice, the first entry counts and a warning is logged.
        """
        self.writeFile("alice:{PLAIN}one\nalice:{PLAIN}two\n")
        checker = self.checker()
        with capturedLogs() as events:
            self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"one")), "alice")
        self.assertRefused(checker, UsernamePassword(b"alice", b"two"))
        [message] = messages(events)
        self.assertIn("line 2", message)

    def test_unhandledCredentials(self) -> None:
        """
        Credentials of another kind fail with L{UnhandledCredentials}.
        """
        self.writeFile("alice:{PLAIN}pw\n")
        self.failureResultOf(self.checker().requestAvatarId(Anonymous()), UnhandledCredentials)


class SCRAMSchemeTests(SynchronousTestCase):
    """
    Tests for the C{SCRAM-SHA-1} and C{SCRAM-SHA-256} password schemes.
    """

    def test_dovecotVectors(self) -> None:
        """
        The entries of Dovecot's own test suite (C{test-password-scheme.c}) verify.
        """
        for stored in (DOVECOT_SCRAM_SHA1, DOVECOT_SCRAM_SHA256):
            self.assertIs(verifyPassword("test", stored), True, stored)
            self.assertIs(verifyPassword("Test", stored), False, stored)
            self.assertIs(verifyPassword("", stored), False, stored)

    def test_rfc7677Keys(self) -> None:
        """
        The keys of the RFC 7677 example (as GNU SASL's C{--mkpasswd} writes them) verify
        the example's password, and the scheme name is case-insensitive.
        """
        self.assertIs(verifyPassword("pencil", RFC7677_ENTRY), True)
        self.assertIs(verifyPassword("pencil", RFC7677_ENTRY.replace("SCRAM", "scram")), True)
        self.assertIs(verifyPassword("pencil ", RFC7677_ENTRY), False)

    def test_malformed(self) -> None:
        """
        Malformed entries, and entries with parameters scramp refuses (fewer than 4096
        iterations, a salt shorter than 12 octets, keys of another hash), are refused.
        """
        salt16 = base64.b64encode(b"s" * 16).decode()
        key20 = base64.b64encode(b"k" * 20).decode()
        key32 = base64.b64encode(b"k" * 32).decode()
        for stored in (
            "{SCRAM-SHA-256}",
            "{SCRAM-SHA-256}4096",
            f"{{SCRAM-SHA-256}}4096,{salt16},{key32}",
            f"{{SCRAM-SHA-256}}4096,{salt16},{key32},{key32},x",
            f"{{SCRAM-SHA-256}}-1,{salt16},{key32},{key32}",
            f"{{SCRAM-SHA-256}}x,{salt16},{key32},{key32}",
            f"{{SCRAM-SHA-256}}4096,not base64!,{key32},{key32}",
            f"{{SCRAM-SHA-256}}1000,{salt16},{key32},{key32}",
            f"{{SCRAM-SHA-256}}4096,c2FsdA==,{key32},{key32}",
            f"{{SCRAM-SHA-256}}4096,{salt16},{key20},{key20}",
            f"{{SCRAM-SHA-1}}4096,{salt16},{key32},{key32}",
            f"{{SCRAM-SHA-256}}4096,{salt16},{key32},{key20}",
            f"{{SCRAM-SHA-256.hex}}4096,{salt16},{key32},{key32}",
        ):
            self.assertRaises(ValueError, verifyPassword, "password", stored)

    def test_hashRoundTrip(self) -> None:
        """
        L{hashPassword} writes both SCRAM schemes with a fresh 16-octet salt and
        L{passwdfile.SCRAM_ITERATIONS}, and the keys match those of L{SCRAMKeys}.
        """
        for scheme in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
            stored = hashPassword("pencil", scheme)
            prefix = "{" + scheme + "}4096,"
            self.assertTrue(stored.startswith(prefix), stored)
            saltText, storedKey, serverKey = stored[len(prefix) :].split(",")
            salt = base64.b64decode(saltText)
            self.assertEqual(len(salt), 16)
            keys = SCRAMKeys.fromPassword("pencil", scheme, salt=salt)
            self.assertEqual(base64.b64decode(storedKey), keys.storedKey)
            self.assertEqual(base64.b64decode(serverKey), keys.serverKey)
            self.assertNotEqual(stored, hashPassword("pencil", scheme))

    def test_saslprep(self) -> None:
        """
        New SCRAM entries hash the password prepared with SASLprep, as SCRAM clients
        prepare it (RFC 4013's example: a soft hyphen maps to nothing); a password
        SASLprep prohibits cannot be hashed, and as a candidate it is simply wrong.
        """
        stored = hashPassword("I\u00adX", "SCRAM-SHA-256")
        self.assertIs(verifyPassword("IX", stored), True)
        self.assertIs(verifyPassword("I\u00adX", stored), True)
        self.assertRaises(ValueError, hashPassword, "bell\x07", "SCRAM-SHA-256")
        self.assertRaises(ValueError, hashPassword, "\u00ad", "SCRAM-SHA-256")
        self.assertIs(verifyPassword("bell\x07", stored), False)
        self.assertIs(verifyPassword(b"\xff", stored), False)


class SCRAMKeySourceTests(CheckerTestsMixin):
    """
    Tests for L{PasswdFileChecker} as an L{ISCRAMKeySource}.
    """

    def keys(self, checker: PasswdFileChecker, user: str, mechanism: str) -> SCRAMKeys | None:
        """
        Look up keys; the result must be available at once.
        """
        result = self.successResultOf(checker.scramKeys(user, mechanism))
        assert result is None or isinstance(result, SCRAMKeys)
        return result

    def test_interface(self) -> None:
        """
        The checker provides L{ISCRAMKeySource}.
        """
        self.assertTrue(verifyObject(ISCRAMKeySource, self.checker()))

    def test_storedKeys(self) -> None:
        """
        A SCRAM entry gives its stored keys for its own mechanism only, at once.
        """
        self.writeFile(f"alice:{DOVECOT_SCRAM_SHA256}\nbob:{DOVECOT_SCRAM_SHA1}\n")
        checker = self.checker()
        alice = self.keys(checker, "alice", "SCRAM-SHA-256")
        assert alice is not None
        self.assertEqual(alice, SCRAMKeys.fromPassword("test", "SCRAM-SHA-256", salt=alice.salt))
        self.assertEqual(base64.b64encode(alice.salt), b"LfNGSFqiFykEZ1xDAYlnKQ==")
        self.assertIsNone(self.keys(checker, "alice", "SCRAM-SHA-1"))
        bob = self.keys(checker, "bob", "scram-sha-1")
        assert bob is not None
        self.assertEqual(bob, SCRAMKeys.fromPassword("test", "SCRAM-SHA-1", salt=bob.salt))
        self.assertIsNone(self.keys(checker, "bob", "SCRAM-SHA-256"))
        self.assertEqual(self.reactor.pool.calls, [])

    def test_plainEntry(self) -> None:
        """
        A C{PLAIN} entry gives keys derived from the password in the thread pool, with
        a salt that is the same on every lookup and differs between users.
        """
        self.writeFile("alice:{PLAIN}pencil\nbob:{PLAIN}pencil\n")
        checker = self.checker()
        for mechanism in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
            first = self.keys(checker, "alice", mechanism)
            assert first is not None
            self.assertEqual(first.iterations, passwdfile.SCRAM_ITERATIONS)
            self.assertEqual(first, SCRAMKeys.fromPassword("pencil", mechanism, salt=first.salt))
            self.assertEqual(self.keys(checker, "alice", mechanism), first)
            other = self.keys(checker, "bob", mechanism)
            assert other is not None
            self.assertNotEqual(other.salt, first.salt)
        self.assertNotEqual(self.reactor.pool.calls, [])

    def test_noKeys(self) -> None:
        """
        Unknown users, users whose password is hashed otherwise, unusable entries,
        C{PLAIN} passwords that are not UTF-8 or that SASLprep prohibits, and unknown
        mechanisms give L{None}.
        """
        self.writeFile(
            "argon:" + ARGON2ID[1] + "\n"
            "ssha:" + SSHA + "\n"
            "empty:\n"
            "broken:{SCRAM-SHA-256}4096\n"
            "binary:{PLAIN.hex}ff00\n"
            "control:{PLAIN.b64}" + base64.b64encode(b"a\x07b").decode() + "\n"
            "plain:{PLAIN}pencil\n"
        )
        checker = self.checker()
        with capturedLogs():
            for user in ("nobody", "argon", "ssha", "empty", "broken", "binary", "control"):
                self.assertIsNone(self.keys(checker, user, "SCRAM-SHA-256"), user)
        self.assertIsNone(self.keys(checker, "plain", "SCRAM-SHA-512"))

    def test_scramEntryPasswordLogin(self) -> None:
        """
        A user stored with SCRAM keys can still log in with C{USER}/C{PASS}, verified in
        the thread pool.
        """
        self.writeFile(f"alice:{DOVECOT_SCRAM_SHA256}\n")
        checker = self.checker()
        self.assertEqual(self.login(checker, UsernamePassword(b"alice", b"test")), "alice")
        self.assertRefused(checker, UsernamePassword(b"alice", b"tset"))
        self.assertNotEqual(self.reactor.pool.calls, [])

    def test_scramExchange(self) -> None:
        """
        A whole SCRAM exchange against the checker's keys: the client's and server's
        mechanisms agree for a Dovecot SCRAM entry, one of the default scheme and a
        C{PLAIN} one, and a wrong password fails.
        """
        self.writeFile(
            f"alice:{DOVECOT_SCRAM_SHA256}\nbob:{{PLAIN}}pencil\ncarol:{hashPassword('pässwörd')}\n"
        )
        checker = self.checker()
        for user, password in (("alice", "test"), ("bob", "pencil"), ("carol", "pässwörd")):
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
                if user != "bob" and mechanism == "SCRAM-SHA-1":
                    continue
                self.assertEqual(self.exchange(checker, mechanism, user, password), Verified(user))
                self.assertRaises(
                    AuthenticationFailed, self.exchange, checker, mechanism, user, "wrong"
                )
        self.assertRaises(
            AuthenticationFailed, self.exchange, checker, "SCRAM-SHA-1", "alice", "test"
        )

    def exchange(
        self, checker: PasswdFileChecker, mechanism: str, user: str, password: str
    ) -> Step:
        """
        Run a SCRAM exchange between pop3kit's client and server mechanisms, with keys
        from C{checker}.
        """
        server = serverMechanism(mechanism)
        client = clientMechanism(mechanism, user, password)
        step = server.start(client.initialResponse())
        assert isinstance(step, NeedSCRAMKeys)
        step = server.keysFound(self.keys(checker, step.username, step.mechanism))
        while isinstance(step, Challenge):
            step = server.respond(client.respond(step.data))
        self.assertTrue(client.complete)
        return step


class CRAMMD5Tests(CheckerTestsMixin):
    """
    Tests for L{PasswdFileChecker} with SASL C{CRAM-MD5} credentials.
    """

    def test_plainEntry(self) -> None:
        """
        The RFC 2195 example logs in against a C{PLAIN} entry, in place; a wrong digest
        fails.
        """
        self.writeFile("tim:{PLAIN}tanstaaftanstaaf\n")
        checker = self.checker()
        challenge = b"<1896.697170952@postoffice.reston.mci.net>"
        good = CRAMMD5Credentials(challenge, b"tim", b"b913a602c7eda7a495b4e6e7334d3890")
        self.assertEqual(self.login(checker, good), "tim")
        self.assertEqual(self.reactor.pool.calls, [])
        self.assertRefused(checker, CRAMMD5Credentials(challenge, b"tim", b"0" * 32))

    def test_hashedEntry(self) -> None:
        """
        CRAM-MD5 cannot be checked against a SCRAM entry (or any hash): it fails.
        """
        self.writeFile(f"tim:{DOVECOT_SCRAM_SHA256}\n")
        challenge = b"<1896.697170952@postoffice.reston.mci.net>"
        digest = hmac.new(b"test", challenge, "md5").hexdigest().encode()
        self.assertRefused(self.checker(), CRAMMD5Credentials(challenge, b"tim", digest))


class APOPTests(CheckerTestsMixin):
    """
    Tests for L{PasswdFileChecker} with C{APOP} credentials.
    """

    def test_plainEntry(self) -> None:
        """
        The RFC 1939 example logs in against a C{PLAIN} entry, in place.
        """
        self.writeFile("mrose:{PLAIN}tanstaaf\nmb:{PLAIN.b64}" + base64.b64encode(b"x").decode())
        checker = self.checker()
        credentials = APOPCredentials(
            b"<1896.697170952@dbc.mtview.ca.us>", b"mrose", b"c4c9334bac560ecc979e58001b3e22fb"
        )
        self.assertEqual(self.login(checker, credentials), "mrose")
        self.assertEqual(self.reactor.pool.calls, [])

    def test_wrongDigest(self) -> None:
        """
        A wrong digest fails like an unknown user.
        """
        self.writeFile("mrose:{PLAIN}tanstaaf\n")
        checker = self.checker()
        magic = b"<1896.697170952@dbc.mtview.ca.us>"
        wrong = self.assertRefused(checker, APOPCredentials(magic, b"mrose", b"0" * 32))
        unknown = self.assertRefused(
            checker, APOPCredentials(magic, b"nobody", b"c4c9334bac560ecc979e58001b3e22fb")
        )
        self.assertEqual(wrong, unknown)

    def test_hashedEntry(self) -> None:
        """
        APOP cannot be checked against a hashed password: it fails, with the same
        message, even with the right secret.
        """
        self.writeFile("mrose:" + hashPassword("tanstaaf", "SSHA512") + "\n")
        checker = self.checker()
        magic = b"<1896.697170952@dbc.mtview.ca.us>"
        refused = self.assertRefused(
            checker, APOPCredentials(magic, b"mrose", b"c4c9334bac560ecc979e58001b3e22fb")
        )
        self.assertEqual(refused, self.assertRefused(checker, UsernamePassword(b"mrose", b"wrong")))


class FileEditingTests(CheckerTestsMixin):
    """
    Tests for L{addUser}, L{setPassword}, L{removeUser} and L{listUsers}.
    """

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def test_addCreatesPrivateFile(self) -> None:
        """
        L{addUser} creates the parent directories and a file of mode C{0o600} that the
        checker reads.
        """
        self.path = os.path.join(self.mktemp(), "sub", "passwd")
        addUser(self.path, "alice", hashPassword("pw", "SSHA512"))
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(self.login(self.checker(), UsernamePassword(b"alice", b"pw")), "alice")
        self.assertEqual(listUsers(self.path), ["alice"])

    def test_addKeepsOtherLines(self) -> None:
        """
        Other lines, comments and line ends are kept byte for byte; a missing final line
        end is added.
        """
        original = b"# comment\r\nbob:{PLAIN}x:1:2::/home/bob::\n\n#last"
        self.writeFile(original)
        os.chmod(self.path, 0o640)
        addUser(self.path, "alice", "{PLAIN}pw")
        self.assertEqual(self.read(), original + b"\nalice:{PLAIN}pw\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)
        self.assertEqual(listUsers(self.path), ["bob", "alice"])

    def test_addDuplicate(self) -> None:
        """
        Adding an existing user raises L{DuplicateUser} and leaves the file alone; a
        commented-out user does not count.
        """
        self.writeFile("#alice:{PLAIN}old\nalice:{PLAIN}pw\n")
        before = self.read()
        self.assertRaises(DuplicateUser, addUser, self.path, "alice", "{PLAIN}new")
        self.assertEqual(self.read(), before)
        self.assertEqual(os.listdir(os.path.dirname(os.path.abspath(self.path))), ["temp"])

    def test_setPasswordKeepsFields(self) -> None:
        """
        L{setPassword} replaces only the password field of the user's line.
        """
        self.writeFile(
            "alice:{PLAIN}old:1000:1000::/home/alice::userdb_mail=maildir:~/M\r\n"
            "alicia:{PLAIN}other\nbob\n"
        )
        setPassword(self.path, "alice", "{PLAIN}new")
        setPassword(self.path, "bob", "{PLAIN}bobs")
        self.assertEqual(
            self.read(),
            b"alice:{PLAIN}new:1000:1000::/home/alice::userdb_mail=maildir:~/M\r\n"
            b"alicia:{PLAIN}other\nbob:{PLAIN}bobs\n",
        )
        self.assertRaises(UnknownUser, setPassword, self.path, "carol", "{PLAIN}x")

    def test_remove(self) -> None:
        """
        L{removeUser} drops the user's line and nothing else.
        """
        self.writeFile("# c\nalice:{PLAIN}a\nbob:{PLAIN}b\n")
        removeUser(self.path, "alice")
        self.assertEqual(self.read(), b"# c\nbob:{PLAIN}b\n")
        self.assertRaises(UnknownUser, removeUser, self.path, "alice")

    def test_noTemporaryFilesLeft(self) -> None:
        """
        The rewrite goes through a temporary file that does not stay behind.
        """
        self.path = os.path.join(self.mktemp(), "passwd")
        addUser(self.path, "alice", "{PLAIN}a")
        setPassword(self.path, "alice", "{PLAIN}b")
        self.assertEqual(os.listdir(os.path.dirname(self.path)), ["passwd"])

    def test_replacedAtomically(self) -> None:
        """
        The file is replaced by a new inode, never rewritten in place, so a reader sees
        the old or the new file.
        """
        self.writeFile("alice:{PLAIN}a\n")
        before = os.stat(self.path).st_ino
        with open(self.path, "rb") as reader:
            addUser(self.path, "bob", "{PLAIN}b")
            self.assertEqual(reader.read(), b"alice:{PLAIN}a\n")
        self.assertNotEqual(os.stat(self.path).st_ino, before)

    def test_invalidNames(self) -> None:
        """
        Empty names, names with C{:}, line breaks or NUL, and names that would read as
        a comment are refused.
        """
        for name in ("", "a:b", "a\nb", "a\rb", "a\0b", "#a"):
            self.assertRaises(ValueError, validateUserName, name)
            self.assertRaises(ValueError, addUser, self.path, name, "{PLAIN}x")
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(validateUserName("a#b@example.com"), "a#b@example.com")

    def test_invalidPasswordField(self) -> None:
        """
        A password field that would break the file is refused.
        """
        for field in ("", "{PLAIN}a:b", "{PLAIN}a\nb", "{PLAIN}a\0b"):
            self.assertRaises(ValueError, addUser, self.path, "alice", field)
        self.assertFalse(os.path.exists(self.path))


class PluginTests(SynchronousTestCase):
    """
    Tests for the C{passwd-file} strcred plugin.
    """

    def test_found(self) -> None:
        """
        C{--auth passwd-file:PATH} finds the factory (the plugin file's stand-in, which
        imports pop3kit only when used), which makes a checker for PATH.
        """
        factory = strcred.findCheckerFactory("passwd-file")
        self.assertEqual(factory.authHelp, PasswdFileCheckerFactory.authHelp)
        self.assertTrue(verifyObject(strcred.ICheckerFactory, factory))
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("alice:{PLAIN}pw\n")
        checker = strcred.makeChecker("passwd-file:" + path)
        self.assertIsInstance(checker, PasswdFileChecker)
        d = checker.requestAvatarId(UsernamePassword(b"alice", b"pw"))
        self.assertEqual(self.successResultOf(d), "alice")

    def test_noPath(self) -> None:
        """
        A path is required.
        """
        self.assertRaises(ValueError, PasswdFileCheckerFactory().generateChecker, " ")

    def test_cheapImport(self) -> None:
        """
        Importing the plugin module, as every plugin scan does, neither installs a
        reactor nor loads passlib.
        """
        code = (
            "import sys, twisted.plugins.pop3kit_checkers\n"
            "print(sorted(m for m in sys.modules if m == 'twisted.internet.reactor'"
            " or m.startswith('passlib')))\n"
        )
        output = subprocess.run(
            [sys.executable, "-c", code],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        self.assertEqual(output.strip(), "[]")
