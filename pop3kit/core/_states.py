"""
The states of a POP3 server session (RFC 1939 section 3, with the sub-states of SASL
exchanges, STLS and the answers the server works out with storage), and the one table of
transitions between them, from which the commands each state accepts derive.

The table is keyed, as h11's is, by the state and the type of what happens: a command
received (L{pop3kit.core.Retr}), a line received during a SASL exchange (its event,
L{pop3kit.core.SASLResponse}), or an outcome the server sends
(L{pop3kit.core.LoginAccepted}).  Besides the table, any state goes to L{State.CLOSED}
when the connection is lost, and AUTHORIZATION and TRANSACTION (and the login states) do
when the session reaches its limit of invalid commands or failed logins.
"""

from __future__ import annotations

from enum import Enum

from pop3kit.core._commands import (
    Apop,
    Auth,
    Capa,
    Command,
    Dele,
    Lang,
    List,
    Noop,
    Pass,
    Quit,
    Retr,
    Rset,
    Stat,
    Stls,
    Top,
    Uidl,
    User,
    Utf8,
)
from pop3kit.core._replies import Err, Greeting
from pop3kit.core._serverevents import (
    BeginTLS,
    BodyFollows,
    BodySent,
    Evicted,
    Goodbye,
    InitialResponseRefused,
    LoginAccepted,
    LoginRefused,
    SASLAborted,
    SASLChallenge,
    SASLResponse,
)


class State(Enum):
    """
    A POP3 server session state.  AUTHORIZATION, TRANSACTION and UPDATE are RFC 1939's;
    the others are the moments in between, when the server, or during a SASL exchange the
    client, owes the next word.

    @cvar GREETING: Connected; the greeting is due.
    @cvar AUTHORIZATION: Waiting for a login command.
    @cvar LOGIN: The credentials of USER/PASS or APOP are being verified.
    @cvar SASL: A SASL exchange (AUTH) is under way and the server's next step is due: a
        challenge, or the verdict.
    @cvar SASL_RESPONSE: A SASL exchange is under way and the client's response to a
        challenge is due; lines received are responses, not commands.
    @cvar STLS: STLS was accepted and the answer that starts the TLS handshake is due;
        whatever was received after the STLS line came in the clear, and is discarded
        when the answer is sent.  (The handshake itself is the transport's business: a
        TLS transport delivers no data before it is done, and the adapter times it.)
    @cvar TRANSACTION: Logged in, waiting for a command.
    @cvar MESSAGE: RETR or TOP was accepted; the message is being opened.
    @cvar BODY: A message is being sent.
    @cvar UPDATE: QUIT after login: the marked messages are being removed.
    @cvar CLOSED: The session is over (QUIT answered, a limit reached, or the connection
        lost); nothing more is received or sent.
    """

    # Members are singletons compared by identity: hashing them by identity too keeps
    # the transition lookup made for every command and outcome cheap.
    __hash__ = object.__hash__

    GREETING = "GREETING"
    AUTHORIZATION = "AUTHORIZATION"
    LOGIN = "LOGIN"
    SASL = "SASL"
    SASL_RESPONSE = "SASL_RESPONSE"
    STLS = "STLS"
    TRANSACTION = "TRANSACTION"
    MESSAGE = "MESSAGE"
    BODY = "BODY"
    UPDATE = "UPDATE"
    CLOSED = "CLOSED"


def _all(state: State, kinds: tuple[type, ...], target: State) -> dict[tuple[State, type], State]:
    return {(state, kind): target for kind in kinds}


_AUTHORIZATION, _TRANSACTION = State.AUTHORIZATION, State.TRANSACTION
_BEFORE_LOGIN = (State.AUTHORIZATION, State.LOGIN, State.SASL, State.SASL_RESPONSE, State.STLS)

#: Every transition of a server session: C{(state, type of what happens) -> next state}.
#: A command received in a state with no entry for its type is not valid there.
TRANSITIONS: dict[tuple[State, type], State] = {
    (State.GREETING, Greeting): _AUTHORIZATION,
    **_all(_AUTHORIZATION, (User, Utf8, Lang, Capa), _AUTHORIZATION),
    **_all(_AUTHORIZATION, (Pass, Apop), State.LOGIN),
    (_AUTHORIZATION, Auth): State.SASL,
    (_AUTHORIZATION, Stls): State.STLS,
    (_AUTHORIZATION, Quit): State.CLOSED,
    (State.LOGIN, LoginAccepted): _TRANSACTION,
    (State.LOGIN, LoginRefused): _AUTHORIZATION,
    (State.SASL, SASLChallenge): State.SASL_RESPONSE,
    (State.SASL, LoginAccepted): _TRANSACTION,
    (State.SASL, LoginRefused): _AUTHORIZATION,
    (State.SASL, InitialResponseRefused): _AUTHORIZATION,
    (State.SASL_RESPONSE, SASLResponse): State.SASL,
    (State.SASL_RESPONSE, SASLAborted): _AUTHORIZATION,
    (State.STLS, BeginTLS): _AUTHORIZATION,
    **_all(_TRANSACTION, (Stat, List, Dele, Noop, Rset, Uidl, Lang, Capa), _TRANSACTION),
    **_all(_TRANSACTION, (Retr, Top), State.MESSAGE),
    (_TRANSACTION, Quit): State.UPDATE,
    (State.MESSAGE, BodyFollows): State.BODY,
    (State.MESSAGE, Err): _TRANSACTION,
    (State.BODY, BodySent): _TRANSACTION,
    (State.UPDATE, Goodbye): State.CLOSED,
    **{(state, Evicted): State.CLOSED for state in _BEFORE_LOGIN},
}

#: The commands each state accepts, from L{TRANSITIONS}.  C{PASS} further needs a
#: preceding C{USER}.
LEGAL_COMMANDS: dict[State, frozenset[type[Command]]] = {
    state: frozenset(
        kind for (source, kind) in TRANSITIONS if source is state and issubclass(kind, Command)
    )
    for state in State
}


def isLegal(state: State, command: Command) -> bool:
    """
    Whether C{command} may be issued in C{state}.
    """
    return type(command) in LEGAL_COMMANDS[state]
