"""Bring in a video shot on another device as a recording (origin `import`).

Only MP4/MOV and Matroska/WebM films are accepted, recognised by their first bytes
before ffmpeg reads them (`appliance.media_sniff`); a still, a sound file, a playlist
or a film over an hour is refused clearly. H.264 in MP4/MOV with AAC or no sound, at a
constant frame rate, is remuxed (fast, lossless); anything else (a phone's variable
frame rate included: `appliance.media_cfr`), or a film that does not decode cleanly,
is transcoded to H.264 + AAC at a constant frame rate, so frame n is at n/fps for the
browser's frame steps and the encoder's frame-exact cuts. A portrait film keeps its
rotation when remuxed (players turn it) and is turned upright when transcoded; either
way the catalog has its size as shown. Every pass decodes the whole film, so damage is
seen, not imported silently. Work happens in a hidden, locked staging folder that
becomes a recording in one rename; the lock is held until the catalog lists it, so
recovery leaves it be.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from appliance import ffmpeg_tool
from appliance.catalog import (
    Catalog,
    Consent,
    Origin,
    Recording,
    RecordingStatus,
    new_recording_id,
    utc_now,
)
from appliance.errors import ApplianceError, BusyError, ConsentError, InputError, MediaError
from appliance.fsutil import free_bytes, fsync_dir, lock_directory, publish
from appliance.layout import FILM_NAME, LOCK_NAME
from appliance.media_cfr import FrameTiming, constant_rate, frame_timing, snap_rate
from appliance.media_sniff import (
    MOV,
    SOUND,
    STILL_IMAGE,
    demuxer_argv,
    import_timeout_s,
    remux_argv,
    sniff_container,
    transcode_argv,
)
from appliance.probe import frame_rate, packet_times, probe, raw_probe

log = logging.getLogger(__name__)
MP4 = FILM_NAME
# Codecs of single pictures (a photo in an MP4 or MKV wrapper is not a film).
IMAGE_CODECS = {"mjpeg", "png", "gif", "bmp", "tiff", "webp", "jpeg2000", "jpegls", "heic"}
MIN_DURATION_S = 0.5
MAX_FPS = 60
# A VIG film is 10-20 minutes (the box's own recordings stop at 10 by default); an hour
# already takes a Pi 4 about an hour to transcode.
MAX_IMPORT_S = 3600
# A damaged or cut-off film is kept if at least this share of it decodes (see _damage).
MIN_WHOLE_FRACTION = 0.25
IMPORT_NICE = 10  # the capture daemon and the web UI come first


class ImportStopped(MediaError):
    """The import was stopped (SIGTERM) and what it had made was removed."""


@dataclass(frozen=True)
class SourceInfo:
    """What the probe learnt about a file to import."""

    width: int
    height: int
    fps: Fraction
    duration_s: float
    video_codec: str
    pix_fmt: str
    audio_codec: str | None
    demuxer: str
    timing: FrameTiming

    @property
    def copyable(self) -> bool:
        """True if a remux gives a file every browser plays, at a constant frame rate."""
        return (self.video_codec == "h264" and self.pix_fmt in ("yuv420p", "yuvj420p")
                and self.audio_codec in (None, "aac") and self.demuxer == MOV
                and not self.timing.variable)

    @property
    def constant_fps(self) -> int:
        """The constant frame rate a transcode gives the film."""
        if self.timing.variable:
            return constant_rate(self.timing, float(self.fps), MAX_FPS)
        return snap_rate(float(self.fps))


def inspect(path: Path) -> SourceInfo:
    """Probe `path`; InputError unless it is a playable film of useful length."""
    path = Path(path).absolute()
    if not path.is_file():
        raise InputError(f"{path} is not a file")
    demuxer = _sniff(path)
    try:
        info = raw_probe(path, timeout=120, quiet=True, extra_args=demuxer_argv(demuxer))
    except MediaError:
        raise InputError(f"{path.name} is damaged (ffmpeg cannot read it as a film); copy "
                         "it from the device again") from None
    fmt = info.get("format", {})
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        what = "a sound file" if audio is not None else "not a video"
        raise InputError(f"{path.name} is {what}: it has no picture; import a video file")
    duration = _duration(fmt, video)
    if video.get("codec_name") in IMAGE_CODECS and duration <= 0:
        raise InputError(f"{path.name} is a still image, not a video; import a video file")
    if duration < MIN_DURATION_S:
        raise InputError(f"{path.name} is too short ({duration:.2f} s) to be a film")
    if duration > MAX_IMPORT_S:
        raise InputError(f"{path.name} is too long ({duration / 60:.0f} min): the box imports "
                         f"films of up to {MAX_IMPORT_S // 60} min; cut out the part of the "
                         "visit you need on a computer first")
    fps = frame_rate(video)
    if not 1 <= fps <= MAX_FPS:
        raise InputError(f"{path.name} has an unusable frame rate ({float(fps):.2f} fps)")
    return SourceInfo(width=int(video.get("width") or 0), height=int(video.get("height") or 0),
                      fps=fps, duration_s=duration, video_codec=str(video.get("codec_name")),
                      pix_fmt=str(video.get("pix_fmt")), demuxer=demuxer,
                      audio_codec=str(audio.get("codec_name")) if audio else None,
                      timing=_timing(path, demuxer, duration))


def _timing(path: Path, demuxer: str, duration_s: float) -> FrameTiming:
    """How evenly the film's frames are spaced (reads its packets, decodes nothing)."""
    try:
        times = packet_times(path, timeout=120 + duration_s, quiet=True,
                             extra_args=demuxer_argv(demuxer), nice=IMPORT_NICE)
    except MediaError:
        raise InputError(f"{path.name} is damaged (ffmpeg cannot read its frames); copy "
                         "it from the device again") from None
    return frame_timing(times.pts_s, times.untimed)


