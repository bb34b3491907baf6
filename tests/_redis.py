"""
A private Redis server for the tests: its own configuration and directory in a temporary
directory, on a loopback port, without persistence, stopped by its process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests._tools import freePort, requireTool, stopProcess


class RedisServer:
    """
    C{redis-server} on 127.0.0.1 for one test, which may stop and restart it (on the
    same port) to play an outage.

    @ivar port: Its port.
    @ivar password: The password it requires, or L{None}.
    """

    def __init__(self, testCase: TestCase, password: str | None = None) -> None:
        """
        Configure (but do not start) a server; it is stopped when the test ends.

        @raise SkipTest: (or C{FailTest} under CI) if C{redis-server} is missing.
        """
        self._binary = requireTool("redis-server", "redis-server")
        self.directory = os.path.abspath(testCase.mktemp())
        os.makedirs(self.directory)
        self.port = freePort()
        self.password = password
        self.config = os.path.join(self.directory, "redis.conf")
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self.directory}",
            'save ""',
            "appendonly no",
            "daemonize no",
            "protected-mode yes",
            f"logfile {os.path.join(self.directory, 'redis.log')}",
        ]
        if password is not None:
            lines.append(f"requirepass {password}")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        testCase.addCleanup(self.stop)

    @property
    def url(self) -> str:
        """
        The C{redis://} URL of database 0, without the password.
        """
        return f"redis://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                if self.password is not None:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    s.recv(100)
                s.sendall(b"PING\r\n")
                return s.recv(100).startswith(b"+PONG")
        except OSError:
            return False

    def _start(self) -> None:
        self.process = subprocess.Popen(
            [self._binary, self.config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not self._ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer within 30 s")
            time.sleep(0.02)

    def _stop(self) -> None:
        process, self.process = self.process, None
        stopProcess(process)

    async def start(self) -> None:
        """
        Start the server and wait until it answers.
        """
        await deferToThread(self._start)

    async def stop(self) -> None:
        """
        Stop the server (by its process id) and wait for it to exit; nothing is saved.
        """
        await deferToThread(self._stop)

    def pause(self) -> None:
        """
        Freeze the server (SIGSTOP): connections stay open, nothing is answered.
        """
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """
        Thaw a paused server.
        """
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def command(self, *arguments: str) -> str:
        """
        Run one command with C{redis-cli}-like simplicity over a raw socket and return
        the reply's first line.
        """
        parts = [f"${len(a.encode())}\r\n{a}\r\n" for a in arguments]
        request = f"*{len(arguments)}\r\n{''.join(parts)}".encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            if self.password is not None:
                s.sendall(f"AUTH {self.password}\r\n".encode())
                s.recv(100)
            s.sendall(request)
            reply = s.recv(65536).decode()
        first, _, rest = reply.partition("\r\n")
        if first.startswith("$") and first != "$-1":
            return rest.partition("\r\n")[0]
        return first
