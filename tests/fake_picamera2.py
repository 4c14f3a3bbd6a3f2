"""A fake `picamera2` package that follows picamera2's real API as far as
appliance/capture/camera_picamera2.py uses it, for machines without a camera.

`make_fake_picamera2(...)` builds a module object with `Picamera2`, `encoders`
(`Encoder`, `H264Encoder`, `LibavH264Encoder`) and `outputs` (`Output`), plus a
`fake` attribute (a `FakeState`) that tests inspect. Pass it to
`Picamera2Camera(picamera2_module=...)`.

Every behaviour copies the raspberrypi/picamera2 source on GitHub (files and the
commits they were read at; the Encoder/Output API is the one of picamera2 0.3.2x,
as packaged by Raspberry Pi OS Bookworm):

- picamera2/picamera2.py @ ec9ab36d
    * `Picamera2.global_camera_info()` is a staticmethod returning one dict per
      camera ({"Model", "Location", "Rotation", "Id", "Num"}), [] with no camera.
    * `Picamera2(camera_num=0, ...)` does `global_camera_info()[camera_num]` first, so
      no camera raises IndexError; a failed `camera.acquire()` (the camera is owned
      by someone else) surfaces as RuntimeError("Camera __init__ sequence did not
      complete.").
    * `create_video_configuration(main={}, lores=None, raw={}, transform=...,
      colour_space=None, buffer_count=6, controls={}, display="main", encode="main",
      queue=True, sensor={}, use_case="video")` -> dict; main defaults to XBGR8888
      1280x720; `_make_initial_stream_config` raises ValueError on unknown stream keys;
      `align_stream(optimal=False)` makes sizes even; controls default to
      {"NoiseReductionMode": Fast, "FrameDurationLimits": (33333, 33333)} | controls.
    * `configure()` refuses while started ("Camera must be stopped before
      configuring"), `check_stream_config` wants a str format and an even (w, h)
      tuple; libcamera's validate() may adjust the stream, and the adjusted size,
      format, stride and framesize are written back into the config.
    * `camera_configuration()` returns that dict; `start(config=None,
      show_preview=False)` starts the camera and its event loop; `stop()` and
      `close()` may be called repeatedly.
    * `process_requests()` calls `encoder.encode(encoder.name, request)` for each
      running encoder, on the event-loop thread, holding `Picamera2.lock`.
    * `start_encoder(encoder=None, output=None, pts=None, quality=None, name=None)`
      sets encoder.output (which validates it), name, width/height/format/stride from
      the configuration, a framerate if the encoder has None, then `encoder.start()`
      and adds it to `_encoders` under the lock.
    * `stop_encoder(encoders=None)` calls `encoder.stop()` then removes it under
      the lock.
    * A `lores` stream (default format YUV420, `preserve_ar` False) is checked like
      main, may not be larger than main ("lores stream dimensions may not exceed main
      stream") and on a Pi 4 (VC4) must be YUV ("lores stream must be YUV");
      `stream_map["lores"]` is then set.
    * With `queue=True` and more than one buffer, `_max_queue_len` is 1: the newest
      completed request is kept in `completed_requests` for a quick capture.
    * `capture_arrays(names=["main"], wait=None, signal_function=None)` dispatches
      `capture_arrays_and_metadata_(names)` as a Job: `dispatch_functions(functions,
      wait, signal_function, immediate=False)` appends it to `_job_list` under the lock
      and prods the event loop if it is the only job and a completed request is held;
      `wait` None means wait (no signal function), True waits for ever, a number waits
      that many seconds (concurrent.futures' TimeoutError, left in the job list) and
      False returns the Job. `process_requests` runs the jobs (on the event-loop
      thread, holding `Picamera2.lock`) before the encoders; the job pops the oldest
      completed request and returns ([request.make_array(name) ...],
      request.get_metadata()) with the metadata keyed by name ("SensorTimestamp").
    * `cancel_all_and_flush()` cancels every pending job (their waiters get
      CancelledError) and empties the list: the documented way to tidy up after a
      capture timed out, so the camera can still be stopped (`stop()` is itself a job
      queued behind them).
- picamera2/job.py: `Job.get_result(timeout)` is `Future.result(timeout)`.
- picamera2/request.py: `make_array(name)` copies the stream's buffer; YUV420 comes as
  an array of (height * 3 // 2, stride) bytes, each plane's rows padded to its stride.
- picamera2/encoders/encoder.py @ bf814e5b
    * `Encoder.__init__` sets `firsttimestamp = None`; the `output` setter raises
      RuntimeError("Must pass Output") for anything but Output instances;
      `start()` resets `firsttimestamp`, starts the outputs, then `_start()`;
      `stop()` does `_stop()` then stops the outputs.
    * `outputframe(frame, keyframe=True, timestamp=None, packet=None, audio=False)`
      forwards all five positionally: `out.outputframe(frame, keyframe, timestamp,
      packet, audio)`.
    * `_timestamp(request)`: `ts = int(SensorTimestamp / 1000)` (ns -> µs); the first
      becomes `firsttimestamp` and 0, later ones `ts - firsttimestamp`.
- picamera2/encoders/v4l2_encoder.py @ d547f58f and h264_encoder.py @ c2f8ab5c
    * `H264Encoder(bitrate=None, repeat=True, iperiod=None, framerate=None,
      enable_sps_framerate=False, qp=None, profile=None)`.
    * `_encode` (camera thread) takes the timestamp and queues the frame (blocking
      when the codec's 16 input buffers are in use); a separate poll thread calls
      `self.outputframe(b, keyframe, secs * 1000000 + usecs)`, keyframe from
      V4L2_BUF_FLAG_KEYFRAME; it runs while running or frames are queued and
      `_stop()` joins it, so frames still queued at stop are delivered first.
    * repeat=True sets V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER (SPS/PPS before every
      IDR); iperiod sets the I period (None leaves the driver default: 60 assumed here).
- picamera2/encoders/libav_h264_encoder.py @ c242ace8 (the Pi 5 H264Encoder)
    * `LibavH264Encoder(bitrate=None, repeat=True, iperiod=30, framerate=30, qp=None,
      profile=None)`; repeat=False sets GLOBAL_HEADER (no in-band SPS/PPS at all).
    * `_encode` runs on the camera thread: frame.pts = the µs timestamp, codec
      time_base 1/1000000, and each packet goes out as `outputframe(bytes(packet),
      packet.is_keyframe, timestamp=packet.pts, packet=packet)`; `_stop()` flushes
      the frames the codec still holds the same way.
- picamera2/encoders/__init__.py @ 1bc461b9: `H264Encoder` *is* LibavH264Encoder
  when /dev/video11 is not the bcm2835 codec (Pi 5).
- picamera2/outputs/output.py @ ee44f64a: `Output.__init__(pts=None)` sets
  `recording`, `ptsoutput`, `needs_pacing`; `start()`/`stop()` toggle `recording`;
  `outputframe(frame, keyframe=True, timestamp=None, packet=None, audio=False)`;
  `_add_stream(encoder_stream, *args, **kwargs)`.

Simplified on purpose: no preview window/still/raw paths, no FileOutput, no audio; a request
that races a stopping encoder is dropped (the real V4L2 encoder returns early too, the
real libav one would still encode it); if the fake V4L2 poll thread dies, later frames
are dropped instead of blocking the camera thread forever as the real one would.

The frames are tiny Annex B strings (SPS/PPS/IDR or a non-IDR slice), not decodable
video. Timing is real: frames come at the configured frame duration and carry
`SensorTimestamp` values on `time.monotonic_ns()`.
"""

