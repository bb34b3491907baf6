"""
Credentials for POP3 logins.

C{USER}/C{PASS} logins use Twisted's own L{twisted.cred.credentials.UsernamePassword};
C{APOP} logins use L{APOPCredentials} and SASL C{CRAM-MD5} logins L{CRAMMD5Credentials};
a checker can verify those only if it knows the user's password in clear text (see
L{pop3kit.checkers.passwdfile.PasswdFileChecker}).

A SASL mechanism that verifies the identity itself (SCRAM, EXTERNAL) logs in with
L{SASLIdentity} credentials, which the server's own L{SASLIdentityChecker} accepts: so
every login, whatever its method, goes through C{portal.login}.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials, IUsernameHashedPassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from zope.interface import Attribute, Interface, alsoProvides, implementer

from pop3kit._scram import SCRAMKeys
from pop3kit.interfaces import ISCRAMKeySource

__all__ = [
    "APOPCredentials",
    "CRAMMD5Credentials",
    "ChainedChecker",
    "ISASLIdentity",
    "NoSuchUser",
    "SASLIdentity",
    "SASLIdentityChecker",
    "WrongPassword",
]


class NoSuchUser(UnauthorizedLogin):
    """
    A checker refuses credentials because it knows no such user.

    It is an L{UnauthorizedLogin}, and the client is told no more than for any other
    (RFC 1939 section 13, RFC 4954 section 9): only the server's log tells an unknown
    user from a wrong password (see L{pop3kit.audit.Reason}).
    """


class WrongPassword(UnauthorizedLogin):
    """
    A checker refuses credentials because the user's password does not match.

    Like L{NoSuchUser}, only the server's log sees the difference.
    """


@implementer(IUsernameHashedPassword)
class APOPCredentials:
    """
    The credentials of an C{APOP} command (RFC 1939, section 7).

    The client proves that it knows the shared secret by sending the hex MD5 digest of
    the server's greeting timestamp followed by the secret.

    @ivar magic: The timestamp from the server's greeting, angle brackets included, e.g.
        C{b"<1896.697170952@dbc.mtview.ca.us>"}.
    @ivar username: The user name the client sent.
    @ivar digest: The hex digest the client sent.
    """

    def __init__(self, magic: bytes, username: bytes, digest: bytes) -> None:
        """
        @param magic: The timestamp from the server's greeting, angle brackets included.
        @param username: The user name the client sent.
        @param digest: The hex digest the client sent (upper or lower case).
        """
        self.magic = magic
        self.username = username
        self.digest = digest

    def checkPassword(self, password: str | bytes) -> bool:
        """
        Check the client's digest against a clear-text password, in constant time.

        @param password: The user's clear-text password; L{str} is encoded as UTF-8.
        @return: C{True} if the digest is the MD5 of the timestamp and C{password}.
        """
        if isinstance(password, str):
            password = password.encode("utf-8")
        # RFC 1939 mandates MD5 for APOP; nothing we can choose here.
        expected = hashlib.md5(self.magic + password).hexdigest()  # noqa: S324
        return hmac.compare_digest(expected.encode("ascii"), self.digest.lower())

    def __repr__(self) -> str:
        """
        Show the user name but never the digest, which is a password equivalent for
        anybody who replays it against the same timestamp.
        """
        return f"<APOPCredentials username={self.username!r} digest=<redacted>>"


@implementer(IUsernameHashedPassword)
class CRAMMD5Credentials:
    """
    The credentials of a SASL C{CRAM-MD5} exchange (RFC 2195).

    The client proves that it knows the shared secret by sending the hex HMAC-MD5 of the
    server's challenge, keyed with the secret.  Twisted's own
    L{twisted.cred.credentials.CramMD5Credentials} is not used: it makes its challenge
    with a predictable random generator, compares in variable time and takes only
    L{bytes} passwords.

    @ivar challenge: The challenge the server sent, e.g. C{b"<1896.697170952@host>"}.
    @ivar username: The user name the client sent, UTF-8.
    @ivar response: The hex digest the client sent.
    """

    def __init__(self, challenge: bytes, username: bytes, response: bytes) -> None:
        """
        @param challenge: The challenge the server sent, angle brackets included.
        @param username: The user name the client sent, UTF-8.
        @param response: The hex digest the client sent (upper or lower case).
        """
        self.challenge = challenge
        self.username = username
        self.response = response

    def checkPassword(self, password: str | bytes) -> bool:
        """
        Check the client's digest against a clear-text password, in constant time.

        @param password: The user's clear-text password; L{str} is encoded as UTF-8.
        @return: C{True} if the digest is the HMAC-MD5 of the challenge keyed with
            C{password}.
        """
        if isinstance(password, str):
            password = password.encode("utf-8")
        # RFC 2195 mandates HMAC-MD5.
        expected = hmac.new(password, self.challenge, hashlib.md5).hexdigest()
        return hmac.compare_digest(expected.encode("ascii"), self.response.lower())

    def __repr__(self) -> str:
        """
        Show the user name but never the digest.
        """
        return f"<CRAMMD5Credentials username={self.username!r} response=<redacted>>"


@implementer(ICredentialsChecker)
class ChainedChecker:
    """
    Try several checkers in turn, as Dovecot tries several passdbs: the first that accepts
    the credentials wins, and the login fails only if every checker refuses it.

    A L{twisted.cred.portal.Portal} keeps one checker per credentials interface, so
    without this the last of several C{--auth} options would silently replace the
    others.  Only L{twisted.cred.error.UnauthorizedLogin} moves on to the next checker; any
    other failure (a checker that is down) is reported at once, so that an outage is not
    mistaken for a wrong password.

    If any of the checkers provides L{ISCRAMKeySource}, so does the chain: see
    L{scramKeys}.
    """

    def __init__(self, checkers: Sequence[ICredentialsChecker]) -> None:
        """
        @param checkers: The checkers, in the order they are tried; the credentials
            interfaces of the chain are those of any of them.
        """
        self.checkers = tuple(checkers)
        self._scramSources = [c for c in self.checkers if ISCRAMKeySource.providedBy(c)]
        if self._scramSources:
            alsoProvides(self, ISCRAMKeySource)
        interfaces: list[type[Interface]] = []
        for checker in self.checkers:
            for interface in checker.credentialInterfaces:
                if interface not in interfaces:
                    interfaces.append(interface)
        self.credentialInterfaces = tuple(interfaces)

    # Checkers may return str avatar IDs (pop3kit's do), not only Twisted's bytes.
    def requestAvatarId(self, credentials: ICredentials) -> Deferred[object]:  # type: ignore[override]
        """
        Ask each checker that understands C{credentials}, in order.
        """
        candidates = [
            checker
            for checker in self.checkers
            if any(iface.providedBy(credentials) for iface in checker.credentialInterfaces)
        ]
        return Deferred.fromCoroutine(self._firstAccepting(candidates, credentials))

    def scramKeys(self, username: str, mechanism: str) -> Deferred[SCRAMKeys | None]:
        """
        Ask each checker that provides L{ISCRAMKeySource}, in order, for the keys of
        C{username}: the first that has keys wins, and L{None} if none has.  A failure
        (a store that is down) is reported at once.

        @param username: The prepared user name.
        @param mechanism: C{"SCRAM-SHA-1"} or C{"SCRAM-SHA-256"}.
        """
        return Deferred.fromCoroutine(self._firstKeys(username, mechanism))

    async def _firstKeys(self, username: str, mechanism: str) -> SCRAMKeys | None:
        for source in self._scramSources:
            keys: SCRAMKeys | None = await ISCRAMKeySource(source).scramKeys(username, mechanism)
            if keys is not None:
                return keys
        return None

    async def _firstAccepting(
        self, candidates: list[ICredentialsChecker], credentials: ICredentials
    ) -> object:
        # For the log: a wrong password if a checker knows the user and says so; an
        # unknown user only if every checker says that.
        refusal: type[UnauthorizedLogin] = NoSuchUser if candidates else UnauthorizedLogin
        for checker in candidates:
            try:
                return await maybeDeferred(checker.requestAvatarId, credentials)
            except NoSuchUser:
                continue
            except WrongPassword:
                refusal = WrongPassword
            except UnauthorizedLogin:
                if refusal is NoSuchUser:
                    refusal = UnauthorizedLogin
        raise refusal()


# Interface among the bases, though ICredentials has it, tells pydoctor this is one.
class ISASLIdentity(ICredentials, Interface):  # type: ignore[misc]
    """
    A user name that a SASL mechanism has already verified (SCRAM once the client proved
    it knows the password, EXTERNAL from the TLS client certificate).

    The server logs such users in with C{portal.login(SASLIdentity(...), None,
    IMailbox)}, checked by its own L{SASLIdentityChecker}; a portal that registers a
    checker of its own for this interface gets these logins instead (to refuse disabled
    accounts, say).
    """

    username = Attribute("The verified user name, prepared with SASLprep (L{str}).")
    mechanism = Attribute("The name of the mechanism that verified it (L{str}).")


@implementer(ISASLIdentity)
class SASLIdentity:
    """
    The credentials of a SASL login whose mechanism verified the user itself.

    @ivar username: The verified, prepared user name.
    @ivar mechanism: The mechanism that verified it, e.g. C{"SCRAM-SHA-256"}.
    """

    def __init__(self, username: str, mechanism: str) -> None:
        """
        @param username: The verified, prepared user name.
        @param mechanism: The mechanism that verified it.
        """
        self.username = username
        self.mechanism = mechanism

    def __repr__(self) -> str:
        return f"<SASLIdentity username={self.username!r} mechanism={self.mechanism!r}>"


@implementer(ICredentialsChecker)
class SASLIdentityChecker:
    """
    Accepts every L{ISASLIdentity}: its avatar ID is the user name.

    The server adds one to the portal it logs in through, never to the application's
    portal: an L{ISASLIdentity} is only ever made after a mechanism verified it, and
    anybody able to make one could log in as anyone.
    """

    credentialInterfaces = (ISASLIdentity,)

    # The avatar ID is the str user name, as pop3kit's checkers give.
    def requestAvatarId(self, credentials: ICredentials) -> Deferred[object]:  # type: ignore[override]
        """
        The verified user name.
        """
        return succeed(ISASLIdentity(credentials).username)
