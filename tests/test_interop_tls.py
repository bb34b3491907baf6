"""
Interoperability over TLS with real clients against the real server on loopback: Python's
L{poplib} (STLS and implicit TLS), C{curl} (C{pop3://} with C{--ssl-reqd} and
C{pop3s://}, with its SASL mechanisms), C{openssl s_client}, and a C{twistd pop3kit}
process whose certificate is replaced and reloaded on SIGHUP.

Every client trusts only the throwaway authority of L{tests._pki} and checks the name
C{localhost}.  The in-process TLS tests are in L{tests.test_server_tls}.
"""

from __future__ import annotations

import os
import poplib
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import reactor as _reactor
from twisted.internet.defer import gatherResults
from twisted.internet.interfaces import IReactorTCP
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import TestCase

from pop3kit.tls import ServerTLS
from tests._oracle import crlfForm
from tests._pki import PKI, sharedPKI
from tests._tools import requireTool
from tests.test_interop_curl import CURLE_LOGIN_DENIED, SECRET
from tests.test_interop_poplib import FIXTURES, MaildirServer, listOne, received
from tests.test_server_loopback import LoopbackServer
from tests.test_server_tls import serverTLS
from tests.test_twistd import TWISTD, ServerProcess

reactor: IReactorTCP = _reactor  # type: ignore[assignment]

_T = TypeVar("_T")

#: curl's exit status when the server's certificate does not verify.
CURLE_PEER_FAILED_VERIFICATION = 60

#: The messages every session sees: LF, CRLF and dot-led lines.
MESSAGES = [FIXTURES["lf"], FIXTURES["crlf"], FIXTURES["dots"]]


def clientContext() -> ssl.SSLContext:
    """
    A client context that trusts only the test authority and checks host names.
    """
    pki, _ = sharedPKI()
    context = ssl.create_default_context(cafile=pki.ca.certificate)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


def peerCertificate(client: poplib.POP3) -> bytes:
    """
    The DER certificate the server presented to C{client}, which must be using TLS.
    """
    sock = client.sock
    assert isinstance(sock, ssl.SSLSocket)
    certificate = sock.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def listenImplicitTLS(testCase: TestCase, server: LoopbackServer, tls: ServerTLS) -> int:
    """
    Also listen on 127.0.0.1 with implicit TLS (RFC 8314) for C{server}'s factory, until
    the test ends.

    @return: The port number.
    """
    port = reactor.listenTCP(
        0,
        TLSMemoryBIOFactory(tls.contextFactory(), False, server.factory),  # type: ignore[arg-type]
        interface="127.0.0.1",
    )
    testCase.addCleanup(port.stopListening)
    return port.getHost().port  # type: ignore[attr-defined, no-any-return]


async def inThread(server: LoopbackServer, work: Callable[[], _T]) -> _T:
    """
    Run C{work} in a thread, then wait until the server has seen every connection go.
    """
    result = await deferToThread(work)
    await gatherResults([s.lost for s in server.factory.servers])
    return result


