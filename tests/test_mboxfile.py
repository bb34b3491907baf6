"""
Tests for L{pop3kit._mboxfile}: quoting, locking, and the crash proofs of appending and
rewriting (a process killed at each step, a write torn at each octet, an I/O error at
each step).

The kills are real: a forked child runs the operation and ends itself with C{os._exit}
at the chosen step (see L{pop3kit._mboxfile.Checkpoint}), so no clean-up code runs, its
C{fcntl} lock goes with it and its dot-lock stays behind, as after C{kill -9}.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pop3kit import _mboxfile
from pop3kit._mboxfile import LockBusy, lockMbox, outgoing, tryLockMbox
from pop3kit.core._dotstuff import canonicalForm
from tests._tools import requireTool


def deadPid() -> int:
    """
    The id of a process that has ended.
    """
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def contents(path: str) -> list[bytes]:
    """
    The messages of the mbox C{path} as read back, in canonical form.
    """
    return [canonicalForm(m) for m in _mboxfile.iterMessages(path)]


def canonical(messages: list[bytes]) -> list[bytes]:
    """
    The canonical forms of C{messages}.
    """
    return [canonicalForm(m) for m in messages]


def readBytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def writeBytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


class _Killed(Exception):
    """
    Raised by a checkpoint in the parent process to count the steps.
    """


def countSteps(run: Callable[[_mboxfile.Checkpoint], None]) -> list[str]:
    """
    The steps C{run} passes through, in order.
    """
    steps: list[str] = []
    run(steps.append)
    return steps


def killAt(run: Callable[[_mboxfile.Checkpoint], None], step: int) -> None:
    """
    Run C{run} in a forked child that ends itself (C{os._exit}) when it reaches the
    step numbered C{step}, or once C{run} returns if it has fewer steps.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            seen = 0

            def checkpoint(name: str) -> None:
                nonlocal seen
                if seen == step:
                    os._exit(0)
                seen += 1

            run(checkpoint)
            os._exit(0)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child was not killed at its step"


def failAt(step: int, error: int = errno.EIO) -> _mboxfile.Checkpoint:
    """
    A checkpoint that raises an C{OSError} at the step numbered C{step}.
    """
    seen = 0

    def checkpoint(name: str) -> None:
        nonlocal seen
        if seen == step:
            raise OSError(error, os.strerror(error))
        seen += 1

    return checkpoint


class QuotingTests(SynchronousTestCase):
    """
    The streaming mboxrd quoter and unquoter.
    """

    @given(
        st.lists(
            st.sampled_from([b"From ", b">", b"From", b"\n", b"x", b"\r\n", b" "]), max_size=40
        ),
        st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=10),
    )
    def test_anyChunking(self, pieces: list[bytes], sizes: list[int]) -> None:
        """
        Quoting then unquoting, fed in any chunks, gives the message back; quoted, no line
        starts with C{From }.
        """
        message = b"".join(pieces)
        quoter = _mboxfile.quoter()
        quoted = b""
        position = 0
        index = 0
        while position < len(message):
            size = sizes[index % len(sizes)]
            quoted += quoter.feed(message[position : position + size])
            position += size
            index += 1
        quoted += quoter.flush()
        self.assertEqual(quoted, _mboxfile.quoteMessage(message))
        self.assertFalse(quoted.startswith(b"From ") or b"\nFrom " in quoted)
        unquoter = _mboxfile.unquoter()
        back = b"".join(unquoter.feed(quoted[i : i + 3]) for i in range(0, len(quoted), 3))
        self.assertEqual(back + unquoter.flush(), message)


