"""
Tests for SASL GSSAPI (L{pop3kit._gssapi}, RFC 4752) against a real, private MIT
Kerberos realm (L{tests._kdc}): pop3kit's client and server with each other, the
principal mapping, and the refusals (no ticket, expired ticket, ticket for another
service, wrong keytab, replayed token).
"""

from __future__ import annotations

import os
import struct
from typing import Any, cast

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pop3kit import sasl, tap
from pop3kit._gssapi import (
    GSSAPIChecker,
    GSSAPIClientMechanism,
    GSSAPIServerMechanism,
    GSSAPIUnavailable,
    KerberosPrincipal,
    PrincipalMap,
    hasTicket,
)
from pop3kit.client import MechanismUnavailable, POP3Client, ServerError, connect
from pop3kit.errors import AuthenticationFailed, ResponseCode
from pop3kit.sasl import Challenge, CheckCredentials, MalformedSASLResponse
from tests import _kdc
from tests._tools import missingTool
from tests.test_server_loopback import LoopbackServer, POP3TestClient

reactor = cast(IReactorTime, _reactor)

#: The realm every test of this module shares (started by the first that needs it).
_realm: _kdc.KDC | None = None


def realm(testCase: SynchronousTestCase) -> _kdc.KDC:
    """
    The module's realm, started on first use, with a fresh ticket for alice and its
    environment active for the test.
    """
    global _realm
    if _kdc.SKIP_REASON is not None:
        missingTool(_kdc.SKIP_REASON)
    if _realm is None:
        kdc = _kdc.KDC()
        try:
            kdc.start()
        except BaseException:
            kdc.stop()
            raise
        _realm = kdc
    context = _realm.activated()
    context.__enter__()
    testCase.addCleanup(context.__exit__, None, None, None)
    _realm.kinit()
    return _realm


def _stopRealmAtExit() -> None:
    """
    Stop the realm's KDC and remove its directory when the test process exits (the KDC
    also gets SIGTERM if the process dies without running this).
    """
    import atexit

    atexit.register(lambda: _realm.stop() if _realm is not None else None)


_stopRealmAtExit()


def exchange(
    client: GSSAPIClientMechanism, server: sasl.ServerMechanism
) -> tuple[sasl.Step, list[bytes]]:
    """
    Run a whole exchange in memory: the client's messages go to the server and the
    server's challenges back, until the server ends it.

    @return: The server's last step, and every client message sent.
    """
    sent = [client.initialResponse() or b""]
    step = server.start(sent[0])
    while isinstance(step, Challenge):
        sent.append(client.respond(step.data))
        step = server.respond(sent[-1])
    return step, sent


class PrincipalMapTests(SynchronousTestCase):
    """
    Tests for L{PrincipalMap}, the documented principal-to-user rule.
    """

    def test_localRealmIsStripped(self) -> None:
        """
        A principal of the local realm without an instance maps to its name.
        """
        self.assertEqual(PrincipalMap("EXAMPLE.ORG").userFor("alice@EXAMPLE.ORG"), "alice")

    def test_othersAreRefused(self) -> None:
        """
        Another realm, a principal with an instance, and a principal without a realm
        map to nobody.
        """
        rule = PrincipalMap("EXAMPLE.ORG")
        self.assertIsNone(rule.userFor("alice@OTHER.ORG"))
        self.assertIsNone(rule.userFor("alice/admin@EXAMPLE.ORG"))
        self.assertIsNone(rule.userFor("alice"))
        self.assertIsNone(rule.userFor("@EXAMPLE.ORG"))

    def test_mapFileWins(self) -> None:
        """
        The map file's pairs come first, for any principal.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("# comment\n\nbob@OTHER.ORG  robert\nalice@EXAMPLE.ORG ally\n")
        rule = PrincipalMap("EXAMPLE.ORG", PrincipalMap.readFile(path))
        self.assertEqual(rule.userFor("bob@OTHER.ORG"), "robert")
        self.assertEqual(rule.userFor("alice@EXAMPLE.ORG"), "ally")
        self.assertEqual(rule.userFor("carol@EXAMPLE.ORG"), "carol")

    def test_malformedMapFile(self) -> None:
        """
        A line that is not a principal and a user name is refused, with its number.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("alice@EXAMPLE.ORG alice\nbob\n")
        e = self.assertRaises(ValueError, PrincipalMap.readFile, path)
        self.assertIn("line 2", str(e))


