"""
The C{twistd pop3kit} command: options and service construction.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from twisted.application import strports
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.cred.checkers import ICredentialsChecker, InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.cred.portal import Portal
from twisted.cred.strcred import AuthOptionMixin
from twisted.logger import Logger
from twisted.python import usage

from pop3kit._layout import DEFAULT_DATA_DIR, maildirRoot, passwdPath
from pop3kit.backends.maildir import MaildirRealm, maildirLockPath
from pop3kit.checkers.passwdfile import PasswdFileChecker
from pop3kit.core import (
    DEFAULT_SASL_MECHANISMS,
    NEVER,
)
from pop3kit.core._connection import MAX_BAD_COMMANDS, MAX_FAILED_LOGINS, MAX_SASL_LINE
from pop3kit.cred import ChainedChecker
from pop3kit.interfaces import ILoginHistory
from pop3kit.limits import DEFAULT_MAX_PER_CLIENT, DEFAULT_MAX_UNAUTHENTICATED, ConnectionLimiter
from pop3kit.locking import FileLocker
from pop3kit.policy import MINIMUM_TIMEOUT, InvalidPolicy, ServerPolicy
from pop3kit.sasl import SERVER_MECHANISMS
from pop3kit.server import POP3ServerFactory
from pop3kit.tls import (
    HANDSHAKE_TIMEOUT,
    ServerTLS,
    TLSConfigurationError,
    TLSReloadService,
    implicitTLSEndpoint,
    isImplicitTLS,
)

__all__ = [
    "DEFAULT_LISTEN",
    "Options",
    "makeFactory",
    "makeService",
    "prepareDataDir",
]

#: The default listening endpoint: loopback only, an unprivileged port.
DEFAULT_LISTEN = "tcp:1110:interface=127.0.0.1"

#: The options that set a L{ServerPolicy} field, and the field each sets.
_POLICY_OPTIONS = {
    "timeout": "timeout",
    "handshake-timeout": "handshakeTimeout",
    "failed-login-delay": "failedLoginDelay",
    "failed-login-max-delay": "maximumFailedLoginDelay",
    "max-failed-logins": "maxFailedLogins",
    "max-bad-commands": "maxBadCommands",
    "max-auth-line": "maxSASLLineLength",
    "max-unauthenticated": "maxUnauthenticated",
    "max-per-client": "maxPerClient",
    "allow-cleartext": "allowCleartext",
    "sasl": "sasl",
    "login-delay": "loginDelay",
    "expire": "expire",
    "implementation": "implementation",
    "apop-host": "apopHost",
}


def _parseExpire(value: str) -> int | str:
    if value.upper() == NEVER:
        return NEVER
    if not value.isdigit():
        raise usage.UsageError("--expire takes a number of days or 'never'")
    return int(value)


class Options(usage.Options, AuthOptionMixin):
    """
    Options of C{twistd pop3kit}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve POP3 (RFC 1939, RFC 2449) from Maildirs.  With no options, serves "
        f"./{DEFAULT_DATA_DIR}/: Maildirs under mail/, users in the passwd file there "
        "(add one with: pop3kit user add NAME)."
    )

    # USER/PASS and APOP; refuse --auth types (anonymous, sshkey) nobody could log in with.
    supportedInterfaces = (IUsernamePassword, IUsernameHashedPassword)

    optParameters = [
        ["maildir-root", None, None, "Directory holding one Maildir per user (DIR/alice/)."],
        ["data-dir", None, DEFAULT_DATA_DIR, "Base directory of the zero-configuration mode."],
        ["timeout", None, MINIMUM_TIMEOUT, "Inactivity timeout in seconds (at least 600).", float],
        [
            "failed-login-delay",
            None,
            2.0,
            "Seconds before answering a client's first failed login; doubles with each "
            "further failure from its address.",
            float,
        ],
        [
            "failed-login-max-delay",
            None,
            15.0,
            "The longest failed-login delay, in seconds.",
            float,
        ],
        [
            "max-failed-logins",
            None,
            MAX_FAILED_LOGINS,
            "Failed logins before a connection is closed.",
            int,
        ],
        [
            "max-bad-commands",
            None,
            MAX_BAD_COMMANDS,
            "Invalid commands before a connection is closed.",
            int,
        ],
        [
            "max-auth-line",
            None,
            MAX_SASL_LINE,
            "Longest AUTH line or SASL response, in octets (other commands: 255).",
            int,
        ],
        [
            "max-unauthenticated",
            None,
            DEFAULT_MAX_UNAUTHENTICATED,
            "Connections waiting to log in, overall, before the longest idle is closed.",
            int,
        ],
        [
            "max-per-client",
            None,
            DEFAULT_MAX_PER_CLIENT,
            "Connections waiting to log in from one client address, before its longest "
            "idle is closed.",
            int,
        ],
        [
            "allow-cleartext",
            None,
            "loopback",
            "When passwords may be sent without TLS (USER/PASS, SASL PLAIN and LOGIN): "
            "never, loopback (connections from this host) or always.",
        ],
        [
            "sasl",
            None,
            None,
            "Comma-separated SASL mechanisms to offer, of "
            f"{', '.join(SERVER_MECHANISMS)}.  Default: "
            f"{','.join(DEFAULT_SASL_MECHANISMS)} (plus EXTERNAL with --tls-client-ca).",
        ],
        [
            "tls-certificate",
            None,
            None,
            "PEM file with the server certificate (and its chain): enables STLS and "
            "--listen ssl:PORT.  Reloaded on SIGHUP.",
        ],
        ["tls-key", None, None, "PEM file with the certificate's private key."],
        [
            "tls-client-ca",
            None,
            None,
            "PEM file of the CA whose client certificates are requested (SASL EXTERNAL).",
        ],
        [
            "handshake-timeout",
            None,
            HANDSHAKE_TIMEOUT,
            "Seconds a client has to complete a TLS handshake.",
            float,
        ],
        ["login-delay", None, None, "Minimum seconds between logins (LOGIN-DELAY).", int],
        ["expire", None, None, "Days mail is kept, or 'never' (announced as EXPIRE)."],
        ["implementation", None, None, "Text announced as IMPLEMENTATION in CAPA."],
        ["apop-host", None, "pop3kit", "Host part of the APOP greeting timestamp."],
        [
            "workers",
            None,
            "1",
            "Worker processes serving the listeners, sharing locks, penalties, LOGIN-DELAY "
            "and connection caps: a number, or auto (one per core).",
        ],
        [
            "drain-timeout",
            None,
            30.0,
            "With --workers: seconds the sessions may run after SIGTERM before they are closed.",
            float,
        ],
    ]
    optFlags = [
        ["apop", None, "Offer APOP (needs a checker with reversibly stored passwords)."],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["listen"] = []

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse the plugin's command line, keeping it for the worker processes of
        C{--workers}, which parse it again.
        """
        self["arguments"] = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)  # type: ignore[no-untyped-call]

    def opt_listen(self, description: str) -> None:
        """
        Listen on this Twisted endpoint description (repeatable), e.g. tcp:110,
        tcp:1110:interface=127.0.0.1, or ssl:995 for implicit TLS with the
        --tls-certificate pair.  Default: tcp:1110:interface=127.0.0.1.
        """
        self["listen"].append(description)

    def postOptions(self) -> None:
        """
        Build the server policy from the options (L{ServerPolicy} checks their values)
        and fill in the zero-configuration defaults.
        """
        if self["expire"] is not None:
            self["expire"] = _parseExpire(self["expire"])
        from pop3kit.workers import workerCount

        try:
            self["workers"] = workerCount(str(self["workers"]))
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        if self["sasl"] is not None:
            self["sasl"] = [
                name.strip().upper() for name in self["sasl"].split(",") if name.strip()
            ]
        settings = {field: self[option] for option, field in _POLICY_OPTIONS.items()}
        try:
            self["policy"] = ServerPolicy(apop=bool(self["apop"]), **settings)
        except InvalidPolicy as e:
            option = next(o for o, field in _POLICY_OPTIONS.items() if field == e.field)
            raise usage.UsageError(f"--{option} {e.requirement}") from None
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        self["tls"] = self._loadTLS()
        dataDir = self["data-dir"]
        # The zero-configuration layout is pop3kit's own to create (see prepareDataDir);
        # a --maildir-root given explicitly must exist, so that a typo is not silently
        # served as an empty maildrop.
        self["create-maildir-root"] = self["maildir-root"] is None
        if self["maildir-root"] is None:
            self["maildir-root"] = maildirRoot(dataDir)
        self.setdefault("credCheckers", [])
        self["zero-config-users"] = not self["credCheckers"]

    def _loadTLS(self) -> ServerTLS | None:
        certificate, key, clientCA = (
            self["tls-certificate"],
            self["tls-key"],
            self["tls-client-ca"],
        )
        if (certificate is None) != (key is None):
            raise usage.UsageError("--tls-certificate and --tls-key go together")
        if certificate is None:
            if clientCA is not None:
                raise usage.UsageError("--tls-client-ca needs --tls-certificate and --tls-key")
            if any(isImplicitTLS(description) for description in self["listen"]):
                raise usage.UsageError("--listen ssl:... needs --tls-certificate and --tls-key")
            return None
        try:
            tls = ServerTLS(certificate, key, clientCAPath=clientCA)
        except TLSConfigurationError as e:
            raise usage.UsageError(str(e)) from None
        from twisted.internet import reactor

        for description in self["listen"]:
            if isImplicitTLS(description):
                try:
                    implicitTLSEndpoint(reactor, description, tls)  # type: ignore[arg-type]
                except ValueError as e:
                    raise usage.UsageError(str(e)) from None
        return tls


def _usesDataDir(options: Options) -> bool:
    """
    Whether anything of the zero-configuration layout is in use.
    """
    return bool(options["zero-config-users"] or options["create-maildir-root"])


def prepareDataDir(options: Options) -> None:
    """
    Create what the zero-configuration layout needs and is missing: the data directory
    (mode 0700), its Maildir root and an empty passwd-file (mode 0600); then say on the
    log how to add a user.  Does nothing unless the options use that layout.

    C{twistd pop3kit} calls this when its service starts, after twistd has dropped
    privileges (C{--uid}/C{--gid}), so that what it creates belongs to the service user.
    """
    if not _usesDataDir(options):
        return
    dataDir = options["data-dir"]
    os.makedirs(dataDir, mode=0o700, exist_ok=True)
    if options["create-maildir-root"]:
        os.makedirs(options["maildir-root"], mode=0o700, exist_ok=True)
    if options["zero-config-users"]:
        passwd = passwdPath(dataDir)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(passwd, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        Logger().info(
            "Users are read from {passwd}; add one with: "
            "pop3kit --data-dir {dataDir} user add NAME",
            passwd=os.path.abspath(passwd),
            dataDir=dataDir,
        )


class _DataDirService(Service):
    """
    Runs L{prepareDataDir} when the service starts (after the privilege drop).
    """

    def __init__(self, options: Options) -> None:
        self._options = options

    def startService(self) -> None:
        prepareDataDir(self._options)
        super().startService()  # type: ignore[no-untyped-call]


def _bytesCredentials(checker: ICredentialsChecker) -> ICredentialsChecker:
    """
    Twisted's C{--auth memory:} factory stores names and passwords as L{str}, while
    L{twisted.cred.credentials.IUsernamePassword} credentials carry L{bytes}, so nobody
    could log in.  Store them as UTF-8 bytes instead.
    """
    if isinstance(checker, InMemoryUsernamePasswordDatabaseDontUse):
        checker.users = {
            (name.encode("utf-8") if isinstance(name, str) else name): (
                password.encode("utf-8") if isinstance(password, str) else password
            )
            for name, password in checker.users.items()
        }
    return checker


def makeFactory(
    options: Options,
    *,
    factoryType: type[POP3ServerFactory] = POP3ServerFactory,
    loginHistory: ILoginHistory | None = None,
    limiter: ConnectionLimiter | None = None,
) -> POP3ServerFactory:
    """
    Build the server factory the options describe.

    @param factoryType: L{POP3ServerFactory} or a subclass, to build.
    @param loginHistory: The login history; the factory's own by default.
    @param limiter: The connection limiter; the factory's own by default.
    """
    checkers: Sequence[ICredentialsChecker] = [
        _bytesCredentials(checker) for checker in options["credCheckers"]
    ] or [PasswdFileChecker(passwdPath(options["data-dir"]))]
    if len(checkers) > 1:
        checkers = [ChainedChecker(checkers)]
    realm = MaildirRealm(options["maildir-root"])
    return factoryType(
        Portal(realm, checkers),
        policy=options["policy"],
        tls=options["tls"],
        # Maildir sessions of every process and host exclude each other.
        locker=FileLocker(maildirLockPath),
        loginHistory=loginHistory,
        limiter=limiter,
    )


def makeService(options: Options) -> IService:
    """
    Build the C{twistd pop3kit} service: one listening service per C{--listen}, or with
    C{--workers} more than 1, the L{pop3kit.workers.WorkerSupervisor} of the workers that
    serve them.
    """
    service = MultiService()  # type: ignore[no-untyped-call]
    if _usesDataDir(options):
        _DataDirService(options).setServiceParent(service)  # type: ignore[no-untyped-call]
    tls: ServerTLS | None = options["tls"]
    from twisted.internet import reactor

    if options["workers"] > 1:
        _workersService(options, reactor).setServiceParent(service)  # type: ignore[no-untyped-call]
        return service
    factory = makeFactory(options)

    for description in options["listen"]:
        if isImplicitTLS(description):
            assert tls is not None
            endpoint = implicitTLSEndpoint(reactor, description, tls)  # type: ignore[arg-type]
            listener: IService = StreamServerEndpointService(endpoint, factory)  # type: ignore[no-untyped-call]
        else:
            listener = strports.service(description, factory)  # type: ignore[no-untyped-call]
        listener.setServiceParent(service)  # type: ignore[no-untyped-call]
    if tls is not None:
        TLSReloadService(tls, reactor).setServiceParent(service)  # type: ignore[arg-type, no-untyped-call]
    Logger().info(
        "pop3kit serving Maildirs under {root} on {listen}",
        root=os.path.abspath(options["maildir-root"]),
        listen=", ".join(options["listen"]),
    )
    return service


def _workersService(options: Options, reactor: object) -> IService:
    """
    The parent of C{--workers}: it binds the listeners and keeps the state the workers
    share.
    """
    # Imported here: one process needs none of it.
    from pop3kit._sharedstate import StateKeeperFactory
    from pop3kit.workers import WorkerSupervisor

    policy: ServerPolicy = options["policy"]
    Logger().info(
        "pop3kit serving Maildirs under {root} on {listen} with {count} workers",
        root=os.path.abspath(options["maildir-root"]),
        listen=", ".join(options["listen"]),
        count=options["workers"],
    )
    return WorkerSupervisor(
        reactor,
        count=options["workers"],
        listen=options["listen"],
        arguments=options["arguments"],
        state=StateKeeperFactory(
            reactor,  # type: ignore[arg-type]
            maxUnauthenticated=policy.maxUnauthenticated,
            maxPerClient=policy.maxPerClient,
        ),
        drainTimeout=options["drain-timeout"],
    )
