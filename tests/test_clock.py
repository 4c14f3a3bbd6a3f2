"""The box's clock set from the tablet's: timedatectl's argv as lists and its answers
(a stand-in timedatectl on PATH, never this machine's clock), the tablet's time checked,
nothing changed within the allowed skew, and beyond it a simulated clock moved, audited,
every session ended, and the next recording dated by it, in the capture process too."""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
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
from appliance.cli.common import shell_actor
from appliance.config import Config
from appliance.errors import CatalogError, ControlError, InputError, SystemToolError
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
elif args[0] == "set-ntp" and args[1] == "true" and state["ntp_on_fails"]:
    code, err = 1, "Failed to set ntp: Connection timed out"
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
                                               "lingers": 0, "broken": False, "ntp_on_fails": False,
                                               "calls": [],
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


def test_network_time_that_will_not_come_back_on_is_told_not_raised(
        timedated: Any) -> None:
    fake = timedated(ntp=True, synced=False, ntp_on_fails=True)
    done = TimedatedClock().set(lambda: now_ms() + HOUR_MS)
    assert "set_to" in fake.state, "the clock was set"
    assert fake.verbs()[-1] == "set-ntp true" and fake.state["ntp"] is False
    assert done["ntp"] == "paused while setting, NOT on again"
    assert "Connection timed out" in done["warning"] and "set-ntp true" in done["warning"]

    # The clock not set and network time not back either: both are told, as one error.
    both = timedated(ntp=True, synced=False, ntp_on_fails=True, broken=True)
    with pytest.raises(SystemToolError, match="setting the clock failed.*Connection timed "
                       "out; also, network time could not be turned on again"):
        TimedatedClock().set(lambda: now_ms() + HOUR_MS)
    assert "set_to" not in both.state


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
    done = clock.set_clock(real, now_ms() - 2 * HOUR_MS, actor="guider1", admin=False)
    assert done.changed and fake.state["set_to"].endswith(" UTC") and done.warning is None
    entry = app.catalog.audit.entries()[-1]
    assert (entry.action, entry.actor) == ("clock.set", "guider1")
    assert entry.detail["backend"] == "timedated" and entry.detail["ntp"] == "off"


def test_a_set_whose_network_time_stays_off_is_still_audited_and_ends_sessions(
        app: App, timedated: Any, admin: Tablet) -> None:
    timedated(ntp=True, synced=False, ntp_on_fails=True)
    real = App(clock_config(app.config, "timedated"), app.catalog)
    done = clock.set_clock(real, now_ms() - 2 * HOUR_MS, actor="admin", admin=True)
    assert done.changed and done.sessions_ended == 1
    assert done.warning is not None and "set-ntp true" in done.warning
    assert done.to_json()["warning"] == done.warning
    entry = app.catalog.audit.entries()[-1]
    assert entry.action == "clock.set" and entry.detail["warning"] == done.warning
    assert admin.get("/api/clock").status_code == 401


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
    done = clock.set_clock(app, now_ms() - 30_000, actor="admin", admin=True)
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


def test_a_guider_may_put_the_clock_back_a_day_and_no_more_but_forward_freely(
        app: App, flask_app: Flask, admin: Tablet) -> None:
    app.catalog.accounts.set_passphrase("guider1", PASSPHRASE, admin=False, actor="test")
    guider = Tablet(flask_app.test_client())
    assert guider.log_in("guider1").status_code == 302
    before = len(app.catalog.audit.entries())
    for days in (-30, -2.5):   # the tablet's time against the box's: the box ahead
        answer = guider.post("/api/clock", {"tablet_epoch_ms": now_ms() + round(
            days * 24 * HOUR_MS)})
        assert answer.status_code == 403, (days, answer.get_data(True))
        assert answer.get_json()["error"] == (
            f"the box's clock is {abs(days):g} days ahead of this tablet: an administrator "
            "must set it back (log in as one)")
    assert not app.layout.clock_offset.exists(), "the clock did not move"
    assert len(app.catalog.audit.entries()) == before, "nothing was done, nothing audited"
    assert guider.get("/api/clock").status_code == 200, "a refusal ends no session"
    assert admin.get("/api/clock").status_code == 200

    almost_a_day = now_ms() - 23 * HOUR_MS
    assert guider.post("/api/clock", {"tablet_epoch_ms": almost_a_day}).status_code == 200
    assert abs(clock.status(app).box_epoch_ms - almost_a_day) < 5000
    # Forward by any amount: a box switched off for weeks boots that far behind.
    assert guider.log_in("guider1").status_code == 302   # the set ended every session
    weeks_on = now_ms() + 30 * 24 * HOUR_MS
    assert guider.post("/api/clock", {"tablet_epoch_ms": weeks_on}).status_code == 200
    assert abs(clock.status(app).box_epoch_ms - weeks_on) < 5000
    # An administrator may move it by years (back to the true time, here).
    assert admin.log_in().status_code == 302
    assert admin.post("/api/clock", {"tablet_epoch_ms": now_ms() + 400 * 24 * HOUR_MS}) \
        .get_json()["changed"] is True
    assert admin.log_in().status_code == 302
    assert admin.post("/api/clock", {"tablet_epoch_ms": now_ms()}).status_code == 200
    assert [e.actor for e in app.catalog.audit.entries(action="clock.set")] == \
        ["guider1", "guider1", "admin", "admin"]


