"""
The server side of a POP3 session without I/O: bytes in, commands and responses out.
"""

from __future__ import annotations

from collections import deque

from pop3kit.core._capabilities import Capabilities
from pop3kit.core._commands import (
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
    parseCommand,
)
from pop3kit.core._errors import IllegalCommand, POP3Error, RemoteProtocolError
from pop3kit.core._framing import MAX_COMMAND_LINE, LineFramer, LineTooLong
from pop3kit.core._maildrop import MaildropView
from pop3kit.core._responses import err, errorResponse, multiline, ok
from pop3kit.core._states import State, isLegal


def _summary(maildrop: MaildropView) -> bytes:
    """
    The positive answer to a login and to RSET: the maildrop's size.
    """
    count, octets = maildrop.stat()
    return ok(f"maildrop has {count} messages ({octets} octets)")


class ServerConnection:
    """
    One POP3 session as seen by the server: framing, parsing, the state machine and the
    answers that need no storage (STAT, LIST, UIDL, DELE, RSET, NOOP, CAPA).

    The I/O adapter feeds received octets to L{receiveData}, then calls L{nextEvent}, which
    returns, one line at a time, either a L{Command} the adapter must execute (USER/PASS or
    APOP login, RETR, TOP, QUIT) or C{bytes} to send as they are.  While a command is being
    executed the adapter stops calling L{nextEvent}, so answers stay in order however many
    commands a client pipelines.  It reports the outcome of a login with L{loggedIn} /
    L{loginFailed} and of QUIT with L{quit}.

    @ivar state: The current L{State}.
    @ivar pendingUser: The name from an accepted USER that PASS may complete.
    @ivar maildrop: The session's L{MaildropView}, from login on.
    """

    def __init__(self, capabilities: Capabilities, maxLineLength: int = MAX_COMMAND_LINE) -> None:
        self.capabilities = capabilities
        self.state = State.AUTHORIZATION
        self.pendingUser: str | None = None
        self.maildrop: MaildropView | None = None
        self._framer = LineFramer(maxLineLength)
        self._lines: deque[bytes | LineTooLong] = deque()

    def receiveData(self, data: bytes) -> None:
        """
        Feed received octets.  Complete lines wait for L{nextEvent}.
        """
        self._lines.extend(self._framer.feed(data))

    @property
    def pendingLines(self) -> int:
        """
        How many received command lines wait for L{nextEvent}.
        """
        return len(self._lines)

    def nextEvent(self) -> Command | bytes | None:
        """
        Handle the next received line: return a L{Command} for the adapter to execute, the
        bytes of a response that is already decided, or L{None} when no line is waiting.
        Nothing is returned once the session is in UPDATE.
        """
        if not self._lines or self.state is State.UPDATE:
            return None
        line = self._lines.popleft()
        if isinstance(line, LineTooLong):
            self.pendingUser = None
            return err("command line too long")
        return self.receiveLine(line)

    def receiveLine(self, line: bytes) -> Command | bytes:
        """
        Handle one command line (without its line end).
        """
        pendingUser, self.pendingUser = self.pendingUser, None
        try:
            command = parseCommand(line)
        except POP3Error as error:
            return errorResponse(error)
        if not isLegal(self.state, command):
            return errorResponse(IllegalCommand())
        if isinstance(command, Pass):
            if pendingUser is None:
                return errorResponse(IllegalCommand("PASS must follow USER"))
            self.pendingUser = pendingUser
        return self._answer(command)

    def _answer(self, command: Command) -> Command | bytes:
        try:
            return self._answerLocally(command)
        except POP3Error as error:
            return errorResponse(error)

    def _answerLocally(self, command: Command) -> Command | bytes:
        if isinstance(command, Quit):
            self.state = State.UPDATE
            return command
        if isinstance(command, Capa):
            return multiline(ok("capability list follows"), self.capabilities.lines(self.state))
        if self.maildrop is None:
            if isinstance(command, User):
                if not self.capabilities.user:
                    raise RemoteProtocolError("USER is not available, use another login method")
                self.pendingUser = command.name
                return ok("send PASS")
            return command
        maildrop = self.maildrop
        if isinstance(command, Stat):
            count, octets = maildrop.stat()
            return ok(f"{count} {octets}")
        if isinstance(command, List):
            if command.message is not None:
                return ok(f"{command.message} {maildrop.get(command.message).size}")
            count, octets = maildrop.stat()
            return ok(f"{count} messages ({octets} octets)") + maildrop.scanListing()
        if isinstance(command, Uidl):
            if command.message is not None:
                return ok(f"{command.message} {maildrop.get(command.message).uid}")
            return ok("unique-id listing follows") + maildrop.uidListing()
        if isinstance(command, Dele):
            maildrop.delete(command.message)
            return ok(f"message {command.message} deleted")
        if isinstance(command, Rset):
            maildrop.reset()
            return _summary(maildrop)
        if isinstance(command, Noop):
            return ok()
        if isinstance(command, Retr | Top):
            maildrop.get(command.message)
        return command

    def loggedIn(self, maildrop: MaildropView) -> bytes:
        """
        The login succeeded and the maildrop is locked: enter TRANSACTION.
        """
        self.pendingUser = None
        self.maildrop = maildrop
        self.state = State.TRANSACTION
        return _summary(maildrop)

    def loginFailed(self) -> None:
        """
        The login failed: stay in AUTHORIZATION and forget the USER name.
        """
        self.pendingUser = None

    def quit(self) -> frozenset[str]:
        """
        The unique-ids to expunge now that QUIT has put the session in UPDATE.
        """
        if self.maildrop is None:
            return frozenset()
        return self.maildrop.deletedUids()
