"""
Tests for the client side of L{pop3kit.sasl}: against the RFC examples, and end to end
against pop3kit's server mechanisms.
"""

from __future__ import annotations

from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.trial.unittest import SynchronousTestCase

from pop3kit import sasl
from pop3kit.errors import AuthenticationFailed
from pop3kit.sasl import (
    CLIENT_PREFERENCE,
    SERVER_MECHANISMS,
    Challenge,
    CheckCredentials,
    ClientMechanism,
    MalformedSASLChallenge,
    NeedSCRAMKeys,
    SCRAMKeys,
    Step,
    Verified,
    clientMechanism,
    serverMechanism,
)
from tests._scramvectors import RFC5802, RFC7677


def run(
    client: ClientMechanism,
    serverName: str,
    keys: SCRAMKeys | None = None,
    sendInitialResponse: bool = True,
    tlsIdentity: str | None = None,
) -> Step:
    """
    Run an exchange between a client and a server mechanism until the server's final
    step, passing C{keys} when the server asks for SCRAM keys.
    """
    server = serverMechanism(serverName, tlsIdentity=tlsIdentity)
    initial = client.initialResponse() if sendInitialResponse else None
    step = server.start(initial)
    while True:
        if isinstance(step, NeedSCRAMKeys):
            step = server.keysFound(keys)
        elif isinstance(step, Challenge):
            step = server.respond(client.respond(step.data))
        else:
            return step


class PreferenceTests(SynchronousTestCase):
    """
    Tests for L{CLIENT_PREFERENCE} and L{clientMechanism}.
    """

    def test_preference(self) -> None:
        """
        The preference is SCRAM first, clear-text last, and each name makes a client
        mechanism of that name that the server also knows.
        """
        self.assertEqual(
            CLIENT_PREFERENCE, ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")
        )
        for name in CLIENT_PREFERENCE:
            self.assertIn(name, SERVER_MECHANISMS)
            self.assertEqual(clientMechanism(name.lower(), "tim", "pw").name, name)

    def test_unknown(self) -> None:
        """
        An unknown name raises an error that is both a L{KeyError} and a L{ValueError}.
        """
        self.assertRaises(KeyError, clientMechanism, "X-NOSUCH", "tim", "pw")
        self.assertRaises(ValueError, clientMechanism, "SCRAM-SHA-256-PLUS", "tim", "pw")

    def test_scramRefusals(self) -> None:
        """
        A SCRAM client cannot send an authzid, nor use a prohibited user name or
        password.
        """
        self.assertRaises(ValueError, clientMechanism, "SCRAM-SHA-256", "tim", "pw", authzid="x")
        self.assertRaises(ValueError, clientMechanism, "SCRAM-SHA-256", "tim", "a\x07")
        self.assertRaises(ValueError, clientMechanism, "SCRAM-SHA-1", "\x07", "pw")


class VectorTests(SynchronousTestCase):
    """
    The client mechanisms produce the RFC examples' messages.
    """

    def test_plain(self) -> None:
        """
        PLAIN sends RFC 4616's examples as its initial response.
        """
        client = clientMechanism("PLAIN", "tim", "tanstaaftanstaaf")
        self.assertEqual(client.initialResponse(), b"\0tim\0tanstaaftanstaaf")
        self.assertTrue(client.complete)
        client = clientMechanism("PLAIN", "Kurt", "xipj3plmq", authzid="Ursel")
        self.assertEqual(client.initialResponse(), b"Ursel\0Kurt\0xipj3plmq")

    def test_cramMD5(self) -> None:
        """
        CRAM-MD5 answers RFC 2195's example challenge with the example response.
        """
        client = clientMechanism("CRAM-MD5", "tim", "tanstaaftanstaaf")
        self.assertIsNone(client.initialResponse())
        self.assertFalse(client.complete)
        self.assertEqual(
            client.respond(b"<1896.697170952@postoffice.reston.mci.net>"),
            b"tim b913a602c7eda7a495b4e6e7334d3890",
        )
        self.assertTrue(client.complete)

    def test_scram(self) -> None:
        """
        SCRAM produces the RFC 5802 and RFC 7677 messages, verifies the server's
        signature, acknowledges it with an empty response, and only then is complete.
        """
        for example in (RFC5802, RFC7677):
            client = sasl._SCRAMClient(
                example.mechanism, "user", "pencil", clientNonce=example.clientNonce
            )
            self.assertEqual(client.initialResponse(), example.clientFirst)
            self.assertEqual(client.respond(example.serverFirst), example.clientFinal)
            self.assertFalse(client.complete)
            self.assertEqual(client.respond(example.serverFinal), b"")
            self.assertTrue(client.complete)

    def test_scramWrongServerSignature(self) -> None:
        """
        A wrong server signature, or a server error, fails the login and leaves the
        exchange incomplete.
        """
        for serverFinal in (b"v=" + b"A" * 44, b"e=invalid-proof", RFC5802.serverFinal):
            client = sasl._SCRAMClient(
                "SCRAM-SHA-256", "user", "pencil", clientNonce=RFC7677.clientNonce
            )
            client.initialResponse()
            client.respond(RFC7677.serverFirst)
            self.assertRaises(AuthenticationFailed, client.respond, serverFinal)
            self.assertFalse(client.complete)

    def test_scramMalformedServerFirst(self) -> None:
        """
        A server-first message with another nonce, bad syntax or bad UTF-8 is
        malformed; a server error fails the login.
        """
        for serverFirst in (
            b"r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10",
            b"garbage",
            b"\xff",
        ):
            client = sasl._SCRAMClient(
                "SCRAM-SHA-256", "user", "pencil", clientNonce=RFC7677.clientNonce
            )
            client.initialResponse()
            self.assertRaises(MalformedSASLChallenge, client.respond, serverFirst)
        refused = clientMechanism("SCRAM-SHA-256", "user", "pencil")
        refused.initialResponse()
        self.assertRaises(AuthenticationFailed, refused.respond, b"e=unknown-user")

    def test_unexpectedChallenges(self) -> None:
        """
        A non-empty PLAIN challenge, or any challenge after the exchange is over, is
        malformed.
        """
        plain = clientMechanism("PLAIN", "tim", "pw")
        plain.initialResponse()
        self.assertRaises(MalformedSASLChallenge, plain.respond, b"x")
        plain.respond(b"")
        self.assertRaises(MalformedSASLChallenge, plain.respond, b"")
        login = clientMechanism("LOGIN", "tim", "pw")
        login.respond(b"Username:")
        login.respond(b"Password:")
        self.assertRaises(MalformedSASLChallenge, login.respond, b"More:")
        cram = clientMechanism("CRAM-MD5", "tim", "pw")
        self.assertRaises(MalformedSASLChallenge, cram.respond, b"")
        cram.respond(b"<1.2@host>")
        self.assertRaises(MalformedSASLChallenge, cram.respond, b"<1.2@host>")
        scram = clientMechanism("SCRAM-SHA-1", "user", "pencil")
        run(scram, "SCRAM-SHA-1", keys=SCRAMKeys.fromPassword("pencil", "SCRAM-SHA-1"))
        self.assertRaises(MalformedSASLChallenge, scram.respond, b"")

    def test_loginAnyPrompts(self) -> None:
        """
        LOGIN answers two prompts with the user name and then the password, whatever
        they say.
        """
        client = clientMechanism("LOGIN", "tim", "pässword")
        self.assertIsNone(client.initialResponse())
        self.assertEqual(client.respond(b"VXNlcm5hbWU6"), b"tim")
        self.assertFalse(client.complete)
        self.assertEqual(client.respond(b""), "pässword".encode())
        self.assertTrue(client.complete)


