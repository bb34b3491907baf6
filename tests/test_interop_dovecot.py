"""
Interoperability of pop3kit's client, C{pop3kit fetch} and C{pop3kit scan} with Dovecot
2.3: a private instance per test (see L{tests._dovecot}) on 127.0.0.2, where clear-text
logins need STLS first, with a POP3S port beside it.

Messages are put into Dovecot's Maildir byte for byte, so what the client receives can be
compared with the files on disk: RETR gives their canonical form (CRLF line ends), and
C{fetch} stores them with LF line ends, which for a file written with LF line ends is the
file itself.
"""

from __future__ import annotations

import importlib.util
import io
import os
from typing import Any, cast

from twisted.internet import reactor as _reactor
from twisted.trial.unittest import SkipTest, TestCase

from pop3kit import _fetch
from pop3kit._fetch import ConnectOptions, FetchError, FetchOptions, parseURL
from pop3kit.client import POP3Client, ServerError, TLSFailed, connect
from pop3kit.errors import ResponseCode
from tests._dovecot import HOST, PASSWORD, DovecotServer
from tests._oracle import crlfForm, lfForm, readMaildir
from tests._pki import PKI
from tests._tools import requireTool
from tests.test_interop_poplib import FIXTURES

reactor = cast(Any, _reactor)

#: The fixtures in a fixed order: message n is C{MESSAGES[n - 1]}.
NAMES = list(FIXTURES)
MESSAGES = [FIXTURES[name] for name in NAMES]

#: Fixtures stored with LF line ends and a final LF: C{fetch} reproduces their files
#: exactly.
LF_FILES = ["lf", "dots", "utf8", "eightBit", "emptyBody", "longLine"]

#: Why the SASL logins cannot be tested, or L{None}: the client's SASL mechanisms live
#: in C{pop3kit.sasl}.
SASL_SKIP = (
    None
    if importlib.util.find_spec("pop3kit.sasl") is not None
    else "pop3kit.sasl is missing: the client has no SASL mechanisms yet"
)


def dovecotSize(message: bytes) -> int:
    """
    The size Dovecot 2.3 lists for a message stored as C{message}: the canonical size,
    less the CRLF it adds at the end of a message whose last line has no line end (RETR
    does send that CRLF: LIST sizes are not exact there).
    """
    size = len(crlfForm(message))
    return size - 2 if message and not message.endswith(b"\n") else size


def dovecotRetrieved(message: bytes) -> bytes:
    """
    What Dovecot 2.3 sends for a message stored as C{message}: its canonical form, but one
    empty line for an empty file.
    """
    return crlfForm(message) or b"\r\n"


