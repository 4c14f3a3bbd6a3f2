"""The box's clock set from the tablet's: timedatectl's argv as lists and its answers
(a stand-in timedatectl on PATH, never this machine's clock), the tablet's time checked,
nothing changed within the allowed skew, and beyond it a simulated clock moved, audited,
every session ended, and the next recording dated by it, in the capture process too."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from appliance.catalog import Origin, RecordingStatus
from appliance.config import Config
from appliance.errors import ControlError, InputError, SystemToolError
from appliance.services import clock, doctor
from appliance.services.app import App
from appliance.services.clock_backends import (
    POLKIT_ACTIONS,
    TimedatedClock,
    parse_show,
    set_ntp_argv,
    set_time_argv,
    show_argv,
)
from appliance.services.daemon import DaemonClient
from appliance.wall_clock import SimulatedWallClock
from tests.processes import DaemonProcess
from tests.web_support import PASSPHRASE, Tablet, wait_until

ROOT = Path(__file__).resolve().parent.parent
HOUR_MS = 3600 * 1000
DAEMON_TIMEOUT_S = 60

# Answers as systemd-timedated does through timedatectl; keeps every argv it was given.
FAKE_TIMEDATECTL = """#!{python}
import json, sys
path = {state!r}
with open(path) as f:
    state = json.load(f)
state["calls"].append(sys.argv[1:])
args = [a for a in sys.argv[1:] if a != "--no-ask-password"]
code, out, err = 0, "", ""
if args[0] == "show":
    out = "NTP=%s\\nNTPSynchronized=%s\\n" % ("yes" if state["ntp"] else "no",
                                             "yes" if state["synced"] else "no")
elif state["deny"]:
    code, err = 1, "Failed to set time: Access denied"
elif args[0] == "set-ntp":
    state["ntp"] = args[1] == "true"
elif args[0] == "set-time" and (state["ntp"] or state["lingers"] > 0):
    state["lingers"] -= 0 if state["ntp"] else 1
    code, err = 1, "Failed to set time: Automatic time synchronization is enabled"
elif args[0] == "set-time" and state["broken"]:
    code, err = 1, "Failed to set time: Connection timed out"
elif args[0] == "set-time":
    state["set_to"] = args[1]
with open(path, "w") as f:
    json.dump(state, f)
sys.stdout.write(out)
sys.stderr.write(err)
sys.exit(code)
"""


class FakeTimedated:
    """A timedatectl on PATH that answers as timedated would, with the state it keeps."""

    def __init__(self, directory: Path, **state: Any) -> None:
        self.state_path = directory / "timedated.json"
        self.state_path.write_text(json.dumps({"ntp": False, "synced": False, "deny": False,
                                               "lingers": 0, "broken": False, "calls": [],
                                               **state}))
        self.tool = directory / "timedatectl"
        self.tool.write_text(FAKE_TIMEDATECTL.format(python=sys.executable,
                                                     state=str(self.state_path)))
        self.tool.chmod(0o755)

    @property
    def state(self) -> dict[str, Any]:
        """What it was told and what it holds now."""
        return dict(json.loads(self.state_path.read_text()))

    def verbs(self) -> list[str]:
        """The timedatectl commands run, in order (set-ntp with its value)."""
        return [" ".join(a for a in call if a != "--no-ask-password" and ":" not in a)
                for call in self.state["calls"]]


@pytest.fixture
def timedated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make a FakeTimedated first on PATH; checked to be the one found, so this machine's
    clock is never set."""
    made: list[FakeTimedated] = []

    def make(**state: Any) -> FakeTimedated:
        bin_dir = tmp_path / f"bin{len(made)}"
        bin_dir.mkdir()
        fake = FakeTimedated(bin_dir, **state)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        assert shutil.which("timedatectl") == str(fake.tool)
        made.append(fake)
        return fake

    return make


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- timedatectl ---------------------------------------------------------------------------

