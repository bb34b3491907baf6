"""
Benchmark ``pop3kit fetch`` against mpop, fetchmail and getmail6, all fetching the same
maildrop from a private Dovecot 2.3 over POP3S on loopback, in the same run.

Run from the repository root::

    .venv/bin/python benchmarks/fetch.py            # 10,000 x 8 KiB, and one 200 MiB message
    .venv/bin/python benchmarks/fetch.py --quick    # small sizes, a smoke run
    .venv/bin/python benchmarks/fetch.py --only many --client pop3kit --client mpop

See benchmarks/README.rst ("Fetching") for what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import os
import poplib
import pwd
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests._dovecot import HOST, PASSWORD, SKIP_REASON, DovecotServer  # noqa: E402

CLIENTS = ("pop3kit", "mpop", "fetchmail", "getmail")
CASES = ("many", "large")

#: GNU time, which measures a child's peak RSS (Debian package time), if installed.
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None

#: Seconds one client may take for one fetch before it is killed.
CLIENT_TIMEOUT = 900.0


@dataclass(frozen=True)
class Case:
    """
    One maildrop to fetch: C{count} messages of C{size} octets each.
    """

    name: str
    count: int
    size: int


FULL = {"many": Case("many", 10_000, 8 * 1024), "large": Case("large", 1, 200 * 1024 * 1024)}
QUICK = {"many": Case("many", 500, 8 * 1024), "large": Case("large", 1, 8 * 1024 * 1024)}


@dataclass
class Result:
    """
    One client's fetch of one case.
    """

    client: str
    case: str
    seconds: float | None
    maxRssKiB: int | None
    messages: int
    octets: int
    status: int
    error: str = ""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def messageChunks(size: int, seed: int) -> Iterator[bytes]:
    """
    A plausible LF-stored message of exactly C{size} octets, in chunks of about 1 MiB;
    about one line in a hundred starts with a dot.
    """
    header = (
        f"Return-Path: <sender{seed}@example.org>\n"
        f"From: Sender {seed} <sender{seed}@example.org>\n"
        "To: Bench User <alice@example.com>\n"
        f"Subject: Fetch benchmark message {seed}\n"
        f"Message-ID: <{seed}.fetch-bench@example.org>\n"
        "Date: Tue, 26 Nov 2024 12:00:00 +0000\n"
        "\n"
    ).encode("ascii")
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod %08d\n"
    written = 0
    number = 0
    pending = [header]
    pendingSize = len(header)
    while written + pendingSize < size:
        chunk = line % number
        if number % 97 == 0:
            chunk = b"." + chunk
        number += 1
        pending.append(chunk)
        pendingSize += len(chunk)
        if pendingSize >= 1 << 20:
            data = b"".join(pending)
            yield data
            written += len(data)
            pending, pendingSize = [], 0
    data = b"".join(pending)
    yield data[: size - written - 1] + b"\n"


def fillMaildrop(dovecot: DovecotServer, case: Case) -> None:
    """
    Write the case's messages straight into alice's Maildir (C{new/}).
    """
    maildir = dovecot.maildir("alice")
    base = int(time.time()) - case.count
    for i in range(case.count):
        name = f"{base + i}.M{i:06d}P{os.getpid()}.fetch-bench"
        path = os.path.join(maildir, "new", name)
        with open(path, "wb") as f:
            for chunk in messageChunks(case.size, i):
                f.write(chunk)
        os.chown(path, dovecot.uid, dovecot.gid)


def warmUp(dovecot: DovecotServer) -> int:
    """
    One session that makes Dovecot index the maildrop (so no client pays for it).

    @return: The number of messages.
    """
    context = ssl.create_default_context(cafile=dovecot.cafile)
    client = poplib.POP3_SSL(HOST, dovecot.tlsPort, context=context, timeout=600)
    try:
        client.user("alice")
        client.pass_(PASSWORD)
        count, _ = client.stat()
        client.uidl()
        client.quit()
    finally:
        client.close()
    return int(count)


def run(
    argv: Sequence[str], env: dict[str, str], cwd: str, timeout: float = CLIENT_TIMEOUT
) -> tuple[float | None, int | None, int, str]:
    """
    Run a client process; measure its wall-clock time and peak RSS (from C{wait4}).

    @return: Seconds (L{None} if killed for taking too long), peak RSS in KiB, exit
        status, the tail of its output.
    """
    out = tempfile.TemporaryFile()  # noqa: SIM115
    rssFile = os.path.join(cwd, "maxrss")
    if TIME is not None:
        # A child forked from this (big) Python process would count the pages it shares
        # with it until exec as its own: let the small time(1) fork the client instead.
        argv = [TIME, "-f", "%M", "-o", rssFile, *argv]
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        start_new_session=True,
    )  # fmt: skip
    deadline = started + timeout
    elapsed: float | None
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        now = time.perf_counter()
        if pid:
            elapsed = now - started
            break
        if now > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(process.pid, 0)
            elapsed = None
            break
        time.sleep(0.005)
    process.returncode = os.waitstatus_to_exitcode(status)
    maxRss = usage.ru_maxrss
    if TIME is not None:
        try:
            with open(rssFile) as f:
                maxRss = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            maxRss = 0
    out.seek(0)
    tail = out.read()[-2000:].decode("utf-8", "replace")
    return elapsed, maxRss, process.returncode, tail


def baseEnv(home: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "TMPDIR": home,
        "LC_ALL": "C.UTF-8",
    }


def makeMaildir(path: str, mode: int = 0o700) -> None:
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), mode=mode, exist_ok=True)
        os.chmod(os.path.join(path, sub), mode)
    os.chmod(path, mode)


def runPop3kit(dovecot: DovecotServer, home: str, target: str) -> tuple[Any, ...]:
    env = baseEnv(home) | {"POP3KIT_PASSWORD": PASSWORD, "PYTHONPATH": str(REPO)}
    argv = [
        sys.executable, "-c", "import sys; from pop3kit.cli import main; sys.exit(main())",
        "fetch", f"pop3s://alice@{HOST}:{dovecot.tlsPort}", "--cafile", dovecot.cafile,
        "--keep", "--to", f"maildir:{target}", "--state-file", os.path.join(home, "state"),
    ]  # fmt: skip
    return run(argv, env, home)


def runMpop(dovecot: DovecotServer, home: str, target: str) -> tuple[Any, ...]:
    mpop = shutil.which("mpop")
    assert mpop is not None
    argv = [
        mpop, f"--host={HOST}", f"--port={dovecot.tlsPort}", "--timeout=600",
        "--tls=on", "--tls-starttls=off", f"--tls-trust-file={dovecot.cafile}",
        "--auth=user", "--user=alice", f"--passwordeval=echo {PASSWORD}",
        f"--delivery=maildir,{target}", f"--uidls-file={home}/uidls",
        "--keep=on", "--only-new=off", "--received-header=off", "--quiet",
    ]  # fmt: skip
    return run(argv, baseEnv(home), home)


def runFetchmail(dovecot: DovecotServer, home: str, target: str) -> tuple[Any, ...]:
    fetchmail = shutil.which("fetchmail")
    assert fetchmail is not None
    # fetchmail has no Maildir delivery of its own: it hands each message to an MDA, one
    # process per message (this one writes it into new/ under a unique name).
    mda = os.path.join(home, "deliver.sh")
    with open(os.open(mda, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700), "w") as f:
        f.write(f"#!/bin/sh\nexec cat > \"$(mktemp '{target}/new/fetchmail.XXXXXXXXXX')\"\n")
    rcfile = os.path.join(home, "fetchmailrc")
    with open(os.open(rcfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(
            "set no syslog\nset no bouncemail\n"
            f"poll {HOST} port {dovecot.tlsPort} proto pop3 timeout 600\n"
            f'  user "alice" password "{PASSWORD}" is "alice" here\n'
            f'  ssl sslcertck sslcertfile "{dovecot.cafile}" sslcommonname "localhost"\n'
            "  no rewrite\n"
            f'  mda "{mda}"\n'
        )
    env = baseEnv(home) | {"FETCHMAILHOME": home}
    argv = [
        fetchmail, "--fetchmailrc", rcfile, "--pidfile", os.path.join(home, "fetchmail.pid"),
        "--keep", "--fetchall", "--silent", "--invisible",
    ]  # fmt: skip
    return run(argv, env, home)


def runGetmail(dovecot: DovecotServer, home: str, target: str) -> tuple[Any, ...]:
    getmail = shutil.which("getmail")
    assert getmail is not None
    asNobody = os.geteuid() == 0
    getmaildir = os.path.join(home, "getmail")
    os.makedirs(getmaildir, exist_ok=True)
    with open(os.path.join(getmaildir, "getmailrc"), "w", encoding="utf-8") as f:
        f.write(
            "[retriever]\n"
            "type = SimplePOP3SSLRetriever\n"
            f"server = {HOST}\n"
            f"port = {dovecot.tlsPort}\n"
            "username = alice\n"
            f"password = {PASSWORD}\n"
            f"ca_certs = {dovecot.cafile}\n"
            "timeout = 600\n"
            "\n"
            "[destination]\n"
            "type = Maildir\n"
            f"path = {target}/\n" + ("user = nobody\n" if asNobody else "") + "\n"
            "[options]\n"
            "delete = false\n"
            "read_all = true\n"
            "delivered_to = false\n"
            "received = false\n"
            "verbose = 0\n"
        )
    argv = [getmail, "--getmaildir", getmaildir, "--rcfile", "getmailrc"]
    return run(argv, baseEnv(home), home)


RUNNERS: dict[str, Callable[[DovecotServer, str, str], tuple[Any, ...]]] = {
    "pop3kit": runPop3kit,
    "mpop": runMpop,
    "fetchmail": runFetchmail,
    "getmail": runGetmail,
}


def countStored(target: str) -> tuple[int, int]:
    """
    The number of message files in a Maildir and their total size.
    """
    count = octets = 0
    for sub in ("new", "cur"):
        for entry in os.scandir(os.path.join(target, sub)):
            count += 1
            octets += entry.stat().st_size
    return count, octets


def available(client: str) -> str | None:
    """
    Why C{client} cannot run here, or L{None}.
    """
    binary = {"mpop": "mpop", "fetchmail": "fetchmail", "getmail": "getmail"}.get(client)
    if binary is not None and shutil.which(binary) is None:
        return f"{binary} is not installed"
    if client == "getmail" and os.geteuid() == 0:
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            return "getmail refuses to deliver as root, and there is no user nobody"
    return None


def benchmarkCase(workdir: Path, case: Case, clients: Sequence[str], repeat: int) -> list[Result]:
    """
    Fill a fresh Dovecot with the case's messages and let each client fetch them all,
    C{repeat} times each (into a fresh Maildir each time, all mail kept on the server).
    """
    base = workdir / case.name
    dovecot = DovecotServer(str(base / "dovecot"))
    log(f"[{case.name}] writing {case.count} x {case.size} octets")
    fillMaildrop(dovecot, case)
    results = []
    dovecot.start()
    try:
        started = time.perf_counter()
        count = warmUp(dovecot)
        log(
            f"[{case.name}] Dovecot indexed {count} messages"
            f" in {time.perf_counter() - started:.1f} s"
        )
        for attempt in range(repeat):
            for client in clients:
                why = available(client)
                if why is not None:
                    log(f"[{case.name}] {client}: skipped, {why}")
                    continue
                home = str(base / f"{client}-{attempt}")
                os.makedirs(home)
                os.chmod(home, 0o755)  # noqa: S103 - getmail delivers as nobody
                target = os.path.join(home, "Maildir")
                makeMaildir(target, 0o777 if client == "getmail" else 0o700)
                seconds, rss, status, tail = RUNNERS[client](dovecot, home, target)
                stored, octets = countStored(target)
                error = ""
                if status != 0 or stored != case.count:
                    error = (
                        f"status {status}, {stored} of {case.count} stored: {tail.strip()[-300:]}"
                    )
                result = Result(client, case.name, seconds, rss, stored, octets, status, error)
                results.append(result)
                shown = f"{seconds:.2f} s" if seconds is not None else "timed out"
                log(f"[{case.name}] {client}: {shown}, peak RSS {rss / 1024:.0f} MiB {error}")
                shutil.rmtree(target, ignore_errors=True)
    finally:
        dovecot.cleanUp()
    return results


def table(results: Sequence[Result], cases: dict[str, Case]) -> str:
    """
    The best time and the peak RSS of each client for each case.
    """
    lines = [
        f"{'case':<34} {'client':<10} {'best time':>10} {'MB/s':>8} {'msgs/s':>9} {'peak RSS':>10}",
    ]
    for name, case in cases.items():
        label = (
            f"{case.count:,} x {case.size // 1024:,} KiB"
            if case.count > 1
            else f"1 x {case.size // (1 << 20)} MiB"
        )
        for client in CLIENTS:
            runs = [r for r in results if r.case == name and r.client == client]
            if not runs:
                continue
            good = [r for r in runs if not r.error and r.seconds is not None]
            rss = max(r.maxRssKiB or 0 for r in runs)
            if not good:
                lines.append(
                    f"{label:<34} {client:<10} {'FAILED':>10} {'':>8} {'':>9}"
                    f" {rss / 1024:>7.0f} MiB"
                )
                continue
            best = min(r.seconds for r in good if r.seconds is not None)
            rate = case.count * case.size / best / 1e6
            lines.append(
                f"{label:<34} {client:<10} {best:>8.2f} s {rate:>8.1f} {case.count / best:>9.0f}"
                f" {rss / 1024:>7.0f} MiB"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--only", choices=CASES, action="append", help="run only this case")
    parser.add_argument("--client", choices=CLIENTS, action="append", help="run only this client")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--repeat", type=int, default=1, help="fetches per client (best counts)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: temporary)")
    args = parser.parse_args(argv)
    if SKIP_REASON is not None:
        log(SKIP_REASON)
        return 1
    cases = {
        name: case
        for name, case in (QUICK if args.quick else FULL).items()
        if not args.only or name in args.only
    }
    clients = [c for c in CLIENTS if not args.client or c in args.client]
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="fetch-", dir=args.workdir))
    else:
        workdir = Path(tempfile.mkdtemp(prefix="pop3kit-fetch-bench-"))
    os.chmod(workdir, 0o755)  # noqa: S103 - Dovecot and getmail run as other users
    # The test PKI (tests/_pki.py) writes its files into the working directory.
    os.chdir(workdir)
    results: list[Result] = []
    try:
        for case in cases.values():
            results += benchmarkCase(workdir, case, clients, args.repeat)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(
        f"Fetching from Dovecot 2.3 over POP3S on loopback{' (QUICK sizes)' if args.quick else ''}"
        f", into a Maildir, all mail kept on the server; {os.cpu_count()} CPUs shared by "
        "server and client"
    )
    print(table(results, cases))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
