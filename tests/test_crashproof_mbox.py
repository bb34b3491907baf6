"""
The crash proof (L{tests._crashproof}) of what writes mbox files: C{pop3kit fetch --to
mbox:} and the mbox backend's expunge (the server's UPDATE state), each killed, and failed
with C{EIO} and C{ENOSPC}, at its file-mutating system calls in turn (the dot-lock's
included).  Needs the system C{cc} (Debian package gcc).
"""

from __future__ import annotations

import os
import sys

from twisted.trial.unittest import TestCase

from pop3kit import _mboxfile
from tests import _crashproof
from tests._crashproof import Command, Run

#: The files pop3kit keeps beside an mbox only while it works on it.
_LEFT_OVERS = (_mboxfile.DOTLOCK_SUFFIX, _mboxfile.JOURNAL_SUFFIX, _mboxfile.REWRITE_SUFFIX)


def readMbox(path: str) -> list[bytes]:
    """
    The messages of the mbox C{path} as pop3kit's next reader or writer sees them,
    which recovers the file under the locks first: an unfinished append that a journal
    records (see L{pop3kit._mboxfile.recover}) is left out.  The file is not changed, so
    that the recovery itself is left to the next run under test.  None if it is missing.
    """
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
        st = os.fstat(f.fileno())
    journal = path + _mboxfile.JOURNAL_SUFFIX
    if os.path.exists(journal):
        record = _mboxfile._readJournal(journal)
        if record is not None:
            identity, old, new, _ = record
            if identity == (st.st_dev, st.st_ino) and old <= len(data) <= new:
                data = data[:old]
    scratch = path + ".read-by-test"
    with open(scratch, "wb") as f:
        f.write(data)
    try:
        return list(_mboxfile.iterMessages(scratch))
    finally:
        os.unlink(scratch)


def noLeftOvers(path: str) -> None:
    """
    After a successful run, no journal or rewrite is left beside C{path}, and no
    dot-lock but a stale one (its removal failed, which is a warning: it names a process
    that has ended, so the next locker breaks it).
    """
    for suffix in _LEFT_OVERS:
        left = path + suffix
        if suffix == _mboxfile.DOTLOCK_SUFFIX and os.path.isfile(left):
            with open(left, "rb") as f:
                content = f.read()
            stale = _mboxfile._isStale(left, content, os.stat(left).st_mtime, 60)
            assert stale, f"{left} left behind, and not stale: {content!r}"
            continue
        assert not os.path.lexists(left), f"{left} left behind"


def mboxRealm(root: str) -> object:
    """
    The mbox realm serving C{ROOT/%u}: the realm factory of the mbox L{ExpungeTarget
    <tests._crashproof.ExpungeTarget>}.
    """
    from pop3kit.backends.mbox import MboxRealm

    return MboxRealm(os.path.join(root, "%u"), lockTimeout=0)


def fillMbox(root: str, messages: list[bytes]) -> list[str]:
    """
    Append C{messages} to alice's mbox under C{root}; their UIDs as the backend lists
    them.
    """
    from pop3kit.backends.mbox import MboxMailbox

    path = os.path.join(root, "alice")
    with _mboxfile.lockMbox(path, create=True) as lock:
        _mboxfile.appendMessages(lock, _mboxfile.outgoing(messages))
    listed: list[object] = []
    MboxMailbox(path).listMessages().addCallback(listed.append)
    return [info.uid for info in listed[0]]  # type: ignore[attr-defined]


def readMboxRoot(root: str) -> list[bytes]:
    """
    The messages of alice's mbox under C{root}.
    """
    return readMbox(os.path.join(root, "alice"))


class MboxExpungeTarget(_crashproof.ExpungeTarget):
    """
    The mbox backend's expunge: L{ExpungeTarget <tests._crashproof.ExpungeTarget>}, and
    after the run again no lock, journal or rewrite is left beside the mbox.
    """

    def __init__(self) -> None:
        super().__init__(
            "mbox expunge", "tests.test_crashproof_mbox:mboxRealm", fillMbox, readMboxRoot
        )

    def checkRecovered(self, directory: str, run: Run, recovery: Run | None) -> None:
        super().checkRecovered(directory, run, recovery)
        noLeftOvers(os.path.join(directory, "alice"))


