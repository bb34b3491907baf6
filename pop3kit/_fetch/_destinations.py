# -*- test-case-name: tests.test_fetch -*-
"""
Where fetched messages go: a Maildir or an mbox file (L{Destination}), one message at a
time through a sink, made durable in batches.

A sink opens its file only when the message's first octets arrive (or when it is closed
empty), so a C{RETR} waiting in the client's queue holds no file, and a received message
holds no file descriptor while it waits for its batch (a Maildir sink closes its file; an
mbox sink keeps the message in memory up to L{SPOOL_IN_MEMORY} octets).  Durability goes
through a L{DiskSync} (C{fsync(2)} of each file and directory), which tests replace to
watch the order of events.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from pop3kit import _mboxfile
from pop3kit._exits import ExitError, ExitStatus, describeOSError
from pop3kit.backends import maildir as _maildir

__all__ = ["SPOOL_IN_MEMORY", "Destination", "DiskSync", "parseDestination"]

#: An mbox sink keeps a message in memory up to this many octets, and in a temporary file
#: beyond: a batch of many small messages then holds no file descriptors, and one of
#: large messages at most one per 1 MiB of its L{pop3kit._fetch.BATCH_OCTETS}.
SPOOL_IN_MEMORY = 1024 * 1024


class _Sink(Protocol):
    """
    One message being stored: written, closed (not yet durable), then made durable and
    visible together with others by L{Destination.commitBatch}, or aborted.
    """

    def write(self, data: bytes) -> None: ...

    def close(self, wireSize: int) -> None: ...

    def abort(self) -> None: ...


class _LFWriter:
    """
    Turn the CRLF line ends of a message received from the server into LF, as Unix mail
    stores keep them (a lone CR stays), across chunk boundaries, and pass it on to a sink.
    Counts the octets received.

    Chunks are gathered up to C{batchSize} octets before they are converted and written:
    TLS hands over a few kilobytes at a time, and one conversion and one write per batch
    cost far less than one per chunk.

    @ivar received: The octets received so far (CRLF form).
    """

    def __init__(self, sink: _Sink, batchSize: int = 256 * 1024) -> None:
        self._sink = sink
        self.batchSize = batchSize
        self._pendingCR = False
        self._chunks: list[bytes] = []
        self._gathered = 0
        self.received = 0

    def write(self, data: bytes) -> None:
        """
        Take the next chunk of the message.
        """
        if not data:
            return
        self.received += len(data)
        self._chunks.append(data)
        self._gathered += len(data)
        if self._gathered >= self.batchSize:
            self._flush()

    def _flush(self) -> None:
        data = b"".join(self._chunks)
        self._chunks = []
        self._gathered = 0
        if self._pendingCR:
            data = b"\r" + data
        self._pendingCR = data.endswith(b"\r")
        if self._pendingCR:
            data = data[:-1]
        if data:
            self._sink.write(data.replace(b"\r\n", b"\n"))

    def finish(self) -> None:
        """
        The message is complete: pass on what is gathered, and a final lone CR.
        """
        self._flush()
        if self._pendingCR:
            self._pendingCR = False
            self._sink.write(b"\r")


class DiskSync:
    """
    How stored messages are made durable.  L{Destination.commitBatch} calls these methods
    in the order that makes a message safe to delete on the server; tests give a subclass
    that records the calls.

    Each method raises L{OSError} when the data may not be on disk (C{EIO} from
    C{fsync(2)}: a write-back error), so that nothing is deleted on the server.  Unlike
    C{sync(2)}, which flushes every file system of the host and cannot report such errors,
    C{fsync(2)} of a file reports the write-back errors of that file, also through a
    descriptor opened after the data was written (Linux 4.16 and later report an error
    nobody has seen yet to the next opener).
    """

    def syncFile(self, path: str) -> None:
        """
        Write the data of the file at C{path} to disk (C{fsync(2)}).
        """
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def syncDirectory(self, path: str) -> None:
        """
        Make the entries of the directory at C{path} durable, where the platform allows
        (a platform that cannot sync directories is no error).
        """
        _maildir._syncDirectory(path)


class _MaildirSink:
    """
    A message streaming into a Maildir's C{tmp/} (the file is created on the first write,
    and closed when the message ends, so that only the message being received holds a
    file descriptor), linked into C{new/} by L{publish}.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._delivery: _maildir._Delivery | None = None
        self._wireSize = 0
        self._aborted = False

    def _opened(self) -> _maildir._Delivery:
        if self._delivery is None:
            self._delivery = _maildir._Delivery(self._path, create=False, countWireSize=False)
        return self._delivery

    @property
    def tmpPath(self) -> str:
        """
        The file in C{tmp/}.
        """
        return self._opened().tmpPath

    @property
    def newPath(self) -> str | None:
        """
        The file in C{new/}, once published.
        """
        return None if self._delivery is None else self._delivery.newPath

    def write(self, data: bytes) -> None:
        if self._aborted:
            # Octets that arrive after the fetch gave up: no file for them.
            return
        self._opened().write(data)

    def close(self, wireSize: int) -> None:
        self._opened().closeFile()
        self._wireSize = wireSize

    def publish(self) -> None:
        """
        Link the closed (and synced) file into C{new/}.  A file that cannot be removed
        from C{tmp/} afterwards is left for L{_maildir.cleanTmp}.
        """
        self._opened().publish(self._wireSize)

    def unpublish(self) -> None:
        """
        Take the message back out of C{new/} (its batch could not be made durable), if it
        was published; errors are ignored.
        """
        newPath = self.newPath
        if newPath is not None:
            with contextlib.suppress(OSError):
                os.unlink(newPath)

    def abort(self) -> None:
        self._aborted = True
        if self._delivery is not None:
            self._delivery.abort()


