"""The sounddevice microphone: the real PortAudio path against a private PulseAudio server,
plus its timing logic and failure handling with a fake sounddevice module.

PortAudio reads its device list and PULSE_SERVER when sounddevice is imported, so the
capture side of every real-path test runs in a child Python whose environment points at
the test's own server, records from ALSA's `pulse` PCM and reports back as JSON.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from appliance.capture import mic_sounddevice
from appliance.capture.mic_sounddevice import AdcClock, SoundDeviceMicrophone
from appliance.errors import MicrophoneError
from tests.pulse_server import PulseServer, require_pulseaudio

ROOT = Path(__file__).resolve().parent.parent
RATE = 48_000
BLOCK_MS = 20
STALL_S = 0.5
CHILD_TIMEOUT_S = 20

# The capture side, run as `python child.py '<json args>'`; prints MARK once it holds
# `mark_s` of audio, then RESULT {json}. os._exit so a stuck PortAudio cannot hang the exit.
CHILD = r'''
import json, os, sys, threading, time
from appliance.capture.mic_sounddevice import SoundDeviceMicrophone
from appliance.errors import MicrophoneError

args = json.loads(sys.argv[1])
mic = SoundDeviceMicrophone(device=args["device"], sample_rate=args["rate"],
                            block_ms=args["block_ms"], stall_timeout_s=args["stall_s"])

def finish(result):
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)

if args["mode"] == "check":
    try:
        mic.check()
        finish({"error": None})
    except MicrophoneError as e:
        finish({"error": str(e)})

chunks, errors, raw, total = [], [], [], [0]
marked, failed = threading.Event(), threading.Event()

def on_chunk(chunk):
    chunks.append((time.monotonic_ns(), chunk.adc_ns, chunk.frames))
    raw.append(chunk.samples)
    total[0] += chunk.frames
    if total[0] >= args["mark_s"] * args["rate"]:
        marked.set()

def on_error(reason):
    errors.append((time.monotonic_ns(), reason))
    failed.set()

mic.start(on_chunk, on_error)
if marked.wait(10):
    print(f"MARK {time.monotonic_ns()}", flush=True)
if args["mode"] == "record":
    deadline = time.monotonic() + 10
    while total[0] < args["seconds"] * args["rate"] and time.monotonic() < deadline:
        if failed.wait(0.02):
            break
else:  # "fail": wait for the error, then watch for anything delivered after it
    failed.wait(10)
    time.sleep(0.5)
stop_error, t = None, time.monotonic()
try:
    mic.stop()
except MicrophoneError as e:
    stop_error = str(e)
stop_s = time.monotonic() - t
with open(args["raw"], "wb") as f:
    f.write(b"".join(raw))
finish({"chunks": chunks, "errors": errors, "stop_s": stop_s, "stop_error": stop_error,
        "overflows": mic.overflows, "timed_by_portaudio": mic.timing.timed_by_portaudio,
        "timed_by_arrival": mic.timing.timed_by_arrival})
'''


class Child:
    """The capture child: its stdout lines on a queue, killed on exit whatever happened."""

    def __init__(self, tmp_path: Path, env: dict[str, str], **args: Any) -> None:
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        self.raw_path = tmp_path / "captured.raw"
        args = {"device": "pulse", "rate": RATE, "block_ms": BLOCK_MS, "stall_s": STALL_S,
                "mark_s": 0.5, "seconds": 3.0, "raw": str(self.raw_path), **args}
        self.proc = subprocess.Popen([sys.executable, str(script), json.dumps(args)],
                                     env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self.pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put),
                             daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append),
                             daemon=True)]
        for pump in self.pumps:
            pump.start()
        self.deadline = time.monotonic() + CHILD_TIMEOUT_S

    @staticmethod
    def _pump(stream: Any, put: Any) -> None:
        with stream:
            for line in stream:
                put(line.rstrip("\n"))

    def wait_line(self, prefix: str) -> str:
        """The next stdout line starting with `prefix` (fails the test at the deadline)."""
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, self.deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the capture child printed no {prefix} within "
                            f"{CHILD_TIMEOUT_S} s; stderr:\n" + "\n".join(self.stderr[-20:]))
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def result(self) -> dict[str, Any]:
        """The child's RESULT document."""
        return json.loads(self.wait_line("RESULT"))

    def samples(self) -> np.ndarray:
        """Everything the child captured, as int16."""
        return np.frombuffer(self.raw_path.read_bytes(), "<i2")

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        for pump in self.pumps:
            pump.join(5)  # each closes its pipe at the end of the stream


