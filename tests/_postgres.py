"""
A private PostgreSQL server for the tests: C{initdb} into a temporary directory, the
server on a loopback port chosen by the kernel and a UNIX socket in that directory, run as
an unprivileged user when the tests run as root (PostgreSQL refuses root), and stopped by
its process id when the test process exits.

One server is started per test process, the first time a test asks for it; each test gets
a database of its own (L{PostgreSQLServer.newDatabase}).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

from tests._tools import freePort, missingTool, stopProcess

#: Where Debian installs the server programs (not on C{PATH}).
_BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)

#: The unprivileged user the server runs as when the tests run as root.
_UNPRIVILEGED = "nobody"


def _program(name: str) -> str | None:
    for directory in _BINARIES:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


class PostgreSQLServer:
    """
    One private PostgreSQL server.

    @ivar port: Its loopback TCP port.
    @ivar socketDirectory: The directory of its UNIX socket.
    """

    def __init__(self, initdb: str, postgres: str) -> None:
        self.directory = tempfile.mkdtemp(prefix="pop3kit-pg-")
        self.dataDirectory = os.path.join(self.directory, "data")
        self.socketDirectory = self.directory
        self.port = freePort()
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam(_UNPRIVILEGED)
            os.chown(self.directory, self._user.pw_uid, self._user.pw_gid)
        self._run([initdb, "-D", self.dataDirectory, "-A", "trust", "-U", "postgres", "-E", "UTF8"])
        log = open(os.path.join(self.directory, "server.log"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                *(postgres, "-D", self.dataDirectory, "-p", str(self.port)),
                *("-h", "127.0.0.1", "-k", self.socketDirectory),
                *("-c", "fsync=off", "-c", "max_connections=200"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._dropPrivileges,
        )
        log.close()
        self._waitUntilReady()

    def _dropPrivileges(self) -> None:
        if self._user is not None:
            os.setgid(self._user.pw_gid)
            os.setgroups([])
            os.setuid(self._user.pw_uid)

    def _run(self, command: list[str]) -> None:
        subprocess.run(
            command,
            check=True,
            capture_output=True,
            preexec_fn=self._dropPrivileges,
            cwd=self.directory,
        )

    def _waitUntilReady(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    with open(os.path.join(self.directory, "server.log")) as f:
                        raise RuntimeError(f"PostgreSQL did not start:\n{f.read()}") from None
                time.sleep(0.1)

    def dsn(self, database: str) -> str:
        """
        The connection string of C{database} on this server, over loopback TCP.
        """
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def newDatabase(self) -> str:
        """
        Create an empty database; return its connection string.
        """
        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def stop(self) -> None:
        """
        Stop the server (fast shutdown, then SIGKILL) by its process id, and remove its
        files.
        """
        stopProcess(self.process, signal.SIGINT, 15)
        shutil.rmtree(self.directory, ignore_errors=True)


_server: PostgreSQLServer | None = None


def postgresql() -> PostgreSQLServer:
    """
    This test process's private PostgreSQL server, started at the first call; skips the
    running test (fails it under CI) when PostgreSQL or psycopg is missing.
    """
    global _server
    if _server is None:
        initdb, postgres = _program("initdb"), _program("postgres")
        if initdb is None or postgres is None:
            missingTool("PostgreSQL is not installed (Debian package postgresql)")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            missingTool("psycopg is not installed (pip install 'pop3kit[postgresql]')")
        _server = PostgreSQLServer(initdb, postgres)
        atexit.register(_server.stop)
    return _server