def _sniff(path: Path) -> str:
    try:
        demuxer = sniff_container(path)
    except OSError as e:
        raise InputError(f"cannot read {path.name}: {e.strerror}") from None
    if demuxer in (STILL_IMAGE, SOUND):
        raise InputError(f"{path.name} is a {demuxer}, not a video; import a video file")
    if demuxer is None:
        raise InputError(f"{path.name} is not a video file the box can import (an MP4, MOV, "
                         "MKV or WebM film); a playlist or a document is not a film")
    return demuxer


def _duration(fmt: dict[str, Any], video: dict[str, Any]) -> float:
    for value in (fmt.get("duration"), video.get("duration")):
        try:
            if value is not None and float(value) > 0:
                return float(value)
        except ValueError:
            continue
    return 0.0


class _StopOnSigterm:
    """While an import runs in the main thread, SIGTERM (systemd, `timeout`) raises
    ImportStopped where the import is, so its cleanup runs and its ffmpeg is stopped.
    From `finished()` on, and during the cleanup, a SIGTERM is held and handed to the
    previous handler (put back at the end) once the import is over."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._installed = False
        self._previous: Any = signal.SIG_DFL
        self._armed = False
        self._pending = False

    def __enter__(self) -> _StopOnSigterm:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, self._handle)
            self._installed = self._armed = True
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._armed:
            self._armed = False  # a second SIGTERM must not interrupt the cleanup
            raise ImportStopped(f"the import of {self._what} was stopped; nothing was kept")
        self._pending = True

    def finished(self) -> None:
        """Past the point of no return (or cleaning up): SIGTERM now waits for the end."""
        self._armed = False

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._installed:
            return
        signal.signal(signal.SIGTERM, self._previous if self._previous is not None
                      else signal.SIG_DFL)
        if self._pending and not isinstance(exc, ImportStopped):
            signal.raise_signal(signal.SIGTERM)  # the caller's own handling decides


def import_video(catalog: Catalog, src: Path, *, case: str | None = None,
                 actor: str = "import") -> Recording:
    """Import `src` as a new ready recording; nothing is left behind on failure."""
    src = Path(src).absolute()  # ffmpeg must never take the name for an option or protocol
    if case is not None and not catalog.cases.get(case).allows(Consent.FILMING):
        raise ConsentError(f"case {case} has no consent to filming on record, so no film can "
                           f"be kept for it; record it first: `vigbox cases consent {case} "
                           "--give filming`")
    info = inspect(src)
    recordings = catalog.layout.recordings_dir
    recordings.mkdir(parents=True, exist_ok=True)
    _check_space(src, recordings)
    rec_id = new_recording_id()
    staging, directory = catalog.layout.staging_dir(rec_id), catalog.layout.recording_dir(rec_id)
    with _StopOnSigterm(src.name) as guard:
        lock: IO[bytes] | None = None
        try:
            staging.mkdir()
            lock = _lock_staging(staging)
            facts, problems = _make_film(src, staging, info)
            os.rename(staging, directory)
            fsync_dir(recordings)
            # The row's transaction is all or nothing: a SIGTERM now waits for it, so
            # the film is never left uncatalogued, nor catalogued and then removed.
            guard.finished()
            # Still locked: recovery must not adopt the folder before its row exists.
            rec = catalog.recordings.create(
                rec_id, case=case, started_at=utc_now(), origin=Origin.IMPORT,
                status=RecordingStatus.READY, actor=actor, path=directory / MP4,
                dropped_frames=0, problems=problems, **facts)
        except BaseException:
            guard.finished()  # a SIGTERM must not cut the cleanup short
            _discard(catalog, rec_id, staging, directory)
            raise
        finally:
            if lock is not None:
                lock.close()
    return rec


def _check_space(src: Path, recordings: Path) -> None:
    need = src.stat().st_size * 2 + 64 * 1024 * 1024
    if free_bytes(recordings) < need:
        raise MediaError(f"not enough disk space to import {src.name} "
                         f"(needs about {need // 2**20} MB)")


def _lock_staging(staging: Path) -> IO[bytes]:
    """Lock a new staging folder (recovery removes unlocked ones) and make sure it is
    still ours: recovery may have removed it between our mkdir and our lock."""
    try:
        handle = lock_directory(staging)
    except (BusyError, OSError):
        pass
    else:
        try:
            if os.stat(staging / LOCK_NAME).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except OSError:
            pass
        handle.close()
    raise MediaError("the import's folder was removed as it was made (recovery ran at that "
                     "moment); import the file again")


def _discard(catalog: Catalog, rec_id: str, staging: Path, directory: Path) -> None:
    """Remove a half-made import, but never a film the catalog already lists."""
    shutil.rmtree(staging, ignore_errors=True)
    if not directory.exists():
        return
    try:
        listed = catalog.recordings.exists(rec_id)
    except ApplianceError:
        listed = True  # cannot tell: leave it; recovery adopts a film nothing lists
    if not listed:
        shutil.rmtree(directory, ignore_errors=True)


def _make_film(src: Path, staging: Path, info: SourceInfo) -> tuple[dict[str, Any], list[str]]:
    """Make the staging folder's MP4; its catalog facts and the problems to note."""
    tmp = staging / f".{MP4}.tmp"
    transcode = not info.copyable
    errors = _convert(src, tmp, info, transcode=transcode)
    if errors and not transcode:
        # A copy keeps damaged pictures (a cut-off last frame breaks cutting it later);
        # a transcode keeps only what decodes.
        log.warning("%s does not decode cleanly; transcoding it instead", src.name)
        transcode = True
        errors = _convert(src, tmp, info, transcode=True)
    publish(tmp, staging / MP4)
    facts = _film_facts(staging / MP4)
    problems = _damage(src.name, info.duration_s, facts["duration_s"], errors)
    if transcode and info.timing.variable and not errors:  # else damage spoilt the times
        problems.append(f"imported from {info.video_codec}: transcoded to a constant "
                        f"{info.constant_fps} fps (its frame rate varied: "
                        f"{info.timing.describe()})")
    elif transcode:
        problems.append(f"imported from {info.video_codec}: transcoded")
    return facts, problems


