"""
The sans-IO POP3 core: command parsing, response formatting, line framing, byte-stuffing,
the session state machine and the session's view of a maildrop.

This package imports only the standard library, so it can be tested and fuzzed without
sockets or a reactor.
"""

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
from pop3kit.core._messages import MAX_UID_LENGTH, MessageInfo, isValidUid

__all__ = [
    "AuthenticationFailed",
    "IllegalCommand",
    "LoginDelayed",
    "MAX_UID_LENGTH",
    "MaildropInUse",
    "MessageEncoder",
    "MessageInfo",
    "MessageUnavailable",
    "MultilineDecoder",
    "NoSuchMessage",
    "PermanentFailure",
    "POP3Error",
    "RemoteProtocolError",
    "ResponseCode",
    "TemporaryFailure",
    "WireSizeCounter",
    "canonicalForm",
    "encodeLines",
    "encodeMessage",
    "isValidUid",
    "wireSize",
]
