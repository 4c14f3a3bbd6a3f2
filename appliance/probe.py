"""What ffprobe says about a media file, as typed facts, read once per file version.

Results are cached by (path, size, mtime, inode): a clip asks about its source
several times while being checked, queued and rendered, and the file only
changes when it is replaced (which changes the key). `packet_times` lists when each
video frame is shown (the container's timestamps, nothing decoded).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from appliance import ffmpeg_tool
from appliance.errors import MediaError

CACHE_SIZE = 64


@dataclass(frozen=True)
class VideoStream:
    """The first video stream of a file."""

    codec: str
    width: int
    height: int
    fps: Fraction
    pix_fmt: str
    start_s: float
    duration_s: float
    rotation: int            # degrees the picture is turned for display (0, 90, 180, 270)
    packets: int | None      # counted only when asked (reads the whole file)
    attached_pic: bool

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown (a portrait phone film is turned)."""
        if self.rotation % 180 == 90:
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class AudioStream:
    """The first audio stream of a file."""

    codec: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class MediaInfo:
    """A media file's container and first video and audio streams."""

    path: Path
    container: str
    duration_s: float
    video: VideoStream | None
    audio: AudioStream | None

    @property
    def has_audio(self) -> bool:
        """True if the file has sound."""
        return self.audio is not None


_cache: OrderedDict[tuple[Any, ...], MediaInfo] = OrderedDict()
_cache_lock = threading.Lock()


def probe(path: Path, *, count_packets: bool = False, timeout: float = 60,
          quiet: bool = False, extra_args: tuple[str, ...] = ()) -> MediaInfo:
    """The facts of `path` (MediaError if ffprobe cannot read it)."""
    path = Path(path).absolute()  # never a name ffprobe could take for an option
    try:
        st = path.stat()
    except OSError as e:
        raise MediaError(f"cannot read {path.name}: {e.strerror}") from None
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino, count_packets, extra_args)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    info = parse(path, raw_probe(path, count_packets=count_packets, timeout=timeout,
                                 quiet=quiet, extra_args=extra_args))
    with _cache_lock:
        _cache[key] = info
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return info


def raw_probe(path: Path, *, count_packets: bool = False, timeout: float = 60,
              quiet: bool = False, extra_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """ffprobe's JSON (format and streams) for `path`."""
    argv = ["ffprobe", "-v", "error", *extra_args, "-print_format", "json", "-show_format",
            "-show_streams"]
    if count_packets:
        argv.append("-count_packets")
    out = ffmpeg_tool.run([*argv, str(Path(path).absolute())], timeout=timeout,
                          what=f"reading {Path(path).name}", quiet=quiet)
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise MediaError(f"ffprobe gave unreadable output for {Path(path).name}") from None
    if not isinstance(data, dict):
        raise MediaError(f"ffprobe gave unreadable output for {Path(path).name}")
    return data


def parse(path: Path, data: dict[str, Any]) -> MediaInfo:
    """MediaInfo from ffprobe's JSON."""
    fmt = data.get("format") or {}
    streams = [s for s in data.get("streams") or [] if isinstance(s, dict)]
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    pictures = [s for s in streams if s.get("codec_type") == "video"]
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _number(fmt.get("duration")) or (_number(video.get("duration")) if video else 0)
    return MediaInfo(
        path=path, container=str(fmt.get("format_name") or ""), duration_s=duration or 0.0,
        video=_video(video) if video else (_video(pictures[0], attached=True)
                                           if pictures else None),
        audio=AudioStream(codec=str(audio.get("codec_name") or ""),
                          sample_rate=int(_number(audio.get("sample_rate")) or 0),
                          channels=int(audio.get("channels") or 0)) if audio else None)


def _video(s: dict[str, Any], *, attached: bool = False) -> VideoStream:
    packets = s.get("nb_read_packets")
    return VideoStream(
        codec=str(s.get("codec_name") or ""), width=int(s.get("width") or 0),
        height=int(s.get("height") or 0), fps=frame_rate(s), pix_fmt=str(s.get("pix_fmt")),
        start_s=_number(s.get("start_time")) or 0.0, duration_s=_number(s.get("duration")) or 0,
        rotation=_rotation(s), packets=int(packets) if packets is not None else None,
        attached_pic=attached)


@dataclass(frozen=True)
class PacketTimes:
    """When the video packets of a file are shown, from the container's timestamps."""

    pts_s: tuple[float, ...]        # every timed packet, in presentation order
    keyframes_s: tuple[float, ...]  # the keyframes among them
    untimed: int                    # packets without a timestamp


def packet_times_argv(path: Path, extra_args: tuple[str, ...] = ()) -> list[str]:
    """ffprobe argv: the time and flags of every packet of the first video stream."""
    return ["ffprobe", "-v", "error", *extra_args, "-select_streams", "v:0", "-show_entries",
            "packet=pts_time,flags", "-of", "csv=p=0", str(Path(path).absolute())]


def parse_packet_times(text: str) -> PacketTimes:
    """PacketTimes from `packet_times_argv`'s output ("0.033367,K_" a line)."""
    times: list[float] = []
    keys: list[float] = []
    untimed = 0
    for line in text.splitlines():
        pts, _, flags = line.strip().partition(",")
        if not pts and not flags:
            continue
        try:
            when = float(pts)
        except ValueError:  # "N/A"
            untimed += 1
            continue
        times.append(when)
        if "K" in flags:
            keys.append(when)
    return PacketTimes(tuple(sorted(times)), tuple(sorted(keys)), untimed)


def packet_times(path: Path, *, timeout: float = 120, quiet: bool = False,
                 extra_args: tuple[str, ...] = (), nice: int = 0) -> PacketTimes:
    """When each video frame of `path` is shown (reads every packet, decodes none)."""
    out = ffmpeg_tool.run(packet_times_argv(path, extra_args), timeout=timeout,
                          what=f"reading the frame times of {Path(path).name}", quiet=quiet,
                          nice=nice)
    return parse_packet_times(out)


def frame_rate(stream: dict[str, Any]) -> Fraction:
    """The stream's average frame rate (else its base rate); 0 if unknown."""
    for key in ("avg_frame_rate", "r_frame_rate"):
        try:
            rate = Fraction(str(stream.get(key, "0/0")))
        except (ValueError, ZeroDivisionError):
            continue
        if rate > 0:
            return rate
    return Fraction(0)


def _rotation(s: dict[str, Any]) -> int:
    # ffmpeg ≥ 5 reports the display matrix as side data; older ones as a tag.
    for side in s.get("side_data_list") or []:
        if isinstance(side, dict) and "rotation" in side:
            return int(round(-float(side["rotation"]))) % 360
    tag = (s.get("tags") or {}).get("rotate")
    return int(_number(tag) or 0) % 360


def _number(value: Any) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return 0.0
    return result if result == result and abs(result) != float("inf") else 0.0
