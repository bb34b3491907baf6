"""
POP3 commands as validated values, and the parser that builds them from command lines.

A command object cannot hold an invalid argument: C{Retr(0)} raises
L{LocalProtocolError} (a L{ValueError}).  The parser turns every malformed line into a
L{RemoteProtocolError} whose text is fit for the wire, never into a Python exception of
another kind.  Both roles use the same values: a server parses lines into them, a client
builds them and sends L{Command.toLine}, knowing from L{Command.responseKind} the shape
of the answer to expect.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from pop3kit.core._errors import (
    LocalProtocolError,
    NoSuchMessage,
    RemoteProtocolError,
)
from pop3kit.core._framing import MAX_COMMAND_LINE
from pop3kit.core._replies import ResponseKind

_DIGITS = re.compile(rb"[0-9]+")
_HEX_DIGEST = re.compile(rb"[0-9a-fA-F]{32}")
#: A SASL mechanism name (RFC 4422 section 3.1), matched case-insensitively.
_MECHANISM = re.compile(r"[A-Z0-9_-]{1,20}")
#: An RFC 5646 language tag, loosely: letters, digits and hyphens.
_LANGUAGE_TAG = re.compile(rb"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")

_KEYWORD = re.compile(rb"[A-Za-z0-9-]{3,4}")
_FORBIDDEN_IN_ARGUMENT = re.compile(rb"[\x00\r\n]")

#: More digits than this cannot name a message; the parser answers "no such message".
_MAX_NUMBER_DIGITS = 10


class CommandTooLong(LocalProtocolError):
    """
    A command line would exceed the 255 octets (CRLF included) a POP3 server must accept
    (RFC 2449 section 4); it is never sent.
    """


def formatCommand(keyword: bytes, *arguments: bytes) -> bytes:
    """
    Format one command line: the keyword, arguments separated by single spaces, CRLF.

    @raise LocalProtocolError: (a L{ValueError}) for a keyword that is not 3-4 letters,
        digits or hyphens, or an argument that is empty or holds CR, LF or NUL.
    @raise CommandTooLong: when the line would exceed 255 octets, CRLF included.
    """
    if not _KEYWORD.fullmatch(keyword):
        raise LocalProtocolError(f"not a POP3 keyword: {keyword!r}")
    for argument in arguments:
        if not argument or _FORBIDDEN_IN_ARGUMENT.search(argument):
            raise LocalProtocolError(
                "command arguments must be non-empty and hold no CR, LF or NUL"
            )
    line = b" ".join((keyword, *arguments)) + b"\r\n"
    if len(line) > MAX_COMMAND_LINE:
        raise CommandTooLong(
            f"{keyword.decode('ascii')} command line of {len(line)} octets is over the "
            f"{MAX_COMMAND_LINE}-octet limit"
        )
    return line


@dataclass(frozen=True, slots=True)
class Command:
    """
    Base class of all commands.

    @cvar keyword: The command's keyword, upper case.
    """

    keyword: ClassVar[str] = ""

    def arguments(self) -> tuple[bytes, ...]:
        """
        The command's arguments as sent on the wire.
        """
        return ()

    @property
    def responseKind(self) -> ResponseKind:
        """
        The shape of the answer this command gets.
        """
        return ResponseKind.SINGLE

    def toLine(self) -> bytes:
        """
        The command line, CRLF included.

        @raise CommandTooLong: when it would exceed 255 octets.
        """
        return formatCommand(self.keyword.encode("ascii"), *self.arguments())

    def redacted(self) -> bytes:
        """
        The command line without its line end, secrets (passwords, digests, SASL data)
        replaced by C{<redacted>}: fit for logs and error messages.
        """
        return b" ".join((self.keyword.encode("ascii"), *self.arguments()))


def _checkMessageNumber(number: int | None, optional: bool = False) -> None:
    if number is None and optional:
        return
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise LocalProtocolError(f"message numbers start at 1, not {number!r}")


def _checkName(name: str, keyword: str) -> None:
    """
    Refuse a user name that cannot be one argument of C{keyword}: empty, holding a space,
    or holding a control character.
    """
    if not name:
        raise LocalProtocolError("empty user name")
    if " " in name:
        raise LocalProtocolError(f"{keyword} names cannot contain spaces")
    if not name.isprintable():
        raise LocalProtocolError("user name contains control characters")


@dataclass(frozen=True, slots=True)
class User(Command):
    """
    C{USER name}.
    """

    keyword: ClassVar[str] = "USER"
    name: str

    def __post_init__(self) -> None:
        _checkName(self.name, self.keyword)

    def arguments(self) -> tuple[bytes, ...]:
        """
        The user name, UTF-8 encoded.
        """
        return (self.name.encode("utf-8"),)


@dataclass(frozen=True, slots=True)
class Pass(Command):
    """
    C{PASS password}; the password may contain spaces (RFC 1939 section 7).
    """

    keyword: ClassVar[str] = "PASS"
    password: bytes

    def __repr__(self) -> str:
        return "Pass(password=<redacted>)"

    def arguments(self) -> tuple[bytes, ...]:
        """
        The password.
        """
        return (self.password,)

    def redacted(self) -> bytes:
        """
        C{PASS <redacted>}.
        """
        return b"PASS <redacted>"


@dataclass(frozen=True, slots=True)
class Apop(Command):
    """
    C{APOP name digest}, the digest as lower-case hex.
    """

    keyword: ClassVar[str] = "APOP"
    name: str
    digest: bytes

    def __post_init__(self) -> None:
        _checkName(self.name, self.keyword)
        if not _HEX_DIGEST.fullmatch(self.digest) or self.digest != self.digest.lower():
            raise LocalProtocolError("APOP digest must be 32 lower-case hex digits")

    def __repr__(self) -> str:
        return f"Apop(name={self.name!r}, digest=<redacted>)"

    def arguments(self) -> tuple[bytes, ...]:
        """
        The user name, UTF-8 encoded, and the digest.
        """
        return (self.name.encode("utf-8"), self.digest)

    def redacted(self) -> bytes:
        """
        C{APOP name <redacted>}.
        """
        return b"APOP " + self.name.encode("utf-8") + b" <redacted>"


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
class _OptionalMessage(Command):
    """
    A command with an optional message number: a listing of every message without one,
    one line for that message with one.
    """

    message: int | None = None

    def __post_init__(self) -> None:
        _checkMessageNumber(self.message, optional=True)

    def arguments(self) -> tuple[bytes, ...]:
        """
        The message number, if any.
        """
        return () if self.message is None else (b"%d" % self.message,)

    @property
    def responseKind(self) -> ResponseKind:
        """
        A listing for all messages, one line for one message.
        """
        return ResponseKind.MULTILINE if self.message is None else ResponseKind.SINGLE


@dataclass(frozen=True, slots=True)
class _OneMessage(Command):
    """
    A command naming one message.
    """

    message: int

    def __post_init__(self) -> None:
        _checkMessageNumber(self.message)

    def arguments(self) -> tuple[bytes, ...]:
        """
        The message number.
        """
        return (b"%d" % self.message,)


@dataclass(frozen=True, slots=True)
class List(_OptionalMessage):
    """
    C{LIST [msg]}.
    """

    keyword: ClassVar[str] = "LIST"


@dataclass(frozen=True, slots=True)
class Retr(_OneMessage):
    """
    C{RETR msg}.
    """

    keyword: ClassVar[str] = "RETR"

    @property
    def responseKind(self) -> ResponseKind:
        """
        The message, as a multi-line answer.
        """
        return ResponseKind.MULTILINE


@dataclass(frozen=True, slots=True)
class Dele(_OneMessage):
    """
    C{DELE msg}.
    """

    keyword: ClassVar[str] = "DELE"


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
        if not isinstance(self.lines, int) or isinstance(self.lines, bool) or self.lines < 0:
            raise LocalProtocolError(f"TOP needs a non-negative line count, not {self.lines!r}")

    def arguments(self) -> tuple[bytes, ...]:
        """
        The message number and the line count.
        """
        return (b"%d" % self.message, b"%d" % self.lines)

    @property
    def responseKind(self) -> ResponseKind:
        """
        The top of the message, as a multi-line answer.
        """
        return ResponseKind.MULTILINE


@dataclass(frozen=True, slots=True)
class Uidl(_OptionalMessage):
    """
    C{UIDL [msg]}.
    """

    keyword: ClassVar[str] = "UIDL"


@dataclass(frozen=True, slots=True)
class Capa(Command):
    """
    C{CAPA} (RFC 2449).
    """

    keyword: ClassVar[str] = "CAPA"

    @property
    def responseKind(self) -> ResponseKind:
        """
        The capability list, as a multi-line answer.
        """
        return ResponseKind.MULTILINE


@dataclass(frozen=True, slots=True)
class Auth(Command):
    """
    C{AUTH [mechanism [initial-response]]} (RFC 5034); without a mechanism, the list of
    mechanisms (RFC 1734 style).

    @ivar mechanism: The mechanism name, upper case, or L{None} for the list.
    @ivar initialResponse: The decoded initial response; C{b""} for C{=}, L{None} when
        none was given.
    """

    keyword: ClassVar[str] = "AUTH"
    mechanism: str | None = None
    initialResponse: bytes | None = None

    def __post_init__(self) -> None:
        if self.mechanism is None:
            if self.initialResponse is not None:
                raise LocalProtocolError("an initial response needs a mechanism")
        elif not _MECHANISM.fullmatch(self.mechanism):
            raise LocalProtocolError(f"not a SASL mechanism name: {self.mechanism!r}")

    def __repr__(self) -> str:
        response = "None" if self.initialResponse is None else "<redacted>"
        return f"Auth(mechanism={self.mechanism!r}, initialResponse={response})"

    def arguments(self) -> tuple[bytes, ...]:
        """
        The mechanism and the initial response in base64 (C{=} for an empty one).
        """
        if self.mechanism is None:
            return ()
        mechanism = self.mechanism.encode("ascii")
        if self.initialResponse is None:
            return (mechanism,)
        return (mechanism, binascii.b2a_base64(self.initialResponse, newline=False) or b"=")

    @property
    def responseKind(self) -> ResponseKind:
        """
        A SASL exchange, or the list of mechanisms without one.
        """
        return ResponseKind.MULTILINE if self.mechanism is None else ResponseKind.SASL

    def redacted(self) -> bytes:
        """
        The line with the initial response, if any, replaced by C{<redacted>}.
        """
        if self.initialResponse is None:
            return super(Auth, self).redacted()
        return b"AUTH " + (self.mechanism or "").encode("ascii") + b" <redacted>"


@dataclass(frozen=True, slots=True)
class Stls(Command):
    """
    C{STLS} (RFC 2595).
    """

    keyword: ClassVar[str] = "STLS"

    @property
    def responseKind(self) -> ResponseKind:
        """
        One line, after which the TLS handshake starts.
        """
        return ResponseKind.STLS


@dataclass(frozen=True, slots=True)
class Utf8(Command):
    """
    C{UTF8} (RFC 6856 section 2).
    """

    keyword: ClassVar[str] = "UTF8"


@dataclass(frozen=True, slots=True)
class Lang(Command):
    """
    C{LANG [tag]} (RFC 6856 section 3): list the languages, or choose one (C{*} for the
    server's default).

    @ivar tag: The language tag or C{*}, or L{None} to list.
    """

    keyword: ClassVar[str] = "LANG"
    tag: str | None = None

    def arguments(self) -> tuple[bytes, ...]:
        """
        The language tag, if any.
        """
        return () if self.tag is None else (self.tag.encode("ascii"),)

    @property
    def responseKind(self) -> ResponseKind:
        """
        The language list without a tag, one line with one.
        """
        return ResponseKind.MULTILINE if self.tag is None else ResponseKind.SINGLE


def decodeBase64(data: bytes) -> bytes:
    """
    Decode a SASL response or initial response: strict base64, C{=} meaning empty.

    @raise RemoteProtocolError: if C{data} is not valid base64.
    """
    if data == b"=":
        return b""
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise RemoteProtocolError("invalid base64 data") from None


def _parseAuth(rest: bytes) -> Command:
    arguments = _arguments(rest, 0, 2, "AUTH")
    if not arguments:
        return Auth()
    try:
        mechanism = arguments[0].decode("ascii").upper()
    except UnicodeDecodeError:
        raise RemoteProtocolError("unknown SASL mechanism") from None
    if not _MECHANISM.fullmatch(mechanism):
        raise RemoteProtocolError("unknown SASL mechanism")
    initial = decodeBase64(arguments[1]) if len(arguments) == 2 else None
    return Auth(mechanism, initial)


def _parseLang(rest: bytes) -> Command:
    arguments = _arguments(rest, 0, 1, "LANG")
    if not arguments:
        return Lang()
    (tag,) = arguments
    if tag != b"*" and not _LANGUAGE_TAG.fullmatch(tag):
        raise RemoteProtocolError("not a language tag")
    return Lang(tag.decode("ascii"))


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
        plural = "s" if maximum > 1 else ""
        raise RemoteProtocolError(f"{keyword} takes at most {maximum} argument{plural}")
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
    b"AUTH": _parseAuth,
    b"STLS": _noArguments(Stls),
    b"UTF8": _noArguments(Utf8),
    b"LANG": _parseLang,
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
