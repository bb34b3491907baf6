"""
What a POP3 session costs through HAProxy (TCP mode, PROXY protocol v2) compared with a
direct one, and what shared state in Redis (``--state``) adds to a login.

Run from the repository root::

    .venv/bin/python benchmarks/haproxy.py             # 1000 sessions per path
    .venv/bin/python benchmarks/haproxy.py --quick     # 100, a smoke run
    .venv/bin/python benchmarks/haproxy.py --json results.json

One pop3kit server (``python -m twisted pop3kit``) listens twice: ``tcp:`` for direct
sessions and ``haproxy:tcp:`` behind a private HAProxy with ``send-proxy-v2``.  A second
HAProxy frontend forwards to the plain listener without the PROXY header, which separates
the cost of the extra hop from that of the header.  A second server, identical but with
``--state redis://...`` (a private ``redis-server``), measures the Redis round trips of a
login (LOGIN-DELAY is off, so a login makes four: the lock, the login time, the failure
count, the release).  Sessions are sequential, one client, interleaved across the paths so
that drift in the machine's load hits them alike; each is: connect, greeting, ``USER``,
``PASS``, ``STAT``, ``QUIT`` (pipelined), and the server closing.  See
benchmarks/README.rst ("Behind HAProxy").
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pop3kit.backends.maildir import deliver  # noqa: E402
from tests._tools import findTool  # noqa: E402

HOST = "127.0.0.1"

#: The target: a session through HAProxy costs at most this much more than a direct one.
TARGET_MS = 1.0

_BATCH = b"USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def freePort() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def waitForPort(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within 30 s")


@contextmanager
def running(command: Sequence[str], port: int, what: str, **popen: Any) -> Iterator[None]:
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **popen
    )
    try:
        waitForPort(port, process, what)
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def pop3kit(workdir: Path, root: Path, name: str, listen: Sequence[str], *extra: str) -> list[str]:
    command = [sys.executable, "-m", "twisted", f"--log-file={workdir / (name + '.log')}"]
    command += ["pop3kit", "--maildir-root", str(root), "--auth", "memory:alice:secret"]
    command += ["--failed-login-delay", "0"]
    for description in listen:
        command += ["--listen", description]
    return command + list(extra)


def session(port: int) -> float:
    """
    One session; its wall-clock time in seconds.
    """
    started = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=10) as sock:
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError(f"no greeting on port {port}")
            received += chunk
        sock.sendall(_BATCH)
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    elapsed = time.perf_counter() - started
    lines = received.split(b"\r\n")
    if not (lines[0].startswith(b"+OK") and lines[-2] == b"+OK bye"):
        raise RuntimeError(f"unexpected session on port {port}: {received!r}")
    return elapsed


def figures(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
        "p90_ms": ordered[int(len(ordered) * 0.9)] * 1000,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 sessions per path")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions per path")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    arguments = parser.parse_args(argv)
    count = 100 if arguments.quick else arguments.sessions
    haproxy, redis = findTool("haproxy"), findTool("redis-server")
    if haproxy is None or redis is None:
        log("needs haproxy and redis-server (Debian packages haproxy, redis-server)")
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="pop3kit-haproxy-bench-"))
    try:
        root = workdir / "mail"
        for i in range(10):
            deliver(str(root / "alice"), io.BytesIO(b"Subject: %d\n\nbody\n" % i))
        direct, behind, stateful, redisPort = freePort(), freePort(), freePort(), freePort()
        viaProxy, viaHop = freePort(), freePort()
        (workdir / "redis.conf").write_text(
            f'bind {HOST}\nport {redisPort}\ndir {workdir}\nsave ""\nappendonly no\n'
        )
        (workdir / "haproxy.cfg").write_text(
            "global\n    maxconn 1000\n"
            "defaults\n    mode tcp\n    timeout connect 2s\n"
            "    timeout client 30s\n    timeout server 30s\n"
            f"frontend proxied\n    bind {HOST}:{viaProxy}\n    default_backend proxied\n"
            f"frontend hop\n    bind {HOST}:{viaHop}\n    default_backend hop\n"
            f"backend proxied\n    server s {HOST}:{behind} send-proxy-v2\n"
            f"backend hop\n    server s {HOST}:{direct}\n"
        )
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *filter(None, [environment.get("PYTHONPATH")])]
        )
        server = pop3kit(
            workdir,
            root,
            "server",
            [f"tcp:{direct}:interface={HOST}", f"haproxy:tcp:{behind}:interface={HOST}"],
        )
        withState = pop3kit(
            workdir,
            root,
            "server-state",
            [f"tcp:{stateful}:interface={HOST}"],
            "--state",
            f"redis://{HOST}:{redisPort}/0",
        )
        with (
            running([redis, str(workdir / "redis.conf")], redisPort, "redis-server"),
            running(server, direct, "pop3kit", cwd=REPO, env=environment),
            running(withState, stateful, "pop3kit --state", cwd=REPO, env=environment),
            running([haproxy, "-db", "-f", str(workdir / "haproxy.cfg")], viaProxy, "haproxy"),
        ):
            paths = {
                "direct": direct,
                "haproxy_send_proxy_v2": viaProxy,
                "haproxy_no_header": viaHop,
                "direct_with_redis_state": stateful,
            }
            for port in paths.values():  # warm-up
                for _ in range(20):
                    session(port)
            times: dict[str, list[float]] = {name: [] for name in paths}
            log(f"{count} sequential sessions per path, interleaved")
            for _ in range(count):
                for name, port in paths.items():
                    times[name].append(session(port))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    results: dict[str, Any] = {name: figures(values) for name, values in times.items()}
    base = results["direct"]
    for result in results.values():
        result["extra_median_ms"] = result["median_ms"] - base["median_ms"]
        result["extra_mean_ms"] = result["mean_ms"] - base["mean_ms"]
    results["sessions_per_path"] = count
    extra = results["haproxy_send_proxy_v2"]["extra_median_ms"]
    results["target_extra_ms"] = TARGET_MS
    results["meets_target"] = extra <= TARGET_MS

    print(f"{'path':<26} {'median ms':>10} {'mean ms':>9} {'p90 ms':>8} {'+median':>8}")
    for name in paths:
        r = results[name]
        print(
            f"{name:<26} {r['median_ms']:>10.3f} {r['mean_ms']:>9.3f} {r['p90_ms']:>8.3f} "
            f"{r['extra_median_ms']:>+8.3f}"
        )
    verdict = "met" if results["meets_target"] else "MISSED"
    print(f"through HAProxy: {extra:+.3f} ms a session (target <= {TARGET_MS} ms: {verdict})")
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if results["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
