"""The live preview on a real Raspberry Pi camera: `pytest -m hardware tests/hardware`.

Skipped, with the reason, wherever test_picamera2_hw.py is (no picamera2, no camera).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from appliance.capture.camera_picamera2 import Picamera2Camera
from tests.hardware.test_picamera2_hw import FPS, FRAME_NS, record  # skips without a camera

pytestmark = [pytest.mark.hardware, pytest.mark.timeout(180)]
SECONDS = 6.0


@pytest.fixture
def camera() -> Iterator[Picamera2Camera]:
    cam = Picamera2Camera(width=1280, height=720, fps=FPS, bitrate=6_000_000,
                          keyframe_interval_s=1.0, preview_fps=4.0)
    cam.open()
    yield cam
    cam.close()


def test_idle_preview_is_a_fresh_small_jpeg(camera: Picamera2Camera) -> None:
    frame = camera.preview_jpeg()
    assert frame is not None
    assert (frame.width, frame.height) == (640, 360)
    assert frame.jpeg.startswith(b"\xff\xd8") and frame.jpeg.endswith(b"\xff\xd9")
    # SensorTimestamp is on the capture clock: the picture is a fraction of a second old.
    assert 0 < time.monotonic_ns() - frame.taken_ns < 1_000_000_000


def test_recording_polled_by_the_tablet_loses_no_frame(camera: Picamera2Camera) -> None:
    taken: set[int] = set()
    stop = threading.Event()

    def tablet() -> None:
        while not stop.wait(0.2):  # 5 polls a second
            frame = camera.preview_jpeg()
            assert frame is not None
            taken.add(frame.taken_ns)

    poller = threading.Thread(target=tablet, daemon=True)
    poller.start()
    try:
        rec = record(camera, SECONDS)
    finally:
        stop.set()
        poller.join(10)
    assert rec.errors == []
    gaps = [b.pts_ns - a.pts_ns for a, b in zip(rec.frames, rec.frames[1:])]
    assert max(gaps) <= 1.5 * FRAME_NS, f"a gap of {max(gaps) / 1e6:.1f} ms: a frame lost"
    assert len(taken) >= SECONDS * 4 * 0.75, f"only {len(taken)} preview pictures"
