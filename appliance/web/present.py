"""Catalog rows as the tablet's JSON: plain data plus the URLs the page uses. File paths
on the box stay out of what the web sends."""

from __future__ import annotations

from typing import Any

from flask import url_for

from appliance.catalog import Assets, AssetStatus, Clip, Job, Recording, Still
from appliance.errors import NotFoundError
from appliance.services.app import App


def media_url(kind: str, item_id: str) -> str:
    """Where the tablet fetches a media file."""
    return url_for("media.media", kind=kind, item_id=item_id)


def recording(rec: Recording) -> dict[str, Any]:
    """A recording with its film's URL (None until playable) and its review page."""
    out = rec.to_json()
    out.pop("path")
    out["media_url"] = media_url("recording", rec.id) if rec.playable else None
    out["review_url"] = url_for("pages.review", rec_id=rec.id)
    return out


def assets(app: App, rec_id: str) -> dict[str, Any]:
    """URLs of a recording's review assets (poster, sprite + index, waveform)."""
    try:
        row: Assets | None = app.catalog.assets.get(rec_id)
    except NotFoundError:
        row = None
    ready = row is not None and row.status is AssetStatus.READY
    out: dict[str, Any] = {"status": str(row.status) if row else "pending"}
    for kind, present in (("poster", row and row.poster), ("sprite", row and row.sprite),
                          ("thumbs", row and row.vtt), ("waveform", row and row.waveform)):
        out[kind] = media_url(kind, rec_id) if ready and present else None
    return out


def download_url(kind: str, item_id: str) -> str:
    """Where the tablet downloads a clip, still or film (only offered when allowed)."""
    return url_for("media.download", kind=kind, item_id=item_id)


def clip(c: Clip, *, downloads: bool = False) -> dict[str, Any]:
    """A clip and its URL once ready (and where to download it, if downloads are allowed)."""
    ready = c.path is not None and str(c.status) == "ready"
    return {"id": c.id, "recording_id": c.recording_id, "moment_id": c.moment_id,
            "start_s": c.start_s, "end_s": c.end_s, "exact": c.exact,
            "real_start_s": c.real_start_s, "duration_s": c.duration_s,
            "caption": c.caption, "status": str(c.status), "job_id": c.job_id,
            "created_at": c.created_at, "tag": c.moment_tag,
            "url": media_url("clip", c.id) if ready else None,
            "download_url": download_url("clip", c.id) if ready and downloads else None}


def still(s: Still, *, downloads: bool = False) -> dict[str, Any]:
    """A still and its URL once ready (and where to download it, if allowed)."""
    ready = s.path is not None and str(s.status) == "ready"
    return {"id": s.id, "recording_id": s.recording_id, "at_s": s.at_s, "frame": s.frame,
            "status": str(s.status), "job_id": s.job_id, "created_at": s.created_at,
            "url": media_url("still", s.id) if ready else None,
            "download_url": download_url("still", s.id) if ready and downloads else None}


def item(row: Clip | Still) -> dict[str, Any]:
    """A clip or a still, whichever it is."""
    return clip(row) if isinstance(row, Clip) else still(row)


def job(j: Job) -> dict[str, Any]:
    """A job's progress for the progress bars (no file paths)."""
    out = j.to_json()
    result = out.get("result") or {}
    out["result"] = {k: v for k, v in result.items() if k != "path"}
    return out
