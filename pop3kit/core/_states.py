"""
The POP3 session states (RFC 1939 section 3) and which commands each allows.
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


class State(Enum):
    """
    A POP3 session state.
    """

    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


#: The commands each state accepts.  C{PASS} further needs a preceding C{USER}.
LEGAL_COMMANDS: dict[State, frozenset[type[Command]]] = {
    State.AUTHORIZATION: frozenset({User, Pass, Apop, Auth, Stls, Utf8, Lang, Quit, Capa}),
    State.TRANSACTION: frozenset(
        {Stat, List, Retr, Dele, Noop, Rset, Top, Uidl, Lang, Quit, Capa},
    ),
    State.UPDATE: frozenset(),
}


def isLegal(state: State, command: Command) -> bool:
    """
    Whether C{command} may be issued in C{state}.
    """
    return type(command) in LEGAL_COMMANDS[state]
