"""Reading finished files back in tests: frame barcodes, MP4 box order, stream facts."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from appliance import ffmpeg_tool
from appliance.capture.picture import BARCODE_BITS, CELL, WHITE_Y, read_frame_index


def frame_indices(path: Path) -> list[int | None]:
    """The barcode index of every decoded frame (None for a white marker frame)."""
    width = BARCODE_BITS * CELL
    argv = (ffmpeg.input(str(path)).video.filter("crop", width, CELL, 0, 0)
            .filter("format", "gray").output("pipe:1", format="rawvideo")
            .global_args("-v", "error", "-nostdin").compile())
    raw = subprocess.run(argv, capture_output=True, check=True, timeout=300).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, CELL, width)
    return [None if f.min() > WHITE_Y - 25 else read_frame_index(f) for f in frames]


def gaps(indices: list[int | None]) -> list[tuple[int, int]]:
    """Places where the barcode does not advance by one (a white frame counts as one)."""
    out = []
    previous: int | None = None
    skipped = 0
    for value in indices:
        if value is None:
            skipped += 1
            continue
        if previous is not None and value != previous + 1 + skipped:
            out.append((previous, value))
        previous, skipped = value, 0
    return out


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
