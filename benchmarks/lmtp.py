"""
LMTP deliveries per second: ``twistd pop3kit --lmtp`` taking 8 KiB messages from
Python's smtplib over a UNIX socket into Maildirs.

Usage, from the repository root::

    .venv/bin/python benchmarks/lmtp.py                      # 1 and 4 connections
    .venv/bin/python benchmarks/lmtp.py --messages 200 --connections 1

Each connection sends its messages one after the other (one recipient each, reading the
reply before the next, as Postfix's lmtp client does with one recipient per message); the
figure is messages stored durably per second, all connections together.  The server is
stopped by its process id at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MESSAGE = (
    b"From: bench@example.net\r\nTo: user@example.org\r\nSubject: lmtp benchmark\r\n\r\n"
    + (b"x" * 78 + b"\r\n") * 103
)  # about 8 KiB


def client(socketPath: str, count: int, user: str) -> int:
    """
    Deliver C{count} messages to C{user} over one connection; the number refused.
    """
    refused = 0
    with smtplib.LMTP(socketPath, timeout=60) as lmtp:
        lmtp.ehlo("bench.example.net")
        for _ in range(count):
            lmtp.mail("bench@example.net")
            code, _ = lmtp.rcpt(f"{user}@example.org")
            if code != 250:
                refused += 1
                lmtp.rset()
                continue
            code, _ = lmtp.data(MESSAGE)
            if code != 250:
                refused += 1
    return refused


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--messages", type=int, default=500, help="messages per connection")
    parser.add_argument(
        "--connections", type=int, action="append", help="parallel connections (repeatable)"
    )
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pop3kit-lmtp-bench-")
    socketPath = os.path.join(work, "lmtp")
    root = os.path.join(work, "mail")
    os.makedirs(root)
    log = os.path.join(work, "server.log")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "twisted", "--log-file", log, "pop3kit"),
            *("--listen", "tcp:0:interface=127.0.0.1", "--maildir-root", root),
            *("--auth", "memory:" + ":".join(f"user{i}:pw" for i in range(16))),
            *("--lmtp", f"unix:{socketPath}"),
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(socketPath):
            if time.monotonic() > deadline or server.poll() is not None:
                print(Path(log).read_text(), file=sys.stderr)
                return 1
            time.sleep(0.05)
        print("connections  messages  seconds  messages/s  refused")
        for connections in args.connections or [1, 4]:
            start = time.perf_counter()
            with multiprocessing.Pool(connections) as pool:
                refused = sum(
                    pool.starmap(
                        client,
                        [(socketPath, args.messages, f"user{i}") for i in range(connections)],
                    )
                )
            elapsed = time.perf_counter() - start
            total = connections * args.messages
            print(
                f"{connections:>11}  {total:>8}  {elapsed:>7.2f}  {total / elapsed:>10.0f}"
                f"  {refused:>7}"
            )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
