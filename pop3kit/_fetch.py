# -*- test-case-name: tests.test_fetch,tests.test_scan -*-
"""
C{pop3kit fetch} and C{pop3kit scan}: download mail from a POP3 server into a Maildir or an
mbox file, or list what a maildrop holds.

The work is done by the coroutines L{fetch} and L{scan}, which take the reactor and their
options as arguments so tests can run them on the reactor trial runs; L{runInReactor} runs
one of them on the global reactor for the command line.

Safety rules, in order of importance:
  1. A message is deleted on the server (with C{--delete}) only after its local copy has
     been written, synced to disk and (for a Maildir) linked into C{new/}; deletions take
     effect only on a successful C{QUIT}, so a lost connection deletes nothing.
  2. Every message delivered is recorded at once in the state file (appended, so a killed
     process loses no record), and the state file is rewritten atomically at the end.
  3. A message that was only partly received is never delivered: its temporary file is
     removed.
"""

from __future__ import annotations

import contextlib
import email.header
import email.parser
import email.policy
import email.utils
import errno
import getpass
import hashlib
import mailbox
import os
import socket
import sys
import tempfile
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Literal, Protocol, TextIO, cast

from pop3kit.backends import maildir as _maildir
from pop3kit.errors import ResponseCode

if TYPE_CHECKING:
    from pop3kit.client import POP3Client

__all__ = [
    "EX_CANTCREAT",
    "EX_NOHOST",
    "EX_NOPERM",
    "EX_PROTOCOL",
    "EX_TEMPFAIL",
    "EX_TLS",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "Account",
    "FetchError",
    "FetchOptions",
    "FetchResult",
    "fetch",
    "parseURL",
    "readPassword",
    "runInReactor",
    "scan",
]

# Exit statuses, from sysexits.h.  Documented in docs/fetch.rst.
EX_USAGE = 2
"""A bad command line, URL or option (argparse's own status)."""
EX_NOHOST = 68
"""The server's host name could not be resolved."""
EX_UNAVAILABLE = 69
"""The server could not be reached: connection refused, network unreachable."""
EX_CANTCREAT = 73
"""The destination or the state file could not be written."""
EX_TEMPFAIL = 75
"""A failure that may go away: a time-out, a lost connection, C{[IN-USE]},
C{[LOGIN-DELAY]}, C{[SYS/TEMP]}."""
EX_PROTOCOL = 76
"""The server answered something it should not have, or refused a command it offered."""
EX_NOPERM = 77
"""The server refused the login (a wrong user name or password, C{[AUTH]})."""
EX_TLS = 78
"""TLS could not be set up safely: the certificate was refused (unknown authority, wrong
host name, expired), the handshake failed, or a C{pop3://} server offers no STLS."""

#: Default ports.
POP3_PORT = 110
POP3S_PORT = 995

#: How many RETRs may be outstanding at a time (each holds an open temporary file).
PIPELINE_WINDOW = 32

#: Received messages are made durable in batches (one sync each): at most this many
#: messages or octets per batch.  A batch is also committed whenever no RETR is waiting.
BATCH_MESSAGES = 1000
BATCH_OCTETS = 64 * 1024 * 1024

#: The first line of a state file.
_STATE_MAGIC = "# pop3kit fetch state 1: the UIDLs of the messages already delivered"


