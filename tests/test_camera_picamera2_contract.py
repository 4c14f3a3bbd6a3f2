"""Picamera2Camera against a fake picamera2 that follows the real API (tests/fake_picamera2.py).

Every wait is on a condition with a timeout; nothing sleeps hoping something happened.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

from appliance.capture import camera_picamera2
from appliance.capture.camera_picamera2 import (
    INSTALL_HINT,
    Picamera2Camera,
    load_picamera2,
    packed_yuv420,
)
from appliance.capture.h264 import NAL_IDR, NAL_SPS, nal_types
from appliance.capture.preview import GRAB_TIMEOUT_S
from appliance.capture.sources import VideoFrame
from appliance.errors import BusyError, CameraError
from tests.fake_picamera2 import FakeState, lores_luma, make_fake_picamera2
from tests.test_live_preview import decode_gray

pytestmark = pytest.mark.timeout(20)

WAIT = 5.0  # generous upper bound for any single wait; passing runs never reach it
BOTH_PIS = pytest.mark.parametrize("pi5", [False, True], ids=["pi4-v4l2", "pi5-libav"])


class Recorder:
    """Collects frames and errors from a camera and lets a test wait for them."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.frames: list[VideoFrame] = []
        self.received_ns: list[int] = []
        self.errors: list[str] = []
        self.threads: set[str] = set()
        self._fail_on = fail_on
        self._cond = threading.Condition()

    def on_frame(self, frame: VideoFrame) -> None:
        with self._cond:
            self.frames.append(frame)
            self.received_ns.append(time.monotonic_ns())
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()
            n = len(self.frames)
        if self._fail_on is not None and n == self._fail_on:
            raise ValueError("disk full")

    def on_error(self, reason: str) -> None:
        with self._cond:
            self.errors.append(reason)
            self._cond.notify_all()

    def wait_frames(self, n: int, timeout: float = WAIT) -> list[VideoFrame]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.frames) >= n, timeout), \
                f"only {len(self.frames)} of {n} frames arrived"
            return list(self.frames)

    def wait_error(self, timeout: float = WAIT) -> str:
        with self._cond:
            assert self._cond.wait_for(lambda: self.errors, timeout), "no error was reported"
            return self.errors[0]


def make_camera(module: Any, **kw: Any) -> Picamera2Camera:
    params: dict[str, Any] = dict(width=640, height=480, fps=30, bitrate=2_000_000,
                                  keyframe_interval_s=0.2, stall_timeout_s=0.4,
                                  picamera2_module=module)
    params.update(kw)
    return Picamera2Camera(**params)


@pytest.fixture
def cameras():
    """Closes every camera a test made, even when the test fails."""
    made: list[Picamera2Camera] = []
    yield made
    for cam in made:
        try:
            cam.close()
        except CameraError:
            pass


def camera_for(made: list[Picamera2Camera], /,
               **options: Any) -> tuple[Picamera2Camera, FakeState]:
    """A camera on a fresh fake; camera keywords go to the camera, the rest to the fake."""
    cam_kw = {k: options.pop(k) for k in list(options)
              if k in ("width", "height", "fps", "bitrate", "keyframe_interval_s",
                       "stall_timeout_s", "preview_fps", "preview_width", "preview_watch_s")}
    module = make_fake_picamera2(**options)
    cam = make_camera(module, **cam_kw)
    made.append(cam)
    return cam, module.fake


# -- check --------------------------------------------------------------------------------

def test_check_passes_with_a_camera(cameras):
    cam, state = camera_for(cameras)
    cam.check()
    assert state.owner is None  # checking does not take the camera


def test_check_without_camera_says_what_to_do(cameras):
    cam, _ = camera_for(cameras, cameras=0)
    with pytest.raises(CameraError, match="no camera found.*ribbon cable"):
        cam.check()


def test_open_without_camera_is_a_camera_error(cameras):
    cam, _ = camera_for(cameras, cameras=0)
    with pytest.raises(CameraError, match="no camera found"):
        cam.open()


def test_missing_picamera2_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail
    with pytest.raises(CameraError) as e:
        load_picamera2()
    assert INSTALL_HINT in str(e.value)
    cam = make_camera(None)
    with pytest.raises(CameraError, match="picamera2 cannot be imported"):
        cam.check()


