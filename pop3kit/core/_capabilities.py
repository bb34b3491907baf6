"""
The capabilities a server announces with CAPA (RFC 2449 section 6, RFC 3206).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from pop3kit.core._mechanisms import CLEARTEXT_MECHANISMS, TLS_MECHANISMS
from pop3kit.core._states import State

#: EXPIRE's value for "messages are kept forever".
NEVER = "NEVER"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """
    What a server implements and has enabled: L{lines} renders the CAPA response a server
    sends, and L{fromLines} reads the one a client receives.

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
    @ivar top: TOP is available.
    @ivar uidl: UIDL is available.
    @ivar respCodes: Extended response codes are sent (RESP-CODES).
    @ivar authRespCode: The AUTH response code is sent (AUTH-RESP-CODE, RFC 3206).
    @ivar pipelining: Commands may be pipelined (PIPELINING).
    @ivar perUser: LOGIN-DELAY and EXPIRE may differ per user: in AUTHORIZATION they are
        announced with the C{USER} argument after the server's default (RFC 2449
        sections 6.5 and 6.7); after login, the user's values replace them
        (L{forUser}).
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
    top: bool = True
    uidl: bool = True
    respCodes: bool = True
    authRespCode: bool = True
    pipelining: bool = True
    perUser: bool = False

    @classmethod
    def fromLines(cls, lines: Iterable[bytes]) -> Capabilities:
        """
        The capabilities a server announced, from the lines of its CAPA answer (without
        line ends).  Unknown tags and malformed values are ignored, as RFC 2449 asks;
        C{tls} is C{False} and C{cleartext} C{True}: they describe the connection, not
        the announcement, so the client decides them.
        """
        tags: dict[str, list[str]] = {}
        for line in lines:
            words = line.decode("utf-8", "replace").split()
            if words:
                tags[words[0].upper()] = words[1:]
        return cls(
            user="USER" in tags,
            sasl=tuple(word.upper() for word in tags.get("SASL", ())),
            stls="STLS" in tags,
            utf8="UTF8" in tags,
            lang="LANG" in tags,
            loginDelay=_number(tags.get("LOGIN-DELAY")),
            expire=_expire(tags.get("EXPIRE")),
            implementation=_printable(" ".join(tags.get("IMPLEMENTATION", ()))),
            top="TOP" in tags,
            uidl="UIDL" in tags,
            respCodes="RESP-CODES" in tags,
            authRespCode="AUTH-RESP-CODE" in tags,
            pipelining="PIPELINING" in tags,
            perUser=any(
                [word.upper() for word in tags.get(tag, [])[1:2]] == ["USER"]
                for tag in ("LOGIN-DELAY", "EXPIRE")
            ),
        )

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

    def forUser(self, settings: UserSettings) -> Capabilities:
        """
        These capabilities once a user has logged in: the LOGIN-DELAY and EXPIRE values
        in force for that user.
        """
        return replace(self, loginDelay=settings.loginDelay, expire=settings.expire)

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
        tags = ["TOP"] if self.top else []
        if self.userAvailable:
            tags.append("USER")
        mechanisms = self.mechanisms
        if mechanisms:
            tags.append("SASL " + " ".join(mechanisms))
        if self.stls and not self.tls:
            tags.append("STLS")
        flags = [
            (self.uidl, "UIDL"),
            (self.respCodes, "RESP-CODES"),
            (self.authRespCode, "AUTH-RESP-CODE"),
            (self.pipelining, "PIPELINING"),
        ]
        tags += [tag for enabled, tag in flags if enabled]
        if self.utf8:
            tags.append("UTF8 USER")
        if self.lang:
            tags.append("LANG")
        # RFC 2449 sections 6.5 and 6.7: USER only before login.
        user = " USER" if self.perUser and state is State.AUTHORIZATION else ""
        if self.loginDelay is not None:
            tags.append(f"LOGIN-DELAY {self.loginDelay}{user}")
        if self.expire is not None:
            tags.append(f"EXPIRE {self.expire}{user}")
        if self.implementation is not None:
            tags.append(f"IMPLEMENTATION {self.implementation}")
        return [tag.encode("utf-8") for tag in tags]


@dataclass(frozen=True, slots=True)
class UserSettings:
    """
    The LOGIN-DELAY and EXPIRE values in force for one user, announced by CAPA after
    login (see L{Capabilities.forUser}) and enforced by the server.

    @ivar loginDelay: Minimum seconds between two logins, or L{None} for no limit.
    @ivar expire: Days a retrieved message is kept, L{NEVER}, or L{None} to announce
        nothing; 0 removes retrieved messages at the end of the session.
    """

    loginDelay: int | None = None
    expire: int | str | None = None

    def __post_init__(self) -> None:
        Capabilities(loginDelay=self.loginDelay, expire=self.expire)


def _number(words: list[str] | None) -> int | None:
    """
    The first word as a non-negative number, or L{None}.
    """
    if not words or not words[0].isdigit():
        return None
    return int(words[0])


def _expire(words: list[str] | None) -> int | str | None:
    """
    EXPIRE's value: a number of days, L{NEVER}, or L{None}.
    """
    if words and words[0].upper() == NEVER:
        return NEVER
    return _number(words)


def _printable(text: str) -> str | None:
    """
    C{text} if it is non-empty and printable, else L{None}.
    """
    return text if text and text.isprintable() else None
