"""
Tests for L{pop3kit.tap}: the options of C{twistd pop3kit}, the service they build, the
zero-configuration mode, and the discovery of the twistd and checker plugins.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
from typing import Any, cast

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IServiceMaker, MultiService
from twisted.cred import strcred
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import reactor
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from pop3kit import tap
from pop3kit._layout import DEFAULT_DATA_DIR, passwdPath
from pop3kit._listeners import Listener, withBacklog
from pop3kit.backends.maildir import deliver, mailboxPath
from pop3kit.checkers.passwdfile import (
    PasswdFileChecker,
    PasswdFileCheckerFactory,
    addUser,
    hashPassword,
)
from pop3kit.core import (
    NEVER,
)
from pop3kit.interfaces import IMailbox
from pop3kit.server import POP3ServerFactory
from tests.test_server_loopback import POP3TestClient


def parse(*arguments: str) -> tap.Options:
    """
    Parse C{arguments} as C{twistd pop3kit} would.
    """
    options = tap.Options()
    options.parseOptions(list(arguments))
    return options


def checkerFor(factory: POP3ServerFactory) -> ICredentialsChecker:
    """
    The checker the factory's portal uses for USER/PASS.
    """
    checker: ICredentialsChecker = factory.portal.checkers[IUsernamePassword]
    return checker


@implementer(ILogObserver)
class LogCapture:
    """
    Collect the text of the log events emitted while it is installed.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, event: LogEvent) -> None:
        """
        Keep the formatted event.
        """
        self.messages.append(formatEvent(event))


