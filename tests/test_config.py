"""Config loading and validation: defaults, rejected keys and values, env, the CLI check."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from appliance import config as config_mod
from appliance.config import (
    Config,
    default_data_dir,
    describe,
    load_config,
    parse_config,
)
from appliance.errors import ConfigError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No VIGBOX_* variables, and the default config path pointing at a file that is absent."""
    monkeypatch.delenv("VIGBOX_CONFIG", raising=False)
    monkeypatch.delenv("VIGBOX_DATA_DIR", raising=False)
    absent = tmp_path / "etc" / "vigbox" / "config.toml"
    monkeypatch.setattr(config_mod, "DEFAULT_CONFIG_PATH", absent)
    return absent


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    """Write a config file and return its path."""
    path = tmp_path / name
    path.write_text(text)
    return path


def rejected(tmp_path: Path, text: str) -> str:
    """Load `text` as a config file; return the ConfigError message it must raise."""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message, "config errors must be one line"
    return message


# -- defaults and files -------------------------------------------------------------------


def test_defaults_when_no_file_anywhere(clean_env: Path) -> None:
    assert not clean_env.exists()
    cfg = load_config()
    assert cfg == Config()
    assert cfg.camera.backend == "picamera2"
    assert cfg.camera.fps == 30
    assert cfg.camera.size == (1280, 720)
    assert cfg.microphone.sample_rate == 48_000
    assert cfg.recording.max_seconds == 600
    assert cfg.daemon.shutdown_command == ["systemctl", "poweroff"]
    assert cfg.data_path == default_data_dir()
    assert cfg.socket == default_data_dir() / "capture.sock"


def test_default_list_is_not_shared_between_instances() -> None:
    a, b = Config(), Config()
    a.daemon.shutdown_command.append("--now")
    assert b.daemon.shutdown_command == ["systemctl", "poweroff"]


