"""The synthetic microphone: quiet noise plus the 1 kHz sync-marker bursts, paced by the clock.

Like a USB mic, its sample clock can run off the capture clock (`drift_ppm`): it
then delivers more or fewer samples per real second than its nominal rate, which
is exactly what finalizing must correct. Bursts are placed by true capture time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from appliance.capture.sources import AudioChunk, ChunkCallback, ErrorCallback, Microphone
from appliance.capture.sync_marker import PERIOD_NS, TONE_HZ, TONE_NS, SyncMarker
from appliance.errors import MicrophoneError

NOISE_LEVEL = 200      # of 32767: a quiet room
TONE_LEVEL = 16000


class SyntheticMicrophone(Microphone):
    """A clock-paced microphone carrying the sync marker."""

    name = "synthetic"

    def __init__(self, *, sample_rate: int, block_ms: int, marker: SyncMarker,
                 drift_ppm: float = 0.0, clock: Callable[[], int] = time.monotonic_ns,
                 fail_after_s: float | None = None) -> None:
        super().__init__(sample_rate=sample_rate, block_ms=block_ms)
        self.marker = marker
        self.drift_ppm = drift_ppm
        # Samples per second of capture clock that this "hardware" really produces.
        self.true_rate = sample_rate * (1.0 + drift_ppm / 1e6)
        self._clock = clock
        self._fail_after_s = fail_after_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = np.random.default_rng(1)

    def check(self) -> None:
        """Always present."""

    def start(self, on_chunk: ChunkCallback, on_error: ErrorCallback) -> None:
        """Start delivering a block every `block_ms` of clock time."""
        if self._thread is not None:
            raise MicrophoneError("synthetic microphone is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(on_chunk, on_error),
                                        name="synthetic-mic", daemon=True)
        self._thread.start()

    def _run(self, on_chunk: ChunkCallback, on_error: ErrorCallback) -> None:
        t0 = self._clock()
        sent = 0
        block = self.block_frames
        while not self._stop.is_set():
            # A block is delivered once its last sample has been "sampled".
            due = t0 + int((sent + block) * 1e9 / self.true_rate)
            wait = due - self._clock()
            if wait > 0 and self._stop.wait(wait / 1e9):
                break
            if self._fail_after_s is not None and sent >= self._fail_after_s * self.true_rate:
                on_error("synthetic microphone: stopped sending sound (injected fault)")
                return
            available = int((self._clock() - t0) * self.true_rate / 1e9)
            while sent + block <= available and not self._stop.is_set():
                on_chunk(self._chunk(t0, sent, block))
                sent += block

    def _chunk(self, t0: int, first: int, count: int) -> AudioChunk:
        index = np.arange(first, first + count)
        times = t0 + index * (1e9 / self.true_rate)
        signal = self._rng.normal(0.0, NOISE_LEVEL, count)
        since_marker = (times - self.marker.epoch_ns) % PERIOD_NS
        burst = since_marker < TONE_NS
        if burst.any():
            phase = 2 * np.pi * TONE_HZ * since_marker[burst] / 1e9
            signal[burst] += TONE_LEVEL * np.sin(phase)
        samples = np.clip(signal, -32768, 32767).astype("<i2").tobytes()
        return AudioChunk(samples, int(times[0]))

    def stop(self) -> None:
        """Stop; no chunk is delivered after this returns."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(5)
        if self._thread.is_alive():
            raise MicrophoneError("synthetic microphone thread did not stop within 5 s")
        self._thread = None