def test_timedatectl_argv_are_lists() -> None:
    assert show_argv() == ["timedatectl", "show", "--property=NTP", "--property=NTPSynchronized"]
    assert set_ntp_argv(False) == ["timedatectl", "--no-ask-password", "set-ntp", "false"]
    assert set_ntp_argv(True) == ["timedatectl", "--no-ask-password", "set-ntp", "true"]
    when = int(datetime(2026, 12, 7, 9, 5, 3, 42000, tzinfo=UTC).timestamp() * 1000)
    assert set_time_argv(when) == ["timedatectl", "--no-ask-password", "set-time",
                                   "2026-12-07 09:05:03.042 UTC"]
    assert parse_show("NTP=yes\nNTPSynchronized=no\n") == {"NTP": True,
                                                           "NTPSynchronized": False}


def test_without_network_time_the_clock_is_set_at_once(timedated: Any) -> None:
    fake = timedated(ntp=False)
    asked = now_ms() + 5 * HOUR_MS
    done = TimedatedClock().set(lambda: asked)
    assert fake.verbs() == ["show --property=NTP --property=NTPSynchronized", "set-time"]
    assert fake.state["set_to"] == set_time_argv(asked)[-1]
    assert done == {"ntp": "off"}


def test_unsynchronised_network_time_is_paused_and_always_turned_on_again(
        timedated: Any) -> None:
    # timedated may still say NTP is on just after set-ntp false (systemd #11420).
    fake = timedated(ntp=True, synced=False, lingers=2)
    done = TimedatedClock().set(lambda: now_ms() + HOUR_MS)
    assert fake.verbs()[1:] == ["set-ntp false", "set-time", "set-time", "set-time",
                                "set-ntp true"]
    assert fake.state["ntp"] is True and "set_to" in fake.state
    assert "on again" in done["ntp"]

    broken = timedated(ntp=True, synced=False, broken=True)
    with pytest.raises(SystemToolError, match="Connection timed out"):
        TimedatedClock().set(lambda: now_ms() + HOUR_MS)
    assert broken.verbs()[-1] == "set-ntp true" and broken.state["ntp"] is True


def test_synchronised_network_time_is_not_overruled_by_a_tablet(timedated: Any) -> None:
    fake = timedated(ntp=True, synced=True)
    with pytest.raises(InputError, match="check this tablet's date and time"):
        TimedatedClock().set(lambda: now_ms() + HOUR_MS)
    assert fake.verbs() == ["show --property=NTP --property=NTPSynchronized"]


def test_a_box_without_the_polkit_rule_says_what_to_install(timedated: Any) -> None:
    timedated(deny=True)
    with pytest.raises(SystemToolError, match="Access denied.*51-vigbox-clock.rules"):
        TimedatedClock().set(lambda: now_ms() + HOUR_MS)


def test_the_polkit_rule_lets_the_service_user_set_time_and_nothing_else() -> None:
    rule = (ROOT / "systemd" / "51-vigbox-clock.rules").read_text()
    assert 'subject.user == "vigbox"' in rule
    named = sorted(set(part.split('"')[0] for part in rule.split('action.id == "')[1:]))
    assert named == sorted(POLKIT_ACTIONS)


def test_set_clock_through_timedated(app: App, timedated: Any) -> None:
    fake = timedated(ntp=False)
    real = App(clock_config(app.config, "timedated"), app.catalog)
    done = clock.set_clock(real, now_ms() - 2 * HOUR_MS, actor="guider1")
    assert done.changed and fake.state["set_to"].endswith(" UTC")
    entry = app.catalog.audit.entries()[-1]
    assert (entry.action, entry.actor) == ("clock.set", "guider1")
    assert entry.detail["backend"] == "timedated" and entry.detail["ntp"] == "off"


# -- the tablet's time and the simulated clock ------------------------------------------

@pytest.mark.parametrize("sent, words", [
    (None, "whole number of milliseconds"), ("2026-12-07", "whole number"),
    (1.7e12, "whole number"), (True, "whole number"),
    (0, "01 Jan 1970 00:00 UTC, which cannot be right"),
    (int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000), "01 Mar 2025"),
    (int(datetime(2101, 1, 1, tzinfo=UTC).timestamp() * 1000), "01 Jan 2101"),
    (10**20, "ms since 1970, which cannot be right"),
])
def test_implausible_tablet_times_are_refused(sent: object, words: str) -> None:
    with pytest.raises(InputError, match=words):
        clock.check_tablet_time(sent)


