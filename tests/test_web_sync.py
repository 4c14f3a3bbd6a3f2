"""The Sync screen and its API: the office destination's state, "Sync now" as one
background run (a second click, or the timer's run, answers 409), what reached the office
folder; and the audit log for administrators only, with its integrity check and filter."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from appliance.services.app import App
from appliance.sync.run import sync_lock
from appliance.web.api_sync import sync_now
from tests.sync_support import office_folder
from tests.test_sync import Office
from tests.web_support import PASSPHRASE, Tablet, make_app

RUN_TIMEOUT_S = 60
NOTE = "Mother hums while the baby settles"


def finished(tablet: Tablet, timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
    """Poll GET /api/sync as the page does until the Sync now run has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        doc: dict[str, Any] = tablet.get("/api/sync", headers={"X-Vigbox-Poll": "1"}).get_json()
        if not doc["running"]:
            return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"the sync run did not end within {timeout_s} s: {doc}")
        time.sleep(0.05)


def logged_in(flask_app: Flask, name: str, *, admin: bool, app: App) -> Tablet:
    app.catalog.accounts.set_passphrase(name, PASSPHRASE, admin=admin, actor="test")
    tablet = Tablet(flask_app.test_client())
    assert tablet.log_in(name).status_code == 302
    return tablet


@pytest.fixture
def runs_stopped(flask_app: Flask) -> Iterator[None]:
    """A run this test started is stopped and joined before the catalog closes."""
    yield
    sync_now(flask_app).close()


def office_at(app: App, tmp_path: Path, **sync: Any) -> Office:
    """An office folder with its own age key, and the box's App syncing there."""
    box, folder, key = office_folder(app, tmp_path, **sync)
    return Office(folder, key, box)


@pytest.fixture
def office(app: App, tmp_path: Path, media: dict[str, str]) -> Iterator[tuple[Office, Tablet]]:
    """The office folder, and an administrator's tablet on a box that syncs there at
    50 kB/s: a run takes seconds, so it is still going when the next click comes."""
    the_office = office_at(app, tmp_path, bandwidth_kbps=50)
    flask_app = make_app(the_office.app)
    yield the_office, logged_in(flask_app, "admin", admin=True, app=app)
    sync_now(flask_app).close()


def test_no_destination_says_so(admin: Tablet, app: App, runs_stopped: None) -> None:
    doc = admin.get("/api/sync").get_json()
    assert doc["configured"] is False and doc["running"] is False and doc["last_run"] is None
    assert doc["counts"] == {"planned": 0, "sealed": 0, "verified": 0, "dropped": 0}
    page = admin.get("/sync").get_data(as_text=True)
    assert "No office destination is set (sync.destination in /etc/vigbox/config.toml)" in page
    assert 'src="/static/sync.js"' in page and 'id="sync-now"' in page
    # Without the session's token nothing starts.
    refused = admin.client.post("/api/sync/run", json={})
    assert refused.status_code == 403
    assert admin.get("/api/sync").get_json()["last_run"] is None
    started = admin.post("/api/sync/run", {})
    assert started.status_code == 202, started.get_data()
    assert started.get_json()["last_run"]["by"] == "admin"
    run = finished(admin)["last_run"]
    assert run["error"] is None and run["finished_at"] is not None
    assert run["summary"]["stopped"]["kind"] == "config" and run["summary"]["uploaded"] == 0
    [asked] = [e for e in app.catalog.audit.entries() if e.action == "sync.now"]
    assert asked.actor == "admin" and asked.subject is None
    assert admin.post("/api/sync/run", {"now": True}).status_code == 400


def test_sync_now_sends_to_the_office(office: tuple[Office, Tablet], app: App) -> None:
    the_office, tablet = office
    before = tablet.get("/api/sync").get_json()
    assert before["configured"] is True and before["state"] == {}
    assert tablet.post("/api/sync/run", {}).status_code == 202
    # 6 sealed files (~240 kB) at 50 kB/s take seconds: this click comes while it goes.
    again = tablet.post("/api/sync/run", {})
    assert again.status_code == 409 and again.get_json()["error"] == "a sync is already running"
    going = tablet.get("/api/sync").get_json()
    assert going["running"] is True and going["last_run"]["finished_at"] is None
    # A file on its way shows what its progress bar needs: its size and the bytes sent.
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not [i for i in going["items"] if i["status"] == "sealed"]:
        assert going["running"] and time.monotonic() < deadline, "no file was seen on its way"
        time.sleep(0.05)
        going = tablet.get("/api/sync").get_json()
    on_the_way = next(i for i in going["items"] if i["status"] == "sealed")
    assert on_the_way["size"] > 0 and 0 <= on_the_way["sent_bytes"] <= on_the_way["size"]
    doc = finished(tablet)
    summary = doc["last_run"]["summary"]
    assert summary["uploaded"] == 6 and summary["failed"] == [] and summary["pending"] == 0
    assert summary["stopped"] is None and doc["last_run"]["error"] is None
    assert doc["counts"]["verified"] == 6 and doc["counts"]["sealed"] == 0
    assert doc["state"]["last_ok_at"] and doc["state"].get("last_error") is None
    assert all(i["sent_bytes"] == i["size"] for i in doc["items"] if i["status"] == "verified")
    sent = sorted(p.name for p in the_office.folder.rglob("*.age"))
    assert len(sent) == 6 and not list(the_office.folder.rglob("*.part"))
    assert sorted(i["name"].rsplit("/", 1)[1] for i in doc["items"]) == sent
    log = tablet.get("/api/audit").get_json()
    uploads = [e for e in log["entries"] if e["action"] == "sync.upload"]
    assert len(uploads) == 6 and {e["actor"] for e in uploads} == {"sync"}
    [asked] = [e for e in log["entries"] if e["action"] == "sync.now"]
    assert asked["actor"] == "admin" and asked["subject"] == f"file://{the_office.folder}"
    assert log["intact"] is True
    # Nothing new to send: a second run sends nothing and says so.
    assert tablet.post("/api/sync/run", {}).status_code == 202
    assert finished(tablet)["last_run"]["summary"]["uploaded"] == 0


