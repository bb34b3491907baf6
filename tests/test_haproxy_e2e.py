"""
End to end: a private HAProxy (TCP mode, C{send-proxy-v2}) in front of two C{twistd
pop3kit} front-ends that share one Maildir root and one private Redis, used with
L{poplib} as clients would.
"""

from __future__ import annotations

import io
import os
import poplib
import re
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from pop3kit.backends.maildir import deliver
from tests._haproxy import HAProxy
from tests._redis import RedisServer
from tests._tools import freePort
from tests.test_twistd import TWISTD, ServerProcess

_T = TypeVar("_T")

#: The front-end's name, from the APOP timestamp of its greeting (--apop-host).
_FRONT_END = re.compile(rb"@(fe\d)>")

#: Seconds a maildrop lease lasts in this test: short, so a killed front-end's lock
#: frees soon.
LEASE = 2.0


class Client:
    """
    A L{poplib} client through the proxy, driven from a thread.

    @ivar frontEnd: The name of the front-end that answered.
    """

    def __init__(self, port: int) -> None:
        self.pop = poplib.POP3("127.0.0.1", port, timeout=30)
        match = _FRONT_END.search(self.pop.getwelcome())
        assert match is not None, self.pop.getwelcome()
        self.frontEnd = match.group(1).decode()

    def close(self) -> None:
        """
        Close the connection, without QUIT.
        """
        self.pop.close()


