"""
The server's policy as one value: L{ServerPolicy}, checked once, when it is made.

C{twistd pop3kit} builds one from its options, and L{pop3kit.server.POP3ServerFactory}
takes one::

    policy = ServerPolicy(timeout=900, allowCleartext="never", loginDelay=300)
    factory = POP3ServerFactory(portal, policy=policy)
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Literal

from pop3kit.core import (
    DEFAULT_SASL_MECHANISMS,
    MAX_COMMAND_LINE,
    SASL_MECHANISMS,
    Capabilities,
    Credential,
    loginMethod,
)
from pop3kit.core._connection import MAX_BAD_COMMANDS, MAX_FAILED_LOGINS, MAX_SASL_LINE
from pop3kit.limits import (
    DEFAULT_FAILED_LOGIN_DELAY,
    DEFAULT_LOGIN_GRACE,
    DEFAULT_LOGIN_WINDOW,
    DEFAULT_MAX_FAILED_LOGIN_DELAY,
    DEFAULT_MAX_PER_CLIENT,
    DEFAULT_MAX_UNAUTHENTICATED,
)
from pop3kit.sasl import serverMechanism
from pop3kit.tls import HANDSHAKE_TIMEOUT

__all__ = [
    "CLEARTEXT_POLICIES",
    "MINIMUM_TIMEOUT",
    "CleartextPolicy",
    "InvalidPolicy",
    "ServerPolicy",
]

#: RFC 1939 section 3: an autologout timer must be at least 10 minutes.
MINIMUM_TIMEOUT = 600.0

CleartextPolicy = Literal["never", "loopback", "always"]
CleartextPolicy.__doc__ = """
When passwords may be sent before TLS is active (USER/PASS, SASL PLAIN and LOGIN):
C{"never"}, C{"loopback"} (from this host only) or C{"always"}.
"""

#: Every L{CleartextPolicy}.
CLEARTEXT_POLICIES: tuple[CleartextPolicy, ...] = ("never", "loopback", "always")


class InvalidPolicy(ValueError):
    """
    A L{ServerPolicy} field has a value the server cannot work with.

    @ivar field: The field's name, e.g. C{"timeout"}.
    @ivar requirement: What is wrong, worded to follow the field's name (or the name of
        the option that set it): C{"must be at least 600 seconds"}.
    """

    def __init__(self, field: str, requirement: str) -> None:
        super().__init__(f"{field} {requirement}")
        self.field = field
        self.requirement = requirement


@dataclass(frozen=True, kw_only=True)
class ServerPolicy:
    """
    How a POP3 server behaves: timeouts, limits, delays, login methods, and what CAPA
    announces.  Every field is checked when the value is made, so a server never starts
    with a setting it cannot honour.

    @ivar timeout: Seconds of inactivity before a session is closed (at least 600, as
        RFC 1939 requires).
    @ivar handshakeTimeout: Seconds a client has to complete a TLS handshake.
    @ivar failedLoginDelay: Seconds to wait before answering a client's first failed
        login; the delay doubles with each further failure from the same client address,
        up to C{maximumFailedLoginDelay}.  0 disables the delay.
    @ivar maximumFailedLoginDelay: The longest failed-login delay, in seconds.
    @ivar maxFailedLogins: Close a session after this many failed logins.
    @ivar maxBadCommands: Close a session after this many invalid commands.
    @ivar maxSASLLineLength: The longest C{AUTH} line or SASL response line accepted,
        line end included (other commands: 255 octets).
    @ivar maxUnauthenticated: The most connections waiting to log in, overall, before the
        longest idle one is closed, or the new one turned away when none is idle (see
        L{pop3kit.limits.ConnectionLimiter}).
    @ivar maxPerClient: The most I{idle} connections waiting to log in from one client
        address, before the longest idle one is closed; connections making progress are
        not counted, so a crowd behind one address can log in at once.
    @ivar loginGrace: Seconds a connection waiting to log in may go without progress (an
        answered command) before it counts as idle.
    @ivar loginWindow: Seconds from a connection's arrival during which its progress
        keeps it from counting as idle.
    @ivar allowCleartext: When passwords may be sent before TLS is active (USER/PASS, SASL
        PLAIN and LOGIN): C{"never"}, C{"loopback"} (connections from this host count as
        secure, as in Dovecot) or C{"always"}.
    @ivar sasl: The SASL mechanisms to offer, in the order CAPA lists them (kept as an
        upper-case tuple), each offered only when the portal can verify it (PLAIN and
        LOGIN: a checker of plain passwords; CRAM-MD5: one of hashed credentials; SCRAM: a
        checker providing L{pop3kit.interfaces.ISCRAMKeySource}; EXTERNAL: TLS with client
        certificates; GSSAPI: a L{pop3kit.checkers.kerberos.GSSAPIChecker}; OAUTHBEARER and
        XOAUTH2: a checker of L{pop3kit.checkers.oauth2.IBearerToken}, and TLS).
        L{None} for L{pop3kit.core.DEFAULT_SASL_MECHANISMS}, plus EXTERNAL with client
        certificates.
    @ivar loginDelay: Minimum seconds between two logins to one maildrop, announced as
        LOGIN-DELAY; L{None} for no limit.  Users may have values of their own
        (L{pop3kit.interfaces.IUserSettingsSource}).
    @ivar expire: Days retrieved messages are kept, or C{"NEVER"}, announced as EXPIRE;
        with 0, retrieved messages are removed at QUIT; with C{n} days, a later
        session's QUIT removes the messages retrieved more than C{n} days before (for
        mailboxes providing L{pop3kit.interfaces.IRetrievalLog}; others are announced
        C{EXPIRE NEVER} after login).  L{None} announces nothing.  Users may have values
        of their own (L{pop3kit.interfaces.IUserSettingsSource}).
    @ivar implementation: Text announced as IMPLEMENTATION; L{None} for none.
    @ivar apop: Offer APOP when the portal can check hashed credentials.
    @ivar apopHost: The host part of the APOP timestamp and of CRAM-MD5 challenges.
    """

    timeout: float = MINIMUM_TIMEOUT
    handshakeTimeout: float = HANDSHAKE_TIMEOUT
    failedLoginDelay: float = DEFAULT_FAILED_LOGIN_DELAY
    maximumFailedLoginDelay: float = DEFAULT_MAX_FAILED_LOGIN_DELAY
    maxFailedLogins: int = MAX_FAILED_LOGINS
    maxBadCommands: int = MAX_BAD_COMMANDS
    maxSASLLineLength: int = MAX_SASL_LINE
    maxUnauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED
    maxPerClient: int = DEFAULT_MAX_PER_CLIENT
    loginGrace: float = DEFAULT_LOGIN_GRACE
    loginWindow: float = DEFAULT_LOGIN_WINDOW
    allowCleartext: CleartextPolicy = "loopback"
    sasl: Sequence[str] | None = None
    loginDelay: int | None = None
    expire: int | str | None = None
    implementation: str | None = None
    apop: bool = False
    apopHost: str = "pop3kit"

    def __post_init__(self) -> None:
        """
        Normalise C{sasl} to an upper-case tuple, then check every field.

        @raise InvalidPolicy: (a L{ValueError}) naming the first field that is wrong.
        """
        if self.sasl is not None:
            object.__setattr__(self, "sasl", tuple(name.upper() for name in self.sasl))
        for name, isValid, requirement in _RULES:
            if not isValid(self):
                raise InvalidPolicy(name, requirement)
        unknown = sorted(set(self.sasl or ()) - set(SASL_MECHANISMS))
        if unknown:
            raise InvalidPolicy(
                "sasl",
                f"names unknown SASL mechanisms: {', '.join(unknown)} "
                f"(known: {', '.join(SASL_MECHANISMS)})",
            )
        # The announced values are checked by the capabilities that announce them.
        announced: tuple[tuple[str, Callable[[], Capabilities]], ...] = (
            ("loginDelay", lambda: Capabilities(loginDelay=self.loginDelay)),
            ("expire", lambda: Capabilities(expire=self.expire)),
            ("implementation", lambda: Capabilities(implementation=self.implementation)),
        )
        for name, announce in announced:
            try:
                announce()
            except ValueError as e:
                raise InvalidPolicy(name, f"is invalid: {e}") from None

    def mechanisms(self, clientCertificates: bool = False) -> tuple[str, ...]:
        """
        The SASL mechanisms configured, in order: C{sasl}, or the defaults, with
        EXTERNAL when client certificates are requested.
        """
        if self.sasl is not None:
            return tuple(self.sasl)
        if clientCertificates:
            return (*DEFAULT_SASL_MECHANISMS, "EXTERNAL")
        return DEFAULT_SASL_MECHANISMS

    def capabilities(
        self,
        verifiable: Container[Credential],
        *,
        secure: bool,
        canStartTLS: bool,
        local: bool,
        perUser: bool = False,
    ) -> Capabilities:
        """
        What a connection offers as it starts.

        @param verifiable: The kinds of credential the server's checkers can verify:
            USER is offered with passwords, each SASL mechanism with what it proves.
        @param secure: TLS is active on the connection.
        @param canStartTLS: A certificate is configured and the transport can start TLS:
            STLS is offered unless TLS is active.
        @param local: The client is on this host (loopback or a UNIX socket).
        @param perUser: Users may have LOGIN-DELAY and EXPIRE values of their own
            (announced with C{USER} before login).
        """
        certificates = Credential.CERTIFICATE in verifiable
        return Capabilities(
            user=Credential.PASSWORD in verifiable,
            sasl=tuple(
                name
                for name in self.mechanisms(certificates)
                if loginMethod(name).credential in verifiable
            ),
            stls=canStartTLS and not secure,
            tls=secure,
            cleartext=self.allowCleartext == "always"
            or (self.allowCleartext == "loopback" and local),
            loginDelay=self.loginDelay,
            expire=self.expire,
            implementation=self.implementation,
            perUser=perUser,
        )


def _validHost(policy: ServerPolicy) -> bool:
    try:
        # The host name goes into APOP and CRAM-MD5 challenges.
        serverMechanism("CRAM-MD5", hostname=policy.apopHost)
    except ValueError:
        return False
    return True


_RULES: tuple[tuple[str, Callable[[ServerPolicy], bool], str], ...] = (
    (
        "timeout",
        lambda p: p.timeout >= MINIMUM_TIMEOUT,
        f"must be at least {MINIMUM_TIMEOUT:g} seconds",
    ),
    ("handshakeTimeout", lambda p: p.handshakeTimeout > 0, "must be positive"),
    ("failedLoginDelay", lambda p: p.failedLoginDelay >= 0, "must not be negative"),
    ("maximumFailedLoginDelay", lambda p: p.maximumFailedLoginDelay >= 0, "must not be negative"),
    ("maxFailedLogins", lambda p: p.maxFailedLogins >= 1, "must be at least 1"),
    ("maxBadCommands", lambda p: p.maxBadCommands >= 1, "must be at least 1"),
    ("maxUnauthenticated", lambda p: p.maxUnauthenticated >= 1, "must be at least 1"),
    ("maxPerClient", lambda p: p.maxPerClient >= 1, "must be at least 1"),
    ("loginGrace", lambda p: p.loginGrace >= 0, "must not be negative"),
    ("loginWindow", lambda p: p.loginWindow >= 0, "must not be negative"),
    (
        "maxSASLLineLength",
        lambda p: p.maxSASLLineLength >= MAX_COMMAND_LINE,
        f"must be at least {MAX_COMMAND_LINE}",
    ),
    (
        "allowCleartext",
        lambda p: p.allowCleartext in CLEARTEXT_POLICIES,
        f"takes one of: {', '.join(CLEARTEXT_POLICIES)}",
    ),
    ("apopHost", _validHost, "cannot be the host part of a challenge"),
)
