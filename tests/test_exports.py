"""
The public names of pop3kit's modules are pinned: a change to them is a deliberate API
change, documented and announced in a newsfragment.
"""

from __future__ import annotations

import importlib

from twisted.trial.unittest import SynchronousTestCase

PINNED = {
    "pop3kit.core": [
        "KEYWORDS", "LEGAL_COMMANDS", "MAX_COMMAND_LINE", "MAX_RESPONSE_LINE",
        "MAX_UID_LENGTH", "NEVER", "Apop", "AuthenticationFailed", "Capa", "Capabilities",
        "Command", "Dele", "IllegalCommand", "LineFramer", "LineTooLong", "List",
        "LoginDelayed", "MaildropInUse", "MaildropView", "MessageEncoder", "MessageInfo",
        "MessageUnavailable", "MultilineDecoder", "NoSuchMessage", "Noop", "POP3Error",
        "Pass", "PermanentFailure", "Quit", "RemoteProtocolError", "ResponseCode", "Retr",
        "Rset", "ServerConnection", "Stat", "State", "TemporaryFailure", "Top", "Uidl",
        "User", "WireSizeCounter", "canonicalForm", "continuation", "encodeLines",
        "encodeMessage", "err", "errorResponse", "isLegal", "isValidUid", "multiline", "ok",
        "parseCommand", "wireSize",
    ],
    "pop3kit.errors": [
        "AuthenticationFailed", "IllegalCommand", "LoginDelayed", "MaildropInUse",
        "MessageUnavailable", "NoSuchMessage", "POP3Error", "PermanentFailure",
        "RemoteProtocolError", "ResponseCode", "TemporaryFailure",
    ],
    "pop3kit.backends.memory": ["MemoryMailbox", "MemoryRealm"],
    "pop3kit.backends.maildir": [
        "DEFAULT_SIZE_CACHE_ENTRIES", "MaildirMailbox", "MaildirRealm", "SizeCache",
        "deliver", "mailboxPath",
    ],
    "pop3kit.cred": ["APOPCredentials", "ChainedChecker"],
    "pop3kit.checkers.checkpassword": [
        "DEFAULT_MAX_PROCESSES", "DEFAULT_SUBPROGRAM", "DEFAULT_TIMEOUT", "MAX_INPUT_LENGTH",
        "CheckpasswordChecker", "CheckpasswordCheckerFactory",
    ],
    "pop3kit.checkers.passwdfile": [
        "ARGON2_MEMORY_COST", "ARGON2_PARALLELISM", "ARGON2_TIME_COST", "BCRYPT_COST",
        "DEFAULT_SCHEME", "HASH_SCHEMES", "SHA_CRYPT_ROUNDS", "DuplicateUser",
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
