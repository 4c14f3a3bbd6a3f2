"""Finalizing: turn a recording's journal into one playable MP4 (H.264 + AAC, faststart).

The video is remuxed, never re-encoded, at a constant frame rate: frame k plays at
k / fps. The audio is then laid onto that timeline sample by sample from capture
timestamps: each output sample's capture time is read off the frame times, and the
mic sample taken at that time is found from the chunk ADC times with the mic's real
rate fitted over the whole recording. This corrects mic clock drift, absorbs
dropped frames and mic gaps, and keeps A/V offset within a frame for any length.
"""

from __future__ import annotations

import logging
import os
import wave
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from appliance import ffmpeg_tool
from appliance.capture.journal import (
    AUDIO,
    VIDEO,
    ChunkEntry,
    FrameEntry,
    is_contiguous,
    read_audio_index,
    read_video_index,
)
from appliance.errors import MediaError
from appliance.fsutil import publish
from appliance.mp4 import check_faststart
from appliance.probe import probe

log = logging.getLogger(__name__)
SMOOTH_CHUNKS = 25     # median window over chunk timestamps (~0.5 s): removes callback jitter
BLOCK_SAMPLES = 48_000


@dataclass(frozen=True)
class FinalizeResult:
    """What finalizing produced."""

    path: Path
    frames: int
    dropped_frames: int
    duration_s: float
    audio: str          # "ok", "none" (no mic), "partial" (mic stopped early)
    mic_rate_hz: float | None