def test_picamera2_is_not_installed_on_this_machine():
    try:
        import picamera2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("picamera2 is installed here: the hardware tests cover it")
    with pytest.raises(CameraError, match="system-site-packages"):
        Picamera2Camera(width=1280, height=720, fps=30, bitrate=6_000_000,
                        keyframe_interval_s=1.0).check()


# -- open / configure ---------------------------------------------------------------------

@pytest.mark.parametrize("fps, duration", [(30, 33333), (25, 40000), (15, 66667)])
def test_open_configures_yuv420_at_the_size_and_a_fixed_frame_rate(cameras, fps, duration):
    cam, state = camera_for(cameras, width=1280, height=720, fps=fps)
    cam.open()
    (config,) = state.configs
    assert config["main"]["format"] == "YUV420"
    assert config["main"]["size"] == (1280, 720)
    assert config["controls"]["FrameDurationLimits"] == (duration, duration)
    assert config["encode"] == "main"
    picam = state.owner
    assert picam is not None and picam.started  # warm: a start records at once
    cam.open()  # a second open is a no-op
    assert len(state.configs) == 1


def test_busy_camera_is_refused_with_a_reason(cameras):
    cam, state = camera_for(cameras, busy=True)
    with pytest.raises(CameraError, match="another program.*Only one process"):
        cam.open()
    assert state.owner is None


def test_camera_owned_by_another_user_is_refused(cameras):
    module = make_fake_picamera2()
    first, second = make_camera(module), make_camera(module)
    cameras += [first, second]
    first.open()
    with pytest.raises(CameraError, match="another program"):
        second.open()
    first.close()
    second.open()  # released by the close
    assert module.fake.owner is second._picam


@pytest.mark.parametrize("size, fmt", [((1296, 736), None), ((1280, 720), "XBGR8888"),
                                       ((640, 480), "YUV420")],
                         ids=["size-adjusted", "format-changed", "downscaled"])
def test_a_stream_libcamera_changed_is_refused(cameras, size, fmt):
    cam, state = camera_for(cameras, width=1280, height=720, negotiated_size=size,
                            negotiated_format=fmt)
    with pytest.raises(CameraError, match=r"instead of YUV420 \(1280, 720\)") as e:
        cam.open()
    assert str(size) in str(e.value) and (fmt or "YUV420") in str(e.value)
    assert "choose another resolution" in str(e.value)
    assert state.owner is None  # released for the next attempt
    assert all(not p.is_open for p in state.instances)
    with pytest.raises(CameraError):
        cam.start(Recorder().on_frame, Recorder().on_error)
    assert state.encoders == []


# -- start: frames, timestamps, encoder ---------------------------------------------------

@BOTH_PIS
def test_frames_carry_sensor_time_on_the_monotonic_clock(cameras, pi5):
    cam, state = camera_for(cameras, pi5=pi5, fps=30, keyframe_interval_s=0.2)
    rec = Recorder()
    before = time.monotonic_ns()
    cam.start(rec.on_frame, rec.on_error)
    frames = rec.wait_frames(13)
    cam.stop()
    assert rec.errors == []
    encoder = state.encoders[-1]
    first_us = encoder.firsttimestamp
    sensor = state.sensor_timestamps
    assert first_us == sensor[0] // 1000
    for i, frame in enumerate(frames[:13]):
        # firsttimestamp + picamera2's relative µs, back in ns: the sensor time to the µs
        assert frame.pts_ns == sensor[i] // 1000 * 1000
        assert before - 100_000_000 < frame.pts_ns <= rec.received_ns[i]
        assert rec.received_ns[i] - frame.pts_ns < 1_000_000_000
    gaps = [b.pts_ns - a.pts_ns for a, b in zip(frames, frames[1:])]
    assert all(abs(g - 33_333_000) <= 1_000 for g in gaps)


@BOTH_PIS
def test_keyframes_start_each_run_and_repeat_with_sps(cameras, pi5):
    cam, _ = camera_for(cameras, pi5=pi5, fps=30, keyframe_interval_s=0.2)  # iperiod 6
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    frames = rec.wait_frames(13)
    cam.stop()
    flags = [f.keyframe for f in frames[:13]]
    assert flags == [i % 6 == 0 for i in range(13)]
    for f in frames[:13]:
        types = nal_types(f.data)
        assert f.data.startswith(b"\x00\x00\x00\x01")
        assert (NAL_SPS in types and NAL_IDR in types) == f.keyframe
        assert isinstance(f.data, bytes)


