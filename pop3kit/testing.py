"""
Test helpers for applications and backends built on pop3kit.

L{IMailboxContractMixin} checks that a storage backend keeps the L{IMailbox} contract.
L{ConnectedServer} drives one server session in memory, with no sockets.
L{ConnectedClient} joins a real L{pop3kit.client.POP3Client} to a real server in memory,
and L{MemoryNetwork} lets code that connects by itself (with L{pop3kit.client.connect})
reach servers in memory: no sockets, no threads, no global reactor, and time moves only
when a test says so.  For an in-memory maildrop, use
L{pop3kit.backends.memory.MemoryMailbox}.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IProtocol, IProtocolFactory
from twisted.internet.protocol import ServerFactory
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SkipTest
from zope.interface.verify import verifyObject

from pop3kit.client import POP3Client
from pop3kit.core import (
    MessageInfo,
    isValidUid,
    wireSize,
)
from pop3kit.core._dotstuff import canonicalForm
from pop3kit.errors import MessageUnavailable
from pop3kit.interfaces import IMailbox
from pop3kit.server import POP3ServerFactory

__all__ = [
    "CONTRACT_MESSAGES",
    "ConnectedClient",
    "ConnectedServer",
    "IMailboxContractMixin",
    "MemoryConnection",
    "MemoryNetwork",
    "Stalled",
]

# ---------------------------------------------------------------------------------------
# The IMailbox contract tests
# ---------------------------------------------------------------------------------------

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase as _ContractBase
else:
    _ContractBase = object

_T = TypeVar("_T")

#: Messages of every shape a backend must store faithfully, by name.
CONTRACT_MESSAGES: dict[str, bytes] = {
    "lf": b"From: a@example.com\nSubject: LF\n\nline one\nline two\n",
    "crlf": b"From: a@example.com\r\nSubject: CRLF\r\n\r\nline one\r\nline two\r\n",
    "mixed": b"Subject: mixed\r\n\nbare LF\nCRLF\r\nlone CR\r inside\n",
    "noFinalNewline": b"Subject: unterminated\n\nlast line has no line end",
    "empty": b"",
    "utf8": "Subject: =?utf-8?q?caf=C3=A9?=\n\ncaf\u00e9 \u2603 na\u00efve\n".encode(),
    "eightBit": b"Subject: 8bit\n\n" + bytes(range(0x80, 0x100)) + b"\n",
    "dotLines": b"Subject: dots\n\n.\n..\n.leading dot\r\n. \n.",
}


class IMailboxContractMixin(_ContractBase):
    """
    Tests that every L{IMailbox} implementation must pass.

    Mix this into a L{twisted.trial.unittest.TestCase} subclass and implement
    L{mailboxWithMessages}; implement L{deliverMore} and L{reopen} where the backend can,
    the tests that need them are skipped otherwise.  For example::

        class MyMailboxTests(IMailboxContractMixin, TestCase):
            def mailboxWithMessages(self, messages):
                return succeed(MyMailbox.create(self.mktemp(), messages))

    Like the mailbox's own methods, every hook returns a L{Deferred} (a synchronous
    backend's hooks return L{succeed <twisted.internet.defer.succeed>}), so asynchronous
    backends work as well as synchronous ones and there is one contract, not "a value or
    a L{Deferred}".
    """

    def mailboxWithMessages(self, messages: list[bytes]) -> Deferred[IMailbox]:
        """
        Make a new mailbox holding C{messages}, oldest first.  Subclasses must implement it.

        @param messages: The messages as stored: LF or CRLF line ends, any octets.
        @return: A L{Deferred} firing with the mailbox.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement mailboxWithMessages")

    def deliverMore(self, mailbox: IMailbox, message: bytes) -> Deferred[None]:
        """
        Add C{message} to the storage of C{mailbox}, as a new mail delivery would.

        Optional: the tests that need it are skipped unless a subclass implements it.

        @return: A L{Deferred} firing once the message is stored.
        """
        raise NotImplementedError()

    def reopen(self, mailbox: IMailbox) -> Deferred[IMailbox]:
        """
        Make a new mailbox object on the same storage as C{mailbox}, as a later session
        would get.

        Optional: the tests that need it are skipped unless a subclass implements it.

        @return: A L{Deferred} firing with the new mailbox object.
        """
        raise NotImplementedError()

    def _requireHook(self, name: str) -> None:
        """
        Skip the running test unless the subclass implements the hook C{name}.
        """
        if getattr(type(self), name) is getattr(IMailboxContractMixin, name):
            raise SkipTest(f"{type(self).__name__} does not implement {name}")

    async def _hook(self, name: str, result: Deferred[_T]) -> _T:
        """
        Wait for the L{Deferred} the hook C{name} returned, failing the test with a clear
        message if it returned anything else.
        """
        if not isinstance(result, Deferred):
            self.fail(f"{type(self).__name__}.{name} must return a Deferred, not {result!r}")
        return await result

    async def _mailbox(self, messages: Sequence[bytes]) -> IMailbox:
        """
        Make a mailbox with C{messages} through L{mailboxWithMessages}.
        """
        return await self._hook("mailboxWithMessages", self.mailboxWithMessages(list(messages)))

    async def _list(self, mailbox: IMailbox) -> list[MessageInfo]:
        """
        List C{mailbox}, checking that the result is a L{Deferred} of L{MessageInfo}s.
        """
        d = mailbox.listMessages()
        self.assertIsInstance(d, Deferred)
        listing = await d
        for info in listing:
            self.assertIsInstance(info, MessageInfo)
        return list(listing)

    async def _read(self, mailbox: IMailbox, uid: str) -> bytes:
        """
        Read the message C{uid} of C{mailbox} in small chunks, and close it.
        """
        d = mailbox.openMessage(uid)
        self.assertIsInstance(d, Deferred)
        stream = await d
        chunks = []
        try:
            while chunk := stream.read(4096):
                self.assertIsInstance(chunk, bytes)
                chunks.append(chunk)
        finally:
            stream.close()
        return b"".join(chunks)

    async def _expunge(self, mailbox: IMailbox, uids: list[str]) -> None:
        """
        Expunge C{uids} from C{mailbox}, checking that the result is a L{Deferred}.
        """
        d = mailbox.expunge(uids)
        self.assertIsInstance(d, Deferred)
        await d

    async def _contents(self, mailbox: IMailbox) -> list[bytes]:
        """
        The canonical forms of all messages of C{mailbox}, in listing order.
        """
        listing = await self._list(mailbox)
        return [canonicalForm(await self._read(mailbox, info.uid)) for info in listing]

    async def test_providesIMailbox(self) -> None:
        """
        The mailbox provides L{IMailbox} with all its methods.
        """
        mailbox = await self._mailbox([CONTRACT_MESSAGES["lf"]])
        self.assertTrue(verifyObject(IMailbox, mailbox))

    async def test_everyMethodReturnsDeferred(self) -> None:
        """
        C{listMessages}, C{openMessage} and C{expunge} all return L{Deferred}s.
        """
        mailbox = await self._mailbox([CONTRACT_MESSAGES["lf"]])
        listed = mailbox.listMessages()
        self.assertIsInstance(listed, Deferred)
        [info] = await listed
        opened = mailbox.openMessage(info.uid)
        self.assertIsInstance(opened, Deferred)
        (await opened).close()
        expunged = mailbox.expunge([info.uid])
        self.assertIsInstance(expunged, Deferred)
        await expunged

    async def test_emptyMailbox(self) -> None:
        """
        A mailbox without messages lists none.
        """
        mailbox = await self._mailbox([])
        self.assertEqual(await self._list(mailbox), [])

    async def test_listingOrderAndCount(self) -> None:
        """
        The listing has one entry per message, in the order they were stored.
        """
        messages = [b"Subject: %d\n\nmessage number %d\n" % (i, i) for i in range(7)]
        mailbox = await self._mailbox(messages)
        self.assertEqual(await self._contents(mailbox), [canonicalForm(m) for m in messages])

    async def test_sizes(self) -> None:
        """
        Each listed size is the CRLF size (L{wireSize}) of the stored message, whatever its
        line ends, octets or dots.
        """
        names = list(CONTRACT_MESSAGES)
        mailbox = await self._mailbox(list(CONTRACT_MESSAGES.values()))
        listing = await self._list(mailbox)
        self.assertEqual(
            dict(zip(names, [info.size for info in listing], strict=True)),
            {name: wireSize(message) for name, message in CONTRACT_MESSAGES.items()},
        )

    async def test_readBack(self) -> None:
        """
        Reading a message gives back what was stored, up to the form of its line ends.
        """
        names = list(CONTRACT_MESSAGES)
        mailbox = await self._mailbox(list(CONTRACT_MESSAGES.values()))
        self.assertEqual(
            dict(zip(names, await self._contents(mailbox), strict=True)),
            {name: canonicalForm(message) for name, message in CONTRACT_MESSAGES.items()},
        )

    async def test_sizeMatchesWhatIsRead(self) -> None:
        """
        The listed size of each message is the L{wireSize} of what reading it returns.
        """
        mailbox = await self._mailbox(list(CONTRACT_MESSAGES.values()))
        for info in await self._list(mailbox):
            self.assertEqual(info.size, wireSize(await self._read(mailbox, info.uid)))

    async def test_largeMessage(self) -> None:
        """
        A message of several hundred kilobytes is listed with its size and read back whole.
        """
        message = b"".join(b"line %d of a long message\n" % i for i in range(30000))
        mailbox = await self._mailbox([message])
        [info] = await self._list(mailbox)
        self.assertEqual(info.size, wireSize(message))
        self.assertEqual(canonicalForm(await self._read(mailbox, info.uid)), canonicalForm(message))

    async def test_openTwice(self) -> None:
        """
        A message can be opened and read more than once.
        """
        message = CONTRACT_MESSAGES["crlf"]
        mailbox = await self._mailbox([message])
        [info] = await self._list(mailbox)
        first = await self._read(mailbox, info.uid)
        second = await self._read(mailbox, info.uid)
        self.assertEqual(
            [canonicalForm(first), canonicalForm(second)], [canonicalForm(message)] * 2
        )

    async def test_uidsValidAndUnique(self) -> None:
        """
        Unique-ids are valid RFC 1939 unique-ids, different for every message, even for
        messages with identical contents.
        """
        messages = [CONTRACT_MESSAGES["lf"]] * 3 + list(CONTRACT_MESSAGES.values())
        mailbox = await self._mailbox(messages)
        uids = [info.uid for info in await self._list(mailbox)]
        self.assertEqual(len(uids), len(messages))
        self.assertEqual([uid for uid in uids if not isValidUid(uid)], [])
        self.assertEqual(len(set(uids)), len(uids))

    async def test_uidsStableAcrossListings(self) -> None:
        """
        Listing twice gives the same unique-ids and sizes, in the same order.
        """
        mailbox = await self._mailbox(list(CONTRACT_MESSAGES.values()))
        self.assertEqual(await self._list(mailbox), await self._list(mailbox))

    async def test_uidsStableAcrossMailboxObjects(self) -> None:
        """
        A new mailbox object on the same storage lists the same unique-ids and sizes.
        """
        self._requireHook("reopen")
        mailbox = await self._mailbox(list(CONTRACT_MESSAGES.values()))
        first = await self._list(mailbox)
        again = await self._hook("reopen", self.reopen(mailbox))
        self.assertEqual(await self._list(again), first)

    async def test_expungeRemovesExactlyTheNamed(self) -> None:
        """
        Expunging removes the named messages and leaves the others, with their unique-ids,
        sizes and contents unchanged.
        """
        messages = [b"Subject: %d\n\nbody %d\n" % (i, i) for i in range(5)]
        mailbox = await self._mailbox(messages)
        listing = await self._list(mailbox)
        await self._expunge(mailbox, [listing[1].uid, listing[3].uid])
        self.assertEqual(await self._list(mailbox), [listing[0], listing[2], listing[4]])
        self.assertEqual(
            await self._contents(mailbox),
            [canonicalForm(messages[0]), canonicalForm(messages[2]), canonicalForm(messages[4])],
        )

    async def test_expungeNothing(self) -> None:
        """
        Expunging no unique-ids changes nothing.
        """
        mailbox = await self._mailbox([CONTRACT_MESSAGES["lf"], CONTRACT_MESSAGES["crlf"]])
        listing = await self._list(mailbox)
        await self._expunge(mailbox, [])
        self.assertEqual(await self._list(mailbox), listing)

    async def test_expungeUnknownUid(self) -> None:
        """
        Expunging a unique-id that is not in the mailbox succeeds and removes nothing.
        """
        mailbox = await self._mailbox([CONTRACT_MESSAGES["lf"], CONTRACT_MESSAGES["crlf"]])
        listing = await self._list(mailbox)
        unknown = "pop3kit-contract-unknown-uid"
        self.assertNotIn(unknown, [info.uid for info in listing])
        await self._expunge(mailbox, [unknown])
        self.assertEqual(await self._list(mailbox), listing)

    async def test_expungeTwice(self) -> None:
        """
        Expunging a message that is already gone succeeds, and removes nothing else.
        """
        mailbox = await self._mailbox([CONTRACT_MESSAGES["lf"], CONTRACT_MESSAGES["crlf"]])
        first, second = await self._list(mailbox)
        await self._expunge(mailbox, [first.uid])
        await self._expunge(mailbox, [first.uid])
        self.assertEqual(await self._list(mailbox), [second])

    async def test_openExpunged(self) -> None:
        """
        Opening an expunged message fails with L{MessageUnavailable}.
        """
        mailbox = await self._mailbox([CONTRACT_MESSAGES["lf"], CONTRACT_MESSAGES["crlf"]])
        first, _ = await self._list(mailbox)
        await self._expunge(mailbox, [first.uid])
        d = mailbox.openMessage(first.uid)
        self.assertIsInstance(d, Deferred)
        await self.assertFailure(d, MessageUnavailable)

    async def test_snapshotUnaffectedByDelivery(self) -> None:
        """
        A message delivered after a listing does not change that listing, and the next
        listing shows it after the others.
        """
        self._requireHook("deliverMore")
        messages = [CONTRACT_MESSAGES["lf"], CONTRACT_MESSAGES["crlf"]]
        mailbox = await self._mailbox(messages)
        snapshot = await self._list(mailbox)
        before = list(snapshot)
        late = b"Subject: late\n\ndelivered after the listing\n"
        await self._hook("deliverMore", self.deliverMore(mailbox, late))
        self.assertEqual(snapshot, before)
        self.assertEqual(
            [canonicalForm(await self._read(mailbox, info.uid)) for info in snapshot],
            [canonicalForm(m) for m in messages],
        )
        after = await self._list(mailbox)
        self.assertEqual(after[:2], before)
        self.assertEqual(len(after), 3)
        self.assertNotIn(after[2].uid, [info.uid for info in before])
        self.assertEqual(after[2].size, wireSize(late))
        self.assertEqual(
            canonicalForm(await self._read(mailbox, after[2].uid)), canonicalForm(late)
        )


