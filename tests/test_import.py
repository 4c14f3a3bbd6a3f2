"""`vigbox import`: remux or transcode a film from another device; refuse anything else cleanly.

All media is synthetic (ffmpeg lavfi testsrc2 and sine), made once per module.
"""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.catalog import Catalog
from appliance.errors import InputError, MediaError
from appliance.media_import import inspect, import_video, remux_argv, transcode_argv

FFMPEG_TIMEOUT_S = 30


# -- helpers -------------------------------------------------------------------------------


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; fail the test setup if it fails."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=FFMPEG_TIMEOUT_S, capture_output=True)


def ffprobe(path: Path, *extra: str) -> dict[str, Any]:
    """ffprobe's JSON for `path` (format and streams, plus whatever `extra` asks for)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                          "-show_streams", *extra, str(path)],
                         check=True, timeout=FFMPEG_TIMEOUT_S, capture_output=True, text=True)
    return json.loads(out.stdout)


def stream(info: dict[str, Any], kind: str) -> dict[str, Any]:
    """The first stream of `kind` ('video' or 'audio')."""
    return next(s for s in info["streams"] if s["codec_type"] == kind)


def video_packets(path: Path) -> list[dict[str, Any]]:
    """The video packets of `path` (pts and size), in file order."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-print_format",
                          "json", "-show_entries", "packet=pts,size", str(path)],
                         check=True, timeout=FFMPEG_TIMEOUT_S, capture_output=True, text=True)
    return json.loads(out.stdout)["packets"]


def pts_steps(path: Path) -> set[int]:
    """The distinct gaps between consecutive video timestamps (one value = constant rate)."""
    pts = sorted(int(p["pts"]) for p in video_packets(path))
    return {b - a for a, b in zip(pts, pts[1:])}


def top_level_boxes(path: Path) -> list[str]:
    """The types of the top-level ISO BMFF boxes of an MP4, in file order."""
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        elif size == 0:
            size = len(data) - offset
        assert size >= 8, f"broken box at {offset} in {path}"
        boxes.append(kind.decode("latin-1"))
        offset += size
    return boxes


def moov_before_mdat(path: Path) -> bool:
    """True if the index (moov) comes before the media data: playable while downloading."""
    boxes = top_level_boxes(path)
    return boxes.index("moov") < boxes.index("mdat")


def cut_after_mdat_header(src: Path, dst: Path, keep: int = 100) -> Path:
    """Copy a faststart MP4 but keep only `keep` bytes of its media data (a broken download)."""
    data = src.read_bytes()
    offset = 0
    while True:
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"mdat":
            break
        offset += size
    dst.write_bytes(data[:offset + 8 + keep])
    return dst


def assert_nothing_left(data_dir: Path) -> None:
    """No recording row, no recording dir, no staging dir, no recording audit entry."""
    with Catalog(data_dir) as catalog:
        assert catalog.list_recordings() == []
        assert not [e for e in catalog.audit_log() if e["action"].startswith("recording.")]
    recordings = data_dir / "recordings"
    if recordings.exists():
        assert list(recordings.iterdir()) == []
    assert list(data_dir.rglob(".import-*")) == []
    assert list(data_dir.rglob("*.mp4*")) == []




# -- media ---------------------------------------------------------------------------------

