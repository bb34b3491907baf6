"""
The client's default deadlines and caps against servers that misbehave, in a module of
their own so that the command line can show them without importing the client.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_LISTING_ENTRIES",
    "DEFAULT_MAX_LISTING_OCTETS",
    "DEFAULT_MINIMUM_RATE",
    "DEFAULT_RESPONSE_TIMEOUT",
]

#: The default deadline, in seconds, for an answer that is not a body (the greeting, a
#: status line, the TLS handshake after STLS, a SASL step), counted from when it is due:
#: when the answer before it is complete.  It is also the window over which a body's rate
#: is measured.
DEFAULT_RESPONSE_TIMEOUT = 30.0

#: The default minimum rate of a multi-line body, in octets per second, averaged over
#: each window of the response timeout: 1 KiB/s, far below the slowest mobile link, so a
#: large message over a slow link goes through while a server trickling its answer one
#: octet a second is cut off within one window.
DEFAULT_MINIMUM_RATE = 1024.0

#: The default cap on the lines of a listing (LIST, UIDL, CAPA): a million messages.
DEFAULT_MAX_LISTING_ENTRIES = 1_000_000

#: The default cap on the octets of a listing: 64 MiB, room for a million UIDL lines.
DEFAULT_MAX_LISTING_OCTETS = 64 * 1024 * 1024