from __future__ import annotations

import collections
import copy
import functools
import queue
import threading
import time
import types
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SENSOR_TIMESTAMP = "SensorTimestamp"  # stands in for libcamera.controls.SensorTimestamp
START_CODE = b"\x00\x00\x00\x01"
SPS = START_CODE + b"\x67\x64\x00\x1f\xac\xd9\x40"
PPS = START_CODE + b"\x68\xeb\xe3\xcb"
V4L2_DEFAULT_IPERIOD = 60  # assumption: the bcm2835 codec's own default GOP
V4L2_INPUT_BUFFERS = 16  # NUM_OUTPUT_BUFFERS in v4l2_encoder.py
VALID_FORMATS = ("YUV420", "YVU420", "NV12", "NV21", "YUYV", "UYVY", "BGR888", "RGB888",
                 "XBGR8888", "XRGB8888", "RGB161616", "BGR161616")


@dataclass
class FakeState:
    """What the fake simulates (set before use) and what it observed (read by tests)."""

    cameras: int = 1
    busy: bool = False  # another process owns the camera
    negotiated_size: tuple[int, int] | None = None  # libcamera adjusts the main stream
    negotiated_format: str | None = None
    pi5: bool = False  # H264Encoder is LibavH264Encoder
    stall_after: int | None = None  # frames, then nothing more arrives
    stall_in: str = "encoder"  # "encoder": its thread stops calling outputframe;
    # "sensor": the camera stops completing requests (a loose ribbon cable)
    libav_delay: int = 0  # frames libx264 holds back until more input or a flush
    min_frame_duration_us: int = 16_667  # the sensor mode's fastest frame (60 fps)
    lores_refused: bool = False  # libcamera cannot make a lores stream (configure fails)
    # observations
    owner: Any = None
    instances: list[Any] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)
    encoders: list[Any] = field(default_factory=list)
    sensor_timestamps: list[int] = field(default_factory=list)
    frames_output: int = 0  # frames encoders passed to outputframe
    thread_errors: list[str] = field(default_factory=list)  # exceptions that killed a thread
    captures: int = 0  # capture jobs done
    capture_threads: set[str] = field(default_factory=set)  # threads that ran them
    jobs_pending_at_stop: int = 0  # jobs a stop() found queued (a stalled one would hang it)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def note(self, **counts: int) -> None:
        """Bump counters and wake anyone waiting in `wait_for`."""
        with self.changed:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)
            self.changed.notify_all()

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Wait until `predicate(state)` is true; False on timeout."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout)

    def camera_info(self) -> list[dict[str, Any]]:
        """What Picamera2.global_camera_info() reports for the simulated cameras."""
        return [{"Model": "imx708", "Location": 2, "Rotation": 180,
                 "Id": f"/base/soc/i2c0mux/i2c@1/imx708@1{n}", "Num": n}
                for n in range(self.cameras)]


