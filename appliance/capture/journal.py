"""The crash-safe on-disk form of a recording in progress.

Video is appended as raw H.264 access units with an index line per frame (exposure
time, offset, size, keyframe); audio as raw s16le samples with an index line per
chunk (ADC time, first sample, count). Data is written before its index line and
both are fsynced every `fsync_interval_s`, so after `kill -9` nothing but the queue is
lost and after a power cut at most the last interval; readers trust only index lines
whose bytes are really there, skipping a garbled line and resynchronising after it.
The capture callbacks only queue: a slow disk never stalls the camera. If the queue
is full anyway, frames are dropped up to the next keyframe (a lost P-frame would
corrupt the pictures after it) and each such episode is reported once.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.capture.sources import AudioChunk, VideoFrame
from appliance.errors import CaptureError

log = logging.getLogger(__name__)

VIDEO, VIDEO_INDEX = "video.h264", "video.idx"
AUDIO, AUDIO_INDEX = "audio.pcm", "audio.idx"
LIVE_AAC = "audio.aac"   # the aligned audio, encoded while recording (live_audio.py)
QUEUE_ITEMS = 600  # ~10 s of video and audio blocks: rides out a slow SD card


@dataclass(frozen=True)
class FrameEntry:
    """One frame in the video index."""

    pts_ns: int
    offset: int
    size: int
    keyframe: bool


@dataclass(frozen=True)
class ChunkEntry:
    """One audio chunk in the audio index."""

    adc_ns: int
    first_sample: int
    samples: int


class _AppendFile:
    """An append-only file written with os.write (nothing buffered in the process)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self.size = os.fstat(self.fd).st_size

    def append(self, data: bytes) -> int:
        """Write all of `data`; on failure cut the file back so no half record remains."""
        start = self.size
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except OSError:
            os.ftruncate(self.fd, start)
            raise
        self.size += len(data)
        return start

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class Journal:
    """Writes one recording's frames and audio on a background thread."""

    def __init__(self, directory: Path, *, fsync_interval_s: float,
                 on_error: Callable[[str], None],
                 on_drop: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self._fsync_interval = fsync_interval_s
        self._on_error = on_error
        self._on_drop = on_drop or (lambda text: None)
        self._queue: queue.Queue[VideoFrame | AudioChunk | None] = queue.Queue(QUEUE_ITEMS)
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._files: dict[str, _AppendFile] = {}
        self._failed = False
        self._closed = False
        self.frames_written = 0
        self.samples_written = 0
        self.frames_dropped = 0
        self.chunks_dropped = 0
        self._until_keyframe = False      # dropping video until the next keyframe
        self._episode: list[int] = []     # [first dropped pts, frames, chunks] while open
        self.first_pts_ns: int | None = None
        self.last_pts_ns: int | None = None
        # What is on disk, kept in memory too (appended by the writer thread only) so
        # the live audio encoder can follow the recording without re-reading indexes.
        self.frame_pts: list[int] = []
        self.chunks: list[ChunkEntry] = []

    @property
    def bytes_written(self) -> int:
        """Bytes of media on disk so far."""
        return sum(f.size for f in self._files.values())

    @property
    def alive(self) -> bool:
        """False only if the writer thread died while it should be running."""
        return self._closed or self._thread.ident is None or self._thread.is_alive()

    def open(self) -> None:
        """Create the files and start the writer thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in (VIDEO, VIDEO_INDEX, AUDIO, AUDIO_INDEX):
            self._files[name] = _AppendFile(self.directory / name)
        self._thread.start()

    def add(self, item: VideoFrame | AudioChunk) -> bool:
        """Queue a frame or chunk without blocking; False if it had to be dropped.
        Runs on the source's thread: cheap, and never raises."""
        if self._failed:
            return False
        video = isinstance(item, VideoFrame)
        if isinstance(item, VideoFrame) and self._until_keyframe and not item.keyframe:
            self._dropped(item)
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._dropped(item)
            self._until_keyframe = self._until_keyframe or video
            return False
        if video:
            self._until_keyframe = False
            self._report_drops()
        return True

    def _dropped(self, item: VideoFrame | AudioChunk) -> None:
        if not self._episode:
            self._episode = [item.pts_ns if isinstance(item, VideoFrame) else item.adc_ns, 0, 0]
        if isinstance(item, VideoFrame):
            self.frames_dropped += 1
            self._episode[1] += 1
        else:
            self.chunks_dropped += 1
            self._episode[2] += 1

    def _report_drops(self) -> None:
        """Say once what one overflow episode lost (called when it is over)."""
        if not self._episode:
            return
        at_ns, frames, chunks = self._episode
        self._episode = []
        at_s = max(0.0, (at_ns - (self.first_pts_ns or at_ns)) / 1e9)
        lost = ", ".join(part for part in (f"{frames} frames" if frames else "",
                                           f"{chunks} audio blocks" if chunks else "") if part)
        try:
            self._on_drop(f"{lost} lost at {at_s:.1f} s: the disk could not keep up")
        except Exception:  # noqa: BLE001 - a report must never stop the camera's thread
            log.exception("journal: reporting dropped frames failed")

    def close(self) -> None:
        """Write what is queued, fsync and close (call once the sources have stopped)."""
        self._closed = True
        self._report_drops()
        try:
            self._queue.put(None, timeout=60)
        except queue.Full:
            pass  # the writer is dead or stuck: the join below reports it
        self._thread.join(60)
        if self._thread.is_alive():
            raise CaptureError("the recording writer did not finish within 60 s")
        for f in self._files.values():
            f.close()

    def _run(self) -> None:
        next_sync = time.monotonic() + self._fsync_interval
        while True:
            try:
                item = self._queue.get(timeout=self._fsync_interval)
                if item is None:
                    break
                if not self._failed:
                    self._write(item)
            except queue.Empty:
                pass   # nothing came: only time to sync, perhaps
            if time.monotonic() >= next_sync:
                self._sync()
                next_sync = time.monotonic() + self._fsync_interval
        self._sync()

    def _write(self, item: VideoFrame | AudioChunk) -> None:
        try:
            if isinstance(item, VideoFrame):
                offset = self._files[VIDEO].append(item.data)
                line = f"{item.pts_ns} {offset} {len(item.data)} {int(item.keyframe)}\n"
                self._files[VIDEO_INDEX].append(line.encode())
                self.frames_written += 1
                self.first_pts_ns = self.first_pts_ns or item.pts_ns
                self.last_pts_ns = item.pts_ns
                self.frame_pts.append(item.pts_ns)
            else:
                self._files[AUDIO].append(item.samples)
                line = f"{item.adc_ns} {self.samples_written} {item.frames}\n"
                self._files[AUDIO_INDEX].append(line.encode())
                self.chunks.append(ChunkEntry(item.adc_ns, self.samples_written, item.frames))
                self.samples_written += item.frames
        except OSError as e:
            self._fail(e)

    def _sync(self) -> None:
        if self._failed:
            return
        try:
            # Data before index, so a synced index line never points at unsynced bytes.
            for name in (VIDEO, AUDIO, VIDEO_INDEX, AUDIO_INDEX):
                self._files[name].sync()
        except OSError as e:
            self._fail(e)

    def _fail(self, e: OSError) -> None:
        self._failed = True
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            reason = "the disk is full"
        else:
            reason = f"cannot write the recording ({e.strerror})"
        log.error("journal: %s", reason)
        self._on_error(reason)


def remove_journal(directory: Path) -> None:
    """Delete the raw journal once the MP4 is published and catalogued."""
    for name in (VIDEO, VIDEO_INDEX, AUDIO, AUDIO_INDEX, LIVE_AAC, f".{LIVE_AAC}.tmp"):
        (directory / name).unlink(missing_ok=True)


def read_video_index(directory: Path) -> list[FrameEntry]:
    """The frames whose bytes are on disk and start like an access unit, in order.

    A garbled index line is skipped, not the end: later frames are kept. After a
    gap (a frame whose line was lost), frames up to the next keyframe are left out,
    since they cannot be decoded without the lost one."""
    data_path = directory / VIDEO
    size = data_path.stat().st_size if data_path.exists() else 0
    entries: list[FrameEntry] = []
    if size == 0:
        return entries
    need_keyframe = True   # the stream must start at a keyframe, as after any gap
    with open(data_path, "rb") as data:
        for fields in _index_lines(directory / VIDEO_INDEX, 4):
            entry = FrameEntry(fields[0], fields[1], fields[2], bool(fields[3]))
            expected = _expected(entries)
            if entry.offset + entry.size > size or entry.offset < expected or entry.size == 0:
                continue
            if entries and entry.pts_ns <= entries[-1].pts_ns:
                continue
            data.seek(entry.offset)
            if data.read(4) != b"\x00\x00\x00\x01":
                continue
            if entry.offset > expected and entries:
                need_keyframe = True
            if need_keyframe and not entry.keyframe:
                continue
            need_keyframe = False
            entries.append(entry)
    return entries


def is_contiguous(entries: list[FrameEntry]) -> bool:
    """True if the frames are the data file's bytes from 0 on, with nothing between."""
    expected = 0
    for entry in entries:
        if entry.offset != expected:
            return False
        expected += entry.size
    return True


def read_audio_index(directory: Path) -> list[ChunkEntry]:
    """The audio chunks whose samples are on disk, in order (garbled lines skipped)."""
    data_path = directory / AUDIO
    size = data_path.stat().st_size if data_path.exists() else 0
    entries: list[ChunkEntry] = []
    for fields in _index_lines(directory / AUDIO_INDEX, 3):
        entry = ChunkEntry(*fields)
        if (entry.first_sample + entry.samples) * 2 > size or entry.samples == 0:
            continue
        if entries and (entry.first_sample < entries[-1].first_sample + entries[-1].samples
                        or entry.adc_ns <= entries[-1].adc_ns):
            continue
        entries.append(entry)
    return entries


def _expected(entries: list[FrameEntry]) -> int:
    return entries[-1].offset + entries[-1].size if entries else 0


def _index_lines(path: Path, width: int) -> list[list[int]]:
    """The well-formed index lines; a torn or garbled one (a power cut can leave NUL
    bytes mid-file) is skipped, and the last piece, with no newline yet, ignored."""
    if not path.exists():
        return []
    out: list[list[int]] = []
    for line in path.read_bytes().split(b"\n")[:-1]:
        parts = line.split()
        if len(parts) == width and all(p.isdigit() for p in parts):
            out.append([int(p) for p in parts])
    return out
