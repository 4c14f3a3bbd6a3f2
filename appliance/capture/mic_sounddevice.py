"""A microphone through sounddevice (PortAudio): 16-bit mono blocks timed on the capture clock.

sounddevice is imported only when the mic is checked or started, so this module imports on
any machine. The mic is chosen by (part of) its name, never by index: ALSA card numbers move
between boots. PortAudio's block times are on its own stream clock and, through some ALSA
plugins, plainly wrong; `AdcClock` turns them into first-sample times on
`time.monotonic_ns()` and falls back to when the block arrived when they cannot be trusted.
"""

from __future__ import annotations

import atexit
import collections
import importlib
import logging
import math
import threading
import time
from typing import Any

from appliance.capture.sources import AudioChunk, ChunkCallback, ErrorCallback, Microphone
from appliance.errors import MicrophoneError

log = logging.getLogger(__name__)
INSTALL_HINT = "install the PortAudio library: sudo apt-get install libportaudio2"
TIMING_WINDOW_S = 2.0          # how much block history the time estimates look at
PORTAUDIO_SPREAD_NS = 5e6      # PortAudio times are believed only if this steady...
PORTAUDIO_SLACK_NS = 2e6       # ...and no later than the block's arrival allows (+ this)
LATENCY_MARGIN_S = 0.05        # beyond the stream's own latency, for "how old can a block be"
START_TIMEOUT_S = 5.0          # the first block can be slow (~2 s from a PulseAudio null sink)
CLOSE_TIMEOUT_S = 3.0


def load_sounddevice() -> Any:
    """The sounddevice module, or a MicrophoneError saying what to install."""
    try:
        return importlib.import_module("sounddevice")
    except OSError as e:  # sounddevice raises OSError("PortAudio library not found")
        raise MicrophoneError(f"sounddevice cannot load PortAudio ({e}); {INSTALL_HINT}") from None
    except ImportError as e:
        raise MicrophoneError(f"sounddevice cannot be imported ({e}); reinstall vigbox "
                              "into its venv") from None


class AdcClock:
    """Estimates each block's first-sample time on `time.monotonic_ns()`.

    Two witnesses. PortAudio's `inputBufferAdcTime` is on the stream clock (MONOTONIC for hw
    devices, REALTIME for some plugins), mapped here by the smallest (monotonic − stream
    clock) seen at a callback, which follows a REALTIME step within a window. A block's
    arrival bounds its time from above: its last sample was taken before it arrived. Blocks
    lie on one line of slope 1/rate (the sample count), anchored at the lowest arrival bound
    in the window (the least delayed callback), or at PortAudio's times when these are steady
    and physically possible: expected on hw devices (ALSA's status timestamp − delay), false
    through ALSA's pulse plugin, which calls a 20 ms block 0.3 ms old (and, from a rewinding
    null sink, starts 0.5 s early, then speeds up).
    """

    def __init__(self, sample_rate: int, *, window: int, max_latency_s: float) -> None:
        self.ns_per_frame = 1e9 / sample_rate
        self.max_latency_ns = max_latency_s * 1e9
        self._offsets: collections.deque[float] = collections.deque(maxlen=window)
        self._by_arrival: collections.deque[float] = collections.deque(maxlen=window)
        self._by_portaudio: collections.deque[float] = collections.deque(maxlen=window)
        self._frames = 0
        self.timed_by_portaudio = 0
        self.timed_by_arrival = 0

    def seed(self, offset_ns: float) -> None:
        """An offset (monotonic − stream clock, ns) measured before the stream started."""
        self._offsets.append(offset_ns)

    def restart(self) -> None:
        """Samples were lost: the count no longer links blocks, so drop the anchors."""
        self._by_arrival.clear()
        self._by_portaudio.clear()
        self._frames = 0

    def block(self, arrival_ns: int, frames: int, current_s: float, adc_s: float) -> int:
        """The first-sample time of a block of `frames` that arrived at `arrival_ns`."""
        first_ns = self._frames * self.ns_per_frame  # since the anchor, by sample count
        self._frames += frames
        self._by_arrival.append(arrival_ns - self._frames * self.ns_per_frame)
        anchor = min(self._by_arrival)
        # Some backends leave the times at 0; then only the arrival is left to go by.
        if current_s > 0 and adc_s > 0 and math.isfinite(current_s) and math.isfinite(adc_s):
            self._offsets.append(arrival_ns - current_s * 1e9)
            self._by_portaudio.append(adc_s * 1e9 + min(self._offsets) - first_ns)
            low, high = min(self._by_portaudio), max(self._by_portaudio)
            middle = (low + high) / 2
            if (high - low <= PORTAUDIO_SPREAD_NS
                    and anchor - self.max_latency_ns <= middle <= anchor + PORTAUDIO_SLACK_NS):
                self.timed_by_portaudio += 1
                return round(middle + first_ns)
        self.timed_by_arrival += 1
        return round(anchor + first_ns)


