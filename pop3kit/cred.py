"""
Credentials for POP3 logins.

C{USER}/C{PASS} logins use Twisted's own L{twisted.cred.credentials.UsernamePassword};
C{APOP} logins use L{APOPCredentials}, which a checker can verify only if it knows the
user's password in clear text (see L{pop3kit.checkers.passwdfile.PasswdFileChecker}).
"""

from __future__ import annotations

import hashlib
import hmac

from twisted.cred.credentials import IUsernameHashedPassword
from zope.interface import implementer

__all__ = ["APOPCredentials"]


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