class MechanismTests(SynchronousTestCase):
    """
    The RFC 4752 exchange between L{GSSAPIClientMechanism} and the server mechanism,
    in memory, with tickets and keys of the real realm.
    """

    def setUp(self) -> None:
        self.kdc = realm(self)
        self.checker = GSSAPIChecker(_kdc.SERVICE_HOST, keytab=self.kdc.keytab)

    def server(self) -> GSSAPIServerMechanism:
        return cast(GSSAPIServerMechanism, sasl.serverMechanism("GSSAPI", gssapi=self.checker))

    def test_exchange(self) -> None:
        """
        The exchange ends with the authenticated principal, to check through the portal;
        the client is complete only once the security layer is agreed.
        """
        client = GSSAPIClientMechanism(_kdc.SERVICE_HOST)
        self.assertFalse(client.complete)
        step, _ = exchange(client, self.server())
        self.assertIsInstance(step, CheckCredentials)
        credentials = cast(CheckCredentials, step).credentials
        self.assertEqual(cast(KerberosPrincipal, credentials).principal, f"alice@{_kdc.REALM}")
        self.assertEqual(cast(KerberosPrincipal, credentials).authzid, "")
        self.assertTrue(client.complete)
        user = self.successResultOf(self.checker.requestAvatarId(credentials))
        self.assertEqual(user, "alice")

    def test_authzid(self) -> None:
        """
        The client's authorization identity reaches the checker, which accepts it only
        for the principal's own user name.
        """
        step, _ = exchange(GSSAPIClientMechanism(_kdc.SERVICE_HOST, "bob"), self.server())
        credentials = cast(CheckCredentials, step).credentials
        self.assertEqual(cast(KerberosPrincipal, credentials).authzid, "bob")
        self.failureResultOf(self.checker.requestAvatarId(credentials), UnauthorizedLogin)

    def test_securityLayerOffer(self) -> None:
        """
        The server offers "no security layer" alone, with a maximum size of 0.
        """
        client = GSSAPIClientMechanism(_kdc.SERVICE_HOST)
        server = self.server()
        step = server.start(client.initialResponse())
        offers: list[bytes] = []
        original = client._context.unwrap

        def unwrap(message: bytes) -> Any:
            result = original(message)
            offers.append(result.message)
            return result

        client._context.unwrap = unwrap
        while isinstance(step, Challenge):
            step = server.respond(client.respond(step.data))
        self.assertEqual(offers, [struct.pack("!I", 1 << 24)])

    def test_replayIsRefused(self) -> None:
        """
        A context token already accepted once fails like a wrong password: the
        acceptor uses the replay cache.
        """
        client = GSSAPIClientMechanism(_kdc.SERVICE_HOST)
        _, sent = exchange(client, self.server())
        replay = self.server()
        self.assertRaises(AuthenticationFailed, replay.start, sent[0])

    def test_securityLayerRequired(self) -> None:
        """
        A client that asks for a security layer is refused: none is offered.
        """
        client = GSSAPIClientMechanism(_kdc.SERVICE_HOST)
        server = self.server()
        step = server.start(client.initialResponse())
        while isinstance(step, Challenge) and not client._context.complete:
            step = server.respond(client.respond(step.data))
        if isinstance(step, Challenge) and step.data and server._state != "layers":
            step = server.respond(client.respond(step.data))
        assert isinstance(step, Challenge)
        wrapped = client._context.wrap(struct.pack("!I", 4 << 24), False).message
        self.assertRaises(MalformedSASLResponse, server.respond, wrapped)

    def test_garbageToken(self) -> None:
        """
        A token that is not a Kerberos AP-REQ fails like a wrong password.
        """
        self.assertRaises(AuthenticationFailed, self.server().start, b"\x60\x03garbage")

    def test_ticketForAnotherService(self) -> None:
        """
        A ticket for another service (C{pop/elsewhere}) is refused.
        """
        self.kdc.kadmin("addprinc -randkey pop/elsewhere") if not _hasPrincipal(
            self.kdc, "pop/elsewhere"
        ) else None
        client = GSSAPIClientMechanism("elsewhere")
        self.assertRaises(AuthenticationFailed, self.server().start, client.initialResponse())

    def test_noTicket(self) -> None:
        """
        Without a ticket the client says to run kinit, as a L{ValueError}; L{hasTicket}
        says there is none.
        """
        self.assertTrue(hasTicket())
        self.kdc.kdestroy()
        self.assertFalse(hasTicket())
        e = self.assertRaises(ValueError, GSSAPIClientMechanism, _kdc.SERVICE_HOST)
        self.assertIn("kinit", str(e))

    def test_staleKeytab(self) -> None:
        """
        A keytab with an old key of the service principal (the key was changed since)
        refuses every ticket.
        """
        stale = os.path.abspath(self.mktemp())
        principal = "pop/rekeyed"
        self.kdc.kadmin(f"addprinc -randkey {principal}")
        self.kdc.kadmin(f"ktadd -k {stale} {principal}")
        self.kdc.kadmin(f"cpw -randkey {principal}")
        checker = GSSAPIChecker("rekeyed", keytab=stale)
        client = GSSAPIClientMechanism("rekeyed")
        server = sasl.serverMechanism("GSSAPI", gssapi=checker)
        self.assertRaises(AuthenticationFailed, server.start, client.initialResponse())

    def test_keytabWithoutTheServiceKey(self) -> None:
        """
        A keytab without the key of C{pop/HOST} is refused when the checker is made,
        in one line naming the principal and the keytab.
        """
        e = self.assertRaises(
            GSSAPIUnavailable, GSSAPIChecker, "nosuchhost", keytab=self.kdc.keytab
        )
        self.assertIn("pop/nosuchhost", str(e))
        self.assertIn(self.kdc.keytab, str(e))
        self.assertNotIn("\n", str(e))

    def test_noAcceptor(self) -> None:
        """
        A server mechanism without an acceptor fails every exchange like a wrong
        password.
        """
        server = sasl.serverMechanism("GSSAPI")
        self.assertRaises(AuthenticationFailed, server.start, b"anything")