def test_the_timers_run_holds_the_lock(app: App, tmp_path: Path, media: dict[str, str]) -> None:
    the_office = office_at(app, tmp_path)
    flask_app = make_app(the_office.app)
    tablet = logged_in(flask_app, "guider", admin=False, app=app)
    try:
        with sync_lock(the_office.app.layout.sync_lock):
            busy = tablet.post("/api/sync/run", {})
            assert busy.status_code == 409 and "timer" in busy.get_json()["error"]
            assert tablet.get("/api/sync").get_json()["last_run"] is None
        assert not [e for e in app.catalog.audit.entries() if e.action == "sync.now"]
        assert tablet.post("/api/sync/run", {}).status_code == 202   # a guider may sync
        assert finished(tablet)["last_run"]["summary"]["uploaded"] == 6
    finally:
        sync_now(flask_app).close()


def test_a_stop_is_kept_until_a_run_gets_through(app: App, tmp_path: Path,
                                                 media: dict[str, str]) -> None:
    the_office = office_at(app, tmp_path)
    app.catalog.sync.set_state(stopped={"kind": "host_key", "message": "the office's host key "
                                        "does not match", "at": "2026-01-01T00:00:00+00:00"})
    flask_app = make_app(the_office.app)
    tablet = logged_in(flask_app, "admin", admin=True, app=app)
    try:
        assert tablet.get("/api/sync").get_json()["state"]["stopped"]["kind"] == "host_key"
        assert tablet.post("/api/sync/run", {}).status_code == 202
        doc = finished(tablet)
        assert doc["last_run"]["summary"]["uploaded"] == 6
        assert "stopped" not in doc["state"], "Sync now retries after a stop, and clears it"
    finally:
        sync_now(flask_app).close()


def test_only_administrators_see_the_audit_log(admin: Tablet, app: App,
                                               flask_app: Flask) -> None:
    guider = logged_in(flask_app, "guider", admin=False, app=app)
    assert guider.get("/api/audit").status_code == 403
    assert guider.get("/audit").status_code == 403
    assert guider.get("/sync").status_code == 200 and guider.get("/api/sync").status_code == 200
    guider_home = guider.get("/").get_data(as_text=True)
    admin_home = admin.get("/").get_data(as_text=True)
    assert 'href="/sync"' in guider_home and 'href="/audit"' not in guider_home
    assert 'href="/sync"' in admin_home and 'href="/audit"' in admin_home
    page = admin.get("/audit").get_data(as_text=True)
    assert 'id="entries"' in page and 'src="/static/audit.js"' in page
    assert 'href="/api/audit?download=1"' in page
    log = admin.get("/api/audit").get_json()
    assert list(log) == ["intact", "problems", "entries"]
    assert log["intact"] is True and log["problems"] == []
    ids = [e["id"] for e in log["entries"]]
    assert ids == sorted(ids) and len(ids) >= 3, "oldest first, as `vigbox audit --json`"
    logins = admin.get("/api/audit?action=login").get_json()["entries"]
    assert logins and all(e["action"].startswith("login") for e in logins)
    [newest] = admin.get("/api/audit?limit=1").get_json()["entries"]
    assert newest["id"] == ids[-1]
    for bad in ("limit=0", "limit=ten", "download=2", "action=" + "x" * 61):
        assert admin.get(f"/api/audit?{bad}").status_code == 400, bad


def test_the_export_is_a_download_and_is_audited(admin: Tablet, app: App) -> None:
    got = admin.get("/api/audit?download=1")
    assert got.status_code == 200
    assert got.headers["Content-Disposition"].startswith('attachment; filename="vigbox-audit-')
    assert got.get_json()["entries"][-1]["action"] == "download.audit"
    assert got.get_json()["entries"][-1]["actor"] == "admin"


def test_an_altered_log_shows_as_altered(admin: Tablet, app: App) -> None:
    db = sqlite3.connect(app.layout.catalog_db)
    try:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("UPDATE audit SET actor='mallory' WHERE id=(SELECT MIN(id) FROM audit)")
        db.commit()
    finally:
        db.close()
    log = admin.get("/api/audit").get_json()
    assert log["intact"] is False
    assert any("does not match the chain" in p for p in log["problems"]), log["problems"]


def test_case_notes_stay_out_of_the_audit_log(admin: Tablet, film: str, app: App) -> None:
    made = admin.post(f"/api/recordings/{film}/moments", {"at_s": 2.0, "note": NOTE})
    assert made.status_code in (200, 201), made.get_data()
    moment = made.get_json()["id"]
    assert admin.call("PATCH", f"/api/recordings/{film}/moments/{moment}",
                      {"note": NOTE + " again"}).status_code == 200
    text = admin.get("/api/audit?download=1").get_data(as_text=True)
    assert "moment.add" in text and "moment.edit" in text
    assert "hums" not in text