class OptionsTests(TestCase):
    """
    Parsing and checking the options of C{twistd pop3kit}.
    """

    def test_defaults(self) -> None:
        """
        Without options the server listens on 127.0.0.1:1110 only, with RFC 1939's
        ten-minute timeout, serving the zero-configuration data directory.
        """
        options = parse()
        self.assertEqual(options["listen"], ["tcp:1110:interface=127.0.0.1"])
        self.assertEqual(options["listen"], [tap.DEFAULT_LISTEN])
        self.assertEqual(options["timeout"], 600.0)
        self.assertEqual(options["failed-login-delay"], 2.0)
        self.assertIsNone(options["login-delay"])
        self.assertIsNone(options["expire"])
        self.assertIsNone(options["implementation"])
        self.assertFalse(options["apop"])
        self.assertEqual(options["data-dir"], "pop3kit-data")
        self.assertEqual(options["maildir-root"], os.path.join("pop3kit-data", "mail"))
        self.assertEqual(options["credCheckers"], [])
        self.assertTrue(options["zero-config-users"])

    def test_timeout(self) -> None:
        """
        A timeout under ten minutes is refused; a longer one is kept.
        """
        for value in ("10", "599", "-1", "ten"):
            self.assertRaises(usage.UsageError, parse, "--timeout", value)
        self.assertEqual(parse("--timeout", "900")["timeout"], 900.0)

    def test_expire(self) -> None:
        """
        C{--expire} takes a number of days or C{never}, in any case.
        """
        self.assertEqual(parse("--expire", "never")["expire"], NEVER)
        self.assertEqual(parse("--expire", "NEVER")["expire"], NEVER)
        self.assertEqual(parse("--expire", "7")["expire"], 7)
        self.assertEqual(parse("--expire", "0")["expire"], 0)
        for value in ("bad", "-1", "7.5", ""):
            self.assertRaises(usage.UsageError, parse, "--expire", value)

    def test_loginDelays(self) -> None:
        """
        C{--login-delay} and C{--failed-login-delay} take non-negative numbers.
        """
        self.assertEqual(parse("--login-delay", "30")["login-delay"], 30)
        self.assertEqual(parse("--failed-login-delay", "0")["failed-login-delay"], 0.0)
        self.assertEqual(parse("--failed-login-delay", "0.5")["failed-login-delay"], 0.5)
        for arguments in (
            ("--login-delay", "-1"),
            ("--login-delay", "x"),
            ("--failed-login-delay", "-0.1"),
        ):
            self.assertRaises(usage.UsageError, parse, *arguments)

    def test_loginPolicy(self) -> None:
        """
        The cleartext policy, the SASL mechanisms and the limits have safe defaults and
        refuse bad values.
        """
        options = parse()
        self.assertEqual(options["allow-cleartext"], "loopback")
        self.assertIsNone(options["sasl"])
        self.assertEqual(options["max-failed-logins"], 3)
        self.assertEqual(options["max-bad-commands"], 10)
        self.assertEqual(options["failed-login-max-delay"], 15.0)
        self.assertEqual(options["handshake-timeout"], 30.0)
        self.assertEqual(parse("--sasl", "plain, Cram-MD5")["sasl"], ["PLAIN", "CRAM-MD5"])
        self.assertEqual(parse("--allow-cleartext", "never")["allow-cleartext"], "never")
        for arguments in (
            ("--allow-cleartext", "sometimes"),
            ("--sasl", "PLAIN,KERBEROS_V4"),
            ("--max-failed-logins", "0"),
            ("--max-bad-commands", "-1"),
            ("--failed-login-max-delay", "-1"),
            ("--handshake-timeout", "0"),
            ("--apop-host", "a b"),
            ("--max-unauthenticated", "0"),
            ("--max-per-client", "0"),
            ("--max-auth-line", "100"),
            ("--apop-host", "x>y"),
        ):
            self.assertRaises(usage.UsageError, parse, *arguments)

    def test_implementation(self) -> None:
        """
        C{--implementation} takes printable, non-empty text.
        """
        self.assertEqual(parse("--implementation", "pop3kit 1.0")["implementation"], "pop3kit 1.0")
        for value in ("", "bell\x07", "two\nlines"):
            self.assertRaises(usage.UsageError, parse, "--implementation", value)

    def test_repeatedListen(self) -> None:
        """
        C{--listen} may be given several times; the default is then not added.
        """
        options = parse("--listen", "tcp:110", "--listen", "tcp6:110:interface=\\:\\:1")
        self.assertEqual(options["listen"], ["tcp:110", "tcp6:110:interface=\\:\\:1"])

    def test_authMemory(self) -> None:
        """
        C{--auth memory:alice:secret} installs Twisted's memory checker for alice, which
        the factory's portal uses for the (bytes) credentials of USER/PASS.
        """
        options = parse(
            "--auth", "memory:alice:secret", "--data-dir", os.path.abspath(self.mktemp())
        )
        self.assertEqual(len(options["credCheckers"]), 1)
        checker = checkerFor(tap.makeFactory(options))
        avatarId = self.successResultOf(
            checker.requestAvatarId(UsernamePassword(b"alice", b"secret"))
        )
        self.assertEqual(avatarId, b"alice")
        self.failureResultOf(checker.requestAvatarId(UsernamePassword(b"alice", b"wrong")))
        self.failureResultOf(checker.requestAvatarId(UsernamePassword(b"bob", b"secret")))

    def test_authPasswdFile(self) -> None:
        """
        C{--auth passwd-file:PATH} installs a L{PasswdFileChecker} reading PATH.
        """
        path = os.path.abspath(self.mktemp())
        addUser(path, "alice", hashPassword("secret", "PLAIN"))
        [checker] = parse("--auth", f"passwd-file:{path}")["credCheckers"]
        self.assertIsInstance(checker, PasswdFileChecker)
        avatarId = self.successResultOf(
            checker.requestAvatarId(UsernamePassword(b"alice", b"secret"))
        )
        self.assertEqual(avatarId, "alice")

    def test_authErrors(self) -> None:
        """
        An unknown checker type, or C{passwd-file} without a path, is a usage error.
        """
        self.assertRaises(usage.UsageError, parse, "--auth", "no-such-checker:x")
        self.assertRaises(usage.UsageError, parse, "--auth", "passwd-file:")