def test_within_the_allowed_skew_nothing_changes(app: App, admin: Tablet) -> None:
    before = len(app.catalog.audit.entries())
    done = clock.set_clock(app, now_ms() - 30_000, actor="admin")
    assert not done.changed and done.sessions_ended == 0
    assert 29 < done.skew_s < 31
    assert not app.layout.clock_offset.exists()
    assert len(app.catalog.audit.entries()) == before
    assert admin.get("/api/clock").status_code == 200, "the session goes on"


def test_beyond_it_the_box_takes_the_tablets_time_audited_and_sessions_end(
        app: App, flask_app: Flask, admin: Tablet) -> None:
    app.catalog.accounts.set_passphrase("guider1", PASSPHRASE, admin=False, actor="test")
    guider = Tablet(flask_app.test_client())
    assert guider.log_in("guider1").status_code == 302
    shown = guider.get("/api/clock").get_json()
    assert shown["backend"] == "simulated" and shown["max_skew_s"] == 60
    assert abs(shown["box_epoch_ms"] - now_ms()) < 5000

    tablet_ms = now_ms() + 3 * HOUR_MS
    answer = guider.post("/api/clock", {"tablet_epoch_ms": tablet_ms})
    assert answer.status_code == 200, answer.get_data(True)
    done = answer.get_json()
    assert done["changed"] is True and done["sessions_ended"] == 2
    assert abs(done["skew_s"]) < 2 and -3 * 3600 - 2 < done["skew_before_s"] < -3 * 3600 + 2
    assert abs(clock.status(app).box_epoch_ms - (now_ms() + 3 * HOUR_MS)) < 2000
    assert abs(SimulatedWallClock(app.layout.clock_offset).offset_ms() - 3 * HOUR_MS) < 2000

    entry = app.catalog.audit.entries()[-1]
    assert (entry.action, entry.actor) == ("clock.set", "guider1")
    assert entry.detail["backend"] == "simulated"
    assert entry.detail["system_clock"] == "not changed"
    assert entry.detail["asked_time"] == clock.iso(tablet_ms)
    text = json.dumps(entry.detail)
    for secret in (PASSPHRASE, guider.token, admin.token,
                   *(c.value for c in guider.client._cookies.values())):
        assert secret not in text

    for tablet in (guider, admin):   # the old cookies are worth nothing now
        again = tablet.get("/api/clock")
        assert again.status_code == 401 and again.get_json()["error"] == "log in first"
    assert guider.log_in("guider1").status_code == 302
    assert guider.post("/api/clock", {"tablet_epoch_ms": now_ms() + 3 * HOUR_MS}) \
        .get_json()["changed"] is False


def test_the_api_refuses_bad_bodies_clearly(admin: Tablet) -> None:
    for body, words in [({}, "'tablet_epoch_ms' is required"),
                        ({"tablet_epoch_ms": "now"}, "'tablet_epoch_ms' must be a whole number"),
                        ({"tablet_epoch_ms": 1.5e12}, "must be a whole number"),
                        ({"tablet_epoch_ms": 0}, "cannot be right"),
                        ({"tablet_epoch_ms": now_ms(), "tz": "CET"}, "unknown field 'tz'"),
                        ([now_ms()], "must be a JSON object")]:
        answer = admin.post("/api/clock", body)
        assert answer.status_code == 400, (body, answer.get_data(True))
        assert words in answer.get_json()["error"]
    plain = admin.post("/api/clock", data="tablet_epoch_ms=1", content_type="text/plain")
    assert plain.status_code == 400 and "application/json" in plain.get_json()["error"]


def test_the_api_needs_a_login_and_the_csrf_token(flask_app: Flask, admin: Tablet) -> None:
    stranger = flask_app.test_client()
    assert stranger.get("/api/clock").status_code == 401
    assert stranger.post("/api/clock", json={"tablet_epoch_ms": now_ms()}).status_code == 401
    forged = admin.client.post("/api/clock", json={"tablet_epoch_ms": now_ms() + HOUR_MS})
    assert forged.status_code == 403 and "out of date" in forged.get_json()["error"]
    assert admin.get("/api/clock").status_code == 200, "a refused call ends nothing"


