"""
C{twistd --auth passwd-file:PATH}: pop3kit's checker for Dovecot passwd-files.
"""

from pop3kit.checkers.passwdfile import PasswdFileCheckerFactory

passwdFileCheckerFactory = PasswdFileCheckerFactory()
