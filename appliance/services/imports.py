"""Bringing in a film shot on another device: from a path, or uploaded from a tablet."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import IO

from appliance.catalog import Recording
from appliance.errors import InputError, MediaError
from appliance.fsutil import free_bytes
from appliance.media_import import import_video
from appliance.services.app import App

UPLOAD_CHUNK = 1024 * 1024
MB = 2**20


def import_file(app: App, path: Path, *, case: str | None, actor: str) -> Recording:
    """Import `path` as a new recording (remuxed or transcoded); nothing left on failure."""
    return import_video(app.catalog, Path(path).absolute(), case=case, actor=actor)


def uploads_dir(app: App) -> Path:
    """Where uploads wait while they arrive (inside the data dir, never /tmp)."""
    return app.layout.root / "uploads"


def clear_uploads(app: App) -> int:
    """Remove uploads a stopped web process left half-received; how many."""
    folder = uploads_dir(app)
    removed = 0
    for leftover in folder.glob(".upload-*") if folder.is_dir() else []:
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed


def import_upload(app: App, stream: IO[bytes], length: int, *, name: str, case: str | None,
                  actor: str) -> Recording:
    """Receive an uploaded film of `length` bytes into the data dir and import it; the
    received copy is removed whatever happens. The disk must hold the upload and the
    import beside the space always kept free for recording."""
    if length <= 0:
        raise InputError("the uploaded file is empty (or was sent without its length)")
    name = os.path.basename(name)[:120] or "upload.mp4"
    spare = free_bytes(app.layout.root) - app.config.recording.reserve_mb * MB
    if spare < 2 * length + 64 * MB:
        raise InputError(f"not enough free space on the box for {name} "
                         f"({length // MB} MB): it needs about {(2 * length) // MB + 64} MB "
                         "beside the space kept for recording")
    folder = uploads_dir(app)
    folder.mkdir(exist_ok=True)
    suffix = os.path.splitext(name)[1].lower()
    suffix = suffix if suffix[1:].isalnum() and suffix.isascii() and len(suffix) <= 8 else ""
    tmp = folder / f".upload-{secrets.token_hex(8)}{suffix}"
    try:
        try:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(stream, out, UPLOAD_CHUNK)
                out.flush()
                os.fsync(out.fileno())
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise InputError(f"the box's disk filled up while receiving {name}") from None
            raise
        if tmp.stat().st_size != length:
            raise InputError(f"the upload of {name} was cut short: try again")
        try:
            return import_file(app, tmp, case=case, actor=actor)
        except (InputError, MediaError) as e:
            # Say it with the guider's file name, not the box's temp name.
            raise type(e)(str(e).replace(str(tmp), name).replace(tmp.name, name)) from None
    finally:
        tmp.unlink(missing_ok=True)
