# -*- test-case-name: tests.test_audit -*-
"""
What a pop3kit server tells its log about each session: one vocabulary of events.

Every event the server emits about a session is one of the L{AuditEvent}s below, defined
once here and used by the server, the metrics (L{pop3kit.metrics}) and the docs
(C{docs/operations.rst}).  An event is an ordinary L{twisted.logger} event: its
C{log_format} is the text a human reads, and its fields are the data a program reads;
the field C{pop3kitEvent} holds the event's name (C{"login.refused"}, ...), which is
stable.  No field ever holds a password or a SASL response.

A server factory emits them to its L{AuditPublisher}, which passes those of level info
and above on to the global log.

Two observers are offered for C{twistd --logger}:

  - L{jsonLinesObserver}: one JSON object a line on standard output, for log shippers
    (Vector, Grafana Alloy, Filebeat, Fluent Bit);
  - L{textObserver}: Twisted's text lines on standard output, without the debug events.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, cast

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    LogPublisher,
    eventAsJSON,
    formatEvent,
    globalLogPublisher,
    textFileLogObserver,
)
from zope.interface import provider

__all__ = [
    "CONNECTED",
    "DISCONNECTED",
    "EVENTS",
    "EVENT_FIELD",
    "EVICTED",
    "LOCK_REFUSED",
    "LOGGED_OUT",
    "LOGIN_ACCEPTED",
    "LOGIN_REFUSED",
    "PENALTY",
    "RETRIEVED",
    "TIMED_OUT",
    "TLS_ESTABLISHED",
    "TLS_FAILED",
    "AuditEvent",
    "AuditPublisher",
    "Reason",
    "jsonLine",
    "jsonLinesObserver",
    "printable",
    "textObserver",
]

#: The field of a log event holding the name of its L{AuditEvent}.
EVENT_FIELD = "pop3kitEvent"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """
    One kind of event in the server's log.

    @ivar name: The stable name, the value of the event's C{pop3kitEvent} field.
    @ivar format: The L{twisted.logger} format string (PEP 3101, with the fields).
    @ivar level: The level it is emitted at.
    @ivar fields: The names of its fields, as documented.
    """

    name: str
    format: str
    level: LogLevel
    fields: tuple[str, ...]

    def emit(self, log: Logger, **fields: Any) -> None:
        """
        Emit this event on C{log} with C{fields} (which must be this event's fields).
        """
        log.emit(self.level, self.format, **{EVENT_FIELD: self.name}, **fields)

    def matches(self, event: LogEvent) -> bool:
        """
        Whether the log event C{event} is one of this kind.
        """
        return event.get(EVENT_FIELD) == self.name


_SESSION = ("sessionId", "peer")

CONNECTED = AuditEvent(
    "connect",
    "Connect: session=<{sessionId}>, rip={peer}, lip={local}",
    LogLevel.info,
    (*_SESSION, "local", "listener"),
)

TLS_ESTABLISHED = AuditEvent(
    "tls.established",
    "TLS established: session=<{sessionId}>, rip={peer}, {tlsVersion}, {tlsCipher}",
    LogLevel.info,
    (*_SESSION, "tlsVersion", "tlsCipher"),
)

TLS_FAILED = AuditEvent(
    "tls.failed",
    "TLS handshake failed: session=<{sessionId}>, rip={peer}, reason={reason}",
    LogLevel.info,
    (*_SESSION, "reason"),
)

LOGIN_ACCEPTED = AuditEvent(
    "login.accepted",
    "Login: session=<{sessionId}>, rip={peer}, lip={local}, method={mechanism}, "
    "tls={tls}, messages={messages}, size={octets}, user=<{user}>",
    LogLevel.info,
    (
        *_SESSION,
        "local",
        "user",
        "mechanism",
        "tls",
        "messages",
        "octets",
        "seconds",
        "checkSeconds",
        "openSeconds",
    ),
)

LOGIN_REFUSED = AuditEvent(
    "login.refused",
    "Login failed: session=<{sessionId}>, rip={peer}, lip={local}, method={mechanism}, "
    "code={code}, reason={reason}, user=<{user}>",
    LogLevel.info,
    (
        *_SESSION,
        "local",
        "user",
        "mechanism",
        "tls",
        "code",
        "reason",
        "penalty",
        "seconds",
        "checkSeconds",
    ),
)

RETRIEVED = AuditEvent(
    "retrieved",
    "Retrieved: session=<{sessionId}>, uid={uid}, octets={octets}, top={top}",
    LogLevel.debug,
    (*_SESSION, "uid", "octets", "top", "firstByteSeconds"),
)

LOGGED_OUT = AuditEvent(
    "logout",
    "Logged out: session=<{sessionId}>, rip={peer}, user=<{user}>, "
    "retr={retrieved}/{retrievedOctets}, top={tops}, del={deleted}, kept={kept}, "
    "expunge={expunge}, duration={duration:.3f}s",
    LogLevel.info,
    (
        *_SESSION,
        "user",
        "retrieved",
        "retrievedOctets",
        "tops",
        "deleted",
        "kept",
        "expunge",
        "expungeSeconds",
        "duration",
    ),
)

DISCONNECTED = AuditEvent(
    "disconnect",
    "Disconnected before login: session=<{sessionId}>, rip={peer}, duration={duration:.3f}s",
    LogLevel.info,
    (*_SESSION, "duration"),
)

TIMED_OUT = AuditEvent(
    "timeout",
    "Timed out: session=<{sessionId}>, rip={peer}, waiting for {waitingFor}",
    LogLevel.info,
    (*_SESSION, "waitingFor"),
)

EVICTED = AuditEvent(
    "evicted",
    "Evicted before login: session=<{sessionId}>, rip={peer}",
    LogLevel.info,
    _SESSION,
)

PENALTY = AuditEvent(
    "penalty",
    "Failed-login delay: rip={peer}, failures={failures}, delay={delay}s",
    LogLevel.info,
    ("peer", "failures", "delay"),
)

LOCK_REFUSED = AuditEvent(
    "lock.refused",
    "Maildrop in use: rip={peer}, maildrop=<{maildrop}>",
    LogLevel.info,
    ("peer", "maildrop"),
)

#: Every event of the vocabulary, by name.
EVENTS: dict[str, AuditEvent] = {
    event.name: event
    for event in (
        CONNECTED,
        TLS_ESTABLISHED,
        TLS_FAILED,
        LOGIN_ACCEPTED,
        LOGIN_REFUSED,
        RETRIEVED,
        LOGGED_OUT,
        DISCONNECTED,
        TIMED_OUT,
        EVICTED,
        PENALTY,
        LOCK_REFUSED,
    )
}


class AuditPublisher(LogPublisher):
    """
    The publisher of a server's session events: it passes those of level info and above
    on to another observer (the global log publisher by default), and all of them to the
    observers added to it.

    The debug events (one per message retrieved) are only worth making when someone
    listens: L{observed} says whether an observer was added.
    """

    def __init__(self, forwardTo: ILogObserver | None = None) -> None:
        """
        @param forwardTo: Gets the events of level info and above; the global log
            publisher by default.
        """
        super().__init__()
        self._forwardTo = globalLogPublisher if forwardTo is None else forwardTo
        self._added: list[ILogObserver] = []
        super().addObserver(cast(ILogObserver, self._forward))

    def _forward(self, event: LogEvent) -> None:
        if event["log_level"] >= LogLevel.info:
            self._forwardTo(event)

    @property
    def observed(self) -> bool:
        """
        Whether an observer was added (besides the forwarding to the global log).
        """
        return bool(self._added)

    def addObserver(self, observer: ILogObserver) -> None:
        """
        Send every event, debug ones included, to C{observer} too.
        """
        super().addObserver(observer)
        if observer not in self._added:
            self._added.append(observer)

    def removeObserver(self, observer: ILogObserver) -> None:
        """
        Stop sending events to C{observer}.
        """
        super().removeObserver(observer)
        if observer in self._added:
            self._added.remove(observer)


class Reason:
    """
    The values of the C{reason} field of L{LOGIN_REFUSED}.  The client is told none of
    this beyond the response code: an unknown user and a wrong password get the same
    answer.
    """

    #: No checker knows the user (L{pop3kit.cred.NoSuchUser}).
    UNKNOWN_USER = "unknown user"
    #: The user is known, the password is wrong (L{pop3kit.cred.WrongPassword}).
    WRONG_PASSWORD = "wrong password"  # noqa: S105 (a reason, not a password)
    #: Refused by a checker or a SASL mechanism that does not say why.
    REFUSED = "refused"
    #: The user name or password is invalid (SASLprep) or the SASL exchange malformed.
    MALFORMED = "malformed"
    #: The maildrop is locked by another session (C{[IN-USE]}).
    IN_USE = "maildrop in use"
    #: The user logged in too recently (C{[LOGIN-DELAY]}).
    LOGIN_DELAY = "login delay"
    #: A checker, the realm or the backend failed (C{[SYS/TEMP]}).
    TEMPORARY_FAILURE = "temporary failure"
    #: The client refused or aborted the exchange, or went away during it.
    ABORTED = "aborted"
    #: Refused for another reason, named by its response code.
    OTHER = "other"


def printable(text: str) -> str:
    """
    C{text} with every control, format, separator other than space, and unassigned
    character escaped (C{\\n} as C{\\x0a}) and backslashes doubled: a user name as given
    by a client cannot start a new log line or forge fields, for a reader or for
    fail2ban.
    """
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == " " or (char.isprintable() and unicodedata.category(char)[0] != "Z"):
            out.append(char)
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


# Observers


def _atLeast(level: LogLevel, observer: ILogObserver) -> ILogObserver:
    return FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=level)])


#: The fields Twisted's legacy log observers add to the events they see.
_LEGACY = frozenset({"isError", "message", "time", "system", "format", "why", "failure"})


def jsonLine(event: LogEvent) -> str:
    """
    One log event as one line of JSON (ending in a newline), for log shippers.

    The object holds the event's serialisable fields (those of L{eventAsJSON}), plus
    C{time} (ISO 8601, UTC), C{level} (C{"info"}, ...), C{namespace}, C{message} (the
    formatted text) and, for a failure, C{traceback}; the C{log_*} bookkeeping fields are
    left out.
    """
    data: dict[str, Any] = json.loads(eventAsJSON(event))
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), UTC).isoformat(),
        "level": event["log_level"].name if "log_level" in event else "info",
        "namespace": event.get("log_namespace"),
        "message": formatEvent(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    for key, value in data.items():
        if key.startswith("log_") or key in record or key in _LEGACY or value is None:
            continue
        record[key] = value
    return json.dumps(record, ensure_ascii=False, default=repr) + "\n"


def jsonLinesObserver(
    outFile: IO[str] | None = None, minimumLevel: LogLevel = LogLevel.info
) -> ILogObserver:
    """
    An observer writing each event of at least C{minimumLevel} as one line of JSON (see
    L{jsonLine}); for C{twistd --logger pop3kit.audit.jsonLinesObserver}.

    Twisted's L{twisted.logger.jsonFileLogObserver} writes RFC 7464 JSON text sequences
    (each record starts with an ASCII RS), which line-oriented shippers do not read.

    @param outFile: Where to write; standard output by default.
    @param minimumLevel: The lowest level written.
    """
    out = sys.stdout if outFile is None else outFile
    write: Callable[[str], object] = out.write

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        write(jsonLine(event))
        out.flush()

    return _atLeast(minimumLevel, observe)


def textObserver(
    outFile: IO[str] | None = None, minimumLevel: LogLevel = LogLevel.info
) -> ILogObserver:
    """
    Twisted's text log lines, of events of at least C{minimumLevel}, on C{outFile}
    (standard output by default); for C{twistd --logger pop3kit.audit.textObserver}
    under systemd, which adds its own time stamps and files.
    """
    return _atLeast(minimumLevel, textFileLogObserver(sys.stdout if outFile is None else outFile))