# ---------------------------------------------------------------------------------------
# An in-memory server session
# ---------------------------------------------------------------------------------------


class ConnectedServer:
    """
    One server session on a L{StringTransport}: send bytes, read what the server wrote.

    Streamed responses (RETR, TOP) are run to completion by L{read}, as a client reading at
    full speed would.  Time-based behaviour follows the clock given to the factory (use
    L{twisted.internet.task.Clock}).

    @ivar transport: The fake transport; C{transport.disconnecting} tells whether the server
        closed the connection.
    @ivar protocol: The server protocol.
    @ivar greeting: The greeting the server sent on connection.
    """

    def __init__(self, factory: ServerFactory, peerHost: str = "127.0.0.1") -> None:
        """
        @param factory: Builds the server protocol, typically a
            L{pop3kit.server.POP3ServerFactory}.
        @param peerHost: The client address the server sees.  The default, loopback,
            counts as secure under the default cleartext policy, so USER/PASS works
            without TLS; give a remote address to test the policy.
        """
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", peerHost, 40000))
        protocol = factory.buildProtocol(self.transport.getPeer())
        assert protocol is not None
        self.protocol = protocol
        self.protocol.makeConnection(self.transport)
        self.greeting = self.read()

    def read(self) -> bytes:
        """
        Everything the server wrote since the last read, letting streamed responses run.
        """
        out = b""
        while True:
            out += bytes(self.transport.value())
            self.transport.clear()
            producer = self.transport.producer
            if producer is None:
                return out
            producer.resumeProducing()

    def send(self, data: bytes) -> bytes:
        """
        Send C{data} (one or many command lines) and return the response.
        """
        self.protocol.dataReceived(data)
        return self.read()

    def login(self, user: bytes, password: bytes) -> bytes:
        """
        Log in with USER and PASS and return both responses.
        """
        return self.send(b"USER " + user + b"\r\nPASS " + password + b"\r\n")

    def drop(self) -> None:
        """
        Lose the connection abruptly, as a client crash would.
        """
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure

        self.protocol.connectionLost(Failure(ConnectionLost()))


