"""
Interoperability with real POP3 clients that fetch and deliver mail: mpop, fetchmail,
getmail6 and Perl's Net::POP3, each run as a subprocess against the real server on
loopback TCP, serving a Maildir through a passwd-file.

Every client runs with a temporary C{HOME} (and its own configuration and state files in
it), talks to 127.0.0.1 only, and is killed if it outlives L{CLIENT_TIMEOUT}.  Each
test class is skipped where its client is missing, and fails under CI (see
L{tests._tools}), whose script installs the Debian packages C{mpop}, C{fetchmail},
C{getmail6} and C{perl} (whose core modules include Net::POP3).

What each client does to a message on its way to disk, established by these tests:

  - mpop removes the byte-stuffing, turns each CRLF into LF (a lone CR stays) and, unless
    C{--received-header=off}, prepends a three-line C{Received:} header.
  - fetchmail removes the byte-stuffing; by default it removes every CR (C{stripcr} is on
    for an MDA) and prepends a three-line C{Received:} header.  With C{no stripcr} and
    C{--invisible} it hands the MDA exactly the canonical form, CRLF line ends included.
    An empty message becomes fetchmail's own "Headerless mail" notice.
  - getmail6 reads with Python's L{poplib}, re-renders the message through the
    L{email} package with LF line ends and always prepends C{Return-Path: <unknown>}
    (C{Delivered-To:} and C{Received:} are switched off here).
  - Net::POP3 removes the byte-stuffing and, in cleartext, returns lines ended with LF
    (one CR before each LF removed; a lone CR stays).
"""

from __future__ import annotations

import os
import pwd
import re
import stat
import subprocess
from collections.abc import Iterable, Sequence
from functools import cache
from typing import NamedTuple, cast

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IProcessTransport, IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests._oracle import crlfForm, lfForm, readMaildir
from tests._tools import requireTool
from tests.test_interop_poplib import FIXTURES, MaildirServer
from tests.test_server_loopback import dotLines

#: The global reactor, which trial runs, seen as what this module needs of it.
processReactor = cast(IReactorProcess, _reactor)
clock = cast(IReactorTime, _reactor)

#: alice's password on the test server (see L{MaildirServer}).
SECRET = "secret"

#: Seconds a client process may run before it is killed and its test fails.
CLIENT_TIMEOUT = 20.0

#: Messages with lines that begin with dots: the fixtures, and one of 300 kB, big enough
#: for the server to stream it in chunks rather than send it in one go.
DOT_MESSAGES = [FIXTURES["dots"], FIXTURES["dotLast"], dotLines(1939, 300_000)]

#: Messages with 8-bit bodies: UTF-8 text, and every octet from 0x80 to 0xFF.
EIGHT_BIT_MESSAGES = [FIXTURES["utf8"], FIXTURES["eightBit"]]

#: Three plain messages for the keep / only-new runs, and the one delivered later.
FIRST_MESSAGES = [FIXTURES["lf"], FIXTURES["crlf"], FIXTURES["dots"]]
LATER_MESSAGE = FIXTURES["utf8"]

#: An APOP timestamp that mpop 1.4.18 accepts: no C{=} or other punctuation.
APOP_TIMESTAMP = re.compile(rb"<[0-9A-Za-z.]+@[0-9A-Za-z.-]+>")


@cache
def _netPOP3Problem(perl: str) -> str | None:
    """
    Why C{perl} cannot run the Net::POP3 tests, or L{None} if it can load Net::POP3.
    """
    found = subprocess.run(
        [perl, "-MNet::POP3", "-e", "1"], capture_output=True, timeout=30, check=False
    )
    return None if found.returncode == 0 else f"{perl} cannot load Net::POP3"


def _getmailSkip() -> str | None:
    """
    Why getmail cannot deliver here, or L{None} if it can.
    """
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            return "getmail refuses to deliver as root, and there is no user nobody"
    return None


def makeMaildir(path: str, mode: int = 0o700) -> str:
    """
    Create an empty Maildir at C{path}, its directories with C{mode}.

    @return: C{path}.
    """
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub))
        os.chmod(os.path.join(path, sub), mode)
    os.chmod(path, mode)
    return path


async def serverUids(server: MaildirServer) -> list[str]:
    """
    The unique-ids the server gives alice's messages now, asked with L{poplib}.
    """
    _, lines, _ = await server.session(lambda client: client.uidl())
    return sorted(line.split(b" ")[1].decode("ascii") for line in lines)


class Finished(NamedTuple):
    """
    How a client process ended: its standard output and error, and its exit status
    (the negated signal number if a signal ended it).
    """

    out: bytes
    err: bytes
    status: int


class _Collector(ProcessProtocol):
    """
    Collect a process's output and its exit status.

    @ivar status: The exit status (the negated signal number if a signal ended the
        process), or L{None} while it runs.
    """

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.status: int | None = None
        self._waiting: list[Deferred[int]] = []

    def outReceived(self, data: bytes) -> None:
        """
        Keep standard output.
        """
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        """
        Keep standard error.
        """
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:
        """
        Remember the exit status and tell those waiting for it.
        """
        exitCode = getattr(reason.value, "exitCode", None)
        signal = getattr(reason.value, "signal", None)
        self.status = exitCode if exitCode is not None else -(signal or 0)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(self.status)

    def whenEnded(self) -> Deferred[int]:
        """
        A new L{Deferred} that fires with the exit status once the process has ended.
        """
        if self.status is not None:
            return succeed(self.status)
        d: Deferred[int] = Deferred()
        self._waiting.append(d)
        return d


