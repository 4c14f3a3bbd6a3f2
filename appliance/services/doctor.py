"""`vigbox doctor`: what is right and wrong with this box, one line per part, each OK,
WARN or FAIL with what to do. It only looks: it opens no camera the recorder holds and
sends nothing to the office."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from appliance import ffmpeg_tool
from appliance.errors import ApplianceError, ControlError, SyncError, SyncStopError
from appliance.services import clock, home
from appliance.services.app import App
from appliance.services.daemon import DaemonClient
from appliance.sync.destinations import open_destination
from appliance.wall_clock import from_epoch_ms

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """One part of the box and how it is."""

    name: str
    status: str
    detail: str
    advice: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"name": self.name, "status": self.status, "detail": self.detail,
                "advice": self.advice}


def run_checks(app: App, *, reach_office: bool = True) -> list[Check]:
    """Every check, in the order a person would go through the box."""
    checks: list[Callable[[App], Check]] = [
        _config, _ffmpeg, _camera, _microphone, _gpio, _disk, _clock, _recorder, _sync]
    out = []
    for check in checks:
        if check is _sync and not reach_office:
            continue
        try:
            out.append(check(app))
        except ApplianceError as e:   # a check that breaks says so; the others still run
            out.append(Check(check.__name__.strip("_"), FAIL, str(e)))
    return out


def _config(app: App) -> Check:
    return Check("config", OK, f"valid; data in {app.config.data_path}")


def _ffmpeg(app: App) -> Check:
    found = shutil.which("ffmpeg")
    if found is None:
        return Check("ffmpeg", FAIL, "ffmpeg is not installed",
                     "sudo apt install ffmpeg (or re-run the installer)")
    version = ffmpeg_tool.run([found, "-version"], timeout=30, what="asking ffmpeg its version")
    return Check("ffmpeg", OK, version.splitlines()[0] if version else found)


def _camera(app: App) -> Check:
    if app.config.camera.backend == "synthetic":
        return Check("camera", WARN, "the simulated camera (a test picture), not a real one",
                     "set camera.backend = \"picamera2\" on a box with a camera")
    try:
        from picamera2 import Picamera2
    except ImportError:
        return Check("camera", FAIL, "picamera2 is not installed",
                     "sudo apt install python3-picamera2 (Raspberry Pi OS), then re-run "
                     "the installer")
    cameras = Picamera2.global_camera_info()
    if not cameras:
        return Check("camera", FAIL, "no camera found",
                     "check the ribbon cable (power off first); `rpicam-hello "
                     "--list-cameras` lists what the Pi sees")
    return Check("camera", OK, ", ".join(str(c.get("Model", "camera")) for c in cameras))


def _microphone(app: App) -> Check:
    mic = app.config.microphone
    if mic.backend == "none":
        return Check("microphone", WARN, "no microphone: films are silent",
                     "set microphone.backend = \"sounddevice\" to record sound")
    if mic.backend == "synthetic":
        return Check("microphone", WARN, "the simulated microphone (a test tone)",
                     "set microphone.backend = \"sounddevice\" on a box with a microphone")
    import sounddevice as sd
    try:
        inputs = [d for d in sd.query_devices() if d["max_input_channels"] > 0]
    except Exception as e:  # noqa: BLE001 - PortAudio's own errors
        return Check("microphone", FAIL, f"the sound system cannot be read ({e})",
                     "check that libportaudio2 is installed and the USB microphone is in")
    wanted = [d for d in inputs if mic.device.lower() in d["name"].lower()]
    if not wanted:
        return Check("microphone", FAIL, f"no input device matching {mic.device!r}"
                     if mic.device else "no input device", "plug in the USB microphone; "
                     "`arecord -l` lists what the Pi sees")
    return Check("microphone", OK, f"{wanted[0]['name']} ({len(inputs)} input device(s))")


def _gpio(app: App) -> Check:
    g = app.config.gpio
    if g.backend == "mock":
        return Check("button and light", WARN, "simulated pins (no button, no LED)",
                     "set gpio.backend = \"gpiozero\" on the box")
    chips = sorted(Path("/dev").glob("gpiochip*"))
    if not chips:
        return Check("button and light", FAIL, "no GPIO chip in /dev",
                     "this is not a Raspberry Pi, or the GPIO driver is missing")
    return Check("button and light", OK, f"button on GPIO {g.button_pin}, LED on GPIO "
                 f"{g.led_pin} ({chips[0].name})")


def _disk(app: App) -> Check:
    minutes = home.free_minutes(app)
    longest = app.current_config().recording.max_seconds / 60
    detail = f"{minutes:g} minutes of recording free"
    if minutes < longest:
        return Check("disk", FAIL, detail + f", less than one recording ({longest:g} min)",
                     "sync, then close finished cases so their recordings expire")
    if minutes < 3 * longest:
        return Check("disk", WARN, detail, "sync soon and close finished cases")
    return Check("disk", OK, detail)


def _clock(app: App) -> Check:
    # The clock recordings are dated by: the system's, or the demo's simulated one.
    box = clock.status(app)
    now = from_epoch_ms(box.box_epoch_ms)
    latest = max((datetime.fromisoformat(r.started_at)
                  for r in app.catalog.recordings.list()), default=None)
    if now < clock.EARLIEST:
        return Check("clock", FAIL, f"the box thinks it is {now:%Y-%m-%d}",
                     "set the clock: open the tablet UI (it offers the tablet's time), "
                     "`vigbox clock set --to 2026-12-07T10:15:00+01:00`, or connect the box "
                     "to a network once")
    if latest is not None and now < latest:
        return Check("clock", FAIL, f"the clock ({now:%Y-%m-%d %H:%M} UTC) is behind the "
                     f"last recording ({latest:%Y-%m-%d %H:%M} UTC)",
                     "set the clock from the tablet, or connect the box to a network once")
    simulated = " (simulated)" if box.backend == "simulated" else ""
    return Check("clock", OK, f"{now:%Y-%m-%d %H:%M} UTC{simulated}")


def _recorder(app: App) -> Check:
    try:
        status = DaemonClient(app.config.socket).status()
    except ControlError:
        return Check("recorder", WARN, "the capture daemon is not running",
                     "sudo systemctl start vigbox-capture (logs: journalctl -u vigbox-capture)")
    state = str(status.get("state"))
    if state == "error":
        return Check("recorder", FAIL, f"the recorder reports: {status.get('last_error')}",
                     "see journalctl -u vigbox-capture")
    return Check("recorder", OK, f"{state}; camera {status.get('camera')}")


def _sync(app: App) -> Check:
    config = app.current_config()
    dest = open_destination(config, app.layout)
    if dest is None:
        return Check("office", WARN, "no office destination (sync.destination)",
                     "set sync.destination and sync.recipients in /etc/vigbox/config.toml")
    started = time.monotonic()
    try:
        dest.connect()
    except SyncStopError as e:
        return Check("office", FAIL, str(e), _ADVICE.get(e.kind, ""))
    except SyncError as e:
        # A box in a family's home often has no network: not reaching the office is normal.
        return Check("office", WARN, f"not reachable now: {e}",
                     "fine away from a network; sync runs when the box is back online")
    finally:
        dest.close()
    took = time.monotonic() - started
    pinned = " (host key pinned and matching)" if dest.url.startswith("sftp://") else ""
    return Check("office", OK, f"{dest.url} reachable in {took:.1f} s{pinned}")


_ADVICE = {
    "host_key": "check the office's host key fingerprint with the office, then "
                "`vigbox keys office-host --pin SHA256:...`",
    "auth": "give the office the line `vigbox keys init` prints, for authorized_keys",
    "config": "run `vigbox keys init`, and check sync.* in /etc/vigbox/config.toml",
    "disk_full": "the office store is full: ask the office to free space",
}
