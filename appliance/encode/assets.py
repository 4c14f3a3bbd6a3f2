"""Review assets of a recording: a poster frame, a thumbnail sprite with its WebVTT index
(for scrubbing on the tablet) and audio waveform peaks (JSON) for the timeline.

Made for a Pi: the sprite decodes keyframes only (`-skip_frame nokey`, one a second)
and the waveform decodes the audio alone at a low rate; no frame is decoded twice.
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
from appliance.probe import probe

log = logging.getLogger(__name__)
THUMB_W, THUMB_H = 160, 90
COLUMNS = 10
MAX_THUMBS = 300
POSTER_W = 640
PEAKS_PER_S = 20
WAVE_RATE = 8000


def thumb_interval(duration_s: float) -> float:
    """Seconds between thumbnails: 2 s, or wider for very long films (≤ MAX_THUMBS)."""
    return max(2.0, math.ceil(duration_s / MAX_THUMBS))


def poster_argv(src: Path, out: Path, at_s: float) -> list[str]:
    """ffmpeg argv: one frame near `at_s`, POSTER_W wide, as JPEG (input seek: fast)."""
    return (ffmpeg.input(str(src), ss=f"{at_s:.3f}").video.filter("scale", POSTER_W, -2)
            .output(str(out), vframes=1, **{"q:v": 3}, format="image2", update=1)
            .global_args(*GLOBAL).compile())


def sprite_argv(src: Path, out: Path, interval_s: float, count: int) -> list[str]:
    """ffmpeg argv: keyframes only, one per `interval_s`, tiled COLUMNS wide into a JPEG."""
    rows = max(1, math.ceil(count / COLUMNS))
    video = (ffmpeg.input(str(src), skip_frame="nokey").video
             .filter("fps", fps=f"1/{interval_s:g}", round="down")
             .filter("scale", THUMB_W, THUMB_H)
             .filter("tile", f"{COLUMNS}x{rows}"))
    return (video.output(str(out), vframes=1, **{"q:v": 5}, format="image2", update=1)
            .global_args(*GLOBAL).compile())


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
        self._image(sprite_argv(rec.path, _tmp(files["sprite"]), interval, count),
                    files["sprite"], duration, job, cancel, "thumbnails", scale=(0.1, 0.8))
        atomic_write_bytes(files["vtt"], sprite_vtt(files["sprite"].name, duration, interval,
                                                    count).encode())
        samples = self._audio(rec.path) if info.has_audio else np.zeros(0, np.int16)
        atomic_write_bytes(files["waveform"], json.dumps({
            "peaks_per_s": PEAKS_PER_S, "duration_s": duration,
            "peaks": peaks(samples, WAVE_RATE)}).encode())
        result = {"recording_id": rec.id, "thumbnails": count, "interval_s": interval,
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
