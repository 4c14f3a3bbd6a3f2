"""The appliance as a whole: the four services started as their systemd units start them
(the same `vigbox` commands, environment, niceness and restart delays), in a temp data
dir, each killed with SIGKILL in turn while the box records; the others carry on and
the killed one takes up its work again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from appliance.supervisor import ENVIRONMENT, STOP_ORDER, UNITS, unit_argv, unit_env
from appliance.sync.office import decrypt_folder
from tests.appliance_box import CASE, Box, running_box, wait_for
from tests.tablet import Client

ROOT = Path(__file__).resolve().parent.parent


def _values(name: str, key: str) -> list[str]:
    text = (ROOT / "systemd" / f"vigbox-{name}.service").read_text()
    return [line.split("=", 1)[1].strip() for line in text.splitlines()
            if line.startswith(f"{key}=")]


@pytest.mark.parametrize("name", sorted(UNITS))
def test_the_supervisor_runs_each_service_as_its_unit_does(name: str) -> None:
    unit = UNITS[name]
    [exec_start] = _values(name, "ExecStart")
    assert tuple(exec_start.split()[1:]) == unit.args
    env = dict(v.split("=", 1) for v in _values(name, "Environment"))
    assert env.pop("VIGBOX_DATA_DIR") == "/var/lib/vigbox"
    assert env == ENVIRONMENT
    assert [int(v) for v in _values(name, "Nice")] == [unit.nice]
    assert [float(v) for v in _values(name, "TimeoutStopSec")] == [unit.stop_timeout_s]
    if unit.restart_s is None:
        assert _values(name, "Type") == ["oneshot"] and not _values(name, "Restart")
    else:
        assert _values(name, "Restart") == ["always"]
        assert [float(v) for v in _values(name, "RestartSec")] == [unit.restart_s]
    assert set(STOP_ORDER) == set(UNITS) and STOP_ORDER[-1] == "capture"


def test_a_unit_environment_and_command(tmp_path: Path) -> None:
    env = unit_env(tmp_path, tmp_path / "box.toml", base={"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "MALLOC_ARENA_MAX": "2",
                   "VIGBOX_DATA_DIR": str(tmp_path), "VIGBOX_CONFIG": str(tmp_path / "box.toml")}
    argv = unit_argv(UNITS["sync"], "/venv/bin/python")
    assert argv[-4:] == ["/venv/bin/python", "-m", "appliance", "sync"]
    if os.getpriority(os.PRIO_PROCESS, 0) < UNITS["sync"].nice:
        assert "nice" in argv[0] or argv[0].endswith("nice")


def _job(tablet: Client, job_id: int) -> dict[str, Any]:
    job: dict[str, Any] = tablet.json("GET", f"/api/jobs/{job_id}")
    return job


def _still_recording(box: Box, rec_id: str) -> int:
    """The frames the running recording has so far (it must be the same recording)."""
    status = box.capture_status()
    assert status is not None and status["state"] == "recording", status
    assert status["recording"]["id"] == rec_id
    frames: int = status["recording"]["frames"]
    return frames


def _film(box: Box, seconds: float) -> str:
    """Record for `seconds` through the control socket; the recording's id."""
    box.daemon.start(CASE)
    rec_id = box.wait_recording(seconds)
    done = box.daemon.stop()
    assert done["recording"]["status"] == "ready", done
    return rec_id


@pytest.mark.slow
def test_encode_and_web_die_while_the_box_records(tmp_path: Path) -> None:
    events: list[str] = []
    with running_box(tmp_path, on_event=events.append) as box:
        box.wait_ready()
        tablet = box.tablet()
        first = _film(box, 5)
        box.daemon.start(CASE)
        second = box.wait_recording(1)

        # The encoder dies in the middle of an exact (re-encoded) clip.
        job = tablet.json("POST", f"/api/recordings/{first}/clips",
                          {"start_s": 0.5, "end_s": 4.5, "exact": True})
        wait_for(lambda: _job(tablet, job["id"])["status"] == "running",
                 "the clip job to start", 60, every=0.01)
        before = _still_recording(box, second)
        box.sup.kill("encode")
        wait_for(lambda: box.sup.services["encode"].starts == 2, "encode to restart", 30)
        done = wait_for(lambda: (j := _job(tablet, job["id"]))["status"] in
                        ("done", "failed") and j, "the clip to be made", 180, every=0.2)
        assert done["status"] == "done", (done, box.log("encode"))
        assert done["attempts"] == 2
        assert _still_recording(box, second) > before, "capture went on recording"

        # The web server dies: the recording goes on, the tablet's session survives.
        box.sup.kill("web")
        wait_for(lambda: not box.web_answers(), "the UI to be gone", 10)
        during = _still_recording(box, second)
        wait_for(box.web_answers, "the UI to be back", 30)
        assert box.sup.services["web"].starts == 2
        status = tablet.json("GET", "/api/status")
        assert status["state"] == "recording" and status["recording"]["id"] == second
        tablet.json("POST", "/api/record/mark", {})   # the same session's CSRF token
        assert _still_recording(box, second) > during

        stopped = tablet.json("POST", "/api/record/stop", {})
        assert stopped["recording"]["status"] == "ready", stopped
        rec = box.recording(second)
        assert rec["dropped_frames"] == 0 and rec["video_frames"] > 0, rec
    assert any("encode stopped (killed by SIGKILL)" in e for e in events), events
    assert all(s.proc is None or s.proc.poll() is not None for s in box.sup.services.values())


