"""Reading finished files back in tests: frame barcodes, MP4 box order, stream facts."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from appliance import ffmpeg_tool
from appliance.capture.sync_check import frame_indices, index_gaps as gaps

__all__ = ["frame_indices", "gaps", "streams", "top_level_boxes"]


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (faststart: moov before mdat)."""
    boxes = []
    with path.open("rb") as f:
        while header := f.read(8):
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
                f.seek(size - 16, 1)
            elif size == 0:
                boxes.append(kind.decode("latin-1"))
                break
            else:
                f.seek(size - 8, 1)
            boxes.append(kind.decode("latin-1"))
    return boxes


def streams(path: Path) -> dict[str, dict[str, Any]]:
    """ffprobe's streams by type, with packets counted."""
    info = ffmpeg_tool.probe(path, count_packets=True)
    return {s["codec_type"]: s for s in info["streams"]} | {"format": info["format"]}