def _guard(state: FakeState, target: Any, *args: Any) -> None:
    """Run a thread body; an exception ends the thread, as it would in picamera2."""
    try:
        target(*args)
    except BaseException as e:  # noqa: BLE001 - recorded for tests, not printed
        with state.changed:
            state.thread_errors.append(repr(e))
            state.changed.notify_all()


# -- picamera2.outputs ------------------------------------------------------------------

class Output:
    """picamera2.outputs.Output (outputs/output.py)."""

    def __init__(self, pts: Any = None) -> None:
        self.recording = False
        self.ptsoutput = pts
        self.needs_pacing = False

    def start(self) -> None:
        """Start recording."""
        self.recording = True

    def stop(self) -> None:
        """Stop recording."""
        self.recording = False

    def outputframe(self, frame: Any, keyframe: bool = True, timestamp: int | None = None,
                    packet: Any = None, audio: bool = False) -> None:
        """Receive one encoded frame from an encoder."""

    def _add_stream(self, encoder_stream: Any, *args: Any, **kwargs: Any) -> None:
        pass


# -- picamera2.encoders -----------------------------------------------------------------

class Encoder:
    """picamera2.encoders.Encoder (encoders/encoder.py), without audio."""

    def __init__(self) -> None:
        self._width = 0
        self._height = 0
        self._stride = 0
        self._format: str | None = None
        self._output: list[Output] = []
        self._running = False
        self._name: str | None = None
        self._lock = threading.Lock()
        self.firsttimestamp: int | None = None
        self._output_lock = threading.Lock()
        self.audio = False
        self._state: FakeState | None = None  # set by the fake Picamera2.start_encoder
        self._frame_index = 0

    @property
    def running(self) -> bool:
        return self._running

    @property
    def width(self) -> int:
        return self._width

    @width.setter
    def width(self, value: int) -> None:
        if not isinstance(value, int):
            raise RuntimeError("Width must be integer")
        self._width = value

    @property
    def height(self) -> int:
        return self._height

    @height.setter
    def height(self, value: int) -> None:
        if not isinstance(value, int):
            raise RuntimeError("Height must be integer")
        self._height = value

    @property
    def stride(self) -> int:
        return self._stride

    @stride.setter
    def stride(self, value: int) -> None:
        if not isinstance(value, int):
            raise RuntimeError("Stride must be integer")
        self._stride = value

    @property
    def format(self) -> str | None:
        return self._format

    @format.setter
    def format(self, value: str) -> None:
        if value not in VALID_FORMATS:  # formats.assert_format_valid
            raise ValueError(f"Invalid format: {value}")
        self._format = value

    @property
    def name(self) -> str | None:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        if not isinstance(value, str):
            raise RuntimeError("Name must be string")
        self._name = value

    @property
    def output(self) -> Any:
        return self._output[0] if len(self._output) == 1 else self._output

    @output.setter
    def output(self, value: Any) -> None:
        if isinstance(value, list):
            for out in value:
                if not isinstance(out, Output):
                    raise RuntimeError("Must pass Output")
        elif isinstance(value, Output):
            value = [value]
        else:
            raise RuntimeError("Must pass Output")
        self._output = value

    def encode(self, stream: Any, request: Any) -> None:
        """Encode one completed request (called on the camera's event-loop thread)."""
        with self._lock:
            self._encode(stream, request)

    def _encode(self, stream: Any, request: Any) -> None:
        raise NotImplementedError

    def start(self, quality: Any = None) -> None:
        with self._lock:
            if self._running:
                raise RuntimeError("Encoder already running")
            self._setup(quality)
            self._running = True
            self.firsttimestamp = None
            for out in self._output:
                out.start()
            self._start()

    def _setup(self, quality: Any) -> None:
        pass

    def _start(self) -> None:
        pass

    def stop(self) -> None:
        with self._lock:
            if not self._running:
                raise RuntimeError("Encoder already stopped")
            self._running = False
            self._stop()
            for out in self._output:
                out.stop()

    def _stop(self) -> None:
        pass

    def outputframe(self, frame: Any, keyframe: bool = True, timestamp: int | None = None,
                    packet: Any = None, audio: bool = False) -> None:
        """Hand a frame to every output, all five arguments positionally."""
        with self._output_lock:
            for out in self._output:
                out.outputframe(frame, keyframe, timestamp, packet, audio)
        if self._state is not None:
            self._state.note(frames_output=1)

    def _timestamp(self, request: Any) -> int:
        ts = int(request.request.metadata[SENSOR_TIMESTAMP] / 1000)  # ns to us
        if self.firsttimestamp is None:
            self.firsttimestamp = ts
            timestamp_us = 0
        else:
            timestamp_us = ts - self.firsttimestamp
        return timestamp_us

    # fake-only helpers
    def _access_unit(self, gop: int, sps_pps: bool) -> tuple[bytes, bool]:
        """The next fake Annex B access unit and whether it is a keyframe."""
        n = self._frame_index
        self._frame_index += 1
        counter = n.to_bytes(4, "big")
        if n % max(1, gop) == 0:
            return (SPS + PPS if sps_pps else b"") + START_CODE + b"\x65\x88\x84" + counter, True
        return START_CODE + b"\x41\x9a\x02" + counter, False

    def _stalled(self) -> bool:
        st = self._state
        return (st is not None and st.stall_in == "encoder" and st.stall_after is not None
                and st.frames_output >= st.stall_after)


