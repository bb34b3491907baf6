"""
Errors of both roles: L{POP3Error} carries the text and RFC 2449 / RFC 3206 response code of
a C{-ERR} answer, and L{ProtocolError} splits, as in h11, into L{LocalProtocolError} (this
side tried to send something POP3 does not allow; nothing was sent) and
L{RemoteProtocolError} (the peer sent something malformed).  A server answers a
L{RemoteProtocolError} with C{-ERR}; a client closes the connection on one, since it can
no longer trust the session to be in step.
"""

from __future__ import annotations

from enum import Enum


class ResponseCode(Enum):
    """
    Extended response codes (RFC 2449 section 8, RFC 3206), spelled as on the wire.
    """

    IN_USE = "IN-USE"
    LOGIN_DELAY = "LOGIN-DELAY"
    AUTH = "AUTH"
    SYS_TEMP = "SYS/TEMP"
    SYS_PERM = "SYS/PERM"
    UTF8 = "UTF8"


class POP3Error(Exception):
    """
    A failure that is answered with C{-ERR}, optionally with a response code.

    @ivar text: Human-readable text sent after the status indicator.
    @ivar code: The extended response code, or L{None}.
    """

    defaultText = "command failed"
    defaultCode: ResponseCode | None = None

    def __init__(self, text: str | None = None, code: ResponseCode | None = None) -> None:
        self.text = self.defaultText if text is None else text
        self.code = self.defaultCode if code is None else code
        super().__init__(self.text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r}, code={self.code})"


class ProtocolError(POP3Error):
    """
    A violation of the POP3 protocol, by this side (L{LocalProtocolError}) or by the peer
    (L{RemoteProtocolError}).
    """

    defaultText = "protocol error"


class LocalProtocolError(ProtocolError, ValueError):
    """
    This side tried to send something POP3 does not allow (a command line over 255
    octets, an argument holding CR or LF); nothing was sent.  Also a L{ValueError}.
    """

    defaultText = "not a valid POP3 message"


class RemoteProtocolError(ProtocolError):
    """
    The peer sent something malformed: for a server, bad syntax, a bad argument or a line
    too long (answered with C{-ERR}); for a client, a response that is not POP3 (see
    L{ServerProtocolError}).
    """

    defaultText = "syntax error"


class IllegalCommand(RemoteProtocolError):
    """
    A well-formed command that is not allowed in the current state.
    """

    defaultText = "command not valid in this state"


class ServerProtocolError(RemoteProtocolError):
    """
    The L{RemoteProtocolError} a client sees: the server sent something a POP3 client
    cannot make sense of (no status indicator, a status line longer than the limit, bad
    base64 in a challenge).  The session cannot be trusted to stay in step after this:
    the client closes the connection.
    """

    defaultText = "the server broke the POP3 protocol"


class NoSuchMessage(POP3Error):
    """
    A message number that does not exist in this session, or is marked deleted.
    """

    defaultText = "no such message"


class MessageUnavailable(POP3Error):
    """
    A message listed at login that can no longer be read (it vanished from storage).
    """

    defaultText = "message is no longer available"


class AuthenticationFailed(POP3Error):
    """
    The credentials were refused.  The same text is used for an unknown user and a wrong
    password.
    """

    defaultText = "authentication failed"
    defaultCode = ResponseCode.AUTH


class MaildropInUse(POP3Error):
    """
    The credentials were right but another session holds the maildrop lock.
    """

    defaultText = "maildrop is locked by another session"
    defaultCode = ResponseCode.IN_USE


class LoginDelayed(POP3Error):
    """
    The user logged in again before the advertised LOGIN-DELAY had passed.
    """

    defaultText = "logged in too recently, try again later"
    defaultCode = ResponseCode.LOGIN_DELAY


class TemporaryFailure(POP3Error):
    """
    A temporary system problem (storage down, lock timeout); the client may retry later.
    """

    defaultText = "temporary system problem, try again later"
    defaultCode = ResponseCode.SYS_TEMP


class PermanentFailure(POP3Error):
    """
    A permanent system problem that needs an administrator.
    """

    defaultText = "permanent system problem"
    defaultCode = ResponseCode.SYS_PERM
