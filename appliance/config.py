"""Configuration: a TOML file, validated at load, with defaults for every setting.

Unknown keys and bad values are rejected with the key's full name, so an
administrator can fix the file without reading code.
"""

from __future__ import annotations

import dataclasses
import errno
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

from appliance import wifi
from appliance.config_sections import (
    MAX_NAME,
    CameraConfig,
    ClockConfig,
    DaemonConfig,
    EncodeConfig,
    GpioConfig,
    MicrophoneConfig,
    RecordingConfig,
    SyncConfig,
    WebConfig,
    WifiConfig,
    _setting,
)
from appliance.errors import ConfigError
from appliance.layout import Layout

__all__ = ["CameraConfig", "ClockConfig", "Config", "DaemonConfig", "EncodeConfig",
           "GpioConfig", "MicrophoneConfig", "RecordingConfig", "SyncConfig", "WebConfig",
           "WifiConfig", "apply_overrides", "default_data_dir", "describe", "load_config",
           "parse_config", "setting_of"]

DEFAULT_CONFIG_PATH = Path("/etc/vigbox/config.toml")
SYSTEM_DATA_DIR = Path("/var/lib/vigbox")


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
    wifi: WifiConfig = field(default_factory=WifiConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)

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
        """The same config with the synthetic camera, microphone, mock GPIO and a
        simulated clock setter."""
        mic = self.microphone
        if mic.backend != "none":
            mic = dataclasses.replace(mic, backend="synthetic")
        return dataclasses.replace(
            self,
            camera=dataclasses.replace(self.camera, backend="synthetic"),
            microphone=mic,
            gpio=dataclasses.replace(self.gpio, backend="mock"),
            clock=dataclasses.replace(self.clock, backend="simulated"),
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
            hint = (": run the command with sudo (the box's config is readable by root and "
                    "the vigbox group only)" if e.errno == errno.EACCES else "")
            raise ConfigError(f"{path}: cannot read ({e.strerror}){hint}") from None
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
    _check_wifi(config, source)
    if r.warn_before_end_s >= r.max_seconds:
        raise ConfigError(f"{source}: 'recording.warn_before_end_s' ({r.warn_before_end_s}) "
                          f"must be less than 'recording.max_seconds' ({r.max_seconds}); "
                          "lower the warning for short recordings")


def _check_wifi(config: Config, source: str) -> None:
    """[wifi] as `vigbox wifi setup` will use it, so `config check` refuses it first."""
    try:
        wifi.network_for(config.wifi, config.box_name, config.web.port)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


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
