"""
Interoperability with C{curl}'s POP3 client against the real server on loopback TCP.

curl logs in (after CAPA, with USER/PASS), runs one command, un-stuffs dots and prints the
response body, then sends QUIT.  The tests are skipped where curl is not installed,
and fail under CI, whose script installs it (see L{tests._tools}).
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests._oracle import crlfForm
from tests._tools import requireTool
from tests.test_interop_poplib import FIXTURES
from tests.test_server_loopback import LoopbackServer

#: alice's password on the test server.
SECRET = "secret"

#: curl's exit status when the server refuses the login (CURLE_LOGIN_DENIED).
CURLE_LOGIN_DENIED = 67


class CurlTests(TestCase):
    """
    curl's POP3 client: listing, retrieving, UIDL, DELE and a refused login.
    """

    timeout = 60

    def setUp(self) -> None:
        self.curlPath = requireTool("curl", "curl")
        self.messages = list(FIXTURES.values())
        self.server = LoopbackServer(self, self.messages)
        self.port = self.server.start()
        self.home = os.path.abspath(self.mktemp())
        os.makedirs(self.home)

    async def curl(self, *args: str, password: str = SECRET) -> tuple[bytes, bytes, int]:
        """
        Run curl as alice, with C{args} after the common options, and wait until the
        server has seen the connection go.

        @return: curl's standard output, standard error and exit status.
        """
        argv = (
            "-q",  # no .curlrc: must come first
            "--silent",
            "--show-error",
            "--max-time",
            "30",
            "--noproxy",
            "*",
            "--user",
            f"alice:{password}",
            *args,
        )
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home}
        out, err, status = await getProcessOutputAndValue(
            self.curlPath, argv, env=environment, reactor=reactor
        )
        await gatherResults([server.lost for server in self.server.factory.servers])
        return out, err, status

    def url(self, path: str = "") -> str:
        """
        The POP3 URL of the test server, with C{path}.
        """
        return f"pop3://127.0.0.1:{self.port}/{path}"

    async def test_list(self) -> None:
        """
        A URL without a message number prints the LIST scan listing.
        """
        out, err, status = await self.curl(self.url())
        self.assertEqual((status, err), (0, b""))
        expected = b"".join(
            b"%d %d\r\n" % (number, len(crlfForm(message)))
            for number, message in enumerate(self.messages, 1)
        )
        self.assertEqual(out, expected)

    async def test_retrieveByteExact(self) -> None:
        """
        A URL with a message number prints that message, un-stuffed, exactly in its
        canonical form.

        curl always prints the CRLF of the end-of-body marker C{CRLF . CRLF}, so for the
        empty message (C{+OK}, then C{.} alone) it prints one CRLF: a curl quirk.
        """
        for number, (name, message) in enumerate(FIXTURES.items(), 1):
            out, err, status = await self.curl(self.url(str(number)))
            self.assertEqual((status, err), (0, b""), name)
            self.assertEqual(out, crlfForm(message) or b"\r\n", name)
        self.assertEqual(self.server.mailbox(), self.messages)

    async def test_uidl(self) -> None:
        """
        C{-X UIDL} prints the unique-id listing.
        """
        out, err, status = await self.curl("--request", "UIDL", self.url())
        self.assertEqual((status, err), (0, b""))
        lines = out.split(b"\r\n")
        self.assertEqual(lines[-1], b"")
        self.assertEqual(
            [line.split(b" ")[0] for line in lines[:-1]],
            [b"%d" % n for n in range(1, len(self.messages) + 1)],
        )
        uids = [line.split(b" ")[1] for line in lines[:-1]]
        self.assertEqual(len(set(uids)), len(self.messages))

    async def test_dele(self) -> None:
        """
        A custom C{DELE 1} request (with C{--head}: no body follows) deletes the message
        when curl quits; a new session lists one message fewer.
        """
        out, err, status = await self.curl("--request", "DELE 1", "--head", self.url())
        self.assertEqual((status, err, out), (0, b"", b""))
        self.assertEqual(self.server.mailbox(), self.messages[1:])
        out, err, status = await self.curl(self.url())
        self.assertEqual(status, 0)
        self.assertEqual(out.count(b"\r\n"), len(self.messages) - 1)
        self.assertTrue(out.startswith(b"1 %d\r\n" % len(crlfForm(self.messages[1]))))

    async def test_wrongPassword(self) -> None:
        """
        A wrong password makes curl exit with status 67, login denied.
        """
        out, err, status = await self.curl(self.url(), password="wrong")
        self.assertEqual(status, CURLE_LOGIN_DENIED, err)
        self.assertEqual(out, b"")
        self.assertEqual(self.server.mailbox(), self.messages)
