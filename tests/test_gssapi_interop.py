"""
GSSAPI interoperability against the private Kerberos realm of L{tests._kdc}: fetchmail
(C{auth gssapi}), mpop (C{--auth=gssapi}) and curl (C{AUTH=GSSAPI}) retrieve mail from
pop3kit's server, and pop3kit's client logs in to a private Dovecot configured for GSSAPI.

Each test is skipped where its program is missing, and fails under CI (see
L{tests._tools}); they need the Debian packages krb5-kdc, krb5-admin-server, krb5-user,
fetchmail, mpop, curl, dovecot-pop3d and dovecot-gssapi.
"""

from __future__ import annotations

import os
import shutil
from typing import cast

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from pop3kit._gssapi import GSSAPIChecker
from pop3kit.client import connect
from tests import _dovecot, _kdc
from tests._oracle import readMaildir
from tests._tools import missingTool, requireTool
from tests.test_gssapi import realm
from tests.test_interop_clients import _FETCHMAIL_MDA, ClientHome, makeMaildir
from tests.test_server_loopback import LoopbackServer

reactor = cast(IReactorTime, _reactor)

MESSAGE = b"Subject: kerberos\r\n\r\nticket, please\r\n"

#: Dovecot's GSSAPI mechanism, from Debian's dovecot-gssapi.
GSSAPI_MODULE = "/usr/lib/dovecot/modules/auth/libmech_gssapi.so"


class _Served:
    """
    What L{ClientHome.run} needs of a server: the loopback server as C{server}.
    """

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server


class ClientsTests(TestCase):
    """
    fetchmail, mpop and curl log in to pop3kit's server with GSSAPI.
    """

    timeout = 90

    def setUp(self) -> None:
        self.kdc = realm(self)
        self.server = LoopbackServer(self, [MESSAGE])
        self.server.factory.portal.registerChecker(
            GSSAPIChecker(_kdc.SERVICE_HOST, keytab=self.kdc.keytab)
        )
        self.port = self.server.start()
        self.home = ClientHome(self)

    async def test_fetchmail(self) -> None:
        """
        fetchmail's C{auth gssapi} logs in with alice's ticket and delivers the message.
        """
        fetchmail = requireTool("fetchmail", "fetchmail")
        out = os.path.join(self.home.path, "out")
        os.makedirs(out)
        mda = self.home.file("deliver.sh", _FETCHMAIL_MDA.format(out=out), 0o700)
        rcfile = self.home.file(
            "fetchmailrc",
            "set no syslog\n"
            "set no bouncemail\n"
            f"poll {_kdc.SERVICE_HOST} port {self.port} proto pop3 "
            "auth gssapi timeout 20\n"
            '  user "alice" is "alice" here\n'
            '  sslproto ""\n'
            "  no rewrite no stripcr\n"
            f'  mda "{mda}"\n',
        )
        pidfile = os.path.join(self.home.path, "fetchmail.pid")
        finished = await self.home.run(
            fetchmail,
            ["--fetchmailrc", rcfile, "--pidfile", pidfile, "--fetchall", "-v"],
            _Served(self.server),  # type: ignore[arg-type]
            extraEnv={"FETCHMAILHOME": self.home.path, **self.kdc.environ},
        )
        self.assertEqual(finished.status, 0, finished)
        self.assertIn(b"AUTH GSSAPI", finished.err + finished.out)
        (name,) = os.listdir(out)
        with open(os.path.join(out, name), "rb") as f:
            self.assertIn(b"ticket, please", f.read())

    async def test_mpop(self) -> None:
        """
        mpop's C{--auth=gssapi} (through GNU SASL) logs in with alice's ticket and
        delivers the message.
        """
        mpop = requireTool("mpop", "mpop")
        target = makeMaildir(os.path.join(self.home.path, "Maildir"))
        finished = await self.home.run(
            mpop,
            [
                f"--host={_kdc.SERVICE_HOST}",
                f"--port={self.port}",
                "--timeout=20",
                "--tls=off",
                "--auth=gssapi",
                "--user=alice",
                f"--delivery=maildir,{target}",
                f"--uidls-file={os.path.join(self.home.path, 'uidls')}",
                "--received-header=off",
                "--quiet",
            ],
            _Served(self.server),  # type: ignore[arg-type]
            extraEnv=self.kdc.environ,
        )
        self.assertEqual(finished.status, 0, finished)
        self.assertEqual(list(readMaildir(target).values()), [MESSAGE.replace(b"\r\n", b"\n")])

    async def test_curl(self) -> None:
        """
        curl's C{AUTH=GSSAPI} logs in with alice's ticket and retrieves the message.
        """
        curl = requireTool("curl", "curl")
        output, err, status = await getProcessOutputAndValue(
            curl,
            [
                "-q",
                "--silent",
                "--show-error",
                "--max-time",
                "30",
                "--noproxy",
                "*",
                "--resolve",
                f"{_kdc.SERVICE_HOST}:{self.port}:127.0.0.1",
                "--user",
                # curl tries GSSAPI only for a user name with a realm (or domain).
                f"alice@{_kdc.REALM}:",
                "--login-options",
                "AUTH=GSSAPI",
                f"pop3://{_kdc.SERVICE_HOST}:{self.port}/1",
            ],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.kdc.environ},
        )
        await gatherResults([session.lost for session in self.server.factory.servers])
        self.assertEqual(status, 0, err)
        self.assertEqual(output, MESSAGE)

    async def test_curlWithoutTicket(self) -> None:
        """
        Without a ticket curl cannot log in, and the server is left unharmed.
        """
        curl = requireTool("curl", "curl")
        self.kdc.kdestroy()
        _, _, status = await getProcessOutputAndValue(
            curl,
            [
                "-q",
                "--silent",
                "--max-time",
                "30",
                "--noproxy",
                "*",
                "--resolve",
                f"{_kdc.SERVICE_HOST}:{self.port}:127.0.0.1",
                "--user",
                # curl tries GSSAPI only for a user name with a realm (or domain).
                f"alice@{_kdc.REALM}:",
                "--login-options",
                "AUTH=GSSAPI",
                f"pop3://{_kdc.SERVICE_HOST}:{self.port}/1",
            ],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.kdc.environ},
        )
        await gatherResults([session.lost for session in self.server.factory.servers])
        self.assertNotEqual(status, 0)