class LockTests(SynchronousTestCase):
    """
    The dot-lock and the C{fcntl} lock.
    """

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        writeBytes(self.path, b"")

    def writeLock(self, content: str, age: float = 0) -> None:
        with open(self.path + ".lock", "w") as f:
            f.write(content)
        if age:
            stamp = os.stat(self.path + ".lock").st_mtime - age
            os.utime(self.path + ".lock", (stamp, stamp))

    def test_heldThenReleased(self) -> None:
        """
        The dot-lock exists while the lock is held, and is gone after.
        """
        with tryLockMbox(self.path):
            content = readBytes(self.path + ".lock")
            self.assertEqual(content, f"{os.getpid()}:{os.uname().nodename}\n".encode())
            self.assertRaises(LockBusy, tryLockMbox, self.path)
        self.assertEqual(os.listdir(os.path.dirname(self.path)), [os.path.basename(self.path)])

    def test_releaseFailureIsAWarning(self) -> None:
        """
        A dot-lock that cannot be removed when the work under the lock is done is a
        warning, not an error (a delivery would be retried and stored twice); the lock
        is no longer counted as held, so that it is broken as stale.
        """
        lock = tryLockMbox(self.path)
        os.unlink(self.path + ".lock")
        os.mkdir(self.path + ".lock")  # unlink() of it fails, even for root
        writeBytes(os.path.join(self.path + ".lock", "x"), b"")
        lock.release()
        self.assertEqual(lock.fd, -1)
        self.assertNotIn(self.path + ".lock", _mboxfile._HELD)

    def test_closeFailureIsAWarning(self) -> None:
        """
        An error closing the file when the lock is released is a warning; the dot-lock
        is removed all the same.
        """
        lock = tryLockMbox(self.path)
        os.close(lock.fd)  # so that close() fails with EBADF
        lock.release()
        self.assertEqual(lock.fd, -1)
        self.assertFalse(os.path.exists(self.path + ".lock"))

    def test_deadOwnerIsStale(self) -> None:
        """
        A dot-lock naming a dead process of this host is broken.
        """
        self.writeLock(f"{deadPid()}:{os.uname().nodename}\n")
        tryLockMbox(self.path).release()
        self.assertFalse(os.path.exists(self.path + ".lock"))

    def test_liveOwnerIsNot(self) -> None:
        """
        A fresh dot-lock naming a live process, or a process of another host, or nobody,
        is respected.
        """
        for content in (f"1:{os.uname().nodename}\n", f"{deadPid()}:elsewhere\n", "", "0"):
            self.writeLock(content)
            self.assertRaises(LockBusy, tryLockMbox, self.path)
        self.assertTrue(os.path.exists(self.path + ".lock"))

    def test_oldIsStale(self) -> None:
        """
        A dot-lock older than the stale time is broken, whoever holds it.
        """
        self.writeLock("1:elsewhere\n", age=_mboxfile.STALE_AFTER + 10)
        tryLockMbox(self.path).release()

    def test_ownPidNotHeldIsStale(self) -> None:
        """
        A dot-lock naming this process, which this process does not hold, was left by
        an earlier process with the same id.
        """
        self.writeLock(f"{os.getpid()}:{os.uname().nodename}\n")
        tryLockMbox(self.path).release()

    def test_fcntlHeldElsewhere(self) -> None:
        """
        A classic C{fcntl} lock held by another process makes the lock busy; the
        dot-lock taken meanwhile is removed.
        """
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl, sys\n"
                f"f = open({self.path!r}, 'r+')\n"
                "fcntl.lockf(f, fcntl.LOCK_EX)\n"
                "print('locked', flush=True)\n"
                "sys.stdin.read()\n",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert holder.stdout is not None
            self.assertEqual(holder.stdout.readline(), b"locked\n")
            self.assertRaises(LockBusy, tryLockMbox, self.path)
            self.assertFalse(os.path.exists(self.path + ".lock"))
            slept: list[float] = []
            self.assertRaises(LockBusy, lockMbox, self.path, timeout=0.2, sleep=slept.append)
            self.assertTrue(slept)
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait()
        tryLockMbox(self.path).release()

    def test_closingAnotherDescriptorKeepsLock(self) -> None:
        """
        Closing another descriptor of the file in the same process (a message read and
        closed, say) does not drop the C{fcntl} lock, as it would a classic C{lockf}
        lock: another process still finds the file locked.
        """
        probe = (
            "import fcntl, sys\n"
            f"f = open({self.path!r}, 'r+')\n"
            "try:\n"
            "    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
            "except OSError:\n"
            "    sys.exit(3)\n"
        )
        with tryLockMbox(self.path):
            os.close(os.open(self.path, os.O_RDONLY))
            found = subprocess.run([sys.executable, "-c", probe], check=False)
            self.assertEqual(found.returncode, 3)
        found = subprocess.run([sys.executable, "-c", probe], check=False)
        self.assertEqual(found.returncode, 0)

    def test_replacedWhileLocking(self) -> None:
        """
        The lock is on the file the path names once locked.
        """
        with tryLockMbox(self.path) as lock:
            self.assertEqual(os.fstat(lock.fd).st_ino, os.stat(self.path).st_ino)


