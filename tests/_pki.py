"""
A throwaway public-key infrastructure for the TLS tests: a certificate authority, a server
certificate for C{localhost} and 127.0.0.1, and client certificates, made fresh in a
directory for each test run (nothing is committed to the repository).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_ONE_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """
    A certificate and its private key, as PEM files.

    @ivar certificate: The path of the certificate's PEM file.
    @ivar key: The path of the private key's PEM file (unencrypted).
    """

    certificate: str
    key: str

    def certificatePEM(self) -> bytes:
        """
        The certificate, PEM-encoded.
        """
        with open(self.certificate, "rb") as f:
            return f.read()


class PKI:
    """
    A certificate authority in a directory, issuing certificates into it.

    @ivar ca: The authority's own (self-signed) certificate and key.
    """

    def __init__(self, directory: str, name: str = "pop3kit test CA") -> None:
        """
        @param directory: Where the PEM files go; created if missing.
        @param name: The authority's common name.
        """
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + 30 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca = self._write("ca", self._certificate, self._key)

    def _write(
        self, name: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
    ) -> Issued:
        certificatePath = os.path.join(self.directory, f"{name}.crt")
        keyPath = os.path.join(self.directory, f"{name}.key")
        with open(certificatePath, "wb") as f:
            f.write(certificate.public_bytes(serialization.Encoding.PEM))
        with open(keyPath, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        os.chmod(keyPath, 0o600)
        return Issued(certificatePath, keyPath)

    def issue(
        self,
        name: str,
        *,
        hostnames: tuple[str, ...] = ("localhost",),
        addresses: tuple[str, ...] = ("127.0.0.1", "::1"),
        emails: tuple[str, ...] = (),
        client: bool = False,
        expired: bool = False,
    ) -> Issued:
        """
        Issue a certificate signed by this authority.

        @param name: The common name, also the file names' stem.
        @param hostnames: DNS names in the subjectAltName.
        @param addresses: IP addresses in the subjectAltName.
        @param emails: e-mail addresses (rfc822Name) in the subjectAltName.
        @param client: Issue a client certificate (extended key usage clientAuth) rather
            than a server one.
        @param expired: Make a certificate whose validity ended yesterday.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        if expired:
            notBefore, notAfter = now - 10 * _ONE_DAY, now - _ONE_DAY
        else:
            notBefore, notAfter = now - _ONE_DAY, now + 30 * _ONE_DAY
        names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        names += [x509.RFC822Name(e) for e in emails]
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(notBefore)
            .not_valid_after(notAfter)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return self._write(name, builder.sign(self._key, hashes.SHA256()), key)


@cache
def sharedPKI() -> tuple[PKI, Issued]:
    """
    One authority and one C{localhost} server certificate for the whole test run (key
    generation is cheap, but there is no need to repeat it), under the trial working
    directory.
    """
    pki = PKI(os.path.abspath("_pki"))
    return pki, pki.issue("localhost")
