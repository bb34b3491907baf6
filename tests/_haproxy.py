"""
A private HAProxy for the tests: its own configuration in a temporary directory, TCP mode,
loopback ports, the PROXY protocol version 2 to its servers, stopped by its process id.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Sequence

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests._tools import freePort, requireTool, stopProcess


class HAProxy:
    """
    C{haproxy} on 127.0.0.1 spreading connections round-robin over some servers, each
    sent a PROXY v2 header (C{send-proxy-v2}); a server that stops answering is taken out
    of rotation by health checks, and a connection that finds it dead is sent to another.

    @ivar port: The port clients connect to.
    """

    def __init__(self, testCase: TestCase, serverPorts: Sequence[int]) -> None:
        """
        Configure (but do not start) the proxy; it is stopped when the test ends.

        @raise SkipTest: (or C{FailTest} under CI) if C{haproxy} is missing.
        """
        self._binary = requireTool("haproxy", "haproxy")
        self.directory = os.path.abspath(testCase.mktemp())
        os.makedirs(self.directory)
        self.port = freePort()
        self.config = os.path.join(self.directory, "haproxy.cfg")
        servers = "\n".join(
            f"    server fe{i} 127.0.0.1:{port} send-proxy-v2 check inter 300ms fall 1 rise 1"
            for i, port in enumerate(serverPorts)
        )
        with open(self.config, "w") as f:
            f.write(
                "global\n"
                "    maxconn 1000\n"
                "defaults\n"
                "    mode tcp\n"
                "    timeout connect 2s\n"
                "    timeout client 60s\n"
                "    timeout server 60s\n"
                "    retries 2\n"
                "    option redispatch 1\n"
                "frontend pop3\n"
                f"    bind 127.0.0.1:{self.port}\n"
                "    default_backend pop3kit\n"
                "backend pop3kit\n"
                "    balance roundrobin\n"
                f"{servers}\n"
            )
        self.process: subprocess.Popen[bytes] | None = None
        self.output = os.path.join(self.directory, "output")
        testCase.addCleanup(self.stop)

    def _start(self) -> None:
        with open(self.output, "wb") as output:
            self.process = subprocess.Popen(
                [self._binary, "-db", "-f", self.config],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                pass
            if self.process.poll() is not None:
                with open(self.output, encoding="utf-8", errors="replace") as f:
                    raise RuntimeError(f"haproxy exited: {f.read()}")
            if time.monotonic() > deadline:
                raise RuntimeError("haproxy did not listen within 30 s")
            time.sleep(0.02)

    def _stop(self) -> None:
        process, self.process = self.process, None
        stopProcess(process)

    async def start(self) -> None:
        """
        Start the proxy and wait until it listens.
        """
        await deferToThread(self._start)

    async def stop(self) -> None:
        """
        Stop the proxy by its process id.
        """
        await deferToThread(self._stop)
