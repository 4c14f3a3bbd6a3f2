"""The live preview for the tablet: the synthetic camera's real picture through a real
ffmpeg JPEG encoder, idle and while recording, through the daemon's socket, and never
at the cost of a recorded frame."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance import ffmpeg_tool
from appliance.capture.camera_picamera2 import Picamera2Camera
from appliance.capture.camera_synthetic import SyntheticCamera
from appliance.capture.devices import new_marker
from appliance.capture.jpeg_encoder import JpegEncoder, jpeg_encoder_argv, jpeg_length
from appliance.capture.mic_synthetic import SyntheticMicrophone
from appliance.capture.picture import SyntheticPicture, is_white, read_frame_index
from appliance.capture.session import Session
from appliance.capture.sources import PreviewFrame, preview_size
from appliance.capture.sync_check import frame_indices, index_gaps
from appliance.catalog import Catalog, Consent
from appliance.config import Config
from appliance.errors import (
    BusyError,
    DaemonBusyError,
    DaemonFailedError,
    DaemonRequestError,
    MediaError,
)
from appliance.services.daemon import DaemonClient
from tests.fake_picamera2 import make_fake_picamera2
from tests.test_daemon import (  # noqa: F401 - fixtures
    Running,
    daemon_config,
    start_daemon,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)
FPS = 30
W, H = 1280, 720


def decode_gray(jpeg: bytes, folder: Path, size: tuple[int, int]) -> np.ndarray:
    """Decode a JPEG with ffmpeg to a grey picture of `size` (nearest neighbour)."""
    path = folder / f"picture-{time.monotonic_ns()}.jpg"
    path.write_bytes(jpeg)
    raw = ffmpeg_tool.run_bytes(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-vf",
         f"scale={size[0]}:{size[1]}:flags=neighbor", "-f", "rawvideo", "-pix_fmt", "gray",
         "pipe:1"], timeout=30, what="decoding a preview")
    path.unlink()
    return np.frombuffer(raw, np.uint8).reshape(size[1], size[0])


def shown_index(frame: PreviewFrame, folder: Path) -> int | None:
    """The frame index the synthetic picture in a preview shows (its barcode); None for
    the white sync-marker frame."""
    luma = decode_gray(frame.jpeg, folder, (W, H))
    return None if is_white(luma) else read_frame_index(luma)


def exposed_index(camera: SyntheticCamera, taken_ns: int) -> int | None:
    """The frame index exposed at `taken_ns` on the camera's grid; None for a marker."""
    if camera.marker.is_marker_frame(taken_ns, 1e9 / FPS):
        return None
    return round((taken_ns - camera.marker.epoch_ns) * FPS / 1e9)


@pytest.fixture
def camera() -> Iterator[SyntheticCamera]:
    """An open synthetic 720p camera whose preview stops 0.5 s after the last request."""
    cam = SyntheticCamera(width=W, height=H, fps=FPS, bitrate=6_000_000,
                          keyframe_interval_s=1.0, marker=new_marker(), preview_fps=4.0,
                          preview_watch_s=0.5)
    cam.open()
    yield cam
    cam.close()


