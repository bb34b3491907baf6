# -*- test-case-name: tests.test_fetch -*-
"""
C{pop3kit fetch}: download the messages of a maildrop into a Maildir or an mbox file.

L{fetch} opens the session and hands it to a L{Fetcher}, whose steps are named after
what they do.  Every C{RETR} is queued with the client at once: the client's pipelining
window bounds what is in flight, and a message's file is opened only when its first
octets arrive.

Safety rules, in order of importance:
  1. A message is deleted on the server (with C{--delete}) only after its local copy has
     been written, synced to disk and (for a Maildir) linked into C{new/}; deletions take
     effect only on a successful C{QUIT}, so a lost connection deletes nothing.
  2. Every message delivered is recorded at once in the state file (appended, so a killed
     process loses no record), and the state file is rewritten atomically at the end.
  3. A message that was only partly received is never delivered: its temporary file is
     removed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from pop3kit._exits import ExitError, ExitStatus, describeOSError
from pop3kit._fetch._account import Account, ConnectOptions
from pop3kit._fetch._destinations import (
    Destination,
    DiskSync,
    _LFWriter,
    _Sink,
    parseDestination,
)
from pop3kit._fetch._failures import Activity, describeFailure
from pop3kit._fetch._progress import Progress
from pop3kit._fetch._run import RunInThread, inThreadPool
from pop3kit._fetch._session import Connector, abortSession, closeSession, openSession
from pop3kit._fetch._state import StateFile, defaultStatePath
from pop3kit.client import POP3Client, ServerError, connect

__all__ = ["BATCH_MESSAGES", "BATCH_OCTETS", "FetchOptions", "FetchResult", "Fetcher", "fetch"]

#: Received messages are made durable in batches (one sync each): at most this many
#: messages or octets per batch.  A batch is also committed when no RETR is waiting.
BATCH_MESSAGES = 1000
BATCH_OCTETS = 64 * 1024 * 1024


@dataclass(frozen=True)
class FetchOptions:
    """
    What C{pop3kit fetch} was asked to do.

    @ivar destination: C{maildir:DIR} or C{mbox:FILE}.
    @ivar delete: Delete each message on the server once it is stored (C{--delete});
        otherwise keep them all there (C{--keep}, the default).
    @ivar sinceLast: Skip the messages whose UIDL is in the state file.  Always on with
        C{--keep}; with C{--delete}, those messages are then deleted without being
        downloaded again.
    @ivar stateFile: The state file, or L{None} for the default (see
        L{pop3kit._fetch.defaultStatePath}).
    @ivar connect: How to reach and log in to the server.
    """

    destination: str
    delete: bool = False
    sinceLast: bool = False
    stateFile: str | None = None
    connect: ConnectOptions = field(default_factory=ConnectOptions)


@dataclass
class FetchResult:
    """
    What a fetch did.

    @ivar fetched: Messages downloaded and stored.
    @ivar skipped: Messages not downloaded because the state file lists them.
    @ivar deleted: Messages deleted on the server (after a successful QUIT).
    @ivar octets: Octets downloaded (CRLF form).
    """

    fetched: int = 0
    skipped: int = 0
    deleted: int = 0
    octets: int = 0


@dataclass
class _Retrieval:
    """
    One message on its way: its C{RETR}, and where its octets go.
    """

    number: int
    uid: str | None
    writer: _LFWriter
    sink: _Sink
    done: Deferred[int]


class _Batch:
    """
    Messages received and closed, waiting to be made durable together.
    """

    def __init__(self) -> None:
        self.retrievals: list[_Retrieval] = []
        self.octets = 0

    def __bool__(self) -> bool:
        return bool(self.retrievals)

    def add(self, retrieval: _Retrieval) -> None:
        self.retrievals.append(retrieval)
        self.octets += retrieval.writer.received

    def isFull(self, maxMessages: int, maxOctets: int) -> bool:
        return len(self.retrievals) >= maxMessages or self.octets >= maxOctets


def _ignore(reason: object) -> None:
    return None


def _shielded(d: Deferred[None]) -> Deferred[None]:
    """
    A L{Deferred} that fires with C{d}'s result; cancelling it does not cancel C{d} (a
    call running in a thread cannot be stopped half-way).
    """
    mirror: Deferred[None] = Deferred()

    def passOn(result: object) -> None:
        if not mirror.called:
            if isinstance(result, Failure):
                mirror.errback(result)
            else:
                mirror.callback(None)

    d.addBoth(passOn)
    return mirror


class Fetcher:
    """
    One run of C{pop3kit fetch} over a session that is logged in, in steps:
    L{listMessages}, L{chooseMessages}, L{download} (which stores each batch with
    L{commitBatch}, which records it and, with C{--delete}, has it deleted with
    L{deleteStored}), and L{finish}.  L{run} takes them in turn; on any failure it drops
    the connection without C{QUIT}, so nothing is deleted, and removes what was not
    stored.

    @ivar result: What was done so far.
    @ivar sizes: The size of each message, by number, once listed.
    @ivar uids: The UIDL of each message, by number, once listed; L{None} if the server
        has no UIDL.
    """

    def __init__(
        self,
        client: POP3Client,
        account: Account,
        options: FetchOptions,
        destination: Destination,
        state: StateFile,
        *,
        runInThread: RunInThread,
        progress: Progress | None = None,
        warnings: TextIO | None = None,
        batchMessages: int = BATCH_MESSAGES,
        batchOctets: int = BATCH_OCTETS,
    ) -> None:
        """
        @param client: The session, logged in.
        @param destination: Where the messages go, checked.
        @param state: The state file, loaded.
        @param runInThread: Runs a blocking call (the durable commit of a batch) in a
            thread, and gives its result as a L{Deferred}.
        @param progress: Shows the progress, if given.
        @param warnings: Where warnings go: standard error by default.
        @param batchMessages: At most this many messages are made durable together.
        @param batchOctets: At most (about) this many octets are made durable together.
        """
        self.client = client
        self.account = account
        self.options = options
        self.destination = destination
        self.state = state
        self.result = FetchResult()
        self.sizes: dict[int, int] = {}
        self.uids: dict[int, str] | None = None
        self._runInThread = runInThread
        self._progress = progress
        self._warnings = sys.stderr if warnings is None else warnings
        self._batchMessages = batchMessages
        self._batchOctets = batchOctets
        self._queued: deque[_Retrieval] = deque()
        self._unstored: dict[int, _Retrieval] = {}
        self._committing: Deferred[None] | None = None
        self._deletions: list[Deferred[None]] = []
        self._failed = False
        self._wanted = 0

    async def run(self) -> FetchResult:
        """
        Take every step.

        @raise ExitError: On any failure, with the exit status to end with.  Messages
            stored before the failure stay stored and recorded.
        """
        try:
            await self.listMessages()
            await self.download(self.chooseMessages())
            await self.finish()
            return self.result
        except BaseException:
            self.abandon()
            raise
        finally:
            await self.cleanUp()
            if self._failed:
                self._tellWhatWasStored()

    async def listMessages(self) -> None:
        """
        Ask for the size (LIST) and the UIDL of every message.  A server without UIDL gets
        a warning: its messages cannot be told apart between runs.
        """
        try:
            self.sizes = await self.client.listSizes()
            self.uids = await self._listUids()
        except Exception as e:
            raise describeFailure(e, self.account, Activity.LISTING) from None

    async def _listUids(self) -> dict[int, str] | None:
        try:
            return dict(await self.client.listUids())
        except ServerError:
            self._warnings.write(
                f"pop3kit: warning: {self.account.host} has no UIDL; "
                "messages cannot be told apart between runs\n"
            )
            return None

    def _uid(self, number: int) -> str | None:
        return None if self.uids is None else self.uids.get(number)

    def chooseMessages(self) -> list[int]:
        """
        The messages to download, in order: all of them, except those the state file
        lists (they were stored by an earlier run, perhaps one that was interrupted: a
        rerun never stores them twice).  With C{--delete}, those are deleted at once.
        """
        skipOld = self.uids is not None
        wanted: list[int] = []
        alreadyStored: list[int] = []
        for number in sorted(self.sizes):
            stored = skipOld and self._uid(number) in self.state.uids
            (alreadyStored if stored else wanted).append(number)
        self.result.skipped = len(alreadyStored)
        self._wanted = len(wanted)
        if self._progress is not None:
            self._progress.total = len(wanted)
            self._progress.totalOctets = sum(self.sizes[n] for n in wanted)
            self._progress.update(0, 0, force=True)
        if self.options.delete:
            self._deletions.extend(self.client.delete(number) for number in alreadyStored)
        return wanted

    async def download(self, numbers: Sequence[int]) -> None:
        """
        Ask the client for C{RETR} of each of C{numbers}, store each message as it arrives,
        and make them durable in batches with L{commitBatch}: a batch is committed when it
        is full or no C{RETR} is left, while the next messages keep arriving.

        The client gets as many C{RETR}s at a time as it pipelines (its C{maxPipeline}):
        its window is the only one, and a maildrop of any size costs the same memory.
        """
        waiting = deque(numbers)
        self._handOver(waiting)
        batch = _Batch()
        while self._queued or batch:
            if self._queued:
                batch.add(await self._receive())
                self._handOver(waiting)
            if batch and (not self._queued or batch.isFull(self._batchMessages, self._batchOctets)):
                batch = await self._commitWhenFree(batch)
        await self._commitDone()

    def _handOver(self, waiting: deque[int]) -> None:
        """
        Ask for the next messages of C{waiting} until the client has as many C{RETR}s as
        it pipelines; more would only wait in its queue.
        """
        while waiting and len(self._queued) < self.client.maxPipeline:
            self._queued.append(self._retrieve(waiting.popleft()))

    def _retrieve(self, number: int) -> _Retrieval:
        sink = self.destination.open()
        writer = _LFWriter(sink)
        done = self.client.retrieve(number, cast(BinaryIO, writer))
        retrieval = _Retrieval(number, self._uid(number), writer, sink, done)
        self._unstored[number] = retrieval
        return retrieval

    async def _receive(self) -> _Retrieval:
        """
        Wait for the next message to be received, and close its file.
        """
        retrieval = self._queued[0]
        try:
            await retrieval.done
        except Exception as e:
            raise describeFailure(e, self.account, Activity.DOWNLOADING) from None
        self._queued.popleft()
        try:
            retrieval.writer.finish()
            retrieval.sink.close(retrieval.writer.received)
        except OSError as e:
            raise ExitError(
                f"cannot store message {retrieval.number}: {describeOSError(e)}",
                ExitStatus.CANTCREAT,
            ) from None
        return retrieval

    async def _commitWhenFree(self, batch: _Batch) -> _Batch:
        """
        Start committing C{batch} unless a commit is under way, and return the batch to
        fill next.  While a commit runs, the batch keeps growing if messages are still
        coming; otherwise the commit is waited for.
        """
        if self._committing is not None and not self._committing.called and self._queued:
            return batch
        await self._commitDone()
        self._committing = Deferred.fromCoroutine(self.commitBatch(batch.retrievals))
        return _Batch()

    async def _commitDone(self) -> None:
        """
        Wait for the commit under way, if any, and raise its failure.
        """
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing

    async def commitBatch(self, retrievals: Sequence[_Retrieval]) -> None:
        """
        Make C{retrievals} durable (see L{Destination.commitBatch}), then record their
        UIDLs durably in the state file (L{StateFile.recordAll}), both in a thread; then,
        with C{--delete}, have them deleted.
        """
        sinks = [retrieval.sink for retrieval in retrievals]
        uids = [retrieval.uid for retrieval in retrievals if retrieval.uid is not None]
        stored = False

        def commit() -> None:
            nonlocal stored
            try:
                self.destination.commitBatch(sinks)
            except OSError as e:
                raise ExitError(
                    f"cannot store messages in {self.destination.kind}:"
                    f"{self.destination.path}: {describeOSError(e)}",
                    ExitStatus.CANTCREAT,
                ) from None
            stored = True
            try:
                self.state.recordAll(uids)
            except OSError as e:
                raise ExitError(
                    f"cannot write the state file: {describeOSError(e)}", ExitStatus.CANTCREAT
                ) from None

        working = self._runInThread(commit)
        try:
            try:
                await _shielded(working)
            except CancelledError:
                # Interrupted: the commit runs on in its thread; wait for it, so that what
                # it stores is recorded and not removed as unstored.
                with contextlib.suppress(Exception):
                    await _shielded(working)
                raise
        finally:
            # Stored, even if the state file could not be written: the clean-up must not
            # remove them.
            if stored:
                for retrieval in retrievals:
                    del self._unstored[retrieval.number]
                    self.result.fetched += 1
                    self.result.octets += retrieval.writer.received
        self.deleteStored(retrievals)
        if self._progress is not None:
            self._progress.update(self.result.fetched, self.result.octets)

    def deleteStored(self, retrievals: Sequence[_Retrieval]) -> None:
        """
        With C{--delete}, send C{DELE} for C{retrievals}, which are stored durably.
        """
        if self.options.delete:
            self._deletions.extend(self.client.delete(r.number) for r in retrievals)

    async def finish(self) -> None:
        """
        Wait for the deletions, C{QUIT} (which makes them take effect), and rewrite the
        state file with only the UIDLs still on the server.
        """
        await closeSession(self.client, self.account, self._deletions)
        if self.options.delete:
            self.result.deleted = len(self._deletions)
        self._saveState()

    def _saveState(self) -> None:
        """
        Forget what is no longer on the server (deleted now, or by someone else).
        """
        if self.uids is None:
            return
        onServer = set() if self.options.delete else set(self.uids.values())
        try:
            self.state.save(self.state.uids & onServer)
        except OSError as e:
            raise ExitError(
                f"cannot write the state file: {describeOSError(e)}", ExitStatus.CANTCREAT
            ) from None

    def abandon(self) -> None:
        """
        Something failed: drop the connection without C{QUIT}, so nothing is deleted.
        """
        self._failed = True
        abortSession(self.client)
        self._silencePending()

    def _tellWhatWasStored(self) -> None:
        """
        After a failure or an interrupt: say how many of the messages to download were
        stored (and recorded, so the next run does not download them again) and that
        none was deleted.
        """
        fetched = self.result.fetched
        if not fetched:
            return
        where = f"{self.destination.kind}:{self.destination.path}"
        line = f"pop3kit: {fetched} of {self._wanted} messages were stored in {where}"
        if self.uids is not None:
            line += f" and recorded in {self.state.path}"
        if self.options.delete:
            line += (
                "; none was deleted on the server: the same command again deletes them "
                "there without downloading them again"
            )
        elif self.uids is not None:
            line += ": the same command again fetches only the others"
        self._warnings.write(line + "\n")

    def _silencePending(self) -> None:
        # Commands still waiting fail with the lost connection: nobody wants to know.
        for deletion in self._deletions:
            deletion.addErrback(_ignore)
        for retrieval in self._queued:
            retrieval.done.addErrback(_ignore)

    async def cleanUp(self) -> None:
        """
        After success or failure: let a commit under way finish, remove what was not
        stored, close the state file and end the progress display.
        """
        with contextlib.suppress(Exception):
            await self._commitDone()
        # A commit that finished after a failure may have sent more DELEs.
        self._silencePending()
        for retrieval in self._unstored.values():
            with contextlib.suppress(OSError):
                retrieval.sink.abort()
        self.state.close()
        if self._progress is not None:
            if self.result.fetched:
                self._progress.update(self.result.fetched, self.result.octets, force=True)
            self._progress.finish()


async def fetch(
    reactor: Any,
    account: Account,
    options: FetchOptions,
    password: str,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    *,
    connector: Connector = connect,
    runInThread: RunInThread | None = None,
    sync: DiskSync | None = None,
    warnings: TextIO | None = None,
    batchMessages: int = BATCH_MESSAGES,
) -> FetchResult:
    """
    Download the messages of C{account} into C{options.destination}.

    @param reactor: Given to C{connector}; its thread pool runs the durable commits
        unless C{runInThread} is given.
    @param environ: The environment, for the default state file; C{os.environ} by default.
    @param progress: Shows the progress, if given.
    @param connector: Connects and negotiates TLS: L{pop3kit.client.connect} by default.
    @param runInThread: Runs a blocking call in a thread (see L{Fetcher}).
    @param sync: Makes stored messages durable; a L{DiskSync} by default.
    @param warnings: Where warnings go: standard error by default.
    @param batchMessages: At most this many messages are made durable together.
    @raise ExitError: On any failure, with the exit status to end with.  Messages stored
        before the failure stay stored and recorded.
    """
    environ = os.environ if environ is None else environ
    destination = parseDestination(options.destination, sync)
    destination.check()
    statePath = options.stateFile or defaultStatePath(account, destination, environ)
    state = StateFile(os.path.abspath(os.path.expanduser(statePath)))
    state.load()
    client = await openSession(reactor, account, options.connect, password, connector=connector)
    fetcher = Fetcher(
        client,
        account,
        options,
        destination,
        state,
        runInThread=inThreadPool(reactor) if runInThread is None else runInThread,
        progress=progress,
        warnings=warnings,
        batchMessages=batchMessages,
    )
    return await fetcher.run()
