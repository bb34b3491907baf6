"""
Tests for the runnable examples under C{docs/examples/}, which the documentation includes.

The examples are not a package: each is imported from its path, as a user would run it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import poplib
import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from twisted.application.service import IService, MultiService
from twisted.cred.portal import IRealm
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import Interface
from zope.interface.verify import verifyObject

from pop3kit.backends.maildir import deliver
from pop3kit.checkers.passwdfile import addUser, hashPassword
from pop3kit.core import (
    wireSize,
)
from pop3kit.errors import MessageUnavailable, PermanentFailure
from pop3kit.interfaces import IMailbox
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedServer, IMailboxContractMixin
from tests._oracle import crlfForm
from tests._pki import sharedPKI
from tests.test_twistd import TWISTD, childPythonPath

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def loadExample(name: str) -> ModuleType:
    """
    Import C{docs/examples/<name>.py} by its path, as the module C{docs_example_<name>}.
    """
    moduleName = f"docs_example_{name}"
    if moduleName in sys.modules:
        return sys.modules[moduleName]
    spec = importlib.util.spec_from_file_location(moduleName, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[moduleName] = module
    spec.loader.exec_module(module)
    return module


dirmailbox = loadExample("dirmailbox")
embed = loadExample("embed")

HELLO = b"From: bob@example.com\nSubject: hello\n\nHi Alice!\n.\n"


def lines(response: bytes) -> list[bytes]:
    """
    Split a response into lines.
    """
    return response.split(b"\r\n")[:-1]


class DirectoryMailboxContractTests(IMailboxContractMixin, TestCase):
    """
    The tutorial's C{DirectoryMailbox} keeps the L{IMailbox} contract, for file names that
    are valid unique-ids and for names that are hashed.
    """

    def mailboxWithMessages(self, messages: list[bytes]) -> Deferred[IMailbox]:
        path = self.mktemp()
        os.makedirs(path)
        self.delivered = 0
        for message in messages:
            self._write(path, message)
        return succeed(dirmailbox.DirectoryMailbox(path))  # type: ignore[no-any-return]

    def _write(self, path: str, message: bytes) -> None:
        """
        Store C{message} after the others; every other name has a space, so its
        unique-id is a hash.
        """
        self.delivered += 1
        name = f"{self.delivered:04d}.eml" if self.delivered % 2 else f"{self.delivered:04d} x.eml"
        with open(os.path.join(path, name), "wb") as f:
            f.write(message)

    def deliverMore(self, mailbox: IMailbox, message: bytes) -> Deferred[None]:
        self._write(str(mailbox.maildropId), message)
        return succeed(None)

    def reopen(self, mailbox: IMailbox) -> Deferred[IMailbox]:
        return succeed(dirmailbox.DirectoryMailbox(str(mailbox.maildropId)))  # type: ignore[no-any-return]


class DirectoryMailboxTests(SynchronousTestCase):
    """
    The parts of the tutorial's backend the contract does not cover.
    """

    def setUp(self) -> None:
        self.path = self.mktemp()
        os.makedirs(self.path)

    def test_uids(self) -> None:
        """
        A file name that is a valid unique-id is the unique-id; other names are hashed.
        """
        self.assertEqual(dirmailbox.uidFor("0001.eml"), "0001.eml")
        hashed = dirmailbox.uidFor("a name with spaces.eml")
        self.assertEqual(len(hashed), 40)
        self.assertEqual(hashed, dirmailbox.uidFor("a name with spaces.eml"))

    def test_otherFilesIgnored(self) -> None:
        """
        Only C{.eml} files that are not hidden are messages.
        """
        for name in ("1.eml", "notes.txt", ".2.eml"):
            with open(os.path.join(self.path, name), "wb") as f:
                f.write(HELLO)
        os.mkdir(os.path.join(self.path, "3.eml"))
        listing = self.successResultOf(dirmailbox.DirectoryMailbox(self.path).listMessages())
        self.assertEqual([info.uid for info in listing], ["1.eml"])
        self.assertEqual(listing[0].size, wireSize(HELLO))

    def test_vanishedFile(self) -> None:
        """
        A listed message whose file is gone cannot be opened.
        """
        with open(os.path.join(self.path, "1.eml"), "wb") as f:
            f.write(HELLO)
        mailbox = dirmailbox.DirectoryMailbox(self.path)
        [info] = self.successResultOf(mailbox.listMessages())
        os.unlink(os.path.join(self.path, "1.eml"))
        self.failureResultOf(mailbox.openMessage(info.uid), MessageUnavailable)


class DirectoryRealmTests(SynchronousTestCase):
    """
    The tutorial's C{DirectoryRealm}.
    """

    def setUp(self) -> None:
        self.root = self.mktemp()
        os.makedirs(os.path.join(self.root, "alice"))
        self.realm = dirmailbox.DirectoryRealm(self.root)

    def test_interface(self) -> None:
        """
        The realm provides L{IRealm}.
        """
        self.assertTrue(verifyObject(IRealm, self.realm))

    def test_avatar(self) -> None:
        """
        A user with a directory gets an L{IMailbox} on it, and a logout callable.
        """
        interface, mailbox, logout = self.realm.requestAvatar(b"alice", None, IMailbox)
        self.assertIs(interface, IMailbox)
        self.assertEqual(mailbox.maildropId, os.path.realpath(os.path.join(self.root, "alice")))
        logout()

    def test_refused(self) -> None:
        """
        Users without a directory, and names that are not safe paths, get
        L{PermanentFailure}.
        """
        for name in (b"bob", b"..", b"../alice", b"", "a/b", ()):
            self.assertRaises(PermanentFailure, self.realm.requestAvatar, name, None, IMailbox)

    def test_otherInterface(self) -> None:
        """
        The realm provides nothing but L{IMailbox}.
        """
        self.assertRaises(NotImplementedError, self.realm.requestAvatar, b"alice", None, Interface)


class DirectorySessionTests(SynchronousTestCase):
    """
    A POP3 session on the tutorial's backend, through L{ConnectedServer}.
    """

    def setUp(self) -> None:
        self.root = self.mktemp()
        self.alice = os.path.join(self.root, "alice")
        os.makedirs(self.alice)
        self.messages = [HELLO, b"Subject: second\r\n\r\ntwo\r\n"]
        for number, message in enumerate(self.messages, 1):
            with open(os.path.join(self.alice, f"{number:04d}.eml"), "wb") as f:
                f.write(message)
        self.clock = Clock()
        self.factory = dirmailbox.makeFactory(self.root, {"alice": "secret"}, clock=self.clock)

    def test_factory(self) -> None:
        """
        The example builds a L{POP3ServerFactory}.
        """
        self.assertIsInstance(self.factory, POP3ServerFactory)

    def test_loginListRetrDeleteQuit(self) -> None:
        """
        Alice logs in, lists, retrieves and deletes a message; QUIT removes its file.
        """
        connection = ConnectedServer(self.factory)
        self.assertTrue(connection.greeting.startswith(b"+OK "))
        self.assertIn(b"+OK maildrop has 2 messages", connection.login(b"alice", b"secret"))
        sizes = [wireSize(message) for message in self.messages]
        self.assertEqual(
            lines(connection.send(b"LIST\r\n"))[1:],
            [b"1 %d" % sizes[0], b"2 %d" % sizes[1], b"."],
        )
        self.assertEqual(
            lines(connection.send(b"UIDL\r\n"))[1:], [b"1 0001.eml", b"2 0002.eml", b"."]
        )
        retrieved = connection.send(b"RETR 1\r\n")
        self.assertEqual(
            retrieved,
            b"+OK %d octets\r\n" % sizes[0]
            + crlfForm(HELLO).replace(b"\r\n.\r\n", b"\r\n..\r\n")
            + b".\r\n",
        )
        self.assertEqual(connection.send(b"DELE 1\r\n"), b"+OK message 1 deleted\r\n")
        self.assertEqual(connection.send(b"QUIT\r\n"), b"+OK bye\r\n")
        self.assertTrue(connection.transport.disconnecting)
        self.assertEqual(os.listdir(self.alice), ["0002.eml"])

    def test_wrongPassword(self) -> None:
        """
        A wrong password is refused with C{[AUTH]} after the failed-login delay.
        """
        connection = ConnectedServer(self.factory)
        self.assertEqual(connection.login(b"alice", b"wrong"), b"+OK send PASS\r\n")
        self.clock.advance(2)
        self.assertTrue(connection.read().startswith(b"-ERR [AUTH] "))

    def test_noDirectory(self) -> None:
        """
        A user the checker knows but who has no directory gets C{[SYS/PERM]}.
        """
        factory = dirmailbox.makeFactory(self.root, {"bob": "pw"}, clock=self.clock)
        response = ConnectedServer(factory).login(b"bob", b"pw")
        self.assertIn(b"-ERR [SYS/PERM] no maildrop for this user", response)


class EmbedTests(SynchronousTestCase):
    """
    The embedding example builds its factory and services without running a reactor.
    """

    def setUp(self) -> None:
        self.dataDir = self.mktemp()
        os.makedirs(os.path.join(self.dataDir, "mail"))
        self.passwd = os.path.join(self.dataDir, "passwd")
        addUser(self.passwd, "alice", hashPassword("secret", "PLAIN"))

    def test_factorySession(self) -> None:
        """
        The factory serves the users of the passwd-file their Maildirs.
        """
        maildirRoot = os.path.join(self.dataDir, "mail")
        deliver(os.path.join(maildirRoot, "alice"), io.BytesIO(HELLO))
        factory = embed.makePOP3Factory(maildirRoot, self.passwd, clock=Clock())
        self.assertIsInstance(factory, POP3ServerFactory)
        connection = ConnectedServer(factory)
        self.assertIn(b"+OK maildrop has 1 messages", connection.login(b"alice", b"secret"))
        self.assertIn(b"IMPLEMENTATION embedded pop3kit", connection.send(b"CAPA\r\n"))
        self.assertTrue(connection.send(b"RETR 1\r\n").startswith(b"+OK "))

    def test_listen(self) -> None:
        """
        L{listenPOP3} listens on the endpoint described.
        """
        reactor = MemoryReactor()
        factory = embed.makePOP3Factory(self.dataDir, self.passwd, clock=Clock())
        self.successResultOf(embed.listenPOP3(reactor, "tcp:1110:interface=127.0.0.1", factory))
        [(port, listening, _, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (1110, "127.0.0.1"))
        self.assertIs(listening, factory)

    def test_service(self) -> None:
        """
        The service listens only while it runs.
        """
        reactor = MemoryReactor()
        dataDir = self.mktemp()
        service = embed.makePOP3Service(reactor, "tcp:1110", dataDir)
        self.assertTrue(verifyObject(IService, service))
        self.assertTrue(os.path.isdir(os.path.join(dataDir, "mail")))
        self.assertEqual(reactor.tcpServers, [])
        service.startService()
        self.assertEqual(reactor.tcpServers[0][0], 1110)
        self.assertIsInstance(reactor.tcpServers[0][1], POP3ServerFactory)
        service.stopService()

    def test_application(self) -> None:
        """
        The application's L{MultiService} holds the POP3 service.
        """
        services = embed.makeApplicationServices(MemoryReactor(), self.dataDir)
        self.assertIsInstance(services, MultiService)
        self.assertEqual([child.name for child in services], ["pop3"])


#: The examples' directory, as the documentation runs them from.
ROOT = Path(__file__).resolve().parent.parent


def exampleEnvironment(**extra: str) -> dict[str, str]:
    """
    The environment of an example run as a program: this pop3kit importable, and no
    C{POP3_*} settings but C{extra}.
    """
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("POP3_")
    }
    environment["PYTHONPATH"] = childPythonPath()
    environment.update(extra)
    return environment


class ExampleProcess:
    """
    An example server run as documented, as a child process that prints where it
    listens, stopped by its process id at the end of the test.
    """

    def __init__(self, testCase: TestCase, *command: str, **environment: str) -> None:
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=exampleEnvironment(**environment),
            text=True,
        )
        testCase.addCleanup(self.stop)

    def stop(self) -> None:
        """
        Terminate the example (it runs until interrupted) and close its pipes.
        """
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            assert stream is not None
            stream.close()

    async def port(self) -> int:
        """
        The port from the example's first line, C{serving ... on HOST:PORT}.
        """
        assert self.process.stdout is not None
        line = await deferToThread(self.process.stdout.readline)
        match = re.search(r"^serving .* on 127\.0\.0\.1:(\d+)$", line)
        if match is None:
            assert self.process.stderr is not None
            self.process.wait(10)
            raise AssertionError(f"no address in {line!r}: {self.process.stderr.read()}")
        port = int(match.group(1))
        assert port != 1110, "the example ignored where it was told to listen"
        return port

    async def failure(self) -> tuple[int, str]:
        """
        Wait for the example to exit by itself.

        @return: Its status and standard error.
        """
        assert self.process.stderr is not None
        status = await deferToThread(self.process.wait, 30)
        return status, self.process.stderr.read()


def popSession(port: int, user: str, password: str, cafile: str | None = None) -> bytes:
    """
    Log in with poplib (after STLS if C{cafile} is given, trusting it), retrieve message
    1 and quit.

    @return: The message, CRLF line ends.
    """
    client = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        if cafile is not None:
            context = ssl.create_default_context(cafile=cafile)
            context.check_hostname = False
            client.stls(context)
        client.user(user)
        client.pass_(password)
        _, lines, _ = client.retr(1)
        client.quit()
    finally:
        client.close()
    return b"".join(line + b"\r\n" for line in lines)


class RunAsDocumentedTests(TestCase):
    """
    Each server example, run as its page says, listens on the port it is given (a free
    one here), offers STLS when given a certificate, and says in one line when its port
    is taken instead of hanging.
    """

    timeout = 120

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.pki, self.issued = sharedPKI()
        holder = socket.socket()
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        self.busy = f"tcp:{holder.getsockname()[1]}:interface=127.0.0.1"

    def dirmailbox(self, *options: str) -> ExampleProcess:
        """
        C{python docs/examples/dirmailbox.py ROOT alice:secret OPTIONS}, alice having one
        message.
        """
        root = os.path.join(self.directory, "mail")
        os.makedirs(os.path.join(root, "alice"), exist_ok=True)
        with open(os.path.join(root, "alice", "0001.eml"), "wb") as f:
            f.write(HELLO)
        script = str(EXAMPLES / "dirmailbox.py")
        return ExampleProcess(self, sys.executable, script, root, "alice:secret", *options)

    def embedDataDir(self) -> str:
        """
        A data directory with alice (added with C{pop3kit user add}) and one message.
        """
        dataDir = os.path.join(self.directory, "data")
        command = [sys.executable, "-m", "pop3kit", "--data-dir", dataDir]
        added = subprocess.run(
            [*command, "user", "add", "alice", "--password-stdin"],
            input=b"secret\n",
            env=exampleEnvironment(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        self.assertEqual(added.returncode, 0, added.stderr)
        deliver(os.path.join(dataDir, "mail", "alice"), io.BytesIO(HELLO))
        return dataDir

    async def test_dirmailbox(self) -> None:
        """
        C{dirmailbox.py ... --listen tcp:0:interface=127.0.0.1} serves alice's file.
        """
        server = self.dirmailbox("--listen", "tcp:0:interface=127.0.0.1")
        port = await server.port()
        self.assertEqual(await deferToThread(popSession, port, "alice", "secret"), crlfForm(HELLO))

    async def test_dirmailboxSTLS(self) -> None:
        """
        With C{--tls-certificate} and C{--tls-key} (here from C{$POP3_*}), STLS.
        """
        root = os.path.join(self.directory, "mail")
        os.makedirs(os.path.join(root, "alice"))
        with open(os.path.join(root, "alice", "0001.eml"), "wb") as f:
            f.write(HELLO)
        server = ExampleProcess(
            self,
            *(sys.executable, str(EXAMPLES / "dirmailbox.py"), root, "alice:secret"),
            POP3_LISTEN="tcp:0:interface=127.0.0.1",
            POP3_TLS_CERTIFICATE=self.issued.certificate,
            POP3_TLS_KEY=self.issued.key,
        )
        port = await server.port()
        message = await deferToThread(popSession, port, "alice", "secret", self.pki.ca.certificate)
        self.assertEqual(message, crlfForm(HELLO))

    async def test_dirmailboxPortBusy(self) -> None:
        """
        A port in use ends the example with status 1 and one line.
        """
        status, err = await self.dirmailbox("--listen", self.busy).failure()
        self.assertEqual(status, 1, err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn(f"dirmailbox.py: cannot listen on {self.busy}: ", err)

    async def test_embed(self) -> None:
        """
        C{embed.py DATA_DIR --listen ... --tls-certificate ... --tls-key ...} serves the
        users of C{pop3kit user add}, with STLS.
        """
        dataDir = self.embedDataDir()
        server = ExampleProcess(
            self,
            *(sys.executable, str(EXAMPLES / "embed.py"), dataDir),
            *("--listen", "tcp:0:interface=127.0.0.1"),
            *("--tls-certificate", self.issued.certificate, "--tls-key", self.issued.key),
        )
        port = await server.port()
        message = await deferToThread(popSession, port, "alice", "secret", self.pki.ca.certificate)
        self.assertEqual(message, crlfForm(HELLO))

    async def test_embedPortBusy(self) -> None:
        """
        A port in use ends C{embed.py} with status 1 and one line.
        """
        server = ExampleProcess(
            self, sys.executable, str(EXAMPLES / "embed.py"), self.directory, "--listen", self.busy
        )
        status, err = await server.failure()
        self.assertEqual(status, 1, err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn(f"embed.py: cannot listen on {self.busy}: ", err)

    async def test_tac(self) -> None:
        """
        C{twistd -ny pop3.tac}, next to C{embed.py} and run from elsewhere, serves the
        C{$POP3_DATA_DIR} on C{$POP3_LISTEN}.
        """
        dataDir = self.embedDataDir()
        log = os.path.join(self.directory, "twistd.log")
        ExampleProcess(
            self,
            *(sys.executable, "-c", TWISTD, "-ny", str(EXAMPLES / "pop3.tac")),
            *("--pidfile=", "--logfile", log),
            POP3_LISTEN="tcp:0:interface=127.0.0.1",
            POP3_DATA_DIR=dataDir,
        )
        port = 0
        for _ in range(600):
            with contextlib.suppress(FileNotFoundError), open(log) as f:
                match = re.search(r"POP3ServerFactory starting on (\d+)", f.read())
                if match is not None:
                    port = int(match.group(1))
                    break
            await deferLater(reactor, 0.05, lambda: None)
        with open(log) as f:
            self.assertTrue(port, f.read())
        self.assertEqual(await deferToThread(popSession, port, "alice", "secret"), crlfForm(HELLO))

    async def test_memorytests(self) -> None:
        """
        C{python -m twisted.trial docs/examples/memorytests.py} passes.
        """
        result = await deferToThread(
            subprocess.run,
            [sys.executable, "-m", "twisted.trial", str(EXAMPLES / "memorytests.py")],
            cwd=self.directory,
            env=exampleEnvironment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("PASSED", result.stdout)