class MakeServiceTests(TestCase):
    """
    L{tap.makeService} and L{tap.makeFactory}.
    """

    def shortDirectory(self) -> str:
        """
        A new directory with a path short enough for a UNIX socket, removed after the
        test.
        """
        directory = tempfile.mkdtemp(prefix="p3k")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        return directory

    def test_oneServicePerListen(self) -> None:
        """
        Each C{--listen} becomes one listening service.
        """
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        service = tap.makeService(
            parse(
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--listen",
                "unix:" + os.path.join(root, "socket"),
                "--auth",
                "memory:alice:secret",
                "--maildir-root",
                root,
            )
        )
        self.assertIsInstance(service, MultiService)
        assert isinstance(service, MultiService)
        children = [child for child in service if isinstance(child, StreamServerEndpointService)]
        self.assertEqual(len(children), 3)
        self.assertFalse(os.path.exists(passwdPath(DEFAULT_DATA_DIR)))

    def test_listenBacklog(self) -> None:
        """
        TCP and TLS listeners get a backlog as large as the cap on connections waiting
        to log in, unless their description gives one: Twisted's default of 50 drops a
        crowd arriving at once.
        """
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        service = tap.makeService(
            parse(
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--listen",
                "tcp:0:interface=127.0.0.1:backlog=7",
                "--max-unauthenticated",
                "300",
                "--auth",
                "memory:alice:secret",
                "--maildir-root",
                root,
            )
        )
        assert isinstance(service, MultiService)
        backlogs = [
            getattr(child, "endpoint")._backlog  # noqa: B009
            for child in service
            if isinstance(child, Listener)
        ]
        self.assertEqual(backlogs, [300, 7])
        self.assertEqual(withBacklog("unix:/run/pop3.sock", 300), "unix:/run/pop3.sock")
        self.assertEqual(withBacklog("ssl:995", 300), "ssl:995:backlog=300")

    def test_factoryOptions(self) -> None:
        """
        The factory gets the policy the options give.
        """
        options = parse(
            "--auth",
            "memory:alice:secret",
            "--maildir-root",
            os.path.abspath(self.mktemp()),
            "--timeout",
            "700",
            "--failed-login-delay",
            "0",
            "--login-delay",
            "60",
            "--expire",
            "never",
            "--implementation",
            "test server",
            "--apop",
            "--apop-host",
            "example.org",
            "--allow-cleartext",
            "never",
            "--sasl",
            "CRAM-MD5,PLAIN",
            "--max-failed-logins",
            "5",
            "--max-bad-commands",
            "20",
            "--failed-login-max-delay",
            "30",
            "--max-unauthenticated",
            "77",
            "--max-per-client",
            "7",
            "--login-grace",
            "3.5",
            "--login-window",
            "30",
            "--max-auth-line",
            "4096",
        )
        factory = tap.makeFactory(options)
        self.assertEqual(factory.limiter.maxUnauthenticated, 77)
        self.assertEqual(factory.limiter.maxPerClient, 7)
        self.assertEqual((factory.limiter.loginGrace, factory.limiter.loginWindow), (3.5, 30))
        self.assertEqual(factory.maxSASLLineLength, 4096)
        self.assertEqual(factory.allowCleartext, "never")
        self.assertEqual(factory.sasl, ("CRAM-MD5", "PLAIN"))
        self.assertEqual(factory.maxFailedLogins, 5)
        self.assertEqual(factory.maxBadCommands, 20)
        self.assertEqual(factory.maximumFailedLoginDelay, 30.0)
        self.assertEqual(factory.timeout, 700.0)
        self.assertEqual(factory.failedLoginDelay, 0.0)
        self.assertEqual(factory.loginDelay, 60)
        self.assertEqual(factory.expire, NEVER)
        self.assertTrue(factory.apop)
        self.assertEqual(factory.apopHost, "example.org")
        capabilities = factory.capabilities()
        self.assertEqual(capabilities.implementation, "test server")
        self.assertEqual(capabilities.loginDelay, 60)

    async def test_serviceServes(self) -> None:
        """
        The service, once started, answers POP3 on the C{--listen} endpoint with the
        C{--auth} checker and the C{--maildir-root} Maildirs.
        """
        directory = self.shortDirectory()
        root = os.path.join(directory, "mail")
        deliver(mailboxPath(root, "alice"), io.BytesIO(b"Subject: hi\n\nhello\n"))
        socket = os.path.join(directory, "pop3")
        service = tap.makeService(
            parse(
                "--listen",
                "unix:" + socket,
                "--auth",
                "memory:alice:secret",
                "--maildir-root",
                root,
                "--failed-login-delay",
                "0",
            )
        )
        service.startService()
        self.addCleanup(service.stopService)
        client: POP3TestClient = await connectProtocol(
            UNIXClientEndpoint(reactor, socket), POP3TestClient()
        )
        self.addCleanup(client.abort)
        self.assertEqual(await client.greeting, b"+OK POP3 server ready")
        answers = await client.send(b"USER alice", b"PASS wrong", b"USER alice", b"PASS secret")
        self.assertTrue(answers[1][0].startswith(b"-ERR [AUTH] "))
        self.assertEqual(answers[3], [b"+OK maildrop has 1 messages (22 octets)"])
        retrieved, bye = await client.send(b"RETR 1", b"QUIT")
        self.assertEqual(retrieved, [b"+OK 22 octets", b"Subject: hi", b"", b"hello"])
        self.assertEqual(bye, [b"+OK bye"])
        await client.closed


