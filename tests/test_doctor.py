"""`vigbox doctor`: one line per part of the box, OK / WARN / FAIL with what to do; exit 1
when anything fails."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pyrage import x25519

from appliance.catalog import Origin
from appliance.config import Config
from appliance.services import doctor
from appliance.services.app import App
from tests.sync_servers import openssh_server
from tests.web_support import running_daemon


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_a_simulated_box_is_told_apart(vigbox: Any) -> None:
    done = vigbox("doctor", "--json")
    assert done.returncode == 0, done.stderr
    found = {c["name"]: c for c in done.json()}
    assert [found[n]["status"] for n in ("config", "ffmpeg", "disk", "clock")] == ["ok"] * 4
    for name in ("camera", "microphone", "button and light"):
        assert found[name]["status"] == "warn" and "simulated" in found[name]["detail"]
        assert found[name]["advice"]
    assert found["recorder"]["status"] == "warn" and "systemctl" in found["recorder"]["advice"]
    assert found["office"]["status"] == "warn"
    people = vigbox("doctor").stdout
    assert "WARN  camera" in people and "→ set camera.backend" in people


def test_a_clock_behind_the_last_recording_fails(app: App, vigbox: Any) -> None:
    app.catalog.recordings.create("20991231-000000-abcd", case=None,
                                  started_at="2099-12-31T00:00:00.000+00:00",
                                  origin=Origin.IMPORT, actor="test")
    done = vigbox("doctor", "--offline", "--json")
    assert done.returncode == 1
    clock = {c["name"]: c for c in done.json()}["clock"]
    assert clock["status"] == "fail" and "behind the last recording" in clock["detail"]
    assert "tablet" in clock["advice"]


def test_the_recorder_when_it_runs(app: App, config: Config) -> None:
    with running_daemon(config):
        checks = by_name(doctor.run_checks(app, reach_office=False))
    assert checks["recorder"].status == "ok" and "synthetic" in checks["recorder"].detail
    assert "office" not in checks


def test_the_office_as_the_box_sees_it(app: App, tmp_path: Path) -> None:
    recipient = str(x25519.Identity.generate().to_public())

    def office(**sync: Any) -> doctor.Check:
        config = dataclasses.replace(app.config, sync=dataclasses.replace(
            app.config.sync, recipients=[recipient], **sync))
        return by_name(doctor.run_checks(App(config, app.catalog)))["office"]

    away = office(destination=f"file://{tmp_path / 'not-mounted'}")
    assert away.status == "warn" and "not reachable" in away.detail
    with openssh_server(tmp_path) as server:
        sftp = {"destination": f"sftp://{server.user}@127.0.0.1:{server.port}{server.office}",
                "identity": str(server.client_key)}
        good = office(known_hosts=str(server.known_hosts_for(server.port)), **sftp)
        assert good.status == "ok" and "host key pinned and matching" in good.detail
        wrong = office(known_hosts=str(server.wrong_known_hosts()), **sftp)
        assert wrong.status == "fail" and "does not match" in wrong.detail
        assert "office-host --pin" in wrong.advice
        assert list(server.office.iterdir()) == [], "the doctor sends nothing"