class PoplibTLSTests(TestCase):
    """
    poplib's C{stls()} and C{POP3_SSL} against the server with the test certificate.
    """

    timeout = 60

    def setUp(self) -> None:
        self.tls = serverTLS()
        self.maildir = MaildirServer(self, tls=self.tls, allowCleartext="never")
        self.maildir.deliver(*MESSAGES)
        self.sizes = [len(crlfForm(m)) for m in MESSAGES]

    def session(self, client: poplib.POP3) -> dict[str, Any]:
        """
        Log in as alice, read everything byte-exact, QUIT; return what poplib saw.
        """
        result: dict[str, Any] = {"capa": client.capa()}
        result["user"] = client.user("alice")
        result["pass"] = client.pass_("secret")
        result["stat"] = client.stat()
        result["list"] = client.list()[1]
        result["singles"] = [listOne(client, n) for n in (1, 2, 3)]
        result["retr"] = [client.retr(n) for n in (1, 2, 3)]
        result["quit"] = client.quit()
        return result

    def checkSession(self, result: dict[str, Any]) -> None:
        """
        The session logged in and read every message exactly in its canonical form.
        """
        self.assertIn("USER", result["capa"])
        self.assertNotIn("STLS", result["capa"])
        self.assertEqual(result["user"], b"+OK send PASS")
        self.assertTrue(result["pass"].startswith(b"+OK maildrop has 3 messages"))
        self.assertEqual(result["stat"], (3, sum(self.sizes)))
        self.assertEqual(result["list"], [b"%d %d" % (n, s) for n, s in enumerate(self.sizes, 1)])
        self.assertEqual(
            result["singles"], [b"+OK %d %d" % (n, s) for n, s in enumerate(self.sizes, 1)]
        )
        for message, size, (status, lines, octets) in zip(
            MESSAGES, self.sizes, result["retr"], strict=True
        ):
            self.assertEqual(status, b"+OK %d octets" % size)
            self.assertEqual(received(lines), crlfForm(message))
            self.assertEqual(octets, size)
        self.assertEqual(result["quit"], b"+OK bye")

    async def test_stls(self) -> None:
        """
        poplib upgrades with C{stls()} (verifying C{localhost}), sees STLS before and
        USER after, then logs in and retrieves every message byte-exact.
        """

        def work() -> tuple[dict[str, list[str]], str | None, dict[str, Any]]:
            client = poplib.POP3("localhost", self.maildir.port, timeout=30)
            try:
                before = client.capa()
                client.stls(clientContext())
                version = client.sock.version()  # type: ignore[attr-defined]
                return before, version, self.session(client)
            finally:
                client.close()

        before, version, result = await inThread(self.maildir.server, work)
        self.assertIn("STLS", before)
        self.assertNotIn("USER", before)
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        self.checkSession(result)

    async def test_implicitTLS(self) -> None:
        """
        C{POP3_SSL} against an implicit-TLS listener logs in and retrieves byte-exact.
        """
        port = listenImplicitTLS(self, self.maildir.server, self.tls)

        def work() -> dict[str, Any]:
            client = poplib.POP3_SSL("localhost", port, context=clientContext(), timeout=30)
            try:
                return self.session(client)
            finally:
                client.close()

        self.checkSession(await inThread(self.maildir.server, work))

    async def test_cleartextRefusedThenAllowed(self) -> None:
        """
        With C{allowCleartext="never"}, even on 127.0.0.1, C{user()} before C{stls()}
        raises C{error_proto} with C{-ERR [AUTH]}; after C{stls()} the login works.
        """

        def work() -> tuple[bytes, bytes, bytes]:
            client = poplib.POP3("localhost", self.maildir.port, timeout=30)
            try:
                try:
                    client.user("alice")
                except poplib.error_proto as e:
                    refused: bytes = e.args[0]
                else:
                    raise AssertionError("USER was accepted before TLS")
                client.stls(clientContext())
                return refused, client.user("alice"), client.pass_("secret")
            finally:
                client.close()

        refused, user, password = await inThread(self.maildir.server, work)
        self.assertTrue(refused.startswith(b"-ERR [AUTH] "), refused)
        self.assertEqual(user, b"+OK send PASS")
        self.assertTrue(password.startswith(b"+OK "), password)

    async def test_tls13Only(self) -> None:
        """
        A client that requires TLS 1.3 gets it.
        """
        context = clientContext()
        context.minimum_version = ssl.TLSVersion.TLSv1_3

        def work() -> str | None:
            client = poplib.POP3("localhost", self.maildir.port, timeout=30)
            try:
                client.stls(context)
                client.user("alice")
                client.pass_("secret")
                return client.sock.version()  # type: ignore[attr-defined, no-any-return]
            finally:
                client.close()

        self.assertEqual(await inThread(self.maildir.server, work), "TLSv1.3")

    async def test_tls11Refused(self) -> None:
        """
        A client capped at TLS 1.1 (and willing to use it) fails the handshake.
        """
        context = clientContext()
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        # Let this OpenSSL offer TLS 1.1 at all, so that it is the server that refuses.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        port = listenImplicitTLS(self, self.maildir.server, self.tls)

        def work() -> tuple[str, str]:
            client = poplib.POP3("localhost", self.maildir.port, timeout=30)
            errors = []
            try:
                try:
                    client.stls(context)
                except (ssl.SSLError, OSError) as e:
                    errors.append(str(e))
            finally:
                client.sock.close()
            try:
                poplib.POP3_SSL("localhost", port, context=context, timeout=30).close()
            except (ssl.SSLError, OSError) as e:
                errors.append(str(e))
            if len(errors) != 2:
                raise AssertionError(f"a TLS 1.1 handshake succeeded: {errors}")
            return errors[0], errors[1]

        for error in await inThread(self.maildir.server, work):
            self.assertIn("VERSION", error.upper())


