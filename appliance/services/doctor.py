"""`vigbox doctor`: what is right and wrong with this box, one line per part, each OK,
WARN or FAIL with what to do. It only looks: it opens no camera or microphone the recorder
holds (the recorder measures the microphone's level for it, between recordings; only when
the recorder is not running does the doctor listen itself), and sends nothing to the
office."""

from __future__ import annotations

import os
import pwd
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paramiko

from appliance import ffmpeg_tool
from appliance.capture.devices import make_microphone, new_marker
from appliance.capture.mic_level import LISTEN_S, Level, listen
from appliance.capture.mic_sounddevice import load_sounddevice
from appliance.config import Config, SyncConfig
from appliance.errors import (
    ApplianceError,
    ConfigError,
    ControlError,
    DaemonBusyError,
    DaemonNotRunningError,
    DaemonRequestError,
    MicrophoneError,
    SyncError,
    SyncStopError,
)
from appliance.layout import Layout
from appliance.services import clock, home
from appliance.services.app import App
from appliance.services.daemon import DaemonClient
from appliance.sync.dest_sftp import key_files
from appliance.sync.destinations import open_destination
from appliance.sync.seal import recipients_of
from appliance.wall_clock import from_epoch_ms

OK, WARN, FAIL = "ok", "warn", "fail"
SILENT_PEAK_DBFS = -50.0     # a room with someone talking peaks well above this
CLIPPING_PEAK_DBFS = -0.5    # the loudest a 16-bit sample can be, near enough


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
        _config, _ffmpeg, _camera, _microphone, _gpio, _disk, _clock, _recorder, _keys,
        _sync]
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
        heard = _heard(app, "the simulated microphone (a test tone)")
        if heard.status == FAIL:
            return heard
        return Check("microphone", WARN, heard.detail, "set microphone.backend = "
                     "\"sounddevice\" on a box with a microphone")
    try:
        sd = load_sounddevice()
        inputs = [d for d in sd.query_devices() if d["max_input_channels"] > 0]
    except MicrophoneError as e:
        return Check("microphone", FAIL, str(e), "re-run the installer")
    except Exception as e:  # noqa: BLE001 - PortAudio's own errors
        return Check("microphone", FAIL, f"the sound system cannot be read ({e})",
                     "check that libportaudio2 is installed and the USB microphone is in")
    wanted = [d for d in inputs if mic.device.lower() in d["name"].lower()]
    if not wanted:
        return Check("microphone", FAIL, f"no input device matching {mic.device!r}"
                     if mic.device else "no input device", "plug in the USB microphone; "
                     "`arecord -l` lists what the Pi sees")
    return _heard(app, f"{wanted[0]['name']} ({len(inputs)} input device(s))")


def _heard(app: App, found: str) -> Check:
    """The microphone's level over a second, unless the recorder is using it."""
    try:
        level = _level(app)
    except DaemonBusyError as e:   # "in use by the recording"
        return Check("microphone", OK, f"{found}; {e}: level not measured")
    except DaemonRequestError as e:
        return Check("microphone", FAIL, f"{found}; the recorder cannot measure it: {e}",
                     "sudo systemctl restart vigbox-capture, so that it reads this config")
    except (ControlError, MicrophoneError) as e:
        return Check("microphone", FAIL, f"{found}; no sound: {e}",
                     "plug the microphone in again; check that no other program holds it "
                     "(`fuser -v /dev/snd/*`); `arecord -l` lists what the Pi sees")
    return _judge(found, level)


def _level(app: App) -> Level:
    """Measured by the recorder, which holds the microphone (a USB one is exclusive: were
    the doctor to open it, a press meanwhile would fail to record); by the doctor itself
    only when no recorder runs."""
    try:
        return Level(**DaemonClient(app.config.socket).level())
    except DaemonNotRunningError:
        mic = make_microphone(app.config, new_marker())
        assert mic is not None, "backend none is answered before"
        return listen(mic, LISTEN_S)


def _judge(found: str, level: Level) -> Check:
    measured = f"peak {level.peak_dbfs:.1f} dBFS, RMS {level.rms_dbfs:.1f} dBFS"
    gain = "`alsamixer -c N` (F4: capture) or `amixer -c N sset Mic"
    card = "N is the microphone's card number in `arecord -l`"
    if level.peak_dbfs < SILENT_PEAK_DBFS:
        return Check("microphone", WARN, f"{found}; silent ({measured}): is the microphone "
                     "muted, its gain at zero, or far away?",
                     f"unmute it and raise its gain: {gain} 80% cap`; {card}. The doctor "
                     "listens for one second: speak near the microphone while it runs")
    if level.peak_dbfs >= CLIPPING_PEAK_DBFS:
        return Check("microphone", WARN, f"{found}; clipping ({measured}): lower the "
                     "microphone's gain", f"{gain} 50%`; {card}. Speech should peak "
                     "around -12 dBFS")
    return Check("microphone", OK, f"{found}; {measured}")


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


