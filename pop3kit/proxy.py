# -*- test-case-name: tests.test_proxy -*-
"""
Serving behind a load balancer that speaks the PROXY protocol (HAProxy's C{send-proxy} and
C{send-proxy-v2}).

Twisted's C{haproxy:} endpoint (L{twisted.protocols.haproxy}) connects the wrapped
protocol as soon as the TCP connection is open, before the PROXY header has arrived: a
POP3 session would send its greeting, choose its login methods and count the client
against its caps with the address of the proxy, not of the client.  L{proxyEndpoint}
wraps an endpoint the other way round: the wrapped protocol is connected only once a
valid header (version 1 or 2) has been read, so that C{transport.getPeer()} is the
client's address from its very first call; a connection that does not start with a
valid header within C{headerTimeout} seconds is dropped without a word.

The header's parsing is Twisted's own (the parsers behind C{haproxy:}); a header of the
C{LOCAL} command (HAProxy's health checks) or of an C{UNKNOWN} family carries no client
address, and the connection is then the proxy's own: its peer is the proxy.

Only a trusted proxy may connect to such a listener: whoever can connect to it can claim
any address.  Bind it where only the proxy can reach it.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._info import ProxyInfo
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.haproxy._wrapper import HAProxyProtocolWrapper, HAProxyWrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

__all__ = [
    "HEADER_TIMEOUT",
    "PROXY_PREFIX",
    "ProxyHeaderFactory",
    "ProxyHeaderProtocol",
    "isProxied",
    "proxyEndpoint",
    "proxyEndpointFromString",
]

#: The listen description prefix that asks for the PROXY protocol (Twisted's spelling).
PROXY_PREFIX = "haproxy:"

#: Seconds a connection has to send its PROXY header.  A proxy sends it at once, with or
#: before the client's first octets.
HEADER_TIMEOUT = 10.0

_V2_SIGNATURE = V2Parser.PREFIX
_V1_SIGNATURE = V1Parser.PROXYSTR + b" "


def _canonical(address: IAddress | None) -> IAddress | None:
    """
    C{address} with its host in the canonical text form of its IP address (the two
    parsers spell IPv6 addresses differently, and the version 1 parser checks nothing); an
    IPv4-mapped IPv6 address becomes the IPv4 address, so that a client has one name.

    @raise ValueError: If the host is not an IP address of the address's family.
    """
    if isinstance(address, IPv4Address | IPv6Address):
        host = ipaddress.ip_address(address.host)
        if (host.version == 6) != isinstance(address, IPv6Address):
            raise ValueError(f"{address.host!r} is not of the address's family")
        mapped = getattr(host, "ipv4_mapped", None)
        if mapped is not None:
            return IPv4Address(address.type, str(mapped), address.port)
        return type(address)(address.type, str(host), address.port)
    return address


class ProxyHeaderProtocol(HAProxyProtocolWrapper):
    """
    Reads the PROXY header, then connects the wrapped protocol, whose transport reports
    the client's address (and the address the client connected to) from the header.

    Until the header is complete the wrapped protocol knows nothing of the connection:
    neither C{makeConnection} nor C{dataReceived} nor C{connectionLost} is called.
    """

    log = Logger()
    factory: ProxyHeaderFactory

    def __init__(self, factory: ProxyHeaderFactory, wrappedProtocol: IProtocol) -> None:
        """
        @param factory: The factory that built this wrapper.
        @param wrappedProtocol: The protocol to connect once the header is read.
        """
        super().__init__(factory, wrappedProtocol)  # type: ignore[arg-type]
        self._pending = b""
        self._timer: IDelayedCall | None = None
        self._connected = False
        self._dropped = False

    def makeConnection(self, transport: object) -> None:
        """
        Take the connection and wait for the header; the wrapped protocol is not
        connected yet.
        """
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)  # type: ignore[arg-type, no-untyped-call]
        self.factory.registerProtocol(self)  # type: ignore[no-untyped-call]
        self._timer = self.factory.clock.callLater(self.factory.headerTimeout, self._timedOut)

    def dataReceived(self, data: bytes) -> None:
        """
        Read the header; pass on what follows it.
        """
        if self._connected:
            self.wrappedProtocol.dataReceived(data)
            return
        if self._dropped:
            return
        parser = self._parser
        if parser is None:
            self._pending += data
            parser = self._chooseParser(self._pending)
            if parser is None:
                return
            data, self._pending = self._pending, b""
        try:
            info, remaining = parser.feed(data)
        except InvalidProxyHeader:
            self._drop("an invalid PROXY header")
            return
        if info is None:
            return
        try:
            self._proxyInfo = ProxyInfo(
                info.header, _canonical(info.source), _canonical(info.destination)
            )
        except ValueError:
            self._drop("a PROXY header with an invalid address")
            return
        self._connected = True
        self._cancelTimer()
        self.wrappedProtocol.makeConnection(self)  # type: ignore[arg-type]
        if remaining:
            self.wrappedProtocol.dataReceived(remaining)

    def _chooseParser(self, data: bytes) -> V1Parser | V2Parser | None:
        """
        The parser for the header that C{data} starts, once its signature is complete;
        L{None} while it may still become one (and after dropping a connection that sent
        something else).
        """
        if len(data) >= 16 and data.startswith(_V2_SIGNATURE):
            if data[12] & 0xF0 != 0x20:
                self._drop("an unknown PROXY protocol version")
                return None
            self._parser = V2Parser()
        elif data.startswith(_V1_SIGNATURE):
            self._parser = V1Parser()
        elif not (_V2_SIGNATURE.startswith(data[:12]) or _V1_SIGNATURE.startswith(data[:6])):
            self._drop("no PROXY header")
            return None
        return self._parser

    def _drop(self, why: str) -> None:
        self._dropped = True
        self._cancelTimer()
        self.log.info(
            "Dropping a connection from {proxy} that sent {why}",
            proxy=self.transport.getPeer() if self.transport else None,
            why=why,
        )
        assert self.transport is not None
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def _timedOut(self) -> None:
        self._timer = None
        self._drop(f"no PROXY header within {self.factory.headerTimeout:g} s")

    def _cancelTimer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Tell the wrapped protocol, if it was ever connected.
        """
        self._cancelTimer()
        if self._connected:
            super().connectionLost(reason)  # type: ignore[no-untyped-call]
        else:
            self.factory.unregisterProtocol(self)  # type: ignore[no-untyped-call]


