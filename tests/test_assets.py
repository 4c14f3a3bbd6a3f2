"""Review assets: poster, thumbnail sprite with its WebVTT index, waveform peaks."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.catalog import Catalog, Origin
from appliance.config import Config
from appliance.encode.assets import (
    COLUMNS,
    THUMB_H,
    THUMB_W,
    keyframes_dense,
    sprite_argv,
    sprite_vtt,
)
from appliance.encode.worker import EncodeWorker
from appliance.errors import InputError
from appliance.media_import import import_video
from appliance.probe import PacketTimes
from tests.conftest import SECONDS
from tests.media import grey_frames, half_rate, lavfi_film, rotated, streams


def test_vtt_index_points_at_each_tile() -> None:
    vtt = sprite_vtt("sprite.jpg", 25.0, 2.0, 13)
    cues = re.findall(r"(\S+) --> (\S+)\n(\S+)", vtt)
    assert vtt.startswith("WEBVTT\n")
    assert len(cues) == 13
    assert cues[0] == ("00:00:00.000", "00:00:02.000", f"sprite.jpg#xywh=0,0,{THUMB_W},{THUMB_H}")
    assert cues[COLUMNS] [2] == f"sprite.jpg#xywh=0,{THUMB_H},{THUMB_W},{THUMB_H}"
    assert cues[-1][1] == "00:00:25.000"


def test_the_worker_finds_a_film_without_assets_and_makes_them(
        barcode_film: Path, data_dir: Path, config: Config) -> None:
    with Catalog(data_dir) as catalog:
        rec = import_video(catalog, barcode_film, actor="test")
        assert catalog.jobs.list() == []  # the import does not call the encoder
        ended = EncodeWorker(catalog, config.encode).run_one()
        assert ended is not None and (ended.kind, ended.subject) == ("assets", rec.id)
        assert catalog.assets.get(rec.id).status == "ready"
        assert catalog.assets.queue_missing(actor="test") == []  # nothing is made twice
        assert ended is not None and ended.status == "done", ended
        assert ended.progress == 1.0
        result: dict[str, Any] = ended.result or {}
    poster = streams(Path(result["poster"]))["video"]
    assert (poster["width"], poster["height"]) == (640, 358)
    sprite = streams(Path(result["sprite"]))["video"]
    rows = -(-result["thumbnails"] // COLUMNS)
    assert (sprite["width"], sprite["height"]) == (COLUMNS * THUMB_W, rows * THUMB_H)
    assert result["thumbnails"] == SECONDS // 2
    wave = json.loads(Path(result["waveform"]).read_text())
    assert len(wave["peaks"]) == pytest.approx(SECONDS * wave["peaks_per_s"], abs=2)
    # The test film's sound is a steady sine at 1/8 of full scale (lavfi's default).
    assert all(0.08 < hi < 0.2 and -0.2 < lo < -0.08 for lo, hi in wave["peaks"][5:-5])
    vtt = Path(result["vtt"]).read_text()
    assert vtt.count(" --> ") == result["thumbnails"]
    assert not [p for p in Path(result["poster"]).parent.iterdir() if p.name.startswith(".")]


def test_assets_need_a_finished_film(data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        from appliance.catalog import utc_now
        catalog.recordings.create("20260101-000000-eeee", case=None, started_at=utc_now(),
                                  origin=Origin.CAPTURE, actor="test")
        with pytest.raises(InputError, match="finished film"):
            catalog.assets.request("20260101-000000-eeee", actor="test")
        assert catalog.assets.queue_missing(actor="test") == []  # not playable: no assets


# -- any import gets a tile for every cue ----------------------------------------------------


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """make(name) → a film as phones and cameras make them, created on first use."""
    root = tmp_path_factory.mktemp("films")
    recipes: dict[str, Callable[[Path], Path]] = {
        # A short phone clip: a single keyframe in all.
        "one_keyframe.mp4": lambda p: lavfi_film(p, seconds=3, keyint=1000),
        # A keyframe every 8 s: 15 cues of 2 s, only 4 keyframes.
        "sparse_keyframes.mp4": lambda p: lavfi_film(p, seconds=30, keyint=240),
        # Variable frame rate (transcoded on import) with a keyframe every 5 s.
        "vfr.mp4": lambda p: lavfi_film(p, seconds=10, keyint=150, select=half_rate(4, 6)),
        "landscape.mp4": lambda p: lavfi_film(p, seconds=4, keyint=30),
        # Sound going on 8 s after the picture stopped (a camera that failed first).
        "long_sound.mp4": lambda p: lavfi_film(p, seconds=4, sound_seconds=12),
    }

    def make(name: str) -> Path:
        path = root / name
        if not path.exists():
            if name == "portrait.mp4":
                rotated(make("landscape.mp4"), path, 90)
            else:
                recipes[name](path)
        return path

    return make


def make_assets(catalog: Catalog, config: Config, src: Path) -> dict[str, Any]:
    """Import `src`, let the encode worker make its assets; the job's result."""
    import_video(catalog, src, actor="test")
    ended = EncodeWorker(catalog, config.encode).run_one()
    assert ended is not None and ended.kind == "assets"
    assert ended.status == "done", ended
    return ended.result or {}


def cue_tiles(result: dict[str, Any]) -> list[tuple[float, np.ndarray]]:
    """Each WebVTT cue's start and the grey pixels of the sprite tile it points at."""
    sprite = grey_frames(Path(result["sprite"]), *sprite_size(result))[0]
    cues = re.findall(r"(\d+):(\d+):(\d+\.\d+) --> \S+\n\S+#xywh=(\d+),(\d+),(\d+),(\d+)",
                      Path(result["vtt"]).read_text())
    tiles = []
    for h, m, s, x, y, w, hh in cues:
        x0, y0 = int(x), int(y)
        assert (int(w), int(hh)) == (THUMB_W, THUMB_H)
        tiles.append((int(h) * 3600 + int(m) * 60 + float(s),
                      sprite[y0:y0 + THUMB_H, x0:x0 + THUMB_W].astype(np.int16)))
    return tiles


