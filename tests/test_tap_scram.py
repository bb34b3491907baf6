"""
Tests for SCRAM with C{--auth memory:} and C{--auth file:}: Twisted's checkers know the
passwords in clear, so the server derives SCRAM keys from them (once) and offers
SCRAM-SHA-256 and SCRAM-SHA-1.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.trial.unittest import TestCase

from pop3kit import tap
from pop3kit.backends.maildir import deliver, mailboxPath
from pop3kit.checkers import _schemes
from pop3kit.client import ServerError, connect
from pop3kit.interfaces import ISCRAMKeySource
from tests.test_tap import parse

reactor: Any = _reactor


class PlaintextSCRAMTests(TestCase):
    """
    A client logs in with SCRAM to a C{twistd pop3kit} service whose users come from
    C{--auth memory:} or C{--auth file:}.
    """

    timeout = 60

    def setUp(self) -> None:
        # Short, for the UNIX socket's path.
        self.directory = tempfile.mkdtemp(prefix="p3s")
        self.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        self.root = os.path.join(self.directory, "mail")
        deliver(mailboxPath(self.root, "alice"), io.BytesIO(b"Subject: hi\n\nhello\n"))
        _schemes._derivedSCRAMKeysCached.cache_clear()
        self.services = 0

    async def loginWith(
        self,
        auth: str,
        mechanism: str,
        password: str = "secret",  # noqa: S107
    ) -> None:
        """
        Serve with C{--auth auth}; log alice in with C{mechanism}, then quit.
        """
        self.services += 1
        socket = os.path.join(self.directory, f"pop3-{self.services}")
        options = parse(
            *("--listen", f"unix:{socket}", "--auth", auth, "--maildir-root", self.root),
            "--failed-login-delay",
            "0",
        )
        factory = tap.makeFactory(options)
        self.assertIsNotNone(factory.scramKeySource())
        service = tap.makeService(options)
        service.startService()
        self.addCleanup(service.stopService)
        client = await connect(
            reactor, "localhost", endpoint=UNIXClientEndpoint(reactor, socket), tls="none"
        )
        try:
            capabilities = await client.capabilities()
            self.assertIn("SCRAM-SHA-256", capabilities["SASL"])
            self.assertIn("SCRAM-SHA-1", capabilities["SASL"])
            self.assertEqual(await client.login("alice", password, mechanism=mechanism), (1, 22))
        finally:
            await client.quit()

    async def test_memory(self) -> None:
        """
        C{--auth memory:}: SCRAM-SHA-256 and SCRAM-SHA-1, the keys derived once per user
        and mechanism.
        """
        await self.loginWith("memory:alice:secret", "SCRAM-SHA-256")
        await self.loginWith("memory:alice:secret", "SCRAM-SHA-256")
        await self.loginWith("memory:alice:secret", "SCRAM-SHA-1")
        info = _schemes._derivedSCRAMKeysCached.cache_info()
        self.assertEqual((info.misses, info.hits), (2, 1))

    async def test_memoryWrongPassword(self) -> None:
        """
        A wrong password is refused.
        """
        with self.assertRaises(ServerError):
            await self.loginWith("memory:alice:secret", "SCRAM-SHA-256", password="wrong")

    async def test_file(self) -> None:
        """
        C{--auth file:} (Twisted's C{user:password} file) also offers SCRAM.
        """
        users = os.path.join(self.directory, "users")
        with open(users, "w") as f:
            f.write("alice:secret\n")
        await self.loginWith(f"file:{users}", "SCRAM-SHA-256")

    def test_unknownUser(self) -> None:
        """
        An unknown user has no keys (the server then goes on with dummy ones).
        """
        options = parse("--auth", "memory:alice:secret", "--maildir-root", self.root)
        source = ISCRAMKeySource(tap.makeFactory(options).scramKeySource())
        self.assertIsNone(self.successResultOf(source.scramKeys("bob", "SCRAM-SHA-256")))
        self.assertIsNone(self.successResultOf(source.scramKeys("alice", "SCRAM-SHA-512")))
