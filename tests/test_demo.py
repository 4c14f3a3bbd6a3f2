"""`vigbox demo`, the README's main job, as a newcomer runs it: one command serves a UI one
logs in to with the printed passphrase, records with the virtual button, reviews, clips,
syncs to the demo office, and stops everything on Ctrl-C, showing the office's round trip."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.appliance_box import free_port, wait_for
from tests.processes import stop_process
from tests.tablet import Client

STOP_TIMEOUT_S = 150


def _processes_in(folder: Path) -> list[int]:
    """Processes working in `folder` (the demo's services run with it as their cwd)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")) == folder:
                found.append(int(pid))
        except OSError:
            continue   # gone meanwhile, or not ours to read
    return found


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path, int]]:
    data_dir = tmp_path / "demo-data"
    log = tmp_path / "demo.log"
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "appliance", "--data-dir",
                                 str(data_dir), "demo", "--port", str(port),
                                 "--sync-every", "600"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path)
    try:
        yield proc, data_dir, log, port
    finally:
        stop_process(proc, signal.SIGINT, STOP_TIMEOUT_S)
        for pid in _processes_in(data_dir):
            os.kill(pid, signal.SIGKILL)


def _status(tablet: Client) -> dict[str, Any]:
    status: dict[str, Any] = tablet.json("GET", "/api/status")
    return status


@pytest.mark.slow
def test_the_demo_is_the_whole_box(
        demo: tuple[subprocess.Popen[bytes], Path, Path, int]) -> None:
    proc, data_dir, log, port = demo
    welcome = wait_for(lambda: re.search(r"Log in\s+(\S+)\s+/\s+(\S+)", log.read_text())
                       or (proc.poll() is not None and log.read_text()),
                       "the demo's welcome", 120, every=0.2)
    assert isinstance(welcome, re.Match), welcome
    assert f"http://127.0.0.1:{port}/" in log.read_text()
    tablet = Client(f"http://127.0.0.1:{port}", welcome.group(1), welcome.group(2))
    tablet.log_in()
    status = wait_for(lambda: (s := _status(tablet))["state"] == "ready" and s,
                      "the box to be ready", 60)
    assert status["simulated_button"] and status["case"] == "DEMO-1", status

    # The virtual button: a press starts, a 1.6 s hold stops (as on the box).
    tablet.json("POST", "/api/record/press", {"hold_s": 0.1})
    rec_id = wait_for(lambda: ((_status(tablet).get("recording") or {}).get("elapsed_s", 0)
                               >= 4 and _status(tablet)["recording"]["id"]),
                      "4 s of recording", 60, every=0.1)
    tablet.json("POST", "/api/record/press", {"hold_s": 1.6})
    rec = wait_for(lambda: (r := tablet.json("GET", f"/api/recordings/{rec_id}"))["status"]
                   == "ready" and r, "the recording to be saved", 60, every=0.2)
    assert rec["case"] == "DEMO-1" and rec["media_url"], rec
    assert b"<video" in tablet.request("GET", rec["review_url"])
    head = tablet.request("GET", rec["media_url"], headers={"Range": "bytes=0-7"})
    assert head[4:8] == b"ftyp"

    job = tablet.json("POST", f"/api/recordings/{rec_id}/clips",
                      {"start_s": 1.0, "end_s": 3.0, "exact": True})
    wait_for(lambda: tablet.json("GET", f"/api/jobs/{job['id']}")["status"] == "done",
             "the clip", 120, every=0.2)
    tablet.request("POST", "/api/sync/run", {})
    synced = wait_for(lambda: (s := tablet.json("GET", "/api/sync"))["counts"]["verified"]
                      and not s["running"] and s, "the sync to the office", 120, every=0.2)
    assert all(i["status"] == "verified" for i in synced["items"]), synced

    # Ctrl-C: everything stops, and the office's copy is decrypted for the newcomer.
    proc.send_signal(signal.SIGINT)
    assert proc.wait(STOP_TIMEOUT_S) == 0, log.read_text()[-3000:]
    assert _processes_in(data_dir) == [], "every service stopped"
    text = log.read_text()
    found = re.search(r"the office decrypted (\d+) file\(s\) into (\S+)", text)
    assert found and int(found.group(1)) >= 1, text[-3000:]
    assert "missing" not in found.group(0)
    mp4s = list(Path(found.group(2)).rglob("*.mp4"))
    assert mp4s and mp4s[0].read_bytes()[4:8] == b"ftyp"
    assert "vigbox office decrypt" in text


@pytest.mark.slow
def test_a_killed_demo_leaves_no_service_behind(
        demo: tuple[subprocess.Popen[bytes], Path, Path, int]) -> None:
    proc, data_dir, log, _ = demo
    wait_for(lambda: "Log in" in log.read_text() or proc.poll() is not None,
             "the demo's welcome", 120, every=0.2)
    services = _processes_in(data_dir)
    assert len(services) >= 3, services   # capture, encode, web (and their ffmpeg)
    proc.kill()   # no chance to stop them: the kernel's parent-death signal must
    proc.wait(10)
    wait_for(lambda: _processes_in(data_dir) == [], "the services to end", 60, every=0.2)
