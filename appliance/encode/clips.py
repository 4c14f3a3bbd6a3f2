"""Clips and stills: checked, queued as jobs, rendered into temp names, then published.

An exact clip holds precisely the frames from the one shown at the in-point to the
one before the out-point; a fast clip is a stream copy from the keyframe at or
before the in-point and says where it really starts. A still is the exact frame
shown at a time, at full resolution.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import ffmpeg_tool
from appliance.catalog import Catalog, Recording, utc_now
from appliance.config import EncodeConfig
from appliance.encode import argv as av
from appliance.encode.jobs import Job, JobQueue, run_job
from appliance.encode.progress import run_with_progress
from appliance.errors import EncodeError, InputError, NotFoundError
from appliance.fsutil import publish

log = logging.getLogger(__name__)
PLAYABLE = ("ready", "recovered")


@dataclass(frozen=True)
class Source:
    """What clips are cut from: a playable recording and its stream facts."""

    recording: Recording
    path: Path
    fps: float
    duration_s: float
    has_audio: bool
    video_start_s: float


def source_of(catalog: Catalog, rec_id: str) -> Source:
    """The recording to cut from; InputError/NotFoundError if it cannot be cut."""
    rec = catalog.get_recording(rec_id)
    if rec.status not in PLAYABLE or rec.path is None:
        raise InputError(f"recording {rec_id} is {rec.status}, not ready to cut")
    if not rec.path.exists():
        raise InputError(f"the film of recording {rec_id} is missing ({rec.path})")
    info = ffmpeg_tool.probe(rec.path)
    video = next((s for s in info["streams"] if s.get("codec_type") == "video"), None)
    if video is None:
        raise InputError(f"recording {rec_id} has no video")
    num, _, den = str(video.get("avg_frame_rate", "0/0")).partition("/")
    fps = float(num) / float(den) if den and float(den) else float(rec.fps or 0)
    duration = float(info["format"].get("duration") or rec.duration_s or 0)
    return Source(rec, rec.path, fps, duration,
                  any(s.get("codec_type") == "audio" for s in info["streams"]),
                  float(video.get("start_time") or 0.0))


def check_span(src: Source, start_s: float, end_s: float, config: EncodeConfig) -> None:
    """Refuse in/out points that make no clip."""
    if not (start_s == start_s and end_s == end_s):  # NaN
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


class ClipMaker:
    """Makes clips and stills of recordings, each as a job in the queue."""

    def __init__(self, catalog: Catalog, config: EncodeConfig) -> None:
        self.catalog = catalog
        self.config = config
        self.jobs = JobQueue(catalog)

    # -- requests -------------------------------------------------------------------------

    def suggestions(self, rec_id: str) -> list[dict[str, Any]]:
        """A suggested clip per marked moment: the press comes after the good moment, so
        the clip runs from pre_roll_s before it to post_roll_s after (inside the film)."""
        src = source_of(self.catalog, rec_id)
        out = []
        for m in self.catalog.list_moments(rec_id):
            start = max(0.0, m["at_s"] - self.config.pre_roll_s)
            end = min(src.duration_s, m["at_s"] + self.config.post_roll_s)
            if end > start:
                out.append({"moment_id": m["id"], "at_s": m["at_s"], "start_s": round(start, 3),
                            "end_s": round(end, 3), "tag": m["tag"], "note": m["note"]})
        return out

    def request_moment_clip(self, rec_id: str, moment_id: int, *, exact: bool) -> Job:
        """Queue the suggested clip of one marked moment."""
        for s in self.suggestions(rec_id):
            if s["moment_id"] == moment_id:
                return self.request_clip(rec_id, s["start_s"], s["end_s"], exact=exact,
                                         moment_id=moment_id)
        raise NotFoundError(f"recording {rec_id} has no moment {moment_id}")

    def request_clip(self, rec_id: str, start_s: float, end_s: float, *, exact: bool,
                     handles_s: float = 0.0, caption: str | None = None,
                     moment_id: int | None = None) -> Job:
        """Check the request and queue a clip job (its clip row is pending)."""
        src = source_of(self.catalog, rec_id)
        if not 0 <= handles_s <= self.config.max_handles_s:
            raise InputError(f"handles must be 0 to {self.config.max_handles_s:g} s")
        if caption is not None and (not caption.strip() or len(caption) > 120):
            raise InputError("a caption must be 1 to 120 characters")
        check_span(src, start_s, end_s, self.config)
        clip_id = "clip-" + secrets.token_hex(4)
        job = self.jobs.enqueue("clip", clip_id, {
            "recording_id": rec_id, "start_s": start_s, "end_s": end_s, "exact": exact,
            "handles_s": handles_s, "caption": caption})
        with self.catalog.transaction() as db:
            db.execute("INSERT INTO clips (id, recording_id, moment_id, start_s, end_s, exact,"
                       " handles_s, caption, status, job_id, created_at)"
                       " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (clip_id, rec_id, moment_id, start_s, end_s, int(exact), handles_s,
                        caption, "pending", job.id, utc_now()))
        return job

    def request_still(self, rec_id: str, at_s: float) -> Job:
        """Check the request and queue a still job."""
        src = source_of(self.catalog, rec_id)
        if not (0 <= at_s < src.duration_s):
            raise InputError(f"{at_s:g} s is not inside the recording (0 to "
                             f"{src.duration_s:.3f} s)")
        still_id = "still-" + secrets.token_hex(4)
        job = self.jobs.enqueue("still", still_id, {"recording_id": rec_id, "at_s": at_s})
        with self.catalog.transaction() as db:
            db.execute("INSERT INTO stills (id, recording_id, at_s, status, job_id, created_at)"
                       " VALUES (?,?,?,?,?,?)", (still_id, rec_id, at_s, "pending", job.id,
                                                 utc_now()))
        return job

    # -- running ----------------------------------------------------------------------------

    def run(self, job: Job) -> Job:
        """Render a claimed job; the job ends done, failed or cancelled, never half-written."""
        table = {"clip": "clips", "still": "stills"}[job.kind]
        render = self._render_clip if job.kind == "clip" else self._render_still
        return run_job(self.jobs, job, render,
                       lambda status: self._set_status(table, job.subject, status))

    @staticmethod
    def _out_dir(src: Source, kind: str) -> Path:
        out = src.recording.dir / kind
        out.mkdir(parents=True, exist_ok=True)
        return out

    def _render_clip(self, job: Job) -> dict[str, Any]:
        p = job.params
        src = source_of(self.catalog, p["recording_id"])
        h = float(p.get("handles_s") or 0)
        start = max(0.0, float(p["start_s"]) - h)
        end = min(src.duration_s, float(p["end_s"]) + h)
        out = self._out_dir(src, "clips") / f"{job.subject}.mp4"
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            if p["exact"]:
                span = av.frame_span(start - src.video_start_s, end - src.video_start_s,
                                     src.fps)
                real_start, duration = span.start_s, span.duration_s
                argv = self._exact_argv(src, tmp, span, p.get("caption"))
            else:
                real_start = keyframe_at_or_before(src.path, start)
                duration = end - real_start
                argv = av.fast_clip_argv(src.path, tmp, real_start, end)
            self._ffmpeg(argv, duration, job, f"clip {job.subject}")
            publish(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
            tmp.with_name(f".{tmp.name}.caption.txt").unlink(missing_ok=True)
        info = ffmpeg_tool.probe(out)
        duration = float(info["format"].get("duration") or duration)
        with self.catalog.transaction() as db:
            db.execute("UPDATE clips SET status='ready', path=?, real_start_s=?, duration_s=?"
                       " WHERE id=?", (self.catalog.relative(out), real_start, duration,
                                       job.subject))
        return {"id": job.subject, "recording_id": src.recording.id, "path": str(out),
                "start_s": round(start, 6), "end_s": round(end, 6),
                "real_start_s": round(real_start, 6), "exact": bool(p["exact"]),
                "duration_s": round(duration, 6), "handles_s": h,
                "caption": p.get("caption")}

    def _exact_argv(self, src: Source, tmp: Path, span: av.FrameSpan,
                    caption: str | None) -> list[str]:
        if caption is None:
            return av.exact_clip_argv(src.path, tmp, span, audio=src.has_audio,
                                      crf=self.config.crf, preset=self.config.preset)
        # A text file, not an inline string: drawtext's escaping rules are a trap.
        text = tmp.with_name(f".{tmp.name}.caption.txt")
        text.write_text(caption)
        font = Path(self.config.font)
        if not font.exists():
            raise EncodeError(f"the caption font {font} is missing; install fonts-dejavu-core")
        return av.exact_clip_argv(src.path, tmp, span, audio=src.has_audio,
                                  caption_file=text, font=font, crf=self.config.crf,
                                  preset=self.config.preset)

    def _render_still(self, job: Job) -> dict[str, Any]:
        p = job.params
        src = source_of(self.catalog, p["recording_id"])
        frame = av.frame_at(float(p["at_s"]) - src.video_start_s, src.fps)
        out = self._out_dir(src, "stills") / f"{job.subject}.jpg"
        tmp = out.with_name(f".{out.name}.tmp.jpg")
        try:
            self._ffmpeg(av.still_argv(src.path, tmp, frame, src.fps), 1 / src.fps, job,
                         f"still {job.subject}")
            if not tmp.exists() or tmp.stat().st_size == 0:
                raise EncodeError(f"no frame at {p['at_s']} s")
            publish(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        with self.catalog.transaction() as db:
            db.execute("UPDATE stills SET status='ready', path=?, frame=? WHERE id=?",
                       (self.catalog.relative(out), frame, job.subject))
        return {"id": job.subject, "recording_id": src.recording.id, "path": str(out),
                "at_s": float(p["at_s"]), "frame": frame}

    def _ffmpeg(self, argv: list[str], duration_s: float, job: Job, what: str) -> None:
        run_with_progress(av.progress_args(argv), duration_s=duration_s, what=what,
                          on_progress=lambda f: self.jobs.progress(job.id, f),
                          should_cancel=lambda: self.jobs.cancel_requested(job.id),
                          nice=self.config.nice)

    def _set_status(self, table: str, item_id: str | None, status: str) -> None:
        with self.catalog.transaction() as db:
            db.execute(f"UPDATE {table} SET status=? WHERE id=?", (status, item_id))

