"""
What a L{pop3kit.core.ServerConnection} and its I/O adapter say to each other.

Events go from the core to the adapter: L{pop3kit.core.ServerConnection.nextEvent}
returns one when a received line needs storage, credentials or TLS, which a sans-IO core
does not have (a login, a SASL response, STLS, RETR or TOP, QUIT after login).  The core
answers everything else itself.

Outcomes go from the adapter to the core: L{pop3kit.core.ServerConnection.send} takes
one, formats the reply (the wording lives here, in the core) and moves the session to its
next state.  L{Greeting} and L{Err}, from the vocabulary both roles share, are outcomes
too.

Values holding secrets (passwords, digests, SASL data) keep them out of C{repr}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pop3kit.core._errors import POP3Error
from pop3kit.core._maildrop import MaildropView
from pop3kit.core._messages import MessageInfo
from pop3kit.core._replies import Err, Greeting

if TYPE_CHECKING:
    from pop3kit.core._capabilities import UserSettings

# Events: from the core to the adapter.


@dataclass(frozen=True, slots=True)
class PasswordLogin:
    """
    USER and PASS were accepted: verify the password and answer with L{LoginAccepted}
    or L{LoginRefused}.

    @ivar user: The name from USER, as sent (not yet prepared with SASLprep).
    @ivar password: The password from PASS, as sent.
    """

    user: str
    password: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class APOPLogin:
    """
    APOP was accepted: verify the digest against the greeting's timestamp and answer
    with L{LoginAccepted} or L{LoginRefused}.

    @ivar user: The name, as sent.
    @ivar digest: The hex digest, as sent.
    @ivar timestamp: The timestamp of the greeting this session sent, brackets included.
    """

    user: str
    digest: bytes = field(repr=False)
    timestamp: bytes


@dataclass(frozen=True, slots=True)
class SASLLogin:
    """
    AUTH with a mechanism the session offers: run the exchange, answering with
    L{SASLChallenge}s, then L{LoginAccepted} or L{LoginRefused}; or, for a server-first
    mechanism given an initial response, with L{InitialResponseRefused}.

    @ivar mechanism: The mechanism's name, upper case.
    @ivar initialResponse: The decoded initial response; L{None} if there was none,
        C{b""} for C{=}.
    """

    mechanism: str
    initialResponse: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SASLResponse:
    """
    The client's decoded answer to the last L{SASLChallenge}.

    @ivar data: The decoded response.
    """

    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SASLAborted:
    """
    The client ended the exchange: it cancelled with C{*}, or sent a line that is not a
    response (bad base64, too long).  The core has answered C{-ERR}; the adapter drops
    the exchange.

    @ivar error: Why, for the log.
    """

    error: POP3Error


@dataclass(frozen=True, slots=True)
class StartTLS:
    """
    STLS was accepted: send L{BeginTLS}, then start TLS on the transport at once.
    """


@dataclass(frozen=True, slots=True)
class Retrieve:
    """
    RETR or TOP of a message of the session: open it, then send L{BodyFollows}, the
    byte-stuffed body, and L{BodySent}; or L{Err} if it cannot be read.

    @ivar message: The message.
    @ivar bodyLines: For TOP, the number of body lines to send; L{None} for RETR.
    """

    message: MessageInfo
    bodyLines: int | None = None


@dataclass(frozen=True, slots=True)
class Expunge:
    """
    QUIT after login: the session is in UPDATE.  Remove these messages (none, perhaps),
    then send L{Goodbye}.

    @ivar uids: The unique-ids of the messages marked deleted and, when the server
        announces C{EXPIRE 0}, of the messages retrieved.
    @ivar retrieved: When the server announces C{EXPIRE} with a number of days or
        C{NEVER}, the unique-ids of the messages retrieved (RETR) and not removed, whose
        retrieval the server records; empty otherwise.
    """

    uids: frozenset[str]
    retrieved: frozenset[str] = frozenset()


ServerEvent = (
    PasswordLogin
    | APOPLogin
    | SASLLogin
    | SASLResponse
    | SASLAborted
    | StartTLS
    | Retrieve
    | Expunge
)


# Outcomes: from the adapter to the core.


@dataclass(frozen=True, slots=True)
class LoginAccepted:
    """
    The login succeeded and the maildrop is locked: C{+OK} with its size, and the
    session enters TRANSACTION.

    @ivar maildrop: The session's listing.
    @ivar settings: The LOGIN-DELAY and EXPIRE values in force for the user, which CAPA
        announces from now on; L{None} to keep the server's.
    """

    maildrop: MaildropView
    settings: UserSettings | None = None


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """
    The login failed: C{-ERR} with the error's code and text.  It counts towards the
    session's failed-login limit, at which the session is closed.

    @ivar error: Why (L{pop3kit.core.AuthenticationFailed}, L{pop3kit.core.MaildropInUse}
        ...).
    """

    error: POP3Error


@dataclass(frozen=True, slots=True)
class SASLChallenge:
    """
    A SASL challenge (the core base64-encodes it); the client's answer comes as a
    L{SASLResponse}.

    @ivar data: The decoded challenge, perhaps empty.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class InitialResponseRefused:
    """
    A server-first mechanism (CRAM-MD5) was given an initial response: C{-ERR}, no
    exchange took place, and no failed login is counted.

    @ivar mechanism: The mechanism's name.
    """

    mechanism: str


@dataclass(frozen=True, slots=True)
class BeginTLS:
    """
    Answer STLS: C{+OK}.  Everything received after the STLS line is discarded (it came
    in the clear and must never run inside TLS), and what the client said before it is
    forgotten; the session offers the capabilities of a secure connection.
    """


@dataclass(frozen=True, slots=True)
class BodyFollows:
    """
    The message of the L{Retrieve} was opened: the C{+OK} that starts its body.  The
    adapter sends the byte-stuffed body (L{pop3kit.core.MessageEncoder}) after it.
    """


@dataclass(frozen=True, slots=True)
class BodySent:
    """
    The body and its terminator have been written: the session takes the next command.
    """


@dataclass(frozen=True, slots=True)
class Goodbye:
    """
    The outcome of QUIT after login: C{+OK}, or C{-ERR} with a C{SYS} code when some
    messages could not be removed.  The session is then closed.

    @ivar error: Why removing failed (its code says C{SYS/PERM} or, otherwise,
        C{SYS/TEMP}), or L{None}.
    """

    error: POP3Error | None = None


@dataclass(frozen=True, slots=True)
class Evicted:
    """
    The session, not logged in yet, is closed to make room for newer connections
    (L{pop3kit.limits.ConnectionLimiter}): C{-ERR [SYS/TEMP]}.
    """


Outcome = (
    Greeting
    | LoginAccepted
    | LoginRefused
    | SASLChallenge
    | InitialResponseRefused
    | BeginTLS
    | BodyFollows
    | BodySent
    | Err
    | Goodbye
    | Evicted
)
