"""
Where the maildrops are: the C{--storage SCHEME:ARGUMENT} option of C{twistd pop3kit}.

Each scheme is one entry of L{STORAGE_SCHEMES}: a function that takes the whole
specification, checks it (raising L{InvalidStorage} with a one-line reason, or
L{ValueError}) and returns a L{Storage}, which builds the realm when the service is made.
A new backend adds one entry; a URL such as C{postgresql://host/db} is handed over whole,
so a backend whose own parser takes the URL plugs in as it is.

  - C{maildir:ROOT}: one Maildir per user under C{ROOT} (what C{--maildir-root} means).
  - C{mbox:TEMPLATE}: one mbox file per user, at C{TEMPLATE} with C{%u} (the user name),
    C{%n} (its local part), C{%d} (its domain) and C{%%} replaced, e.g.
    C{mbox:/var/mail/%u}; its storage provides the delivery for LMTP (C{makeDelivery}).
  - C{postgresql://...}: a pop3kit database (L{pop3kit.backends.postgresql}); its
    storage also provides the maildrop locker (C{makeLocker}) and the delivery for LMTP
    (C{makeDelivery}).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from twisted.cred.portal import IRealm
from twisted.internet.interfaces import IReactorThreads

from pop3kit.interfaces import IMaildropDelivery

__all__ = [
    "STORAGE_SCHEMES",
    "InvalidStorage",
    "MaildirStorage",
    "MboxStorage",
    "Storage",
    "parseStorage",
]


class InvalidStorage(ValueError):
    """
    A storage specification that cannot be used; the message says why, in one line.
    """


class Storage(Protocol):
    """
    A parsed storage specification.
    """

    @property
    def description(self) -> str:
        """
        What is served, for the log (C{"Maildirs under /srv/mail"}).
        """

    def makeRealm(self) -> IRealm:
        """
        Build the realm that hands out the users' mailboxes.
        """


@dataclass(frozen=True)
class MaildirStorage:
    """
    One Maildir per user under C{root}.
    """

    root: str

    @property
    def description(self) -> str:
        """
        C{"Maildirs under ROOT"}.
        """
        return f"Maildirs under {os.path.abspath(self.root)}"

    def makeRealm(self) -> IRealm:
        """
        A L{pop3kit.backends.maildir.MaildirRealm} on C{root}.
        """
        from pop3kit.backends.maildir import MaildirRealm

        return MaildirRealm(self.root)


@dataclass(frozen=True)
class MboxStorage:
    """
    One mbox file per user, at C{template} expanded (see
    L{pop3kit.backends.mbox.expandTemplate}).
    """

    template: str

    @property
    def description(self) -> str:
        """
        C{"mbox files at TEMPLATE"}.
        """
        return f"mbox files at {self.template}"

    def makeRealm(self) -> IRealm:
        """
        A L{pop3kit.backends.mbox.MboxRealm} on C{template}.
        """
        from pop3kit.backends.mbox import MboxRealm

        return MboxRealm(self.template)

    def makeDelivery(self, knownUser: Callable[[str], bool] | None) -> IMaildropDelivery:
        """
        A L{pop3kit.backends.mbox.MboxDelivery} on C{template}, working in the global
        reactor's thread pool: for C{pop3kit deliver} and the LMTP listener.

        @param knownUser: Tells whether a user name has an account; L{None} to accept
            every name the template can take.
        """
        from twisted.internet import reactor

        from pop3kit.backends.mbox import MboxDelivery

        return MboxDelivery(self.template, cast(IReactorThreads, reactor), knownUser)


def _argument(spec: str) -> str:
    """
    What follows the scheme's colon in C{spec}.
    """
    return spec.partition(":")[2]


def _maildir(spec: str) -> Storage:
    argument = _argument(spec)
    if not argument:
        raise InvalidStorage("maildir: needs the directory holding the Maildirs (maildir:ROOT)")
    root = os.path.expanduser(argument)
    if not os.path.isdir(root):
        raise InvalidStorage(f"maildir:{argument}: {root} is not a directory")
    return MaildirStorage(root)


def _mbox(spec: str) -> Storage:
    from pop3kit.backends.mbox import _checkTemplate

    argument = _argument(spec)
    if not argument:
        raise InvalidStorage("mbox: needs a path template, e.g. mbox:/var/mail/%u")
    template = os.path.abspath(os.path.expanduser(argument))
    try:
        _checkTemplate(template)
    except ValueError as e:
        raise InvalidStorage(f"mbox:{argument}: {e}") from None
    fixed = os.path.dirname(template.split("%", 1)[0] + "x")
    if not os.path.isdir(fixed):
        raise InvalidStorage(f"mbox:{argument}: {fixed} is not a directory")
    return MboxStorage(template)


def _postgresql(spec: str) -> Storage:
    from pop3kit.backends.postgresql import parseStorageURL

    return parseStorageURL(spec)


#: The storage schemes, by lower-case name: each checks the whole specification and
#: returns a L{Storage}.
STORAGE_SCHEMES: dict[str, Callable[[str], Storage]] = {
    "maildir": _maildir,
    "mbox": _mbox,
    "postgresql": _postgresql,
    "postgres": _postgresql,
}

#: Other names of schemes above, left out of the error message.
_ALIASES = frozenset({"postgres"})


def parseStorage(spec: str) -> Storage:
    """
    Parse C{SCHEME:ARGUMENT} through L{STORAGE_SCHEMES}.

    @raise InvalidStorage: If the scheme is unknown or the specification unusable (a
        L{ValueError} of the scheme's parser becomes one).
    """
    scheme, sep, _ = spec.partition(":")
    parser = STORAGE_SCHEMES.get(scheme.lower()) if sep else None
    if parser is None:
        known = ", ".join(f"{name}:..." for name in STORAGE_SCHEMES if name not in _ALIASES)
        raise InvalidStorage(f"unknown storage {spec!r}: use one of {known}")
    try:
        return parser(spec)
    except InvalidStorage:
        raise
    except ValueError as e:
        raise InvalidStorage(str(e)) from None
