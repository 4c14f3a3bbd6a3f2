"""Clips and stills cut from a film whose every frame carries its own index (a barcode)."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.capture.picture import BARCODE_BITS, CELL, read_frame_index
from appliance.catalog import Catalog, Job, MomentSource
from appliance.config import Config
from appliance.encode import argv as av
from appliance.encode.film import TITLE_S
from appliance.encode.worker import EncodeWorker
from appliance.errors import InputError, NotFoundError
from appliance.services import media
from appliance.services.app import App
from appliance.services.imports import import_file
from tests.conftest import FPS, HEIGHT, WIDTH
from tests.media import frame_indices, streams

ACTOR = "test"


class Maker:
    """The application layer's clip and still requests, and the encoder that runs them."""

    def __init__(self, app: App, rec_id: str) -> None:
        self.app = app
        self.rec_id = rec_id
        self.catalog = app.catalog
        self.config = app.config.encode
        self.jobs = app.catalog.jobs

    def with_encode(self, **changes: Any) -> Maker:
        encode = dataclasses.replace(self.config, **changes)
        return Maker(App(dataclasses.replace(self.app.config, encode=encode), self.catalog),
                     self.rec_id)

    def request_clip(self, rec_id: str, start: float, end: float, **kw: Any) -> Job:
        return media.request_clip(self.app, rec_id, start, end, actor=ACTOR, **kw)

    def request_still(self, rec_id: str, at: float) -> Job:
        return media.request_still(self.app, rec_id, at, actor=ACTOR)

    def run(self, job: Job) -> Job:
        return EncodeWorker(self.catalog, self.config).run_job(job)


@pytest.fixture
def maker(barcode_film: Path, data_dir: Path, config: Config) -> Any:
    catalog = Catalog(data_dir)
    app = App(config, catalog)
    rec = import_file(app, barcode_film, case=None, actor=ACTOR)
    yield Maker(app, rec.id)
    catalog.close()


def run(maker: Maker, job: Any) -> dict[str, Any]:
    claimed = maker.jobs.claim(job.id)
    assert claimed is not None
    done = maker.run(claimed)
    assert done.status == "done", done.error
    assert done.progress == 1.0
    assert done.result is not None
    return done.result


def test_frame_span_arithmetic() -> None:
    assert av.frame_span(1.0, 2.0, 30) == av.FrameSpan(30, 60, 30)
    assert av.frame_span(1.517, 3.251, 30) == av.FrameSpan(45, 98, 30)
    # A time exactly on a frame boundary starts that frame, even with float noise.
    assert av.frame_at(0.1 * 3, 10) == 3
    assert av.seek_time(30, 30) < 1.0 < av.seek_time(30, 30) + 1e-3


@pytest.mark.parametrize("start, end, first, last", [
    (1.0, 2.0, 30, 59),
    (1.517, 3.251, 45, 97),
    (0.0, 0.5, 0, 14),
    (11.2, 12.0, 336, 359),
])
def test_exact_clip_first_and_last_frame(maker: Any, start: float, end: float, first: int,
                                         last: int) -> None:
    result = run(maker, maker.request_clip(maker.rec_id, start, end, exact=True))
    path = Path(result["path"])
    assert frame_indices(path) == list(range(first, last + 1))
    assert result["exact"] is True
    assert result["real_start_s"] == pytest.approx(first / FPS)
    info = streams(path)
    assert info["audio"]["codec_name"] == "aac"
    assert float(info["audio"]["duration"]) == pytest.approx((last + 1 - first) / FPS,
                                                             abs=0.03)
    assert not list(path.parent.glob(".*")), "no temp files left"


def test_fast_clip_starts_at_the_keyframe_before(maker: Any) -> None:
    result = run(maker, maker.request_clip(maker.rec_id, 2.5, 4.0, exact=False))
    indices = frame_indices(Path(result["path"]))
    assert result["exact"] is False
    assert 2.5 - 1.0 <= result["real_start_s"] <= 2.5
    assert indices[0] == round(result["real_start_s"] * FPS)
    assert indices[0] <= 75 and indices[0] % FPS == 0
    assert indices[-1] >= 119


def test_still_is_the_exact_frame_at_full_resolution(maker: Any, tmp_path: Path) -> None:
    result = run(maker, maker.request_still(maker.rec_id, 2.345))
    assert result["frame"] == 70
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", result["path"], "-vf",
                          f"crop={BARCODE_BITS * CELL}:{CELL}:0:0,format=gray", "-f",
                          "rawvideo", "pipe:1"], capture_output=True, check=True,
                         timeout=30).stdout
    strip = np.frombuffer(raw, np.uint8).reshape(CELL, BARCODE_BITS * CELL)
    assert read_frame_index(strip) == 70
    info = streams(Path(result["path"]))
    assert (info["video"]["width"], info["video"]["height"]) == (WIDTH, HEIGHT)


def test_handles_and_caption(maker: Any) -> None:
    result = run(maker, maker.request_clip(maker.rec_id, 2.0, 3.0, exact=True, handles_s=0.5,
                                           caption="Receiving initiatives"))
    assert frame_indices(Path(result["path"])) == list(range(45, 105))
    assert result["caption"] == "Receiving initiatives"


