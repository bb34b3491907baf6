"""
The client's login policy: which method to use, the commands each method sends, and the
client side of a SASL exchange.  Everything here derives from the one table of login
methods, L{pop3kit.core.LOGIN_METHODS}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred

from pop3kit import sasl
from pop3kit._clienterrors import MechanismUnavailable, ServerError
from pop3kit.core import (
    CLIENT_PREFERENCE,
    LOGIN_METHODS,
    Apop,
    Auth,
    Capabilities,
    Command,
    CommandTooLong,
    Pass,
    ServerProtocolError,
    User,
)
from pop3kit.core._mechanisms import PASSWORD_LOGINS
from pop3kit.sasl import ClientMechanism

#: The login methods L{POP3Client.login <pop3kit.client.POP3Client.login>} knows, lower
#: case (EXTERNAL, which needs no password, goes through C{authenticate}).
MECHANISMS = frozenset(PASSWORD_LOGINS)

#: The login methods that send the password itself: refused without TLS unless the client
#: allows clear-text logins (RFC 2595 section 2.3, RFC 8314 section 4).
CLEARTEXT_MECHANISMS = frozenset(method.option for method in LOGIN_METHODS if method.cleartext)


def bestMechanism(
    announced: Capabilities | None,
    *,
    passwordsAllowed: bool,
    preference: tuple[str, ...] = CLIENT_PREFERENCE,
    kerberos: bool = False,
) -> str:
    """
    The best login method both sides support: GSSAPI when the client has a Kerberos
    ticket and the server announces it, else the first SASL mechanism of C{preference}
    the server announces, then USER/PASS.

    @param announced: What the server's CAPA announced, L{None} when it announced nothing
        (no CAPA), in which case USER/PASS is assumed.
    @param passwordsAllowed: Whether methods that send the password itself may be used
        (TLS is active, or clear-text logins are allowed).
    @param kerberos: Whether the client has a usable Kerberos ticket.
    @return: The method's name, lower case.
    @raise MechanismUnavailable: when no allowed method is left.
    """
    offered = () if announced is None else announced.sasl
    if kerberos and "GSSAPI" in offered:
        return "gssapi"
    for name in preference:
        if name in offered and (passwordsAllowed or name.lower() not in CLEARTEXT_MECHANISMS):
            return name.lower()
    if announced is None or announced.user:
        if passwordsAllowed:
            return "user"
        raise MechanismUnavailable(
            "the server offers only clear-text logins and the connection is not encrypted"
        )
    raise MechanismUnavailable("the server offers no login method this client supports")


def checkMechanism(name: str, *, passwordsAllowed: bool) -> str:
    """
    C{name} in lower case, if this client knows it and may use it now.

    @raise MechanismUnavailable: otherwise.
    """
    method = name.lower()
    if method not in MECHANISMS:
        raise MechanismUnavailable(f"unknown login method {method!r}")
    if method in CLEARTEXT_MECHANISMS and not passwordsAllowed:
        raise MechanismUnavailable(
            f"refusing to send the password with {method.upper()} without TLS"
        )
    return method


def saslMechanism(
    name: str, username: str, password: str, authzid: str, hostname: str | None
) -> ClientMechanism:
    """
    Build a client mechanism with L{pop3kit.sasl.clientMechanism}.

    @raise MechanismUnavailable: when C{pop3kit.sasl} does not know C{name}, or cannot
        use these credentials with it (SCRAM with an authzid, a password SASLprep
        prohibits).
    """
    try:
        return sasl.clientMechanism(name, username, password, authzid=authzid, hostname=hostname)
    except ValueError as e:  # KeyError for an unknown name is a ValueError there too
        raise MechanismUnavailable(f"SASL {name} is not available: {e}") from None


def userPass(username: str, password: str) -> tuple[User, Pass]:
    """
    The C{USER} and C{PASS} commands, both checked before either is sent.

    @raise ValueError: for a name with spaces, or an empty one.
    @raise CommandTooLong: when either line would exceed 255 octets.
    """
    user = User(username)
    secret = Pass(password.encode("utf-8"))
    user.toLine()
    secret.toLine()
    return user, secret


def apop(username: str, password: str, timestamp: bytes) -> Apop:
    """
    The C{APOP} command: the name and the MD5 of the greeting's timestamp and the
    password (RFC 1939 section 7).
    """
    digest = hashlib.md5(  # noqa: S324 - APOP is defined with MD5 (RFC 1939 section 7)
        timestamp + password.encode("utf-8")
    ).hexdigest()
    command = Apop(username, digest.encode("ascii"))
    command.toLine()
    return command


class SASLExchange:
    """
    The client side of one C{AUTH} exchange (RFC 5034) with a L{ClientMechanism}.

    @ivar command: The C{AUTH} command: with the initial response when it fits in 255
        octets, without it otherwise (it then follows the server's empty challenge).
    """

    def __init__(self, mechanism: ClientMechanism) -> None:
        self.mechanism = mechanism
        name = mechanism.name.upper()
        initial = mechanism.initialResponse()
        self._pendingInitial: bytes | None = None
        self.command = Auth(name, initial)
        if initial is not None:
            try:
                self.command.toLine()
            except CommandTooLong:
                self.command, self._pendingInitial = Auth(name), initial

    @property
    def complete(self) -> bool:
        """
        Whether the mechanism may accept the server's C{+OK} now (SCRAM: only once the
        server proved that it knows the password).
        """
        return bool(getattr(self.mechanism, "complete", True))

    def respond(self, payload: bytes) -> bytes:
        """
        Answer a challenge, as sent (base64), with the base64 response line.

        @raise ServerProtocolError: when the challenge is not base64.
        @raise Exception: whatever the mechanism raises when it refuses the challenge.
        """
        try:
            challenge = base64.b64decode(payload, validate=True)
        except binascii.Error:
            raise ServerProtocolError("undecodable SASL challenge") from None
        if self._pendingInitial is not None:
            response, self._pendingInitial = self._pendingInitial, None
        else:
            response = self.mechanism.respond(challenge)
        return base64.b64encode(response)


@dataclass(frozen=True)
class LoginPlan:
    """
    The commands of one login, built and checked before any is sent.

    @ivar user: Who logs in (L{None}: as the SASL mechanism says), for the log.
    @ivar method: The login method, for the log.
    @ivar commands: What to send, in order.
    @ivar exchange: The SASL exchange of an C{AUTH}.
    """

    user: str | None
    method: str
    commands: tuple[Command, ...]
    exchange: SASLExchange | None = None

    @classmethod
    def make(
        cls,
        method: str,
        username: str,
        password: str,
        *,
        authzid: str = "",
        apopTimestamp: bytes | None = None,
        hostname: str | None = None,
    ) -> LoginPlan:
        """
        The plan for logging in as C{username} with C{method} (see L{checkMechanism}).

        @raise MechanismUnavailable: for APOP without a timestamp in the greeting, a SASL
            mechanism C{pop3kit.sasl} cannot use with these credentials.
        @raise ValueError: for a name with spaces, or empty.
        @raise CommandTooLong: when a command line would exceed 255 octets.
        """
        if method == "user":
            return cls(username, method, userPass(username, password))
        if method == "apop":
            if apopTimestamp is None:
                raise MechanismUnavailable("the greeting holds no APOP timestamp")
            return cls(username, method, (apop(username, password, apopTimestamp),))
        mechanism = saslMechanism(method.upper(), username, password, authzid, hostname)
        return cls.authenticate(username, mechanism)

    @classmethod
    def authenticate(cls, user: str | None, mechanism: ClientMechanism) -> LoginPlan:
        """
        The plan for a SASL login with C{mechanism}.
        """
        exchange = SASLExchange(mechanism)
        return cls(user, exchange.command.mechanism or "", (exchange.command,), exchange)

    async def run(
        self, send: Callable[[Command, SASLExchange | None], Deferred[None]], pipelining: bool
    ) -> None:
        """
        Send the commands with C{send}: all at once when pipelining, each after the
        previous answer otherwise.  The first failure is the login's.
        """
        try:
            if not pipelining:
                for command in self.commands:
                    await send(command, self.exchange)
                return
            answers = [send(command, self.exchange) for command in self.commands]
            for index, answer in enumerate(answers):
                try:
                    await answer
                except BaseException:
                    for later in answers[index + 1 :]:
                        later.addErrback(lambda failure: None)
                    raise
        except ServerError as e:
            raise self._explained(e) from None

    def _explained(self, error: ServerError) -> ServerError:
        """
        The server's C{-ERR}, with what the mechanism learnt of the refusal (the error
        JSON of OAUTHBEARER and XOAUTH2) added to its text.
        """
        detail = getattr(self.exchange.mechanism, "errorDetail", None) if self.exchange else None
        if not detail:
            return error
        return ServerError(f"{error.text}: {detail}", error.code, error.command, error.rawCode)
