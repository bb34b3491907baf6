# -*- test-case-name: tests.test_gssapi,tests.test_oauth2 -*-
"""
The single sign-on options of C{twistd pop3kit}: Kerberos (C{--gssapi-*}) and OAuth 2.0
(C{--oauth2-*}), and the checkers they make.  L{pop3kit.tap.Options} lists
L{SSO_PARAMETERS} among its own and calls L{loadGSSAPI} and L{loadOAuth2} when it checks
its options; L{pop3kit.tap.makeFactory} adds the checkers to the portal.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import usage

__all__ = ["SSO_PARAMETERS", "loadGSSAPI", "loadOAuth2"]

#: The options, in the form of C{usage.Options.optParameters}.
SSO_PARAMETERS: list[list[Any]] = [
    [
        "gssapi-keytab",
        None,
        None,
        "Keytab holding the key of pop/HOST: offers SASL GSSAPI (Kerberos).  Default: "
        "$KRB5_KTNAME, when set.",
    ],
    [
        "gssapi-hostname",
        None,
        None,
        "HOST of the service principal pop/HOST (default: this host's FQDN).",
    ],
    [
        "gssapi-map",
        None,
        None,
        "File of 'principal@REALM user' lines mapping Kerberos principals to users "
        "(default rule: the local realm's principals log in as their name).",
    ],
    [
        "oauth2-jwks",
        None,
        None,
        "File or https:// URL of the issuer's JSON Web Key Set: offers SASL OAUTHBEARER "
        "and XOAUTH2 over TLS, validating JWT access tokens (with --oauth2-issuer and "
        "--oauth2-audience).",
    ],
    ["oauth2-issuer", None, None, "The 'iss' every access token must have."],
    ["oauth2-audience", None, None, "A value the 'aud' of every access token must hold."],
    [
        "oauth2-user-claim",
        None,
        None,
        "The claim naming the user: default 'sub' (JWT) or 'username' (introspection); "
        "e.g. 'email' or 'preferred_username'.",
    ],
    ["oauth2-scope", None, None, "A scope every access token must grant."],
    [
        "oauth2-introspect",
        None,
        None,
        "https:// URL of an RFC 7662 introspection endpoint to check tokens with, "
        "instead of --oauth2-jwks (with --oauth2-client-id, --oauth2-client-secret-file).",
    ],
    ["oauth2-client-id", None, None, "This server's client id, for introspection."],
    [
        "oauth2-client-secret-file",
        None,
        None,
        "File whose first line is this server's client secret, for introspection.",
    ],
]


def loadGSSAPI(options: Mapping[str, Any]) -> ICredentialsChecker | None:
    """
    The GSSAPI checker the options ask for, or L{None}.

    With C{--gssapi-keytab}, a keytab without the service key is a usage error; with only
    C{KRB5_KTNAME}, the server goes on without GSSAPI and logs why.

    @raise usage.UsageError: in one line, for options that cannot be served.
    """
    keytab = options["gssapi-keytab"]
    if keytab is None and not os.environ.get("KRB5_KTNAME"):
        for option in ("gssapi-hostname", "gssapi-map"):
            if options[option] is not None:
                raise usage.UsageError(f"--{option} needs --gssapi-keytab (or KRB5_KTNAME)")
        return None
    from pop3kit._gssapi import GSSAPIChecker, GSSAPIUnavailable

    hostname = options["gssapi-hostname"] or socket.getfqdn()
    try:
        return GSSAPIChecker(hostname, keytab=keytab, mapFile=options["gssapi-map"])
    except GSSAPIUnavailable as e:
        if keytab is None:
            # Only the environment asked: serve without GSSAPI, and say why.
            Logger().warn("GSSAPI is not offered: {why}", why=str(e))
            return None
        raise usage.UsageError(str(e)) from None
    except (OSError, ValueError) as e:
        raise usage.UsageError(f"--gssapi-map: {e}") from None


def loadOAuth2(options: Mapping[str, Any]) -> ICredentialsChecker | None:
    """
    The OAuth 2.0 token checker the options ask for, or L{None}.

    @raise usage.UsageError: in one line, for incomplete options, options without TLS
        (tokens are accepted over TLS only), or a JWKS that cannot be read.
    """
    jwks, introspect = options["oauth2-jwks"], options["oauth2-introspect"]
    if jwks is None and introspect is None:
        for option in ("oauth2-issuer", "oauth2-audience", "oauth2-client-id"):
            if options[option] is not None:
                raise usage.UsageError(f"--{option} needs --oauth2-jwks or --oauth2-introspect")
        return None
    if jwks is not None and introspect is not None:
        raise usage.UsageError("--oauth2-jwks and --oauth2-introspect exclude each other")
    if options["tls-certificate"] is None:
        raise usage.UsageError(
            "OAuth 2.0 tokens are accepted over TLS only: add --tls-certificate and --tls-key"
        )
    from twisted.internet import reactor

    from pop3kit import _oauth2

    clock: IReactorTime = reactor  # type: ignore[assignment]
    try:
        if jwks is not None:
            if options["oauth2-issuer"] is None or options["oauth2-audience"] is None:
                raise usage.UsageError("--oauth2-jwks needs --oauth2-issuer and --oauth2-audience")
            return _oauth2.JWTChecker(
                _oauth2.JWKS(jwks, clock=clock),
                issuer=options["oauth2-issuer"],
                audience=options["oauth2-audience"],
                clock=clock,
                userClaim=options["oauth2-user-claim"] or _oauth2.DEFAULT_USER_CLAIM,
                scope=options["oauth2-scope"],
            )
        if options["oauth2-client-id"] is None or options["oauth2-client-secret-file"] is None:
            raise usage.UsageError(
                "--oauth2-introspect needs --oauth2-client-id and --oauth2-client-secret-file"
            )
        return _oauth2.IntrospectionChecker(
            introspect,
            clientId=options["oauth2-client-id"],
            clientSecret=_oauth2.readSecret(options["oauth2-client-secret-file"]),
            clock=clock,
            userClaim=options["oauth2-user-claim"] or "username",
            audience=options["oauth2-audience"],
            scope=options["oauth2-scope"],
        )
    except (OSError, ValueError) as e:
        raise usage.UsageError(f"OAuth 2.0: {e}") from None
