# -*- test-case-name: tests.test_fetch -*-
"""
Where fetched messages go: a Maildir or an mbox file (L{Destination}), one message at a
time through a sink, made durable in batches.

A sink opens its file only when the message's first octets arrive (or when it is closed
empty), so a C{RETR} waiting in the client's queue holds no file.  Durability goes through
a L{DiskSync}, which tests replace to watch the order of events.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from pop3kit import _mboxfile
from pop3kit._exits import ExitError, ExitStatus, describeOSError
from pop3kit.backends import maildir as _maildir

__all__ = ["Destination", "DiskSync", "parseDestination"]


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
    """

    def syncAll(self) -> None:
        """
        Write every file system's dirty data to disk (C{sync(2)}): one journal commit for
        a whole batch of files, rather than one per file.
        """
        os.sync()

    def syncFile(self, path: str) -> None:
        """
        Write the data of the file at C{path} to disk (C{fsync(2)}).
        """
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def syncDirectory(self, path: str) -> None:
        """
        Make the entries of the directory at C{path} durable, where the platform allows.
        """
        _maildir._syncDirectory(path)


class _MaildirSink:
    """
    A message streaming into a Maildir's C{tmp/} (the file is created on the first write),
    linked into C{new/} by L{publish}.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._delivery: _maildir._Delivery | None = None
        self._wireSize = 0

    def _opened(self) -> _maildir._Delivery:
        if self._delivery is None:
            self._delivery = _maildir._Delivery(self._path, create=False, countWireSize=False)
        return self._delivery

    def write(self, data: bytes) -> None:
        self._opened().write(data)

    def close(self, wireSize: int) -> None:
        self._opened().closeFile()
        self._wireSize = wireSize

    def publish(self) -> None:
        """
        Link the closed (and synced) file into C{new/}.
        """
        self._opened().publish(self._wireSize)

    def abort(self) -> None:
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
            self._spool = tempfile.TemporaryFile(dir=self._directory)  # noqa: SIM115
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

        Maildir: one L{DiskSync.syncAll} for all the files in C{tmp/}, then each is linked
        into C{new/}, and C{new/} is synced.  mbox: locked (a dot-lock, broken when
        stale, and C{fcntl}, as MTAs do), all appended at the end, all or nothing (see
        L{pop3kit._mboxfile.appendMessages}: a journal is written and synced, the
        messages are appended with C{From } lines in bodies quoted the mboxrd way, the
        file synced, the journal removed), unlocked; then its directory is synced.
        """
        if not sinks:
            return
        if self.kind == "maildir":
            self._commitMaildir(sinks)
        else:
            self._commitMbox(sinks)

    def _commitMaildir(self, sinks: Sequence[_Sink]) -> None:
        self.sync.syncAll()
        for sink in sinks:
            assert isinstance(sink, _MaildirSink)
            sink.publish()
        self.sync.syncDirectory(os.path.join(self.path, "new"))

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
            _mboxfile.appendMessages(lock, outgoing, self.sync)
        self.sync.syncDirectory(os.path.dirname(self.path))
        for sink in sinks:
            sink.abort()

    def check(self) -> None:
        """
        Create the destination if missing, and check that it can be written: before
        connecting, so a typo costs no download.

        @raise ExitError: With L{ExitStatus.CANTCREAT}.
        """
        try:
            if self.kind == "maildir":
                for sub in ("tmp", "new", "cur"):
                    os.makedirs(os.path.join(self.path, sub), mode=0o700, exist_ok=True)
                if not os.access(os.path.join(self.path, "tmp"), os.W_OK | os.X_OK):
                    raise PermissionError(errno.EACCES, "not writable", self.path)
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