class CurlTLSTests(TestCase):
    """
    curl's POP3 client over STLS (C{--ssl-reqd}) and implicit TLS (C{pop3s://}).

    curl 7.88 speaks SASL PLAIN, LOGIN, CRAM-MD5, EXTERNAL, DIGEST-MD5, NTLM, GSSAPI and
    XOAUTH2; SCRAM only when built with libgsasl, which Debian's is not.
    """

    timeout = 60

    def setUp(self) -> None:
        self.curlPath = requireTool("curl", "curl")
        tls = serverTLS()
        self.server = LoopbackServer(
            self,
            MESSAGES,
            tls=tls,
            allowCleartext="never",
            sasl=("SCRAM-SHA-256", "PLAIN", "LOGIN", "CRAM-MD5"),
        )
        self.port = self.server.start()
        self.tlsPort = listenImplicitTLS(self, self.server, tls)
        self.home = os.path.abspath(self.mktemp())
        os.makedirs(self.home)

    async def curl(self, *args: str, password: str = SECRET) -> tuple[bytes, bytes, int]:
        """
        Run curl as alice trusting the test authority, with C{args}; wait until the
        server has seen the connection go.
        """
        pki, _ = sharedPKI()
        argv = (
            *("-q", "--silent", "--show-error", "--max-time", "30", "--noproxy", "*"),
            *("--cacert", pki.ca.certificate, "--user", f"alice:{password}"),
            *args,
        )
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home}
        out, err, status = await getProcessOutputAndValue(
            self.curlPath, argv, env=environment, reactor=reactor
        )
        await gatherResults([s.lost for s in self.server.factory.servers])
        return out, err, status

    def urls(self, path: str = "") -> list[tuple[str, ...]]:
        """
        curl's arguments for the STLS and the implicit-TLS listener, with C{path}.
        """
        return [
            ("--ssl-reqd", f"pop3://localhost:{self.port}/{path}"),
            (f"pop3s://localhost:{self.tlsPort}/{path}",),
        ]

    async def test_listAndRetrieve(self) -> None:
        """
        Over both kinds of TLS, curl lists the messages and retrieves each byte-exact.
        """
        listing = b"".join(b"%d %d\r\n" % (n, len(crlfForm(m))) for n, m in enumerate(MESSAGES, 1))
        for arguments in self.urls():
            out, err, status = await self.curl(*arguments)
            self.assertEqual((status, err, out), (0, b"", listing), arguments)
        for number, message in enumerate(MESSAGES, 1):
            for arguments in self.urls(str(number)):
                out, err, status = await self.curl(*arguments)
                self.assertEqual((status, err), (0, b""), arguments)
                self.assertEqual(out, crlfForm(message), arguments)

    async def test_wrongPassword(self) -> None:
        """
        A wrong password over TLS makes curl exit with 67, login denied.
        """
        for arguments in self.urls():
            out, err, status = await self.curl(*arguments, password="wrong")
            self.assertEqual((status, out), (CURLE_LOGIN_DENIED, b""), err)

    async def test_untrustedCertificateRefused(self) -> None:
        """
        Trusting only another authority, curl refuses the server's certificate (exit 60,
        CURLE_PEER_FAILED_VERIFICATION): the certificate is really checked.
        """
        stranger = PKI(os.path.abspath(self.mktemp()), name="pop3kit stranger CA")
        _, err, status = await getProcessOutputAndValue(
            self.curlPath,
            (
                *("-q", "--silent", "--show-error", "--max-time", "30", "--noproxy", "*"),
                *("--ssl-reqd", "--capath", self.home, "--cacert", stranger.ca.certificate),
                f"pop3://localhost:{self.port}/",
            ),
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home},
            reactor=reactor,
        )
        self.assertEqual(status, CURLE_PEER_FAILED_VERIFICATION, err)

    async def test_saslMechanisms(self) -> None:
        """
        curl logs in over STLS with each SASL mechanism it supports that the server
        offers (PLAIN, LOGIN, CRAM-MD5), and is refused with a wrong password.
        """
        for mechanism in ("PLAIN", "LOGIN", "CRAM-MD5"):
            out, err, status = await self.curl(
                "--verbose", "--login-options", f"AUTH={mechanism}", *self.urls("1")[0]
            )
            self.assertEqual(status, 0, err)
            self.assertIn(b"> AUTH " + mechanism.encode(), err)
            self.assertEqual(out, crlfForm(MESSAGES[0]), mechanism)
            out, err, status = await self.curl(
                "--login-options", f"AUTH={mechanism}", *self.urls()[0], password="wrong"
            )
            self.assertEqual(status, CURLE_LOGIN_DENIED, (mechanism, err))


