# mypy: allow-untyped-calls
"""
Mounting pop3kit in a larger Twisted application.

Three ways, from the smallest up:

  - L{listenPOP3}: listen on an endpoint from a running reactor, next to whatever else the
    application serves;
  - L{makePOP3Service}: a L{twisted.application.service.IService} to add to the
    application's L{MultiService} or to a C{.tac} file's C{application};
  - L{main}: both at work, as a script: C{python embed.py DATA_DIR}.

All of them serve the Maildirs under C{<data>/mail/} to the users of the Dovecot-style
passwd-file C{<data>/passwd} that C{pop3kit user add} writes.
"""

from __future__ import annotations

import os
import sys
from typing import cast

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorCore, IReactorTime
from twisted.internet.task import react

from pop3kit.backends.maildir import MaildirRealm
from pop3kit.checkers.passwdfile import PasswdFileChecker
from pop3kit.policy import ServerPolicy
from pop3kit.server import POP3ServerFactory


def makePOP3Factory(
    maildirRoot: str, passwdFile: str, clock: IReactorTime | None = None
) -> POP3ServerFactory:
    """
    The POP3 server factory: a cred L{Portal} whose realm hands out Maildirs and whose
    checker reads a passwd-file.

    @param maildirRoot: The directory holding one Maildir per user; it must exist.
    @param passwdFile: The passwd-file; it need not exist yet.
    @param clock: The reactor (or a test clock) for timeouts; the global reactor by default.
    """
    portal = Portal(MaildirRealm(maildirRoot), [PasswdFileChecker(passwdFile)])
    policy = ServerPolicy(implementation="embedded pop3kit")
    return POP3ServerFactory(portal, policy=policy, clock=clock)


def listenPOP3(
    reactor: IReactorCore, description: str, factory: POP3ServerFactory
) -> Deferred[IListeningPort]:
    """
    Start listening for POP3 connections on the endpoint C{description}
    (C{"tcp:110"}, C{"ssl:995:privateKey=key.pem:certKey=cert.pem"}, ...).

    @return: A L{Deferred} firing with the listening port.
    """
    endpoint = serverFromString(reactor, description)
    return cast("Deferred[IListeningPort]", endpoint.listen(factory))


def makePOP3Service(reactor: IReactorCore, description: str, dataDir: str) -> IService:
    """
    A service that listens on C{description} while it runs and serves C{dataDir}.

    @param reactor: The reactor the endpoint listens with.
    @param description: A Twisted endpoint description, e.g. C{"tcp:110"}.
    @param dataDir: Holds the C{passwd} file and the C{mail/} directory, created if
        missing.
    """
    maildirRoot = os.path.join(dataDir, "mail")
    os.makedirs(maildirRoot, mode=0o700, exist_ok=True)
    factory = makePOP3Factory(
        maildirRoot, os.path.join(dataDir, "passwd"), clock=cast(IReactorTime, reactor)
    )
    endpoint = serverFromString(reactor, description)
    service = StreamServerEndpointService(endpoint, factory)
    service.setName("pop3")
    return service


def makeApplicationServices(reactor: IReactorCore, dataDir: str) -> MultiService:
    """
    The services of a larger application: here only POP3 on port 1110 of the local host,
    but a web site or an SMTP server would be added to the same L{MultiService}.
    """
    services = MultiService()
    makePOP3Service(reactor, "tcp:1110:interface=127.0.0.1", dataDir).setServiceParent(services)
    return services


def main(reactor: IReactorCore, dataDir: str) -> Deferred[None]:
    """
    Run the application's services until Ctrl-C.
    """
    services = makeApplicationServices(reactor, dataDir)
    services.startService()
    reactor.addSystemEventTrigger("before", "shutdown", services.stopService)
    return Deferred()  # never fires: run until interrupted


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python embed.py DATA_DIR")
    react(main, sys.argv[1:])