class ClientHome:
    """
    A temporary home directory for one test's client processes.

    @ivar path: The directory, also C{HOME}, C{TMPDIR} and the working directory.
    """

    def __init__(self, testCase: TestCase) -> None:
        self.testCase = testCase
        self.path = os.path.abspath(testCase.mktemp())
        os.makedirs(self.path)

    def file(self, name: str, content: str, mode: int = 0o600) -> str:
        """
        Write C{content} to the file C{name} in the home directory (replacing it), with
        C{mode}.

        @return: The file's absolute path.
        """
        path = os.path.join(self.path, name)
        if os.path.exists(path):
            os.remove(path)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w") as f:
            f.write(content)
        return path

    async def run(
        self,
        executable: str | None,
        args: Sequence[str],
        server: MaildirServer,
        extraEnv: dict[str, str] | None = None,
    ) -> Finished:
        """
        Run C{executable} with C{args} (standard input closed, a minimal environment)
        and wait until it has exited and C{server} has seen its connections go.

        The process is killed, and the test fails, if it runs longer than
        L{CLIENT_TIMEOUT}; it is killed too if the test ends first.
        """
        assert executable is not None
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.path,
            "TMPDIR": self.path,
            "LC_ALL": "C",
            "TZ": "UTC",
            **(extraEnv or {}),
        }
        collector = _Collector()
        transport: IProcessTransport = processReactor.spawnProcess(
            collector, executable, [executable, *args], env=environment, path=self.path
        )
        transport.closeStdin()
        expired: list[bool] = []

        def kill() -> None:
            try:
                transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass

        def expire() -> None:
            expired.append(True)
            kill()

        async def killIfRunning() -> None:
            if collector.status is None:
                kill()
                await collector.whenEnded()

        self.testCase.addCleanup(killIfRunning)
        timer = clock.callLater(CLIENT_TIMEOUT, expire)
        try:
            status = await collector.whenEnded()
        finally:
            if timer.active():
                timer.cancel()
        finished = Finished(b"".join(collector.out), b"".join(collector.err), status)
        if expired:
            self.testCase.fail(f"{executable} ran longer than {CLIENT_TIMEOUT} s: {finished}")
        await gatherResults([session.lost for session in server.server.factory.servers])
        return finished


# ---------------------------------------------------------------------------------------
# mpop


