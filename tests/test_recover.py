"""kill -9 mid-recording, then recovery: at most ~2 s lost, playable, in sync."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.capture import journal as journal_files
from appliance.capture.recover import recover_all
from appliance.capture.sync_check import measure_sync
from appliance.catalog import Catalog, Origin, utc_now
from appliance.fsutil import lock_directory
from tests.media import frame_indices, gaps, streams
from tests.processes import DaemonProcess

WAIT_S = 30


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Poll `predicate` until true or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def video_frames_on_disk(data_dir: Path) -> int:
    """Index lines written so far by the recording in progress."""
    indexes = list((data_dir / "recordings").glob(f"*/{journal_files.VIDEO_INDEX}"))
    return indexes[0].read_bytes().count(b"\n") if indexes else 0


def kill_mid_recording(data_dir: Path, cli_env: dict[str, str], seconds: float) -> float:
    """Run `vigbox record` in a child, kill -9 it after `seconds` of frames hit the disk.

    Returns the seconds of video the journal held (fsynced or not) at the kill."""
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "record", "--seconds", "60",
                             "--simulate", "--json"], env=cli_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: video_frames_on_disk(data_dir) >= seconds * 30, WAIT_S,
                 "frames on disk")
        at_kill = video_frames_on_disk(data_dir) / 30
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    return at_kill


@pytest.mark.slow
def test_kill_9_mid_recording_then_recover(data_dir: Path, cli_env: dict[str, str],
                                           vigbox: Any) -> None:
    at_kill = kill_mid_recording(data_dir, cli_env, 6.5)

    before = vigbox("recordings", "--json")
    assert before.returncode == 0
    [row] = before.json()
    assert row["status"] == "recording" and row["path"] is None

    result = vigbox("recover", "--json")
    assert result.returncode == 0, result.stderr
    [rec] = result.json()
    assert rec["id"] == row["id"]
    assert rec["status"] == "recovered"
    assert rec["recovery"]["action"] == "recovered"
    # At most ~2 s lost: what was in the journal when the process died is in the film.
    assert rec["duration_s"] >= at_kill - 2.0
    assert rec["duration_s"] <= at_kill + 1.0
    path = Path(rec["path"])
    info = streams(path)
    assert info["video"]["codec_name"] == "h264" and info["audio"]["codec_name"] == "aac"
    assert gaps(frame_indices(path)) == []
    sync = measure_sync(path)
    assert sync.offsets_ms and max(abs(o) for o in sync.offsets_ms) < 1000 / 30 / 2
    # The raw journal is gone once the MP4 is verified; nothing else is left to recover.
    assert not (path.parent / journal_files.VIDEO).exists()
    again = vigbox("recover", "--json")
    assert again.returncode == 0 and again.json() == []
    listed = vigbox("recordings", "--json").json()
    assert [r["status"] for r in listed] == ["recovered"]


def _fake_interrupted(catalog: Catalog, rec_id: str, *, with_video: bool) -> Path:
    directory = catalog.layout.recording_dir(rec_id)
    catalog.recordings.create(rec_id, case=None, started_at=utc_now(), origin=Origin.CAPTURE,
                              fps=30.0, actor="test")
    directory.mkdir(parents=True)
    if with_video:
        (directory / journal_files.VIDEO).write_bytes(b"\x00\x00\x00\x01garbage")
    return directory


def test_recovery_of_a_recording_with_nothing_in_it_marks_it_failed(data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        _fake_interrupted(catalog, "20260101-000000-aaaa", with_video=False)
        [outcome] = recover_all(catalog, default_fps=30, default_sample_rate=48000)
        assert outcome.action == "failed"
        assert "nothing was recorded" in outcome.detail
        assert catalog.recordings.get(outcome.id).status == "failed"
        assert recover_all(catalog, default_fps=30, default_sample_rate=48000) == []


def test_recovery_of_an_unreadable_journal_keeps_the_raw_data(data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        directory = _fake_interrupted(catalog, "20260101-000000-bbbb", with_video=True)
        [outcome] = recover_all(catalog, default_fps=30, default_sample_rate=48000)
        assert outcome.action == "failed"
        assert (directory / journal_files.VIDEO).exists(), "raw data is never deleted on failure"


def test_recovery_skips_a_recording_locked_by_a_live_process(data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        directory = _fake_interrupted(catalog, "20260101-000000-cccc", with_video=True)
        handle = lock_directory(directory)
        try:
            [outcome] = recover_all(catalog, default_fps=30, default_sample_rate=48000)
        finally:
            handle.close()
        assert outcome.action == "skipped"
        assert catalog.recordings.get(outcome.id).status == "recording"


def test_stale_import_staging_is_removed(data_dir: Path) -> None:
    staging = data_dir / "recordings" / ".import-20260101-000000-dddd"
    staging.mkdir(parents=True)
    (staging / ".recording.mp4.tmp").write_bytes(b"half")
    with Catalog(data_dir) as catalog:
        recover_all(catalog, default_fps=30, default_sample_rate=48000)
    assert not staging.exists()


@pytest.mark.slow
def test_capture_daemon_recovers_on_start(data_dir: Path, cli_env: dict[str, str],
                                          config_file: Path) -> None:
    kill_mid_recording(data_dir, cli_env, 2.0)
    with DaemonProcess(cli_env) as daemon:
        wait_for(lambda: (data_dir / "capture.sock").exists(), WAIT_S, "the control socket")
        with Catalog(data_dir) as catalog:
            # Recovery runs in the background once the daemon is up (READY comes first).
            wait_for(lambda: catalog.recordings.list()[0].status == "recovered", WAIT_S,
                     "recovery in the background")
            [rec] = catalog.recordings.list()
    assert daemon.returncode == 0, daemon.log
    assert "recovered" in daemon.log
    assert os.path.exists(rec.path)  # type: ignore[arg-type]


def test_an_import_interrupted_before_its_catalog_row_is_adopted(data_dir: Path,
                                                                  tmp_path: Path) -> None:
    folder = data_dir / "recordings" / "20260101-000000-ffff"
    folder.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=30:duration=1", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                    str(folder / "recording.mp4")], check=True, timeout=60)
    with Catalog(data_dir) as catalog:
        [outcome] = recover_all(catalog, default_fps=30, default_sample_rate=48000)
        assert (outcome.id, outcome.action) == (folder.name, "recovered")
        rec = catalog.recordings.get(folder.name)
        assert (rec.status, rec.origin, rec.video_frames, rec.audio) == (
            "recovered", "import", 30, "none")
        assert recover_all(catalog, default_fps=30, default_sample_rate=48000) == []