def sprite_size(result: dict[str, Any]) -> tuple[int, int]:
    """The sprite's width and height as ffprobe reads them."""
    video = streams(Path(result["sprite"]))["video"]
    return int(video["width"]), int(video["height"])


@pytest.mark.parametrize("name, keyframes_only", [
    ("one_keyframe.mp4", False),
    ("sparse_keyframes.mp4", False),
    ("vfr.mp4", True),  # transcoded on import: a keyframe a second
    ("long_sound.mp4", False),
])
def test_every_cue_has_the_tile_of_its_moment(films: Callable[[str], Path], data_dir: Path,
                                              config: Config, name: str,
                                              keyframes_only: bool) -> None:
    with Catalog(data_dir) as catalog:
        result = make_assets(catalog, config, films(name))
        film = catalog.recordings.list()[0]
    assert film.path and film.fps and film.duration_s
    cues = math.ceil(film.duration_s / 2)  # a cue every 2 s, to the sound's end too
    assert result["thumbnails"] == cues >= {"one_keyframe.mp4": 2, "sparse_keyframes.mp4": 15,
                                            "vfr.mp4": 5, "long_sound.mp4": 6}[name]
    assert sprite_size(result) == (COLUMNS * THUMB_W, -(-cues // COLUMNS) * THUMB_H)
    tiles = cue_tiles(result)
    assert len(tiles) == cues
    frames = grey_frames(film.path, THUMB_W, THUMB_H, fit=True).astype(np.int16)
    # Decoding keyframes only, a tile may show the last keyframe before its cue, at most
    # a second early; decoding every frame, exactly the frame on screen at its start.
    early = round(film.fps) if keyframes_only else 0
    assert [start_s for start_s, tile in tiles if tile.mean() < 40] == [], "black tiles"
    last = len(frames) - 1  # on screen to the end of the sound
    for i, (start_s, tile) in enumerate(tiles):
        shown = min(last, int(start_s * film.fps + 1e-6))
        off = min(np.abs(tile - frames[n]).mean() for n in range(shown - early, shown + 1))
        assert off < 6, f"cue {i} ({start_s} s) shows another moment"
        before = min(last, int(tiles[i - 1][0] * film.fps + 1e-6))
        if i and before != shown:  # not the picture of the cue before
            assert np.abs(tile - frames[before]).mean() > off + 5
    assert result["keyframes_only"] is keyframes_only


def test_a_portrait_film_keeps_its_shape_in_the_tiles(films: Callable[[str], Path],
                                                     data_dir: Path, config: Config) -> None:
    with Catalog(data_dir) as catalog:
        result = make_assets(catalog, config, films("portrait.mp4"))
    for _, tile in cue_tiles(result):
        # 240x320 as shown, fitted into 160x90: 67 wide, black bars either side.
        assert tile[:, :40].mean() < 20 and tile[:, -40:].mean() < 20
        assert tile[:, 50:110].mean() > 40


def test_the_sprite_reads_keyframes_only_when_they_come_every_second(
        barcode_film: Path, data_dir: Path, config: Config) -> None:
    with Catalog(data_dir) as catalog:
        result = make_assets(catalog, config, barcode_film)
    assert result["keyframes_only"] is True  # the cheap way, for the box's own films
    assert all(tile.mean() > 40 for _, tile in cue_tiles(result))


def times(frames: list[float], keys: list[float]) -> PacketTimes:
    """PacketTimes of frames at `frames` with keyframes at `keys`."""
    return PacketTimes(tuple(frames), tuple(keys), 0)


def test_keyframes_dense() -> None:
    every_frame = [n / 30 for n in range(300)]
    assert keyframes_dense(times(every_frame, [n / 1 for n in range(10)]))
    assert keyframes_dense(times(every_frame, [n / 30 for n in range(0, 300, 29)]))
    assert not keyframes_dense(times(every_frame, [0.0]))             # one keyframe
    assert not keyframes_dense(times(every_frame, [0.0, 8.0]))        # 8 s apart
    assert not keyframes_dense(times(every_frame, [n / 1 for n in range(9)]))  # last 2 s
    assert not keyframes_dense(times(every_frame, [n + 0.5 for n in range(10)]))  # late start
    assert not keyframes_dense(times([], []))


def test_sprite_argv() -> None:
    argv = sprite_argv(Path("/rec/recording.mp4"), Path("/rec/.sprite.tmp.jpg"), 2.0, 15,
                       keyframes_only=False)
    assert argv[0] == "ffmpeg"
    assert "-skip_frame" not in argv  # every frame decoded: any keyframe interval works
    graph = argv[argv.index("-filter_complex") + 1]
    # Tile i is the frame on screen at 2i s; the last picture repeated past its end;
    # exactly 15 tiles, so none is left black.
    for part in ("fps=fps=1/2:round=up:start_time=0", "tpad=stop=15:stop_mode=clone",
                 "trim=end_frame=15", "tile=10x2"):
        assert part in graph
    assert graph.index("fps=") < graph.index("scale=")  # only the kept frames are scaled
    fast = sprite_argv(Path("/rec/recording.mp4"), Path("/rec/.sprite.tmp.jpg"), 2.0, 15,
                       keyframes_only=True)
    assert fast[fast.index("-skip_frame") + 1] == "nokey"
    assert fast.index("-skip_frame") < fast.index("-i")  # a decoder option of the input
