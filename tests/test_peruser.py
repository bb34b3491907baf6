"""
Tests for per-user LOGIN-DELAY and EXPIRE: read from a passwd-file's extra fields (or any
L{pop3kit.interfaces.IUserSettingsSource}), announced with C{USER} before login and as
the user's values after (RFC 2449 sections 6.5 and 6.7), and enforced.
"""

from __future__ import annotations

import os

from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from pop3kit.backends.memory import MemoryMailbox, MemoryRealm
from pop3kit.checkers._usersettings import parseUserSettings
from pop3kit.checkers.passwdfile import PasswdFileChecker
from pop3kit.core import UserSettings
from pop3kit.cred import ChainedChecker
from pop3kit.interfaces import IUserSettingsSource
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedServer

DAY = 86400.0

PASSWD = (
    "alice:{PLAIN}secret:::::: pop3kit_login_delay=900 pop3kit_expire=5 mail=maildir:~/M\n"
    "bob:{PLAIN}secret\n"
    "carol:{PLAIN}secret::::::userdb_pop3kit_login_delay=0 userdb_pop3kit_expire=NEVER\n"
)


@implementer(IUserSettingsSource)
class AvatarSettings(MemoryMailbox):
    """
    A memory mailbox that gives its own user settings.
    """

    def userSettings(self, avatarId: str) -> Deferred[UserSettings]:
        return succeed(UserSettings(loginDelay=7))


