"""
Tests for L{pop3kit.metrics}: the metrics made from the session events, in memory and
scraped over HTTP from a running C{twistd pop3kit --metrics}.
"""

from __future__ import annotations

import json
import poplib
import re
import sys
import urllib.request
from typing import Any, cast

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import fail
from twisted.internet.threads import deferToThread
from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit.errors import TemporaryFailure
from pop3kit.metrics import MetricsObserver
from tests.test_audit import PASSWORD, Server
from tests.test_twistd import TWISTD, ServerProcess

#: What Twisted logs when the metrics site starts listening.
_METRICS_LISTENING = re.compile(r"_QuietSite starting on (\d+)")


class Observed:
    """
    A server whose events feed a L{MetricsObserver}.
    """

    def __init__(self, **options: Any) -> None:
        self.server = Server(**options)
        self.observer = MetricsObserver()
        self.server.factory.auditLog.addObserver(cast(ILogObserver, self.observer))

    def value(self, name: str, **labels: str) -> float | None:
        return self.observer.registry.get_sample_value(name, labels)


class ObserverTests(SynchronousTestCase):
    """
    L{MetricsObserver} counts what the events report.
    """

    def test_connections(self) -> None:
        """
        Connections are counted by listener, and open ones go down as they end.
        """
        observed = Observed()
        first, second = observed.server.connect(), observed.server.connect()
        self.assertEqual(observed.value("pop3kit_connections_total", listener="12345"), 2)
        self.assertEqual(observed.value("pop3kit_connections_open", listener="12345"), 2)
        first.drop()
        second.login(b"alice", PASSWORD.encode())
        second.drop()
        self.assertEqual(observed.value("pop3kit_connections_open", listener="12345"), 0)

    def test_logins(self) -> None:
        """
        Logins are counted by outcome, mechanism and reason, and timed.
        """
        observed = Observed()
        observed.server.connect().login(b"alice", b"wrong")
        observed.server.connect().login(b"nobody", b"wrong")
        observed.server.connect().login(b"alice", PASSWORD.encode())
        value = observed.value
        labels = {"outcome": "refused", "mechanism": "USER"}
        self.assertEqual(value("pop3kit_logins_total", **labels, reason="wrong password"), 1)
        self.assertEqual(value("pop3kit_logins_total", **labels, reason="unknown user"), 1)
        self.assertEqual(
            value("pop3kit_logins_total", outcome="accepted", mechanism="USER", reason=""), 1
        )
        self.assertEqual(value("pop3kit_login_seconds_count", outcome="refused"), 2)
        self.assertEqual(value("pop3kit_backend_seconds_count", call="check"), 3)
        self.assertEqual(value("pop3kit_backend_seconds_count", call="open"), 1)

    def test_retrievedAndDeleted(self) -> None:
        """
        Messages and octets retrieved, TOPs and deletions are counted; RETR's time to
        the first octet is a histogram.
        """
        observed = Observed()
        connection = observed.server.connect()
        connection.login(b"alice", PASSWORD.encode())
        connection.send(b"RETR 1\r\nRETR 1\r\nTOP 2 0\r\nDELE 2\r\nQUIT\r\n")
        connection.drop()
        [logout] = observed.server.named("logout")
        self.assertEqual(observed.value("pop3kit_retrieved_messages_total"), 2)
        self.assertEqual(
            observed.value("pop3kit_retrieved_octets_total"), logout["retrievedOctets"]
        )
        self.assertEqual(observed.value("pop3kit_top_commands_total"), 1)
        self.assertEqual(observed.value("pop3kit_retrieve_first_byte_seconds_count"), 3)
        self.assertEqual(observed.value("pop3kit_deleted_messages_total"), 1)
        self.assertEqual(observed.value("pop3kit_expunge_failures_total"), 0)
        self.assertEqual(observed.value("pop3kit_backend_seconds_count", call="expunge"), 1)

    def test_expungeFailure(self) -> None:
        """
        A QUIT whose messages could not be removed is an expunge failure.
        """
        observed = Observed()
        connection = observed.server.connect()
        connection.login(b"alice", PASSWORD.encode())
        mailbox = observed.server.realm.getMailbox("alice")
        mailbox.expunge = lambda uids: fail(TemporaryFailure())  # type: ignore[method-assign]
        connection.send(b"DELE 1\r\nQUIT\r\n")
        connection.drop()
        self.assertEqual(observed.value("pop3kit_expunge_failures_total"), 1)
        self.assertEqual(observed.value("pop3kit_deleted_messages_total"), 0)

    def test_penaltiesInForce(self) -> None:
        """
        A failed-login delay is in force until the refusal is sent.
        """
        observed = Observed(failedLoginDelay=2)
        observed.server.connect().login(b"alice", b"wrong")
        self.assertEqual(observed.value("pop3kit_penalties_in_force"), 1)
        observed.server.clock.advance(2)
        self.assertEqual(observed.value("pop3kit_penalties_in_force"), 0)
        self.assertEqual(observed.value("pop3kit_penalties_total"), 1)

    def test_evictionsTimeoutsLocks(self) -> None:
        """
        Evictions, timeouts and refused locks are counted.
        """
        observed = Observed(maxPerClient=1, loginGrace=0)
        observed.server.connect().login(b"alice", PASSWORD.encode())
        evicted = observed.server.connect("127.0.0.2")
        observed.server.connect("127.0.0.2").login(b"alice", PASSWORD.encode())
        self.assertTrue(evicted.transport.disconnecting)
        evicted.drop()
        observed.server.clock.advance(observed.server.factory.timeout)
        self.assertEqual(observed.value("pop3kit_evictions_total"), 1)
        self.assertEqual(observed.value("pop3kit_lock_refusals_total"), 1)
        self.assertEqual(observed.value("pop3kit_timeouts_total"), 2)

    def test_ownRegistry(self) -> None:
        """
        Each observer has its own registry, so that two servers do not collide; a
        registry can be given.
        """
        registry = CollectorRegistry()
        self.assertIs(MetricsObserver(registry).registry, registry)
        self.assertIsNot(MetricsObserver().registry, MetricsObserver().registry)

    def test_otherEvents(self) -> None:
        """
        Events not of the vocabulary are ignored.
        """
        MetricsObserver()({"log_format": "hello", "log_namespace": "elsewhere"})


