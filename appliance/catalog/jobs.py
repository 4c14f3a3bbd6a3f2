"""The job queue: work for the encoder, kept in the catalog so it survives restarts.

A job is queued together with the row of what it makes (one transaction), claimed
by one runner under a lease, reports progress, and ends done, failed or cancelled
together with that row. The lease runs on CLOCK_BOOTTIME and names the boot, so a
reused PID after a power cut, or the wall clock set forward, cannot keep a dead
runner's job `running`: an expired lease sends it back to the queue, at most
MAX_ATTEMPTS times.
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from appliance.catalog.audit import AuditLog
from appliance.catalog.db import Database, utc_now
from appliance.errors import InputError, NotFoundError

LEASE_S = 60.0
MAX_ATTEMPTS = 3
PROGRESS_EVERY_S = 1.0   # progress is shown, not audited: a write a second is plenty


class JobKind(enum.StrEnum):
    """What a job makes."""

    ASSETS = "assets"
    CLIP = "clip"
    STILL = "still"
    FILM = "film"


class JobStatus(enum.StrEnum):
    """Where a job is."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
# The row each kind of job makes, found by its job_id. Assets know no "cancelled".
MEDIA_TABLES = {"clips": "cancelled", "stills": "cancelled", "films": "cancelled",
                "assets": "failed"}


@cache
def boot_id() -> str:
    """This boot's id (a new one after every power cut)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown-boot"


def boot_clock() -> float:
    """Seconds since boot, counting suspend: the same in every process of one boot."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True)
class Job:
    """One job as the catalog knows it."""

    id: int
    kind: JobKind
    subject: str | None
    params: dict[str, Any]
    status: JobStatus
    progress: float
    error: str | None
    result: dict[str, Any] | None
    cancel_requested: bool
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None

    def to_json(self) -> dict[str, Any]:
        """Plain data for `vigbox jobs --json` and the web UI's progress bars."""
        return {"id": self.id, "kind": str(self.kind), "subject": self.subject,
                "params": self.params, "status": str(self.status),
                "progress": round(self.progress * 100, 1), "error": self.error,
                "result": self.result, "cancel_requested": self.cancel_requested,
                "attempts": self.attempts, "created_at": self.created_at,
                "started_at": self.started_at, "finished_at": self.finished_at}


