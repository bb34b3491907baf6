"""
The public names of pop3kit's modules are pinned: a change to them is a deliberate API
change, documented and announced in a newsfragment.
"""

from __future__ import annotations

import importlib

from twisted.trial.unittest import SynchronousTestCase

PINNED = {
    "pop3kit.core": [
        # Commands, both roles: parsed by a server, built and sent by a client.
        "KEYWORDS", "Command", "Apop", "Auth", "Capa", "Dele", "Lang", "List", "Noop", "Pass",
        "Quit", "Retr", "Rset", "Stat", "Stls", "Top", "Uidl", "User", "Utf8", "parseCommand",
        "CommandTooLong", "MAX_COMMAND_LINE",
        # Replies as values, both roles.
        "Reply", "Ok", "Err", "MultiLine", "Continuation", "Greeting", "StatusLine",
        "ResponseKind", "ResponseCode", "MAX_RESPONSE_LINE",
        # Capabilities and the one table of login methods.
        "Capabilities", "NEVER", "LANGUAGES", "LOGIN_METHODS", "LoginMethod", "Credential",
        "loginMethod", "SASL_MECHANISMS", "CLEARTEXT_MECHANISMS", "TLS_MECHANISMS",
        "DEFAULT_SASL_MECHANISMS", "CLIENT_PREFERENCE",
        # The errors of both roles.
        "POP3Error", "ProtocolError", "LocalProtocolError", "RemoteProtocolError",
        "ServerProtocolError", "IllegalCommand", "AuthenticationFailed", "LoginDelayed",
        "MaildropInUse", "MessageUnavailable", "NoSuchMessage", "PermanentFailure",
        "TemporaryFailure",
        # The server's session: states, transitions, events and outcomes.
        "ServerConnection", "State", "TRANSITIONS", "LEGAL_COMMANDS", "isLegal",
        "ServerEvent", "PasswordLogin", "APOPLogin", "SASLLogin", "SASLResponse",
        "SASLAborted", "StartTLS", "Retrieve", "Expunge", "Outcome", "LoginAccepted",
        "LoginRefused", "SASLChallenge", "InitialResponseRefused", "BeginTLS", "BodyFollows",
        "BodySent", "Goodbye", "Evicted", "MaildropView", "UserSettings",
        # The client's session and its events.
        "ClientConnection", "ClientEvent", "BodyData", "EndOfBody",
        # Messages: what a backend lists, and the streaming codecs.
        "MessageInfo", "MAX_UID_LENGTH", "isValidUid", "wireSize", "WireSizeCounter",
        "MessageEncoder", "MultilineDecoder",
    ],
    "pop3kit.client": [
        "CLEARTEXT_MECHANISMS", "MECHANISMS", "ClientError", "ClientMechanism", "ClientState",
        "CommandTooLong", "InvalidState", "ListingTooLarge", "MaildropListing",
        "MechanismUnavailable", "POP3Client", "ResponseTooLarge", "ServerError",
        "ServerProtocolError", "ServerStalled", "TLSFailed", "TLSMode", "TLSUnavailable",
        "connect", "tlsOptions",
    ],
    "pop3kit.errors": [
        "AuthenticationFailed", "IllegalCommand", "LoginDelayed", "MaildropInUse",
        "MessageUnavailable", "NoSuchMessage", "POP3Error", "PermanentFailure",
        "LocalProtocolError", "ProtocolError", "RemoteProtocolError", "ResponseCode",
        "TemporaryFailure",
    ],
    "pop3kit.backends.memory": ["MemoryMailbox", "MemoryRealm"],
    "pop3kit.backends.maildir": [
        "DEFAULT_SIZE_CACHE_ENTRIES", "LOCK_FILE_NAME", "MaildirMailbox", "MaildirRealm",
        "SizeCache", "TMP_MAX_AGE", "cleanTmp", "deliver", "mailboxPath", "maildirLockPath",
    ],
    "pop3kit.locking": [
        "DEFAULT_MAX_ENTRIES", "FileLocker", "InProcessLocker", "InProcessLoginHistory",
    ],
    "pop3kit.workers": [
        "DEFAULT_DRAIN_TIMEOUT", "DrainableFactory", "WorkerSupervisor", "bindingDescription",
        "runWorker", "workerCount", "wrapAdopted",
    ],
    "pop3kit.backends.mbox": [
        "DEFAULT_LOCK_TIMEOUT", "DELIVERY_LOCK_TIMEOUT", "MboxDelivery", "MboxMailbox",
        "MboxRealm", "appendMessage", "expandTemplate",
    ],
    "pop3kit.storage": [
        "STORAGE_SCHEMES", "InvalidStorage", "MaildirStorage", "MboxStorage", "Storage",
        "parseStorage",
    ],
    "pop3kit.cred": [
        "APOPCredentials", "CRAMMD5Credentials", "ChainedChecker", "ISASLIdentity",
        "NoSuchUser", "SASLIdentity", "SASLIdentityChecker", "WrongPassword",
    ],
    "pop3kit.audit": [
        "CONNECTED", "DISCONNECTED", "EVENTS", "EVENT_FIELD", "EVICTED", "LOCK_REFUSED",
        "LOGGED_OUT", "LOGIN_ACCEPTED", "LOGIN_REFUSED", "PENALTY", "RETRIEVED", "TIMED_OUT",
        "TLS_ESTABLISHED", "TLS_FAILED", "AuditEvent", "AuditPublisher", "Reason", "jsonLine",
        "jsonLinesObserver", "printable", "textObserver",
    ],
    "pop3kit.metrics": ["MetricsObserver", "metricsService"],
    "pop3kit.interfaces": [
        "IFencedMaildropLock", "ILoginHistory", "IMailbox", "IMaildropDelivery",
        "IMaildropLock", "IMaildropLocker", "IRetrievalLog", "ISCRAMKeySource",
        "IUserSettingsSource",
    ],
    "pop3kit.policy": [
        "CLEARTEXT_POLICIES", "MINIMUM_TIMEOUT", "CleartextPolicy", "InvalidPolicy",
        "ServerPolicy",
    ],
    "pop3kit.server": [
        "TLSProvider", "POP3Server", "POP3ServerFactory", "isLocal", "makeAPOPTimestamp",
    ],
    "pop3kit.tap": [
        "CannotStart", "DEFAULT_LISTEN", "Options", "checkLayout", "makeFactory", "makeService",
        "prepareDataDir",
    ],
    "pop3kit.testing": [
        "CONTRACT_MESSAGES", "ConnectedClient", "ConnectedServer", "IMailboxContractMixin",
        "MemoryConnection", "MemoryNetwork", "Stalled",
    ],
    "pop3kit.sasl": [
        "CLIENT_PREFERENCE", "SERVER_MECHANISMS", "Challenge", "CheckCredentials",
        "ClientMechanism", "MalformedSASLChallenge", "MalformedSASLResponse",
        "NeedSCRAMKeys", "SCRAMKeys", "ServerMechanism", "Step", "Verified",
        "clientMechanism", "preparePassword", "prepareUsername", "serverMechanism",
    ],
    "pop3kit.tls": [
        "HANDSHAKE_TIMEOUT", "ServerTLS", "TLSConfigurationError", "TLSReloadService",
        "certificateFilesOf", "implicitTLSEndpoint", "isImplicitTLS", "isSecure", "peerIdentity",
    ],
    "pop3kit.limits": [
        "DEFAULT_FAILED_LOGIN_DELAY", "DEFAULT_LOGIN_GRACE", "DEFAULT_LOGIN_WINDOW",
        "DEFAULT_MAX_FAILED_LOGIN_DELAY", "DEFAULT_MAX_PER_CLIENT",
        "DEFAULT_MAX_UNAUTHENTICATED", "ConnectionLimiter", "UnauthenticatedSession",
        "failedLoginPenalty",
    ],
    "pop3kit.proxy": [
        "HEADER_TIMEOUT", "PROXY_PREFIX", "ProxyHeaderFactory", "ProxyHeaderProtocol",
        "isProxied", "proxyEndpoint", "proxyEndpointFromString",
    ],
    "pop3kit.redisstate": [
        "DEFAULT_CAP_REFRESH", "DEFAULT_FORGET_FAILURES_AFTER", "DEFAULT_FORGET_LOGINS_AFTER",
        "DEFAULT_LEASE", "DEFAULT_TIMEOUT", "PASSWORD_ENVIRONMENT", "InvalidStateURL",
        "RedisConnectionLimiter", "RedisLease", "RedisLocker", "RedisLoginHistory",
        "RedisState", "parseStateURL",
    ],
    "pop3kit.checkers.checkpassword": [
        "DEFAULT_MAX_PROCESSES", "DEFAULT_SUBPROGRAM", "DEFAULT_TIMEOUT", "MAX_INPUT_LENGTH",
        "CheckpasswordChecker", "CheckpasswordCheckerFactory",
    ],
    "pop3kit.checkers.kerberos": [
        "INSTALL_HINT", "GSSAPIChecker", "GSSAPIUnavailable", "IGSSAPIAcceptor",
        "IKerberosPrincipal", "KerberosPrincipal", "PrincipalMap",
    ],
    "pop3kit.checkers.oauth2": [
        "DEFAULT_ALGORITHMS", "DEFAULT_USER_CLAIM", "INSTALL_HINT", "JWKS", "BearerToken",
        "IBearerToken", "IntrospectionChecker", "JWTChecker", "TokenRefused",
    ],
    "pop3kit.checkers.passwdfile": [
        "ARGON2_MEMORY_COST", "ARGON2_PARALLELISM", "ARGON2_TIME_COST", "BCRYPT_COST",
        "DEFAULT_SCHEME", "HASH_SCHEMES", "SCRAM_ITERATIONS", "SHA_CRYPT_ROUNDS", "DuplicateUser",
        "PasswdFileChecker", "PasswdFileCheckerFactory", "UnknownUser", "addUser",
        "hashPassword", "listUsers", "removeUser", "setPassword", "validateUserName",
        "verifyPassword",
    ],
}  # fmt: skip


class ExportTests(SynchronousTestCase):
    """
    Each public module exports exactly the pinned names, and each of them exists.
    """

    def test_pinned(self) -> None:
        """
        C{__all__} of each public module is the pinned list, and every name resolves.
        """
        for moduleName, names in PINNED.items():
            module = importlib.import_module(moduleName)
            self.assertEqual(sorted(module.__all__), sorted(names), moduleName)
            for name in names:
                self.assertTrue(hasattr(module, name), f"{moduleName}.{name}")

    def test_publicNamesDocumented(self) -> None:
        """
        Every exported class and function has a docstring.
        """
        for moduleName, names in PINNED.items():
            module = importlib.import_module(moduleName)
            for name in names:
                value = getattr(module, name)
                if callable(value):
                    self.assertTrue(value.__doc__, f"{moduleName}.{name} has no docstring")
