"""The encoder's ffmpeg commands, checked as argv lists (no shell, no ffmpeg run)."""

from __future__ import annotations

from pathlib import Path

from appliance.encode import argv as av
from appliance.encode.assets import sprite_argv, waveform_argv
from appliance.encode.film import Part, film_argv


def value(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def test_exact_clip_seeks_just_before_the_first_frame_and_counts_frames() -> None:
    argv = av.exact_clip_argv(Path("in.mp4"), Path("out.mp4"), av.frame_span(1.0, 2.0, 30),
                              audio=True)
    assert argv[0] == "ffmpeg" and "-nostdin" in argv
    assert float(value(argv, "-ss")) == 1.0 - av.SEEK_EPSILON_S
    assert argv.index("-ss") < argv.index("-i")          # input seek: fast, still exact
    assert value(argv, "-frames:v") == "30" and value(argv, "-t") == "1.000000"
    assert value(argv, "-vcodec") == "libx264" and value(argv, "-pix_fmt") == "yuv420p"
    assert value(argv, "-movflags") == "+faststart"
    assert "afade=d=0.01:t=in" in value(argv, "-filter_complex")
    silent = av.exact_clip_argv(Path("in.mp4"), Path("o.mp4"), av.frame_span(1, 2, 30),
                                audio=False)
    assert "-acodec" not in silent


def test_fast_clip_is_a_stream_copy_from_the_keyframe() -> None:
    argv = av.fast_clip_argv(Path("in.mp4"), Path("out.mp4"), 4.0, 7.5)
    assert value(argv, "-ss") == "4.000000" and value(argv, "-t") == "3.500000"
    assert value(argv, "-c") == "copy" and "libx264" not in argv


def test_still_and_progress() -> None:
    argv = av.still_argv(Path("in.mp4"), Path("s.jpg"), 45, 30)
    assert value(argv, "-vframes") == "1" and value(argv, "-q:v") == "2"
    assert av.progress_args(argv)[:4] == ["ffmpeg", "-progress", "pipe:1", "-nostats"]


def test_sprite_decodes_keyframes_only_and_waveform_audio_only() -> None:
    argv = sprite_argv(Path("in.mp4"), Path("s.jpg"), 2.0, 25)
    assert value(argv, "-skip_frame") == "nokey"
    assert "tile=10x3" in value(argv, "-filter_complex")
    wave = waveform_argv(Path("in.mp4"))
    assert value(wave, "-ar") == "8000" and value(wave, "-ac") == "1"


def test_film_joins_parts_in_order_with_one_concat() -> None:
    parts = [Part(None, Path("/d/t1.txt"), 2.0), Part(Path("a.mp4"), None, 3.0),
             Part(Path("b.mp4"), None, 1.0, has_audio=False)]
    argv = film_argv(parts, Path("f.mp4"), width=1280, height=720, fps=30,
                     font=Path("/fonts/x.ttf"), crf=18, preset="veryfast")
    graph = value(argv, "-filter_complex")
    assert graph.endswith("[v0][a0][v1][a1][v2][a2]concat=n=3:v=1:a=1[v][a]")
    assert "textfile=/d/t1.txt" in graph and "fontfile=/fonts/x.ttf" in graph
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-i"][2:4] == ["a.mp4", "b.mp4"]
    assert "anullsrc=r=48000:cl=mono" in argv       # silence for the clip without sound
