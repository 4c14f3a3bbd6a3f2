"""Review assets of a recording: a poster frame, a thumbnail sprite with its WebVTT index
(for scrubbing on the tablet) and audio waveform peaks (JSON) for the timeline.

Every cue of the WebVTT index has its tile, showing the frame on screen at the cue's
start, whatever the film's keyframe interval (an import may have one keyframe in all,
or one in 8 s). Made for a Pi: when keyframes come at least every second (the box's own
films and its transcoded imports) the sprite decodes keyframes only
(`-skip_frame nokey`), ten times faster than decoding every frame, which it does
otherwise; only the picked frames are scaled. The waveform decodes the audio alone at a
low rate; no frame is decoded twice.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from appliance import ffmpeg_tool
from appliance.catalog import Catalog, Job
from appliance.encode.argv import GLOBAL, progress_args
from appliance.encode.progress import run_with_progress
from appliance.encode.runner import run_job
from appliance.errors import EncodeError, InputError
from appliance.fsutil import atomic_write_bytes, publish
from appliance.probe import PacketTimes, packet_times, probe

log = logging.getLogger(__name__)
THUMB_W, THUMB_H = 160, 90
COLUMNS = 10
MAX_THUMBS = 300
POSTER_W = 640
PEAKS_PER_S = 20
WAVE_RATE = 8000
# Keyframes this close together let the sprite decode keyframes only: a tile then shows
# the last keyframe before its cue's start, at most this much early.
DENSE_KEYFRAME_GAP_S = 1.0
GAP_SLACK_S = 0.05  # timestamps' rounding


def thumb_interval(duration_s: float) -> float:
    """Seconds between thumbnails: 2 s, or wider for very long films (≤ MAX_THUMBS)."""
    return max(2.0, math.ceil(duration_s / MAX_THUMBS))


def poster_argv(src: Path, out: Path, at_s: float) -> list[str]:
    """ffmpeg argv: one frame near `at_s`, POSTER_W wide, as JPEG (input seek: fast)."""
    return (ffmpeg.input(str(src), ss=f"{at_s:.3f}").video.filter("scale", POSTER_W, -2)
            .output(str(out), vframes=1, **{"q:v": 3}, format="image2", update=1)
            .global_args(*GLOBAL).compile())


def sprite_argv(src: Path, out: Path, interval_s: float, count: int, *,
                keyframes_only: bool = True) -> list[str]:
    """ffmpeg argv: `count` tiles, COLUMNS wide, into one JPEG; tile i shows the frame on
    screen at i × `interval_s` (with `keyframes_only`, the last keyframe by then: pass
    False unless `keyframes_dense` says they come every second).

    fps with round=up keeps for each tile the last frame at or before its time, and
    start_time=0 fills the first tile even if the picture starts late. The last picture
    stays on screen after its time: the first tpad holds it for one interval (a cue
    starting at its end), the second repeats it for tiles past the picture's end (sound
    longer than the picture), and trim stops at `count`: the tile filter never pads a
    cue's tile with black. Tiles keep the picture's shape (a portrait film is
    pillarboxed, not squeezed).
    """
    rows = max(1, math.ceil(count / COLUMNS))
    options = {"skip_frame": "nokey"} if keyframes_only else {}
    video = (ffmpeg.input(str(src), **options).video
             .filter("tpad", stop_mode="clone", stop_duration=f"{interval_s:g}")
             .filter("fps", fps=f"1/{interval_s:g}", round="up", start_time=0)
             .filter("tpad", stop_mode="clone", stop=count)
             .filter("trim", end_frame=count)
             .filter("scale", THUMB_W, THUMB_H, force_original_aspect_ratio="decrease")
             .filter("pad", THUMB_W, THUMB_H, "(ow-iw)/2", "(oh-ih)/2")
             .filter("setsar", 1)
             .filter("tile", f"{COLUMNS}x{rows}"))
    return (video.output(str(out), vframes=1, **{"q:v": 5}, format="image2", update=1)
            .global_args(*GLOBAL).compile())


def keyframes_dense(times: PacketTimes) -> bool:
    """True if a keyframe starts the picture and one follows at least every
    DENSE_KEYFRAME_GAP_S to its last frame: decoding keyframes only is then enough."""
    keys, frames = times.keyframes_s, times.pts_s
    if not keys or not frames or keys[0] > frames[0] + GAP_SLACK_S:
        return False
    edges = (*keys, frames[-1])
    return all(b - a <= DENSE_KEYFRAME_GAP_S + GAP_SLACK_S for a, b in zip(edges, edges[1:]))


def waveform_argv(src: Path) -> list[str]:
    """ffmpeg argv: the audio alone, mono s16le at WAVE_RATE, on stdout."""
    return (ffmpeg.input(str(src)).audio.output("pipe:1", format="s16le", ac=1, ar=WAVE_RATE)
            .global_args("-v", "error", "-nostdin").compile())


def sprite_vtt(sprite_name: str, duration_s: float, interval_s: float, count: int) -> str:
    """The WebVTT index: which tile of the sprite shows each stretch of the film."""
    lines = ["WEBVTT", ""]
    for i in range(count):
        start, end = i * interval_s, min(duration_s, (i + 1) * interval_s)
        x, y = (i % COLUMNS) * THUMB_W, (i // COLUMNS) * THUMB_H
        lines += [f"{_ts(start)} --> {_ts(end)}",
                  f"{sprite_name}#xywh={x},{y},{THUMB_W},{THUMB_H}", ""]
    return "\n".join(lines)


def _ts(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def peaks(samples: np.ndarray, rate: int, per_s: int = PEAKS_PER_S) -> list[list[float]]:
    """[min, max] of each 1/per_s of a second, scaled to -1..1."""
    step = max(1, rate // per_s)
    n = len(samples) // step * step
    if n == 0:
        return []
    blocks = samples[:n].reshape(-1, step).astype(np.float32) / 32768.0
    return [[round(float(lo), 3), round(float(hi), 3)]
            for lo, hi in zip(blocks.min(axis=1), blocks.max(axis=1))]


class AssetMaker:
    """Makes and records the review assets of one recording per job."""

    def __init__(self, catalog: Catalog, *, nice: int = 10) -> None:
        self.catalog = catalog
        self.nice = nice

    def run(self, job: Job) -> Job:
        """Render a claimed assets job; ends done, failed or cancelled."""
        return run_job(self.catalog, job, self._render)

    def _render(self, job: Job) -> None:
        rec = self.catalog.recordings.get(str(job.subject))
        if rec.path is None or not rec.path.exists():
            raise InputError(f"recording {rec.id} has no film")
        info = probe(rec.path)
        duration = info.duration_s
        out = self.catalog.layout.assets_dir(rec.id)
        out.mkdir(parents=True, exist_ok=True)
        files = {"poster": out / "poster.jpg", "sprite": out / "sprite.jpg",
                 "vtt": out / "sprite.vtt", "waveform": out / "waveform.json"}
        interval = thumb_interval(duration)
        count = max(1, math.ceil(duration / interval))

        def cancel() -> bool:
            return self.catalog.jobs.cancel_requested(job.id)

        self._image(poster_argv(rec.path, _tmp(files["poster"]), min(1.0, duration / 10)),
                    files["poster"], 0.0, job, cancel, "poster")
        self.catalog.jobs.progress(job.id, 0.1)
        dense = keyframes_dense(packet_times(rec.path, timeout=120 + duration,
                                             nice=self.nice))
        self._image(sprite_argv(rec.path, _tmp(files["sprite"]), interval, count,
                                keyframes_only=dense),
                    files["sprite"], duration, job, cancel, "thumbnails", scale=(0.1, 0.8))
        atomic_write_bytes(files["vtt"], sprite_vtt(files["sprite"].name, duration, interval,
                                                    count).encode())
        samples = self._audio(rec.path) if info.has_audio else np.zeros(0, np.int16)
        atomic_write_bytes(files["waveform"], json.dumps({
            "peaks_per_s": PEAKS_PER_S, "duration_s": duration,
            "peaks": peaks(samples, WAVE_RATE)}).encode())
        result = {"recording_id": rec.id, "thumbnails": count, "interval_s": interval,
                  "keyframes_only": dense,
                  **{k: str(v) for k, v in files.items()}}
        self.catalog.assets.finish(job.id, rec.id, files, result)

    def _image(self, argv: list[str], final: Path, duration: float, job: Job,
               cancel: Any, what: str, scale: tuple[float, float] = (0.0, 0.1)) -> None:
        tmp = _tmp(final)
        # A dead runner's leftover: ffmpeg -y would truncate (and share) its inode.
        tmp.unlink(missing_ok=True)
        lo, hi = scale
        try:
            run_with_progress(progress_args(argv),
                              duration_s=duration, what=f"making the {what}",
                              on_progress=lambda f: self.catalog.jobs.progress(
                                  job.id, lo + f * (hi - lo)),
                              should_cancel=cancel, nice=self.nice)
            if not tmp.exists() or tmp.stat().st_size == 0:
                raise EncodeError(f"making the {what} produced nothing")
            publish(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def _audio(self, path: Path) -> np.ndarray:
        out = ffmpeg_tool.run_bytes(waveform_argv(path), timeout=600, what="reading the sound",
                                    nice=self.nice)
        return np.frombuffer(out, "<i2")


def _tmp(final: Path) -> Path:
    return final.with_name(f".{final.stem}.tmp{final.suffix}")
