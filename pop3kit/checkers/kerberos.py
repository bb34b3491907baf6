# -*- test-case-name: tests.test_gssapi -*-
"""
Kerberos logins for the server: SASL C{GSSAPI} (RFC 4752).

Add a L{GSSAPIChecker} to the portal and the server offers C{GSSAPI}: the checker holds
the service key (C{pop/HOST} in a keytab) and maps each authenticated principal to a
user name (L{PrincipalMap}); the login then goes through the portal as
L{KerberosPrincipal} credentials.  It needs python-gssapi (C{pip install
'pop3kit[gssapi]'}).  See the how-to "How to log in with Kerberos".
"""

from pop3kit._gssapi import (
    INSTALL_HINT,
    GSSAPIChecker,
    GSSAPIUnavailable,
    IGSSAPIAcceptor,
    IKerberosPrincipal,
    KerberosPrincipal,
    PrincipalMap,
)

__all__ = [
    "INSTALL_HINT",
    "GSSAPIChecker",
    "GSSAPIUnavailable",
    "IGSSAPIAcceptor",
    "IKerberosPrincipal",
    "KerberosPrincipal",
    "PrincipalMap",
]
