"""
Editing Dovecot passwd-files safely: atomic rewrites under a lock, other lines kept byte
for byte.

Public names are exported by L{pop3kit.checkers.passwdfile}.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass
from pop3kit.checkers._schemes import _FORBIDDEN_IN_FIELD


class DuplicateUser(ValueError):
    """
    L{addUser} was asked to add a user who is already in the file.
    """


class UnknownUser(LookupError):
    """
    L{setPassword} or L{removeUser} was asked about a user who is not in the file.
    """


def validateUserName(name: str) -> str:
    """
    Check that C{name} can be written to a passwd-file.

    @param name: The user name.
    @return: C{name}, unchanged.
    @raise ValueError: If the name is empty, starts with C{#} (a comment), or contains
        C{:}, a line break or NUL.
    """
    if not name:
        raise ValueError("user name is empty")
    if name.startswith("#"):
        raise ValueError("user name must not start with '#'")
    for bad in _FORBIDDEN_IN_FIELD:
        if bad in name:
            raise ValueError(f"user name must not contain {bad!r}")
    return name


def _iterEntries(data: bytes) -> Iterator[tuple[int, str | None, str | None]]:
    """
    Split a passwd-file into entries.

    @return: An iterator of C{(lineNumber, name, passwordField)}, skipping blank and
        comment lines; C{name} is L{None} for a line that has no usable user name (or
        no C{:} at all), C{passwordField} is L{None} if it is not valid UTF-8.
    """
    for lineNumber, rawLine in enumerate(data.split(b"\n"), start=1):
        line = rawLine.removesuffix(b"\r")
        if not line.strip() or line.startswith(b"#"):
            continue
        rawName, colon, rest = line.partition(b":")
        if not colon:
            # Perhaps a password pasted on a line of its own: do not call it a name.
            yield lineNumber, None, None
            continue
        try:
            name: str | None = rawName.decode("utf-8")
        except UnicodeDecodeError:
            name = None
        if name == "" or (name is not None and "\0" in name):
            name = None
        try:
            password: str | None = rest.partition(b":")[0].decode("utf-8")
        except UnicodeDecodeError:
            password = None
        yield lineNumber, name, password


def _validateField(passwordHash: str) -> bytes:
    if not passwordHash:
        raise ValueError("password field is empty")
    for bad in _FORBIDDEN_IN_FIELD:
        if bad in passwordHash:
            raise ValueError(f"password field must not contain {bad!r}")
    return passwordHash.encode("utf-8")


def _lineName(line: bytes) -> bytes | None:
    line = line.rstrip(b"\r\n")
    if not line.strip() or line.startswith(b"#"):
        return None
    return line.partition(b":")[0]


def _splitLines(data: bytes) -> list[bytes]:
    """
    Split into lines at LF only, as the checker does, keeping the line ends.
    """
    lines = [line + b"\n" for line in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        del lines[-1]
    return lines


@contextlib.contextmanager
def _locked(directory: str) -> Iterator[None]:
    """
    Hold an exclusive lock on C{directory} (where the platform allows), so two
    concurrent edits of a file in it do not lose one another's changes.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _rewrite(path: str, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    """
    Apply C{edit} to the lines of C{path} (line ends included) and replace the file
    atomically: write a temporary file in the same directory, C{fsync} it, and
    C{os.replace} it over the old one.  A new file gets mode C{0o600}; an existing file
    keeps its mode.  Missing parent directories are created (mode C{0o700}).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with _locked(directory):
        try:
            with open(path, "rb") as f:
                lines = _splitLines(f.read())
                mode = os.fstat(f.fileno()).st_mode & 0o7777
        except FileNotFoundError:
            lines, mode = [], 0o600
        if lines and not lines[-1].endswith(b"\n"):
            lines[-1] += b"\n"
        newLines = edit(lines)
        fd, temporary = tempfile.mkstemp(
            dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), mode)
                f.write(b"".join(newLines))
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        with contextlib.suppress(OSError):
            dirfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)


def addUser(path: str, name: str, passwordHash: str) -> None:
    """
    Add a user to a passwd-file, creating the file (mode C{0o600}) if need be.

    Other lines, comments included, are kept as they are.

    @param path: The passwd-file.
    @param name: The user name (see L{validateUserName}).
    @param passwordHash: The password field, e.g. from L{hashPassword}.
    @raise ValueError: If the name or the password field is invalid.
    @raise DuplicateUser: If the user is already in the file.
    @raise OSError: If the file cannot be read or written.
    """
    nameBytes = validateUserName(name).encode("utf-8")
    field = _validateField(passwordHash)

    def edit(lines: list[bytes]) -> list[bytes]:
        if any(_lineName(line) == nameBytes for line in lines):
            raise DuplicateUser(f"user {name!r} already exists")
        return [*lines, nameBytes + b":" + field + b"\n"]

    _rewrite(path, edit)


def listUsers(path: str) -> list[str]:
    """
    List the user names in a passwd-file, in file order.

    @param path: The passwd-file.
    @return: The names; lines without a valid UTF-8 name are left out.
    @raise OSError: If the file cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read()
    return [name for _, name, _ in _iterEntries(data) if name is not None]


def setPassword(path: str, name: str, passwordHash: str) -> None:
    """
    Replace a user's password field, keeping the other fields of the line and the rest
    of the file.

    @param path: The passwd-file.
    @param name: The user name.
    @param passwordHash: The new password field, e.g. from L{hashPassword}.
    @raise ValueError: If the name or the password field is invalid.
    @raise UnknownUser: If the user is not in the file.
    @raise OSError: If the file cannot be read or written.
    """
    nameBytes = validateUserName(name).encode("utf-8")
    field = _validateField(passwordHash)

    def edit(lines: list[bytes]) -> list[bytes]:
        for index, line in enumerate(lines):
            if _lineName(line) == nameBytes:
                body = line.rstrip(b"\r\n")
                fields = body.split(b":")
                fields[1:2] = [field]
                lines[index] = b":".join(fields) + line[len(body) :]
                return lines
        raise UnknownUser(f"no user {name!r}")

    _rewrite(path, edit)


def removeUser(path: str, name: str) -> None:
    """
    Remove a user's line from a passwd-file.

    @param path: The passwd-file.
    @param name: The user name.
    @raise ValueError: If the name is invalid.
    @raise UnknownUser: If the user is not in the file.
    @raise OSError: If the file cannot be read or written.
    """
    nameBytes = validateUserName(name).encode("utf-8")

    def edit(lines: list[bytes]) -> list[bytes]:
        kept = [line for line in lines if _lineName(line) != nameBytes]
        if len(kept) == len(lines):
            raise UnknownUser(f"no user {name!r}")
        return kept

    _rewrite(path, edit)
