"""ffmpeg argv for clips and stills, as pure functions of their inputs (tested as lists).

Frame k of a constant-frame-rate film is shown from k/fps to (k+1)/fps. A cut at
time T therefore starts with frame floor(T·fps), and an out-point E ends with the
frame before ceil(E·fps). Seeks are placed a hair before the frame's own time so
that rounding in the printed number can never skip it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

SEEK_EPSILON_S = 1e-4       # seek this much before a frame's time: it is never lost
FRAME_EPSILON = 1e-6        # tolerance when turning times into frame numbers
AUDIO_FADE_S = 0.010        # short fades: no click at either end of a clip
GLOBAL = ("-hide_banner", "-loglevel", "error", "-nostdin", "-y")


@dataclass(frozen=True)
class FrameSpan:
    """The frames [first, end) of a clip."""

    first: int
    end: int
    fps: float

    @property
    def count(self) -> int:
        """Number of frames."""
        return self.end - self.first

    @property
    def start_s(self) -> float:
        """When the first frame is shown."""
        return self.first / self.fps

    @property
    def duration_s(self) -> float:
        """Length of the clip."""
        return self.count / self.fps


def frame_at(t: float, fps: float) -> int:
    """The frame shown at time `t`."""
    return math.floor(t * fps + FRAME_EPSILON)


def frame_span(start_s: float, end_s: float, fps: float) -> FrameSpan:
    """The frames from the one shown at `start_s` to the one before `end_s`."""
    return FrameSpan(frame_at(start_s, fps), math.ceil(end_s * fps - FRAME_EPSILON), fps)


def seek_time(frame: int, fps: float) -> float:
    """Where to seek so that `frame` is the first one decoded."""
    return max(0.0, frame / fps - SEEK_EPSILON_S)


def progress_args(argv: list[str]) -> list[str]:
    """The same command reporting progress as key=value lines on stdout."""
    return [argv[0], "-progress", "pipe:1", "-nostats", *argv[1:]]


def exact_clip_argv(src: Path, out: Path, span: FrameSpan, *, audio: bool,
                    caption_file: Path | None = None, font: Path | None = None,
                    crf: int = 18, preset: str = "veryfast") -> list[str]:
    """Re-encode exactly the frames of `span` (+ the matching audio with short fades)."""
    src_in = ffmpeg.input(str(src), ss=f"{seek_time(span.first, span.fps):.6f}")
    video = src_in.video
    if caption_file is not None:
        # expansion=none: the text is shown as typed ("100%", "%{pts}", "\\" included);
        # with expansion a lone "%" made drawtext draw nothing at all.
        video = video.drawtext(textfile=str(caption_file), fontfile=str(font) if font else None,
                               expansion="none",
                               fontsize="h/18", fontcolor="white", box=1,
                               boxcolor="black@0.55", boxborderw=12, x="(w-text_w)/2",
                               y="h-text_h-h/14")
    duration = f"{span.duration_s:.6f}"
    streams: list[object] = [video]
    options: dict[str, object] = {
        "vcodec": "libx264", "preset": preset, "crf": crf, "pix_fmt": "yuv420p",
        "g": max(1, round(span.fps)), "frames:v": span.count, "t": duration,
        "movflags": "+faststart", "format": "mp4"}
    if audio:
        fade_out_at = max(0.0, span.duration_s - AUDIO_FADE_S)
        sound = (src_in.audio.filter("afade", t="in", d=AUDIO_FADE_S)
                 .filter("afade", t="out", st=f"{fade_out_at:.6f}", d=AUDIO_FADE_S))
        streams.append(sound)
        options |= {"acodec": "aac", "b:a": "128k"}
    return ffmpeg.output(*streams, str(out), **options).global_args(*GLOBAL).compile()


def fast_clip_argv(src: Path, out: Path, keyframe_s: float, end_s: float) -> list[str]:
    """Copy from the keyframe at `keyframe_s` to `end_s`: no re-encoding, near instant."""
    src_in = ffmpeg.input(str(src), ss=f"{keyframe_s:.6f}")
    return (ffmpeg.output(src_in["v:0"], src_in["a:0?"], str(out), c="copy",
                          t=f"{max(0.0, end_s - keyframe_s):.6f}", avoid_negative_ts="make_zero",
                          movflags="+faststart", format="mp4")
            .global_args(*GLOBAL).compile())


def still_argv(src: Path, out: Path, frame: int, fps: float) -> list[str]:
    """One frame at full resolution as a high-quality JPEG."""
    src_in = ffmpeg.input(str(src), ss=f"{seek_time(frame, fps):.6f}")
    return (ffmpeg.output(src_in.video, str(out), vframes=1, **{"q:v": 2}, format="image2",
                          vcodec="mjpeg", pix_fmt="yuvj420p", update=1)
            .global_args(*GLOBAL).compile())


def keyframes_argv(src: Path) -> list[str]:
    """ffprobe argv: the time and flags of every video packet (no decoding)."""
    return ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
            "packet=pts_time,flags", "-of", "csv=p=0", str(src)]
