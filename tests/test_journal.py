"""The journal under stress: a garbled index line mid-file, and a queue that overflows."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.capture import journal as journal_module
from appliance.capture.camera_synthetic import SyntheticCamera
from appliance.capture.devices import new_marker
from appliance.capture.finalize import finalize
from appliance.capture.journal import AUDIO_INDEX, VIDEO_INDEX, Journal
from appliance.capture.mic_synthetic import SyntheticMicrophone
from appliance.capture.sources import AudioChunk, VideoFrame
from appliance.capture.sync_check import measure_sync
from tests.media import frame_indices, streams

FPS = 30
TIMEOUT_S = 30


def wait_for(predicate: object, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def capture(seconds: float) -> tuple[list[VideoFrame], list[AudioChunk]]:
    """Real encoded frames and audio chunks from the synthetic sources (with markers)."""
    marker = new_marker()
    camera = SyntheticCamera(width=800, height=448, fps=FPS, bitrate=1_000_000,
                             keyframe_interval_s=1.0, marker=marker)
    mic = SyntheticMicrophone(sample_rate=48_000, block_ms=20, marker=marker)
    frames: list[VideoFrame] = []
    chunks: list[AudioChunk] = []
    errors: list[str] = []
    camera.open()
    try:
        mic.start(chunks.append, errors.append)
        camera.start(frames.append, errors.append)
        wait_for(lambda: len(frames) >= seconds * FPS, "frames")
    finally:
        camera.stop()
        mic.stop()
        camera.close()
    assert errors == []
    first = frames[0].pts_ns
    return frames[:int(seconds * FPS)], [c for c in chunks if c.adc_ns >= first - 10**9]


@pytest.fixture(scope="module")
def media() -> tuple[list[VideoFrame], list[AudioChunk]]:
    return capture(6.2)   # a sync marker about 5 s in


def write_journal(directory: Path, frames: list[VideoFrame], chunks: list[AudioChunk]) -> None:
    journal = Journal(directory, fsync_interval_s=0.2, on_error=pytest.fail)
    journal.open()
    items = sorted([*frames, *chunks], key=lambda i: i.pts_ns if isinstance(i, VideoFrame)
                   else i.adc_ns)
    for item in items:
        assert journal.add(item)
        if journal._queue.qsize() > 400:  # the writer is a thread: let it keep up
            wait_for(lambda: journal._queue.qsize() < 100, "the writer")
    journal.close()


def garble(path: Path, line: int) -> None:
    """Overwrite one index line with NUL bytes, as a power cut's writeback can leave it."""
    lines = path.read_bytes().split(b"\n")
    lines[line] = b"\0" * len(lines[line])
    path.write_bytes(b"\n".join(lines))


@pytest.fixture
def journal_dir(tmp_path: Path, media: tuple[list[VideoFrame], list[AudioChunk]]
                ) -> Iterator[Path]:
    directory = tmp_path / "rec"
    write_journal(directory, *media)
    yield directory


def test_a_garbled_video_index_line_loses_only_up_to_the_next_keyframe(
        journal_dir: Path, tmp_path: Path) -> None:
    garble(journal_dir / VIDEO_INDEX, 40)   # frame 40; keyframes at 0, 30, 60, ...
    out = tmp_path / "film.mp4"
    result = finalize(journal_dir, out, fps=FPS, sample_rate=48_000)
    # The barcodes count on from the camera's start; the white marker frame has none.
    read = frame_indices(out)
    expected = [*range(40), *range(60, 186)]
    assert len(read) == result.frames == len(expected)
    assert all(got is None or got - read[0] == want for got, want in zip(read, expected)), \
        "everything before the bad line, then from the next keyframe to the end"
    assert sum(got is None for got in read) <= 1
    assert result.dropped_frames == 20
    sync = measure_sync(out)
    assert sync.offsets_ms and max(map(abs, sync.offsets_ms)) < 1000 / FPS, sync.offsets_ms
    assert not list(journal_dir.glob(".*compact*")), "the compacted copy is removed"


def test_a_garbled_audio_index_line_keeps_the_sound_to_the_end(journal_dir: Path,
                                                              tmp_path: Path) -> None:
    garble(journal_dir / AUDIO_INDEX, 60)   # 1.2 s in
    out = tmp_path / "film.mp4"
    result = finalize(journal_dir, out, fps=FPS, sample_rate=48_000)
    assert result.frames == 186
    audio = streams(out)["audio"]
    assert float(audio["duration"]) == pytest.approx(186 / FPS, abs=0.05)
    sync = measure_sync(out)
    assert sync.offsets_ms, "the marker after the bad line is heard"
    assert max(map(abs, sync.offsets_ms)) < 1000 / FPS, sync.offsets_ms


def test_an_overflowing_queue_drops_up_to_a_keyframe_and_says_so(
        tmp_path: Path, media: tuple[list[VideoFrame], list[AudioChunk]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    frames = media[0][:120]
    monkeypatch.setattr(journal_module, "QUEUE_ITEMS", 50)
    reports: list[str] = []
    journal = Journal(tmp_path / "rec", fsync_interval_s=0.2, on_error=pytest.fail,
                      on_drop=reports.append)
    # The writer has not started yet: as with a disk that has stalled, the queue fills.
    assert all(journal.add(f) for f in frames[:50])
    assert not any(journal.add(f) for f in frames[50:65])   # keyframe 60 included
    journal.open()
    wait_for(lambda: journal.frames_written == 50, "the writer to catch up")
    accepted = [journal.add(f) for f in frames[65:]]
    journal.close()
    assert accepted == [False] * 25 + [True] * 30, "dropped until the keyframe at 90"
    assert journal.frames_dropped == 40 and journal.frames_written == 80
    assert reports == ["40 frames lost at 1.7 s: the disk could not keep up"]
    out = tmp_path / "film.mp4"
    result = finalize(tmp_path / "rec", out, fps=FPS, sample_rate=48_000)
    assert frame_indices(out) == [i + frame_indices(out)[0] for i in
                                  [*range(50), *range(90, 120)]]
    assert result.dropped_frames == 40
    decode = subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", str(out), "-f", "null",
                             "-"], capture_output=True, text=True, timeout=60)
    assert decode.returncode == 0 and decode.stderr == "", "what was kept decodes cleanly"
