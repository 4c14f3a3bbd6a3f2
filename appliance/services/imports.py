"""Bringing in a film shot on another device."""

from __future__ import annotations

from pathlib import Path

from appliance.catalog import Recording
from appliance.media_import import import_video
from appliance.services.app import App


def import_file(app: App, path: Path, *, case: str | None, actor: str) -> Recording:
    """Import `path` as a new recording (remuxed or transcoded); nothing left on failure."""
    return import_video(app.catalog, Path(path).absolute(), case=case, actor=actor)
