"""Reading finished files back in tests: frame barcodes, MP4 box order, stream facts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance import mp4
from appliance.capture.sync_check import frame_indices
from appliance.capture.sync_check import index_gaps as gaps
from appliance.probe import raw_probe

__all__ = ["frame_indices", "gaps", "streams", "top_level_boxes"]


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (faststart: moov before mdat)."""
    return [kind for kind, _ in mp4.top_level_boxes(path)]


def streams(path: Path) -> dict[str, dict[str, Any]]:
    """ffprobe's streams by type, with packets counted."""
    info = raw_probe(path, count_packets=True)
    return {s["codec_type"]: s for s in info["streams"]} | {"format": info["format"]}