def _keys(app: App) -> Check:
    config = app.current_config()
    sync = config.sync
    if not sync.destination:
        return Check("keys", WARN, "no office set up: nothing to encrypt to",
                     "set sync.destination and sync.recipients in /etc/vigbox/config.toml")
    if not sync.recipients:
        return Check("keys", FAIL, "no office keys (sync.recipients is empty): nothing can "
                     "be encrypted for the office", "put the office's age public keys "
                     "(age1..., from age-keygen at the office) in sync.recipients")
    bad = [_recipient_named(i, r) for i, r in enumerate(sync.recipients) if not _parses(r)]
    if bad:
        return Check("keys", FAIL, "not age public keys in sync.recipients: " + "; ".join(bad),
                     "ask the office for its age public keys (age1..., 62 characters) and "
                     "put exactly those in sync.recipients")
    count = len(sync.recipients)
    present = [f"{count} office key{'s' if count > 1 else ''}"]
    scheme = urlsplit(sync.destination).scheme
    more = (_ssh_keys(config, app.layout) if scheme == "sftp"
            else _s3_secret(sync, app.layout) if scheme == "s3" else None)
    if isinstance(more, Check):
        return more
    return Check("keys", OK, "; ".join(present + ([more] if more else [])))


def _parses(recipient: str) -> bool:
    try:
        recipients_of([recipient])
    except ConfigError:
        return False
    return True


def _recipient_named(index: int, recipient: str) -> str:
    if recipient.strip().upper().startswith("AGE-SECRET-KEY"):
        # An office's private key pasted by mistake: never repeat it on a screen or in a log.
        return (f"#{index + 1} is an age SECRET key (not shown): remove it from the box and "
                "tell the office, whose key it is")
    shown = recipient if len(recipient) <= 70 else recipient[:67] + "..."
    return f"#{index + 1} {shown!r}"


def _cannot_read(what: str, path: Path, layout: Layout) -> Check:
    # `sudo vigbox doctor` runs as the data dir's owner, the user sync runs as: what the
    # doctor cannot read there, sync cannot either.
    me, owner = _user(os.geteuid()), _user(layout.root.stat().st_uid)
    if me != owner:
        return Check("keys", WARN, f"cannot read {what} ({path}) as {me}",
                     f"run `sudo vigbox doctor`: it checks as {owner}, the user sync runs as")
    return Check("keys", FAIL, f"cannot read {what} ({path}) as {owner}, the user sync "
                 "runs as: sync cannot use it", f"sudo chown {owner}: {path} && sudo chmod "
                 f"600 {path} (and let {owner} into its folder)")


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _ssh_keys(config: Config, layout: Layout) -> Check | str:
    """The box's SSH key and the office's pinned host key, both read from disk only."""
    key, known = key_files(config, layout)
    try:
        fingerprint = paramiko.PKey.from_path(key).fingerprint
    except FileNotFoundError:
        return Check("keys", FAIL, f"the box has no SSH key ({key})",
                     "run `sudo vigbox keys init` and give the office the line it prints "
                     "(for the sync account's authorized_keys)")
    except PermissionError:
        return _cannot_read("the box's SSH key", key, layout)
    except (OSError, ValueError, paramiko.SSHException) as e:
        return Check("keys", FAIL, f"the box's SSH key {key} cannot be used "
                     f"({type(e).__name__}; it may need a passphrase or be damaged)",
                     "move it aside, run `sudo vigbox keys init` and give the office the "
                     "new line it prints")
    parts = urlsplit(config.sync.destination)
    port = parts.port or 22
    host_id = parts.hostname if port == 22 else f"[{parts.hostname}]:{port}"
    pin = ("`sudo vigbox keys office-host` shows the key the office offers: compare its "
           "fingerprint with the office's, then `sudo vigbox keys office-host --pin SHA256:...`")
    try:
        pinned = paramiko.HostKeys(str(known)).lookup(str(host_id))
    except FileNotFoundError:
        pinned = None
    except PermissionError:
        return _cannot_read("the office's pinned host key", known, layout)
    except (OSError, ValueError) as e:
        return Check("keys", FAIL, f"cannot read the pinned host keys in {known} "
                     f"({type(e).__name__})", pin)
    if not pinned:
        return Check("keys", FAIL, f"the office's host key is not pinned for {host_id} in "
                     f"{known}", pin)
    return f"box SSH key {fingerprint}; office host key pinned for {host_id}"


def _s3_secret(sync: SyncConfig, layout: Layout) -> Check | str:
    """The bucket's secret key file, when one is named: present, readable, not empty."""
    if not sync.s3_secret_key_file:
        return "no sync.s3_secret_key_file (S3 credentials from the environment)"
    path = Path(sync.s3_secret_key_file)
    advice = ("put the bucket's secret key (from the office) in that file, alone on one "
              "line, owned by vigbox and chmod 600")
    try:
        empty = not path.read_text().strip()   # the secret itself is never shown
    except PermissionError:
        return _cannot_read("sync.s3_secret_key_file", path, layout)
    except OSError as e:
        return Check("keys", FAIL, f"cannot read sync.s3_secret_key_file {path} "
                     f"({e.strerror})", advice)
    if empty:
        return Check("keys", FAIL, f"sync.s3_secret_key_file {path} is empty", advice)
    return f"S3 secret key file {path} present"


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