def _convert(src: Path, tmp: Path, info: SourceInfo, *, transcode: bool) -> list[str]:
    """Remux or transcode `src` into `tmp`; the errors ffmpeg reported while decoding."""
    if transcode:
        argv = transcode_argv(src, tmp, info.constant_fps, info.demuxer)
    else:
        argv = remux_argv(src, tmp, info.demuxer)
    timeout = import_timeout_s(info.duration_s, info.width, info.height, float(info.fps),
                               transcode=transcode)
    log.info("importing %s (%s)", src.name,
             f"transcoding to {info.constant_fps} fps" if transcode else "remuxing")
    return ffmpeg_tool.run_reporting(argv, timeout=timeout, what=f"importing {src.name}",
                                     nice=IMPORT_NICE)


def _film_facts(film: Path) -> dict[str, Any]:
    """The catalog's fields for an imported MP4."""
    info = probe(film, count_packets=True, extra_args=demuxer_argv(MOV))
    if info.video is None:
        raise MediaError(f"{film.name}: the imported film has no picture")
    width, height = info.video.display_size  # a portrait phone film as it is shown
    return {"duration_s": round(info.duration_s, 3), "width": width, "height": height,
            "fps": round(float(info.video.fps), 3), "video_frames": info.video.packets or 0,
            "audio": "ok" if info.has_audio else "none"}


def _damage(name: str, announced_s: float, got_s: float, errors: list[str]) -> list[str]:
    """The problem to note if the film did not decode cleanly; InputError if too little
    of it did.

    A guider can rarely film a visit again, so a film cut off by an interrupted copy,
    or with a few spoilt pictures, is kept with the problem noted: what plays is what
    they need. One of which less than a quarter plays is refused, so they copy it
    again from the device rather than review a fragment.
    """
    short = got_s < announced_s - max(0.5, 0.02 * announced_s)
    if not errors and not short:
        return []
    log.warning("%s did not decode cleanly:\n%s", name, "\n".join(errors[-20:]))
    if got_s < max(MIN_DURATION_S, MIN_WHOLE_FRACTION * announced_s):
        raise InputError(f"{name} is damaged or incomplete: only {got_s:.1f} s of its "
                         f"{announced_s:.1f} s can be played; copy it from the device again")
    if short:
        return [f"incomplete file: {got_s:.1f} s of {announced_s:.1f} s imported; "
                "the rest was missing or damaged"]
    return ["damaged file: ffmpeg reported errors while decoding it; some pictures or "
            "sound may be spoilt"]
