"""Review assets of a recording (poster, thumbnail sprite + WebVTT, waveform).

Capture never asks for them: a recording that is playable and has no assets row
is what the encoder looks for (`queue_missing`), so the arrow stays one way and a
film whose assets could not be queued at the time is picked up later.
"""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from appliance.catalog.db import Database, utc_now
from appliance.catalog.jobs import JobKind, JobQueue, JobStatus
from appliance.catalog.recordings import PLAYABLE
from appliance.errors import InputError, NotFoundError
from appliance.layout import Layout

ASSET_KEYS = ("poster", "sprite", "vtt", "waveform")


class AssetStatus(enum.StrEnum):
    """Where a recording's review assets are."""

    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class Assets:
    """The review assets of one recording."""

    recording_id: str
    poster: Path | None
    sprite: Path | None
    vtt: Path | None
    waveform: Path | None
    status: AssetStatus
    job_id: int | None
    updated_at: str


class AssetsTable:
    """The assets table."""

    def __init__(self, db: Database, jobs: JobQueue, layout: Layout) -> None:
        self._db = db
        self._jobs = jobs
        self._layout = layout

    def request(self, rec_id: str, *, actor: str) -> int:
        """Queue (again) the assets of a playable recording; the job's id."""
        with self._db.transaction() as db:
            row = db.execute("SELECT status, path FROM recordings WHERE id=?",
                             (rec_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no recording {rec_id!r}")
            if row["status"] not in PLAYABLE or not row["path"]:
                raise InputError(f"recording {rec_id} is {row['status']}; "
                                 "assets need a finished film")
            return self._request_in(db, rec_id, actor)

    def _request_in(self, db: sqlite3.Connection, rec_id: str, actor: str) -> int:
        job_id = self._jobs.enqueue_in(db, JobKind.ASSETS, rec_id, {"recording_id": rec_id},
                                       actor=actor)
        db.execute("INSERT INTO assets (recording_id, status, job_id, updated_at) VALUES"
                   " (?, 'pending', ?, ?) ON CONFLICT(recording_id) DO UPDATE SET"
                   " status='pending', job_id=excluded.job_id,"
                   " updated_at=excluded.updated_at", (rec_id, job_id, utc_now()))
        return job_id

    def queue_missing(self, *, actor: str) -> list[int]:
        """Queue assets for every playable recording that has none yet; the jobs' ids."""
        with self._db.read() as db:
            if not self._missing(db):
                return []  # the common case costs one read, no write lock
        with self._db.transaction() as db:
            return [self._request_in(db, rec_id, actor) for rec_id in self._missing(db)]

    @staticmethod
    def _missing(db: sqlite3.Connection) -> list[str]:
        marks = ",".join("?" * len(PLAYABLE))
        rows = db.execute(f"SELECT r.id FROM recordings r LEFT JOIN assets a ON"
                          f" a.recording_id = r.id WHERE a.recording_id IS NULL AND"
                          f" r.path IS NOT NULL AND r.status IN ({marks}) ORDER BY r.started_at",
                          tuple(s.value for s in PLAYABLE)).fetchall()
        return [r["id"] for r in rows]

    def finish(self, job_id: int, rec_id: str, files: dict[str, Path],
               result: dict[str, object]) -> None:
        """Record the made files and end the job done, in one transaction."""
        paths = [self._layout.relative(files[k]) for k in ASSET_KEYS]
        with self._db.transaction() as db:
            db.execute("UPDATE assets SET poster=?, sprite=?, vtt=?, waveform=?,"
                       " status='ready', updated_at=? WHERE recording_id=?",
                       (*paths, utc_now(), rec_id))
            self._jobs.end_in(db, job_id, JobStatus.DONE, result=dict(result))

    def get(self, rec_id: str) -> Assets:
        """The assets row of a recording; NotFoundError if none was ever queued."""
        with self._db.read() as db:
            row = db.execute("SELECT * FROM assets WHERE recording_id=?", (rec_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"recording {rec_id} has no review assets yet")
        files = {k: self._layout.absolute(row[k]) if row[k] else None for k in ASSET_KEYS}
        return Assets(recording_id=row["recording_id"], status=AssetStatus(row["status"]),
                      job_id=row["job_id"], updated_at=row["updated_at"], **files)