class _GSSAPIDovecot(_dovecot.DovecotServer):
    """
    The private Dovecot, offering GSSAPI only, with the realm's service key.
    """

    def __init__(self, directory: str, kdc: _kdc.KDC) -> None:
        super().__init__(directory)
        self.keytab = os.path.join(self.directory, "dovecot.keytab")
        shutil.copy(kdc.keytab, self.keytab)
        self.kdc = kdc

    def _config(self) -> str:
        config = (
            super()
            ._config()
            .replace(f"auth_mechanisms = {_dovecot.MECHANISMS}", "auth_mechanisms = gssapi")
        )
        environ = " ".join(
            f"{name}={self.kdc.environ[name]}" for name in ("KRB5_CONFIG", "KRB5RCACHENAME")
        )
        return config + "\n".join(
            [
                f"auth_krb5_keytab = {self.keytab}",
                f"auth_gssapi_hostname = {_kdc.SERVICE_HOST}",
                "auth_username_format = %n",
                f"import_environment = TZ {environ}",
                "service auth {",
                "  user = root",
                "}",
                "",
            ]
        )


class DovecotTests(TestCase):
    """
    pop3kit's client logs in to Dovecot with GSSAPI.
    """

    timeout = 90

    def setUp(self) -> None:
        requireTool("dovecot", "dovecot-pop3d")
        if not os.path.exists(GSSAPI_MODULE):
            missingTool(f"{GSSAPI_MODULE} is missing (Debian package dovecot-gssapi)")
        self.kdc = realm(self)
        self.dovecot = _GSSAPIDovecot(self.mktemp(), self.kdc)
        self.dovecot.deliver("alice", MESSAGE)
        self.dovecot.start()
        self.addCleanup(self.dovecot.cleanUp)

    async def test_login(self) -> None:
        """
        The client chooses GSSAPI by itself (it has a ticket and Dovecot offers it) and
        retrieves the message.
        """
        client = await connect(
            reactor,
            _dovecot.HOST,
            self.dovecot.port,
            tls="none",
            hostname=_kdc.SERVICE_HOST,
        )

        def close() -> Deferred[None]:
            client.abort()
            return client.whenClosed()

        self.addCleanup(close)
        capabilities = await client.capabilities()
        self.assertIn("GSSAPI", capabilities["SASL"])
        count, _ = await client.login("alice", "")
        self.assertEqual(count, 1, self.dovecot.log()[-2000:])
        self.assertEqual(await client.retrieve(1), MESSAGE)
        await client.quit()
