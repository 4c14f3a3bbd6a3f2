"""The live preview: small JPEGs for the tablet, made only while someone is watching.

Each request extends a "watching until" deadline; a producer thread runs until it
passes, taking a picture at most `fps` times a second from its camera (`grab`) and
turning it into a JPEG with a niced ffmpeg child (JpegEncoder). Nobody watching: no
thread, no ffmpeg, no cost. The producer shares no lock with the recording; it drops
its own pictures when it falls behind, and a recorded frame never waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from appliance.capture.jpeg_encoder import JpegEncoder
from appliance.capture.sources import PreviewFrame
from appliance.errors import ApplianceError, CameraError

log = logging.getLogger(__name__)
PREVIEW_WATCH_S = 3.0      # a request keeps the preview coming this long
FIRST_PICTURE_S = 4.0      # a request waits this long for the first picture (a niced
                           # encoder starting on a busy box may take seconds)
GRAB_TIMEOUT_S = 1.0       # a camera that gives no picture this long: try again next tick
ENCODE_TIMEOUT_S = 2.0
# The JPEG encoder's niceness: below the capture daemon (-5 in its unit) and its
# encoder, above background encoding (10). A picture is a few ms of CPU; at nice 15 a
# box loaded with normal-priority work starved it for seconds (bench/capture.py
# --preview). The producer thread itself is not niced: preempted while holding the
# GIL, a niced Python thread would stall the recording's threads behind it.
PREVIEW_NICE = 5
MAX_JPEG_BYTES = 512 * 1024

# grab(timeout_s) -> (raw yuv420p picture at the preview size, exposure time in ns),
# or None when there is no picture this time.
Grab = Callable[[float], tuple[bytes, int] | None]


class LivePreview:
    """Makes preview JPEGs from `grab` while watched; `request()` gives the newest."""

    def __init__(self, grab: Grab, *, width: int, height: int, fps: float,
                 watch_s: float = PREVIEW_WATCH_S, nice: int = PREVIEW_NICE,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.width, self.height = width, height
        self.fps = fps
        self.watch_s = watch_s
        self._grab = grab
        self._nice = nice
        self._clock = clock
        self._cond = threading.Condition()
        self._latest: PreviewFrame | None = None
        self._watch_until_ns = 0
        self._producer: threading.Thread | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failure: str | None = None
        self.frames_made = 0
        self.encoder_pid: int | None = None   # the running JPEG encoder, if any

    @property
    def producing(self) -> bool:
        """True while a producer runs (someone asked within `watch_s`)."""
        with self._cond:
            return self._producer is not None

    def request(self, timeout_s: float = FIRST_PICTURE_S) -> PreviewFrame:
        """Keep the preview coming for `watch_s` more and return the newest picture,
        waiting up to `timeout_s` for the first one; CameraError if none comes."""
        with self._cond:
            self._watch_until_ns = self._clock() + int(self.watch_s * 1e9)
            if self._producer is None:
                self._start_producer()
            producer = self._producer
            self._cond.wait_for(lambda: self._latest is not None
                                or self._producer is not producer, timeout_s)
            if self._latest is not None:
                return self._latest
            why = self._failure or f"no picture within {timeout_s:g} s"
        raise CameraError(f"the live preview did not start: {why}")

    def _start_producer(self) -> None:
        # Called with the lock held.
        self._threads = [t for t in self._threads if t.is_alive()]
        self._failure = None
        self._stop = threading.Event()
        thread = threading.Thread(target=self._produce, args=(self._stop,),
                                  name="live-preview", daemon=True)
        self._producer = thread
        self._threads.append(thread)
        thread.start()

    def _produce(self, stop: threading.Event) -> None:
        me = threading.current_thread()
        encoder: JpegEncoder | None = None
        try:
            encoder = JpegEncoder(self.width, self.height, nice=self._nice)
            with self._cond:
                self.encoder_pid = encoder.pid
            interval_ns = int(1e9 / self.fps)
            due_ns = self._clock()
            while not stop.is_set() and self._watched(me):
                picture = self._grab(GRAB_TIMEOUT_S)
                if picture is not None:
                    self._publish(encoder, *picture)
                # Late (a slow grab or encode): skip the missed ticks, never catch up.
                due_ns = max(due_ns + interval_ns, self._clock())
                stop.wait(max(0.0, (due_ns - self._clock()) / 1e9))
        except (ApplianceError, OSError) as e:
            log.warning("live preview stopped: %s", e)
            with self._cond:
                self._failure = str(e)
        finally:
            with self._cond:
                if self._producer is me:
                    self._producer = None
                    self._latest = None
                self._cond.notify_all()
            if encoder is not None:
                encoder.close()
                with self._cond:
                    if self.encoder_pid == encoder.pid:
                        self.encoder_pid = None

    def _watched(self, me: threading.Thread) -> bool:
        """Still wanted? If not, this producer retires here, under the lock, so that a
        request from now on starts a new one."""
        with self._cond:
            if self._producer is me and self._clock() < self._watch_until_ns:
                return True
            if self._producer is me:
                self._producer = None
                self._latest = None
            return False

    def _publish(self, encoder: JpegEncoder, picture: bytes, taken_ns: int) -> None:
        jpeg = encoder.encode(picture, ENCODE_TIMEOUT_S)
        if len(jpeg) > MAX_JPEG_BYTES:
            log.warning("live preview: a %d-byte picture was dropped", len(jpeg))
            return
        frame = PreviewFrame(jpeg=jpeg, taken_ns=taken_ns, width=self.width,
                             height=self.height)
        with self._cond:
            self._latest = frame
            self.frames_made += 1
            self._cond.notify_all()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop producing now (the camera is closing); a later request starts again.
        CameraError if the producer does not end within `timeout_s`."""
        with self._cond:
            self._stop.set()
            self._watch_until_ns = 0
            threads = list(self._threads)
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            raise CameraError(f"the live preview did not stop within {timeout_s:g} s")
