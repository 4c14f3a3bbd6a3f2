"""The synthetic camera: a real-time moving test picture, H.264-encoded by ffmpeg.

It behaves like the Pi camera: frames are exposed on a fixed grid of the capture
clock, encoded with a keyframe every `iperiod` frames and SPS/PPS repeated, and
delivered as access units with their exposure time. Like a sensor's, its frames
wait in a few buffers until taken: if the machine is too busy to take them for
longer than that, frames are lost, as a real camera would lose them: that is what
the benchmark measures. It powers the demo and CI; it is not a test double.

Its live preview shows the same picture (the frame being exposed now, shrunk), idle
or recording, made on the preview's own thread from the clock: it never touches the
recording's frames or threads.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import math
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable

import ffmpeg

from appliance import ffmpeg_tool
from appliance.capture.h264 import AccessUnitSplitter, is_keyframe
from appliance.capture.picture import Shrinker, SyntheticPicture
from appliance.capture.preview import PREVIEW_WATCH_S, LivePreview
from appliance.capture.sources import (
    Camera,
    ErrorCallback,
    FrameCallback,
    PreviewFrame,
    VideoFrame,
    preview_size,
)
from appliance.capture.sync_marker import SyncMarker
from appliance.errors import BusyError, CameraError, MediaError

log = logging.getLogger(__name__)
# Frames waiting for the encoder, like a camera's buffer pool: enough to ride out a
# slow encoder start or a busy moment (0.5 s at 30 fps), small enough for a 1 GB Pi.
BUFFERED_FRAMES = 15
# A raw 720p frame is 1.4 MB: through the default 64 KiB pipe that is some twenty
# wake-ups of this process and the encoder per frame. 1 MiB is the size any user may ask.
PIPE_BYTES = 1 << 20


def synthetic_encoder_argv(width: int, height: int, fps: int, bitrate: int,
                           iperiod: int) -> list[str]:
    """ffmpeg argv: raw yuv420p frames on stdin → H.264 Annex B with AUDs on stdout."""
    stream = ffmpeg.input("pipe:0", format="rawvideo", pix_fmt="yuv420p",
                          s=f"{width}x{height}", framerate=fps)
    out = stream.output(
        "pipe:1", format="h264", vcodec="libx264", preset="ultrafast", tune="zerolatency",
        pix_fmt="yuv420p", g=iperiod, keyint_min=iperiod, sc_threshold=0, bf=0,
        **{"b:v": bitrate, "maxrate": bitrate, "bufsize": bitrate,
           # AUDs mark frame boundaries; repeat-headers = picamera2's repeat=True.
           "x264-params": "aud=1:repeat-headers=1"})
    return out.global_args("-hide_banner", "-loglevel", "error").compile()


class SyntheticCamera(Camera):
    """A camera made of ffmpeg and a test picture, carrying the sync marker."""

    name = "synthetic"

    def __init__(self, *, width: int, height: int, fps: int, bitrate: int,
                 keyframe_interval_s: float, marker: SyncMarker,
                 clock: Callable[[], int] = time.monotonic_ns,
                 fail_after_s: float | None = None, preview_fps: float = 4.0,
                 preview_width: int = 640, preview_watch_s: float = PREVIEW_WATCH_S) -> None:
        super().__init__(width=width, height=height, fps=fps, bitrate=bitrate,
                         keyframe_interval_s=keyframe_interval_s, preview_fps=preview_fps,
                         preview_width=preview_width)
        self.marker = marker
        self._clock = clock
        self._fail_after_ns = None if fail_after_s is None else int(fail_after_s * 1e9)
        self._picture: SyntheticPicture | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: ffmpeg_tool.StderrTail | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._pending: collections.deque[int] = collections.deque()
        self._to_encoder: queue.Queue[bytes | None] = queue.Queue(BUFFERED_FRAMES)
        self._failed = False
        self.frames_lost = 0        # frames the "sensor" lost: the sum of the two below
        self.frames_lost_late = 0   # ... as the exposure thread woke later than its buffers
        self.frames_lost_full = 0   # ... as the encoder fell behind and the buffers were full
        small = preview_size(width, height, preview_width)
        self._shrink = Shrinker(width, height, *small)
        self.preview = LivePreview(self._preview_picture, width=small[0], height=small[1],
                                   fps=preview_fps, watch_s=preview_watch_s, clock=clock)

    def check(self) -> None:
        """The synthetic camera needs only ffmpeg with libx264."""
        try:
            ffmpeg_tool.require("ffmpeg")
        except MediaError as e:
            raise CameraError(f"synthetic camera: {e}") from None

    def open(self) -> None:
        """Build the picture and start an encoder that waits for the first frame (warm);
        opening an open camera keeps its warm encoder (the daemon reopens before each
        recording)."""
        self.check()
        if self._picture is None:
            self._picture = SyntheticPicture(self.width, self.height)
        if self._proc is None or self._proc.poll() is not None:
            self._release_encoder()
            self._spawn_encoder()

    def _spawn_encoder(self) -> None:
        argv = synthetic_encoder_argv(self.width, self.height, self.fps, self.bitrate,
                                      self.iperiod)
        self._proc = ffmpeg_tool.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._proc.stderr is not None and self._proc.stdin is not None
        with contextlib.suppress(OSError):  # only fewer wake-ups; the default works
            fcntl.fcntl(self._proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._stderr = ffmpeg_tool.StderrTail(self._proc.stderr)

    def start(self, on_frame: FrameCallback, on_error: ErrorCallback) -> None:
        """Start exposing frames on the clock grid and delivering them encoded."""
        if self._picture is None:
            self.open()
        if self._proc is None or self._proc.poll() is not None:
            self._release_encoder()
            self._spawn_encoder()
        self._stop.clear()
        self._pending.clear()
        self._to_encoder = queue.Queue(BUFFERED_FRAMES)
        self._failed = False
        self.frames_lost = self.frames_lost_late = self.frames_lost_full = 0
        report = self._once(on_error)
        self._threads = [
            threading.Thread(target=self._expose, args=(report,), name="synthetic-camera",
                             daemon=True),
            threading.Thread(target=self._feed, args=(report,), name="synthetic-camera-in",
                             daemon=True),
            threading.Thread(target=self._read, args=(on_frame, report),
                             name="synthetic-camera-out", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _once(self, on_error: ErrorCallback) -> ErrorCallback:
        def report(reason: str) -> None:
            if not self._failed and not self._stop.is_set():
                self._failed = True
                on_error(reason)
        return report

    def _expose(self, report: ErrorCallback) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        assert self._picture is not None
        interval = 1e9 / self.fps
        epoch = self.marker.epoch_ns
        n = max(0, math.ceil((self._clock() - epoch) / interval))
        started = None
        while not self._stop.is_set():
            t_n = epoch + n * 1_000_000_000 // self.fps
            wait_ns = t_n - self._clock()
            if wait_ns > 0 and self._stop.wait(wait_ns / 1e9):
                break
            # A sensor exposes on its own clock whatever the CPU does, and its frames wait
            # in buffers until taken. So when this thread wakes late (the CPU or the GIL
            # was busy), the frames due since are made now, with their own exposure
            # times; only those older than the buffers (BUFFERED_FRAMES) are lost.
            newest = (self._clock() - epoch) * self.fps // 1_000_000_000
            oldest_kept = newest - BUFFERED_FRAMES + 1
            if n < oldest_kept:
                self.frames_lost_late += oldest_kept - n
                self.frames_lost += oldest_kept - n
                n = oldest_kept
                continue
            started = t_n if started is None else started
            if self._fail_after_ns is not None and t_n - started >= self._fail_after_ns:
                self._proc.kill()  # an injected fault: the encoder dies as a real one can
                break
            data = self._picture.frame(n, white=self.marker.is_marker_frame(t_n, interval))
            try:
                self._to_encoder.put_nowait(data)
                self._pending.append(t_n)
            except queue.Full:
                self.frames_lost_full += 1
                self.frames_lost += 1
            n += 1
        self._to_encoder.put(None)

    def _feed(self, report: ErrorCallback) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        stdin = self._proc.stdin
        while (data := self._to_encoder.get()) is not None:
            try:
                stdin.write(data)
                stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                report("synthetic camera: the encoder stopped taking frames")
                break
        try:
            stdin.close()  # the encoder flushes its last frames and exits
        except OSError:
            pass

    def _read(self, on_frame: FrameCallback, report: ErrorCallback) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        splitter = AccessUnitSplitter()
        stdout = self._proc.stdout
        while True:
            data = os.read(stdout.fileno(), 1 << 16)  # what is there, without waiting for more
            units = splitter.feed(data) if data else splitter.flush()
            for unit in units:
                if not self._pending:
                    break
                on_frame(VideoFrame(unit, self._pending.popleft(), is_keyframe(unit)))
            if not data:
                break
        stdout.close()
        if not self._stop.is_set():
            tail = self._stderr.text(0.5) if self._stderr else ""
            report("synthetic camera: the encoder exited unexpectedly"
                   + (f" ({tail.splitlines()[-1]})" if tail else ""))

    def stop(self) -> None:
        """Stop exposing, let the encoder flush the last frames, then get a new one warm."""
        if not self._threads:
            return
        self._stop.set()
        exposer, feeder, reader = self._threads
        exposer.join(5)
        if exposer.is_alive():
            self._to_encoder.put(None)
        feeder.join(10)
        reader.join(10)
        if any(t.is_alive() for t in self._threads):
            raise CameraError("synthetic camera: threads did not stop within 10 s")
        self._release_encoder()
        self._threads = []
        self._spawn_encoder()

    def close(self) -> None:
        """Stop the preview and the recording, and release the encoder."""
        try:
            self.preview.stop()
        finally:
            self.stop()
            self._release_encoder()
            self._picture = None

    def preview_jpeg(self) -> PreviewFrame | None:
        """The newest preview picture (the test picture, shrunk); BusyError if closed."""
        if self._picture is None:
            raise BusyError("the camera is not open")
        return self.preview.request()

    def _preview_picture(self, timeout_s: float) -> tuple[bytes, int] | None:
        # On the preview's thread: the frame being exposed now, made afresh from the
        # clock as the exposure thread makes it (SyntheticPicture keeps no state).
        picture = self._picture
        if picture is None:
            return None
        epoch = self.marker.epoch_ns
        n = max(0, (self._clock() - epoch) * self.fps // 1_000_000_000)
        t_n = epoch + n * 1_000_000_000 // self.fps
        data = picture.frame(n, white=self.marker.is_marker_frame(t_n, 1e9 / self.fps))
        return self._shrink(data), t_n

    def _release_encoder(self) -> None:
        """Stop the encoder process (if any) and close its pipes."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        ffmpeg_tool.stop_process(proc, timeout=2)
        if proc.stdout is not None:
            proc.stdout.close()  # a warm encoder's stdout was never read