BEFORE = [b"Subject: one\n\nfirst\n", b"Subject: two\n\nFrom the second\n"]
BATCH = [b"Subject: three\n\nthird", b"Subject: four\r\n\r\n>From four\r\n", b""]


class AppendCrashTests(SynchronousTestCase):
    """
    An append is all or nothing, whatever happens to the writer.
    """

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        with lockMbox(self.path, create=True) as lock:
            _mboxfile.appendMessages(lock, outgoing(BEFORE))
        self.before = readBytes(self.path)

    def append(self, checkpoint: _mboxfile.Checkpoint) -> None:
        with lockMbox(self.path, create=True, checkpoint=checkpoint) as lock:
            _mboxfile.appendMessages(lock, outgoing(BATCH), checkpoint=checkpoint)

    def assertRecovered(self, allowed: list[list[bytes]]) -> None:
        """
        The next lock succeeds, and the file then holds one of C{allowed}, with no lock
        or journal left after.
        """
        with lockMbox(self.path, timeout=0):
            self.assertIn(contents(self.path), [canonical(a) for a in allowed])
        self.assertEqual(os.listdir(os.path.dirname(self.path)), [os.path.basename(self.path)])

    def test_killedAtEveryStep(self) -> None:
        """
        Killed at any step until its journal is removed (even with the batch written
        and synced: it was not reported stored), the writer leaves the old messages
        once the next lock has broken its stale dot-lock and cut the batch off; after,
        all of them.
        """
        steps = countSteps(self.append)
        self.assertEqual((steps[0], steps[-1]), ("journal", "unjournal"))
        for step in range(len(steps)):
            writeBytes(self.path, self.before)
            killAt(self.append, step)
            self.assertTrue(os.path.exists(self.path + ".lock"), steps[step])
            self.assertRecovered([BEFORE])
        writeBytes(self.path, self.before)
        killAt(self.append, len(steps))
        self.assertRecovered([BEFORE + BATCH])

    def test_tornAtEveryOctet(self) -> None:
        """
        A write cut at any octet of the batch, its journal in place, is cut back to the
        file as it was before the batch.
        """
        journal: list[bytes] = []

        def keepJournal(step: str) -> None:
            if step == "sync":
                journal.append(readBytes(self.path + _mboxfile.JOURNAL_SUFFIX))

        self.append(keepJournal)
        after = readBytes(self.path)
        for cut in range(len(self.before), len(after) + 1):
            writeBytes(self.path, after[:cut])
            st = os.stat(self.path)
            lines = journal[0].split(b"\n")
            lines[1] = b"%d %d" % (st.st_dev, st.st_ino)
            writeBytes(self.path + _mboxfile.JOURNAL_SUFFIX, b"\n".join(lines))
            self.assertRecovered([BEFORE])
            self.assertEqual(readBytes(self.path), self.before, cut)

    def test_errorAtEveryStep(self) -> None:
        """
        An I/O error at any step, the journal's removal included, leaves the file as it
        was, with no lock or journal; the caller sees the error (and its retry stores the
        batch once).
        """
        steps = countSteps(self.append)
        for step, name in enumerate(steps):
            writeBytes(self.path, self.before)
            self.assertRaises(OSError, self.append, failAt(step))
            self.assertEqual(readBytes(self.path), self.before, name)
            self.assertEqual(os.listdir(os.path.dirname(self.path)), [os.path.basename(self.path)])

    def test_foreignMailAfterTornAppendKept(self) -> None:
        """
        When another program appended after a torn append (having broken the stale
        dot-lock), nothing is cut: its mail is never lost.
        """
        killAt(self.append, countSteps(self.append).index("write") + 1)
        os.unlink(self.path + ".lock")
        with open(self.path, "ab") as f:
            f.write(b"\nFrom postfix Mon Jan  5 10:00:00 2026\nSubject: foreign\n\nhi\n\n")
        torn = readBytes(self.path)
        with lockMbox(self.path, timeout=0):
            pass
        self.assertEqual(readBytes(self.path), torn)
        self.assertFalse(os.path.exists(self.path + _mboxfile.JOURNAL_SUFFIX))

    def test_tornJournalIgnored(self) -> None:
        """
        A journal cut short (the writer died writing it, before touching the mbox) is
        removed and the mbox left alone.
        """
        writeBytes(self.path + _mboxfile.JOURNAL_SUFFIX, b"pop3kit-append 1\n12 34\n5")
        self.assertRecovered([BEFORE])
        self.assertEqual(readBytes(self.path), self.before)

    def test_appendReadsOnlyTheEnd(self) -> None:
        """
        Appending to a file that is not a valid mbox before its last line (say, a huge
        one) neither reads nor changes what is there.
        """
        garbage = b"\0" * 100_000 + b"tail without a line end"
        writeBytes(self.path, garbage)
        with lockMbox(self.path) as lock:
            _mboxfile.appendMessages(lock, outgoing([b"Subject: s\n\nx\n"]))
        data = readBytes(self.path)
        self.assertTrue(data.startswith(garbage + b"\n\nFrom MAILER-DAEMON "))
        self.assertTrue(data.endswith(b"\nSubject: s\n\nx\n\n"))


