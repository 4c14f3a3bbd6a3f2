"""Picamera2Camera on a real Raspberry Pi camera: `pytest -m hardware tests/hardware`.

Skipped (at collection, with the reason) wherever picamera2 cannot be imported or
libcamera lists no camera. Stop the capture daemon first: only one process can own
the camera, and a busy camera fails these tests with that reason.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from appliance.capture.camera_picamera2 import Picamera2Camera
from appliance.capture.h264 import NAL_IDR, NAL_SPS, nal_types
from appliance.capture.sources import VideoFrame

try:
    picamera2 = pytest.importorskip(
        "picamera2", reason="picamera2 is not installed: not a Raspberry Pi with python3-picamera2")
except ImportError as e:  # installed, but libcamera or a dependency is broken
    pytest.skip(f"picamera2 cannot be imported ({e})", allow_module_level=True)
try:
    CAMERAS = picamera2.Picamera2.global_camera_info()
except Exception as e:  # noqa: BLE001 - libcamera itself failed
    pytest.skip(f"libcamera cannot list cameras ({e})", allow_module_level=True)
if not CAMERAS:
    pytest.skip("libcamera lists no camera (check the ribbon cable)", allow_module_level=True)

pytestmark = [pytest.mark.hardware, pytest.mark.timeout(180)]

FPS = 30
FRAME_NS = 1_000_000_000 / FPS
SECONDS = 3.0


class Recorder:
    """Frames and errors from the camera, with the monotonic time each frame arrived."""

    def __init__(self) -> None:
        self.frames: list[VideoFrame] = []
        self.received_ns: list[int] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def on_frame(self, frame: VideoFrame) -> None:
        now = time.monotonic_ns()
        with self._lock:
            self.frames.append(frame)
            self.received_ns.append(now)

    def on_error(self, reason: str) -> None:
        with self._lock:
            self.errors.append(reason)


def record(cam: Picamera2Camera, seconds: float) -> Recorder:
    """Record for `seconds` of wall time (this is real capture: waiting is the point)."""
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    try:
        time.sleep(seconds)
    finally:
        cam.stop()
    return rec


def ffprobe_frames(path: Path) -> dict[str, object]:
    """Decode a raw H.264 file with ffprobe: codec, size and the frames it decoded."""
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe is not installed")
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-f", "h264", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json",
         str(path)], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)["streams"][0]


@pytest.fixture
def camera_720p30():
    cam = Picamera2Camera(width=1280, height=720, fps=FPS, bitrate=6_000_000,
                          keyframe_interval_s=1.0)
    cam.check()
    cam.open()
    yield cam
    cam.close()


def test_720p30_for_3_seconds(camera_720p30: Picamera2Camera, tmp_path: Path) -> None:
    rec = record(camera_720p30, SECONDS)
    frames = rec.frames
    assert rec.errors == []
    assert abs(len(frames) - SECONDS * FPS) <= 6, f"{len(frames)} frames in {SECONDS} s"

    first = frames[0]
    assert first.keyframe
    assert NAL_SPS in nal_types(first.data) and NAL_IDR in nal_types(first.data)
    keyframes = [i for i, f in enumerate(frames) if f.keyframe]
    assert all(b - a == FPS for a, b in zip(keyframes, keyframes[1:])), keyframes
    assert all(NAL_SPS in nal_types(frames[i].data) for i in keyframes)  # repeat=True

    gaps = [b.pts_ns - a.pts_ns for a, b in zip(frames, frames[1:])]
    assert statistics.median(gaps) == pytest.approx(FRAME_NS, rel=0.01)
    assert min(gaps) > 0
    assert max(gaps) <= 1.5 * FRAME_NS, f"a gap of {max(gaps) / 1e6:.1f} ms"

    # pts is on time.monotonic_ns(): each frame arrives shortly after it was exposed.
    lags = [r - f.pts_ns for f, r in zip(frames, rec.received_ns)]
    assert min(lags) > 0, "a frame arrived before it was exposed: not the monotonic clock"
    assert max(lags) < 500_000_000, f"a frame arrived {max(lags) / 1e6:.0f} ms late"

    raw = tmp_path / "video.h264"
    raw.write_bytes(b"".join(f.data for f in frames))
    info = ffprobe_frames(raw)
    assert info["codec_name"] == "h264"
    assert (info["width"], info["height"]) == (1280, 720)
    assert int(info["nb_read_frames"]) == len(frames)

    # Any keyframe starts a stream that decodes on its own (SPS/PPS repeated).
    if len(keyframes) > 1:
        tail = tmp_path / "tail.h264"
        tail.write_bytes(b"".join(f.data for f in frames[keyframes[1]:]))
        assert int(ffprobe_frames(tail)["nb_read_frames"]) == len(frames) - keyframes[1]


def test_restart_begins_with_a_keyframe_each_time(camera_720p30: Picamera2Camera) -> None:
    first = record(camera_720p30, 1.0)
    second = record(camera_720p30, 1.0)
    for rec in (first, second):
        assert rec.errors == []
        assert len(rec.frames) >= FPS // 2
        assert rec.frames[0].keyframe and NAL_SPS in nal_types(rec.frames[0].data)
    assert second.frames[0].pts_ns > first.frames[-1].pts_ns


def test_a_session_records_from_the_camera(config) -> None:  # type: ignore[no-untyped-def]
    from appliance.capture.devices import make_camera, new_marker
    from appliance.capture.session import Session
    from appliance.catalog import Catalog

    cfg = dataclasses.replace(
        config,
        camera=dataclasses.replace(config.camera, backend="picamera2", resolution="720p",
                                   fps=FPS),
        microphone=dataclasses.replace(config.microphone, backend="none"))
    camera = make_camera(cfg, new_marker())
    catalog = Catalog(cfg.data_path)
    try:
        camera.open()
        session = Session(catalog=catalog, config=cfg, camera=camera, mic=None)
        session.start()
        time.sleep(SECONDS)
        result = session.stop(timeout=120)
    finally:
        camera.close()
        catalog.close()
    assert result.status == "ready", result.problems
    assert result.path is not None and result.path.exists()
    assert result.video_frames is not None
    assert abs(result.video_frames - SECONDS * FPS) <= 9
    assert result.dropped_frames == 0