class SoundDeviceMicrophone(Microphone):
    """An input device PortAudio lists (a USB mic on the Pi), read in `block_ms` blocks."""

    name = "sounddevice"

    def __init__(self, *, device: str, sample_rate: int, block_ms: int, stall_timeout_s: float,
                 sounddevice_module: Any = None,
                 start_timeout_s: float = START_TIMEOUT_S) -> None:
        super().__init__(sample_rate=sample_rate, block_ms=block_ms)
        self.device = device
        self.stall_timeout_s = stall_timeout_s
        self.start_timeout_s = max(start_timeout_s, stall_timeout_s)
        self._module = sounddevice_module  # None: import the real one when first needed
        self._stream: Any = None
        self._device_name = device or "the default input device"
        self.timing: AdcClock | None = None
        self._on_chunk: ChunkCallback | None = None
        self._on_error: ErrorCallback | None = None
        # Held only to hand a block over or to mark a failure/stop: never while waiting.
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._wake = threading.Event()
        self._failure: str | None = None
        self._started_ns = 0
        self._last_block_ns = 0
        self._watchdog: threading.Thread | None = None
        self._stuck: threading.Thread | None = None  # a close that never returned
        self.overflows = 0
        self.chunks = 0

    def _sounddevice(self) -> Any:
        if self._module is None:
            self._module = load_sounddevice()
        return self._module

    def check(self) -> None:
        """MicrophoneError if the input device is missing or cannot record 16-bit mono."""
        self._find_device()

    def _find_device(self) -> int:
        sd = self._sounddevice()
        try:
            index = self._match(sd)
        except MicrophoneError:
            if self._stream is not None or self._stuck is not None:
                raise
            # PortAudio lists devices once, when initialised: look again for a mic plugged
            # in since (safe only while no stream of ours is open).
            _rescan(sd)
            index = self._match(sd)
        try:
            sd.check_input_settings(device=index, channels=1, dtype="int16",
                                    samplerate=self.sample_rate)
        except (sd.PortAudioError, ValueError) as e:
            raise MicrophoneError(f"{self._device_name!r} cannot record 16-bit mono at "
                                  f"{self.sample_rate} Hz ({e})") from None
        return index

    def _match(self, sd: Any) -> int:
        try:
            devices = [dict(d, index=i) for i, d in enumerate(sd.query_devices())]
        except sd.PortAudioError as e:
            raise MicrophoneError(f"PortAudio could not list sound devices ({e})") from None
        inputs = [d for d in devices if d["max_input_channels"] > 0]
        listed = "input devices: " + (", ".join(repr(d["name"]) for d in inputs) or "none")
        if not self.device:
            try:
                info = sd.query_devices(kind="input")
            except (sd.PortAudioError, ValueError):
                raise MicrophoneError(f"there is no default input device; {listed}") from None
            self._device_name = info["name"]
            return int(info["index"])
        want = self.device.lower()
        found = [d for d in devices if want in d["name"].lower()]
        usable = [d for d in found if d["max_input_channels"] > 0]
        exact = [d for d in usable if d["name"].lower() == want]
        if not usable:
            reason = (f"{found[0]['name']!r} has no input channels" if found
                      else f"no sound device's name contains {self.device!r}")
            raise MicrophoneError(f"{reason}; {listed}. Plug the microphone in, or set "
                                  "[microphone] device to part of one of these names")
        chosen = exact or usable
        if len({d["name"] for d in chosen}) > 1:
            names = ", ".join(repr(d["name"]) for d in chosen)
            raise MicrophoneError(f"{self.device!r} matches several input devices ({names}); "
                                  "set [microphone] device to more of the name")
        self._device_name = chosen[0]["name"]
        return int(chosen[0]["index"])

    def start(self, on_chunk: ChunkCallback, on_error: ErrorCallback) -> None:
        """Open the input device and begin delivering blocks to `on_chunk`."""
        if self._stream is not None:
            raise MicrophoneError("the microphone is already recording")
        if self._stuck is not None and self._stuck.is_alive():
            raise MicrophoneError("the previous audio stream never closed; unplug and replug "
                                  "the microphone, then restart vigbox")
        sd = self._sounddevice()
        index = self._find_device()
        self._on_chunk, self._on_error = on_chunk, on_error
        self._failure = None
        self._stopping.clear()
        self._finished.clear()
        self._wake.clear()
        self.overflows = self.chunks = 0
        self._last_block_ns = 0
        try:
            stream = sd.RawInputStream(device=index, samplerate=self.sample_rate, channels=1,
                                       dtype="int16", blocksize=self.block_frames,
                                       callback=self._callback,
                                       finished_callback=self._on_finished)
        except (sd.PortAudioError, ValueError) as e:
            raise MicrophoneError(f"could not open {self._device_name!r} ({e}); is another "
                                  "program using it?") from None
        block_s = self.block_frames / self.sample_rate
        self.timing = AdcClock(self.sample_rate,
                               window=max(10, round(TIMING_WINDOW_S / block_s)),
                               max_latency_s=float(stream.latency) + 2 * block_s
                               + LATENCY_MARGIN_S)
        _seed_offset(self.timing, stream, sd)
        self._started_ns = time.monotonic_ns()
        self._stream = stream
        try:
            stream.start()
        except sd.PortAudioError as e:
            self._stream = None
            self._close_bounded(stream)
            raise MicrophoneError(f"could not start {self._device_name!r} ({e})") from None
        self._watchdog = threading.Thread(target=self._watch, name="sounddevice-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def _callback(self, indata: Any, frames: int, times: Any, status: Any) -> None:
        # Runs on PortAudio's thread: copy, time-stamp, hand over; no I/O, no waiting.
        arrival_ns = time.monotonic_ns()
        self._last_block_ns = arrival_ns
        with self._lock:
            if self._failure is not None or self._stopping.is_set() or self.timing is None:
                return
            if status.input_overflow:
                self.overflows += 1
                self.timing.restart()
            adc_ns = self.timing.block(arrival_ns, frames, times.currentTime,
                                       times.inputBufferAdcTime)
            self.chunks += 1
            on_chunk = self._on_chunk
            try:
                if on_chunk is not None:
                    on_chunk(AudioChunk(bytes(indata), adc_ns))
            except Exception as e:  # noqa: BLE001 - escaping, it would silently end the stream
                self._failure = f"the audio handler failed: {e!r}"
                self._wake.set()

    def _on_finished(self) -> None:
        # PortAudio calls this when the stream ends, asked to or not; the watchdog tells which.
        self._finished.set()
        self._wake.set()

    def _watch(self) -> None:
        # An unplugged USB mic or a dead sound server may end the stream or just go quiet.
        poll_s = min(0.1, self.stall_timeout_s / 4)
        while True:
            self._wake.wait(poll_s)
            self._wake.clear()
            if self._stopping.is_set():
                return
            reason = self._diagnose()
            if reason is None:
                continue
            with self._lock:
                if self._stopping.is_set():
                    return
                self._failure = reason = self._failure or reason
            log.error("microphone failed: %s", reason)
            if self._on_error is not None:
                self._on_error(f"microphone: {reason}")
            return

    def _diagnose(self) -> str | None:
        if self._failure is not None:
            return self._failure
        if self._finished.is_set():
            return (f"the audio stream from {self._device_name!r} ended by itself; is the "
                    "microphone unplugged or the sound server gone?")
        now = time.monotonic_ns()
        last = self._last_block_ns
        if last == 0 and now - self._started_ns > self.start_timeout_s * 1e9:
            return (f"{self._device_name!r} delivered no sound within "
                    f"{self.start_timeout_s:g} s of starting; check the microphone")
        if last != 0 and now - last > self.stall_timeout_s * 1e9:
            return (f"{self._device_name!r} delivered no sound for {self.stall_timeout_s:g} s; "
                    "is the microphone unplugged?")
        return None

    def stop(self) -> None:
        """Stop and close the stream; no block is delivered after this returns."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        with self._lock:
            self._stopping.set()  # from here the callback hands nothing over
        self._wake.set()
        watchdog = self._watchdog
        if watchdog is not None and watchdog is not threading.current_thread():
            watchdog.join(CLOSE_TIMEOUT_S)  # it may be inside on_error
        self._on_chunk = None
        self._close_bounded(stream)
        if self.timing is not None:
            log.info("microphone stopped: %d blocks, %d overflows, timed by PortAudio %d, "
                     "by arrival %d", self.chunks, self.overflows,
                     self.timing.timed_by_portaudio, self.timing.timed_by_arrival)
        if watchdog is not None and watchdog.is_alive() and \
                watchdog is not threading.current_thread():
            raise MicrophoneError(f"the microphone watchdog did not stop within "
                                  f"{CLOSE_TIMEOUT_S:g} s (the error handler is stuck)")

    def _close_bounded(self, stream: Any) -> None:
        # Older PortAudio can hang in abort/close when a USB mic vanished: never hang stop().
        failed: list[str] = []
        pa_error = self._sounddevice().PortAudioError

        def close() -> None:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except pa_error as e:
                failed.append(str(e))

        closer = threading.Thread(target=close, name="sounddevice-close", daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
        if closer.is_alive():
            self._stuck = closer
            _skip_exit_handler(self._sounddevice())
            raise MicrophoneError(f"the audio stream from {self._device_name!r} did not close "
                                  f"within {CLOSE_TIMEOUT_S:g} s; unplug and replug the "
                                  "microphone, then restart vigbox")
        if failed:
            raise MicrophoneError(f"the audio stream did not close cleanly ({failed[0]})")

    def close(self) -> None:
        """Stop recording and release the input device."""
        self.stop()


def _rescan(sd: Any) -> None:
    """Re-initialise PortAudio so its device list is current (private sounddevice API)."""
    terminate, initialize = getattr(sd, "_terminate", None), getattr(sd, "_initialize", None)
    if terminate is None or initialize is None:
        return
    try:
        terminate()
        initialize()
    except sd.PortAudioError as e:
        raise MicrophoneError(f"PortAudio could not be re-initialised ({e})") from None


def _skip_exit_handler(sd: Any) -> None:
    """Keep sounddevice's exit handler from hanging the process on a stuck stream.

    At exit it calls Pa_Terminate, which closes every stream and so joins PortAudio's
    thread, the one that is stuck: the daemon could then never exit.
    """
    handler = getattr(sd, "_exit_handler", None)
    if handler is not None:
        atexit.unregister(handler)


def _seed_offset(clock: AdcClock, stream: Any, sd: Any) -> None:
    """Seed the stream-clock mapping from the tightest of a few paired clock reads."""
    best: tuple[int, float] | None = None
    for _ in range(5):
        before = time.monotonic_ns()
        try:
            stream_s = float(stream.time)
        except sd.PortAudioError:
            return
        after = time.monotonic_ns()
        if stream_s > 0 and (best is None or after - before < best[0]):
            best = (after - before, (before + after) / 2 - stream_s * 1e9)
    if best is not None:
        clock.seed(best[1])
