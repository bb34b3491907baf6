"""
The sans-IO POP3 core: command parsing, response formatting, line framing, byte-stuffing,
the session state machine and the session's view of a maildrop.

This package imports only the standard library, so it can be tested and fuzzed without
sockets or a reactor.
"""

from pop3kit.core._capabilities import NEVER, Capabilities
from pop3kit.core._commands import (
    KEYWORDS,
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
    parseCommand,
)
from pop3kit.core._connection import ServerConnection
from pop3kit.core._dotstuff import (
    MessageEncoder,
    MultilineDecoder,
    WireSizeCounter,
    canonicalForm,
    encodeLines,
    encodeMessage,
    wireSize,
)
from pop3kit.core._errors import (
    AuthenticationFailed,
    IllegalCommand,
    LoginDelayed,
    MaildropInUse,
    MessageUnavailable,
    NoSuchMessage,
    PermanentFailure,
    POP3Error,
    RemoteProtocolError,
    ResponseCode,
    TemporaryFailure,
)
from pop3kit.core._framing import MAX_COMMAND_LINE, LineFramer, LineTooLong
from pop3kit.core._maildrop import MaildropView
from pop3kit.core._messages import MAX_UID_LENGTH, MessageInfo, isValidUid
from pop3kit.core._responses import (
    MAX_RESPONSE_LINE,
    continuation,
    err,
    errorResponse,
    multiline,
    ok,
)
from pop3kit.core._states import LEGAL_COMMANDS, State, isLegal

__all__ = [
    "KEYWORDS",
    "LEGAL_COMMANDS",
    "MAX_COMMAND_LINE",
    "MAX_RESPONSE_LINE",
    "MAX_UID_LENGTH",
    "NEVER",
    "Apop",
    "AuthenticationFailed",
    "Capa",
    "Capabilities",
    "Command",
    "Dele",
    "IllegalCommand",
    "LineFramer",
    "LineTooLong",
    "List",
    "LoginDelayed",
    "MaildropInUse",
    "MaildropView",
    "MessageEncoder",
    "MessageInfo",
    "MessageUnavailable",
    "MultilineDecoder",
    "NoSuchMessage",
    "Noop",
    "POP3Error",
    "Pass",
    "PermanentFailure",
    "Quit",
    "RemoteProtocolError",
    "ResponseCode",
    "Retr",
    "Rset",
    "ServerConnection",
    "Stat",
    "State",
    "TemporaryFailure",
    "Top",
    "Uidl",
    "User",
    "WireSizeCounter",
    "canonicalForm",
    "continuation",
    "encodeLines",
    "encodeMessage",
    "err",
    "errorResponse",
    "isLegal",
    "isValidUid",
    "multiline",
    "ok",
    "parseCommand",
    "wireSize",
]
