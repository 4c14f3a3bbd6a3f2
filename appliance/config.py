"""Configuration: a TOML file, validated at load, with defaults for every setting.

Unknown keys and bad values are rejected with the key's full name, so an
administrator can fix the file without reading code.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from socket import gethostname
from typing import Any

from appliance.errors import ConfigError
from appliance.layout import Layout

DEFAULT_CONFIG_PATH = Path("/etc/vigbox/config.toml")
MAX_NAME = 40
SYSTEM_DATA_DIR = Path("/var/lib/vigbox")


def _setting(default: Any, help: str, *, choices: tuple[Any, ...] | None = None,
             min: float | None = None, max: float | None = None,
             max_len: int | None = None) -> Any:
    """A config field with its description and limits kept beside it."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "max_len": max_len}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class CameraConfig:
    """Which camera records, and how its H.264 stream is made."""

    backend: str = _setting("picamera2", "camera source", choices=("picamera2", "synthetic"))
    resolution: str = _setting("720p", "frame size", choices=("720p", "1080p"))
    fps: int = _setting(30, "frames per second", min=10, max=60)
    bitrate: int = _setting(6_000_000, "H.264 bitrate in bit/s", min=500_000, max=20_000_000)
    keyframe_interval_s: float = _setting(1.0, "seconds between keyframes", min=0.2, max=5.0)
    preview_fps: float = _setting(4.0, "live preview pictures per second at most (only made "
                                  "while the tablet shows them)", min=0.5, max=10.0)
    preview_width: int = _setting(640, "live preview width; its height keeps the aspect ratio",
                                  min=160, max=640)

    @property
    def size(self) -> tuple[int, int]:
        """Frame width and height in pixels."""
        return (1920, 1080) if self.resolution == "1080p" else (1280, 720)


@dataclass(frozen=True)
class MicrophoneConfig:
    """Which microphone records sound, if any."""

    backend: str = _setting("sounddevice", "microphone source",
                            choices=("sounddevice", "synthetic", "none"))
    device: str = _setting("", "part of the input device's name (sounddevice); empty = default")
    sample_rate: int = _setting(48_000, "samples per second", choices=(44_100, 48_000))
    block_ms: int = _setting(20, "audio block length in milliseconds", min=5, max=200)
    stall_timeout_s: float = _setting(0.5, "no audio for this long means the mic failed",
                                      min=0.1, max=10.0)
    synthetic_drift_ppm: float = _setting(
        0.0, "synthetic mic only: how far its clock runs off the camera's", min=-1000, max=1000)


@dataclass(frozen=True)
class GpioConfig:
    """The one button and the status LED."""

    backend: str = _setting("gpiozero", "pin access", choices=("gpiozero", "mock"))
    button_pin: int = _setting(17, "BCM pin of the button (to ground)", min=0, max=27)
    led_pin: int = _setting(27, "BCM pin of the status LED", min=0, max=27)
    hold_stop_s: float = _setting(1.5, "hold this long while recording to stop", min=0.1, max=10)
    hold_shutdown_s: float = _setting(5.0, "hold this long while idle to shut down",
                                      min=0.5, max=30)
    bounce_time_s: float = _setting(0.03, "ignore contact bounce shorter than this", min=0, max=0.5)


@dataclass(frozen=True)
class RecordingConfig:
    """Limits and safety margins for one recording."""

    max_seconds: int = _setting(600, "a recording stops by itself after this long",
                                min=1, max=7200)
    warn_before_end_s: int = _setting(60, "LED warns this long before the limit", min=0, max=600)
    reserve_mb: int = _setting(512, "disk space always left free", min=0, max=1_000_000)
    low_disk_mb: int = _setting(1024, "LED warns when free space falls below this",
                                min=0, max=1_000_000)
    fsync_interval_s: float = _setting(1.0, "flush recorded data to disk this often",
                                       min=0.1, max=2.0)


@dataclass(frozen=True)
class DaemonConfig:
    """The capture daemon's control socket and the box's shutdown."""

    socket_path: str = _setting("", "control socket; empty = capture.sock in the data dir")
    shutdown_command: list[str] = _setting(["systemctl", "poweroff"],
                                           "argv run for the safe shutdown gesture")