@BOTH_PIS
def test_encoder_is_built_for_the_stream(cameras, pi5):
    cam, state = camera_for(cameras, pi5=pi5, width=1280, height=720, fps=25,
                            bitrate=4_000_000, keyframe_interval_s=2.0)
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    rec.wait_frames(1)
    (encoder,) = state.encoders
    module = cam._picamera2()
    assert type(encoder) is module.encoders.H264Encoder
    assert type(encoder).__name__ == ("LibavH264Encoder" if pi5 else "H264Encoder")
    assert encoder.bitrate == 4_000_000
    assert encoder.repeat is True
    assert encoder.iperiod == 50  # fps * keyframe_interval_s
    assert encoder.framerate == 25
    assert (encoder.width, encoder.height, encoder.format) == (1280, 720, "YUV420")
    output = encoder.output
    assert isinstance(output, module.outputs.Output) and output.recording
    cam.stop()
    assert not output.recording and not encoder.running


@BOTH_PIS
def test_fake_encoders_reject_unknown_keywords_like_the_real_ones(pi5):
    module = make_fake_picamera2(pi5=pi5)
    with pytest.raises(TypeError):
        module.encoders.H264Encoder(bitrate=1, gop_size=30)
    # the only keywords our backend uses are accepted by both
    module.encoders.H264Encoder(bitrate=1, repeat=True, iperiod=30, framerate=30)
    with pytest.raises(RuntimeError, match="Must pass Output"):
        module.encoders.H264Encoder().output = object()


def test_start_twice_is_refused(cameras):
    cam, _ = camera_for(cameras)
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    with pytest.raises(CameraError, match="already recording"):
        cam.start(rec.on_frame, rec.on_error)


@BOTH_PIS
def test_each_start_begins_with_a_keyframe_and_a_fresh_timeline(cameras, pi5):
    cam, state = camera_for(cameras, pi5=pi5, keyframe_interval_s=1.0)
    first, second = Recorder(), Recorder()
    cam.start(first.on_frame, first.on_error)
    a = first.wait_frames(3)
    cam.stop()
    cam.start(second.on_frame, second.on_error)
    b = second.wait_frames(3)
    cam.stop()
    assert a[0].keyframe and b[0].keyframe
    assert not any(f.keyframe for f in b[1:3])
    assert b[0].pts_ns > first.frames[-1].pts_ns
    assert len(state.encoders) == 2 and state.encoders[0] is not state.encoders[1]
    assert first.errors == second.errors == []


# -- stop ---------------------------------------------------------------------------------

@BOTH_PIS
def test_no_frames_arrive_after_stop(cameras, pi5):
    cam, state = camera_for(cameras, pi5=pi5)
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    rec.wait_frames(3)
    cam.stop()
    delivered = len(rec.frames)
    exposed = len(state.sensor_timestamps)
    # The camera keeps running (warm for the next start): let it make 3 more frames.
    assert state.wait_for(lambda s: len(s.sensor_timestamps) >= exposed + 3, WAIT)
    assert len(rec.frames) == delivered
    assert rec.errors == []
    cam.stop()  # a second stop is harmless