@pytest.mark.slow
def test_capture_dies_and_recovers_its_recording_then_sigterm_finalizes(
        tmp_path: Path) -> None:
    with running_box(tmp_path, services=("capture", "web")) as box:
        box.wait_ready()
        tablet = box.tablet()
        box.daemon.start(CASE)
        killed = box.wait_recording(3)
        # Frames in the journal (written unbuffered) before the kill: all must come back.
        written = (box.capture_status() or {})["recording"]["frames"]
        box.sup.kill("capture")
        # The tablet is told, while capture is down (RestartSec=2 gives it the time).
        wait_for(lambda: tablet.json("GET", "/api/status")["state"] == "offline",
                 "the UI to report the recorder offline", 5, every=0.02)
        box.wait_ready()
        assert box.sup.services["capture"].starts == 2
        rec = wait_for(lambda: (r := box.recording(killed))["status"] == "recovered" and r,
                       "the killed recording to be recovered", 60, every=0.2)
        assert rec["video_frames"] >= max(written, 60) and rec["audio"], (written, rec)

        # SIGTERM (systemd's stop, a shutdown) during a recording finalizes it.
        box.daemon.start(CASE)
        stopped = box.wait_recording(2)
        proc = box.sup.services["capture"].proc
        assert proc is not None
        box.sup.kill("capture", signal.SIGTERM)
        assert proc.wait(60) == 0, box.log("capture")
        assert box.recording(stopped)["status"] == "ready", box.recording(stopped)
        box.wait_ready()   # started again (Restart=always), with nothing to recover
        assert box.recording(stopped)["status"] == "ready"


@pytest.mark.slow
def test_sync_dies_mid_upload_and_the_next_run_delivers(tmp_path: Path) -> None:
    # 300 kB/s: the clip takes seconds to send, so sync can be killed in the middle.
    with running_box(tmp_path, bandwidth_kbps=300) as box:
        box.wait_ready()
        tablet = box.tablet()
        rec_id = _film(box, 5)
        job = tablet.json("POST", f"/api/recordings/{rec_id}/clips",
                          {"start_s": 0.0, "end_s": 4.0, "exact": False})
        wait_for(lambda: _job(tablet, job["id"])["status"] == "done", "the clip", 120,
                 every=0.2)

        box.daemon.start(CASE)   # the box records through the sync's crash
        recording = box.wait_recording(1)
        assert box.sup.run_sync()

        def sending() -> dict[str, Any] | None:
            items = tablet.json("GET", "/api/sync")["items"]
            return next((i for i in items if i["status"] == "sealed" and i["sent_bytes"]
                         and i["kind"] == "clip"), None)
        item = wait_for(sending, "the clip to be on its way", 60, every=0.05)
        frames = _still_recording(box, recording)
        box.sup.kill("sync")
        assert box.sup.wait_sync(10) == -signal.SIGKILL
        left = {i["id"]: i for i in tablet.json("GET", "/api/sync")["items"]}
        assert left[item["id"]]["status"] == "sealed", "killed before it was all sent"

        assert box.sup.run_sync()
        assert box.sup.wait_sync(120) == 0, box.log("sync")
        items = tablet.json("GET", "/api/sync")["items"]
        assert items and all(i["status"] == "verified" for i in items), items
        assert _still_recording(box, recording) > frames
        assert box.daemon.stop()["recording"]["status"] == "ready"

    out = tmp_path / "decrypted"
    report = decrypt_folder(box.office_dir, out, [box.office_identity])
    assert report.ok and report.decrypted, report
    [clip] = [out / p for p in report.decrypted if p.endswith(".mp4")]
    probed = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                             "-of", "csv=p=0", str(clip)], capture_output=True, text=True,
                            timeout=60)
    assert probed.returncode == 0 and 3.0 <= float(probed.stdout) <= 5.0, probed


def test_the_services_are_started_with_this_python() -> None:
    assert unit_argv(UNITS["web"])[-4:] == [sys.executable, "-m", "appliance", "web"]