@dataclass(frozen=True)
class EncodeConfig:
    """Clips, stills and review films made on the box."""

    max_clip_s: float = _setting(120.0, "longest clip allowed", min=1, max=1800)
    max_handles_s: float = _setting(5.0, "longest lead-in / lead-out allowed", min=0, max=30)
    crf: int = _setting(18, "quality of re-encoded clips (lower is better)", min=10, max=35)
    preset: str = _setting("veryfast", "x264 speed preset for clips",
                           choices=("ultrafast", "superfast", "veryfast", "faster", "fast",
                                    "medium"))
    nice: int = _setting(10, "CPU niceness of encoding (capture always comes first)",
                         min=0, max=19)
    pre_roll_s: float = _setting(8.0, "a marked moment's clip starts this long before it",
                                 min=0, max=60)
    post_roll_s: float = _setting(2.0, "a marked moment's clip ends this long after it",
                                  min=0, max=60)
    font: str = _setting("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                         "font for captions and title cards (from fonts-dejavu-core)")


@dataclass(frozen=True)
class WebConfig:
    """The tablet UI (`vigbox web`)."""

    host: str = _setting("0.0.0.0", "address to listen on (the box's own Wi-Fi)")
    port: int = _setting(8080, "port to listen on", min=1, max=65535)
    threads: int = _setting(16, "server threads (each video being watched holds one)",
                            min=4, max=64)
    idle_timeout_min: float = _setting(30.0, "a tablet left idle this long must log in again",
                                       min=1, max=24 * 60)
    max_upload_mb: int = _setting(4096, "largest video a tablet may upload", min=1,
                                  max=64 * 1024)
    tls_cert: str = _setting("", "certificate for --tls; empty = one made on the box")
    tls_key: str = _setting("", "its private key; empty = one made on the box")
    downloads_allowed: bool = _setting(False, "guiders may download clips, stills and review "
                                       "films to the tablet (each download is audited)")


@dataclass(frozen=True)
class SyncConfig:
    """Sending clips, stills and manifests to the office, encrypted (`vigbox sync`)."""

    destination: str = _setting("", "the office store: sftp://user@host:port/path, "
                                "s3://bucket/prefix or file:///path; empty = no sync")
    recipients: list[str] = _setting([], "the office's age public keys (age1...): only they "
                                     "can decrypt what the box sends")
    identity: str = _setting("", "the box's SSH key for SFTP; empty = keys/device_ed25519 "
                             "in the data dir (`vigbox keys init` makes it)")
    known_hosts: str = _setting("", "OpenSSH known_hosts with the office's host key; empty = "
                                "keys/known_hosts in the data dir")
    device_id: str = _setting("", "this box's name at the office; empty = one made once "
                              "and kept in the data dir", max_len=64)
    send_recordings: bool = _setting(False, "send whole recordings too, not only clips, "
                                     "stills and review films")
    budget_s: float = _setting(600.0, "one run stops starting new files after this long",
                               min=10, max=6 * 3600)
    bandwidth_kbps: int = _setting(0, "upload cap in kilobytes a second; 0 = none",
                                   min=0, max=1_000_000)
    retry_first_s: float = _setting(60.0, "wait after a network failure, doubled each time",
                                    min=1, max=3600)
    retry_max_s: float = _setting(3600.0, "longest wait between tries", min=10, max=86400)
    # A VIG intervention runs three or four cycles over about three months, and its last
    # shared review may show clips from the first: keep them that long by default.
    keep_days_after_sync: float = _setting(90.0, "local clips, stills and review films are "
                                           "deleted this long after the office copy is "
                                           "verified", min=0, max=3650)
    raw_keep_days: float = _setting(60.0, "recordings of a closed case are deleted after this "
                                    "many days (once anything due is at the office)",
                                    min=1, max=3650)
    part_mb: int = _setting(8, "S3 multipart part size in MiB", min=5, max=512)
    s3_endpoint: str = _setting("", "S3 endpoint URL for non-AWS stores; empty = AWS")
    s3_region: str = _setting("", "S3 region; empty = the SDK's default")
    s3_access_key: str = _setting("", "S3 access key id; empty = the SDK's default chain")
    s3_secret_key_file: str = _setting("", "file holding the S3 secret key (readable by the "
                                       "sync service only)")


@dataclass(frozen=True)
class Config:
    """The whole appliance configuration."""

    data_dir: str = _setting("", "where the catalog and media live; empty = default")
    device_name: str = _setting("", "the box's name, shown on the tablet; empty = host name",
                                max_len=MAX_NAME)
    log_level: str = _setting("info", "log verbosity",
                              choices=("debug", "info", "warning", "error"))
    camera: CameraConfig = field(default_factory=CameraConfig)
    microphone: MicrophoneConfig = field(default_factory=MicrophoneConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    web: WebConfig = field(default_factory=WebConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)

    @property
    def data_path(self) -> Path:
        """The data directory as a path (the default depends on who runs the box)."""
        return Path(self.data_dir).expanduser() if self.data_dir else default_data_dir()

    @property
    def box_name(self) -> str:
        """The name the tablet shows for this box."""
        return self.device_name or gethostname()

    @property
    def socket(self) -> Path:
        """The control socket path."""
        override = Path(self.daemon.socket_path) if self.daemon.socket_path else None
        return Layout(self.data_path, socket_override=override).socket

    def simulated(self) -> Config:
        """The same config with the synthetic camera, microphone and mock GPIO."""
        mic = self.microphone
        if mic.backend != "none":
            mic = dataclasses.replace(mic, backend="synthetic")
        return dataclasses.replace(
            self,
            camera=dataclasses.replace(self.camera, backend="synthetic"),
            microphone=mic,
            gpio=dataclasses.replace(self.gpio, backend="mock"),
        )


def default_data_dir() -> Path:
    """/var/lib/vigbox for the system service; a per-user dir for everyone else."""
    if os.geteuid() == 0:
        return SYSTEM_DATA_DIR
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "vigbox"


def load_config(path: Path | None = None, *, data_dir: str | None = None) -> Config:
    """Load and validate the config; a missing default file means all defaults.

    `path` None means `$VIGBOX_CONFIG` or /etc/vigbox/config.toml. A file named
    explicitly must exist. `data_dir` (from --data-dir / $VIGBOX_DATA_DIR) wins.
    """
    explicit = path is not None or bool(os.environ.get("VIGBOX_CONFIG"))
    if path is None:
        path = Path(os.environ.get("VIGBOX_CONFIG") or DEFAULT_CONFIG_PATH)
    table: dict[str, Any] = {}
    if path.exists():
        try:
            with path.open("rb") as f:
                table = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML ({e}); fix the syntax") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text file in UTF-8, so not a TOML config; "
                              "check the path, or save it as UTF-8 text") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    elif explicit:
        raise ConfigError(f"config file {path} does not exist; check --config / VIGBOX_CONFIG")
    config = parse_config(table, source=str(path))
    override = data_dir or os.environ.get("VIGBOX_DATA_DIR")
    if override:
        config = dataclasses.replace(config, data_dir=override)
    return config


def parse_config(table: dict[str, Any], *, source: str = "config") -> Config:
    """Build a Config from a parsed TOML table, rejecting unknown keys and bad values."""
    config: Config = _build(Config, table, prefix="", source=source)
    _check_relations(config, source)
    return config


def _check_relations(config: Config, source: str) -> None:
    """Settings that are fine alone but not together."""
    g, r = config.gpio, config.recording
    if g.led_pin == g.button_pin:
        raise ConfigError(f"{source}: 'gpio.led_pin' and 'gpio.button_pin' are both "
                          f"{g.led_pin}; the LED and the button need their own pins")
    if g.hold_shutdown_s <= g.hold_stop_s:
        raise ConfigError(f"{source}: 'gpio.hold_shutdown_s' ({g.hold_shutdown_s}) must be "
                          f"longer than 'gpio.hold_stop_s' ({g.hold_stop_s})")
    _check_sync(config.sync, source)
    if r.warn_before_end_s >= r.max_seconds:
        raise ConfigError(f"{source}: 'recording.warn_before_end_s' ({r.warn_before_end_s}) "
                          f"must be less than 'recording.max_seconds' ({r.max_seconds}); "
                          "lower the warning for short recordings")


def apply_overrides(config: Config, overrides: Mapping[str, Any], *,
                    source: str = "settings") -> Config:
    """The config with settings changed on the box (dotted keys, as in the file), each
    checked as the file's are; ConfigError names a bad key or value, or settings that do
    not fit together."""
    for key, value in overrides.items():
        config = _replace_key(config, key.split("."), value, key, source)
    _check_relations(config, source)
    return config


def setting_of(config: Config, key: str) -> tuple[Any, Mapping[str, Any]]:
    """A dotted key's value and its field's description and limits."""
    obj: Any = config
    *tables, name = key.split(".")
    for table in tables:
        obj = getattr(obj, table)
    meta = {f.name: f.metadata for f in dataclasses.fields(obj)}[name]
    return getattr(obj, name), meta


def _replace_key(obj: Any, path: list[str], value: Any, key: str, source: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    head, rest = path[0], path[1:]
    if head not in fields:
        raise ConfigError(f"{source}: unknown key '{key}'")
    kind = typing.get_type_hints(type(obj))[head]
    is_table = isinstance(kind, type) and dataclasses.is_dataclass(kind)
    if is_table != bool(rest):
        raise ConfigError(f"{source}: '{key}' is not a setting")
    new = (_replace_key(getattr(obj, head), rest, value, key, source) if rest
           else _check_value(key, value, kind, fields[head].metadata, source))
    return dataclasses.replace(obj, **{head: new})


AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")
DESTINATION = re.compile(r"(sftp://[^/@\s]+@[^/\s]+/.*|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?"
                         r"|file:///.*)")


def _check_sync(sync: SyncConfig, source: str) -> None:
    if sync.destination and not DESTINATION.fullmatch(sync.destination):
        raise ConfigError(f"{source}: 'sync.destination' must be sftp://user@host[:port]/path, "
                          f"s3://bucket[/prefix] or file:///path (got {sync.destination!r})")
    bad = [r for r in sync.recipients if not AGE_RECIPIENT.fullmatch(r)]
    if bad:
        raise ConfigError(f"{source}: 'sync.recipients' holds {bad[0]!r}, not an age public "
                          "key (age1... as age-keygen prints it)")
    if sync.destination and not sync.recipients:
        raise ConfigError(f"{source}: 'sync.destination' is set but 'sync.recipients' is empty: "
                          "add the office's age public key, or nothing can be sent")
    if sync.retry_max_s < sync.retry_first_s:
        raise ConfigError(f"{source}: 'sync.retry_max_s' must be at least 'sync.retry_first_s'")


def _build(cls: type, table: Any, *, prefix: str, source: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.')}' must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown key '{prefix}{key}' (known here: {known})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in table:
            continue
        kind = hints[name]
        key = prefix + name
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            values[name] = _build(kind, table[name], prefix=key + ".", source=source)
        else:
            values[name] = _check_value(key, table[name], kind, f.metadata, source)
    return cls(**values)


def _check_value(key: str, value: Any, kind: Any, meta: Any, source: str) -> Any:
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{source}: '{key}' {why} (got {value!r})")

    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind == list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
            raise bad("must be a non-empty list of strings")
    elif kind in (int, float, str, bool):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise bad(f"must be {kind.__name__}")
    # TOML allows nan and inf, which pass every range check (comparisons are False).
    if isinstance(value, float) and not math.isfinite(value):
        raise bad("must be a finite number")
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(t, str) and any(ord(c) < 32 for c in t) for t in texts):
        raise bad("must not hold control characters")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise bad("must be one of " + ", ".join(repr(c) for c in choices))
    if meta.get("min") is not None and value < meta["min"]:
        raise bad(f"must be at least {meta['min']}")
    if meta.get("max") is not None and value > meta["max"]:
        raise bad(f"must be at most {meta['max']}")
    if meta.get("max_len") is not None and len(value) > meta["max_len"]:
        raise bad(f"must be at most {meta['max_len']} characters")
    return value


def describe(config: Config) -> dict[str, Any]:
    """The effective config as plain data (for `vigbox config check --json`)."""
    out = dataclasses.asdict(config)
    out["data_dir"] = str(config.data_path)
    out["daemon"]["socket_path"] = str(config.socket)
    return out
