"""The encoder's job queue, kept in the catalog so jobs survive restarts.

A job is queued, claimed by one runner (the worker, or a CLI command running its
own job at once), reports progress, and ends done, failed (with a reason a person
can read) or cancelled. A running job is cancelled by asking; its runner checks.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from appliance.catalog import Catalog, utc_now
from appliance.errors import ApplianceError, InputError, NotFoundError

KINDS = ("assets", "clip", "still", "film")
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class Job:
    """One job as the catalog knows it."""

    id: int
    kind: str
    subject: str | None
    params: dict[str, Any]
    status: str
    progress: float
    error: str | None
    result: dict[str, Any] | None
    cancel_requested: bool
    created_at: str
    started_at: str | None
    finished_at: str | None

    def to_json(self) -> dict[str, Any]:
        """Plain data for `vigbox jobs --json` and the web UI's progress bars."""
        return {"id": self.id, "kind": self.kind, "subject": self.subject,
                "params": self.params, "status": self.status,
                "progress": round(self.progress * 100, 1), "error": self.error,
                "result": self.result, "cancel_requested": self.cancel_requested,
                "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at}


class JobQueue:
    """Jobs in the catalog: enqueue, claim, progress, finish, fail, cancel."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def enqueue(self, kind: str, subject: str | None, params: dict[str, Any], *,
                actor: str = "cli") -> Job:
        """Add a queued job."""
        if kind not in KINDS:
            raise InputError(f"unknown job kind {kind!r}")
        now = utc_now()
        with self.catalog.transaction() as db:
            cur = db.execute(
                "INSERT INTO jobs (kind, subject, params, status, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?)", (kind, subject, json.dumps(params), "queued", now, now))
            job_id = int(cur.lastrowid or 0)
            self.catalog.audit_in(db, f"job.{kind}.queued", subject, actor=actor,
                                  detail={"job": job_id})
        return self.get(job_id)

    def claim(self, job_id: int | None = None) -> Job | None:
        """Take a queued job (that one, or the oldest) for this process; None if none."""
        with self.catalog.transaction() as db:
            if job_id is None:
                row = db.execute("SELECT id FROM jobs WHERE status='queued' AND"
                                 " cancel_requested=0 ORDER BY id LIMIT 1").fetchone()
            else:
                row = db.execute("SELECT id FROM jobs WHERE id=? AND status='queued'",
                                 (job_id,)).fetchone()
            if row is None:
                return None
            now = utc_now()
            db.execute("UPDATE jobs SET status='running', worker_pid=?, started_at=?,"
                       " updated_at=? WHERE id=?", (os.getpid(), now, now, row["id"]))
        return self.get(int(row["id"]))

    def progress(self, job_id: int, fraction: float) -> None:
        """Store how far a running job is (0..1); not audited, it changes often."""
        fraction = min(1.0, max(0.0, fraction))
        with self.catalog.transaction() as db:
            db.execute("UPDATE jobs SET progress=?, updated_at=? WHERE id=? AND"
                       " status='running'", (fraction, utc_now(), job_id))

    def finish(self, job_id: int, result: dict[str, Any]) -> Job:
        """Mark a job done with its result."""
        return self._end(job_id, "done", result=result, progress=1.0)

    def fail(self, job_id: int, reason: str) -> Job:
        """Mark a job failed with a reason a person can read."""
        return self._end(job_id, "failed", error=reason)

    def mark_cancelled(self, job_id: int) -> Job:
        """Record that a running job stopped because it was cancelled."""
        return self._end(job_id, "cancelled", error="cancelled")

    def _end(self, job_id: int, status: str, *, result: dict[str, Any] | None = None,
             error: str | None = None, progress: float | None = None) -> Job:
        now = utc_now()
        with self.catalog.transaction() as db:
            job = self._row(db, job_id)
            db.execute("UPDATE jobs SET status=?, result=?, error=?, progress=COALESCE(?,"
                       " progress), finished_at=?, updated_at=? WHERE id=?",
                       (status, json.dumps(result) if result is not None else None, error,
                        progress, now, now, job_id))
            self.catalog.audit_in(db, f"job.{job['kind']}.{status}", job["subject"],
                                  actor="encoder", detail={"job": job_id, "error": error})
        return self.get(job_id)

    def cancel(self, job_id: int, *, actor: str = "cli") -> Job:
        """Cancel: a queued job at once, a running one by asking its runner."""
        with self.catalog.transaction() as db:
            job = self._row(db, job_id)
            if job["status"] not in ACTIVE:
                raise InputError(f"job {job_id} is already {job['status']}")
            if job["status"] == "queued":
                db.execute("UPDATE jobs SET status='cancelled', error='cancelled',"
                           " cancel_requested=1, finished_at=?, updated_at=? WHERE id=?",
                           (utc_now(), utc_now(), job_id))
            else:
                db.execute("UPDATE jobs SET cancel_requested=1, updated_at=? WHERE id=?",
                           (utc_now(), job_id))
            self.catalog.audit_in(db, f"job.{job['kind']}.cancel", job["subject"],
                                  actor=actor, detail={"job": job_id})
        return self.get(job_id)

    def cancel_requested(self, job_id: int) -> bool:
        """True once someone asked to cancel this job."""
        with self.catalog.read() as db:
            return bool(self._row(db, job_id)["cancel_requested"])

    def requeue_abandoned(self) -> list[int]:
        """Running jobs whose process is gone go back to the queue (after a crash)."""
        requeued = []
        with self.catalog.transaction() as db:
            for row in db.execute("SELECT id, worker_pid FROM jobs WHERE status='running'"):
                if not _alive(row["worker_pid"]):
                    db.execute("UPDATE jobs SET status='queued', progress=0, worker_pid=NULL,"
                               " updated_at=? WHERE id=?", (utc_now(), row["id"]))
                    requeued.append(int(row["id"]))
        return requeued

    def get(self, job_id: int) -> Job:
        """One job; NotFoundError if unknown."""
        with self.catalog.read() as db:
            return _job(self._row(db, job_id))

    def list(self, statuses: tuple[str, ...] | None = None, limit: int = 200) -> list[Job]:
        """Jobs, newest first."""
        query, args = "SELECT * FROM jobs", []
        if statuses:
            query += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = list(statuses)
        with self.catalog.read() as db:
            rows = db.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [_job(r) for r in rows]

    @staticmethod
    def _row(db: sqlite3.Connection, job_id: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no job {job_id}; list them with `vigbox jobs`")
        return row


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _job(row: sqlite3.Row) -> Job:
    return Job(id=int(row["id"]), kind=row["kind"], subject=row["subject"],
               params=json.loads(row["params"]), status=row["status"],
               progress=float(row["progress"]), error=row["error"],
               result=json.loads(row["result"]) if row["result"] else None,
               cancel_requested=bool(row["cancel_requested"]), created_at=row["created_at"],
               started_at=row["started_at"], finished_at=row["finished_at"])


def run_job(queue: JobQueue, job: Job, render: Callable[[Job], dict[str, Any]],
            set_status: Callable[[str], None]) -> Job:
    """Run `render` for a claimed job and end the job done, failed or cancelled;
    `set_status` marks the thing being made (its row) the same way."""
    from appliance.encode.progress import JobCancelled

    try:
        result = render(job)
    except JobCancelled:
        set_status("cancelled")
        return queue.mark_cancelled(job.id)
    except (ApplianceError, OSError) as e:
        set_status("failed")
        return queue.fail(job.id, str(e))
    return queue.finish(job.id, result)


def queue_assets(catalog: Catalog, rec_id: str) -> None:
    """Queue the review assets of a recording that just became playable; never raises,
    because a film must not be reported as failed for want of thumbnails."""
    from appliance.encode.assets import AssetMaker

    try:
        AssetMaker(catalog).request(rec_id)
    except Exception:  # noqa: BLE001 - logged; the worker's queue can be refilled later
        import logging
        logging.getLogger(__name__).exception("could not queue assets for %s", rec_id)
