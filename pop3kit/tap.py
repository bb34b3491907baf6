"""
The C{twistd pop3kit} command: options and service construction.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from twisted.application.service import IService, MultiService, Service
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.cred.portal import Portal
from twisted.cred.strcred import AuthOptionMixin
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from twisted.python import usage

from pop3kit._layout import DEFAULT_DATA_DIR, maildirRoot, passwdPath
from pop3kit._listeners import Announcement, CannotStart, Listener, withBacklog
from pop3kit._ssooptions import SSO_PARAMETERS, loadGSSAPI, loadOAuth2
from pop3kit.backends.maildir import maildirLockPath
from pop3kit.checkers._plaintext import PlaintextSCRAMSource, withBytesPasswords, withSCRAM
from pop3kit.checkers.passwdfile import PasswdFileChecker
from pop3kit.core import (
    DEFAULT_SASL_MECHANISMS,
    NEVER,
)
from pop3kit.core._connection import MAX_BAD_COMMANDS, MAX_FAILED_LOGINS, MAX_SASL_LINE
from pop3kit.cred import ChainedChecker
from pop3kit.delivery import MaildirDelivery
from pop3kit.interfaces import ILoginHistory
from pop3kit.limits import (
    DEFAULT_LOGIN_GRACE,
    DEFAULT_LOGIN_WINDOW,
    DEFAULT_MAX_PER_CLIENT,
    DEFAULT_MAX_UNAUTHENTICATED,
    ConnectionLimiter,
)
from pop3kit.lmtp import LMTPFactory
from pop3kit.locking import FileLocker
from pop3kit.policy import MINIMUM_TIMEOUT, InvalidPolicy, ServerPolicy
from pop3kit.proxy import PROXY_PREFIX, isProxied, proxyEndpointFromString
from pop3kit.sasl import SERVER_MECHANISMS
from pop3kit.server import POP3ServerFactory
from pop3kit.storage import InvalidStorage, MaildirStorage, Storage, parseStorage
from pop3kit.tls import (
    HANDSHAKE_TIMEOUT,
    ServerTLS,
    TLSConfigurationError,
    TLSReloadService,
    certificateFilesOf,
    implicitTLSEndpoint,
    isImplicitTLS,
)

if TYPE_CHECKING:
    from pop3kit.redisstate import RedisState

__all__ = [
    "DEFAULT_LISTEN",
    "CannotStart",
    "Options",
    "checkLayout",
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
    "login-grace": "loginGrace",
    "login-window": "loginWindow",
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
        "Serve POP3 (RFC 1939, RFC 2449) from Maildirs or mbox files.  With no options, serves "
        f"./{DEFAULT_DATA_DIR}/: Maildirs under mail/, users in the passwd file there "
        "(add one with: pop3kit user add NAME)."
    )

    # USER/PASS and APOP; refuse --auth types (anonymous, sshkey) nobody could log in with.
    supportedInterfaces = (IUsernamePassword, IUsernameHashedPassword)

    optParameters = [
        *SSO_PARAMETERS,  # --gssapi-*, --oauth2-*
        ["maildir-root", None, None, "Directory holding one Maildir per user (DIR/alice/)."],
        [
            "storage",
            None,
            None,
            "Where the maildrops are: maildir:ROOT (as --maildir-root) or mbox:TEMPLATE, "
            "one mbox file per user (e.g. mbox:/var/mail/%u; %u user, %n local part, "
            "%d domain).",
        ],
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
            "Idle connections waiting to log in from one client address, before its "
            "longest idle is closed (connections making progress are not counted).",
            int,
        ],
        [
            "login-grace",
            None,
            DEFAULT_LOGIN_GRACE,
            "Seconds a connection waiting to log in may go without an answered command "
            "before it counts as idle.",
            float,
        ],
        [
            "login-window",
            None,
            DEFAULT_LOGIN_WINDOW,
            "Seconds from its arrival during which a connection's commands keep it from "
            "counting as idle.",
            float,
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
        [
            "expire",
            None,
            None,
            "Days retrieved mail is kept, or 'never' (announced and enforced as EXPIRE).",
        ],
        ["implementation", None, None, "Text announced as IMPLEMENTATION in CAPA."],
        ["apop-host", None, "pop3kit", "Host part of the APOP greeting timestamp."],
        [
            "state",
            None,
            None,
            "Keep maildrop locks, failed-login counts and LOGIN-DELAY history in Redis, "
            "shared with other front-ends, and hold --max-per-client across them: "
            "redis://HOST:PORT/DB (needs pop3kit[redis]).  "
            "The password: --state-password-file, or $POP3KIT_STATE_PASSWORD.",
        ],
        [
            "state-password-file",
            None,
            None,
            "File whose first line is the password of the --state server.",
        ],
        [
            "state-lease",
            None,
            30.0,
            "Seconds a maildrop lock in --state lasts unless renewed: how long the locks "
            "of a front-end that died stay held.",
            float,
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics over HTTP on this Twisted endpoint, e.g. "
            "tcp:9110:interface=127.0.0.1.",
        ],
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
        [
            "no-stls",
            None,
            "Serve TLS only on ssl: listeners: offer no STLS on the others.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["listen"] = []
        self["lmtp"] = []

    def opt_version(self) -> None:  # type: ignore[override]
        """
        Show pop3kit's version (and Twisted's), and exit.
        """
        import twisted
        from pop3kit import __version__

        print(f"pop3kit {__version__} (Twisted {twisted.__version__})")
        raise SystemExit(0)

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
        --tls-certificate pair (or ssl:995:privateKey=key.pem:certKey=cert.pem, whose
        certificate then also serves STLS); haproxy:tcp:... behind a proxy that sends the
        PROXY protocol header (v1 or v2).  Default: tcp:1110:interface=127.0.0.1.
        """
        self["listen"].append(description)

    def opt_lmtp(self, description: str) -> None:
        """
        Also accept mail over LMTP (RFC 2033) on this endpoint (repeatable), e.g.
        unix:/run/pop3kit/lmtp or tcp:24:interface=127.0.0.1, and store it in the
        maildrops served (mail for users the checkers do not know is refused).
        """
        self["lmtp"].append(description)

    def postOptions(self) -> None:
        """
        Build the server policy from the options (L{ServerPolicy} checks their values)
        and fill in the zero-configuration defaults.
        """
        self["gssapi"], self["oauth2"] = loadGSSAPI(self), loadOAuth2(self)
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
        for description in self["listen"]:
            if isProxied(description) and isImplicitTLS(description[len(PROXY_PREFIX) :]):
                raise usage.UsageError(
                    f"--listen {description}: implicit TLS behind the PROXY protocol is not "
                    "supported; use haproxy:tcp:... (STLS passes through a proxy in TCP mode)"
                )
        self["tls"] = self._loadTLS()
        self["state-service"] = self._loadState()
        if self["metrics"] is not None:
            _checkEndpoint("--metrics", self["metrics"])
        dataDir = self["data-dir"]
        # The zero-configuration layout is pop3kit's own to create (see prepareDataDir);
        # a --maildir-root given explicitly must exist, so that a typo is not silently
        # served as an empty maildrop.
        storage = self._parseStorage()
        self["create-maildir-root"] = self["maildir-root"] is None and storage is None
        if self["maildir-root"] is None:
            self["maildir-root"] = maildirRoot(dataDir)
        self["storage-backend"] = storage or MaildirStorage(self["maildir-root"])
        self.setdefault("credCheckers", [])
        self["zero-config-users"] = not self["credCheckers"]

    def _loadState(self) -> RedisState | None:
        url = self["state"]
        if url is None:
            if self["state-password-file"] is not None:
                raise usage.UsageError("--state-password-file needs --state")
            return None
        if self["state-lease"] <= 0:
            raise usage.UsageError("--state-lease must be positive")
        try:
            from pop3kit.redisstate import InvalidStateURL, RedisState
        except ImportError:
            raise usage.UsageError(
                "--state redis://... needs the txredisapi package: pip install 'pop3kit[redis]'"
            ) from None
        password = None
        if self["state-password-file"] is not None:
            try:
                with open(self["state-password-file"], encoding="utf-8") as f:
                    password = f.readline().rstrip("\r\n")
            except OSError as e:
                raise usage.UsageError(f"--state-password-file: {e.strerror}") from None
        try:
            return RedisState.fromURL(url, password=password)
        except InvalidStateURL as e:
            raise usage.UsageError(f"--state {e}") from None

    def _parseStorage(self) -> Storage | None:
        """
        The storage C{--storage} names, or L{None}; C{maildir:ROOT} also sets
        C{--maildir-root}.
        """
        if self["storage"] is None:
            return None
        if self["maildir-root"] is not None:
            raise usage.UsageError("--storage and --maildir-root do not go together")
        try:
            storage = parseStorage(self["storage"])
        except InvalidStorage as e:
            raise usage.UsageError(f"--storage {e}") from None
        if isinstance(storage, MaildirStorage):
            self["maildir-root"] = storage.root
        return storage

    def _loadTLS(self) -> ServerTLS | None:
        certificate, key, clientCA = (
            self["tls-certificate"],
            self["tls-key"],
            self["tls-client-ca"],
        )
        if (certificate is None) != (key is None):
            raise usage.UsageError("--tls-certificate and --tls-key go together")
        if certificate is None:
            # Twisted's own way, as for every other twistd plugin: the first ssl: listener
            # that names its files (privateKey=, certKey=) gives the certificate to all.
            named = [
                files for files in map(certificateFilesOf, self["listen"]) if files is not None
            ]
            if named:
                certificate, key = named[0]
        if certificate is None:
            if clientCA is not None:
                raise usage.UsageError("--tls-client-ca needs --tls-certificate and --tls-key")
            if any(isImplicitTLS(description) for description in self["listen"]):
                raise usage.UsageError(
                    "--listen ssl:... needs a certificate: --tls-certificate and --tls-key, "
                    "or ssl:995:privateKey=KEY.pem:certKey=CERT.pem"
                )
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