class H264Encoder(Encoder):
    """picamera2.encoders.H264Encoder on Pi 4 and earlier: V4L2 hardware codec
    (encoders/h264_encoder.py, encoders/v4l2_encoder.py)."""

    def __init__(self, bitrate: int | None = None, repeat: bool = True,
                 iperiod: int | None = None, framerate: float | None = None,
                 enable_sps_framerate: bool = False, qp: int | None = None,
                 profile: str | None = None) -> None:
        super().__init__()
        self.bitrate = bitrate
        self.iperiod = iperiod
        self.repeat = repeat
        self.qp = qp
        self.profile = profile
        self.framerate = framerate
        self._enable_framerate = enable_sps_framerate
        self._queue: queue.Queue[int | None] = queue.Queue(maxsize=V4L2_INPUT_BUFFERS)
        self.thread: threading.Thread | None = None

    def _start(self) -> None:
        for out in self._output:
            out._add_stream("video", "h264")
        self._queue = queue.Queue(maxsize=V4L2_INPUT_BUFFERS)
        self.thread = threading.Thread(target=_guard, args=(self._state, self.thread_poll),
                                       name="fake-v4l2-poll", daemon=True)
        self.thread.start()

    def _stop(self) -> None:
        # The real _stop joins the poll thread, which drains the frames still queued.
        assert self.thread is not None
        while self.thread.is_alive():  # a dead poll thread would never take the sentinel
            try:
                self._queue.put(None, timeout=0.05)
                break
            except queue.Full:
                continue
        self.thread.join()

    def _encode(self, stream: Any, request: Any) -> None:
        if self.thread is None or not self.thread.is_alive():
            return  # real: `if self.vd is None or self.vd.closed: return`
        self._queue.put(self._timestamp(request))  # blocks like buf_available.get()

    def thread_poll(self) -> None:
        """The V4L2 poll thread: encoded frames go out with the µs timestamp they went in with."""
        gop = self.iperiod if self.iperiod is not None else V4L2_DEFAULT_IPERIOD
        while True:
            timestamp_us = self._queue.get()
            if timestamp_us is None:
                return
            b, keyframe = self._access_unit(gop, self.repeat or self._frame_index == 0)
            if self._stalled():
                continue  # the codec swallows the frame: nothing reaches the outputs
            secs, usecs = divmod(timestamp_us, 1_000_000)
            self.outputframe(b, keyframe, (secs * 1000000) + usecs)


class FakePacket:
    """The parts of av.Packet an output might look at."""

    def __init__(self, data: bytes, pts: int, is_keyframe: bool) -> None:
        self.data = data
        self.pts = pts
        self.dts = pts
        self.is_keyframe = is_keyframe

    def __bytes__(self) -> bytes:
        return self.data