class _MboxSink:
    """
    A message streaming into a temporary file beside the mbox (created on the first
    write), quoted the mboxrd way as it comes, appended to the mbox by
    L{pop3kit._mboxfile.appendMessages}.
    """

    def __init__(self, path: str) -> None:
        self._directory = os.path.dirname(os.path.abspath(path)) or "."
        self._spool: IO[bytes] | None = None
        self._closed = False
        self._quoter = _mboxfile.quoter()
        self._length = 0
        self._last = b""

    def _opened(self) -> IO[bytes]:
        if self._spool is None:
            assert not self._closed, "the message is over"
            self._spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115
                max_size=SPOOL_IN_MEMORY, dir=self._directory
            )
        return self._spool

    def _put(self, quoted: bytes) -> None:
        spool = self._opened()
        if quoted:
            spool.write(quoted)
            self._length += len(quoted)
            self._last = quoted[-1:]

    def write(self, data: bytes) -> None:
        self._put(self._quoter.feed(data))

    def close(self, wireSize: int) -> None:
        self._put(self._quoter.flush())
        self._opened().flush()

    def outgoing(self) -> _mboxfile.OutgoingMessage:
        """
        The closed message, ready to append.
        """
        return _mboxfile.OutgoingMessage(
            _mboxfile.fromLine(), self._opened(), self._length, self._last
        )

    def abort(self) -> None:
        self._closed = True
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()


#: Seconds C{fetch} waits for another program to let go of an mbox's locks.
MBOX_LOCK_TIMEOUT = 60.0


