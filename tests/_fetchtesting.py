"""
Helpers for the C{pop3kit fetch} and C{pop3kit scan} tests: a connector that wraps the
client the real L{pop3kit.client.connect} gives in a test double, and the failure of a
run that must fail cleanly.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any, cast

from twisted.trial.unittest import SynchronousTestCase

from pop3kit._exits import ExitError
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
        **limits: Any,
    ) -> POP3Client:
        client = await connect(
            reactor,
            host,
            port,
            tls=tls,
            cafile=cafile,
            hostname=hostname,
            timeout=timeout,
            **limits,
        )
        return cast(POP3Client, wrap(client))

    return connector


def exitErrorOf(
    testCase: SynchronousTestCase, run: Callable[..., object], **options: Any
) -> ExitError:
    """
    Call C{run(**options)}, which must fail with an L{ExitError}, and return it, after
    letting go of the failed run: a command it left failing unhandled is then logged,
    which fails the test.
    """
    error: ExitError = testCase.assertRaises(ExitError, run, **options)
    error.__traceback__ = None
    gc.collect()
    return error
