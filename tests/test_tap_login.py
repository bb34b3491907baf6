"""
Logins through the checkers that C{twistd pop3kit --auth ...} builds.
"""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.backends.maildir import deliver, mailboxPath
from pop3kit.server import POP3ServerFactory
from pop3kit.tap import Options, makeFactory
from pop3kit.testing import ConnectedServer


class AuthOptionLoginTests(SynchronousTestCase):
    """
    Users given with Twisted's standard C{--auth} plugins can log in.
    """

    def factoryFor(self, *auth: str) -> POP3ServerFactory:
        """
        Parse the options and build the factory, with a fake clock and no login delay.
        """
        root = self.mktemp()
        os.makedirs(root)
        options = Options()
        arguments = ["--maildir-root", root, "--failed-login-delay", "0"]
        for description in auth:
            arguments += ["--auth", description]
        options.parseOptions(arguments)
        factory = makeFactory(options)
        factory.clock = Clock()
        with open(os.path.join(root, "message"), "wb+") as message:
            message.write(b"Subject: hi\n\nhello\n")
            message.seek(0)
            deliver(mailboxPath(root, "alice"), message)
        return factory

    def test_memory(self) -> None:
        """
        C{--auth memory:alice:secret} logs alice in and refuses a wrong password.
        """
        factory = self.factoryFor("memory:alice:secret:bob:pw")
        self.assertIn(
            b"+OK maildrop has 1 messages", ConnectedServer(factory).login(b"alice", b"secret")
        )
        self.assertIn(b"-ERR [AUTH] ", ConnectedServer(factory).login(b"alice", b"wrong"))
        self.assertIn(b"+OK maildrop has 0 messages", ConnectedServer(factory).login(b"bob", b"pw"))

    def test_file(self) -> None:
        """
        C{--auth file:PATH} (user:password lines) logs alice in.
        """
        path = self.mktemp()
        with open(path, "w") as passwd:
            passwd.write("alice:secret\n")
        factory = self.factoryFor("file:" + path)
        self.assertIn(
            b"+OK maildrop has 1 messages", ConnectedServer(factory).login(b"alice", b"secret")
        )

    def test_severalAuthOptions(self) -> None:
        """
        Several C{--auth} options are all used, tried in order (a Portal alone would keep
        only the last one).
        """
        path = self.mktemp()
        with open(path, "w") as passwd:
            passwd.write("bob:{PLAIN}pw\n")
        factory = self.factoryFor("memory:alice:secret", "passwd-file:" + path)
        self.assertIn(b"+OK maildrop has 1", ConnectedServer(factory).login(b"alice", b"secret"))
        self.assertIn(b"+OK maildrop has 0", ConnectedServer(factory).login(b"bob", b"pw"))
        self.assertIn(b"-ERR [AUTH] ", ConnectedServer(factory).login(b"bob", b"secret"))

    def test_unusableAuthRefused(self) -> None:
        """
        C{--auth} types nobody could log in with (anonymous, sshkey) are refused.
        """
        from twisted.python import usage

        for auth in ("anonymous", "sshkey"):
            options = Options()
            self.assertRaises(usage.UsageError, options.parseOptions, ["--auth", auth])

    def test_passwdFile(self) -> None:
        """
        C{--auth passwd-file:PATH} logs alice in with a PLAIN entry.
        """
        path = self.mktemp()
        with open(path, "w") as passwd:
            passwd.write("alice:{PLAIN}secret\n")
        factory = self.factoryFor("passwd-file:" + path)
        connection = ConnectedServer(factory)
        connection.protocol.dataReceived(b"USER alice\r\nPASS secret\r\n")
        self.assertIn(b"+OK maildrop has 1 messages", connection.read())