class MetricsOptionTests(SynchronousTestCase):
    """
    C{--metrics} takes a server endpoint description.
    """

    def test_badEndpoint(self) -> None:
        """
        A description Twisted cannot parse is a usage error naming the option.
        """
        from twisted.python.usage import UsageError

        from pop3kit.tap import Options

        for description in ("tcp:abc", "nosuch:1"):
            error = self.assertRaises(
                UsageError, Options().parseOptions, ["--metrics", description]
            )
            self.assertIn(f"--metrics {description}", str(error))

    def test_service(self) -> None:
        """
        With C{--metrics}, the service has one more child: the metrics site.
        """
        from pop3kit.tap import Options, makeService

        options = Options()
        options.parseOptions(["--data-dir", self.mktemp()])
        plain = len(list(makeService(options)))  # type: ignore[call-overload]
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp(), "--metrics", "tcp:0"])
        self.assertEqual(len(list(makeService(options))), plain + 1)  # type: ignore[call-overload]


class TwistdMetricsTests(TestCase):
    """
    C{twistd pop3kit --metrics}, scraped by a real HTTP client, logging JSON lines.
    """

    timeout = 120

    async def test_scrape(self) -> None:
        """
        After a failed and a successful login, a RETR and a deletion, the metrics served
        over HTTP say so, and every line of the JSON log is an object.
        """
        server = ServerProcess(self)
        server.start(
            [
                *(sys.executable, "-c", TWISTD, "--nodaemon", "--pidfile="),
                *("--logger", "pop3kit.audit.jsonLinesObserver"),
            ],
            [
                *("--listen", "tcp:0:interface=127.0.0.1"),
                *("--metrics", "tcp:0:interface=127.0.0.1"),
                *("--data-dir", server.dataDir, "--failed-login-delay", "0"),
            ],
        )
        port = await server.waitUntilListening()
        metricsPort = int(
            (await server._waitUntil(_METRICS_LISTENING.search, "the metrics port", 30)).group(1)
        )
        added = await server.pop3kit("user", "add", "alice", "--password-stdin", stdin=b"pw\n")
        self.assertEqual(added.returncode, 0, added.stderr)
        for _ in range(2):
            delivered = await server.pop3kit("deliver", "alice", stdin=b"Subject: x\n\nbody\n")
            self.assertEqual(delivered.returncode, 0, delivered.stderr)

        def sessions() -> None:
            client = poplib.POP3("127.0.0.1", port, timeout=30)
            client.user("alice")
            self.assertRaises(poplib.error_proto, client.pass_, "wrong")
            client.close()
            client = poplib.POP3("127.0.0.1", port, timeout=30)
            client.user("alice")
            client.pass_("pw")
            client.retr(1)
            client.dele(2)
            client.quit()
            client.close()

        await deferToThread(sessions)
        await server.waitForLog('"pop3kitEvent": "logout"')

        def scrape() -> str:
            url = f"http://127.0.0.1:{metricsPort}/metrics"
            with urllib.request.urlopen(url, timeout=30) as response:
                return cast(bytes, response.read()).decode("utf-8")

        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(await deferToThread(scrape))
            for sample in family.samples
        }

        def value(name: str, **labels: str) -> float:
            return samples[(name, tuple(sorted(labels.items())))]

        listener = str(port)
        self.assertEqual(value("pop3kit_connections_total", listener=listener), 2)
        self.assertEqual(value("pop3kit_connections_open", listener=listener), 0)
        self.assertEqual(
            value("pop3kit_logins_total", outcome="accepted", mechanism="USER", reason=""), 1
        )
        self.assertEqual(
            value(
                "pop3kit_logins_total", outcome="refused", mechanism="USER", reason="wrong password"
            ),
            1,
        )
        self.assertEqual(value("pop3kit_retrieved_messages_total"), 1)
        self.assertGreater(value("pop3kit_retrieved_octets_total"), 0)
        self.assertEqual(value("pop3kit_deleted_messages_total"), 1)
        self.assertEqual(value("pop3kit_retrieve_first_byte_seconds_count"), 1)
        self.assertEqual(value("pop3kit_login_seconds_count", outcome="accepted"), 1)

        with open(server.directory + "/output", encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        events = [r["pop3kitEvent"] for r in records if "pop3kitEvent" in r]
        self.assertEqual(
            events,
            [
                "connect",
                "login.refused",
                "disconnect",
                "connect",
                "login.accepted",
                "logout",
            ],
        )
        self.assertIn(await server.stop(), (0, -15), server.log())