def test_frames_the_encoder_flushes_while_stopping_are_delivered(cameras):
    cam, state = camera_for(cameras, pi5=True, libav_delay=3)
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    rec.wait_frames(2)
    cam.stop()
    frames = len(rec.frames)
    assert frames == state.frames_output  # the 3 held back came out before stop returned
    # every frame the sensor made while the encoder ran was delivered, in order
    pts = [f.pts_ns for f in rec.frames]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    assert pts == [t // 1000 * 1000 for t in state.sensor_timestamps[:frames]]


def test_stopping_before_any_frame_is_fine(cameras):
    cam, state = camera_for(cameras, fps=10)
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    cam.stop()
    assert rec.errors == []
    assert state.thread_errors == []


# -- failures -----------------------------------------------------------------------------

@BOTH_PIS
@pytest.mark.parametrize("where", ["encoder", "sensor"])
def test_a_stall_is_reported_once_with_a_reason(cameras, pi5, where):
    cam, state = camera_for(cameras, pi5=pi5, stall_after=4, stall_in=where,
                            stall_timeout_s=0.3)
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    reason = rec.wait_error()
    assert len(rec.frames) == 4
    assert reason.startswith("camera: ")
    assert "no frames for 0.3 s" in reason and "ribbon cable" in reason
    watchdog = cam._watchdog
    assert watchdog is not None
    watchdog.join(WAIT)
    assert not watchdog.is_alive()
    assert rec.errors == [reason]  # exactly once
    cam.stop()
    assert rec.errors == [reason]
    assert state.thread_errors == []


@BOTH_PIS
def test_a_failing_frame_handler_is_reported_not_fatal_to_picamera2(cameras, pi5):
    cam, state = camera_for(cameras, pi5=pi5)
    rec = Recorder(fail_on=3)
    cam.start(rec.on_frame, rec.on_error)
    reason = rec.wait_error()
    assert "frame handler failed" in reason and "disk full" in reason
    # picamera2's encoder thread lives on: it keeps encoding, we just stop passing frames on
    out = state.frames_output
    assert state.wait_for(lambda s: s.frames_output >= out + 3, WAIT)
    assert state.thread_errors == []
    assert len(rec.frames) == 3
    assert rec.errors == [reason]
    cam.stop()
    assert rec.errors == [reason]


def test_no_error_is_reported_for_a_normal_stop(cameras):
    # A stall timeout a loaded machine cannot trip by pausing the process: only a stop
    # that wrongly reported an error would fail this.
    cam, _ = camera_for(cameras, stall_timeout_s=1.0)
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    rec.wait_frames(2)
    cam.stop()
    assert cam._watchdog is not None and not cam._watchdog.is_alive()
    assert rec.errors == []


# -- close --------------------------------------------------------------------------------

def test_close_releases_the_camera_and_can_repeat(cameras):
    cam, state = camera_for(cameras)
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    rec.wait_frames(2)
    picam = state.owner
    cam.close()
    assert state.owner is None
    assert not picam.is_open and not picam.started and picam.encoders == set()
    cam.close()  # safe twice
    n = len(rec.frames)
    # and the camera can be opened again (by us or by another program)
    again = make_camera(cam._picamera2())
    cameras.append(again)
    again.start(rec.on_frame, rec.on_error)
    rec.wait_frames(n + 2)
    again.close()
    assert state.owner is None and state.thread_errors == []


def test_close_without_open_is_harmless():
    cam = make_camera(make_fake_picamera2())
    cam.close()
    cam.close()


def test_context_manager_opens_and_closes(cameras):
    cam, state = camera_for(cameras)
    with cam:
        assert state.owner is not None
    assert state.owner is None


def test_backend_module_imports_without_picamera2():
    assert camera_picamera2.Picamera2Camera.name == "picamera2"


# -- live preview (lores stream, capture_arrays, a niced ffmpeg) ----------------------------

def test_open_adds_a_small_yuv420_lores_stream_beside_main(cameras):
    cam, state = camera_for(cameras, width=1920, height=1080)
    cam.open()
    (config,) = state.configs
    assert config["lores"]["size"] == (640, 360) and config["lores"]["format"] == "YUV420"
    assert config["main"]["size"] == (1920, 1080) and config["encode"] == "main"
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    rec.wait_frames(2)
    (encoder,) = state.encoders  # the recording's encoder alone, on the main stream
    assert encoder.name == "main" and (encoder.width, encoder.height) == (1920, 1080)
    cam.stop()


@BOTH_PIS
def test_idle_preview_is_a_jpeg_of_the_lores_picture(cameras, pi5, tmp_path):
    cam, state = camera_for(cameras, pi5=pi5, width=1280, height=720)
    cam.open()
    frame = cam.preview_jpeg()
    assert (frame.width, frame.height) == (640, 360)
    assert frame.jpeg.startswith(b"\xff\xd8")
    k = state.sensor_timestamps.index(frame.taken_ns)  # a real request's SensorTimestamp
    luma = decode_gray(frame.jpeg, tmp_path, (640, 360))
    full_range = (lores_luma(k) - 16) * 255 / 219  # a video-range picture, a JPEG's range
    assert abs(float(luma.mean()) - full_range) < 3 and float(luma.std()) < 2
    # Copied out on picamera2's own thread by a capture job; no second encoder.
    assert state.capture_threads == {"fake-picamera2-loop"}
    assert state.encoders == []


def test_packed_yuv420_drops_each_planes_padding():
    w, h, stride = 6, 4, 8
    array = np.full((h * 3 // 2, stride), 255, np.uint8)
    flat = array.reshape(-1)
    flat[:h * stride].reshape(h, stride)[:, :w] = np.arange(w * h).reshape(h, w)
    chroma = flat[h * stride:].reshape(2, h // 2, stride // 2)
    chroma[0, :, :w // 2], chroma[1, :, :w // 2] = 100, 200
    assert packed_yuv420(array, w, h) == bytes(range(24)) + bytes([100] * 6 + [200] * 6)


def test_preview_of_a_padded_lores_stream_shows_no_padding(cameras, tmp_path):
    cam, state = camera_for(cameras, width=1280, height=720, preview_width=400)
    cam.open()
    (config,) = state.configs
    assert config["lores"]["size"] == (400, 224) and config["lores"]["stride"] == 448
    frame = cam.preview_jpeg()
    luma = decode_gray(frame.jpeg, tmp_path, (400, 224))
    assert int(luma.max()) - int(luma.min()) < 8  # the padding bytes are 255


@BOTH_PIS
def test_preview_while_recording_costs_no_frame(cameras, pi5):
    cam, state = camera_for(cameras, pi5=pi5, fps=30, preview_fps=4.0)
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    taken = set()
    start = time.monotonic()
    while time.monotonic() - start < 1.5:
        taken.add(cam.preview_jpeg().taken_ns)
        time.sleep(0.05)  # the tablet polls at 20 Hz; the camera makes 4 a second
    frames = rec.wait_frames(40)
    cam.stop()
    assert rec.errors == [] and state.thread_errors == []
    gaps = [b.pts_ns - a.pts_ns for a, b in zip(frames, frames[1:])]
    assert all(abs(g - 33_333_000) <= 1_000 for g in gaps)  # every sensor frame recorded
    assert 3 <= len(taken) <= 1.5 * 4 + 2 and state.captures <= 1.5 * 4 + 2
    assert taken <= set(state.sensor_timestamps)


def test_nobody_watching_stops_the_captures(cameras):
    cam, state = camera_for(cameras, preview_watch_s=0.4)
    cam.open()
    cam.preview_jpeg()
    assert cam.preview is not None and cam.preview.producing
    deadline = time.monotonic() + WAIT
    while cam.preview.producing or cam.preview.encoder_pid is not None:
        assert time.monotonic() < deadline, "the preview kept running"
        time.sleep(0.02)
    n = state.captures
    time.sleep(0.5)  # nobody asks: nothing may be captured
    assert state.captures == n


def test_a_camera_that_cannot_make_lores_records_without_preview(cameras, caplog):
    cam, state = camera_for(cameras, lores_refused=True)
    cam.open()
    assert state.configs[-1]["lores"] is None
    assert "recording without live preview" in caplog.text
    assert cam.preview_jpeg() is None
    rec = Recorder()
    cam.start(rec.on_frame, rec.on_error)
    rec.wait_frames(3)
    cam.stop()


def test_preview_of_a_closed_camera_is_busy(cameras):
    cam, _ = camera_for(cameras)
    with pytest.raises(BusyError, match="not open"):
        cam.preview_jpeg()
    cam.open()
    cam.preview_jpeg()
    cam.close()
    with pytest.raises(BusyError, match="not open"):
        cam.preview_jpeg()


def test_close_while_watched_leaves_no_capture_queued(cameras):
    cam, state = camera_for(cameras)
    cam.open()
    cam.preview_jpeg()
    cam.close()
    assert state.owner is None and state.jobs_pending_at_stop == 0
    assert state.thread_errors == []


def test_a_stalled_camera_leaves_no_capture_queued(cameras):
    """A capture that timed out is cancelled: picamera2's stop() would queue behind it."""
    cam, state = camera_for(cameras, stall_in="sensor", stall_after=3)
    cam.open()
    assert state.wait_for(lambda st: len(st.sensor_timestamps) >= 3, WAIT)
    assert cam.preview_jpeg() is not None  # the one request picamera2 held back
    time.sleep(GRAB_TIMEOUT_S / 2)  # the next capture now waits for a frame that never comes
    cam.close()
    assert state.jobs_pending_at_stop == 0 and state.owner is None
