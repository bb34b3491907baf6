"""
Tests for L{pop3kit.server}: the server protocol in memory, with L{StringTransport} and
L{Clock}.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from typing import BinaryIO, cast

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.backends.memory import MemoryRealm
from pop3kit.errors import MessageUnavailable, PermanentFailure, TemporaryFailure
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedServer
from tests._oracle import crlfForm

DOTS = b"Subject: dots\n\n.\n..\n.leading\nmiddle.\n"
PLAIN = b"Subject: plain\r\nFrom: a@example.com\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"


class Harness:
    """
    A server factory on a memory realm with users alice and bob, and a fake clock.
    """

    def __init__(self, messages: Sequence[bytes] = (PLAIN, DOTS), **options: object) -> None:
        self.clock = Clock()
        self.realm = MemoryRealm()
        self.mailbox = self.realm.getMailbox("alice")
        for message in messages:
            self.mailbox.deliver(message)
        self.checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret", bob=b"hunter2")
        options.setdefault("allowCleartext", "always")
        self.factory = POP3ServerFactory(
            Portal(self.realm, [self.checker]),
            clock=self.clock,
            **options,  # type: ignore[arg-type]
        )

    def connect(self, host: str = "192.0.2.1") -> Connection:
        """
        Open a connection to a new session.
        """
        return Connection(self.factory, host)


class Connection(ConnectedServer):
    """
    A L{ConnectedServer} that logs in as alice by default.
    """

    def login(self, user: bytes = b"alice", password: bytes = b"secret") -> bytes:
        """
        Log in with USER/PASS.
        """
        return super().login(user, password)


class BrokenFile:
    """
    A message file whose first read returns C{first} and whose next read fails.
    """

    def __init__(self, first: bytes) -> None:
        self.reads = 0
        self.first = first
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        """
        Return the first chunk, then fail.
        """
        self.reads += 1
        if self.reads > 1:
            raise OSError("I/O error")
        return self.first

    def close(self) -> None:
        """
        Note the file was closed.
        """
        self.closed = True


def lines(response: bytes) -> list[bytes]:
    """
    Split a response into lines.
    """
    return response.split(b"\r\n")[:-1]


class GreetingTests(SynchronousTestCase):
    """
    The greeting and its APOP timestamp.
    """

    def test_greeting(self) -> None:
        """
        The greeting is one positive line without a timestamp when APOP is off.
        """
        connection = Harness().connect()
        self.assertEqual(connection.greeting, b"+OK POP3 server ready\r\n")

    def test_apopTimestamp(self) -> None:
        """
        With APOP on, the greeting ends in a msg-id of letters, digits and dots, unique per
        connection.
        """
        harness = Harness(apop=True)
        pattern = re.compile(rb"\+OK .* (<[0-9A-Za-z.]+@pop3kit>)\r\n")
        stamps = set()
        for _ in range(5):
            match = pattern.fullmatch(harness.connect().greeting)
            assert match is not None
            stamps.add(match.group(1))
        self.assertEqual(len(stamps), 5)

    def test_noTimestampWithoutHashedChecker(self) -> None:
        """
        APOP is not offered when no checker can verify hashed credentials.
        """
        harness = Harness(apop=True)
        harness.factory.portal.checkers.clear()
        harness.factory.portal.registerChecker(harness.checker, IUsernamePassword)
        self.assertNotIn(b"<", harness.connect().greeting)


class LoginTests(SynchronousTestCase):
    """
    USER/PASS and APOP logins, failures, delays and locking.
    """

    def test_userPass(self) -> None:
        """
        A right password enters TRANSACTION and reports the maildrop.
        """
        connection = Harness().connect()
        self.assertEqual(
            connection.login(),
            b"+OK send PASS\r\n+OK maildrop has 2 messages (%d octets)\r\n"
            % (len(crlfForm(PLAIN)) + len(crlfForm(DOTS))),
        )

    def test_failedLoginIsDelayed(self) -> None:
        """
        A wrong password is answered with C{-ERR [AUTH]} only after the delay, and the
        session stays in AUTHORIZATION.
        """
        harness = Harness()
        connection = harness.connect()
        self.assertEqual(connection.login(password=b"wrong"), b"+OK send PASS\r\n")
        harness.clock.advance(1.9)
        self.assertEqual(connection.read(), b"")
        harness.clock.advance(0.1)
        response = connection.read()
        self.assertTrue(response.startswith(b"-ERR [AUTH] "), response)
        self.assertTrue(connection.send(b"STAT\r\n").startswith(b"-ERR "))
        self.assertIn(b"+OK maildrop has", connection.login())

    def test_unknownUserSameAsWrongPassword(self) -> None:
        """
        An unknown user gets exactly the reply a wrong password gets.
        """
        harness = Harness(failedLoginDelay=0)
        wrong = harness.connect().login(password=b"wrong")
        unknown = harness.connect().login(user=b"mallory", password=b"wrong")
        self.assertEqual(wrong, unknown)

    def test_failedLoginDelayDoesNotBlockOthers(self) -> None:
        """
        While one client waits out its failed-login delay, another is served at once.
        """
        harness = Harness()
        slow = harness.connect()
        slow.login(password=b"wrong")
        self.assertIn(b"+OK maildrop has", harness.connect().login())
        harness.clock.advance(2)
        self.assertIn(b"-ERR [AUTH]", slow.read())

    def test_failuresCounted(self) -> None:
        """
        Failed logins are recorded per client address.
        """
        harness = Harness(failedLoginDelay=0)
        connection = harness.connect(host="198.51.100.7")
        connection.login(password=b"x")
        connection.login(password=b"y")
        count = harness.factory.loginHistory.recordFailure("198.51.100.7")
        self.assertEqual(self.successResultOf(count), 3)

    def test_apop(self) -> None:
        """
        APOP with the right digest of timestamp and secret logs in; a wrong one does not.
        """
        harness = Harness(apop=True, failedLoginDelay=0)
        connection = harness.connect()
        stamp = connection.greeting.split()[-1]
        digest = hashlib.md5(stamp + b"secret").hexdigest().encode()
        self.assertTrue(
            connection.send(b"APOP alice " + b"0" * 32 + b"\r\n").startswith(b"-ERR [AUTH]")
        )
        self.assertTrue(
            connection.send(b"APOP alice " + digest + b"\r\n").startswith(b"+OK maildrop")
        )

    def test_apopDisabled(self) -> None:
        """
        APOP is refused when not enabled.
        """
        connection = Harness().connect()
        response = connection.send(b"APOP alice " + b"0" * 32 + b"\r\n")
        self.assertTrue(response.startswith(b"-ERR "))
        self.assertNotIn(b"[AUTH]", response)

    def test_secondSessionInUse(self) -> None:
        """
        A second session on a locked maildrop gets C{-ERR [IN-USE]}; after the first quits
        a new login succeeds at once.
        """
        harness = Harness()
        first = harness.connect()
        first.login()
        second = harness.connect()
        self.assertIn(b"-ERR [IN-USE] ", second.login())
        self.assertEqual(first.send(b"QUIT\r\n"), b"+OK bye\r\n")
        first.drop()
        self.assertIn(b"+OK maildrop has", second.login())

    def test_dropReleasesLock(self) -> None:
        """
        A dropped connection releases the maildrop lock and logs the avatar out.
        """
        harness = Harness()
        first = harness.connect()
        first.login()
        self.assertIn(b"[IN-USE]", harness.connect().login())
        first.drop()
        self.assertEqual(harness.realm.activeSessions, {})
        self.assertIn(b"+OK maildrop has", harness.connect().login())

    def test_loginDelay(self) -> None:
        """
        A login before LOGIN-DELAY has passed gets C{-ERR [LOGIN-DELAY]}.
        """
        harness = Harness(loginDelay=60)
        connection = harness.connect()
        connection.login()
        connection.send(b"QUIT\r\n")
        connection.drop()
        self.assertIn(b"-ERR [LOGIN-DELAY] ", harness.connect().login())
        harness.clock.advance(60)
        self.assertIn(b"+OK maildrop has", harness.connect().login())

    def test_realmError(self) -> None:
        """
        A realm refusing the avatar with a L{PermanentFailure} answers C{[SYS/PERM]}.
        """
        harness = Harness()

        def refuse(*args: object) -> object:
            raise PermanentFailure("mailbox name not allowed")

        harness.realm.requestAvatar = refuse  # type: ignore[method-assign, assignment]
        self.assertIn(b"-ERR [SYS/PERM] mailbox name not allowed", harness.connect().login())

    def test_checkerError(self) -> None:
        """
        A checker that fails unexpectedly answers C{[SYS/TEMP]}, not C{[AUTH]}, and the
        failure is logged.
        """
        harness = Harness()
        harness.checker.requestAvatarId = lambda credentials: fail(  # type: ignore[method-assign]
            RuntimeError("database down")
        )
        response = harness.connect().login()
        self.assertIn(b"-ERR [SYS/TEMP] ", response)
        self.assertNotIn(b"database", response)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_listingFailureReleasesLock(self) -> None:
        """
        When listing the maildrop fails, the login fails with C{[SYS/TEMP]}, the lock is
        released and the avatar logged out.
        """
        harness = Harness()
        harness.mailbox.listMessages = lambda: fail(RuntimeError("disk on fire"))  # type: ignore[method-assign]
        self.assertIn(b"-ERR [SYS/TEMP] ", harness.connect().login())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(harness.factory.locker.isLocked(harness.mailbox.maildropId))  # type: ignore[attr-defined]
        self.assertEqual(harness.realm.activeSessions, {})


class TransactionTests(SynchronousTestCase):
    """
    RETR, TOP, DELE and QUIT against storage.
    """

    def setUp(self) -> None:
        self.harness = Harness()
        self.connection = self.harness.connect()
        self.connection.login()

    def test_retrByteExact(self) -> None:
        """
        RETR sends the size, then the stuffed message with CRLF line ends.
        """
        response = self.connection.send(b"RETR 2\r\n")
        self.assertEqual(
            response,
            b"+OK %d octets\r\nSubject: dots\r\n\r\n..\r\n...\r\n..leading\r\nmiddle.\r\n.\r\n"
            % len(crlfForm(DOTS)),
        )

    def test_top(self) -> None:
        """
        TOP sends the headers and the requested number of body lines.
        """
        response = self.connection.send(b"TOP 1 1\r\nTOP 1 0\r\n")
        self.assertEqual(
            lines(response),
            [
                b"+OK top of message follows",
                b"Subject: plain",
                b"From: a@example.com",
                b"",
                b"line 1",
                b".",
                b"+OK top of message follows",
                b"Subject: plain",
                b"From: a@example.com",
                b"",
                b".",
            ],
        )

    def test_deleteAndQuit(self) -> None:
        """
        DELE marks; QUIT expunges and only then says C{+OK}, closing the connection.
        """
        self.connection.send(b"DELE 1\r\n")
        self.assertEqual(len(self.harness.mailbox.messages), 2)
        self.assertEqual(self.connection.send(b"QUIT\r\n"), b"+OK bye\r\n")
        self.assertEqual(self.harness.mailbox.messages, [DOTS])
        self.assertTrue(self.connection.transport.disconnecting)

    def test_rsetThenQuitDeletesNothing(self) -> None:
        """
        DELE, RSET, QUIT removes nothing.
        """
        self.connection.send(b"DELE 1\r\nDELE 2\r\nRSET\r\nQUIT\r\n")
        self.assertEqual(len(self.harness.mailbox.messages), 2)

    def test_dropDeletesNothing(self) -> None:
        """
        A connection dropped after DELE removes nothing.
        """
        self.connection.send(b"DELE 1\r\nDELE 2\r\n")
        self.connection.drop()
        self.assertEqual(len(self.harness.mailbox.messages), 2)
        self.assertIn(b"+OK maildrop has 2", self.harness.connect().login())

    def test_expungeFailure(self) -> None:
        """
        When the expunge fails, QUIT answers C{-ERR [SYS/TEMP]} and the lock is released.
        """
        self.harness.mailbox.expunge = lambda uids: fail(TemporaryFailure())  # type: ignore[method-assign]
        response = self.connection.send(b"DELE 1\r\nQUIT\r\n")
        self.assertEqual(
            lines(response),
            [b"+OK message 1 deleted", b"-ERR [SYS/TEMP] some deleted messages not removed"],
        )
        self.assertTrue(self.connection.transport.disconnecting)
        self.assertEqual(len(self.harness.mailbox.messages), 2)
        self.assertIn(b"+OK maildrop has", self.harness.connect().login())

    def test_expungePermanentFailure(self) -> None:
        """
        A backend's permanent failure on expunge is reported as C{[SYS/PERM]}.
        """
        self.harness.mailbox.expunge = lambda uids: fail(  # type: ignore[method-assign]
            PermanentFailure("read-only file system")
        )
        response = self.connection.send(b"DELE 1\r\nQUIT\r\n")
        self.assertEqual(lines(response)[-1], b"-ERR [SYS/PERM] some deleted messages not removed")

    def test_expungeUnexpectedError(self) -> None:
        """
        An unexpected expunge error is logged and reported as C{[SYS/TEMP]}.
        """
        self.harness.mailbox.expunge = lambda uids: fail(  # type: ignore[method-assign]
            ZeroDivisionError()
        )
        response = self.connection.send(b"DELE 1\r\nQUIT\r\n")
        self.assertEqual(lines(response)[-1], b"-ERR [SYS/TEMP] some deleted messages not removed")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_quitWaitsForExpunge(self) -> None:
        """
        C{+OK} to QUIT is sent only once the expunge has finished.
        """
        pending: Deferred[None] = Deferred()
        self.harness.mailbox.expunge = lambda uids: pending  # type: ignore[method-assign]
        self.assertEqual(self.connection.send(b"DELE 1\r\nQUIT\r\n"), b"+OK message 1 deleted\r\n")
        pending.callback(None)
        self.assertEqual(self.connection.read(), b"+OK bye\r\n")

    def test_dropDuringExpungeKeepsLock(self) -> None:
        """
        A client that drops while its QUIT's expunge is under way does not release the
        maildrop before the expunge is done: no other session sees a half-expunged
        maildrop.
        """
        pending: Deferred[None] = Deferred()
        self.harness.mailbox.expunge = lambda uids: pending  # type: ignore[method-assign]
        self.connection.send(b"DELE 1\r\nQUIT\r\n")
        self.connection.drop()
        self.assertIn(b"-ERR [IN-USE] ", self.harness.connect().login())
        pending.callback(None)
        self.assertEqual(self.harness.realm.activeSessions, {})
        self.assertIn(b"+OK maildrop has", self.harness.connect().login())

    def test_vanishedMessage(self) -> None:
        """
        A message that vanished from storage gets C{-ERR} and the session goes on.
        """
        self.harness.mailbox.openMessage = lambda uid: fail(MessageUnavailable())  # type: ignore[method-assign]
        self.assertEqual(
            self.connection.send(b"RETR 1\r\nNOOP\r\n"),
            b"-ERR message is no longer available\r\n+OK \r\n",
        )

    def test_unexpectedBackendError(self) -> None:
        """
        An unexpected exception becomes C{-ERR [SYS/TEMP]}, is logged, and the session goes
        on; no Python internals reach the wire.
        """
        self.harness.mailbox.openMessage = lambda uid: fail(KeyError("internal"))  # type: ignore[method-assign]
        response = self.connection.send(b"RETR 1\r\nSTAT\r\n")
        self.assertEqual(
            lines(response)[0], b"-ERR [SYS/TEMP] temporary system problem, try again later"
        )
        self.assertTrue(lines(response)[1].startswith(b"+OK 2 "))
        self.assertNotIn(b"KeyError", response)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_readErrorMidTransferAborts(self) -> None:
        """
        A read error in the middle of a streamed message aborts the connection: the
        client cannot mistake a truncated message for a whole one.
        """
        harness = Harness(messages=[b"x\n" * 100_000])
        connection = harness.connect()
        connection.login()
        harness.mailbox.openMessage = lambda uid: succeed(  # type: ignore[method-assign]
            cast(BinaryIO, BrokenFile(b"Subject: x\n\n" + b"first\n" * 100_000))
        )
        response = connection.send(b"RETR 1\r\n")
        self.assertTrue(response.startswith(b"+OK 300000 octets\r\nSubject: x\r\n"))
        self.assertNotIn(b"\r\n.\r\n", response)
        self.assertTrue(connection.transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_readErrorBeforeSending(self) -> None:
        """
        A read error before anything was sent answers C{-ERR [SYS/TEMP]}; the session
        goes on.
        """
        self.harness.mailbox.openMessage = lambda uid: succeed(  # type: ignore[method-assign]
            cast(BinaryIO, BrokenFile(b"Subject: x\n"))
        )
        response = self.connection.send(b"RETR 1\r\nNOOP\r\n")
        self.assertEqual(
            lines(response),
            [b"-ERR [SYS/TEMP] temporary system problem, try again later", b"+OK "],
        )
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_messageLargerThanListed(self) -> None:
        """
        A message that grew since the listing is still sent whole and correctly framed.
        """
        self.harness.mailbox.openMessage = lambda uid: succeed(  # type: ignore[method-assign]
            io.BytesIO(b"Subject: big\n\n" + b".\n" * 50_000)
        )
        response = self.connection.send(b"RETR 1\r\n")
        self.assertTrue(response.endswith(b"\r\n..\r\n.\r\n"))
        self.assertEqual(response.count(b"\r\n.."), 50_000)

    def test_expireZeroRemovesRetrieved(self) -> None:
        """
        With EXPIRE 0, messages retrieved in the session are removed at QUIT.
        """
        harness = Harness(expire=0)
        connection = harness.connect()
        connection.login()
        connection.send(b"RETR 2\r\nTOP 1 0\r\nQUIT\r\n")
        self.assertEqual(harness.mailbox.messages, [PLAIN])

    def test_newMailNotVisible(self) -> None:
        """
        Mail delivered during a session is not visible until the next session.
        """
        self.harness.mailbox.deliver(b"Subject: new\n\nhi\n")
        self.assertTrue(self.connection.send(b"STAT\r\n").startswith(b"+OK 2 "))
        self.assertEqual(self.connection.send(b"RETR 3\r\n"), b"-ERR no such message\r\n")
        self.connection.send(b"QUIT\r\n")
        self.connection.drop()
        self.assertIn(b"maildrop has 3 messages", self.harness.connect().login())


class PipeliningTests(SynchronousTestCase):
    """
    Many commands in one write are answered in order (RFC 2449 section 6.6).
    """

    def test_loginAndCommandsInOneWrite(self) -> None:
        """
        USER, PASS, STAT, RETR, LIST and QUIT in one packet are answered in order.
        """
        harness = Harness()
        connection = harness.connect()
        response = connection.send(
            b"USER alice\r\nPASS secret\r\nSTAT\r\nRETR 1\r\nLIST 2\r\nDELE 1\r\nQUIT\r\nNOOP\r\n"
        )
        got = lines(response)
        self.assertEqual(got[0], b"+OK send PASS")
        self.assertTrue(got[1].startswith(b"+OK maildrop has 2"))
        self.assertTrue(got[2].startswith(b"+OK 2 "))
        self.assertTrue(got[3].startswith(b"+OK ") and got[3].endswith(b"octets"))
        end = got.index(b".", 4)
        self.assertEqual(
            got[end + 1 :],
            [b"+OK 2 %d" % len(crlfForm(DOTS)), b"+OK message 1 deleted", b"+OK bye"],
        )
        self.assertEqual(harness.mailbox.messages, [DOTS])

    def test_longSynchronousPipeline(self) -> None:
        """
        Thousands of pipelined commands that complete synchronously are answered without
        recursing once per command.
        """
        harness = Harness(failedLoginDelay=0, maxFailedLogins=10**6)
        connection = harness.connect()
        response = connection.send(b"USER alice\r\nPASS wrong\r\n" * 3000 + b"NOOP\r\n")
        self.assertEqual(response.count(b"-ERR [AUTH] "), 3000)

    def test_longPipelineOfRetrievals(self) -> None:
        """
        Thousands of pipelined RETRs over a transport that pulls data at once (as TCP
        transports do) are all answered, in order.
        """

        class EagerTransport(StringTransport):
            def registerProducer(self, producer: object, streaming: bool) -> None:
                super().registerProducer(producer, streaming)
                if not streaming:
                    producer.resumeProducing()  # type: ignore[attr-defined]

        harness = Harness(messages=[b"Subject: tiny\n\nx\n"])
        eager = EagerTransport()
        protocol = harness.factory.buildProtocol(None)
        protocol.makeConnection(eager)
        protocol.dataReceived(b"USER alice\r\nPASS secret\r\n" + b"RETR 1\r\n" * 2000)
        while eager.producer is not None:
            eager.producer.resumeProducing()
        response = b"+OK 20 octets\r\nSubject: tiny\r\n\r\nx\r\n.\r\n"
        self.assertEqual(eager.value().count(response), 2000)

    def test_pipelinedDuringFailedLoginDelay(self) -> None:
        """
        Commands sent behind a failing PASS wait for its answer.
        """
        harness = Harness()
        connection = harness.connect()
        self.assertEqual(
            connection.send(b"USER alice\r\nPASS bad\r\nCAPA\r\n"), b"+OK send PASS\r\n"
        )
        harness.clock.advance(2)
        response = connection.read()
        self.assertTrue(response.startswith(b"-ERR [AUTH] "))
        self.assertIn(b"+OK capability list follows", response)

    def test_readingPausedWhenFlooded(self) -> None:
        """
        A client that floods commands while one is pending stops being read from, and is
        read again once the queue drains.
        """
        harness = Harness()
        connection = harness.connect()
        connection.send(b"USER alice\r\nPASS bad\r\n" + b"CAPA\r\n" * 200)
        self.assertEqual(connection.transport.producerState, "paused")
        harness.clock.advance(2)
        connection.read()
        self.assertEqual(connection.transport.producerState, "producing")


class TimeoutTests(SynchronousTestCase):
    """
    The inactivity timer (RFC 1939 section 3).
    """

    def test_idleAtLeastTenMinutes(self) -> None:
        """
        An idle session survives just under 10 minutes and is closed silently after.
        """
        harness = Harness()
        connection = harness.connect()
        connection.login()
        harness.clock.advance(599)
        self.assertTrue(connection.send(b"NOOP\r\n").startswith(b"+OK"))
        harness.clock.advance(599)
        self.assertFalse(connection.transport.disconnecting)
        harness.clock.advance(1)
        self.assertTrue(connection.transport.disconnecting)
        self.assertEqual(connection.read(), b"")

    def test_timeoutNeverEntersUpdate(self) -> None:
        """
        A timed-out session deletes nothing.
        """
        harness = Harness()
        connection = harness.connect()
        connection.login()
        connection.send(b"DELE 1\r\n")
        harness.clock.advance(600)
        connection.drop()
        self.assertEqual(len(harness.mailbox.messages), 2)

    def test_stalledReaderTimesOut(self) -> None:
        """
        A client that stops reading in the middle of a RETR is timed out.
        """
        harness = Harness(messages=[b"x" * 1_000_000])
        connection = harness.connect()
        connection.login()
        connection.protocol.dataReceived(b"RETR 1\r\n")
        self.assertIsNotNone(connection.transport.producer)
        harness.clock.advance(600)
        self.assertTrue(connection.transport.disconnecting)

    def test_readingResetsTimer(self) -> None:
        """
        While a client keeps reading a long transfer, the timer is reset.
        """
        harness = Harness(messages=[b"x\n" * 2_000_000])
        connection = harness.connect()
        connection.login()
        connection.protocol.dataReceived(b"RETR 1\r\n")
        producer = connection.transport.producer
        assert producer is not None
        for _ in range(3):
            harness.clock.advance(500)
            producer.resumeProducing()
        self.assertFalse(connection.transport.disconnecting)

    def test_tooShortTimeoutRefused(self) -> None:
        """
        A timeout under RFC 1939's 10 minutes is refused.
        """
        self.assertRaises(ValueError, Harness, timeout=599)


class RobustnessTests(SynchronousTestCase):
    """
    Bad input gets C{-ERR}; the session goes on.
    """

    def test_garbage(self) -> None:
        """
        NUL and 8-bit garbage get C{-ERR}.
        """
        connection = Harness().connect()
        response = connection.send(b"\0\xff\xfeGARBAGE\0\r\nCAPA\r\n")
        self.assertTrue(response.startswith(b"-ERR "))
        self.assertIn(b"+OK capability list follows", response)

    def test_overLongLine(self) -> None:
        """
        A 5000-octet line gets exactly one reply.
        """
        connection = Harness().connect()
        response = connection.send(b"USER " + b"a" * 5000 + b"\r\nNOOP\r\n")
        self.assertEqual(
            response, b"-ERR command line too long\r\n-ERR command not valid in this state\r\n"
        )

    def test_longestLineAccepted(self) -> None:
        """
        A 255-octet USER line gets a normal reply.
        """
        connection = Harness().connect()
        self.assertEqual(connection.send(b"USER " + b"a" * 248 + b"\r\n"), b"+OK send PASS\r\n")

    def test_quitInAuthorization(self) -> None:
        """
        QUIT before login says goodbye and closes; later input is ignored.
        """
        connection = Harness().connect()
        self.assertEqual(connection.send(b"QUIT\r\nNOOP\r\n"), b"+OK bye\r\n")
        self.assertTrue(connection.transport.disconnecting)

    def test_capaBothStates(self) -> None:
        """
        CAPA answers the same tags before and after login.
        """
        connection = Harness(loginDelay=30, expire=7, implementation="pop3kit").connect()
        before = connection.send(b"CAPA\r\n")
        connection.login()
        after = connection.send(b"CAPA\r\n")
        self.assertEqual(before, after)
        self.assertIn(b"\r\nLOGIN-DELAY 30\r\n", before)

    def test_pipelineStopsWhenTransferInterrupted(self) -> None:
        """
        When the transport stops a streamed RETR (the client went away) before telling
        the protocol, the pipelined RETR behind it is not started on the dying transport.
        """
        big = b"Subject: big\n\n" + b"x" * 100 + b"\n" * 2000 + b"y" * 200_000 + b"\n"
        harness = Harness(messages=[big, big])
        connection = harness.connect()
        connection.protocol.dataReceived(b"USER alice\r\nPASS secret\r\nRETR 1\r\nRETR 2\r\n")
        producer = connection.transport.producer
        self.assertIsNotNone(producer)
        producer.stopProducing()  # type: ignore[union-attr]
        self.assertIs(connection.transport.producer, producer)
        self.assertEqual(self.flushLoggedErrors(), [])
        connection.drop()
        self.assertEqual(harness.mailbox.messages, [big, big])


class TwistedMailRegressionTests(SynchronousTestCase):
    """
    The twisted.mail.pop3 defects named in the house style, each as a regression test.
    """

    def setUp(self) -> None:
        self.harness = Harness()
        self.connection = self.harness.connect()
        self.connection.login()

    def test_retrWithoutArgumentKeepsConnection(self) -> None:
        """
        RETR without an argument gets C{-ERR}; the connection is not dropped.
        """
        self.assertTrue(self.connection.send(b"RETR\r\n").startswith(b"-ERR "))
        self.assertFalse(self.connection.transport.disconnecting)
        self.assertTrue(self.connection.send(b"NOOP\r\n").startswith(b"+OK"))

    def test_deleNonNumeric(self) -> None:
        """
        C{DELE x} gets C{-ERR} and the session goes on.
        """
        self.assertTrue(self.connection.send(b"DELE x\r\n").startswith(b"-ERR "))
        self.assertTrue(self.connection.send(b"STAT\r\n").startswith(b"+OK 2 "))

    def test_deleZeroDeletesNothing(self) -> None:
        """
        C{DELE 0} is refused and does not delete the last message.
        """
        self.assertTrue(self.connection.send(b"DELE 0\r\n").startswith(b"-ERR "))
        self.connection.send(b"QUIT\r\n")
        self.assertEqual(len(self.harness.mailbox.messages), 2)

    def test_dotAtChunkBoundary(self) -> None:
        """
        A dot line starting exactly at a read-chunk boundary is stuffed.
        """
        from pop3kit._streaming import MessageSender

        message = b"x" * (MessageSender.chunkSize - 1) + b"\n.\nafter\n"
        harness = Harness(messages=[message])
        connection = harness.connect()
        connection.login()
        response = connection.send(b"RETR 1\r\n")
        self.assertTrue(response.endswith(b"\r\n..\r\nafter\r\n.\r\n"))

    def test_quitOkOnlyAfterDeletes(self) -> None:
        """
        C{+OK} to QUIT is never sent before the deletions happened.
        """
        pending: Deferred[None] = Deferred()
        self.harness.mailbox.expunge = lambda uids: pending  # type: ignore[method-assign]
        self.assertNotIn(b"bye", self.connection.send(b"DELE 2\r\nQUIT\r\n"))

    def test_noJokeCapabilities(self) -> None:
        """
        CAPA announces only registered capabilities that are implemented.
        """
        registered = {
            b"TOP",
            b"USER",
            b"SASL",
            b"RESP-CODES",
            b"LOGIN-DELAY",
            b"PIPELINING",
            b"EXPIRE",
            b"UIDL",
            b"IMPLEMENTATION",
            b"AUTH-RESP-CODE",
            b"STLS",
            b"UTF8",
            b"LANG",
        }
        response = self.connection.send(b"CAPA\r\n")
        for line in lines(response)[1:-1]:
            self.assertIn(line.split()[0], registered)