def _hasPrincipal(kdc: _kdc.KDC, name: str) -> bool:
    return name in kdc.kadmin("listprincs")


class ExpiredTicketTests(TestCase):
    """
    An expired ticket is refused.
    """

    timeout = 60

    async def test_expiredTicket(self) -> None:
        """
        A context token made with a ticket that has expired since (beyond the allowed
        clock skew) fails like a wrong password.
        """
        kdc = realm(self)
        kdc.kinit(_kdc.USER, _kdc.PASSWORD, "-l", "2s")
        checker = GSSAPIChecker(_kdc.SERVICE_HOST, keytab=kdc.keytab)
        token = GSSAPIClientMechanism(_kdc.SERVICE_HOST).initialResponse()
        # The acceptor allows a clock skew of one second only.
        strict = os.path.join(kdc.directory, "krb5-strict.conf")
        with open(kdc.environ["KRB5_CONFIG"]) as f:
            config = f.read().replace("[libdefaults]\n", "[libdefaults]\n  clockskew = 1\n")
        with open(strict, "w") as f:
            f.write(config)
        os.environ["KRB5_CONFIG"] = strict
        await deferLater(reactor, 4.0)
        server = sasl.serverMechanism("GSSAPI", gssapi=checker)
        self.assertRaises(AuthenticationFailed, server.start, token)


