"""Clips, stills and review films, request side: check, then queue (row and job together).

The encoder renders what is queued; `run_now` lets a command render its own job at
once through the same path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from appliance.catalog import Job, JobStatus
from appliance.encode.film import MAX_CLIPS, ready_clip
from appliance.encode.source import check_span, source_of
from appliance.errors import EncodeError, InputError, NotFoundError
from appliance.services.app import App

MAX_CAPTION = 120


@dataclass(frozen=True)
class Suggestion:
    """The suggested clip of one marked moment."""

    moment_id: int
    at_s: float
    start_s: float
    end_s: float
    tag: str | None
    note: str | None

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"moment_id": self.moment_id, "at_s": self.at_s, "start_s": self.start_s,
                "end_s": self.end_s, "tag": self.tag, "note": self.note}


def suggestions(app: App, rec_id: str) -> list[Suggestion]:
    """A suggested clip per marked moment: the press comes after the good moment, so the
    clip runs from pre_roll_s before it to post_roll_s after (inside the film)."""
    src = source_of(app.catalog, rec_id)
    cfg = app.config.encode
    out = []
    for m in app.catalog.moments.list(rec_id):
        start = max(0.0, m.at_s - cfg.pre_roll_s)
        end = min(src.duration_s, m.at_s + cfg.post_roll_s)
        if end > start:
            out.append(Suggestion(m.id, m.at_s, round(start, 3), round(end, 3), m.tag, m.note))
    return out


def request_clip(app: App, rec_id: str, start_s: float, end_s: float, *, exact: bool,
                 actor: str, handles_s: float = 0.0, caption: str | None = None,
                 moment_id: int | None = None) -> Job:
    """Check a clip request and queue it."""
    cfg = app.config.encode
    src = source_of(app.catalog, rec_id)
    if not (math.isfinite(handles_s) and 0 <= handles_s <= cfg.max_handles_s):
        raise InputError(f"handles must be 0 to {cfg.max_handles_s:g} s")
    if caption is not None:
        if not caption.strip() or len(caption) > MAX_CAPTION:
            raise InputError(f"a caption must be 1 to {MAX_CAPTION} characters")
        if not exact:
            # A fast clip is a stream copy: nothing can be drawn on its picture.
            raise InputError("a caption needs a frame-exact clip (--exact): a fast clip "
                             "is copied, not re-encoded, so no text can be drawn on it")
    check_span(src, start_s, end_s, cfg)
    if moment_id is not None and app.catalog.moments.get(moment_id).recording_id != rec_id:
        raise InputError(f"moment {moment_id} is not in recording {rec_id}")
    return app.catalog.jobs.get(app.catalog.media.request_clip(
        rec_id, start_s, end_s, exact=exact, handles_s=handles_s, caption=caption,
        moment_id=moment_id, actor=actor))


def request_moment_clip(app: App, rec_id: str, moment_id: int, *, exact: bool,
                        actor: str) -> Job:
    """Queue the suggested clip of one marked moment."""
    for s in suggestions(app, rec_id):
        if s.moment_id == moment_id:
            return request_clip(app, rec_id, s.start_s, s.end_s, exact=exact,
                                moment_id=moment_id, actor=actor)
    raise NotFoundError(f"recording {rec_id} has no moment {moment_id}")


def request_still(app: App, rec_id: str, at_s: float, *, actor: str) -> Job:
    """Check a still request and queue it."""
    src = source_of(app.catalog, rec_id)
    if not (math.isfinite(at_s) and 0 <= at_s < src.duration_s):
        raise InputError(f"{at_s:g} s is not inside the recording (0 to "
                         f"{src.duration_s:.3f} s)")
    return app.catalog.jobs.get(app.catalog.media.request_still(rec_id, at_s, actor=actor))


def request_film(app: App, clip_ids: list[str], *, titles: bool, actor: str,
                 title_texts: list[str | None] | None = None) -> Job:
    """Check the clips exist and are ready, then queue the review film."""
    if title_texts is not None and (len(title_texts) != len(clip_ids) or any(
            t is not None and (not isinstance(t, str) or len(t) > 400) for t in title_texts)):
        raise InputError("give one title (at most 400 characters, or none) per clip")
    if not clip_ids:
        raise InputError("name at least one clip")
    if len(clip_ids) > MAX_CLIPS:
        raise InputError(f"a review film may join at most {MAX_CLIPS} clips")
    for clip_id in clip_ids:
        ready_clip(app.catalog, clip_id)
    return app.catalog.jobs.get(app.catalog.media.request_film(
        clip_ids, titles=titles, actor=actor, title_texts=title_texts))


def run_now(app: App, job: Job) -> dict[str, Any]:
    """Render a queued job in this process (a worker will not take it); its result."""
    from appliance.encode.worker import EncodeWorker  # the renderers: only when rendering

    claimed = app.catalog.jobs.claim(job.id)
    if claimed is None:
        raise EncodeError(f"job {job.id} was taken by another process")
    done = EncodeWorker(app.catalog, app.config.encode).run_job(claimed)
    if done.status != JobStatus.DONE or done.result is None:
        raise EncodeError(f"job {done.id} {done.status}: {done.error}")
    return done.result


def run_queued(app: App) -> list[Job]:
    """Run what the encoder worker would, until the queue is empty; the jobs as ended."""
    from appliance.encode.worker import EncodeWorker

    worker = EncodeWorker(app.catalog, app.config.encode)
    ended = []
    while (job := worker.run_one()) is not None:
        ended.append(job)
    return ended


def list_jobs(app: App) -> list[Job]:
    """Encoder jobs, newest first."""
    return app.catalog.jobs.list()


def cancel_job(app: App, job_id: int, *, actor: str) -> Job:
    """Cancel a queued or running job."""
    return app.catalog.jobs.cancel(job_id, actor=actor)
