"""
Property tests of the whole server session: whatever a client sends, the server answers
with well-formed responses, never fails internally, and deletes nothing without QUIT.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.backends.memory import MemoryRealm
from pop3kit.server import POP3ServerFactory
from pop3kit.testing import ConnectedServer

MESSAGES = [b"Subject: a\n\n.\nbody\n", b"Subject: b\r\n\r\n..x\r\n", b""]

arguments = st.one_of(
    st.sampled_from(["", "0", "1", "2", "3", "4", "-1", "+1", "x", "1 2", "99999999999999999999"]),
    st.text(alphabet="0123456789 .-+abc\t", max_size=12),
)
keywords = st.sampled_from(
    ["USER", "PASS", "APOP", "QUIT", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP",
     "UIDL", "CAPA", "STLS", "AUTH", "AUTH PLAIN", "AUTH LOGIN", "AUTH SCRAM-SHA-256",
     "UTF8", "LANG", "XYZZY", "user", "rEtR"]
)  # fmt: skip
commandLines = st.one_of(
    st.builds(lambda k, a: (k + " " + a).encode() if a else k.encode(), keywords, arguments),
    st.sampled_from([b"USER alice", b"PASS secret", b"PASS wrong"]),
    st.binary(max_size=300).filter(lambda b: b"\n" not in b),
)
sessions = st.lists(commandLines, max_size=25)


def statusLines(response: bytes) -> list[bytes]:
    """
    The status lines of a response stream: lines that are not part of a multi-line body.
    """
    out = []
    inBody = False
    for line in response.split(b"\r\n")[:-1]:
        if inBody:
            inBody = line != b"."
            continue
        out.append(line)
        inBody = line.startswith(b"+OK ") and _startsBody(line)
    return out


_MULTILINE_STARTS = re.compile(
    rb"\+OK (\d+ messages \(\d+ octets\)"  # LIST
    rb"|\d+ octets"  # RETR
    rb"|capability list follows|unique-id listing follows|top of message follows"
    rb"|SASL mechanisms follow|language listing follows)"
)


def _startsBody(line: bytes) -> bool:
    return _MULTILINE_STARTS.fullmatch(line) is not None


class SessionFuzzTests(SynchronousTestCase):
    """
    Random sessions, mixing valid commands, bad arguments and garbage.
    """

    @settings(max_examples=150, deadline=None)
    @given(sessions, st.booleans())
    def test_anySession(self, lines: list[bytes], pipelined: bool) -> None:
        """
        One well-formed status line (or SASL challenge) per command line, no internal
        failure, and messages are removed only after QUIT.
        """
        realm = MemoryRealm()
        mailbox = realm.getMailbox("alice")
        for message in MESSAGES:
            mailbox.deliver(message)
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        # The limits on bad commands and failed logins have tests of their own.
        factory = POP3ServerFactory(
            Portal(realm, [checker]),
            clock=Clock(),
            failedLoginDelay=0,
            maxBadCommands=10**6,
            maxFailedLogins=10**6,
        )
        connection = ConnectedServer(factory)
        if pipelined:
            response = connection.send(b"".join(line + b"\r\n" for line in lines))
        else:
            response = b"".join(connection.send(line + b"\r\n") for line in lines)
        status = statusLines(response)
        # A QUIT line answering a SASL challenge is a response, not a command.
        quitAt = next(
            (
                i
                for i, line in enumerate(lines)
                if line.rstrip(b" ").upper() == b"QUIT"
                and not (0 < i <= len(status) and status[i - 1].startswith(b"+ "))
            ),
            None,
        )
        expected = len(lines) if quitAt is None else quitAt + 1
        self.assertEqual(len(status), expected, (lines, response))
        for line in status:
            self.assertTrue(line.startswith((b"+OK ", b"-ERR ", b"+ ")), line)
            self.assertLessEqual(len(line) + 2, 512)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertNotIn(b"Traceback", response)
        self.assertEqual(connection.transport.disconnecting, quitAt is not None)
        if quitAt is None:
            self.assertEqual(len(mailbox.messages), len(MESSAGES))
        connection.drop()
        self.assertEqual(realm.activeSessions, {})
