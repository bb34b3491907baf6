"""
The crash proof (L{tests._crashproof}) of what writes mbox files: C{pop3kit fetch --to
mbox:} and the mbox backend's expunge (the server's UPDATE state), each killed, and failed
with C{EIO} and C{ENOSPC}, at its file-mutating system calls in turn (the dot-lock's
included).  Needs the system C{cc} (Debian package gcc).
"""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from pop3kit import _mboxfile
from tests import _crashproof
from tests._crashproof import Run

#: The files pop3kit keeps beside an mbox only while it works on it.
_LEFT_OVERS = (_mboxfile.DOTLOCK_SUFFIX, _mboxfile.JOURNAL_SUFFIX, _mboxfile.REWRITE_SUFFIX)


def readMbox(path: str) -> list[bytes]:
    """
    The messages of the mbox C{path} as pop3kit reads them back (none if it is missing).
    """
    if not os.path.exists(path):
        return []
    return list(_mboxfile.iterMessages(path))


def noLeftOvers(path: str) -> None:
    """
    After a successful run, no dot-lock, journal or rewrite is left beside C{path}.
    """
    for suffix in _LEFT_OVERS:
        assert not os.path.lexists(path + suffix), f"{path + suffix} left behind"


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
        _crashproof.sweep(self, MboxExpungeTarget(), maxRuns=24)

    def test_fetchMbox(self) -> None:
        """
        C{pop3kit fetch --delete --to mbox:}.
        """
        _crashproof.sweep(self, MboxFetchTarget(self), maxRuns=24)
