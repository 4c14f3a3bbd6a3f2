"""The crash-safe on-disk form of a recording in progress.

Video is appended as raw H.264 access units with an index line per frame (exposure
time, offset, size, keyframe); audio as raw s16le samples with an index line per
chunk (ADC time, first sample, count). Data is written before its index line and
both are fsynced every `fsync_interval_s`, so after `kill -9` nothing but the queue is
lost and after a power cut at most the last interval; readers trust only index lines
whose bytes are really there. The capture callbacks only queue: a slow disk never
stalls the camera.
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
                 on_error: Callable[[str], None]) -> None:
        self.directory = directory
        self._fsync_interval = fsync_interval_s
        self._on_error = on_error
        self._queue: queue.Queue[VideoFrame | AudioChunk | None] = queue.Queue(QUEUE_ITEMS)
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._files: dict[str, _AppendFile] = {}
        self._failed = False
        self._closed = False
        self.frames_written = 0
        self.samples_written = 0
        self.queue_drops = 0
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
        """Queue a frame or chunk without blocking; False if it had to be dropped."""
        if self._failed:
            return False
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.queue_drops += 1
            return False

    def close(self) -> None:
        """Write what is queued, fsync and close (call once the sources have stopped)."""
        self._closed = True
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
            except queue.Empty:
                item = ...
            if item is None:
                break
            if item is not ... and not self._failed:
                self._write(item)
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


def read_video_index(directory: Path) -> list[FrameEntry]:
    """The frames whose bytes are on disk and start like an access unit, in order."""
    data_path = directory / VIDEO
    size = data_path.stat().st_size if data_path.exists() else 0
    entries: list[FrameEntry] = []
    if size == 0:
        return entries
    with open(data_path, "rb") as data:
        for fields in _index_lines(directory / VIDEO_INDEX, 4):
            entry = FrameEntry(fields[0], fields[1], fields[2], bool(fields[3]))
            if entry.offset + entry.size > size or entry.offset != _expected(entries):
                break
            data.seek(entry.offset)
            if data.read(4) not in (b"\x00\x00\x00\x01",):
                break
            entries.append(entry)
    return entries


def read_audio_index(directory: Path) -> list[ChunkEntry]:
    """The audio chunks whose samples are on disk, in order."""
    data_path = directory / AUDIO
    size = data_path.stat().st_size if data_path.exists() else 0
    entries: list[ChunkEntry] = []
    for fields in _index_lines(directory / AUDIO_INDEX, 3):
        entry = ChunkEntry(*fields)
        if (entry.first_sample + entry.samples) * 2 > size:
            break
        if entries and entry.first_sample != entries[-1].first_sample + entries[-1].samples:
            break
        entries.append(entry)
    return entries


def _expected(entries: list[FrameEntry]) -> int:
    return entries[-1].offset + entries[-1].size if entries else 0


def _index_lines(path: Path, width: int) -> list[list[int]]:
    """Whole, well-formed index lines; stops at the first torn or garbled one."""
    if not path.exists():
        return []
    out: list[list[int]] = []
    for line in path.read_bytes().split(b"\n")[:-1]:  # the last piece has no newline yet
        parts = line.split()
        if len(parts) != width or not all(p.isdigit() for p in parts):
            break
        out.append([int(p) for p in parts])
    return out
