"""The tablet's JSON API: recordings, moments, cases, tags, clips, stills, jobs, imports,
the recorder; bad input gets a clear 4xx, never a 500."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from appliance.catalog import JobStatus
from appliance.config import Config
from appliance.probe import probe
from appliance.services import media as media_service
from appliance.services.app import App
from appliance.services.imports import import_file
from appliance.web.openapi import document
from tests.web_support import Tablet, running_daemon, wait_until


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.get_data())
    assert response.is_json
    message = response.get_json()["error"]
    assert isinstance(message, str) and message
    return message


def test_recordings_list_gives_media_urls(admin: Tablet, film: str) -> None:
    listed = admin.get("/api/recordings").get_json()
    assert [r["id"] for r in listed] == [film]
    rec = listed[0]
    assert rec["media_url"] == f"/media/recording/{film}"
    assert rec["review_url"] == f"/review/{film}" and rec["kind"] == "interaction"
    assert "path" not in rec, "file paths on the box stay on the box"
    detail = admin.get(f"/api/recordings/{film}").get_json()
    assert detail["assets"]["status"] == "ready"
    for kind in ("poster", "sprite", "thumbs", "waveform"):
        assert detail["assets"][kind] == f"/media/{kind}/{film}"
    assert detail["moments"] == [] and detail["clips"] == [] and detail["stills"] == []
    review = admin.get(detail["review_url"])
    assert review.status_code == 200 and f'data-rec-id="{film}"' in review.get_data(True)
    home = admin.get("/").get_data(as_text=True)
    assert 'src="/static/home.js"' in home


def test_unknown_recording_is_404(admin: Tablet) -> None:
    assert "no recording" in error_of(admin.get("/api/recordings/nope"), 404)
    assert admin.get("/review/nope").status_code == 404
    error_of(admin.post("/api/recordings/nope/moments", {"at_s": 1}), 404)
    error_of(admin.post("/api/recordings/../../etc/clips", {"start_s": 0, "end_s": 1}), 404)


def test_moment_with_tag_and_note(admin: Tablet, film: str, app: App) -> None:
    tags = [t["label"] for t in admin.get("/api/tags").get_json()]
    assert tags == ["Being attentive", "Encouraging initiatives", "Receiving initiatives",
                    "Developing attuned interactions", "Guiding", "Deepening discussion"]
    made = admin.post(f"/api/recordings/{film}/moments",
                      {"at_s": 1.0, "end_s": 3.0, "tag": "Receiving initiatives",
                       "note": "<b>she</b> waits for him"})
    assert made.status_code == 201
    moment = made.get_json()
    assert moment["source"] == "ui" and moment["tag"] == "Receiving initiatives"
    assert moment["note"] == "<b>she</b> waits for him"  # stored as typed, drawn as text
    changed = admin.call("PATCH", f"/api/recordings/{film}/moments/{moment['id']}",
                         {"tag": "Guiding", "end_s": 4.0}).get_json()
    assert changed["tag"] == "Guiding" and changed["end_s"] == 4.0
    assert changed["note"] == moment["note"]
    entries = [e for e in app.catalog.audit.entries() if e.action.startswith("moment.")]
    assert [e.actor for e in entries] == ["admin", "admin"]
    assert all("waits" not in str(e.detail) for e in entries), "notes stay out of the audit"
    assert admin.call("DELETE", f"/api/recordings/{film}/moments/{moment['id']}") \
        .status_code == 200
    assert admin.get(f"/api/recordings/{film}/moments").get_json() == []


@pytest.mark.parametrize("body, words", [
    ({"at_s": -1}, "time in the recording"),
    ({"at_s": 99}, "after the film's end"),
    ({"at_s": 2, "end_s": 1}, "must come after"),
    ({"at_s": "soon"}, "must be a number"),
    ({"at_s": 1, "tag": "Made up"}, "unknown tag"),
    ({"at_s": 1, "note": "x" * 2001}, "at most 2000"),
    ({"at_s": 1, "colour": "red"}, "unknown field"),
    ({}, "'at_s' is required"),
    ([1, 2], "JSON object"),
])
def test_bad_moments_are_refused_clearly(admin: Tablet, film: str, body: Any,
                                         words: str) -> None:
    assert words in error_of(admin.post(f"/api/recordings/{film}/moments", body), 400)


def test_malformed_and_oversized_bodies(admin: Tablet, film: str) -> None:
    url = f"/api/recordings/{film}/moments"
    broken = admin.call("POST", url, data=b"{not json", content_type="application/json")
    assert "JSON object" in error_of(broken, 400)
    text = admin.call("POST", url, data=b"at_s=1", content_type="text/plain")
    assert "application/json" in error_of(text, 400)
    huge = admin.post(url, {"at_s": 1, "note": "x" * 70_000})
    assert "too large" in error_of(huge, 400)


def test_exact_clip_and_still_from_the_api(admin: Tablet, film: str, app: App) -> None:
    job = admin.post(f"/api/recordings/{film}/clips",
                     {"start_s": 1.0, "end_s": 2.0, "exact": True})
    assert job.status_code == 202
    job_id = job.get_json()["id"]
    still = admin.post(f"/api/recordings/{film}/stills", {"at_s": (45 + 0.5) / 30})
    assert still.status_code == 202
    assert admin.get(f"/api/jobs/{job_id}").get_json()["status"] == "queued"
    media_service.run_queued(app)
    done = admin.get(f"/api/jobs/{job_id}").get_json()
    assert done["status"] == "done" and done["progress"] == 100
    assert "path" not in done["result"]
    detail = admin.get(f"/api/recordings/{film}").get_json()
    [clip] = detail["clips"]
    assert clip["status"] == "ready" and clip["url"] == f"/media/clip/{clip['id']}"
    clip_file = app.catalog.media.clip(clip["id"]).path
    assert clip_file is not None
    info = probe(clip_file, count_packets=True)
    assert info.video is not None and info.video.packets == 30
    [still_row] = detail["stills"]
    assert still_row["frame"] == 45 and still_row["url"].startswith("/media/still/")
    views = admin.get(clip["url"])
    views.close()
    assert views.status_code == 200 and views.mimetype == "video/mp4"
    actions = [(e.action, e.actor) for e in app.catalog.audit.entries()]
    assert ("view.clip", "admin") in actions
    renders = [a for a in actions if a[0].endswith(".queued") and a[0] != "job.assets.queued"]
    assert renders == [("job.clip.queued", "admin"), ("job.still.queued", "admin")], actions


@pytest.mark.parametrize("body, words", [
    ({"start_s": 5, "end_s": 4, "exact": True}, "must be after"),
    ({"start_s": -1, "end_s": 4}, "before the recording begins"),
    ({"start_s": 1, "end_s": 50, "exact": True}, "past the end"),
    ({"start_s": 1, "end_s": 2, "exact": "yes"}, "true or false"),
    ({"start_s": 1, "end_s": 2, "caption": "hi"}, "frame-exact"),
    ({"start_s": 1}, "'end_s' is required"),
])
def test_bad_clips_are_refused_clearly(admin: Tablet, film: str, body: Any,
                                       words: str) -> None:
    assert words in error_of(admin.post(f"/api/recordings/{film}/clips", body), 400)


def test_still_outside_the_film(admin: Tablet, film: str) -> None:
    assert "not inside" in error_of(admin.post(f"/api/recordings/{film}/stills",
                                               {"at_s": 12.5}), 400)


def test_unknown_job(admin: Tablet) -> None:
    error_of(admin.get("/api/jobs/12345"), 404)
    error_of(admin.post("/api/jobs/12345/cancel", {}), 404)


def test_cases_and_consent(admin: Tablet, app: App) -> None:
    made = admin.post("/api/cases", {"code": "FAM-0142", "scopes": ["filming"],
                                     "date": "2026-01-05"})
    assert made.status_code == 201
    assert made.get_json()["consent"]["filming"] == "2026-01-05"
    assert "already" in error_of(admin.post("/api/cases", {"code": "FAM-0142"}), 400)
    assert "future" in error_of(admin.post("/api/cases", {"code": "FAM-2", "scopes": [],
                                                          "date": "2999-01-01"}), 400)
    error_of(admin.post("/api/cases", {"code": "<b>x</b>"}), 400)
    error_of(admin.post("/api/cases", {"code": "FAM-3", "scopes": ["everything"]}), 400)
    changed = admin.post("/api/cases/FAM-0142/consent", {"give": ["supervision"],
                                                          "withdraw": ["filming"]})
    consent = changed.get_json()["consent"]
    assert consent.get("filming") is None and consent["supervision"]
    error_of(admin.post("/api/cases/NOPE/consent", {"give": ["filming"]}), 404)
    assert [c["code"] for c in admin.get("/api/cases").get_json()] == ["FAM-0142"]


def test_giving_a_recording_its_case_later(admin: Tablet, film: str, app: App) -> None:
    admin.post("/api/cases", {"code": "FAM-1", "scopes": ["filming"]})
    admin.post("/api/cases", {"code": "FAM-2", "scopes": ["supervision"]})
    assert "no consent to filming" in error_of(
        admin.post(f"/api/recordings/{film}/case", {"case": "FAM-2"}), 400)
    error_of(admin.post(f"/api/recordings/{film}/case", {"case": "FAM-9"}), 404)
    done = admin.post(f"/api/recordings/{film}/case", {"case": "FAM-1"})
    assert done.status_code == 200 and done.get_json()["case"] == "FAM-1"
    [entry] = [e for e in app.catalog.audit.entries() if e.action == "recording.case"]
    assert entry.actor == "admin" and entry.detail == {"from": None, "to": "FAM-1"}


def test_tag_scheme_is_edited_by_the_administrator(admin: Tablet, film: str) -> None:
    added = admin.post("/api/tags", {"label": "Shared joy"}).get_json()
    admin.post(f"/api/recordings/{film}/moments", {"at_s": 1, "tag": "Shared joy"})
    renamed = admin.call("PATCH", f"/api/tags/{added['id']}", {"label": "Joy shared"})
    assert renamed.get_json()["label"] == "Joy shared"
    retired = admin.call("PATCH", f"/api/tags/{added['id']}", {"retired": True}).get_json()
    assert retired["retired"]
    [moment] = admin.get(f"/api/recordings/{film}/moments").get_json()
    assert moment["tag"] == "Joy shared", "moments keep a retired tag"
    assert "unknown tag" in error_of(admin.post(f"/api/recordings/{film}/moments",
                                                {"at_s": 2, "tag": "Joy shared"}), 400)
    error_of(admin.call("PATCH", "/api/tags/999", {"label": "x"}), 404)
    error_of(admin.post("/api/tags", {"label": "Guiding"}), 400)


def test_recorder_not_running_is_503_in_words(admin: Tablet) -> None:
    status = admin.get("/api/status").get_json()
    assert status["state"] == "offline" and "not running" in status["last_error"]
    assert status["free_minutes"] > 0
    for url in ("/api/record/start", "/api/record/stop", "/api/record/mark"):
        assert "not running" in error_of(admin.post(url, {}), 503)
    assert "not running" in error_of(admin.get("/api/live.jpg"), 503)


@pytest.mark.slow
def test_record_mark_and_stop_through_the_daemon(admin: Tablet, config: Config,
                                                 app: App) -> None:
    admin.post("/api/cases", {"code": "FAM-7", "scopes": ["filming"]})
    admin.post("/api/cases", {"code": "FAM-8", "scopes": ["training"]})
    with running_daemon(config):
        wait_until(lambda: admin.get("/api/status").get_json()["state"] == "ready",
                   "the box to be ready")
        assert "FAM-7" in admin.get("/api/status").get_json()["cases"]
        assert "consent" in error_of(admin.post("/api/record/start", {"case": "FAM-8"}), 400)
        started = admin.post("/api/record/start", {"case": "FAM-7"})
        assert started.status_code == 200, started.get_data()
        assert "already" in error_of(admin.post("/api/record/start", {}), 409)
        wait_until(lambda: (admin.get("/api/status").get_json().get("recording") or {})
                   .get("frames", 0) > 30, "a second of recording")
        assert admin.post("/api/record/mark", {}).status_code == 200
        live = admin.get("/api/live.jpg")
        assert live.status_code == 200 and live.mimetype == "image/jpeg"
        assert live.data[:2] == b"\xff\xd8"
        stopped = admin.post("/api/record/stop", {}).get_json()["recording"]
    rec = app.catalog.recordings.get(stopped["id"])
    assert rec.case == "FAM-7" and rec.status == "ready"
    [moment] = app.catalog.moments.list(rec.id)
    assert moment.source == "control"
    # The audit log names the account that pressed Record and Mark on the tablet.
    actors = {(e.action, e.actor) for e in app.catalog.audit.entries() if e.subject == rec.id}
    assert ("recording.recording", "admin") in actors and ("moment.add", "admin") in actors


def test_upload_import(admin: Tablet, barcode_film: Path, app: App) -> None:
    data = barcode_film.read_bytes()
    made = admin.post("/api/imports", None, data=data, headers={"X-Filename": "phone.mp4"},
                      content_type="application/octet-stream")
    assert made.status_code == 201, made.get_data()
    rec = made.get_json()
    assert rec["media_url"] and rec["review_url"] == f"/review/{rec['id']}"
    assert app.catalog.recordings.get(rec["id"]).origin == "import"
    leftovers = list((app.layout.root / "uploads").glob("*"))
    assert leftovers == [], "the upload's temp file is gone"
    assert "empty" in error_of(admin.post("/api/imports", None, data=b"",
                                          content_type="application/octet-stream"), 400)
    garbage = admin.post("/api/imports", None, data=b"\x00" * 5000,
                         content_type="application/octet-stream")
    assert 400 <= garbage.status_code < 500 and garbage.is_json
    assert list((app.layout.root / "uploads").glob("*")) == []
    assert len(app.catalog.recordings.list()) == 1


def test_openapi_describes_every_api_route(admin: Tablet, flask_app: Flask) -> None:
    doc = admin.get("/api/openapi.json").get_json()
    assert doc == document() and doc["openapi"].startswith("3.")
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    import re
    for rule in flask_app.url_map.iter_rules():
        if not str(rule).startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", str(rule))
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in described, (path, method)
    assert len(described) == sum(1 for r in flask_app.url_map.iter_rules()
                                 if str(r).startswith("/api/")
                                 for _ in (r.methods or set()) - {"HEAD", "OPTIONS"})


def test_job_cancel_through_the_api(admin: Tablet, film: str, app: App) -> None:
    job = admin.post(f"/api/recordings/{film}/clips", {"start_s": 0, "end_s": 5,
                                                       "exact": True}).get_json()
    cancelled = admin.post(f"/api/jobs/{job['id']}/cancel", {}).get_json()
    assert cancelled["status"] == "cancelled"
    assert app.catalog.jobs.get(job["id"]).status is JobStatus.CANCELLED
    [clip] = admin.get(f"/api/recordings/{film}").get_json()["clips"]
    assert clip["status"] == "cancelled" and clip["url"] is None


@pytest.mark.parametrize("raw", [
    b'{"at_s": 1' + b"0" * 400 + b"}",            # a number too large for a float
    b'{"at_s": 1, "note": "\\ud800"}',              # a lone surrogate: cannot be stored
    b"[" * 60_000,                                  # nesting deep enough to recurse out
])
def test_hostile_json_is_a_clear_400(admin: Tablet, film: str, raw: bytes) -> None:
    response = admin.call("POST", f"/api/recordings/{film}/moments", data=raw,
                          content_type="application/json")
    assert response.status_code in (400, 413), response.get_data()
    assert response.is_json


def test_a_clip_cannot_borrow_another_recordings_moment(admin: Tablet, film: str, app: App,
                                                        barcode_film: Path,
                                                        tmp_path: Path) -> None:
    shutil.copy(barcode_film, tmp_path / "other.mp4")
    other = import_file(app, tmp_path / "other.mp4", case=None, actor="test").id
    moment = admin.post(f"/api/recordings/{other}/moments", {"at_s": 2.0}).get_json()
    wrong = admin.post(f"/api/recordings/{film}/clips",
                       {"start_s": 1, "end_s": 3, "moment_id": moment["id"]})
    assert "not in recording" in error_of(wrong, 400)
    error_of(admin.post(f"/api/recordings/{film}/clips",
                        {"start_s": 1, "end_s": 3, "moment_id": 999_999}), 404)


def test_errors_do_not_name_files_on_the_box(admin: Tablet, config: Config) -> None:
    root = str(config.data_path)
    for response in (admin.post("/api/record/start", {}), admin.get("/api/live.jpg"),
                     admin.get("/api/status")):
        assert root not in response.get_data(as_text=True)


def test_an_upload_the_disk_cannot_hold_is_refused(admin: Tablet, app: App,
                                                   barcode_film: Path) -> None:
    import dataclasses

    from appliance.fsutil import free_bytes
    huge_reserve = free_bytes(app.layout.root) // 2**20 + 1
    object.__setattr__(app, "config", dataclasses.replace(app.config, recording=dataclasses
                       .replace(app.config.recording, reserve_mb=huge_reserve)))
    response = admin.post("/api/imports", None, data=barcode_film.read_bytes(),
                          headers={"X-Filename": "phone.mp4"},
                          content_type="application/octet-stream")
    assert "not enough free space" in error_of(response, 400)
    assert "phone.mp4" in response.get_json()["error"]
    assert app.catalog.recordings.list() == []


def test_a_failed_import_names_the_guiders_file(admin: Tablet) -> None:
    response = admin.post("/api/imports", None, data=b"\x00" * 5000,
                          headers={"X-Filename": "holiday.mov"},
                          content_type="application/octet-stream")
    message = error_of(response, 400)
    assert ".upload-" not in message and "uploads" not in message


def test_close_and_erase_a_case_from_the_tablet(admin: Tablet, media: dict[str, str],
                                                app: App) -> None:
    assert admin.post("/api/cases/FAM-1/close", {}).get_json()["closed_at"]
    refused = admin.post("/api/cases/FAM-1/erase", {"confirm": "FAM-2"})
    assert "confirm" in error_of(refused, 400)
    assert app.catalog.media.clip(media["clip1"]).path is not None
    done = admin.post("/api/cases/FAM-1/erase", {"confirm": "FAM-1"})
    assert done.status_code == 200 and done.get_json() == {
        "erased": "FAM-1", "recordings": 1, "clips": 2, "stills": 1, "films": 0}
    listed = {c["code"]: c for c in admin.get("/api/cases").get_json()}
    assert listed["FAM-1"]["erased_at"] and listed["FAM-1"]["consent"] == {}
    assert admin.get(f"/media/clip/{media['clip1']}").status_code == 404
    erased = [e for e in app.catalog.audit.entries() if e.action == "case.erase"]
    assert [e.actor for e in erased] == ["admin"]
