"""What an import lets ffmpeg open, and the ffmpeg commands it runs (pure functions).

A file to import is picked by a person and may be anything. ffmpeg guesses formats
and several of its demuxers read other paths (an HLS playlist, a concat script, an
MP4's external data references), so a crafted file could bring another family's film
in. Only real film containers are let through: recognised here by their first bytes
before any tool reads them, then ffmpeg and ffprobe are held to that one demuxer
reading that one plain file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ffmpeg

MOV = "mov"            # ffmpeg's demuxer for MP4, MOV, M4V, 3GP
MATROSKA = "matroska"  # and WebM
# Top-level boxes an ISO BMFF (MP4) or QuickTime file begins with.
BMFF_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"})
EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # Matroska and WebM
# Photos in an MP4-like box structure (iPhone HEIC, AVIF): `ftyp` with these brands.
IMAGE_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis"})
# Files people mistake for films, named so the refusal can say what they are.
STILL_IMAGE, SOUND = "still image", "sound file"
_KNOWN = ((b"\x89PNG", STILL_IMAGE), (b"\xff\xd8\xff", STILL_IMAGE), (b"GIF8", STILL_IMAGE),
          (b"II*\x00", STILL_IMAGE), (b"MM\x00*", STILL_IMAGE), (b"BM", STILL_IMAGE),
          (b"ID3", SOUND), (b"fLaC", SOUND), (b"OggS", SOUND), (b"\xff\xfb", SOUND))
GLOBAL_ARGS = ("-hide_banner", "-loglevel", "error", "-nostdin", "-y")
# Seconds of work per second of 720p30 film, with a wide margin for a busy Pi 4 (it
# decodes 720p H.264 several times faster than real time and transcodes it at about
# real time); larger pictures cost more, up to 4 times (4K counts as 4: bounded, and a
# 4K film would better be cut down before import anyway).
REFERENCE_PIXEL_RATE = 1280 * 720 * 30
MAX_WORK_FACTOR = 4.0
REMUX_S_PER_FILM_S = 2.0
TRANSCODE_S_PER_FILM_S = 5.0


def sniff_container(path: Path) -> str | None:
    """The demuxer for `path` judged from its first bytes (MOV or MATROSKA), or None.

    A photo or a sound file is named (STILL_IMAGE, SOUND) so it can be refused as such.
    """
    with path.open("rb") as f:
        head = f.read(12)
    if head.startswith(EBML_MAGIC):
        return MATROSKA
    if len(head) >= 8 and head[4:8] in BMFF_FIRST_BOXES:
        size = int.from_bytes(head[:4], "big")
        if head[4:8] == b"ftyp" and head[8:12] in IMAGE_BRANDS:
            return STILL_IMAGE
        # 0 = to the end of the file, 1 = a 64-bit size follows; 2..7 cannot be a box.
        if size in (0, 1) or size >= 8:
            return MOV
    if head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"WAVE"):
        return STILL_IMAGE if head[8:12] == b"WEBP" else SOUND
    return next((kind for magic, kind in _KNOWN if head.startswith(magic)), None)


def demuxer_options(demuxer: str) -> dict[str, str]:
    """Input options that hold ffmpeg/ffprobe to `demuxer` reading one plain file."""
    options = {"f": demuxer, "format_whitelist": demuxer, "protocol_whitelist": "file"}
    if demuxer == MOV:
        options["enable_drefs"] = "0"  # never load media an MP4 says lives in another file
    return options


def demuxer_argv(demuxer: str) -> tuple[str, ...]:
    """`demuxer_options` as ffprobe arguments (they go before the file name)."""
    return tuple(arg for key, value in demuxer_options(demuxer).items()
                 for arg in (f"-{key}", value))


def _input(src: Path, demuxer: str) -> Any:
    if not src.is_absolute():
        # A relative name could read as an option ("-x.mp4") or a protocol ("concat:...").
        raise ValueError(f"ffmpeg needs an absolute path, not {src}")
    return ffmpeg.input(str(src), **demuxer_options(demuxer))


def remux_argv(src: Path, out: Path, demuxer: str = MOV) -> list[str]:
    """ffmpeg argv: copy the first video and audio stream into a faststart MP4, and
    decode them to nothing in the same pass, so damage shows on stderr."""
    stream = _input(src, demuxer)
    copy = ffmpeg.output(stream["v:0"], stream["a:0?"], str(out), c="copy",
                         movflags="+faststart", format="mp4")
    check = ffmpeg.output(stream["v:0"], stream["a:0?"], "-", format="null")
    return ffmpeg.merge_outputs(copy, check).global_args(*GLOBAL_ARGS).compile()


def transcode_argv(src: Path, out: Path, fps: int, demuxer: str = MOV) -> list[str]:
    """ffmpeg argv: H.264 (yuv420p, constant `fps`, keyframe a second) + AAC, faststart.

    The fps filter gives every frame its time on the constant grid, repeating a frame
    where the source paused (a variable-rate phone film) and dropping where it ran
    faster, so picture and sound stay together; it starts the grid at 0, so frame n is
    shown at n/fps. ffmpeg turns a rotated (portrait phone) film upright while decoding
    and writes no rotation, so the result is upright in every player.
    """
    stream = _input(src, demuxer)
    # libx264 cannot encode 4:2:0 at odd sizes (cropped phone clips): round down to even.
    video = (stream["v:0"].filter("fps", fps=fps, start_time=0)
             .filter("scale", "trunc(iw/2)*2", "trunc(ih/2)*2"))
    return (ffmpeg.output(video, stream["a:0?"], str(out), vcodec="libx264", preset="veryfast",
                          crf=20, pix_fmt="yuv420p", g=fps, acodec="aac", **{"b:a": "128k"},
                          ac=1, movflags="+faststart", format="mp4")
            .global_args(*GLOBAL_ARGS).compile())


def import_timeout_s(duration_s: float, width: int, height: int, fps: float, *,
                     transcode: bool) -> float:
    """How long ffmpeg may take to import a film: generous for a Pi 4, but bounded
    (a hung ffmpeg must not hold an import for a day)."""
    work = min(MAX_WORK_FACTOR, max(1.0, width * height * fps / REFERENCE_PIXEL_RATE))
    if transcode:
        return 300 + duration_s * TRANSCODE_S_PER_FILM_S * work
    return 120 + duration_s * REMUX_S_PER_FILM_S * work
