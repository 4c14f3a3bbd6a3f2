"""Media files as the UI reaches them: which file an id names, its type, and the audit
of each viewing. No path from a request ever becomes a file path here: only ids, checked,
looked up in the catalog, and the answer must lie inside the data dir."""

from __future__ import annotations

import enum
from pathlib import Path

from appliance.catalog import Clip, Film, MediaStatus, Still
from appliance.errors import AuthError, NotFoundError
from appliance.layout import SAFE_ID
from appliance.services.app import App


class FileKind(enum.StrEnum):
    """What a media URL may name."""

    RECORDING = "recording"
    CLIP = "clip"
    STILL = "still"
    FILM = "film"
    POSTER = "poster"
    SPRITE = "sprite"
    THUMBS = "thumbs"       # the sprite's WebVTT index
    WAVEFORM = "waveform"


VIEWED = {FileKind.RECORDING, FileKind.CLIP, FileKind.STILL, FileKind.FILM}
# What a guider may take away when downloads are allowed: the short, chosen pieces, never
# a whole home visit.
DOWNLOADABLE = (FileKind.CLIP, FileKind.STILL, FileKind.FILM)
TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
         ".png": "image/png", ".vtt": "text/vtt", ".json": "application/json"}


def media_file(app: App, kind: str, item_id: str) -> tuple[Path, str]:
    """The file and MIME type of a media item; NotFoundError if it is not there (yet)."""
    try:
        kind = FileKind(kind)
    except ValueError:
        raise NotFoundError(f"no such kind of file {kind!r}") from None
    path = _lookup(app, FileKind(kind), item_id)
    if path is None or not path.is_file():
        raise NotFoundError(f"the {kind} {item_id} has no file yet")
    root = app.layout.root.resolve()
    real = path.resolve()
    if not real.is_relative_to(root):
        raise NotFoundError(f"the {kind} {item_id} has no file in the data dir")
    return real, TYPES.get(real.suffix.lower(), "application/octet-stream")


def _lookup(app: App, kind: FileKind, item_id: str) -> Path | None:
    if not SAFE_ID.fullmatch(item_id):
        raise NotFoundError(f"no {kind} {item_id!r}")
    catalog = app.catalog
    if kind in (FileKind.RECORDING, FileKind.POSTER, FileKind.SPRITE, FileKind.THUMBS,
                FileKind.WAVEFORM):
        rec = catalog.recordings.get(item_id)
        if kind is FileKind.RECORDING:
            return rec.path if rec.playable else None
        assets = catalog.assets.get(item_id)
        return {FileKind.POSTER: assets.poster, FileKind.SPRITE: assets.sprite,
                FileKind.THUMBS: assets.vtt, FileKind.WAVEFORM: assets.waveform}[kind]
    item: Clip | Still | Film
    if kind is FileKind.CLIP:
        item = catalog.media.clip(item_id)
    elif kind is FileKind.STILL:
        item = catalog.media.still(item_id)
    else:
        item = catalog.media.film(item_id)
    return item.path if item.status is MediaStatus.READY else None


def note_view(app: App, kind: str, item_id: str, *, actor: str) -> None:
    """Audit that an account watched a film, clip or still (assets are not views)."""
    if kind in VIEWED:
        app.catalog.audit.append(f"view.{kind}", item_id, actor=actor)


def downloads_allowed(app: App) -> bool:
    """May guiders download clips, stills and films (web.downloads_allowed, off by default)?"""
    return app.current_config().web.downloads_allowed


def download_file(app: App, kind: str, item_id: str, *, actor: str) -> tuple[Path, str, str]:
    """A clip, still or review film handed out as a file: its path, type and a name for
    the tablet, audited every time. AuthError while downloads are off."""
    if kind not in DOWNLOADABLE:
        raise NotFoundError(f"a {kind} cannot be downloaded; clips, stills and films can")
    if not downloads_allowed(app):
        raise AuthError("downloads are off on this box; an administrator can allow them "
                        "in Settings")
    path, mimetype = media_file(app, kind, item_id)
    case = _case_of(app, FileKind(kind), item_id)
    app.catalog.audit.append(f"download.{kind}", item_id, actor=actor, detail={"case": case})
    name = "-".join(part for part in ("vigbox", case, kind, item_id) if part)
    return path, mimetype, name + path.suffix.lower()


def _case_of(app: App, kind: FileKind, item_id: str) -> str | None:
    media = app.catalog.media
    item: Clip | Still
    if kind is FileKind.FILM:  # a review film's case is its clips' case
        clip_ids = media.film(item_id).clip_ids
        if not clip_ids:
            return None
        item = media.clip(clip_ids[0])
    else:
        item = media.clip(item_id) if kind is FileKind.CLIP else media.still(item_id)
    return app.catalog.recordings.get(item.recording_id).case
