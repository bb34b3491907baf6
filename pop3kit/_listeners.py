# -*- test-case-name: tests.test_tap -*-
"""
The listening side of C{twistd pop3kit}: listeners whose bind errors are one line
(L{CannotStart}), the log line once every port is bound, and the listen backlog.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger

__all__ = ["Announcement", "CannotStart", "Listener", "withBacklog"]


class CannotStart(SystemExit, Exception):
    """
    The server cannot start as configured: a C{--listen} description that is not one, a
    port already in use, a C{--maildir-root} or C{--data-dir} that is not a directory.

    A L{SystemExit} whose code is the one-line message, so that C{twistd} prints that
    line and exits with status 1 instead of showing a traceback.  An L{Exception} too,
    so that a daemonizing C{twistd} reports it to the waiting parent process (which
    otherwise waits for ever) and prints it there.
    """

    def __init__(self, message: str) -> None:
        """
        @param message: What is wrong, naming the option or the path.
        """
        super().__init__(f"twistd pop3kit: {message}")


class Listener(StreamServerEndpointService):
    """
    Listens on one C{--listen} endpoint; a port that cannot be bound (in use, not
    permitted) stops the start-up with a L{CannotStart} naming the description.

    @ivar port: The listening port, once bound.
    """

    def __init__(self, description: str, endpoint: IStreamServerEndpoint, factory: Factory) -> None:
        super().__init__(endpoint, factory)  # type: ignore[no-untyped-call]
        self.description = description
        self.port: IListeningPort | None = None
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        """
        Bind the port, or raise L{CannotStart}.
        """
        try:
            super().privilegedStartService()  # type: ignore[no-untyped-call]
        except (CannotListenError, OSError) as e:
            reason = e.socketError if isinstance(e, CannotListenError) else e
            text = reason.strerror if isinstance(reason, OSError) else str(reason)
            # twistd has redirected standard error to its log by now: the line goes there.
            raise CannotStart(f"cannot listen on {self.description}: {text}") from None
        waiting = self._waitingForPort
        if waiting is not None:
            waiting.addCallback(self._bound)

    def _bound(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        return port


class Announcement(Service):
    """
    Logs what the server serves, once every listener of its parent has bound its port.
    """

    def __init__(self, storage: str, listeners: Sequence[Listener]) -> None:
        self._storage = storage
        self._listeners = listeners

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        addresses = []
        for listener in self._listeners:
            if listener.port is None:
                addresses.append(listener.description)
            else:
                host = listener.port.getHost()
                addresses.append(f"{getattr(host, 'host', '')}:{getattr(host, 'port', '')}")
        Logger().info(
            "pop3kit serving {storage} on {listen}",
            storage=self._storage,
            listen=", ".join(addresses),
        )


#: The endpoint types whose listen backlog L{withBacklog} sets.
_BACKLOG_TYPES = ("tcp", "tcp6", "ssl")


def withBacklog(description: str, backlog: int) -> str:
    """
    C{description} with C{backlog=} added, for a TCP or TLS listener that does not give
    one: Twisted's default of 50 makes the kernel drop connections of a crowd arriving
    at once (their clients retry after seconds, or hang), so pop3kit listens with a
    backlog as large as its cap on connections waiting to log in.  The kernel caps it at
    C{net.core.somaxconn}.
    """
    kind = description.split(":", 1)[0].strip().lower()
    if kind not in _BACKLOG_TYPES or "backlog=" in description:
        return description
    return f"{description}:backlog={backlog}"
