"""
Run C{python -m twisted ARGS} under cProfile: C{python _profiledserver.py STATS ARGS}.

C{python -m cProfile -o STATS -m twisted ARGS} writes nothing when the server is stopped
with SIGTERM: twist shuts down cleanly, then kills itself with the same signal (so that
its exit status tells of it) before cProfile gets to write.  Here the statistics are
written just before that.
"""

from __future__ import annotations

import cProfile
import sys

from twisted.application.twist import _twist


def main(argv: list[str]) -> None:
    statsPath, twistArguments = argv[1], argv[2:]
    profiler = cProfile.Profile()
    exitWithSignal = _twist._exitWithSignal  # type: ignore[attr-defined]

    def writeThenExit(signalNumber: int) -> None:
        profiler.disable()
        profiler.dump_stats(statsPath)
        exitWithSignal(signalNumber)  # type: ignore[no-untyped-call]

    _twist._exitWithSignal = writeThenExit  # type: ignore[attr-defined]
    profiler.enable()
    try:
        _twist.Twist.main(["twist", *twistArguments])
    finally:
        profiler.disable()
        profiler.dump_stats(statsPath)


if __name__ == "__main__":
    main(sys.argv)