class MboxFetchTarget(_crashproof.FetchTarget):
    """
    C{pop3kit fetch --delete --to mbox:}: L{FetchTarget <tests._crashproof.FetchTarget>},
    with the batch that may be stored twice counted the mbox way.
    """

    def __init__(self, testCase: TestCase) -> None:
        super().__init__(testCase, "mbox", readMbox)

    def unrecorded(self, run: Run) -> int:
        """
        The messages of the appends finished (their journal removed: from then on the
        append is no longer cut back) since the state file was last synced, before the
        fault.  Each append's size is the number of C{From } lines it wrote, counted as
        the journal's writes cannot tell: every message of the run's batches, at most.
        """
        if run.acted is None:
            return 0
        count = 0
        pending = 0
        for call in run.calls[: run.acted.number - 1]:
            if call.operation in ("fsync", "fdatasync") and call.path == "state":
                count = 0
            elif call.operation == "open" and call.path.endswith(_mboxfile.JOURNAL_SUFFIX):
                pending = self.batchSize(run, call)
            elif call.operation == "unlink" and call.path.endswith(_mboxfile.JOURNAL_SUFFIX):
                count += pending
                pending = 0
        return count

    def batchSize(self, run: Run, journalOpen: _crashproof.Call) -> int:
        """
        How many messages the append whose journal C{journalOpen} opened wrote: the
        C{write}s to the mbox up to its C{fsync}, three or more per message (the C{From }
        line, the content, the separator), bounded by what is being fetched.
        """
        writes = 0
        for call in run.calls[journalOpen.number :]:
            if call.operation == "fsync" and call.path == "inbox.mbox":
                break
            if call.operation == "write" and call.path == "inbox.mbox":
                writes += 1
        return min(len(self.messages), max(1, writes // 3))

    def checkRecovered(self, directory: str, run: Run, recovery: Run | None) -> None:
        super().checkRecovered(directory, run, recovery)
        noLeftOvers(self.destination(directory))


class MboxDeliverTarget(_crashproof.DeliverTarget):
    """
    L{MboxDelivery <pop3kit.backends.mbox.MboxDelivery>} (what the LMTP listener
    delivers through), run by this module's C{deliver} driver as an MTA runs a delivery
    agent: retried while it exits 75 or is killed.  Each fault leaves the message in the
    mbox whole or not at all; exit 0 means once; the retry ends with it there once, or
    twice only if the kill came after the append was complete (its journal removed).
    """

    name = "MboxDelivery into an mbox"

    def mbox(self, directory: str) -> str:
        return os.path.join(directory, "alice")

    def command(self, directory: str) -> Command:
        return Command(
            [*_crashproof.PYTHON, "-m", "tests.test_crashproof_mbox", "deliver", directory],
            stdin=self.message,
        )

    def checkFault(self, directory: str, run: Run) -> None:
        stored = readMbox(self.mbox(directory))
        for message in stored:
            assert message == self.message, f"a torn message of {len(message)} octets"
        if run.status == 0:
            assert len(stored) == 1, f"exit 0 with {len(stored)} copies"
            noLeftOvers(self.mbox(directory))
            return
        if run.status > 0:
            _crashproof._oneLineErrors(run)
            assert run.status == 75, f"exit {run.status} for a temporary fault"
            assert stored == [], "failed, and yet the message is in the mbox: the retry makes two"
        else:
            assert len(stored) <= 1

    def checkRecovered(self, directory: str, run: Run, recovery: Run | None) -> None:
        stored = readMbox(self.mbox(directory))
        if recovery is None:
            assert len(stored) == 1
            return
        assert recovery.status == 0, f"the retry failed: {recovery.errorText}"
        complete = any(
            c.operation == "unlink" and c.path.endswith(_mboxfile.JOURNAL_SUFFIX)
            for c in run.calls
            if run.acted is not None and c.number < run.acted.number
        )
        expected = 2 if (run.status < 0 and complete) else 1
        assert len(stored) == expected, f"{len(stored)} copies after the retry, not {expected}"
        assert all(m == self.message for m in stored)
        noLeftOvers(self.mbox(directory))


class MboxCrashProofTests(TestCase):
    """
    Every fault at every (sampled) call leaves nothing lost, torn or duplicated beyond the
    documented batch, and the next run succeeds without a hand repair (a dot-lock or a
    journal left by a killed run is recovered).
    """

    timeout = 600

    def test_expungeMbox(self) -> None:
        """
        The mbox backend's expunge (UPDATE): the old mailbox or the new one, never torn.
        """
        _crashproof.sweep(self, MboxExpungeTarget(), maxRuns=15)

    def test_deliverMbox(self) -> None:
        """
        L{MboxDelivery <pop3kit.backends.mbox.MboxDelivery>}: the message whole or not at
        all; exit 0 means once.
        """
        _crashproof.sweep(self, MboxDeliverTarget(), maxRuns=15)

    def test_fetchMbox(self) -> None:
        """
        C{pop3kit fetch --delete --to mbox:}.
        """
        _crashproof.sweep(self, MboxFetchTarget(self), maxRuns=15)


def _deliver(root: str) -> int:
    """
    Deliver standard input to alice's mbox under C{root} through L{MboxDelivery
    <pop3kit.backends.mbox.MboxDelivery>} and the reactor's thread pool, as the LMTP
    listener does: exit 0 once it is durable, 75 (one line on standard error) if it
    failed.
    """
    from typing import Any

    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    from pop3kit.backends.mbox import MboxDelivery
    from pop3kit.errors import TemporaryFailure

    status: list[int] = [0]

    async def work(reactor: Any) -> None:
        delivery = MboxDelivery(os.path.join(root, "%u"), reactor, lockTimeout=5)
        try:
            await delivery.deliver("alice", sys.stdin.buffer)
        except TemporaryFailure as e:
            sys.stderr.write(f"pop3kit: error: {e}\n")
            status[0] = 75

    try:
        react(lambda reactor: Deferred.fromCoroutine(work(reactor)))
    except SystemExit:
        pass
    return status[0]


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    if command != "deliver":
        raise SystemExit(f"unknown driver {command!r}")
    sys.exit(_deliver(*arguments))
