"""
Where the body of a multi-line answer goes: memory (L{Collector}, L{ListingCollector}), a
binary file (L{FileSink}) or an L{IConsumer} (L{ConsumerSink}), all L{BodySink}s.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

from twisted.internet.interfaces import IConsumer, IPushProducer

from pop3kit._clienterrors import ListingTooLarge, ResponseTooLarge


class BodySink(Protocol):
    """
    Takes the un-stuffed body of one multi-line answer, chunk by chunk.
    """

    def start(self) -> None:
        """
        The C{+OK} arrived: the body follows.
        """

    def write(self, data: bytes) -> None:
        """
        Take the next octets of the body.
        """

    def finish(self) -> object:
        """
        The body ended: the result of the command (the body, or the octet count).

        @raise ResponseTooLarge: when a L{Collector} overflowed.
        """

    def abandon(self) -> None:
        """
        No more of the body will come (the connection was lost, the command cancelled).
        """


class Collector:
    """
    Collect a body in memory, up to a limit; past it, count and forget.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0

    def start(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size <= self._limit:
            self._chunks.append(data)
        elif self._chunks:
            self._chunks = []

    def finish(self) -> bytes:
        if self._size > self._limit:
            raise ResponseTooLarge(f"response of {self._size} octets exceeds {self._limit}")
        return b"".join(self._chunks)

    def abandon(self) -> None:
        self._chunks = []


class ListingCollector(Collector):
    """
    Collect a listing in memory (C{LIST}, C{UIDL}, C{CAPA}), refusing it as soon as it
    has more lines or octets than allowed: a listing without end cannot be skipped, so
    its connection has to be closed.
    """

    def __init__(self, maxEntries: int, maxOctets: int) -> None:
        super().__init__(maxOctets)
        self._maxEntries = maxEntries
        self._maxOctets = maxOctets
        self._entries = 0

    def write(self, data: bytes) -> None:
        """
        Take the next octets of the listing.

        @raise ListingTooLarge: When the listing has grown past a cap.
        """
        self._entries += data.count(b"\n")
        if self._entries > self._maxEntries:
            raise ListingTooLarge(f"a listing of more than {self._maxEntries} entries")
        if self._size + len(data) > self._maxOctets:
            raise ListingTooLarge(f"a listing of more than {self._maxOctets} octets")
        super().write(data)


class FileSink:
    """
    Write a body to a binary file object, counting octets.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.octets = 0

    def start(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.octets += len(data)

    def finish(self) -> int:
        return self.octets

    def abandon(self) -> None:
        pass


class ConsumerSink:
    """
    Write a body to an L{IConsumer}, with C{control} registered as its streaming producer
    for the duration of the body (pausing it pauses reading from the server).
    """

    def __init__(self, consumer: IConsumer, control: IPushProducer) -> None:
        self._consumer = consumer
        self._control = control
        self._registered = False
        self.octets = 0

    def start(self) -> None:
        self._consumer.registerProducer(self._control, True)
        self._registered = True

    def write(self, data: bytes) -> None:
        self._consumer.write(data)
        self.octets += len(data)

    def finish(self) -> int:
        self.abandon()
        return self.octets

    def abandon(self) -> None:
        if self._registered:
            self._registered = False
            self._consumer.unregisterProducer()
            self._control.resumeProducing()
