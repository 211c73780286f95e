"""Netstring framing, as Kamailio's evapi module uses it: `<length>:<payload>,`.

evapi (with `netstring_format` 1, its default) wraps every message in a netstring in both
directions; TCP may deliver a frame in pieces or several frames at once, so the decoder keeps
what it has not yet consumed. Whitespace between frames is skipped, as evapi does.
"""

from __future__ import annotations

MAX_FRAME = 65_536
"""The largest payload accepted (evapi's own receive buffer is 32 KiB)."""

_MAX_DIGITS = len(str(MAX_FRAME))
_WHITESPACE = b" \t\r\n"


class NetstringError(ValueError):
    """The byte stream is not a sequence of netstrings; the connection cannot be trusted."""


def encode(payload: bytes) -> bytes:
    """Frame one payload as a netstring."""
    return b"%d:%b," % (len(payload), payload)


class NetstringDecoder:
    """Turns a TCP byte stream into payloads, one netstring at a time."""

    __slots__ = ("_buffer", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self.max_frame = max_frame

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every payload now complete, in order. Raises
        `NetstringError` naming the problem when the stream is not netstrings."""
        buf = self._buffer
        buf += data
        out: list[bytes] = []
        start = 0
        end = len(buf)
        while True:
            while start < end and buf[start] in _WHITESPACE:
                start += 1
            if start == end:
                break
            colon = buf.find(b":", start, min(end, start + _MAX_DIGITS + 1))
            if colon < 0:
                head = bytes(buf[start : min(end, start + _MAX_DIGITS + 1)])
                if not head.isdigit():
                    raise NetstringError(f"expected a netstring length, got {head[:12]!r}")
                if end - start > _MAX_DIGITS:
                    raise NetstringError(
                        f"netstring length has more than {_MAX_DIGITS} digits "
                        f"(frames are at most {self.max_frame} bytes)"
                    )
                break  # the length is still arriving
            digits = bytes(buf[start:colon])
            if not digits.isdigit():
                raise NetstringError(f"netstring length {digits[:12]!r} is not a number")
            length = int(digits)
            if length > self.max_frame:
                raise NetstringError(f"netstring of {length} bytes exceeds {self.max_frame}")
            stop = colon + 1 + length
            if stop >= end:
                break  # the payload or its comma is still arriving
            if buf[stop] != 0x2C:  # ","
                raise NetstringError(f"netstring of {length} bytes does not end with ','")
            out.append(bytes(buf[colon + 1 : stop]))
            start = stop + 1
        del buf[:start]
        return out
