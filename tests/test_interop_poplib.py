"""
Interoperability with Python's L{poplib}: the standard library's client, run in a thread,
against the real server on loopback TCP, serving Maildirs through a passwd-file.

Every command poplib offers is used, and messages of every awkward shape (and one of
50 MB) must come back exactly as L{tests._oracle.crlfForm} says.
"""

from __future__ import annotations

import hashlib
import io
import os
import poplib
import random
from collections.abc import Callable
from typing import Any, BinaryIO, NamedTuple, TypeVar, cast

from twisted.cred.portal import Portal
from twisted.internet.defer import gatherResults
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from pop3kit.backends.maildir import MaildirRealm, deliver, mailboxPath
from pop3kit.checkers.passwdfile import PasswdFileChecker, addUser, hashPassword
from tests._oracle import crlfForm
from tests.test_server_loopback import LoopbackServer

_T = TypeVar("_T")

#: Stored messages of every shape that is easy to get wrong, by name.
FIXTURES: dict[str, bytes] = {
    "lf": b"From: a@example.com\nSubject: LF\n\nline one\nline two\n",
    "crlf": b"From: a@example.com\r\nSubject: CRLF\r\n\r\nline one\r\nline two\r\n",
    "dots": (
        b"Subject: dots\n\n.\n..\n...\n.leading dot\n..two leading dots\n. \nmiddle.\nend .\n.\n"
    ),
    "dotLast": b"Subject: a final dot without line end\n\ntext\n.",
    "utf8": "Subject: =?utf-8?q?caf=C3=A9?=\n\ncaf\u00e9 \u2603 na\u00efve\n".encode(),
    "eightBit": b"Subject: 8bit\n\n" + bytes(range(0x80, 0x100)) + b"\n\x01\x7f\n",
    "noFinalNewline": b"Subject: unterminated\n\nthe last line has no line end",
    "emptyBody": b"Subject: nothing to say\n\n",
    "empty": b"",
    "loneCR": b"Subject: CR\n\nlone CR\r inside\r\nand at the end\r",
    "longLine": b"Subject: long\n\n" + b"x" * 2000 + b"\n",
}


class Retrieved(NamedTuple):
    """
    What a poplib session saw of a big message: LIST's answer, RETR's status line, the
    SHA-256 and length of the received lines (each ended with CRLF), poplib's octet
    count, how many received lines started with a dot, and QUIT's answer.
    """

    listed: bytes
    status: bytes
    digest: str
    size: int
    octets: int
    dotted: int
    quit: bytes


#: What poplib returns for a multi-line response: status line, lines, octets.
LongResponse = tuple[bytes, list[bytes], int]


def listOne(client: poplib.POP3, number: int) -> bytes:
    """
    C{LIST number} through poplib, whose type hints claim a multi-line result for it.
    """
    return cast(bytes, client.list(number))


def received(lines: list[bytes]) -> bytes:
    """
    What poplib's lines stand for: each line ended with CRLF.
    """
    return b"".join(line + b"\r\n" for line in lines)


class GeneratedMessage:
    """
    A large LF-stored message made up as it is read, never held whole in memory: many of
    its lines start with dots.  While it is read, it computes the SHA-256 and the length
    of its canonical form (CRLF line ends), independently of pop3kit.

    @ivar canonicalDigest: The SHA-256 of the canonical form of what was read so far.
    @ivar canonicalSize: The length of that canonical form.
    """

    def __init__(self, size: int, seed: int = 1939) -> None:
        self._remaining = size
        self._rng = random.Random(seed)
        self._pending = b""
        self._hash = hashlib.sha256()
        self.canonicalSize = 0
        self._pool = [b".", b"..", b"...", b". ", b".dot", b"", b"From here"]
        for _ in range(64):
            length = self._rng.randrange(0, 1000)
            self._pool.append(
                (b"." if self._rng.randrange(3) == 0 else b"")
                + bytes(self._rng.choice(b"abcdefghijklmnopqrstuvwxyz .") for _ in range(length))
            )
        self._lines = 0

    def _nextLine(self) -> bytes:
        self._lines += 1
        if self._lines == 1:
            return b"Subject: a big one"
        if self._lines == 2:
            return b""
        return self._rng.choice(self._pool)

    def read(self, size: int = -1) -> bytes:
        """
        Return up to C{size} more octets (every line ends in LF; the last one too).
        """
        if size < 0:
            size = 1 << 62
        while len(self._pending) < size and self._remaining > 0:
            line = self._nextLine()[: max(self._remaining - 1, 0)]
            self._remaining -= len(line) + 1
            self._pending += line + b"\n"
            canonical = line + b"\r\n"
            self._hash.update(canonical)
            self.canonicalSize += len(canonical)
        chunk, self._pending = self._pending[:size], self._pending[size:]
        return chunk

    @property
    def canonicalDigest(self) -> str:
        """
        The SHA-256 (hexadecimal) of the canonical form of what was read so far.
        """
        return self._hash.hexdigest()