@pytest.fixture
def server() -> Iterator[PulseServer]:
    """A private PulseAudio server with a null sink as the default source."""
    require_pulseaudio()
    with PulseServer(rate=RATE, channels=1) as s:
        yield s


def tone_wav(path: Path, *, hz: float = 1000.0, seconds: float = 1.0) -> Path:
    """A mono 16-bit WAV of a sine at half scale."""
    t = np.arange(int(RATE * seconds)) / RATE
    samples = (16384 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())
    return path


def sample_times(chunks: list[list[int]], count: int) -> np.ndarray:
    """The monotonic time of every sample, from each chunk's first-sample time."""
    firsts = np.cumsum([0] + [c[2] for c in chunks[:-1]])
    adc = np.array([c[1] for c in chunks], dtype=np.float64)
    index = np.arange(count)
    chunk = np.searchsorted(firsts, index, side="right") - 1
    return adc[chunk] + (index - firsts[chunk]) * 1e9 / RATE


# ---- the real path: PortAudio → ALSA pulse plugin → private PulseAudio null sink ----------

@pytest.mark.slow
@pytest.mark.timeout(40)
def test_recording_is_paced_in_real_time_with_timestamps_on_the_capture_clock(
        server: PulseServer, tmp_path: Path) -> None:
    with Child(tmp_path, server.env, mode="record", seconds=3.0) as child:
        result = child.result()
    assert not result["errors"] and result["stop_error"] is None
    chunks = np.array(result["chunks"], dtype=np.float64)
    arrival, adc, frames = chunks[:, 0], chunks[:, 1], chunks[:, 2]
    assert frames.sum() >= 3 * RATE
    # Samples came as fast as the clock makes them, no faster (no file-like burst), no slower.
    elapsed_s = (arrival[-1] - arrival[0]) / 1e9
    assert frames[1:].sum() / elapsed_s == pytest.approx(RATE, rel=0.02), result["overflows"]
    # Each block was sampled before it arrived, and not long before.
    assert np.all(np.diff(adc) > 0)
    age_ms = (arrival - adc) / 1e6
    assert age_ms.min() >= BLOCK_MS - 2 and age_ms.max() <= 200, (age_ms.min(), age_ms.max())
    # The timestamps advance at the sample rate: what finalize fits to correct drift.
    first_sample = np.concatenate([[0], np.cumsum(frames)[:-1]])
    slope = np.polyfit(adc - adc[0], first_sample, 1)[0] * 1e9
    assert slope == pytest.approx(RATE, rel=0.01)