def _checkEndpoint(option: str, description: str) -> None:
    """
    Refuse a server endpoint description Twisted cannot parse, in one line.
    """
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    try:
        serverFromString(reactor, description)  # type: ignore[no-untyped-call]
    except (ValueError, KeyError, TypeError) as e:
        raise usage.UsageError(f"{option} {description}: {e}") from None


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
        try:
            prepareDataDir(self._options)
        except OSError as e:
            where = e.filename or self._options["data-dir"]
            raise CannotStart(f"--data-dir {where}: {e.strerror or e}") from None
        super().startService()  # type: ignore[no-untyped-call]


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
        withSCRAM(withBytesPasswords(checker)) for checker in options["credCheckers"]
    ] or [PasswdFileChecker(passwdPath(options["data-dir"]))]
    if len(checkers) > 1:
        checkers = [ChainedChecker(checkers)]
    for extra in ("gssapi", "oauth2"):
        if options.get(extra) is not None:
            checkers = [*checkers, options[extra]]
    storage = _storageOf(options)
    realm = storage.makeRealm()
    shared: dict[str, object] = {}
    makeLocker = getattr(storage, "makeLocker", None)
    if makeLocker is not None:
        # A backend with a lock of its own (PostgreSQL's advisory locks).
        shared["locker"] = makeLocker()
    elif isinstance(storage, MaildirStorage):
        # Maildir sessions of every process and host exclude each other.
        shared["locker"] = FileLocker(maildirLockPath)
    if loginHistory is not None:
        shared["loginHistory"] = loginHistory
    if limiter is not None:
        shared["limiter"] = limiter
    state: RedisState | None = options.get("state-service")
    if state is not None:
        from pop3kit.redisstate import (
            DEFAULT_FORGET_LOGINS_AFTER,
            RedisConnectionLimiter,
            RedisLocker,
            RedisLoginHistory,
        )

        policy: ServerPolicy = options["policy"]
        shared["locker"] = RedisLocker(state, lease=options["state-lease"])
        shared["loginHistory"] = RedisLoginHistory(
            state,
            forgetLoginsAfter=max(DEFAULT_FORGET_LOGINS_AFTER, policy.loginDelay or 0),
        )
        if limiter is None:
            # The per-address cap across front-ends.  Workers keep the limiter they share
            # through their parent: their cap holds per host.
            shared["limiter"] = RedisConnectionLimiter(
                state,
                maxUnauthenticated=policy.maxUnauthenticated,
                maxPerClient=policy.maxPerClient,
                loginGrace=policy.loginGrace,
                loginWindow=policy.loginWindow,
            )
    # Implicit-TLS listeners get the certificate from their endpoint, not the factory.
    tls = None if options["no-stls"] else options["tls"]
    return factoryType(
        Portal(realm, checkers),
        policy=options["policy"],
        tls=tls,
        **shared,  # type: ignore[arg-type]
    )


