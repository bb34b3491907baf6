"""
Errors that become C{-ERR} responses; each carries its RFC 2449 / RFC 3206 response code.

Raise these from backends, checkers and realms: L{TemporaryFailure} becomes
C{-ERR [SYS/TEMP]}, L{PermanentFailure} C{-ERR [SYS/PERM]}, and so on.  Any other exception
is logged and answered with C{-ERR [SYS/TEMP]}.
"""

from pop3kit.core._errors import (
    AuthenticationFailed,
    IllegalCommand,
    LocalProtocolError,
    LoginDelayed,
    MaildropInUse,
    MessageUnavailable,
    NoSuchMessage,
    PermanentFailure,
    POP3Error,
    ProtocolError,
    RemoteProtocolError,
    ResponseCode,
    TemporaryFailure,
)

__all__ = [
    "AuthenticationFailed",
    "IllegalCommand",
    "LocalProtocolError",
    "LoginDelayed",
    "MaildropInUse",
    "MessageUnavailable",
    "NoSuchMessage",
    "POP3Error",
    "PermanentFailure",
    "ProtocolError",
    "RemoteProtocolError",
    "ResponseCode",
    "TemporaryFailure",
]