class JobQueue:
    """Jobs in the catalog: enqueue, claim, progress, end, cancel, take back."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit
        self._last_progress: dict[int, float] = {}
        self.owner = f"{boot_id()}:{os.getpid()}"

    def enqueue_in(self, db: sqlite3.Connection, kind: JobKind, subject: str | None,
                   params: dict[str, Any], *, actor: str) -> int:
        """Queue a job inside the caller's transaction (with the row it makes); its id."""
        now = utc_now()
        cur = db.execute("INSERT INTO jobs (kind, subject, params, status, created_at,"
                         " updated_at) VALUES (?,?,?,?,?,?)",
                         (JobKind(kind).value, subject, json.dumps(params), "queued", now, now))
        job_id = int(cur.lastrowid or 0)
        self._audit.append_in(db, f"job.{kind}.queued", subject, actor=actor,
                              detail={"job": job_id})
        return job_id

    def claim(self, job_id: int | None = None) -> Job | None:
        """Take a queued job (that one, or the oldest) for this process; None if none."""
        with self._db.transaction() as db:
            if job_id is None:
                row = db.execute("SELECT id FROM jobs WHERE status='queued' AND"
                                 " cancel_requested=0 ORDER BY id LIMIT 1").fetchone()
            else:
                row = db.execute("SELECT id FROM jobs WHERE id=? AND status='queued'",
                                 (job_id,)).fetchone()
            if row is None:
                return None
            now = utc_now()
            db.execute("UPDATE jobs SET status='running', owner=?, lease_boot=?, lease_until=?,"
                       " attempts=attempts+1, worker_pid=?, started_at=?, updated_at=?"
                       " WHERE id=?", (self.owner, boot_id(), boot_clock() + LEASE_S,
                                       os.getpid(), now, now, row["id"]))
            return _job(self._row(db, int(row["id"])))

    def renew(self, job_id: int) -> bool:
        """Extend this runner's lease on a running job; False if it is no longer ours."""
        with self._db.transaction() as db:
            cur = db.execute("UPDATE jobs SET lease_until=? WHERE id=? AND status='running'"
                             " AND owner=?", (boot_clock() + LEASE_S, job_id, self.owner))
            return cur.rowcount == 1

    def progress(self, job_id: int, fraction: float) -> None:
        """Store how far a running job is (0..1), at most once a second; not audited."""
        now = time.monotonic()
        if now - self._last_progress.get(job_id, -1e9) < PROGRESS_EVERY_S and fraction < 1:
            return
        self._last_progress[job_id] = now
        with self._db.transaction() as db:
            db.execute("UPDATE jobs SET progress=?, lease_until=?, updated_at=? WHERE id=?"
                       " AND status='running' AND owner=?",
                       (min(1.0, max(0.0, fraction)), boot_clock() + LEASE_S, utc_now(),
                        job_id, self.owner))

    def end_in(self, db: sqlite3.Connection, job_id: int, status: JobStatus, *,
               result: dict[str, Any] | None = None, error: str | None = None) -> None:
        """End a job inside the caller's transaction (which also updates its row)."""
        job = self._row(db, job_id)
        now = utc_now()
        db.execute("UPDATE jobs SET status=?, result=?, error=?, progress=CASE WHEN ?='done'"
                   " THEN 1 ELSE progress END, owner=NULL, lease_until=NULL, finished_at=?,"
                   " updated_at=? WHERE id=?",
                   (JobStatus(status).value, json.dumps(result) if result is not None else None,
                    error, str(status), now, now, job_id))
        self._audit.append_in(db, f"job.{job['kind']}.{status}", job["subject"],
                              actor="encoder", detail={"job": job_id, "error": error})
        self._last_progress.pop(job_id, None)

    def fail(self, job_id: int, reason: str) -> Job:
        """Mark a job (and its row) failed with a reason a person can read."""
        with self._db.transaction() as db:
            self.end_in(db, job_id, JobStatus.FAILED, error=reason)
            mark_media_in(db, job_id, "failed")
        return self.get(job_id)

    def mark_cancelled(self, job_id: int) -> Job:
        """Record that a running job (and its row) stopped because it was cancelled."""
        with self._db.transaction() as db:
            self.end_in(db, job_id, JobStatus.CANCELLED, error="cancelled")
            mark_media_in(db, job_id, "cancelled")
        return self.get(job_id)

    def cancel(self, job_id: int, *, actor: str) -> Job:
        """Cancel: a queued job (and its row) at once, a running one by asking its runner."""
        with self._db.transaction() as db:
            job = self._row(db, job_id)
            if job["status"] not in ACTIVE:
                raise InputError(f"job {job_id} is already {job['status']}")
            db.execute("UPDATE jobs SET cancel_requested=1, updated_at=? WHERE id=?",
                       (utc_now(), job_id))
            self._audit.append_in(db, f"job.{job['kind']}.cancel", job["subject"],
                                  actor=actor, detail={"job": job_id})
            if job["status"] == JobStatus.QUEUED:
                self.end_in(db, job_id, JobStatus.CANCELLED, error="cancelled")
                mark_media_in(db, job_id, "cancelled")
        return self.get(job_id)

    def cancel_requested(self, job_id: int) -> bool:
        """True once someone asked to cancel this job."""
        with self._db.read() as db:
            return bool(self._row(db, job_id)["cancel_requested"])

    def requeue_abandoned(self) -> list[int]:
        """Running jobs whose lease ran out go back to the queue, or fail after
        MAX_ATTEMPTS (a job that keeps killing its runner must not loop forever)."""
        requeued = []
        with self._db.transaction() as db:
            rows = db.execute("SELECT id, lease_boot, lease_until, attempts, worker_pid"
                              " FROM jobs WHERE status='running'").fetchall()
            for row in rows:
                if not abandoned(row["lease_boot"], row["lease_until"], row["worker_pid"]):
                    continue
                if row["attempts"] >= MAX_ATTEMPTS:
                    self.end_in(db, row["id"], JobStatus.FAILED,
                                error=f"gave up after {row['attempts']} attempts: the encoder "
                                      "stopped while running it each time")
                    mark_media_in(db, row["id"], "failed")
                    continue
                db.execute("UPDATE jobs SET status='queued', progress=0, owner=NULL,"
                           " lease_until=NULL, worker_pid=NULL, updated_at=? WHERE id=?",
                           (utc_now(), row["id"]))
                requeued.append(int(row["id"]))
        return requeued

    def get(self, job_id: int) -> Job:
        """One job; NotFoundError if unknown."""
        with self._db.read() as db:
            return _job(self._row(db, job_id))

    def list(self, statuses: tuple[JobStatus, ...] | None = None, limit: int = 200) -> list[Job]:
        """Jobs, newest first."""
        query, args = "SELECT * FROM jobs", []
        if statuses:
            query += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = [JobStatus(s).value for s in statuses]
        with self._db.read() as db:
            rows = db.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [_job(r) for r in rows]

    @staticmethod
    def _row(db: sqlite3.Connection, job_id: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no job {job_id}; list them with `vigbox jobs`")
        return row


def abandoned(lease_boot: str | None, lease_until: float | None, pid: int | None) -> bool:
    """True if a running job's runner is gone: another boot, an expired lease, or (at
    once, without waiting for the lease) its process no longer exists in this boot. A
    reused PID only delays this until the lease runs out."""
    if lease_boot != boot_id() or (lease_until or 0) <= boot_clock():
        return True
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def mark_media_in(db: sqlite3.Connection, job_id: int, status: str) -> None:
    """Set the row a job makes to `status` ("failed" or "cancelled"), whatever table."""
    for table, cancelled_as in MEDIA_TABLES.items():
        value = cancelled_as if status == "cancelled" else status
        db.execute(f"UPDATE {table} SET status=? WHERE job_id=? AND status='pending'",
                   (value, job_id))


def _job(row: sqlite3.Row) -> Job:
    return Job(id=int(row["id"]), kind=JobKind(row["kind"]), subject=row["subject"],
               params=json.loads(row["params"]), status=JobStatus(row["status"]),
               progress=float(row["progress"]), error=row["error"],
               result=json.loads(row["result"]) if row["result"] else None,
               cancel_requested=bool(row["cancel_requested"]), attempts=int(row["attempts"]),
               created_at=row["created_at"], started_at=row["started_at"],
               finished_at=row["finished_at"])
