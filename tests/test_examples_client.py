"""
Tests for the client examples under C{docs/examples/} that the client howto includes,
run against pop3kit's server over loopback TCP.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from pop3kit.client import ServerError
from pop3kit.tls import ServerTLS
from tests._oracle import crlfForm
from tests._pki import sharedPKI
from tests.test_client_loopback import MESSAGES, LoopbackMixin, reactor
from tests.test_examples import EXAMPLES, exampleEnvironment, loadExample

fetchmail = loadExample("fetchmail")
listing = loadExample("listing")


class FetchmailExampleTests(LoopbackMixin, TestCase):
    """
    The C{async}/C{await} example, C{fetchmail.py}.
    """

    def setUp(self) -> None:
        self.port = self.listen(self.pop3kitServer())
        self.directory = self.mktemp()
        os.makedirs(self.directory)

    def fetch(self, password: str = "secret", **kwargs: Any) -> Deferred[int]:  # noqa: S107
        """
        Run the example's C{fetchMail} against the test server, in clear text.
        """
        return Deferred.fromCoroutine(
            fetchmail.fetchMail(
                reactor, "127.0.0.1", "alice", password, self.directory,
                port=self.port, tls="none", **kwargs,
            )
        )  # fmt: skip

    async def test_downloadsOnce(self) -> None:
        """
        Every message lands in its own file; a second run downloads nothing new and
        nothing is deleted.
        """
        self.assertEqual(await self.fetch(), 3)
        contents = []
        for name in sorted(os.listdir(self.directory)):
            with open(os.path.join(self.directory, name), "rb") as f:
                contents.append(f.read())
        self.assertEqual(sorted(contents), sorted(crlfForm(m) for m in MESSAGES))
        self.assertEqual(await self.fetch(), 0)
        self.assertEqual(len(self.mailbox.messages), 3)

    async def test_delete(self) -> None:
        """
        With C{delete}, the downloaded messages are removed from the server at QUIT.
        """
        self.assertEqual(await self.fetch(delete=True), 3)
        self.assertEqual(self.mailbox.messages, [])

    async def test_wrongPassword(self) -> None:
        """
        A refused login raises L{ServerError}; nothing is downloaded or deleted.
        """
        with self.assertRaises(ServerError):
            await self.fetch("wrong", delete=True)
        self.assertEqual(os.listdir(self.directory), [])
        self.assertEqual(len(self.mailbox.messages), 3)


class ListingExampleTests(LoopbackMixin, TestCase):
    """
    The callback-style example, C{listing.py}.
    """

    async def test_listing(self) -> None:
        """
        The listing has each message's number, size and unique-id.
        """
        port = self.listen(self.pop3kitServer())
        entries = await listing.listing(
            reactor, "127.0.0.1", "alice", "secret", port=port, tls="none"
        )
        self.assertEqual([number for number, _, _ in entries], [1, 2, 3])
        self.assertEqual([size for _, size, _ in entries], [len(crlfForm(m)) for m in MESSAGES])
        self.assertEqual(len({uid for _, _, uid in entries}), 3)


class ClientExamplesRunTests(LoopbackMixin, TestCase):
    """
    C{fetchmail.py} and C{listing.py} run as their page says, against pop3kit's server on
    a free port, with STLS and C{--cafile}.
    """

    timeout = 120

    def setUp(self) -> None:
        pki, issued = sharedPKI()
        self.cafile = pki.ca.certificate
        factory = self.pop3kitServer(tls=ServerTLS(issued.certificate, issued.key))
        self.port = self.listen(factory)

    async def runExample(self, script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
        """
        Run C{docs/examples/SCRIPT ARGUMENTS} with alice's password in C{$POP3_PASSWORD}.
        """
        return await deferToThread(
            subprocess.run,
            [sys.executable, str(EXAMPLES / script), *arguments],
            env=exampleEnvironment(POP3_PASSWORD="secret"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    async def test_fetchmail(self) -> None:
        """
        C{fetchmail.py 127.0.0.1 alice DIR --port N --cafile PEM --delete} downloads
        everything over STLS and deletes it.
        """
        directory = os.path.abspath(self.mktemp())
        result = await self.runExample(
            "fetchmail.py",
            *("127.0.0.1", "alice", directory),
            *("--port", str(self.port), "--cafile", self.cafile, "--delete"),
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, f"3 new message(s) in {directory}\n")
        self.assertEqual(len(os.listdir(directory)), 3)
        self.assertEqual(self.mailbox.messages, [])

    async def test_listing(self) -> None:
        """
        C{listing.py 127.0.0.1 alice --port N --cafile PEM} lists the maildrop over STLS.
        """
        result = await self.runExample(
            "listing.py", "127.0.0.1", "alice", "--port", str(self.port), "--cafile", self.cafile
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        numbers = [int(line.split()[0]) for line in result.stdout.splitlines()]
        self.assertEqual(numbers, [1, 2, 3])
