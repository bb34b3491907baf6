# -*- test-case-name: tests.test_login -*-
"""
The login sequence of a POP3 server session, without a transport.

A L{Login} takes the event of a login command (from L{pop3kit.core.ServerConnection})
and works out its outcome: SASLprep of the user name and password, the SASL exchange
(fed the client's responses), the SCRAM key lookup, C{portal.login}, LOGIN-DELAY, the
maildrop lock and the listing snapshot, or the failed-login penalty.  Each outcome is a
value the adapter passes on to the core (L{pop3kit.core.ServerConnection.send}).

A successful login leaves a L{Session}: the avatar, its logout and the lock, which the
session releases once, however it ends (QUIT, or the client going away at any moment,
the login included).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine, Sequence
from typing import Any, cast

from twisted.cred.credentials import ICredentials, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from pop3kit._gssapi import IGSSAPIAcceptor
from pop3kit.audit import LOCK_REFUSED, PENALTY, Reason
from pop3kit.core import (
    NEVER,
    APOPLogin,
    Goodbye,
    InitialResponseRefused,
    LoginAccepted,
    LoginRefused,
    MaildropView,
    PasswordLogin,
    SASLChallenge,
    SASLLogin,
    UserSettings,
)
from pop3kit.cred import APOPCredentials, NoSuchUser, SASLIdentity, WrongPassword
from pop3kit.errors import (
    AuthenticationFailed,
    LoginDelayed,
    POP3Error,
    ResponseCode,
    TemporaryFailure,
)
from pop3kit.interfaces import (
    IFencedMaildropLock,
    ILoginHistory,
    IMailbox,
    IMaildropLock,
    IMaildropLocker,
    IRetrievalLog,
    ISCRAMKeySource,
    IUserSettingsSource,
)
from pop3kit.limits import failedLoginPenalty
from pop3kit.policy import ServerPolicy
from pop3kit.sasl import (
    Challenge,
    CheckCredentials,
    NeedSCRAMKeys,
    SCRAMKeys,
    ServerMechanism,
    Step,
    preparePassword,
    prepareUsername,
    serverMechanism,
)

#: What a login step ends in: a challenge to send (SASL), or the verdict.
LoginOutcome = SASLChallenge | InitialResponseRefused | LoginAccepted | LoginRefused


class _Gone(TemporaryFailure):
    """
    The client went away during the login; nobody will read the answer.
    """


#: The outcome of a login whose client went away (it is never sent).
_GONE = LoginRefused(_Gone())

#: The reason a login refused with an error of this code is given in the log.
_REASONS = {
    ResponseCode.IN_USE: Reason.IN_USE,
    ResponseCode.LOGIN_DELAY: Reason.LOGIN_DELAY,
    ResponseCode.SYS_TEMP: Reason.TEMPORARY_FAILURE,
}


def _reasonFor(error: POP3Error) -> str:
    if isinstance(error, _Gone):
        return Reason.ABORTED
    if error.code is ResponseCode.AUTH:
        return Reason.REFUSED
    if error.code is None:
        return Reason.MALFORMED
    return _REASONS.get(error.code, Reason.OTHER)


#: Seconds in a day, EXPIRE's unit.
_DAY = 86400


class _LoginMind:
    """
    The mind a login passes to C{portal.login}: L{AvatarIdRecorder} notes the avatar ID
    on it, so that per-user settings can be looked up by it.

    @ivar avatarId: The avatar ID the checker found, once the realm was asked.
    """

    avatarId: object = None


@implementer(IRealm)
class AvatarIdRecorder:
    """
    A realm that notes the avatar ID of each login on its L{_LoginMind}, then asks the
    application's realm (with no mind, as before).
    """

    def __init__(self, realm: IRealm) -> None:
        """
        @param realm: The application's realm.
        """
        self.realm = realm

    def requestAvatar(
        self, avatarId: bytes | tuple[()], mind: object, *interfaces: type[Interface]
    ) -> (
        Deferred[tuple[type[Interface], object, Callable[[], None]]]
        | tuple[type[Interface], object, Callable[[], None]]
    ):
        """
        Note C{avatarId} on C{mind} if it is a login's, then ask the realm.
        """
        if isinstance(mind, _LoginMind):
            mind.avatarId = avatarId
        return self.realm.requestAvatar(avatarId, None, *interfaces)


def _expiring(expire: int | str | None) -> bool:
    """
    Whether C{expire} has retrieved messages removed after some days.
    """
    return isinstance(expire, int) and expire > 0


class Session:
    """
    A logged-in session's hold on its maildrop: the avatar, its logout callable and the
    maildrop lock.  L{end} gives them up, once.

    @ivar mailbox: The avatar.
    @ivar expire: The EXPIRE value in force for the user (days, L{NEVER} or L{None}):
        with days or L{NEVER}, QUIT records the messages retrieved when the mailbox
        provides L{IRetrievalLog}; with days, it also removes those retrieved longer ago.
    """

    __slots__ = ("_clock", "_ended", "_lock", "_logout", "expire", "mailbox")

    log = Logger()

    def __init__(
        self,
        mailbox: IMailbox,
        logout: Callable[[], object],
        clock: IReactorTime | None = None,
        expire: int | str | None = None,
    ) -> None:
        """
        @param mailbox: The avatar the realm handed out.
        @param logout: The logout callable that came with it.
        @param clock: Dates retrievals and expiry; needed when C{expire} is set.
        @param expire: The initial value of L{expire}.
        """
        self.mailbox = mailbox
        self._clock = clock
        self.expire = expire
        self._logout: Callable[[], object] | None = logout
        self._lock: IMaildropLock | None = None
        self._ended = False

    def hold(self, lock: IMaildropLock) -> None:
        """
        Keep C{lock} until the session ends; if it has ended already, release it now.
        """
        self._lock = lock
        if self._ended:
            self._release()

    def end(self) -> None:
        """
        Release the lock and log the avatar out, without removing anything.  Later calls
        (and locks given to L{hold} afterwards) are released at once.
        """
        self._ended = True
        self._release()

    def _release(self) -> Deferred[None]:
        """
        Release the lock and log the avatar out; the L{Deferred} fires (never fails) once
        the lock is released.
        """
        lock, self._lock = self._lock, None
        logout, self._logout = self._logout, None
        released: Deferred[None] = succeed(None)
        if lock is not None:
            released = lock.release().addErrback(
                lambda f: self.log.failure("Releasing the maildrop lock failed", f)
            )
        if logout is not None:
            try:
                logout()
            except Exception:
                self.log.failure("Avatar logout failed")
        return released

    def expunge(self, uids: Collection[str], retrieved: Collection[str] = ()) -> Deferred[Goodbye]:
        """
        QUIT: remove the messages with these unique-ids (if any), then end the session.
        The lock is held until they are gone, even if the client leaves meanwhile; the
        outcome comes once the lock is released, so a client that logs in again right
        after QUIT's answer finds the maildrop free (a lock held in a database is
        released by a round trip).

        With C{EXPIRE n} or C{EXPIRE NEVER} (L{expire}) and a mailbox that provides
        L{IRetrievalLog}, the messages C{retrieved} are recorded first; with C{EXPIRE n},
        the messages retrieved more than C{n} days ago are removed too.  A record that
        cannot be made is logged and the messages marked deleted are still removed.

        @return: A L{Deferred} firing with the outcome to send; it never fails.
        """
        return Deferred.fromCoroutine(self._expunge(uids, retrieved))

    async def _expunge(self, uids: Collection[str], retrieved: Collection[str]) -> Goodbye:
        # Taken from end(), which the client going away would call, until the expunge is
        # over.
        lock, self._lock = self._lock, None
        logout, self._logout = self._logout, None
        try:
            goodbye = await self._removeMarked(lock, uids, retrieved)
        finally:
            self._lock, self._logout = lock, logout
            self._ended = True
            released = self._release()
        await released
        return goodbye

    async def _removeMarked(
        self, lock: IMaildropLock | None, uids: Collection[str], retrieved: Collection[str]
    ) -> Goodbye:
        log = IRetrievalLog(self.mailbox, None)
        if log is None or self._clock is None or self.expire is None or self.expire == 0:
            retrieved = ()
        expiring = log is not None and self._clock is not None and _expiring(self.expire)
        try:
            if (uids or retrieved or expiring) and IFencedMaildropLock.providedBy(lock):
                # A lease may have passed to another session: change nothing then.
                await lock.confirm()
            if log is not None and self._clock is not None and (retrieved or expiring):
                uids = {*uids, *await self._expire(log, self._clock, retrieved)}
            if uids:
                await self.mailbox.expunge(uids)
        except POP3Error as error:
            return Goodbye(error)
        except Exception:
            self.log.failure("Removing deleted messages failed")
            return Goodbye(TemporaryFailure())
        return Goodbye()

    async def _expire(
        self, log: IRetrievalLog, clock: IReactorTime, retrieved: Collection[str]
    ) -> Collection[str]:
        """
        Record the messages C{retrieved} now; return those whose EXPIRE has passed.
        """
        now = clock.seconds()
        try:
            if retrieved:
                await log.markRetrieved(retrieved, now)
            if _expiring(self.expire):
                days = cast(int, self.expire)
                expired: Collection[str] = await log.expired(now - days * _DAY)
                return expired
        except Exception:
            # Mail is kept longer than promised; what the client deleted still goes.
            self.log.failure("Recording or expiring retrieved messages failed")
        return ()


class Login:
    """
    One login attempt of one session: L{start} it with the login event, feed it the
    client's SASL responses with L{respond}, L{abort} it if the client goes away.

    Each step returns a L{Deferred} that never fails: it fires with the outcome to pass
    to L{pop3kit.core.ServerConnection.send}.  After L{LoginAccepted}, L{session} holds
    the avatar and the lock.

    Every credential goes through C{portal.login(credentials, None, IMailbox)}: those a
    SASL mechanism verified itself as L{pop3kit.cred.SASLIdentity}, so the portal given
    must also have a checker for them (L{pop3kit.cred.SASLIdentityChecker}).

    @ivar session: The session, once the login succeeded; L{None} before.
    @ivar user: The user name as the client gave it, once known (for the log).
    @ivar mechanism: C{USER}, C{APOP} or the SASL mechanism, once started.
    @ivar reason: Why the login was refused (a L{pop3kit.audit.Reason}), or L{None}.
    @ivar penalty: The failed-login delay imposed before the refusal, in seconds.
    @ivar checkSeconds: How long the checkers took to judge the credentials, or L{None}.
    @ivar openSeconds: How long LOGIN-DELAY, the lock and the listing took, or L{None}.
    """

    log = Logger()

    def __init__(
        self,
        portal: Portal,
        *,
        policy: ServerPolicy,
        clock: IReactorTime,
        locker: IMaildropLocker,
        loginHistory: ILoginHistory,
        peer: str,
        scramKeySource: ISCRAMKeySource | None = None,
        tlsIdentity: str | None = None,
        events: Logger | None = None,
        gssapi: IGSSAPIAcceptor | None = None,
        settingsSources: Sequence[IUserSettingsSource] = (),
    ) -> None:
        """
        @param portal: Logs users in, SASL identities included.
        @param policy: LOGIN-DELAY, the failed-login delays, the CRAM-MD5 host name.
        @param clock: Dates logins and schedules the failed-login delay.
        @param locker: Locks maildrops.
        @param loginHistory: Failed logins per client, last logins per maildrop.
        @param peer: The client's address, as the failed-login counters know it.
        @param scramKeySource: Where SCRAM keys come from; L{None} when SCRAM is not
            offered.
        @param tlsIdentity: The identity of the client's verified TLS certificate, for
            EXTERNAL; L{None} if there is none.
        @param events: Where the failed-login delay and a refused lock are logged (see
            L{pop3kit.audit}); the class's C{log} by default.
        @param gssapi: What holds the GSSAPI service key; L{None} when GSSAPI is not
            offered.
        @param settingsSources: Where per-user LOGIN-DELAY and EXPIRE values come from,
            after the avatar itself (when it provides L{IUserSettingsSource}); the avatar
            ID is known when the portal's realm is wrapped in an L{AvatarIdRecorder},
            else the credentials' user name is used.
        """
        self.session: Session | None = None
        self.user: str | None = None
        self.mechanism = ""
        self.reason: str | None = None
        self.penalty = 0.0
        self.checkSeconds: float | None = None
        self.openSeconds: float | None = None
        self._events = self.log if events is None else events
        self._portal = portal
        self._policy = policy
        self._clock = clock
        self._locker = locker
        self._history = loginHistory
        self._peer = peer
        self._scramKeySource = scramKeySource
        self._tlsIdentity = tlsIdentity
        self._gssapi = gssapi
        self._settingsSources = tuple(settingsSources)
        self._mechanism: ServerMechanism | None = None
        # Whether SCRAM found keys for the user; None before any lookup.
        self._scramUser: bool | None = None
        self._pending: Session | None = None
        self._aborted = False
        self._penalized = False

    def start(self, event: PasswordLogin | APOPLogin | SASLLogin) -> Deferred[LoginOutcome]:
        """
        Begin with the login command's event.
        """
        if isinstance(event, PasswordLogin):
            self.mechanism, self.user = "USER", event.user
            return self._run(self._password(event))
        if isinstance(event, APOPLogin):
            self.mechanism, self.user = "APOP", event.user
            credentials = APOPCredentials(event.timestamp, event.user.encode("utf-8"), event.digest)
            return self._run(self._login(credentials))
        return self._run(self._sasl(event))

    def respond(self, data: bytes) -> Deferred[LoginOutcome]:
        """
        Take the client's decoded response to the last L{SASLChallenge}.
        """
        mechanism = self._mechanism
        assert mechanism is not None, "no SASL challenge is waiting for a response"
        return self._run(self._step(mechanism, lambda: mechanism.respond(data)))

    def _run(self, steps: Coroutine[Any, Any, LoginOutcome]) -> Deferred[LoginOutcome]:
        return Deferred.fromCoroutine(steps).addErrback(self._failed)

    def _failed(self, failure: Failure) -> LoginOutcome:
        # What is expected is answered in the steps; this is a bug, or a mechanism's.
        self.log.failure("Logging in failed", failure)
        self._mechanism = None
        self.reason = Reason.TEMPORARY_FAILURE
        return LoginRefused(TemporaryFailure())

    def abort(self) -> None:
        """
        The client went away: give up whatever the login holds now or gets later (the
        lock, the avatar).  Outcomes still to come are of no use.
        """
        self._aborted = True
        self._mechanism = None
        if self._pending is not None:
            self._pending.end()

    # USER/PASS and SASL

    async def _password(self, event: PasswordLogin) -> LoginOutcome:
        try:
            username = prepareUsername(event.user).encode("utf-8")
            password = event.password
            try:
                text = password.decode("utf-8")
            except UnicodeDecodeError:
                pass  # A legacy 8-bit password: compared as it is.
            else:
                password = preparePassword(text).encode("utf-8")
        except POP3Error as error:
            return await self._refused(error)
        return await self._login(UsernamePassword(username, password))

    async def _sasl(self, event: SASLLogin) -> LoginOutcome:
        self.mechanism = event.mechanism
        mechanism = serverMechanism(
            event.mechanism,
            hostname=self._policy.apopHost,
            tlsIdentity=self._tlsIdentity,
            gssapi=self._gssapi,
        )
        if event.initialResponse is not None and not mechanism.clientFirst:
            return InitialResponseRefused(mechanism.name)
        self._mechanism = mechanism
        return await self._step(mechanism, lambda: mechanism.start(event.initialResponse))

    async def _step(self, mechanism: ServerMechanism, advance: Callable[[], Step]) -> LoginOutcome:
        try:
            step = advance()
            while isinstance(step, NeedSCRAMKeys):
                self.user = step.username
                keys = await self._scramKeys(step)
                self._scramUser = keys is not None
                step = mechanism.keysFound(keys)
        except AuthenticationFailed as error:
            self._mechanism = None
            if self._penalized:
                # The end of an exchange whose refusal was already counted.
                self._penalized = False
                return LoginRefused(error)
            # SCRAM refuses without the checkers: no keys, no such user; else the proof.
            known = self._scramUser
            reason = (
                None if known is None else Reason.WRONG_PASSWORD if known else Reason.UNKNOWN_USER
            )
            return await self._refused(error, reason)
        except POP3Error as error:
            # A malformed exchange: no credentials were judged, so no penalty, but it
            # counts against the connection's failed logins.
            self._mechanism = None
            self.reason = _reasonFor(error)
            return LoginRefused(error)
        if isinstance(step, Challenge):
            return SASLChallenge(step.data)
        self._mechanism = None
        if isinstance(step, CheckCredentials):
            username = getattr(step.credentials, "username", None)
            if isinstance(username, bytes):
                self.user = username.decode("utf-8", "replace")
            if step.refusal is not None:
                return await self._login(step.credentials, step.refusal, mechanism)
            return await self._login(step.credentials)
        self.user = step.username
        return await self._login(SASLIdentity(step.username, mechanism.name))

    async def _scramKeys(self, step: NeedSCRAMKeys) -> SCRAMKeys | None:
        if self._scramKeySource is None:
            return None
        try:
            keys: SCRAMKeys | None = await self._scramKeySource.scramKeys(
                step.username, step.mechanism
            )
        except POP3Error:
            raise
        except Exception:
            self.log.failure("Looking up SCRAM keys failed")
            raise TemporaryFailure() from None
        return keys

    # Every method ends here

    async def _login(
        self,
        credentials: ICredentials,
        refusal: Callable[[Exception], bytes] | None = None,
        mechanism: ServerMechanism | None = None,
    ) -> LoginOutcome:
        started = self._clock.seconds()
        mind = _LoginMind()
        try:
            _, avatar, logout = await self._portal.login(credentials, mind, IMailbox)
        except UnauthorizedLogin as e:
            self.checkSeconds = self._clock.seconds() - started
            reason = (
                Reason.UNKNOWN_USER
                if isinstance(e, NoSuchUser)
                else Reason.WRONG_PASSWORD
                if isinstance(e, WrongPassword)
                else Reason.REFUSED
            )
            if refusal is not None and not self._aborted:
                # The error challenge first, and the client's answer then ends the
                # exchange.  The challenge tells the token was refused, so the penalty
                # applies before it: cancelling the exchange must not avoid it.
                refused = await self._refused(AuthenticationFailed(), reason)
                if self._aborted:
                    return _GONE
                if refused.error.code is not ResponseCode.AUTH:
                    return refused
                self._mechanism = mechanism
                self._penalized = True
                return SASLChallenge(refusal(e))
            return await self._refused(AuthenticationFailed(), reason)
        except POP3Error as error:
            self.checkSeconds = self._clock.seconds() - started
            return await self._refused(error)
        except Exception:
            self.log.failure("Checking credentials failed")
            return await self._refused(TemporaryFailure())
        opened = self._clock.seconds()
        self.checkSeconds = opened - started
        # The realm hands out IMailbox avatars: login asked for nothing else.
        session = Session(
            cast(IMailbox, avatar), logout, clock=self._clock, expire=self._policy.expire
        )
        if mind.avatarId is None:
            mind.avatarId = getattr(credentials, "username", None)
        if self._aborted:
            session.end()
            self.reason = Reason.ABORTED
            return _GONE
        self._pending = session
        try:
            maildrop, settings = await self._open(session, mind.avatarId)
        except POP3Error as error:
            session.end()
            return await self._refused(error)
        except Exception:
            self.log.failure("Opening the maildrop failed")
            session.end()
            return await self._refused(TemporaryFailure())
        self._pending = None
        self.openSeconds = self._clock.seconds() - opened
        if self._aborted:
            session.end()
            self.reason = Reason.ABORTED
            return _GONE
        self.session = session
        return LoginAccepted(maildrop, settings)

    async def _settings(self, mailbox: IMailbox, avatarId: object) -> UserSettings:
        """
        The LOGIN-DELAY and EXPIRE values in force for the user: from the avatar, then
        the sources given, then the policy.  C{EXPIRE n} becomes C{EXPIRE NEVER} for a
        mailbox that cannot record retrievals (it keeps everything).
        """
        policy = self._policy
        loginDelay, expire = policy.loginDelay, policy.expire
        sources: list[IUserSettingsSource] = list(self._settingsSources)
        avatarSource = IUserSettingsSource(mailbox, None)
        if avatarSource is not None:
            sources.insert(0, avatarSource)
        if isinstance(avatarId, bytes):
            avatarId = avatarId.decode("utf-8", "replace")
        found: list[UserSettings] = []
        if isinstance(avatarId, str):
            for source in sources:
                found.append(await source.userSettings(avatarId))
        for settings in reversed(found):
            if settings.loginDelay is not None:
                loginDelay = settings.loginDelay
            if settings.expire is not None:
                expire = settings.expire
        if _expiring(expire) and not IRetrievalLog.providedBy(mailbox):
            expire = NEVER
        return UserSettings(loginDelay=loginDelay, expire=expire)

    async def _open(self, session: Session, avatarId: object) -> tuple[MaildropView, UserSettings]:
        maildropId = str(session.mailbox.maildropId)
        history = self._history
        settings = await self._settings(session.mailbox, avatarId)
        session.expire = settings.expire
        loginDelay = settings.loginDelay
        if loginDelay is not None:
            last = await history.lastLogin(maildropId)
            if last is not None and self._clock.seconds() - last < loginDelay:
                raise LoginDelayed()
        try:
            lock = await self._locker.acquire(maildropId)
        except POP3Error as error:
            if error.code is ResponseCode.IN_USE:
                LOCK_REFUSED.emit(self._events, peer=self._peer, maildrop=maildropId)
            raise
        session.hold(lock)
        if self._aborted:
            raise _Gone()
        maildrop = MaildropView(await session.mailbox.listMessages())
        await history.recordLogin(maildropId, self._clock.seconds())
        await history.clearFailures(self._peer)
        return maildrop, settings

    async def _refused(self, error: POP3Error, reason: str | None = None) -> LoginRefused:
        """
        A refused login; one refused for its credentials (C{[AUTH]}) is counted for the
        client and answered after the failed-login delay.

        @param reason: Why, for the log; by default, what the error's type and code say.
        """
        self.reason = _reasonFor(error) if reason is None else reason
        if error.code is ResponseCode.AUTH:
            policy = self._policy
            try:
                failures = await self._history.recordFailure(self._peer)
            except POP3Error as unrecorded:
                # Shared state out of reach: the client learns nothing of its password.
                return LoginRefused(unrecorded)
            delay = failedLoginPenalty(
                failures,
                initial=policy.failedLoginDelay,
                maximum=policy.maximumFailedLoginDelay,
            )
            if delay > 0:
                self.penalty = delay
                PENALTY.emit(self._events, peer=self._peer, failures=failures, delay=delay)
                await deferLater(self._clock, delay)
        return LoginRefused(error)
