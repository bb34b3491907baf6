"""
Tests for C{pop3kit deliver --storage SPEC} (L{pop3kit._deliver.deliverToStorage}): delivery
through a storage's L{IMaildropDelivery <pop3kit.interfaces.IMaildropDelivery>}, into a
private PostgreSQL (L{tests._postgres}), with the exit statuses a mail transfer agent acts
on.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import TestCase

import pop3kit
from pop3kit._deliver import deliverToStorage
from pop3kit._exits import ExitError, ExitStatus
from pop3kit.checkers.passwdfile import addUser
from pop3kit.errors import PermanentFailure
from pop3kit.storage import parseStorage
from tests._postgres import postgresql
from tests.test_cli import CLITestCase

MESSAGE = b"Subject: hi\n\nbody\n"

#: The directory holding the C{pop3kit} package under test.
_SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(str(pop3kit.__file__))))


def storedBodies(dsn: str, name: str) -> list[bytes]:
    """
    The bodies stored for C{name}, in delivery order.
    """
    import psycopg

    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT m.body FROM pop3kit_messages m JOIN pop3kit_users u ON u.id = m.user_id"
            " WHERE u.name = %s ORDER BY m.id",
            (name,),
        ).fetchall()
    return [bytes(body) for (body,) in rows]


class DeliverToPostgreSQLTests(TestCase):
    """
    L{deliverToStorage} into a fresh database of the private PostgreSQL.
    """

    def setUp(self) -> None:
        from pop3kit.backends.postgresql import migrateSchema

        self.dsn = postgresql().newDatabase()
        migrateSchema(self.dsn)
        self.storage: Any = parseStorage(self.dsn)
        self.addCleanup(lambda: self.storage.store().close())
        self.passwd = os.path.join(os.path.abspath(self.mktemp()))
        addUser(self.passwd, "alice", "{PLAIN}x")

    async def test_delivered(self) -> None:
        """
        The message is stored for the user (a row created at the first delivery), with
        a fresh UIDL each time.
        """
        for _ in range(2):
            maildrop = await deliverToStorage(self.storage, "alice", io.BytesIO(MESSAGE))
            self.assertEqual(maildrop, "alice")
        self.assertEqual(storedBodies(self.dsn, "alice"), [MESSAGE, MESSAGE])

    async def test_largeMessage(self) -> None:
        """
        A message larger than the in-memory spool arrives whole.
        """
        big = b"Subject: big\n\n" + b"0123456789abcdef\n" * 200_000
        await deliverToStorage(self.storage, "alice", io.BytesIO(big), passwd=self.passwd)
        self.assertEqual(storedBodies(self.dsn, "alice"), [big])

    async def test_unknownUser(self) -> None:
        """
        With a passwd-file, a user it does not list exits 67 and nothing is stored.
        """
        with self.assertRaises(ExitError) as caught:
            await deliverToStorage(self.storage, "alcie", io.BytesIO(MESSAGE), self.passwd)
        self.assertEqual(caught.exception.status, ExitStatus.NOUSER)
        self.assertIn("no user 'alcie'", str(caught.exception))
        self.assertEqual(storedBodies(self.dsn, "alcie"), [])

    async def test_emptyMessage(self) -> None:
        """
        An empty message exits 65.
        """
        with self.assertRaises(ExitError) as caught:
            await deliverToStorage(self.storage, "alice", io.BytesIO(b""))
        self.assertEqual(caught.exception.status, ExitStatus.DATAERR)
        self.assertEqual(storedBodies(self.dsn, "alice"), [])

    async def test_quotaIsTemporary(self) -> None:
        """
        A user whose quota of messages is reached gets 75: the MTA keeps the message.
        """
        import psycopg

        await deliverToStorage(self.storage, "alice", io.BytesIO(MESSAGE))
        with psycopg.connect(self.dsn) as connection:
            connection.execute("UPDATE pop3kit_users SET max_messages = 1")
        with self.assertRaises(ExitError) as caught:
            await deliverToStorage(self.storage, "alice", io.BytesIO(b"second\n"))
        self.assertEqual(caught.exception.status, ExitStatus.TEMPFAIL)
        self.assertIn("maildrop full", str(caught.exception))
        self.assertEqual(storedBodies(self.dsn, "alice"), [MESSAGE])

    async def test_databaseUnreachable(self) -> None:
        """
        A database that cannot be reached is a temporary failure (75).
        """
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        storage: Any = parseStorage(f"postgresql://postgres@127.0.0.1:{port}/none")
        self.addCleanup(lambda: storage.store().close())
        with self.assertRaises(ExitError) as caught:
            await deliverToStorage(storage, "alice", io.BytesIO(MESSAGE))
        self.assertEqual(caught.exception.status, ExitStatus.TEMPFAIL)
        self.assertIn("unavailable", str(caught.exception))


class _Refusing:
    """
    A storage whose delivery refuses every message permanently.
    """

    description = "a refusing storage"

    def makeDelivery(self, knownUser: object) -> _Refusing:
        return self

    def recipient(self, address: str) -> Deferred[str]:
        return Deferred.fromCoroutine(self._name(address))

    async def _name(self, address: str) -> str:
        return address

    def deliver(self, maildrop: str, message: object) -> Deferred[None]:
        return fail(PermanentFailure("never"))


class _NoDelivery:
    """
    A storage that takes no deliveries.
    """

    description = "a read-only storage"


class GenericStorageTests(TestCase):
    """
    L{deliverToStorage} uses nothing but the storage's C{makeDelivery}.
    """

    async def test_permanentFailure(self) -> None:
        """
        A permanent failure of the delivery exits 73.
        """
        with self.assertRaises(ExitError) as caught:
            await deliverToStorage(_Refusing(), "alice", io.BytesIO(MESSAGE))
        self.assertEqual(caught.exception.status, ExitStatus.CANTCREAT)
        self.assertIn("a refusing storage: never", str(caught.exception))

    async def test_noDelivery(self) -> None:
        """
        A storage without C{makeDelivery} exits 73.
        """
        with self.assertRaises(ExitError) as caught:
            await deliverToStorage(_NoDelivery(), "alice", io.BytesIO(MESSAGE))
        self.assertEqual(caught.exception.status, ExitStatus.CANTCREAT)
        self.assertIn("cannot deliver into a read-only storage", str(caught.exception))


class DeliverCommandTests(CLITestCase):
    """
    C{pop3kit deliver --storage SPEC}: the command, run as an MTA runs it.
    """

    def deliver(self, *argv: str, stdin: bytes = MESSAGE) -> tuple[int, str]:
        """
        Run C{python -m pop3kit --data-dir DATA deliver ARGV} in a process of its own
        (it runs the global reactor); its exit status and standard error.
        """
        done = subprocess.run(
            [sys.executable, "-m", "pop3kit", "--data-dir", self.dataDir, "deliver", *argv],
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": _SOURCE},
        )
        return done.returncode, done.stderr.decode()

    def test_postgresql(self) -> None:
        """
        The message goes into the database, exit 0; a user the data directory's
        passwd-file does not list exits 67 with one line.
        """
        from pop3kit.backends.postgresql import migrateSchema

        dsn = postgresql().newDatabase()
        migrateSchema(dsn)
        os.makedirs(self.dataDir)
        addUser(self.passwd, "alice", "{PLAIN}x")
        self.assertEqual(self.deliver("--storage", dsn, "alice"), (0, ""))
        self.assertEqual(storedBodies(dsn, "alice"), [MESSAGE])
        status, err = self.deliver("--storage", dsn, "alcie")
        self.assertEqual(status, ExitStatus.NOUSER, err)
        self.assertEqual(err, f"pop3kit: error: no user 'alcie' in {self.passwd}\n")

    def test_unreachable(self) -> None:
        """
        A database that cannot be reached exits 75 with one line on standard error.
        """
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        status, err = self.deliver("--storage", f"postgresql://postgres@127.0.0.1:{port}/x", "a")
        self.assertEqual(status, ExitStatus.TEMPFAIL, err)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith("pop3kit: error: cannot deliver into PostgreSQL"), err)

    def test_maildirStorage(self) -> None:
        """
        C{--storage maildir:ROOT} is the Maildir delivery into C{ROOT}.
        """
        root = os.path.join(self.base, "elsewhere")
        os.makedirs(root)
        result = self.runCommand("deliver", "--storage", f"maildir:{root}", "bob", stdin=MESSAGE)
        self.assertEqual(result, (0, "", ""))
        self.assertEqual(len(os.listdir(os.path.join(root, "bob", "new"))), 1)

    def test_mboxStorage(self) -> None:
        """
        C{--storage mbox:TEMPLATE} appends to the user's mbox file, as the mbox backend
        serves it.
        """
        from pop3kit.backends.mbox import MboxMailbox

        spool = os.path.join(self.base, "spool")
        os.makedirs(spool)
        # In a process of its own: the delivery runs the global reactor.
        self.assertEqual(self.deliver("--storage", f"mbox:{spool}/%u", "bob"), (0, ""))
        mailbox = MboxMailbox(os.path.join(spool, "bob"))
        [info] = self.successResultOf(mailbox.listMessages())
        with self.successResultOf(mailbox.openMessage(info.uid)) as f:
            self.assertEqual(f.read(), MESSAGE)

    def test_invalidStorage(self) -> None:
        """
        An unusable specification exits 73 with one line.
        """
        self.assertError(
            self.runCommand("deliver", "--storage", "nosuch:x", "bob", stdin=MESSAGE),
            "unknown storage 'nosuch:x'",
            ExitStatus.CANTCREAT,
        )


class KilledDeliveryTests(CLITestCase):
    """
    C{pop3kit deliver --storage postgresql://...} killed at any moment stores the whole
    message or nothing: the database's transaction is the crash proof of this backend
    (the file-system call sweep of L{tests._crashproof} has no file to sweep here).
    """

    def test_killedAtAnyMoment(self) -> None:
        """
        Killed with SIGKILL after various delays, the command leaves only whole copies;
        a last run completes, and adds exactly one.
        """
        import signal
        import time

        from pop3kit.backends.postgresql import migrateSchema

        dsn = postgresql().newDatabase()
        migrateSchema(dsn)
        message = b"Subject: big\n\n" + b"".join(
            b"%07d line of the body\n" % i for i in range(300_000)
        )
        command = [sys.executable, "-m", "pop3kit", "--data-dir", self.dataDir]
        command += ["deliver", "--storage", dsn, "alice"]
        # From before the database is reached to after the commit (start-up takes most).
        for delay in [0.1 + 0.03 * step for step in range(12)]:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": _SOURCE},
            )
            assert process.stdin is not None
            try:
                process.stdin.write(message)
                process.stdin.close()
            except BrokenPipeError:
                pass
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
            stored = storedBodies(dsn, "alice")
            self.assertEqual([body == message for body in stored], [True] * len(stored))
        before = len(storedBodies(dsn, "alice"))
        done = subprocess.run(
            command,
            input=message,
            capture_output=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": _SOURCE},
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(storedBodies(dsn, "alice"), [message] * (before + 1))
