"""
Tests for OAuth 2.0 logins (L{pop3kit._oauth2}): SASL OAUTHBEARER (RFC 7628) and XOAUTH2,
server and client, with JWT access tokens signed by test keys and checked against a JWKS
file or a loopback HTTP endpoint, and with token introspection (RFC 7662).
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any, cast

from joserfc import jwk, jwt
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from pop3kit import sasl, tap
from pop3kit._oauth2 import (
    JWKS,
    BearerToken,
    IntrospectionChecker,
    JWTChecker,
    OAuthBearerClient,
    TokenRefused,
    XOAuth2Client,
    describeError,
    tokenFromCommand,
)
from pop3kit.client import POP3Client, ServerError, connect, tlsOptions
from pop3kit.errors import AuthenticationFailed, ResponseCode
from pop3kit.sasl import Challenge, CheckCredentials, MalformedSASLResponse
from tests._pki import sharedPKI
from tests.test_server_loopback import LoopbackServer, POP3TestClient
from tests.test_server_tls import serverTLS

reactor = cast(IReactorTime, _reactor)

ISSUER = "https://issuer.test"
AUDIENCE = "pop3kit-test"

#: The issuer's signing keys: the current one, and the one it rotates to.
KEY = jwk.RSAKey.generate_key(2048, parameters={"kid": "key-1"})
NEXT_KEY = jwk.ECKey.generate_key("P-256", parameters={"kid": "key-2"})


def keySet(*keys: Any) -> dict[str, Any]:
    """
    The public JWKS of C{keys}.
    """
    return {"keys": [key.as_dict(private=False) for key in keys]}


def token(
    key: Any = KEY,
    alg: str = "RS256",
    now: float | None = None,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """
    A JWT access token for alice, valid for an hour, signed with C{key}; C{claims}
    replace or (with L{None}) remove the defaults.
    """
    issued = int(time.time() if now is None else now)
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": issued,
        "exp": issued + 3600,
        "scope": "pop3 openid",
    }
    body.update(claims)
    body = {name: value for name, value in body.items() if value is not None}
    return jwt.encode({"alg": alg, "kid": key.kid, **(header or {})}, body, key)


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def jwksFile(testCase: SynchronousTestCase, *keys: Any) -> str:
    path: str = os.path.abspath(testCase.mktemp())
    with open(path, "w") as f:
        json.dump(keySet(*keys), f)
    return path


class MechanismTests(SynchronousTestCase):
    """
    The server sides of OAUTHBEARER and XOAUTH2, fed what pop3kit's client sends.
    """

    def test_oauthbearer(self) -> None:
        """
        The client's message gives the token and the user as a L{BearerToken}.
        """
        client = OAuthBearerClient("alice", "abc.def.ghi", "localhost", 995)
        message = client.initialResponse()
        self.assertEqual(
            message, b"n,a=alice,\x01host=localhost\x01port=995\x01auth=Bearer abc.def.ghi\x01\x01"
        )
        step = sasl.serverMechanism("OAUTHBEARER").start(message)
        credentials = cast(BearerToken, cast(CheckCredentials, step).credentials)
        self.assertEqual(
            (credentials.token, credentials.authzid, credentials.mechanism),
            ("abc.def.ghi", "alice", "OAUTHBEARER"),
        )
        self.assertNotIn("abc.def.ghi", repr(credentials))

    def test_xoauth2(self) -> None:
        """
        XOAUTH2's C{user=} and C{auth=} give the user and the token.
        """
        message = XOAuth2Client("alice", "tok").initialResponse()
        self.assertEqual(message, b"user=alice\x01auth=Bearer tok\x01\x01")
        step = sasl.serverMechanism("XOAUTH2").start(message)
        credentials = cast(BearerToken, cast(CheckCredentials, step).credentials)
        self.assertEqual((credentials.token, credentials.authzid), ("tok", "alice"))

    def test_malformed(self) -> None:
        """
        Messages that break the syntax are malformed, not failed logins.
        """
        for name, message in [
            ("OAUTHBEARER", b"n,,auth=Bearer x\x01\x01"),
            ("OAUTHBEARER", b"n,,\x01host=x\x01\x01"),
            ("OAUTHBEARER", b"p=tls-unique,,\x01auth=Bearer x\x01\x01"),
            ("OAUTHBEARER", b"n,,\x01auth=Basic x\x01\x01"),
            ("OAUTHBEARER", b"n,b=x,\x01auth=Bearer x\x01\x01"),
            ("OAUTHBEARER", b"\xff"),
            ("XOAUTH2", b"user=alice\x01auth=Bearer x"),
            ("XOAUTH2", b"auth=Bearer x\x01\x01"),
        ]:
            mechanism = sasl.serverMechanism(name)
            self.assertRaises(MalformedSASLResponse, mechanism.start, message)

    def test_refusalChallenge(self) -> None:
        """
        A refusal becomes the error JSON; whatever the client answers, the login fails.
        """
        mechanism = sasl.serverMechanism("OAUTHBEARER")
        step = cast(CheckCredentials, mechanism.start(b"n,,\x01auth=Bearer x\x01\x01"))
        assert step.refusal is not None
        error = json.loads(step.refusal(TokenRefused("expired")))
        self.assertEqual(error, {"status": "invalid_token", "schemes": "bearer"})
        self.assertRaises(AuthenticationFailed, mechanism.respond, b"\x01")

    def test_xoauth2RefusalChallenge(self) -> None:
        """
        XOAUTH2's error JSON carries an HTTP status, and the scope when it is missing.
        """
        mechanism = sasl.serverMechanism("XOAUTH2")
        step = cast(CheckCredentials, mechanism.start(b"user=a\x01auth=Bearer x\x01\x01"))
        assert step.refusal is not None
        error = json.loads(step.refusal(TokenRefused("scope", "insufficient_scope", "pop3")))
        self.assertEqual(error, {"status": "403", "schemes": "bearer", "scope": "pop3"})

    def test_clientDecodesErrors(self) -> None:
        """
        The client answers an error challenge with the dummy response and keeps a clear
        sentence of it.
        """
        client = OAuthBearerClient("alice", "tok")
        client.initialResponse()
        self.assertEqual(client.respond(b'{"status":"invalid_token"}'), b"\x01")
        self.assertIn("invalid or expired", client.errorDetail or "")
        xoauth2 = XOAuth2Client("alice", "tok")
        xoauth2.initialResponse()
        self.assertEqual(xoauth2.respond(b'{"status":"403","scope":"s"}'), b"")
        self.assertEqual(xoauth2.errorDetail, "the token lacks a scope the server needs (scope: s)")
        self.assertIn("refused", describeError(b"not json"))

    def test_badTokens(self) -> None:
        """
        Tokens with spaces or control characters cannot be sent.
        """
        self.assertRaises(ValueError, OAuthBearerClient, "alice", "a b")
        self.assertRaises(ValueError, XOAuth2Client, "alice", "")
        self.assertRaises(ValueError, XOAuth2Client, "", "tok")


class JWTCheckerTests(TestCase):
    """
    L{JWTChecker} with keys from a JWKS file.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(time.time())
        self.path = jwksFile(self, KEY)
        self.checker = JWTChecker(
            JWKS(self.path, clock=self.clock), issuer=ISSUER, audience=AUDIENCE, clock=self.clock
        )

    def check(self, value: str, authzid: str = "") -> Deferred[object]:
        return self.checker.requestAvatarId(BearerToken(value, authzid))

    def refused(self, value: str, authzid: str = "") -> TokenRefused:
        failure = self.failureResultOf(self.check(value, authzid), TokenRefused)
        return cast(TokenRefused, failure.value)

    def test_valid(self) -> None:
        """
        A valid token logs in as its C{sub}.
        """
        self.assertEqual(self.successResultOf(self.check(token())), "alice")
        self.assertEqual(self.successResultOf(self.check(token(), "alice")), "alice")

    def test_expired(self) -> None:
        """
        An expired token (beyond the leeway) is refused; C{exp} is required.
        """
        self.refused(token(exp=int(time.time()) - 120))
        self.refused(token(exp=None))

    def test_notYetValid(self) -> None:
        """
        A token whose C{nbf} is to come is refused.
        """
        self.refused(token(nbf=int(time.time()) + 600))

    def test_wrongAudience(self) -> None:
        """
        A token for another audience is refused.
        """
        self.refused(token(aud="someone-else"))
        self.refused(token(aud=None))

    def test_wrongIssuer(self) -> None:
        """
        A token from another issuer is refused.
        """
        self.refused(token(iss="https://evil.test"))

    def test_badSignature(self) -> None:
        """
        A token signed by another key with the same key id is refused.
        """
        other = jwk.RSAKey.generate_key(2048, parameters={"kid": "key-1"})
        self.refused(token(other))

    def test_unsigned(self) -> None:
        """
        A token without a signature is refused.
        """
        header, payload, _ = token().split(".")
        self.assertEqual(self.refused(f"{header}.{payload}.").reason, "unsigned token")

    def test_algNone(self) -> None:
        """
        C{alg: none} is refused explicitly, however it is spelt.
        """
        payload = token().split(".")[1]
        for alg in ("none", "None", "NONE"):
            header = b64url({"alg": alg, "typ": "JWT"})
            self.assertIn("alg: none", self.refused(f"{header}.{payload}.").reason)
            self.assertIn("alg: none", self.refused(f"{header}.{payload}.c2ln").reason)

    def test_hmacWithThePublicKey(self) -> None:
        """
        A token "signed" with HS256 using the public key as the secret (algorithm
        confusion) is refused: HMAC is not accepted.
        """
        secret = jwk.OctKey.import_key(json.dumps(KEY.as_dict(private=False)).encode())
        forged = jwt.encode({"alg": "HS256", "kid": "key-1"}, {"sub": "alice"}, secret)
        self.assertIn("HS256", self.refused(forged).reason)
        self.assertRaises(
            ValueError,
            JWTChecker,
            self.checker.keys,
            issuer=ISSUER,
            audience=AUDIENCE,
            clock=self.clock,
            algorithms=["RS256", "HS256"],
        )

    def test_notAJWT(self) -> None:
        """
        Something that is not a compact JWS is refused.
        """
        self.refused("opaque-token")
        self.refused("a.b.c.d.e")
        self.refused("!!!.e30.c2ln")

    def test_otherUser(self) -> None:
        """
        A client naming another user than the token's is refused.
        """
        self.refused(token(), authzid="bob")

    def test_userClaim(self) -> None:
        """
        The user name comes from the configured claim; a token without it is refused.
        """
        checker = JWTChecker(
            JWKS(self.path, clock=self.clock),
            issuer=ISSUER,
            audience=AUDIENCE,
            clock=self.clock,
            userClaim="email",
        )
        value = token(email="alice@example.org")
        self.assertEqual(
            self.successResultOf(checker.requestAvatarId(BearerToken(value))), "alice@example.org"
        )
        self.failureResultOf(checker.requestAvatarId(BearerToken(token())), TokenRefused)

    def test_scope(self) -> None:
        """
        A required scope missing from the token is C{insufficient_scope}.
        """
        checker = JWTChecker(
            JWKS(self.path, clock=self.clock),
            issuer=ISSUER,
            audience=AUDIENCE,
            clock=self.clock,
            scope="pop3",
        )
        self.successResultOf(checker.requestAvatarId(BearerToken(token())))
        failure = self.failureResultOf(
            checker.requestAvatarId(BearerToken(token(scope="openid"))), TokenRefused
        )
        self.assertEqual(cast(TokenRefused, failure.value).status, "insufficient_scope")
        self.assertEqual(cast(TokenRefused, failure.value).scope, "pop3")

    def test_rotatedKeyFile(self) -> None:
        """
        A token naming a key the file did not hold makes it read again.
        """
        self.refused(token(NEXT_KEY, "ES256"))
        with open(self.path, "w") as f:
            json.dump(keySet(KEY, NEXT_KEY), f)
        self.assertEqual(self.successResultOf(self.check(token(NEXT_KEY, "ES256"))), "alice")

    def test_badFile(self) -> None:
        """
        A file without a key set is refused when the JWKS is made.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("{}")
        self.assertRaises(ValueError, JWKS, path, clock=self.clock)

    def test_plainHTTPElsewhere(self) -> None:
        """
        Keys are not fetched over plain HTTP from another host.
        """
        self.assertRaises(ValueError, JWKS, "http://issuer.test/jwks", clock=self.clock)


class _Counted(Resource):
    """
    Serves a JSON document, counting the requests.
    """

    isLeaf = True

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__()
        self.document = document
        self.requests: list[Request] = []

    def render_GET(self, request: Request) -> bytes:
        self.requests.append(request)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(self.document).encode()


class _Introspection(Resource):
    """
    An RFC 7662 endpoint: the token C{good} is alice's, any other inactive; the client
    must authenticate as C{pop3kit:s3cret}.
    """

    isLeaf = True

    def render_POST(self, request: Request) -> bytes:
        expected = b"Basic " + base64.b64encode(b"pop3kit:s3cret")
        if request.getHeader(b"authorization") != expected:
            request.setResponseCode(401)
            return b"{}"
        assert request.args is not None
        value = request.args.get(b"token", [b""])[0]
        request.setHeader(b"content-type", b"application/json")
        if value == b"good":
            answer = {"active": True, "username": "alice", "aud": AUDIENCE, "scope": "pop3"}
        else:
            answer = {"active": False}
        return json.dumps(answer).encode()


def listenHTTP(testCase: TestCase, resource: Resource) -> str:
    """
    Serve C{resource} on 127.0.0.1 until the test ends.

    @return: Its URL.
    """
    site = Site(resource)
    port = cast(IReactorTCP, _reactor).listenTCP(0, site, interface="127.0.0.1")  # type: ignore[arg-type]
    testCase.addCleanup(port.stopListening)
    return f"http://127.0.0.1:{port.getHost().port}/"  # type: ignore[attr-defined]


class HTTPTests(TestCase):
    """
    Keys fetched from a loopback HTTP endpoint, and token introspection.
    """

    timeout = 30

    async def test_jwksOverHTTP(self) -> None:
        """
        The key set is fetched once and cached, then fetched again for a token naming an
        unknown key (at most once a minute).
        """
        jwks = _Counted(keySet(KEY))
        url = listenHTTP(self, jwks)
        clock = Clock()
        clock.advance(time.time())
        keys = JWKS(url, clock=clock, agent=Agent(_reactor))
        checker = JWTChecker(keys, issuer=ISSUER, audience=AUDIENCE, clock=clock)
        self.assertEqual(await checker.requestAvatarId(BearerToken(token())), "alice")
        self.assertEqual(await checker.requestAvatarId(BearerToken(token())), "alice")
        self.assertEqual(len(jwks.requests), 1)
        jwks.document = keySet(KEY, NEXT_KEY)
        rotated = BearerToken(token(NEXT_KEY, "ES256"))
        with self.assertRaises(TokenRefused):
            await checker.requestAvatarId(rotated)  # fetched a second ago: not again
        self.assertEqual(len(jwks.requests), 1)
        clock.advance(61)
        self.assertEqual(await checker.requestAvatarId(rotated), "alice")
        self.assertEqual(len(jwks.requests), 2)

    async def test_concurrentLoginsFetchOnce(self) -> None:
        """
        Logins that arrive together while the keys are being fetched wait for that one
        fetch.
        """
        from twisted.internet.defer import gatherResults

        jwks = _Counted(keySet(KEY))
        url = listenHTTP(self, jwks)
        checker = JWTChecker(
            JWKS(url, clock=reactor), issuer=ISSUER, audience=AUDIENCE, clock=reactor
        )
        users = await gatherResults(
            [checker.requestAvatarId(BearerToken(token())) for _ in range(5)]
        )
        self.assertEqual(users, ["alice"] * 5)
        self.assertEqual(len(jwks.requests), 1)

    async def test_unreachableIsNotHammered(self) -> None:
        """
        While the keys cannot be fetched, logins fail without a new request each, until
        a minute has passed.
        """
        from pop3kit.errors import TemporaryFailure

        class Broken(Resource):
            isLeaf = True
            requests = 0

            def render_GET(self, request: Request) -> bytes:
                Broken.requests += 1
                request.setResponseCode(503)
                return b""

        url = listenHTTP(self, Broken())
        clock = Clock()
        clock.advance(time.time())
        keys = JWKS(url, clock=clock, agent=Agent(_reactor))
        checker = JWTChecker(keys, issuer=ISSUER, audience=AUDIENCE, clock=clock)
        for _ in range(3):
            with self.assertRaises(TemporaryFailure):
                await checker.requestAvatarId(BearerToken(token()))
        self.assertEqual(Broken.requests, 1)
        clock.advance(61)
        with self.assertRaises(TemporaryFailure):
            await checker.requestAvatarId(BearerToken(token()))
        self.assertEqual(Broken.requests, 2)

    async def test_jwksUnreachable(self) -> None:
        """
        Keys that cannot be fetched are a temporary failure, not a refused token.
        """
        from pop3kit.errors import TemporaryFailure

        url = listenHTTP(self, Resource())  # 404 everywhere
        checker = JWTChecker(
            JWKS(url + "missing", clock=reactor), issuer=ISSUER, audience=AUDIENCE, clock=reactor
        )
        with self.assertRaises(TemporaryFailure):
            await checker.requestAvatarId(BearerToken(token()))

    async def test_introspection(self) -> None:
        """
        An active token logs in as the endpoint's C{username}; others are refused.
        """
        url = listenHTTP(self, _Introspection())
        checker = IntrospectionChecker(
            url, clientId="pop3kit", clientSecret="s3cret", clock=reactor, audience=AUDIENCE
        )
        self.assertEqual(await checker.requestAvatarId(BearerToken("good")), "alice")
        with self.assertRaises(TokenRefused):
            await checker.requestAvatarId(BearerToken("bad"))
        with self.assertRaises(TokenRefused):
            await checker.requestAvatarId(BearerToken("good", "bob"))

    async def test_introspectionWrongSecret(self) -> None:
        """
        An endpoint that refuses the server's own credentials is a temporary failure.
        """
        from pop3kit.errors import TemporaryFailure

        url = listenHTTP(self, _Introspection())
        checker = IntrospectionChecker(url, clientId="pop3kit", clientSecret="no", clock=reactor)
        with self.assertRaises(TemporaryFailure):
            await checker.requestAvatarId(BearerToken("good"))


class TLSServer:
    """
    pop3kit's server with STLS and an implicit-TLS port, alice's tokens checked against
    a JWKS file.
    """

    def __init__(self, testCase: TestCase, **options: Any) -> None:
        self.server = LoopbackServer(
            testCase, [b"Subject: oauth\r\n\r\nbearer\r\n"], tls=serverTLS(), **options
        )
        clock = cast(IReactorTime, _reactor)
        self.server.factory.portal.registerChecker(
            JWTChecker(
                JWKS(jwksFile(testCase, KEY), clock=clock),
                issuer=ISSUER,
                audience=AUDIENCE,
                clock=clock,
            )
        )
        self.port = self.server.start()
        pki, _ = sharedPKI()
        self.cafile = pki.ca.certificate


class ClientServerTests(TestCase):
    """
    pop3kit's client logs in to pop3kit's server with both mechanisms, over TLS.
    """

    timeout = 30

    def setUp(self) -> None:
        self.tls = TLSServer(self)

    async def connect(self, tls: str = "starttls") -> POP3Client:
        client = await connect(
            reactor,
            "127.0.0.1",
            self.tls.port,
            tls=tls,  # type: ignore[arg-type]
            cafile=self.tls.cafile,
            hostname="localhost",
        )

        def close() -> Deferred[None]:
            client.abort()
            return client.whenClosed()

        self.addCleanup(close)
        return client

    async def test_offeredOnlyOverTLS(self) -> None:
        """
        CAPA announces OAUTHBEARER and XOAUTH2 over TLS only, even from loopback.
        """
        clear = await self.connect(tls="none")
        self.assertNotIn("OAUTHBEARER", (await clear.capabilities())["SASL"])
        secure = await self.connect()
        sasl = (await secure.capabilities())["SASL"]
        self.assertIn("OAUTHBEARER", sasl)
        self.assertIn("XOAUTH2", sasl)

    async def test_oauthbearer(self) -> None:
        """
        OAUTHBEARER logs in with a valid token.
        """
        client = await self.connect()
        count, _ = await client.login("alice", token(), mechanism="oauthbearer")
        self.assertEqual(count, 1)

    async def test_xoauth2(self) -> None:
        """
        XOAUTH2 logs in with a valid token.
        """
        client = await self.connect()
        count, _ = await client.login("alice", token(), mechanism="xoauth2")
        self.assertEqual(count, 1)

    async def test_expiredToken(self) -> None:
        """
        An expired token is refused with C{[AUTH]}, and the error JSON is decoded into
        the client's error.
        """
        for mechanism in ("oauthbearer", "xoauth2"):
            client = await self.connect()
            with self.assertRaises(ServerError) as caught:
                await client.login("alice", token(exp=int(time.time()) - 600), mechanism=mechanism)
            self.assertIs(caught.exception.code, ResponseCode.AUTH)
            self.assertIn("invalid or expired", caught.exception.text)

    async def test_refusedWithoutTLS(self) -> None:
        """
        The client will not send a token without TLS.
        """
        from pop3kit.client import MechanismUnavailable

        client = await connect(
            reactor, "127.0.0.1", self.tls.port, tls="none", allowCleartextLogin=False
        )
        self.addCleanup(client.abort)
        with self.assertRaises(MechanismUnavailable):
            await client.login("alice", token(), mechanism="oauthbearer")

    async def test_wire(self) -> None:
        """
        On the wire, a refused token gets the error JSON as a challenge, the client's
        C{^A} and then C{-ERR [AUTH]}, counted as a failed login.
        """
        from twisted.internet.ssl import optionsForClientTLS  # noqa: F401

        endpoint = wrapClientTLS(
            tlsOptions("localhost", self.tls.cafile),
            TCP4ClientEndpoint(_reactor, "127.0.0.1", self.listenImplicit()),
        )
        raw = POP3TestClient()
        await connectProtocol(endpoint, raw)
        self.addCleanup(raw.transport.loseConnection)  # type: ignore[union-attr]
        await raw.greeting
        message = OAuthBearerClient("alice", token(aud="elsewhere")).initialResponse() or b""
        (answer,) = await raw.send(b"AUTH OAUTHBEARER " + base64.b64encode(message))
        self.assertTrue(answer[0].startswith(b"+ "), answer)
        error = json.loads(base64.b64decode(answer[0][2:]))
        self.assertEqual(error["status"], "invalid_token")
        (final,) = await raw.send(base64.b64encode(b"\x01"))
        self.assertEqual(final, [b"-ERR [AUTH] authentication failed"])
        failures = await self.tls.server.factory.loginHistory.recordFailure("127.0.0.1")
        self.assertEqual(failures, 2)

    def listenImplicit(self) -> int:
        from tests.test_interop_tls import listenImplicitTLS

        return listenImplicitTLS(self, self.tls.server, serverTLS())


class TapTests(SynchronousTestCase):
    """
    C{twistd pop3kit --oauth2-*}.
    """

    def parse(self, *arguments: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(["--data-dir", os.path.abspath(self.mktemp()), *arguments])
        return options

    def tlsArguments(self) -> list[str]:
        _, issued = sharedPKI()
        return ["--tls-certificate", issued.certificate, "--tls-key", issued.key]

    def test_jwks(self) -> None:
        """
        With a JWKS, an issuer and an audience, OAUTHBEARER and XOAUTH2 are offered
        over TLS.
        """
        options = self.parse(
            *self.tlsArguments(),
            "--oauth2-jwks",
            jwksFile(self, KEY),
            "--oauth2-issuer",
            ISSUER,
            "--oauth2-audience",
            AUDIENCE,
        )
        factory = tap.makeFactory(options)
        capabilities = factory.policy.capabilities(
            {sasl_credential for sasl_credential in _verifiable(factory)},
            secure=True,
            canStartTLS=False,
            local=True,
        )
        self.assertIn("OAUTHBEARER", capabilities.sasl)
        self.assertIn("XOAUTH2", capabilities.sasl)

    def test_needsTLS(self) -> None:
        """
        Without a certificate the options are refused: tokens go over TLS only.
        """
        e = self.assertRaises(
            usage.UsageError,
            self.parse,
            "--oauth2-jwks",
            jwksFile(self, KEY),
            "--oauth2-issuer",
            ISSUER,
            "--oauth2-audience",
            AUDIENCE,
        )
        self.assertIn("TLS", str(e))

    def test_needsIssuerAndAudience(self) -> None:
        """
        A JWKS without an issuer or an audience is refused.
        """
        self.assertRaises(
            usage.UsageError,
            self.parse,
            *self.tlsArguments(),
            "--oauth2-jwks",
            jwksFile(self, KEY),
            "--oauth2-issuer",
            ISSUER,
        )

    def test_introspection(self) -> None:
        """
        Introspection needs the client id and a secret file.
        """
        secret = self.mktemp()
        with open(secret, "w") as f:
            f.write("s3cret\n")
        self.parse(
            *self.tlsArguments(),
            "--oauth2-introspect",
            "https://issuer.test/introspect",
            "--oauth2-client-id",
            "pop3kit",
            "--oauth2-client-secret-file",
            secret,
        )
        self.assertRaises(
            usage.UsageError,
            self.parse,
            *self.tlsArguments(),
            "--oauth2-introspect",
            "https://issuer.test/introspect",
        )


def _verifiable(factory: Any) -> set[Any]:
    from pop3kit._oauth2 import IBearerToken
    from pop3kit.core import Credential

    interfaces = factory.portal.listCredentialsInterfaces()
    return {Credential.BEARER} if IBearerToken in interfaces else set()


class TokenCommandTests(SynchronousTestCase):
    """
    L{tokenFromCommand}, as C{pop3kit fetch --token-command} runs it.
    """

    def test_firstLine(self) -> None:
        """
        The first line of the output is the token.
        """
        self.assertEqual(tokenFromCommand("printf 'tok\\nmore\\n'"), "tok")

    def test_failure(self) -> None:
        """
        A failing command, or one printing nothing, is one clear line.
        """
        e = self.assertRaises(ValueError, tokenFromCommand, "echo oops >&2; exit 3")
        self.assertIn("status 3: oops", str(e))
        self.assertRaises(ValueError, tokenFromCommand, "true")


class UnauthorizedIsRefusedTests(SynchronousTestCase):
    """
    A plain L{UnauthorizedLogin} from another checker also gets the error JSON.
    """

    def test_plain(self) -> None:
        mechanism = sasl.serverMechanism("OAUTHBEARER")
        step = cast(CheckCredentials, mechanism.start(b"n,,\x01auth=Bearer x\x01\x01"))
        assert step.refusal is not None
        self.assertEqual(json.loads(step.refusal(UnauthorizedLogin()))["status"], "invalid_token")
        self.assertIsInstance(Challenge(b""), Challenge)


class PenaltyTests(SynchronousTestCase):
    """
    A refused token is counted, and delayed, before the error challenge reveals it.
    """

    def setUp(self) -> None:
        from twisted.cred.portal import Portal

        from pop3kit._login import Login
        from pop3kit.backends.memory import MemoryRealm
        from pop3kit.locking import InProcessLocker, InProcessLoginHistory
        from pop3kit.policy import ServerPolicy

        self.clock = Clock()
        self.clock.advance(time.time())
        self.history = InProcessLoginHistory(clock=self.clock)
        checker = JWTChecker(
            JWKS(jwksFile(self, KEY), clock=self.clock),
            issuer=ISSUER,
            audience=AUDIENCE,
            clock=self.clock,
        )
        self.login = Login(
            Portal(MemoryRealm(), [checker]),
            policy=ServerPolicy(failedLoginDelay=5),
            clock=self.clock,
            locker=InProcessLocker(),
            loginHistory=self.history,
            peer="192.0.2.1",
        )

    def start(self, value: str) -> Deferred[Any]:
        from pop3kit.core import SASLLogin

        message = OAuthBearerClient("alice", value).initialResponse()
        return self.login.start(SASLLogin("OAUTHBEARER", message))

    def test_delayBeforeChallenge(self) -> None:
        """
        The error challenge comes after the failed-login delay, with the failure
        counted; the client's dummy response then ends it without a second count.
        """
        from pop3kit.core import LoginRefused, SASLChallenge

        outcome = self.start(token(aud="elsewhere"))
        self.assertNoResult(outcome)
        self.clock.advance(5)
        challenge = self.successResultOf(outcome)
        self.assertIsInstance(challenge, SASLChallenge)
        self.assertEqual(json.loads(challenge.data)["status"], "invalid_token")
        final = self.successResultOf(self.login.respond(b"\x01"))
        assert isinstance(final, LoginRefused)
        self.assertIs(final.error.code, ResponseCode.AUTH)
        self.assertEqual(self.successResultOf(self.history.recordFailure("192.0.2.1")), 2)

    def test_validToken(self) -> None:
        """
        A valid token logs in at once.
        """
        from pop3kit.core import LoginAccepted

        self.assertIsInstance(self.successResultOf(self.start(token())), LoginAccepted)


class WithoutJoserfcTests(SynchronousTestCase):
    """
    Without joserfc, token checkers cannot be made, and the error says how to install.
    """

    def setUp(self) -> None:
        import sys

        for name in ("joserfc", "joserfc.jwk", "joserfc.jwt"):
            saved = sys.modules.pop(name, None)
            sys.modules[name] = None  # type: ignore[assignment]
            self.addCleanup(_restoreModule, name, saved)

    def test_checker(self) -> None:
        """
        L{JWKS} refuses with the install hint; C{twistd pop3kit} turns it into a usage
        error.  The client mechanisms need nothing.
        """
        e = self.assertRaises(ValueError, JWKS, "keys.json", clock=Clock())
        self.assertIn("pop3kit[oauth2]", str(e))
        _, issued = sharedPKI()
        options = tap.Options()
        e2 = self.assertRaises(
            usage.UsageError,
            options.parseOptions,
            [
                "--data-dir",
                self.mktemp(),
                "--tls-certificate",
                issued.certificate,
                "--tls-key",
                issued.key,
                "--oauth2-jwks",
                "keys.json",
                "--oauth2-issuer",
                ISSUER,
                "--oauth2-audience",
                AUDIENCE,
            ],
        )
        self.assertIn("pop3kit[oauth2]", str(e2))
        self.assertIsNotNone(sasl.clientMechanism("OAUTHBEARER", "alice", "tok"))


def _restoreModule(name: str, module: Any) -> None:
    """
    Put back the module C{name} as it was: imported (C{module}) or not (L{None}).
    """
    import sys

    if module is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = module