def test_a_recording_after_the_set_carries_the_new_date(
        app: App, admin: Tablet, cli_env: dict[str, str], config: Config) -> None:
    ahead = now_ms() + 400 * 24 * HOUR_MS   # another day, another year: the date shows it
    assert admin.post("/api/clock", {"tablet_epoch_ms": ahead}).get_json()["changed"]
    daemon = DaemonClient(config.socket)
    with DaemonProcess(cli_env) as process:
        wait_until(lambda: _ready(daemon, process), "the capture daemon", DAEMON_TIMEOUT_S)
        started = daemon.start()["recording"]
        wait_until(lambda: daemon.status()["recording"]["frames"] > 20, "frames")
        stopped = daemon.stop()["recording"]
    expected = datetime.now(UTC) + timedelta(days=400)
    when = datetime.fromisoformat(stopped["started_at"])
    assert abs((when - expected).total_seconds()) < 30, (when, expected)
    assert stopped["id"] == started["id"] and stopped["id"].startswith(f"{when:%Y%m%d-}")
    assert stopped["status"] == RecordingStatus.READY
    # Frames and sound keep CLOCK_MONOTONIC: the film is as long as it was filmed.
    assert 0.5 < stopped["duration_s"] < 10
    listed = app.catalog.recordings.get(stopped["id"])
    assert listed.started_at == stopped["started_at"]


def test_vigbox_clock_shows_and_sets_audited_by_the_unix_user(vigbox: Any, app: App) -> None:
    shown = vigbox("clock", "--json")
    assert shown.returncode == 0, shown.stderr
    assert shown.json()["backend"] == "simulated"
    target = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    berlin = target.astimezone(ZoneInfo("Europe/Berlin")).isoformat()
    done = vigbox("clock", "set", "--to", berlin, "--json")
    assert done.returncode == 0, done.stderr
    assert abs(done.json()["box_epoch_ms"] - target.timestamp() * 1000) < 5000
    entry = app.catalog.audit.entries()[-1]
    assert entry.action == "clock.set" and entry.actor.startswith("cli:") and \
        len(entry.actor) > len("cli:")
    assert entry.detail["asked_time"] == clock.iso(int(target.timestamp() * 1000))
    human = vigbox("clock")
    assert f"{target:%Y-%m-%d}" in human.stdout and "simulated" in human.stdout
    naive = vigbox("clock", "set", "--to", "2027-01-02T03:04:05")
    assert naive.returncode == 1 and "has no time zone" in naive.error_line()


def test_doctor_reads_the_clock_recordings_are_dated_by(app: App) -> None:
    def clock_check() -> doctor.Check:
        return {c.name: c for c in doctor.run_checks(app, reach_office=False)}["clock"]

    assert clock_check().status == "ok" and "(simulated)" in clock_check().detail
    app.catalog.recordings.create("20261206-100000-abcd", case=None, origin=Origin.IMPORT,
                                  started_at=clock.iso(now_ms()), actor="test")
    clock.set_clock(app, now_ms() - 2 * 24 * HOUR_MS, actor="test")
    behind = clock_check()
    assert behind.status == "fail" and "behind the last recording" in behind.detail
    # A Pi that booted with a date from before this software (no tablet can set that).
    SimulatedWallClock(app.layout.clock_offset).set_offset_ms(
        int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1000) - now_ms())
    assert clock_check().detail == "the box thinks it is 2025-06-01"
    clock.set_clock(app, now_ms(), actor="test")
    assert clock_check().status == "ok"


# -- helpers -------------------------------------------------------------------------------

def clock_config(config: Config, backend: str) -> Config:
    """The config with another [clock] backend."""
    return dataclasses.replace(config, clock=dataclasses.replace(config.clock, backend=backend))


def _ready(daemon: DaemonClient, process: DaemonProcess) -> bool:
    assert process.proc.poll() is None, "the capture daemon died"
    try:
        return daemon.status().get("state") == "ready"
    except ControlError:
        return False
