"""
A throwaway MIT Kerberos realm for the GSSAPI tests: its own C{krb5.conf}, C{kdc.conf},
database, keytab and credential cache under a temporary directory, and a private
C{krb5kdc} on a free loopback port, stopped by its PID.

The realm's configuration reaches every Kerberos user (this process through python-gssapi,
and the C{kinit}, C{fetchmail}, C{curl} and Dovecot it starts) through the environment:
L{KDC.environ} holds C{KRB5_CONFIG}, C{KRB5_KDC_PROFILE}, C{KRB5CCNAME}, C{KRB5_KTNAME}
and C{KRB5RCACHENAME}; L{KDC.activate} puts them into L{os.environ} for the duration of a
test.  The system's Kerberos configuration is never read or touched.

Host names are never canonicalised (C{rdns = false}, C{dns_canonicalize_hostname =
false}), so a client asking for C{pop@localhost} gets a ticket for C{pop/localhost}
whatever the resolver says.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests._tools import findTool, freePort

#: The test realm.
REALM = "POP3KIT.TEST"

#: The host name the tests connect to, and so the service principal's host part.
SERVICE_HOST = "localhost"

#: The service principal pop3kit's server (and the private Dovecot) accept.
SERVICE = f"pop/{SERVICE_HOST}@{REALM}"

#: The user with a ticket, and the password C{kinit} gets it with.
USER = "alice"
PASSWORD = "kerberos-secret"

#: The programs the fixture needs: Debian's krb5-kdc, krb5-admin-server and krb5-user.
TOOLS = {
    "krb5kdc": "krb5-kdc",
    "kdb5_util": "krb5-kdc",
    "kadmin.local": "krb5-admin-server",
    "kinit": "krb5-user",
}

#: Why the fixture cannot run here, or L{None} if it can.
SKIP_REASON: str | None = next(
    (
        f"{name} is not installed (Debian package {package})"
        for name, package in TOOLS.items()
        if findTool(name) is None
    ),
    None,
)


def _dieWithParent() -> None:
    """
    In the KDC's process, before it runs: have Linux send it SIGTERM when the test
    process ends, however it ends, so that no KDC outlives the tests.
    """
    import ctypes

    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class KDC:
    """
    A private realm and its running KDC.

    @ivar directory: Where everything lives.
    @ivar port: The KDC's UDP and TCP port on 127.0.0.1.
    @ivar keytab: The keytab holding the key of L{SERVICE}.
    @ivar ccache: The credential cache L{kinit} fills (C{FILE:} form).
    @ivar environ: The environment every Kerberos user of the realm needs.
    """

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="pop3kit-kdc-")
        self.port = freePort()
        self.keytab = os.path.join(self.directory, "pop.keytab")
        self.ccache = "FILE:" + os.path.join(self.directory, "ccache")
        self._process: subprocess.Popen[bytes] | None = None
        krb5conf = os.path.join(self.directory, "krb5.conf")
        kdcconf = os.path.join(self.directory, "kdc.conf")
        self.environ = {
            "KRB5_CONFIG": krb5conf,
            "KRB5_KDC_PROFILE": kdcconf,
            "KRB5CCNAME": self.ccache,
            "KRB5_KTNAME": "FILE:" + self.keytab,
            "KRB5RCACHENAME": "file2:" + os.path.join(self.directory, "rcache"),
        }
        with open(krb5conf, "w") as f:
            f.write(
                "[libdefaults]\n"
                f"  default_realm = {REALM}\n"
                "  rdns = false\n"
                "  dns_canonicalize_hostname = false\n"
                "  dns_lookup_kdc = false\n"
                "  dns_lookup_realm = false\n"
                "  udp_preference_limit = 1\n"
                "[realms]\n"
                f"  {REALM} = {{\n"
                f"    kdc = 127.0.0.1:{self.port}\n"
                "  }\n"
                "[domain_realm]\n"
                f"  {SERVICE_HOST} = {REALM}\n"
            )
        with open(kdcconf, "w") as f:
            f.write(
                "[kdcdefaults]\n"
                f"  kdc_ports = {self.port}\n"
                f"  kdc_tcp_ports = {self.port}\n"
                "[realms]\n"
                f"  {REALM} = {{\n"
                f"    database_name = {self.directory}/principal\n"
                f"    key_stash_file = {self.directory}/stash\n"
                f"    acl_file = {self.directory}/kadm5.acl\n"
                "    max_life = 10h\n"
                "  }\n"
                "[logging]\n"
                f"  kdc = FILE:{self.directory}/kdc.log\n"
            )

    def run(self, *argv: str, input: str | None = None) -> str:
        """
        Run a Kerberos program with the realm's environment.

        @return: Its standard output.
        @raise subprocess.CalledProcessError: If it fails.
        """
        path = findTool(argv[0]) or argv[0]
        result = subprocess.run(
            [path, *argv[1:]],
            input=input,
            capture_output=True,
            text=True,
            env={**os.environ, **self.environ},
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, argv, result.stdout, result.stderr
            )
        return result.stdout

    def kadmin(self, query: str) -> str:
        """
        Run one C{kadmin.local} query on the realm's database.
        """
        return self.run("kadmin.local", "-r", REALM, "-q", query)

    def start(self) -> None:
        """
        Create the database, the user, the service principal and its keytab, and start
        the KDC.
        """
        self.run("kdb5_util", "create", "-s", "-r", REALM, "-P", "master-secret-" + REALM)
        self.addPrincipal(USER, PASSWORD)
        self.kadmin(f"addprinc -randkey {SERVICE}")
        self.kadmin(f"ktadd -k {self.keytab} {SERVICE}")
        path = findTool("krb5kdc")
        assert path is not None
        self._process = subprocess.Popen(
            [path, "-n", "-r", REALM, "-P", os.path.join(self.directory, "kdc.pid")],
            env={**os.environ, **self.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_dieWithParent,
        )
        self._waitForPort()

    def _waitForPort(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"krb5kdc exited: see {self.directory}/kdc.log")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("krb5kdc did not start listening")

    def addPrincipal(self, name: str, password: str, *options: str) -> None:
        """
        Add the principal C{name} with C{password}.
        """
        self.kadmin(" ".join(("addprinc", *options, "-pw", password, name)))

    def keytabFor(self, principal: str, path: str) -> str:
        """
        Create C{principal} (random key) and write its key to a new keytab at C{path}.

        @return: C{path}.
        """
        self.kadmin(f"addprinc -randkey {principal}")
        self.kadmin(f"ktadd -k {path} {principal}")
        return path

    def kinit(
        self,
        principal: str = USER,
        password: str = PASSWORD,
        *options: str,
        ccache: str | None = None,
    ) -> str:
        """
        Get a ticket-granting ticket for C{principal} into C{ccache} (the realm's own by
        default), with the password on standard input.

        @return: The credential cache.
        """
        ccache = ccache or self.ccache
        self.run("kinit", "-c", ccache, *options, principal, input=password + "\n")
        return ccache

    def kdestroy(self) -> None:
        """
        Empty the realm's credential cache.
        """
        path = self.ccache.removeprefix("FILE:")
        if os.path.exists(path):
            os.unlink(path)

    @contextmanager
    def activated(self) -> Iterator[None]:
        """
        Put L{environ} into L{os.environ} while the block runs.
        """
        saved = {name: os.environ.get(name) for name in self.environ}
        os.environ.update(self.environ)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def stop(self) -> None:
        """
        Stop the KDC by its PID and remove the realm.
        """
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        import shutil

        shutil.rmtree(self.directory, ignore_errors=True)