class ZeroConfigurationTests(TestCase):
    """
    Without C{--auth}, users come from DATA_DIR/passwd, created empty if missing.
    """

    def setUp(self) -> None:
        self.dataDir = os.path.abspath(self.mktemp())
        self.passwd = os.path.join(self.dataDir, "passwd")
        self.log = LogCapture()
        globalLogPublisher.addObserver(self.log)
        self.addCleanup(globalLogPublisher.removeObserver, self.log)

    def test_createdWhenServiceStarts(self) -> None:
        """
        Nothing is created when the service is built, only when it starts: after twistd
        has dropped privileges, so the files belong to the service user.
        """
        service = tap.makeService(parse("--data-dir", self.dataDir, "--listen", "tcp:0"))
        self.assertFalse(os.path.exists(self.dataDir))
        layout = next(iter(service))  # type: ignore[call-overload]
        layout.startService()
        self.assertTrue(os.path.isfile(self.passwd))
        layout.stopService()

    def test_createsPasswdFile(self) -> None:
        """
        The data directory and its Maildir root (mode 0700) and an empty passwd-file
        (mode 0600) are created, and the log says how to add a user.
        """
        tap.prepareDataDir(parse("--data-dir", self.dataDir))
        mail = os.path.join(self.dataDir, "mail")
        self.assertTrue(os.path.isdir(mail))
        self.assertEqual(stat.S_IMODE(os.stat(mail).st_mode) & 0o077, 0)
        self.assertEqual(os.path.getsize(self.passwd), 0)
        self.assertEqual(stat.S_IMODE(os.stat(self.passwd).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.dataDir).st_mode) & 0o077, 0)
        hint = f"pop3kit --data-dir {self.dataDir} user add NAME"
        self.assertTrue(any(hint in message for message in self.log.messages), self.log.messages)

    def test_explicitMaildirRootNotCreated(self) -> None:
        """
        A C{--maildir-root} given explicitly is not created: a mistyped path is not
        served as an empty one.
        """
        root = os.path.join(self.dataDir, "typo")
        options = parse("--data-dir", self.dataDir, "--maildir-root", root)
        tap.prepareDataDir(options)
        tap.makeFactory(options)
        self.assertFalse(os.path.exists(root))

    def test_existingPasswdFileKept(self) -> None:
        """
        An existing passwd-file is used as it is.
        """
        addUser(self.passwd, "alice", hashPassword("secret", "PLAIN"))
        with open(self.passwd, "rb") as f:
            before = f.read()
        tap.prepareDataDir(parse("--data-dir", self.dataDir))
        with open(self.passwd, "rb") as f:
            self.assertEqual(f.read(), before)

    async def test_usesPasswdFile(self) -> None:
        """
        The checker reads the passwd-file, including users added after the start.
        """
        factory = tap.makeFactory(parse("--data-dir", self.dataDir))
        checker = checkerFor(factory)
        self.assertIsInstance(checker, PasswdFileChecker)
        credentials = UsernamePassword(b"alice", b"secret")
        with self.assertRaises(UnauthorizedLogin):
            await checker.requestAvatarId(credentials)
        addUser(self.passwd, "alice", hashPassword("secret", "PLAIN"))
        self.assertEqual(await checker.requestAvatarId(credentials), "alice")

    def test_mailUnderDataDir(self) -> None:
        """
        Mail delivered to DATA_DIR/mail/NAME is what the user sees.
        """
        factory = tap.makeFactory(parse("--data-dir", self.dataDir))
        addUser(self.passwd, "alice", hashPassword("secret", "PLAIN"))
        deliver(
            mailboxPath(os.path.join(self.dataDir, "mail"), "alice"),
            io.BytesIO(b"Subject: hi\n\nhello\n"),
        )
        _, avatar, logout = self.successResultOf(
            factory.portal.login(UsernamePassword(b"alice", b"secret"), None, IMailbox)
        )
        mailbox = cast(IMailbox, avatar)
        [info] = self.successResultOf(mailbox.listMessages())
        self.assertEqual(info.size, 22)
        logout()

    def test_loginBeforeFirstDelivery(self) -> None:
        """
        A user added in zero-configuration mode can log in before any mail arrived.

        Regression: L{MaildirRealm} creates only the user's own Maildir, so without
        DATA_DIR/mail the login failed with C{[SYS/TEMP]} until C{pop3kit deliver} had
        created it.
        """
        options = parse("--data-dir", self.dataDir)
        tap.prepareDataDir(options)
        factory = tap.makeFactory(options)
        addUser(self.passwd, "alice", hashPassword("secret", "PLAIN"))
        result = factory.portal.login(UsernamePassword(b"alice", b"secret"), None, IMailbox)
        failures: list[Any] = []
        result.addErrback(failures.append)
        self.flushLoggedErrors(FileNotFoundError)
        self.assertEqual(failures, [], "a new zero-configuration user cannot log in")
        _, avatar, logout = self.successResultOf(result)
        self.assertEqual(self.successResultOf(cast(IMailbox, avatar).listMessages()), [])
        logout()


class PluginTests(TestCase):
    """
    Twisted finds pop3kit's plugins.
    """

    def test_serviceMaker(self) -> None:
        """
        L{getPlugins} finds one L{IServiceMaker} named C{pop3kit} whose options and
        service come from L{pop3kit.tap}.
        """
        makers = [maker for maker in getPlugins(IServiceMaker) if maker.tapname == "pop3kit"]
        self.assertEqual(len(makers), 1, "the pop3kit twistd plugin was not found")
        [maker] = makers
        self.assertIs(maker.options, tap.Options)
        self.assertIs(maker.makeService, tap.makeService)  # type: ignore[comparison-overlap]
        self.assertTrue(maker.description)

    def test_checkerFactory(self) -> None:
        """
        C{strcred} finds the C{passwd-file} checker factory (the plugin file's stand-in
        for L{PasswdFileCheckerFactory}).
        """
        factory = strcred.findCheckerFactory("passwd-file")
        self.assertEqual(factory.authType, PasswdFileCheckerFactory.authType)
        self.assertIn(IUsernamePassword, factory.credentialInterfaces)
