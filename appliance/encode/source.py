"""What clips and stills are cut from: a playable recording and its stream facts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from appliance import ffmpeg_tool
from appliance.catalog import Catalog, Recording
from appliance.config import EncodeConfig
from appliance.encode import argv as av
from appliance.errors import InputError
from appliance.probe import probe


@dataclass(frozen=True)
class Source:
    """A playable recording and the facts of its film."""

    recording: Recording
    path: Path
    fps: float
    duration_s: float
    has_audio: bool
    video_start_s: float


def source_of(catalog: Catalog, rec_id: str) -> Source:
    """The recording to cut from; InputError/NotFoundError if it cannot be cut."""
    rec = catalog.recordings.get(rec_id)
    if not rec.playable or rec.path is None:
        raise InputError(f"recording {rec_id} is {rec.status}, not ready to cut")
    if not rec.path.exists():
        raise InputError(f"the film of recording {rec_id} is missing ({rec.path})")
    info = probe(rec.path)
    if info.video is None:
        raise InputError(f"recording {rec_id} has no video")
    fps = float(info.video.fps) or float(rec.fps or 0)
    if not fps > 0:
        raise InputError(f"recording {rec_id} has no usable frame rate")
    return Source(rec, rec.path, fps, info.duration_s or float(rec.duration_s or 0),
                  info.has_audio, info.video.start_s)


def check_span(src: Source, start_s: float, end_s: float, config: EncodeConfig) -> None:
    """Refuse in/out points that make no clip."""
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        raise InputError("start and end must be numbers")
    if start_s < 0:
        raise InputError(f"start {start_s:g} s is before the recording begins")
    if end_s <= start_s:
        raise InputError(f"end ({end_s:g} s) must be after start ({start_s:g} s)")
    if end_s > src.duration_s + 1e-6:
        raise InputError(f"end {end_s:g} s is past the end of the recording "
                         f"({src.duration_s:.3f} s)")
    if av.frame_span(start_s, end_s, src.fps).count < 1:
        raise InputError("the clip would hold no frame: make it longer than one frame")
    if end_s - start_s > config.max_clip_s:
        raise InputError(f"a clip may be at most {config.max_clip_s:g} s long "
                         f"(this one is {end_s - start_s:.1f} s)")


def keyframe_at_or_before(path: Path, t: float) -> float:
    """The time of the last keyframe at or before `t` (packet flags only, no decoding)."""
    out = ffmpeg_tool.run(av.keyframes_argv(path), timeout=120, what="reading keyframes")
    best = 0.0
    for line in out.splitlines():
        pts, _, flags = line.partition(",")
        try:
            when = float(pts)
        except ValueError:
            continue
        if "K" in flags and when <= t + 1e-6:
            best = max(best, when)
    return best