@pytest.mark.slow
@pytest.mark.timeout(40)
def test_a_tone_played_into_the_room_is_recorded_at_1_khz_after_it_was_played(
        server: PulseServer, tmp_path: Path) -> None:
    wav = tone_wav(tmp_path / "tone.wav", seconds=1.0)
    with Child(tmp_path, server.env, mode="record", mark_s=0.6, seconds=3.2) as child:
        child.wait_line("MARK")
        played_ns = time.monotonic_ns()
        player = server.play(wav)
        try:
            assert player.wait(10) == 0, server.log_tail()
        finally:
            player.kill()
        result = child.result()
        samples = child.samples().astype(np.float64)
    assert not result["errors"]
    times = sample_times(result["chunks"], len(samples))
    before = samples[times < played_ns - BLOCK_MS * 1e6]  # see the onset below
    assert len(before) >= 0.5 * RATE and np.abs(before).max() < 100  # the null sink is silent
    loud = np.flatnonzero(np.abs(samples) > 8000)
    assert len(loud), "the tone was not captured"
    # Sound cannot be recorded before it was played: the timestamps are not too early (as
    # PortAudio's own are here, by 0.5 s), nor late. The null sink renders ahead of the
    # clock, so its samples may exist up to a block before the time their count gives.
    onset_ms = (times[loud[0]] - played_ns) / 1e6
    assert -BLOCK_MS < onset_ms < 200, onset_ms
    # The whole second of tone arrived, no samples lost or doubled.
    assert (loud[-1] - loud[0]) == pytest.approx(RATE, rel=0.01)
    tone = samples[loud[0]:loud[0] + RATE // 2]
    spectrum = np.abs(np.fft.rfft(tone))
    assert np.fft.rfftfreq(len(tone), 1 / RATE)[spectrum.argmax()] == pytest.approx(1000, abs=5)
    silent = np.abs(np.fft.rfft(before[:RATE // 2]))
    assert spectrum.max() > 1000 * (silent.max() + 1)


@pytest.mark.slow
@pytest.mark.timeout(40)
def test_a_sound_server_that_dies_mid_recording_fails_the_mic_once_and_stop_returns(
        server: PulseServer, tmp_path: Path) -> None:
    with Child(tmp_path, server.env, mode="fail") as child:
        child.wait_line("MARK")
        killed_ns = time.monotonic_ns()
        server.kill()
        result = child.result()
    assert len(result["errors"]) == 1, result["errors"]
    failed_ns, reason = result["errors"][0]
    assert 0 < (failed_ns - killed_ns) / 1e9 < STALL_S + 1
    assert reason.startswith("microphone: ") and "'pulse'" in reason, reason
    assert not [c for c in result["chunks"] if c[0] > failed_ns]
    assert result["stop_error"] is None and result["stop_s"] < 2


@pytest.mark.slow
@pytest.mark.timeout(40)
def test_a_hung_sound_server_is_reported_as_a_stall_and_stop_is_bounded(
        server: PulseServer, tmp_path: Path) -> None:
    with Child(tmp_path, server.env, mode="fail") as child:
        child.wait_line("MARK")
        hung_ns = time.monotonic_ns()
        server.signal(signal.SIGSTOP)
        try:
            result = child.result()
        finally:
            server.signal(signal.SIGCONT)
        child.proc.wait(5)  # and the child could exit although PortAudio is stuck
    assert len(result["errors"]) == 1, result["errors"]
    failed_ns, reason = result["errors"][0]
    assert 0 < (failed_ns - hung_ns) / 1e9 < STALL_S + 1
    assert f"no sound for {STALL_S:g} s" in reason, reason
    assert not [c for c in result["chunks"] if c[0] > failed_ns]
    # PortAudio cannot close a stream whose server hangs: stop gives up and says so.
    limit = mic_sounddevice.CLOSE_TIMEOUT_S
    assert result["stop_s"] < limit + 1
    assert result["stop_error"] is None or "did not close" in result["stop_error"]


@pytest.mark.slow
@pytest.mark.timeout(40)
def test_check_lists_the_input_devices_when_the_named_mic_is_missing(
        server: PulseServer, tmp_path: Path) -> None:
    with Child(tmp_path, server.env, mode="check", device="No Such Mic") as child:
        error = child.result()["error"]
    assert error is not None
    assert "'No Such Mic'" in error and "input devices:" in error and "'pulse'" in error
    with Child(tmp_path, server.env, mode="check", device="PULSE") as child:
        assert child.result()["error"] is None  # found by part of its name, any case


# ---- the timing logic, with made-up clocks ------------------------------------------------

def run_clock(clock: AdcClock, *, blocks: int, true_rate: float = RATE,
              pa: str = "good", seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Feed `blocks` 20 ms blocks; returns (true first-sample times, estimates), in ns.

    The stream clock is REALTIME-like (a big offset from monotonic); callbacks arrive
    0.2-5 ms after a block's last sample. PortAudio's times are "good" (hw: true ± 0.3 ms),
    "pulse" (0.5 s early at first, then ahead of the arrivals) or "zero".
    """
    rng = np.random.default_rng(seed)
    frames = RATE * BLOCK_MS // 1000
    offset_ns = -1.7e18  # monotonic − stream clock
    t0 = 5e12
    truth, estimate = [], []
    for k in range(blocks):
        first = t0 + k * frames * 1e9 / true_rate
        arrival = first + frames * 1e9 / true_rate + rng.uniform(0.2e6, 5e6)
        current = arrival - offset_ns - rng.uniform(0, 0.1e6)
        adc = {"good": first + rng.normal(0, 0.3e6),
               "pulse": arrival - (0.5e9 if k < 40 else 0.3e6),
               "zero": None}[pa]
        adc_s = 0.0 if adc is None else (adc - offset_ns) / 1e9
        truth.append(first)
        estimate.append(clock.block(int(arrival), frames, current / 1e9 if adc else 0.0, adc_s))
    return np.array(truth), np.array(estimate, dtype=np.float64)


def new_clock() -> AdcClock:
    return AdcClock(RATE, window=100, max_latency_s=0.13)


def test_good_portaudio_times_are_used_and_mapped_to_the_monotonic_clock() -> None:
    clock = new_clock()
    truth, estimate = run_clock(clock, blocks=300, pa="good")
    assert np.abs(estimate - truth).max() < 1.5e6
    assert clock.timed_by_portaudio == 300


@pytest.mark.parametrize("pa", ["pulse", "zero"])
def test_implausible_or_missing_portaudio_times_fall_back_to_arrival(pa: str) -> None:
    clock = new_clock()
    truth, estimate = run_clock(clock, blocks=300, pa=pa)
    assert np.all(estimate >= truth) and np.abs(estimate - truth)[10:].max() < 1e6
    assert clock.timed_by_arrival == 300


def test_mic_clock_drift_survives_in_the_timestamps() -> None:
    # finalize corrects drift by fitting samples against these times: it must stay visible.
    rate = RATE * (1 + 300e-6)
    for pa in ("good", "pulse"):
        _, estimate = run_clock(new_clock(), blocks=3000, true_rate=rate, pa=pa)
        slope = np.polyfit(estimate - estimate[0], np.arange(3000) * 960, 1)[0] * 1e9
        assert slope == pytest.approx(rate, rel=20e-6)


def test_after_an_overflow_blocks_are_timed_from_the_arrivals_again() -> None:
    clock = new_clock()
    run_clock(clock, blocks=100, pa="zero")
    clock.restart()  # 0.3 s of samples lost
    truth, estimate = run_clock(clock, blocks=100, pa="zero", seed=2)
    assert np.abs(estimate - truth)[5:].max() < 5e6


# ---- lifecycle and failures, with a fake sounddevice ---------------------------------------

class FakeStream:
    """A RawInputStream the test drives by hand: `feed()` calls the callback."""

    def __init__(self, module: FakeSoundDevice, **kwargs: Any) -> None:
        self.module, self.kwargs = module, kwargs
        self.latency = 0.04
        self.time = 1000.0
        module.streams.append(self)

    def start(self) -> None:
        pass

    def feed(self, blocks: int = 1, *, overflow: bool = False) -> None:
        frames = self.kwargs["blocksize"]
        for _ in range(blocks):
            times = SimpleNamespace(currentTime=0.0, inputBufferAdcTime=0.0)
            self.kwargs["callback"](b"\0\0" * frames, frames, times,
                                    SimpleNamespace(input_overflow=overflow))

    def abort(self, ignore_errors: bool = True) -> None:
        if self.module.hang_on_close:
            time.sleep(5)

    def close(self, ignore_errors: bool = True) -> None:
        pass


class FakeSoundDevice:
    """Just enough of sounddevice for the microphone."""

    class PortAudioError(Exception):
        pass

    def __init__(self, devices: list[tuple[str, int]]) -> None:
        self.devices = [{"name": n, "max_input_channels": c, "index": i}
                        for i, (n, c) in enumerate(devices)]
        self.streams: list[FakeStream] = []
        self.hang_on_close = False

    def query_devices(self, kind: str | None = None) -> Any:
        if kind == "input":
            return self.devices[-1]
        return self.devices

    def check_input_settings(self, **kwargs: Any) -> None:
        pass

    def RawInputStream(self, **kwargs: Any) -> FakeStream:  # noqa: N802 - sounddevice's name
        return FakeStream(self, **kwargs)


def fake_mic(device: str = "usb", **kwargs: Any) -> tuple[SoundDeviceMicrophone, FakeSoundDevice]:
    sd = FakeSoundDevice([("HDMI out", 0), ("USB PnP Sound Device: Audio (hw:1,0)", 1),
                          ("pulse", 32), ("default", 32)])
    mic = SoundDeviceMicrophone(device=device, sample_rate=RATE, block_ms=BLOCK_MS,
                                stall_timeout_s=0.2, sounddevice_module=sd, **kwargs)
    return mic, sd


def test_missing_portaudio_says_to_install_libportaudio2(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_portaudio(name: str) -> Any:
        raise OSError("PortAudio library not found")
    monkeypatch.setattr(mic_sounddevice.importlib, "import_module", no_portaudio)
    mic = SoundDeviceMicrophone(device="", sample_rate=RATE, block_ms=BLOCK_MS,
                                stall_timeout_s=0.5)
    with pytest.raises(MicrophoneError, match="libportaudio2"):
        mic.check()


def test_the_mic_is_opened_by_name_never_by_configured_index() -> None:
    mic, sd = fake_mic("usb pnp")
    mic.start(lambda c: None, lambda r: None)
    assert sd.streams[0].kwargs["device"] == 1
    mic.stop()
    with pytest.raises(MicrophoneError, match="'HDMI out' has no input channels"):
        fake_mic("hdmi")[0].check()
    with pytest.raises(MicrophoneError, match="matches several input devices"):
        fake_mic("u")[0].check()


def test_a_stalled_stream_is_reported_once_and_nothing_is_delivered_after() -> None:
    mic, sd = fake_mic(start_timeout_s=0.2)
    chunks: list[Any] = []
    errors: list[str] = []
    mic.start(chunks.append, errors.append)
    sd.streams[0].feed(3, overflow=True)
    deadline = time.monotonic() + 2
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    sd.streams[0].feed(3)
    time.sleep(0.3)
    mic.stop()
    mic.stop()
    assert errors == ["microphone: 'USB PnP Sound Device: Audio (hw:1,0)' delivered no sound "
                      "for 0.2 s; is the microphone unplugged?"]
    assert len(chunks) == 3 and mic.chunks == 3 and mic.overflows == 3


def test_a_stream_that_ends_by_itself_is_a_failure_but_stopping_is_not() -> None:
    mic, sd = fake_mic()
    errors: list[str] = []
    mic.start(lambda c: None, errors.append)
    sd.streams[0].feed()
    sd.streams[0].kwargs["finished_callback"]()
    deadline = time.monotonic() + 2
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    mic.stop()
    assert len(errors) == 1 and "ended by itself" in errors[0]
    mic.start(lambda c: None, errors.append)
    sd.streams[1].feed()
    mic.stop()
    sd.streams[1].kwargs["finished_callback"]()  # PortAudio's own call after a stop
    time.sleep(0.2)
    assert len(errors) == 1


def test_the_error_handler_may_stop_the_mic_from_the_watchdog_thread() -> None:
    mic, sd = fake_mic()
    stopped = threading.Event()

    def on_error(reason: str) -> None:
        mic.stop()
        stopped.set()

    mic.start(lambda c: None, on_error)
    sd.streams[0].feed()
    assert stopped.wait(3)


def test_stop_gives_up_on_a_stream_that_will_not_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mic_sounddevice, "CLOSE_TIMEOUT_S", 0.3)
    mic, sd = fake_mic()
    mic.start(lambda c: None, lambda r: None)
    sd.hang_on_close = True
    started = time.monotonic()
    with pytest.raises(MicrophoneError, match="did not close within 0.3 s"):
        mic.stop()
    assert time.monotonic() - started < 1
    mic.close()  # already stopped: nothing more to do
    with pytest.raises(MicrophoneError, match="never closed"):
        mic.start(lambda c: None, lambda r: None)


def test_a_failing_chunk_handler_fails_the_mic() -> None:
    mic, sd = fake_mic()
    errors: list[str] = []

    def on_chunk(chunk: Any) -> None:
        raise RuntimeError("queue full")

    mic.start(on_chunk, errors.append)
    sd.streams[0].feed(2)
    deadline = time.monotonic() + 2
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    mic.stop()
    assert errors == ["microphone: the audio handler failed: RuntimeError('queue full')"]
    assert mic.chunks == 1