class MaildirServer:
    """
    The real server on 127.0.0.1 for one test: Maildirs under a temporary directory,
    alice's C{PLAIN} password C{secret} in a passwd-file.
    """

    def __init__(self, testCase: TestCase, **options: Any) -> None:
        base = os.path.abspath(testCase.mktemp())
        self.root = os.path.join(base, "mail")
        os.makedirs(self.root)
        self.passwd = os.path.join(base, "passwd")
        addUser(self.passwd, "alice", hashPassword("secret", "PLAIN"))
        self.maildir = mailboxPath(self.root, "alice")
        portal = Portal(MaildirRealm(self.root), [PasswdFileChecker(self.passwd)])
        self.server = LoopbackServer(testCase, portal=portal, **options)
        self.port = self.server.start()

    def deliver(self, *messages: bytes) -> None:
        """
        Deliver C{messages} into alice's Maildir, in this order.
        """
        for message in messages:
            deliver(self.maildir, io.BytesIO(message))

    def files(self) -> list[str]:
        """
        The message files in alice's Maildir.
        """
        return sorted(
            name
            for sub in ("new", "cur")
            for name in os.listdir(os.path.join(self.maildir, sub))
            if not name.startswith(".")
        )

    async def session(self, work: Callable[[poplib.POP3], _T], login: bool = True) -> _T:
        """
        Connect poplib in a thread, log in as alice (unless C{login} is false), run
        C{work} and close the socket (without QUIT, unless C{work} sent it).  Return once
        the server has seen the connection go, so the maildrop is unlocked.
        """

        def run() -> _T:
            client = poplib.POP3("127.0.0.1", self.port, timeout=60)
            try:
                if login:
                    client.user("alice")
                    client.pass_("secret")
                return work(client)
            finally:
                client.close()

        result = await deferToThread(run)
        await gatherResults([server.lost for server in self.server.factory.servers])
        return result


