"""
pop3kit's checkers for C{twistd --auth}: C{passwd-file:PATH} for Dovecot passwd-files and
C{checkpassword:PROGRAM} for qmail's checkpassword programs.
"""

from pop3kit.checkers.checkpassword import CheckpasswordCheckerFactory
from pop3kit.checkers.passwdfile import PasswdFileCheckerFactory

passwdFileCheckerFactory = PasswdFileCheckerFactory()
checkpasswordCheckerFactory = CheckpasswordCheckerFactory()