# ---------------------------------------------------------------------------------------
# A client and a server joined in memory
# ---------------------------------------------------------------------------------------


class Stalled(Exception):
    """
    L{MemoryNetwork.run} moved every byte there was to move (and let time pass, if
    asked), and the work it runs is still waiting.
    """


class MemoryConnection:
    """
    One connection of a L{MemoryNetwork}: two protocols over two
    C{twisted.test.iosim.FakeTransport}s, joined by a C{twisted.test.iosim.IOPump}.

    @ivar client: The connecting side's protocol, as its factory built it (for a
        connection made with L{pop3kit.client.connect}, Twisted's wrapper around the
        L{POP3Client}).
    @ivar server: The server protocol.
    @ivar clientTransport: The client's transport.  Its C{abortConnection} drops the
        connection from the client's side at the next flush.
    @ivar serverTransport: The server's transport.  Its C{abortConnection} drops the
        connection from the server's side at the next flush, as a crash would.
    """

    def __init__(
        self,
        client: IProtocol,
        server: IProtocol,
        clientAddress: IPv4Address,
        serverAddress: IPv4Address,
        clock: MemoryReactorClock,
    ) -> None:
        self.client = client
        self.server = server
        self.clientTransport = iosim.FakeTransport(
            client, isServer=False, hostAddress=clientAddress, peerAddress=serverAddress
        )
        self.serverTransport = iosim.FakeTransport(
            server, isServer=True, hostAddress=serverAddress, peerAddress=clientAddress
        )
        self._pump = iosim.connect(
            server, self.serverTransport, client, self.clientTransport, greet=False, clock=clock
        )

    def pump(self) -> bool:
        """
        Move what each side wrote to the other once, and report a closed connection.

        @return: Whether anything moved.
        """
        return bool(self._pump.pump(advanceClock=False))


