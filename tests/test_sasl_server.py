"""
Tests for the server side of L{pop3kit.sasl}.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.trial.unittest import SynchronousTestCase

from pop3kit import sasl
from pop3kit._scram import derivedSalt
from pop3kit.cred import CRAMMD5Credentials
from pop3kit.errors import AuthenticationFailed, RemoteProtocolError, ResponseCode
from pop3kit.sasl import (
    SERVER_MECHANISMS,
    Challenge,
    CheckCredentials,
    MalformedSASLResponse,
    NeedSCRAMKeys,
    SCRAMKeys,
    ServerMechanism,
    Step,
    Verified,
    preparePassword,
    prepareUsername,
    serverMechanism,
)
from tests._scramvectors import RFC5802, RFC7677, SCRAMExample


def usernamePassword(step: Step) -> tuple[bytes, bytes]:
    """
    The user name and password of a L{CheckCredentials} step with L{IUsernamePassword}.
    """
    assert isinstance(step, CheckCredentials), step
    credentials = IUsernamePassword(step.credentials)
    return credentials.username, credentials.password


class PrepareTests(SynchronousTestCase):
    """
    Tests for L{prepareUsername} and L{preparePassword} (SASLprep, RFC 4013).
    """

    def test_rfc4013Examples(self) -> None:
        """
        The examples of RFC 4013 section 3 map as the RFC says.
        """
        for prepare in (prepareUsername, preparePassword):
            self.assertEqual(prepare("I\u00adX"), "IX")
            self.assertEqual(prepare("user"), "user")
            self.assertEqual(prepare("USER"), "USER")
            self.assertEqual(prepare("\u00aa"), "a")
            self.assertEqual(prepare("\u2168"), "IX")
            self.assertEqual(prepare("a\u00a0b"), "a b")

    def test_prohibited(self) -> None:
        """
        Prohibited characters and bad bidirectional strings fail the login.
        """
        for prepare in (prepareUsername, preparePassword):
            self.assertRaises(AuthenticationFailed, prepare, "\u0007")
            # ASCII takes a shortcut past the tables, but not ASCII controls.
            for control in ("a\x7fb", "pass\tword", "x\x1b"):
                self.assertRaises(AuthenticationFailed, prepare, control)
            self.assertEqual(prepare("p@ss w0rd!~"), "p@ss w0rd!~")
            self.assertRaises(AuthenticationFailed, prepare, "\u0627\u0031")
            self.assertRaises(AuthenticationFailed, prepare, "a\ue000")

    def test_empty(self) -> None:
        """
        A user name that prepares to nothing is malformed; a password may be empty.
        """
        self.assertRaises(MalformedSASLResponse, prepareUsername, "\u00ad")
        self.assertEqual(preparePassword("\u00ad"), "")


class FactoryTests(SynchronousTestCase):
    """
    Tests for L{serverMechanism} and L{SERVER_MECHANISMS}.
    """

    def test_everyName(self) -> None:
        """
        Every listed name makes a mechanism of that name, case-insensitively; only
        CRAM-MD5 is server-first.
        """
        self.assertEqual(
            set(SERVER_MECHANISMS),
            {
                "GSSAPI",
                "SCRAM-SHA-256",
                "SCRAM-SHA-1",
                "CRAM-MD5",
                "PLAIN",
                "LOGIN",
                "EXTERNAL",
                "OAUTHBEARER",
                "XOAUTH2",
            },
        )
        for name in SERVER_MECHANISMS:
            mechanism = serverMechanism(name.lower())
            self.assertEqual(mechanism.name, name)
            self.assertEqual(mechanism.clientFirst, name != "CRAM-MD5")

    def test_unknown(self) -> None:
        """
        An unknown name raises an error that is both a L{KeyError} and a L{ValueError}.
        """
        self.assertRaises(KeyError, serverMechanism, "X-NOSUCH")
        self.assertRaises(ValueError, serverMechanism, "SCRAM-SHA-256-PLUS")
        self.assertRaises(ValueError, serverMechanism, "KERBEROS_V4")

    def test_badHostname(self) -> None:
        """
        A host name that would break the CRAM-MD5 challenge's syntax is refused, and any
        other printable one is accepted.
        """
        for hostname in ("", "a b", "host>", "<host", "a@b", "ä.example", "a\nb"):
            self.assertRaises(ValueError, serverMechanism, "CRAM-MD5", hostname=hostname)
        for hostname in ("mail_1.example", "[192.0.2.1]", "localhost"):
            self.assertEqual(serverMechanism("CRAM-MD5", hostname=hostname).name, "CRAM-MD5")

    def test_malformedIsRemoteProtocolError(self) -> None:
        """
        L{MalformedSASLResponse} is a L{RemoteProtocolError} without a response code,
        and L{AuthenticationFailed} carries C{AUTH}.
        """
        self.assertIsInstance(MalformedSASLResponse(), RemoteProtocolError)
        self.assertIsNone(MalformedSASLResponse().code)
        self.assertIs(AuthenticationFailed().code, ResponseCode.AUTH)


class FinishedTests(SynchronousTestCase):
    """
    A mechanism whose exchange is over, or failed, or never started, takes no input.
    """

    def test_afterFailure(self) -> None:
        """
        After a failure every further response is malformed.
        """
        for name in SERVER_MECHANISMS:
            mechanism = serverMechanism(name, tlsIdentity="alice")
            if name == "CRAM-MD5":
                self.assertRaises(MalformedSASLResponse, mechanism.start, b"x")
            else:
                mechanism.start(None)
                self.assertRaises(
                    (MalformedSASLResponse, AuthenticationFailed), mechanism.respond, b"\xff"
                )
            self.assertRaises(MalformedSASLResponse, mechanism.respond, b"")

    def test_afterSuccess(self) -> None:
        """
        After the final step, a further response is malformed.
        """
        mechanism = serverMechanism("PLAIN")
        mechanism.start(b"\0tim\0pw")
        self.assertRaises(MalformedSASLResponse, mechanism.respond, b"\0tim\0pw")

    def test_notStarted(self) -> None:
        """
        A response before L{ServerMechanism.start} is malformed; starting twice is a
        programming error.
        """
        mechanism = serverMechanism("LOGIN")
        self.assertRaises(MalformedSASLResponse, mechanism.respond, b"tim")
        mechanism = serverMechanism("LOGIN")
        mechanism.start(None)
        self.assertRaises(RuntimeError, mechanism.start, None)

    def test_keysFoundNotAsked(self) -> None:
        """
        L{ServerMechanism.keysFound} without L{NeedSCRAMKeys} is a programming error.
        """
        self.assertRaises(RuntimeError, serverMechanism("PLAIN").keysFound, None)
        scram = serverMechanism("SCRAM-SHA-256")
        scram.start(None)
        self.assertRaises(RuntimeError, scram.keysFound, None)


class PlainTests(SynchronousTestCase):
    """
    Tests for PLAIN (RFC 4616).
    """

    def test_rfc4616Example(self) -> None:
        """
        RFC 4616's first example, as an initial response, gives C{UsernamePassword}.
        """
        step = serverMechanism("PLAIN").start(b"\0tim\0tanstaaftanstaaf")
        self.assertEqual(usernamePassword(step), (b"tim", b"tanstaaftanstaaf"))

    def test_otherAuthzidRefused(self) -> None:
        """
        RFC 4616's second example asks to act as another user (Ursel): refused.
        """
        self.assertRaises(
            AuthenticationFailed, serverMechanism("PLAIN").start, b"Ursel\0Kurt\0xipj3plmq"
        )

    def test_sameAuthzid(self) -> None:
        """
        An authzid equal to the authcid (after SASLprep) is accepted.
        """
        step = serverMechanism("PLAIN").start(b"Kurt\0Kurt\0xipj3plmq")
        self.assertEqual(usernamePassword(step), (b"Kurt", b"xipj3plmq"))
        step = serverMechanism("PLAIN").start("K\u00adurt\0Kurt\0x".encode())
        self.assertEqual(usernamePassword(step), (b"Kurt", b"x"))

    def test_challengeFirst(self) -> None:
        """
        Without an initial response, the server sends an empty challenge first.
        """
        mechanism = serverMechanism("PLAIN")
        self.assertEqual(mechanism.start(None), Challenge(b""))
        self.assertEqual(usernamePassword(mechanism.respond(b"\0tim\0pw")), (b"tim", b"pw"))

    def test_longFields(self) -> None:
        """
        Fields of 255 octets (UTF-8) are accepted.
        """
        name = "ä" * 127 + "a"
        password = "p" * 255
        step = serverMechanism("PLAIN").start(("\0" + name + "\0" + password).encode())
        self.assertEqual(usernamePassword(step), (name.encode(), password.encode()))
        self.assertEqual(len(name.encode()), 255)

    def test_saslprep(self) -> None:
        """
        User name and password are prepared with SASLprep; prohibited ones fail.
        """
        step = serverMechanism("PLAIN").start("\0\u2168\0I\u00adX".encode())
        self.assertEqual(usernamePassword(step), (b"IX", b"IX"))
        self.assertRaises(AuthenticationFailed, serverMechanism("PLAIN").start, b"\0tim\0bell\x07")

    def test_malformed(self) -> None:
        """
        An empty message (C{=}), the wrong number of fields, empty user name or
        password, and invalid UTF-8 are malformed.
        """
        for message in (
            b"",
            b"tim",
            b"\0tim",
            b"\0tim\0pw\0",
            b"\0\0pw",
            b"\0tim\0",
            b"\0t\xffim\0pw",
            b"\0tim\0p\xffw",
            b"\xff\0tim\0pw",
        ):
            self.assertRaises(MalformedSASLResponse, serverMechanism("PLAIN").start, message)


class LoginTests(SynchronousTestCase):
    """
    Tests for LOGIN.
    """

    def test_exchange(self) -> None:
        """
        The server asks C{Username:} then C{Password:}.
        """
        mechanism = serverMechanism("LOGIN")
        self.assertEqual(mechanism.start(None), Challenge(b"Username:"))
        self.assertEqual(mechanism.respond(b"tim"), Challenge(b"Password:"))
        self.assertEqual(usernamePassword(mechanism.respond(b"pass word")), (b"tim", b"pass word"))

    def test_initialResponse(self) -> None:
        """
        An initial response is the user name; an empty one (C{=}) is ignored.
        """
        mechanism = serverMechanism("LOGIN")
        self.assertEqual(mechanism.start(b"tim"), Challenge(b"Password:"))
        self.assertEqual(usernamePassword(mechanism.respond(b"pw")), (b"tim", b"pw"))
        self.assertEqual(serverMechanism("LOGIN").start(b""), Challenge(b"Username:"))

    def test_malformed(self) -> None:
        """
        Invalid UTF-8 and an empty user name are malformed.
        """
        self.assertRaises(MalformedSASLResponse, serverMechanism("LOGIN").start, b"\xfftim")
        mechanism = serverMechanism("LOGIN")
        mechanism.start(None)
        self.assertRaises(MalformedSASLResponse, mechanism.respond, b"")
        mechanism = serverMechanism("LOGIN")
        mechanism.start(b"tim")
        self.assertRaises(MalformedSASLResponse, mechanism.respond, b"\xc3")


class CRAMMD5Tests(SynchronousTestCase):
    """
    Tests for CRAM-MD5 (RFC 2195).
    """

    def challenge(self, mechanism: ServerMechanism) -> bytes:
        step = mechanism.start(None)
        assert isinstance(step, Challenge)
        return step.data

    def test_challenge(self) -> None:
        """
        The challenge has msg-id syntax with the host name, and differs every time.
        """
        challenges = {
            self.challenge(serverMechanism("CRAM-MD5", hostname="pop.example")) for _ in range(20)
        }
        self.assertEqual(len(challenges), 20)
        for challenge in challenges:
            self.assertTrue(re.fullmatch(rb"<\d+\.\d+@pop\.example>", challenge), challenge)

    def test_response(self) -> None:
        """
        A response gives L{CRAMMD5Credentials} that check the HMAC-MD5 of the challenge,
        for L{str} and L{bytes} passwords; upper-case hex is accepted.
        """
        mechanism = serverMechanism("CRAM-MD5")
        challenge = self.challenge(mechanism)
        digest = hmac.new(b"tanstaaftanstaaf", challenge, hashlib.md5).hexdigest()
        step = mechanism.respond(b"tim " + digest.upper().encode())
        assert isinstance(step, CheckCredentials)
        credentials = step.credentials
        assert isinstance(credentials, CRAMMD5Credentials)
        self.assertTrue(IUsernameHashedPassword.providedBy(credentials))
        self.assertEqual(credentials.username, b"tim")
        self.assertEqual(credentials.challenge, challenge)
        self.assertIs(credentials.checkPassword(b"tanstaaftanstaaf"), True)
        self.assertIs(credentials.checkPassword("tanstaaftanstaaf"), True)
        self.assertIs(credentials.checkPassword("tanstaaf"), False)
        self.assertNotIn(digest, repr(credentials))

    def test_rfc2195Example(self) -> None:
        """
        The credentials check RFC 2195's example exchange.
        """
        credentials = CRAMMD5Credentials(
            b"<1896.697170952@postoffice.reston.mci.net>",
            b"tim",
            b"b913a602c7eda7a495b4e6e7334d3890",
        )
        self.assertIs(credentials.checkPassword("tanstaaftanstaaf"), True)
        self.assertIs(credentials.checkPassword("tanstaaftanstaa"), False)

    def test_userNameWithSpace(self) -> None:
        """
        The digest is what follows the last space; the user name may contain spaces.
        """
        mechanism = serverMechanism("CRAM-MD5")
        self.challenge(mechanism)
        step = mechanism.respond(b"tim t " + b"0" * 32)
        assert isinstance(step, CheckCredentials)
        self.assertEqual(IUsernameHashedPassword(step.credentials).username, b"tim t")

    def test_initialResponseRefused(self) -> None:
        """
        An initial response is refused: the server speaks first.
        """
        mechanism = serverMechanism("CRAM-MD5")
        self.assertFalse(mechanism.clientFirst)
        self.assertRaises(MalformedSASLResponse, mechanism.start, b"")

    def test_malformed(self) -> None:
        """
        Responses that are not C{user SP 32-hex-digits} are malformed.
        """
        for response in (
            b"",
            b"tim",
            b"tim " + b"0" * 31,
            b"tim " + b"0" * 33,
            b"tim " + b"g" * 32,
            b" " + b"0" * 32,
            b"tim\t" + b"0" * 32,
            b"t\xffim " + b"0" * 32,
        ):
            mechanism = serverMechanism("CRAM-MD5")
            self.challenge(mechanism)
            self.assertRaises(MalformedSASLResponse, mechanism.respond, response)


class SCRAMTests(SynchronousTestCase):
    """
    Tests for SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677).
    """

    def replay(self, example: SCRAMExample) -> sasl._SCRAMServer:
        """
        Replay an RFC example against the server up to its server-final message.
        """
        mechanism = sasl._SCRAMServer(example.mechanism, serverNonce=example.serverNonce)
        self.assertEqual(
            mechanism.start(example.clientFirst),
            NeedSCRAMKeys("user", example.mechanism),
        )
        self.assertEqual(mechanism.keysFound(example.keys()), Challenge(example.serverFirst))
        self.assertEqual(
            mechanism.respond(example.clientFinal),
            Challenge(example.serverFinal),
        )
        return mechanism

    def test_rfcExamples(self) -> None:
        """
        The RFC 5802 and RFC 7677 examples run to their end, and the client's empty
        acknowledgement of the server signature gives L{Verified}.
        """
        for example in (RFC5802, RFC7677):
            self.assertEqual(self.replay(example).respond(b""), Verified("user"))

    def test_acknowledgementMustBeEmpty(self) -> None:
        """
        A non-empty answer to the server-final message is malformed.
        """
        self.assertRaises(MalformedSASLResponse, self.replay(RFC7677).respond, b"x")

    def test_wrongProof(self) -> None:
        """
        A client proof made with another password fails the login.
        """
        mechanism = sasl._SCRAMServer("SCRAM-SHA-256", serverNonce=RFC7677.serverNonce)
        mechanism.start(RFC7677.clientFirst)
        other = SCRAMKeys.fromPassword("pencil2", "SCRAM-SHA-256", salt=RFC7677.keys().salt)
        mechanism.keysFound(other)
        self.assertRaises(AuthenticationFailed, mechanism.respond, RFC7677.clientFinal)

    def test_emptyChallengeFirst(self) -> None:
        """
        Without an initial response the server sends an empty challenge and takes the
        client-first message as the response.
        """
        mechanism = serverMechanism("SCRAM-SHA-256")
        self.assertEqual(mechanism.start(None), Challenge(b""))
        self.assertEqual(
            mechanism.respond(b"y,,n=us=2Cer=3D,r=abc"), NeedSCRAMKeys("us,er=", "SCRAM-SHA-256")
        )

    def test_usernamePrepared(self) -> None:
        """
        The user name asked for is SASLprep-prepared; a prohibited one fails at once.
        """
        mechanism = serverMechanism("SCRAM-SHA-1")
        self.assertEqual(
            mechanism.start("n,,n=\u2168,r=abc".encode()), NeedSCRAMKeys("IX", "SCRAM-SHA-1")
        )
        self.assertRaises(
            AuthenticationFailed, serverMechanism("SCRAM-SHA-1").start, b"n,,n=a\x07,r=abc"
        )

    def test_refusedClientFirst(self) -> None:
        """
        Channel binding (C{p=}) is malformed, since no C{-PLUS} mechanism is offered;
        an authorization identity is refused.
        """
        self.assertRaises(
            MalformedSASLResponse,
            serverMechanism("SCRAM-SHA-256").start,
            b"p=tls-server-end-point,,n=user,r=abc",
        )
        self.assertRaises(
            AuthenticationFailed, serverMechanism("SCRAM-SHA-256").start, b"n,a=user,n=user,r=abc"
        )

    def test_malformedClientFirst(self) -> None:
        """
        Broken client-first messages are malformed, without a key lookup.
        """
        for message in (
            b"",
            b"n,,",
            b"n,n=user,r=abc",
            b"x,,n=user,r=abc",
            b"n,b=user,n=user,r=abc",
            b"n,,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"n,,n=us=4er,r=abc",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=user,r=a\x00bc",
            b"n,,n=\xffuser,r=abc",
        ):
            self.assertRaises(
                MalformedSASLResponse, serverMechanism("SCRAM-SHA-256").start, message
            )

    def test_malformedClientFinal(self) -> None:
        """
        A client-final message with another nonce or channel binding, or broken syntax,
        is malformed.
        """
        for message in (
            b"",
            b"c=biws,r=wrongnonce,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!!",
            b"\xff",
        ):
            mechanism = sasl._SCRAMServer("SCRAM-SHA-256", serverNonce=RFC7677.serverNonce)
            mechanism.start(RFC7677.clientFirst)
            mechanism.keysFound(RFC7677.keys())
            self.assertRaises(
                (MalformedSASLResponse, AuthenticationFailed), mechanism.respond, message
            )

    def test_shortProof(self) -> None:
        """
        A proof of the wrong length fails like a wrong one.
        """
        mechanism = sasl._SCRAMServer("SCRAM-SHA-256", serverNonce=RFC7677.serverNonce)
        mechanism.start(RFC7677.clientFirst)
        mechanism.keysFound(RFC7677.keys())
        self.assertRaises(
            AuthenticationFailed,
            mechanism.respond,
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
        )

    def test_respondWhileWaitingForKeys(self) -> None:
        """
        A response while the keys are being looked up is malformed.
        """
        mechanism = serverMechanism("SCRAM-SHA-256")
        mechanism.start(b"n,,n=user,r=abc")
        self.assertRaises(MalformedSASLResponse, mechanism.respond, b"c=biws")

    def serverFirst(self, mechanismName: str, user: str, keys: SCRAMKeys | None) -> dict[str, str]:
        """
        Start an exchange for C{user} and return the server-first message's attributes.
        """
        mechanism = serverMechanism(mechanismName)
        mechanism.start(f"n,,n={user},r=abc".encode())
        step = mechanism.keysFound(keys)
        assert isinstance(step, Challenge)
        return dict(part.split("=", 1) for part in step.data.decode().split(","))

    def test_unknownUser(self) -> None:
        """
        For an unknown user the exchange goes on with a salt that is the same on every
        attempt, differs between users, and looks like a real one; the login fails at
        the client-final message whatever the client proves.
        """
        first = self.serverFirst("SCRAM-SHA-256", "nobody", None)
        self.assertEqual(first["i"], "4096")
        self.assertEqual(len(base64.b64decode(first["s"])), 16)
        self.assertEqual(base64.b64decode(first["s"]), derivedSalt("nobody", "SCRAM-SHA-256"))
        self.assertEqual(self.serverFirst("SCRAM-SHA-256", "nobody", None)["s"], first["s"])
        self.assertNotEqual(self.serverFirst("SCRAM-SHA-256", "nobody2", None)["s"], first["s"])
        self.assertNotEqual(self.serverFirst("SCRAM-SHA-1", "nobody", None)["s"], first["s"])

        from pop3kit.sasl import clientMechanism

        client = clientMechanism("SCRAM-SHA-256", "nobody", "pencil")
        mechanism = serverMechanism("SCRAM-SHA-256")
        mechanism.start(client.initialResponse())
        step = mechanism.keysFound(None)
        assert isinstance(step, Challenge)
        self.assertRaises(AuthenticationFailed, mechanism.respond, client.respond(step.data))

    def test_keysOfOtherMechanism(self) -> None:
        """
        Keys of another hash's length are treated as no keys.
        """
        sha1Keys = SCRAMKeys.fromPassword("pencil", "SCRAM-SHA-1")
        first = self.serverFirst("SCRAM-SHA-256", "user", sha1Keys)
        self.assertEqual(base64.b64decode(first["s"]), derivedSalt("user", "SCRAM-SHA-256"))


class SCRAMKeysTests(SynchronousTestCase):
    """
    Tests for L{SCRAMKeys}.
    """

    def test_fromPassword(self) -> None:
        """
        The keys of RFC 7677's example are those an independent computation gives.
        """
        keys = RFC7677.keys()
        salted = hashlib.pbkdf2_hmac("sha256", b"pencil", keys.salt, 4096)
        clientKey = hmac.new(salted, b"Client Key", "sha256").digest()
        self.assertEqual(keys.storedKey, hashlib.sha256(clientKey).digest())
        self.assertEqual(keys.serverKey, hmac.new(salted, b"Server Key", "sha256").digest())
        self.assertEqual(keys.iterations, 4096)

    def test_randomSalt(self) -> None:
        """
        Without a salt, a random one of 16 octets is made.
        """
        one = SCRAMKeys.fromPassword("pencil", "scram-sha-1")
        self.assertEqual(len(one.salt), 16)
        self.assertNotEqual(one.salt, SCRAMKeys.fromPassword("pencil", "SCRAM-SHA-1").salt)

    def test_refused(self) -> None:
        """
        Unknown mechanisms, out-of-range parameters and prohibited passwords raise
        L{ValueError}.
        """
        self.assertRaises(ValueError, SCRAMKeys.fromPassword, "pw", "SCRAM-SHA-512")
        self.assertRaises(ValueError, SCRAMKeys.fromPassword, "pw", "SCRAM-SHA-1", iterations=4095)
        self.assertRaises(ValueError, SCRAMKeys.fromPassword, "pw", "SCRAM-SHA-1", salt=b"short")
        self.assertRaises(ValueError, SCRAMKeys.fromPassword, "a\x07", "SCRAM-SHA-1")
        self.assertRaises(ValueError, SCRAMKeys, 4096, b"s" * 16, b"", b"")
        self.assertRaises(ValueError, SCRAMKeys, 4096, b"s" * 16, b"k" * 32, b"k" * 20)
        self.assertRaises(ValueError, SCRAMKeys, 10_000_001, b"s" * 16, b"k" * 32, b"k" * 32)

    def test_repr(self) -> None:
        """
        C{repr} shows no key.
        """
        keys = RFC7677.keys()
        text = repr(keys)
        self.assertIn("4096", text)
        self.assertNotIn(repr(keys.storedKey), text)
        self.assertNotIn(repr(keys.serverKey), text)
        self.assertNotIn(repr(keys.salt), text)


class ExternalTests(SynchronousTestCase):
    """
    Tests for EXTERNAL (RFC 4422 appendix A).
    """

    def test_identity(self) -> None:
        """
        With a certificate identity, an empty or equal authzid gives L{Verified}.
        """
        for authzid in (b"", b"alice"):
            mechanism = serverMechanism("EXTERNAL", tlsIdentity="alice")
            self.assertEqual(mechanism.start(authzid), Verified("alice"))
        mechanism = serverMechanism("EXTERNAL", tlsIdentity="alice")
        self.assertEqual(mechanism.start(None), Challenge(b""))
        self.assertEqual(mechanism.respond(b""), Verified("alice"))

    def test_refused(self) -> None:
        """
        Another authzid, or no certificate identity, fails; invalid UTF-8 is malformed.
        """
        self.assertRaises(
            AuthenticationFailed, serverMechanism("EXTERNAL", tlsIdentity="alice").start, b"bob"
        )
        self.assertRaises(AuthenticationFailed, serverMechanism("EXTERNAL").start, b"")
        self.assertRaises(
            MalformedSASLResponse,
            serverMechanism("EXTERNAL", tlsIdentity="alice").start,
            b"\xff",
        )