class MpopTests(TestCase):
    """
    mpop: USER/PASS and APOP logins, Maildir delivery, keep, delete and only-new (UIDL).
    """

    timeout = 60

    def setUp(self) -> None:
        self.mpopPath = requireTool("mpop", "mpop")
        self.maildir = MaildirServer(self)
        self.home = ClientHome(self)
        self.target = makeMaildir(os.path.join(self.home.path, "Maildir"))
        self.uidls = os.path.join(self.home.path, "uidls")

    async def mpop(
        self,
        *args: str,
        auth: str = "user",
        password: str = SECRET,
        server: MaildirServer | None = None,
    ) -> Finished:
        """
        Run mpop once against the server (or C{server}) as alice, delivering into
        L{target}, with C{args} after the common options.
        """
        server = server or self.maildir
        return await self.home.run(
            self.mpopPath,
            [
                "--host=127.0.0.1",  # command-line settings only: no configuration file
                f"--port={server.port}",
                "--timeout=20",
                "--tls=off",
                f"--auth={auth}",
                "--user=alice",
                f"--passwordeval=echo {password}",
                f"--delivery=maildir,{self.target}",
                f"--uidls-file={self.uidls}",
                *args,
            ],
            server,
        )

    def delivered(self) -> list[bytes]:
        """
        The messages mpop delivered so far, sorted.
        """
        return sorted(readMaildir(self.target).values())

    def storedUids(self) -> list[str]:
        """
        The unique-ids in mpop's UIDLs file, sorted.
        """
        with open(self.uidls, encoding="ascii") as f:
            return sorted(line.rstrip("\n") for line in f if line.strip() and line[0] not in "# ")

    async def test_retrieveAllByteExact(self) -> None:
        """
        With C{--keep=on} every fixture arrives as its canonical form with LF line ends,
        and the server keeps them all.
        """
        messages = list(FIXTURES.values())
        self.maildir.deliver(*messages)
        finished = await self.mpop("--keep=on", "--received-header=off", "--quiet")
        self.assertEqual(finished, Finished(b"", b"", 0))
        self.assertEqual(self.delivered(), sorted(lfForm(m) for m in messages))
        self.assertEqual(len(self.maildir.files()), len(messages))

    async def test_receivedHeaderPrepended(self) -> None:
        """
        By default mpop prepends its three-line C{Received:} header and changes nothing
        else.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        finished = await self.mpop("--keep=on", "--quiet")
        self.assertEqual(finished.status, 0, finished)
        header = re.compile(
            rb"\AReceived: from 127\.0\.0\.1[^\n]*\n"
            rb"\tby [^\n]*\(mpop-[^)\n]*\) with POP3\n"
            rb"\tfor [^\n]*\n"
        )
        stripped = []
        for message in self.delivered():
            match = header.match(message)
            self.assertIsNotNone(match, message)
            assert match is not None
            stripped.append(message[match.end() :])
        self.assertEqual(sorted(stripped), sorted(lfForm(m) for m in FIRST_MESSAGES))

    async def test_keepThenOnlyNew(self) -> None:
        """
        After a keep run a second run fetches nothing; after one more delivery exactly
        that message is fetched; mpop's UIDLs file holds the server's unique-ids.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        keep = ("--keep=on", "--only-new=on", "--received-header=off", "--quiet")
        self.assertEqual((await self.mpop(*keep)).status, 0)
        self.assertEqual(self.delivered(), sorted(lfForm(m) for m in FIRST_MESSAGES))
        self.assertEqual(self.storedUids(), await serverUids(self.maildir))

        before = readMaildir(self.target)
        self.assertEqual((await self.mpop(*keep)).status, 0)
        self.assertEqual(readMaildir(self.target), before)

        self.maildir.deliver(LATER_MESSAGE)
        self.assertEqual((await self.mpop(*keep)).status, 0)
        after = readMaildir(self.target)
        self.assertEqual(
            [after[name] for name in after.keys() - before.keys()], [lfForm(LATER_MESSAGE)]
        )
        self.assertEqual(len(self.maildir.files()), len(FIRST_MESSAGES) + 1)
        self.assertEqual(self.storedUids(), await serverUids(self.maildir))

    async def test_onlyNewOffFetchesAgain(self) -> None:
        """
        With C{--only-new=off} a second keep run fetches every message again.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        args = ("--keep=on", "--only-new=off", "--received-header=off", "--quiet")
        self.assertEqual((await self.mpop(*args)).status, 0)
        self.assertEqual((await self.mpop(*args)).status, 0)
        self.assertEqual(self.delivered(), sorted(lfForm(m) for m in FIRST_MESSAGES * 2))

    async def test_deleteEmptiesMaildrop(self) -> None:
        """
        With C{--keep=off} every message is fetched and then deleted on the server; a
        second run finds nothing.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        args = ("--keep=off", "--received-header=off", "--quiet")
        self.assertEqual((await self.mpop(*args)).status, 0)
        self.assertEqual(self.delivered(), sorted(lfForm(m) for m in FIRST_MESSAGES))
        self.assertEqual(self.maildir.files(), [])
        self.assertEqual((await self.mpop(*args)).status, 0)
        self.assertEqual(len(self.delivered()), len(FIRST_MESSAGES))

    async def test_apop(self) -> None:
        """
        C{--auth=apop} logs in against a C{PLAIN}-stored password: mpop accepts the
        greeting's timestamp (checklist J); a wrong password is refused.
        """
        server = MaildirServer(self, apop=True)
        server.deliver(*FIRST_MESSAGES)
        wrong = await self.mpop("--keep=on", auth="apop", password="wrong", server=server)
        self.assertEqual(wrong.status, 77, wrong)  # EX_NOPERM
        self.assertIn(b"-ERR [AUTH]", wrong.err)
        self.assertEqual(self.delivered(), [])

        finished = await self.mpop(
            "--keep=off", "--received-header=off", "--debug", auth="apop", server=server
        )
        self.assertEqual(finished.status, 0, finished)
        greeting = re.search(rb"^<-- \+OK [^\n]*", finished.out, re.MULTILINE)
        assert greeting is not None
        self.assertIsNotNone(APOP_TIMESTAMP.search(greeting.group()), greeting.group())
        self.assertRegex(finished.out, rb"\n--> APOP alice [0-9a-f]{32}\r\n")
        self.assertNotIn(b"--> USER", finished.out)
        self.assertEqual(self.delivered(), sorted(lfForm(m) for m in FIRST_MESSAGES))
        self.assertEqual(server.files(), [])

    async def test_wrongPassword(self) -> None:
        """
        A wrong password makes mpop exit with status 77 (EX_NOPERM) and fetch nothing.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        finished = await self.mpop("--keep=off", password="wrong")
        self.assertEqual(finished.status, 77, finished)
        self.assertIn(b"-ERR [AUTH] ", finished.err)
        self.assertEqual(self.delivered(), [])
        self.assertEqual(len(self.maildir.files()), len(FIRST_MESSAGES))

    async def test_dotLines(self) -> None:
        """
        Lines that begin with dots arrive un-stuffed, byte-exact apart from line ends.
        """
        self.maildir.deliver(*DOT_MESSAGES)
        finished = await self.mpop("--keep=off", "--received-header=off", "--quiet")
        self.assertEqual(finished, Finished(b"", b"", 0))
        self.assertEqual(self.delivered(), sorted(lfForm(m) for m in DOT_MESSAGES))

    async def test_eightBit(self) -> None:
        """
        UTF-8 and other 8-bit bodies arrive unchanged apart from line ends.
        """
        self.maildir.deliver(*EIGHT_BIT_MESSAGES)
        finished = await self.mpop("--keep=off", "--received-header=off", "--quiet")
        self.assertEqual(finished, Finished(b"", b"", 0))
        self.assertEqual(self.delivered(), sorted(lfForm(m) for m in EIGHT_BIT_MESSAGES))


# ---------------------------------------------------------------------------------------
# fetchmail

#: An MDA for fetchmail: it saves the message on standard input as OUT/1, OUT/2, ...
#: (fetchmail runs it with /bin/sh and waits for it, one message at a time).
_FETCHMAIL_MDA = """\
#!/bin/sh
n=1
while [ -e '{out}'/$n ]; do n=$((n + 1)); done
exec cat > '{out}'/$n
"""

#: fetchmail's exit statuses (fetchmail(1), "EXIT CODES").
FETCHMAIL_OK = 0
FETCHMAIL_NOMAIL = 1
FETCHMAIL_AUTHFAIL = 3


class FetchmailTests(TestCase):
    """
    fetchmail: USER/PASS and APOP, delivery through an MDA, keep with UIDL, fetchall and
    delete.
    """

    timeout = 60

    def setUp(self) -> None:
        self.fetchmailPath = requireTool("fetchmail", "fetchmail")
        self.maildir = MaildirServer(self)
        self.home = ClientHome(self)
        self.out = os.path.join(self.home.path, "out")
        os.makedirs(self.out)
        self.mda = self.home.file("deliver.sh", _FETCHMAIL_MDA.format(out=self.out), 0o700)

    async def fetchmail(
        self,
        *args: str,
        proto: str = "pop3",
        password: str = SECRET,
        stripcr: bool = False,
        server: MaildirServer | None = None,
    ) -> Finished:
        """
        Poll the server (or C{server}) once as alice with a fresh rcfile, without TLS,
        delivering through L{mda}; C{args} follow the rcfile option.
        """
        server = server or self.maildir
        rcfile = self.home.file(
            "fetchmailrc",
            "set no syslog\n"
            "set no bouncemail\n"
            f"poll 127.0.0.1 port {server.port} proto {proto} timeout 20\n"
            f'  user "alice" password "{password}" is "alice" here\n'
            # no TLS at all (fetchmail 6.4 otherwise insists on STLS: sslcertck is on)
            '  sslproto ""\n'
            f"  no rewrite {'' if stripcr else 'no '}stripcr\n"
            f'  mda "{self.mda}"\n',
        )
        # As root, fetchmail keeps its lock in /run unless told otherwise (FETCHMAILHOME
        # is not enough): concurrent tests would collide there.
        pidfile = os.path.join(self.home.path, "fetchmail.pid")
        return await self.home.run(
            self.fetchmailPath,
            ["--fetchmailrc", rcfile, "--pidfile", pidfile, *args],
            server,
            # .fetchids (the unique-ids seen) goes here
            extraEnv={"FETCHMAILHOME": self.home.path},
        )

    def delivered(self) -> list[bytes]:
        """
        What the MDA saved, in the order fetchmail delivered it.
        """
        names = sorted(os.listdir(self.out), key=int)
        contents = []
        for name in names:
            with open(os.path.join(self.out, name), "rb") as f:
                contents.append(f.read())
        return contents

    def seenUids(self) -> list[str]:
        """
        The unique-ids in fetchmail's C{.fetchids} file, sorted.
        """
        with open(os.path.join(self.home.path, ".fetchids"), encoding="ascii") as f:
            entries = [line.split() for line in f if line.strip()]
        self.assertEqual({entry[0] for entry in entries}, {"alice@127.0.0.1"})
        return sorted(entry[1] for entry in entries)

    async def test_retrieveAllByteExact(self) -> None:
        """
        With C{no stripcr} and C{--invisible} fetchmail hands its MDA every fixture in
        its canonical form, CRLF line ends included; an empty message becomes fetchmail's
        own "Headerless mail" notice.
        """
        messages = list(FIXTURES.values())
        self.maildir.deliver(*messages)
        finished = await self.fetchmail("--keep", "--invisible", "--silent")
        self.assertEqual(finished.status, FETCHMAIL_OK, finished)
        delivered = self.delivered()
        self.assertEqual(len(delivered), len(messages))
        for name, message, got in zip(FIXTURES, messages, delivered, strict=True):
            if message:
                self.assertEqual(got, crlfForm(message), name)
            else:
                self.assertTrue(got.startswith(b"From: FETCHMAIL-DAEMON\r\n"), got)
                self.assertIn(b"\r\nSubject: Headerless mail from alice's mailbox", got)
        self.assertEqual(len(self.maildir.files()), len(messages))

    async def test_defaultsStripCRAndAddReceived(self) -> None:
        """
        By default fetchmail removes every CR (lone ones too) and prepends its three-line
        C{Received:} header.
        """
        messages = [FIXTURES["lf"], FIXTURES["crlf"], FIXTURES["loneCR"]]
        self.maildir.deliver(*messages)
        finished = await self.fetchmail("--keep", "--silent", stripcr=True)
        self.assertEqual(finished.status, FETCHMAIL_OK, finished)
        header = re.compile(
            rb"\AReceived: from 127\.0\.0\.1 \[127\.0\.0\.1\]\n"
            rb"\tby [^\n]* with POP3 \(fetchmail-[^)\n]*\)\n"
            rb"\tfor [^\n]*\n"
        )
        delivered = self.delivered()
        self.assertEqual(len(delivered), len(messages))
        for message, got in zip(messages, delivered, strict=True):
            match = header.match(got)
            self.assertIsNotNone(match, got)
            assert match is not None
            self.assertEqual(got[match.end() :], crlfForm(message).replace(b"\r", b""))

    async def test_keepUidlAndFetchall(self) -> None:
        """
        With C{--keep} a second poll finds nothing new (status 1); after one more
        delivery exactly that message is fetched; C{--fetchall} fetches all again.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        finished = await self.fetchmail("--keep", "--invisible", "--silent")
        self.assertEqual(finished.status, FETCHMAIL_OK, finished)
        self.assertEqual(self.delivered(), [crlfForm(m) for m in FIRST_MESSAGES])
        self.assertEqual(self.seenUids(), await serverUids(self.maildir))

        finished = await self.fetchmail("--keep", "--invisible", "--silent")
        self.assertEqual(finished.status, FETCHMAIL_NOMAIL, finished)
        self.assertEqual(len(self.delivered()), len(FIRST_MESSAGES))

        self.maildir.deliver(LATER_MESSAGE)
        finished = await self.fetchmail("--keep", "--invisible", "--silent")
        self.assertEqual(finished.status, FETCHMAIL_OK, finished)
        self.assertEqual(self.delivered()[len(FIRST_MESSAGES) :], [crlfForm(LATER_MESSAGE)])
        self.assertEqual(self.seenUids(), await serverUids(self.maildir))

        finished = await self.fetchmail("--keep", "--fetchall", "--invisible", "--silent")
        self.assertEqual(finished.status, FETCHMAIL_OK, finished)
        everything = [crlfForm(m) for m in [*FIRST_MESSAGES, LATER_MESSAGE]]
        self.assertEqual(self.delivered()[len(everything) :], everything)
        self.assertEqual(len(self.maildir.files()), len(everything))

    async def test_deleteEmptiesMaildrop(self) -> None:
        """
        Without C{--keep} fetchmail deletes what it fetched; the next poll finds nothing.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        finished = await self.fetchmail("--nokeep", "--invisible", "--silent")
        self.assertEqual(finished.status, FETCHMAIL_OK, finished)
        self.assertEqual(self.delivered(), [crlfForm(m) for m in FIRST_MESSAGES])
        self.assertEqual(self.maildir.files(), [])
        finished = await self.fetchmail("--nokeep", "--invisible", "--silent")
        self.assertEqual(finished.status, FETCHMAIL_NOMAIL, finished)

    async def test_apop(self) -> None:
        """
        C{proto apop} logs in against a C{PLAIN}-stored password; a wrong one is refused
        with status 3.
        """
        server = MaildirServer(self, apop=True)
        server.deliver(*FIRST_MESSAGES)
        finished = await self.fetchmail(
            "--nokeep", "--invisible", "--silent", proto="apop", password="wrong", server=server
        )
        self.assertEqual(finished.status, FETCHMAIL_AUTHFAIL, finished)
        self.assertEqual(self.delivered(), [])
        finished = await self.fetchmail(
            "--nokeep", "--invisible", "--verbose", proto="apop", server=server
        )
        self.assertEqual(finished.status, FETCHMAIL_OK, finished)
        self.assertRegex(finished.out, rb"POP3> APOP alice [0-9a-f]{32}\n")
        self.assertEqual(self.delivered(), [crlfForm(m) for m in FIRST_MESSAGES])
        self.assertEqual(server.files(), [])

    async def test_wrongPassword(self) -> None:
        """
        A wrong password makes fetchmail exit with status 3 and fetch nothing.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        finished = await self.fetchmail("--nokeep", "--silent", password="wrong")
        self.assertEqual(finished.status, FETCHMAIL_AUTHFAIL, finished)
        self.assertEqual(self.delivered(), [])
        self.assertEqual(len(self.maildir.files()), len(FIRST_MESSAGES))

    async def test_dotLines(self) -> None:
        """
        Lines that begin with dots arrive un-stuffed and byte-exact.
        """
        self.maildir.deliver(*DOT_MESSAGES)
        finished = await self.fetchmail("--nokeep", "--invisible", "--silent")
        self.assertEqual(finished.status, FETCHMAIL_OK, finished)
        self.assertEqual(self.delivered(), [crlfForm(m) for m in DOT_MESSAGES])

    async def test_eightBit(self) -> None:
        """
        UTF-8 and other 8-bit bodies arrive byte-exact.
        """
        self.maildir.deliver(*EIGHT_BIT_MESSAGES)
        finished = await self.fetchmail("--nokeep", "--invisible", "--silent")
        self.assertEqual(finished.status, FETCHMAIL_OK, finished)
        self.assertEqual(self.delivered(), [crlfForm(m) for m in EIGHT_BIT_MESSAGES])


