# -*- test-case-name: tests.test_peruser -*-
"""
Per-user LOGIN-DELAY and EXPIRE values from the extra fields of a Dovecot C{passwd-file}.

A line is C{user:password:uid:gid:gecos:home:shell:extra_fields}; the extra fields are
space-separated C{key=value} pairs.  Dovecot has no setting for either value, so pop3kit
reads its own names, alone or with Dovecot's C{userdb_} prefix (which a passwd-file used
as a passdb gives to the fields meant for the userdb):

  - C{pop3kit_login_delay=<seconds>}: the user's LOGIN-DELAY;
  - C{pop3kit_expire=<days>|NEVER}: the user's EXPIRE.

Dovecot reading the same file takes unknown userdb fields as plugin settings and ignores
them.  A value that is not valid is ignored with a warning: the user gets the server's.
"""

from __future__ import annotations

from collections.abc import Callable

from pop3kit.core import NEVER, UserSettings

__all__ = ["EXPIRE_FIELD", "LOGIN_DELAY_FIELD", "parseUserSettings"]

#: The extra field of a user's LOGIN-DELAY, in seconds.
LOGIN_DELAY_FIELD = "pop3kit_login_delay"

#: The extra field of a user's EXPIRE, in days or C{NEVER}.
EXPIRE_FIELD = "pop3kit_expire"

_PREFIX = "userdb_"

#: The fields before the extra fields.
_FIXED_FIELDS = 7


def _seconds(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise ValueError("not a number of seconds")
    return int(value)


def _days(value: str) -> int | str:
    if value.upper() == NEVER:
        return NEVER
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"not a number of days nor {NEVER}")
    return int(value)


def parseUserSettings(
    data: bytes, warn: Callable[[int, str, str], None]
) -> dict[str, UserSettings]:
    """
    The per-user settings of a passwd-file, for the users that have any.  The first line
    of a user counts, as for passwords.

    @param data: The file's contents.
    @param warn: Called with the line number, the user name and what is wrong, for each
        value that is ignored.
    """
    settings: dict[str, UserSettings] = {}
    seen: set[str] = set()
    for lineNumber, rawLine in enumerate(data.split(b"\n"), start=1):
        line = rawLine.removesuffix(b"\r")
        if not line.strip() or line.startswith(b"#"):
            continue
        fields = line.split(b":", _FIXED_FIELDS)
        try:
            name = fields[0].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if len(fields) < 2 or not name or name in seen:
            continue
        seen.add(name)
        if len(fields) <= _FIXED_FIELDS:
            continue
        loginDelay: int | None = None
        expire: int | str | None = None
        for word in fields[_FIXED_FIELDS].split():
            key, equals, rawValue = word.decode("utf-8", "replace").partition("=")
            key = key.removeprefix(_PREFIX)
            if key not in (LOGIN_DELAY_FIELD, EXPIRE_FIELD):
                continue
            try:
                if not equals:
                    raise ValueError("no value")
                if key == LOGIN_DELAY_FIELD:
                    loginDelay = _seconds(rawValue)
                else:
                    expire = _days(rawValue)
            except ValueError as e:
                warn(lineNumber, name, f"{key}={rawValue!r} ignored: {e}")
        if loginDelay is not None or expire is not None:
            settings[name] = UserSettings(loginDelay=loginDelay, expire=expire)
    return settings
