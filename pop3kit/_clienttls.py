"""
Why the client refused a server's certificate, as a type: the OpenSSL verification code of
the first check that failed, turned into a L{CertificateRejected} subclass.

OpenSSL reports a refused certificate as an C{SSL.Error} whose only content is the text
C{"certificate verify failed"}.  L{RecordingCreator} wraps the client's TLS options and
watches the verification of each connection; after a failed handshake,
L{rejectionOf} gives what was refused and why, for the L{TLSFailed
<pop3kit.client.TLSFailed>} to carry.
"""

from __future__ import annotations

from collections.abc import Callable
from weakref import WeakKeyDictionary

from OpenSSL import SSL, crypto
from service_identity import VerificationError
from service_identity.hazmat import DNS_ID, IPAddress_ID, verify_service_identity
from service_identity.pyopenssl import extract_patterns
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, ISystemHandle
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = [
    "CertificateNotYetValid",
    "CertificateRejected",
    "ExpiredCertificate",
    "RecordingCreator",
    "UntrustedCertificate",
    "rejectionOf",
]


class CertificateRejected(SSL.Error):
    """
    The server's certificate (or one of its chain) did not verify.

    @ivar verifyCode: OpenSSL's verification result (C{X509_V_ERR_...}).
    @ivar depth: Where in the chain: 0 for the server's own certificate.
    @ivar subject: The refused certificate's subject, or its issuer for an unknown
        authority, as RFC 4514 text.
    """

    def __init__(self, verifyCode: int, depth: int, subject: str) -> None:
        super().__init__(verifyCode, depth, subject)
        self.verifyCode = verifyCode
        self.depth = depth
        self.subject = subject

    def __str__(self) -> str:
        return (
            f"certificate verification failed (OpenSSL error {self.verifyCode}) for {self.subject}"
        )


class UntrustedCertificate(CertificateRejected):
    """
    The certificate chains to no trusted authority (an unknown or self-signed CA).
    """

    def __str__(self) -> str:
        return f"the certificate is not trusted (unknown CA: {self.subject})"


class ExpiredCertificate(CertificateRejected):
    """
    The certificate has expired.
    """

    def __str__(self) -> str:
        return f"the certificate of {self.subject} has expired"


class CertificateNotYetValid(CertificateRejected):
    """
    The certificate is not valid yet (or this host's clock is wrong).
    """

    def __str__(self) -> str:
        return f"the certificate of {self.subject} is not valid yet"


#: OpenSSL's C{X509_V_ERR_...} codes, by the type they become.
_KINDS: dict[int, type[CertificateRejected]] = {
    2: UntrustedCertificate,  # UNABLE_TO_GET_ISSUER_CERT
    18: UntrustedCertificate,  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: UntrustedCertificate,  # SELF_SIGNED_CERT_IN_CHAIN
    20: UntrustedCertificate,  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: UntrustedCertificate,  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    9: CertificateNotYetValid,  # CERT_NOT_YET_VALID
    10: ExpiredCertificate,  # CERT_HAS_EXPIRED
}

#: The codes whose message names the issuer rather than the certificate itself.
_ISSUER_CODES = frozenset({2, 20, 21})


def rejection(verifyCode: int, depth: int, certificate: crypto.X509) -> CertificateRejected:
    """
    The L{CertificateRejected} for OpenSSL's verification result C{verifyCode} on
    C{certificate}, at C{depth} in the chain.
    """
    parsed = certificate.to_cryptography()
    name = parsed.issuer if verifyCode in _ISSUER_CODES else parsed.subject
    subject = name.rfc4514_string()
    return _KINDS.get(verifyCode, CertificateRejected)(verifyCode, depth, subject)


# The first failed check of each connection's handshake.  Keyed weakly: an entry lives as
# long as its connection.
_rejections: WeakKeyDictionary[SSL.Connection, CertificateRejected] = WeakKeyDictionary()


def _verifier(
    tlsProtocol: TLSMemoryBIOProtocol, identity: DNS_ID | IPAddress_ID
) -> Callable[[SSL.Connection, crypto.X509, int, int, int], bool]:
    """
    The verification callback of one connection: what Twisted's client options check
    (OpenSSL's verdict on the chain, then the server's own certificate against the name
    with C{service_identity}, failing the handshake through
    L{TLSMemoryBIOProtocol.failVerification}), and the first failed check remembered.
    """

    def verify(
        connection: SSL.Connection, certificate: crypto.X509, code: int, depth: int, ok: int
    ) -> bool:
        if not ok and connection not in _rejections:
            _rejections[connection] = rejection(code, depth, certificate)
        if depth != 0:
            return bool(ok)
        try:
            verify_service_identity(extract_patterns(certificate), [identity], [])
        except VerificationError:
            tlsProtocol.failVerification(Failure())  # type: ignore[no-untyped-call]
            return False
        return bool(ok)

    return verify


@implementer(IOpenSSLClientConnectionCreator)
class RecordingCreator:
    """
    Client TLS options that verify the server's certificate as Twisted's
    C{optionsForClientTLS} does, and record why one was refused (see L{rejectionOf}).

    The connection's verification callback is replaced (pyOpenSSL offers no way to wrap
    the one Twisted installs), so the check of the name is done here too, with the same
    C{service_identity} calls.
    """

    def __init__(self, options: IOpenSSLClientConnectionCreator, hostname: str) -> None:
        """
        @param options: Twisted's client options for C{hostname}: the trust roots, the
            protocol versions, SNI.
        @param hostname: The DNS name or IP address the certificate must be valid for.
        """
        self._options = options
        self._identity: DNS_ID | IPAddress_ID
        if isIPAddress(hostname) or isIPv6Address(hostname):
            self._identity = IPAddress_ID(hostname)
        else:
            self._identity = DNS_ID(hostname)

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        """
        The wrapped options' connection, its verification watched.
        """
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        connection.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
            _verifier(tlsProtocol, self._identity),
        )
        return connection


def rejectionOf(transport: object) -> CertificateRejected | None:
    """
    Why the certificate was refused on C{transport}'s TLS connection (a
    L{TLSMemoryBIOProtocol}, or a TCP transport after C{startTLS()}), if it was, and its
    TLS options were a L{RecordingCreator}.
    """
    if not ISystemHandle.providedBy(transport):
        return None
    try:
        handle = transport.getHandle()
    except AttributeError:
        return None
    if not isinstance(handle, SSL.Connection):
        return None
    return _rejections.get(handle)
