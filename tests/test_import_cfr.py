"""Imports become constant-frame-rate films, upright, catalogued as shown.

A phone films at a variable rate (slower in poor light) and writes a rotation for a
portrait film. Frame stepping in the browser and clip cutting both take frame n to be
at n / fps, so the import finds the variable rate in the frame timestamps and
transcodes such a film to a constant one; every frame must then be the picture the
phone showed at that time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.catalog import Catalog
from appliance.errors import InputError, MediaError
from appliance.media_cfr import FrameTiming, constant_rate, frame_timing, snap_rate
from appliance.media_import import import_video, inspect
from appliance.media_sniff import MOV, demuxer_argv
from appliance.probe import packet_times_argv, parse_packet_times
from tests.media import (
    barcode_film,
    difference,
    ffprobe,
    frame_indices,
    half_rate,
    lavfi_film,
    pts_steps,
    rotated,
    rotation,
    stream,
    thumbnail,
    video_packets,
)
from tests.test_import import assert_nothing_left, check_published, import_ok

SLOW_FROM_S, SLOW_TO_S = 4, 6  # the dark stretch the phone filmed at 15 fps


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """make(name) → a phone-like film, created on first use."""
    root = tmp_path_factory.mktemp("phone")
    recipes: dict[str, Callable[[Path], Path]] = {
        # 10 s at 30 fps but 4-6 s at 15 fps, frame n showing barcode n: ffprobe says 27 fps.
        "vfr_barcode.mp4": lambda p: barcode_film(
            p, seconds=10, select=half_rate(SLOW_FROM_S, SLOW_TO_S)),
        "vfr.mp4": lambda p: lavfi_film(p, seconds=4, select=half_rate(1, 2)),
        "cfr.mp4": lambda p: lavfi_film(p, seconds=3),
    }

    def make(name: str) -> Path:
        path = root / name
        if not path.exists():
            if name.startswith("portrait_"):
                rotated(make(name.removeprefix("portrait_")), path, 90)
            else:
                recipes[name](path)
        return path

    return make


# -- a variable frame rate -----------------------------------------------------------------


def test_the_phone_film_really_is_variable(phone: Callable[[str], Path]) -> None:
    # Guards the tests below: the source is what a phone gives, not constant already.
    src = phone("vfr_barcode.mp4")
    video = stream(ffprobe(src), "video")
    assert video["avg_frame_rate"] == "27/1"  # what the import used to catalogue
    assert len(video_packets(src)) == 270
    assert len(pts_steps(src)) > 1


def test_variable_rate_film_is_imported_at_a_constant_rate(
        vigbox: Any, phone: Callable[[str], Path], data_dir: Path) -> None:
    doc = import_ok(vigbox, phone("vfr_barcode.mp4"))
    out = check_published(doc, data_dir)
    assert doc["fps"] == 30.0
    assert doc["video_frames"] == 300 == len(video_packets(out))
    assert doc["duration_s"] == pytest.approx(10.0, abs=0.1)
    assert doc["audio"] == "ok"
    assert doc["problems"] == ["imported from h264: transcoded to a constant 30 fps (its "
                               "frame rate varied: frames lasted 33 to 67 ms, usually 33 ms)"]
    video = stream(ffprobe(out), "video")
    assert video["avg_frame_rate"] == video["r_frame_rate"] == "30/1"
    assert len(pts_steps(out)) == 1, "frames at constant intervals"
    # Frame n is what the phone showed at n/30: in the slow stretch each picture twice.
    slow = range(SLOW_FROM_S * 30, SLOW_TO_S * 30)
    assert frame_indices(out) == [n - 1 if n in slow and n % 2 else n for n in range(300)]


def test_constant_rate_phone_film_is_still_remuxed(
        vigbox: Any, phone: Callable[[str], Path], data_dir: Path) -> None:
    src = phone("cfr.mp4")
    doc = import_ok(vigbox, src)
    out = check_published(doc, data_dir)
    assert doc["problems"] == []
    assert (doc["fps"], doc["video_frames"]) == (30.0, 90)
    assert [p["size"] for p in video_packets(out)] == [p["size"] for p in video_packets(src)]


def test_inspect_sees_the_variable_rate(phone: Callable[[str], Path]) -> None:
    vfr, cfr = inspect(phone("vfr.mp4")), inspect(phone("cfr.mp4"))
    assert vfr.timing.variable and not vfr.copyable  # H.264 + AAC in MP4, yet transcoded
    assert vfr.constant_fps == 30
    assert not cfr.timing.variable and cfr.copyable
    assert cfr.timing.frames == 90


# -- a portrait phone film -------------------------------------------------------------------


def test_variable_rate_portrait_film_is_transcoded_upright(
        vigbox: Any, phone: Callable[[str], Path], data_dir: Path) -> None:
    src = phone("portrait_vfr.mp4")
    assert abs(rotation(src)) == 90
    doc = import_ok(vigbox, src)
    out = check_published(doc, data_dir)
    assert doc["problems"][0].startswith("imported from h264: transcoded to a constant 30 fps")
    assert (doc["width"], doc["height"]) == (240, 320)  # as shown
    video = stream(ffprobe(out), "video")
    assert (video["width"], video["height"]) == (240, 320)  # stored upright ...
    assert rotation(out) == 0  # ... so no player has to turn it
    assert len(pts_steps(out)) == 1
    shown = thumbnail(src)
    assert difference(thumbnail(out, autorotate=False), shown) < 8
    assert difference(thumbnail(out, autorotate=False), shown[::-1]) > 20


def test_constant_rate_portrait_film_keeps_its_rotation(
        vigbox: Any, phone: Callable[[str], Path], data_dir: Path) -> None:
    doc = import_ok(vigbox, phone("portrait_cfr.mp4"))
    out = check_published(doc, data_dir)
    assert doc["problems"] == []  # remuxed: every player turns it by its display matrix
    assert abs(rotation(out)) == 90
    assert (doc["width"], doc["height"]) == (240, 320)


# -- bad input -----------------------------------------------------------------------------


def test_unreadable_frame_times_refused_and_nothing_left(
        vigbox: Any, phone: Callable[[str], Path], data_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(*args: Any, **kwargs: Any) -> None:
        raise MediaError("reading the frame times of vfr.mp4 failed: Invalid data")
    monkeypatch.setattr("appliance.media_import.packet_times", fails)
    with Catalog(data_dir) as catalog:
        with pytest.raises(InputError, match="vfr.mp4 is damaged .ffmpeg cannot read its "
                                             "frames.; copy it from the device again"):
            import_video(catalog, phone("vfr.mp4"))
    assert_nothing_left(data_dir)


# -- the timing rules, as pure functions -----------------------------------------------------


def at(fps: float, frames: int, *, skip: Callable[[int], bool] = lambda n: False,
       decimals: int = 6) -> list[float]:
    """Times of frames 0..frames-1 at `fps`, rounded as a container stores them."""
    return [round(n / fps, decimals) for n in range(frames) if not skip(n)]


@pytest.mark.parametrize("times, variable", [
    (at(30, 300), False),
    (at(30, 300, decimals=3), False),      # Matroska's 1 ms timestamps: 33, 33, 34 ms
    (at(60, 300, decimals=3), False),      # 16 and 17 ms
    (at(30000 / 1001, 300), False),
    (at(30, 300)[::-1], False),            # any order: B-frames are stored out of it
    (at(30, 300, skip=lambda n: n == 150), True),  # one dropped frame moves all after it
    (at(30, 300, skip=lambda n: 120 <= n < 180 and n % 2 == 1), True),
    ([n * 0.033 + 0.012 * (n % 3) for n in range(60)], True),  # bursts: 45, 45, 9 ms
])
def test_frame_timing(times: list[float], variable: bool) -> None:
    assert frame_timing(times).variable is variable


def test_frame_timing_without_timestamps_counts_as_variable() -> None:
    assert frame_timing(at(30, 30), untimed=1).variable
    assert frame_timing([]).variable
    assert frame_timing([0.0]).variable


@pytest.mark.parametrize("times, average, rate", [
    (at(30, 300, skip=lambda n: 120 <= n < 180 and n % 2 == 1), 27.0, 30),  # the phone
    ([n * 0.033 + 0.012 * (n % 3) for n in range(60)], 30.0, 30),  # bursts: the average
    (at(15, 300, skip=lambda n: n % 10 == 0), 13.5, 15),
    (at(30000 / 1001, 300, skip=lambda n: n == 9), 29.9, 30),
    (at(25, 300, skip=lambda n: n == 9), 24.9, 25),
    (at(120, 300, skip=lambda n: n == 9), 119.0, 60),  # at most MAX_FPS
    (at(8, 80, skip=lambda n: n == 9), 7.9, 8),
])
def test_constant_rate(times: list[float], average: float, rate: int) -> None:
    timing = frame_timing(times)
    assert timing.variable
    assert constant_rate(timing, average, 60) == rate


def test_mostly_slow_film_keeps_the_frames_of_its_fast_stretches() -> None:
    # 60 % of the time at 15 fps in the dark, the rest at 30: 24 fps, not 15.
    timing = FrameTiming(frames=100, untimed=0, median_step_s=1 / 15, shortest_step_s=1 / 30,
                         longest_step_s=1 / 15, irregular_steps=40)
    assert constant_rate(timing, 21.0, 60) == 24


@pytest.mark.parametrize("fps, snapped", [(29.97, 30), (23.976, 24), (25.0, 25), (59.94, 60),
                                          (12.5, 12), (27.0, 27)])
def test_snap_rate(fps: float, snapped: int) -> None:
    assert snap_rate(fps) == snapped


# -- reading the frame times ---------------------------------------------------------------


def test_packet_times_argv_reads_one_plain_file() -> None:
    argv = packet_times_argv(Path("/in/phone clip.mp4"), demuxer_argv(MOV))
    assert argv[0] == "ffprobe"
    assert argv[-1] == "/in/phone clip.mp4"  # one argument, no shell, after the options
    assert argv[1:-1] == ["-v", "error", "-f", "mov", "-format_whitelist", "mov",
                          "-protocol_whitelist", "file", "-enable_drefs", "0",
                          "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
                          "-of", "csv=p=0"]


def test_parse_packet_times() -> None:
    times = parse_packet_times("0.066667,__\n0.000000,K_\n0.033333,__\nN/A,__\n\n"
                               "1.000000,K_D\n")
    assert times.pts_s == (0.0, 0.033333, 0.066667, 1.0)  # in presentation order
    assert times.keyframes_s == (0.0, 1.0)
    assert times.untimed == 1