class AppendCostTests(SynchronousTestCase):
    """
    Appending reads nothing of the mbox but its last two octets, so it costs the same
    for a 10 GB mbox as for an empty one (traced with strace).
    """

    def test_readsTwoOctets(self) -> None:
        """
        Every read of the mbox during an append, through any system call, adds up to two
        octets, and the file is never memory-mapped.
        """
        strace = requireTool("strace", "strace")
        path = os.path.abspath(self.mktemp())
        with lockMbox(path, create=True) as lock:
            _mboxfile.appendMessages(lock, outgoing(BEFORE))
        with open(path, "ab") as f:
            f.truncate(64 * 1024 * 1024)
            f.seek(0, os.SEEK_END)
            f.write(b"\n\nFrom b Mon Jan  5 10:00:00 2026\nSubject: last\n\n\n")
        trace = os.path.abspath(self.mktemp())
        script = (
            "from pop3kit import _mboxfile as m\n"
            f"with m.lockMbox({path!r}) as lock:\n"
            "    m.appendMessages(lock, m.outgoing([b'Subject: new\\n\\nbody\\n']))\n"
        )
        subprocess.run(
            [
                strace,
                "-f",
                "-y",
                "-o",
                trace,
                "-e",
                "trace=read,pread64,readv,preadv,preadv2,mmap,sendfile,copy_file_range",
                sys.executable,
                "-c",
                script,
            ],
            check=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(_mboxfile.__file__))),
        )
        with open(trace, encoding="utf-8", errors="replace") as f:
            calls = [line for line in f if f"<{path}>" in line]
        self.assertEqual([c for c in calls if " mmap(" in c or "\tmmap(" in c], [])
        octets = sum(int(line.rsplit("=", 1)[1].split()[0]) for line in calls)
        self.assertLessEqual(octets, 2)
        self.assertEqual(contents(path)[-1], canonicalForm(b"Subject: new\n\nbody\n"))


