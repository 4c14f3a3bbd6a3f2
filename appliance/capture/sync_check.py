"""Measure A/V sync and dropped frames in a finished file from the sync markers.

The synthetic sources put a white frame and a 1 kHz burst at the same capture
instant every 5 s (DESIGN.md §5). Here both are found again in the MP4: the offset
is (burst onset − white frame time) and the frames between markers show drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from appliance import ffmpeg_tool
from appliance.capture.picture import BARCODE_BITS, CELL, WHITE_Y, read_frame_index
from appliance.capture.sync_marker import PERIOD_NS, TONE_HZ
from appliance.errors import MediaError
from appliance.probe import probe

ANALYSIS_RATE = 8000
THUMB_W, THUMB_H = 64, 36


@dataclass
class SyncReport:
    """Markers found in a file and what they say."""

    frames: int
    fps: float
    white_frames: list[int]
    burst_onsets_s: list[float]
    offsets_ms: list[float] = field(default_factory=list)
    dropped_frames: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain data for `--json` output."""
        return {"frames": self.frames, "fps": self.fps, "white_frames": self.white_frames,
                "burst_onsets_s": [round(b, 4) for b in self.burst_onsets_s],
                "offsets_ms": [round(o, 2) for o in self.offsets_ms],
                "max_abs_offset_ms": round(max(map(abs, self.offsets_ms), default=0.0), 2),
                "dropped_frames": self.dropped_frames}


def luma_argv(path: Path) -> list[str]:
    """ffmpeg argv: every frame as a tiny grey picture on stdout."""
    return (ffmpeg.input(str(path)).video.filter("scale", THUMB_W, THUMB_H).filter("format", "gray")
            .output("pipe:1", format="rawvideo").global_args("-v", "error", "-nostdin")
            .compile())


def audio_argv(path: Path) -> list[str]:
    """ffmpeg argv: the audio as mono s16le at the analysis rate on stdout."""
    return (ffmpeg.input(str(path)).audio
            .output("pipe:1", format="s16le", ac=1, ar=ANALYSIS_RATE)
            .global_args("-v", "error", "-nostdin").compile())


def _read_all(argv: list[str], what: str) -> bytes:
    return ffmpeg_tool.run_bytes(argv, timeout=900, what=what)


def white_frames(path: Path) -> tuple[list[int], int]:
    """Indices of the completely white frames, and the number of frames decoded."""
    raw = _read_all(luma_argv(path), "decoding video")
    frames = np.frombuffer(raw, np.uint8).reshape(-1, THUMB_H * THUMB_W)
    return [int(i) for i in np.flatnonzero(frames.min(axis=1) > 200)], int(len(frames))


def burst_onsets(path: Path) -> list[float]:
    """Start times (s) of the 1 kHz bursts in the audio track."""
    raw = _read_all(audio_argv(path), "decoding audio")
    x = np.frombuffer(raw, "<i2").astype(np.float32)
    if x.size == 0:
        return []
    t = np.arange(x.size, dtype=np.float64) / ANALYSIS_RATE
    base = x * np.exp(-2j * np.pi * TONE_HZ * t).astype(np.complex64)
    window = ANALYSIS_RATE // 200  # 5 ms, centred so the envelope has no delay
    env = np.abs(np.convolve(base, np.ones(window, np.float32) / window, mode="same"))
    peak = float(env.max())
    if peak < 1000:  # no burst at all (silence or a video-only file)
        return []
    above = env > peak / 2
    starts = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    onsets: list[float] = []
    for s in starts:
        if not onsets or s / ANALYSIS_RATE - onsets[-1] > 1.0:
            onsets.append(float(s) / ANALYSIS_RATE)
    return onsets


def measure_sync(path: Path) -> SyncReport:
    """Find the markers in `path` and pair each white frame with its tone burst."""
    video = probe(path).video
    if video is None:
        raise MediaError(f"{path.name} has no video")
    fps = float(video.fps)
    whites, count = white_frames(path)
    onsets = burst_onsets(path)
    report = SyncReport(frames=count, fps=fps, white_frames=whites, burst_onsets_s=onsets)
    for index in whites:
        at = index / fps
        nearest = min(onsets, key=lambda o: abs(o - at), default=None)
        if nearest is not None and abs(nearest - at) < 1.0:
            report.offsets_ms.append(float(nearest - at) * 1000)
    per_marker = round(PERIOD_NS / 1e9 * fps)
    report.dropped_frames = int(sum(max(0, per_marker - (b - a))
                                    for a, b in zip(whites, whites[1:])))
    return report


def barcode_argv(path: Path) -> list[str]:
    """ffmpeg argv: the barcode strip (top left) of every frame, grey, on stdout."""
    return (ffmpeg.input(str(path)).video.filter("crop", BARCODE_BITS * CELL, CELL, 0, 0)
            .filter("format", "gray").output("pipe:1", format="rawvideo")
            .global_args("-v", "error", "-nostdin").compile())


def frame_indices(path: Path) -> list[int | None]:
    """The synthetic camera's frame index of every decoded frame (None: a marker frame)."""
    raw = _read_all(barcode_argv(path), "decoding video")
    frames = np.frombuffer(raw, np.uint8).reshape(-1, CELL, BARCODE_BITS * CELL)
    return [None if f.min() > WHITE_Y - 25 else read_frame_index(f) for f in frames]


def index_gaps(indices: list[int | None]) -> list[tuple[int, int]]:
    """Where the index does not advance by one (a marker frame counts as one frame)."""
    out = []
    previous: int | None = None
    skipped = 0
    for value in indices:
        if value is None:
            skipped += 1
            continue
        if previous is not None and value != previous + 1 + skipped:
            out.append((previous, value))
        previous, skipped = value, 0
    return out
