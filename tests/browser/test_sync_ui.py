"""The Sync screen and the audit log in Chromium and in WebKit, on the running box (which
has no office destination): what a guider reads when sync is not set up, how a stopped
office and files in flight are drawn, and the administrator's audit log with its filter."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from appliance.catalog import SyncItem, SyncKind, SyncStatus
from tests.browser.conftest import ADMIN, Box
from tests.browser.engines import Engine
from tests.browser.pages import api, assert_no_error_shown, log_in, watch_messages
from tests.browser.test_ui import local_minute, shot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

UNCONFIGURED = "No office destination is set (sync.destination in /etc/vigbox/config.toml)"
LOADED = "document.getElementById('office').dataset.loaded === '1'"
TEXT_JS = "const e = document.querySelector(args[0]); return e ? e.textContent : null;"
SHOWN_JS = "const e = document.querySelector(args[0]); return !!e && e.offsetParent !== null;"
ROWS_JS = "return [...document.querySelectorAll(args[0])].map((e) => e.textContent);"
HOST_KEY_MESSAGE = ("the office's host key does not match the one pinned in "
                    "/var/lib/vigbox/keys/known_hosts: the connection may be intercepted")


def text(page: Engine, selector: str) -> str | None:
    """The text of the first element matching `selector`."""
    value = page.eval_js(TEXT_JS, selector)
    return None if value is None else str(value)


def shown(page: Engine, selector: str) -> bool:
    """Is the element there and not hidden?"""
    return bool(page.eval_js(SHOWN_JS, selector))


def iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")


def item(n: int, kind: SyncKind, status: SyncStatus, size: int, **changes: Any) -> dict[str, Any]:
    """One file's row as GET /api/sync gives it (the catalog's own to_json)."""
    ext = {SyncKind.STILL: "jpg", SyncKind.MANIFEST: "json"}.get(kind, "mp4")
    row = SyncItem(id=n, recording_id="20260302-101500-ab12", case_code="FAM-7", kind=kind,
                   item_id=f"x{n:03d}", remote_name=f"box-7f3a/FAM-7/20260302-101500-ab12/"
                   f"x{n:03d}.{ext}.age", plain_size=size - 200, plain_sha256=None,
                   sealed_name=None, sealed_size=size, sealed_sha256=None, status=status,
                   sent_bytes=0, resent_bytes=0, attempts=0, next_try_at=0.0, last_error=None,
                   multipart_id=None, parts=[], verified_at=None)
    return dataclasses.replace(row, **changes).to_json()


def busy_office(now: datetime) -> dict[str, Any]:
    """An SFTP office mid-run: one clip half sent after a failed try, one still not yet
    encrypted, two files at the office, one dropped when consent was withdrawn."""
    items = [
        item(1, SyncKind.CLIP, SyncStatus.VERIFIED, 4_200_000, sent_bytes=4_200_000,
             verified_at=iso(now - timedelta(days=1))),
        item(2, SyncKind.STILL, SyncStatus.VERIFIED, 180_000, sent_bytes=180_000,
             verified_at=iso(now - timedelta(minutes=3))),
        item(3, SyncKind.CLIP, SyncStatus.SEALED, 6_000_000, sent_bytes=2_097_152, attempts=1,
             next_try_at=(now + timedelta(minutes=4)).timestamp(),
             last_error="cannot reach the office at office.example:22 (timed out)"),
        item(4, SyncKind.STILL, SyncStatus.PLANNED, 150_000, sealed_size=None),
        item(5, SyncKind.CLIP, SyncStatus.DROPPED, 3_000_000,
             last_error="no longer covered by the case's consent, or no longer on the box"),
    ]
    return {"configured": True,
            "state": {"destination": "sftp://vigbox@office.example:22/incoming",
                      "last_run_at": iso(now - timedelta(hours=2)),
                      "last_ok_at": iso(now - timedelta(days=1)),
                      "last_error": "cannot reach the office at office.example:22 (timed out)",
                      "host": "office.example:22", "host_key_pinned": True},
            "counts": {"planned": 1, "sealed": 1, "verified": 2, "dropped": 1},
            "items": items, "running": True,
            "last_run": {"by": ADMIN, "started_at": iso(now - timedelta(seconds=20)),
                         "finished_at": None, "summary": None, "error": None}}


def test_sync_screen_without_an_office(browser: Engine, box: Box, screenshots: Path) -> None:
    """The box has no destination: the screen says where to set one, Sync now is off, and
    a run asked for anyway ends at once and is shown with its local time."""
    log_in(browser)
    browser.click("nav a[href='/sync']")
    browser.wait_for(LOADED, what="the Sync screen")
    watch_messages(browser)
    assert shown(browser, "#unconfigured") and text(browser, "#unconfigured") == UNCONFIGURED
    assert browser.eval_js("return document.getElementById('sync-now').disabled") is True
    assert not shown(browser, "#stopped")
    assert text(browser, "#facts dd") == "not set"
    assert text(browser, "#waiting li") == "Nothing is waiting to go."
    run = browser.eval_js("return (await window.vig.api('POST', '/api/sync/run', {})).last_run")
    assert run["by"] == ADMIN
    deadline = time.monotonic() + 20
    while api(browser, "/api/sync")["running"]:
        assert time.monotonic() < deadline, "a run with no destination ends at once"
        time.sleep(0.05)
    browser.goto("/sync")
    browser.wait_for(LOADED + " && !document.getElementById('run').hidden",
                     what="the last Sync now")
    said = text(browser, "#run .run-text") or ""
    assert said == (f"Sync now by {ADMIN} at {local_minute(run['started_at'])}: nothing sent: "
                    "no office destination is configured (sync.destination)."), said
    assert_no_error_shown(browser)
    shot(browser, screenshots, "sync")


def test_sync_screen_draws_an_office_at_work(browser: Engine, box: Box,
                                             screenshots: Path) -> None:
    """Files in flight with progress and a next try in local time, the newest done first,
    what was dropped and why; then a host key mismatch shown as a stop, in red, that
    Sync now retries once it is fixed."""
    log_in(browser)
    browser.goto("/sync")
    browser.wait_for(LOADED, what="the Sync screen")
    now = datetime.now(UTC)
    busy = busy_office(now)
    browser.eval_js("window.vigSync.hold(args[0]);", busy)
    assert not shown(browser, "#unconfigured") and not shown(browser, "#stopped")
    assert text(browser, "#sync-now") == "Syncing…"
    assert browser.eval_js("return document.getElementById('sync-now').disabled") is True
    waiting = browser.eval_js(ROWS_JS, "#waiting li .file")
    assert waiting == ["FAM-7 / x003.mp4", "FAM-7 / x004.jpg"]
    half = browser.eval_js("const p = document.querySelector('#waiting li progress');"
                           "return [p.value, p.max];")
    assert half == [2_097_152, 6_000_000]
    row = text(browser, "#waiting li[data-id='3']") or ""
    next_try = local_minute(datetime.fromtimestamp(busy["items"][2]["next_try_at"], UTC)
                            .isoformat())
    assert f"next try {next_try}" in row and "timed out" in row, row
    assert browser.eval_js(ROWS_JS, "#done li .file") == ["FAM-7 / x002.jpg", "FAM-7 / x001.mp4"]
    assert "consent" in (text(browser, "#dropped li") or "")
    assert shown(browser, "#run-progress")
    facts = text(browser, "#facts") or ""
    assert f"Last good sync{local_minute(busy['state']['last_ok_at'])}" in facts, facts
    assert "pinned" in facts and "office.example:22" in facts
    shot(browser, screenshots, "sync-busy")

    stopped = {**busy, "running": False,
               "state": {**busy["state"], "stopped": {"kind": "host_key", "at": iso(now),
                                                      "message": HOST_KEY_MESSAGE}},
               "last_run": {**busy["last_run"], "finished_at": iso(now), "summary": {
                   "destination": busy["state"]["destination"], "uploaded": 0, "bytes": 0,
                   "resent_bytes": 0, "pending": 2, "failed": [], "seconds": 0.4,
                   "stopped": {"kind": "host_key", "message": HOST_KEY_MESSAGE}}}}
    browser.eval_js("window.vigSync.hold(args[0]);", stopped)
    assert shown(browser, "#stopped")
    assert browser.eval_js("return getComputedStyle(document.getElementById('stopped'))"
                           ".borderTopColor") == "rgb(192, 57, 43)"   # --red
    stop = text(browser, "#stopped") or ""
    assert HOST_KEY_MESSAGE in stop and "press Sync now" in stop, stop
    assert browser.eval_js("return document.getElementById('sync-now').disabled") is False
    assert (text(browser, "#run .run-text") or "").endswith(": stopped (see above).")
    assert "did not match" in (text(browser, "#facts") or "")
    shot(browser, screenshots, "sync-stopped")


def test_audit_log_and_its_filter(browser: Engine, box: Box, screenshots: Path) -> None:
    """The administrator's audit log: intact, newest first in local time, filtered by
    action prefix, and the export is the whole log as JSON."""
    log_in(browser)
    browser.wait_for("window.vig", what="the page's scripts")
    # Home's live view audits itself (view.live) once it has a picture: wait for that,
    # so no entry lands after the audit page has loaded.
    browser.wait_for("document.getElementById('live').naturalWidth > 0",
                     what="the live picture")
    # Something to find under "sync.": a Sync now (it ends at once on this box), whose
    # thread audits it; waited for for the same reason.
    browser.eval_js("await window.vig.api('POST', '/api/sync/run', {})")
    browser.wait_for("!(await window.vig.api('GET', '/api/sync')).running",
                     what="the Sync now to end")
    browser.click("nav a[href='/audit']")
    browser.wait_for("document.querySelectorAll('#entries tr[data-id]').length > 0 && "
                     "document.getElementById('integrity').classList.contains('intact')",
                     what="the audit log, checked")
    watch_messages(browser)
    log = api(browser, "/api/audit?limit=500")
    newest = log["entries"][-1]
    first = browser.eval_js("const r = document.querySelector('#entries tr');"
                            "return [r.dataset.id, r.querySelector('.when').textContent];")
    assert first == [str(newest["id"]), local_minute(newest["at"])]
    assert "Intact." in (text(browser, "#integrity") or "")
    shot(browser, screenshots, "audit")

    browser.fill("#action", "login")
    browser.wait_for("document.querySelector('.audit-page').dataset.shown === 'login'",
                     what="the log filtered by 'login'")
    actions = browser.eval_js(ROWS_JS, "#entries td.action")
    assert actions and all(a.startswith("login") for a in actions), actions

    browser.click("button[data-prefix='sync.']")
    browser.wait_for("document.querySelector('.audit-page').dataset.shown === 'sync.'",
                     what="the log filtered by 'sync.'")
    actions = browser.eval_js(ROWS_JS, "#entries td.action")
    assert "sync.now" in actions and all(a.startswith("sync.") for a in actions), actions
    assert browser.eval_js("return document.getElementById('action').value") == "sync."
    assert browser.eval_js("return document.querySelector(\"button[data-prefix='sync.']\")"
                           ".getAttribute('aria-pressed')") == "true"
    shot(browser, screenshots, "audit-sync")

    export = browser.eval_js("const a = document.getElementById('export');"
                             "const r = await fetch(a.href); return [r.headers.get("
                             "'Content-Disposition'), await r.json()];")
    assert export[0].startswith("attachment")
    assert set(export[1]) == {"intact", "problems", "entries"} and export[1]["intact"] is True
    assert export[1]["entries"][-1]["action"] == "download.audit"
    assert_no_error_shown(browser)
