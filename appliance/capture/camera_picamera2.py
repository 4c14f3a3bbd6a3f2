"""The Raspberry Pi camera through picamera2: H.264 access units on the sensor clock.

picamera2 is imported only when the camera is checked or opened, so this module
imports on any machine. Each encoded frame reaches a small `Output` whose only job
is to restore the sensor timestamp and hand the frame on without blocking.

The live preview comes from a small "lores" stream configured beside the main one:
while someone watches, the preview thread copies a lores picture out a few times a
second (`capture_arrays(["lores"])`, a 0.3 MB copy on picamera2's thread) and a niced
ffmpeg makes the JPEG. Not a second picamera2 encoder: on a Pi 5 MJPEGEncoder is
libav, run on picamera2's one event-loop thread beside the recording's H.264 encoder,
so every preview picture would be encoded in the recording's frame time.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

import numpy as np

from appliance.capture.preview import PREVIEW_WATCH_S, LivePreview
from appliance.capture.sources import (
    Camera,
    ErrorCallback,
    FrameCallback,
    PreviewFrame,
    VideoFrame,
    preview_size,
)
from appliance.errors import BusyError, CameraError

log = logging.getLogger(__name__)
INSTALL_HINT = "install python3-picamera2 and create the venv with --system-site-packages"
# (frame bytes, keyframe, picamera2 timestamp in µs since the encoder's first frame)
Deliver = Callable[[bytes, bool, int | None], None]


def load_picamera2() -> Any:
    """The picamera2 package with its encoders and outputs loaded, or a CameraError."""
    try:
        module = importlib.import_module("picamera2")
        importlib.import_module("picamera2.encoders")
        importlib.import_module("picamera2.outputs")
    except ImportError as e:
        raise CameraError(f"picamera2 cannot be imported ({e}); {INSTALL_HINT}") from None
    return module


def make_output(output_base: type, deliver: Deliver) -> Any:
    """An Output for `deliver`; built at run time because encoders accept only
    instances of picamera2's own Output class, which exists only once it is imported."""

    class FrameOutput(output_base):
        def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                        packet: Any = None, audio: bool = False) -> None:
            if not audio:  # an encoder may also carry audio packets; ours never asks for them
                deliver(frame, keyframe, timestamp)

    return FrameOutput()


def packed_yuv420(array: Any, width: int, height: int) -> bytes:
    """Plain yuv420p bytes from picamera2's YUV420 array: (height * 3 / 2) rows of
    `stride` bytes, each plane's rows padded to its stride (the chroma planes' to half)."""
    flat = np.ascontiguousarray(array, dtype=np.uint8).reshape(-1)
    stride = int(array.shape[1])
    cw, ch, cstride = width // 2, height // 2, stride // 2
    y_end = height * stride
    u_end = y_end + ch * cstride
    luma = flat[:y_end].reshape(height, stride)[:, :width]
    u = flat[y_end:u_end].reshape(ch, cstride)[:, :cw]
    v = flat[u_end:u_end + ch * cstride].reshape(ch, cstride)[:, :cw]
    return luma.tobytes() + u.tobytes() + v.tobytes()


