# -*- test-case-name: tests.test_oauth2 -*-
"""
OAuth 2.0 logins for the server: checkers of the bearer tokens that SASL C{OAUTHBEARER}
(RFC 7628) and C{XOAUTH2} carry.

Add a L{JWTChecker} (JWT access tokens checked against the issuer's keys, L{JWKS}) or an
L{IntrospectionChecker} (RFC 7662) to the portal and the server offers both mechanisms
over TLS; tokens reach the portal as L{BearerToken} credentials, and a refusal is a
L{TokenRefused}.  They need joserfc (C{pip install 'pop3kit[oauth2]'}).  See the how-to
"How to log in with OAuth 2.0".
"""

from pop3kit._oauth2 import (
    DEFAULT_ALGORITHMS,
    DEFAULT_USER_CLAIM,
    INSTALL_HINT,
    JWKS,
    BearerToken,
    IBearerToken,
    IntrospectionChecker,
    JWTChecker,
    TokenRefused,
)

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DEFAULT_USER_CLAIM",
    "INSTALL_HINT",
    "JWKS",
    "BearerToken",
    "IBearerToken",
    "IntrospectionChecker",
    "JWTChecker",
    "TokenRefused",
]
