"""
The SCRAM examples of RFC 5802 section 5 (SCRAM-SHA-1) and RFC 7677 section 3
(SCRAM-SHA-256), for the server and client tests: user C{user}, password C{pencil}.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from pop3kit.sasl import SCRAMKeys


@dataclass(frozen=True)
class SCRAMExample:
    """
    One RFC example exchange, decoded.
    """

    mechanism: str
    salt: str
    clientNonce: str
    serverNonce: str
    clientFirst: bytes
    serverFirst: bytes
    clientFinal: bytes
    serverFinal: bytes

    def keys(self) -> SCRAMKeys:
        """
        The keys of the example's password and salt.
        """
        return SCRAMKeys.fromPassword("pencil", self.mechanism, salt=base64.b64decode(self.salt))


RFC5802 = SCRAMExample(
    mechanism="SCRAM-SHA-1",
    salt="QSXCR+Q6sek8bf92",
    clientNonce="fyko+d2lbbFgONRv9qkxdawL",
    serverNonce="3rfcNHYJY1ZVvWVs7j",
    clientFirst=b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    serverFirst=b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    clientFinal=(
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    ),
    serverFinal=b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
)

RFC7677 = SCRAMExample(
    mechanism="SCRAM-SHA-256",
    salt="W22ZaJ0SNY7soEsUEjb6gQ==",
    clientNonce="rOprNGfwEbeRWgbNEkqO",
    serverNonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    clientFirst=b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    serverFirst=(
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    ),
    clientFinal=(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    ),
    serverFinal=b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
)