class Picamera2Camera(Camera):
    """The Pi camera module: a YUV420 stream at a fixed frame rate into picamera2's H.264
    encoder (V4L2 hardware on Pi 4, libx264 on Pi 5, both named H264Encoder)."""

    name = "picamera2"

    def __init__(self, *, width: int, height: int, fps: int, bitrate: int,
                 keyframe_interval_s: float, picamera2_module: Any = None,
                 stall_timeout_s: float = 2.0, preview_fps: float = 4.0,
                 preview_width: int = 640, preview_watch_s: float = PREVIEW_WATCH_S) -> None:
        super().__init__(width=width, height=height, fps=fps, bitrate=bitrate,
                         keyframe_interval_s=keyframe_interval_s, preview_fps=preview_fps,
                         preview_width=preview_width)
        self._module = picamera2_module  # None: import the real one when first needed
        self.stall_timeout_s = stall_timeout_s
        self.preview_watch_s = preview_watch_s
        self.preview: LivePreview | None = None   # while open with a lores stream
        self._picam: Any = None
        self._encoder: Any = None
        self._on_frame: FrameCallback | None = None
        self._on_error: ErrorCallback | None = None
        self._stopping = threading.Event()
        self._fail_lock = threading.Lock()
        self._failed = False
        self._last_frame_ns = 0
        self._watchdog: threading.Thread | None = None

    @property
    def frame_duration_us(self) -> int:
        """Sensor frame time; min = max pins the frame rate (libcamera works in µs)."""
        return round(1_000_000 / self.fps)

    def _picamera2(self) -> Any:
        if self._module is None:
            self._module = load_picamera2()
        return self._module

    def check(self) -> None:
        """CameraError if picamera2 is missing or libcamera sees no camera."""
        module = self._picamera2()
        if self._picam is not None:
            return  # ours already, and open
        try:
            cameras = module.Picamera2.global_camera_info()
        except (RuntimeError, OSError) as e:
            raise CameraError(f"libcamera could not list cameras ({e})") from None
        if not cameras:
            raise CameraError("no camera found: check the ribbon cable at both ends and that "
                              "`rpicam-hello --list-cameras` lists the camera")

    def open(self) -> None:
        """Open, configure and start the camera so a recording starts at once."""
        if self._picam is not None:
            return
        self.check()
        try:
            picam = self._picamera2().Picamera2()
        except (RuntimeError, IndexError) as e:
            raise CameraError(f"could not open the camera ({e}); is another program using it? "
                              "Only one process can own the camera") from None
        try:
            self._configure(picam)
        except BaseException:
            with contextlib.suppress(RuntimeError):
                picam.close()
            raise
        self._picam = picam

    def _configure(self, picam: Any) -> None:
        size, d = (self.width, self.height), self.frame_duration_us
        main_stream = {"size": size, "format": "YUV420"}
        controls = {"FrameDurationLimits": (d, d)}
        lores = {"size": preview_size(*size, self.preview_width), "format": "YUV420"}
        try:
            try:
                picam.configure(picam.create_video_configuration(
                    main=main_stream, lores=lores, controls=controls))
            except (RuntimeError, ValueError) as e:
                # The recording matters more than its preview.
                log.warning("the camera refused the preview stream (%s); recording without "
                            "live preview", e)
                picam.configure(picam.create_video_configuration(
                    main=main_stream, controls=controls))
            chosen = picam.camera_configuration()
            main = chosen["main"]
            # libcamera may silently adjust a request; recording something else is worse.
            if tuple(main["size"]) != size or main["format"] != "YUV420":
                raise CameraError(f"the camera offers {main['format']} {main['size']} instead "
                                  f"of YUV420 {size}; choose another resolution")
            picam.start()
        except RuntimeError as e:
            raise CameraError(f"the camera could not be configured ({e})") from None
        small = chosen.get("lores")
        if small is not None and small["format"] == "YUV420":
            width, height = (int(n) for n in small["size"])
            self.preview = LivePreview(self._grab_lores, width=width, height=height,
                                       fps=self.preview_fps, watch_s=self.preview_watch_s)

    def preview_jpeg(self) -> PreviewFrame | None:
        """The newest preview picture from the lores stream; None without one."""
        if self._picam is None:
            raise BusyError("the camera is not open")
        return self.preview.request() if self.preview is not None else None

    def _grab_lores(self, timeout_s: float) -> tuple[bytes, int] | None:
        # On the preview's thread; picamera2 copies the picture out on its own thread.
        picam, preview = self._picam, self.preview
        if picam is None or preview is None:
            return None
        try:
            (array,), metadata = picam.capture_arrays(["lores"], wait=timeout_s)
        except TimeoutError:
            # No frame (a stall is the watchdog's to report). The job would stay queued,
            # and picamera2's stop() queues behind it: cancel it, as picamera2 advises
            # (cancel_all_and_flush: picamera2 0.3.20 and later).
            log.debug("no lores picture within %g s", timeout_s)
            cancel = getattr(picam, "cancel_all_and_flush", None)
            if cancel is not None:
                cancel()
            return None
        except (CancelledError, RuntimeError) as e:
            log.debug("no lores picture: %r", e)
            return None
        picture = packed_yuv420(array, preview.width, preview.height)
        return picture, int(metadata["SensorTimestamp"])

    def start(self, on_frame: FrameCallback, on_error: ErrorCallback) -> None:
        """Attach a fresh H.264 encoder; its first frame is a keyframe with SPS/PPS."""
        if self._encoder is not None:
            raise CameraError("the camera is already recording")
        self.open()
        module = self._picamera2()
        self._on_frame, self._on_error = on_frame, on_error
        self._failed = False
        self._stopping.clear()
        self._last_frame_ns = time.monotonic_ns()
        # Only keywords that both H264Encoder (V4L2) and LibavH264Encoder (Pi 5) accept.
        encoder = module.encoders.H264Encoder(bitrate=self.bitrate, repeat=True,
                                              iperiod=self.iperiod, framerate=self.fps)
        output = make_output(module.outputs.Output, functools.partial(self._deliver, encoder))
        try:
            self._picam.start_encoder(encoder, output)
        except (RuntimeError, OSError) as e:
            raise CameraError(f"the H.264 encoder would not start ({e})") from None
        self._encoder = encoder
        self._watchdog = threading.Thread(target=self._watch, name="picamera2-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def _deliver(self, encoder: Any, frame: bytes, keyframe: bool,
                 timestamp_us: int | None) -> None:
        # Runs on picamera2's encoder thread: no I/O, no waiting, only a hand-over.
        on_frame = self._on_frame
        if self._failed or on_frame is None:
            return
        first_us = getattr(encoder, "firsttimestamp", None)
        if timestamp_us is None or first_us is None:
            self._report("picamera2 gave a frame without its sensor timestamp; "
                         "update python3-picamera2")
            return
        # picamera2 passes SensorTimestamp (CLOCK_MONOTONIC) in µs minus the first frame's
        # (Encoder._timestamp); adding firsttimestamp back puts it on the capture clock.
        pts_ns = (first_us + int(timestamp_us)) * 1000
        self._last_frame_ns = time.monotonic_ns()
        try:
            on_frame(VideoFrame(bytes(frame), pts_ns, bool(keyframe)))
        except Exception as e:  # noqa: BLE001 - escaping, it would silently end picamera2's
            # encoder thread
            self._report(f"the frame handler failed: {e!r}")

    def _watch(self) -> None:
        # picamera2 has no error callback: a loose cable or a dead encoder thread shows
        # only as frames that stop coming.
        limit_ns = int(self.stall_timeout_s * 1e9)
        while not self._stopping.wait(min(0.25, self.stall_timeout_s / 4)):
            if self._failed:
                return
            if time.monotonic_ns() - self._last_frame_ns > limit_ns:
                self._report(f"the camera delivered no frames for {self.stall_timeout_s:g} s; "
                             "check the ribbon cable")
                return

    def _report(self, reason: str) -> None:
        with self._fail_lock:
            if self._failed or self._stopping.is_set():
                return
            self._failed = True
        log.error("camera failed: %s", reason)
        if self._on_error is not None:
            try:
                self._on_error(f"camera: {reason}")
            except Exception:  # noqa: BLE001 - must not end picamera2's encoder thread
                log.exception("the camera error handler failed")

    def stop(self) -> None:
        """Detach the encoder; frames it flushes while stopping are still delivered."""
        encoder, self._encoder = self._encoder, None
        if encoder is None:
            return
        self._stopping.set()
        try:
            self._picam.stop_encoder(encoder)
        except (RuntimeError, OSError) as e:
            raise CameraError(f"the H.264 encoder did not stop cleanly ({e})") from None
        finally:
            self._on_frame = None
            if self._watchdog is not None:
                self._watchdog.join(2)
        if self._watchdog is not None and self._watchdog.is_alive():
            raise CameraError("the camera watchdog did not stop within 2 s")

    def close(self) -> None:
        """Stop the preview and the recording, stop the camera and release it."""
        try:
            if self.preview is not None:
                self.preview.stop()
            self.stop()
        finally:
            picam, self._picam = self._picam, None
            self.preview = None
            if picam is not None:
                try:
                    picam.stop()
                    picam.close()
                except RuntimeError as e:
                    raise CameraError(f"the camera did not close cleanly ({e})") from None
