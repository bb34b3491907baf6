"""
Tests for socket activation as C{docs/operations.rst} documents it: C{twistd pop3kit
--listen systemd:domain=INET:index=0} serving a socket passed the way systemd passes it
(descriptor 3, C{LISTEN_FDS}, C{LISTEN_PID}).
"""

from __future__ import annotations

import os
import poplib
import shlex
import socket
import subprocess
import sys

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.test_twistd import TWISTD, ServerProcess


class SocketActivationTests(TestCase):
    """
    The server adopts a listening socket it did not open.
    """

    timeout = 120

    async def test_systemdEndpoint(self) -> None:
        """
        A socket passed as systemd does is served: a client gets the greeting and logs
        in, and the log names the session.
        """
        listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(listening.close)
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        port = listening.getsockname()[1]
        fd = listening.fileno()

        server = ServerProcess(self)
        twistd = [sys.executable, "-c", TWISTD, "--nodaemon", "--pidfile="]
        twistd += ["--logfile", server.logFile, "pop3kit"]
        twistd += ["--listen", "systemd:domain=INET:index=0"]
        twistd += ["--data-dir", server.dataDir, "--failed-login-delay", "0"]
        # systemd sets LISTEN_PID to the service's process id: the shell's, which execs.
        command = (
            f"LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=pop3 exec {shlex.join(twistd)} "
            f"3<&{fd} {fd}<&-"
        )
        output = open(os.path.join(server.directory, "output"), "wb")  # noqa: SIM115
        self.addCleanup(output.close)
        server.process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=server.directory,
            env=server.environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            pass_fds=(fd,),
        )
        self.addCleanup(server.stop)
        await server.waitForLog("add one with: pop3kit")
        added = await server.pop3kit("user", "add", "alice", "--password-stdin", stdin=b"pw\n")
        self.assertEqual(added.returncode, 0, added.stderr)

        def session() -> bytes:
            client = poplib.POP3("127.0.0.1", port, timeout=30)
            greeting = client.getwelcome()
            client.user("alice")
            client.pass_("pw")
            client.quit()
            client.close()
            return greeting

        greeting = await deferToThread(session)
        self.assertTrue(greeting.startswith(b"+OK"), greeting)
        await server.waitForLog("Logged out:")
        await server.stop()
