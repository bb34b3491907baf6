"""
The capabilities a server announces with CAPA (RFC 2449 section 6, RFC 3206).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pop3kit.core._mechanisms import CLEARTEXT_MECHANISMS, TLS_MECHANISMS
from pop3kit.core._states import State

#: EXPIRE's value for "messages are kept forever".
NEVER = "NEVER"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """
    What a server implements and has enabled; L{lines} renders the CAPA response.

    Everything announced in AUTHORIZATION is announced in TRANSACTION too (RFC 2449
    section 5).  A value describes one connection at one moment: L{secured} gives the
    capabilities once TLS is active.

    @ivar user: USER/PASS is available (a checker accepts plain passwords).
    @ivar sasl: The SASL mechanisms the checkers can verify, in the order announced.
    @ivar stls: STLS can be offered (a certificate is configured and the transport can
        start TLS).
    @ivar tls: TLS is active on the connection.
    @ivar cleartext: Passwords may be sent in the clear (USER/PASS, SASL PLAIN and LOGIN)
        before TLS is active.
    @ivar utf8: The UTF8 command and UTF-8 user names are supported (RFC 6856).
    @ivar lang: The LANG command is supported (RFC 6856).
    @ivar loginDelay: The LOGIN-DELAY in seconds, or L{None} when not enforced.
    @ivar expire: The EXPIRE policy in days, L{NEVER}, or L{None} when not announced.
    @ivar implementation: The IMPLEMENTATION text, or L{None} to announce none.
    """

    user: bool = True
    sasl: tuple[str, ...] = ()
    stls: bool = False
    tls: bool = False
    cleartext: bool = True
    utf8: bool = True
    lang: bool = True
    loginDelay: int | None = None
    expire: int | str | None = None
    implementation: str | None = None

    def __post_init__(self) -> None:
        if self.loginDelay is not None and self.loginDelay < 0:
            raise ValueError("LOGIN-DELAY must not be negative")
        if isinstance(self.expire, int) and self.expire < 0:
            raise ValueError("EXPIRE must not be negative")
        if isinstance(self.expire, str) and self.expire != NEVER:
            raise ValueError(f"EXPIRE must be a number of days or {NEVER!r}")
        if self.implementation is not None and (
            not self.implementation or not self.implementation.isprintable()
        ):
            raise ValueError("IMPLEMENTATION must be printable, non-empty text")

    def secured(self) -> Capabilities:
        """
        These capabilities once TLS is active: no STLS, and cleartext logins allowed.
        """
        return replace(self, tls=True, stls=False)

    @property
    def passwordsAllowed(self) -> bool:
        """
        Whether passwords may be sent now: over TLS, or in the clear where allowed.
        """
        return self.tls or self.cleartext

    @property
    def userAvailable(self) -> bool:
        """
        Whether USER/PASS may be used now.
        """
        return self.user and self.passwordsAllowed

    @property
    def mechanisms(self) -> tuple[str, ...]:
        """
        The SASL mechanisms usable now, as CAPA's SASL line lists them.
        """
        return tuple(
            name
            for name in self.sasl
            if (self.passwordsAllowed or name not in CLEARTEXT_MECHANISMS)
            and (self.tls or name not in TLS_MECHANISMS)
        )

    def lines(self, state: State) -> list[bytes]:
        """
        The CAPA response lines for C{state}, without line ends.
        """
        tags = ["TOP"]
        if self.userAvailable:
            tags.append("USER")
        mechanisms = self.mechanisms
        if mechanisms:
            tags.append("SASL " + " ".join(mechanisms))
        if self.stls and not self.tls:
            tags.append("STLS")
        tags += ["UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.utf8:
            tags.append("UTF8 USER")
        if self.lang:
            tags.append("LANG")
        if self.loginDelay is not None:
            tags.append(f"LOGIN-DELAY {self.loginDelay}")
        if self.expire is not None:
            tags.append(f"EXPIRE {self.expire}")
        if self.implementation is not None:
            tags.append(f"IMPLEMENTATION {self.implementation}")
        return [tag.encode("utf-8") for tag in tags]