def pid_running(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


# -- the pieces --------------------------------------------------------------------------

def test_encoder_argv_gives_one_jpeg_per_picture_at_once() -> None:
    argv = jpeg_encoder_argv(640, 360)
    assert argv[0] == "ffmpeg"
    i = argv.index("-i")
    assert argv[i + 1] == "pipe:0" and "pipe:1" in argv[i + 2:]
    # Input: raw pictures of the preview size, and no probing (it waits for megabytes).
    assert argv[argv.index("-f") + 1] == "rawvideo" and argv.index("-f") < i
    assert argv[argv.index("-s") + 1] == "640x360"
    assert argv[argv.index("-probesize") + 1] == "32" and argv.index("-probesize") < i
    assert argv[argv.index("-analyzeduration") + 1] == "0"
    # Output: one JPEG per picture, one encoder thread (several hold pictures back).
    out = argv[i:]
    assert out[out.index("-f") + 1] == "image2pipe"
    assert out[out.index("-vcodec") + 1] == "mjpeg"
    assert out[out.index("-threads") + 1] == "1"
    assert out[out.index("-fps_mode") + 1] == "passthrough"
    assert out[out.index("-pix_fmt") + 1] == "yuvj420p"
    assert "-nostdin" in argv


def test_jpeg_length_walks_segments_and_the_scan() -> None:
    # A COM segment holding FF D9, a scan with stuffed FF 00 and a restart marker.
    com = b"\xff\xfe\x00\x06ab\xff\xd9"
    sos = b"\xff\xda\x00\x08" + b"\x01\x01\x00\x00\x3f\x00"
    scan = b"\x12\xff\x00\x34\xff\xd0\x56"
    jpeg = b"\xff\xd8" + com + sos + scan + b"\xff\xd9"
    assert jpeg_length(jpeg + b"\xff\xd8rest") == len(jpeg)
    for cut in range(len(jpeg)):
        assert jpeg_length(jpeg[:cut]) is None, cut
    with pytest.raises(MediaError, match="not a JPEG"):
        jpeg_length(b"GIF89a")


def test_encoder_answers_each_picture_with_its_jpeg(tmp_path: Path) -> None:
    picture = SyntheticPicture(W, H)
    encoder = JpegEncoder(W, H, nice=10)
    try:
        for n in (5, 77, 1234):
            jpeg = encoder.encode(picture.frame(n), timeout_s=10)
            assert jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9")
            assert read_frame_index(decode_gray(jpeg, tmp_path, (W, H))) == n
        with pytest.raises(MediaError, match="bytes"):
            encoder.encode(b"short", timeout_s=1)
    finally:
        encoder.close()
    assert not pid_running(encoder.pid)


@pytest.mark.parametrize("size, small", [((1280, 720), (640, 360)), ((1920, 1080), (640, 360)),
                                         ((640, 480), (640, 480)), ((1280, 720), (400, 224))])
def test_preview_size_keeps_the_aspect(size: tuple[int, int], small: tuple[int, int]) -> None:
    assert preview_size(*size, small[0]) == small


# -- the synthetic camera ----------------------------------------------------------------

def test_idle_camera_shows_the_moving_picture(camera: SyntheticCamera, tmp_path: Path) -> None:
    frames, ages_ns = [], []
    for _ in range(6):
        frame = camera.preview_jpeg()
        assert frame is not None
        ages_ns.append(time.monotonic_ns() - frame.taken_ns)
        frames.append(frame)
        time.sleep(0.3)  # a tablet polling a few times a second
    assert max(ages_ns) < 2_000_000_000  # live: a picture of the last moment
    shown = [shown_index(f, tmp_path) for f in frames if f is not None]
    taken = [f.taken_ns for f in frames if f is not None]
    assert shown == [exposed_index(camera, t) for t in taken]
    numbers = [n for n in shown if n is not None]
    # Moving, never backwards (two polls may meet the same picture when one is slow).
    assert len(set(numbers)) >= 4 and numbers == sorted(numbers), shown
    assert (frames[0].width, frames[0].height) == (640, 360)


def test_preview_rate_is_capped(camera: SyntheticCamera) -> None:
    seen: set[int] = set()
    start = time.monotonic()
    while time.monotonic() - start < 2.0:
        frame = camera.preview_jpeg()
        assert frame is not None
        seen.add(frame.taken_ns)
        time.sleep(0.02)  # polled at 50 Hz: the camera still makes 4 a second
    assert 3 <= len(seen) <= 2.0 * 4 + 2, len(seen)


def test_nobody_watching_stops_the_producer(camera: SyntheticCamera, tmp_path: Path) -> None:
    assert not camera.preview.producing and camera.preview.encoder_pid is None
    camera.preview_jpeg()
    pid = camera.preview.encoder_pid
    assert camera.preview.producing and pid is not None and pid_running(pid)
    wait_until(lambda: not camera.preview.producing, "the producer to stop", timeout=5)
    wait_until(lambda: camera.preview.encoder_pid is None, "the encoder to end", timeout=5)
    assert not pid_running(pid)
    made = camera.preview.frames_made
    time.sleep(0.6)  # nothing may be made while nobody asks
    assert camera.preview.frames_made == made
    asked_ns = time.monotonic_ns()
    again = camera.preview_jpeg()  # someone looks again: a new picture, not the last one
    assert again is not None and again.taken_ns >= asked_ns - 1_000_000_000 // FPS
    assert camera.preview.encoder_pid not in (None, pid)


def test_closed_camera_has_no_preview(camera: SyntheticCamera) -> None:
    camera.preview_jpeg()
    camera.close()
    assert not camera.preview.producing
    with pytest.raises(BusyError, match="not open"):
        camera.preview_jpeg()
    camera.open()
    assert camera.preview_jpeg() is not None


@pytest.mark.slow
def test_recording_with_the_preview_polled_at_5_fps_drops_no_frame(
        config: Config, camera: SyntheticCamera, tmp_path: Path) -> None:
    mic = SyntheticMicrophone(sample_rate=48_000, block_ms=20, marker=camera.marker)
    polled: list[PreviewFrame] = []
    stop = threading.Event()

    def tablet() -> None:
        while not stop.wait(0.2):
            frame = camera.preview_jpeg()
            assert frame is not None
            polled.append(frame)

    with Catalog(config.data_path) as catalog:
        session = Session(catalog=catalog, config=config, camera=camera, mic=mic)
        session.start()
        poller = threading.Thread(target=tablet, daemon=True)
        poller.start()
        wait_until(lambda: session.first_pts_ns is not None
                   and time.monotonic_ns() - session.first_pts_ns >= 8e9, "8 s recorded")
        stop.set()
        poller.join(10)
        rec = session.stop()
    assert rec.status == "ready", rec.problems
    assert rec.dropped_frames == 0 and camera.frames_lost == 0
    assert rec.path is not None
    indices = frame_indices(rec.path)
    assert len(indices) == rec.video_frames and index_gaps(indices) == []
    distinct = sorted({f.taken_ns: f for f in polled}.values(), key=lambda f: f.taken_ns)
    assert len(distinct) >= 8 * 4 * 0.5, len(distinct)  # up to 4 a second were made
    for frame in distinct[::10]:  # the preview showed the picture being recorded
        assert shown_index(frame, tmp_path) == exposed_index(camera, frame.taken_ns)


# -- through the daemon's socket ------------------------------------------------------

@pytest.fixture
def cases(daemon_config: Config) -> Iterator[None]:  # noqa: F811 - a fixture from test_daemon
    with Catalog(daemon_config.data_path) as catalog:
        catalog.cases.add("VIG-2026-001", {Consent.FILMING: "2026-01-05"}, actor="test")
        catalog.cases.add("VIG-2026-002", {Consent.TRAINING: "2026-01-05"}, actor="test")
    yield


@pytest.mark.slow
def test_tablet_frames_the_shot_then_the_button_films_the_chosen_case(
        daemon_config: Config, start_daemon: Any, cases: None,  # noqa: F811
        tmp_path: Path) -> None:
    box: Running = start_daemon(daemon_config)
    tablet = DaemonClient(box.socket_path)
    first = tablet.preview()
    assert first.jpeg.startswith(b"\xff\xd8") and first.jpeg.endswith(b"\xff\xd9")
    assert (first.width, first.height, first.state) == (640, 360, "ready")
    assert decode_gray(first.jpeg, tmp_path, (640, 360)).shape == (360, 640)

    with pytest.raises(DaemonRequestError, match="no consent to filming"):
        tablet.set_case("VIG-2026-002")
    with pytest.raises(DaemonRequestError, match="no case"):
        tablet.set_case("VIG-0000-404")
    for wrong in ({"case": 42}, {"case": ""}, {}):  # a missing case never clears it
        with pytest.raises(DaemonRequestError, match="case code or null"):
            box.ctl("case", **wrong)
    assert tablet.status()["case"] is None
    assert tablet.set_case("VIG-2026-001") == {"case": "VIG-2026-001"}
    assert tablet.status()["case"] == "VIG-2026-001"

    box.press()
    wait_until(lambda: tablet.status()["state"] == "recording", "recording")
    during = []
    for _ in range(3):
        time.sleep(0.3)  # the tablet polls a few times a second
        during.append(tablet.preview())
    assert all(p.state == "recording" for p in during)
    assert during[0].taken_ns > first.taken_ns and during[-1].taken_ns > during[0].taken_ns
    box.press(hold_s=0.6)
    wait_until(lambda: tablet.status()["state"] == "ready", "ready again")
    rec = box.daemon.catalog.recordings.get(box.daemon.last_recording or "")
    assert rec.case == "VIG-2026-001" and rec.status == "ready"
    # The choice was for that recording: the next one is not filed under it unasked.
    assert tablet.status()["case"] is None
    assert tablet.set_case("VIG-2026-001") == {"case": "VIG-2026-001"}
    assert tablet.set_case(None) == {"case": None}
    assert tablet.status()["case"] is None


def test_preview_of_a_camera_that_is_not_open_is_busy(
        daemon_config: Config, start_daemon: Any) -> None:  # noqa: F811
    box: Running = start_daemon(daemon_config)
    box.daemon.camera.close()
    with pytest.raises(DaemonBusyError, match="not open") as refused:
        DaemonClient(box.socket_path).preview()
    assert refused.value.kind == "busy"


def test_a_camera_without_preview_says_so(
        daemon_config: Config, start_daemon: Any) -> None:  # noqa: F811
    box: Running = start_daemon(daemon_config)
    no_lores = Picamera2Camera(width=W, height=H, fps=FPS, bitrate=6_000_000,
                               keyframe_interval_s=1.0,
                               picamera2_module=make_fake_picamera2(lores_refused=True))
    no_lores.open()
    box.daemon.camera.close()
    box.daemon.camera = no_lores  # the daemon closes it when it stops
    with pytest.raises(DaemonFailedError, match="picamera2.*offers no live preview"):
        DaemonClient(box.socket_path).preview()
