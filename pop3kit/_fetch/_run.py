# -*- test-case-name: tests.test_fetch,tests.test_cli -*-
"""
Running C{fetch} and C{scan}: blocking calls in the reactor's thread pool, and the whole
command on the global reactor.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, cast

from twisted.internet.defer import Deferred

from pop3kit._exits import ExitError, ExitStatus, errorText

__all__ = ["RunInThread", "inThreadPool", "runInReactor"]

#: Runs a blocking call in a thread and gives its result as a L{Deferred}.
RunInThread = Callable[[Callable[[], None]], Deferred[None]]


def inThreadPool(reactor: Any) -> RunInThread:
    """
    Run blocking calls in C{reactor}'s thread pool.
    """
    from twisted.internet.threads import deferToThreadPool

    def runInThread(call: Callable[[], None]) -> Deferred[None]:
        return deferToThreadPool(reactor, reactor.getThreadPool(), call)

    return runInThread


def _report(error: BaseException) -> ExitStatus:
    """
    Print C{error} in one line on standard error; its exit status.
    """
    if isinstance(error, ExitError):
        sys.stderr.write(f"pop3kit: error: {error}\n")
        return error.status
    sys.stderr.write(f"pop3kit: error: {errorText(error)}\n")
    return ExitStatus.FAILURE


def runInReactor(work: Callable[[Any], Awaitable[object]]) -> int:
    """
    Run C{work(reactor)} on the global reactor until it ends.

    @return: 0, or the status of the L{ExitError} it raised (1 for other exceptions,
        130 if interrupted).
    """
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred
    from twisted.python.failure import Failure

    outcome: list[int] = []
    running: list[Deferred[None]] = []

    async def main() -> None:
        await work(reactor)

    def done(result: object) -> None:
        if outcome:
            return
        if isinstance(result, Failure):
            outcome.append(_report(cast(BaseException, result.value)))
        else:
            outcome.append(ExitStatus.OK)
        if reactor.running:  # type: ignore[attr-defined]
            reactor.stop()  # type: ignore[attr-defined]

    def begin() -> None:
        running.append(ensureDeferred(main()).addBoth(done))

    def interrupted() -> Deferred[None] | None:
        # Ctrl-C or SIGTERM: let the coroutine clean up (let a commit under way finish and
        # be recorded, remove partial files, drop the connection without QUIT) before the
        # reactor goes: the reactor waits for the Deferred returned.
        if outcome:
            return None
        outcome.append(ExitStatus.INTERRUPTED)
        sys.stderr.write("pop3kit: error: interrupted\n")
        ended: Deferred[None] = Deferred()
        for d in running:
            d.addBoth(lambda _: None if ended.called else ended.callback(None))
            d.cancel()
        return ended if running else None

    reactor.callWhenRunning(begin)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", interrupted)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return outcome[0] if outcome else ExitStatus.INTERRUPTED
