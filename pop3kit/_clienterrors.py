"""
The errors of L{pop3kit.client}, which exports them (see its docstring for the tree).

They live here so that the client's private modules (the pipeline, the sinks, the login
policy) can raise them without importing L{pop3kit.client}.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionLost
from twisted.internet.error import TimeoutError as _TimeoutError

from pop3kit.errors import POP3Error, ResponseCode


class ServerError(POP3Error):
    """
    The server answered C{-ERR}.

    @ivar code: The L{ResponseCode} the answer carried (for an unknown hierarchical code,
        its longest known ancestor), or L{None}.
    @ivar rawCode: The response code exactly as sent, without brackets, or L{None}.
    @ivar text: The text after the indicator and the code.
    @ivar command: The command line that was answered, without CRLF, with secrets
        (passwords, APOP digests, SASL data) replaced by C{<redacted>}.
    """

    def __init__(
        self,
        text: str,
        code: ResponseCode | None = None,
        command: bytes = b"",
        rawCode: str | None = None,
    ) -> None:
        super().__init__(text, code)
        self.command = command
        self.rawCode = rawCode

    def __str__(self) -> str:
        command = self.command.decode("ascii", "replace")
        code = f"[{self.rawCode}] " if self.rawCode else ""
        return f"{command}: -ERR {code}{self.text}"

    def __repr__(self) -> str:
        return f"ServerError({self.text!r}, code={self.code}, command={self.command!r})"


class ClientError(POP3Error):
    """
    Base class of the errors the client detects itself.
    """

    defaultText = "the POP3 client gave up"


class TLSUnavailable(ClientError):
    """
    TLS was required but the server does not offer STLS, or refused it.  The client closed
    the connection without sending credentials.
    """

    defaultText = "TLS is not available"


class TLSFailed(ConnectionLost, ClientError):
    """
    The TLS handshake failed (for example, the certificate did not verify for the host
    name) and the connection was closed.  A L{ConnectionLost} too.

    Its C{__cause__} says why, by type: a
    L{CertificateRejected <pop3kit._clienttls.CertificateRejected>} subclass carrying
    OpenSSL's verification code when the certificate chain was refused (with the options
    of L{tlsOptions <pop3kit.client.tlsOptions>}), a C{service_identity}
    C{VerificationError} for a certificate of another name, else the C{OpenSSL.SSL.Error}.
    """

    defaultText = "the TLS handshake failed"


class MechanismUnavailable(ClientError):
    """
    No login method that both sides support is allowed (for example, only clear-text
    methods are offered and the connection is not encrypted).
    """

    defaultText = "no usable login method"


class InvalidState(ClientError):
    """
    The method cannot be used in the session's current state (C{login} twice, C{startTLS}
    inside TLS, anything after C{quit}).
    """

    defaultText = "not possible in this state"


class ResponseTooLarge(ClientError):
    """
    A response collected in memory grew past the client's C{maxResponseSize}.  The rest
    of it was read and discarded; the session is still usable.  Stream big messages into
    a file or consumer with L{POP3Client.retrieve <pop3kit.client.POP3Client.retrieve>}
    instead.
    """

    defaultText = "response too large"


class ServerStalled(ClientError, _TimeoutError):
    """
    The server stopped making progress: an answer (the greeting, a status line, the TLS
    handshake after C{STLS}, a SASL step) was not complete within the client's
    C{responseTimeout}, or the body of a multi-line answer arrived slower than its
    C{minimumRate}.  A server that trickles an answer one octet at a time never trips an
    inactivity timeout; this catches it (and a silent server too, when C{responseTimeout}
    is the shorter).  The client closed the connection without C{QUIT}, so nothing marked
    for deletion was deleted.  Also a L{twisted.internet.error.TimeoutError}, as the
    inactivity timeout raises.
    """

    defaultText = "the server stopped making progress"

    def __str__(self) -> str:
        return self.text


class ListingTooLarge(ClientError):
    """
    A listing (C{LIST}, C{UIDL} or C{CAPA} without an argument) had more entries or octets
    than the client's C{maxListingEntries} or C{maxListingOctets}: the server may be
    sending it without end.  The client closed the connection without C{QUIT}, so nothing
    marked for deletion was deleted.
    """

    defaultText = "listing too large"