SRC_V = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2"]
SRC_A = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """make(name) → a synthetic media file, created on first use."""
    root = tmp_path_factory.mktemp("media")
    recipes: dict[str, list[str]] = {
        # moov after mdat (ffmpeg's default), so a faststart result proves the remux did it.
        "h264_aac.mp4": [*SRC_V, *SRC_A, "-c:v", "libx264", "-pix_fmt", "yuv420p",
                         "-c:a", "aac", "-shortest"],
        "h264_aac_faststart.mp4": [*SRC_V, *SRC_A, "-c:v", "libx264", "-pix_fmt", "yuv420p",
                                   "-c:a", "aac", "-shortest", "-movflags", "+faststart"],
        "mpeg4_aac_faststart.mp4": [*SRC_V, *SRC_A, "-c:v", "mpeg4", "-c:a", "aac",
                                    "-shortest", "-movflags", "+faststart"],
        "vp9_opus.webm": ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2",
                          *SRC_A, "-c:v", "libvpx-vp9", "-deadline", "realtime",
                          "-cpu-used", "8", "-c:a", "libopus", "-shortest"],
        "mpeg2_mp2.mpg": [*SRC_V, *SRC_A, "-c:v", "mpeg2video", "-c:a", "mp2", "-shortest"],
        # Variable frame rate: gaps of 45, 45 and 9 ms instead of a steady 33 ms.
        "h264_vfr.mkv": ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2",
                         *SRC_A, "-vf", r"settb=1/1000,setpts=N*33+12*mod(N\,3)",
                         "-fps_mode", "passthrough", "-enc_time_base:v", "1/1000",
                         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"],
        # Cropped-phone-clip size: odd width and height.
        "odd_size.webm": [*SRC_V, "-vf", "scale=321:241", "-c:v", "libvpx-vp9",
                          "-deadline", "realtime", "-cpu-used", "8"],
        "still.png": ["-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1"],
        "still.jpg": ["-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1"],
        "sound.wav": [*SRC_A],
        "short.mp4": ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=0.2",
                      "-c:v", "libx264", "-pix_fmt", "yuv420p"],
    }

    def make(name: str) -> Path:
        path = root / name
        if path.exists():
            return path
        if name == "notes.txt":
            path.write_text("Visit notes: not a film.\n")
        elif name == "empty.mp4":
            path.write_bytes(b"")
        elif name == "half.mp4":
            whole = make("h264_aac.mp4").read_bytes()
            path.write_bytes(whole[:len(whole) // 2])
        else:
            ffmpeg(*recipes[name], str(path))
        return path

    return make


def import_ok(vigbox: Any, src: Path, *args: str) -> dict[str, Any]:
    """Run `vigbox import SRC --json` and return the recording it printed."""
    result = vigbox("import", str(src), "--json", *args)
    assert result.returncode == 0, result.stderr
    return result.json()


def check_published(doc: dict[str, Any], data_dir: Path) -> Path:
    """Common checks of an imported recording: ready, in place, in the catalog, no staging."""
    assert doc["status"] == "ready"
    assert doc["origin"] == "import"
    path = Path(doc["path"])
    assert path == data_dir / "recordings" / doc["id"] / "recording.mp4"
    assert path.is_file()
    assert list(data_dir.rglob(".import-*")) == []
    assert list(path.parent.glob(".*.tmp")) == []
    with Catalog(data_dir) as catalog:
        assert [r.to_json() for r in catalog.list_recordings()] == [doc]
    return path


# -- (a) remux -----------------------------------------------------------------------------


def test_h264_aac_mp4_is_remuxed(vigbox: Any, media: Callable[[str], Path],
                                 data_dir: Path) -> None:
    src = media("h264_aac.mp4")
    assert not moov_before_mdat(src)
    doc = import_ok(vigbox, src)
    out = check_published(doc, data_dir)

    assert doc["case"] is None
    assert doc["problems"] == []
    assert doc["audio"] == "ok"
    assert (doc["width"], doc["height"], doc["fps"]) == (320, 240, 25.0)
    assert doc["duration_s"] == pytest.approx(2.0, abs=0.1)

    info = ffprobe(out)
    assert stream(info, "video")["codec_name"] == "h264"
    assert stream(info, "audio")["codec_name"] == "aac"
    # A copy keeps every packet exactly: same count, same sizes, same order.
    src_packets, out_packets = video_packets(src), video_packets(out)
    assert len(out_packets) == len(src_packets) == 50 == doc["video_frames"]
    assert [p["size"] for p in out_packets] == [p["size"] for p in src_packets]
    assert moov_before_mdat(out)


# -- (b) transcode -------------------------------------------------------------------------


@pytest.mark.parametrize("name, fps, codec", [
    ("vp9_opus.webm", 30, "vp9"),
    ("mpeg2_mp2.mpg", 25, "mpeg2video"),
    ("h264_vfr.mkv", 30, "h264"),
])
def test_other_formats_are_transcoded(vigbox: Any, media: Callable[[str], Path],
                                      data_dir: Path, name: str, fps: int, codec: str) -> None:
    src = media(name)
    doc = import_ok(vigbox, src)
    out = check_published(doc, data_dir)
    assert doc["problems"] == [f"imported from {codec}: transcoded"]
    assert doc["fps"] == float(fps)
    assert doc["audio"] == "ok"
    assert doc["duration_s"] == pytest.approx(2.0, abs=0.15)

    info = ffprobe(out)
    video, audio = stream(info, "video"), stream(info, "audio")
    assert video["codec_name"] == "h264"
    assert video["pix_fmt"] == "yuv420p"
    assert audio["codec_name"] == "aac"
    assert video["avg_frame_rate"] == video["r_frame_rate"] == f"{fps}/1"
    assert len(pts_steps(out)) == 1, "the import must have a constant frame rate"
    assert moov_before_mdat(out)


def test_variable_frame_rate_source_really_varies(media: Callable[[str], Path]) -> None:
    # Guards the CFR check above: its VFR input must not be constant already.
    assert len(pts_steps(media("h264_vfr.mkv"))) > 1


def test_odd_frame_size_is_transcoded_to_even(vigbox: Any, media: Callable[[str], Path],
                                             data_dir: Path) -> None:
    src = media("odd_size.webm")
    assert (stream(ffprobe(src), "video")["width"], stream(ffprobe(src), "video")["height"]) \
        == (321, 241)
    doc = import_ok(vigbox, src)
    out = check_published(doc, data_dir)
    assert (doc["width"], doc["height"]) == (320, 240)
    assert doc["audio"] == "none"
    assert stream(ffprobe(out), "video")["codec_name"] == "h264"
    assert [s["codec_type"] for s in ffprobe(out)["streams"]] == ["video"]


# -- (c) refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("name, reason", [
    ("still.png", "still image"),
    ("still.jpg", "still image"),
    ("sound.wav", "sound file"),
    ("notes.txt", "not a video file"),
    ("missing.mp4", "not a file"),
    ("empty.mp4", "not a video file"),
    ("short.mp4", "too short"),
    ("half.mp4", "not a video file"),  # cut in half, its index (moov, at the end) is gone
])
def test_refused_leaves_nothing_behind(vigbox: Any, media: Callable[[str], Path],
                                       data_dir: Path, tmp_path: Path, name: str,
                                       reason: str) -> None:
    src = tmp_path / "missing.mp4" if name == "missing.mp4" else media(name)
    result = vigbox("import", str(src), "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    line = result.error_line()
    assert reason in line
    assert src.name in line
    assert_nothing_left(data_dir)


def test_import_of_a_directory_refused(vigbox: Any, data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "DCIM"
    folder.mkdir()
    result = vigbox("import", str(folder), "--json")
    assert result.returncode == 1
    assert "not a file" in result.error_line()
    assert_nothing_left(data_dir)


# -- (d) cases -----------------------------------------------------------------------------


def test_unknown_case_refused(vigbox: Any, media: Callable[[str], Path],
                              data_dir: Path) -> None:
    result = vigbox("import", str(media("h264_aac.mp4")), "--case", "VIG-2026-404", "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "VIG-2026-404" in result.error_line()
    assert_nothing_left(data_dir)


def test_known_case_is_recorded(vigbox: Any, media: Callable[[str], Path],
                                data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        catalog.add_case("VIG-2026-021", {"filming": "2026-02-01"})
    doc = import_ok(vigbox, media("h264_aac.mp4"), "--case", "VIG-2026-021")
    check_published(doc, data_dir)
    assert doc["case"] == "VIG-2026-021"
    with Catalog(data_dir) as catalog:
        assert catalog.get_recording(doc["id"]).case == "VIG-2026-021"
        entries = [(e["action"], e["actor"]) for e in catalog.audit_log()]
    assert ("recording.ready", "import") in entries


def test_case_without_filming_consent_refused(vigbox: Any, media: Callable[[str], Path],
                                              data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        catalog.add_case("VIG-2026-022", {"supervision": "2026-02-01"})
    result = vigbox("import", str(media("h264_aac.mp4")), "--case", "VIG-2026-022", "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert "no consent to filming" in result.error_line()
    assert_nothing_left(data_dir)


# -- (e) function level --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["h264_aac_faststart.mp4", "mpeg4_aac_faststart.mp4"])
def test_ffmpeg_failure_leaves_nothing_behind(media: Callable[[str], Path], data_dir: Path,
                                              tmp_path: Path, name: str) -> None:
    # A broken download: the index says 2 s of film, but the media data stops at once.
    # The probe accepts it; ffmpeg itself then fails part-way through the import.
    broken = cut_after_mdat_header(media(name), tmp_path / f"broken-{name}")
    assert inspect(broken).duration_s == pytest.approx(2.0, abs=0.1)
    with Catalog(data_dir) as catalog:
        with pytest.raises(MediaError, match=f"importing broken-{name}"):
            import_video(catalog, broken)
        assert (data_dir / "recordings").is_dir()  # the failure came after staging began
    assert_nothing_left(data_dir)


def test_function_level_refusals_raise_input_error(media: Callable[[str], Path],
                                                   data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        with pytest.raises(InputError, match="sound file"):
            import_video(catalog, media("sound.wav"))
        with pytest.raises(LookupError):
            import_video(catalog, media("h264_aac.mp4"), case="VIG-2026-404")
    assert_nothing_left(data_dir)


def test_function_level_import(media: Callable[[str], Path], data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        rec = import_video(catalog, media("mpeg2_mp2.mpg"))
        assert catalog.list_recordings() == [rec]
    assert rec.status == "ready"
    assert rec.path is not None and rec.path.is_file()
    assert rec.video_frames == 50


def test_inspect_copyable(media: Callable[[str], Path]) -> None:
    assert inspect(media("h264_aac.mp4")).copyable
    assert not inspect(media("vp9_opus.webm")).copyable
    assert not inspect(media("mpeg2_mp2.mpg")).copyable
    assert not inspect(media("h264_vfr.mkv")).copyable  # H.264, but not in MP4/MOV
    assert not inspect(media("mpeg4_aac_faststart.mp4")).copyable


# -- argv builders -------------------------------------------------------------------------


def has_pair(argv: list[str], option: str, value: str) -> bool:
    """True if `option value` appear next to each other in argv."""
    return any(a == option and b == value for a, b in zip(argv, argv[1:]))


def test_remux_argv() -> None:
    argv = remux_argv(Path("/in/phone clip.mp4"), Path("/out/.recording.mp4.tmp"))
    assert argv[0] == "ffmpeg"
    assert has_pair(argv, "-i", "/in/phone clip.mp4")  # one argument, no shell
    assert has_pair(argv, "-c", "copy")
    assert has_pair(argv, "-movflags", "+faststart")
    assert has_pair(argv, "-f", "mp4")
    assert has_pair(argv, "-map", "0:v:0")
    assert has_pair(argv, "-map", "0:a:0?")
    assert "/out/.recording.mp4.tmp" in argv
    assert "-nostdin" in argv and "-y" in argv
    assert "libx264" not in argv


def test_transcode_argv() -> None:
    argv = transcode_argv(Path("/in/clip.webm"), Path("/out/.recording.mp4.tmp"), 30)
    assert argv[0] == "ffmpeg"
    assert has_pair(argv, "-i", "/in/clip.webm")
    assert has_pair(argv, "-vcodec", "libx264")
    assert has_pair(argv, "-pix_fmt", "yuv420p")
    assert has_pair(argv, "-acodec", "aac")
    assert has_pair(argv, "-g", "30")  # a keyframe every second
    assert has_pair(argv, "-movflags", "+faststart")
    assert has_pair(argv, "-f", "mp4")
    assert has_pair(argv, "-map", "0:a:0?")
    graph = argv[argv.index("-filter_complex") + 1]
    assert "fps=fps=30" in graph
    assert "scale=trunc(iw/2)*2:trunc(ih/2)*2" in graph
    assert "/out/.recording.mp4.tmp" in argv
    assert "copy" not in argv
