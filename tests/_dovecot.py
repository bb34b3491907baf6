"""
A private Dovecot 2.3 POP3 server for interoperability tests and benchmarks.

Everything it needs lives in one directory: its configuration, its runtime and state
directories, its log, a passwd-file and the users' Maildirs.  It listens on C{127.0.0.2}
only (loopback), on two free ports chosen per instance: POP3 with STLS and implicit-TLS
POP3S.  The system's Dovecot service is neither used nor touched.

Why C{127.0.0.2}: Dovecot treats a connection whose remote address equals its local
address as secure, and would then allow clear-text logins without STLS.  Linux gives a
connection to C{127.0.0.2} the source address C{127.0.0.1}, so this instance's
C{disable_plaintext_auth = yes} is really enforced and STLS is really exercised.

Running as root (CI): the login processes run as Dovecot's own unprivileged users
(C{dovenull}, C{dovecot}, created by the Debian package), and since Dovecot refuses to
access mail as root, the Maildirs belong to C{nobody} and the mail processes run as
C{nobody}.  Running as any other user: every process runs as that user
(C{default_login_user}, C{default_internal_user}), without chroots, and the Maildirs are
that user's.

Messages are put into the Maildirs directly, byte for byte, with L{DovecotServer.deliver}.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from tests._pki import Issued, sharedPKI
from tests._tools import findTool, freePort

#: The Dovecot binary, or L{None} if it is not installed.
DOVECOT: str | None = findTool("dovecot")

#: Why tests that need Dovecot cannot run here, or L{None} if they can.
SKIP_REASON: str | None = (
    None
    if DOVECOT is not None
    else "Dovecot is not installed (Debian packages dovecot-core and dovecot-pop3d)"
)

#: The loopback address Dovecot listens on (see the module docstring).
HOST = "127.0.0.2"

#: Every user's password.
PASSWORD = "dovecot-secret"

#: How the password of each test user is stored: C{PLAIN} allows every mechanism
#: (CRAM-MD5, SCRAM, APOP need the clear password or their own hash); C{SCRAM-SHA-256}
#: allows SCRAM-SHA-256 and the clear-text ones; C{SSHA256} only the clear-text ones.
USERS: Mapping[str, str] = {
    "alice": "PLAIN",
    "scram": "SCRAM-SHA-256",
    "salted": "SSHA256",
}

#: The SASL mechanisms this instance offers (all that Dovecot 2.3 has for these schemes).
MECHANISMS = "plain login cram-md5 scram-sha-1 scram-sha-256 apop"

#: Seconds to wait for Dovecot to listen, and to stop.  After SIGTERM the master takes
#: about 6 s to end (it waits for its log process); after L{STOP_GRACE} it is killed.
START_TIMEOUT = 20.0
STOP_GRACE = 0.5
STOP_TIMEOUT = 10.0


def scramSha256(password: str, iterations: int = 4096) -> str:
    """
    Dovecot's C{{SCRAM-SHA-256}} password hash: C{iterations,salt,StoredKey,ServerKey},
    the last three in base64.
    """
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    clientKey = hmac.digest(salted, b"Client Key", "sha256")
    storedKey = hashlib.sha256(clientKey).digest()
    serverKey = hmac.digest(salted, b"Server Key", "sha256")
    fields = [base64.b64encode(v).decode() for v in (salt, storedKey, serverKey)]
    return "{SCRAM-SHA-256}" + ",".join([str(iterations), *fields])


def passwordHash(password: str, scheme: str) -> str:
    """
    C{password} hashed in one of the schemes of L{USERS}, with its C{{SCHEME}} prefix.
    """
    if scheme == "PLAIN":
        return "{PLAIN}" + password
    if scheme == "SCRAM-SHA-256":
        return scramSha256(password)
    if scheme == "SSHA256":
        salt = secrets.token_bytes(8)
        digest = hashlib.sha256(password.encode() + salt).digest()
        return "{SSHA256}" + base64.b64encode(digest + salt).decode()
    raise ValueError(f"unknown scheme {scheme!r}")


def mailOwner() -> tuple[int, int]:
    """
    The user and group ids Dovecot accesses mail as: the current ones, or C{nobody}'s
    when running as root (Dovecot refuses uid 0 for mail).
    """
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


def _makeTraversable(path: str) -> None:
    """
    Let every user pass through C{path}'s ancestors (search permission only), so that
    Dovecot's unprivileged processes reach files below it: test and temporary directories
    are often created with mode 0700.
    """
    parent = os.path.dirname(path)
    while parent and parent != os.path.dirname(parent):
        mode = os.stat(parent).st_mode
        if not mode & 0o001:
            os.chmod(parent, (mode & 0o7777) | 0o001)
        parent = os.path.dirname(parent)


@dataclass(frozen=True)
class DovecotTLS:
    """
    The certificate files of a Dovecot instance.

    @ivar cafile: The PEM file of the authority that signed the server's certificate.
    @ivar server: The server's certificate (for C{localhost}, 127.0.0.1 and L{HOST}).
    """

    cafile: str
    server: Issued


@cache
def _tls() -> DovecotTLS:
    """
    The certificates for Dovecot, issued once per process by the shared test authority
    (which is itself made afresh in each process).
    """
    pki, _ = sharedPKI()
    server = pki.issue("dovecot", hostnames=("localhost",), addresses=("127.0.0.1", HOST, "::1"))
    return DovecotTLS(pki.ca.certificate, server)


class DovecotServer:
    """
    A private Dovecot instance in a directory of its own.

    @ivar directory: Its directory.
    @ivar port: The POP3 port (STLS offered; clear-text logins refused before it).
    @ivar tlsPort: The POP3S (implicit TLS) port.
    @ivar cafile: The certificate authority's PEM file, for clients.
    @ivar pid: The master process's id while it runs.
    """

    def __init__(self, directory: str, users: Mapping[str, str] = USERS) -> None:
        """
        @param directory: Where everything goes; created if missing.
        @param users: User names and their password schemes (see L{USERS}).
        """
        if DOVECOT is None:
            raise RuntimeError(SKIP_REASON)
        self.directory = os.path.abspath(directory)
        self.users = dict(users)
        self.port = 0
        self.tlsPort = 0
        self.pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        tls = _tls()
        self.cafile = tls.cafile
        self._tls = tls
        self.uid, self.gid = mailOwner()
        # Dovecot's UNIX sockets live in base_dir, whose path must stay short (sun_path
        # holds 108 octets): a directory of its own under the system's temporary one.
        self.runDir = tempfile.mkdtemp(prefix="pop3kit-dovecot-")
        os.chmod(self.runDir, 0o755)  # noqa: S103 - the login processes connect here
        for sub in ("state", "mail", "home"):
            os.makedirs(os.path.join(self.directory, sub), exist_ok=True)
        for sub in ("mail", "home"):
            os.chown(os.path.join(self.directory, sub), self.uid, self.gid)
        # The unprivileged auth and mail processes must reach these.
        os.chmod(self.directory, 0o755)  # noqa: S103
        if os.geteuid() == 0:
            _makeTraversable(self.directory)
        self.configPath = os.path.join(self.directory, "dovecot.conf")
        self.logPath = os.path.join(self.directory, "dovecot.log")
        self.passwdPath = os.path.join(self.directory, "passwd")
        with open(self.passwdPath, "w") as f:
            for name, scheme in self.users.items():
                f.write(f"{name}:{passwordHash(PASSWORD, scheme)}\n")
        os.chmod(self.passwdPath, 0o644)
        for name in self.users:
            self.maildir(name)

    def maildir(self, user: str) -> str:
        """
        The path of C{user}'s Maildir, created (empty) if missing.
        """
        path = os.path.join(self.directory, "mail", user)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
            os.chown(os.path.join(path, sub), self.uid, self.gid)
        os.chown(path, self.uid, self.gid)
        return path

    def deliver(self, user: str, *messages: bytes) -> list[str]:
        """
        Put messages into C{user}'s Maildir exactly as given, in this order.

        @return: The new files' paths.
        """
        maildir = self.maildir(user)
        paths: list[str] = []
        base = int(time.time())
        for message in messages:
            name = f"{base}.M{len(paths):06d}P{os.getpid()}Q{secrets.token_hex(4)}.pop3kit-test"
            tmp = os.path.join(maildir, "tmp", name)
            with open(tmp, "wb") as f:
                f.write(message)
            os.chown(tmp, self.uid, self.gid)
            final = os.path.join(maildir, "new", name)
            os.rename(tmp, final)
            paths.append(final)
        return paths

    def files(self, user: str) -> dict[str, bytes]:
        """
        The message files in C{user}'s Maildir now, by the unique part of their names
        (without Dovecot's C{,S=} / C{:2,} additions).
        """
        maildir = self.maildir(user)
        found = {}
        for sub in ("new", "cur"):
            for name in os.listdir(os.path.join(maildir, sub)):
                with open(os.path.join(maildir, sub, name), "rb") as f:
                    found[name.split(":")[0].split(",")[0]] = f.read()
        return found

    def _config(self) -> str:
        d = self.directory
        uid, gid = self.uid, self.gid
        lines = [
            f"base_dir = {self.runDir}",
            f"state_dir = {d}/state",
            f"instance_name = pop3kit-test-{self.port}",
            f"log_path = {self.logPath}",
            f"info_log_path = {self.logPath}",
            "protocols = pop3",
            f"listen = {HOST}",
            "ssl = yes",
            f"ssl_cert = <{self._tls.server.certificate}",
            f"ssl_key = <{self._tls.server.key}",
            "ssl_min_protocol = TLSv1.2",
            "disable_plaintext_auth = yes",
            f"auth_mechanisms = {MECHANISMS}",
            "auth_failure_delay = 0",
            "auth_verbose = yes",
            "passdb {",
            "  driver = passwd-file",
            f"  args = {self.passwdPath}",
            "}",
            "userdb {",
            "  driver = static",
            f"  args = uid={uid} gid={gid} home={d}/home/%u",
            "}",
            f"mail_location = maildir:{d}/mail/%u",
            f"first_valid_uid = {uid}",
            f"first_valid_gid = {gid}",
            "pop3_uidl_format = %g",
            "service pop3-login {",
            "  chroot =",
            "  inet_listener pop3 {",
            f"    port = {self.port}",
            "  }",
            "  inet_listener pop3s {",
            f"    port = {self.tlsPort}",
            "    ssl = yes",
            "  }",
            "}",
            "service anvil {",
            "  chroot =",
            "}",
            "service imap-login {",
            "  chroot =",
            "}",
        ]
        if os.geteuid() != 0:
            user = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            lines += [
                f"default_login_user = {user}",
                f"default_internal_user = {user}",
                f"default_internal_group = {group}",
            ]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """
        Start Dovecot in the foreground as a child process and wait until both ports
        accept connections.  Ports are chosen afresh on each attempt.
        """
        assert DOVECOT is not None
        lastError = ""
        for _ in range(3):
            self.port, self.tlsPort = freePort(HOST), freePort(HOST)
            if self.port == self.tlsPort:
                continue
            with open(self.configPath, "w") as f:
                f.write(self._config())
            with open(self.logPath, "ab") as log:
                process = subprocess.Popen(
                    [DOVECOT, "-F", "-c", self.configPath],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            self._process = process
            self.pid = process.pid
            if self._waitForPorts(process):
                return
            lastError = self.log()[-2000:]
            self.stop()
        raise RuntimeError(f"Dovecot did not start; its log ends with:\n{lastError}")

    def _waitForPorts(self, process: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        waiting = {self.port, self.tlsPort}
        while waiting and time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            for port in list(waiting):
                with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1):
                    waiting.discard(port)
            if waiting:
                time.sleep(0.05)
        return not waiting

    def stop(self) -> None:
        """
        Stop Dovecot by its process id: SIGTERM to its process group (the master's id,
        which it leads), then SIGKILL if it has not ended in L{STOP_GRACE} seconds.
        """
        process, self._process = self._process, None
        self.pid = None
        if process is not None and process.poll() is None:
            # The whole process group: the master alone waits seconds for its children.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)

    def cleanUp(self) -> None:
        """
        Stop Dovecot and remove its runtime directory (the rest stays, for post-mortems).
        """
        self.stop()
        shutil.rmtree(self.runDir, ignore_errors=True)

    def log(self) -> str:
        """
        Dovecot's log so far.
        """
        try:
            with open(self.logPath, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