class FetchError(Exception):
    """
    A failure to report in one line, with the exit status to end with.

    @ivar status: The exit status.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Account:
    """
    A maildrop on a POP3 server, as named by a C{pop3://} or C{pop3s://} URL.

    @ivar implicitTLS: C{True} for C{pop3s://}: TLS from the first octet.
    @ivar user: The user name, percent-decoded.
    @ivar host: The host name or address (without brackets).
    @ivar port: The port.
    """

    implicitTLS: bool
    user: str
    host: str
    port: int

    def __str__(self) -> str:
        scheme = "pop3s" if self.implicitTLS else "pop3"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{urllib.parse.quote(self.user, safe='')}@{host}:{self.port}"


def parseURL(url: str) -> Account:
    """
    Parse C{pop3://user@host[:port]} or C{pop3s://user@host[:port]}.

    @raise FetchError: With L{EX_USAGE} for anything else, including a URL with a password
        (passwords never go on the command line).
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise FetchError(f"invalid URL {url!r}: {e}", EX_USAGE) from None
    scheme = parts.scheme.lower()
    if scheme not in ("pop3", "pop3s"):
        raise FetchError(f"invalid URL {url!r}: the scheme must be pop3:// or pop3s://", EX_USAGE)
    if parts.password is not None:
        raise FetchError(
            "a password in the URL is not accepted: use --password-file or POP3KIT_PASSWORD",
            EX_USAGE,
        )
    if not parts.username:
        raise FetchError(f"invalid URL {url!r}: no user name (pop3://USER@HOST)", EX_USAGE)
    if not parts.hostname:
        raise FetchError(f"invalid URL {url!r}: no host name", EX_USAGE)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise FetchError(f"invalid URL {url!r}: nothing may follow the host and port", EX_USAGE)
    implicitTLS = scheme == "pop3s"
    if port is None:
        port = POP3S_PORT if implicitTLS else POP3_PORT
    user = urllib.parse.unquote(parts.username, errors="strict")
    return Account(implicitTLS, user, parts.hostname, port)


def readPassword(
    passwordFile: str | None,
    environ: Mapping[str, str],
    stdin: TextIO,
    prompt: Callable[[str], str] = getpass.getpass,
    account: Account | None = None,
) -> str:
    """
    The password: the first line of C{passwordFile}, else C{POP3KIT_PASSWORD}, else asked
    for on the terminal.

    @raise FetchError: If there is none (L{EX_USAGE}), or the file cannot be read.
    """
    if passwordFile is not None:
        try:
            with open(passwordFile, encoding="utf-8") as f:
                line = f.readline()
        except OSError as e:
            raise FetchError(f"cannot read the password file: {_describeOSError(e)}", 1) from None
        password = line.removesuffix("\n").removesuffix("\r")
    elif "POP3KIT_PASSWORD" in environ:
        password = environ["POP3KIT_PASSWORD"]
    elif stdin.isatty():
        try:
            password = prompt(f"Password for {account or 'the server'}: ")
        except EOFError:
            password = ""
    else:
        raise FetchError("no password: use --password-file FILE, or set POP3KIT_PASSWORD", EX_USAGE)
    if not password:
        raise FetchError("empty password", EX_USAGE)
    return password


@dataclass(frozen=True)
class ConnectOptions:
    """
    How to reach and log in to the server.

    @ivar noTLS: With C{pop3://}, do not use STLS (everything in clear text).
    @ivar cafile: PEM file of the authorities to trust instead of the system's.
    @ivar mechanism: The login mechanism (see L{pop3kit.client.POP3Client.login}), or
        L{None} for the client's choice.
    @ivar timeout: Seconds to wait for the server at any step.
    """

    noTLS: bool = False
    cafile: str | None = None
    mechanism: str | None = None
    timeout: float = 60.0


@dataclass(frozen=True)
class FetchOptions:
    """
    What C{pop3kit fetch} was asked to do.

    @ivar destination: C{maildir:DIR} or C{mbox:FILE}.
    @ivar delete: Delete each message on the server once it is stored (C{--delete});
        otherwise keep them all there (C{--keep}, the default).
    @ivar sinceLast: Skip the messages whose UIDL is in the state file.  Always on with
        C{--keep}; with C{--delete}, those messages are then deleted without being
        downloaded again.
    @ivar stateFile: The state file, or L{None} for the default (see L{defaultStatePath}).
    """

    destination: str
    delete: bool = False
    sinceLast: bool = False
    stateFile: str | None = None
    connect: ConnectOptions = field(default_factory=ConnectOptions)


@dataclass
class FetchResult:
    """
    What a fetch did.

    @ivar fetched: Messages downloaded and stored.
    @ivar skipped: Messages not downloaded because the state file lists them.
    @ivar deleted: Messages deleted on the server (after a successful QUIT).
    @ivar octets: Octets downloaded (CRLF form).
    """

    fetched: int = 0
    skipped: int = 0
    deleted: int = 0
    octets: int = 0


# Destinations.


class _Sink(Protocol):
    """
    One message being stored: written, closed (not yet durable), then made durable and
    visible together with others by L{Destination.commitBatch}, or aborted.
    """

    def write(self, data: bytes) -> None: ...

    def close(self, wireSize: int) -> None: ...

    def abort(self) -> None: ...


class _LFWriter:
    """
    Turn the CRLF line ends of a message received from the server into LF, as Unix mail
    stores keep them (a lone CR stays), across chunk boundaries, and pass it on to a sink.
    Counts the octets received.

    Chunks are gathered up to C{batchSize} octets before they are converted and written:
    TLS hands over a few kilobytes at a time, and one conversion and one write per batch
    cost far less than one per chunk.
    """

    def __init__(self, sink: _Sink, batchSize: int = 256 * 1024) -> None:
        self._sink = sink
        self.batchSize = batchSize
        self._pendingCR = False
        self._chunks: list[bytes] = []
        self._gathered = 0
        self.received = 0

    def write(self, data: bytes) -> None:
        """
        Take the next chunk of the message.
        """
        if not data:
            return
        self.received += len(data)
        self._chunks.append(data)
        self._gathered += len(data)
        if self._gathered >= self.batchSize:
            self._flush()

    def _flush(self) -> None:
        data = b"".join(self._chunks)
        self._chunks = []
        self._gathered = 0
        if self._pendingCR:
            data = b"\r" + data
        self._pendingCR = data.endswith(b"\r")
        if self._pendingCR:
            data = data[:-1]
        if data:
            self._sink.write(data.replace(b"\r\n", b"\n"))

    def finish(self) -> None:
        """
        The message is complete: pass on what is gathered, and a final lone CR.
        """
        self._flush()
        if self._pendingCR:
            self._pendingCR = False
            self._sink.write(b"\r")


class _MaildirSink:
    """
    A message streaming into a Maildir's C{tmp/}, linked into C{new/} by
    L{Destination.commitBatch}.
    """

    def __init__(self, path: str) -> None:
        self.delivery = _maildir._Delivery(path, create=False, countWireSize=False)
        self.wireSize = 0

    def write(self, data: bytes) -> None:
        self.delivery.write(data)

    def close(self, wireSize: int) -> None:
        self.delivery.closeFile()
        self.wireSize = wireSize

    def abort(self) -> None:
        self.delivery.abort()


class _MboxSink:
    """
    A message streaming into a temporary file, appended to an mbox by
    L{Destination.commitBatch}.
    """

    def __init__(self, path: str) -> None:
        self.spool: IO[bytes] | None = tempfile.TemporaryFile(  # noqa: SIM115
            dir=os.path.dirname(os.path.abspath(path)) or "."
        )

    def write(self, data: bytes) -> None:
        assert self.spool is not None
        self.spool.write(data)

    def close(self, wireSize: int) -> None:
        assert self.spool is not None
        self.spool.flush()

    def abort(self) -> None:
        spool, self.spool = self.spool, None
        if spool is not None:
            spool.close()


class _MboxSource:
    """
    A binary file that C{mailbox.mbox.add} reads line by line: a plain file object would
    do, but the stdlib also tries C{.buffer} on it; this exposes only C{readline}.
    """

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def readline(self) -> bytes:
        return self._f.readline()

    def read(self, size: int = -1) -> bytes:
        return self._f.read(size)


@dataclass(frozen=True)
class Destination:
    """
    Where fetched messages go.

    @ivar kind: C{"maildir"} or C{"mbox"}.
    @ivar path: The Maildir directory or the mbox file, made absolute.
    """

    kind: str
    path: str

    def commitBatch(self, sinks: Sequence[_Sink]) -> None:
        """
        Store closed messages durably, in this order; blocking, run in a thread.

        Maildir: one C{sync} for all the files in C{tmp/} (one journal commit rather than
        one per file), then each is linked into C{new/}, and C{new/} is synced.  mbox:
        locked (C{fcntl} and a dot-lock, as L{mailbox.mbox} does), all appended with
        C{From } lines in bodies quoted as C{>From }, synced, unlocked.
        """
        if not sinks:
            return
        if self.kind == "maildir":
            os.sync()
            for sink in sinks:
                assert isinstance(sink, _MaildirSink)
                sink.delivery.publish(sink.wireSize)
            _maildir._syncDirectory(os.path.join(self.path, "new"))
            return
        box = mailbox.mbox(self.path, create=True)
        box.lock()
        try:
            for sink in sinks:
                assert isinstance(sink, _MboxSink) and sink.spool is not None
                sink.spool.seek(0)
                box.add(_MboxSource(sink.spool))
            box.flush()
        finally:
            box.unlock()
            box.close()
        for sink in sinks:
            sink.abort()

    def open(self) -> _Sink:
        """
        Start storing one message.
        """
        if self.kind == "maildir":
            return _MaildirSink(self.path)
        return _MboxSink(self.path)

    def check(self) -> None:
        """
        Create the destination if missing, and check that it can be written: before
        connecting, so a typo costs no download.

        @raise FetchError: With L{EX_CANTCREAT}.
        """
        try:
            if self.kind == "maildir":
                for sub in ("tmp", "new", "cur"):
                    os.makedirs(os.path.join(self.path, sub), mode=0o700, exist_ok=True)
                if not os.access(os.path.join(self.path, "tmp"), os.W_OK | os.X_OK):
                    raise PermissionError(errno.EACCES, "not writable", self.path)
            else:
                parent = os.path.dirname(self.path) or "."
                os.makedirs(parent, mode=0o700, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.close(fd)
        except OSError as e:
            raise FetchError(
                f"cannot use {self.kind}:{self.path}: {_describeOSError(e)}", EX_CANTCREAT
            ) from None


def parseDestination(text: str) -> Destination:
    """
    Parse C{maildir:DIR} or C{mbox:FILE}.

    @raise FetchError: With L{EX_USAGE}.
    """
    kind, sep, path = text.partition(":")
    kind = kind.lower()
    if not sep or kind not in ("maildir", "mbox") or not path:
        raise FetchError(f"invalid destination {text!r}: use maildir:DIR or mbox:FILE", EX_USAGE)
    return Destination(kind, os.path.abspath(os.path.expanduser(path)))


# The state file.


def defaultStatePath(account: Account, destination: Destination, environ: Mapping[str, str]) -> str:
    """
    The default state file of an account and destination:
    C{$XDG_STATE_HOME/pop3kit/fetch/USER@HOST:PORT-HASH}, where C{XDG_STATE_HOME} defaults
    to C{~/.local/state} and HASH is a short hash of the destination, so fetching one
    account into two places keeps two states.
    """
    base = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    key = f"{destination.kind}:{destination.path}".encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(key).hexdigest()[:12]
    name = urllib.parse.quote(f"{account.user}@{account.host}:{account.port}", safe="@:")
    return os.path.join(base, "pop3kit", "fetch", f"{name}-{digest}")


class StateFile:
    """
    The UIDLs of the messages already delivered from one account to one destination.

    The file holds a comment line, then one UIDL a line.  Each delivered message's UIDL
    is appended to it as soon as the message is stored (L{record}), so a process killed
    half-way keeps its record; L{save} rewrites it atomically (a temporary file, synced,
    renamed over the old one) with only the UIDLs that still matter.

    @ivar uids: The UIDLs known.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.uids: set[str] = set()
        self._journal: IO[str] | None = None

    def load(self) -> None:
        """
        Read the file, if it exists.

        @raise FetchError: With L{EX_CANTCREAT} if it exists but cannot be read.
        """
        try:
            with open(self.path, encoding="ascii", errors="surrogateescape") as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        self.uids.add(line)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise FetchError(
                f"cannot read the state file: {_describeOSError(e)}", EX_CANTCREAT
            ) from None

    def record(self, uid: str) -> None:
        """
        Remember C{uid}, appending it to the file at once (flushed to the kernel, not
        synced: a crash of the machine may lose it, and the message is then fetched again).
        """
        self.uids.add(uid)
        if self._journal is None:
            new = not os.path.exists(self.path)
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            self._journal = open(  # noqa: SIM115
                self.path, "a", encoding="ascii", errors="surrogateescape"
            )
            if new:
                self._journal.write(_STATE_MAGIC + "\n")
        self._journal.write(uid + "\n")
        self._journal.flush()

    def close(self) -> None:
        """
        Close the appending handle, if open.
        """
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()

    def save(self, keep: Iterable[str]) -> None:
        """
        Rewrite the file atomically with just C{keep}.
        """
        self.close()
        self.uids = set(keep)
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="ascii", errors="surrogateescape") as f:
                f.write(_STATE_MAGIC + "\n")
                for uid in sorted(self.uids):
                    f.write(uid + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _maildir._syncDirectory(directory)


# Progress.


class Progress:
    """
    A one-line progress display on a terminal, redrawn at most ten times a second.
    """

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._last = 0.0
        self._shown = False
        self.total = 0
        self.totalOctets = 0

    def update(self, done: int, octets: int, force: bool = False) -> None:
        """
        Show that C{done} messages and C{octets} octets have been fetched.
        """
        now = self._clock()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        percent = 100 * octets // self.totalOctets if self.totalOctets else 100
        width = 30
        filled = width * percent // 100
        bar = "#" * filled + "-" * (width - filled)
        self._stream.write(
            f"\r[{bar}] {percent:3d}% {done}/{self.total} messages, "
            f"{octets / 1e6:.1f}/{self.totalOctets / 1e6:.1f} MB"
        )
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        """
        End the line.
        """
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()


# Connecting.


async def openSession(
    reactor: Any, account: Account, options: ConnectOptions, password: str
) -> POP3Client:
    """
    Connect, secure the connection as the URL and options say, and log in.

    @raise FetchError: For every failure, with its exit status.
    """
    from pop3kit.client import connect

    tls: Literal["implicit", "starttls", "none"]
    if account.implicitTLS:
        tls = "implicit"
    elif options.noTLS:
        tls = "none"
    else:
        tls = "starttls"
    try:
        client = await connect(
            reactor,
            account.host,
            account.port,
            tls=tls,
            cafile=options.cafile,
            hostname=account.host,
            timeout=options.timeout,
        )
    except Exception as e:
        raise describeFailure(e, account, "connecting to") from None
    try:
        await client.login(account.user, password, mechanism=options.mechanism)
    except Exception as e:
        _abort(client)
        raise describeFailure(e, account, "logging in to") from None
    return client


_TEMPORARY_CODES = {"IN-USE", "LOGIN-DELAY", "SYS/TEMP"}


def describeFailure(error: BaseException, account: Account, doing: str) -> FetchError:
    """
    Turn an exception from the client or the network into a one-line L{FetchError} with
    its exit status.
    """
    from twisted.internet import error as neterror

    from pop3kit.client import MechanismUnavailable, ServerError

    where = f"{account.host}:{account.port}"
    if isinstance(error, FetchError):
        return error
    if isinstance(error, ServerError):
        code = error.code
        codeText = code.value if isinstance(code, ResponseCode) else None
        text = error.text if isinstance(error.text, str) else repr(error.text)
        if codeText is not None and any(
            codeText == c or codeText.startswith(c + "/") for c in _TEMPORARY_CODES
        ):
            return FetchError(f"{where} says, try later: {text}", EX_TEMPFAIL)
        if codeText is not None and codeText.startswith("SYS"):
            return FetchError(f"{where} reports a failure: {text}", EX_PROTOCOL)
        if doing == "logging in to":
            return FetchError(f"login to {where} as {account.user!r} refused: {text}", EX_NOPERM)
        return FetchError(f"{where} refused: {text}", EX_PROTOCOL)
    if isinstance(error, MechanismUnavailable):
        return FetchError(f"cannot log in to {where}: {error}", EX_NOPERM)
    if isinstance(error, neterror.DNSLookupError | socket.gaierror):
        return FetchError(f"unknown host {account.host!r}", EX_NOHOST)
    if isinstance(error, neterror.ConnectionRefusedError | neterror.NoRouteError):
        return FetchError(f"cannot connect to {where}: {_errorText(error)}", EX_UNAVAILABLE)
    if _isTLSFailure(error):
        return FetchError(f"TLS with {where} failed: {_errorText(error)}", EX_TLS)
    if _isTimeout(error):
        return FetchError(f"{where} did not answer in time while {doing[:-3]}ing", EX_TEMPFAIL)
    if isinstance(error, neterror.ConnectError):
        return FetchError(f"cannot connect to {where}: {_errorText(error)}", EX_UNAVAILABLE)
    if isinstance(error, neterror.ConnectionDone | neterror.ConnectionLost | ConnectionError):
        return FetchError(f"the connection to {where} was lost: {_errorText(error)}", EX_TEMPFAIL)
    if isinstance(error, OSError):
        return FetchError(_describeOSError(error), EX_CANTCREAT)
    return FetchError(f"{doing} {where}: {_errorText(error)}", EX_PROTOCOL)


def _errorText(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _isTimeout(error: BaseException) -> bool:
    from twisted.internet import defer
    from twisted.internet import error as neterror

    return isinstance(
        error, TimeoutError | defer.TimeoutError | neterror.TimeoutError | defer.CancelledError
    )


def _isTLSFailure(error: BaseException) -> bool:
    """
    Whether C{error} says TLS failed: an OpenSSL error, a certificate verification failure,
    or the client's refusal to go on without TLS.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        module = type(current).__module__
        text = str(current)
        if module.startswith(("OpenSSL", "ssl", "service_identity")) or "TLS" in name:
            return True
        if "STLS" in text or "certificate" in text.lower() or "VerificationError" in name + text:
            return True
        inner = getattr(current, "value", None)  # a Failure wrapped in an exception
        current = (
            inner
            if isinstance(inner, BaseException)
            else (current.__cause__ or current.__context__)
        )
    return False


def _describeOSError(error: OSError) -> str:
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}"


def _abort(client: POP3Client) -> None:
    """
    Drop the connection without QUIT, so nothing marked is deleted.
    """
    abort = getattr(client, "abort", None)
    transport = getattr(client, "transport", None)
    with contextlib.suppress(Exception):
        if abort is not None:
            abort()
        elif transport is not None:
            transport.abortConnection()


# fetch.


async def fetch(
    reactor: Any,
    account: Account,
    options: FetchOptions,
    password: str,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> FetchResult:
    """
    Download the messages of C{account} into C{options.destination}.

    @raise FetchError: On any failure, with the exit status to end with.  Messages stored
        before the failure stay stored and recorded.
    """
    from twisted.internet.defer import Deferred, ensureDeferred
    from twisted.internet.threads import deferToThread

    environ = os.environ if environ is None else environ
    destination = parseDestination(options.destination)
    destination.check()
    statePath = options.stateFile or defaultStatePath(account, destination, environ)
    state = StateFile(os.path.abspath(os.path.expanduser(statePath)))
    state.load()
    result = FetchResult()
    client = await openSession(reactor, account, options.connect, password)
    sinks: list[_Sink] = []
    committing: list[Deferred[None]] = []
    deletions: list[Deferred[None]] = []
    window: deque[tuple[int, _LFWriter, _Sink, Deferred[int]]] = deque()
    try:
        try:
            sizes = await client.listSizes()
            try:
                uids: dict[int, str] | None = dict(await client.listUids())
            except Exception as e:
                from pop3kit.client import ServerError

                if not isinstance(e, ServerError):
                    raise
                uids = None
                sys.stderr.write(
                    f"pop3kit: warning: {account.host} has no UIDL; "
                    "messages cannot be told apart between runs\n"
                )
        except Exception as e:
            raise describeFailure(e, account, "listing messages on") from None

        skipOld = uids is not None and (options.sinceLast or not options.delete)
        wanted = []
        alreadyStored = []
        for number in sorted(sizes):
            uid = uids.get(number) if uids is not None else None
            if skipOld and uid is not None and uid in state.uids:
                alreadyStored.append(number)
            else:
                wanted.append(number)
        result.skipped = len(alreadyStored)
        if progress is not None:
            progress.total = len(wanted)
            progress.totalOctets = sum(sizes[n] for n in wanted)
            progress.update(0, 0, force=True)

        if options.delete:
            deletions.extend(client.delete(number) for number in alreadyStored)

        batch: list[tuple[int, _LFWriter, _Sink]] = []
        batchOctets = 0

        def start(number: int) -> None:
            sink = destination.open()
            sinks.append(sink)
            writer = _LFWriter(sink)
            window.append((number, writer, sink, client.retrieve(number, cast(BinaryIO, writer))))

        async def commit(batch: list[tuple[int, _LFWriter, _Sink]]) -> None:
            try:
                await deferToThread(destination.commitBatch, [sink for _, _, sink in batch])
            except OSError as e:
                raise FetchError(
                    f"cannot store messages: {_describeOSError(e)}", EX_CANTCREAT
                ) from None
            for number, writer, sink in batch:
                sinks.remove(sink)
                result.fetched += 1
                result.octets += writer.received
                uid = uids.get(number) if uids is not None else None
                if uid is not None:
                    try:
                        state.record(uid)
                    except OSError as e:
                        raise FetchError(
                            f"cannot write the state file: {_describeOSError(e)}", EX_CANTCREAT
                        ) from None
                if options.delete:
                    # Only now: the message is on disk.
                    deletions.append(client.delete(number))
            if progress is not None:
                progress.update(result.fetched, result.octets)

        pending = deque(wanted)
        while pending or window or batch:
            while pending and len(window) < PIPELINE_WINDOW:
                start(pending.popleft())
            if window:
                number, writer, sink, retrieved = window.popleft()
                try:
                    await retrieved
                except Exception as e:
                    raise describeFailure(e, account, "downloading from") from None
                writer.finish()
                try:
                    sink.close(writer.received)
                except OSError as e:
                    raise FetchError(
                        f"cannot store message {number}: {_describeOSError(e)}", EX_CANTCREAT
                    ) from None
                batch.append((number, writer, sink))
                batchOctets += writer.received
            full = len(batch) >= BATCH_MESSAGES or batchOctets >= BATCH_OCTETS
            busy = committing and not committing[-1].called
            if batch and (full or not window) and not busy:
                if committing:
                    await committing.pop()
                committing.append(ensureDeferred(commit(batch)))
                batch, batchOctets = [], 0
            elif batch and not window and busy:
                await committing[-1]
        if committing:
            await committing.pop()
        try:
            for deletion in deletions:
                await deletion
            await client.quit()
        except Exception as e:
            raise describeFailure(e, account, "deleting on") from None
        if options.delete:
            result.deleted = len(deletions)
        # Forget what is no longer on the server (deleted now, or by someone else).
        if uids is not None:
            onServer = set(uids.values())
            if options.delete:
                onServer = set()
            try:
                state.save(state.uids & onServer)
            except OSError as e:
                raise FetchError(
                    f"cannot write the state file: {_describeOSError(e)}", EX_CANTCREAT
                ) from None
        return result
    except BaseException:
        _abort(client)
        # Commands still waiting fail with the lost connection: nobody wants to know.
        waiting: list[Deferred[Any]] = [*deletions, *(item[3] for item in window)]
        for command in waiting:
            command.addErrback(lambda _: None)
        raise
    finally:
        # A batch being committed in a thread finishes first; then what was not
        # committed is removed.
        for running in committing:
            with contextlib.suppress(Exception):
                await running
        for sink in sinks:
            with contextlib.suppress(OSError):
                sink.abort()
        state.close()
        if progress is not None:
            if result.fetched:
                progress.update(result.fetched, result.octets, force=True)
            progress.finish()


# scan.


def _decodeHeader(value: object) -> str:
    """
    A header value as text: RFC 2047 words decoded, unknown charsets and garbage replaced,
    folding and control characters turned into spaces.
    """
    if value is None:
        return ""
    raw = str(value)
    try:
        text = str(email.header.make_header(email.header.decode_header(raw)))
    except Exception:
        text = raw
    return "".join(c if c.isprintable() else " " for c in " ".join(text.split()))


def _formatDate(value: object) -> str:
    """
    A C{Date:} header as C{YYYY-MM-DD HH:MM} (in its own time zone), or what it says.
    """
    if value is None:
        return "-"
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return _decodeHeader(value)[:16] or "-"
    return when.strftime("%Y-%m-%d %H:%M")


def summarise(number: int, size: int, headers: bytes) -> str:
    """
    One line of C{scan}: number, size, date, sender, subject.
    """
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(headers)
    date = _formatDate(parsed.get("Date"))
    sender = _decodeHeader(parsed.get("From"))
    with contextlib.suppress(Exception):
        name, address = email.utils.parseaddr(sender)
        sender = name or address or sender
    subject = _decodeHeader(parsed.get("Subject"))
    return f"{number:>5} {size:>9} {date:<16} {sender[:28]:<28} {subject}"


async def scan(
    reactor: Any,
    account: Account,
    options: ConnectOptions,
    password: str,
    output: TextIO,
    delete: Iterable[int] = (),
) -> int:
    """
    Print one line per message (number, size, date, sender, subject) from C{TOP n 0},
    without downloading bodies; then delete the messages numbered in C{delete}.

    @return: The number of messages listed.
    @raise FetchError: On any failure.
    """
    from twisted.internet.defer import ensureDeferred

    client = await openSession(reactor, account, options, password)
    try:
        try:
            sizes = await client.listSizes()
        except Exception as e:
            raise describeFailure(e, account, "listing messages on") from None
        toDelete = sorted(set(delete))
        unknown = [n for n in toDelete if n not in sizes]
        if unknown:
            raise FetchError(
                f"no message {', '.join(map(str, unknown))} on {account.host}", EX_USAGE
            )
        numbers = sorted(sizes)
        pending: deque[tuple[int, Any]] = deque()
        window = PIPELINE_WINDOW
        for index in range(len(numbers) + window):
            if index < len(numbers):
                pending.append((numbers[index], ensureDeferred(client.top(numbers[index], 0))))
            if index >= window or index >= len(numbers):
                if not pending:
                    break
                number, top = pending.popleft()
                try:
                    headers = await top
                except Exception as e:
                    raise describeFailure(e, account, "reading headers from") from None
                output.write(summarise(number, sizes[number], headers) + "\n")
        output.flush()
        try:
            for number in toDelete:
                await client.delete(number)
            await client.quit()
        except Exception as e:
            raise describeFailure(e, account, "deleting on") from None
        return len(numbers)
    except BaseException:
        _abort(client)
        raise


# Running on the global reactor.


def runInReactor(work: Callable[[Any], Awaitable[object]]) -> int:
    """
    Run C{work(reactor)} on the global reactor until it ends.

    @return: 0, or the status of the L{FetchError} it raised (1 for other exceptions,
        130 if interrupted).
    """
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred
    from twisted.python.failure import Failure

    outcome: list[int] = []
    running: list[Any] = []

    async def main() -> None:
        await work(reactor)

    def done(result: object) -> None:
        if outcome:
            return
        if isinstance(result, Failure):
            error = cast(BaseException, result.value)
            if isinstance(error, FetchError):
                sys.stderr.write(f"pop3kit: error: {error}\n")
                outcome.append(error.status)
            else:
                sys.stderr.write(f"pop3kit: error: {_errorText(error)}\n")
                outcome.append(1)
        else:
            outcome.append(0)
        if reactor.running:  # type: ignore[attr-defined]
            reactor.stop()  # type: ignore[attr-defined]

    def begin() -> None:
        running.append(ensureDeferred(main()).addBoth(done))

    def interrupted() -> None:
        # Ctrl-C or SIGTERM: let the coroutine clean up (remove partial files, drop the
        # connection without QUIT) before the reactor goes.
        if not outcome:
            outcome.append(130)
            sys.stderr.write("pop3kit: error: interrupted\n")
            for d in running:
                d.cancel()

    reactor.callWhenRunning(begin)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", interrupted)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return outcome[0] if outcome else 130
