# -*- test-case-name: tests.test_gssapi -*-
"""
SASL GSSAPI (RFC 4752): Kerberos logins, server and client side, through python-gssapi.

python-gssapi is an optional dependency (C{pip install 'pop3kit[gssapi]'}); it is
imported only when a GSSAPI login is configured or attempted, and without it the
mechanism is simply not offered.

Server side
===========

A L{GSSAPIChecker} holds the service key (C{pop/HOST} in a keytab) and the rule that maps
an authenticated Kerberos principal to a maildrop (L{PrincipalMap}).  It is a cred
checker of L{IKerberosPrincipal} credentials and also provides L{IGSSAPIAcceptor}: a
server whose portal has one offers C{GSSAPI}.  The exchange itself
(L{GSSAPIServerMechanism}) establishes the security context, offers "no security layer"
only (the session is protected by TLS, not by GSSAPI wrapping), and ends with
L{pop3kit.sasl.CheckCredentials} of the principal, so that the login goes through the
portal like any other: the realm, the locks and the failed-login penalty apply
unchanged.  A bad, expired or replayed ticket fails as a wrong password does.

The acceptor credentials are acquired for the service principal by name, not as "any key
in the keytab", so that a ticket for another service in the same keytab is refused.  A
replayed token is refused by the Kerberos library's replay cache (MIT's default, or
C{KRB5RCACHENAME}; never set it to C{none:}).  C{gss_accept_sec_context} only reads the
keytab and decrypts a ticket, without network traffic: it runs in the reactor thread.

Client side
===========

L{GSSAPIClientMechanism} uses the running user's credential cache (C{KRB5CCNAME}) to
get a ticket for C{pop@HOST}; L{hasTicket} tells whether there is a usable one.  Making
the first token asks the KDC for that service ticket when the cache holds none yet: a
short exchange that blocks the calling thread (the reactor's, in pop3kit's client).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from pop3kit.errors import AuthenticationFailed, TemporaryFailure

if TYPE_CHECKING:
    from pop3kit.sasl import Step

__all__ = [
    "INSTALL_HINT",
    "GSSAPIChecker",
    "GSSAPIClientMechanism",
    "GSSAPIServerMechanism",
    "GSSAPIUnavailable",
    "IGSSAPIAcceptor",
    "IKerberosPrincipal",
    "KerberosPrincipal",
    "PrincipalMap",
    "hasTicket",
]

#: How to get python-gssapi.
INSTALL_HINT = "GSSAPI needs python-gssapi: pip install 'pop3kit[gssapi]'"

#: The service name of POP3 (RFC 5034 section 6, RFC 4422).
SERVICE = "pop"

#: RFC 4752 section 3.3: the security-layer bit masks.
NO_SECURITY_LAYER = 1
INTEGRITY_LAYER = 2
CONFIDENTIALITY_LAYER = 4


class GSSAPIUnavailable(Exception):
    """
    GSSAPI cannot be used: python-gssapi is missing, or the service key cannot be found.
    The message says which, in one line.
    """


def _gssapi() -> Any:
    """
    Import python-gssapi.

    @raise GSSAPIUnavailable: with L{INSTALL_HINT} when it is missing.
    """
    try:
        import gssapi
    except ImportError:
        raise GSSAPIUnavailable(INSTALL_HINT) from None
    return gssapi


def available() -> bool:
    """
    Whether python-gssapi can be imported.
    """
    try:
        _gssapi()
    except GSSAPIUnavailable:
        return False
    return True


def _describe(error: BaseException) -> str:
    """
    One line for a GSS-API error, without the status codes.
    """
    text = str(error)
    if "Minor (" in text:
        # "Major (...): ..., Minor (...): the useful part"
        text = text.rsplit("):", 1)[-1].strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- credentials and the portal -------------------------------------------------------


# Interface among the bases, though ICredentials has it, tells pydoctor this is one.
class IKerberosPrincipal(ICredentials, Interface):  # type: ignore[misc]
    """
    A Kerberos principal that a GSSAPI exchange has authenticated, and the authorization
    identity the client asked for.
    """

    principal = Attribute("The authenticated principal, C{name@REALM} (L{str}).")
    authzid = Attribute("The authorization identity sent by the client, or C{''} (L{str}).")


@implementer(IKerberosPrincipal)
class KerberosPrincipal:
    """
    The credentials of a GSSAPI login.

    @ivar principal: The authenticated principal, C{name@REALM}.
    @ivar authzid: The authorization identity the client asked for; empty for none.
    """

    def __init__(self, principal: str, authzid: str = "") -> None:
        self.principal = principal
        self.authzid = authzid

    def __repr__(self) -> str:
        return f"<KerberosPrincipal principal={self.principal!r} authzid={self.authzid!r}>"


class PrincipalMap:
    """
    The rule mapping a Kerberos principal to a maildrop (a user name):

      1. a principal listed in the map file gets the user name written beside it;
      2. otherwise a principal of the local realm without an instance (C{alice@REALM},
         not C{alice/admin@REALM}) gets its name with the realm stripped (C{alice});
      3. anybody else is refused, as a wrong password would be.

    The map file has one C{principal user} pair a line; blank lines and lines starting
    with C{#} are ignored.

    @ivar realm: The local realm.
    @ivar mapping: The explicit pairs, principal to user name.
    """

    def __init__(self, realm: str, mapping: Mapping[str, str] | None = None) -> None:
        self.realm = realm
        self.mapping = dict(mapping or {})

    @staticmethod
    def readFile(path: str) -> dict[str, str]:
        """
        Read a map file.

        @raise ValueError: naming the line that is not a C{principal user} pair.
        @raise OSError: if it cannot be read.
        """
        mapping: dict[str, str] = {}
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                words = line.split()
                if not words or words[0].startswith("#"):
                    continue
                if len(words) != 2 or "@" not in words[0]:
                    raise ValueError(f"{path}, line {number}: expected 'principal@REALM user'")
                mapping[words[0]] = words[1]
        return mapping

    def userFor(self, principal: str) -> str | None:
        """
        The user name of C{principal}, or L{None} if it may not log in.
        """
        if principal in self.mapping:
            return self.mapping[principal]
        name, at, realm = principal.rpartition("@")
        if not at or realm != self.realm or not name or "/" in name:
            return None
        return name


class IGSSAPIAcceptor(Interface):  # type: ignore[misc]
    """
    What a server needs to accept GSSAPI logins: a checker providing this makes the
    server offer C{GSSAPI}.
    """

    def acceptorContext() -> Any:
        """
        A new acceptor security context (a C{gssapi.SecurityContext}) for one exchange,
        with the credentials of the service principal.
        """


@implementer(ICredentialsChecker, IGSSAPIAcceptor)
class GSSAPIChecker:
    """
    Accepts GSSAPI logins for the service principal C{pop/HOST}, and maps the
    authenticated principals to user names with a L{PrincipalMap}.

    @ivar hostname: The host part of the service principal.
    @ivar principalMap: The mapping rule.
    """

    credentialInterfaces = (IKerberosPrincipal,)

    def __init__(
        self,
        hostname: str,
        *,
        keytab: str | None = None,
        mapFile: str | None = None,
        realm: str | None = None,
    ) -> None:
        """
        @param hostname: The host part of the service principal C{pop/HOST}, the name
            clients connect to.
        @param keytab: The keytab holding its key; C{KRB5_KTNAME} (or the system's
            default keytab) when L{None}.
        @param mapFile: A map file (see L{PrincipalMap}), or L{None}.
        @param realm: The local realm, whose principals map to their names; by default
            the realm of the service principal.
        @raise GSSAPIUnavailable: when python-gssapi is missing, or the keytab holds no
            key for the service principal (the message says which).
        @raise ValueError: for a malformed map file; L{OSError} if it cannot be read.
        """
        gssapi = _gssapi()
        self.hostname = hostname
        self._keytab = keytab
        try:
            self._name = gssapi.Name(f"{SERVICE}@{hostname}", gssapi.NameType.hostbased_service)
            canonical = str(self._name.canonicalize(gssapi.MechType.kerberos))
            self._credentials()
        except gssapi.exceptions.GSSError as e:
            where = keytab or os.environ.get("KRB5_KTNAME", "the default keytab")
            raise GSSAPIUnavailable(
                f"no key for {SERVICE}/{hostname} in {where}: {_describe(e)}"
            ) from None
        self.servicePrincipal = canonical
        mapping = PrincipalMap.readFile(mapFile) if mapFile is not None else {}
        self.principalMap = PrincipalMap(realm or canonical.rpartition("@")[2], mapping)

    def _credentials(self) -> Any:
        gssapi = _gssapi()
        store = {"keytab": self._keytab} if self._keytab is not None else None
        # By name: the key of pop/HOST only, not any key of the keytab.
        return gssapi.Credentials(name=self._name, usage="accept", store=store)

    def acceptorContext(self) -> Any:
        """
        A new acceptor context; the keytab is read again, so a rotated key is used at
        once.
        """
        gssapi = _gssapi()
        return gssapi.SecurityContext(creds=self._credentials(), usage="accept")

    # The avatar ID is the str user name, as pop3kit's checkers give.
    def requestAvatarId(self, credentials: ICredentials) -> Deferred[object]:  # type: ignore[override]
        """
        The user name of the principal, if it maps to one and the authorization identity
        (if any) is that user name.
        """
        identity = IKerberosPrincipal(credentials)
        user = self.principalMap.userFor(identity.principal)
        if user is None or (identity.authzid and identity.authzid != user):
            return fail(UnauthorizedLogin())
        return succeed(user)


# --- the exchange, server side --------------------------------------------------------


def _layers(mask: int, maxSize: int) -> bytes:
    return struct.pack("!I", (mask << 24) | maxSize)


class GSSAPIServerMechanism:
    """
    The server side of one RFC 4752 exchange (see L{pop3kit.sasl.ServerMechanism}).

    States: C{context} (accepting the client's tokens), C{token-acknowledged} (the last
    context token was sent, an empty response is due), C{layers} (the security-layer
    offer was sent, the client's choice is due), C{done}.
    """

    name = "GSSAPI"
    clientFirst = True
    log = Logger()

    def __init__(self, acceptor: IGSSAPIAcceptor | None) -> None:
        """
        @param acceptor: What holds the service key; with L{None} (a server without
            one), every exchange fails as a wrong password does.
        """
        self._acceptor = acceptor
        self._context: Any = None
        self._state = "new"

    def start(self, initialResponse: bytes | None) -> Step:
        """
        Begin: the initial response is the client's first context token.
        """
        from pop3kit.sasl import Challenge

        if self._state != "new":
            raise RuntimeError("GSSAPI exchange already started")
        self._state = "context"
        if not initialResponse:
            return Challenge(b"")
        return self.respond(initialResponse)

    def _newContext(self) -> Any:
        if self._acceptor is None:
            raise AuthenticationFailed()
        gssapi = _gssapi()
        try:
            return self._acceptor.acceptorContext()
        except gssapi.exceptions.GSSError as e:
            self.log.error("Cannot use the GSSAPI service key: {error}", error=_describe(e))
            raise TemporaryFailure() from None

    def keysFound(self, keys: object) -> Step:
        """
        Refuse: GSSAPI never asks for SCRAM keys.

        @raise RuntimeError: Always.
        """
        raise RuntimeError("GSSAPI does not use SCRAM keys")

    def respond(self, response: bytes) -> Step:
        """
        Take the client's next response.
        """
        from pop3kit.sasl import MalformedSASLResponse

        state = self._state
        try:
            if state == "context":
                return self._token(response)
            if state == "token-acknowledged":
                if response:
                    raise MalformedSASLResponse("expected an empty GSSAPI response")
                return self._offerLayers()
            if state == "layers":
                return self._choice(response)
        except BaseException:
            self._state = "done"
            raise
        self._state = "done"
        raise MalformedSASLResponse("unexpected SASL response")

    def _token(self, token: bytes) -> Step:
        from pop3kit.sasl import Challenge, MalformedSASLResponse

        if not token:
            raise MalformedSASLResponse("empty GSSAPI token")
        if self._context is None:
            self._context = self._newContext()
        gssapi = _gssapi()
        try:
            output = self._context.step(token)
            # python-gssapi keeps an error that came with an error token for the next
            # access to the context: this one.
            complete = self._context.complete
        except gssapi.exceptions.GSSError:
            # A bad, expired or replayed ticket, or one for another service.
            raise AuthenticationFailed() from None
        if not complete:
            return Challenge(output or b"")
        if output:
            self._state = "token-acknowledged"
            return Challenge(output)
        return self._offerLayers()

    def _offerLayers(self) -> Step:
        from pop3kit.sasl import Challenge

        self._state = "layers"
        # "No security layer" only, so the largest buffer is 0 (RFC 4752 section 3.1).
        wrapped = self._context.wrap(_layers(NO_SECURITY_LAYER, 0), False).message
        return Challenge(wrapped)

    def _choice(self, response: bytes) -> Step:
        from pop3kit.sasl import CheckCredentials, MalformedSASLResponse

        gssapi = _gssapi()
        self._state = "done"
        try:
            message = self._context.unwrap(response).message
        except gssapi.exceptions.GSSError:
            raise AuthenticationFailed() from None
        if len(message) < 4:
            raise MalformedSASLResponse("GSSAPI security-layer message too short")
        if message[0] != NO_SECURITY_LAYER:
            raise MalformedSASLResponse("only 'no security layer' is offered")
        try:
            authzid = message[4:].decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedSASLResponse("authorization identity is not valid UTF-8") from None
        principal = str(self._context.initiator_name)
        return CheckCredentials(KerberosPrincipal(principal, authzid))


# --- the exchange, client side --------------------------------------------------------


def hasTicket() -> bool:
    """
    Whether the running user's credential cache holds a usable ticket (and
    python-gssapi is installed).
    """
    try:
        gssapi = _gssapi()
        credentials = gssapi.Credentials(usage="initiate")
        return bool(credentials.lifetime)
    except Exception:
        return False


class GSSAPIClientMechanism:
    """
    The client side of one RFC 4752 exchange (see L{pop3kit.sasl.ClientMechanism}),
    with the running user's credential cache.  It asks for mutual authentication: the
    server's C{+OK} counts only once the server has proved it holds the service key and
    the security layers are agreed.
    """

    name = "GSSAPI"

    def __init__(self, hostname: str, authzid: str = "") -> None:
        """
        @param hostname: The server's name: the ticket is for C{pop@hostname}.
        @param authzid: The authorization identity to ask for; empty for none.
        @raise ValueError: (L{GSSAPIUnavailable}, or a one-line message) when there is
            no usable ticket, python-gssapi is missing, or the KDC refuses.
        """
        try:
            gssapi = _gssapi()
        except GSSAPIUnavailable as e:
            raise ValueError(str(e)) from None
        self._authzid = authzid.encode("utf-8")
        self._complete = False
        self._layersDone = False
        flags = gssapi.RequirementFlag
        try:
            name = gssapi.Name(f"{SERVICE}@{hostname}", gssapi.NameType.hostbased_service)
            self._context = gssapi.SecurityContext(
                name=name,
                usage="initiate",
                flags=flags.mutual_authentication
                | flags.integrity
                | flags.out_of_sequence_detection,
            )
            self._first: bytes = self._context.step()
        except gssapi.exceptions.GSSError as e:
            raise ValueError(
                f"no Kerberos ticket for {SERVICE}/{hostname} ({_describe(e)}); run kinit"
            ) from None
        self._sentFirst = False

    @property
    def complete(self) -> bool:
        """
        Whether the server proved itself and the security layer is agreed.
        """
        return self._complete

    def initialResponse(self) -> bytes | None:
        """
        The first context token.
        """
        self._sentFirst = True
        return self._first

    def respond(self, challenge: bytes) -> bytes:
        """
        Answer a context token, then the security-layer offer.
        """
        from pop3kit.sasl import MalformedSASLChallenge

        gssapi = _gssapi()
        if not self._sentFirst:
            if challenge:
                raise MalformedSASLChallenge("unexpected GSSAPI challenge")
            return self.initialResponse() or b""
        if self._layersDone:
            raise MalformedSASLChallenge("unexpected GSSAPI challenge")
        try:
            if not self._context.complete:
                token = self._context.step(challenge) or b""
                _ = self._context.complete  # raises an error python-gssapi kept back
                return token
            if not challenge:
                return b""
            offer = self._context.unwrap(challenge).message
        except gssapi.exceptions.GSSError as e:
            raise AuthenticationFailed(f"GSSAPI: {_describe(e)}") from None
        if len(offer) != 4:
            raise MalformedSASLChallenge("malformed GSSAPI security-layer offer")
        if not offer[0] & NO_SECURITY_LAYER:
            raise MalformedSASLChallenge("the server requires a GSSAPI security layer")
        self._layersDone = self._complete = True
        choice: bytes = self._context.wrap(
            _layers(NO_SECURITY_LAYER, 0) + self._authzid, False
        ).message
        return choice
