"""Disk space: refused at preflight when too small; handled when it fills mid-recording.

A small tmpfs is a real file system that really fills up; mounting it needs root
(CI runs as root), elsewhere these tests skip.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.capture import session as session_module
from appliance.capture.camera_synthetic import SyntheticCamera
from appliance.capture.devices import new_marker
from appliance.capture.mic_synthetic import SyntheticMicrophone
from appliance.capture.recover import recover_all
from appliance.capture.session import Session
from appliance.catalog import Catalog
from appliance.config import Config
from appliance.fsutil import free_bytes

MB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 MB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def fill(directory: Path, leave_bytes: int) -> Path:
    """Write a filler file until only `leave_bytes` are free (0: completely full)."""
    filler = directory / "filler"
    chunk = b"\0" * MB
    # Unbuffered: the recorder writes at the same time, so a write may land only in part;
    # a buffered file would keep the rest and fail again when closed.
    with filler.open("wb", buffering=0) as f:
        while True:
            room = free_bytes(directory) - leave_bytes
            if room <= 0:
                break
            try:
                if f.write(chunk[:min(MB, room)]) == 0:
                    break
            except OSError:
                break
    return filler


def small_config(config: Config, data_dir: Path, max_seconds: int) -> Config:
    return dataclasses.replace(config, data_dir=str(data_dir), recording=dataclasses.replace(
        config.recording, max_seconds=max_seconds, reserve_mb=0, low_disk_mb=0))


def test_preflight_refuses_when_the_longest_recording_would_not_fit(
        small_disk: Path, config_file: Path, vigbox: Any, cli_env: dict[str, str]) -> None:
    env = cli_env | {"VIGBOX_DATA_DIR": str(small_disk)}
    result = vigbox("record", "--seconds", "5", "--simulate", "--json", env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("vigbox: not enough disk space")
    assert "MB free" in line and "remove old recordings" in line
    listed = vigbox("recordings", "--json", env=env)
    assert listed.json() == [], "a refused recording leaves no trace in the catalog"


@pytest.fixture
def rig(small_disk: Path, config: Config) -> Iterator[tuple[Catalog, Config, Any, Any]]:
    cfg = small_config(config, small_disk / "data", max_seconds=20)
    marker = new_marker()
    camera = SyntheticCamera(width=1280, height=720, fps=30, bitrate=6_000_000,
                             keyframe_interval_s=1.0, marker=marker)
    mic = SyntheticMicrophone(sample_rate=48_000, block_ms=20, marker=marker)
    camera.open()
    catalog = Catalog(cfg.data_path)
    try:
        yield catalog, cfg, camera, mic
    finally:
        camera.close()
        mic.stop()
        catalog.close()


def wait_frames(session: Session, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while session.status()["frames"] < count:
        assert time.monotonic() < deadline, "no frames written"
        time.sleep(0.05)


@pytest.mark.slow
def test_disk_nearly_full_mid_recording_stops_and_keeps_the_film(rig: Any,
                                                                 small_disk: Path) -> None:
    catalog, cfg, camera, mic = rig
    session = Session(catalog=catalog, config=cfg, camera=camera, mic=mic)
    session.start()
    wait_frames(session, 45)
    # Leave room to finalize what was recorded, but less than the safety margin.
    fill(small_disk, leave_bytes=12 * MB)
    rec = session.wait(timeout=30)
    assert rec.status == "ready"
    assert any("disk is nearly full" in p for p in rec.problems), rec.problems
    assert rec.duration_s is not None and rec.duration_s >= 1.4
    assert rec.path is not None and rec.path.stat().st_size > 0


@pytest.mark.slow
def test_disk_completely_full_is_survived_thanks_to_the_ballast(rig: Any,
                                                                small_disk: Path) -> None:
    catalog, cfg, camera, mic = rig
    session = Session(catalog=catalog, config=cfg, camera=camera, mic=mic)
    session.start()
    wait_frames(session, 45)
    fill(small_disk, leave_bytes=0)
    rec = session.wait(timeout=30)
    # Writing failed (ENOSPC) and the session stopped; the released ballast gave the
    # catalog and this short film room to finish.
    assert rec.status == "ready", rec.problems
    assert "stopped early: the disk is full" in rec.problems
    assert rec.duration_s is not None and rec.duration_s >= 1.4
    assert catalog.recordings.get(rec.id).status == "ready"


@pytest.mark.slow
def test_disk_completely_full_without_ballast_loses_nothing_already_written(
        rig: Any, small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # E.g. the disk was already too full for the ballast when the recording began.
    monkeypatch.setattr(session_module, "BALLAST_MB", 0)
    catalog, cfg, camera, mic = rig
    session = Session(catalog=catalog, config=cfg, camera=camera, mic=mic)
    session.start()
    wait_frames(session, 45)
    filler = fill(small_disk, leave_bytes=0)
    rec = session.wait(timeout=30)
    # Neither the film nor perhaps even the catalog fits: the session still ends at
    # once, says the recording failed, and keeps the raw journal.
    assert rec.status == "failed"
    assert "stopped early: the disk is full" in rec.problems
    assert (rec.dir / "video.h264").stat().st_size > 0
    filler.unlink()  # the guider makes room; recovery then finishes the film
    [outcome] = recover_all(catalog, default_fps=30, default_sample_rate=48_000)
    assert outcome.action == "recovered", outcome.detail
    recovered = catalog.recordings.get(rec.id)
    assert recovered.status == "recovered"
    assert recovered.duration_s is not None and recovered.duration_s >= 1.4
    assert recovered.path is not None and recovered.path.exists()


def test_reading_the_catalog_works_on_a_full_disk(small_disk: Path, vigbox: Any,
                                                  cli_env: dict[str, str]) -> None:
    """A full disk must not stop the guider seeing what is on the box: opening the
    catalog needs room for its -wal/-shm files, which the ballast gives back."""
    env = cli_env | {"VIGBOX_DATA_DIR": str(small_disk / "data")}
    assert vigbox("cases", "add", "VIG-2026-050", "--consent", "filming", env=env).returncode == 0
    data = small_disk / "data"
    with Catalog(data) as catalog:  # as the daemon does at start
        assert session_module.ensure_ballast(catalog.layout.ballast, 8 * MB)
    fill(small_disk, leave_bytes=0)
    for command in (["cases", "--json"], ["recordings", "--json"], ["jobs", "--json"],
                    ["recover", "--json"]):
        result = vigbox(*command, env=env)
        assert result.returncode == 0, (command, result.stderr)
        assert "Traceback" not in result.stderr
    assert [c["code"] for c in vigbox("cases", "--json", env=env).json()] == ["VIG-2026-050"]


@pytest.mark.slow
def test_a_recording_preflight_lets_through_is_not_stopped_for_room(rig: Any,
                                                                  small_disk: Path) -> None:
    """Preflight and the session agree on the room a recording needs: with just enough
    free for preflight, the recording runs to its end instead of stopping at once."""
    from appliance.capture.preflight import room_needed

    catalog, cfg, camera, mic = rig
    cfg = dataclasses.replace(cfg, recording=dataclasses.replace(cfg.recording, max_seconds=4,
                                                                 warn_before_end_s=1))
    fill(small_disk, leave_bytes=room_needed(cfg, catalog.layout) + MB)
    session = Session(catalog=catalog, config=cfg, camera=camera, mic=mic)
    session.start()
    rec = session.wait(timeout=30)
    assert rec.status == "ready", rec.problems
    assert not any("disk" in p for p in rec.problems), rec.problems
    assert rec.duration_s is not None and rec.duration_s >= 3.9