class EndToEndTests(SynchronousTestCase):
    """
    pop3kit's client mechanisms against its server mechanisms.
    """

    def test_plainAndLogin(self) -> None:
        """
        PLAIN (with and without an initial response) and LOGIN end with the user's
        name and password, UTF-8.
        """
        for name, initial in (("PLAIN", True), ("PLAIN", False), ("LOGIN", True)):
            step = run(clientMechanism(name, "tïm", "pässword"), name, sendInitialResponse=initial)
            assert isinstance(step, CheckCredentials)
            credentials = IUsernamePassword(step.credentials)
            self.assertEqual(
                (credentials.username, credentials.password),
                ("tïm".encode(), "pässword".encode()),
            )

    def test_cramMD5(self) -> None:
        """
        CRAM-MD5 ends with credentials that accept the right password only.
        """
        step = run(clientMechanism("CRAM-MD5", "tim", "pässword"), "CRAM-MD5")
        assert isinstance(step, CheckCredentials)
        credentials = IUsernameHashedPassword(step.credentials)
        self.assertIs(credentials.checkPassword("pässword".encode()), True)
        self.assertIs(credentials.checkPassword(b"password"), False)

    def test_scram(self) -> None:
        """
        Both SCRAM mechanisms verify the right password, with and without an initial
        response, for a non-ASCII user name and password.
        """
        for name in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
            keys = SCRAMKeys.fromPassword("pässword", name)
            for initial in (True, False):
                client = clientMechanism(name, "tïm,=", "pässword")
                step = run(client, name, keys=keys, sendInitialResponse=initial)
                self.assertEqual(step, Verified("tïm,="))
                self.assertTrue(client.complete)

    def test_initialResponseTooLong(self) -> None:
        """
        A client that computed its initial response but did not send it (too long for
        the C{AUTH} line) answers the server's empty challenge with it, once.
        """
        for name in ("PLAIN", "SCRAM-SHA-256"):
            client = clientMechanism(name, "tim" * 100, "pencil")
            initial = client.initialResponse()
            assert initial is not None
            self.assertGreater(len(initial), 255)
            self.assertEqual(client.respond(b""), initial)
            self.assertRaises(MalformedSASLChallenge, client.respond, b"")
        keys = SCRAMKeys.fromPassword("pencil", "SCRAM-SHA-256")
        client = clientMechanism("SCRAM-SHA-256", "tim", "pencil")
        client.initialResponse()
        step = run(client, "SCRAM-SHA-256", keys=keys, sendInitialResponse=False)
        self.assertEqual(step, Verified("tim"))

    def test_scramWrongPassword(self) -> None:
        """
        A wrong password, or an unknown user, fails at the server, and the client is
        not complete.
        """
        for keys in (SCRAMKeys.fromPassword("other", "SCRAM-SHA-256"), None):
            client = clientMechanism("SCRAM-SHA-256", "tim", "pencil")
            self.assertRaises(AuthenticationFailed, run, client, "SCRAM-SHA-256", keys)
            self.assertFalse(client.complete)

    def test_external(self) -> None:
        """
        EXTERNAL sends the authzid; the server verifies the certificate's identity.
        """
        self.assertEqual(
            run(clientMechanism("EXTERNAL", "", ""), "EXTERNAL", tlsIdentity="tim"),
            Verified("tim"),
        )
        self.assertEqual(
            run(
                clientMechanism("EXTERNAL", "", "", authzid="tim"),
                "EXTERNAL",
                tlsIdentity="tim",
                sendInitialResponse=False,
            ),
            Verified("tim"),
        )
