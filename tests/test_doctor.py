"""`vigbox doctor`: one line per part of the box, OK / WARN / FAIL with what to do; exit 1
when anything fails."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from pyrage import x25519

from appliance.capture.mic_synthetic import SyntheticMicrophone
from appliance.capture.sync_marker import SyncMarker
from appliance.catalog import Origin
from appliance.config import Config
from appliance.services import doctor, keys
from appliance.services.app import App
from appliance.services.daemon import DaemonClient
from appliance.sync.dest_sftp import key_files
from tests.sync_servers import make_ssh_key, openssh_server, public_key_line
from tests.web_support import running_daemon, wait_until

OFFICE = "sftp://vigbox@office.example.org:2222/upload"


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def with_sync(app: App, **sync: Any) -> App:
    """The same box with other sync.* settings (unchecked, as a bad setting could be)."""
    config = dataclasses.replace(app.config, sync=dataclasses.replace(app.config.sync, **sync))
    return App(config, app.catalog)


def keys_line(app: App, **sync: Any) -> doctor.Check:
    box = with_sync(app, **sync)
    # Without a microphone: listening to one takes a second, and is not what these check.
    quiet = dataclasses.replace(box.config, microphone=dataclasses.replace(
        box.config.microphone, backend="none"))
    return by_name(doctor.run_checks(App(quiet, app.catalog), reach_office=False))["keys"]


def age_key() -> str:
    return str(x25519.Identity.generate().to_public())


def ssh_fingerprint(key: Path) -> str:
    """The SHA256 fingerprint OpenSSH gives the key."""
    listed = subprocess.run(["ssh-keygen", "-lf", str(key)], capture_output=True, text=True,
                            check=True, timeout=30).stdout
    return listed.split()[1]


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
    assert "simulated microphone" in found["microphone"]["detail"]
    assert " dBFS, RMS " in found["microphone"]["detail"], "its level was measured"
    assert found["keys"]["status"] == "warn" and "no office" in found["keys"]["detail"]
    names = [c["name"] for c in done.json()]
    assert names.index("keys") == names.index("office") - 1
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
    recipient = age_key()

    def office(**sync: Any) -> doctor.Check:
        checks = by_name(doctor.run_checks(with_sync(app, recipients=[recipient], **sync)))
        if sync["destination"].startswith("sftp://"):
            # The keys line reads files only: a pinned key is there, matching or not.
            assert checks["keys"].status == "ok", checks["keys"]
            assert f"pinned for [127.0.0.1]:{server.port}" in checks["keys"].detail
        return checks["office"]

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


def test_the_microphone_is_not_taken_from_a_recording(app: App, config: Config) -> None:
    with running_daemon(config):
        box = DaemonClient(config.socket)
        wait_until(lambda: box.status()["state"] == "ready", "the box to be ready")
        box.start()
        try:
            wait_until(lambda: box.status()["state"] == "recording", "the recording")
            mic = by_name(doctor.run_checks(app, reach_office=False))["microphone"]
        finally:
            box.stop()
    assert mic.status == "warn", "the simulated microphone is still only simulated"
    assert mic.detail.endswith("in use by the recording: level not measured")


def test_a_running_recorder_measures_the_microphone_for_the_doctor(
        app: App, config: Config, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The recorder owns the microphone (a USB one is exclusive): the doctor asks it for the
    level and never opens the microphone itself while it runs."""
    def opened_here(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the doctor opened the microphone beside the recorder")
    monkeypatch.setattr(doctor, "make_microphone", opened_here)
    monkeypatch.setattr(doctor, "listen", opened_here)
    caplog.set_level(logging.INFO, logger="appliance.capture.daemon_level")
    with running_daemon(config):
        box = DaemonClient(config.socket)
        wait_until(lambda: box.status()["state"] == "ready", "the box to be ready")
        mic = by_name(doctor.run_checks(app, reach_office=False))["microphone"]
        assert box.status()["state"] == "ready"
    [heard] = [r.getMessage() for r in caplog.records if r.name.endswith("daemon_level")]
    measured = re.fullmatch(r"microphone level: (peak \S+ dBFS), (RMS \S+ dBFS) over 1 s",
                            heard)
    assert measured, heard
    assert mic.status == "warn", "the simulated microphone is still only simulated"
    assert mic.detail == (f"the simulated microphone (a test tone); {measured[1]}, "
                          f"{measured[2]}"), "the level the recorder measured"


def test_a_microphone_that_fails_while_the_doctor_listens_fails_the_line(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(config: Config, marker: SyncMarker) -> SyntheticMicrophone:
        return SyntheticMicrophone(sample_rate=48_000, block_ms=20, marker=marker,
                                   fail_after_s=0.1)
    monkeypatch.setattr(doctor, "make_microphone", failing)
    mic = by_name(doctor.run_checks(app, reach_office=False))["microphone"]
    assert mic.status == "fail" and "no sound" in mic.detail and "injected fault" in mic.detail
    assert "plug the microphone in again" in mic.advice


def test_an_sftp_office_needs_the_box_key_and_its_host_key_pinned(app: App,
                                                                   tmp_path: Path) -> None:
    box = with_sync(app, destination=OFFICE, recipients=[age_key(), age_key()])
    no_key = keys_line(box)
    assert no_key.status == "fail" and "the box has no SSH key" in no_key.detail
    assert "sudo vigbox keys init" in no_key.advice and "office" in no_key.advice

    keys.init_device_key(box)
    unpinned = keys_line(box)
    assert unpinned.status == "fail"
    assert "not pinned for [office.example.org]:2222" in unpinned.detail
    assert "vigbox keys office-host" in unpinned.advice and "--pin" in unpinned.advice

    office_key = public_key_line(make_ssh_key(tmp_path / "office_host", "office"))
    known = keys.known_hosts_path(box)
    known.write_text(f"office.example.org {office_key}\n")   # port 22's: not this office's
    assert keys_line(box).status == "fail"
    # As `vigbox keys office-host --pin` writes it: "[host]:port keytype base64".
    known.write_text(f"[office.example.org]:2222 {office_key}\n")
    pinned = keys_line(box)
    device_key = keys.device_key_path(box)
    assert pinned == doctor.Check(
        "keys", "ok", f"2 office keys; box SSH key {ssh_fingerprint(device_key)}; office host "
        "key pinned for [office.example.org]:2222")

    device_key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nbroken\n")
    damaged = keys_line(box)
    assert damaged.status == "fail" and "cannot be used" in damaged.detail
    assert "broken" not in json.dumps(damaged.to_json())


def test_an_s3_office_needs_its_secret_key_file(app: App, tmp_path: Path) -> None:
    secret = tmp_path / "s3-secret"
    box = with_sync(app, destination="s3://office-bucket/box-1", recipients=[age_key()],
                    s3_access_key="vigbox-box-1", s3_secret_key_file=str(secret))
    missing = keys_line(box)
    assert missing.status == "fail" and str(secret) in missing.detail
    assert "No such file" in missing.detail and "chmod 600" in missing.advice
    secret.write_text("\n")
    assert "is empty" in keys_line(box).detail
    secret.write_text("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    present = keys_line(box)
    assert present.status == "ok"
    assert present.detail == f"1 office key; S3 secret key file {secret} present"
    assert "wJalrXUtnFEMI" not in json.dumps(present.to_json())
    from_env = keys_line(box, s3_secret_key_file="")
    assert from_env.status == "ok" and "from the environment" in from_env.detail


def test_the_office_keys_must_be_there_and_be_age_public_keys(app: App,
                                                               tmp_path: Path) -> None:
    assert keys_line(app).status == "warn" and "no office set up" in keys_line(app).detail
    office = f"file://{tmp_path / 'office'}"
    none = keys_line(app, destination=office, recipients=[])
    assert none.status == "fail" and "nothing can be encrypted" in none.detail
    assert "sync.recipients" in none.advice
    good = age_key()
    typo = good[:-1] + ("q" if good[-1] != "q" else "p")   # the checksum no longer matches
    pasted_secret = str(x25519.Identity.generate())
    bad = keys_line(app, destination=office, recipients=[good, typo, pasted_secret])
    assert bad.status == "fail" and f"#2 {typo!r}" in bad.detail and "#1" not in bad.detail
    assert "#3 is an age SECRET key (not shown)" in bad.detail
    assert pasted_secret not in json.dumps(bad.to_json())
    assert keys_line(app, destination=office, recipients=[good]) == doctor.Check(
        "keys", "ok", "1 office key")


def test_vigbox_doctor_offline_reports_the_keys_as_they_are_set_up(
        vigbox: Any, config_file: Path, app: App, tmp_path: Path) -> None:
    with config_file.open("a") as f:
        f.write(f'[sync]\ndestination = "sftp://vigbox@office.example.org/upload"\n'
                f'recipients = ["{age_key()}"]\n')

    def keys_entry() -> tuple[int, dict[str, Any]]:
        done = vigbox("doctor", "--offline", "--json")
        found = {c["name"]: c for c in done.json()}
        assert "office" not in found, "--offline reaches no office"
        return done.returncode, found["keys"]

    code, entry = keys_entry()
    assert code == 1 and entry["status"] == "fail" and "no SSH key" in entry["detail"]
    assert vigbox("keys", "init").returncode == 0
    code, entry = keys_entry()
    assert code == 1 and "not pinned for office.example.org in" in entry["detail"]
    office_key = public_key_line(make_ssh_key(tmp_path / "office_host", "office"))
    key_files(app.config, app.layout)[1].write_text(f"office.example.org {office_key}\n")
    code, entry = keys_entry()
    assert code == 0 and entry["status"] == "ok" and entry["detail"].startswith(
        "1 office key; box SSH key SHA256:")


# `vigbox doctor ARGS`, with what the doctor needs imported before vigbox becomes the data
# dir's owner: this machine's Python, and a checkout in a fresh `mktemp -d`, may be where
# only root reads (/root/.pyenv, a 0700 folder); a box's are not. The modules the doctor
# imports only when it uses them (the keys) too.
DOCTOR_AS_OWNER = """
import sys
import appliance.services.doctor
import appliance.services.keys
import appliance.sync.dest_sftp
from appliance.cli import main
raise SystemExit(main(["doctor", *sys.argv[1:]]))
"""


def test_a_key_sync_cannot_read_fails_with_how_to_give_it_back(
        cli_env: dict[str, str], config_file: Path, data_dir: Path) -> None:
    """`sudo vigbox doctor` runs as the data dir's owner, the user sync runs as: a key it
    cannot read is one sync cannot use. As root, the box's key is root's own (as after
    `sudo ssh-keygen`) on a data dir owned by another user; otherwise its mode is 000."""
    # No microphone: listening would import numpy's parts after vigbox became the owner.
    config_file.write_text(config_file.read_text().replace(
        '[microphone]\nbackend = "synthetic"', '[microphone]\nbackend = "none"'))
    with config_file.open("a") as f:
        f.write(f'[sync]\ndestination = "{OFFICE}"\nrecipients = ["{age_key()}"]\n')
    assert 'backend = "none"' in config_file.read_text()
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="vigbox-keys-", dir="/tmp"))  # not in root's 0700
    try:
        base.chmod(0o755)
        data = base / "data" if as_root else data_dir
        data.mkdir(exist_ok=True)
        key = make_ssh_key(data / "keys" / "device_ed25519", "box")
        owner = pwd.getpwnam("nobody") if as_root else pwd.getpwuid(os.geteuid())
        if as_root:
            for path in (data, key.parent):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        else:
            key.chmod(0o000)
        done = subprocess.run([sys.executable, "-c", DOCTOR_AS_OWNER, "--offline", "--json"],
                              env=cli_env | {"VIGBOX_DATA_DIR": str(data)}, text=True,
                              capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
        assert done.returncode == 1 and done.stdout, done.stderr
        line = {c["name"]: c for c in json.loads(done.stdout)}["keys"]
        assert line["status"] == "fail", line
        assert line["detail"] == (f"cannot read the box's SSH key ({key}) as {owner.pw_name}, "
                                  "the user sync runs as: sync cannot use it")
        assert f"sudo chown {owner.pw_name}: {key} && sudo chmod 600 {key}" in line["advice"]
    finally:
        shutil.rmtree(base, ignore_errors=True)