# ---------------------------------------------------------------------------------------
# getmail6

#: What getmail6 always puts before a message it delivers (with no sender known).
GETMAIL_RETURN_PATH = b"Return-Path: <unknown>\n"


def getmailForm(message: bytes) -> bytes:
    """
    What getmail6 delivers for C{message}: its C{Return-Path:} line, then the canonical
    form with LF line ends (an empty message gets a blank line).  Good for messages
    without lone CRs only: L{email} turns those into line breaks.
    """
    return GETMAIL_RETURN_PATH + (lfForm(message) or b"\n")


class GetmailTests(TestCase):
    """
    getmail6's SimplePOP3Retriever into a Maildir: UIDL-based C{read_all = false}, keep
    and delete.
    """

    timeout = 60

    skip = _getmailSkip()

    def setUp(self) -> None:
        self.getmailPath = requireTool("getmail", "getmail6")
        self.maildir = MaildirServer(self)
        self.home = ClientHome(self)
        self.getmaildir = os.path.join(self.home.path, "getmail")
        os.makedirs(self.getmaildir)
        # getmail refuses to deliver as root: it then delivers as nobody, who must be
        # able to write to the Maildir.
        self.asNobody = os.geteuid() == 0
        self.target = makeMaildir(
            os.path.join(self.home.path, "Maildir"), 0o777 if self.asNobody else 0o700
        )
        if self.asNobody:
            # trial's temporary directories are private (0700): let nobody through.
            top = os.path.abspath(os.getcwd())
            directory = self.home.path
            while directory.startswith(top + os.sep):
                os.chmod(directory, os.stat(directory).st_mode | stat.S_IXOTH)
                directory = os.path.dirname(directory)

    async def getmail(self, *, delete: bool, password: str = SECRET) -> Finished:
        """
        Run getmail once against the server as alice with a fresh getmailrc.
        """
        rcfile = os.path.join(self.getmaildir, "getmailrc")
        if os.path.exists(rcfile):
            os.remove(rcfile)
        with open(rcfile, "w", encoding="utf-8") as f:
            f.write(
                "[retriever]\n"
                "type = SimplePOP3Retriever\n"
                "server = 127.0.0.1\n"
                f"port = {self.maildir.port}\n"
                "username = alice\n"
                f"password = {password}\n"
                "timeout = 20\n"
                "\n"
                "[destination]\n"
                "type = Maildir\n"
                f"path = {self.target}/\n" + ("user = nobody\n" if self.asNobody else "") + "\n"
                "[options]\n"
                f"delete = {str(delete).lower()}\n"
                "read_all = false\n"
                "delivered_to = false\n"
                "received = false\n"
                "verbose = 0\n"
            )
        return await self.home.run(
            self.getmailPath,
            ["--getmaildir", self.getmaildir, "--rcfile", "getmailrc"],
            self.maildir,
        )

    def delivered(self) -> list[bytes]:
        """
        The messages getmail delivered so far, sorted.
        """
        return sorted(readMaildir(self.target).values())

    def oldmailUids(self) -> list[str]:
        """
        The unique-ids in getmail's oldmail file, sorted.
        """
        path = os.path.join(self.getmaildir, f"oldmail-127.0.0.1-{self.maildir.port}-alice")
        with open(path, encoding="ascii") as f:
            # One "UID NUL timestamp" line per message.
            return sorted(line.split("\0")[0] for line in f if line.strip())

    async def test_retrieveAllByteExact(self) -> None:
        """
        Every fixture without a lone CR arrives as its canonical form with LF line ends,
        after getmail's C{Return-Path:} line.
        """
        messages = [m for name, m in FIXTURES.items() if name != "loneCR"]
        self.maildir.deliver(*messages)
        finished = await self.getmail(delete=False)
        self.assertEqual(finished, Finished(b"", b"", 0))
        self.assertEqual(self.delivered(), sorted(getmailForm(m) for m in messages))
        self.assertEqual(len(self.maildir.files()), len(messages))

    async def test_keepThenNothingNew(self) -> None:
        """
        With C{delete = false} a second run fetches nothing; after one more delivery
        exactly that message is fetched; the oldmail file holds the server's unique-ids.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        self.assertEqual((await self.getmail(delete=False)).status, 0)
        self.assertEqual(self.delivered(), sorted(getmailForm(m) for m in FIRST_MESSAGES))
        self.assertEqual(self.oldmailUids(), await serverUids(self.maildir))

        before = readMaildir(self.target)
        self.assertEqual((await self.getmail(delete=False)).status, 0)
        self.assertEqual(readMaildir(self.target), before)

        self.maildir.deliver(LATER_MESSAGE)
        self.assertEqual((await self.getmail(delete=False)).status, 0)
        after = readMaildir(self.target)
        self.assertEqual(
            [after[name] for name in after.keys() - before.keys()], [getmailForm(LATER_MESSAGE)]
        )
        self.assertEqual(len(self.maildir.files()), len(FIRST_MESSAGES) + 1)
        self.assertEqual(self.oldmailUids(), await serverUids(self.maildir))

    async def test_deleteEmptiesMaildrop(self) -> None:
        """
        With C{delete = true} every message is fetched and the maildrop is empty
        afterwards; a second run fetches nothing.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        self.assertEqual(await self.getmail(delete=True), Finished(b"", b"", 0))
        self.assertEqual(self.delivered(), sorted(getmailForm(m) for m in FIRST_MESSAGES))
        self.assertEqual(self.maildir.files(), [])
        self.assertEqual(await self.getmail(delete=True), Finished(b"", b"", 0))
        self.assertEqual(len(self.delivered()), len(FIRST_MESSAGES))

    async def test_wrongPassword(self) -> None:
        """
        A wrong password makes getmail fail with the server's C{-ERR [AUTH]} line and
        fetch nothing.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        finished = await self.getmail(delete=True, password="wrong")
        self.assertNotEqual(finished.status, 0, finished)
        self.assertIn(b"-ERR [AUTH] ", finished.err)
        self.assertEqual(self.delivered(), [])
        self.assertEqual(len(self.maildir.files()), len(FIRST_MESSAGES))

    async def test_dotLines(self) -> None:
        """
        Lines that begin with dots arrive un-stuffed.
        """
        self.maildir.deliver(*DOT_MESSAGES)
        self.assertEqual(await self.getmail(delete=True), Finished(b"", b"", 0))
        self.assertEqual(self.delivered(), sorted(getmailForm(m) for m in DOT_MESSAGES))

    async def test_eightBit(self) -> None:
        """
        UTF-8 and other 8-bit bodies arrive unchanged apart from line ends.
        """
        self.maildir.deliver(*EIGHT_BIT_MESSAGES)
        self.assertEqual(await self.getmail(delete=True), Finished(b"", b"", 0))
        self.assertEqual(self.delivered(), sorted(getmailForm(m) for m in EIGHT_BIT_MESSAGES))


# ---------------------------------------------------------------------------------------
# Net::POP3

#: A Net::POP3 session as alice: PORT, then C{login} or C{apop}, the password, and the
#: numbers of messages to delete before QUIT.  One result a line, fields separated by
#: one space, message data and server texts in hexadecimal.
_NET_POP3_SCRIPT = r"""
use strict;
use warnings;
use Net::POP3;

