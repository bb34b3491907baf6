"""
Streaming transformation of stored messages into POP3 multi-line responses, and back.

Stored messages may use LF or CRLF line ends.  On the wire every line ends in CRLF, a line
starting with C{.} gets one more C{.} (byte-stuffing, RFC 1939 section 3), and the response
ends with C{.CRLF}.  A message whose last line has no line end gets a CRLF before the
terminator.  The I{canonical form} of a message is what the client receives before
un-stuffing: line ends normalised to CRLF, a final CRLF added where missing.  Its length is the
size that STAT and LIST report (L{wireSize}).

Every class here is incremental and correct for any split of the input into chunks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

TERMINATOR = b".\r\n"

# A compiled pattern substitutes in one pass, about three times faster than bytes.replace
# on typical mail, where few lines start with a dot.
_DOT_AFTER_LINE_END = re.compile(rb"\n\.")


class _Normaliser:
    """
    Turn LF line ends into CRLF across chunk boundaries; a bare CR is kept as it is.
    """

    def __init__(self) -> None:
        self._heldCR = False

    def feed(self, data: bytes) -> bytes:
        """
        Normalise one chunk.  A trailing CR is held back until the next chunk shows whether
        an LF follows it.
        """
        if self._heldCR:
            data = b"\r" + data
            self._heldCR = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._heldCR = True
        if b"\r" not in data:
            # LF-only (the common Maildir case): one fast pass.
            return data.replace(b"\n", b"\r\n")
        if data.count(b"\n") == data.count(b"\r\n"):
            # Already CRLF throughout (bare CRs, if any, stay as they are).
            return data
        return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def flush(self) -> bytes:
        """
        Return what is held back at the end of the input.
        """
        if self._heldCR:
            self._heldCR = False
            return b"\r"
        return b""


class WireSizeCounter:
    """
    Count the octets of a message's canonical form without building it.
    """

    def __init__(self) -> None:
        self._octets = 0
        self._lastByte = b""
        self._pendingCR = False

    def feed(self, data: bytes) -> None:
        """
        Count one chunk of the stored message.
        """
        if not data:
            return
        bareLF = data.count(b"\n") - data.count(b"\r\n")
        if self._pendingCR and data[:1] == b"\n":
            bareLF -= 1
        self._octets += len(data) + bareLF
        self._pendingCR = data.endswith(b"\r")
        self._lastByte = data[-1:]

    @property
    def octets(self) -> int:
        """
        The canonical size of everything fed so far, as if the message ended here.
        """
        if self._lastByte and self._lastByte != b"\n":
            return self._octets + 2
        return self._octets


def wireSize(message: bytes) -> int:
    """
    The size of C{message} as POP3 reports it: CRLF line ends, final line end included,
    byte-stuffing not counted.
    """
    counter = WireSizeCounter()
    counter.feed(message)
    return counter.octets


def canonicalForm(message: bytes) -> bytes:
    """
    The octets a client receives for C{message} once it has removed the byte-stuffing.
    """
    normaliser = _Normaliser()
    data = normaliser.feed(message) + normaliser.flush()
    if data and not data.endswith(b"\n"):
        data += b"\r\n"
    return data


class MessageEncoder:
    """
    Turn a stored message, fed in chunks of any size, into the body of a multi-line response.

    Feed chunks with L{feed}; call L{finish} once at the end of the input for the remaining
    octets and the terminator.  For TOP, give C{bodyLines}: the output then holds the
    headers, the blank line and at most that many body lines, and L{complete} becomes true
    as soon as nothing more will be written, so the caller can stop reading.
    """

    def __init__(self, bodyLines: int | None = None) -> None:
        self._normaliser = _Normaliser()
        self._atLineStart = True
        self._bodyLines = bodyLines
        self._partial = b""
        self._inBody = False
        self._denseDots = False
        self.complete = False

    def feed(self, chunk: bytes) -> bytes:
        """
        Encode one chunk of the stored message.
        """
        if self.complete:
            return b""
        data = self._normaliser.feed(chunk)
        if self._bodyLines is not None:
            return self._feedLines(data)
        return self._stuff(data)

    def _stuff(self, data: bytes) -> bytes:
        if not data:
            return b""
        if self._denseDots:
            data = data.replace(b"\n.", b"\n..")
        else:
            data, count = _DOT_AFTER_LINE_END.subn(b"\n..", data)
            # The pattern is fast when few lines start with a dot and slow when many do;
            # bytes.replace is the other way round.  Switch for the rest of the message.
            self._denseDots = count * 64 > len(data)
        if self._atLineStart and data[:1] == b".":
            data = b"." + data
        self._atLineStart = data.endswith(b"\n")
        return data

    def _feedLines(self, data: bytes) -> bytes:
        assert self._bodyLines is not None
        data = self._partial + data
        out = []
        start = 0
        while not self.complete:
            end = data.find(b"\n", start)
            if end == -1:
                break
            line = data[start : end + 1]
            start = end + 1
            if self._inBody:
                out.append(line)
                self._bodyLines -= 1
            else:
                out.append(line)
                if line == b"\r\n":
                    self._inBody = True
            if self._inBody and self._bodyLines <= 0:
                self.complete = True
        self._partial = b"" if self.complete else data[start:]
        return self._stuff(b"".join(out))

    def finish(self) -> bytes:
        """
        End the input: return the remaining octets, the final CRLF where the message lacked
        one, and the terminating C{.CRLF}.
        """
        if self.complete:
            tail = b""
        elif self._bodyLines is not None:
            tail = self._stuff(self._partial + self._normaliser.flush())
            self._partial = b""
        else:
            tail = self._stuff(self._normaliser.flush())
        self.complete = True
        if not self._atLineStart:
            tail += b"\r\n"
        return tail + TERMINATOR


def encodeMessage(message: bytes, bodyLines: int | None = None) -> bytes:
    """
    Encode a whole message in one call (see L{MessageEncoder}).
    """
    encoder = MessageEncoder(bodyLines)
    return encoder.feed(message) + encoder.finish()


def encodeLines(lines: Iterable[bytes]) -> bytes:
    """
    Encode a multi-line response body from lines that carry no line end of their own.
    """
    out = [b"." + line if line[:1] == b"." else line for line in lines]
    out.append(b".")
    return b"\r\n".join(out) + b"\r\n"


class MultilineDecoder:
    """
    Remove byte-stuffing from a multi-line response received in chunks of any size.

    L{feed} returns the un-stuffed octets (CRLF line ends kept, terminator removed); once
    the terminating C{.CRLF} has been seen L{done} is true and any octets after it are kept
    in L{remainder}.  Only CRLF ends a line.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._atLineStart = True
        self.done = False
        self.remainder = b""

    def feed(self, data: bytes) -> bytes:
        """
        Decode one chunk.

        Only line starts holding a dot need work, so the chunk is searched for
        C{CRLF .} rather than split into lines: text without such lines is passed on in
        one slice.
        """
        if self.done:
            self.remainder += data
            return b""
        data = self._buffer + data
        self._buffer = b""
        if not data:
            return b""
        out = []
        pos = 0
        if self._atLineStart and data[:1] == b".":
            dot = 0
        else:
            found = data.find(b"\r\n.")
            dot = -1 if found == -1 else found + 2
        while dot != -1:
            out.append(data[pos:dot])
            if data[dot : dot + 3] == TERMINATOR:
                self.done = True
                self.remainder = data[dot + 3 :]
                return b"".join(out)
            if len(data) - dot < 3 and TERMINATOR.startswith(data[dot:]):
                # "." or ".\r" at the end: the terminator, or a stuffed line, to come.
                self._buffer = data[dot:]
                self._atLineStart = True
                return b"".join(out)
            pos = dot + 1  # drop the stuffed dot
            found = data.find(b"\r\n.", pos)
            dot = -1 if found == -1 else found + 2
        if data.endswith(b"\r"):
            # Hold back a CR that may start the CRLF before a dot line.
            out.append(data[pos:-1])
            self._buffer = b"\r"
            self._atLineStart = False
        else:
            out.append(data[pos:])
            self._atLineStart = data.endswith(b"\r\n")
        return b"".join(out)
