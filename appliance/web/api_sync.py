"""Sync and the audit log as JSON: the office destination's state and the files on their
way (anyone logged in), "Sync now" as one background run in this web process, and the
audit log with its integrity check (administrators)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from appliance.catalog import utc_now
from appliance.errors import ApplianceError, BusyError, InputError, SyncBusyError
from appliance.services import sync as sync_service
from appliance.services.app import App
from appliance.sync.run import sync_lock
from appliance.web import body
from appliance.web.context import ctx
from appliance.web.security import actor, admin_only

log = logging.getLogger(__name__)
bp = Blueprint("api_sync", __name__, url_prefix="/api")
EXTENSION = "vigbox.sync_now"
STOP_TIMEOUT_S = 30.0
MAX_AUDIT_LIMIT = 100_000
WHOLE_LOG = 1_000_000   # as `vigbox audit`
MAX_PREFIX = 60
ALREADY_RUNNING = "a sync is already running"


@dataclass
class ManualRun:
    """One "Sync now": who asked, when, and how it ended (a summary, or why it could not
    run)."""

    by: str
    started_at: str
    finished_at: str | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"by": self.by, "started_at": self.started_at, "finished_at": self.finished_at,
                "summary": self.summary, "error": self.error}


class SyncNow:
    """"Sync now" from the tablet: at most one run at a time, on a daemon thread of the web
    process (a run can take minutes; the request answers at once), its outcome kept for
    the Sync screen."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: ManualRun | None = None

    @property
    def running(self) -> bool:
        """True while a run started here has not ended."""
        with self._guard:
            return self._thread is not None and self._thread.is_alive()

    def last(self) -> dict[str, Any] | None:
        """The latest run started here (the one running, if any), as plain data."""
        with self._guard:
            return self._last.to_json() if self._last else None

    def start(self, by: str) -> ManualRun:
        """Start a run for `by`; BusyError if one is running, here or from the timer."""
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                raise BusyError(ALREADY_RUNNING)
            # The timer's run holds the lock: say so now rather than after a 202. (Taking
            # it for a moment can only make a timer run starting in that very instant give
            # way, and this run then does its work.)
            try:
                with sync_lock(self._app.layout.sync_lock):
                    pass
            except SyncBusyError:
                raise BusyError(f"{ALREADY_RUNNING} (the box's own timer started it)") from None
            self._stop.clear()
            run = ManualRun(by=by, started_at=utc_now())
            self._last = run
            self._thread = threading.Thread(target=self._run, args=(run,), daemon=True,
                                            name="sync-now")
            self._thread.start()
            return dataclasses.replace(run)   # a copy: the thread fills in the original

    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask a running run to stop after the chunk it is sending, and wait for it."""
        self._stop.set()
        with self._guard:
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                raise RuntimeError(f"the sync run did not stop within {timeout_s:.0f} s")

    def _run(self, run: ManualRun) -> None:
        summary: dict[str, Any] | None = None
        error: str | None = None
        try:
            summary = sync_service.run_sync(self._app, manual=True, stop=self._stop).to_json()
        except SyncBusyError:
            error = "the box's own timer started a sync first: it is sending now"
        except ApplianceError as e:   # e.g. a destination the box cannot use
            log.warning("sync now: %s", e)
            error = str(e)
        except Exception:
            # Nobody awaits this thread: its end must reach the screen, and the log.
            log.exception("sync now failed")
            error = "the sync failed (an internal error, logged)"
        with self._guard:
            run.summary, run.error, run.finished_at = summary, error, utc_now()


@bp.record_once
def _attach(state: BlueprintSetupState) -> None:
    state.app.extensions[EXTENSION] = SyncNow(state.app.extensions["vigbox"].app)


def sync_now(flask_app: Flask | None = None) -> SyncNow:
    """The "Sync now" runner of a Flask app (the current one by default)."""
    runner: SyncNow = (flask_app or current_app).extensions[EXTENSION]
    return runner


@bp.get("/sync")
def status() -> Response:
    """The destination's state, counts, the files on their way, and the latest Sync now."""
    runner = sync_now()
    doc = sync_service.status(ctx().app)
    doc.update(running=runner.running, last_run=runner.last())
    return jsonify(doc)


@bp.post("/sync/run")
def run() -> ResponseReturnValue:
    """Sync now: 202 at once, then poll GET /api/sync; 409 while a sync is running."""
    body.json_body(allowed=set())
    app = ctx().app
    started = sync_now().start(actor())
    app.catalog.audit.append("sync.now", app.current_config().sync.destination or None,
                             actor=started.by)
    return jsonify(running=True, last_run=started.to_json()), 202


@bp.get("/audit")
@admin_only
def audit() -> Response:
    """The audit log, oldest first, as `vigbox audit --json`: whether the hash chain is
    intact, its problems and the entries; `action` keeps entries whose action starts so,
    `limit` the newest that many, `download=1` saves it as a file (and is audited)."""
    prefix = request.args.get("action", "")
    if len(prefix) > MAX_PREFIX:
        raise InputError(f"'action' is at most {MAX_PREFIX} characters")
    limit = _int_arg("limit", WHOLE_LOG, low=1, high=MAX_AUDIT_LIMIT)
    download = _int_arg("download", 0, low=0, high=1) == 1
    audit_log = ctx().app.catalog.audit
    if download:
        audit_log.append("download.audit", None, actor=actor())
    # Unfiltered, the newest `limit` are all that need reading.
    entries = [e for e in audit_log.entries(limit=WHOLE_LOG if prefix else limit)
               if e.action.startswith(prefix)]
    problems = audit_log.verify()
    response = jsonify(intact=not problems, problems=problems,
                       entries=[e.to_json() for e in entries[-limit:]])
    if download:
        response.headers["Content-Disposition"] = (
            f'attachment; filename="vigbox-audit-{utc_now()[:10]}.json"')
    return response


def _int_arg(name: str, default: int, *, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name!r} must be a whole number") from None
    if not low <= value <= high:
        raise InputError(f"{name!r} must be from {low} to {high}")
    return value