def _knownUsers(portal: Portal) -> Callable[[str], bool] | None:
    """
    Tell whether a user has an account, from the portal's checkers where they can tell:
    a passwd-file's entries, or the names of C{--auth memory:} and C{--auth file:}.
    L{None} when some checker cannot tell (every name is then accepted).
    """
    checkers = list(dict.fromkeys(portal.checkers.values()))
    if isinstance(checkers[0], ChainedChecker) and len(checkers) == 1:
        checkers = list(checkers[0].checkers)
    tellers: list[Callable[[str], bool]] = []
    for checker in checkers:
        # makeFactory wraps --auth memory: and file: in a PlaintextSCRAMSource.
        if not isinstance(checker, (PasswdFileChecker, PlaintextSCRAMSource)):
            return None
        tellers.append(checker.hasUser)
    return lambda name: any(known(name) for known in tellers)


def _makeLMTPFactory(options: Options, portal: Portal, reactor: IReactorThreads) -> LMTPFactory:
    """
    The LMTP listener's factory: delivery into the maildrops the POP3 service serves.
    """
    storage = _storageOf(options)
    makeDelivery = getattr(storage, "makeDelivery", None)
    if makeDelivery is not None:
        delivery = makeDelivery(_knownUsers(portal))
    elif isinstance(storage, MaildirStorage):
        delivery = MaildirDelivery(storage.root, reactor, knownUser=_knownUsers(portal))
    else:
        raise CannotStart(f"--lmtp cannot deliver into {storage.description}")
    return LMTPFactory(delivery)