@pytest.mark.parametrize("start, end, message", [
    (3.0, 2.0, "must be after start"),
    (2.0, 2.0, "must be after start"),
    (-1.0, 2.0, "before the recording begins"),
    (5.0, 13.0, "past the end"),
    (0.0, float("nan"), "numbers"),
])
def test_bad_in_and_out_points_are_refused(maker: Any, start: float, end: float,
                                           message: str) -> None:
    with pytest.raises(InputError, match=message):
        maker.request_clip(maker.rec_id, start, end, exact=True)
    assert maker.jobs.list() == []  # nothing queued (assets are queued by the worker)


def test_too_long_unknown_and_bad_still(maker: Any) -> None:
    limited = maker.with_encode(max_clip_s=5.0)
    with pytest.raises(InputError, match="at most 5 s"):
        limited.request_clip(maker.rec_id, 0.0, 6.0, exact=True)
    with pytest.raises(NotFoundError):
        maker.request_clip("20260101-000000-0000", 0.0, 1.0, exact=True)
    with pytest.raises(InputError, match="not inside"):
        maker.request_still(maker.rec_id, 12.5)
    with pytest.raises(InputError, match="handles"):
        maker.request_clip(maker.rec_id, 1.0, 2.0, exact=True, handles_s=99)


@pytest.mark.slow
def test_cancelled_job_leaves_nothing_behind(maker: Any) -> None:
    slow = maker.with_encode(preset="medium")
    job = slow.request_clip(maker.rec_id, 0.0, 12.0, exact=True)
    claimed = slow.jobs.claim(job.id)
    outcome: list[Any] = []
    runner = threading.Thread(target=lambda: outcome.append(slow.run(claimed)))
    runner.start()
    deadline = time.monotonic() + 30
    while slow.jobs.get(job.id).progress == 0 and runner.is_alive():
        assert time.monotonic() < deadline, "no progress reported"
        time.sleep(0.05)
    assert 0 < slow.jobs.get(job.id).progress < 1, "the job finished before it was cancelled"
    slow.jobs.cancel(job.id, actor=ACTOR)
    runner.join(30)
    [ended] = outcome
    assert ended.status == "cancelled"
    clips = maker.catalog.layout.clips_dir(maker.rec_id)
    assert list(clips.iterdir()) == []
    assert maker.catalog.media.clip(str(job.subject)).status == "cancelled"
    assert slow.jobs.cancel_requested(job.id)


def test_cli_clip_still_and_jobs(maker: Any, vigbox: Any) -> None:
    clip = vigbox("clip", maker.rec_id, "--start", "1", "--end", "2", "--exact", "--json")
    assert clip.returncode == 0, clip.stderr
    doc = clip.json()
    assert {"id", "path", "start_s", "end_s", "exact", "duration_s"} <= set(doc)
    assert doc["duration_s"] == pytest.approx(1.0, abs=0.01)
    still = vigbox("still", maker.rec_id, "--at", "1.5", "--json").json()
    assert {"id", "path", "at_s"} <= set(still) and still["at_s"] == 1.5
    jobs = vigbox("jobs", "--json").json()
    mine = [j for j in jobs if j["kind"] in ("clip", "still")]
    assert [(j["kind"], j["status"], j["progress"]) for j in mine] == [
        ("still", "done", 100.0), ("clip", "done", 100.0)]
    assert [j["kind"] for j in jobs if j not in mine] == []
    bad = vigbox("clip", maker.rec_id, "--start", "2", "--end", "1", "--json")
    assert bad.returncode == 1 and bad.stdout == ""
    assert "must be after start" in bad.error_line()


def test_worker_runs_queued_jobs_and_takes_back_abandoned_ones(maker: Any) -> None:
    from appliance.encode.worker import EncodeWorker

    first = maker.request_still(maker.rec_id, 1.0)
    second = maker.request_still(maker.rec_id, 2.0)
    # A worker that died mid-job left `second` running: its lease is from another boot.
    with maker.catalog.db.transaction() as db:
        db.execute("UPDATE jobs SET status='running', owner='x', lease_boot='another boot',"
                   " lease_until=1e12, attempts=1 WHERE id=?", (second.id,))
    worker = EncodeWorker(maker.catalog, maker.config)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"poll_s": 0.05})
    thread.start()
    try:
        deadline = time.monotonic() + 60
        # The assets job the worker queues itself runs last: stopping before it is claimed
        # would leave it queued.
        while ({maker.jobs.get(j.id).status for j in (first, second)} != {"done"}
               or maker.catalog.assets.get(maker.rec_id).status != "ready"):
            assert time.monotonic() < deadline, [maker.jobs.get(j.id) for j in (first, second)]
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert maker.jobs.get(second.id).result["frame"] == 60
    assert maker.jobs.get(second.id).attempts == 2
    # The worker also found the imported film without review assets and made them.
    assert maker.catalog.assets.get(maker.rec_id).status == "ready"


