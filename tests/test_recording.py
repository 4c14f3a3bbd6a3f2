"""Simulated recordings end to end: real ffmpeg encoder, journal, finalize, sync markers."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.capture.camera_synthetic import SyntheticCamera
from appliance.capture.devices import new_marker
from appliance.capture.finalize import moov_reserve, mux_argv
from appliance.capture.mic_synthetic import SyntheticMicrophone
from appliance.capture.session import Event, Session
from appliance.capture.sync_check import measure_sync
from appliance.catalog import Catalog, Recording
from appliance.config import Config
from appliance.errors import BusyError
from tests.media import frame_indices, gaps, streams, top_level_boxes

FRAME_MS = 1000 / 30


@dataclasses.dataclass
class Rig:
    """A session's parts: catalog, config, camera and microphone, all real."""

    catalog: Catalog
    config: Config
    camera: SyntheticCamera
    mic: SyntheticMicrophone | None

    def session(self, **kwargs: object) -> Session:
        return Session(catalog=self.catalog, config=self.config, camera=self.camera,
                       mic=self.mic, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def make_rig(config: Config) -> Iterator[object]:
    """Build a Rig (options: drift_ppm, mic_fail_after_s, camera_fail_after_s, no_mic)."""
    opened: list[Rig] = []

    def make(*, drift_ppm: float = 0.0, mic_fail_after_s: float | None = None,
             camera_fail_after_s: float | None = None, no_mic: bool = False,
             cfg: Config | None = None) -> Rig:
        cfg = cfg or config
        marker = new_marker()
        camera = SyntheticCamera(width=1280, height=720, fps=30, bitrate=6_000_000,
                                 keyframe_interval_s=1.0, marker=marker,
                                 fail_after_s=camera_fail_after_s)
        mic = None if no_mic else SyntheticMicrophone(
            sample_rate=48_000, block_ms=20, marker=marker, drift_ppm=drift_ppm,
            fail_after_s=mic_fail_after_s)
        camera.open()
        rig = Rig(Catalog(cfg.data_path), cfg, camera, mic)
        opened.append(rig)
        return rig

    yield make
    for rig in opened:
        rig.camera.close()
        if rig.mic is not None:
            rig.mic.stop()
        rig.catalog.close()


def record_for(session: Session, seconds: float) -> Recording:
    """Start, wait until `seconds` of frames have been captured, stop."""
    session.start()
    deadline = time.monotonic() + seconds + 10
    while time.monotonic() < deadline and session.running:
        first = session.first_pts_ns
        if first is not None and time.monotonic_ns() - first >= seconds * 1e9:
            break
        time.sleep(0.02)  # polling a condition with a deadline, not hoping
    return session.stop()


def test_mux_argv_is_a_remux_into_faststart_mp4(tmp_path: Path) -> None:
    argv = mux_argv(tmp_path / "v.h264", tmp_path / "a.wav", 30, tmp_path / "out.mp4")
    assert argv[0] == "ffmpeg"
    assert argv[argv.index("-vcodec") + 1] == "copy"
    assert argv[argv.index("-acodec") + 1] == "aac"
    assert argv[argv.index("-movflags") + 1] == "+faststart"
    one_pass = mux_argv(tmp_path / "v.h264", None, 30, tmp_path / "out.mp4", moov_size=90_000)
    assert one_pass[one_pass.index("-moov_size") + 1] == "90000"
    assert "-movflags" not in one_pass and "-acodec" not in one_pass
    assert moov_reserve(18_000, 30, 48_000) > 13 * (18_000 + 28_125)
    assert argv[argv.index("-r") + 1] == "30"
    assert argv[argv.index("-video_track_timescale") + 1] == "30000"
    assert argv.index(str(tmp_path / "out.mp4")) > argv.index(str(tmp_path / "a.wav"))
    assert "-nostdin" in argv


@pytest.mark.slow
def test_simulated_recording_is_complete_and_in_sync(make_rig, caplog) -> None:  # type: ignore[no-untyped-def]
    # 300 ppm of mic drift is worse than any real USB mic: finalizing must correct it.
    rig = make_rig(drift_ppm=300.0)
    events: list[Event] = []
    with caplog.at_level(logging.WARNING):
        rec = record_for(rig.session(on_event=events.append), 11.0)
    # The audio was encoded while recording (finalize only copied it).
    assert not [r for r in caplog.records if "live audio" in r.getMessage()]

    assert rec.status == "ready", rec.problems
    assert rec.problems == []
    assert rec.path is not None and rec.path.name == "recording.mp4"
    assert rec.duration_s == pytest.approx(11.0, abs=0.15)
    assert rec.dropped_frames == 0
    assert events == [Event.RECORDING, Event.FINALIZING, Event.READY]
    # Only the MP4 and its metadata remain: the raw journal went once the MP4 was verified.
    assert sorted(p.name for p in rec.dir.iterdir()) == [".lock", "meta.json", "recording.mp4"]

    info = streams(rec.path)
    assert info["video"]["codec_name"] == "h264"
    assert info["video"]["avg_frame_rate"] == "30/1"
    assert int(info["video"]["nb_read_packets"]) == rec.video_frames
    assert info["audio"]["codec_name"] == "aac"
    assert float(info["audio"]["duration"]) == pytest.approx(rec.duration_s, abs=0.05)
    boxes = top_level_boxes(rec.path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes

    indices = frame_indices(rec.path)
    assert len(indices) == rec.video_frames
    assert gaps(indices) == [], "frames missing from the capture grid"

    sync = measure_sync(rec.path)
    assert len(sync.white_frames) >= 2
    assert len(sync.offsets_ms) == len(sync.white_frames)
    assert max(abs(o) for o in sync.offsets_ms) < FRAME_MS / 2, sync.offsets_ms
    assert sync.dropped_frames == 0


@pytest.mark.slow
def test_mic_failing_mid_recording_keeps_the_recording(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig(mic_fail_after_s=1.5)
    events: list[Event] = []
    rec = record_for(rig.session(on_event=events.append), 4.0)

    assert rec.status == "ready"
    assert rec.audio == "partial"
    assert rec.duration_s == pytest.approx(4.0, abs=0.15)
    assert Event.WARNING in events  # the LED tells the guider while still recording
    assert len(rec.problems) == 1 and "microphone failed at" in rec.problems[0]
    assert "the rest has no sound" in rec.problems[0]
    info = streams(rec.path)  # type: ignore[arg-type]
    assert "audio" in info, "the sound recorded before the failure is kept"
    assert gaps(frame_indices(rec.path)) == []  # type: ignore[arg-type]


@pytest.mark.slow
def test_camera_failing_mid_recording_keeps_what_was_recorded(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig(camera_fail_after_s=2.0)
    session = rig.session()
    session.start()
    rec = session.wait(timeout=20)  # it ends by itself: no stop() needed, nothing hangs

    assert rec.status == "ready"
    assert rec.duration_s == pytest.approx(2.0, abs=0.3)
    assert any(p.startswith("camera failed") for p in rec.problems), rec.problems
    assert streams(rec.path)["video"]["codec_name"] == "h264"  # type: ignore[arg-type]


@pytest.mark.slow
def test_recording_stops_itself_at_the_limit_and_warns_before(make_rig, config: Config) -> None:  # type: ignore[no-untyped-def]
    cfg = dataclasses.replace(config, recording=dataclasses.replace(
        config.recording, max_seconds=3, warn_before_end_s=1))
    rig = make_rig(cfg=cfg)
    events: list[Event] = []
    warned_at: list[float] = []
    started = time.monotonic()

    def on_event(e: Event) -> None:
        events.append(e)
        if e is Event.WARNING:
            warned_at.append(time.monotonic() - started)

    session = rig.session(on_event=on_event)
    session.start()
    rec = session.wait(timeout=20)
    assert rec.status == "ready"
    assert rec.duration_s == pytest.approx(3.0, abs=0.2)
    assert events == [Event.RECORDING, Event.WARNING, Event.FINALIZING, Event.READY]
    assert 1.5 < warned_at[0] < 2.8


@pytest.mark.slow
def test_marks_are_stored_at_the_press_time(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig()
    session = rig.session()
    session.start()
    while session.first_pts_ns is None:
        time.sleep(0.01)
    first = session.first_pts_ns
    # The press happened 1.25 s into the film, though the mark is stored later.
    moment = session.mark(first + 1_250_000_000, source="button")
    rec = session.stop()
    assert moment["at_s"] == pytest.approx(1.25, abs=0.001)
    moments = rig.catalog.moments.list(rec.id)
    assert [(m.at_s, m.source) for m in moments] == [(1.25, "button")]
    with pytest.raises(BusyError):
        session.mark()


@pytest.mark.slow
def test_video_only_box_records_without_audio(make_rig, config: Config) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig(no_mic=True)
    rec = record_for(rig.session(), 2.0)
    assert rec.status == "ready" and rec.audio == "none"
    assert "audio" not in streams(rec.path)  # type: ignore[arg-type]


def test_stop_from_another_thread_while_starting_never_hangs(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig()
    session = rig.session()
    session.start()
    stopper = threading.Thread(target=session.request_stop, args=("test",))
    stopper.start()
    stopper.join(5)
    rec = session.wait(timeout=30)
    assert rec.status in ("ready", "failed")
    assert not session.running


@pytest.mark.slow
def test_index_space_too_small_falls_back_to_a_faststart_rewrite(
        make_rig, monkeypatch: pytest.MonkeyPatch, caplog) -> None:  # type: ignore[no-untyped-def]
    from appliance.capture import finalize as finalize_module
    monkeypatch.setattr(finalize_module, "moov_reserve", lambda *args: 1024)
    rig = make_rig()
    with caplog.at_level(logging.WARNING):
        rec = record_for(rig.session(), 2.0)
    assert rec.status == "ready"
    assert any("rewriting with +faststart" in r.getMessage() for r in caplog.records)
    boxes = top_level_boxes(rec.path)  # type: ignore[arg-type]
    assert boxes.index("moov") < boxes.index("mdat"), boxes


@pytest.mark.parametrize("journal_survives", [True, False])
def test_a_finished_film_the_catalog_could_not_mark_ready_is_recovered(
        make_rig: Any, monkeypatch: pytest.MonkeyPatch, journal_survives: bool) -> None:
    """Finalize, commit 'ready', then remove the journal: if the commit fails, the film
    is not lost to a `failed` row; recovery finishes it from the journal or adopts the
    whole MP4."""
    from appliance.capture.recover import recover_all
    from appliance.errors import CatalogError

    rig = make_rig()
    real_update = rig.catalog.recordings.update
    refused: list[str] = []

    def update(rec_id: str, **fields: Any) -> Recording:
        if fields.get("status") == "ready":
            refused.append(rec_id)  # e.g. the catalog stayed locked or the disk failed
            raise CatalogError("the catalog at test cannot be written")
        return real_update(rec_id, **fields)

    monkeypatch.setattr(rig.catalog.recordings, "update", update)
    monkeypatch.setattr("appliance.capture.session.time.sleep", lambda s: None)
    rec = record_for(rig.session(), 1.5)
    assert len(refused) == 3, "the ready commit is retried"
    assert rec.status == "failed"
    assert (rec.dir / "video.h264").exists(), "the journal is kept until 'ready' is committed"
    film = rec.dir / "recording.mp4"
    assert film.exists()
    monkeypatch.setattr(rig.catalog.recordings, "update", real_update)
    if not journal_survives:  # as if removed before: the whole MP4 alone must do
        from appliance.capture.journal import remove_journal
        remove_journal(rec.dir)
    [outcome] = recover_all(rig.catalog, default_fps=30, default_sample_rate=48_000)
    assert outcome.action == "recovered", outcome.detail
    fixed = rig.catalog.recordings.get(rec.id)
    assert fixed.status == "recovered" and fixed.path == film
    assert fixed.duration_s is not None and fixed.duration_s >= 1.0
    assert fixed.video_frames is not None and abs(fixed.video_frames - fixed.duration_s * 30) <= 1
    assert not (rec.dir / "video.h264").exists()
