"""
The server side of a POP3 session without I/O: octets in, events and octets out.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

from pop3kit.core._capabilities import Capabilities
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
    decodeBase64,
    parseCommand,
)
from pop3kit.core._errors import (
    AuthenticationFailed,
    IllegalCommand,
    LocalProtocolError,
    POP3Error,
    RemoteProtocolError,
    ResponseCode,
)
from pop3kit.core._framing import MAX_COMMAND_LINE, LineFramer, LineTooLong
from pop3kit.core._maildrop import MaildropView
from pop3kit.core._replies import Err, Greeting
from pop3kit.core._responses import continuation, err, errorResponse, multiline, ok
from pop3kit.core._serverevents import (
    APOPLogin,
    BeginTLS,
    BodyFollows,
    BodySent,
    Evicted,
    Expunge,
    Goodbye,
    InitialResponseRefused,
    LoginAccepted,
    LoginRefused,
    Outcome,
    PasswordLogin,
    Retrieve,
    SASLAborted,
    SASLChallenge,
    SASLLogin,
    SASLResponse,
    ServerEvent,
    StartTLS,
)
from pop3kit.core._states import TRANSITIONS, State

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

# Answers that never change, formatted once.
_SEND_PASS = ok("send PASS")
_NOOP = ok()
_BYE = ok("bye")
_BEGIN_TLS = ok("begin TLS negotiation")
_TOP_FOLLOWS = ok("top of message follows")
_UID_LISTING = ok("unique-id listing follows")
_CAPABILITIES = ok("capability list follows")
_TOO_MANY_BAD = err("too many invalid commands, closing the connection")
_CANCELLED = err("authentication cancelled")
_EVICTED = err("too many connections waiting to log in, try again later", ResponseCode.SYS_TEMP)
_START_TLS = StartTLS()

#: What TRANSACTION's commands read before login (the table never lets them run then).
_NO_MESSAGES = MaildropView(())

_AUTHORIZATION = State.AUTHORIZATION
_TRANSACTION = State.TRANSACTION
_SASL_RESPONSE = State.SASL_RESPONSE
_CLOSED = State.CLOSED


def _summary(maildrop: MaildropView) -> bytes:
    """
    The positive answer to a login and to RSET: the maildrop's size.
    """
    return b"+OK maildrop has %d messages (%d octets)\r\n" % maildrop.stat()


class ServerConnection:
    """
    One POP3 session as seen by the server: framing, parsing, the state machine of
    L{pop3kit.core.TRANSITIONS}, and every reply's wording.

    The I/O adapter feeds received octets to L{receiveData} (and calls L{connectionLost}
    when the connection is gone), then calls L{nextEvent} until it returns L{None}.  The
    core answers most commands itself (STAT, LIST, UIDL, DELE, RSET, NOOP, CAPA, USER,
    UTF8, LANG, and every invalid or illegal command): those answers wait in
    L{dataToSend}, which the adapter writes before acting on an event.  An event
    (L{pop3kit.core.ServerEvent}) asks for what the core cannot do without storage,
    credentials or TLS; the adapter reports how it went by passing an outcome
    (L{pop3kit.core.Outcome}) to L{send}, which returns the reply to write and moves the
    session on.  While the server owes a reply, L{nextEvent} returns L{None}, so answers
    stay in order however many commands a client pipelines.

    @ivar capabilities: What the server offers on this connection now.
    @ivar pendingUser: The name from an accepted USER that PASS may complete.
    @ivar maildrop: The session's L{MaildropView}, from login on.
    @ivar utf8: The client enabled UTF-8 mode with the UTF8 command.
    @ivar language: The tag of the language chosen with LANG.
    """

    # A logged-in idle connection costs a few KB; slots keep this part of it small.
    __slots__ = (
        "_badCommands",
        "_failedLogins",
        "_framer",
        "_lines",
        "_nextLine",
        "_out",
        "_retrieved",
        "_retrieving",
        "_state",
        "_timestamp",
        "_view",
        "capabilities",
        "language",
        "maildrop",
        "maxBadCommands",
        "maxFailedLogins",
        "maxLineLength",
        "pendingUser",
        "utf8",
    )

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
        self.pendingUser: str | None = None
        self.maildrop: MaildropView | None = None
        self._view = _NO_MESSAGES
        self.utf8 = False
        self.language = "en"
        self.maxLineLength = maxLineLength
        self.maxBadCommands = maxBadCommands
        self.maxFailedLogins = maxFailedLogins
        self._state = State.GREETING
        self._badCommands = 0
        self._failedLogins = 0
        self._timestamp: bytes | None = None
        self._retrieving: Retrieve | None = None
        # No set until a message is retrieved: an empty set costs 216 octets a session.
        self._retrieved: AbstractSet[str] = frozenset()
        self._framer = LineFramer(max(maxLineLength, maxSASLLineLength))
        # Received lines waiting, from _lines[_nextLine] on.  A list, not a deque: a
        # deque allocates a 64-slot block at once, about 600 octets for every connection.
        self._lines: list[bytes | LineTooLong] = []
        self._nextLine = 0
        self._out: list[bytes] = []

    @property
    def state(self) -> State:
        """
        The current L{State}.
        """
        return self._state

    @property
    def pendingLines(self) -> int:
        """
        How many received lines wait for L{nextEvent}.
        """
        return len(self._lines) - self._nextLine

    # Receiving

    def receiveData(self, data: bytes) -> None:
        """
        Feed received octets; complete lines wait for L{nextEvent}.
        """
        if self._state is not _CLOSED:
            self._lines.extend(self._framer.feed(data))

    def connectionLost(self) -> None:
        """
        The connection is gone (or going: the client stopped reading a message): the
        session is L{State.CLOSED}, and nothing received is processed any more.
        """
        self._close()

    def nextEvent(self) -> ServerEvent | None:
        """
        Handle received lines, answering what the core can answer (see L{dataToSend}),
        up to the first one the adapter must act on: return its event, or L{None} when
        no line is waiting or the server owes a reply (see L{state}).
        """
        while self._nextLine < len(self._lines):
            state = self._state
            if state is _SASL_RESPONSE:
                return self._saslLine(self._takeLine())
            if state is not _TRANSACTION and state is not _AUTHORIZATION:
                return None
            event = self._command(self._takeLine())
            if event is not None:
                return event
        return None

    def _takeLine(self) -> bytes | LineTooLong:
        """
        The first received line waiting; the list is emptied once all are taken.
        """
        lines = self._lines
        line = lines[self._nextLine]
        self._nextLine += 1
        if self._nextLine == len(lines):
            lines.clear()
            self._nextLine = 0
        return line

    def _dropLines(self) -> None:
        self._lines.clear()
        self._nextLine = 0

    def dataToSend(self) -> bytes:
        """
        The answers the core made by itself since the last call, to write now.
        """
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def _reply(self, data: bytes) -> None:
        self._out.append(data)

    def _close(self) -> None:
        self._state = _CLOSED
        self._dropLines()

    def _bad(self, error: POP3Error) -> None:
        self._badCommands += 1
        if self._badCommands >= self.maxBadCommands:
            self._reply(_TOO_MANY_BAD)
            self._close()
        else:
            self._reply(errorResponse(error))

    def _loginFailed(self, reply: bytes) -> bytes:
        self.pendingUser = None
        self._failedLogins += 1
        if self._failedLogins >= self.maxFailedLogins:
            self._close()
        else:
            self._state = _AUTHORIZATION
        return reply

    def _command(self, line: bytes | LineTooLong) -> ServerEvent | None:
        user, self.pendingUser = self.pendingUser, None
        if isinstance(line, LineTooLong) or (
            len(line) + 2 > self.maxLineLength and line[:5].upper() != b"AUTH "
        ):
            self._bad(RemoteProtocolError("command line too long"))
            return None
        try:
            command = parseCommand(line)
        except RemoteProtocolError as error:
            self._bad(error)
            return None
        except POP3Error as error:
            self._reply(errorResponse(error))
            return None
        kind = type(command)
        target = TRANSITIONS.get((self._state, kind))
        if target is None:
            self._bad(IllegalCommand())
            return None
        try:
            return _COMMANDS[kind](self, command, target, user)
        except POP3Error as error:
            self._reply(errorResponse(error))
            return None

    def _saslLine(self, line: bytes | LineTooLong) -> SASLResponse | SASLAborted:
        if line == b"*":
            self._state = _AUTHORIZATION
            self._reply(_CANCELLED)
            return SASLAborted(RemoteProtocolError("authentication cancelled"))
        try:
            if isinstance(line, LineTooLong):
                raise RemoteProtocolError("SASL response too long")
            data = decodeBase64(line)
        except RemoteProtocolError as error:
            # A malformed exchange: no credentials were judged, but it counts against
            # the session's failed logins.
            self._reply(self._loginFailed(errorResponse(error)))
            return SASLAborted(error)
        self._state = State.SASL
        return SASLResponse(data)

    # Commands, each called with its target state in TRANSITIONS and the USER name it
    # may complete.  Raising POP3Error answers -ERR without counting a bad command.

    def _user(self, command: User, target: State, user: str | None) -> None:
        capabilities = self.capabilities
        if not capabilities.user:
            raise RemoteProtocolError("USER is not available, use another login method")
        if not capabilities.passwordsAllowed:
            # Refused by policy, no password judged: counted as a bad command.
            self._bad(AuthenticationFailed(_PLAINTEXT_REFUSED))
            return
        self.pendingUser = command.name
        self._reply(_SEND_PASS)

    def _pass(self, command: Pass, target: State, user: str | None) -> PasswordLogin | None:
        if user is None:
            self._bad(IllegalCommand("PASS must follow USER"))
            return None
        self._state = target
        return PasswordLogin(user, command.password)

    def _apop(self, command: Apop, target: State, user: str | None) -> APOPLogin:
        if self._timestamp is None:
            raise RemoteProtocolError("APOP is not available, use another login method")
        self._state = target
        return APOPLogin(command.name, command.digest, self._timestamp)

    def _auth(self, command: Auth, target: State, user: str | None) -> SASLLogin | None:
        capabilities = self.capabilities
        if command.mechanism is None:
            mechanisms = [name.encode("ascii") for name in capabilities.mechanisms]
            self._reply(multiline(ok("SASL mechanisms follow"), mechanisms))
            return None
        if command.mechanism not in capabilities.sasl:
            raise RemoteProtocolError("unsupported SASL mechanism")
        if command.mechanism not in capabilities.mechanisms:
            if not capabilities.passwordsAllowed:
                self._bad(AuthenticationFailed(_PLAINTEXT_REFUSED))
                return None
            raise RemoteProtocolError("that SASL mechanism needs TLS")
        self._state = target
        return SASLLogin(command.mechanism, command.initialResponse)

    def _stls(self, command: Stls, target: State, user: str | None) -> StartTLS:
        if self.capabilities.tls:
            raise RemoteProtocolError("TLS is already active")
        if not self.capabilities.stls:
            raise RemoteProtocolError("STLS is not available")
        self._state = target
        return _START_TLS

    def _utf8(self, command: Utf8, target: State, user: str | None) -> None:
        if not self.capabilities.utf8:
            raise RemoteProtocolError("unknown command")
        self.utf8 = True
        self._reply(ok("UTF-8 mode enabled"))

    def _lang(self, command: Lang, target: State, user: str | None) -> None:
        if not self.capabilities.lang:
            raise RemoteProtocolError("unknown command")
        if command.tag is None:
            languages = [f"{tag} {name}".encode() for tag, name in LANGUAGES.items()]
            self._reply(multiline(ok("language listing follows"), languages))
            return
        tag = command.tag.lower()
        if tag == "*":
            tag = "en"
        else:
            tag = tag.partition("-")[0]
            if tag not in LANGUAGES:
                raise RemoteProtocolError("unsupported language")
        self.language = tag
        self._reply(ok(f"language changed to {tag}"))

    def _capa(self, command: Capa, target: State, user: str | None) -> None:
        self._reply(multiline(_CAPABILITIES, self.capabilities.lines(self._state)))

    def _quit(self, command: Quit, target: State, user: str | None) -> Expunge | None:
        if target is _CLOSED:
            # Before login: nothing to remove.
            self._reply(_BYE)
            self._close()
            return None
        self._state = target
        uids = self._view.deletedUids()
        expire = self.capabilities.expire
        if expire == 0:
            uids |= self._retrieved
        elif expire is not None:
            # EXPIRE n or NEVER: the retrieval is recorded, for a later session to expire.
            return Expunge(uids, frozenset(self._retrieved - uids))
        return Expunge(uids)

    # Commands of TRANSACTION, where the maildrop is set.

    def _stat(self, command: Stat, target: State, user: str | None) -> None:
        count, octets = self._view.stat()
        self._reply(b"+OK %d %d\r\n" % (count, octets))

    def _list(self, command: List, target: State, user: str | None) -> None:
        maildrop = self._view
        if command.message is not None:
            size = maildrop.get(command.message).size
            self._reply(b"+OK %d %d\r\n" % (command.message, size))
            return
        count, octets = maildrop.stat()
        status = b"+OK %d messages (%d octets)\r\n" % (count, octets)
        self._reply(status + maildrop.scanListing())

    def _uidl(self, command: Uidl, target: State, user: str | None) -> None:
        maildrop = self._view
        if command.message is not None:
            self._reply(ok(f"{command.message} {maildrop.get(command.message).uid}"))
            return
        self._reply(_UID_LISTING + maildrop.uidListing())

    def _dele(self, command: Dele, target: State, user: str | None) -> None:
        self._view.delete(command.message)
        self._reply(b"+OK message %d deleted\r\n" % command.message)

    def _rset(self, command: Rset, target: State, user: str | None) -> None:
        self._view.reset()
        self._reply(_summary(self._view))

    def _noop(self, command: Noop, target: State, user: str | None) -> None:
        self._reply(_NOOP)

    def _retrieve(self, command: Retr | Top, target: State, user: str | None) -> Retrieve:
        info = self._view.get(command.message)
        self._state = target
        event = Retrieve(info, command.lines if isinstance(command, Top) else None)
        self._retrieving = event
        return event

    # Outcomes

    def send(self, value: Outcome) -> bytes:
        """
        Report an outcome: return the octets to write (after any answers still waiting
        in L{dataToSend}, so that order is kept) and move to the next state.  Once the
        session is L{State.CLOSED}, outcomes are taken and nothing more is sent.

        @raise LocalProtocolError: for an outcome that does not fit the current state
            (L{pop3kit.core.TRANSITIONS}).
        """
        state = self._state
        if state is _CLOSED:
            return self.dataToSend()
        kind = type(value)
        target = TRANSITIONS.get((state, kind))
        if target is None:
            raise LocalProtocolError(f"cannot send {kind.__name__} in state {state.value}")
        data = _OUTCOMES[kind](self, value, target)
        if self._out:
            data = self.dataToSend() + data
        return data

    def _greeting(self, value: Greeting, target: State) -> bytes:
        self._timestamp = value.timestamp
        self._state = target
        return value.toBytes()

    def _loginAccepted(self, value: LoginAccepted, target: State) -> bytes:
        self.maildrop = self._view = value.maildrop
        if value.settings is not None:
            self.capabilities = self.capabilities.forUser(value.settings)
        self._state = target
        return _summary(value.maildrop)

    def _loginRefused(self, value: LoginRefused, target: State) -> bytes:
        return self._loginFailed(errorResponse(value.error))

    def _challenge(self, value: SASLChallenge, target: State) -> bytes:
        self._state = target
        return continuation(base64.b64encode(value.data))

    def _initialResponseRefused(self, value: InitialResponseRefused, target: State) -> bytes:
        self._state = target
        return err(f"{value.mechanism} does not take an initial response")

    def _beginTLS(self, value: BeginTLS, target: State) -> bytes:
        # Whatever the client sent after STLS came in the clear: it must never be
        # executed inside the TLS session (the STARTTLS injection class).
        self._dropLines()
        self._framer.reset()
        self.utf8 = False
        self.language = "en"
        self.capabilities = self.capabilities.secured()
        self._state = target
        return _BEGIN_TLS

    def _bodyFollows(self, value: BodyFollows, target: State) -> bytes:
        event = self._retrieving
        assert event is not None
        self._state = target
        if event.bodyLines is not None:
            return _TOP_FOLLOWS
        retrieved = self._retrieved
        if not isinstance(retrieved, set):
            retrieved = self._retrieved = set()
        retrieved.add(event.message.uid)
        return b"+OK %d octets\r\n" % event.message.size

    def _bodySent(self, value: BodySent, target: State) -> bytes:
        self._retrieving = None
        self._state = target
        return b""

    def _err(self, value: Err, target: State) -> bytes:
        self._retrieving = None
        self._state = target
        return value.toBytes()

    def _goodbye(self, value: Goodbye, target: State) -> bytes:
        self._close()
        if value.error is None:
            return _BYE
        # RFC 1939's words, with the backend's SYS code (TEMP unless it said PERM).
        permanent = value.error.code is ResponseCode.SYS_PERM
        code = ResponseCode.SYS_PERM if permanent else ResponseCode.SYS_TEMP
        return err("some deleted messages not removed", code)

    def _evicted(self, value: Evicted, target: State) -> bytes:
        self._close()
        return _EVICTED


_COMMANDS: dict[
    type[Command], Callable[[ServerConnection, Any, State, str | None], ServerEvent | None]
] = {
    User: ServerConnection._user,
    Pass: ServerConnection._pass,
    Apop: ServerConnection._apop,
    Auth: ServerConnection._auth,
    Stls: ServerConnection._stls,
    Utf8: ServerConnection._utf8,
    Lang: ServerConnection._lang,
    Capa: ServerConnection._capa,
    Quit: ServerConnection._quit,
    Stat: ServerConnection._stat,
    List: ServerConnection._list,
    Uidl: ServerConnection._uidl,
    Dele: ServerConnection._dele,
    Rset: ServerConnection._rset,
    Noop: ServerConnection._noop,
    Retr: ServerConnection._retrieve,
    Top: ServerConnection._retrieve,
}

_OUTCOMES: dict[type, Callable[[ServerConnection, Any, State], bytes]] = {
    Greeting: ServerConnection._greeting,
    LoginAccepted: ServerConnection._loginAccepted,
    LoginRefused: ServerConnection._loginRefused,
    SASLChallenge: ServerConnection._challenge,
    InitialResponseRefused: ServerConnection._initialResponseRefused,
    BeginTLS: ServerConnection._beginTLS,
    BodyFollows: ServerConnection._bodyFollows,
    BodySent: ServerConnection._bodySent,
    Err: ServerConnection._err,
    Goodbye: ServerConnection._goodbye,
    Evicted: ServerConnection._evicted,
}
