# -*- test-case-name: tests.test_fetch -*-
"""
The progress bar of C{pop3kit fetch} on a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """
    A one-line progress display on a terminal, redrawn at most ten times a second.

    @ivar total: The number of messages to fetch.
    @ivar totalOctets: Their size, as the server lists it.
    """

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._last = 0.0
        self._shown = False
        self.total = 0
        self.totalOctets = 0

    def update(self, done: int, octets: int, force: bool = False) -> None:
        """
        Show that C{done} messages and C{octets} octets have been fetched.
        """
        now = self._clock()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        percent = 100 * octets // self.totalOctets if self.totalOctets else 100
        width = 30
        filled = width * percent // 100
        bar = "#" * filled + "-" * (width - filled)
        self._stream.write(
            f"\r[{bar}] {percent:3d}% {done}/{self.total} messages, "
            f"{octets / 1e6:.1f}/{self.totalOctets / 1e6:.1f} MB"
        )
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        """
        End the line.
        """
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()
