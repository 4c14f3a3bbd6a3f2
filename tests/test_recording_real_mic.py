"""Recordings through the real sounddevice path (ALSA pulse plugin → private null sink)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.media import streams
from tests.pulse_server import PulseServer, require_pulseaudio
from tests.test_mic_sounddevice import tone_wav
from tests.test_recover import video_frames_on_disk, wait_for

RECORD_TIMEOUT_S = 60


@pytest.fixture
def server() -> Iterator[PulseServer]:
    require_pulseaudio()
    with PulseServer(rate=48_000, channels=1) as s:
        yield s


@pytest.fixture
def env(server: PulseServer, cli_env: dict[str, str], tmp_path: Path,
        data_dir: Path) -> dict[str, str]:
    config = tmp_path / "real-mic.toml"
    config.write_text(f'''data_dir = "{data_dir}"
[camera]
backend = "synthetic"
[microphone]
backend = "sounddevice"
device = "pulse"
[gpio]
backend = "mock"
[recording]
max_seconds = 120
reserve_mb = 16
''')
    return cli_env | server.env | {"VIGBOX_CONFIG": str(config)}


def start_record(env: dict[str, str], seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "appliance", "record", "--seconds",
                             str(seconds), "--json"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_frames(proc: subprocess.Popen[str], data_dir: Path, count: int) -> None:
    """Wait until `count` frames are on disk; fail with the child's words if it died."""
    def ready() -> bool:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"vigbox record exited {proc.returncode} early:\n{err}\n{out}")
        return video_frames_on_disk(data_dir) >= count
    try:
        wait_for(ready, RECORD_TIMEOUT_S, "frames")
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        raise


def finish(proc: subprocess.Popen[str]) -> dict[str, object]:
    try:
        out, err = proc.communicate(timeout=RECORD_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return json.loads(out)


def tone_level(path: Path, hz: float = 1000.0) -> float:
    """The share of the audio's energy within 20 Hz of `hz`."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                          "-ar", "48000", "pipe:1"], capture_output=True, check=True,
                         timeout=60).stdout
    x = np.frombuffer(raw, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / 48_000)
    return float(spectrum[np.abs(freqs - hz) < 20].sum() / max(spectrum.sum(), 1e-9))


@pytest.mark.slow
def test_recording_with_the_real_microphone_path(env: dict[str, str], server: PulseServer,
                                                 data_dir: Path, tmp_path: Path) -> None:
    proc = start_record(env, 5)
    wait_frames(proc, data_dir, 30)
    player = server.play(tone_wav(tmp_path / "tone.wav", seconds=1.5))
    rec = finish(proc)
    player.wait(10)
    assert rec["status"] == "ready" and rec["audio"] == "ok", rec
    assert rec["problems"] == []
    info = streams(Path(str(rec["path"])))
    assert info["audio"]["codec_name"] == "aac"
    assert float(info["audio"]["duration"]) == pytest.approx(float(info["video"]["duration"]),
                                                             abs=0.05)
    assert tone_level(Path(str(rec["path"]))) > 0.5, "the tone played into the mic is heard"


@pytest.mark.slow
def test_microphone_lost_mid_recording_the_film_goes_on(env: dict[str, str],
                                                       server: PulseServer,
                                                       data_dir: Path) -> None:
    proc = start_record(env, 5)
    wait_frames(proc, data_dir, 45)
    server.kill()  # the sound server dies, as an unplugged USB mic's stream does
    killed_at = time.monotonic()
    rec = finish(proc)
    assert time.monotonic() - killed_at < 30, "the recording did not hang"
    assert rec["status"] == "ready", rec
    assert rec["audio"] == "partial"
    assert rec["duration_s"] == pytest.approx(5.0, abs=0.2)
    [problem] = rec["problems"]  # type: ignore[misc]
    assert "microphone failed at" in problem and "the rest has no sound" in problem
    assert "audio" in streams(Path(str(rec["path"])))