class RewriteCrashTests(SynchronousTestCase):
    """
    A rewrite (expunge) leaves the old mailbox or the new one.
    """

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        with lockMbox(self.path, create=True) as lock:
            _mboxfile.appendMessages(lock, outgoing(BEFORE + BATCH))
        self.before = readBytes(self.path)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self.uids = [m.uid for m in _mboxfile.scanMbox(fd)]
        finally:
            os.close(fd)
        self.removed = {self.uids[1], self.uids[3]}
        self.kept = [BEFORE[0], BATCH[0], BATCH[2]]

    def rewrite(self, checkpoint: _mboxfile.Checkpoint) -> None:
        with lockMbox(self.path, checkpoint=checkpoint) as lock:
            _mboxfile.rewrite(lock, self.removed, checkpoint=checkpoint)

    def assertOldOrNew(self, expected: list[list[bytes]]) -> None:
        with lockMbox(self.path, timeout=0):
            self.assertIn(contents(self.path), [canonical(e) for e in expected])
        self.assertEqual(os.listdir(os.path.dirname(self.path)), [os.path.basename(self.path)])

    def test_killedAtEveryStep(self) -> None:
        """
        Killed at any step, the rewrite leaves the old file (before the rename) or the
        new one (after), and the next lock cleans up; the kept messages keep their
        unique-ids.
        """
        steps = countSteps(self.rewrite)
        self.assertIn("rename", steps)
        old = BEFORE + BATCH
        for step, name in enumerate(steps):
            writeBytes(self.path, self.before)
            killAt(self.rewrite, step)
            self.assertOldOrNew([self.kept] if name == "sync-directory" else [old])
        writeBytes(self.path, self.before)
        self.rewrite(lambda step: None)
        self.assertOldOrNew([self.kept])
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self.assertEqual(
                [m.uid for m in _mboxfile.scanMbox(fd)], [self.uids[0], self.uids[2], self.uids[4]]
            )
        finally:
            os.close(fd)

    def test_errorAtEveryStep(self) -> None:
        """
        An I/O error at any step before the rename leaves the old file and no temporary
        file.
        """
        for step, name in enumerate(countSteps(self.rewrite)):
            if name == "sync-directory":
                continue
            writeBytes(self.path, self.before)
            self.assertRaises(OSError, self.rewrite, failAt(step))
            self.assertEqual(readBytes(self.path), self.before, name)
            self.assertEqual(os.listdir(os.path.dirname(self.path)), [os.path.basename(self.path)])


class ListingCacheTests(SynchronousTestCase):
    """
    L{_mboxfile.ListingCache} reads only what was appended, and everything again when
    the file was changed otherwise.
    """

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        self.cache = _mboxfile.ListingCache()
        self.append(b"Subject: a\n\n1\n", b"Subject: b\n\n2\n", b"Subject: c\n\n3\n")

    def append(self, *messages: bytes) -> None:
        with lockMbox(self.path, create=True) as lock:
            _mboxfile.appendMessages(lock, outgoing(messages))

    def listing(self, cache: _mboxfile.ListingCache | None = None) -> list[_mboxfile.MboxMessage]:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if cache is None:
                return _mboxfile.scanMbox(fd)
            return cache.scan(self.path, fd)
        finally:
            os.close(fd)

    def test_appendedOnlyReadAfterEnd(self) -> None:
        """
        After an append only the new messages are read: a change in place before the
        old end goes unseen (a fresh scan sees it), and the listing is otherwise what a
        fresh scan gives.
        """
        first = self.listing(self.cache)
        self.assertEqual(len(self.cache), 3)
        data = readBytes(self.path)
        with open(self.path, "r+b") as f:
            f.write(data.replace(b"Subject: b", b"Subject: x"))
        self.append(b"Subject: d\n\n4\n")
        cached = self.listing(self.cache)
        fresh = self.listing()
        self.assertEqual(cached[:3], first)
        self.assertEqual(cached[3], fresh[3])
        self.assertNotEqual(cached[1].uid, fresh[1].uid)

    def test_rewrittenReadAgain(self) -> None:
        """
        A file whose messages moved (a mail reader added headers), or that was replaced,
        or changed in place at the same size, is read again whole.
        """
        self.listing(self.cache)
        data = readBytes(self.path)
        writeBytes(self.path, data.replace(b"Subject: a\n", b"Subject: a\nStatus: RO\n"))
        self.assertEqual(self.listing(self.cache), self.listing())
        with open(self.path, "r+b") as f:
            f.write(readBytes(self.path).replace(b"Subject: b", b"Subject: y"))
        stamp = os.stat(self.path).st_mtime_ns + 1_000_000_000
        os.utime(self.path, ns=(stamp, stamp))
        self.assertEqual(self.listing(self.cache), self.listing())
        self.append(b"Subject: e\n\n5\n")
        with lockMbox(self.path) as lock:
            _mboxfile.rewrite(lock, {self.listing()[0].uid})
        self.assertEqual(self.listing(self.cache), self.listing())

    def test_bounded(self) -> None:
        """
        Beyond its bound the cache forgets the file listed longest ago.
        """
        cache = _mboxfile.ListingCache(maxMessages=4)
        self.listing(cache)
        other = self.path
        self.path = os.path.abspath(self.mktemp())
        self.append(b"Subject: z\n\n\n", b"Subject: y\n\n\n")
        self.listing(cache)
        self.assertEqual(len(cache), 2)
        cache.forget(self.path)
        self.assertEqual(len(cache), 0)
        self.path = other


