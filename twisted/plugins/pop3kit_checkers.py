"""
pop3kit's checkers for C{twistd --auth}: C{passwd-file:PATH} for Dovecot passwd-files and
C{checkpassword:PROGRAM} for qmail's checkpassword programs.

Importing this file does not import pop3kit: C{twistd} imports every plugin module to
list them (C{--help-auth}), so each factory here says what C{--help-auth} shows and
imports its checker module only when it is used (L{_LazyCheckerFactory.generateChecker},
or the detailed help of C{--help-auth-type}).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.cred.strcred import ICheckerFactory
from twisted.plugin import IPlugin
from zope.interface import Interface, implementer


@implementer(ICheckerFactory, IPlugin)
class _LazyCheckerFactory:
    """
    A checker factory that stands in for one of pop3kit's, named by module and class.
    """

    def __init__(
        self,
        authType: str,
        argStringFormat: str,
        credentialInterfaces: tuple[type[Interface], ...],
        module: str,
        name: str,
    ) -> None:
        self.authType = authType
        self.argStringFormat = argStringFormat
        self.credentialInterfaces = credentialInterfaces
        self._module = module
        self._name = name

    def _factory(self) -> Any:
        return getattr(import_module(self._module), self._name)()

    @property
    def authHelp(self) -> str:
        """
        The detailed help of the real factory.
        """
        help: str = self._factory().authHelp
        return help

    def generateChecker(self, argstring: str) -> ICredentialsChecker:
        """
        Make a checker with the real factory.
        """
        checker: ICredentialsChecker = self._factory().generateChecker(argstring)
        return checker


passwdFileCheckerFactory = _LazyCheckerFactory(
    "passwd-file",
    "The path of a Dovecot passwd-file.",
    (IUsernamePassword, IUsernameHashedPassword),
    "pop3kit.checkers.passwdfile",
    "PasswdFileCheckerFactory",
)
checkpasswordCheckerFactory = _LazyCheckerFactory(
    "checkpassword",
    "The program's path, optionally followed by its own arguments, split as a shell "
    "would: checkpassword:/usr/local/bin/checkpw or "
    "checkpassword:'/opt/my auth/checkpw' --some-option",
    (IUsernamePassword,),
    "pop3kit.checkers.checkpassword",
    "CheckpasswordCheckerFactory",
)
