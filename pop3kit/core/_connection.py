"""
The server side of a POP3 session without I/O: bytes in, commands and responses out.
"""

from __future__ import annotations

from collections import deque

from pop3kit.core._capabilities import Capabilities
from pop3kit.core._commands import (
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
    parseCommand,
)
from pop3kit.core._errors import (
    AuthenticationFailed,
    IllegalCommand,
    POP3Error,
    RemoteProtocolError,
)
from pop3kit.core._framing import MAX_COMMAND_LINE, LineFramer, LineTooLong
from pop3kit.core._maildrop import MaildropView
from pop3kit.core._responses import err, errorResponse, multiline, ok
from pop3kit.core._states import State, isLegal

#: The longest AUTH command line or SASL response line accepted, line end included.
#: RFC 5034 lets clients send long responses on continuation lines; SCRAM needs a few
#: hundred octets, and Dovecot accepts several kilobytes.
MAX_SASL_LINE = 8192

#: Invalid or illegal commands a session may send before it is closed.
MAX_BAD_COMMANDS = 10

#: Failed logins (USER/PASS, APOP or AUTH) one connection may make before it is closed.
MAX_FAILED_LOGINS = 3

#: The languages LANG offers (RFC 6856 section 3), by tag.
LANGUAGES: dict[str, str] = {"en": "English"}

