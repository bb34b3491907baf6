"""
A local Sphinx extension that renders pop3kit's session states, command legality table
and CAPA response from the code, so the documentation cannot drift from what the server
does.

  - C{.. pop3kit-states::} renders a table of commands by session state from
    L{pop3kit.core.LEGAL_COMMANDS}, which derives from the transition table the server
    itself follows: RFC 1939's states and the sub-states of a SASL exchange and of STLS;
  - C{.. pop3kit-transitions::} renders that transition table,
    L{pop3kit.core.TRANSITIONS}, one row per state and what moves it on;
  - C{.. pop3kit-capa::} renders the CAPA responses of a server with the default options,
    from L{pop3kit.core.Capabilities}, which the server uses to answer CAPA.

pop3kit is imported from the source tree (its core needs only the standard library), so
the documentation builds without pop3kit being installed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes  # type: ignore[import-untyped]
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

_ROOT = Path(__file__).resolve().parent.parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from pop3kit.core import (  # noqa: E402
    DEFAULT_SASL_MECHANISMS,
    KEYWORDS,
    LEGAL_COMMANDS,
    TRANSITIONS,
    Capabilities,
    Command,
    SASLAborted,
    SASLResponse,
    State,
)

#: The lines of a SASL exchange, as the transition table names them.
_LINES: dict[type, str] = {
    SASLResponse: "line: a response (SASLResponse)",
    SASLAborted: "line: * or not a response (SASLAborted)",
}

#: The columns of the legality table: the states in which the client speaks, with the
#: names the documentation uses for the sub-states.
COLUMNS: dict[State, str] = {
    State.AUTHORIZATION: "AUTHORIZATION",
    State.SASL_RESPONSE: "SASL exchange",
    State.STLS: "STLS accepted",
    State.TRANSACTION: "TRANSACTION",
    State.UPDATE: "UPDATE",
}

#: The order of RFC 1939 section 9's summary, then the extensions; any other keyword the
#: parser knows comes after these, alphabetically.
_ORDER = (
    "USER",
    "PASS",
    "APOP",
    "QUIT",
    "STAT",
    "LIST",
    "RETR",
    "DELE",
    "NOOP",
    "RSET",
    "TOP",
    "UIDL",
    "CAPA",
)

_ALLOWED = "yes"
_REFUSED = "\N{EM DASH}"


def legalityRows() -> list[tuple[str, list[bool]]]:
    """
    One row per command keyword the parser knows: the keyword and, for each state of
    L{COLUMNS}, whether the command is legal in it.
    """
    legal = {
        state: {command.keyword for command in commands}
        for state, commands in LEGAL_COMMANDS.items()
    }
    known = set(KEYWORDS).union(*legal.values())
    ordered = [keyword for keyword in _ORDER if keyword in known]
    ordered += sorted(known.difference(_ORDER))
    return [(keyword, [keyword in legal[state] for state in COLUMNS]) for keyword in ordered]


def _happening(kind: type) -> str:
    """
    How the transition table's key reads: a command received, a line received during a
    SASL exchange, or an outcome the server sends.
    """
    if issubclass(kind, Command):
        return f"command {kind.keyword}"
    if kind in _LINES:
        return _LINES[kind]
    return f"outcome {kind.__name__}"


def transitionRows() -> list[tuple[str, str, str]]:
    """
    One row per transition, by state in definition order: the state, what happens, and
    the state it leads to.
    """
    order = list(State)
    rows = sorted(TRANSITIONS.items(), key=lambda item: order.index(item[0][0]))
    return [(state.value, _happening(kind), target.value) for (state, kind), target in rows]


def _table(header: list[str], rows: list[list[str]]) -> nodes.table:
    """
    A docutils table with one header row.
    """
    table = nodes.table(classes=["pop3kit-states"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)

    def row(cells: list[str], literalFirst: bool) -> nodes.row:
        result = nodes.row()
        for index, text in enumerate(cells):
            content: nodes.Node = (
                nodes.literal(text=text) if literalFirst and index == 0 else nodes.Text(text)
            )
            result += nodes.entry("", nodes.paragraph("", "", content))
        return result

    head = nodes.thead()
    head += row(header, literalFirst=False)
    group += head
    body = nodes.tbody()
    for cells in rows:
        body += row(cells, literalFirst=True)
    group += body
    return table


class StatesDirective(SphinxDirective):
    """
    C{.. pop3kit-states::}: the commands legal in each session state.
    """

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {}

    def run(self) -> list[nodes.Node]:
        """
        Render the table.
        """
        header = ["Command", *COLUMNS.values()]
        rows = [
            [keyword, *(_ALLOWED if allowed else _REFUSED for allowed in legal)]
            for keyword, legal in legalityRows()
        ]
        return [_table(header, rows)]


class TransitionsDirective(SphinxDirective):
    """
    C{.. pop3kit-transitions::}: every transition of a server session.
    """

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {}

    def run(self) -> list[nodes.Node]:
        """
        Render the table.
        """
        header = ["State", "On", "Next state"]
        return [_table(header, [list(row) for row in transitionRows()])]


class CapaDirective(SphinxDirective):
    """
    C{.. pop3kit-capa::}: the CAPA responses of a server with the default options and a
    TLS certificate, to a remote client before STLS and after it.
    """

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {}

    def run(self) -> list[nodes.Node]:
        """
        Render the two responses as literal blocks, each after a paragraph naming it.
        """
        before = Capabilities(sasl=DEFAULT_SASL_MECHANISMS, stls=True, cleartext=False)
        out: list[nodes.Node] = []
        for caption, capabilities in (
            ("Before STLS, from a remote address:", before),
            ("After STLS (or on an implicit-TLS port):", before.secured()),
        ):
            lines = [b"+OK capability list follows"]
            lines += capabilities.lines(State.AUTHORIZATION)
            lines.append(b".")
            text = "\n".join(line.decode("utf-8") for line in lines)
            out += [nodes.paragraph(caption, caption), nodes.literal_block(text, text)]
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    """
    Register the directives.
    """
    app.add_directive("pop3kit-states", StatesDirective)
    app.add_directive("pop3kit-transitions", TransitionsDirective)
    app.add_directive("pop3kit-capa", CapaDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
