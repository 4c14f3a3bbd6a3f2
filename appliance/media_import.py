"""Bring in a video shot on another device as a recording (origin `import`).

The file is probed first and refused clearly unless it is a real video (a still
image, an audio file or a document is not). H.264 in MP4/MOV with AAC or no sound
is remuxed (fast, lossless); anything else is transcoded to H.264 + AAC at a
constant frame rate so the encoder can cut it frame-exactly. Work happens in a
hidden staging folder that only becomes a recording, in one rename, when done.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from appliance import ffmpeg_tool
from appliance.catalog import (Catalog, Consent, Origin, Recording, RecordingStatus,
                               new_recording_id, utc_now)
from appliance.errors import ConsentError, InputError, MediaError
from appliance.fsutil import free_bytes, fsync_dir, publish
from appliance.probe import raw_probe

log = logging.getLogger(__name__)
MP4 = "recording.mp4"
# Demuxers that read single pictures: a photo is not a film.
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif", "bmp_pipe",
                 "tiff_pipe", "svg_pipe", "apng", "pam_pipe", "ppm_pipe", "pgm_pipe",
                 "heif", "jpegxl_pipe", "qoi_pipe", "dds_pipe", "pcx_pipe", "sgi_pipe"}
IMAGE_CODECS = {"mjpeg", "png", "gif", "bmp", "tiff", "webp", "jpeg2000", "jpegls", "heic"}
COPYABLE_CONTAINERS = {"mov", "mp4", "m4a", "3gp", "3g2", "mj2"}
MIN_DURATION_S = 0.5
MAX_FPS = 60


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
    container: str

    @property
    def copyable(self) -> bool:
        """True if a remux gives a file every browser plays."""
        return (self.video_codec == "h264" and self.pix_fmt in ("yuv420p", "yuvj420p")
                and self.audio_codec in (None, "aac")
                and bool(COPYABLE_CONTAINERS & set(self.container.split(","))))


def inspect(path: Path) -> SourceInfo:
    """Probe `path`; InputError unless it is a playable video of useful length."""
    if not path.is_file():
        raise InputError(f"{path} is not a file")
    try:
        info = raw_probe(path, timeout=120, quiet=True)
    except MediaError:
        raise InputError(f"{path.name} is not a video file ffmpeg can read; "
                         "import an MP4, MOV, MKV or similar film") from None
    fmt = info.get("format", {})
    container = str(fmt.get("format_name", ""))
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        what = "a sound file" if audio is not None else "not a video"
        raise InputError(f"{path.name} is {what}: it has no picture; import a video file")
    if container in IMAGE_FORMATS or (set(container.split(",")) & IMAGE_FORMATS) \
            or video.get("codec_name") in IMAGE_CODECS and _duration(fmt, video) <= 0:
        raise InputError(f"{path.name} is a still image, not a video; import a video file")
    duration = _duration(fmt, video)
    if duration < MIN_DURATION_S:
        raise InputError(f"{path.name} is too short ({duration:.2f} s) to be a film")
    fps = _frame_rate(video)
    if not 1 <= fps <= MAX_FPS:
        raise InputError(f"{path.name} has an unusable frame rate ({float(fps):.2f} fps)")
    return SourceInfo(width=int(video.get("width") or 0), height=int(video.get("height") or 0),
                      fps=fps, duration_s=duration, video_codec=str(video.get("codec_name")),
                      pix_fmt=str(video.get("pix_fmt")), container=container,
                      audio_codec=str(audio.get("codec_name")) if audio else None)


def _duration(fmt: dict[str, Any], video: dict[str, Any]) -> float:
    for value in (fmt.get("duration"), video.get("duration")):
        try:
            if value is not None and float(value) > 0:
                return float(value)
        except ValueError:
            continue
    return 0.0


def _frame_rate(video: dict[str, Any]) -> Fraction:
    for key in ("avg_frame_rate", "r_frame_rate"):
        try:
            rate = Fraction(str(video.get(key, "0/0")))
        except (ValueError, ZeroDivisionError):
            continue
        if rate > 0:
            return rate
    return Fraction(0)


def remux_argv(src: Path, out: Path) -> list[str]:
    """ffmpeg argv: copy the first video and audio stream into a faststart MP4."""
    stream = ffmpeg.input(str(src))
    return (ffmpeg.output(stream["v:0"], stream["a:0?"], str(out), c="copy",
                          movflags="+faststart", format="mp4")
            .global_args("-hide_banner", "-loglevel", "error", "-nostdin", "-y").compile())


def transcode_argv(src: Path, out: Path, fps: int) -> list[str]:
    """ffmpeg argv: H.264 (yuv420p, constant `fps`, keyframe a second) + AAC, faststart."""
    stream = ffmpeg.input(str(src))
    # libx264 cannot encode 4:2:0 at odd sizes (cropped phone clips): round down to even.
    video = stream["v:0"].filter("fps", fps=fps).filter("scale", "trunc(iw/2)*2",
                                                        "trunc(ih/2)*2")
    return (ffmpeg.output(video, stream["a:0?"], str(out), vcodec="libx264", preset="veryfast",
                          crf=20, pix_fmt="yuv420p", g=fps, acodec="aac", **{"b:a": "128k"},
                          ac=1, movflags="+faststart", format="mp4")
            .global_args("-hide_banner", "-loglevel", "error", "-nostdin", "-y").compile())


def import_video(catalog: Catalog, src: Path, *, case: str | None = None,
                 actor: str = "import") -> Recording:
    """Import `src` as a new ready recording; nothing is left behind on failure."""
    if case is not None and not catalog.cases.get(case).allows(Consent.FILMING):
        raise ConsentError(f"case {case} has no consent to filming on record, so no film can "
                         f"be kept for it; record it first: `vigbox cases consent {case} "
                         "--give filming`")
    info = inspect(src)
    recordings = catalog.layout.recordings_dir
    recordings.mkdir(parents=True, exist_ok=True)
    need = src.stat().st_size * 2 + 64 * 1024 * 1024
    if free_bytes(recordings) < need:
        raise MediaError(f"not enough disk space to import {src.name} "
                         f"(needs about {need // 2**20} MB)")
    rec_id = new_recording_id()
    staging = catalog.layout.staging_dir(rec_id)
    staging.mkdir()
    try:
        tmp = staging / f".{MP4}.tmp"
        if info.copyable:
            argv, how = remux_argv(src, tmp), "remuxed"
        else:
            argv, how = transcode_argv(src, tmp, round(float(info.fps))), "transcoded"
        log.info("importing %s (%s)", src.name, how)
        ffmpeg_tool.run(argv, timeout=max(600, info.duration_s * 10), what=f"importing {src.name}")
        publish(tmp, staging / MP4)
        final_info = raw_probe(staging / MP4, count_packets=True)
        video = next(s for s in final_info["streams"] if s.get("codec_type") == "video")
        has_audio = any(s.get("codec_type") == "audio" for s in final_info["streams"])
        directory = recordings / rec_id
        os.rename(staging, directory)
        fsync_dir(recordings)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fps = _frame_rate(video)
    rec = catalog.recordings.create(
        rec_id, case=case, started_at=utc_now(), origin=Origin.IMPORT,
        status=RecordingStatus.READY, actor=actor, path=directory / MP4,
        duration_s=round(float(final_info["format"].get("duration") or info.duration_s), 3),
        width=int(video.get("width") or info.width), height=int(video.get("height") or
                                                                 info.height),
        fps=round(float(fps), 3), video_frames=int(video.get("nb_read_packets") or 0),
        dropped_frames=0, audio="ok" if has_audio else "none",
        problems=[] if how == "remuxed" else [f"imported from {info.video_codec}: transcoded"])
    return rec
