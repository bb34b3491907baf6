"""
Tests for the client examples under C{docs/examples/} that the client howto includes,
run against pop3kit's server over loopback TCP.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from pop3kit.client import ServerError
from tests._oracle import crlfForm
from tests.test_client_loopback import MESSAGES, LoopbackMixin, reactor
from tests.test_examples import loadExample

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
