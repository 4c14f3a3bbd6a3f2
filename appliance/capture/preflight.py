"""Checks made before a recording starts, so it never starts only to fail."""

from __future__ import annotations

from appliance.capture.sources import Camera, Microphone
from appliance.catalog import Catalog, Consent
from appliance.config import Config
from appliance.errors import CameraError, MicrophoneError, NoConsentError, PreflightError
from appliance.fsutil import free_bytes
from appliance.layout import Layout

MB = 1024 * 1024
FINALIZE_ROOM_MB = 32    # beyond the MP4's own size, kept free so finalizing can finish
BALLAST_MB = 8           # kept free for the catalog, released when the disk fills


def bytes_needed(config: Config) -> int:
    """Disk a longest-allowed recording needs: the journal plus the finalized MP4."""
    per_second = config.camera.bitrate / 8
    if config.microphone.backend != "none":
        per_second += config.microphone.sample_rate * 2 * 2  # PCM journal + aligned WAV
    return int(config.recording.max_seconds * per_second * 2)


def room_needed(config: Config, layout: Layout) -> int:
    """Free bytes a recording needs to start: the longest recording, the room finalizing
    needs (the session stops early below it), the ballast if not yet made, the reserve."""
    need = bytes_needed(config) + FINALIZE_ROOM_MB * MB + config.recording.reserve_mb * MB
    if not layout.ballast.exists():
        need += BALLAST_MB * MB
    return need


def check_disk(config: Config, layout: Layout) -> None:
    """Refuse unless the longest recording plus the reserve fits on the disk."""
    free = free_bytes(layout.root)
    if free < room_needed(config, layout):
        minutes = config.recording.max_seconds / 60
        raise PreflightError(
            f"not enough disk space: {free / MB:.0f} MB free, a {minutes:g}-minute recording "
            f"needs {bytes_needed(config) / MB:.0f} MB plus {config.recording.reserve_mb} MB "
            "reserve; sync and remove old recordings first")


def check_filming_consent(catalog: Catalog, case: str, kind: str = "interaction") -> None:
    """Refuse a case that does not exist (NotFoundError) or has no consent to filming on
    record (NoConsentError); filming a shared review (for a supervisor) needs consent
    to supervision as well."""
    found = catalog.cases.get(case)
    scopes = [Consent.FILMING] + ([Consent.SUPERVISION] if kind == "review" else [])
    for scope in scopes:
        if not found.allows(scope):
            raise NoConsentError(f"case {case} has no consent to {scope} on record; record "
                                 f"it first: `vigbox cases consent {case} --give {scope}`")


def preflight(config: Config, layout: Layout, camera: Camera, mic: Microphone | None) -> None:
    """Raise PreflightError with the reason a recording cannot start now."""
    check_disk(config, layout)
    try:
        camera.check()
    except CameraError as e:
        raise PreflightError(f"camera not ready: {e}") from None
    if mic is not None:
        try:
            mic.check()
        except MicrophoneError as e:
            raise PreflightError(f"microphone not ready: {e}") from None
