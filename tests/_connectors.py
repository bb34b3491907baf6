"""
Connectors for C{pop3kit fetch} and C{pop3kit scan} tests: the real
L{pop3kit.client.connect}, with the client it gives wrapped by a test double.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from pop3kit._fetch import Connector
from pop3kit.client import POP3Client, TLSMode, connect


def wrappingConnector(wrap: Callable[[POP3Client], object]) -> Connector:
    """
    A connector that connects as L{connect} does and hands over C{wrap(client)}: a
    double that records what the command asks of the client and passes it on.
    """

    async def connector(
        reactor: Any,
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = "starttls",
        cafile: str | None = None,
        hostname: str | None = None,
        timeout: float = 60.0,
    ) -> POP3Client:
        client = await connect(
            reactor, host, port, tls=tls, cafile=cafile, hostname=hostname, timeout=timeout
        )
        return cast(POP3Client, wrap(client))

    return connector
