"""Rendering clips and stills: into temp names, then published with their row and job.

An exact clip holds precisely the frames from the one shown at the in-point to the
one before the out-point; a fast clip is a stream copy from the keyframe at or
before the in-point and says where it really starts. A still is the exact frame
shown at a time, at full resolution. Requests are checked and queued by the
application layer (`appliance.services.media`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from appliance.catalog import Catalog, Job, JobKind
from appliance.config import EncodeConfig
from appliance.encode import argv as av
from appliance.encode.progress import run_with_progress
from appliance.encode.runner import run_job
from appliance.encode.source import Source, keyframe_at_or_before, source_of
from appliance.errors import EncodeError
from appliance.fsutil import publish
from appliance.probe import probe

log = logging.getLogger(__name__)


class ClipMaker:
    """Renders clip and still jobs."""

    def __init__(self, catalog: Catalog, config: EncodeConfig) -> None:
        self.catalog = catalog
        self.config = config

    def run(self, job: Job) -> Job:
        """Render a claimed job; the job ends done, failed or cancelled, never half-written."""
        render = self._render_clip if job.kind == JobKind.CLIP else self._render_still
        return run_job(self.catalog, job, render)

    def _render_clip(self, job: Job) -> None:
        p = job.params
        src = source_of(self.catalog, p["recording_id"])
        h = float(p.get("handles_s") or 0)
        start = max(0.0, float(p["start_s"]) - h)
        end = min(src.duration_s, float(p["end_s"]) + h)
        out = self.catalog.layout.clip_file(src.recording.id, str(job.subject))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        # A dead runner's leftover: ffmpeg -y would truncate (and share) its inode.
        tmp.unlink(missing_ok=True)
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
            _caption_file(tmp).unlink(missing_ok=True)
        duration = probe(out).duration_s or duration
        result: dict[str, Any] = {
            "id": job.subject, "recording_id": src.recording.id, "path": str(out),
            "start_s": round(start, 6), "end_s": round(end, 6),
            "real_start_s": round(real_start, 6), "exact": bool(p["exact"]),
            "duration_s": round(duration, 6), "handles_s": h, "caption": p.get("caption")}
        self.catalog.media.finish(job.id, JobKind.CLIP, str(job.subject),
                                  {"path": out, "real_start_s": real_start,
                                   "duration_s": duration}, result)

    def _exact_argv(self, src: Source, tmp: Path, span: av.FrameSpan,
                    caption: str | None) -> list[str]:
        if caption is None:
            return av.exact_clip_argv(src.path, tmp, span, audio=src.has_audio,
                                      crf=self.config.crf, preset=self.config.preset)
        # A text file, not an inline string: drawtext's escaping rules are a trap.
        text = _caption_file(tmp)
        text.write_text(caption, encoding="utf-8")
        font = Path(self.config.font)
        if not font.exists():
            raise EncodeError(f"the caption font {font} is missing; install fonts-dejavu-core")
        return av.exact_clip_argv(src.path, tmp, span, audio=src.has_audio,
                                  caption_file=text, font=font, crf=self.config.crf,
                                  preset=self.config.preset)

    def _render_still(self, job: Job) -> None:
        p = job.params
        src = source_of(self.catalog, p["recording_id"])
        frame = av.frame_at(float(p["at_s"]) - src.video_start_s, src.fps)
        out = self.catalog.layout.still_file(src.recording.id, str(job.subject))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp.jpg")
        # A dead runner's leftover: ffmpeg -y would truncate (and share) its inode.
        tmp.unlink(missing_ok=True)
        try:
            self._ffmpeg(av.still_argv(src.path, tmp, frame, src.fps), 1 / src.fps, job,
                         f"still {job.subject}")
            if not tmp.exists() or tmp.stat().st_size == 0:
                raise EncodeError(f"no frame at {p['at_s']} s")
            publish(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        result = {"id": job.subject, "recording_id": src.recording.id, "path": str(out),
                  "at_s": float(p["at_s"]), "frame": frame}
        self.catalog.media.finish(job.id, JobKind.STILL, str(job.subject),
                                  {"path": out, "frame": frame}, result)

    def _ffmpeg(self, argv: list[str], duration_s: float, job: Job, what: str) -> None:
        run_with_progress(av.progress_args(argv), duration_s=duration_s, what=what,
                          on_progress=lambda f: self.catalog.jobs.progress(job.id, f),
                          should_cancel=lambda: self.catalog.jobs.cancel_requested(job.id),
                          nice=self.config.nice)


def _caption_file(tmp: Path) -> Path:
    return tmp.with_name(f".{tmp.name}.caption.txt")
