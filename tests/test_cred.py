"""
Tests for L{pop3kit.cred}.
"""

from __future__ import annotations

from twisted.cred.credentials import IUsernameHashedPassword
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from pop3kit.cred import APOPCredentials

# RFC 1939, section 7.
RFC_MAGIC = b"<1896.697170952@dbc.mtview.ca.us>"
RFC_SECRET = "tanstaaf"
RFC_DIGEST = b"c4c9334bac560ecc979e58001b3e22fb"


class APOPCredentialsTests(SynchronousTestCase):
    """
    Tests for L{APOPCredentials}.
    """

    def test_interface(self) -> None:
        """
        L{APOPCredentials} provides L{IUsernameHashedPassword}.
        """
        credentials = APOPCredentials(RFC_MAGIC, b"mrose", RFC_DIGEST)
        self.assertTrue(verifyObject(IUsernameHashedPassword, credentials))
        self.assertEqual(credentials.username, b"mrose")

    def test_rfcExample(self) -> None:
        """
        The example of RFC 1939 checks out, with the secret as L{str} or L{bytes}.
        """
        credentials = APOPCredentials(RFC_MAGIC, b"mrose", RFC_DIGEST)
        self.assertIs(credentials.checkPassword(RFC_SECRET), True)
        self.assertIs(credentials.checkPassword(RFC_SECRET.encode("ascii")), True)

    def test_upperCaseDigest(self) -> None:
        """
        A digest sent in upper case hex is accepted.
        """
        credentials = APOPCredentials(RFC_MAGIC, b"mrose", RFC_DIGEST.upper())
        self.assertIs(credentials.checkPassword(RFC_SECRET), True)

    def test_wrongSecret(self) -> None:
        """
        Another secret does not match.
        """
        credentials = APOPCredentials(RFC_MAGIC, b"mrose", RFC_DIGEST)
        self.assertIs(credentials.checkPassword("tanstaafl"), False)
        self.assertIs(credentials.checkPassword(""), False)

    def test_otherTimestamp(self) -> None:
        """
        The digest is bound to the greeting's timestamp: a replay against another
        timestamp fails.
        """
        credentials = APOPCredentials(b"<1897.697170952@dbc.mtview.ca.us>", b"mrose", RFC_DIGEST)
        self.assertIs(credentials.checkPassword(RFC_SECRET), False)

    def test_malformedDigest(self) -> None:
        """
        A digest of the wrong length or with non-hex characters fails without error.
        """
        for digest in (RFC_DIGEST[:-1], RFC_DIGEST + b"0", b"", b"z" * 32):
            credentials = APOPCredentials(RFC_MAGIC, b"mrose", digest)
            self.assertIs(credentials.checkPassword(RFC_SECRET), False, digest)

    def test_nonAsciiSecret(self) -> None:
        """
        A L{str} secret is encoded as UTF-8 before hashing.
        """
        import hashlib

        digest = hashlib.md5(RFC_MAGIC + "pässwörd".encode()).hexdigest().encode()
        credentials = APOPCredentials(RFC_MAGIC, b"mrose", digest)
        self.assertIs(credentials.checkPassword("pässwörd"), True)
        self.assertIs(credentials.checkPassword("pässwörd".encode("latin-1")), False)

    def test_reprRedactsDigest(self) -> None:
        """
        The C{repr} shows the user name but not the digest.
        """
        text = repr(APOPCredentials(RFC_MAGIC, b"mrose", RFC_DIGEST))
        self.assertIn("mrose", text)
        self.assertNotIn(RFC_DIGEST.decode(), text)
        self.assertNotIn(RFC_DIGEST.decode()[:8], text)
