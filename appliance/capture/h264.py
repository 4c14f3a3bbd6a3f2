"""Just enough H.264 Annex B parsing to split a byte stream into access units."""

from __future__ import annotations

import re

# An access unit delimiter NAL (type 9) after a 4-byte start code begins each frame
# when the encoder is asked to emit them (x264 `aud=1`).
_AUD = re.compile(b"\x00\x00\x00\x01\x09")
_NAL_START = re.compile(b"\x00\x00\x01")
NAL_IDR = 5
NAL_SPS = 7


def nal_types(access_unit: bytes) -> list[int]:
    """The NAL unit types in an Annex B access unit, in order."""
    return [access_unit[m.end()] & 0x1F for m in _NAL_START.finditer(access_unit)
            if m.end() < len(access_unit)]


def is_keyframe(access_unit: bytes) -> bool:
    """True if the access unit holds an IDR slice (decodable on its own)."""
    return NAL_IDR in nal_types(access_unit)


class AccessUnitSplitter:
    """Feed bytes in, get whole access units out (split at access unit delimiters)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every access unit that is now known to be complete."""
        self._buf += data
        starts = [m.start() for m in _AUD.finditer(self._buf)]
        if len(starts) < 2:
            return []
        units = [bytes(self._buf[a:b]) for a, b in zip(starts, starts[1:])]
        del self._buf[:starts[-1]]
        return units

    def flush(self) -> list[bytes]:
        """At end of stream: the last access unit, if any."""
        rest, self._buf = bytes(self._buf), bytearray()
        return [rest] if _AUD.match(rest) else []
