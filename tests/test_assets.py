"""Review assets: poster, thumbnail sprite with its WebVTT index, waveform peaks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from appliance.catalog import Catalog, Origin
from appliance.config import Config
from appliance.encode.assets import COLUMNS, THUMB_H, THUMB_W, sprite_vtt
from appliance.encode.worker import EncodeWorker
from appliance.errors import InputError
from appliance.media_import import import_video
from tests.conftest import SECONDS
from tests.media import streams


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
