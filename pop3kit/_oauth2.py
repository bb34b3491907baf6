# -*- test-case-name: tests.test_oauth2 -*-
"""
OAuth 2.0 logins: SASL C{OAUTHBEARER} (RFC 7628) and C{XOAUTH2} (Google's and
Microsoft's older form), server and client side, and the checkers that validate bearer
tokens.

Server side
===========

Both mechanisms end with L{pop3kit.sasl.CheckCredentials} of a L{BearerToken}, so the
token goes through the portal like a password would: a checker of L{IBearerToken}
credentials decides.  Two are provided:

  - L{JWTChecker} validates a JWT access token locally (RFC 9068): its signature against
    the issuer's keys (L{JWKS}, from a file or fetched over HTTPS, cached, fetched again
    when a token names an unknown key), then C{exp}, C{nbf}, C{iss} and C{aud}.  Unsigned
    tokens and C{alg: none} are refused explicitly, and only the asymmetric algorithms of
    L{DEFAULT_ALGORITHMS} are accepted (no HMAC: a public key must never be usable as a
    shared secret).  The user name is a claim of the token (C{sub} by default).
  - L{IntrospectionChecker} asks the authorization server (RFC 7662).

A refused token is answered as RFC 7628 section 3.2.2 says: a challenge holding the error
JSON (C{{"status": "invalid_token", ...}}), the client's dummy response, then C{-ERR
[AUTH]} after the failed-login delay: it counts as a failed login.  The server offers
these mechanisms only over TLS (they are C{needsTLS} in L{pop3kit.core.LOGIN_METHODS}).

The checkers need joserfc (C{pip install 'pop3kit[oauth2]'}), imported only when one is
made; the mechanisms do not.

Client side
===========

L{OAuthBearerClient} and L{XOAuth2Client} send a token obtained elsewhere (C{pop3kit
fetch --token-command}); a refusal's error JSON is decoded into L{errorDetail
<OAuthBearerClient.errorDetail>}, which the client adds to the C{-ERR} it reports.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from pop3kit.errors import AuthenticationFailed, TemporaryFailure

if TYPE_CHECKING:
    from pop3kit.sasl import Step

__all__ = [
    "DEFAULT_ALGORITHMS",
    "INSTALL_HINT",
    "JWKS",
    "BearerToken",
    "IBearerToken",
    "IntrospectionChecker",
    "JWTChecker",
    "OAuthBearerClient",
    "OAuthBearerServer",
    "TokenRefused",
    "XOAuth2Client",
    "XOAuth2Server",
]

#: How to get joserfc.
INSTALL_HINT = "OAuth 2.0 token validation needs joserfc: pip install 'pop3kit[oauth2]'"

#: The signature algorithms accepted by default: asymmetric only.
DEFAULT_ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)

#: The claim that names the user by default: the one RFC 9068 requires.
DEFAULT_USER_CLAIM = "sub"

#: Seconds of clock skew allowed for C{exp} and C{nbf}.
LEEWAY = 60

#: Shortest time between two fetches of a JWKS URL, in seconds (a flood of tokens with
#: made-up key ids must not become a flood of requests).
MIN_REFRESH = 60.0

#: Longest time a fetched JWKS is used before it is fetched again, in seconds.
MAX_AGE = 3600.0

#: Seconds to wait for the JWKS or the introspection endpoint to answer.
FETCH_TIMEOUT = 10.0


def _joserfc() -> Any:
    try:
        import joserfc.jwk
        import joserfc.jwt
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    return joserfc


def available() -> bool:
    """
    Whether joserfc can be imported.
    """
    try:
        _joserfc()
    except ValueError:
        return False
    return True


# --- credentials ----------------------------------------------------------------------


# Interface among the bases, though ICredentials has it, tells pydoctor this is one.
class IBearerToken(ICredentials, Interface):  # type: ignore[misc]
    """
    An OAuth 2.0 bearer token sent with OAUTHBEARER or XOAUTH2.
    """

    token = Attribute("The access token (L{str}).")
    authzid = Attribute("The user the client says it is (L{str}), or C{''}.")
    mechanism = Attribute("The SASL mechanism it came with (L{str}).")


@implementer(IBearerToken)
class BearerToken:
    """
    The credentials of an OAUTHBEARER or XOAUTH2 login.

    @ivar token: The access token.
    @ivar authzid: The user name the client sent (OAUTHBEARER's C{a=}, XOAUTH2's
        C{user=}); empty for none.
    @ivar mechanism: C{"OAUTHBEARER"} or C{"XOAUTH2"}.
    """

    def __init__(self, token: str, authzid: str = "", mechanism: str = "OAUTHBEARER") -> None:
        self.token = token
        self.authzid = authzid
        self.mechanism = mechanism

    def __repr__(self) -> str:
        return (
            f"<BearerToken authzid={self.authzid!r} mechanism={self.mechanism!r} token=<redacted>>"
        )


class TokenRefused(UnauthorizedLogin):
    """
    A checker refused a bearer token.

    @ivar status: The RFC 6750 error code for the client: C{"invalid_token"} (expired,
        badly signed, for another audience ...) or C{"insufficient_scope"}.
    @ivar reason: Why, for the server's log (never sent).
    @ivar scope: The scope a token needs, for the client, or L{None}.
    """

    def __init__(self, reason: str, status: str = "invalid_token", scope: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.scope = scope


# --- server side: the mechanisms ------------------------------------------------------


def _errorChallenge(error: Exception, xoauth2: bool) -> bytes:
    """
    The RFC 7628 section 3.2.2 error JSON for a refusal (for XOAUTH2, Google's form: an
    HTTP status).
    """
    status = error.status if isinstance(error, TokenRefused) else "invalid_token"
    scope = error.scope if isinstance(error, TokenRefused) else None
    body: dict[str, str] = {
        "status": ("403" if status == "insufficient_scope" else "401") if xoauth2 else status,
        "schemes": "bearer",
    }
    if scope:
        body["scope"] = scope
    return json.dumps(body, separators=(",", ":")).encode("ascii")


class _BearerServer:
    """
    Shared by both mechanisms: one client message, then, after a refusal, the error
    challenge and the client's dummy response.
    """

    name = ""
    clientFirst = True
    _xoauth2 = False

    def __init__(self) -> None:
        self._state = "new"

    def start(self, initialResponse: bytes | None) -> Step:
        """
        Begin: the initial response is the client's message.
        """
        from pop3kit.sasl import Challenge

        if self._state != "new":
            raise RuntimeError(f"{self.name} exchange already started")
        self._state = "message"
        if initialResponse is None:
            return Challenge(b"")
        return self.respond(initialResponse)

    def keysFound(self, keys: object) -> Step:
        """
        Refuse: these mechanisms never ask for SCRAM keys.

        @raise RuntimeError: Always.
        """
        raise RuntimeError(f"{self.name} does not use SCRAM keys")

    def respond(self, response: bytes) -> Step:
        """
        Take the client's message, or its dummy response to the error challenge.
        """
        from pop3kit.sasl import CheckCredentials, MalformedSASLResponse

        state, self._state = self._state, "done"
        if state == "error-sent":
            # RFC 7628 section 3.2.3: whatever the client answers, the login failed.
            raise AuthenticationFailed()
        if state != "message":
            raise MalformedSASLResponse("unexpected SASL response")
        token, authzid = self._parse(response)
        return CheckCredentials(BearerToken(token, authzid, self.name), self._refused)

    def _refused(self, error: Exception) -> bytes:
        self._state = "error-sent"
        return _errorChallenge(error, self._xoauth2)

    def _parse(self, message: bytes) -> tuple[str, str]:
        raise NotImplementedError()


def _bearer(value: str) -> str:
    from pop3kit.sasl import MalformedSASLResponse

    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MalformedSASLResponse("expected auth=Bearer TOKEN")
    return token.strip()


def _text(data: bytes) -> str:
    from pop3kit.sasl import MalformedSASLResponse

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedSASLResponse("SASL message is not valid UTF-8") from None


class OAuthBearerServer(_BearerServer):
    """
    OAUTHBEARER (RFC 7628): C{gs2-header ^A *(key=value ^A) ^A}, with C{auth=Bearer
    TOKEN} among the pairs.
    """

    name = "OAUTHBEARER"

    def _parse(self, message: bytes) -> tuple[str, str]:
        from pop3kit.sasl import MalformedSASLResponse

        text = _text(message)
        flag, comma, rest = text.partition(",")
        authzidPart, comma2, pairs = rest.partition(",")
        if not comma or not comma2:
            raise MalformedSASLResponse("OAUTHBEARER needs a GS2 header")
        if flag.startswith("p="):
            raise MalformedSASLResponse("channel binding is not supported")
        if flag not in ("n", "y"):
            raise MalformedSASLResponse("bad GS2 channel-binding flag")
        if authzidPart and not authzidPart.startswith("a="):
            raise MalformedSASLResponse("bad authorization identity")
        authzid = authzidPart[2:].replace("=2C", ",").replace("=3D", "=")
        if not pairs.startswith("\x01") or not pairs.endswith("\x01\x01"):
            raise MalformedSASLResponse("OAUTHBEARER key/value pairs must be ^A-separated")
        values: dict[str, str] = {}
        for pair in pairs[1:-2].split("\x01"):
            key, equals, value = pair.partition("=")
            if not equals or not re.fullmatch("[A-Za-z]+", key):
                raise MalformedSASLResponse("malformed OAUTHBEARER key/value pair")
            values[key] = value
        if "auth" not in values:
            raise MalformedSASLResponse("OAUTHBEARER message without auth=")
        return _bearer(values["auth"]), authzid


class XOAuth2Server(_BearerServer):
    """
    XOAUTH2: C{user=NAME ^A auth=Bearer TOKEN ^A ^A}.
    """

    name = "XOAUTH2"
    _xoauth2 = True

    def _parse(self, message: bytes) -> tuple[str, str]:
        from pop3kit.sasl import MalformedSASLResponse

        text = _text(message)
        if not text.endswith("\x01\x01"):
            raise MalformedSASLResponse("XOAUTH2 message must end with ^A^A")
        values = {}
        for pair in text[:-2].split("\x01"):
            key, equals, value = pair.partition("=")
            if not equals:
                raise MalformedSASLResponse("malformed XOAUTH2 key/value pair")
            values[key] = value
        if not values.get("user") or "auth" not in values:
            raise MalformedSASLResponse("XOAUTH2 needs user= and auth=")
        return _bearer(values["auth"]), values["user"]


# --- server side: validating tokens ---------------------------------------------------


def _isLoopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _agent(reactor: Any) -> Any:
    from twisted.web.client import Agent

    return Agent(reactor)  # type: ignore[no-untyped-call]


async def _fetchJSON(
    agent: Any, url: str, body: bytes | None = None, headers: dict[bytes, list[bytes]] | None = None
) -> Any:
    """
    GET (or POST C{body}) C{url} and decode the JSON answer.

    @raise TemporaryFailure: when the answer is not 200 with JSON.
    """

    from twisted.web.client import FileBodyProducer, readBody
    from twisted.web.http_headers import Headers

    producer = FileBodyProducer(io.BytesIO(body)) if body is not None else None  # type: ignore[no-untyped-call]
    method = b"POST" if body is not None else b"GET"
    response = await agent.request(method, url.encode("ascii"), Headers(headers or {}), producer)
    data = await readBody(response)
    if response.code != 200:
        raise ValueError(f"{url} answered HTTP {response.code}")
    return json.loads(data)


class JWKS:
    """
    The issuer's signing keys (a JSON Web Key Set, RFC 7517), from a file or a URL.

    A file is read when made, and again when a token names a key it does not hold; a
    URL is fetched (without blocking the reactor, one fetch at a time, within
    L{FETCH_TIMEOUT} seconds) on first use, after L{MAX_AGE} seconds, and when a token
    names an unknown key, but at most once every L{MIN_REFRESH} seconds, whether the
    last attempt succeeded or not.  A URL must be C{https://}, or C{http://} to a loopback
    address.

    @ivar location: The file or URL.
    """

    log = Logger()

    def __init__(
        self,
        location: str,
        *,
        clock: IReactorTime,
        agent: Any = None,
    ) -> None:
        """
        @param location: A file path, or an C{https://} URL.
        @param clock: Dates fetches.
        @param agent: The L{twisted.web.client.Agent} to fetch a URL with; one on
            C{clock} (the reactor) by default.
        @raise ValueError: For a file that holds no key set, an C{http://} URL to
            another host, or without joserfc.
        @raise OSError: For a file that cannot be read.
        """
        _joserfc()
        self.location = location
        self._clock = clock
        self._keys: Any = None
        self._fetched: float | None = None
        self._lock = DeferredLock()
        parsed = urllib.parse.urlsplit(location)
        self._url = parsed.scheme in ("http", "https")
        if self._url:
            if parsed.scheme == "http" and not _isLoopback(parsed.hostname or ""):
                raise ValueError(f"refusing to fetch keys over plain HTTP: {location}")
            self._agent = agent if agent is not None else _agent(clock)
        else:
            self._keys = self._readFile()

    def _readFile(self) -> Any:
        with open(self.location, encoding="utf-8") as f:
            return self._parse(f.read())

    def _parse(self, text: str | bytes | dict[str, Any]) -> Any:
        joserfc = _joserfc()
        try:
            data = json.loads(text) if not isinstance(text, dict) else text
            return joserfc.jwk.KeySet.import_key_set(data)
        except (ValueError, TypeError, KeyError, joserfc.errors.JoseError) as e:
            raise ValueError(f"{self.location} holds no JSON Web Key Set: {e}") from None

    async def keys(self, kid: str | None) -> Any:
        """
        The key set, refreshed first if it does not hold C{kid} (or is too old).

        @raise TemporaryFailure: when the keys cannot be had.
        """
        if self._keys is None or not self._holds(kid) or self._stale():
            await self._refresh()
        return self._keys

    def _holds(self, kid: str | None) -> bool:
        return kid is None or any(key.kid == kid for key in self._keys.keys)

    def _stale(self) -> bool:
        return (
            self._url
            and self._fetched is not None
            and self._clock.seconds() - self._fetched > MAX_AGE
        )

    async def _refresh(self) -> None:
        if not self._url:
            try:
                self._keys = self._readFile()
            except (OSError, ValueError) as e:
                self.log.error("Cannot read the JWKS: {error}", error=str(e))
                if self._keys is None:
                    raise TemporaryFailure() from None
            return
        async with self._lock:
            now = self._clock.seconds()
            if self._fetched is not None and now - self._fetched < MIN_REFRESH:
                # Fetched (or tried) a moment ago, perhaps for the login we waited for.
                if self._keys is None:
                    raise TemporaryFailure()
                return
            self._fetched = now
            fetch = Deferred.fromCoroutine(_fetchJSON(self._agent, self.location))
            fetch.addTimeout(FETCH_TIMEOUT, self._clock)
            try:
                keys = self._parse(await fetch)
            except Exception as e:
                self.log.error(
                    "Cannot fetch the JWKS {url}: {error}", url=self.location, error=str(e)
                )
                if self._keys is None:
                    raise TemporaryFailure() from None
                return
            self._keys = keys


def _segments(token: str) -> dict[str, Any]:
    """
    The JOSE header of a compact JWS, refusing what must never be accepted.

    @raise TokenRefused: for anything but three segments with a signature, and for
        C{alg: none}.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRefused("not a signed JWT (compact JWS)")
    try:
        padded = parts[0] + "=" * (-len(parts[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        raise TokenRefused("malformed JOSE header") from None
    if not isinstance(header, dict):
        raise TokenRefused("malformed JOSE header")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise TokenRefused("unsigned token (alg: none)")
    if not parts[2]:
        raise TokenRefused("unsigned token")
    return header


def _scopes(claims: dict[str, Any]) -> set[str]:
    scope = claims.get("scope", claims.get("scp", ""))
    if isinstance(scope, str):
        return set(scope.split())
    if isinstance(scope, list):
        return {str(s) for s in scope}
    return set()


def _userOf(claims: dict[str, Any], userClaim: str, authzid: str) -> str:
    user = claims.get(userClaim)
    if not isinstance(user, str) or not user:
        raise TokenRefused(f"the token has no {userClaim!r} claim")
    if authzid and authzid != user:
        raise TokenRefused(f"the token is {user!r}'s, not {authzid!r}'s")
    return user


@implementer(ICredentialsChecker)
class JWTChecker:
    """
    Validates JWT access tokens (RFC 9068) locally: signature (an algorithm of
    C{algorithms}, a key of C{keys}), C{exp} (required), C{nbf}, C{iss}, C{aud}, and
    optionally a scope.  The avatar ID is the C{userClaim} claim; a client that names a
    user (C{a=} or C{user=}) must name that one.
    """

    credentialInterfaces = (IBearerToken,)
    log = Logger()

    def __init__(
        self,
        keys: JWKS,
        *,
        issuer: str,
        audience: str,
        clock: IReactorTime,
        userClaim: str = DEFAULT_USER_CLAIM,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        scope: str | None = None,
    ) -> None:
        """
        @param keys: The issuer's keys.
        @param issuer: The C{iss} every token must have.
        @param audience: A value C{aud} must hold (this server).
        @param clock: The time C{exp} and C{nbf} are compared with.
        @param userClaim: The claim holding the user name.
        @param algorithms: The accepted signature algorithms; C{none} is never one.
        @param scope: A scope every token must grant, or L{None}.
        @raise ValueError: For C{none} or an HMAC algorithm among C{algorithms}.
        """
        _joserfc()
        bad = [a for a in algorithms if a.lower() == "none" or a.upper().startswith("HS")]
        if bad:
            raise ValueError(f"refusing signature algorithms {', '.join(bad)}")
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.userClaim = userClaim
        self.algorithms = tuple(algorithms)
        self.scope = scope
        self._clock = clock

    # The avatar ID is the str user name, as pop3kit's checkers give.
    def requestAvatarId(self, credentials: ICredentials) -> Deferred[object]:  # type: ignore[override]
        """
        The user the token names, or L{TokenRefused}.
        """
        return Deferred.fromCoroutine(self._check(IBearerToken(credentials)))

    async def _check(self, credentials: IBearerToken) -> object:
        try:
            return await self._validate(credentials)
        except TokenRefused as e:
            self.log.info(
                "Refused a bearer token for {authzid}: {reason}",
                authzid=credentials.authzid,
                reason=e.reason,
            )
            raise

    async def _validate(self, credentials: IBearerToken) -> str:
        joserfc = _joserfc()
        header = _segments(credentials.token)
        if header["alg"] not in self.algorithms:
            raise TokenRefused(f"signature algorithm {header['alg']} is not accepted")
        kid = header.get("kid")
        keys = await self.keys.keys(kid if isinstance(kid, str) else None)
        try:
            token = joserfc.jwt.decode(credentials.token, keys, algorithms=self.algorithms)
        except joserfc.errors.JoseError as e:
            raise TokenRefused(f"bad token: {e}") from None
        except ValueError as e:
            raise TokenRefused(f"bad token: {e}") from None
        registry = joserfc.jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock.seconds()),
            leeway=LEEWAY,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
        )
        try:
            registry.validate(token.claims)
        except joserfc.errors.JoseError as e:
            raise TokenRefused(f"bad claims: {e}") from None
        if self.scope is not None and self.scope not in _scopes(token.claims):
            raise TokenRefused("insufficient scope", "insufficient_scope", self.scope)
        return _userOf(token.claims, self.userClaim, credentials.authzid)


@implementer(ICredentialsChecker)
class IntrospectionChecker:
    """
    Asks the authorization server whether a token is active (RFC 7662), with HTTP Basic
    client credentials, without blocking the reactor.  The avatar ID is the
    C{userClaim} member of the answer (C{username} by default, RFC 7662 section 2.2).
    """

    credentialInterfaces = (IBearerToken,)
    log = Logger()

    def __init__(
        self,
        url: str,
        *,
        clientId: str,
        clientSecret: str,
        clock: IReactorTime,
        agent: Any = None,
        userClaim: str = "username",
        audience: str | None = None,
        scope: str | None = None,
    ) -> None:
        """
        @param url: The introspection endpoint: C{https://}, or C{http://} to loopback.
        @param clientId: This server's client id at the authorization server.
        @param clientSecret: Its secret.
        @param clock: The reactor's clock (and, by default, the agent's reactor).
        @param agent: The L{twisted.web.client.Agent} to ask with.
        @param userClaim: The member of the answer naming the user.
        @param audience: A value C{aud} must hold, or L{None} not to check.
        @param scope: A scope the token must grant, or L{None}.
        @raise ValueError: For an C{http://} URL to another host.
        """
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or (
            parsed.scheme == "http" and not _isLoopback(parsed.hostname or "")
        ):
            raise ValueError(f"the introspection endpoint must be https:// (got {url})")
        self.url = url
        self.userClaim = userClaim
        self.audience = audience
        self.scope = scope
        self._clock = clock
        self._agent = agent if agent is not None else _agent(clock)
        secret = f"{urllib.parse.quote(clientId)}:{urllib.parse.quote(clientSecret)}"
        self._authorization = b"Basic " + base64.b64encode(secret.encode("utf-8"))

    # The avatar ID is the str user name, as pop3kit's checkers give.
    def requestAvatarId(self, credentials: ICredentials) -> Deferred[object]:  # type: ignore[override]
        """
        The user the authorization server says the token is for, or L{TokenRefused}.
        """
        return Deferred.fromCoroutine(self._check(IBearerToken(credentials)))

    async def _check(self, credentials: IBearerToken) -> str:
        body = urllib.parse.urlencode(
            {"token": credentials.token, "token_type_hint": "access_token"}
        ).encode("ascii")
        headers = {
            b"Authorization": [self._authorization],
            b"Content-Type": [b"application/x-www-form-urlencoded"],
            b"Accept": [b"application/json"],
        }
        asked = Deferred.fromCoroutine(_fetchJSON(self._agent, self.url, body, headers))
        asked.addTimeout(FETCH_TIMEOUT, self._clock)
        try:
            answer = await asked
        except Exception as e:
            self.log.error("Token introspection at {url} failed: {error}", url=self.url, error=e)
            raise TemporaryFailure() from None
        if not isinstance(answer, dict) or answer.get("active") is not True:
            raise TokenRefused("inactive token")
        exp = answer.get("exp")
        if isinstance(exp, int | float) and exp + LEEWAY < self._clock.seconds():
            raise TokenRefused("expired token")
        if self.audience is not None:
            aud = answer.get("aud")
            audiences = aud if isinstance(aud, list) else [aud]
            if self.audience not in audiences:
                raise TokenRefused("token for another audience")
        if self.scope is not None and self.scope not in _scopes(answer):
            raise TokenRefused("insufficient scope", "insufficient_scope", self.scope)
        return _userOf(answer, self.userClaim, credentials.authzid)


def readSecret(path: str) -> str:
    """
    The first line of C{path}, for a client secret kept out of the command line.

    @raise OSError: if it cannot be read.
    """
    with open(path, encoding="utf-8") as f:
        return f.readline().strip()


# --- client side ----------------------------------------------------------------------


def describeError(challenge: bytes) -> str:
    """
    A clear sentence for the error JSON of a refused token (RFC 7628 section 3.2.2, or
    XOAUTH2's HTTP-status form).
    """
    try:
        error = json.loads(challenge)
    except ValueError:
        return "the server refused the token"
    if not isinstance(error, dict):
        return "the server refused the token"
    status = str(error.get("status", ""))
    scope = error.get("scope")
    if status in ("invalid_token", "401"):
        text = "the token is invalid or expired: get a fresh one"
    elif status in ("insufficient_scope", "403"):
        text = "the token lacks a scope the server needs"
    elif status in ("invalid_request", "400"):
        text = "the server found the token request malformed"
    else:
        text = f"the server refused the token ({status or 'no status'})"
    if scope:
        text += f" (scope: {scope})"
    return text


class _BearerClient:
    """
    One client message with the token; to an error challenge, the dummy response.

    @ivar errorDetail: The decoded error JSON of a refusal, or L{None}.
    """

    name = ""

    def __init__(self, message: bytes, dummy: bytes) -> None:
        self._message = message
        self._dummy = dummy
        self._sent = False
        self._complete = False
        self.errorDetail: str | None = None

    @property
    def complete(self) -> bool:
        """
        Whether the token was sent.
        """
        return self._complete

    def initialResponse(self) -> bytes | None:
        """
        The message with the token.
        """
        self._sent = self._complete = True
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        """
        The message, if the server asks for it with an empty challenge; else the dummy
        response to an error challenge, whose JSON is kept in L{errorDetail}.
        """
        from pop3kit.sasl import MalformedSASLChallenge

        if not self._sent and not challenge:
            return self.initialResponse() or b""
        if self.errorDetail is not None:
            raise MalformedSASLChallenge(f"unexpected {self.name} challenge")
        self.errorDetail = describeError(challenge)
        return self._dummy


def _checkToken(token: str) -> str:
    if not token or any(c in token for c in "\x01\r\n ") or not token.isascii():
        raise ValueError("the access token is empty or holds spaces or control characters")
    return token


class OAuthBearerClient(_BearerClient):
    """
    OAUTHBEARER (RFC 7628): C{n,a=USER,^Ahost=HOST^Aport=PORT^Aauth=Bearer TOKEN^A^A}.
    """

    name = "OAUTHBEARER"

    def __init__(
        self, user: str, token: str, host: str | None = None, port: int | None = None
    ) -> None:
        """
        @param user: The user name, sent as the authorization identity (C{a=});
            empty for none.
        @param token: The access token.
        @param host: The server's host name, sent as C{host=} when known.
        @param port: The server's port, sent as C{port=} when known.
        @raise ValueError: For a token that cannot be sent.
        """
        saslname = user.replace("=", "=3D").replace(",", "=2C")
        header = f"n,a={saslname}," if user else "n,,"
        pairs = []
        if host:
            pairs.append(f"host={host}")
        if port:
            pairs.append(f"port={port}")
        pairs.append(f"auth=Bearer {_checkToken(token)}")
        message = header + "\x01" + "\x01".join(pairs) + "\x01\x01"
        super().__init__(message.encode("utf-8"), b"\x01")


class XOAuth2Client(_BearerClient):
    """
    XOAUTH2: C{user=USER^Aauth=Bearer TOKEN^A^A}.
    """

    name = "XOAUTH2"

    def __init__(self, user: str, token: str) -> None:
        """
        @param user: The user name (required).
        @param token: The access token.
        @raise ValueError: For a missing user name, or a token that cannot be sent.
        """
        if not user:
            raise ValueError("XOAUTH2 needs a user name")
        message = f"user={user}\x01auth=Bearer {_checkToken(token)}\x01\x01"
        super().__init__(message.encode("utf-8"), b"")


def tokenFromCommand(command: str, run: Callable[..., Any] | None = None) -> str:
    """
    Run C{command} with the shell and take the first line of its output as the access
    token (as mpop's C{passwordeval} does).

    @raise ValueError: in one line, if the command fails or prints nothing.
    """
    import subprocess

    runner = run if run is not None else subprocess.run
    try:
        result = runner(
            ["/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=os.environ.copy(),
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ValueError(f"the token command failed: {e}") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [""])[-1]
        raise ValueError(f"the token command exited with status {result.returncode}: {last}")
    token: str = (result.stdout.splitlines() or [""])[0].strip()
    if not token:
        raise ValueError("the token command printed no token")
    return token
