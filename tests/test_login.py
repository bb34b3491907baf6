"""
Tests for L{pop3kit._login}: the login sequence and the session it leaves, without a
transport, with a memory realm, a fake clock and in-process locks.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import ICredentials
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pop3kit._login import Login, LoginOutcome, Session
from pop3kit.backends.memory import MemoryRealm
from pop3kit.core import (
    APOPLogin,
    Goodbye,
    InitialResponseRefused,
    LoginAccepted,
    LoginRefused,
    MessageInfo,
    PasswordLogin,
    SASLChallenge,
    SASLLogin,
)
from pop3kit.cred import ISASLIdentity, SASLIdentityChecker
from pop3kit.errors import (
    AuthenticationFailed,
    LoginDelayed,
    MaildropInUse,
    PermanentFailure,
    POP3Error,
    RemoteProtocolError,
    ResponseCode,
    TemporaryFailure,
)
from pop3kit.interfaces import IMaildropLock, ISCRAMKeySource
from pop3kit.locking import InProcessLocker, InProcessLoginHistory
from pop3kit.policy import ServerPolicy
from pop3kit.sasl import SCRAMKeys, clientMechanism
from tests.test_server_auth import SCRAMChecker


@implementer(ISCRAMKeySource)
class RecordingIdentities(SASLIdentityChecker):
    """
    An application's own checker of SASL identities: it records them, and refuses
    C{mallory}.
    """

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def requestAvatarId(self, credentials: ICredentials) -> Deferred[object]:
        """
        Record the identity and accept it unless it is mallory's.
        """
        identity = ISASLIdentity(credentials)
        self.seen.append((identity.username, identity.mechanism))
        if identity.username == "mallory":
            return fail(AuthenticationFailed())
        return super().requestAvatarId(credentials)

    def scramKeys(self, username: str, mechanism: str) -> Deferred[SCRAMKeys | None]:
        """
        Keys for alice's password.
        """
        return succeed(SCRAMKeys.fromPassword("secret", mechanism))


class SlowLocker:
    """
    A locker whose locks are granted when the test says so.
    """

    def __init__(self) -> None:
        self.inner = InProcessLocker()
        self.waiting: list[tuple[str, Deferred[IMaildropLock]]] = []

    def acquire(self, avatarId: str) -> Deferred[IMaildropLock]:
        """
        Wait for L{grant}.
        """
        d: Deferred[IMaildropLock] = Deferred()
        self.waiting.append((avatarId, d))
        return d

    def grant(self) -> None:
        """
        Grant the oldest waiting lock.
        """
        avatarId, d = self.waiting.pop(0)
        self.inner.acquire(avatarId).chainDeferred(d)


class Harness:
    """
    A memory realm where alice has one message, and what a login needs.
    """

    def __init__(self, *checkers: Any, locker: Any = None, **policy: Any) -> None:
        self.clock = Clock()
        self.realm = MemoryRealm()
        self.mailbox = self.realm.getMailbox("alice")
        self.mailbox.deliver(b"Subject: hi\n\nhello\n")
        self.passwords = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        # A checker of the application's own for SASL identities, if given, wins.
        self.portal = Portal(self.realm, [SASLIdentityChecker(), *(checkers or [self.passwords])])
        self.locker = InProcessLocker() if locker is None else locker
        self.history = InProcessLoginHistory(clock=self.clock)
        self.policy = ServerPolicy(failedLoginDelay=0, **policy)

    def login(self, peer: str = "192.0.2.1", **options: Any) -> Login:
        """
        A new login attempt from C{peer}.
        """
        return Login(
            self.portal,
            policy=self.policy,
            clock=self.clock,
            locker=self.locker,
            loginHistory=self.history,
            peer=peer,
            **options,
        )


class LoginTestCase(SynchronousTestCase):
    """
    Helpers for running login steps.
    """

    def outcome(self, d: Deferred[LoginOutcome]) -> LoginOutcome:
        """
        The outcome a step fired with at once.
        """
        return self.successResultOf(d)

    def refused(self, d: Deferred[LoginOutcome]) -> POP3Error:
        """
        The error of a step that fired with L{LoginRefused} at once.
        """
        outcome = self.outcome(d)
        assert isinstance(outcome, LoginRefused), outcome
        return outcome.error


class PasswordTests(LoginTestCase):
    """
    USER/PASS and APOP logins.
    """

    def test_accepted(self) -> None:
        """
        The right password gives the listing and a session that holds the lock and the
        avatar until it ends.
        """
        harness = Harness()
        login = harness.login()
        outcome = self.outcome(login.start(PasswordLogin("alice", b"secret")))
        assert isinstance(outcome, LoginAccepted)
        self.assertEqual(outcome.maildrop.stat(), (1, 22))
        session = login.session
        assert session is not None
        self.assertIs(session.mailbox, harness.mailbox)
        self.assertTrue(harness.locker.isLocked(harness.mailbox.maildropId))
        self.assertEqual(harness.realm.activeSessions, {"alice": 1})
        session.end()
        session.end()
        self.assertFalse(harness.locker.isLocked(harness.mailbox.maildropId))
        self.assertEqual(harness.realm.activeSessions, {})

    def test_wrongPasswordPenalty(self) -> None:
        """
        A wrong password is refused with C{[AUTH]} after the failed-login delay, which
        grows with the client's failures.
        """
        harness = Harness()
        harness.policy = ServerPolicy(failedLoginDelay=2.0)
        for delay in (2.0, 4.0):
            d = harness.login().start(PasswordLogin("alice", b"wrong"))
            self.assertNoResult(d)
            harness.clock.advance(delay - 0.5)
            self.assertNoResult(d)
            harness.clock.advance(0.5)
            self.assertIsInstance(self.refused(d), AuthenticationFailed)
        self.assertEqual(harness.realm.activeSessions, {})

    def test_saslprep(self) -> None:
        """
        User names and passwords are prepared with SASLprep; a prohibited character is a
        failed login.
        """
        harness = Harness()
        harness.passwords.addUser(b"IX", b"I V")
        harness.realm.getMailbox("IX")
        outcome = self.outcome(harness.login().start(PasswordLogin("I\u00adX", b"I\xc2\xa0V")))
        self.assertIsInstance(outcome, LoginAccepted)
        error = self.refused(harness.login().start(PasswordLogin("ali\x07ce", b"secret")))
        self.assertIsInstance(error, AuthenticationFailed)

    def test_apop(self) -> None:
        """
        APOP credentials go through the portal's checker of hashed passwords.
        """
        harness = Harness()
        digest = hashlib.md5(b"<1.2@x>secret").hexdigest().encode()
        outcome = self.outcome(harness.login().start(APOPLogin("alice", digest, b"<1.2@x>")))
        self.assertIsInstance(outcome, LoginAccepted)

    def test_checkerDown(self) -> None:
        """
        A checker that fails unexpectedly gives C{[SYS/TEMP]}, logged.
        """

        class Broken(InMemoryUsernamePasswordDatabaseDontUse):
            def requestAvatarId(self, credentials: Any) -> Any:
                raise RuntimeError("database down")

        harness = Harness(Broken())
        error = self.refused(harness.login().start(PasswordLogin("alice", b"secret")))
        self.assertIsInstance(error, TemporaryFailure)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class MaildropTests(LoginTestCase):
    """
    After the credentials: LOGIN-DELAY, the lock and the listing, which release what
    they hold when they fail.
    """

    def test_inUse(self) -> None:
        """
        A maildrop locked by another session is refused with C{[IN-USE]}, and the
        avatar is logged out.
        """
        harness = Harness()
        self.outcome(harness.login().start(PasswordLogin("alice", b"secret")))
        error = self.refused(harness.login().start(PasswordLogin("alice", b"secret")))
        self.assertIsInstance(error, MaildropInUse)
        self.assertEqual(harness.realm.activeSessions, {"alice": 1})

    def test_loginDelay(self) -> None:
        """
        A second login before the LOGIN-DELAY has passed is refused with
        C{[LOGIN-DELAY]}; after it, it succeeds.
        """
        harness = Harness(loginDelay=60)
        first = harness.login()
        self.outcome(first.start(PasswordLogin("alice", b"secret")))
        assert first.session is not None
        first.session.end()
        harness.clock.advance(59)
        error = self.refused(harness.login().start(PasswordLogin("alice", b"secret")))
        self.assertIsInstance(error, LoginDelayed)
        self.assertFalse(harness.locker.isLocked(harness.mailbox.maildropId))
        harness.clock.advance(1)
        outcome = self.outcome(harness.login().start(PasswordLogin("alice", b"secret")))
        self.assertIsInstance(outcome, LoginAccepted)

    def test_listingFails(self) -> None:
        """
        A listing that fails releases the lock and logs the avatar out.
        """
        harness = Harness()
        harness.mailbox.listMessages = lambda: fail(PermanentFailure())  # type: ignore[method-assign]
        error = self.refused(harness.login().start(PasswordLogin("alice", b"secret")))
        self.assertIsInstance(error, PermanentFailure)
        self.assertFalse(harness.locker.isLocked(harness.mailbox.maildropId))
        self.assertEqual(harness.realm.activeSessions, {})


class AbortTests(LoginTestCase):
    """
    A client that goes away at any moment of the login leaves no lock and no avatar.
    """

    def test_whileLocking(self) -> None:
        """
        Aborted while the lock is being acquired: the avatar is logged out at once, the
        lock released as soon as it is granted.
        """
        locker = SlowLocker()
        harness = Harness(locker=locker)
        login = harness.login()
        d = login.start(PasswordLogin("alice", b"secret"))
        self.assertEqual(harness.realm.activeSessions, {"alice": 1})
        login.abort()
        self.assertEqual(harness.realm.activeSessions, {})
        locker.grant()
        self.assertFalse(locker.inner.isLocked(harness.mailbox.maildropId))
        self.assertIsInstance(self.outcome(d), LoginRefused)
        self.assertIsNone(login.session)

    def test_whileListing(self) -> None:
        """
        Aborted while the listing is being taken: the lock and the avatar are released.
        """
        harness = Harness()
        listing: Deferred[Sequence[MessageInfo]] = Deferred()
        harness.mailbox.listMessages = lambda: listing  # type: ignore[method-assign]
        login = harness.login()
        d = login.start(PasswordLogin("alice", b"secret"))
        self.assertTrue(harness.locker.isLocked(harness.mailbox.maildropId))
        login.abort()
        self.assertFalse(harness.locker.isLocked(harness.mailbox.maildropId))
        self.assertEqual(harness.realm.activeSessions, {})
        listing.callback([MessageInfo("a", 1)])
        self.assertIsInstance(self.outcome(d), LoginRefused)
        self.assertIsNone(login.session)
        self.assertFalse(harness.locker.isLocked(harness.mailbox.maildropId))

    def test_whileChecking(self) -> None:
        """
        Aborted while the checker works: the avatar it then yields is logged out.
        """
        checked: Deferred[object] = Deferred()

        class Slow(InMemoryUsernamePasswordDatabaseDontUse):
            def requestAvatarId(self, credentials: Any) -> Any:
                return checked

        harness = Harness(Slow())
        login = harness.login()
        d = login.start(PasswordLogin("alice", b"secret"))
        login.abort()
        checked.callback("alice")
        self.assertIsInstance(self.outcome(d), LoginRefused)
        self.assertEqual(harness.realm.activeSessions, {})
        self.assertFalse(harness.locker.isLocked(harness.mailbox.maildropId))


class SASLTests(LoginTestCase):
    """
    SASL exchanges, fed the client's responses.
    """

    def test_plainWithInitialResponse(self) -> None:
        """
        PLAIN with an initial response logs in at once.
        """
        harness = Harness()
        outcome = self.outcome(harness.login().start(SASLLogin("PLAIN", b"\0alice\0secret")))
        self.assertIsInstance(outcome, LoginAccepted)

    def test_loginPrompts(self) -> None:
        """
        LOGIN asks for the name and the password in two challenges.
        """
        harness = Harness()
        login = harness.login()
        self.assertEqual(self.outcome(login.start(SASLLogin("LOGIN"))), SASLChallenge(b"Username:"))
        self.assertEqual(self.outcome(login.respond(b"alice")), SASLChallenge(b"Password:"))
        self.assertIsInstance(self.outcome(login.respond(b"secret")), LoginAccepted)

    def test_initialResponseRefused(self) -> None:
        """
        CRAM-MD5, which speaks first, refuses an initial response without an exchange.
        """
        harness = Harness()
        outcome = self.outcome(harness.login().start(SASLLogin("CRAM-MD5", b"x")))
        self.assertEqual(outcome, InitialResponseRefused("CRAM-MD5"))

    def test_cramMD5(self) -> None:
        """
        CRAM-MD5's answer to the challenge goes through the checker of hashed passwords.
        """
        harness = Harness()
        login = harness.login()
        challenge = self.outcome(login.start(SASLLogin("CRAM-MD5")))
        assert isinstance(challenge, SASLChallenge)
        digest = hmac.new(b"secret", challenge.data, hashlib.md5).hexdigest().encode()
        self.assertIsInstance(self.outcome(login.respond(b"alice " + digest)), LoginAccepted)

    def test_malformedNoPenalty(self) -> None:
        """
        A malformed response is refused at once, without a penalty or a recorded
        failure: no credentials were judged.
        """
        harness = Harness()
        harness.policy = ServerPolicy(failedLoginDelay=2.0)
        error = self.refused(harness.login().start(SASLLogin("PLAIN", b"no NULs")))
        self.assertIsInstance(error, RemoteProtocolError)
        self.assertIsNot(error.code, ResponseCode.AUTH)
        self.assertEqual(self.successResultOf(harness.history.recordFailure("192.0.2.1")), 1)

    def test_scramThroughPortal(self) -> None:
        """
        SCRAM verifies the identity itself, and the login still goes through
        C{portal.login}: an application's checker of SASL identities sees it.
        """
        identities = RecordingIdentities()
        harness = Harness(SCRAMChecker(), identities)
        for user, expected in (("alice", LoginAccepted), ("mallory", LoginRefused)):
            login = harness.login(scramKeySource=identities)
            client = clientMechanism("SCRAM-SHA-256", user, "secret")
            outcome = self.outcome(
                login.start(SASLLogin("SCRAM-SHA-256", client.initialResponse()))
            )
            while isinstance(outcome, SASLChallenge):
                outcome = self.outcome(login.respond(client.respond(outcome.data)))
            self.assertIsInstance(outcome, expected, user)
        self.assertEqual(
            identities.seen, [("alice", "SCRAM-SHA-256"), ("mallory", "SCRAM-SHA-256")]
        )

    def test_externalThroughPortal(self) -> None:
        """
        EXTERNAL logs in the certificate's identity through C{portal.login}.
        """
        identities = RecordingIdentities()
        harness = Harness(identities)
        outcome = self.outcome(harness.login(tlsIdentity="alice").start(SASLLogin("EXTERNAL", b"")))
        self.assertIsInstance(outcome, LoginAccepted)
        self.assertEqual(identities.seen, [("alice", "EXTERNAL")])
        error = self.refused(harness.login().start(SASLLogin("EXTERNAL", b"")))
        self.assertIsInstance(error, AuthenticationFailed)

    def test_keySourceDown(self) -> None:
        """
        A SCRAM key store that fails gives C{[SYS/TEMP]}.
        """
        harness = Harness(SCRAMChecker(broken=True))
        client = clientMechanism("SCRAM-SHA-256", "alice", "secret")
        login = harness.login(scramKeySource=SCRAMChecker(broken=True))
        error = self.refused(login.start(SASLLogin("SCRAM-SHA-256", client.initialResponse())))
        self.assertIsInstance(error, TemporaryFailure)


class SessionTests(SynchronousTestCase):
    """
    L{Session.expunge}: QUIT's removal, which keeps the lock until it is done.
    """

    def test_expungeKeepsLock(self) -> None:
        """
        A client that leaves during the expunge does not release the lock before the
        messages are gone.
        """
        harness = Harness()
        login = harness.login()
        self.successResultOf(login.start(PasswordLogin("alice", b"secret")))
        session = login.session
        assert isinstance(session, Session)
        removing: Deferred[None] = Deferred()
        harness.mailbox.expunge = lambda uids: removing  # type: ignore[method-assign]
        d = session.expunge({"uid"})
        session.end()
        self.assertTrue(harness.locker.isLocked(harness.mailbox.maildropId))
        removing.callback(None)
        self.assertEqual(self.successResultOf(d), Goodbye())
        self.assertFalse(harness.locker.isLocked(harness.mailbox.maildropId))
        self.assertEqual(harness.realm.activeSessions, {})

    def test_answerAfterRelease(self) -> None:
        """
        QUIT's outcome comes once the lock is released, not before: a client that logs
        in again on QUIT's answer finds the maildrop free.
        """
        harness = Harness()
        login = harness.login()
        self.successResultOf(login.start(PasswordLogin("alice", b"secret")))
        session = login.session
        assert isinstance(session, Session)
        releasing: Deferred[None] = Deferred()

        @implementer(IMaildropLock)
        class SlowRelease:
            maildrop = "alice"

            def release(self) -> Deferred[None]:
                return releasing

        session._lock = SlowRelease()
        d = session.expunge({"uid"})
        self.assertNoResult(d)
        releasing.callback(None)
        self.assertEqual(self.successResultOf(d), Goodbye())

    def test_expungeFails(self) -> None:
        """
        A failed removal is the outcome's error; an unexpected one is logged and
        becomes C{[SYS/TEMP]}.  The session ends either way.
        """
        for failure, expected in ((PermanentFailure(), PermanentFailure), (OSError(), None)):
            harness = Harness()
            login = harness.login()
            self.successResultOf(login.start(PasswordLogin("alice", b"secret")))
            assert login.session is not None
            harness.mailbox.expunge = lambda uids, f=failure: fail(f)  # type: ignore[method-assign,misc]
            goodbye = self.successResultOf(login.session.expunge({"uid"}))
            self.assertIsInstance(goodbye.error, expected or TemporaryFailure)
            self.assertEqual(harness.realm.activeSessions, {})
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_nothingToExpunge(self) -> None:
        """
        With nothing marked, the mailbox is not asked to remove anything.
        """
        harness = Harness()
        login = harness.login()
        self.successResultOf(login.start(PasswordLogin("alice", b"secret")))
        assert login.session is not None
        harness.mailbox.expunge = None  # type: ignore[assignment]
        self.assertEqual(self.successResultOf(login.session.expunge(())), Goodbye())


class UnexpectedErrorTests(LoginTestCase):
    """
    An error nobody expected (a bug, in pop3kit or in a mechanism) is logged and refuses
    the login with C{[SYS/TEMP]}; the step's L{Deferred} never fails.
    """

    def test_brokenKeySource(self) -> None:
        """
        SCRAM keys of the wrong type break the mechanism: C{[SYS/TEMP]}, logged.
        """

        @implementer(ISCRAMKeySource)
        class Broken:
            def scramKeys(self, username: str, mechanism: str) -> Deferred[Any]:
                return succeed("not keys")

        harness = Harness(SCRAMChecker())
        login = harness.login(scramKeySource=Broken())
        client = clientMechanism("SCRAM-SHA-256", "alice", "secret")
        error = self.refused(login.start(SASLLogin("SCRAM-SHA-256", client.initialResponse())))
        self.assertIsInstance(error, TemporaryFailure)
        self.assertEqual(len(self.flushLoggedErrors(AttributeError)), 1)
