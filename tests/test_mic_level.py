"""How loud the microphone is: the level of known signals, a second heard from the simulated
microphone, and the real PortAudio path hearing a tone of known level from a private
PulseAudio server (and `vigbox doctor` judging silence and clipping from it).

PortAudio reads PULSE_SERVER when sounddevice is first imported, so whatever listens on
the real path runs in a child process whose environment points at the test's server.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.capture.devices import new_marker
from appliance.capture.mic_level import FLOOR_DBFS, level_of, listen
from appliance.capture.mic_synthetic import SyntheticMicrophone
from appliance.capture.sources import AudioChunk, ChunkCallback, ErrorCallback, Microphone
from appliance.errors import MicrophoneError
from tests.processes import write_test_config
from tests.pulse_server import PulseServer, require_pulseaudio

ROOT = Path(__file__).resolve().parent.parent
RATE = 48_000
CHILD_TIMEOUT_S = 30


def sine(dbfs: float, *, seconds: float = 1.0, hz: float = 1000.0) -> np.ndarray:
    """A sine whose peak is `dbfs` below full scale, as int16 (clipped, as a mic clips)."""
    t = np.arange(int(RATE * seconds)) / RATE
    samples = np.round(32768 * 10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t))
    return np.clip(samples, -32768, 32767).astype("<i2")


# ---- the level of known signals -----------------------------------------------------------

@pytest.mark.parametrize("dbfs", [-6.0, -20.0, -40.0])
def test_a_sine_reads_its_peak_and_3_db_less_rms(dbfs: float) -> None:
    level = level_of(sine(dbfs).tobytes(), sample_rate=RATE)
    assert level.peak_dbfs == pytest.approx(dbfs, abs=0.01)
    assert level.rms_dbfs == pytest.approx(dbfs - 3.01, abs=0.02)
    assert level.seconds == 1.0


def test_silence_reads_the_floor_not_minus_infinity() -> None:
    level = level_of(bytes(2 * RATE // 2), sample_rate=RATE)
    assert (level.peak_dbfs, level.rms_dbfs, level.seconds) == (FLOOR_DBFS, FLOOR_DBFS, 0.5)
    assert json.dumps(level.peak_dbfs) == "-96.0"
    one_lsb = np.zeros(RATE, "<i2")
    one_lsb[100] = 1
    quiet = level_of(one_lsb.tobytes(), sample_rate=RATE)
    assert quiet.peak_dbfs == pytest.approx(-90.31, abs=0.01) and quiet.rms_dbfs == FLOOR_DBFS
    assert level_of(b"", sample_rate=RATE).seconds == 0.0


def test_a_clipped_signal_reads_0_dbfs() -> None:
    clipped = sine(6.0)  # a sine twice too loud
    square = np.where(sine(-1.0) >= 0, 32767, -32768).astype("<i2")
    assert level_of(clipped.tobytes(), sample_rate=RATE).peak_dbfs == pytest.approx(0, abs=0.01)
    level = level_of(square.tobytes(), sample_rate=RATE)
    assert level.peak_dbfs == 0.0 and level.rms_dbfs == pytest.approx(0, abs=0.01)


def test_half_a_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="3 bytes"):
        level_of(b"\0\0\0", sample_rate=RATE)


# ---- listening to a microphone ------------------------------------------------------------

@pytest.mark.timeout(20)
def test_a_second_from_the_simulated_microphone_is_its_noise_and_sync_burst() -> None:
    mic = SyntheticMicrophone(sample_rate=RATE, block_ms=20, marker=new_marker())
    started = time.monotonic()
    level = listen(mic, 1.0)
    took = time.monotonic() - started
    assert level.seconds == 1.0 and 0.95 < took < 2.5
    # A 1 kHz burst at half scale (-6.2 dBFS) starts the second, over a quiet room's noise.
    assert level.peak_dbfs == pytest.approx(-6.2, abs=0.5)
    assert -40 < level.rms_dbfs < -15
    assert listen(mic, 0.2).seconds == 0.2, "the first listen stopped the mic"


@pytest.mark.timeout(20)
def test_a_microphone_that_fails_while_listening_is_an_error_and_is_stopped() -> None:
    mic = SyntheticMicrophone(sample_rate=RATE, block_ms=20, marker=new_marker(),
                              fail_after_s=0.2)
    with pytest.raises(MicrophoneError, match="stopped sending sound"):
        listen(mic, 1.0)
    assert mic._thread is None


class TrickleMicrophone(Microphone):
    """Sends `blocks` blocks at once when started, then nothing: a mic that went quiet."""

    name = "trickle"

    def __init__(self, blocks: int) -> None:
        super().__init__(sample_rate=RATE, block_ms=20)
        self.blocks = blocks
        self.calls: list[str] = []

    def check(self) -> None:
        self.calls.append("check")

    def open(self) -> None:
        self.calls.append("open")

    def start(self, on_chunk: ChunkCallback, on_error: ErrorCallback) -> None:
        self.calls.append("start")
        for n in range(self.blocks):
            on_chunk(AudioChunk(bytes(2 * self.block_frames), n))

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


@pytest.mark.parametrize(("blocks", "message"), [
    (0, r"sent no sound within 0.5 s"),
    (10, r"sent 0.20 s of the 0.3 s of sound asked for within 0.5 s")])
def test_sound_that_does_not_come_in_time_is_an_error_after_the_timeout(
        blocks: int, message: str) -> None:
    mic = TrickleMicrophone(blocks)
    started = time.monotonic()
    with pytest.raises(MicrophoneError, match=message):
        listen(mic, 0.3, timeout_s=0.2)
    assert 0.5 <= time.monotonic() - started < 1.5
    assert mic.calls == ["check", "open", "start", "stop", "close"]


# ---- the real path: PortAudio → ALSA pulse plugin → private PulseAudio null sink ----------

LISTEN = r'''
import json, os, sys
from appliance.capture.mic_level import listen
from appliance.capture.mic_sounddevice import SoundDeviceMicrophone
mic = SoundDeviceMicrophone(device="pulse", sample_rate=48000, block_ms=20,
                            stall_timeout_s=0.5)
level = listen(mic, 1.0)
print("RESULT " + json.dumps(level.__dict__), flush=True)
os._exit(0)
'''


@pytest.fixture
def server() -> Iterator[PulseServer]:
    """A private PulseAudio server with a null sink as the default source."""
    require_pulseaudio()
    with PulseServer(rate=RATE, channels=1) as s:
        yield s


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def playing(server: PulseServer, wav: Path) -> subprocess.Popen[bytes]:
    """Start `wav` playing into the null sink; returns once the sink has its stream."""
    player = server.play(wav)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        inputs = subprocess.run(["pactl", "list", "short", "sink-inputs"], env=server.env,
                                capture_output=True, text=True, timeout=5).stdout
        if inputs.strip():
            return player
        assert player.poll() is None, server.log_tail()
        time.sleep(0.05)
    player.kill()
    player.wait(5)
    pytest.fail("paplay did not start playing within 10 s:\n" + server.log_tail())


def run_child(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_tone_of_known_level_is_heard_at_that_level(server: PulseServer,
                                                       tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "tone.wav", sine(-12.0, seconds=10.0))
    player = playing(server, wav)
    try:
        done = run_child([sys.executable, "-c", LISTEN], server.env)
    finally:
        player.kill()
        player.wait(5)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["seconds"] == 1.0
    assert result["peak_dbfs"] == pytest.approx(-12.0, abs=2.0), result
    assert result["rms_dbfs"] == pytest.approx(-15.0, abs=2.0), result


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("sound", ["nothing", "full scale"])
def test_the_doctor_says_a_silent_or_clipping_microphone_and_what_to_do(
        server: PulseServer, tmp_path: Path, sound: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = write_test_config(tmp_path / "config.toml", data)
    config.write_text(config.read_text().replace(
        '[microphone]\nbackend = "synthetic"', '[microphone]\nbackend = "sounddevice"\n'
        'device = "pulse"'))
    player = None
    if sound == "full scale":
        player = playing(server, write_wav(tmp_path / "loud.wav", sine(0.0, seconds=10.0)))
    try:
        done = run_child([sys.executable, "-m", "appliance", "doctor", "--offline", "--json"],
                         {**server.env, "VIGBOX_CONFIG": str(config)})
    finally:
        if player is not None:
            player.kill()
            player.wait(5)
    mic = {c["name"]: c for c in json.loads(done.stdout)}["microphone"]
    assert mic["status"] == "warn", mic
    assert mic["detail"].startswith("pulse ("), mic
    peak = float(mic["detail"].split("peak ")[1].split(" dBFS")[0])
    if sound == "nothing":
        assert "silent" in mic["detail"] and "muted" in mic["detail"]
        assert "amixer -c N sset Mic" in mic["advice"] and "alsamixer" in mic["advice"]
        assert peak < -50 and math.isfinite(peak)
    else:
        assert "clipping" in mic["detail"] and "lower the microphone's gain" in mic["detail"]
        assert peak >= -0.5
