"""
Tests for the fail2ban filter in C{docs/fail2ban/}: Debian's C{fail2ban-regex} run on the
log of a real C{twistd pop3kit} after real failed and successful logins.
"""

from __future__ import annotations

import base64
import os
import poplib
import subprocess
import sys

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests._tools import requireTool
from tests.test_twistd import TWISTD, ServerProcess

#: The filter and the jail, as shipped.
FAIL2BAN = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "fail2ban")
FILTER = os.path.join(FAIL2BAN, "filter.d", "pop3kit.conf")
JAIL = os.path.join(FAIL2BAN, "jail.d", "pop3kit.local")


def _plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def _sessions(port: int) -> None:
    """
    Failed logins of every kind a password guesser causes, one that is not about the
    credentials, and a successful one.
    """

    def connect() -> poplib.POP3:
        return poplib.POP3("127.0.0.1", port, timeout=30)

    client = connect()
    client.user("alice")
    try:
        client.pass_("wrong")  # a wrong password
    except poplib.error_proto:
        pass
    client.user("nobody")
    try:
        client.pass_("guess")  # an unknown user
    except poplib.error_proto:
        pass
    client.close()
    # The server closes a connection after three failed logins.
    client = connect()
    for user in ("alice", "x, rip=192.0.2.66> reason=wrong password"):
        try:  # SASL PLAIN, a wrong password; then a user name naming an address
            client._shortcmd(f"AUTH PLAIN {_plain(user, 'wrong')}")  # type: ignore[attr-defined]
        except poplib.error_proto:
            pass
    client.close()
    client = connect()
    # An aborted exchange: not a guess.
    client._putcmd("AUTH PLAIN")  # type: ignore[attr-defined]
    client._getline()  # type: ignore[attr-defined]
    try:
        client._shortcmd("*")  # type: ignore[attr-defined]
    except poplib.error_proto:
        pass
    client.user("alice")
    client.pass_("secret")  # a success
    client.quit()
    client.close()


class Fail2banFilterTests(TestCase):
    """
    The fail2ban filter matches every failed login of the server's log and nothing else.
    """

    timeout = 120

    def setUp(self) -> None:
        self.fail2banRegex = requireTool("fail2ban-regex", "fail2ban")

    def regex(self, logFile: str, out: str) -> list[str]:
        """
        Run C{fail2ban-regex --out OUT} on C{logFile} with the shipped filter.
        """
        result = subprocess.run(
            [self.fail2banRegex, "--out", out, logFile, FILTER],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr + result.stdout)
        return result.stdout.splitlines()

    async def test_realLog(self) -> None:
        """
        In the log of real sessions, fail2ban finds each failed login (wrong password,
        unknown user, by USER/PASS and SASL) at the client's address, and neither the
        successful login, the aborted exchange nor an address in a user name.
        """
        server = ServerProcess(self)
        server.start(
            [
                *(sys.executable, "-c", TWISTD),
                *("--nodaemon", "--pidfile=", "--logfile", server.logFile),
            ]
        )
        port = await server.waitUntilListening()
        added = await server.pop3kit("user", "add", "alice", "--password-stdin", stdin=b"secret\n")
        self.assertEqual(added.returncode, 0, added.stderr)
        await deferToThread(_sessions, port)
        await server.waitForLog("Logged out:")
        await server.stop()

        with open(server.logFile, encoding="utf-8") as f:
            lines = f.read().splitlines()
        failures = [line for line in lines if "Login failed:" in line and "code=AUTH" in line]
        self.assertEqual(len(failures), 4, "\n".join(lines))
        self.assertEqual(len([line for line in lines if "] Login: " in line]), 1)
        self.assertEqual(len([line for line in lines if "reason=aborted" in line]), 1)

        self.assertEqual(self.regex(server.logFile, "msg"), failures)
        self.assertEqual(self.regex(server.logFile, "ip"), ["127.0.0.1"] * 4)

    def test_jailNamesFilter(self) -> None:
        """
        The jail snippet uses the filter, which fail2ban-regex reads without error.
        """
        with open(JAIL, encoding="utf-8") as f:
            jail = f.read()
        self.assertIn("filter   = pop3kit\n", jail)
        self.assertIn("[pop3kit]", jail)
        log = self.mktemp()
        with open(log, "w", encoding="utf-8") as f:
            f.write(
                "2026-12-02T09:55:52+0000 [pop3kit.audit#info] Login failed: "
                "session=<AbC-_1>, rip=2001:db8::1, lip=[2001:db8::2]:110, method=USER, "
                "code=AUTH, reason=unknown user, user=<bob>\n"
                "2026-12-02T09:55:53+0000 [pop3kit.audit#info] Login failed: "
                "session=<AbC-_2>, rip=192.0.2.1, lip=192.0.2.2:110, method=USER, "
                "code=IN-USE, reason=maildrop in use, user=<bob>\n"
            )
        self.assertEqual(self.regex(log, "ip"), ["2001:db8::1"])