class PerUserTests(SynchronousTestCase):
    """
    A server whose passwd-file gives alice and carol values of their own.
    """

    def setUp(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(PASSWD)
        self.checker = PasswdFileChecker(path)
        self.mailboxes = {
            name: MemoryMailbox([b"one\n", b"two\n"], maildropId=f"memory:{name}")
            for name in ("alice", "bob", "carol")
        }
        self.clock = Clock()
        self.clock.advance(100 * DAY)

    def factory(self, checker: object = None) -> POP3ServerFactory:
        portal = Portal(MemoryRealm(self.mailboxes), [checker or self.checker])  # type: ignore[list-item]
        return POP3ServerFactory(portal, clock=self.clock, loginDelay=60, expire=30)

    def login(self, factory: POP3ServerFactory, name: bytes) -> tuple[ConnectedServer, bytes]:
        server = ConnectedServer(factory)
        return server, server.login(name, b"secret")

    def test_capaBeforeLogin(self) -> None:
        """
        Before login CAPA shows the server's values with C{USER}.
        """
        server = ConnectedServer(self.factory())
        capa = server.send(b"CAPA\r\n")
        self.assertIn(b"\r\nLOGIN-DELAY 60 USER\r\n", capa)
        self.assertIn(b"\r\nEXPIRE 30 USER\r\n", capa)

    def test_capaAfterLogin(self) -> None:
        """
        After login CAPA shows the user's values, without C{USER}; a user without
        values of their own gets the server's.
        """
        factory = self.factory()
        for name, delay, expire in [
            (b"alice", b"900", b"5"),
            (b"bob", b"60", b"30"),
            (b"carol", b"0", b"NEVER"),
        ]:
            server, reply = self.login(factory, name)
            self.assertIn(b"+OK maildrop", reply)
            capa = server.send(b"CAPA\r\n")
            self.assertIn(b"\r\nLOGIN-DELAY " + delay + b"\r\n", capa, name)
            self.assertIn(b"\r\nEXPIRE " + expire + b"\r\n", capa, name)
            self.assertNotIn(b" USER\r\n", capa.replace(b"UTF8 USER", b""))

    def test_loginDelayPerUser(self) -> None:
        """
        Each user's LOGIN-DELAY is enforced: alice waits 900 seconds, bob the server's
        60, carol not at all.
        """
        factory = self.factory()
        for name in (b"alice", b"bob", b"carol"):
            server, _ = self.login(factory, name)
            server.send(b"QUIT\r\n")
        _, reply = self.login(factory, b"carol")
        self.assertIn(b"+OK maildrop", reply)
        self.clock.advance(120)
        _, reply = self.login(factory, b"alice")
        self.assertIn(b"-ERR [LOGIN-DELAY]", reply)
        _, reply = self.login(factory, b"bob")
        self.assertIn(b"+OK maildrop", reply)
        self.clock.advance(900)
        _, reply = self.login(factory, b"alice")
        self.assertIn(b"+OK maildrop", reply)

    def test_expirePerUser(self) -> None:
        """
        Each user's EXPIRE is enforced: after 6 days alice's retrieved message is
        removed, bob's (the server's 30 days) is not.
        """
        factory = self.factory()
        for name in (b"alice", b"bob"):
            server, _ = self.login(factory, name)
            server.send(b"RETR 1\r\nQUIT\r\n")
        self.clock.advance(6 * DAY)
        for name in (b"alice", b"bob"):
            server, _ = self.login(factory, name)
            server.send(b"QUIT\r\n")
        self.assertEqual(len(self.mailboxes["alice"].messages), 1)
        self.assertEqual(len(self.mailboxes["bob"].messages), 2)

    def test_chainedChecker(self) -> None:
        """
        A passwd-file inside a L{ChainedChecker} gives its users' values too.
        """
        factory = self.factory(ChainedChecker([self.checker]))
        self.assertIn(b"EXPIRE 30 USER", ConnectedServer(factory).send(b"CAPA\r\n"))
        server, _ = self.login(factory, b"alice")
        self.assertIn(b"\r\nEXPIRE 5\r\n", server.send(b"CAPA\r\n"))

    def test_avatarFirst(self) -> None:
        """
        An avatar that provides L{IUserSettingsSource} has the first word; what it
        leaves unset comes from the checker.
        """
        self.mailboxes["alice"] = AvatarSettings([b"one\n"], maildropId="memory:alice")
        server, _ = self.login(self.factory(), b"alice")
        capa = server.send(b"CAPA\r\n")
        self.assertIn(b"\r\nLOGIN-DELAY 7\r\n", capa)
        self.assertIn(b"\r\nEXPIRE 5\r\n", capa)

    def test_noSourceNoUser(self) -> None:
        """
        Without a source of per-user values, CAPA shows no C{USER} argument.
        """
        from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse

        factory = self.factory(InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret"))
        capa = ConnectedServer(factory).send(b"CAPA\r\n")
        self.assertIn(b"\r\nLOGIN-DELAY 60\r\n", capa)
        self.assertIn(b"\r\nEXPIRE 30\r\n", capa)

    def test_fileEditedTakesEffect(self) -> None:
        """
        A value changed in the file applies at the next login.
        """
        factory = self.factory()
        with open(self.checker._path, "w") as f:
            f.write(PASSWD.replace("pop3kit_expire=5", "pop3kit_expire=9 "))
        os.utime(self.checker._path, (1, 1))
        server, _ = self.login(factory, b"alice")
        self.assertIn(b"\r\nEXPIRE 9\r\n", server.send(b"CAPA\r\n"))


class ParseTests(SynchronousTestCase):
    """
    The extra fields a passwd-file line may carry.
    """

    def parse(self, text: str) -> tuple[dict[str, UserSettings], list[tuple[int, str, str]]]:
        warnings: list[tuple[int, str, str]] = []
        found = parseUserSettings(text.encode("utf-8"), lambda *warning: warnings.append(warning))
        return found, warnings

    def test_fields(self) -> None:
        """
        Both names, with or without C{userdb_}; other fields and lines without extra
        fields are ignored; the first line of a user counts.
        """
        found, warnings = self.parse(
            "# comment\n"
            "a:x::::::pop3kit_login_delay=10 quota_rule=*:storage=1G\n"
            "b:x::::::userdb_pop3kit_expire=never\n"
            "c:x\n"
            "a:x::::::pop3kit_login_delay=20\n"
        )
        self.assertEqual(
            found,
            {"a": UserSettings(loginDelay=10), "b": UserSettings(expire="NEVER")},
        )
        self.assertEqual(warnings, [])

    def test_invalidIgnored(self) -> None:
        """
        A value that is not valid is ignored with a warning naming the line and user.
        """
        found, warnings = self.parse(
            "a:x::::::pop3kit_login_delay=-1 pop3kit_expire=30\n"
            "b:x::::::pop3kit_expire=soon pop3kit_login_delay\n"
        )
        self.assertEqual(found, {"a": UserSettings(expire=30)})
        self.assertEqual(
            [(line, user) for line, user, _ in warnings], [(1, "a"), (2, "b"), (2, "b")]
        )


class DovecotSharedFileTests(TestCase):
    """
    The extra fields pop3kit reads do not disturb Dovecot reading the same passwd-file.
    """

    timeout = 60

    async def test_dovecotStillLogsIn(self) -> None:
        """
        A private Dovecot whose passwd-file gives alice C{userdb_pop3kit_login_delay} and
        C{userdb_pop3kit_expire} logs her in and serves her mail; pop3kit's checker reads
        the values from the same file.
        """
        from twisted.internet import reactor

        from pop3kit.client import connect
        from tests._dovecot import HOST, PASSWORD, DovecotServer
        from tests._tools import requireTool

        requireTool("dovecot", "dovecot-pop3d")
        dovecot = DovecotServer(self.mktemp())
        with open(dovecot.passwdPath) as f:
            lines = f.read().splitlines()
        fields = "userdb_pop3kit_login_delay=900 userdb_pop3kit_expire=30"
        with open(dovecot.passwdPath, "w") as f:
            for line in lines:
                if line.startswith("alice:"):
                    line += f"::::::{fields}"
                f.write(line + "\n")
        dovecot.deliver("alice", b"Subject: hi\n\nbody\n")
        dovecot.start()
        self.addCleanup(dovecot.cleanUp)
        client = await connect(
            reactor,  # type: ignore[arg-type]
            HOST,
            dovecot.port,
            tls="starttls",
            cafile=dovecot.cafile,
            timeout=20,
        )
        await client.login("alice", PASSWORD, mechanism="user")
        self.assertEqual((await client.stat())[0], 1)
        await client.quit()
        settings = await PasswdFileChecker(dovecot.passwdPath).userSettings("alice")
        self.assertEqual(settings, UserSettings(loginDelay=900, expire=30))
