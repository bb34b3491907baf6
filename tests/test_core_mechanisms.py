"""
Tests for L{pop3kit.core._mechanisms}: the one table of login methods, and that every
other list of mechanism names in pop3kit derives from it.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pop3kit import cli, client, sasl
from pop3kit.core import (
    CLEARTEXT_MECHANISMS,
    CLIENT_PREFERENCE,
    DEFAULT_SASL_MECHANISMS,
    LOGIN_METHODS,
    SASL_MECHANISMS,
    TLS_MECHANISMS,
    Credential,
    loginMethod,
)


class LoginMethodTableTests(SynchronousTestCase):
    """
    Tests for L{LOGIN_METHODS} and the lists derived from it.
    """

    def test_namesAreUniqueAndUpperCase(self) -> None:
        """
        Every method has a distinct, upper-case name.
        """
        names = [method.name for method in LOGIN_METHODS]
        self.assertEqual(len(names), len(set(names)))
        self.assertEqual(names, [name.upper() for name in names])

    def test_saslMechanisms(self) -> None:
        """
        The SASL mechanisms are the table's SASL entries, strongest first; USER and APOP
        are not among them.
        """
        self.assertEqual(
            SASL_MECHANISMS,
            (
                "GSSAPI",
                "SCRAM-SHA-256",
                "SCRAM-SHA-1",
                "CRAM-MD5",
                "PLAIN",
                "LOGIN",
                "EXTERNAL",
                "OAUTHBEARER",
                "XOAUTH2",
            ),
        )

    def test_cleartext(self) -> None:
        """
        PLAIN and LOGIN send the password itself among the SASL mechanisms, and
        OAUTHBEARER and XOAUTH2 a bearer token, which is as good as a password.
        """
        self.assertEqual(
            CLEARTEXT_MECHANISMS, frozenset({"PLAIN", "LOGIN", "OAUTHBEARER", "XOAUTH2"})
        )

    def test_tls(self) -> None:
        """
        EXTERNAL and the bearer-token mechanisms need TLS.
        """
        self.assertEqual(TLS_MECHANISMS, frozenset({"EXTERNAL", "OAUTHBEARER", "XOAUTH2"}))

    def test_serverDefaults(self) -> None:
        """
        A server offers GSSAPI, SCRAM, PLAIN, LOGIN, OAUTHBEARER and XOAUTH2 by default
        (each when its checkers can verify it); CRAM-MD5 needs passwords stored
        reversibly, so it is offered only when asked for.
        """
        self.assertEqual(
            DEFAULT_SASL_MECHANISMS,
            ("GSSAPI", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "LOGIN", "OAUTHBEARER", "XOAUTH2"),
        )

    def test_clientPreference(self) -> None:
        """
        A client prefers SCRAM, then CRAM-MD5, then the clear-text mechanisms with a
        password; it never picks EXTERNAL or APOP by itself, and GSSAPI only with a
        Kerberos ticket.
        """
        self.assertEqual(
            CLIENT_PREFERENCE, ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")
        )

    def test_lookup(self) -> None:
        """
        L{loginMethod} finds a method by name, case-insensitively, and raises
        L{KeyError} for an unknown one.
        """
        self.assertIs(loginMethod("cram-md5").credential, Credential.HASHED)
        self.assertEqual(loginMethod("Scram-Sha-1").option, "scram-sha-1")
        self.assertIs(loginMethod("gssapi").credential, Credential.KERBEROS)
        self.assertRaises(KeyError, loginMethod, "KERBEROS_V4")


class DerivedListsTests(SynchronousTestCase):
    """
    The mechanism lists of the other modules are the table's, not copies.
    """

    def test_sasl(self) -> None:
        """
        L{pop3kit.sasl} implements every SASL mechanism of the table, and prefers them
        in the table's order.
        """
        self.assertEqual(sasl.SERVER_MECHANISMS, SASL_MECHANISMS)
        self.assertEqual(sasl.CLIENT_PREFERENCE, CLIENT_PREFERENCE)

    def test_client(self) -> None:
        """
        The client's login methods are the table's, EXTERNAL aside, in lower case; its
        clear-text set adds USER to the clear-text SASL mechanisms.
        """
        self.assertEqual(
            client.MECHANISMS,
            frozenset(
                {
                    "user",
                    "apop",
                    "plain",
                    "login",
                    "cram-md5",
                    "scram-sha-1",
                    "scram-sha-256",
                    "gssapi",
                    "oauthbearer",
                    "xoauth2",
                }
            ),
        )
        self.assertEqual(
            client.CLEARTEXT_MECHANISMS,
            frozenset({"user", "plain", "login", "oauthbearer", "xoauth2"}),
        )

    def test_commandLine(self) -> None:
        """
        C{pop3kit fetch --auth} accepts the client's login methods.
        """
        self.assertEqual(set(cli.AUTH_MECHANISMS), set(client.MECHANISMS))
