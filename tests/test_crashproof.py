"""
The crash proof (L{tests._crashproof}) of what writes mail: C{pop3kit deliver} and
C{pop3kit fetch} into a Maildir, and the Maildir backend's expunge (the server's UPDATE
state), each killed, and failed with C{EIO} and C{ENOSPC}, at its file-mutating system
calls in turn.  Needs the system C{cc} (Debian package gcc).
"""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from tests import _crashproof


class ShimTests(TestCase):
    """
    The shim counts the calls of the whole process and acts at the one asked for.
    """

    timeout = 120

    def test_countsAcrossThreads(self) -> None:
        """
        Calls made by several threads share one counter: a kill at call N lands at the Nth
        call of the process, whatever thread makes it.
        """
        shim = _crashproof.compileShim(self)
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        script = (
            "import os, sys, threading\n"
            "d = sys.argv[1]\n"
            "def work(i):\n"
            "    for j in range(5):\n"
            "        try:\n"
            "            os.mkdir(os.path.join(d, f'{i}-{j}'))\n"
            "        except OSError as e:\n"
            "            print(e.strerror, flush=True)\n"
            "            os._exit(3)\n"
            "ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n"
        )
        command = _crashproof.Command([*_crashproof.PYTHON, "-c", script, base])
        log = os.path.abspath(self.mktemp() + ".log")
        clean = _crashproof.runCommand(command, shim, base, 0, "kill", log)
        self.assertEqual((clean.status, len(clean.calls)), (0, 20))
        for name in os.listdir(base):
            os.rmdir(os.path.join(base, name))
        killed = _crashproof.runCommand(command, shim, base, 13, "kill", log)
        self.assertEqual(killed.status, -9)
        # The 12 calls before it are made; calls other threads counted after it (before the
        # kill took them) may be made too; the 13th is not.
        self.assertGreaterEqual(len(os.listdir(base)), 12)
        assert killed.acted is not None
        self.assertEqual(killed.acted.number, 13)
        self.assertFalse(os.path.exists(killed.acted.path))
        for name in os.listdir(base):
            os.rmdir(os.path.join(base, name))
        failed = _crashproof.runCommand(command, shim, base, 7, "enospc", log)
        self.assertEqual((failed.status, failed.stdout), (3, b"No space left on device\n"))


class CrashProofTests(TestCase):
    """
    Every fault at every (sampled) call leaves nothing lost, torn or duplicated beyond the
    documented batch, and the next run succeeds.
    """

    timeout = 600

    def test_deliver(self) -> None:
        """
        C{pop3kit deliver}: the message whole or not at all; exit 0 means once.
        """
        _crashproof.sweep(self, _crashproof.DeliverTarget(), maxRuns=39)

    def test_fetchMaildir(self) -> None:
        """
        C{pop3kit fetch --delete} into a Maildir.
        """
        _crashproof.sweep(
            self,
            _crashproof.FetchTarget(self),
            actions=os.environ.get("CRASHPROOF_ACTIONS", "kill,eio,enospc").split(","),
            maxRuns=30,
        )

    def test_expungeMaildir(self) -> None:
        """
        The Maildir backend's expunge (UPDATE).
        """
        target = _crashproof.ExpungeTarget(
            "Maildir expunge",
            "tests._crashproof:maildirRealm",
            _crashproof.fillMaildir,
            _crashproof.readMaildirRoot,
        )
        _crashproof.sweep(self, target, maxRuns=30)