class LibavH264Encoder(Encoder):
    """picamera2.encoders.LibavH264Encoder: libx264 via PyAV, the Pi 5 H264Encoder
    (encoders/libav_h264_encoder.py)."""

    def __init__(self, bitrate: int | None = None, repeat: bool = True, iperiod: int = 30,
                 framerate: float = 30, qp: int | None = None,
                 profile: str | None = None) -> None:
        super().__init__()
        self._codec = "h264"
        self.repeat = repeat
        self.bitrate = bitrate
        self.iperiod = iperiod
        self.framerate = framerate
        self.qp = qp
        self.profile = profile
        self.preset: str | None = None
        self.drop_final_frames = False
        self.threads = 0
        self._held: collections.deque[int] = collections.deque()

    def _start(self) -> None:
        for out in self._output:
            out._add_stream(None, self._codec, rate=self.framerate)
        table = {"YUV420": "yuv420p", "BGR888": "rgb24", "RGB888": "bgr24",
                 "XBGR8888": "rgba", "XRGB8888": "bgra"}
        self._av_input_format = table[self._format]  # KeyError, like the real one
        self._held = collections.deque()

    def _stop(self) -> None:
        if not self.drop_final_frames:
            while self._held:
                self._emit(self._held.popleft())

    def _encode(self, stream: Any, request: Any) -> None:
        if not self._running:
            return
        self._held.append(self._timestamp(request))  # frame.pts = timestamp_us
        state = self._state
        delay = state.libav_delay if state is not None else 0
        while len(self._held) > delay:
            self._emit(self._held.popleft())

    def _emit(self, pts: int) -> None:
        data, keyframe = self._access_unit(self.iperiod, self.repeat)
        if self._stalled():
            return
        packet = FakePacket(data, pts, keyframe)
        self.outputframe(bytes(packet), packet.is_keyframe, timestamp=packet.pts, packet=packet)


# -- picamera2.Picamera2 ----------------------------------------------------------------

