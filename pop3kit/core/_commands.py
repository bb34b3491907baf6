"""
POP3 commands as validated values, and the parser that builds them from command lines.

A command object cannot hold an invalid argument: C{Retr(0)} raises L{ValueError}.  The
parser turns every malformed line into a L{RemoteProtocolError} whose text is fit for the
wire, never into a Python exception of another kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from pop3kit.core._errors import NoSuchMessage, RemoteProtocolError

_DIGITS = re.compile(rb"[0-9]+")
_HEX_DIGEST = re.compile(rb"[0-9a-fA-F]{32}")

#: More digits than this cannot name a message; the parser answers "no such message".
_MAX_NUMBER_DIGITS = 10


@dataclass(frozen=True, slots=True)
class Command:
    """
    Base class of all commands.

    @cvar keyword: The command's keyword, upper case.
    """

    keyword: ClassVar[str] = ""


def _checkMessageNumber(number: int | None, optional: bool = False) -> None:
    if number is None and optional:
        return
    if not isinstance(number, int) or number < 1:
        raise ValueError(f"message numbers start at 1, not {number!r}")


@dataclass(frozen=True, slots=True)
class User(Command):
    """
    C{USER name}.
    """

    keyword: ClassVar[str] = "USER"
    name: str

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("empty user name")


@dataclass(frozen=True, slots=True)
class Pass(Command):
    """
    C{PASS password}; the password may contain spaces (RFC 1939 section 7).
    """

    keyword: ClassVar[str] = "PASS"
    password: bytes

    def __repr__(self) -> str:
        return "Pass(password=<redacted>)"


@dataclass(frozen=True, slots=True)
class Apop(Command):
    """
    C{APOP name digest}, the digest as lower-case hex.
    """

    keyword: ClassVar[str] = "APOP"
    name: str
    digest: bytes

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("empty user name")
        if not _HEX_DIGEST.fullmatch(self.digest) or self.digest != self.digest.lower():
            raise ValueError("APOP digest must be 32 lower-case hex digits")

    def __repr__(self) -> str:
        return f"Apop(name={self.name!r}, digest=<redacted>)"


@dataclass(frozen=True, slots=True)
class Quit(Command):
    """
    C{QUIT}.
    """

    keyword: ClassVar[str] = "QUIT"


@dataclass(frozen=True, slots=True)
class Stat(Command):
    """
    C{STAT}.
    """

    keyword: ClassVar[str] = "STAT"


@dataclass(frozen=True, slots=True)
class List(Command):
    """
    C{LIST [msg]}.
    """

    keyword: ClassVar[str] = "LIST"
    message: int | None = None

    def __post_init__(self) -> None:
        _checkMessageNumber(self.message, optional=True)


@dataclass(frozen=True, slots=True)
class Retr(Command):
    """
    C{RETR msg}.
    """

    keyword: ClassVar[str] = "RETR"
    message: int

    def __post_init__(self) -> None:
        _checkMessageNumber(self.message)


@dataclass(frozen=True, slots=True)
class Dele(Command):
    """
    C{DELE msg}.
    """

    keyword: ClassVar[str] = "DELE"
    message: int

    def __post_init__(self) -> None:
        _checkMessageNumber(self.message)


@dataclass(frozen=True, slots=True)
class Noop(Command):
    """
    C{NOOP}.
    """

    keyword: ClassVar[str] = "NOOP"


@dataclass(frozen=True, slots=True)
class Rset(Command):
    """
    C{RSET}.
    """

    keyword: ClassVar[str] = "RSET"


@dataclass(frozen=True, slots=True)
class Top(Command):
    """
    C{TOP msg n}: the headers and the first C{n} body lines.
    """

    keyword: ClassVar[str] = "TOP"
    message: int
    lines: int

    def __post_init__(self) -> None:
        _checkMessageNumber(self.message)
        if not isinstance(self.lines, int) or self.lines < 0:
            raise ValueError(f"TOP needs a non-negative line count, not {self.lines!r}")


@dataclass(frozen=True, slots=True)
class Uidl(Command):
    """
    C{UIDL [msg]}.
    """

    keyword: ClassVar[str] = "UIDL"
    message: int | None = None

    def __post_init__(self) -> None:
        _checkMessageNumber(self.message, optional=True)


@dataclass(frozen=True, slots=True)
class Capa(Command):
    """
    C{CAPA} (RFC 2449).
    """

    keyword: ClassVar[str] = "CAPA"


def _parseMessageNumber(argument: bytes) -> int:
    if not _DIGITS.fullmatch(argument):
        raise RemoteProtocolError("message number must be a decimal number")
    if len(argument) > _MAX_NUMBER_DIGITS or int(argument) == 0:
        raise NoSuchMessage()
    return int(argument)


def _parseCount(argument: bytes) -> int:
    if not _DIGITS.fullmatch(argument):
        raise RemoteProtocolError("line count must be a non-negative decimal number")
    return int(argument)


def _parseName(argument: bytes) -> str:
    try:
        name = argument.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("user name is not valid UTF-8") from None
    if not name.isprintable():
        raise RemoteProtocolError("user name contains control characters")
    return name


def _arguments(rest: bytes, minimum: int, maximum: int, keyword: str) -> list[bytes]:
    arguments = rest.split(b" ") if rest else []
    if b"" in arguments:
        raise RemoteProtocolError("arguments are separated by a single space")
    if not minimum <= len(arguments) <= maximum:
        if maximum == 0:
            raise RemoteProtocolError(f"{keyword} takes no arguments")
        if minimum == maximum:
            plural = "s" if minimum > 1 else ""
            raise RemoteProtocolError(f"{keyword} takes {minimum} argument{plural}")
        raise RemoteProtocolError(f"{keyword} takes at most {maximum} argument")
    return arguments


_Parser = Callable[[bytes], Command]


def _noArguments(command: type[Command]) -> _Parser:
    def parse(rest: bytes) -> Command:
        _arguments(rest, 0, 0, command.keyword)
        return command()

    return parse


def _parseUser(rest: bytes) -> Command:
    (name,) = _arguments(rest, 1, 1, "USER")
    return User(_parseName(name))


def _parsePass(rest: bytes) -> Command:
    if not rest:
        raise RemoteProtocolError("PASS takes 1 argument")
    return Pass(rest)


def _parseApop(rest: bytes) -> Command:
    name, digest = _arguments(rest, 2, 2, "APOP")
    if not _HEX_DIGEST.fullmatch(digest):
        raise RemoteProtocolError("APOP digest must be 32 hex digits")
    return Apop(_parseName(name), digest.lower())


def _optionalNumber(command: type[List] | type[Uidl]) -> _Parser:
    def parse(rest: bytes) -> Command:
        arguments = _arguments(rest, 0, 1, command.keyword)
        if arguments:
            return command(_parseMessageNumber(arguments[0]))
        return command()

    return parse


def _oneNumber(command: type[Retr] | type[Dele]) -> _Parser:
    def parse(rest: bytes) -> Command:
        (number,) = _arguments(rest, 1, 1, command.keyword)
        return command(_parseMessageNumber(number))

    return parse


def _parseTop(rest: bytes) -> Command:
    number, count = _arguments(rest, 2, 2, "TOP")
    return Top(_parseMessageNumber(number), _parseCount(count))


_PARSERS: dict[bytes, _Parser] = {
    b"USER": _parseUser,
    b"PASS": _parsePass,
    b"APOP": _parseApop,
    b"QUIT": _noArguments(Quit),
    b"STAT": _noArguments(Stat),
    b"LIST": _optionalNumber(List),
    b"RETR": _oneNumber(Retr),
    b"DELE": _oneNumber(Dele),
    b"NOOP": _noArguments(Noop),
    b"RSET": _noArguments(Rset),
    b"TOP": _parseTop,
    b"UIDL": _optionalNumber(Uidl),
    b"CAPA": _noArguments(Capa),
}

#: The keywords the parser knows, upper case.
KEYWORDS = frozenset(keyword.decode("ascii") for keyword in _PARSERS)


def parseCommand(line: bytes) -> Command:
    """
    Parse one command line (without its line end) into a L{Command}.

    Keywords are case-insensitive.  Trailing spaces are ignored, except in C{PASS}, whose
    argument is the rest of the line.

    @raise RemoteProtocolError: for an unknown keyword, a NUL byte, or a malformed or
        missing argument.
    @raise NoSuchMessage: for a message number that cannot exist (0, or too many digits).
    """
    if b"\0" in line:
        raise RemoteProtocolError("NUL byte in command")
    keyword, _, rest = line.partition(b" ")
    parser = _PARSERS.get(keyword.upper())
    if parser is None:
        raise RemoteProtocolError("unknown command")
    if keyword.upper() != b"PASS":
        rest = rest.rstrip(b" ")
    return parser(rest)
