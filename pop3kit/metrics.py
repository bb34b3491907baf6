# -*- test-case-name: tests.test_metrics -*-
"""
Prometheus metrics of a pop3kit server, made from its log events.

The metrics have one source of truth, the events of L{pop3kit.audit}: a
L{MetricsObserver} is a log observer that turns each event into metric updates, on a
registry of its own (so that several servers in one process, and tests, do not share
counters).  Add it to a server factory's
L{auditLog <pop3kit.server.POP3ServerFactory.auditLog>} and serve its registry over HTTP
with L{metricsService}::

    observer = MetricsObserver()
    factory.auditLog.addObserver(observer)
    metricsService(reactor, "tcp:9110:interface=127.0.0.1", observer.registry)

C{twistd pop3kit --metrics tcp:9110:interface=127.0.0.1} does just that.  The metrics are
listed in C{docs/operations.rst}.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorCore, IReactorThreads
from twisted.logger import ILogObserver, LogEvent
from twisted.web.http import Request
from twisted.web.server import Site
from twisted.web.wsgi import WSGIResource
from zope.interface import implementer

from pop3kit import audit

__all__ = ["MetricsObserver", "metricsService"]

#: Buckets of the latency histograms, in seconds: from a local backend to a slow
#: checker, and the failed-login delays (2 to 15 s by default).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20)


@implementer(ILogObserver)
class MetricsObserver:
    """
    A log observer that keeps Prometheus metrics of the sessions whose events
    (L{pop3kit.audit}) it sees.  Other events are ignored.

    @ivar registry: The registry holding the metrics.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """
        @param registry: Where the metrics are registered; a new registry by default.
        """
        self.registry = CollectorRegistry() if registry is None else registry
        r = self.registry
        self._listeners: dict[str, str] = {}
        self.connectionsOpen = Gauge(
            "pop3kit_connections_open", "Connections open.", ["listener"], registry=r
        )
        self.connections = Counter(
            "pop3kit_connections", "Connections accepted.", ["listener"], registry=r
        )
        self.logins = Counter(
            "pop3kit_logins",
            "Logins, by outcome (accepted, refused), mechanism and reason of a refusal.",
            ["outcome", "mechanism", "reason"],
            registry=r,
        )
        self.loginSeconds = Histogram(
            "pop3kit_login_seconds",
            "Time from a login command to its answer, failed-login delay included.",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tlsHandshakes = Counter(
            "pop3kit_tls_handshakes", "TLS handshakes completed.", registry=r
        )
        self.tlsFailures = Counter(
            "pop3kit_tls_handshake_failures", "TLS handshakes failed or timed out.", registry=r
        )
        self.retrieved = Counter(
            "pop3kit_retrieved_messages", "Messages sent whole by RETR.", registry=r
        )
        self.retrievedOctets = Counter(
            "pop3kit_retrieved_octets", "Octets of the messages sent by RETR.", registry=r
        )
        self.tops = Counter("pop3kit_top_commands", "TOP responses sent whole.", registry=r)
        self.firstByteSeconds = Histogram(
            "pop3kit_retrieve_first_byte_seconds",
            "Time from a RETR or TOP to the first octet of its answer.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.deleted = Counter("pop3kit_deleted_messages", "Messages removed at QUIT.", registry=r)
        self.expungeFailures = Counter(
            "pop3kit_expunge_failures", "QUITs whose messages could not be removed.", registry=r
        )
        self.backendSeconds = Histogram(
            "pop3kit_backend_seconds",
            "Time taken by the checkers (check), by opening a maildrop: LOGIN-DELAY, lock "
            "and listing (open), and by removing messages (expunge).",
            ["call"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.penaltiesInForce = Gauge(
            "pop3kit_penalties_in_force",
            "Failed logins being answered after the failed-login delay, now.",
            registry=r,
        )
        self.penalties = Counter("pop3kit_penalties", "Failed-login delays imposed.", registry=r)
        self.evictions = Counter(
            "pop3kit_evictions",
            "Connections closed before login to make room for newer ones.",
            registry=r,
        )
        self.timeouts = Counter(
            "pop3kit_timeouts", "Connections closed for inactivity.", registry=r
        )
        self.lockRefusals = Counter(
            "pop3kit_lock_refusals", "Logins refused because the maildrop was in use.", registry=r
        )
        self._handlers: dict[str, Callable[[LogEvent], None]] = {
            audit.CONNECTED.name: self._connected,
            audit.LOGGED_OUT.name: self._ended,
            audit.DISCONNECTED.name: self._ended,
            audit.LOGIN_ACCEPTED.name: self._loggedIn,
            audit.LOGIN_REFUSED.name: self._refused,
            audit.TLS_ESTABLISHED.name: lambda e: self.tlsHandshakes.inc(),
            audit.TLS_FAILED.name: lambda e: self.tlsFailures.inc(),
            audit.RETRIEVED.name: self._retrieved,
            audit.PENALTY.name: self._penalty,
            audit.EVICTED.name: lambda e: self.evictions.inc(),
            audit.TIMED_OUT.name: lambda e: self.timeouts.inc(),
            audit.LOCK_REFUSED.name: lambda e: self.lockRefusals.inc(),
        }

    def __call__(self, event: LogEvent) -> None:
        """
        Update the metrics for C{event}.
        """
        handler = self._handlers.get(event.get(audit.EVENT_FIELD, ""))
        if handler is not None:
            handler(event)

    def _connected(self, event: LogEvent) -> None:
        listener = event["listener"]
        self._listeners[event["sessionId"]] = listener
        self.connections.labels(listener).inc()
        self.connectionsOpen.labels(listener).inc()

    def _ended(self, event: LogEvent) -> None:
        listener = self._listeners.pop(event["sessionId"], None)
        if listener is not None:
            self.connectionsOpen.labels(listener).dec()
        if event.get("expunge") == "failed":
            self.expungeFailures.inc()
        if event.get("deleted"):
            self.deleted.inc(event["deleted"])
        if event.get("expungeSeconds") is not None:
            self.backendSeconds.labels("expunge").observe(event["expungeSeconds"])

    def _login(self, event: LogEvent, outcome: str, reason: str) -> None:
        self.logins.labels(outcome, event["mechanism"] or "", reason).inc()
        self.loginSeconds.labels(outcome).observe(event["seconds"])
        if event["checkSeconds"] is not None:
            self.backendSeconds.labels("check").observe(event["checkSeconds"])

    def _loggedIn(self, event: LogEvent) -> None:
        self._login(event, "accepted", "")
        if event["openSeconds"] is not None:
            self.backendSeconds.labels("open").observe(event["openSeconds"])

    def _refused(self, event: LogEvent) -> None:
        self._login(event, "refused", event["reason"])
        if event["penalty"]:
            self.penaltiesInForce.dec()

    def _retrieved(self, event: LogEvent) -> None:
        if event["top"]:
            self.tops.inc()
        else:
            self.retrieved.inc()
            self.retrievedOctets.inc(event["octets"])
        if event["firstByteSeconds"] is not None:
            self.firstByteSeconds.observe(event["firstByteSeconds"])

    def _penalty(self, event: LogEvent) -> None:
        self.penalties.inc()
        self.penaltiesInForce.inc()


class _QuietSite(Site):
    """
    A site that does not log every scrape.
    """

    def log(self, request: Request) -> None:
        """
        Log nothing.
        """


def metricsService(
    reactor: IReactorCore, description: str, registry: CollectorRegistry
) -> IService:
    """
    A service serving the metrics of C{registry} over HTTP (Prometheus text, or
    OpenMetrics when the scraper asks for it), on every path, at the server endpoint
    C{description}.

    @param reactor: Listens, and runs the rendering in its thread pool.
    @param description: A Twisted server endpoint, e.g. C{tcp:9110:interface=127.0.0.1}.
    @param registry: The metrics to serve.
    @raise ValueError: If C{description} is not a valid endpoint description.
    """
    from prometheus_client.exposition import make_wsgi_app

    threads: IReactorThreads = reactor  # type: ignore[assignment]
    app = make_wsgi_app(registry)
    resource = WSGIResource(threads, threads.getThreadPool(), app)  # type: ignore[no-untyped-call]
    site = _QuietSite(resource)  # type: ignore[no-untyped-call]
    endpoint = serverFromString(reactor, description)  # type: ignore[no-untyped-call]
    return StreamServerEndpointService(endpoint, site)  # type: ignore[no-untyped-call, no-any-return]