def moov_reserve(frames: int, fps: int, sample_rate: int | None) -> int:
    """Bytes to reserve for the MP4 index at the front: ~13 bytes a packet is typical;
    twice that plus 64 KiB leaves room for any recording."""
    packets = frames + (frames * sample_rate // (fps * 1024) + 1 if sample_rate else 0)
    return 65_536 + 26 * packets


def mux_argv(video: Path, audio: Path | None, fps: int, out: Path, *,
             moov_size: int | None = None) -> list[str]:
    """ffmpeg argv: raw H.264 at `fps` (+ aligned audio) → MP4, video copied.

    Audio given as WAV is encoded to AAC; given as ADTS (.aac, encoded while
    recording) it is copied too, making the whole finalize a remux. With
    `moov_size` the index is written into space reserved at the front: a
    faststart file in one pass, where +faststart would rewrite the whole file
    (hundreds of MB on an SD card)."""
    # Input -r stamps frame k at exactly k/fps; a timescale of fps*1000 keeps it exact
    # (the demuxer's own microsecond stamps drift ~6 ms over 10 minutes).
    video_in = ffmpeg.input(str(video), format="h264", r=fps)
    streams = [video_in.video]
    options: dict[str, object] = {"vcodec": "copy", "format": "mp4",
                                  "video_track_timescale": fps * 1000}
    if moov_size:
        options["moov_size"] = moov_size
    else:
        options["movflags"] = "+faststart"
    if audio is not None and audio.suffix == ".aac":
        streams.append(ffmpeg.input(str(audio), format="aac").audio)
        options |= {"acodec": "copy"}
    elif audio is not None:
        streams.append(ffmpeg.input(str(audio), format="wav").audio)
        options |= {"acodec": "aac", "b:a": "128k"}
    return (ffmpeg.output(*streams, str(out), **options)
            .global_args("-hide_banner", "-loglevel", "error", "-nostdin", "-y").compile())


def count_dropped(frames: list[FrameEntry], fps: int) -> int:
    """Frames missing from the capture grid between the first and the last frame."""
    if len(frames) < 2:
        return 0
    pts = np.array([f.pts_ns for f in frames], dtype=np.int64)
    slots = np.rint(np.diff(pts) * fps / 1e9).astype(np.int64)
    return int(np.clip(slots - 1, 0, None).sum())


def output_sample_count(frames: list[FrameEntry], fps: int, sample_rate: int) -> int:
    """Audio samples in the CFR output: exactly as long as the video."""
    return int(round(len(frames) * sample_rate / fps))


def output_sample_times(pts_ns: np.ndarray, fps: int, sample_rate: int, start: int,
                        count: int) -> np.ndarray:
    """Capture-clock time (ns, float) of output samples start .. start+count-1.

    Computed a block at a time: a whole 10-minute track at once would need
    hundreds of MB, more than a 1 GB Pi can spare.
    """
    tau_frames = np.arange(start, start + count, dtype=np.float64) * fps / sample_rate
    k = np.minimum(tau_frames.astype(np.int64), len(pts_ns) - 1)
    return pts_ns[k] + (tau_frames - k) * (1e9 / fps)


class MicTimeline:
    """Maps capture-clock time to a (fractional) mic sample position."""

    def __init__(self, chunks: list[ChunkEntry], nominal_rate: int) -> None:
        t = np.array([c.adc_ns for c in chunks], dtype=np.float64)
        s = np.array([c.first_sample for c in chunks], dtype=np.float64)
        self.t0 = t[0]
        if len(chunks) >= 2 and t[-1] > t[0]:
            slope, _ = np.polyfit(t - self.t0, s, 1)
        else:
            slope = nominal_rate / 1e9
        self.rate_hz = float(slope * 1e9)
        residual = s - slope * (t - self.t0)
        self._t = t
        self._residual = _running_median(residual, SMOOTH_CHUNKS)
        self._slope = slope

    def position(self, times_ns: np.ndarray) -> np.ndarray:
        """Mic sample positions for capture times."""
        offset = np.interp(times_ns, self._t, self._residual)
        return self._slope * (times_ns - self.t0) + offset


def _running_median(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window:
        return np.full_like(values, np.median(values))
    half = window // 2
    padded = np.pad(values, (half, window - 1 - half), mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)


def write_aligned_audio(directory: Path, frames: list[FrameEntry], chunks: list[ChunkEntry],
                        fps: int, sample_rate: int, out: Path) -> MicTimeline:
    """Write the mic audio laid onto the video's timeline as a 16-bit mono WAV."""
    timeline = MicTimeline(chunks, sample_rate)
    recorded = chunks[-1].first_sample + chunks[-1].samples
    source = np.memmap(directory / AUDIO, dtype="<i2", mode="r", shape=(recorded,))
    pts = np.array([f.pts_ns for f in frames], dtype=np.float64)
    total = output_sample_count(frames, fps, sample_rate)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        for start in range(0, total, BLOCK_SAMPLES):
            times = output_sample_times(pts, fps, sample_rate, start,
                                        min(BLOCK_SAMPLES, total - start))
            w.writeframes(_interpolate(source, timeline.position(times)).tobytes())
    return timeline


def _interpolate(source: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of `source` at fractional positions; silence outside it."""
    return interpolate_window(source, 0, pos)


def interpolate_window(window: np.ndarray, first: int, pos: np.ndarray) -> np.ndarray:
    """Interpolate samples `first ..` (held in `window`) at positions `pos`; silence
    wherever a position falls outside the window."""
    rel = pos - first
    inside = (rel >= 0) & (rel <= len(window) - 1)
    out = np.zeros(len(pos), dtype=np.float64)
    p = rel[inside]
    i = np.minimum(p.astype(np.int64), len(window) - 2) if len(window) > 1 else p.astype(np.int64)
    frac = p - i
    a = window[i].astype(np.float64)
    b = window[np.minimum(i + 1, len(window) - 1)].astype(np.float64)
    out[inside] = a + (b - a) * frac
    return np.clip(np.rint(out), -32768, 32767).astype("<i2")


def finalize(directory: Path, out: Path, *, fps: int, sample_rate: int,
             mic_failed: bool = False, live_audio: Path | None = None) -> FinalizeResult:
    """Build `out` from the journal in `directory`; raw files are left for the caller.

    `live_audio`: the aligned audio already encoded while recording (then both
    streams are only copied)."""
    frames = read_video_index(directory)
    if not frames:
        raise MediaError("the recording has no complete video frame")
    # A torn tail (kill -9, power cut) is cut off so the demuxer sees whole frames only.
    video_path = directory / VIDEO
    end = frames[-1].offset + frames[-1].size
    if video_path.stat().st_size != end:
        os.truncate(video_path, end)
    compact: Path | None = None
    if not is_contiguous(frames):
        # Index lines were lost mid-file and some frames left out: the muxer reads the
        # raw stream, so it gets a copy holding exactly the frames kept (rare path).
        compact = video_path.with_name(f".{VIDEO}.compact")
        write_frames(video_path, frames, compact)
        video_path = compact
        live_audio = None  # it followed every frame written, not the ones kept
    chunks = read_audio_index(directory)
    wav: Path | None = None
    timeline = None
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if chunks and live_audio is not None:
            timeline = MicTimeline(chunks, sample_rate)  # for the reported mic rate
            audio_in: Path | None = live_audio
        else:
            if chunks:
                wav = directory / ".aligned.wav"
                timeline = write_aligned_audio(directory, frames, chunks, fps, sample_rate,
                                               wav)
            audio_in = wav
        reserve = moov_reserve(len(frames), fps, sample_rate if chunks else None)
        try:
            ffmpeg_tool.run(mux_argv(video_path, audio_in, fps, tmp, moov_size=reserve),
                            timeout=600, what="finalizing the recording", quiet=True)
            check_faststart(tmp)
        except MediaError as e:
            log.warning("one-pass finalize failed (%s); rewriting with +faststart", e)
            ffmpeg_tool.run(mux_argv(video_path, audio_in, fps, tmp), timeout=600,
                            what="finalizing the recording")
        _verify(tmp, len(frames), fps, audio=bool(chunks))
        publish(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        for scratch in (wav, compact):
            if scratch is not None:
                scratch.unlink(missing_ok=True)
    duration = len(frames) / fps
    audio = "none" if not chunks else ("partial" if mic_failed else "ok")
    return FinalizeResult(out, len(frames), count_dropped(frames, fps), round(duration, 3),
                          audio, timeline.rate_hz if timeline else None)


def write_frames(source: Path, frames: list[FrameEntry], out: Path) -> None:
    """Copy the bytes of `frames`, in order, from the raw stream into `out`."""
    with open(source, "rb") as src, open(out, "wb") as dst:
        for frame in frames:
            src.seek(frame.offset)
            dst.write(src.read(frame.size))


def _verify(path: Path, frames: int, fps: int, *, audio: bool) -> None:
    # Structure first: ffmpeg can exit 0 after a failed trailer write (e.g. a reserved
    # index space that was too small), leaving an index written over the media.
    check_faststart(path)
    info = probe(path, count_packets=True)
    video = info.video
    if video is None or video.packets != frames:
        got = video.packets if video else "no video"
        raise MediaError(f"finalized file has {got} video frames, expected {frames}")
    if audio and not info.has_audio:
        raise MediaError("finalized file lost its audio track")
    if video.fps != fps:
        raise MediaError(f"finalized file runs at {video.fps} fps, not {fps}")