def test_explicit_missing_file_is_an_error(clean_env: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "config.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(missing)


def test_missing_file_named_by_env_is_an_error(clean_env: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGBOX_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match="gone.toml"):
        load_config()


def test_env_config_is_honoured(clean_env: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[camera]\nfps = 25\nresolution = "1080p"\n')
    monkeypatch.setenv("VIGBOX_CONFIG", str(path))
    cfg = load_config()
    assert cfg.camera.fps == 25
    assert cfg.camera.size == (1920, 1080)
    assert cfg.microphone == Config().microphone


def test_explicit_path_wins_over_env(clean_env: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGBOX_CONFIG", str(write(tmp_path, "[camera]\nfps = 20\n", "env.toml")))
    cfg = load_config(write(tmp_path, "[camera]\nfps = 50\n", "explicit.toml"))
    assert cfg.camera.fps == 50


def test_data_dir_env_and_argument(clean_env: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, f'data_dir = "{tmp_path / "from-file"}"\n')
    assert load_config(path).data_path == tmp_path / "from-file"
    monkeypatch.setenv("VIGBOX_DATA_DIR", str(tmp_path / "from-env"))
    cfg = load_config(path)
    assert cfg.data_path == tmp_path / "from-env"
    assert cfg.socket == tmp_path / "from-env" / "capture.sock"
    assert load_config(path, data_dir=str(tmp_path / "from-arg")).data_path == \
        tmp_path / "from-arg"


def test_socket_path_setting(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, f'[daemon]\nsocket_path = "{tmp_path / "s.sock"}"\n'))
    assert cfg.socket == tmp_path / "s.sock"


def test_int_accepted_for_float_setting(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[recording]\nfsync_interval_s = 1\n"))
    assert cfg.recording.fsync_interval_s == 1.0
    assert isinstance(cfg.recording.fsync_interval_s, float)


def test_bad_toml_syntax(tmp_path: Path) -> None:
    message = rejected(tmp_path, "[camera\nfps = 30\n")
    assert "not valid TOML" in message
    assert "config.toml" in message


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    directory = tmp_path / "config.d"
    directory.mkdir()
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(directory)


# -- rejected keys and values --------------------------------------------------------------


@pytest.mark.parametrize("text, key", [
    ("[camera]\nfsp = 30\n", "'camera.fsp'"),
    ("colour = 'red'\n", "'colour'"),
    ("[kamera]\nfps = 30\n", "'kamera'"),
    ("[gpio]\nbutton_pin = 17\nled = 3\n", "'gpio.led'"),
])
def test_unknown_key_named_in_full(tmp_path: Path, text: str, key: str) -> None:
    message = rejected(tmp_path, text)
    assert "unknown key" in message
    assert key in message


@pytest.mark.parametrize("text, key, why", [
    ('[camera]\nfps = "30"\n', "camera.fps", "must be int"),
    ("[camera]\nfps = 29.97\n", "camera.fps", "must be int"),
    ("[camera]\nfps = true\n", "camera.fps", "must be int"),
    ("[recording]\nfsync_interval_s = \"1\"\n", "recording.fsync_interval_s", "must be float"),
    ("log_level = 3\n", "log_level", "must be str"),
    ('[daemon]\nshutdown_command = "poweroff"\n', "daemon.shutdown_command", "list of strings"),
    ("[daemon]\nshutdown_command = []\n", "daemon.shutdown_command", "list of strings"),
    ("[daemon]\nshutdown_command = ['halt', 1]\n", "daemon.shutdown_command", "list of strings"),
    ("camera = 3\n", "camera", "must be a table"),
])
def test_wrong_type_names_the_key(tmp_path: Path, text: str, key: str, why: str) -> None:
    message = rejected(tmp_path, text)
    assert f"'{key}'" in message
    assert why in message


@pytest.mark.parametrize("text, key, why", [
    ("[camera]\nfps = 5\n", "camera.fps", "at least 10"),
    ("[camera]\nfps = 61\n", "camera.fps", "at most 60"),
    ("[gpio]\nbutton_pin = 28\n", "gpio.button_pin", "at most 27"),
    ("[recording]\nmax_seconds = 0\n", "recording.max_seconds", "at least 1"),
    ("[recording]\nfsync_interval_s = 5\n", "recording.fsync_interval_s", "at most 2"),
    ("[microphone]\nsynthetic_drift_ppm = -2000\n", "microphone.synthetic_drift_ppm",
     "at least -1000"),
])
def test_out_of_range_names_the_key(tmp_path: Path, text: str, key: str, why: str) -> None:
    message = rejected(tmp_path, text)
    assert f"'{key}'" in message
    assert why in message


@pytest.mark.parametrize("text, key", [
    ('[camera]\nresolution = "4k"\n', "camera.resolution"),
    ('[camera]\nbackend = "webcam"\n', "camera.backend"),
    ("[microphone]\nsample_rate = 22050\n", "microphone.sample_rate"),
    ('log_level = "verbose"\n', "log_level"),
    ('[gpio]\nbackend = "rpigpio"\n', "gpio.backend"),
])
def test_bad_choice_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    message = rejected(tmp_path, text)
    assert f"'{key}'" in message
    assert "must be one of" in message


def test_parse_config_direct() -> None:
    cfg = parse_config({"camera": {"backend": "synthetic"}, "gpio": {"backend": "mock"}})
    assert cfg.camera.backend == "synthetic"
    assert cfg.gpio.backend == "mock"
    with pytest.raises(ConfigError, match="'recording.reserve_mb'"):
        parse_config({"recording": {"reserve_mb": -1}}, source="test")


# -- simulated and describe ----------------------------------------------------------------


def test_simulated_switches_sources_only() -> None:
    real = Config()
    sim = real.simulated()
    assert (sim.camera.backend, sim.microphone.backend, sim.gpio.backend,
            sim.clock.backend) == ("synthetic", "synthetic", "mock", "simulated")
    assert real.camera.backend == "picamera2"  # the original is unchanged
    assert sim.camera.fps == real.camera.fps
    assert sim.recording == real.recording
    assert dataclasses.replace(sim, camera=real.camera, microphone=real.microphone,
                               gpio=real.gpio, clock=real.clock) == real


def test_simulated_keeps_no_microphone() -> None:
    cfg = parse_config({"microphone": {"backend": "none"}})
    assert cfg.simulated().microphone.backend == "none"


def test_describe_resolves_paths(config: Config, data_dir: Path) -> None:
    doc = describe(config)
    assert doc["data_dir"] == str(data_dir)
    assert doc["daemon"]["socket_path"] == str(data_dir / "capture.sock")
    assert doc["camera"]["backend"] == "synthetic"
    assert doc["recording"]["max_seconds"] == 120


# -- the CLI -------------------------------------------------------------------------------


def test_cli_config_check_json(vigbox, config: Config) -> None:
    result = vigbox("config", "check", "--json")
    assert result.returncode == 0, result.stderr
    assert result.json() == describe(config)


def test_cli_config_check_human(vigbox, data_dir: Path) -> None:
    result = vigbox("config", "check")
    assert result.returncode == 0, result.stderr
    assert "config is valid" in result.stdout
    assert str(data_dir) in result.stdout


def test_cli_data_dir_option_overrides(vigbox, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    result = vigbox("--data-dir", str(other), "config", "check", "--json")
    assert result.returncode == 0, result.stderr
    assert result.json()["data_dir"] == str(other)


def test_cli_bad_config_one_line(vigbox, tmp_path: Path) -> None:
    bad = write(tmp_path, "[camera]\nfsp = 30\n", "bad.toml")
    result = vigbox("--config", str(bad), "config", "check")
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "camera.fsp" in lines[0]


def test_cli_bad_config_from_env_one_line(vigbox, cli_env: dict[str, str],
                                          tmp_path: Path) -> None:
    bad = write(tmp_path, "[microphone]\nsample_rate = 22050\n", "bad.toml")
    result = vigbox("config", "check", "--json", env=cli_env | {"VIGBOX_CONFIG": str(bad)})
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "microphone.sample_rate" in lines[0]


def test_cli_missing_config_one_line(vigbox, tmp_path: Path) -> None:
    result = vigbox("--config", str(tmp_path / "absent.toml"), "config", "check")
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "absent.toml" in lines[0]


@pytest.mark.parametrize("text, key", [
    ("[gpio]\nled_pin = 17\n", "gpio.led_pin"),
    ("[gpio]\nhold_stop_s = 2.0\nhold_shutdown_s = 2.0\n", "gpio.hold_shutdown_s"),
    ("[recording]\nmax_seconds = 30\nwarn_before_end_s = 30\n", "recording.warn_before_end_s"),
])
def test_settings_that_conflict_are_refused(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "conflict.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
def test_non_finite_numbers_are_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[camera]\nkeyframe_interval_s = {value}\n")
    with pytest.raises(ConfigError, match="'camera.keyframe_interval_s' must be a finite"):
        load_config(path)


def test_control_characters_in_a_setting_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('data_dir = "/var/lib/vig\\u0000box"\n')
    with pytest.raises(ConfigError, match="'data_dir' must not hold control characters"):
        load_config(path)


def test_a_binary_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="not a text file in UTF-8"):
        load_config(path)


@pytest.mark.parametrize("content", [b"[camera]\nfps = nan\n", b"\xff\xfe\x00binary\x00",
                                     "data_dir = 'caf\u00e9'\n".encode("latin-1")])
def test_cli_bad_file_is_one_line_and_never_invalid_json(vigbox: Any, tmp_path: Path,
                                                         content: bytes) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(content)
    for extra in ((), ("--json",)):
        result = vigbox("--config", str(path), "config", "check", *extra)
        assert result.returncode == 1
        assert result.stdout == "", "no half document"
        assert result.error_line().startswith(f"vigbox: {path}")


@pytest.mark.parametrize(("text", "says"), [
    ('[wifi]\naddress = "10.42.0.0/24"', "network address"),
    ('[wifi]\naddress = "8.8.8.1/24"', "private range"),
    ('[wifi]\nchannel = 36', "not a channel of band 'bg'"),
    ('[wifi]\ncountry = "G1"', "two-letter country code"),
])
def test_the_wifi_section_is_checked_with_the_file(tmp_path: Path, text: str,
                                                   says: str) -> None:
    # `vigbox config check` refuses what `vigbox wifi setup` would, before a visit.
    assert says in rejected(tmp_path, text)