class _Request:
    """The parts of picamera2's CompletedRequest an encoder or a capture reads."""

    def __init__(self, metadata: dict[str, Any], config: dict[str, Any], index: int) -> None:
        self.request = types.SimpleNamespace(metadata=metadata)
        self.config = config
        self.index = index

    def get_metadata(self) -> dict[str, Any]:
        return dict(self.request.metadata)

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass

    def make_array(self, name: str) -> np.ndarray:
        """A copy of the stream's picture: YUV420 as (height * 3 // 2, stride) bytes. The
        luma is `lores_luma(index)`, the chroma 128, and padding bytes 255 (they must not
        reach a picture)."""
        config = self.config.get(name)
        if config is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        if config["format"] != "YUV420":
            raise NotImplementedError("the fake makes YUV420 arrays only")
        (w, h), stride = config["size"], config["stride"]
        array = np.full((h * 3 // 2, stride), 255, np.uint8)
        array[:h, :w] = lores_luma(self.index)
        chroma = array[h:].reshape(-1)
        planes = chroma.reshape(2, h // 2, stride // 2)
        planes[:, :, :w // 2] = 128
        return array


def lores_luma(index: int) -> int:
    """The (flat) brightness of the fake camera's picture number `index`."""
    return 32 + (index * 16) % 160


class Job:
    """picamera2.job.Job: stages run on the event loop; the caller waits on a Future."""

    def __init__(self, functions: list[Any], signal_function: Any = None) -> None:
        self._functions = functions
        self._future: Future[Any] = Future()
        self._future.set_running_or_notify_cancel()
        self._signal_function = signal_function
        self._result: Any = None

    def execute(self) -> bool:
        try:
            while self._functions:
                done, result = self._functions[0]()
                if not done:
                    break
                self._functions.pop(0)
            if not self._functions:
                self._result = result
        except Exception as e:  # noqa: BLE001 - handed to the waiter, as picamera2 does
            self._future.set_exception(e)
            self._functions = []
        return not self._functions

    def signal(self) -> None:
        if not self._future.done():
            self._future.set_result(self._result)
        if self._signal_function:
            self._signal_function(self)

    def get_result(self, timeout: float | None = None) -> Any:
        return self._future.result(timeout=timeout)

    def cancel(self) -> None:
        self._future.set_exception(CancelledError())


class Picamera2:
    """picamera2.Picamera2 (picamera2.py), one camera, video use only.

    Each fake module subclasses this with its own `_state`.
    """

    _state: FakeState

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:  # replaced per module
        return []

    def __init__(self, camera_num: int = 0, verbose_console: Any = None, tuning: Any = None,
                 allocator: Any = None) -> None:
        self.is_open = False
        self.started = False
        self.camera_config: dict[str, Any] | None = None
        self.encode_stream_name: str | None = None
        self.stream_map: dict[str, Any] | None = None
        self._encoders: set[Encoder] = set()
        self.lock = threading.Lock()
        self.completed_requests: list[_Request] = []
        self._job_list: list[Job] = []
        self._max_queue_len = 0
        self._prod = threading.Event()
        self._frame_duration_us = 33_333
        self._sensor: threading.Thread | None = None
        self._sensor_stop = threading.Event()
        st = self._state
        camera_num = self.global_camera_info()[camera_num]["Num"]  # IndexError: no camera
        if st.busy or st.owner is not None:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.camera_idx = camera_num
        st.owner = self
        st.instances.append(self)
        self.is_open = True

    def __enter__(self) -> Picamera2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # configuration
    @staticmethod
    def _make_initial_stream_config(stream_config: dict[str, Any], updates: Any,
                                    ignore_list: tuple[str, ...] = ()) -> Any:
        if updates is None:
            return None
        valid = ("format", "size", "stride", "preserve_ar")
        for key, value in updates.items():
            if key in valid:
                stream_config[key] = value
            elif key not in ignore_list:
                raise ValueError(f"Bad key {key!r}: valid stream configuration keys are {valid}")
        return stream_config

    @staticmethod
    def align_stream(stream_config: dict[str, Any], optimal: bool = True) -> None:
        align = 64 if optimal else 2
        if optimal and stream_config["format"] in ("YUV420", "YVU420"):
            align *= 2
        w, h = stream_config["size"]
        stream_config["size"] = (w - w % align, h - h % 2)

    # The defaults copy picamera2's own signature (mutable ones included) on purpose.
    def create_video_configuration(self, main: dict[str, Any] = {}, lores: Any = None,  # noqa: B006
                                   raw: Any = {}, transform: Any = None,  # noqa: B006
                                   colour_space: Any = None,
                                   buffer_count: int = 6,
                                   controls: dict[str, Any] = {},  # noqa: B006
                                   display: str | None = "main", encode: str | None = "main",
                                   queue: bool = True, sensor: Any = {},  # noqa: B006
                                   use_case: str = "video") -> dict[str, Any]:
        """A video configuration dict (the real mutable defaults are copied, not shared)."""
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main = self._make_initial_stream_config(
            {"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True}, dict(main))
        self.align_stream(main, optimal=False)
        if lores is not None:
            lores = self._make_initial_stream_config(
                {"format": "YUV420", "size": main["size"], "preserve_ar": False}, lores)
            self.align_stream(lores, optimal=False)
        raw = self._make_initial_stream_config(
            {"format": "SBGGR10_CSI2P", "size": main["size"]}, raw,
            ("bit_depth", "crop_limits", "exposure_limits", "fps", "unpacked"))
        if colour_space is None:
            small = main["size"][0] < 1280 or main["size"][1] < 720
            colour_space = "Smpte170m" if small else "Rec709"
        controls = {"NoiseReductionMode": 1, "FrameDurationLimits": (33333, 33333)} | controls
        config = {"use_case": use_case, "transform": transform, "colour_space": colour_space,
                  "buffer_count": buffer_count, "queue": queue, "main": main, "lores": lores,
                  "raw": raw, "controls": controls, "sensor": sensor,
                  "display": display, "encode": encode}
        return config

    @staticmethod
    def _check_stream_config(stream_config: Any, name: str) -> None:
        if type(stream_config) is not dict:
            raise RuntimeError(name + " stream should be a dictionary")
        fmt, size = stream_config.get("format"), stream_config.get("size")
        if type(fmt) is not str or fmt not in VALID_FORMATS:
            raise RuntimeError(f"Bad format {fmt} in stream {name}")
        if type(size) is not tuple or len(size) != 2:
            raise RuntimeError("size in " + name + " stream should be (width, height)")
        if size[0] % 2 or size[1] % 2:
            raise RuntimeError("width and height should be even")

    def configure(self, camera_config: Any = None) -> None:
        """Apply a configuration dict; libcamera may adjust the main stream."""
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if not isinstance(camera_config, dict):
            raise NotImplementedError("the fake takes configuration dicts only")
        config = copy.deepcopy(camera_config)
        self._check_stream_config(config["main"], "main")
        st = self._state
        main = config["main"]
        lores = config.get("lores")
        if lores is not None:
            self._check_stream_config(lores, "lores")
            if lores["size"][0] > main["size"][0] or lores["size"][1] > main["size"][1]:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if not st.pi5 and lores["format"] not in ("YUV420", "YVU420", "NV12", "NV21",
                                                      "YUYV", "UYVY"):
                raise RuntimeError("lores stream must be YUV")
            if st.lores_refused:
                raise RuntimeError("Failed to configure camera: invalid stream configuration")
            lores["stride"] = -(-lores["size"][0] // 64) * 64
            lores["framesize"] = lores["stride"] * lores["size"][1] * 3 // 2
        if st.negotiated_size is not None:
            main["size"] = tuple(st.negotiated_size)
        if st.negotiated_format is not None:
            main["format"] = st.negotiated_format
        width, height = main["size"]
        main["stride"] = -(-width // 64) * 64
        main["framesize"] = main["stride"] * height * 3 // 2
        limits = config["controls"].get("FrameDurationLimits", (33333, 33333))
        self._frame_duration_us = max(int(limits[0]), st.min_frame_duration_us)
        self.camera_config = config
        self.encode_stream_name = config["encode"]
        self.stream_map = {"main": "main-stream",
                           "lores": "lores-stream" if lores is not None else None,
                           "raw": None}
        self._max_queue_len = 1 if config["queue"] and config["buffer_count"] > 1 else 0
        st.configs.append(copy.deepcopy(config))

    def camera_configuration(self) -> dict[str, Any] | None:
        """The configuration as libcamera accepted it."""
        return self.camera_config

    # running
    def start(self, config: Any = None, show_preview: Any = False) -> None:
        """Start the camera: frames begin to complete at the frame duration."""
        if config is not None:
            self.configure(config)
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        if self.started:
            return
        self._sensor_stop = threading.Event()
        self._sensor = threading.Thread(target=_guard,
                                        args=(self._state, self._run, self._sensor_stop),
                                        name="fake-picamera2-loop", daemon=True)
        self.started = True
        self._sensor.start()

    def _run(self, stop: threading.Event) -> None:
        st = self._state
        period_ns = self._frame_duration_us * 1000
        t0 = time.monotonic_ns()
        k = 0
        while True:
            exposed_ns = t0 + k * period_ns  # SensorTimestamp: start of the frame
            ready_ns = exposed_ns + period_ns  # the request completes a frame later
            while (left := ready_ns - time.monotonic_ns()) > 0 and not stop.is_set():
                if self._prod.wait(left / 1e9):  # _run_process_requests: jobs only
                    self._prod.clear()
                    if not stop.is_set():
                        self._process_requests([])
            if stop.is_set():
                return
            if st.stall_in == "sensor" and st.stall_after is not None and k >= st.stall_after:
                stop.wait()
                return
            request = _Request({SENSOR_TIMESTAMP: exposed_ns,
                                "FrameDuration": self._frame_duration_us},
                               self.camera_config or {}, k)
            with st.changed:
                st.sensor_timestamps.append(exposed_ns)
                st.changed.notify_all()
            self._process_requests([request])
            k += 1

    def _process_requests(self, requests: list[_Request]) -> None:
        """process_requests: under the lock, keep the newest request, run the jobs, then
        the encoders; signal the finished jobs after."""
        finished = []
        with self.lock:
            self.completed_requests += requests
            while self._job_list:
                if self._job_list[0].execute():
                    finished.append(self._job_list.pop(0))
                else:
                    break
            for request in requests:
                for encoder in list(self._encoders):
                    if encoder.name in (self.stream_map or {}):
                        encoder.encode(encoder.name, request)
            while len(self.completed_requests) > self._max_queue_len:
                self.completed_requests.pop(0).release()
        for job in finished:
            job.signal()

    def stop(self) -> None:
        """Stop the camera (no-op if not started)."""
        if not self.started:
            return
        with self.lock:
            # The real stop() is a job queued behind these: a stalled one would hang it.
            self._state.jobs_pending_at_stop += len(self._job_list)
        self._sensor_stop.set()
        self._prod.set()
        if self._sensor is not None and self._sensor is not threading.current_thread():
            self._sensor.join()
        self._prod.clear()
        self.completed_requests = []
        self.started = False

    def close(self) -> None:
        """Stop and release the camera for other users (safe to repeat)."""
        if not self.is_open:
            return
        self.stop()
        self.is_open = False
        self.camera_config = None
        self.stream_map = None
        if self._state.owner is self:
            self._state.owner = None

    # encoders
    def start_encoder(self, encoder: Any = None, output: Any = None, pts: Any = None,
                      quality: Any = None, name: str | None = None) -> None:
        """Attach `encoder` (writing to `output`) to the encode stream and start it."""
        _encoder = encoder
        if _encoder is None:
            if len(self._encoders) > 1:
                raise RuntimeError("Multiple possible encoders, need to pass encoder")
            if len(self._encoders) == 1:
                _encoder = list(self._encoders)[0]
        if _encoder is None:
            raise RuntimeError("No encoder specified")
        if output is not None:
            if isinstance(output, str):
                raise NotImplementedError("the fake has no FileOutput")
            _encoder.output = output
        streams = self.camera_configuration()
        if streams is None:
            raise RuntimeError("Camera has not been configured")
        if name is None:
            name = self.encode_stream_name
        if streams.get(name, None) is None:
            raise RuntimeError(f"Encode stream {name} was not defined")
        _encoder.name = name
        _encoder.width, _encoder.height = streams[name]["size"]
        _encoder.format = streams[name]["format"]
        _encoder.stride = streams[name]["stride"]
        min_frame_duration = max(self._state.min_frame_duration_us, 33333)
        try:
            if _encoder.framerate is None:
                _encoder.framerate = 1000000 / min_frame_duration
        except AttributeError:
            pass
        _encoder._state = self._state
        _encoder.start(quality=quality)
        with self.lock:
            self._encoders.add(_encoder)
        self._state.encoders.append(_encoder)

    def stop_encoder(self, encoders: Any = None) -> None:
        """Stop the given encoder(s), or all of them."""
        remove = []
        if encoders is None:
            for encoder in self._encoders:
                encoder.stop()
                remove += [encoder]
        elif isinstance(encoders, Encoder):
            encoders.stop()
            remove += [encoders]
        elif isinstance(encoders, (list, set)):
            for encoder in encoders:
                encoder.stop()
                remove += [encoder]
        with self.lock:
            for encoder in remove:
                self._encoders.remove(encoder)

    @property
    def encoders(self) -> set[Encoder]:
        return self._encoders

    # jobs and captures
    def dispatch_functions(self, functions: list[Any], wait: Any,
                           signal_function: Any = None, immediate: bool = False) -> Any:
        """Queue a job for the event loop; wait for it as `wait` says."""
        if wait is None:
            wait = signal_function is None
        timeout = None if wait is True else wait
        with self.lock:
            only_job = not self._job_list
            job = Job(functions, signal_function)
            self._job_list.append(job)
            if only_job and (self.completed_requests or immediate):
                self._prod.set()
        return job.get_result(timeout=timeout) if wait else job

    def capture_arrays_and_metadata_(self, names: list[str]) -> tuple[bool, Any]:
        if not self.completed_requests:
            return (False, None)
        request = self.completed_requests.pop(0)
        result = ([request.make_array(name) for name in names], request.get_metadata())
        request.release()
        with self._state.changed:
            self._state.captures += 1
            self._state.capture_threads.add(threading.current_thread().name)
            self._state.changed.notify_all()
        return (True, result)

    # The default copies picamera2's own signature (a mutable list) on purpose.
    def capture_arrays(self, names: list[str] = ["main"], wait: Any = None,  # noqa: B006
                       signal_function: Any = None) -> Any:
        """([arrays], metadata) of the next frame's named streams."""
        return self.dispatch_functions(
            [functools.partial(self.capture_arrays_and_metadata_, names)], wait,
            signal_function)

    def cancel_all_and_flush(self) -> None:
        """Cancel every pending job and forget them."""
        with self.lock:
            for job in self._job_list:
                job.cancel()
            self._job_list = []


def make_fake_picamera2(**options: Any) -> types.ModuleType:
    """A fresh fake `picamera2` module; `options` are FakeState fields (see there)."""
    state = FakeState(**options)
    module = types.ModuleType("picamera2")
    module.__doc__ = "fake picamera2 (tests/fake_picamera2.py)"
    module.Picamera2 = type("Picamera2", (Picamera2,), {  # type: ignore[attr-defined]
        "_state": state, "global_camera_info": staticmethod(state.camera_info)})
    encoders = types.ModuleType("picamera2.encoders")
    encoders.Encoder = Encoder  # type: ignore[attr-defined]
    encoders.LibavH264Encoder = LibavH264Encoder  # type: ignore[attr-defined]
    # encoders/__init__.py: no bcm2835 V4L2 codec (Pi 5) means H264Encoder is libx264
    encoders.H264Encoder = (  # type: ignore[attr-defined]
        LibavH264Encoder if state.pi5 else H264Encoder)
    outputs = types.ModuleType("picamera2.outputs")
    outputs.Output = Output  # type: ignore[attr-defined]
    module.encoders = encoders  # type: ignore[attr-defined]
    module.outputs = outputs  # type: ignore[attr-defined]
    module.fake = state  # type: ignore[attr-defined]
    return module
