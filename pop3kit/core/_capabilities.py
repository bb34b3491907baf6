"""
The capabilities a server announces with CAPA (RFC 2449 section 6, RFC 3206).
"""

from __future__ import annotations

from dataclasses import dataclass

from pop3kit.core._states import State

#: EXPIRE's value for "messages are kept forever".
NEVER = "NEVER"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """
    What a server implements and has enabled; L{lines} renders the CAPA response.

    Everything announced in AUTHORIZATION is announced in TRANSACTION too (RFC 2449
    section 5).

    @ivar user: USER/PASS is available (a checker accepts plain passwords).
    @ivar loginDelay: The LOGIN-DELAY in seconds, or L{None} when not enforced.
    @ivar expire: The EXPIRE policy in days, L{NEVER}, or L{None} when not announced.
    @ivar implementation: The IMPLEMENTATION text, or L{None} to announce none.
    """

    user: bool = True
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

    def lines(self, state: State) -> list[bytes]:
        """
        The CAPA response lines for C{state}, without line ends.
        """
        tags = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.user:
            tags.insert(1, "USER")
        if self.loginDelay is not None:
            tags.append(f"LOGIN-DELAY {self.loginDelay}")
        if self.expire is not None:
            tags.append(f"EXPIRE {self.expire}")
        if self.implementation is not None:
            tags.append(f"IMPLEMENTATION {self.implementation}")
        return [tag.encode("utf-8") for tag in tags]