class CommandTests(TestCase):
    """
    Each POP3 command through poplib.
    """

    def setUp(self) -> None:
        self.maildir = MaildirServer(self)
        self.messages = [FIXTURES["lf"], FIXTURES["crlf"], FIXTURES["dots"]]
        self.maildir.deliver(*self.messages)
        self.sizes = [len(crlfForm(m)) for m in self.messages]

    async def test_userPassStatList(self) -> None:
        """
        USER and PASS log in; STAT and both forms of LIST agree on the canonical sizes.
        """

        def work(
            client: poplib.POP3,
        ) -> tuple[bytes, tuple[int, int], LongResponse, list[bytes]]:
            return (
                client.getwelcome(),
                client.stat(),
                client.list(),
                [listOne(client, n) for n in (1, 2, 3)],
            )

        welcome, stat, (resp, lines, _), singles = await self.maildir.session(work)
        self.assertTrue(welcome.startswith(b"+OK "))
        self.assertEqual(stat, (3, sum(self.sizes)))
        self.assertTrue(resp.startswith(b"+OK "))
        self.assertEqual(lines, [b"%d %d" % (n, s) for n, s in enumerate(self.sizes, 1)])
        self.assertEqual(singles, [b"+OK %d %d" % (n, s) for n, s in enumerate(self.sizes, 1)])

    async def test_wrongPassword(self) -> None:
        """
        A wrong password raises poplib's C{error_proto} with C{-ERR [AUTH]}.
        """

        def work(client: poplib.POP3) -> bytes:
            client.user("alice")
            try:
                client.pass_("wrong")
            except poplib.error_proto as e:
                return cast(bytes, e.args[0])
            raise AssertionError("a wrong password was accepted")

        answer = await self.maildir.session(work, login=False)
        self.assertTrue(answer.startswith(b"-ERR [AUTH] "), answer)

    async def test_apop(self) -> None:
        """
        poplib's C{apop} logs in with a C{PLAIN}-stored password when APOP is enabled; a
        wrong secret is refused.
        """
        apopServer = MaildirServer(self, apop=True)
        apopServer.deliver(FIXTURES["lf"])

        def wrong(client: poplib.POP3) -> bytes:
            try:
                client.apop("alice", "wrong")
            except poplib.error_proto as e:
                return cast(bytes, e.args[0])
            raise AssertionError("a wrong APOP digest was accepted")

        def right(client: poplib.POP3) -> tuple[bytes, tuple[int, int]]:
            return client.apop("alice", "secret"), client.stat()

        refused = await apopServer.session(wrong, login=False)
        self.assertTrue(refused.startswith(b"-ERR [AUTH] "), refused)
        answer, stat = await apopServer.session(right, login=False)
        self.assertTrue(answer.startswith(b"+OK "), answer)
        self.assertEqual(stat, (1, len(crlfForm(FIXTURES["lf"]))))

    async def test_apopNotOffered(self) -> None:
        """
        Without APOP enabled the greeting has no timestamp, so poplib refuses to try.
        """

        def work(client: poplib.POP3) -> str:
            try:
                client.apop("alice", "secret")
            except poplib.error_proto as e:
                return str(e)
            raise AssertionError("APOP worked although it is not enabled")

        self.assertIn("APOP not supported", await self.maildir.session(work, login=False))

    async def test_retrAndTop(self) -> None:
        """
        RETR returns the whole message and TOP the headers and the first lines of the
        body.
        """

        def work(client: poplib.POP3) -> tuple[LongResponse, LongResponse, LongResponse]:
            return client.retr(3), client.top(3, 2), client.top(1, 0)

        retr, top2, top0 = await self.maildir.session(work)
        self.assertEqual(retr[0], b"+OK %d octets" % self.sizes[2])
        self.assertEqual(received(retr[1]), crlfForm(FIXTURES["dots"]))
        self.assertEqual(retr[2], self.sizes[2])
        self.assertEqual(top2[1], [b"Subject: dots", b"", b".", b".."])
        self.assertEqual(top0[1], [b"From: a@example.com", b"Subject: LF", b""])

    async def test_uidl(self) -> None:
        """
        Both forms of UIDL agree, the unique-ids are valid and distinct, and a later
        session sees the same ones.
        """

        def work(client: poplib.POP3) -> tuple[LongResponse, list[bytes]]:
            return client.uidl(), [client.uidl(n) for n in (1, 2, 3)]

        (resp, lines, _), singles = await self.maildir.session(work)
        self.assertTrue(resp.startswith(b"+OK"))
        self.assertEqual(singles, [b"+OK " + line for line in lines])
        uids = [line.split(b" ")[1] for line in lines]
        self.assertEqual([line.split(b" ")[0] for line in lines], [b"1", b"2", b"3"])
        self.assertEqual(len(set(uids)), 3)
        for uid in uids:
            self.assertTrue(0 < len(uid) <= 70, uid)
            self.assertTrue(all(0x21 <= c <= 0x7E for c in uid), uid)
        again: LongResponse = await self.maildir.session(lambda client: client.uidl())
        self.assertEqual(again[1], lines)

    async def test_deleRsetNoopQuit(self) -> None:
        """
        DELE marks a message, RSET unmarks it, NOOP answers, and QUIT removes what is
        still marked: a new session no longer sees it.
        """

        def work(client: poplib.POP3) -> tuple[list[bytes], list[tuple[int, int]]]:
            dele1 = client.dele(1)
            marked = client.stat()
            rset = client.rset()
            unmarked = client.stat()
            noop = client.noop()
            dele2 = client.dele(2)
            return [dele1, rset, noop, dele2, client.quit()], [marked, unmarked]

        answers, stats = await self.maildir.session(work)
        self.assertEqual(answers[0], b"+OK message 1 deleted")
        self.assertEqual(answers[1], b"+OK maildrop has 3 messages (%d octets)" % sum(self.sizes))
        self.assertTrue(answers[2].startswith(b"+OK"))
        self.assertEqual(answers[3], b"+OK message 2 deleted")
        self.assertEqual(answers[4], b"+OK bye")
        self.assertEqual(stats, [(2, self.sizes[1] + self.sizes[2]), (3, sum(self.sizes))])
        self.assertEqual(len(self.maildir.files()), 2)

        def after(client: poplib.POP3) -> tuple[tuple[int, int], list[bytes], list[bytes]]:
            return client.stat(), client.retr(1)[1], client.retr(2)[1]

        stat, first, second = await self.maildir.session(after)
        self.assertEqual(stat, (2, self.sizes[0] + self.sizes[2]))
        self.assertEqual(received(first), crlfForm(FIXTURES["lf"]))
        self.assertEqual(received(second), crlfForm(FIXTURES["dots"]))

    async def test_droppedSessionDeletesNothing(self) -> None:
        """
        A session that marks messages deleted and closes its socket without QUIT removes
        nothing.
        """

        def work(client: poplib.POP3) -> tuple[int, int]:
            client.dele(1)
            client.dele(3)
            return client.stat()

        self.assertEqual(await self.maildir.session(work), (1, self.sizes[1]))
        self.assertEqual(len(self.maildir.files()), 3)
        stat = await self.maildir.session(lambda client: client.stat())
        self.assertEqual(stat, (3, sum(self.sizes)))

    async def test_capa(self) -> None:
        """
        CAPA, before and after login, lists what poplib can use.
        """

        def work(client: poplib.POP3) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
            before = client.capa()
            client.user("alice")
            client.pass_("secret")
            return before, client.capa()

        before, after = await self.maildir.session(work, login=False)
        self.assertEqual(before, after)
        for tag in ("TOP", "USER", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"):
            self.assertIn(tag, before)

    async def test_quitInAuthorization(self) -> None:
        """
        QUIT before login says goodbye and deletes nothing.
        """
        answer = await self.maildir.session(lambda client: client.quit(), login=False)
        self.assertEqual(answer, b"+OK bye")
        self.assertEqual(len(self.maildir.files()), 3)


class RoundTripTests(TestCase):
    """
    Messages come back through poplib exactly as stored, line ends aside.
    """

    timeout = 300

    async def test_fixturesByteExact(self) -> None:
        """
        For every fixture, poplib's lines (each ended with CRLF) equal the canonical
        form, and the octets poplib counts equal LIST's size.
        """
        maildir = MaildirServer(self)
        names = list(FIXTURES)
        maildir.deliver(*FIXTURES.values())

        def work(client: poplib.POP3) -> list[tuple[bytes, LongResponse]]:
            return [(listOne(client, n), client.retr(n)) for n in range(1, len(names) + 1)]

        results = await maildir.session(work)
        self.assertEqual(len(results), len(names))
        for name, (listed, (resp, lines, octets)) in zip(names, results, strict=True):
            expected = crlfForm(FIXTURES[name])
            self.assertEqual(received(lines), expected, name)
            self.assertEqual(octets, len(expected), name)
            self.assertEqual(int(listed.split()[2]), len(expected), name)
            self.assertEqual(resp, b"+OK %d octets" % len(expected), name)

    async def test_fiftyMegabytes(self) -> None:
        """
        A 50 MB message full of dot-led lines is retrieved byte-exact; DELE and QUIT
        remove it for the next session.
        """
        maildir = MaildirServer(self)
        generated = GeneratedMessage(50 * 1024 * 1024)
        deliver(maildir.maildir, cast(BinaryIO, generated))
        self.assertEqual(generated.read(), b"")

        def work(client: poplib.POP3) -> Retrieved:
            listed = listOne(client, 1)
            resp, lines, octets = client.retr(1)
            digest = hashlib.sha256()
            size = dotted = 0
            for line in lines:
                digest.update(line + b"\r\n")
                size += len(line) + 2
                dotted += line.startswith(b".")
            del lines
            client.dele(1)
            return Retrieved(listed, resp, digest.hexdigest(), size, octets, dotted, client.quit())

        result = await maildir.session(work)
        self.assertEqual(result.listed, b"+OK 1 %d" % generated.canonicalSize)
        self.assertEqual(result.status, b"+OK %d octets" % generated.canonicalSize)
        self.assertEqual(result.size, generated.canonicalSize)
        self.assertEqual(result.octets, generated.canonicalSize)
        self.assertEqual(result.digest, generated.canonicalDigest)
        self.assertGreater(result.dotted, 10_000)
        self.assertEqual(result.quit, b"+OK bye")
        self.assertEqual(maildir.files(), [])
        self.assertEqual(await maildir.session(lambda client: client.stat()), (0, 0))