class HAProxyEndToEndTests(TestCase):
    """
    Two front-ends behind HAProxy sharing Maildirs and Redis.
    """

    timeout = 180

    async def _inThread(self, work: Callable[[], _T]) -> _T:
        return await deferToThread(work)

    async def _connect(self, port: int, frontEnd: str | None = None) -> Client:
        """
        A client through the proxy, on C{frontEnd} if given (connecting again until the
        round robin lands there).
        """
        for _ in range(20):
            client = await self._inThread(lambda: Client(port))
            if frontEnd is None or client.frontEnd == frontEnd:
                return client
            await self._inThread(client.close)
        self.fail(f"never reached {frontEnd}")

    async def _login(self, port: int, password: str = "secret") -> tuple[str, bytes]:  # noqa: S107
        """
        Log in through the proxy, list UIDLs and quit; C{(front-end, reply)} where the
        reply is the UIDL listing, or the C{-ERR} line of the login.
        """
        client = await self._connect(port)

        def session() -> bytes:
            try:
                client.pop.user("alice")
                client.pop.pass_(password)
            except poplib.error_proto as e:
                return e.args[0]  # type: ignore[no-any-return]
            try:
                return b"\n".join(client.pop.uidl()[1])
            finally:
                client.pop.quit()

        try:
            return client.frontEnd, await self._inThread(session)
        finally:
            await self._inThread(client.close)

    async def _until(self, attempt: Callable[[], object], what: str, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while True:
            result = await attempt()  # type: ignore[misc]
            if result:
                return
            if time.monotonic() > deadline:
                self.fail(f"never {what}")
            await deferLater(reactor, 0.1, lambda: None)

    async def test_twoFrontEnds(self) -> None:
        """
        Sessions land on both front-ends and see the same UIDLs; a second login to a
        maildrop through the other front-end is C{[IN-USE]}; wrong passwords through
        either add to one count; a front-end killed mid-session loses nothing and its lock
        frees after the lease; Redis stopped gives C{[SYS/TEMP]} within 1.5 s, and
        logins work again once it is back.
        """
        redis = RedisServer(self)
        await redis.start()
        root = os.path.abspath(self.mktemp())
        for i in range(3):
            deliver(os.path.join(root, "alice"), io.BytesIO(b"Subject: %d\n\nbody\n" % i))

        ports = [freePort(), freePort()]
        fronts = []
        for i, port in enumerate(ports):
            front = ServerProcess(self)
            front.start(
                [
                    *(sys.executable, "-c", TWISTD),
                    *("--nodaemon", "--pidfile=", "--logfile", front.logFile),
                ],
                [
                    *("--listen", f"haproxy:tcp:{port}:interface=127.0.0.1"),
                    *("--maildir-root", root, "--auth", "memory:alice:secret"),
                    *("--apop", "--apop-host", f"fe{i}"),
                    *("--state", redis.url, "--state-lease", str(LEASE)),
                    *("--failed-login-delay", "0.1", "--failed-login-max-delay", "0.1"),
                ],
            )
            fronts.append(front)
        for front, port in zip(fronts, ports, strict=True):
            await front.waitForLog(f"starting on {port}")
        proxy = HAProxy(self, ports)
        await proxy.start()

        # Sessions land on both front-ends, and both list the same UIDLs.
        listings: dict[str, bytes] = {}
        for _ in range(4):
            frontEnd, listing = await self._login(proxy.port)
            self.assertEqual(listing.count(b"\n"), 2, listing)
            listings.setdefault(frontEnd, listing)
        self.assertEqual(sorted(listings), ["fe0", "fe1"])
        self.assertEqual(listings["fe0"], listings["fe1"])

        # A second login through the other front-end is refused: [IN-USE].
        holder = await self._connect(proxy.port)
        await self._inThread(lambda: (holder.pop.user("alice"), holder.pop.pass_("secret")))
        other = await self._connect(proxy.port, "fe1" if holder.frontEnd == "fe0" else "fe0")
        with self.assertRaises(poplib.error_proto) as refused:
            await self._inThread(lambda: (other.pop.user("alice"), other.pop.pass_("secret")))
        self.assertIn(b"[IN-USE]", refused.exception.args[0])
        await self._inThread(other.close)
        await self._inThread(holder.pop.quit)
        await self._inThread(holder.close)

        # Wrong passwords through either front-end add up to one count for the client.
        seen = set()
        for _ in range(4):
            frontEnd, reply = await self._login(proxy.port, "wrong")
            self.assertIn(b"[AUTH]", reply)
            seen.add(frontEnd)
        self.assertEqual(seen, {"fe0", "fe1"})
        self.assertEqual(redis.command("GET", "pop3kit:failures:127.0.0.1"), "4")
        await self._login(proxy.port)
        self.assertEqual(redis.command("EXISTS", "pop3kit:failures:127.0.0.1"), ":0")

        # fe0 killed mid-session, with a message marked deleted: nothing is lost, and
        # the lock is free once the lease has run out.
        victim = await self._connect(proxy.port, "fe0")
        await self._inThread(lambda: (victim.pop.user("alice"), victim.pop.pass_("secret")))
        await self._inThread(lambda: victim.pop.dele(1))
        process = fronts[0].process
        assert process is not None
        process.kill()
        await self._inThread(process.wait)
        await self._inThread(victim.close)

        async def loggedIn() -> bool:
            frontEnd, reply = await self._login(proxy.port)
            if b"[IN-USE]" in reply:
                return False  # The lease of the dead front-end has not run out yet.
            self.assertEqual(frontEnd, "fe1")
            # Nothing lost: the message marked deleted on fe0 is still there.
            self.assertEqual(reply.count(b"\n"), 2, reply)
            return True

        await self._until(loggedIn, "logged in after the kill")

        # Redis stopped: [SYS/TEMP] within 1.5 s, good password or bad.
        await redis.stop()
        for password in ("secret", "wrong"):
            client = await self._connect(proxy.port)

            def timedLogin(
                client: Client = client, password: str = password
            ) -> tuple[bytes, float]:
                client.pop.user("alice")
                started = time.monotonic()
                try:
                    client.pop.pass_(password)
                except poplib.error_proto as e:
                    return e.args[0], time.monotonic() - started
                return b"+OK", time.monotonic() - started

            reply, elapsed = await self._inThread(timedLogin)
            await self._inThread(client.close)
            self.assertIn(b"[SYS/TEMP]", reply, password)
            self.assertLess(elapsed, 1.5, password)

        # Redis back (empty: it keeps nothing on disk): logins resume by themselves.
        await redis.start()

        async def recovered() -> bool:
            _, reply = await self._login(proxy.port)
            return b"-ERR" not in reply

        await self._until(recovered, "recovered after Redis came back")
