# -*- test-case-name: tests.test_sasl_server,tests.test_sasl_client,tests.test_fuzz_sasl -*-
"""
SASL mechanisms for POP3's C{AUTH} command (RFC 5034), server and client side.

PLAIN, LOGIN, CRAM-MD5, SCRAM and EXTERNAL are here; GSSAPI (RFC 4752) is in
L{pop3kit._gssapi} and OAUTHBEARER (RFC 7628) and XOAUTH2 in L{pop3kit._oauth2}, made by
the same L{serverMechanism} and L{clientMechanism}.

Server side
===========

A L{ServerMechanism} is sans-IO: it takes the client's responses as decoded bytes (the
POP3 server does the base64, and handles the C{*} that cancels an exchange) and answers
each with a step:

  - L{Challenge}: send C{"+ " + base64(data)} and pass the client's next response to
    L{ServerMechanism.respond};
  - L{NeedSCRAMKeys}: look up the user's keys (L{pop3kit.interfaces.ISCRAMKeySource})
    and pass them, or L{None}, to L{ServerMechanism.keysFound};
  - L{CheckCredentials}: log in with C{portal.login(credentials, None, IMailbox)};
  - L{Verified}: the mechanism has verified the identity itself; ask the realm for the
    avatar of that user name.

A mechanism raises L{pop3kit.errors.AuthenticationFailed} (C{-ERR [AUTH]}) for wrong
credentials, and L{MalformedSASLResponse} (a plain C{-ERR}) for a message that breaks
the mechanism's syntax; nothing else, whatever the client sends.  L{serverMechanism}
makes them by name.

User names and passwords are UTF-8 on the wire and are prepared with SASLprep (RFC 4013)
by every mechanism (L{prepareUsername}, L{preparePassword}); a string SASLprep prohibits
(control characters, unassigned code points ...) fails the login with
L{AuthenticationFailed}, like a wrong password, since it cannot be anybody's.

Client side
===========

A L{ClientMechanism} (made by L{clientMechanism}) produces the initial response and
answers the server's decoded challenges; L{CLIENT_PREFERENCE} orders the mechanisms a
client should pick from, best first.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from pop3kit import core
from pop3kit._scram import SCRAM_HASHES, SCRAMKeys, _saslprep, dummyKeys
from pop3kit.core import (
    SASL_MECHANISMS,
)
from pop3kit.cred import CRAMMD5Credentials
from pop3kit.errors import AuthenticationFailed, RemoteProtocolError

if TYPE_CHECKING:
    from twisted.cred.credentials import ICredentials

    from pop3kit._gssapi import IGSSAPIAcceptor

__all__ = [
    "CLIENT_PREFERENCE",
    "SERVER_MECHANISMS",
    "Challenge",
    "CheckCredentials",
    "ClientMechanism",
    "MalformedSASLChallenge",
    "MalformedSASLResponse",
    "NeedSCRAMKeys",
    "SCRAMKeys",
    "ServerMechanism",
    "Step",
    "Verified",
    "clientMechanism",
    "preparePassword",
    "prepareUsername",
    "serverMechanism",
]


class MalformedSASLResponse(RemoteProtocolError):
    """
    A client's SASL response breaks the mechanism's syntax (or asks for something pop3kit
    does not offer, such as SCRAM channel binding).  Answered with a plain C{-ERR}, no
    response code: the credentials were not judged.
    """

    defaultText = "malformed SASL response"


class MalformedSASLChallenge(RemoteProtocolError):
    """
    Raised by a L{ClientMechanism}: the server's challenge breaks the mechanism's syntax,
    or came when the mechanism expected none.  The client should cancel the exchange.
    """

    defaultText = "malformed SASL challenge"


# --- preparation ----------------------------------------------------------------------


def prepareUsername(username: str) -> str:
    """
    Prepare a user name with SASLprep (RFC 4013): map non-ASCII spaces to spaces, drop
    characters mapped to nothing, normalise to NFKC, and refuse prohibited characters.

    @param username: The user name as the client sent it.
    @return: The prepared user name.
    @raise AuthenticationFailed: If it holds a character SASLprep prohibits.
    @raise MalformedSASLResponse: If nothing is left of it.
    """
    try:
        prepared = _saslprep(username)
    except ValueError:
        raise AuthenticationFailed() from None
    if not prepared:
        raise MalformedSASLResponse("empty user name")
    return prepared


def preparePassword(password: str) -> str:
    """
    Prepare a password with SASLprep (RFC 4013), as L{prepareUsername} does.

    @param password: The password as the client sent it.
    @return: The prepared password (perhaps empty: such a password matches nothing).
    @raise AuthenticationFailed: If it holds a character SASLprep prohibits.
    """
    try:
        return _saslprep(password)
    except ValueError:
        raise AuthenticationFailed() from None


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedSASLResponse(f"{what} is not valid UTF-8") from None


# --- server side: steps ---------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """
    Send a challenge: C{"+ " + base64(data)}, then pass the client's response to
    L{ServerMechanism.respond}.

    @ivar data: The decoded challenge (possibly empty).
    """

    data: bytes


@dataclass(frozen=True)
class NeedSCRAMKeys:
    """
    Look up the SCRAM keys of C{username} for C{mechanism} and pass them (or L{None}
    for an unknown user, or one without usable keys) to L{ServerMechanism.keysFound}.

    @ivar username: The prepared user name.
    @ivar mechanism: C{"SCRAM-SHA-1"} or C{"SCRAM-SHA-256"}.
    """

    username: str
    mechanism: str


@dataclass(frozen=True)
class CheckCredentials:
    """
    The exchange is over: log in with C{portal.login(credentials, None, IMailbox)}.

    @ivar credentials: C{UsernamePassword} (PLAIN, LOGIN),
        L{pop3kit.cred.CRAMMD5Credentials}, a Kerberos principal (GSSAPI) or a bearer
        token (OAUTHBEARER, XOAUTH2).
    @ivar refusal: For a mechanism that answers a refusal with an error challenge before
        the C{-ERR} (OAUTHBEARER, XOAUTH2): called with the checker's
        L{twisted.cred.error.UnauthorizedLogin}, it returns the challenge to send; the
        client's next response then ends the exchange with L{AuthenticationFailed}.
        L{None} for the others.
    """

    credentials: ICredentials
    refusal: Callable[[Exception], bytes] | None = None


@dataclass(frozen=True)
class Verified:
    """
    The exchange is over and the mechanism itself verified the identity (SCRAM, once the
    client has acknowledged the server's signature; EXTERNAL): ask the realm for the
    avatar of C{username}.

    @ivar username: The verified, prepared user name.
    """

    username: str


Step: TypeAlias = Challenge | NeedSCRAMKeys | CheckCredentials | Verified
"""
What a L{ServerMechanism} asks the server to do next.
"""


class ServerMechanism(Protocol):
    """
    The server side of one SASL exchange.  Make a new one for each C{AUTH} command.

    Every method raises L{AuthenticationFailed} when the credentials are refused and
    L{MalformedSASLResponse} when the client's message is malformed, after which the
    exchange is over: further calls raise L{MalformedSASLResponse}.

    @ivar name: The mechanism's name, e.g. C{"SCRAM-SHA-256"}.
    @ivar clientFirst: C{False} for a mechanism in which the server speaks first
        (CRAM-MD5): the server must refuse an initial response on the C{AUTH} line.
    """

    name: str
    clientFirst: bool

    def start(self, initialResponse: bytes | None) -> Step:
        """
        Begin the exchange.

        @param initialResponse: The decoded initial response of the C{AUTH} line;
            L{None} if there was none, C{b""} for C{=} (present and empty).
        """

    def respond(self, response: bytes) -> Step:
        """
        Take the client's next decoded response, to the last L{Challenge}.
        """

    def keysFound(self, keys: SCRAMKeys | None) -> Step:
        """
        Take the SCRAM keys asked for by L{NeedSCRAMKeys} (SCRAM only).

        @param keys: The user's keys, or L{None} for an unknown user or one without
            keys for this mechanism: the exchange then goes on with dummy keys, so that
            the client cannot tell, and fails at its end with L{AuthenticationFailed}.
        @raise RuntimeError: If no keys were asked for.
        """


class _ServerBase:
    """
    Shared bookkeeping: a mechanism that has finished or failed takes no more input.
    """

    name = ""
    clientFirst = True

    def __init__(self) -> None:
        self._done = False
        self._started = False

    def _begin(self) -> None:
        if self._started:
            raise RuntimeError(f"{self.name} exchange already started")
        self._started = True

    def _finish(self) -> None:
        self._done = True

    def _checkOpen(self) -> None:
        if self._done or not self._started:
            raise MalformedSASLResponse("unexpected SASL response")

    def start(self, initialResponse: bytes | None) -> Step:
        """
        Begin a client-first exchange: the initial response is the first message; without
        one, an empty challenge asks for it.
        """
        self._begin()
        if initialResponse is None:
            return Challenge(b"")
        return self.respond(initialResponse)

    def respond(self, response: bytes) -> Step:
        """
        Take the client's next response; each mechanism says what to do with it.
        """
        raise NotImplementedError()

    def keysFound(self, keys: SCRAMKeys | None) -> Step:
        """
        Refuse: this mechanism never asks for SCRAM keys.

        @raise RuntimeError: Always.
        """
        raise RuntimeError(f"{self.name} does not use SCRAM keys")

    def _guard(self, step: Callable[[bytes], Step], data: bytes) -> Step:
        """
        Run one step; any failure ends the exchange.
        """
        try:
            return step(data)
        except BaseException:
            self._finish()
            raise


def _credentials(username: str, password: str) -> CheckCredentials:
    from twisted.cred.credentials import UsernamePassword

    return CheckCredentials(UsernamePassword(username.encode("utf-8"), password.encode("utf-8")))


class _OneMessageServer(_ServerBase):
    """
    A client-first mechanism whose client sends one message: in the initial response, or
    after an empty challenge.  Subclasses judge it in C{_message}.
    """

    def respond(self, response: bytes) -> Step:
        self._checkOpen()
        return self._guard(self._message, response)

    def _message(self, message: bytes) -> Step:
        raise NotImplementedError()


class _PlainServer(_OneMessageServer):
    """
    PLAIN (RFC 4616): one message C{authzid NUL authcid NUL passwd}.
    """

    name = "PLAIN"

    def _message(self, message: bytes) -> Step:
        self._finish()
        fields = message.split(b"\0")
        if len(fields) != 3:
            raise MalformedSASLResponse("PLAIN needs authzid NUL authcid NUL passwd")
        rawAuthzid, rawAuthcid, rawPassword = fields
        if not rawAuthcid or not rawPassword:
            raise MalformedSASLResponse("PLAIN user name and password must not be empty")
        authzid = _utf8(rawAuthzid, "authorization identity")
        authcid = prepareUsername(_utf8(rawAuthcid, "user name"))
        password = preparePassword(_utf8(rawPassword, "password"))
        if authzid and prepareUsername(authzid) != authcid:
            raise AuthenticationFailed()
        return _credentials(authcid, password)


class _LoginServer(_ServerBase):
    """
    LOGIN (draft-murchison-sasl-login): prompts C{Username:} and C{Password:}.
    """

    name = "LOGIN"

    def __init__(self) -> None:
        super().__init__()
        self._username: str | None = None

    def start(self, initialResponse: bytes | None) -> Step:
        self._begin()
        if not initialResponse:
            # Some clients send "AUTH LOGIN =": ask for the name as if nothing came.
            return Challenge(b"Username:")
        return self.respond(initialResponse)

    def respond(self, response: bytes) -> Step:
        self._checkOpen()
        return self._guard(self._answer, response)

    def _answer(self, response: bytes) -> Step:
        if self._username is None:
            self._username = prepareUsername(_utf8(response, "user name"))
            return Challenge(b"Password:")
        self._finish()
        return _credentials(self._username, preparePassword(_utf8(response, "password")))


_CRAM_RESPONSE = re.compile(rb"(.+) ([0-9a-fA-F]{32})", re.DOTALL)
# Printable ASCII but "<", ">" and "@": what fits the domain of a msg-id without ending it.
_HOSTNAME = re.compile(r"[!-;=?A-~]+")


class _CRAMMD5Server(_ServerBase):
    """
    CRAM-MD5 (RFC 2195): a server-first challenge, answered with C{user SP hex-digest}.
    """

    name = "CRAM-MD5"
    clientFirst = False

    def __init__(self, hostname: str) -> None:
        super().__init__()
        self._hostname = hostname
        self._challenge = b""

    def start(self, initialResponse: bytes | None) -> Step:
        self._begin()
        if initialResponse is not None:
            self._finish()
            raise MalformedSASLResponse("CRAM-MD5 takes no initial response")
        # msg-id syntax; the random part (from the OS's CSPRNG) makes it unique.
        unique = secrets.randbits(63)
        self._challenge = f"<{unique}.{int(time.time())}@{self._hostname}>".encode("ascii")
        return Challenge(self._challenge)

    def respond(self, response: bytes) -> Step:
        self._checkOpen()
        return self._guard(self._answer, response)

    def _answer(self, response: bytes) -> Step:
        self._finish()
        match = _CRAM_RESPONSE.fullmatch(response)
        if match is None:
            raise MalformedSASLResponse("CRAM-MD5 needs user SP 32 hex digits")
        username = prepareUsername(_utf8(match.group(1), "user name"))
        return CheckCredentials(
            CRAMMD5Credentials(self._challenge, username.encode("utf-8"), match.group(2).lower())
        )


def _scramUnescape(saslname: str) -> str:
    """
    Undo RFC 5802's escaping of C{,} and C{=} in a user name.
    """
    if re.search(r"=(?!2C|3D)", saslname):
        raise MalformedSASLResponse("bad escape in SCRAM user name")
    if "," in saslname:
        raise MalformedSASLResponse("unescaped ',' in SCRAM user name")
    return saslname.replace("=2C", ",").replace("=3D", "=")


class _SCRAMServer(_ServerBase):
    """
    SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding, through
    scramp.

    States: client-first, then keys (after L{NeedSCRAMKeys}), then client-final, then
    the client's empty acknowledgement of the server-final message.
    """

    def __init__(self, name: str, serverNonce: str | None = None) -> None:
        """
        @param name: C{"SCRAM-SHA-1"} or C{"SCRAM-SHA-256"}.
        @param serverNonce: The server's part of the nonce; random by default (tests
            fix it to replay the RFC examples).
        """
        super().__init__()
        self.name = name
        self._serverNonce = serverNonce
        self._state = "first"
        self._clientFirst = ""
        self._username = ""
        self._unknown = False
        self._server: Any = None

    def respond(self, response: bytes) -> Step:
        self._checkOpen()
        if self._state == "first":
            return self._guard(self._first, response)
        if self._state == "final":
            return self._guard(self._final, response)
        if self._state == "acknowledge":
            return self._guard(self._acknowledge, response)
        # Waiting for keys: the client spoke out of turn.
        self._finish()
        raise MalformedSASLResponse("unexpected SASL response")

    def _newServer(self, keys: SCRAMKeys) -> Any:
        from scramp import ScramMechanism

        def authFunction(username: str) -> tuple[bytes, bytes, bytes, int]:
            return keys.salt, keys.storedKey, keys.serverKey, keys.iterations

        return ScramMechanism(self.name).make_server(authFunction, s_nonce=self._serverNonce)

    def _first(self, message: bytes) -> Step:
        from scramp import ScramException

        text = _utf8(message, "SCRAM client-first message")
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise MalformedSASLResponse("SCRAM client-first needs a GS2 header")
        flag, authzid, bare = parts
        if flag.startswith("p="):
            raise MalformedSASLResponse("channel binding is not supported")
        if flag not in ("n", "y"):
            raise MalformedSASLResponse("bad SCRAM GS2 channel-binding flag")
        if not bare.startswith("n="):
            raise MalformedSASLResponse("SCRAM client-first needs n=username")
        username = prepareUsername(_scramUnescape(bare[2:].partition(",")[0]))
        if authzid and not authzid.startswith("a="):
            raise MalformedSASLResponse("bad SCRAM authorization identity")
        if authzid:
            # scramp takes no authorization identity; and pop3kit grants no other one.
            raise AuthenticationFailed()
        # Let scramp check the rest of the syntax now, against throwaway keys, so that no
        # key lookup is made for a malformed message.
        try:
            self._newServer(dummyKeys(username, self.name)).set_client_first(text)
        except ScramException as e:
            raise MalformedSASLResponse(f"malformed SCRAM client-first message: {e}") from None
        self._clientFirst = text
        self._username = username
        self._state = "keys"
        return NeedSCRAMKeys(username, self.name)

    def keysFound(self, keys: SCRAMKeys | None) -> Step:
        """
        Take the user's keys and send the server-first message.
        """
        from scramp import ScramException

        if self._state != "keys" or self._done:
            raise RuntimeError("no SCRAM keys were asked for")
        if keys is None or not keys.matchesMechanism(self.name):
            self._unknown = True
            keys = dummyKeys(self._username, self.name)
        server = self._newServer(keys)
        try:
            server.set_client_first(self._clientFirst)
            serverFirst: str = server.get_server_first()
        except ScramException as e:  # pragma: no cover (checked in _first)
            self._finish()
            raise MalformedSASLResponse(f"malformed SCRAM client-first message: {e}") from None
        self._server = server
        self._state = "final"
        return Challenge(serverFirst.encode("ascii"))

    def _final(self, message: bytes) -> Step:
        from scramp import ScramException
        from scramp.utils import ServerError

        text = _utf8(message, "SCRAM client-final message")
        try:
            self._server.set_client_final(text)
            serverFinal: str = self._server.get_server_final()
        except ScramException as e:
            if e.server_error is ServerError.INVALID_PROOF:
                raise AuthenticationFailed() from None
            raise MalformedSASLResponse(f"malformed SCRAM client-final message: {e}") from None
        if self._unknown:  # pragma: no cover (a proof cannot match dummy keys)
            raise AuthenticationFailed()
        self._state = "acknowledge"
        return Challenge(serverFinal.encode("ascii"))

    def _acknowledge(self, message: bytes) -> Step:
        self._finish()
        if message:
            raise MalformedSASLResponse("expected an empty response to the SCRAM server-final")
        return Verified(self._username)


class _ExternalServer(_OneMessageServer):
    """
    EXTERNAL (RFC 4422 appendix A): the identity comes from outside SASL (a TLS client
    certificate); the client sends only an authorization identity, usually empty.
    """

    name = "EXTERNAL"

    def __init__(self, identity: str | None) -> None:
        super().__init__()
        self._identity = identity

    def _message(self, message: bytes) -> Step:
        self._finish()
        authzid = _utf8(message, "authorization identity")
        if self._identity is None:
            raise AuthenticationFailed()
        if authzid and authzid != self._identity and prepareUsername(authzid) != self._identity:
            raise AuthenticationFailed()
        return Verified(self._identity)


SERVER_MECHANISMS: tuple[str, ...] = SASL_MECHANISMS
"""
The names L{serverMechanism} knows, strongest first.  A server offers C{EXTERNAL} only
when the client presented a certificate, and the clear-text C{PLAIN} and C{LOGIN} only
over TLS unless configured otherwise.
"""


class _UnknownMechanism(KeyError, ValueError):
    """
    No such mechanism; both a L{KeyError} and a L{ValueError}.
    """

    def __str__(self) -> str:
        return str(self.args[0])


def serverMechanism(
    name: str,
    *,
    hostname: str = "pop3kit",
    tlsIdentity: str | None = None,
    gssapi: IGSSAPIAcceptor | None = None,
) -> ServerMechanism:
    """
    Make the server side of one exchange of the mechanism C{name}.

    @param name: One of L{SERVER_MECHANISMS} (case-insensitive).
    @param hostname: The server's host name, for the CRAM-MD5 challenge: printable
        ASCII without spaces, C{<}, C{>} or C{@}.
    @param tlsIdentity: For EXTERNAL: the user name the TLS client certificate
        authenticates, or L{None} if there is none.
    @param gssapi: For GSSAPI: what holds the service key (see
        L{pop3kit._gssapi.GSSAPIChecker}); without it, GSSAPI logins fail.
    @raise KeyError: (also a L{ValueError}) for an unknown mechanism.
    @raise ValueError: For a host name that cannot appear in a CRAM-MD5 challenge.
    """
    upper = name.upper()
    if upper not in SERVER_MECHANISMS:
        raise _UnknownMechanism(f"unknown SASL mechanism {name!r}")
    if upper == "GSSAPI":
        from pop3kit._gssapi import GSSAPIServerMechanism

        return GSSAPIServerMechanism(gssapi)
    if upper == "OAUTHBEARER":
        from pop3kit._oauth2 import OAuthBearerServer

        return OAuthBearerServer()
    if upper == "XOAUTH2":
        from pop3kit._oauth2 import XOAuth2Server

        return XOAuth2Server()
    if upper in SCRAM_HASHES:
        return _SCRAMServer(upper)
    if upper == "PLAIN":
        return _PlainServer()
    if upper == "LOGIN":
        return _LoginServer()
    if upper == "EXTERNAL":
        return _ExternalServer(tlsIdentity)
    if not _HOSTNAME.fullmatch(hostname):
        raise ValueError(f"host name {hostname!r} cannot be used in a CRAM-MD5 challenge")
    return _CRAMMD5Server(hostname)


# --- client side ----------------------------------------------------------------------


class ClientMechanism(Protocol):
    """
    The client side of one SASL exchange.  Make a new one for each C{AUTH} command.

    @ivar name: The mechanism's name, e.g. C{"SCRAM-SHA-256"}.
    """

    name: str

    def initialResponse(self) -> bytes | None:
        """
        The decoded initial response to send on the C{AUTH} line, or L{None} for a
        mechanism that waits for the server's first challenge (CRAM-MD5, LOGIN).

        A client that cannot send it on the line (too long: RFC 5034 section 4) sends
        C{AUTH NAME} alone and passes the server's empty challenge to L{respond}, which
        then answers with the same initial response, whether or not this method was
        called first.
        """

    def respond(self, challenge: bytes) -> bytes:
        """
        Answer one decoded server challenge with a decoded response.

        @raise MalformedSASLChallenge: If the challenge is malformed or unexpected.
        @raise AuthenticationFailed: If the server failed to prove itself (SCRAM's
            server signature is wrong): the client must cancel the exchange.
        """

    @property
    def complete(self) -> bool:
        """
        Whether the exchange has reached the point where the server's C{+OK} may be
        accepted.  For SCRAM, only once the server's signature has been verified: a
        C{+OK} before then must be treated as a failure.
        """


class _ClientBase:
    name = ""

    def __init__(self) -> None:
        self._complete = False

    @property
    def complete(self) -> bool:
        return self._complete


class _OneMessageClient(_ClientBase):
    """
    PLAIN and EXTERNAL: one client message, sent as the initial response or in answer
    to the server's empty challenge (once).
    """

    def __init__(self, name: str, message: bytes) -> None:
        super().__init__()
        self.name = name
        self._message = message
        self._answered = False

    def initialResponse(self) -> bytes | None:
        self._complete = True
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        if self._answered or challenge:
            raise MalformedSASLChallenge(f"unexpected {self.name} challenge")
        self._answered = self._complete = True
        return self._message


class _LoginClient(_ClientBase):
    """
    LOGIN: the user name, then the password, whatever the prompts say.
    """

    name = "LOGIN"

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self._answers = [username.encode("utf-8"), password.encode("utf-8")]

    def initialResponse(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        if not self._answers:
            raise MalformedSASLChallenge("unexpected LOGIN challenge")
        answer = self._answers.pop(0)
        self._complete = not self._answers
        return answer


class _CRAMMD5Client(_ClientBase):
    """
    CRAM-MD5: answer the one challenge with C{user SP hex(HMAC-MD5(password, challenge))}.
    """

    name = "CRAM-MD5"

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self._username = username.encode("utf-8")
        self._password = password.encode("utf-8")

    def initialResponse(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        if self._complete or not challenge:
            raise MalformedSASLChallenge("unexpected CRAM-MD5 challenge")
        self._complete = True
        digest = hmac.new(self._password, challenge, hashlib.md5).hexdigest()
        return self._username + b" " + digest.encode("ascii")


class _SCRAMClient(_ClientBase):
    """
    SCRAM-SHA-1 / SCRAM-SHA-256 without channel binding, through scramp.
    """

    def __init__(
        self, name: str, username: str, password: str, clientNonce: str | None = None
    ) -> None:
        """
        @param clientNonce: The client's nonce; random by default (tests fix it to
            replay the RFC examples).
        """
        from scramp import ScramClient, ScramException

        super().__init__()
        self.name = name
        try:
            self._client = ScramClient([name], username, password, c_nonce=clientNonce)
        except ScramException as e:
            raise ValueError(f"cannot use this user name or password with {name}: {e}") from None
        self._clientFirst: bytes | None = None
        self._answeredEmpty = False
        self._state = "server-first"

    def initialResponse(self) -> bytes | None:
        if self._clientFirst is None:
            first: str = self._client.get_client_first()
            self._clientFirst = first.encode("utf-8")
        return self._clientFirst

    def respond(self, challenge: bytes) -> bytes:
        from scramp import ScramException

        if self._state == "server-first" and not challenge and not self._answeredEmpty:
            # The server asks for the initial response that was not sent on the line
            # (an empty server-first message is never valid, so this is unambiguous).
            self._answeredEmpty = True
            first = self.initialResponse()
            assert first is not None
            return first
        try:
            text = challenge.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedSASLChallenge("SCRAM challenge is not UTF-8") from None
        if self._state == "server-first":
            try:
                self._client.set_server_first(text)
                final: str = self._client.get_client_final()
            except ScramException as e:
                if text.startswith("e="):
                    raise AuthenticationFailed(f"server refused: {text[2:]}") from None
                raise MalformedSASLChallenge(f"malformed SCRAM server-first: {e}") from None
            self._state = "server-final"
            return final.encode("utf-8")
        if self._state == "server-final":
            self._state = "done"
            try:
                self._client.set_server_final(text)
            except ScramException:
                # A wrong signature (or an e= error): the server does not know the
                # password, or we have a wrong one.  Either way, do not go on.
                raise AuthenticationFailed("the server's SCRAM signature is wrong") from None
            self._complete = True
            return b""
        raise MalformedSASLChallenge("unexpected SCRAM challenge")


CLIENT_PREFERENCE: tuple[str, ...] = core.CLIENT_PREFERENCE
"""
The mechanisms L{clientMechanism} makes with a password, best first: a client picks the
first of these that the server advertises.  C{EXTERNAL} (no password) is not among them.
"""


def clientMechanism(
    name: str,
    username: str,
    password: str,
    *,
    authzid: str = "",
    hostname: str | None = None,
) -> ClientMechanism:
    """
    Make the client side of one exchange of the mechanism C{name}.

    @param name: One of L{CLIENT_PREFERENCE}, C{EXTERNAL} or C{GSSAPI}
        (case-insensitive).
    @param username: The user name (for EXTERNAL and GSSAPI, ignored: the certificate or
        the Kerberos ticket says it).
    @param password: The password (ignored by EXTERNAL and GSSAPI); for OAUTHBEARER
        and XOAUTH2, the OAuth 2.0 access token.
    @param authzid: The authorization identity, for PLAIN and EXTERNAL; empty means the
        user name itself.  SCRAM clients cannot send one.
    @param hostname: The server's host name: GSSAPI asks for a ticket for
        C{pop@hostname}; unused by the other mechanisms.
    @raise KeyError: (also a L{ValueError}) for an unknown mechanism.
    @raise ValueError: If SCRAM is asked for with an C{authzid}, or with a user name or
        password that SASLprep prohibits; for GSSAPI without a host name, without
        python-gssapi or without a usable Kerberos ticket.
    """
    upper = name.upper()
    if upper == "GSSAPI":
        from pop3kit._gssapi import GSSAPIClientMechanism

        if not hostname:
            raise ValueError("GSSAPI needs the server's host name")
        return GSSAPIClientMechanism(hostname, authzid)
    if upper == "OAUTHBEARER":
        from pop3kit._oauth2 import OAuthBearerClient

        return OAuthBearerClient(authzid or username, password, hostname)
    if upper == "XOAUTH2":
        from pop3kit._oauth2 import XOAuth2Client

        return XOAuth2Client(username, password)
    if upper in SCRAM_HASHES:
        if authzid:
            raise ValueError("pop3kit's SCRAM client cannot send an authorization identity")
        return _SCRAMClient(upper, username, password)
    if upper == "PLAIN":
        message = "\0".join((authzid, username, password)).encode("utf-8")
        return _OneMessageClient("PLAIN", message)
    if upper == "EXTERNAL":
        return _OneMessageClient("EXTERNAL", authzid.encode("utf-8"))
    if upper == "LOGIN":
        return _LoginClient(username, password)
    if upper == "CRAM-MD5":
        return _CRAMMD5Client(username, password)
    raise _UnknownMechanism(f"unknown SASL mechanism {name!r}")