class MemoryNetwork:
    """
    POP3 servers and clients joined in memory over C{twisted.test.iosim}: no sockets, no
    threads, no global reactor.

    Servers listen on ports with L{listen}.  Clients connect with
    C{pop3kit.client.connect(network.reactor, host, port, ...)}, or any other code that
    calls C{connectTCP} on L{reactor}: every host name resolves to 127.0.0.1, and a port
    nobody listens on refuses the connection.  L{connectClient} gives a connected
    L{POP3Client} directly.  Bytes move only when L{flush} or L{run} says so, and time
    only when the clock is advanced (L{advance}, or L{run} with C{advance=True}).

    @ivar reactor: A L{MemoryReactorClock}: give it to the code under test as its reactor
        and to servers and clients as their clock.
    @ivar peerHost: The address the servers see the clients connect from.
    @ivar connections: Every connection made, oldest first.
    """

    def __init__(
        self, reactor: MemoryReactorClock | None = None, peerHost: str = "127.0.0.1"
    ) -> None:
        """
        @param reactor: The reactor to use; a new one by default.
        @param peerHost: The address the servers see the clients connect from.  The
            default, loopback, counts as secure under the servers' default cleartext
            policy, so USER/PASS works without TLS.
        """
        self.reactor = MemoryReactorClock() if reactor is None else reactor
        self.peerHost = peerHost
        self.connections: list[MemoryConnection] = []
        self._nextPort = 40000

    def listen(self, factory: IProtocolFactory, port: int = 110) -> None:
        """
        Let C{factory} accept the connections to C{port} (on any host name).
        """
        self.reactor.listenTCP(port, factory)

    def connectClient(self, port: int = 110, **clientOptions: Any) -> MemoryConnection:
        """
        Connect a new L{POP3Client} to the server on C{port}, and let it read the
        greeting.

        @param clientOptions: Keyword arguments for L{POP3Client}; its clock is
            L{reactor}, and it sends passwords without TLS unless
            C{allowCleartextLogin=False} is given.
        @raise ConnectionRefusedError: If nobody listens on C{port}.
        """
        clientOptions.setdefault("allowCleartextLogin", True)
        client = POP3Client(clock=self.reactor, **clientOptions)
        connection = self._join(client, port)
        if connection is None:
            raise ConnectionRefusedError(f"nothing listens on port {port}")
        self.flush()
        return connection

    def _serverFactory(self, port: int) -> IProtocolFactory | None:
        for listening, factory, _backlog, _interface in self.reactor.tcpServers:
            if listening == port:
                return factory
        return None

    def _join(self, client: IProtocol, port: int) -> MemoryConnection | None:
        factory = self._serverFactory(port)
        if factory is None:
            return None
        self._nextPort += 1
        clientAddress = IPv4Address("TCP", self.peerHost, self._nextPort)
        serverAddress = IPv4Address("TCP", "127.0.0.1", port)
        server = factory.buildProtocol(clientAddress)
        if server is None:
            return None
        connection = MemoryConnection(client, server, clientAddress, serverAddress, self.reactor)
        self.connections.append(connection)
        return connection

    def _completeConnections(self) -> bool:
        """
        Join the connections asked for with C{connectTCP} to their servers, or refuse
        them.
        """
        progress = False
        while self.reactor.tcpClients:
            _host, port, factory, _timeout, _bindAddress = self.reactor.tcpClients.pop(0)
            connector = self.reactor.connectors.pop(0)
            serverAddress = IPv4Address("TCP", "127.0.0.1", port)
            client = factory.buildProtocol(serverAddress)
            if client is None or self._join(client, port) is None:
                refused = ConnectionRefusedError(f"nothing listens on port {port}")
                factory.clientConnectionFailed(connector, Failure(refused))
            progress = True
        return progress

    def _step(self) -> bool:
        self.reactor.advance(0)
        progress = self._completeConnections()
        for connection in self.connections:
            progress = connection.pump() or progress
        return progress

    def flush(self) -> bool:
        """
        Move bytes between clients and servers, join new connections and run what is due
        now on the clock, until nothing more happens.  Time does not move.

        @return: Whether anything happened.
        """
        happened = False
        while self._step():
            happened = True
        return happened

    def advance(self, seconds: float) -> None:
        """
        Let C{seconds} pass on the clock, then L{flush}.
        """
        self.reactor.advance(seconds)
        self.flush()

    def _advanceToNextCall(self) -> bool:
        calls = self.reactor.getDelayedCalls()
        if not calls:
            return False
        due = min(call.getTime() for call in calls)
        self.reactor.advance(max(0.0, due - self.reactor.seconds()))
        return True

    def run(self, work: Deferred[_T] | Coroutine[Any, Any, _T], *, advance: bool = False) -> _T:
        """
        Run C{work} to its end: flush until it has fired, and return its result or raise
        its exception.  A L{Deferred} that raised L{Stalled} may be run again (after the
        test changed something, or with C{advance=True}).

        @param work: A L{Deferred}, or a coroutine (run with L{Deferred.fromCoroutine}).
        @param advance: When everything is flushed and C{work} still waits, move the
            clock to the next scheduled call (a time-out, a delay) and go on.  Without it,
            time stands still.
        @raise Stalled: If C{work} is still waiting when nothing more can happen.
        """
        d = work if isinstance(work, Deferred) else Deferred.fromCoroutine(work)
        outcome: list[object] = []

        def record(result: object) -> object:
            outcome.append(result)
            return result

        d.addBoth(record)
        while True:
            self.flush()
            if outcome or not advance or not self._advanceToNextCall():
                break
        if not outcome:
            hint = "" if advance else "; run(..., advance=True) lets time pass"
            raise Stalled(f"{work!r} is still waiting with nothing left to deliver{hint}")
        result = outcome[0]
        if isinstance(result, Failure):
            # Raised here, so handled: not to be logged again when collected.
            d.addErrback(lambda failure: None)
            result.raiseException()
        return cast(_T, result)