class OpenSSLClientTests(TestCase):
    """
    C{openssl s_client}, driven through its standard input.
    """

    timeout = 60

    def setUp(self) -> None:
        self.opensslPath = requireTool("openssl", "openssl")
        self.tls = serverTLS()
        self.server = LoopbackServer(self, MESSAGES, tls=self.tls, allowCleartext="never")
        self.port = self.server.start()

    async def sClient(self, *arguments: str) -> tuple[str, str]:
        """
        Run s_client with C{arguments}, sending CAPA, USER, PASS, STAT and QUIT; return
        its standard output and error.
        """
        pki, _ = sharedPKI()
        argv = [
            self.opensslPath,
            "s_client",
            *arguments,
            *("-CAfile", pki.ca.certificate, "-verify_return_error"),
            *("-verify_hostname", "localhost", "-servername", "localhost"),
            # Pass lines through as they are (no R = renegotiate, Q = quit), and keep
            # reading after the end of input until the server closes.
            *("-nocommands", "-ign_eof", "-crlf"),
        ]
        commands = b"CAPA\nUSER alice\nPASS secret\nSTAT\nQUIT\n"

        def run() -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                argv, input=commands, capture_output=True, timeout=30, check=False
            )

        done = await inThread(self.server, run)
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout.decode("ascii", "replace"), done.stderr.decode("ascii", "replace")

    def checkTranscript(self, out: str) -> None:
        """
        The handshake verified, and the commands were answered in order over TLS.
        """
        self.assertIn("Verify return code: 0 (ok)", out)
        size = sum(len(crlfForm(m)) for m in MESSAGES)
        expected = [
            "+OK capability list follows",
            "USER",
            "+OK send PASS",
            f"+OK maildrop has 3 messages ({size} octets)",
            f"+OK 3 {size}",
            "+OK bye",
        ]
        lines = out.replace("\r\n", "\n").split("\n")
        positions = [lines.index(line) for line in expected]
        self.assertEqual(positions, sorted(positions), out)
        self.assertNotIn("STLS", lines[positions[0] : positions[-1]])

    async def test_starttls(self) -> None:
        """
        C{s_client -starttls pop3} verifies the certificate, then logs in over TLS.
        """
        out, _ = await self.sClient("-starttls", "pop3", "-connect", f"127.0.0.1:{self.port}")
        self.checkTranscript(out)

    async def test_implicitTLS(self) -> None:
        """
        s_client against the implicit-TLS listener gets the greeting over TLS and logs in.
        """
        port = listenImplicitTLS(self, self.server, self.tls)
        out, _ = await self.sClient("-connect", f"127.0.0.1:{port}")
        self.assertIn("+OK POP3 server ready", out)
        self.checkTranscript(out)


