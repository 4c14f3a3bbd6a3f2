"""The capture daemon from the outside: a client for its socket, and running it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from appliance.capture.control import request
from appliance.capture.daemon import CaptureDaemon
from appliance.capture.devices import make_camera, make_microphone, new_marker
from appliance.capture.gpio import make_pin_factory
from appliance.config import Config
from appliance.services.app import open_app

STOP_TIMEOUT_S = 330.0   # a stop waits for finalizing
TIMEOUT_S = 15.0


class DaemonClient:
    """Commands to the running capture daemon; ControlError subclasses say what went
    wrong (busy, bad request, not running, failed)."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def status(self) -> dict[str, Any]:
        """What the box is doing."""
        return request(self.socket, "status", timeout=TIMEOUT_S)

    def start(self, case: str | None = None) -> dict[str, Any]:
        """Start recording (for a case)."""
        extra = {"case": case} if case else {}
        return request(self.socket, "start", timeout=TIMEOUT_S, **extra)

    def stop(self) -> dict[str, Any]:
        """Stop recording and wait until the film is finalized."""
        return request(self.socket, "stop", timeout=STOP_TIMEOUT_S)

    def mark(self) -> dict[str, Any]:
        """Mark a moment in the running recording."""
        return request(self.socket, "mark", timeout=TIMEOUT_S)


def run_daemon(config: Config, stop: threading.Event) -> None:
    """Run the capture daemon until `stop` is set."""
    marker = new_marker()
    with open_app(config) as app:
        daemon = CaptureDaemon(config, app.catalog, camera=make_camera(config, marker),
                               mic=make_microphone(config, marker),
                               pin_factory=make_pin_factory(config.gpio.backend))
        daemon.run(stop)
