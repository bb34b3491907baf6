"""
The one table of POP3 login methods: the SASL mechanisms (RFC 5034) and the two
RFC 1939 methods, USER/PASS and APOP, with what each needs and offers.

Every other list of mechanism names in pop3kit (the server's defaults, the names a
server or client implements, the clear-text set, the client's preference order, the
choices of C{pop3kit fetch --auth}) derives from L{LOGIN_METHODS}; add a mechanism here
and give it an implementation in L{pop3kit.sasl}, and the rest follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Credential(Enum):
    """
    What a login method proves, and so what a server's checkers must be able to verify.

    @cvar PASSWORD: The password itself reaches the server (USER/PASS, PLAIN, LOGIN): a
        checker of L{twisted.cred.credentials.IUsernamePassword}.
    @cvar HASHED: A digest of the password and a server challenge (APOP, CRAM-MD5): a
        checker of L{twisted.cred.credentials.IUsernameHashedPassword}, which needs the
        password stored reversibly.
    @cvar SCRAM: A SCRAM proof: a checker that also provides
        L{pop3kit.interfaces.ISCRAMKeySource}.
    @cvar CERTIFICATE: The TLS client certificate (EXTERNAL).
    @cvar KERBEROS: A Kerberos ticket (GSSAPI): a checker that also provides
        L{pop3kit._gssapi.IGSSAPIAcceptor}, which holds the service key.
    @cvar BEARER: An OAuth 2.0 access token (OAUTHBEARER, XOAUTH2): a checker of
        L{pop3kit._oauth2.IBearerToken}.
    """

    PASSWORD = "password"  # noqa: S105 (a kind of credential, not a password)
    HASHED = "hashed"
    SCRAM = "scram"
    CERTIFICATE = "certificate"
    KERBEROS = "kerberos"
    BEARER = "bearer"


@dataclass(frozen=True, slots=True)
class LoginMethod:
    """
    One way to log in.

    @ivar name: The name, as on the wire for SASL (C{"SCRAM-SHA-256"}), or C{"USER"} and
        C{"APOP"} for the RFC 1939 commands.
    @ivar sasl: A SASL mechanism, used through C{AUTH}.
    @ivar credential: What it proves; see L{Credential}.
    @ivar cleartext: It sends the password itself, so it is refused before TLS unless
        clear-text logins are allowed (RFC 2595 section 2.3, RFC 8314 section 4).
    @ivar needsTLS: Usable only inside TLS (EXTERNAL).
    @ivar serverDefault: A server offers it unless configured otherwise (when its
        checkers can verify it).
    @ivar clientRank: Its place in a client's automatic choice, lower is better; L{None}
        for methods a client uses only when asked to (APOP, EXTERNAL).
    """

    name: str
    sasl: bool
    credential: Credential
    cleartext: bool = False
    needsTLS: bool = False
    serverDefault: bool = False
    clientRank: int | None = None

    @property
    def option(self) -> str:
        """
        The name in lower case, as command-line options and L{pop3kit.client} spell it.
        """
        return self.name.lower()


#: Every login method pop3kit knows, strongest first.
LOGIN_METHODS: tuple[LoginMethod, ...] = (
    LoginMethod("GSSAPI", True, Credential.KERBEROS, serverDefault=True),
    LoginMethod("SCRAM-SHA-256", True, Credential.SCRAM, serverDefault=True, clientRank=0),
    LoginMethod("SCRAM-SHA-1", True, Credential.SCRAM, serverDefault=True, clientRank=1),
    LoginMethod("CRAM-MD5", True, Credential.HASHED, clientRank=2),
    LoginMethod(
        "PLAIN", True, Credential.PASSWORD, cleartext=True, serverDefault=True, clientRank=3
    ),
    LoginMethod(
        "LOGIN", True, Credential.PASSWORD, cleartext=True, serverDefault=True, clientRank=4
    ),
    LoginMethod("EXTERNAL", True, Credential.CERTIFICATE, needsTLS=True),
    # A bearer token is as good as a password to whoever sees it: only over TLS.
    LoginMethod(
        "OAUTHBEARER", True, Credential.BEARER, cleartext=True, needsTLS=True, serverDefault=True
    ),
    LoginMethod(
        "XOAUTH2", True, Credential.BEARER, cleartext=True, needsTLS=True, serverDefault=True
    ),
    LoginMethod("USER", False, Credential.PASSWORD, cleartext=True, clientRank=5),
    LoginMethod("APOP", False, Credential.HASHED),
)

_BY_NAME = {method.name: method for method in LOGIN_METHODS}


def loginMethod(name: str) -> LoginMethod:
    """
    The login method called C{name} (case-insensitive).

    @raise KeyError: for a name pop3kit does not know.
    """
    return _BY_NAME[name.upper()]


#: The SASL mechanism names, strongest first.
SASL_MECHANISMS: tuple[str, ...] = tuple(m.name for m in LOGIN_METHODS if m.sasl)

#: The SASL mechanisms that send the password itself.
CLEARTEXT_MECHANISMS: frozenset[str] = frozenset(
    m.name for m in LOGIN_METHODS if m.sasl and m.cleartext
)

#: The SASL mechanisms usable only inside TLS.
TLS_MECHANISMS: frozenset[str] = frozenset(m.name for m in LOGIN_METHODS if m.sasl and m.needsTLS)

#: The SASL mechanisms a server offers by default, strongest first, when its checkers can
#: verify them; EXTERNAL is added when TLS client certificates are requested.  CRAM-MD5,
#: like APOP, is offered only when asked for: it needs passwords stored reversibly.
DEFAULT_SASL_MECHANISMS: tuple[str, ...] = tuple(
    m.name for m in LOGIN_METHODS if m.sasl and m.serverDefault
)

#: The SASL mechanisms a client picks from with a password, best first: the first one the
#: server advertises.
CLIENT_PREFERENCE: tuple[str, ...] = tuple(
    m.name
    for m in sorted(LOGIN_METHODS, key=lambda m: m.clientRank or 0)
    if m.sasl and m.clientRank is not None
)

#: The login methods a client can use with a user name and a password, as options spell
#: them (lower case), strongest first: everything but EXTERNAL, which needs a certificate
#: (GSSAPI, among them, ignores the password: it uses the user's Kerberos ticket;
#: OAUTHBEARER and XOAUTH2 take an OAuth 2.0 access token as the password).
#: C{pop3kit.client.MECHANISMS} and the choices of C{pop3kit fetch --auth} are these.
PASSWORD_LOGINS: tuple[str, ...] = tuple(
    m.option for m in LOGIN_METHODS if m.credential is not Credential.CERTIFICATE
)
