"""How loud a microphone is: peak and RMS in dBFS over a second of its sound.

dBFS here: 0 dBFS is a full-scale sample (32768), so a full-scale sine has RMS -3.01 dBFS.
Anything quieter than FLOOR_DBFS, digital silence included, reads FLOOR_DBFS: the bottom
of 16-bit audio's range, and a finite number prints and goes into JSON (-inf does not).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from appliance.capture.sources import AudioChunk, Microphone
from appliance.errors import MicrophoneError

FULL_SCALE = 32768.0
FLOOR_DBFS = -96.0
LISTEN_S = 1.0   # how long `vigbox doctor` has the microphone measured


@dataclass(frozen=True)
class Level:
    """A stretch of sound: its loudest sample and its RMS (dBFS), and how long it was."""

    peak_dbfs: float
    rms_dbfs: float
    seconds: float


def _dbfs(value: float) -> float:
    return max(FLOOR_DBFS, 20 * math.log10(value / FULL_SCALE)) if value > 0 else FLOOR_DBFS


def level_of(samples: bytes, *, sample_rate: int) -> Level:
    """The level of signed 16-bit little-endian mono samples (ValueError for half a one)."""
    if len(samples) % 2:
        raise ValueError(f"{len(samples)} bytes is not a whole number of 16-bit samples")
    x = np.frombuffer(samples, "<i2").astype(np.float64)
    if not len(x):
        return Level(FLOOR_DBFS, FLOOR_DBFS, 0.0)
    peak = float(np.abs(x).max())
    rms = float(np.sqrt(np.mean(x * x)))
    return Level(_dbfs(peak), _dbfs(rms), len(x) / sample_rate)


class _Gather:
    """Collects chunks until `wanted` samples are in, or the mic reports a failure."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.parts: list[bytes] = []
        self.count = 0
        self.failure: str | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()

    def chunk(self, chunk: AudioChunk) -> None:
        with self._lock:
            if self.done.is_set():
                return
            self.parts.append(chunk.samples)
            self.count += chunk.frames
            if self.count >= self.wanted:
                self.done.set()

    def error(self, reason: str) -> None:
        with self._lock:
            if not self.done.is_set():
                self.failure = reason
                self.done.set()


def listen(mic: Microphone, seconds: float = LISTEN_S, timeout_s: float = 3.0) -> Level:
    """Record `seconds` from `mic` and measure them. The sound may be up to `timeout_s`
    late (a USB mic or a sound server can take a moment to start); MicrophoneError if it
    does not come by then, or the mic fails. The mic is stopped and closed in every case."""
    gather = _Gather(max(1, round(seconds * mic.sample_rate)))
    mic.check()
    mic.open()
    try:
        mic.start(gather.chunk, gather.error)
        try:
            gather.done.wait(seconds + timeout_s)
        finally:
            mic.stop()
    finally:
        mic.close()
    if gather.failure is not None:
        raise MicrophoneError(gather.failure)
    if gather.count < gather.wanted:
        got_s = gather.count / mic.sample_rate
        raise MicrophoneError(
            f"the microphone ({mic.name}) sent {got_s:.2f} s of the {seconds:g} s of sound "
            f"asked for within {seconds + timeout_s:g} s" if gather.count else
            f"the microphone ({mic.name}) sent no sound within {seconds + timeout_s:g} s")
    samples = b"".join(gather.parts)[:2 * gather.wanted]
    return level_of(samples, sample_rate=mic.sample_rate)