_PLAINTEXT_REFUSED = "plaintext authentication disallowed on non-secure connections, use STLS"


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

    A SASL exchange (AUTH) is run by the adapter: between L{beginExchange} and
    L{endExchange}, received lines are the client's responses, taken with
    L{nextResponse}.  When STLS has been answered the adapter calls L{startedTLS}, which
    forgets everything received and learnt in the clear.

    @ivar state: The current L{State}.
    @ivar pendingUser: The name from an accepted USER that PASS may complete.
    @ivar maildrop: The session's L{MaildropView}, from login on.
    @ivar closing: The session must be closed once the last response is sent (too many
        bad commands or failed logins).
    @ivar utf8: The client enabled UTF-8 mode with the UTF8 command.
    @ivar language: The tag of the language chosen with LANG.
    """

    def __init__(
        self,
        capabilities: Capabilities,
        maxLineLength: int = MAX_COMMAND_LINE,
        *,
        maxSASLLineLength: int = MAX_SASL_LINE,
        maxBadCommands: int = MAX_BAD_COMMANDS,
        maxFailedLogins: int = MAX_FAILED_LOGINS,
    ) -> None:
        """
        @param capabilities: What the server offers on this connection now.
        @param maxLineLength: The longest command line, line end included.
        @param maxSASLLineLength: The longest AUTH line or SASL response line.
        @param maxBadCommands: Close the session at this many invalid commands.
        @param maxFailedLogins: Close the session at this many failed logins.
        """
        self.capabilities = capabilities
        self.state = State.AUTHORIZATION
        self.pendingUser: str | None = None
        self.maildrop: MaildropView | None = None
        self.closing = False
        self.utf8 = False
        self.language = "en"
        self.maxLineLength = maxLineLength
        self.maxBadCommands = maxBadCommands
        self.maxFailedLogins = maxFailedLogins
        self._badCommands = 0
        self._failedLogins = 0
        self._exchanging = False
        self._framer = LineFramer(max(maxLineLength, maxSASLLineLength))
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
        Nothing is returned once the session is in UPDATE or closing, nor during a SASL
        exchange.
        """
        if not self._lines or self.state is State.UPDATE or self.closing or self._exchanging:
            return None
        line = self._lines.popleft()
        if isinstance(line, LineTooLong):
            self.pendingUser = None
            return self._bad(RemoteProtocolError("command line too long"))
        return self.receiveLine(line)

    def receiveLine(self, line: bytes) -> Command | bytes:
        """
        Handle one command line (without its line end).
        """
        pendingUser, self.pendingUser = self.pendingUser, None
        if len(line) + 2 > self.maxLineLength and line[:5].upper() != b"AUTH ":
            return self._bad(RemoteProtocolError("command line too long"))
        try:
            command = parseCommand(line)
        except RemoteProtocolError as error:
            return self._bad(error)
        except POP3Error as error:
            return errorResponse(error)
        if not isLegal(self.state, command):
            return self._bad(IllegalCommand())
        if isinstance(command, Pass):
            if pendingUser is None:
                return self._bad(IllegalCommand("PASS must follow USER"))
            self.pendingUser = pendingUser
        return self._answer(command)

    def _bad(self, error: POP3Error) -> bytes:
        self._badCommands += 1
        if self._badCommands >= self.maxBadCommands:
            self.closing = True
            return err("too many invalid commands, closing the connection")
        return errorResponse(error)

    def _answer(self, command: Command) -> Command | bytes:
        try:
            return self._answerLocally(command)
        except POP3Error as error:
            return errorResponse(error)

    def _answerLocally(self, command: Command) -> Command | bytes:
        if isinstance(command, Quit):
            self.state = State.UPDATE
            return command
        capabilities = self.capabilities
        if isinstance(command, Capa):
            return multiline(ok("capability list follows"), capabilities.lines(self.state))
        if isinstance(command, Lang):
            return self._lang(command)
        if self.maildrop is None:
            return self._authorization(command)
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

    def _authorization(self, command: Command) -> Command | bytes:
        capabilities = self.capabilities
        if isinstance(command, User):
            if not capabilities.user:
                raise RemoteProtocolError("USER is not available, use another login method")
            if not capabilities.passwordsAllowed:
                # Refused by policy, no password judged: counted as a bad command.
                return self._bad(AuthenticationFailed(_PLAINTEXT_REFUSED))
            self.pendingUser = command.name
            return ok("send PASS")
        if isinstance(command, Auth):
            if command.mechanism is None:
                return multiline(
                    ok("SASL mechanisms follow"),
                    [name.encode("ascii") for name in capabilities.mechanisms],
                )
            if command.mechanism not in capabilities.sasl:
                raise RemoteProtocolError("unsupported SASL mechanism")
            if command.mechanism not in capabilities.mechanisms:
                if not capabilities.passwordsAllowed:
                    return self._bad(AuthenticationFailed(_PLAINTEXT_REFUSED))
                raise RemoteProtocolError("that SASL mechanism needs TLS")
            return command
        if isinstance(command, Stls):
            if capabilities.tls:
                raise RemoteProtocolError("TLS is already active")
            if not capabilities.stls:
                raise RemoteProtocolError("STLS is not available")
            return command
        if isinstance(command, Utf8):
            if not capabilities.utf8:
                raise RemoteProtocolError("unknown command")
            self.utf8 = True
            return ok("UTF-8 mode enabled")
        return command

    def _lang(self, command: Lang) -> bytes:
        if not self.capabilities.lang:
            raise RemoteProtocolError("unknown command")
        if command.tag is None:
            return multiline(
                ok("language listing follows"),
                [f"{tag} {name}".encode() for tag, name in LANGUAGES.items()],
            )
        tag = command.tag.lower()
        if tag != "*":
            tag = tag.partition("-")[0]
            if tag not in LANGUAGES:
                raise RemoteProtocolError("unsupported language")
        else:
            tag = "en"
        self.language = tag
        return ok(f"language changed to {tag}")

    # SASL exchanges and TLS

    def beginExchange(self) -> None:
        """
        A SASL exchange starts: received lines are responses for L{nextResponse}.
        """
        self._exchanging = True

    def nextResponse(self) -> bytes | LineTooLong | None:
        """
        The next received SASL response line (without its line end), a L{LineTooLong}
        marker, or L{None} when none is waiting.
        """
        if not self._lines:
            return None
        return self._lines.popleft()

    def endExchange(self) -> None:
        """
        The SASL exchange is over: received lines are commands again.
        """
        self._exchanging = False

    def startedTLS(self) -> None:
        """
        STLS was answered and the TLS handshake starts: discard everything received in
        the clear after the STLS line (it must never run inside the TLS session), forget
        what the client said before it, and offer the capabilities of a secure session.
        """
        self._lines.clear()
        self._framer.reset()
        self.pendingUser = None
        self.utf8 = False
        self.language = "en"
        self.capabilities = self.capabilities.secured()

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
        The login failed: stay in AUTHORIZATION and forget the USER name.  At
        C{maxFailedLogins} failures the session is marked L{closing}.
        """
        self.pendingUser = None
        self._failedLogins += 1
        if self._failedLogins >= self.maxFailedLogins:
            self.closing = True

    def quit(self) -> frozenset[str]:
        """
        The unique-ids to expunge now that QUIT has put the session in UPDATE.
        """
        if self.maildrop is None:
            return frozenset()
        return self.maildrop.deletedUids()