class DovecotTestCase(TestCase):
    """
    A fresh Dovecot per test, with the fixtures in alice's Maildir.
    """

    timeout = 60

    def setUp(self) -> None:
        requireTool("dovecot", "dovecot-pop3d")
        self.dovecot = DovecotServer(self.mktemp())
        self.paths = self.dovecot.deliver("alice", *MESSAGES)
        self.uids = [os.path.basename(path) for path in self.paths]
        self.dovecot.start()
        self.addCleanup(self.dovecot.cleanUp)

    async def connect(self, tls: str = "starttls", **kwargs: Any) -> POP3Client:
        """
        Connect to Dovecot's POP3 port (POP3S for implicit TLS), trusting the test CA.
        """
        port = self.dovecot.tlsPort if tls == "implicit" else self.dovecot.port
        kwargs.setdefault("cafile", self.dovecot.cafile)
        client = await connect(reactor, HOST, port, tls=tls, timeout=20, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(self.close, client)
        return client

    def close(self, client: POP3Client) -> None:
        """
        Drop a client's connection if it is still open.
        """
        if client.transport is not None and client.transport.connected:  # type: ignore[attr-defined]
            client.transport.abortConnection()  # type: ignore[attr-defined]

    async def loggedIn(self, user: str = "alice", mechanism: str | None = "user") -> POP3Client:
        """
        A client logged in over STLS.
        """
        client = await self.connect()
        await client.login(user, PASSWORD, mechanism=mechanism)
        return client


class ClientTests(DovecotTestCase):
    """
    Every client command against Dovecot.
    """

    async def test_capabilities(self) -> None:
        """
        After STLS, CAPA is asked again and lists USER, SASL with every mechanism
        configured, UIDL, TOP, PIPELINING and the response-code capabilities.
        """
        client = await self.connect()
        self.assertTrue(client.isSecure)
        capabilities = await client.capabilities()
        for name in ("USER", "UIDL", "TOP", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE"):
            self.assertIn(name, capabilities)
        self.assertNotIn("STLS", capabilities)
        self.assertEqual(
            set(capabilities["SASL"]),
            {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"},
        )
        await client.quit()

    async def loginWith(self, mechanisms: list[str], user: str = "alice") -> None:
        """
        Log in as C{user} with each of C{mechanisms} in turn, checking STAT.
        """
        messages = MESSAGES if user == "alice" else []
        total = sum(dovecotSize(m) for m in messages)
        for mechanism in mechanisms:
            client = await self.connect()
            stat = await client.login(user, PASSWORD, mechanism=mechanism)
            self.assertEqual(stat, (len(messages), total), mechanism)
            await client.quit()

    async def test_userAndApop(self) -> None:
        """
        USER/PASS and APOP log alice in (her password is stored in clear); STAT counts her
        messages.
        """
        await self.loginWith(["user", "apop"])

    async def test_saslMechanisms(self) -> None:
        """
        Each SASL mechanism Dovecot offers logs alice in, and the client's own choice too.
        """
        if SASL_SKIP is not None:
            raise SkipTest(SASL_SKIP)
        await self.loginWith(["plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256"])
        client = await self.connect()
        await client.login("alice", PASSWORD)
        await client.quit()

    async def test_hashedPasswords(self) -> None:
        """
        A SCRAM-SHA-256-stored password works with USER/PASS (and SCRAM-SHA-256); a
        salted SHA-256 one with USER/PASS; both are refused for CRAM-MD5, which needs the
        clear password.
        """
        await self.loginWith(["user"], "scram")
        await self.loginWith(["user"], "salted")
        if SASL_SKIP is not None:
            raise SkipTest(SASL_SKIP)
        await self.loginWith(["scram-sha-256", "plain"], "scram")
        for user in ("scram", "salted"):
            client = await self.connect()
            with self.assertRaises(ServerError):
                await client.login(user, PASSWORD, mechanism="cram-md5")

    async def test_listingsAndRetrieve(self) -> None:
        """
        STAT, LIST, LIST n, UIDL and UIDL n agree with the files; RETR gives each file's
        canonical form (CRLF line ends), in memory and streamed to a file.
        """
        client = await self.loggedIn()
        sizes = await client.listSizes()
        self.assertEqual(sizes, {n: dovecotSize(m) for n, m in enumerate(MESSAGES, 1)})
        self.assertEqual(await client.listSize(3), sizes[3])
        self.assertEqual(await client.listUids(), dict(enumerate(self.uids, 1)))
        self.assertEqual(await client.listUid(2), self.uids[1])
        self.assertEqual(await client.stat(), (len(MESSAGES), sum(sizes.values())))
        for number, onDisk in enumerate(MESSAGES, 1):
            self.assertEqual(
                await client.retrieve(number), dovecotRetrieved(onDisk), NAMES[number - 1]
            )
            streamed = io.BytesIO()
            octets = await client.retrieve(number, streamed)
            self.assertEqual(streamed.getvalue(), dovecotRetrieved(onDisk))
            self.assertEqual(octets, len(streamed.getvalue()))
        await client.quit()

    async def test_top(self) -> None:
        """
        TOP n 0 gives the headers and the blank line; TOP n 1 one body line more.
        """
        client = await self.loggedIn()
        lf = NAMES.index("lf") + 1
        self.assertEqual(await client.top(lf, 0), b"From: a@example.com\r\nSubject: LF\r\n\r\n")
        self.assertEqual(
            await client.top(lf, 1), b"From: a@example.com\r\nSubject: LF\r\n\r\nline one\r\n"
        )
        await client.quit()

    async def test_deleteResetNoopQuit(self) -> None:
        """
        DELE marks, RSET unmarks, NOOP answers; DELE then QUIT really removes the file,
        and only that one.
        """
        client = await self.loggedIn()
        await client.delete(1)
        with self.assertRaises(ServerError):
            await client.retrieve(1)
        await client.reset()
        self.assertEqual(await client.retrieve(1), crlfForm(MESSAGES[0]))
        await client.noop()
        await client.delete(2)
        await client.quit()
        remaining = self.dovecot.files("alice")
        self.assertEqual(sorted(remaining), sorted(self.uids[:1] + self.uids[2:]))

    async def test_droppedSessionDeletesNothing(self) -> None:
        """
        DELE without QUIT, the connection dropped: every file is still there.
        """
        client = await self.loggedIn()
        await client.delete(1)
        self.close(client)
        client2 = await self.loggedIn()
        self.assertEqual(len(await client2.listSizes()), len(MESSAGES))
        await client2.quit()

    async def test_implicitTLS(self) -> None:
        """
        On the POP3S port TLS comes first; USER/PASS is then allowed.
        """
        client = await self.connect(tls="implicit")
        self.assertTrue(client.isSecure)
        self.assertNotIn("STLS", await client.capabilities())
        await client.login("alice", PASSWORD, mechanism="user")
        self.assertEqual(len(await client.listUids()), len(MESSAGES))
        await client.quit()

    async def test_clearTextLoginRefusedByDovecot(self) -> None:
        """
        Without STLS, Dovecot refuses USER/PASS with C{[AUTH]}: the instance really needs
        STLS (it would not, had the client's address been the server's).
        """
        client = await self.connect(tls="none", allowCleartextLogin=True)
        self.assertFalse(client.isSecure)
        self.assertIn("STLS", await client.capabilities())
        with self.assertRaises(ServerError) as caught:
            await client.login("alice", PASSWORD, mechanism="user")
        self.assertIs(caught.exception.code, ResponseCode.AUTH)

    async def test_wrongPassword(self) -> None:
        """
        A wrong password is a L{ServerError} with code C{AUTH}, for USER/PASS, APOP and
        SASL.
        """
        mechanisms = ["user", "apop"]
        if SASL_SKIP is None:
            mechanisms += ["plain", "scram-sha-256", "cram-md5"]
        for mechanism in mechanisms:
            client = await self.connect()
            with self.assertRaises(ServerError) as caught:
                await client.login("alice", "wrong", mechanism=mechanism)
            self.assertIs(caught.exception.code, ResponseCode.AUTH, mechanism)

    async def test_wrongHostname(self) -> None:
        """
        A certificate that is not valid for the name asked for is refused with
        L{TLSFailed}, on both ports.
        """
        for tls in ("implicit", "starttls"):
            with self.assertRaises(TLSFailed) as caught:
                await self.connect(tls=tls, hostname="wrong.example")
            self.assertIn("wrong.example", str(caught.exception), tls)

    async def test_unknownAuthority(self) -> None:
        """
        A certificate from an authority not trusted is refused.
        """
        other = PKI(os.path.abspath(self.mktemp()), "another CA")
        with self.assertRaises(TLSFailed):
            await self.connect(tls="implicit", cafile=other.ca.certificate)


class FetchTests(DovecotTestCase):
    """
    C{pop3kit fetch} and C{pop3kit scan} against Dovecot.
    """

    async def fetch(self, url: str, password: str = PASSWORD, **options: Any) -> _fetch.FetchResult:
        """
        Fetch into a Maildir in the test's directory.
        """
        self.target = os.path.abspath(self.mktemp())
        connectOptions = ConnectOptions(
            cafile=options.pop("cafile", self.dovecot.cafile), timeout=20
        )
        fetchOptions = FetchOptions(
            destination=f"maildir:{self.target}",
            stateFile=os.path.join(self.target + ".state"),
            connect=connectOptions,
            **options,
        )
        return await _fetch.fetch(reactor, parseURL(url), fetchOptions, password, environ={})

    def stored(self) -> list[bytes]:
        """
        What C{fetch} stored, in delivery order.
        """
        from tests.test_fetch import inDeliveryOrder

        return inDeliveryOrder(self.target)

    async def test_fetchByteExact(self) -> None:
        """
        C{fetch} over POP3S and over STLS stores every message with LF line ends; a file
        that Dovecot holds with LF line ends is stored byte for byte as it is on disk.
        """
        for url in (
            f"pop3s://alice@{HOST}:{self.dovecot.tlsPort}",
            f"pop3://alice@{HOST}:{self.dovecot.port}",
        ):
            result = await self.fetch(url)
            self.assertEqual(result.fetched, len(MESSAGES))
            stored = self.stored()
            self.assertEqual(
                stored, [dovecotRetrieved(m).replace(b"\r\n", b"\n") for m in MESSAGES], url
            )
            self.assertEqual(stored, [lfForm(m) or b"\n" for m in MESSAGES], url)
            for name in LF_FILES:
                self.assertEqual(stored[NAMES.index(name)], FIXTURES[name], name)

    async def test_fetchDeleteRemovesFiles(self) -> None:
        """
        C{fetch --delete} empties Dovecot's Maildir only of what it stored.
        """
        result = await self.fetch(f"pop3s://alice@{HOST}:{self.dovecot.tlsPort}", delete=True)
        self.assertEqual((result.fetched, result.deleted), (len(MESSAGES), len(MESSAGES)))
        self.assertEqual(self.dovecot.files("alice"), {})
        self.assertEqual(len(readMaildir(self.target)), len(MESSAGES))

    async def test_fetchErrors(self) -> None:
        """
        A wrong password exits with L{_fetch.EX_NOPERM}, an untrusted certificate with
        L{_fetch.EX_TLS}, a closed port with L{_fetch.EX_UNAVAILABLE}.
        """
        url = f"pop3s://alice@{HOST}:{self.dovecot.tlsPort}"
        other = PKI(os.path.abspath(self.mktemp()), "another CA")
        cases = [
            (url, {"password": "wrong"}, _fetch.EX_NOPERM),
            (url, {"cafile": other.ca.certificate}, _fetch.EX_TLS),
            (
                f"pop3://alice@{HOST}:{self.dovecot.port}",
                {"cafile": other.ca.certificate},
                _fetch.EX_TLS,
            ),
        ]
        for target, options, status in cases:
            with self.assertRaises(FetchError) as caught:
                await self.fetch(target, **options)
            self.assertEqual(caught.exception.status, status, str(caught.exception))
        self.dovecot.stop()
        with self.assertRaises(FetchError) as caught:
            await self.fetch(url)
        self.assertEqual(caught.exception.status, _fetch.EX_UNAVAILABLE, str(caught.exception))

    async def test_scan(self) -> None:
        """
        C{scan} prints one line per message with the decoded subject, then deletes the
        messages asked for.
        """
        output = io.StringIO()
        account = parseURL(f"pop3s://alice@{HOST}:{self.dovecot.tlsPort}")
        options = ConnectOptions(cafile=self.dovecot.cafile, timeout=20)
        count = await _fetch.scan(reactor, account, options, PASSWORD, output, delete=[1, 2])
        self.assertEqual(count, len(MESSAGES))
        lines = output.getvalue().splitlines()
        self.assertEqual(len(lines), len(MESSAGES))
        self.assertIn("café", lines[NAMES.index("utf8")])
        self.assertIn("a@example.com", lines[0])
        self.assertEqual(sorted(self.dovecot.files("alice")), sorted(self.uids[2:]))
