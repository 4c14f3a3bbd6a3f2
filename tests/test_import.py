"""`vigbox import`: remux or transcode a film from another device; refuse anything else cleanly.

All media is synthetic (ffmpeg lavfi testsrc2 and sine), made once per module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance import ffmpeg_tool
from appliance.capture.recover import adopt_orphaned_imports, clean_stale_imports
from appliance.catalog import Catalog, Consent
from appliance.errors import InputError, MediaError
from appliance.fsutil import is_locked
from appliance.layout import Layout
from appliance.media_import import MAX_IMPORT_S, import_video, inspect
from appliance.media_sniff import (
    MATROSKA,
    MOV,
    SOUND,
    STILL_IMAGE,
    demuxer_argv,
    import_timeout_s,
    remux_argv,
    sniff_container,
    transcode_argv,
)
from tests.media import (
    FFMPEG_TIMEOUT_S,
    difference,
    ffmpeg,
    ffprobe,
    pts_steps,
    rotated,
    rotation,
    stream,
    thumbnail,
    video_packets,
)

# -- helpers -------------------------------------------------------------------------------


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


def scramble_middle(data: bytes, length: int = 3000) -> bytes:
    """An MP4 with bytes spoilt in the middle of its media data (a bad sector)."""
    offset = 0
    while True:
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"mdat":
            break
        offset += size
    spoilt = bytearray(data)
    middle = offset + size // 2
    for i in range(middle, middle + length, 7):
        spoilt[i] ^= 0x5A
    return bytes(spoilt)


def decode_errors(path: Path) -> str:
    """What ffmpeg complains about while decoding the whole file ('' if it is clean)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null",
                          "-"], check=True, timeout=FFMPEG_TIMEOUT_S, capture_output=True,
                         text=True)
    return out.stderr


