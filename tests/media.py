"""Test media: films made with ffmpeg (phone-like ones too), and reading finished files
back (frame barcodes, timestamps, rotation, pictures, MP4 box order, stream facts)."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from appliance import mp4
from appliance.capture.picture import SyntheticPicture
from appliance.capture.sync_check import frame_indices
from appliance.capture.sync_check import index_gaps as gaps
from appliance.probe import raw_probe

__all__ = ["frame_indices", "gaps", "streams", "top_level_boxes"]
FFMPEG_TIMEOUT_S = 60
BARCODE_SIZE = (800, 448)  # the smallest picture the frame barcode fits in, 16:9-ish


# -- making films --------------------------------------------------------------------------


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; fail the test setup if it fails."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=FFMPEG_TIMEOUT_S, capture_output=True)


@functools.cache
def ffmpeg_major() -> int:
    """The installed ffmpeg's major version (5 on Debian 12 and Raspberry Pi OS)."""
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True,
                         timeout=FFMPEG_TIMEOUT_S).stdout
    found = re.match(r"ffmpeg version n?(\d+)", out)
    return int(found.group(1)) if found else 0


def half_rate(from_s: float, to_s: float) -> str:
    """An ffmpeg `select` expression: every other frame between the two times (a phone
    filming a dark stretch at half its rate)."""
    return f"not(gte(t\\,{from_s:g})*lt(t\\,{to_s:g})*mod(n\\,2))"


def lavfi_film(out: Path, *, seconds: float, fps: int = 30, size: str = "320x240",
               keyint: int | None = None, select: str | None = None,
               sound_seconds: float | None = None) -> Path:
    """An H.264 + AAC MP4 of lavfi's test picture and a tone, as a phone makes one.

    `keyint`: frames between keyframes (default: x264's own, 250). `select`: an ffmpeg
    expression choosing the frames kept; the others are left out and the kept ones keep
    their times (a variable frame rate). `sound_seconds`: the tone's length, if not the
    picture's.
    """
    video = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}"]
    sound = ["-f", "lavfi", "-i",
             f"sine=frequency=440:duration={sound_seconds or seconds}"]
    options = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    if keyint is not None:
        options += ["-g", str(keyint), "-keyint_min", str(keyint), "-sc_threshold", "0"]
    if select is not None:
        options += ["-vf", f"select={select}", "-fps_mode", "passthrough"]
    ffmpeg(*video, *sound, *options, "-c:a", "aac",
           *([] if sound_seconds else ["-shortest"]), str(out))
    return out


def barcode_film(out: Path, *, seconds: int, fps: int = 30, select: str | None = None) -> Path:
    """An H.264 + AAC MP4 whose frame n shows barcode n (`frame_indices` reads it back):
    frame n filmed at n / fps; `select` as in `lavfi_film`."""
    width, height = BARCODE_SIZE
    picture = SyntheticPicture(width, height)
    options = ["-vf", f"select={select}", "-fps_mode", "passthrough"] if select else []
    proc = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
         "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0", "-f", "lavfi", "-i",
         f"sine=frequency=440:duration={seconds}", *options, "-c:v", "libx264",
         "-preset", "ultrafast", "-g", str(fps), "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-shortest", str(out)], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for n in range(fps * seconds):
        proc.stdin.write(picture.frame(n))
    proc.stdin.close()
    assert proc.wait(FFMPEG_TIMEOUT_S) == 0
    return out


def rotated(src: Path, out: Path, degrees: int = 90) -> Path:
    """A stream copy of `src` whose display matrix turns it `degrees` clockwise, as a
    phone held upright writes it."""
    if ffmpeg_major() >= 6:
        # -display_rotation (ffmpeg 6+) is counter-clockwise, on the input.
        ffmpeg("-display_rotation:v:0", str(-degrees), "-i", str(src), "-c", "copy", str(out))
    else:
        # ffmpeg 5 has no -display_rotation; the rotate tag on a copy writes the matrix.
        ffmpeg("-i", str(src), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(out))
    return out


# -- reading films back --------------------------------------------------------------------


def ffprobe(path: Path, *extra: str) -> dict[str, Any]:
    """ffprobe's JSON for `path` (format and streams, plus whatever `extra` asks for)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                          "-show_streams", *extra, str(path)],
                         check=True, timeout=FFMPEG_TIMEOUT_S, capture_output=True, text=True)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def stream(info: dict[str, Any], kind: str) -> dict[str, Any]:
    """The first stream of `kind` ('video' or 'audio')."""
    return next(s for s in info["streams"] if s["codec_type"] == kind)


def video_packets(path: Path) -> list[dict[str, Any]]:
    """The video packets of `path` (pts and size), in file order."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-print_format",
                          "json", "-show_entries", "packet=pts,size", str(path)],
                         check=True, timeout=FFMPEG_TIMEOUT_S, capture_output=True, text=True)
    packets: list[dict[str, Any]] = json.loads(out.stdout)["packets"]
    return packets


def pts_steps(path: Path) -> set[int]:
    """The distinct gaps between consecutive video timestamps (one value = constant rate)."""
    pts = sorted(int(p["pts"]) for p in video_packets(path))
    return {b - a for a, b in zip(pts, pts[1:])}


def rotation(path: Path) -> int:
    """The display matrix's rotation of the first video stream (0 if none)."""
    side = stream(ffprobe(path), "video").get("side_data_list", [])
    return next((int(s["rotation"]) for s in side if "rotation" in s), 0)


def thumbnail(path: Path, *, autorotate: bool = True) -> bytes:
    """The first picture as 24x32 grey pixels; autorotated as a player shows it."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin",
                          *([] if autorotate else ["-noautorotate"]), "-i", str(path),
                          "-frames:v", "1", "-vf", "scale=24:32", "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], check=True, timeout=FFMPEG_TIMEOUT_S,
                         capture_output=True)
    return out.stdout


def difference(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two grey pictures of the same size."""
    assert len(a) == len(b) == 24 * 32
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)


def grey_frames(path: Path, width: int, height: int, *, fit: bool = False) -> np.ndarray:
    """Every decoded frame of `path` (or the one picture of a JPEG) as grey pixels,
    shape (frames, height, width), scaled to width x height (`fit`: keeping its shape,
    with black bars)."""
    scale = f"scale={width}:{height}"
    if fit:
        scale += (f":force_original_aspect_ratio=decrease,"
                  f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2")
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-vf", scale,
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         check=True, timeout=FFMPEG_TIMEOUT_S, capture_output=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, height, width)


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (faststart: moov before mdat)."""
    return [kind for kind, _ in mp4.top_level_boxes(path)]


def streams(path: Path) -> dict[str, dict[str, Any]]:
    """ffprobe's streams by type, with packets counted."""
    info = raw_probe(path, count_packets=True)
    return {s["codec_type"]: s for s in info["streams"]} | {"format": info["format"]}