@dataclass(frozen=True)
class Destination:
    """
    Where fetched messages go.

    @ivar kind: C{"maildir"} or C{"mbox"}.
    @ivar path: The Maildir directory or the mbox file, made absolute.
    @ivar sync: Makes stored messages durable.
    """

    kind: str
    path: str
    sync: DiskSync = field(default_factory=DiskSync, compare=False, repr=False)

    def open(self) -> _Sink:
        """
        Start storing one message.  No file is opened until its first octets are written.
        """
        if self.kind == "maildir":
            return _MaildirSink(self.path)
        return _MboxSink(self.path)

    def commitBatch(self, sinks: Sequence[_Sink]) -> None:
        """
        Store closed messages durably, in this order; blocking, run in a thread.

        Maildir: each file in C{tmp/} is synced (L{DiskSync.syncFile}), then C{tmp/},
        then each file is linked into C{new/}, and C{new/} is synced; if any of it fails,
        the messages linked are taken back out of C{new/} and the error raised.

        mbox: locked (a dot-lock, broken when stale, and C{fcntl}, as MTAs do), all
        appended at the end, all or nothing (see L{pop3kit._mboxfile.appendMessages}: a
        journal is written and synced, the messages are appended with C{From } lines in
        bodies quoted the mboxrd way, the file synced, the journal removed), unlocked;
        then its directory is synced.
        """
        if not sinks:
            return
        if self.kind == "maildir":
            self._commitMaildir(sinks)
        else:
            self._commitMbox(sinks)

    def _commitMaildir(self, sinks: Sequence[_Sink]) -> None:
        maildirSinks = [sink for sink in sinks if isinstance(sink, _MaildirSink)]
        assert len(maildirSinks) == len(sinks)
        for sink in maildirSinks:
            self.sync.syncFile(sink.tmpPath)
        self.sync.syncDirectory(os.path.join(self.path, "tmp"))
        try:
            for sink in maildirSinks:
                sink.publish()
            self.sync.syncDirectory(os.path.join(self.path, "new"))
        except BaseException:
            # Not known to be durable: take the batch back, so that the next run stores
            # it once.
            for sink in maildirSinks:
                sink.unpublish()
            raise

    def _commitMbox(self, sinks: Sequence[_Sink]) -> None:
        try:
            lock = _mboxfile.lockMbox(self.path, timeout=MBOX_LOCK_TIMEOUT, create=True)
        except _mboxfile.LockBusy:
            raise ExitError(
                f"{self.path} stayed locked by another program for {MBOX_LOCK_TIMEOUT:.0f} s: "
                "nothing more was stored; run again later",
                ExitStatus.TEMPFAIL,
            ) from None
        with lock:
            outgoing = []
            for sink in sinks:
                assert isinstance(sink, _MboxSink)
                outgoing.append(sink.outgoing())
            size = os.fstat(lock.fd).st_size
            _mboxfile.appendMessages(lock, outgoing, self.sync)
            try:
                # Under the locks: if the directory (the journal's removal) cannot be
                # made durable, the batch is cut back, so the next run stores it once.
                self.sync.syncDirectory(os.path.dirname(self.path))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(lock.fd, size)
                    self.sync.syncFile(self.path)
                raise
        for sink in sinks:
            sink.abort()

    def check(self) -> None:
        """
        Create the destination if missing, and check that it can be written: before
        connecting, so a typo costs no download.  In a Maildir, remove the files that a
        crash left in C{tmp/} 36 hours ago or more.

        @raise ExitError: With L{ExitStatus.CANTCREAT}.
        """
        try:
            if self.kind == "maildir":
                for sub in ("tmp", "new", "cur"):
                    os.makedirs(os.path.join(self.path, sub), mode=0o700, exist_ok=True)
                if not os.access(os.path.join(self.path, "tmp"), os.W_OK | os.X_OK):
                    raise PermissionError(errno.EACCES, "not writable", self.path)
                # Files an earlier, killed run left in tmp/, once 36 hours old.
                with contextlib.suppress(OSError):
                    _maildir.cleanTmp(self.path)
            else:
                parent = os.path.dirname(self.path) or "."
                os.makedirs(parent, mode=0o700, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.close(fd)
        except OSError as e:
            raise ExitError(
                f"cannot use {self.kind}:{self.path}: {describeOSError(e)}", ExitStatus.CANTCREAT
            ) from None


def parseDestination(text: str, sync: DiskSync | None = None) -> Destination:
    """
    Parse C{maildir:DIR} or C{mbox:FILE}.

    @param sync: Makes stored messages durable; a L{DiskSync} by default.
    @raise ExitError: With L{ExitStatus.USAGE}.
    """
    kind, sep, path = text.partition(":")
    kind = kind.lower()
    if not sep or kind not in ("maildir", "mbox") or not path:
        raise ExitError(
            f"invalid destination {text!r}: use maildir:DIR or mbox:FILE", ExitStatus.USAGE
        )
    return Destination(
        kind, os.path.abspath(os.path.expanduser(path)), DiskSync() if sync is None else sync
    )