def ffmpeg_processes(text: str) -> list[str]:
    """Command lines of running ffmpeg processes that mention `text` (e.g. a data dir)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # ended while we looked
        if any(Path(a).name == "ffmpeg" for a in args) and any(text in a for a in args):
            found.append(" ".join(args))
    return found


def wait_for(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll until `condition()` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s")


def assert_nothing_left(data_dir: Path) -> None:
    """No recording row, no recording dir, no staging dir, no recording audit entry."""
    with Catalog(data_dir) as catalog:
        assert catalog.recordings.list() == []
        assert not [e for e in catalog.audit.entries() if e.action.startswith("recording.")]
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
        "mpeg2_mp2.mkv": [*SRC_V, *SRC_A, "-c:v", "mpeg2video", "-c:a", "mp2", "-shortest"],
        # An MPEG program stream (DVD, old camcorders): a film, but not a container the
        # box accepts.
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
        # 40 s that take a few seconds to transcode: time to stop an import half-way.
        "slow.mkv": ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=40",
                     "-c:v", "mpeg4", "-q:v", "12"],
        # Two hours in half a second: 64x64 grey at 1 frame a second.
        "two_hours.mp4": ["-f", "lavfi", "-i", "color=c=gray:size=64x64:rate=1:duration=7300",
                          "-c:v", "libx264", "-preset", "ultrafast", "-g", "600",
                          "-pix_fmt", "yuv420p"],
    }
    # Portrait phone films: stored 320x240 with a display matrix turning them 90°.
    rotations = {"portrait_h264.mp4": "h264_aac.mp4",
                 "portrait_mpeg4.mp4": "mpeg4_aac_faststart.mp4"}

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
        elif name in ("half_faststart.mp4", "eighth_faststart.mp4"):
            # A broken copy: the index (at the front) promises 2 s, the data stops early.
            whole = make("h264_aac_faststart.mp4").read_bytes()
            path.write_bytes(whole[:len(whole) // (2 if name.startswith("half") else 8)])
        elif name == "corrupt.mp4":
            path.write_bytes(scramble_middle(make("h264_aac_faststart.mp4").read_bytes()))
        elif name in rotations:
            rotated(make(rotations[name]), path, 90)
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
        assert [r.to_json() for r in catalog.recordings.list()] == [doc]
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
    ("mpeg2_mp2.mkv", 25, "mpeg2video"),
    ("h264_vfr.mkv", 30, "h264"),
])
def test_other_formats_are_transcoded(vigbox: Any, media: Callable[[str], Path],
                                      data_dir: Path, name: str, fps: int, codec: str) -> None:
    src = media(name)
    doc = import_ok(vigbox, src)
    out = check_published(doc, data_dir)
    assert len(doc["problems"]) == 1
    assert doc["problems"][0].startswith(f"imported from {codec}: transcoded")
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
    ("half.mp4", "damaged"),  # cut in half, its index (moov, at the end) is gone
    ("mpeg2_mp2.mpg", "not a video file the box can import"),
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
        catalog.cases.add("VIG-2026-021", {Consent.FILMING: "2026-02-01"}, actor="test")
    doc = import_ok(vigbox, media("h264_aac.mp4"), "--case", "VIG-2026-021")
    check_published(doc, data_dir)
    assert doc["case"] == "VIG-2026-021"
    with Catalog(data_dir) as catalog:
        assert catalog.recordings.get(doc["id"]).case == "VIG-2026-021"
        entries = [(e.action, e.actor) for e in catalog.audit.entries()]
    assert ("recording.ready", "cli") in entries  # a person at the box's shell


def test_case_without_filming_consent_refused(vigbox: Any, media: Callable[[str], Path],
                                              data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        catalog.cases.add("VIG-2026-022", {Consent.SUPERVISION: "2026-02-01"}, actor="test")
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
        rec = import_video(catalog, media("mpeg2_mp2.mkv"))
        assert catalog.recordings.list() == [rec]
    assert rec.status == "ready"
    assert rec.path is not None and rec.path.is_file()
    assert rec.video_frames == 50


def test_inspect_copyable(media: Callable[[str], Path]) -> None:
    assert inspect(media("h264_aac.mp4")).copyable
    assert not inspect(media("vp9_opus.webm")).copyable
    assert not inspect(media("mpeg2_mp2.mkv")).copyable
    assert not inspect(media("h264_vfr.mkv")).copyable  # H.264, but not in MP4/MOV
    assert not inspect(media("mpeg4_aac_faststart.mp4")).copyable


# -- (f) only real film containers, and only the file itself ------------------------------


def hls_playlist(target: Path) -> str:
    """An HLS playlist whose one segment is a film somewhere else on the box."""
    return ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n"
            f"{target}\n#EXT-X-ENDLIST\n")


@pytest.fixture
def pointers(media: Callable[[str], Path], tmp_path: Path) -> dict[str, Path]:
    """Small text files that make ffmpeg read another family's film."""
    other = media("h264_aac_faststart.mp4")  # lives in another folder
    beside = tmp_path / "other-family.mp4"
    shutil.copy(other, beside)
    files = {
        "visit.m3u8": hls_playlist(other),
        "visit.mp4": hls_playlist(other),  # the same playlist with a film's name
        "joined.mp4": f"ffconcat version 1.0\nfile {beside.name}\nduration 2\n",
        "stream.sdp": ("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=visit\nc=IN IP4 127.0.0.1\n"
                       "t=0 0\nm=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n"),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {name: tmp_path / name for name in files}


@pytest.mark.parametrize("name", ["visit.m3u8", "visit.mp4", "joined.mp4", "stream.sdp"])
def test_playlists_and_scripts_refused(vigbox: Any, pointers: dict[str, Path],
                                       data_dir: Path, name: str) -> None:
    result = vigbox("import", str(pointers[name]), "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    line = result.error_line()
    assert f"{name} is not a video file the box can import" in line
    assert_nothing_left(data_dir)


def test_a_playlist_is_refused_before_any_tool_reads_it(
        pointers: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_tools(argv: list[str], **kwargs: Any) -> None:
        raise AssertionError(f"{argv[0]} was started on a file that is not a film")
    monkeypatch.setattr(ffmpeg_tool, "spawn", no_tools)
    for path in pointers.values():
        with pytest.raises(InputError, match="not a video file the box can import"):
            inspect(path)


@pytest.mark.parametrize("head, kind", [
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", MOV),
    (b"\x00\x00\x00\x14ftypqt  \x20\x05\x03\x00", MOV),   # iPhone .mov
    (b"\x00\x00\x00\x08wide\x00\x12\x34\x56mdat", MOV),   # old QuickTime
    (b"\x00\x00\x01\x00moov\x00\x00\x00\x6cmvhd", MOV),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81", MATROSKA),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", STILL_IMAGE),  # iPhone photo
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", STILL_IMAGE),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01", STILL_IMAGE),
    (b"RIFF\x24\x08\x00\x00WAVEfmt ", SOUND),
    (b"#EXTM3U\n#EXT-X-VERSION:3\n", None),
    (b"ffconcat version 1.0\n", None),
    (b"v=0\no=- 0 0 IN IP4 ", None),
    (b"\x00\x00\x00\x03ftypisom\x00\x00", None),  # a 3-byte box cannot be
    (b"\x00\x00\x01\xba\x44\x00\x04\x00", None),  # MPEG program stream
    (b"", None),
])
def test_sniff_container(tmp_path: Path, head: bytes, kind: str | None) -> None:
    path = tmp_path / "file"
    path.write_bytes(head + b"\x00" * 64)
    assert sniff_container(path) == kind


# -- (g) damaged films -----------------------------------------------------------------------


def test_cut_off_copy_keeps_what_plays_and_says_so(vigbox: Any, media: Callable[[str], Path],
                                                   data_dir: Path) -> None:
    # The index promises 2 s; the data stops half-way (a copy pulled out too early).
    src = media("half_faststart.mp4")
    assert inspect(src).duration_s == pytest.approx(2.0, abs=0.1)
    doc = import_ok(vigbox, src)
    out = check_published(doc, data_dir)
    assert doc["duration_s"] == pytest.approx(1.0, abs=0.25)
    assert doc["problems"][0].startswith(f"incomplete file: {doc['duration_s']:.1f} s of 2.0 s")
    # Transcoded, so the cut-off last picture is not in the film: it decodes cleanly.
    assert doc["problems"][1] == "imported from h264: transcoded"
    assert decode_errors(out) == ""
    assert doc["video_frames"] == len(video_packets(out))


def test_spoilt_bytes_are_noted(vigbox: Any, media: Callable[[str], Path],
                                data_dir: Path) -> None:
    src = media("corrupt.mp4")
    assert decode_errors(src) != ""  # guards the test: the input really is damaged
    doc = import_ok(vigbox, src)
    out = check_published(doc, data_dir)
    assert doc["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert doc["problems"][0].startswith("damaged file:")
    assert decode_errors(out) == ""


def test_mostly_missing_film_refused(vigbox: Any, media: Callable[[str], Path],
                                    data_dir: Path) -> None:
    result = vigbox("import", str(media("eighth_faststart.mp4")), "--json")
    assert result.returncode == 1 and result.stdout == ""
    line = result.error_line()
    assert "eighth_faststart.mp4 is damaged or incomplete: only" in line
    assert "of its 2.0 s can be played; copy it from the device again" in line
    assert_nothing_left(data_dir)


# -- (h) file names ------------------------------------------------------------------------


@pytest.mark.parametrize("form", [("--", "-x.mp4"), ("./-x.mp4",)], ids=["dashdash", "dot"])
def test_file_name_starting_with_a_dash(media: Callable[[str], Path], cli_env: dict[str, str],
                                        data_dir: Path, tmp_path: Path,
                                        form: tuple[str, ...]) -> None:
    shutil.copy(media("h264_aac.mp4"), tmp_path / "-x.mp4")
    proc = subprocess.run([sys.executable, "-m", "appliance", "import", "--json", *form],
                          cwd=tmp_path, env=cli_env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    out = check_published(doc, data_dir)
    assert [p["size"] for p in video_packets(out)] == \
        [p["size"] for p in video_packets(tmp_path / "-x.mp4")]


def test_relative_name_ffmpeg_would_read_as_a_protocol(
        media: Callable[[str], Path], data_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given "concat:visit.mp4", ffmpeg reads the file visit.mp4 (its concat protocol).
    monkeypatch.chdir(tmp_path)
    shutil.copy(media("h264_aac.mp4"), tmp_path / "concat:visit.mp4")
    shutil.copy(media("vp9_opus.webm"), tmp_path / "visit.mp4")  # some other film
    with Catalog(data_dir) as catalog:
        rec = import_video(catalog, Path("concat:visit.mp4"))
    assert rec.path is not None
    assert stream(ffprobe(rec.path), "video")["codec_name"] == "h264"
    assert [p["size"] for p in video_packets(rec.path)] == \
        [p["size"] for p in video_packets(tmp_path / "concat:visit.mp4")]


# -- (i) stopped imports and recovery ------------------------------------------------------


def start_import(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """A child process importing; its output is read when it ends."""
    return subprocess.Popen([sys.executable, *argv], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def staging_while_transcoding(data_dir: Path) -> Path | None:
    """The import's staging folder once its ffmpeg is running, else None."""
    folders = list((data_dir / "recordings").glob(".import-*"))
    if folders and ffmpeg_processes(str(data_dir)):
        return folders[0]
    return None


def stop_and_collect(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM the child, as systemd or `timeout` does; its stdout and stderr."""
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_sigterm_mid_transcode_leaves_nothing(media: Callable[[str], Path],
                                              cli_env: dict[str, str], data_dir: Path) -> None:
    proc = start_import(["-m", "appliance", "import", str(media("slow.mkv")), "--json"],
                        cli_env)
    staging = wait_for(lambda: staging_while_transcoding(data_dir))
    # Recovery at a daemon start removes unlocked staging folders: this one is locked.
    assert is_locked(staging)
    clean_stale_imports(Layout(data_dir))
    assert staging.is_dir()

    out, err = stop_and_collect(proc)
    assert proc.returncode == 1
    assert out == ""
    assert err.splitlines()[-1] == "vigbox: the import of slow.mkv was stopped; nothing was kept"
    assert "Traceback" not in err
    assert_nothing_left(data_dir)
    assert ffmpeg_processes(str(data_dir)) == []


def test_sigterm_stops_an_import_outside_the_cli(media: Callable[[str], Path],
                                                 cli_env: dict[str, str],
                                                 data_dir: Path) -> None:
    # A script (or any caller) with Python's default SIGTERM handling: it would die at once.
    script = ("import sys; from pathlib import Path; from appliance.catalog import Catalog; "
              "from appliance.media_import import import_video; "
              "import_video(Catalog(Path(sys.argv[1])), Path(sys.argv[2]))")
    proc = start_import(["-c", script, str(data_dir), str(media("slow.mkv"))], cli_env)
    wait_for(lambda: staging_while_transcoding(data_dir))
    _, err = stop_and_collect(proc)
    assert "ImportStopped: the import of slow.mkv was stopped; nothing was kept" in err
    assert_nothing_left(data_dir)
    assert ffmpeg_processes(str(data_dir)) == []


def test_import_stays_locked_until_catalogued(media: Callable[[str], Path], data_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Recovery, run between the rename into recordings/ and the catalog row, must neither
    # adopt nor remove the film.
    seen: dict[str, Any] = {}
    with Catalog(data_dir) as catalog, Catalog(data_dir) as recovery:
        create = catalog.recordings.create

        def recover_then_create(rec_id: str, **fields: Any) -> Any:
            folder = data_dir / "recordings" / rec_id
            seen["locked"] = is_locked(folder)
            seen["adopted"] = adopt_orphaned_imports(recovery)
            clean_stale_imports(recovery.layout)
            seen["film"] = (folder / "recording.mp4").is_file()
            return create(rec_id, **fields)

        monkeypatch.setattr(catalog.recordings, "create", recover_then_create)
        rec = import_video(catalog, media("h264_aac.mp4"))
    assert seen == {"locked": True, "adopted": [], "film": True}
    with Catalog(data_dir) as catalog:
        assert catalog.recordings.list() == [rec]
    assert rec.status == "ready" and rec.problems == []
    assert not is_locked(rec.dir)  # released once the catalog lists it


def test_sigterm_once_catalogued_does_not_undo_the_import(
        media: Callable[[str], Path], data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A SIGTERM as the row is written: the film stays catalogued, and the signal goes on
    # to whoever handled SIGTERM before, once the import is over.
    received: list[int] = []

    def recorder(signum: int, frame: object) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, recorder)
    try:
        with Catalog(data_dir) as catalog:
            create = catalog.recordings.create

            def create_then_sigterm(rec_id: str, **fields: Any) -> Any:
                os.kill(os.getpid(), signal.SIGTERM)
                return create(rec_id, **fields)

            monkeypatch.setattr(catalog.recordings, "create", create_then_sigterm)
            rec = import_video(catalog, media("h264_aac.mp4"))
            assert catalog.recordings.list() == [rec]
            assert signal.getsignal(signal.SIGTERM) is recorder  # put back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert rec.path is not None and rec.path.is_file()
    assert received == [signal.SIGTERM]


# -- (j) length ----------------------------------------------------------------------------


def test_film_over_an_hour_refused_at_once(vigbox: Any, media: Callable[[str], Path],
                                           data_dir: Path) -> None:
    src = media("two_hours.mp4")
    started = time.monotonic()
    result = vigbox("import", str(src), "--json")
    assert time.monotonic() - started < 20  # refused without transcoding anything
    assert result.returncode == 1 and result.stdout == ""
    line = result.error_line()
    assert "two_hours.mp4 is too long (122 min): the box imports films of up to 60 min" in line
    assert_nothing_left(data_dir)


# -- (k) portrait phone films --------------------------------------------------------------


def test_portrait_film_remuxed_keeps_its_rotation(vigbox: Any, media: Callable[[str], Path],
                                                  data_dir: Path) -> None:
    src = media("portrait_h264.mp4")
    assert abs(rotation(src)) == 90
    doc = import_ok(vigbox, src)
    out = check_published(doc, data_dir)
    assert doc["problems"] == []  # remuxed
    assert (doc["width"], doc["height"]) == (240, 320)  # as shown, not as stored
    assert abs(rotation(out)) == 90
    assert difference(thumbnail(out), thumbnail(src)) < 1


def test_portrait_film_transcoded_upright(vigbox: Any, media: Callable[[str], Path],
                                          data_dir: Path) -> None:
    src = media("portrait_mpeg4.mp4")
    doc = import_ok(vigbox, src)
    out = check_published(doc, data_dir)
    assert doc["problems"] == ["imported from mpeg4: transcoded"]
    assert (doc["width"], doc["height"]) == (240, 320)
    video = stream(ffprobe(out), "video")
    assert (video["width"], video["height"]) == (240, 320)
    assert rotation(out) == 0
    # Stored upright: read without any rotation, it looks as a player shows the source.
    shown = thumbnail(src)
    assert difference(thumbnail(out, autorotate=False), shown) < 8
    assert difference(thumbnail(out, autorotate=False), shown[::-1]) > 20  # not upside down


# -- argv builders -------------------------------------------------------------------------


def has_pair(argv: list[str], option: str, value: str) -> bool:
    """True if `option value` appear next to each other in argv."""
    return any(a == option and b == value for a, b in zip(argv, argv[1:]))


def input_options(argv: list[str]) -> list[str]:
    """The arguments before `-i`: what ffmpeg is told about the file it reads."""
    return argv[1:argv.index("-i")]


def test_remux_argv() -> None:
    argv = remux_argv(Path("/in/phone clip.mp4"), Path("/out/.recording.mp4.tmp"), MOV)
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
    # The same pass decodes everything to nothing, so damage shows on stderr.
    assert has_pair(argv, "-f", "null") and has_pair(argv, "null", "-")


def test_transcode_argv() -> None:
    argv = transcode_argv(Path("/in/clip.webm"), Path("/out/.recording.mp4.tmp"), 30, MATROSKA)
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
    # A constant grid from 0: a variable-rate film's frames land on n / 30.
    assert "fps=fps=30:start_time=0" in graph
    assert "scale=trunc(iw/2)*2:trunc(ih/2)*2" in graph
    assert "/out/.recording.mp4.tmp" in argv
    assert "copy" not in argv
    assert "-noautorotate" not in argv  # ffmpeg turns portrait films upright


@pytest.mark.parametrize("build", [
    lambda src, demuxer: remux_argv(src, Path("/out/x.mp4"), demuxer),
    lambda src, demuxer: transcode_argv(src, Path("/out/x.mp4"), 25, demuxer),
], ids=["remux", "transcode"])
def test_ffmpeg_reads_one_plain_file_with_one_demuxer(build: Callable[[Path, str], list[str]],
                                                      ) -> None:
    # Forced demuxer: no playlist or script demuxer can be guessed; file protocol only;
    # an MP4's references to media in other files are not followed.
    mov = input_options(build(Path("/in/a.mp4"), MOV))
    assert has_pair(mov, "-f", "mov") and has_pair(mov, "-format_whitelist", "mov")
    assert has_pair(mov, "-protocol_whitelist", "file")
    assert has_pair(mov, "-enable_drefs", "0")
    mkv = input_options(build(Path("/in/a.mkv"), MATROSKA))
    assert has_pair(mkv, "-f", "matroska") and has_pair(mkv, "-format_whitelist", "matroska")
    assert has_pair(mkv, "-protocol_whitelist", "file")
    assert "-enable_drefs" not in mkv  # a mov option; matroska would not know it
    with pytest.raises(ValueError, match="absolute"):
        build(Path("-x.mp4"), MOV)


def test_ffprobe_gets_the_same_restrictions() -> None:
    assert demuxer_argv(MOV) == ("-f", "mov", "-format_whitelist", "mov",
                                 "-protocol_whitelist", "file", "-enable_drefs", "0")
    assert demuxer_argv(MATROSKA) == ("-f", "matroska", "-format_whitelist", "matroska",
                                      "-protocol_whitelist", "file")


def test_import_timeouts_fit_a_pi_but_are_bounded() -> None:
    ten_min = import_timeout_s(600, 1280, 720, 30, transcode=True)
    hour = import_timeout_s(MAX_IMPORT_S, 1280, 720, 30, transcode=True)
    assert 3 * 600 < ten_min < 6 * 600  # a Pi 4 transcodes 720p at about real time
    assert hour < 6 * 3600  # was up to 10 x the length: 20 h for a 2-hour film
    assert import_timeout_s(600, 1280, 720, 30, transcode=False) < ten_min
    assert import_timeout_s(600, 1920, 1080, 30, transcode=True) > ten_min
    assert import_timeout_s(600, 320, 240, 25, transcode=True) == \
        import_timeout_s(600, 1280, 720, 30, transcode=True)  # small films: same floor
    assert import_timeout_s(MAX_IMPORT_S, 3840, 2160, 60, transcode=True) < 21 * 3600  # capped
