"""
mbox test data for ``benchmarks/run.py --storage mbox``, and the mbox append benchmark::

    .venv/bin/python benchmarks/_mboxdata.py append [--size-gib 10]

which times appending one batch of messages (as ``pop3kit fetch --to mbox:`` does, lock,
journal and fsync included) to an empty mbox and to one of ``--size-gib`` GiB (a sparse
file ending in a complete message, so it costs no disk): the two must be the same.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from pop3kit import _mboxfile


def deliverMbox(spool: Path, jobs: Iterable[tuple[str, bytes]]) -> None:
    """
    Append the messages of C{jobs} (user, message) to the mbox files C{spool/USER}, one
    batch per user, in order.
    """
    byUser: dict[str, list[bytes]] = defaultdict(list)
    for user, message in jobs:
        byUser[user].append(message)
    spool.mkdir(parents=True, exist_ok=True)
    for user, messages in byUser.items():
        with _mboxfile.lockMbox(str(spool / user), create=True) as lock:
            _mboxfile.appendMessages(lock, _mboxfile.outgoing(messages))


def _appendSeconds(path: str, messages: list[bytes]) -> float:
    started = time.perf_counter()
    with _mboxfile.lockMbox(path, create=True) as lock:
        _mboxfile.appendMessages(lock, _mboxfile.outgoing(messages))
    _mboxfile.FSYNC.syncDirectory(os.path.dirname(path))
    return time.perf_counter() - started


def appendBenchmark(sizeGiB: float, rounds: int = 5) -> dict[str, float]:
    """
    The median milliseconds of appending 100 messages of 4 KiB to an empty mbox and to
    a sparse one of C{sizeGiB} GiB.
    """
    batch = [b"Subject: %d\n\n" % i + b"x" * 4000 + b"\nFrom a body line\n" for i in range(100)]
    results = {}
    with tempfile.TemporaryDirectory(prefix="mbox-append-") as directory:
        for label, size in (("empty", 0), (f"{sizeGiB:g} GiB", int(sizeGiB * (1 << 30)))):
            times = []
            for round in range(rounds):
                path = os.path.join(directory, f"box{round}-{size}")
                with open(path, "wb") as f:
                    if size:
                        tail = b"From a Mon Jan  5 10:00:00 2026\nSubject: s\n\nend\n\n"
                        f.truncate(size - len(tail))
                        f.seek(size - len(tail))
                        f.write(tail)
                times.append(_appendSeconds(path, batch) * 1000)
                os.unlink(path)
            results[label] = statistics.median(times)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="mbox append benchmark")
    parser.add_argument("what", choices=["append"])
    parser.add_argument("--size-gib", type=float, default=10.0)
    args = parser.parse_args(argv)
    for label, ms in appendBenchmark(args.size_gib).items():
        print(f"append 100 x 4 KiB to a {label} mbox: {ms:.1f} ms (median of 5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
