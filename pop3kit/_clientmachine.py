"""
The lifecycle of a L{POP3Client <pop3kit.client.POP3Client>} session, as a typed Automat
machine whose states own their data, after Twisted's C{ClientService}.

::

    Greeting --greeted--> Authorization --tlsAccepted--> StartingTLS
    StartingTLS --tlsEstablished--> Authorization
    Authorization --loginStarted--> Authenticating(user, method)
    Authenticating --loggedIn--> Transaction(MaildropListing)
                   --loginRefused--> Authorization
    any but Closed --quitRequested--> Quitting
    any --closed--> Closed

The machine does no I/O and fires no L{Deferred <twisted.internet.defer.Deferred>}: the
protocol asks it what state the session is in, tells it what happened, and acts itself,
so no user code ever runs inside a transition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, cast

from automat import TypeMachine, TypeMachineBuilder
from twisted.logger import Logger

from pop3kit.core import (
    Command,
    Dele,
    List,
    Rset,
    Stat,
    Uidl,
)


class ClientState(Enum):
    """
    Where the client is in the session.

    ::

        GREETING --greeting--> AUTHORIZATION --STLS +OK--> STARTING_TLS --handshake--> AUTHORIZATION
        AUTHORIZATION --login()--> AUTHENTICATING --+OK--> TRANSACTION
                                                  --(-ERR)--> AUTHORIZATION
        any --quit()--> QUITTING --+OK, close--> CLOSED
        any --connection lost--> CLOSED
    """

    GREETING = "greeting"
    AUTHORIZATION = "authorization"
    STARTING_TLS = "starting-tls"
    AUTHENTICATING = "authenticating"
    TRANSACTION = "transaction"
    QUITTING = "quitting"
    CLOSED = "closed"


@dataclass
class MaildropListing:
    """
    What the client knows of the maildrop in TRANSACTION state; it exists only there.

    @ivar count: The message count STAT reported at login (deleted messages excluded).
    @ivar octets: The maildrop size STAT reported at login.
    @ivar sizes: Message sizes by number from the last full LIST, or L{None}; messages
        deleted since are removed.
    @ivar uids: Unique-ids by number from the last full UIDL, or L{None}; messages
        deleted since are removed.
    @ivar deleted: Numbers of the messages marked deleted in this session.
    """

    count: int = 0
    octets: int = 0
    sizes: dict[int, int] | None = None
    uids: dict[int, str] | None = None
    deleted: set[int] = field(default_factory=set)


class Lifecycle(Protocol):
    """
    The inputs of the session's lifecycle machine.
    """

    def state(self) -> ClientState:
        """
        The state, as the public L{ClientState}.
        """

    def maildrop(self) -> MaildropListing | None:
        """
        The listing of TRANSACTION state, or L{None} in every other state.
        """

    def greeted(self) -> None:
        """
        The server greeted with C{+OK}.
        """

    def tlsAccepted(self) -> None:
        """
        The server answered C{+OK} to C{STLS}: the handshake starts.
        """

    def tlsEstablished(self) -> None:
        """
        The handshake that followed C{STLS} is done.
        """

    def loginStarted(self, user: str | None, method: str) -> None:
        """
        A login as C{user} (L{None}: as the SASL mechanism knows) with C{method}
        (C{"user"}, C{"apop"}, a SASL name) begins.
        """

    def loginRefused(self) -> None:
        """
        The login failed (C{-ERR}, cancelled, or given up locally).
        """

    def loggedIn(self) -> None:
        """
        The server accepted the login.
        """

    def answered(self, command: Command, result: object) -> None:
        """
        C{command}, one of L{LISTING_COMMANDS}, was answered with C{+OK}, giving
        C{result}: keep the listing up to date.
        """

    def quitRequested(self) -> None:
        """
        C{QUIT} was queued: nothing more may be.
        """

    def closed(self) -> None:
        """
        The connection is closed.
        """


@dataclass
class LifecycleCore:
    """
    What every state shares.

    @ivar log: Where login, login failures and logouts are told.
    @ivar peer: The server's address, for the log.
    @ivar user: The user logged in as, once logged in.
    """

    log: Logger
    peer: str = ""
    user: str | None = None


@dataclass
class _Login:
    """
    The data of the Authenticating state: who logs in, and how.
    """

    user: str | None
    method: str


#: The commands whose answers change the listing (see L{Lifecycle.answered}).
LISTING_COMMANDS = (Stat, List, Uidl, Dele, Rset)


def _updateListing(listing: MaildropListing, command: Command, result: object) -> None:
    """
    Keep C{listing} in step with the C{+OK} answer to C{command}.
    """
    if isinstance(command, Stat):
        if not listing.deleted:
            listing.count, listing.octets = cast(tuple[int, int], result)
    elif isinstance(command, List) and command.message is None:
        listing.sizes = dict(cast(dict[int, int], result))
    elif isinstance(command, Uidl) and command.message is None:
        listing.uids = dict(cast(dict[int, str], result))
    elif isinstance(command, Dele):
        listing.deleted.add(command.message)
        if listing.sizes is not None:
            listing.sizes.pop(command.message, None)
        if listing.uids is not None:
            listing.uids.pop(command.message, None)
    elif isinstance(command, Rset):
        listing.deleted.clear()
        listing.sizes = listing.uids = None


def _makeLifecycle() -> TypeMachine[Lifecycle, LifecycleCore]:
    builder = TypeMachineBuilder(Lifecycle, LifecycleCore)
    greeting = builder.state("Greeting")
    authorization = builder.state("Authorization")
    startingTLS = builder.state("StartingTLS")
    authenticating = builder.state(
        "Authenticating",
        lambda lifecycle, core, user, method: _Login(user, method),
    )
    transaction = builder.state("Transaction", lambda lifecycle, core: MaildropListing())
    quitting = builder.state("Quitting")
    closed = builder.state("Closed")

    greeting.upon(Lifecycle.state).loop().returns(ClientState.GREETING)
    authorization.upon(Lifecycle.state).loop().returns(ClientState.AUTHORIZATION)
    startingTLS.upon(Lifecycle.state).loop().returns(ClientState.STARTING_TLS)
    authenticating.upon(Lifecycle.state).loop().returns(ClientState.AUTHENTICATING)
    transaction.upon(Lifecycle.state).loop().returns(ClientState.TRANSACTION)
    quitting.upon(Lifecycle.state).loop().returns(ClientState.QUITTING)
    closed.upon(Lifecycle.state).loop().returns(ClientState.CLOSED)

    @transaction.upon(Lifecycle.maildrop).loop()
    def current(
        lifecycle: Lifecycle, core: LifecycleCore, listing: MaildropListing
    ) -> MaildropListing:
        return listing

    @transaction.upon(Lifecycle.answered).loop()
    def answered(
        lifecycle: Lifecycle,
        core: LifecycleCore,
        listing: MaildropListing,
        command: Command,
        result: object,
    ) -> None:
        _updateListing(listing, command, result)

    @authenticating.upon(Lifecycle.loggedIn).to(transaction)
    def loggedIn(lifecycle: Lifecycle, core: LifecycleCore, login: _Login) -> None:
        core.user = login.user
        core.log.info(
            "POP3 login to {peer} as {user} with {mechanism}",
            peer=core.peer,
            user=login.user,
            mechanism=login.method,
        )

    @authenticating.upon(Lifecycle.loginRefused).to(authorization)
    def refused(lifecycle: Lifecycle, core: LifecycleCore, login: _Login) -> None:
        core.log.info(
            "POP3 login to {peer} as {user} with {mechanism} failed",
            peer=core.peer,
            user=login.user,
            mechanism=login.method,
        )

    @transaction.upon(Lifecycle.closed).to(closed)
    @transaction.upon(Lifecycle.quitRequested).to(quitting)
    def loggedOut(lifecycle: Lifecycle, core: LifecycleCore, listing: MaildropListing) -> None:
        core.log.info(
            "POP3 session with {peer} as {user} ends, {deleted} messages marked deleted",
            peer=core.peer,
            user=core.user,
            deleted=len(listing.deleted),
        )

    greeting.upon(Lifecycle.greeted).to(authorization).returns(None)
    authorization.upon(Lifecycle.tlsAccepted).to(startingTLS).returns(None)
    startingTLS.upon(Lifecycle.tlsEstablished).to(authorization).returns(None)
    authorization.upon(Lifecycle.loginStarted).to(authenticating).returns(None)
    # A login cancelled by its caller may still be answered +OK.
    authorization.upon(Lifecycle.loggedIn).to(transaction).returns(None)

    # STLS answered after a login or QUIT was queued behind it: the handshake goes on.
    authenticating.upon(Lifecycle.tlsAccepted).loop().returns(None)
    authenticating.upon(Lifecycle.tlsEstablished).loop().returns(None)
    quitting.upon(Lifecycle.tlsAccepted).loop().returns(None)
    quitting.upon(Lifecycle.tlsEstablished).loop().returns(None)
    # Answers to what was sent before QUIT still arrive.
    quitting.upon(Lifecycle.greeted).loop().returns(None)
    quitting.upon(Lifecycle.loggedIn).loop().returns(None)

    state: Any
    for state in (greeting, authorization, startingTLS, authenticating, quitting, closed):
        state.upon(Lifecycle.maildrop).loop().returns(None)
        state.upon(Lifecycle.answered).loop().returns(None)
    for state in (greeting, authorization, startingTLS, authenticating):
        state.upon(Lifecycle.quitRequested).to(quitting).returns(None)
    for state in (greeting, authorization, startingTLS, authenticating, quitting):
        state.upon(Lifecycle.closed).to(closed).returns(None)
    for state in (greeting, authorization, startingTLS, transaction, quitting, closed):
        state.upon(Lifecycle.loginRefused).loop().returns(None)
    closed.upon(Lifecycle.closed).loop().returns(None)
    return builder.build()


#: Makes the lifecycle machine of one session from its L{LifecycleCore}.
makeLifecycle = _makeLifecycle()
