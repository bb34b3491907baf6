"""
Tests for C{--listen ssl:PORT:privateKey=KEY:certKey=CERT}, the way Twisted users give TLS
to every twistd plugin: its certificate serves that listener, STLS on the others (unless
C{--no-stls}), and reloads on SIGHUP; a second, different certificate is refused.
"""

from __future__ import annotations

import io
import os
import shutil
from typing import Any, cast

from twisted.application.service import IService, MultiService
from twisted.internet import reactor as _reactor
from twisted.python import usage
from twisted.trial.unittest import TestCase

from pop3kit import tap
from pop3kit._listeners import Listener
from pop3kit.backends.maildir import deliver, mailboxPath
from pop3kit.client import POP3Client, connect
from pop3kit.tls import ServerTLS, TLSReloadService, certificateFilesOf
from tests._pki import sharedPKI
from tests.test_tap import parse

reactor: Any = _reactor


class CertificateFilesTests(TestCase):
    """
    L{certificateFilesOf} reads Twisted's C{ssl:} options as Twisted does.
    """

    def test_files(self) -> None:
        """
        C{certKey=} is the certificate, C{privateKey=} the key; either defaults as in
        Twisted (the key to C{server.pem}, the certificate to the key's file).
        """
        self.assertEqual(
            certificateFilesOf("ssl:995:privateKey=k.pem:certKey=c.pem"), ("c.pem", "k.pem")
        )
        self.assertEqual(certificateFilesOf("ssl:995:privateKey=both.pem"), ("both.pem",) * 2)
        self.assertEqual(certificateFilesOf("ssl:995:certKey=c.pem"), ("c.pem", "server.pem"))
        self.assertIsNone(certificateFilesOf("ssl:995"))
        self.assertIsNone(certificateFilesOf("tcp:110:privateKey=k.pem"))


class ListenCertificateTests(TestCase):
    """
    C{twistd pop3kit} takes its certificate from an C{ssl:} description.
    """

    timeout = 60

    def setUp(self) -> None:
        pki, self.issued = sharedPKI()
        self.pki = pki
        self.directory = os.path.abspath(self.mktemp())
        self.root = os.path.join(self.directory, "mail")
        os.makedirs(self.root)
        self.certificate = os.path.join(self.directory, "cert.pem")
        self.key = os.path.join(self.directory, "key.pem")
        shutil.copy(self.issued.certificate, self.certificate)
        shutil.copy(self.issued.key, self.key)
        self.ssl = f"ssl:0:interface=127.0.0.1:privateKey={self.key}:certKey={self.certificate}"

    def reloadServiceOf(self, service: IService) -> TLSReloadService:
        """
        The one L{TLSReloadService} of the C{twistd pop3kit} service.
        """
        [reload] = [
            child for child in cast(MultiService, service) if isinstance(child, TLSReloadService)
        ]
        return reload

    def options(self, *extra: str) -> tap.Options:
        """
        Options listening on a plain and an C{ssl:} port, the certificate given there.
        """
        return parse(
            *("--listen", "tcp:0:interface=127.0.0.1", "--listen", self.ssl),
            *("--auth", "memory:alice:secret", "--maildir-root", self.root),
            "--failed-login-delay",
            "0",
            *extra,
        )

    def test_certificateFromListen(self) -> None:
        """
        The certificate of the C{ssl:} description is the server's: it also serves STLS,
        and it is reloaded on SIGHUP.
        """
        options = self.options()
        tls = options["tls"]
        self.assertIsInstance(tls, ServerTLS)
        self.assertEqual((tls.certificatePath, tls.keyPath), (self.certificate, self.key))
        self.assertIs(tap.makeFactory(options).tls, tls)
        self.assertIs(self.reloadServiceOf(tap.makeService(options))._serverTLS, tls)

    def test_noSTLS(self) -> None:
        """
        With C{--no-stls}, the plain listeners offer no STLS.
        """
        options = self.options("--no-stls")
        self.assertIsNotNone(options["tls"])
        self.assertIsNone(tap.makeFactory(options).tls)

    def test_sameCertificateTwice(self) -> None:
        """
        The same files in C{--tls-certificate}/C{--tls-key} and in the description are
        fine.
        """
        options = self.options("--tls-certificate", self.certificate, "--tls-key", self.key)
        self.assertEqual(options["tls"].certificatePath, self.certificate)

    def test_conflictingCertificate(self) -> None:
        """
        A second, different certificate is refused, naming both.
        """
        other = self.pki.issue("other")
        error = self.assertRaises(
            usage.UsageError,
            self.options,
            *("--tls-certificate", other.certificate, "--tls-key", other.key),
        )
        self.assertIn("second certificate", str(error))
        self.assertIn(self.certificate, str(error))
        error = self.assertRaises(
            usage.UsageError,
            self.options,
            "--listen",
            f"ssl:0:privateKey={other.key}:certKey={other.certificate}",
        )
        self.assertIn("second certificate", str(error))

    def test_needsCertificate(self) -> None:
        """
        C{ssl:} without any certificate says both ways to give one.
        """
        error = self.assertRaises(usage.UsageError, parse, "--listen", "ssl:995")
        self.assertIn("privateKey=KEY.pem:certKey=CERT.pem", str(error))

    async def test_serves(self) -> None:
        """
        A client trusting the authority gets the greeting over implicit TLS on the
        C{ssl:} port and over STLS on the plain one, and after the files are replaced and
        reloaded, the new certificate.
        """
        deliver(mailboxPath(self.root, "alice"), io.BytesIO(b"hi\n"))
        service = tap.makeService(self.options())
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        plain, implicit = (
            child.port.getHost().port  # type: ignore[attr-defined]
            for child in cast(MultiService, service)
            if isinstance(child, Listener) and child.port is not None
        )
        ca = self.pki.ca.certificate

        async def session(port: int, tls: Any) -> bytes:
            client: POP3Client = await connect(
                reactor, "127.0.0.1", port, tls=tls, cafile=ca, timeout=20
            )
            try:
                self.assertTrue(client.isSecure)
                await client.login("alice", "secret")
                certificate: bytes = client.transport.getPeerCertificate().digest("sha256")  # type: ignore[union-attr]
                return certificate
            finally:
                await client.quit()

        first = await session(implicit, "implicit")
        self.assertEqual(await session(plain, "starttls"), first)

        renewed = self.pki.issue("localhost-renewed")
        shutil.copy(renewed.certificate, self.certificate)
        shutil.copy(renewed.key, self.key)
        self.assertTrue(self.reloadServiceOf(service)._serverTLS.reload())
        self.assertNotEqual(await session(implicit, "implicit"), first)