class TLSProcess(ServerProcess):
    """
    C{twistd -n pop3kit} with a certificate, listening with STLS and implicit TLS.
    """

    def startTLS(self, certificate: str, key: str) -> None:
        """
        Start twistd with C{certificate} and C{key}, on two kernel-chosen ports.
        """
        self.start(
            [sys.executable, "-c", TWISTD, "--nodaemon", "--pidfile=", "--logfile", self.logFile],
            [
                *("--listen", "tcp:0:interface=127.0.0.1"),
                *("--listen", "ssl:0:interface=127.0.0.1"),
                *("--tls-certificate", certificate, "--tls-key", key),
                *("--data-dir", self.dataDir, "--failed-login-delay", "0"),
            ],
        )

    def ports(self) -> tuple[int, int]:
        """
        The STLS port and the implicit-TLS port, from the log.
        """
        import re

        log = self.log()
        plain = re.search(r"POP3ServerFactory starting on (\d+)", log)
        implicit = re.search(r"POP3ServerFactory \(TLS\) starting on (\d+)", log)
        assert plain is not None and implicit is not None, log
        return int(plain.group(1)), int(implicit.group(1))


class TwistdTLSTests(TestCase):
    """
    A real C{twistd pop3kit} process with TLS, and its certificate reload on SIGHUP.
    """

    timeout = 120

    async def test_reloadOnSIGHUP(self) -> None:
        """
        poplib works over STLS and implicit TLS; after the certificate files are
        replaced and SIGHUP sent, a new connection gets the new certificate while a
        session opened before completes RETR and QUIT.
        """
        pki, _ = sharedPKI()
        server = TLSProcess(self)
        certificate = os.path.join(server.directory, "server.crt")
        key = os.path.join(server.directory, "server.key")
        first = pki.issue("localhost-first")
        shutil.copy(first.certificate, certificate)
        shutil.copy(first.key, key)
        server.startTLS(certificate, key)
        await server.waitUntilListening()
        await server.waitForLog("POP3ServerFactory (TLS) starting on")
        plainPort, tlsPort = server.ports()
        added = await server.pop3kit("user", "add", "alice", "--password-stdin", stdin=b"secret\n")
        self.assertEqual(added.returncode, 0, added.stderr)
        delivered = await server.pop3kit("deliver", "alice", stdin=FIXTURES["dots"])
        self.assertEqual(delivered.returncode, 0, delivered.stderr)
        expected = crlfForm(FIXTURES["dots"])

        def stls() -> tuple[bytes, bytes]:
            client = poplib.POP3("localhost", plainPort, timeout=30)
            try:
                client.stls(clientContext())
                client.user("alice")
                client.pass_("secret")
                lines = client.retr(1)[1]
                return peerCertificate(client), received(lines)
            finally:
                client.quit()

        before, body = await deferToThread(stls)
        self.assertEqual(body, expected)

        def openOld() -> poplib.POP3_SSL:
            client = poplib.POP3_SSL("localhost", tlsPort, context=clientContext(), timeout=30)
            client.user("alice")
            client.pass_("secret")
            return client

        old = await deferToThread(openOld)
        self.addCleanup(old.close)
        self.assertEqual(peerCertificate(old), before)

        second = pki.issue("localhost-second")
        shutil.copy(second.certificate, certificate)
        shutil.copy(second.key, key)
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        await server.waitForLog("Reloaded the TLS certificate")

        def newCertificates() -> list[bytes]:
            seen = []
            for port in (plainPort, tlsPort):
                if port == plainPort:
                    client: poplib.POP3 = poplib.POP3("localhost", port, timeout=30)
                    client.stls(clientContext())
                else:
                    client = poplib.POP3_SSL("localhost", port, context=clientContext())
                seen.append(peerCertificate(client))
                client.quit()
            return seen

        after = await deferToThread(newCertificates)
        with open(second.certificate, "rb") as f:
            secondDER = ssl.PEM_cert_to_DER_cert(f.read().decode("ascii"))
        self.assertEqual(after, [secondDER, secondDER])
        self.assertNotEqual(before, secondDER)

        def finishOld() -> tuple[bytes, bytes, bytes]:
            lines = old.retr(1)[1]
            return peerCertificate(old), received(lines), old.quit()

        stillOld, oldBody, bye = await deferToThread(finishOld)
        self.assertEqual((stillOld, oldBody, bye), (before, expected, b"+OK bye"))
        self.assertIn(await server.stop(), (0, -signal.SIGTERM), server.log())
