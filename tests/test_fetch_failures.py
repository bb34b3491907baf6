"""
Tests for what C{pop3kit fetch} and C{scan} say when they cannot reach or trust a server:
real TLS over loopback against a pop3kit server, each failure one line saying what happened
and what to do, with no class names and no OpenSSL tuples.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import reactor as _reactor
from twisted.internet.defer import gatherResults
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import TestCase

from pop3kit import _fetch
from pop3kit._exits import ExitError, ExitStatus
from pop3kit.backends.memory import MemoryMailbox, MemoryRealm
from pop3kit.tls import ServerTLS
from tests._pki import PKI, Issued, sharedPKI
from tests.test_server_loopback import TrackingFactory

reactor: Any = _reactor


class FetchFailureTests(TestCase):
    """
    Each way of failing to reach, trust or log in to a server has its own line.
    """

    timeout = 60

    def serve(self, issued: Issued | None, implicit: bool = False) -> int:
        """
        Serve alice (password C{secret}) on a loopback port, with STLS (or implicit TLS)
        from C{issued}, or without TLS.

        @return: The port.
        """
        realm = MemoryRealm({"alice": MemoryMailbox([b"Subject: hi\r\n\r\nhello\r\n"])})
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        tls = None if issued is None else ServerTLS(issued.certificate, issued.key)
        factory = TrackingFactory(
            Portal(realm, [checker]), clock=reactor, failedLoginDelay=0, tls=tls
        )
        listening: Any = factory
        if implicit:
            assert tls is not None
            listening = TLSMemoryBIOFactory(tls.contextFactory(), False, factory)
        port = reactor.listenTCP(0, listening, interface="127.0.0.1")
        self.addCleanup(port.stopListening)

        async def close() -> None:
            for server in factory.servers:
                if server.transport is not None and not server.lost.called:
                    server.transport.abortConnection()  # type: ignore[attr-defined]
            await gatherResults([server.lost for server in factory.servers])

        self.addCleanup(close)
        return int(port.getHost().port)

    async def failure(
        self,
        url: str,
        password: str = "secret",  # noqa: S107
        **options: Any,
    ) -> tuple[ExitStatus, str]:
        """
        Open a session as C{fetch} does, which must fail.

        @return: The exit status and the message.
        """
        account = _fetch.parseURL(url)
        connectOptions = _fetch.ConnectOptions(timeout=30, **options)
        with self.assertRaises(ExitError) as caught:
            await _fetch.openSession(reactor, account, connectOptions, password)
        message = str(caught.exception)
        self.assertEqual(len(message.splitlines()), 1, message)
        for internal in ("Error:", "('", "[(", "TLSFailed", "VerificationError"):
            self.assertNotIn(internal, message)
        return caught.exception.status, message

    def otherAuthority(self) -> PKI:
        """
        A certificate authority the client does not trust.
        """
        return PKI(os.path.abspath(self.mktemp()), name="untrusted CA")

    async def test_unknownAuthoritySTLS(self) -> None:
        """
        A certificate from an authority not in C{--cafile}, after STLS.
        """
        port = self.serve(self.otherAuthority().issue("localhost"))
        status, message = await self.failure(
            f"pop3://alice@127.0.0.1:{port}", cafile=sharedPKI()[0].ca.certificate
        )
        self.assertEqual(status, ExitStatus.CONFIG)
        self.assertEqual(
            message,
            "the certificate of 127.0.0.1 is not trusted (unknown CA: CN=untrusted CA): "
            "pass --cafile PEM with the authority that issued it",
        )

    async def test_unknownAuthorityImplicit(self) -> None:
        """
        The same with implicit TLS (C{pop3s://}).
        """
        port = self.serve(self.otherAuthority().issue("localhost"), implicit=True)
        status, message = await self.failure(
            f"pop3s://alice@127.0.0.1:{port}", cafile=sharedPKI()[0].ca.certificate
        )
        self.assertEqual(status, ExitStatus.CONFIG)
        self.assertTrue(
            message.startswith(
                "the certificate of 127.0.0.1 is not trusted (unknown CA: CN=untrusted CA)"
            ),
            message,
        )

    async def test_hostnameMismatch(self) -> None:
        """
        A trusted certificate for another name.
        """
        pki, _ = sharedPKI()
        port = self.serve(
            pki.issue("elsewhere", hostnames=("elsewhere.example",), addresses=()),
            implicit=True,
        )
        status, message = await self.failure(
            f"pop3s://alice@127.0.0.1:{port}", cafile=pki.ca.certificate
        )
        self.assertEqual(status, ExitStatus.CONFIG)
        self.assertEqual(
            message,
            f"the certificate of 127.0.0.1:{port} is not valid for the name 127.0.0.1: "
            "connect with a name the certificate holds",
        )

    async def test_expired(self) -> None:
        """
        A trusted certificate that has expired.
        """
        pki, _ = sharedPKI()
        port = self.serve(pki.issue("old", expired=True))
        status, message = await self.failure(
            f"pop3://alice@127.0.0.1:{port}", cafile=pki.ca.certificate
        )
        self.assertEqual(status, ExitStatus.CONFIG)
        self.assertEqual(
            message, "the certificate of 127.0.0.1 has expired (CN=old): the server must renew it"
        )

    async def test_noSTLS(self) -> None:
        """
        A C{pop3://} server that offers no STLS.
        """
        port = self.serve(None)
        status, message = await self.failure(f"pop3://alice@127.0.0.1:{port}")
        self.assertEqual(status, ExitStatus.CONFIG)
        self.assertEqual(
            message, "127.0.0.1 offers no STLS: use pop3s://, or --no-tls on a trusted network"
        )

    async def test_notTLS(self) -> None:
        """
        A C{pop3s://} URL for a server that does not speak TLS on that port: the
        handshake's reason, without OpenSSL's tuples.
        """
        port = self.serve(None)
        status, message = await self.failure(
            f"pop3s://alice@127.0.0.1:{port}", cafile=sharedPKI()[0].ca.certificate
        )
        self.assertEqual(status, ExitStatus.CONFIG)
        self.assertTrue(
            message.startswith(f"the TLS handshake with 127.0.0.1:{port} failed: "), message
        )

    async def test_connectionRefused(self) -> None:
        """
        Nothing listens on the port.
        """
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        holder.close()
        status, message = await self.failure(f"pop3://alice@127.0.0.1:{port}", noTLS=True)
        self.assertEqual(status, ExitStatus.UNAVAILABLE)
        self.assertEqual(
            message,
            f"cannot connect to 127.0.0.1:{port}: connection refused "
            "(no server listens on that port)",
        )

    async def test_unknownHost(self) -> None:
        """
        A host name that does not resolve (C{.invalid} never does, RFC 2606).
        """
        status, message = await self.failure("pop3://alice@no-such-host.invalid", noTLS=True)
        self.assertEqual(status, ExitStatus.NOHOST)
        self.assertEqual(message, "unknown host 'no-such-host.invalid': check the name in the URL")

    async def test_wrongPassword(self) -> None:
        """
        A wrong password: the server's own text.
        """
        port = self.serve(None)
        status, message = await self.failure(
            f"pop3://alice@127.0.0.1:{port}", password="wrong", noTLS=True
        )
        self.assertEqual(status, ExitStatus.NOPERM)
        self.assertEqual(
            message, f"login to 127.0.0.1:{port} as 'alice' refused: authentication failed"
        )
