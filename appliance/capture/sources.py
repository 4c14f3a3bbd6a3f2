"""The interfaces every camera and microphone backend implements.

All times are nanoseconds on the capture clock, CLOCK_MONOTONIC
(`time.monotonic_ns()`), which is also what picamera2's SensorTimestamp uses on a Pi.

Callbacks run on the source's own thread and must return quickly: the recorder
only queues what it is given. A backend reports a failure once through
`on_error(reason)` and then delivers nothing more.

A camera may also offer a live preview (small JPEGs for the tablet, to frame the
shot): made only while someone asks for it, at a capped rate, and never at the cost
of a recorded frame.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class VideoFrame:
    """One encoded H.264 access unit (Annex B, start codes) and when it was exposed."""

    data: bytes
    pts_ns: int
    keyframe: bool


@dataclass(frozen=True)
class PreviewFrame:
    """One live-preview picture: a JPEG and when it was exposed (capture clock)."""

    jpeg: bytes
    taken_ns: int
    width: int
    height: int


def preview_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """The preview's frame size: at most `max_width` wide, the camera's aspect ratio,
    width a multiple of 16 and height even (what encoders and the ISP accept)."""
    w = max(16, min(max_width, width) // 16 * 16)
    h = max(2, round(w * height / width / 2) * 2)
    return w, h


@dataclass(frozen=True)
class AudioChunk:
    """A block of signed 16-bit little-endian mono samples and when its first was sampled."""

    samples: bytes
    adc_ns: int

    @property
    def frames(self) -> int:
        """Number of samples in the chunk."""
        return len(self.samples) // 2


FrameCallback = Callable[[VideoFrame], None]
ChunkCallback = Callable[[AudioChunk], None]
ErrorCallback = Callable[[str], None]


class Camera(abc.ABC):
    """A camera with an H.264 encoder. Must override: check, start, stop; may: open, close,
    preview_jpeg.

    Lifecycle: `open()` once (warms the sensor so a start is quick), then any number of
    `start()`/`stop()` pairs, then `close()`. Each `start()` begins with a keyframe
    carrying SPS/PPS, and every keyframe repeats them.
    """

    name: str = "camera"

    def __init__(self, *, width: int, height: int, fps: int, bitrate: int,
                 keyframe_interval_s: float, preview_fps: float = 4.0,
                 preview_width: int = 640) -> None:
        self.width = width
        self.height = height
        self.fps = fps
        self.bitrate = bitrate
        self.keyframe_interval_s = keyframe_interval_s
        self.preview_fps = preview_fps
        self.preview_width = preview_width

    @property
    def iperiod(self) -> int:
        """Frames between keyframes."""
        return max(1, round(self.fps * self.keyframe_interval_s))

    def open(self) -> None:  # noqa: B027 - optional: the default does nothing
        """Prepare the camera (called once, before the first start)."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise CameraError with a readable reason if the camera cannot record."""

    @abc.abstractmethod
    def start(self, on_frame: FrameCallback, on_error: ErrorCallback) -> None:
        """Begin delivering encoded frames to `on_frame`."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop delivering frames; returns once no more callbacks will come."""

    def close(self) -> None:  # noqa: B027 - optional: the default does nothing
        """Release the camera."""

    def preview_jpeg(self) -> PreviewFrame | None:
        """The newest live-preview picture, before and during recordings; None if this
        camera has no preview. Each call keeps the preview coming for a few seconds more
        (nobody asking: nothing is made). BusyError if the camera is not open,
        CameraError if the preview failed. The default: no preview."""
        return None

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Microphone(abc.ABC):
    """A mono microphone. Must override: check, start, stop; may: open, close."""

    name: str = "microphone"

    def __init__(self, *, sample_rate: int, block_ms: int) -> None:
        self.sample_rate = sample_rate
        self.block_ms = block_ms

    @property
    def block_frames(self) -> int:
        """Samples per delivered block."""
        return max(1, self.sample_rate * self.block_ms // 1000)

    def open(self) -> None:  # noqa: B027 - optional: the default does nothing
        """Prepare the microphone (called once, before the first start)."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise MicrophoneError with a readable reason if the mic cannot record."""

    @abc.abstractmethod
    def start(self, on_chunk: ChunkCallback, on_error: ErrorCallback) -> None:
        """Begin delivering audio chunks to `on_chunk`."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop delivering chunks; returns once no more callbacks will come."""

    def close(self) -> None:  # noqa: B027 - optional: the default does nothing
        """Release the microphone."""

    def __enter__(self) -> Microphone:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
