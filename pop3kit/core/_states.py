"""
The POP3 session states (RFC 1939 section 3) and which commands each allows.
"""

from __future__ import annotations

from enum import Enum

from pop3kit.core._commands import (
    Apop,
    Capa,
    Command,
    Dele,
    List,
    Noop,
    Pass,
    Quit,
    Retr,
    Rset,
    Stat,
    Top,
    Uidl,
    User,
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
    State.AUTHORIZATION: frozenset({User, Pass, Apop, Quit, Capa}),
    State.TRANSACTION: frozenset(
        {Stat, List, Retr, Dele, Noop, Rset, Top, Uidl, Quit, Capa},
    ),
    State.UPDATE: frozenset(),
}


def isLegal(state: State, command: Command) -> bool:
    """
    Whether C{command} may be issued in C{state}.
    """
    return type(command) in LEGAL_COMMANDS[state]
