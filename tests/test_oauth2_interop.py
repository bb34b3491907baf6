"""
OAuth 2.0 interoperability: curl (C{--oauth2-bearer}) and mpop (C{--auth=oauthbearer},
C{--auth=xoauth2}) log in to pop3kit's server over TLS with JWT access tokens signed by
the test key, and C{pop3kit fetch --auth oauthbearer|xoauth2} fetches with a token from
C{--token-command} or C{POP3KIT_TOKEN}.

Each test is skipped where its program is missing, and fails under CI (see
L{tests._tools}); they need the Debian packages curl and mpop.
"""

from __future__ import annotations

import os
import shlex
import time
from typing import Any, cast

from twisted.internet import reactor as _reactor
from twisted.internet.defer import gatherResults
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests._oracle import readMaildir
from tests._tools import requireTool
from tests.test_interop_clients import ClientHome, makeMaildir
from tests.test_oauth2 import TLSServer, token


class _Served:
    """
    What L{ClientHome.run} needs of a server: the loopback server as C{server}.
    """

    def __init__(self, tls: TLSServer) -> None:
        self.server = tls.server


class CurlTests(TestCase):
    """
    curl's C{--oauth2-bearer} over STLS.
    """

    timeout = 60

    def setUp(self) -> None:
        self.curlPath = requireTool("curl", "curl")
        self.tls = TLSServer(self)

    async def curl(self, bearer: str, *args: str) -> tuple[bytes, bytes, int]:
        """
        Retrieve message 1 as alice with C{bearer}, over STLS, trusting the test CA.
        """
        port = self.tls.port
        result = await getProcessOutputAndValue(
            self.curlPath,
            [
                "-q",
                "--silent",
                "--show-error",
                "--max-time",
                "30",
                "--noproxy",
                "*",
                "--ssl-reqd",
                "--cacert",
                self.tls.cafile,
                "--resolve",
                f"localhost:{port}:127.0.0.1",
                "--user",
                "alice:",
                "--oauth2-bearer",
                bearer,
                *args,
                f"pop3://localhost:{port}/1",
            ],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        await gatherResults([s.lost for s in self.tls.server.factory.servers])
        return cast(tuple[bytes, bytes, int], result)

    async def test_oauthbearer(self) -> None:
        """
        curl logs in with OAUTHBEARER and retrieves the message.
        """
        out, err, status = await self.curl(token())
        self.assertEqual(status, 0, err)
        self.assertIn(b"bearer", out)

    async def test_xoauth2(self) -> None:
        """
        curl logs in with XOAUTH2 when told to.
        """
        out, err, status = await self.curl(token(), "--login-options", "AUTH=XOAUTH2")
        self.assertEqual(status, 0, err)
        self.assertIn(b"bearer", out)

    async def test_expired(self) -> None:
        """
        An expired token is refused (curl's CURLE_LOGIN_DENIED).
        """
        _, _, status = await self.curl(token(exp=int(time.time()) - 600))
        self.assertEqual(status, 67)


class MpopTests(TestCase):
    """
    mpop's C{--auth=oauthbearer} and C{--auth=xoauth2} over STLS.
    """

    timeout = 60

    def setUp(self) -> None:
        self.mpopPath = requireTool("mpop", "mpop")
        self.tls = TLSServer(self)
        self.home = ClientHome(self)
        self.target = makeMaildir(os.path.join(self.home.path, "Maildir"))

    async def mpop(self, auth: str, bearer: str) -> Any:
        return await self.home.run(
            self.mpopPath,
            [
                "--host=localhost",
                f"--port={self.tls.port}",
                "--timeout=20",
                "--tls=on",
                "--tls-starttls=on",
                f"--tls-trust-file={self.tls.cafile}",
                f"--auth={auth}",
                "--user=alice",
                f"--passwordeval=echo {bearer}",
                f"--delivery=maildir,{self.target}",
                f"--uidls-file={os.path.join(self.home.path, 'uidls')}",
                "--keep=on",
                "--received-header=off",
                "--quiet",
            ],
            _Served(self.tls),  # type: ignore[arg-type]
        )

    async def test_oauthbearer(self) -> None:
        """
        mpop logs in with OAUTHBEARER and delivers the message.
        """
        finished = await self.mpop("oauthbearer", token())
        self.assertEqual(finished.status, 0, finished)
        self.assertEqual(len(readMaildir(self.target)), 1)

    async def test_xoauth2(self) -> None:
        """
        mpop logs in with XOAUTH2 and delivers the message.
        """
        finished = await self.mpop("xoauth2", token())
        self.assertEqual(finished.status, 0, finished)
        self.assertEqual(len(readMaildir(self.target)), 1)

    async def test_wrongAudience(self) -> None:
        """
        A token for another audience is refused: mpop exits with EX_NOPERM (77).
        """
        finished = await self.mpop("oauthbearer", token(aud="elsewhere"))
        self.assertEqual(finished.status, 77, finished)
        self.assertEqual(readMaildir(self.target), {})


class FetchCommandTests(TestCase):
    """
    C{pop3kit fetch --auth oauthbearer|xoauth2}, in a subprocess.
    """

    timeout = 60

    def setUp(self) -> None:
        self.tls = TLSServer(self)
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.target = os.path.join(self.base, "Maildir")

    async def fetch(self, *args: str, environ: dict[str, str] | None = None) -> tuple[int, str]:
        """
        Run C{pop3kit fetch} as alice from C{localhost} over STLS.

        @return: The exit status and standard error.
        """
        from tests.test_fetch_command import COMMAND, ROOT
        from tests.test_interop_clients import _Collector

        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.base,
            "PYTHONPATH": ROOT,
            "LC_ALL": "C.UTF-8",
            **(environ or {}),
        }
        url = f"pop3://alice@localhost:{self.tls.port}"
        argv = [*COMMAND, "fetch", url, "--cafile", self.tls.cafile]
        argv += ["--to", f"maildir:{self.target}", *args]
        collector = _Collector()
        cast(Any, _reactor).spawnProcess(collector, COMMAND[0], argv, env=env, path=self.base)
        status = await collector.whenEnded()
        return status, b"".join(collector.err).decode()

    async def test_tokenCommand(self) -> None:
        """
        C{--token-command} prints the token; OAUTHBEARER logs in with it.
        """
        command = f"echo {shlex.quote(token())}"
        status, err = await self.fetch("--auth", "oauthbearer", "--token-command", command)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(len(readMaildir(self.target)), 1)

    async def test_environment(self) -> None:
        """
        C{POP3KIT_TOKEN} gives the token; XOAUTH2 logs in with it.
        """
        status, err = await self.fetch("--auth", "xoauth2", environ={"POP3KIT_TOKEN": token()})
        self.assertEqual((status, err), (0, ""))

    async def test_expired(self) -> None:
        """
        An expired token fails in one line that says so.
        """
        expired = token(exp=int(time.time()) - 600)
        status, err = await self.fetch("--auth", "oauthbearer", environ={"POP3KIT_TOKEN": expired})
        self.assertNotEqual(status, 0)
        self.assertIn("invalid or expired", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    async def test_noToken(self) -> None:
        """
        Without a token source the command says how to give one.
        """
        status, err = await self.fetch("--auth", "oauthbearer")
        self.assertNotEqual(status, 0)
        self.assertIn("--token-command", err)

    async def test_failingTokenCommand(self) -> None:
        """
        A token command that fails is reported in one line.
        """
        status, err = await self.fetch(
            "--auth", "oauthbearer", "--token-command", "echo refresh failed >&2; exit 2"
        )
        self.assertNotEqual(status, 0)
        self.assertIn("refresh failed", err)