def test_every_session_ends_in_the_transaction_that_audits_the_set(
        app: App, admin: Tablet, monkeypatch: pytest.MonkeyPatch) -> None:
    app.catalog.sessions.start("removed-since")   # an account removed, its session left
    with app.catalog.db.read() as db:
        assert db.execute("SELECT COUNT(*) FROM web_sessions").fetchone()[0] == 2

    def broken(*args: Any, **kwargs: Any) -> None:
        raise CatalogError("the disk is full")

    # Fault injection: the audit row cannot be written, so no session may end either.
    with monkeypatch.context() as patch:
        patch.setattr(app.catalog.audit, "append_in", broken)
        with pytest.raises(CatalogError, match="the disk is full"):
            clock.set_clock(app, now_ms() + 2 * HOUR_MS, actor="admin", admin=True)
    assert admin.get("/api/clock").status_code == 200, "rolled back with the audit row"

    done = clock.set_clock(app, now_ms() + 4 * HOUR_MS, actor="admin", admin=True)
    assert done.changed and done.sessions_ended == 2
    with app.catalog.db.read() as db:
        assert db.execute("SELECT COUNT(*) FROM web_sessions").fetchone()[0] == 0
    assert app.catalog.audit.entries()[-1].detail["sessions_ended"] == 2


def test_an_unnamed_actor_is_refused_before_the_clock_moves(app: App) -> None:
    with pytest.raises(CatalogError, match="the name of who acted"):
        clock.set_clock(app, now_ms() + 2 * HOUR_MS, actor=" ", admin=True)
    assert not app.layout.clock_offset.exists()


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


def test_vigbox_clock_shows_and_sets_audited_by_the_unix_user(
        vigbox: Any, app: App, cli_env: dict[str, str]) -> None:
    shown = vigbox("clock", "--json")
    assert shown.returncode == 0, shown.stderr
    assert shown.json()["backend"] == "simulated"
    # The shell may move it by any amount (here two days, more than a guider may).
    target = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    berlin = target.astimezone(ZoneInfo("Europe/Berlin")).isoformat()
    done = vigbox("clock", "set", "--to", berlin, "--json", env=cli_env | {"SUDO_USER": "alice"})
    assert done.returncode == 0, done.stderr
    assert abs(done.json()["box_epoch_ms"] - target.timestamp() * 1000) < 5000
    assert done.json()["warning"] is None and done.stderr == ""
    entry = app.catalog.audit.entries()[-1]
    assert (entry.action, entry.actor) == ("clock.set", "cli:alice")
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
    clock.set_clock(app, now_ms() - 2 * 24 * HOUR_MS, actor="test", admin=True)
    behind = clock_check()
    assert behind.status == "fail" and "behind the last recording" in behind.detail
    # A Pi that booted with a date from before this software (no tablet can set that).
    SimulatedWallClock(app.layout.clock_offset).set_offset_ms(
        int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1000) - now_ms())
    assert clock_check().detail == "the box thinks it is 2025-06-01"
    clock.set_clock(app, now_ms(), actor="test", admin=True)
    assert clock_check().status == "ok"


def test_the_shells_actor_is_cli_and_who_ran_sudo_else_the_user(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "alice")
    assert shell_actor() == "cli:alice"
    monkeypatch.delenv("SUDO_USER")
    try:
        expected = os.getlogin()
    except OSError:
        expected = pwd.getpwuid(os.getuid()).pw_name
    assert shell_actor() == f"cli:{expected}"
    monkeypatch.setenv("SUDO_USER", "x" * 100)
    assert len(shell_actor()) == 64, "as long as an audit entry's actor may be"


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
