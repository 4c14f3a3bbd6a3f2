"""Reading the top-level structure of an MP4 file (no decoding, no dependencies)."""

from __future__ import annotations

import struct
from pathlib import Path

from appliance.errors import MediaError


def top_level_boxes(path: Path) -> list[tuple[str, int]]:
    """(type, size) of each top-level box; MediaError unless they tile the file exactly."""
    total = path.stat().st_size
    boxes: list[tuple[str, int]] = []
    offset = 0
    with path.open("rb") as f:
        while offset < total:
            f.seek(offset)
            header = f.read(16)
            if len(header) < 8:
                raise MediaError(f"{path.name}: truncated box header at byte {offset}")
            size, raw = struct.unpack(">I4s", header[:8])
            if size == 1 and len(header) == 16:
                size = struct.unpack(">Q", header[8:16])[0]
            elif size == 0:
                size = total - offset
            kind = raw.decode("latin-1")
            if size < 8 or offset + size > total or not kind.isprintable():
                raise MediaError(f"{path.name}: corrupt box {kind!r} at byte {offset}")
            boxes.append((kind, size))
            offset += size
    return boxes


def check_faststart(path: Path) -> None:
    """MediaError unless the file is well formed with its index before the media data."""
    kinds = [kind for kind, _ in top_level_boxes(path)]
    if "moov" not in kinds or "mdat" not in kinds:
        raise MediaError(f"{path.name}: no index or no media data")
    if kinds.index("moov") > kinds.index("mdat"):
        raise MediaError(f"{path.name}: the index is not at the front (not faststart)")