binmode STDOUT;
$| = 1;
my ($port, $method, $password, @delete) = @ARGV;
my $pop = Net::POP3->new("127.0.0.1", Port => $port, Timeout => 20)
    or die "cannot connect: $@\n";

sub hexOf { return unpack("H*", join("", @_)); }

print "banner ", hexOf($pop->banner), "\n";
my $count = $method eq "apop"
    ? $pop->apop("alice", $password)
    : $pop->login("alice", $password);
if (!defined $count) {
    print "refused ", hexOf($pop->message), "\n";
    print "quit ", ($pop->quit ? 1 : 0), "\n";
    exit 0;
}
print "count ", $count + 0, "\n";
print "stat ", join(" ", $pop->popstat), "\n";
my $capa = $pop->capa;
print "capa $_\n" for sort keys %$capa;
my $list = $pop->list;
my $uidl = $pop->uidl;
my @numbers = sort { $a <=> $b } keys %$list;
for my $n (@numbers) {
    # list($n) returns undef for a message of 0 octets: "return $1 || undef".
    my $size = $pop->list($n);
    print "list $n $list->{$n} ", (defined $size ? $size : "undef"), "\n";
    print "uidl $n $uidl->{$n} ", scalar($pop->uidl($n)), "\n";
    print "get $n ", hexOf(@{$pop->get($n)}), "\n";
    print "top $n ", hexOf(@{$pop->top($n, 2)}), "\n";
}
if (@numbers) {
    print "delete 1 ", ($pop->delete(1) ? 1 : 0), "\n";
    print "stat ", join(" ", $pop->popstat), "\n";
    # reset's return value is not its answer: it returns false after "+OK".
    $pop->reset;
    print "reset ", $pop->code, " ", hexOf($pop->message), "\n";
    print "stat ", join(" ", $pop->popstat), "\n";
}
print "delete $_ ", ($pop->delete($_) ? 1 : 0), "\n" for @delete;
print "quit ", ($pop->quit ? 1 : 0), "\n";
"""


class NetPOP3Session:
    """
    What the Net::POP3 script printed, parsed.

    @ivar results: Each result's fields (after its name), by name, in order.
    """

    def __init__(self, out: bytes) -> None:
        self.results: dict[str, list[list[str]]] = {}
        for line in out.decode("ascii").splitlines():
            name, *fields = line.split(" ")
            self.results.setdefault(name, []).append(fields)

    def one(self, name: str) -> list[str]:
        """
        The fields of the only result called C{name}.
        """
        [fields] = self.results[name]
        return fields

    def all(self, name: str) -> list[list[str]]:
        """
        The fields of every result called C{name}, in order.
        """
        return self.results.get(name, [])

    def messages(self, name: str) -> list[bytes]:
        """
        The message data of the C{get} or C{top} results, in message-number order.
        """
        return [bytes.fromhex(fields[1]) for fields in self.all(name)]


class NetPOP3Tests(TestCase):
    """
    Perl's Net::POP3: every command it offers, APOP, and messages compared byte for
    byte (in cleartext it returns lines ended with LF).
    """

    timeout = 60

    def setUp(self) -> None:
        self.perlPath = requireTool("perl", "perl", check=_netPOP3Problem)
        self.maildir = MaildirServer(self)
        self.home = ClientHome(self)
        self.script = self.home.file("session.pl", _NET_POP3_SCRIPT)

    async def session(
        self,
        *delete: int,
        method: str = "login",
        password: str = SECRET,
        server: MaildirServer | None = None,
    ) -> NetPOP3Session:
        """
        Run the Net::POP3 script against the server (or C{server}), deleting the
        messages numbered C{delete} before QUIT.
        """
        server = server or self.maildir
        finished = await self.home.run(
            self.perlPath,
            [self.script, str(server.port), method, password, *map(str, delete)],
            server,
        )
        self.assertEqual((finished.status, finished.err), (0, b""), finished)
        return NetPOP3Session(finished.out)

    def assertRetrieved(self, session: NetPOP3Session, messages: Iterable[bytes]) -> None:
        """
        C{session} listed C{messages} with their canonical sizes and got each as its
        canonical form with LF line ends.
        """
        messages = list(messages)
        sizes = [str(len(crlfForm(m))) for m in messages]
        self.assertEqual(
            session.all("list"),
            [[str(n), s, s if s != "0" else "undef"] for n, s in enumerate(sizes, 1)],
        )
        self.assertEqual(session.messages("get"), [lfForm(m) for m in messages])

    async def test_commands(self) -> None:
        """
        login, popstat, capa, list, uidl, get, top, delete, reset and quit all work; the
        unique-ids are those poplib sees; what QUIT finds marked is deleted.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        uids = await serverUids(self.maildir)
        sizes = [len(crlfForm(m)) for m in FIRST_MESSAGES]
        session = await self.session(2)
        self.assertNotRegex(bytes.fromhex(session.one("banner")[0]), rb"<.*>")
        self.assertEqual(session.one("count"), ["3"])
        self.assertEqual(
            session.all("stat"),
            [
                ["3", str(sum(sizes))],
                ["2", str(sum(sizes[1:]))],
                ["3", str(sum(sizes))],
            ],
        )
        # Net::POP3 adds "CAPA" itself when CAPA works (and "APOP" for a timestamp).
        capabilities = [fields[0] for fields in session.all("capa")]
        for tag in ("CAPA", "TOP", "USER", "UIDL", "RESP-CODES", "PIPELINING"):
            self.assertIn(tag, capabilities)
        self.assertNotIn("APOP", capabilities)
        self.assertRetrieved(session, FIRST_MESSAGES)
        listed = session.all("uidl")
        self.assertEqual([fields[0] for fields in listed], ["1", "2", "3"])
        self.assertEqual([fields[1] for fields in listed], [fields[2] for fields in listed])
        self.assertEqual(sorted(fields[1] for fields in listed), uids)
        self.assertEqual(
            session.messages("top"),
            [
                b"From: a@example.com\nSubject: LF\n\nline one\nline two\n",
                b"From: a@example.com\nSubject: CRLF\n\nline one\nline two\n",
                b"Subject: dots\n\n.\n..\n",
            ],
        )
        self.assertEqual(session.all("delete"), [["1", "1"], ["2", "1"]])
        reset = session.one("reset")
        self.assertEqual(reset[0], "200")  # Net::POP3's code for +OK
        self.assertEqual(
            bytes.fromhex(reset[1]), b"maildrop has 3 messages (%d octets)\n" % sum(sizes)
        )
        self.assertEqual(session.one("quit"), ["1"])
        remaining = await self.maildir.session(lambda client: client.uidl())
        self.assertEqual(len(remaining[1]), 2)
        self.assertEqual(
            sorted(line.split(b" ")[1].decode() for line in remaining[1]),
            sorted(uid for uid in uids if uid != listed[1][1]),
        )

    async def test_apop(self) -> None:
        """
        C{apop} logs in against a C{PLAIN}-stored password when the greeting has a
        timestamp; a wrong password is refused with C{[AUTH]}.
        """
        server = MaildirServer(self, apop=True)
        server.deliver(*FIRST_MESSAGES)
        refused = await self.session(method="apop", password="wrong", server=server)
        self.assertTrue(bytes.fromhex(refused.one("refused")[0]).startswith(b"[AUTH] "))
        self.assertNotIn("count", refused.results)
        session = await self.session(1, 2, 3, method="apop", server=server)
        banner = bytes.fromhex(session.one("banner")[0])
        self.assertIsNotNone(APOP_TIMESTAMP.search(banner), banner)
        self.assertEqual(session.one("count"), ["3"])
        self.assertIn(["APOP"], session.all("capa"))
        self.assertRetrieved(session, FIRST_MESSAGES)
        self.assertEqual(session.one("quit"), ["1"])
        self.assertEqual(server.files(), [])

    async def test_wrongPassword(self) -> None:
        """
        A wrong password is refused with C{[AUTH]} and leaves the maildrop alone.
        """
        self.maildir.deliver(*FIRST_MESSAGES)
        session = await self.session(1, password="wrong")
        self.assertTrue(bytes.fromhex(session.one("refused")[0]).startswith(b"[AUTH] "))
        self.assertEqual(session.one("quit"), ["1"])
        self.assertEqual(len(self.maildir.files()), len(FIRST_MESSAGES))

    async def test_retrieveAllByteExact(self) -> None:
        """
        Every fixture is listed with its canonical size and arrives as its canonical form
        with LF line ends.
        """
        messages = list(FIXTURES.values())
        self.maildir.deliver(*messages)
        self.assertRetrieved(await self.session(), messages)
        self.assertEqual(len(self.maildir.files()), len(messages))

    async def test_dotLines(self) -> None:
        """
        Lines that begin with dots arrive un-stuffed, in C{get} and C{top} alike.
        """
        self.maildir.deliver(*DOT_MESSAGES)
        session = await self.session()
        self.assertRetrieved(session, DOT_MESSAGES)
        self.assertEqual(session.messages("top")[0], b"Subject: dots\n\n.\n..\n")
        self.assertEqual(
            session.messages("top")[1], b"Subject: a final dot without line end\n\ntext\n.\n"
        )

    async def test_eightBit(self) -> None:
        """
        UTF-8 and other 8-bit bodies arrive unchanged apart from line ends.
        """
        self.maildir.deliver(*EIGHT_BIT_MESSAGES)
        self.assertRetrieved(await self.session(), EIGHT_BIT_MESSAGES)