def _addLMTPListeners(
    options: Options, portal: Portal, reactor: IReactorThreads, service: MultiService
) -> None:
    """
    Add a listener to C{service} for each C{--lmtp} endpoint.

    @raise CannotStart: If an endpoint description is not valid.
    """
    if not options["lmtp"]:
        return
    lmtp = _makeLMTPFactory(options, portal, reactor)
    for description in options["lmtp"]:
        try:
            endpoint = serverFromString(reactor, description)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise CannotStart(f"--lmtp {description!r} is not a valid endpoint: {e}") from None
        Listener(description, endpoint, lmtp).setServiceParent(service)  # type: ignore[no-untyped-call]


def _storageOf(options: Options) -> Storage:
    """
    The storage the options name: C{--storage}, else the Maildirs of C{--maildir-root}.
    """
    storage: Storage | None = options.get("storage-backend")
    return storage or MaildirStorage(options["maildir-root"])


def _checkDirectory(option: str, path: str, mustExist: bool) -> None:
    """
    Refuse a path that is there but not a directory, or, if C{mustExist}, missing.

    @raise CannotStart: If so, naming the option and the path.
    """
    if not os.path.lexists(path):
        if mustExist:
            raise CannotStart(f"{option} {path}: no such directory")
    elif not os.path.isdir(path):
        raise CannotStart(f"{option} {path}: not a directory")


def checkLayout(options: Options) -> None:
    """
    Refuse, before anything listens, a C{--maildir-root} that is missing or not a
    directory, and a C{--data-dir} (or its C{mail/}) that is there but not a directory:
    otherwise every login would fail with C{[SYS/TEMP]}.  What the zero-configuration
    layout lacks is created later, by L{prepareDataDir}.

    @raise CannotStart: With the option and the path.
    """
    if _usesDataDir(options):
        _checkDirectory("--data-dir", options["data-dir"], mustExist=False)
    if not isinstance(_storageOf(options), MaildirStorage):
        return
    option = "--data-dir" if options["create-maildir-root"] else "--maildir-root"
    _checkDirectory(option, options["maildir-root"], not options["create-maildir-root"])