def test_review_film_joins_clips_in_order_with_titles(maker: Any, vigbox: Any) -> None:
    first = run(maker, maker.request_clip(maker.rec_id, 6.0, 7.0, exact=True))
    second = run(maker, maker.request_clip(maker.rec_id, 1.0, 2.5, exact=True,
                                           caption="Being attentive"))
    plain = vigbox("film", second["id"], first["id"], "--json")
    assert plain.returncode == 0, plain.stderr
    doc = plain.json()
    assert {"id", "path", "duration_s"} <= set(doc)
    assert doc["duration_s"] == pytest.approx(2.5, abs=0.05)
    indices = frame_indices(Path(doc["path"]))
    assert indices == list(range(30, 75)) + list(range(180, 210)), "clip order and frames"

    titled = vigbox("film", first["id"], second["id"], "--titles", "--json").json()
    assert titled["duration_s"] == pytest.approx(2.5 + 2 * TITLE_S, abs=0.1)
    info = streams(Path(titled["path"]))
    assert info["audio"]["codec_name"] == "aac" and info["video"]["codec_name"] == "h264"

    for bad, message in ((["clip-00000000"], "no clip"), ([], "")):
        result = vigbox("film", *bad, "--json")
        assert result.returncode in (1, 2) and result.stdout == ""
        assert message in result.stderr


def test_marked_moments_become_suggested_clips(maker: Any, vigbox: Any) -> None:
    moment = maker.catalog.moments.add(maker.rec_id, 10.0, source=MomentSource.BUTTON,
                                       actor=ACTOR).id
    early = maker.catalog.moments.add(maker.rec_id, 3.0, source=MomentSource.BUTTON,
                                      actor=ACTOR).id
    suggestions = vigbox("suggestions", maker.rec_id, "--json").json()
    assert [(s["moment_id"], s["start_s"], s["end_s"]) for s in suggestions] == [
        (early, 0.0, 5.0), (moment, 2.0, 12.0)]
    clip = vigbox("clip", maker.rec_id, "--moment", str(moment), "--exact", "--json").json()
    assert (clip["start_s"], clip["end_s"]) == (2.0, 12.0)
    assert frame_indices(Path(clip["path"]))[0] == 60
    both = vigbox("clip", maker.rec_id, "--moment", str(moment), "--start", "1", "--json")
    assert both.returncode == 1 and "not both" in both.stderr


def test_a_failed_job_keeps_a_readable_reason(maker: Any) -> None:
    job = maker.request_clip(maker.rec_id, 1.0, 2.0, exact=True)
    film = maker.catalog.recordings.get(maker.rec_id).path
    film.rename(film.with_name("moved.mp4"))
    ended = maker.run(maker.jobs.claim(job.id))
    assert ended.status == "failed"
    assert "is missing" in ended.error
    assert maker.catalog.media.clip(str(job.subject)).status == "failed"


def test_cli_cancels_a_queued_job(maker: Any, vigbox: Any) -> None:
    job = maker.request_still(maker.rec_id, 1.0)
    cancelled = vigbox("jobs", "--cancel", str(job.id), "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.json()["status"] == "cancelled"
    again = vigbox("jobs", "--cancel", str(job.id))
    assert again.returncode == 1 and "already cancelled" in again.error_line()
    assert vigbox("jobs", "--cancel", "999").returncode == 1
    assert maker.jobs.claim(job.id) is None, "a cancelled job is never run"
    assert maker.catalog.media.still(str(job.subject)).status == "cancelled"


def _bottom_band(path: Path) -> np.ndarray:
    """The first frame's lower quarter as grey pixels (where captions are drawn)."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-vf",
                          f"crop={WIDTH}:{HEIGHT // 4}:0:{HEIGHT * 3 // 4},format=gray", "-f",
                          "rawvideo", "pipe:1"], capture_output=True, check=True,
                         timeout=30).stdout
    return np.frombuffer(raw, np.uint8).astype(np.int16)


@pytest.mark.parametrize("caption", ["Mum smiles 100% of the time", "%{pts} and a \\ too",
                                     "Receiving initiatives"])
def test_a_caption_is_drawn_whatever_characters_it_holds(maker: Any, caption: str) -> None:
    plain = run(maker, maker.request_clip(maker.rec_id, 1.0, 1.5, exact=True))
    captioned = run(maker, maker.request_clip(maker.rec_id, 1.0, 1.5, exact=True,
                                              caption=caption))
    changed = np.abs(_bottom_band(Path(captioned["path"])) - _bottom_band(Path(plain["path"])))
    # The caption's box and letters change a good part of the band; without them only
    # encoding noise differs.
    assert (changed > 40).mean() > 0.02, f"no caption drawn for {caption!r}"


def test_a_fast_clip_cannot_carry_a_caption(maker: Any, vigbox: Any) -> None:
    with pytest.raises(InputError, match="needs a frame-exact clip"):
        maker.request_clip(maker.rec_id, 1.0, 2.0, exact=False, caption="Guiding")
    result = vigbox("clip", maker.rec_id, "--start", "1", "--end", "2", "--caption", "Guiding")
    assert result.returncode == 1 and "needs a frame-exact clip" in result.error_line()
    assert maker.jobs.list() == []
