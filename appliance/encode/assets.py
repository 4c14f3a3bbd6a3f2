"""Review assets of a recording: a poster frame, a thumbnail sprite with its WebVTT index
(for scrubbing on the tablet) and audio waveform peaks (JSON) for the timeline.

Made for a Pi: the sprite decodes keyframes only (`-skip_frame nokey`, one a second)
and the waveform decodes the audio alone at a low rate; no frame is decoded twice.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from appliance import ffmpeg_tool
from appliance.catalog import Catalog, utc_now
from appliance.encode.argv import GLOBAL, progress_args
from appliance.encode.jobs import Job, JobQueue, run_job
from appliance.encode.progress import run_with_progress
from appliance.errors import EncodeError, InputError, MediaError
from appliance.fsutil import atomic_write_bytes, publish

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
        self.jobs = JobQueue(catalog)
        self.nice = nice

    def request(self, rec_id: str) -> Job:
        """Queue the assets job for a playable recording (replacing older assets)."""
        rec = self.catalog.get_recording(rec_id)
        if rec.status not in ("ready", "recovered") or rec.path is None:
            raise InputError(f"recording {rec_id} is {rec.status}; assets need a finished film")
        job = self.jobs.enqueue("assets", rec_id, {"recording_id": rec_id}, actor="system")
        with self.catalog.transaction() as db:
            db.execute("INSERT INTO assets (recording_id, status, job_id, updated_at) VALUES"
                       " (?, 'pending', ?, ?) ON CONFLICT(recording_id) DO UPDATE SET"
                       " status='pending', job_id=excluded.job_id,"
                       " updated_at=excluded.updated_at", (rec_id, job.id, utc_now()))
        return job

    def run(self, job: Job) -> Job:
        """Render a claimed assets job; ends done, failed or cancelled."""
        # The assets row knows no "cancelled": assets not made are simply not there.
        return run_job(self.jobs, job, self._render, lambda status: self._status(
            job.subject, "failed" if status == "cancelled" else status))

    def _render(self, job: Job) -> dict[str, Any]:
        rec = self.catalog.get_recording(str(job.subject))
        if rec.path is None or not rec.path.exists():
            raise InputError(f"recording {rec.id} has no film")
        info = ffmpeg_tool.probe(rec.path)
        duration = float(info["format"].get("duration") or 0)
        has_audio = any(s.get("codec_type") == "audio" for s in info["streams"])
        out = rec.dir / "assets"
        out.mkdir(exist_ok=True)
        poster, sprite, vtt, wave = (out / "poster.jpg", out / "sprite.jpg",
                                     out / "sprite.vtt", out / "waveform.json")
        interval = thumb_interval(duration)
        count = max(1, math.ceil(duration / interval))
        cancel = (lambda: self.jobs.cancel_requested(job.id))
        self._image(poster_argv(rec.path, _tmp(poster), min(1.0, duration / 10)), poster,
                    0.0, job, cancel, "poster")
        self.jobs.progress(job.id, 0.1)
        self._image(sprite_argv(rec.path, _tmp(sprite), interval, count), sprite, duration,
                    job, cancel, "thumbnails", scale=(0.1, 0.8))
        atomic_write_bytes(vtt, sprite_vtt(sprite.name, duration, interval, count).encode())
        samples = self._audio(rec.path) if has_audio else np.zeros(0, np.int16)
        atomic_write_bytes(wave, json.dumps({"peaks_per_s": PEAKS_PER_S,
                                             "duration_s": duration,
                                             "peaks": peaks(samples, WAVE_RATE)}).encode())
        paths = {k: self.catalog.relative(v) for k, v in
                 (("poster", poster), ("sprite", sprite), ("vtt", vtt), ("waveform", wave))}
        with self.catalog.transaction() as db:
            db.execute("UPDATE assets SET poster=?, sprite=?, vtt=?, waveform=?,"
                       " status='ready', updated_at=? WHERE recording_id=?",
                       (paths["poster"], paths["sprite"], paths["vtt"], paths["waveform"],
                        utc_now(), rec.id))
        return {"recording_id": rec.id, "thumbnails": count, "interval_s": interval,
                **{k: str(v) for k, v in (("poster", poster), ("sprite", sprite),
                                          ("vtt", vtt), ("waveform", wave))}}

    def _image(self, argv: list[str], final: Path, duration: float, job: Job,
               cancel: Any, what: str, scale: tuple[float, float] = (0.0, 0.1)) -> None:
        tmp = _tmp(final)
        lo, hi = scale
        try:
            run_with_progress(progress_args(argv),
                              duration_s=duration, what=f"making the {what}",
                              on_progress=lambda f: self.jobs.progress(job.id, lo + f * (hi - lo)),
                              should_cancel=cancel, nice=self.nice)
            if not tmp.exists() or tmp.stat().st_size == 0:
                raise EncodeError(f"making the {what} produced nothing")
            publish(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def _audio(self, path: Path) -> np.ndarray:
        proc = subprocess.run(waveform_argv(path), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=600)
        if proc.returncode != 0:
            raise MediaError(f"reading the sound failed: {proc.stderr.decode()[-200:]}")
        return np.frombuffer(proc.stdout, "<i2")

    def _status(self, rec_id: str | None, status: str) -> None:
        with self.catalog.transaction() as db:
            db.execute("UPDATE assets SET status=?, updated_at=? WHERE recording_id=?",
                       (status, utc_now(), rec_id))


def _tmp(final: Path) -> Path:
    return final.with_name(f".{final.stem}.tmp{final.suffix}")
