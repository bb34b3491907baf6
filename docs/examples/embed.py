# mypy: allow-untyped-calls
"""
Mounting pop3kit in a larger Twisted application.

Three ways, from the smallest up:

  - L{listenPOP3}: listen on an endpoint from a running reactor, next to whatever else the
    application serves;
  - L{makePOP3Service}: a L{twisted.application.service.IService} to add to the
    application's L{MultiService} or to a C{.tac} file's C{application};
  - L{main}: a script, C{python embed.py DATA_DIR [--listen ENDPOINT]
    [--tls-certificate PEM --tls-key PEM]}, listening with L{listenPOP3};
  - C{pop3.tac}, next to this file: L{makePOP3Service} under C{twistd -ny pop3.tac}.

All of them serve the Maildirs under C{<data>/mail/} to the users of the Dovecot-style
passwd-file C{<data>/passwd} that C{pop3kit user add} writes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import cast

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorCore, IReactorTime
from twisted.internet.task import react

from pop3kit.backends.maildir import MaildirRealm
from pop3kit.checkers.passwdfile import PasswdFileChecker
from pop3kit.policy import ServerPolicy
from pop3kit.server import POP3ServerFactory
from pop3kit.tls import ServerTLS, TLSConfigurationError


def makePOP3Factory(
    maildirRoot: str,
    passwdFile: str,
    clock: IReactorTime | None = None,
    tls: ServerTLS | None = None,
) -> POP3ServerFactory:
    """
    The POP3 server factory: a cred L{Portal} whose realm hands out Maildirs and whose
    checker reads a passwd-file.

    @param maildirRoot: The directory holding one Maildir per user; it must exist.
    @param passwdFile: The passwd-file; it need not exist yet.
    @param clock: The reactor (or a test clock) for timeouts; the global reactor by default.
    @param tls: The certificate for STLS (see L{tlsFromFiles}), or L{None} for none.
    """
    portal = Portal(MaildirRealm(maildirRoot), [PasswdFileChecker(passwdFile)])
    policy = ServerPolicy(implementation="embedded pop3kit")
    return POP3ServerFactory(portal, policy=policy, clock=clock, tls=tls)


def tlsFromFiles(certificate: str | None, key: str | None) -> ServerTLS | None:
    """
    The certificate for STLS from its PEM files, or L{None} if neither is given.

    @raise TLSConfigurationError: If only one is given, or they cannot be used.
    """
    if certificate is None and key is None:
        return None
    if certificate is None or key is None:
        raise TLSConfigurationError("a TLS certificate and its key go together")
    return ServerTLS(certificate, key)


def listenPOP3(
    reactor: IReactorCore, description: str, factory: POP3ServerFactory
) -> Deferred[IListeningPort]:
    """
    Start listening for POP3 connections on the endpoint C{description}
    (C{"tcp:110"}, C{"ssl:995:privateKey=key.pem:certKey=cert.pem"}, ...).

    @return: A L{Deferred} firing with the listening port, or failing (with
        L{twisted.internet.error.CannotListenError} for a port in use).
    """
    endpoint = serverFromString(reactor, description)
    return cast("Deferred[IListeningPort]", endpoint.listen(factory))


def makePOP3Service(
    reactor: IReactorCore, description: str, dataDir: str, tls: ServerTLS | None = None
) -> IService:
    """
    A service that listens on C{description} while it runs and serves C{dataDir}.

    @param reactor: The reactor the endpoint listens with.
    @param description: A Twisted endpoint description, e.g. C{"tcp:110"}.
    @param dataDir: Holds the C{passwd} file and the C{mail/} directory, created if
        missing.
    @param tls: The certificate for STLS, or L{None} for none.
    """
    maildirRoot = os.path.join(dataDir, "mail")
    os.makedirs(maildirRoot, mode=0o700, exist_ok=True)
    factory = makePOP3Factory(
        maildirRoot, os.path.join(dataDir, "passwd"), clock=cast(IReactorTime, reactor), tls=tls
    )
    endpoint = serverFromString(reactor, description)
    service = StreamServerEndpointService(endpoint, factory)
    service.setName("pop3")
    return service


#: Where the examples listen unless told otherwise: port 1110 of the local host.
DEFAULT_LISTEN = "tcp:1110:interface=127.0.0.1"


def makeApplicationServices(
    reactor: IReactorCore,
    dataDir: str,
    description: str = DEFAULT_LISTEN,
    tls: ServerTLS | None = None,
) -> MultiService:
    """
    The services of a larger application: here only POP3 (on port 1110 of the local host
    by default), but a web site or an SMTP server would be added to the same
    L{MultiService}.
    """
    services = MultiService()
    makePOP3Service(reactor, description, dataDir, tls).setServiceParent(services)
    return services


def parseArguments(argv: Sequence[str], environ: Mapping[str, str]) -> argparse.Namespace:
    """
    The command line: C{DATA_DIR [--listen ENDPOINT] [--tls-certificate PEM --tls-key
    PEM]}; the options default to C{$POP3_LISTEN}, C{$POP3_TLS_CERTIFICATE} and
    C{$POP3_TLS_KEY}, as in the C{.tac} file.
    """
    parser = argparse.ArgumentParser(prog="embed.py", description="Serve POP3 from DATA_DIR.")
    parser.add_argument("dataDir", metavar="DATA_DIR", help="holds passwd and mail/")
    parser.add_argument(
        "--listen",
        default=environ.get("POP3_LISTEN", DEFAULT_LISTEN),
        metavar="ENDPOINT",
        help="a Twisted endpoint: tcp:PORT[:interface=ADDRESS], or "
        "ssl:PORT:privateKey=KEY:certKey=CERT for implicit TLS (default: %(default)s)",
    )
    parser.add_argument(
        "--tls-certificate",
        default=environ.get("POP3_TLS_CERTIFICATE"),
        metavar="PEM",
        help="offer STLS with this certificate (and --tls-key)",
    )
    parser.add_argument("--tls-key", default=environ.get("POP3_TLS_KEY"), metavar="PEM")
    return parser.parse_args(argv)


async def main(reactor: IReactorCore, *argv: str) -> None:
    """
    Serve until Ctrl-C, listening from the running reactor with L{listenPOP3}.  A port
    that cannot be bound (or TLS files that cannot be used) ends the program with one
    line on standard error; once listening, it prints the address.
    """
    arguments = parseArguments(argv, os.environ)
    try:
        tls = tlsFromFiles(arguments.tls_certificate, arguments.tls_key)
    except TLSConfigurationError as e:
        raise SystemExit(f"embed.py: {e}") from None
    maildirRoot = os.path.join(arguments.dataDir, "mail")
    os.makedirs(maildirRoot, mode=0o700, exist_ok=True)
    passwd = os.path.join(arguments.dataDir, "passwd")
    factory = makePOP3Factory(maildirRoot, passwd, clock=cast(IReactorTime, reactor), tls=tls)
    try:
        port = await listenPOP3(reactor, arguments.listen, factory)
    except (CannotListenError, ValueError) as e:
        raise SystemExit(f"embed.py: cannot listen on {arguments.listen}: {e}") from None
    address: object = port.getHost()
    if isinstance(address, IPv4Address | IPv6Address):
        address = f"{address.host}:{address.port}"
    print(f"serving {arguments.dataDir} on {address}", flush=True)
    await Deferred()  # never fires: run until interrupted


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:])))