def _metricsService(factory: POP3ServerFactory, description: str) -> IService:
    """
    The service serving the metrics of C{factory}'s sessions on C{description}.
    """
    from twisted.internet import reactor

    from pop3kit.metrics import MetricsObserver, metricsService

    observer = MetricsObserver()
    factory.auditLog.addObserver(observer)
    return metricsService(reactor, description, observer.registry)  # type: ignore[arg-type]


def makeService(options: Options) -> IService:
    """
    Build the C{twistd pop3kit} service: one listening service per C{--listen}, or with
    C{--workers} more than 1, the L{pop3kit.workers.WorkerSupervisor} of the workers that
    serve them.

    @raise CannotStart: If a C{--listen} description is not a valid endpoint, or a
        directory is missing or not a directory (see L{checkLayout}); when the service
        starts, if a port cannot be bound.
    """
    checkLayout(options)
    service = MultiService()  # type: ignore[no-untyped-call]
    if _usesDataDir(options):
        _DataDirService(options).setServiceParent(service)  # type: ignore[no-untyped-call]
    tls: ServerTLS | None = options["tls"]
    from twisted.internet import reactor

    if options["workers"] > 1:
        if options["metrics"] is not None:
            raise CannotStart(
                "--metrics does not work with --workers yet: each worker counts its own "
                "sessions; run one process, or scrape the workers' JSON logs"
            )
        _workersService(options, reactor).setServiceParent(service)  # type: ignore[no-untyped-call]
        # LMTP needs no workers: the parent delivers.
        _addLMTPListeners(options, makeFactory(options).portal, reactor, service)  # type: ignore[arg-type]
        return service
    state: RedisState | None = options.get("state-service")
    if state is not None:
        # Connects when started (after twistd forked), before the listeners.
        state.setServiceParent(service)  # type: ignore[no-untyped-call]
    factory = makeFactory(options)

    listeners = []
    for description in options["listen"]:
        # Messages name the description as given; the endpoint gets the backlog.
        backlogged = withBacklog(description, options["policy"].maxUnauthenticated)
        if isImplicitTLS(description):
            assert tls is not None
            endpoint = implicitTLSEndpoint(reactor, backlogged, tls)  # type: ignore[arg-type]
        elif isProxied(description):
            # Twisted's own haproxy: endpoint connects the session before the header.
            endpoint = proxyEndpointFromString(reactor, description)  # type: ignore[arg-type]
        else:
            try:
                endpoint = serverFromString(reactor, backlogged)  # type: ignore[no-untyped-call]
            except IndexError:
                # The systemd: endpoint, without the socket it names.
                raise CannotStart(
                    f"--listen {description!r}: systemd passed no such socket "
                    "(LISTEN_FDS; start the service through its .socket unit)"
                ) from None
            except (ValueError, TypeError, KeyError) as e:
                raise CannotStart(
                    f"--listen {description!r} is not a valid endpoint: {e}"
                ) from None
        listener = Listener(description, endpoint, factory)
        listener.setServiceParent(service)  # type: ignore[no-untyped-call]
        listeners.append(listener)
    _addLMTPListeners(options, factory.portal, reactor, service)  # type: ignore[arg-type]
    if tls is not None:
        TLSReloadService(tls, reactor).setServiceParent(service)  # type: ignore[arg-type, no-untyped-call]
    if options["metrics"] is not None:
        _metricsService(factory, options["metrics"]).setServiceParent(service)  # type: ignore[no-untyped-call]
    Announcement(_storageOf(options).description, listeners).setServiceParent(service)  # type: ignore[no-untyped-call]
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
        "pop3kit serving {storage} on {listen} with {count} workers",
        storage=_storageOf(options).description,
        listen=", ".join(options["listen"]),
        count=options["workers"],
    )
    return WorkerSupervisor(
        reactor,
        count=options["workers"],
        listen=[withBacklog(d, policy.maxUnauthenticated) for d in options["listen"]],
        arguments=options["arguments"],
        state=StateKeeperFactory(
            reactor,  # type: ignore[arg-type]
            maxUnauthenticated=policy.maxUnauthenticated,
            maxPerClient=policy.maxPerClient,
            loginGrace=policy.loginGrace,
            loginWindow=policy.loginWindow,
        ),
        drainTimeout=options["drain-timeout"],
    )
