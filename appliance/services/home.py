"""What the Home screen shows: the box's state, free space in minutes, cases to film."""

from __future__ import annotations

from typing import Any

from appliance.catalog import Case, Consent
from appliance.errors import ControlError
from appliance.fsutil import free_bytes
from appliance.services.app import App
from appliance.services.daemon import DaemonClient


def bytes_per_minute(app: App) -> float:
    """What a minute of recording takes on disk (video at its bitrate, raw audio)."""
    cfg = app.config
    audio = 0 if cfg.microphone.backend == "none" else cfg.microphone.sample_rate * 2
    return (cfg.camera.bitrate / 8 + audio) * 60


def free_minutes(app: App) -> float:
    """Minutes of recording the disk still holds (above the reserve kept free)."""
    spare = free_bytes(app.layout.root) - app.config.recording.reserve_mb * 2**20
    return max(0.0, round(spare / bytes_per_minute(app), 1))


def filmable_cases(app: App) -> list[Case]:
    """Cases that may be filmed: consent to filming on record."""
    return [c for c in app.catalog.cases.list() if c.allows(Consent.FILMING)]


def box_status(app: App, daemon: DaemonClient) -> dict[str, Any]:
    """The capture daemon's status, or why it cannot be reached, plus free minutes."""
    try:
        status = daemon.status()
    except ControlError as e:
        offline = e.kind == "not_running"
        status = {"state": "offline" if offline else "error",
                  "last_error": "the recorder is not running: restart the box" if offline
                  else str(e), "recording": None, "light": None}
    status["free_minutes"] = free_minutes(app)
    status["max_seconds"] = app.current_config().recording.max_seconds
    return status