class ProxyHeaderFactory(HAProxyWrappingFactory):
    """
    Wraps the protocols of a factory in L{ProxyHeaderProtocol}.

    The wrapped factory's C{buildProtocol} is called as the connection opens, with the
    proxy's address: it must decide nothing by it.
    L{pop3kit.server.POP3ServerFactory} does not look at it.
    """

    protocol = ProxyHeaderProtocol  # type: ignore[assignment]

    def __init__(
        self,
        wrappedFactory: IProtocolFactory,
        clock: IReactorTime | None = None,
        headerTimeout: float = HEADER_TIMEOUT,
    ) -> None:
        """
        @param wrappedFactory: Builds the protocols to connect once the header is read.
        @param clock: Times the header out; the global reactor by default.
        @param headerTimeout: Seconds a connection has to send its header.
        """
        super().__init__(wrappedFactory)  # type: ignore[no-untyped-call]
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        assert clock is not None
        self.clock = clock
        self.headerTimeout = headerTimeout


@implementer(IStreamServerEndpoint)
class _ProxyEndpoint:
    def __init__(
        self, wrapped: IStreamServerEndpoint, clock: IReactorTime | None, headerTimeout: float
    ) -> None:
        self._wrapped = wrapped
        self._clock = clock
        self._headerTimeout = headerTimeout

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        return self._wrapped.listen(
            ProxyHeaderFactory(protocolFactory, self._clock, self._headerTimeout)
        )


def proxyEndpoint(
    wrapped: IStreamServerEndpoint,
    clock: IReactorTime | None = None,
    headerTimeout: float = HEADER_TIMEOUT,
) -> IStreamServerEndpoint:
    """
    An endpoint whose connections start with a PROXY header (version 1 or 2), read before
    the protocol is connected (see L{ProxyHeaderProtocol}).

    @param wrapped: The endpoint the proxy connects to.
    @param clock: Times the header out; the global reactor by default.
    @param headerTimeout: Seconds a connection has to send its header before it is dropped.
    """
    return _ProxyEndpoint(wrapped, clock, headerTimeout)


def isProxied(description: str) -> bool:
    """
    Whether a listen description asks for the PROXY protocol (C{haproxy:tcp:...}).
    """
    return description.startswith(PROXY_PREFIX)


def proxyEndpointFromString(
    reactor: IReactorTime, description: str, headerTimeout: float = HEADER_TIMEOUT
) -> IStreamServerEndpoint:
    """
    The L{proxyEndpoint} for a C{haproxy:...} listen description: the rest of the
    description is the endpoint the proxy connects to (C{haproxy:tcp:1110}).

    @param reactor: The reactor, which listens and times the header out.
    @raise ValueError: If C{description} does not start with C{haproxy:}, or what follows
        is not a valid endpoint description.
    """
    if not isProxied(description):
        raise ValueError(f"{description!r} does not start with {PROXY_PREFIX!r}")
    inner = description[len(PROXY_PREFIX) :]
    endpoint = serverFromString(reactor, inner)  # type: ignore[no-untyped-call]
    return proxyEndpoint(endpoint, reactor, headerTimeout)