class SizeTests(SynchronousTestCase):
    """
    Listed sizes of large messages, counted a chunk at a time.
    """

    def test_quotedLinesAcrossChunks(self) -> None:
        """
        A message of many C{From } lines, larger than several reading chunks, lists with
        the size of the message as appended, whatever the chunks cut.
        """
        from pop3kit.core import wireSize

        path = os.path.abspath(self.mktemp())
        messages = [
            b"Subject: big\n\n"
            + b"".join(b"%sFrom line %d\n" % (b">" * (i % 3), i) for i in range(n))
            for n in (50_000, 50_001, 50_007)
        ]
        with lockMbox(path, create=True) as lock:
            _mboxfile.appendMessages(lock, outgoing(messages))
        fd = os.open(path, os.O_RDONLY)
        try:
            listing = _mboxfile.scanMbox(fd)
        finally:
            os.close(fd)
        self.assertEqual([m.size for m in listing], [wireSize(m) for m in messages])
        self.assertEqual(list(_mboxfile.iterMessages(path)), messages)


#: Pieces that random messages are made of: line ends of every kind, C{From } lines
#: quoted or not, empty lines, dots and 8-bit octets.
_PIECES = [
    b"From ",
    b">",
    b"From",
    b"\n",
    b"\r\n",
    b"\r",
    b"x",
    b" ",
    b".",
    b"\xff",
    b"Subject: s\n",
]


class RoundTripTests(SynchronousTestCase):
    """
    Whatever is appended is listed with its size and read back as it was.
    """

    @given(
        st.lists(
            st.lists(st.sampled_from(_PIECES), max_size=30).map(b"".join), min_size=1, max_size=6
        )
    )
    def test_anyMessages(self, messages: list[bytes]) -> None:
        """
        Any batch of messages, appended, lists one entry each, with the size POP3 sends
        for it, and reads back in canonical form.
        """
        from pop3kit.core import wireSize

        path = os.path.abspath(self.mktemp())
        with lockMbox(path, create=True) as lock:
            _mboxfile.appendMessages(lock, outgoing(messages))
        fd = os.open(path, os.O_RDONLY)
        try:
            listing = _mboxfile.scanMbox(fd)
        finally:
            os.close(fd)
        self.assertEqual([m.size for m in listing], [wireSize(m) for m in messages])
        self.assertEqual(contents(path), canonical(messages))
        os.unlink(path)


class HeaderDigestTests(SynchronousTestCase):
    """
    The quick way of digesting a header block gives what the line-by-line way gives.
    """

    @given(
        st.lists(
            st.sampled_from(
                [
                    b"Status",
                    b"X-UID",
                    b"Subject",
                    b"lines",
                    b"X-Keywords",
                    b"x-Mailer",
                    b":",
                    b" ",
                    b"\t",
                    b"\r",
                    b"\n",
                    b"\r\n",
                    b"\x0b",
                    b"a",
                    b"Content-Length",
                ]
            ),
            max_size=40,
        ).map(b"".join)
    )
    def test_quickEqualsLineByLine(self, headers: bytes) -> None:
        """
        For any header block, both ways give the same digest; the quick way is only
        taken when there is nothing to hide.
        """
        line = b"From a Mon Jan  5 10:00:00 2026\n"
        quick = _mboxfile._readHeaders(line, headers, 10)
        slow = _mboxfile._readHeaderLines(line, headers, 10)
        self.assertEqual(quick, slow)
