"""Settings changed on the box: checked like the config file, kept in the catalog, audited,
and used by what records (the length limit counts from the next recording)."""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest

from appliance.catalog import Catalog
from appliance.config import Config, apply_overrides, parse_config, setting_of
from appliance.errors import ConfigError, InputError
from appliance.services import settings as settings_service
from appliance.services.app import App
from appliance.services.daemon import DaemonClient
from tests.web_support import running_daemon, wait_until


def test_overrides_are_checked_like_the_file() -> None:
    base = parse_config({})
    changed = apply_overrides(base, {"recording.max_seconds": 300, "device_name": "Kestrel",
                                     "web.downloads_allowed": True})
    assert changed.recording.max_seconds == 300 and changed.box_name == "Kestrel"
    assert changed.web.downloads_allowed and not base.web.downloads_allowed
    assert setting_of(changed, "recording.max_seconds")[0] == 300
    assert setting_of(changed, "recording.max_seconds")[1]["min"] == 1
    for overrides, words in [
        ({"recording.max_seconds": "300"}, "must be int"),
        ({"recording.max_seconds": 0}, "at least 1"),
        ({"recording.max_seconds": 30.5}, "must be int"),
        ({"web.downloads_allowed": 1}, "must be bool"),
        ({"device_name": "x" * 41}, "at most 40 characters"),
        ({"device_name": "a\nb"}, "control characters"),
        ({"recording": 5}, "not a setting"),
        ({"recording.nothing": 5}, "unknown key"),
        ({"recording.max_seconds": 60}, "warn_before_end_s"),  # the LED warns 60 s before
    ]:
        with pytest.raises(ConfigError, match=words):
            apply_overrides(base, overrides)


def test_a_change_is_stored_audited_and_undone(app: App) -> None:
    described = settings_service.describe(app)["settings"]
    assert described["web.downloads_allowed"] == {
        "value": False, "file_value": False, "changed_on_box": False,
        "help": described["web.downloads_allowed"]["help"], "min": None, "max": None,
        "max_len": None}
    after = settings_service.change(app, {"recording.max_seconds": 300,
                                          "device_name": "Kestrel"}, actor="admin")
    assert after["box_name"] == "Kestrel"
    assert after["settings"]["recording.max_seconds"]["value"] == 300
    assert after["settings"]["recording.max_seconds"]["file_value"] == \
        app.config.recording.max_seconds
    assert after["settings"]["recording.max_seconds"]["changed_on_box"]
    # Another process (the capture daemon) sees it in the catalog.
    with Catalog(app.layout) as other:
        assert other.settings.effective(app.config).recording.max_seconds == 300
    [entry] = [e for e in app.catalog.audit.entries() if e.action == "settings.change"]
    assert entry.actor == "admin"
    assert entry.detail == {"set": {"recording.max_seconds": 300, "device_name": "Kestrel"}}
    back = settings_service.change(app, {"device_name": None}, actor="admin")
    assert back["box_name"] == app.config.box_name
    assert not back["settings"]["device_name"]["changed_on_box"]
    assert app.catalog.settings.overrides() == {"recording.max_seconds": 300}


@pytest.mark.parametrize("changes, words", [
    ({"camera.fps": 25}, "cannot be changed here"),
    ({"data_dir": "/tmp"}, "cannot be changed here"),
    ({"recording.max_seconds": -5}, "at least 1"),
    ({"recording.max_seconds": 600, "recording.warn_before_end_s": 600}, "must be less"),
    ({"web.downloads_allowed": "yes"}, "must be bool"),
])
def test_a_bad_change_changes_nothing(app: App, changes: dict[str, object],
                                      words: str) -> None:
    settings_service.change(app, {"device_name": "Kestrel"}, actor="admin")
    before = (app.catalog.settings.overrides(), len(app.catalog.audit.entries()))
    with pytest.raises(InputError, match=words):
        settings_service.change(app, changes, actor="admin")
    assert (app.catalog.settings.overrides(), len(app.catalog.audit.entries())) == before


def test_a_setting_the_file_no_longer_fits_is_skipped(app: App,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    settings_service.change(app, {"recording.max_seconds": 120, "device_name": "Kestrel"},
                            actor="admin")
    # The administrator later raises the LED warning in the file past the box's limit:
    # recording must still work, with the file's own limit.
    config = dataclasses.replace(app.config, recording=dataclasses.replace(
        app.config.recording, max_seconds=600, warn_before_end_s=300))
    with caplog.at_level(logging.WARNING):
        effective = app.catalog.settings.effective(config)
    assert effective.recording.max_seconds == 600 and effective.box_name == "Kestrel"
    assert "recording.max_seconds" in caplog.text


@pytest.mark.slow
def test_the_recorder_uses_the_limit_set_on_the_box(config: Config, app: App) -> None:
    settings_service.change(app, {"recording.max_seconds": 2,
                                  "recording.warn_before_end_s": 1}, actor="admin")
    client = DaemonClient(config.socket)
    with running_daemon(config):
        wait_until(lambda: client.status()["state"] == "ready", "the box to be ready")
        started = time.monotonic()
        rec_id = client.start(None, actor="admin")["recording"]["id"]
        wait_until(lambda: app.catalog.recordings.get(rec_id).status == "ready",
                   "the recording to stop by itself", timeout=30)
        assert time.monotonic() - started < 15
    rec = app.catalog.recordings.get(rec_id)
    assert rec.duration_s == pytest.approx(2.0, abs=0.3)