class LoopbackTests(TestCase):
    """
    pop3kit's client logs in to pop3kit's server with GSSAPI over loopback TCP.
    """

    timeout = 60

    def setUp(self) -> None:
        self.kdc = realm(self)
        self.server = LoopbackServer(self, [b"Subject: kerberos\r\n\r\nhello\r\n"])
        self.server.factory.portal.registerChecker(
            GSSAPIChecker(_kdc.SERVICE_HOST, keytab=self.kdc.keytab)
        )
        self.port = self.server.start()

    async def connect(self, hostname: str = _kdc.SERVICE_HOST) -> POP3Client:
        client = await connect(reactor, "127.0.0.1", self.port, tls="none", hostname=hostname)

        def close() -> Deferred[None]:
            client.abort()
            return client.whenClosed()

        self.addCleanup(close)
        return client

    async def test_offered(self) -> None:
        """
        CAPA announces GSSAPI first, with the password mechanisms.
        """
        client = await self.connect()
        capabilities = await client.capabilities()
        self.assertEqual(capabilities["SASL"][0], "GSSAPI")

    async def test_notOfferedWithoutChecker(self) -> None:
        """
        A server without a GSSAPI checker does not announce it, and refuses it.
        """
        server = LoopbackServer(self)
        port = server.start()
        client = await connect(reactor, "127.0.0.1", port, tls="none", hostname="localhost")
        self.addCleanup(client.abort)
        capabilities = await client.capabilities()
        self.assertNotIn("GSSAPI", capabilities["SASL"])

    async def test_automaticChoice(self) -> None:
        """
        With a ticket, the client chooses GSSAPI by itself; the password is not used.
        """
        client = await self.connect()
        count, _ = await client.login("alice", "")
        self.assertEqual(count, 1)
        message = await client.retrieve(1)
        self.assertIn(b"hello", message)
        await client.quit()

    async def test_automaticChoiceWithoutTicket(self) -> None:
        """
        Without a ticket, the client falls back to the password.
        """
        self.kdc.kdestroy()
        client = await self.connect()
        count, _ = await client.login("alice", "secret")
        self.assertEqual(count, 1)

    async def test_explicit(self) -> None:
        """
        C{mechanism="gssapi"} logs in as the ticket's principal.
        """
        client = await self.connect()
        count, _ = await client.login("ignored", "", mechanism="gssapi")
        self.assertEqual(count, 1)

    async def test_noTicket(self) -> None:
        """
        Asking for GSSAPI without a ticket fails before anything is sent, saying to run
        kinit.
        """
        self.kdc.kdestroy()
        client = await self.connect()
        with self.assertRaises(MechanismUnavailable) as caught:
            await client.login("alice", "", mechanism="gssapi")
        self.assertIn("kinit", str(caught.exception))

    async def test_ticketForAnotherService(self) -> None:
        """
        A ticket for another host's service fails with C{[AUTH]} and the text of a
        wrong password, and counts as a failed login.
        """
        if not _hasPrincipal(self.kdc, "pop/elsewhere"):
            self.kdc.kadmin("addprinc -randkey pop/elsewhere")
        client = await self.connect(hostname="elsewhere")
        with self.assertRaises(ServerError) as caught:
            await client.login("alice", "", mechanism="gssapi")
        self.assertIs(caught.exception.code, ResponseCode.AUTH)
        wrong = await self.connect()
        with self.assertRaises(ServerError) as password:
            await wrong.login("alice", "wrong", mechanism="user")
        self.assertEqual(caught.exception.text, password.exception.text)
        failures = await self.server.factory.loginHistory.recordFailure("127.0.0.1")
        self.assertEqual(failures, 3)

    async def test_rawExchange(self) -> None:
        """
        On the wire: C{AUTH GSSAPI} with the initial response, the server's mutual
        authentication token, the security-layer offer, then C{+OK}.
        """
        import base64

        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        raw = POP3TestClient()
        await connectProtocol(TCP4ClientEndpoint(_reactor, "127.0.0.1", self.port), raw)
        self.addCleanup(raw.transport.loseConnection)  # type: ignore[union-attr]
        await raw.greeting
        mechanism = GSSAPIClientMechanism(_kdc.SERVICE_HOST)
        first = base64.b64encode(mechanism.initialResponse() or b"")
        (answer,) = await raw.send(b"AUTH GSSAPI " + first)
        challenges = 0
        while answer[0].startswith(b"+ "):
            challenges += 1
            response = mechanism.respond(base64.b64decode(answer[0][2:]))
            (answer,) = await raw.send(base64.b64encode(response))
        self.assertTrue(answer[0].startswith(b"+OK"), answer)
        self.assertEqual(challenges, 2)
        self.assertTrue(mechanism.complete)


