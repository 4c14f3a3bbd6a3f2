"""Recordings: list them, record one in the foreground, recover interrupted ones."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from appliance.catalog import Consent, Moment, Recording
from appliance.config import Config, setting_of
from appliance.errors import ApplianceError, ConsentError, InputError
from appliance.services.app import App

if TYPE_CHECKING:
    from appliance.capture.recover import RecoveryOutcome

# The capture side (devices, sessions, finalizing with numpy) is imported by the two
# functions that run it: the web and encode services list recordings without it.

log = logging.getLogger(__name__)
FIRST_FRAME_TIMEOUT_S = 10.0


def list_recordings(app: App) -> list[Recording]:
    """Every recording, oldest first."""
    return app.catalog.recordings.list()


def get_recording(app: App, rec_id: str) -> Recording:
    """One recording (NotFoundError if unknown)."""
    return app.catalog.recordings.get(rec_id)


def moments_of(app: App, rec_id: str) -> list[Moment]:
    """The marked moments of a recording, in time order."""
    app.catalog.recordings.get(rec_id)
    return app.catalog.moments.list(rec_id)


def assign_case(app: App, rec_id: str, case: str | None, *, actor: str) -> Recording:
    """Give a recording made without a case its case later (or correct it): the case must
    exist and have consent to filming on record."""
    app.catalog.recordings.get(rec_id)
    if case is not None:
        if not app.catalog.cases.get(case).allows(Consent.FILMING):
            raise ConsentError(f"case {case} has no consent to filming on record; record the "
                               "family's consent first")
    return app.catalog.recordings.set_case(rec_id, case, actor=actor)


def recover(app: App) -> list[RecoveryOutcome]:
    """Make every interrupted recording playable (or say why it cannot be)."""
    from appliance.capture.recover import recover_all

    return recover_all(app.catalog, default_fps=app.config.camera.fps,
                       default_sample_rate=app.config.microphone.sample_rate)


def check_length(seconds: float, config: Config | None = None) -> None:
    """Refuse a foreground recording length outside (0, recording.max_seconds]; without a
    config, outside what any config allows (checked before the catalog is opened)."""
    limit = (config.recording.max_seconds if config is not None
             else setting_of(Config(), "recording.max_seconds")[1]["max"])
    if not 0 < seconds <= limit:
        raise InputError(f"--seconds must be more than 0 and at most {limit} "
                         "(recording.max_seconds, or the limit set in Settings)")


def record_here(app: App, seconds: float, *, case: str | None = None,
                stop: threading.Event | None = None) -> Recording:
    """Record `seconds` (from the first frame) in this process and finalize: the
    foreground recorder for `vigbox record` and the demo (no daemon, no button)."""
    config = app.current_config()
    check_length(seconds, config)
    stop = stop or threading.Event()
    from appliance.capture.devices import make_camera, make_microphone, new_marker
    from appliance.capture.session import Session

    marker = new_marker()
    camera = make_camera(config, marker)
    mic = make_microphone(config, marker)
    try:
        camera.open()
        if mic is not None:
            mic.open()
        session = Session(catalog=app.catalog, config=config, camera=camera, mic=mic,
                          case=case)
        session.start()
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
        while session.first_pts_ns is None and session.running and time.monotonic() < deadline:
            stop.wait(0.01)
        start_ns = session.first_pts_ns or time.monotonic_ns()
        end_ns = start_ns + int(seconds * 1e9)
        while session.running and not stop.is_set() and time.monotonic_ns() < end_ns:
            stop.wait(min(0.05, max(0.0, (end_ns - time.monotonic_ns()) / 1e9)))
        return session.stop("interrupted" if stop.is_set() else "stopped")
    finally:
        for source in (mic, camera):
            if source is not None:
                try:
                    source.close()
                except ApplianceError as e:
                    log.warning("%s did not close cleanly: %s", source.name, e)
