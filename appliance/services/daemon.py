"""The capture daemon from the outside: a client for its socket, and running it."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.capture.control import request
from appliance.config import Config
from appliance.errors import DaemonFailedError
from appliance.services.app import open_app

STOP_TIMEOUT_S = 330.0   # a stop waits for finalizing
TIMEOUT_S = 15.0
PREVIEW_TIMEOUT_S = 8.0  # the daemon waits up to 4 s for a first picture; later ones are at hand
LEVEL_TIMEOUT_S = 20.0   # a second's listen, its sound up to 3 s late, a USB mic's slow stop


@dataclass(frozen=True)
class LivePicture:
    """One live-preview picture: JPEG bytes, when it was exposed (the box's
    CLOCK_MONOTONIC, ns), its size, and what the box was doing."""

    jpeg: bytes
    taken_ns: int
    width: int
    height: int
    state: str


class DaemonClient:
    """Commands to the running capture daemon; ControlError subclasses say what went
    wrong (busy, bad request, not running, failed)."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def status(self) -> dict[str, Any]:
        """What the box is doing."""
        return request(self.socket, "status", timeout=TIMEOUT_S)

    def start(self, case: str | None = None, *, actor: str | None = None,
              kind: str = "interaction") -> dict[str, Any]:
        """Start recording (for a case); `actor` is the account the audit log names; kind
        "review" films a shared review of the case (needs consent to supervision)."""
        extra: dict[str, Any] = {"case": case} if case else {}
        if kind != "interaction":
            extra["kind"] = kind
        if actor:
            extra["actor"] = actor
        return request(self.socket, "start", timeout=TIMEOUT_S, **extra)

    def stop(self, *, actor: str | None = None) -> dict[str, Any]:
        """Stop recording and wait until the film is finalized."""
        extra = {"actor": actor} if actor else {}
        return request(self.socket, "stop", timeout=STOP_TIMEOUT_S, **extra)

    def mark(self, *, actor: str | None = None) -> dict[str, Any]:
        """Mark a moment in the running recording."""
        extra = {"actor": actor} if actor else {}
        return request(self.socket, "mark", timeout=TIMEOUT_S, **extra)

    def press(self, hold_s: float) -> dict[str, Any]:
        """Press the simulated box's button for `hold_s` seconds (returns at once);
        DaemonRequestError on a box with a real button."""
        return request(self.socket, "press", timeout=TIMEOUT_S, hold_s=hold_s)

    def set_case(self, case: str | None, *, actor: str | None = None) -> dict[str, Any]:
        """File recordings started without a case (the button's) under `case` from now
        on; None: under none. {"case": case}; DaemonRequestError for an unknown case or
        one without consent to filming."""
        extra = {"actor": actor} if actor else {}
        return request(self.socket, "case", timeout=TIMEOUT_S, case=case, **extra)

    def level(self) -> dict[str, float]:
        """The daemon listens to its microphone for a second: {"peak_dbfs", "rms_dbfs",
        "seconds"}. DaemonBusyError while it records (or starts, finalizes, shuts down),
        DaemonRequestError without a microphone, DaemonFailedError if the microphone
        fails."""
        reply = request(self.socket, "level", timeout=LEVEL_TIMEOUT_S)
        try:
            return {key: float(reply[key]) for key in ("peak_dbfs", "rms_dbfs", "seconds")}
        except (KeyError, TypeError, ValueError):
            raise DaemonFailedError("the capture daemon sent an unreadable level") from None

    def preview(self) -> LivePicture:
        """The newest live-preview picture; asking keeps the preview coming a few seconds
        more. DaemonBusyError if the camera is not open, DaemonFailedError if it has no
        preview or the preview failed."""
        reply = request(self.socket, "preview", timeout=PREVIEW_TIMEOUT_S)
        try:
            return LivePicture(jpeg=base64.b64decode(reply["jpeg_b64"], validate=True),
                               taken_ns=int(reply["taken_at_ns"]), width=int(reply["width"]),
                               height=int(reply["height"]), state=str(reply["state"]))
        except (KeyError, TypeError, ValueError):  # bad base64 is a ValueError too
            raise DaemonFailedError("the capture daemon sent an unreadable preview") from None


def run_daemon(config: Config, stop: threading.Event) -> None:
    """Run the capture daemon until `stop` is set."""
    # Imported here: the web service and the CLI use the client above, and each of the
    # box's services keeps in memory only what it runs (gpiozero, numpy, the devices).
    from appliance.capture.daemon import CaptureDaemon
    from appliance.capture.devices import make_camera, make_microphone, new_marker
    from appliance.capture.gpio import make_pin_factory

    marker = new_marker()
    with open_app(config) as app:
        daemon = CaptureDaemon(config, app.catalog, camera=make_camera(config, marker),
                               mic=make_microphone(config, marker),
                               pin_factory=make_pin_factory(config.gpio.backend))
        daemon.run(stop)