class ConnectedClient:
    """
    A real L{POP3Client} connected in memory to a real server session, greeting received:
    the client-side counterpart of L{ConnectedServer}.

    Drive the client through its L{Deferred} API and let L{run} deliver the bytes::

        pair = ConnectedClient(portal)
        pair.run(pair.client.login("alice", "secret"))
        message = pair.run(pair.client.retrieve(1))

    @ivar network: The L{MemoryNetwork} the two are joined by.
    @ivar clock: The network's L{MemoryReactorClock}: the client's clock, and the
        server's when a portal was given.
    @ivar client: The client.
    @ivar server: The server protocol.
    @ivar connection: The L{MemoryConnection}, for its transports.
    """

    def __init__(
        self,
        server: ServerFactory | Portal,
        *,
        clock: MemoryReactorClock | None = None,
        peerHost: str = "127.0.0.1",
        **clientOptions: Any,
    ) -> None:
        """
        @param server: A server factory, typically a L{POP3ServerFactory} made with
            C{clock=clock}; or a portal, for a L{POP3ServerFactory} with the default
            policy on L{clock}.
        @param clock: The clock of the client (and of the server made from a portal); a
            new L{MemoryReactorClock} by default.
        @param peerHost: The client address the server sees; see L{MemoryNetwork}.
        @param clientOptions: Keyword arguments for L{POP3Client} (C{timeout},
            C{maxPipeline}, ...); passwords go without TLS unless
            C{allowCleartextLogin=False} is given.
        """
        self.network = MemoryNetwork(clock, peerHost)
        self.clock = self.network.reactor
        factory = server
        if isinstance(server, Portal):
            factory = POP3ServerFactory(server, clock=self.clock)
        self.network.listen(cast(ServerFactory, factory))
        self.connection = self.network.connectClient(**clientOptions)
        self.client = cast(POP3Client, self.connection.client)
        self.server = self.connection.server

    def flush(self) -> bool:
        """
        Deliver everything both sides wrote; see L{MemoryNetwork.flush}.
        """
        return self.network.flush()

    def advance(self, seconds: float) -> None:
        """
        Let C{seconds} pass on the clock, then flush.
        """
        self.network.advance(seconds)

    def run(self, work: Deferred[_T] | Coroutine[Any, Any, _T], *, advance: bool = False) -> _T:
        """
        Flush until C{work} has fired; see L{MemoryNetwork.run}.
        """
        return self.network.run(work, advance=advance)