class TapTests(TestCase):
    """
    C{twistd pop3kit --gssapi-keytab}: the options that offer GSSAPI.
    """

    def setUp(self) -> None:
        self.kdc = realm(self)
        self.dataDir = os.path.abspath(self.mktemp())

    def parse(self, *arguments: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(["--data-dir", self.dataDir, *arguments])
        return options

    def test_keytabOffersGSSAPI(self) -> None:
        """
        With the keytab and the host name, the server announces GSSAPI first.
        """
        options = self.parse(
            "--gssapi-keytab", self.kdc.keytab, "--gssapi-hostname", _kdc.SERVICE_HOST
        )
        factory = tap.makeFactory(options)
        self.assertEqual(factory.capabilities().sasl[0], "GSSAPI")

    def test_noKeytabNoGSSAPI(self) -> None:
        """
        Without a keytab (nor C{KRB5_KTNAME}), GSSAPI is not announced.
        """
        del os.environ["KRB5_KTNAME"]
        factory = tap.makeFactory(self.parse())
        self.assertNotIn("GSSAPI", factory.capabilities().sasl)

    def test_environmentKeytab(self) -> None:
        """
        C{KRB5_KTNAME} stands in for C{--gssapi-keytab}; when it has no key for the
        service, the server starts without GSSAPI.
        """
        factory = tap.makeFactory(self.parse("--gssapi-hostname", _kdc.SERVICE_HOST))
        self.assertIn("GSSAPI", factory.capabilities().sasl)
        factory = tap.makeFactory(self.parse("--gssapi-hostname", "nosuchhost"))
        self.assertNotIn("GSSAPI", factory.capabilities().sasl)

    def test_wrongKeytab(self) -> None:
        """
        A keytab without the service key is a usage error naming the principal.
        """
        e = self.assertRaises(
            usage.UsageError,
            self.parse,
            "--gssapi-keytab",
            self.kdc.keytab,
            "--gssapi-hostname",
            "nosuchhost",
        )
        self.assertIn("pop/nosuchhost", str(e))

    def test_badMapFile(self) -> None:
        """
        A malformed map file is a usage error naming the line.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("alice\n")
        e = self.assertRaises(
            usage.UsageError,
            self.parse,
            "--gssapi-keytab",
            self.kdc.keytab,
            "--gssapi-hostname",
            _kdc.SERVICE_HOST,
            "--gssapi-map",
            path,
        )
        self.assertIn("line 1", str(e))

    def test_hostnameNeedsKeytab(self) -> None:
        """
        C{--gssapi-hostname} without a keytab is a usage error.
        """
        del os.environ["KRB5_KTNAME"]
        self.assertRaises(usage.UsageError, self.parse, "--gssapi-hostname", "localhost")


class FetchCommandTests(TestCase):
    """
    C{pop3kit fetch} with a Kerberos ticket, in a subprocess.
    """

    timeout = 60

    def setUp(self) -> None:
        self.kdc = realm(self)
        self.server = LoopbackServer(self, [b"Subject: kerberos\r\n\r\nhello\r\n"])
        self.server.factory.portal.registerChecker(
            GSSAPIChecker(_kdc.SERVICE_HOST, keytab=self.kdc.keytab)
        )
        self.port = self.server.start()
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.target = os.path.join(self.base, "Maildir")

    async def fetch(self, *args: str) -> tuple[int, str]:
        """
        Run C{pop3kit fetch} as alice from C{localhost}, without a password.

        @return: The exit status and standard error.
        """
        from tests.test_fetch_command import COMMAND, ROOT
        from tests.test_interop_clients import _Collector

        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.base,
            "PYTHONPATH": ROOT,
            "LC_ALL": "C.UTF-8",
            **self.kdc.environ,
        }
        collector = _Collector()
        url = f"pop3://alice@{_kdc.SERVICE_HOST}:{self.port}"
        argv = [*COMMAND, "fetch", url, "--no-tls", "--to", f"maildir:{self.target}", *args]
        cast(Any, _reactor).spawnProcess(collector, COMMAND[0], argv, env=env, path=self.base)
        status = await collector.whenEnded()
        return status, b"".join(collector.err).decode()

    async def test_authGSSAPI(self) -> None:
        """
        C{--auth gssapi} logs in with the ticket: no password is asked for.
        """
        status, err = await self.fetch("--auth", "gssapi")
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(len(os.listdir(os.path.join(self.target, "new"))), 1)

    async def test_automatic(self) -> None:
        """
        Without C{--auth} and without a password, the ticket is used.
        """
        status, err = await self.fetch()
        self.assertEqual((status, err), (0, ""))

    async def test_noTicket(self) -> None:
        """
        C{--auth gssapi} without a ticket fails in one line saying to run kinit.
        """
        self.kdc.kdestroy()
        status, err = await self.fetch("--auth", "gssapi")
        self.assertNotEqual(status, 0)
        self.assertIn("kinit", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)


class WithoutGSSAPITests(SynchronousTestCase):
    """
    Without python-gssapi, GSSAPI is not offered, and asking for it says how to install.
    """

    def setUp(self) -> None:
        import sys

        saved = sys.modules.pop("gssapi", None)
        sys.modules["gssapi"] = None  # type: ignore[assignment]
        self.addCleanup(_restoreModule, "gssapi", saved)

    def test_client(self) -> None:
        """
        The client mechanism cannot be made, with the install hint.
        """
        e = self.assertRaises(ValueError, sasl.clientMechanism, "GSSAPI", "", "", hostname="h")
        self.assertIn("pop3kit[gssapi]", str(e))
        self.assertFalse(hasTicket())

    def test_checker(self) -> None:
        """
        The checker cannot be made, with the install hint; C{twistd pop3kit} turns it into
        a usage error.
        """
        e = self.assertRaises(GSSAPIUnavailable, GSSAPIChecker, "localhost", keytab="kt")
        self.assertIn("pop3kit[gssapi]", str(e))
        options = tap.Options()
        e2 = self.assertRaises(
            usage.UsageError,
            options.parseOptions,
            ["--data-dir", self.mktemp(), "--gssapi-keytab", "kt"],
        )
        self.assertIn("pop3kit[gssapi]", str(e2))


def _restoreModule(name: str, module: Any) -> None:
    """
    Put back the module C{name} as it was: imported (C{module}) or not (L{None}).
    """
    import sys

    if module is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = module
