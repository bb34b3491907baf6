"""
Credential checkers for pop3kit servers.

L{pop3kit.checkers.passwdfile} reads Dovecot's C{passwd-file} format.
"""
