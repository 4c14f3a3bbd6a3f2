"""Clips, stills and review films: each row is created with the job that makes it, in one
transaction, and becomes ready together with the job's end, in one transaction."""

from __future__ import annotations

import enum
import json
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.catalog.db import Database, utc_now
from appliance.catalog.jobs import JobKind, JobQueue, JobStatus
from appliance.errors import NotFoundError
from appliance.layout import Layout


class MediaStatus(enum.StrEnum):
    """Where a clip, still or film is."""

    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Clip:
    """A clip cut from a recording."""

    id: str
    recording_id: str
    moment_id: int | None
    start_s: float
    end_s: float
    exact: bool
    real_start_s: float | None
    duration_s: float | None
    handles_s: float
    caption: str | None
    path: Path | None
    status: MediaStatus
    job_id: int | None
    created_at: str
    moment_tag: str | None = None
    moment_note: str | None = None


@dataclass(frozen=True)
class Still:
    """A single frame taken from a recording."""

    id: str
    recording_id: str
    at_s: float
    frame: int | None
    path: Path | None
    status: MediaStatus
    job_id: int | None
    created_at: str


@dataclass(frozen=True)
class Film:
    """A review film: clips joined in order."""

    id: str
    clip_ids: list[str]
    titles: bool
    path: Path | None
    duration_s: float | None
    status: MediaStatus
    job_id: int | None
    created_at: str


def new_id(prefix: str) -> str:
    """An unguessable id such as clip-3fa2b1c0."""
    return f"{prefix}-{secrets.token_hex(4)}"


class Media:
    """The clips, stills and films tables."""

    def __init__(self, db: Database, jobs: JobQueue, layout: Layout) -> None:
        self._db = db
        self._jobs = jobs
        self._layout = layout

    # -- requests: the row and its job together ------------------------------------------

    def request_clip(self, rec_id: str, start_s: float, end_s: float, *, exact: bool,
                     handles_s: float, caption: str | None, moment_id: int | None,
                     actor: str) -> int:
        """Create a pending clip and the job that renders it; the job's id."""
        clip_id = new_id("clip")
        with self._db.transaction() as db:
            job_id = self._jobs.enqueue_in(db, JobKind.CLIP, clip_id, {
                "recording_id": rec_id, "start_s": start_s, "end_s": end_s, "exact": exact,
                "handles_s": handles_s, "caption": caption}, actor=actor)
            db.execute("INSERT INTO clips (id, recording_id, moment_id, start_s, end_s, exact,"
                       " handles_s, caption, status, job_id, created_at)"
                       " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (clip_id, rec_id, moment_id, start_s, end_s, int(exact), handles_s,
                        caption, "pending", job_id, utc_now()))
        return job_id

    def request_still(self, rec_id: str, at_s: float, *, actor: str) -> int:
        """Create a pending still and its job; the job's id."""
        still_id = new_id("still")
        with self._db.transaction() as db:
            job_id = self._jobs.enqueue_in(db, JobKind.STILL, still_id,
                                           {"recording_id": rec_id, "at_s": at_s}, actor=actor)
            db.execute("INSERT INTO stills (id, recording_id, at_s, status, job_id, created_at)"
                       " VALUES (?,?,?,?,?,?)", (still_id, rec_id, at_s, "pending", job_id,
                                                 utc_now()))
        return job_id

    def request_film(self, clip_ids: list[str], *, titles: bool, actor: str,
                     title_texts: list[str | None] | None = None) -> int:
        """Create a pending review film and its job; the job's id. `title_texts` (one per
        clip) replace the titles taken from the clips' moments."""
        film_id = new_id("film")
        params: dict[str, Any] = {"clip_ids": clip_ids, "titles": titles}
        if title_texts is not None:
            params["title_texts"] = title_texts
        with self._db.transaction() as db:
            job_id = self._jobs.enqueue_in(db, JobKind.FILM, film_id, params, actor=actor)
            db.execute("INSERT INTO films (id, clip_ids, titles, status, job_id, created_at)"
                       " VALUES (?,?,?,?,?,?)", (film_id, json.dumps(clip_ids), int(titles),
                                                 "pending", job_id, utc_now()))
        return job_id

    # -- completion: the row and its job together ----------------------------------------

    def finish(self, job_id: int, kind: JobKind, item_id: str, fields: dict[str, Any],
               result: dict[str, Any]) -> None:
        """Make the clip, still or film ready with `fields` and end its job done."""
        table = {JobKind.CLIP: "clips", JobKind.STILL: "stills", JobKind.FILM: "films"}[kind]
        values = dict(fields)
        if values.get("path") is not None:
            values["path"] = self._layout.relative(Path(values["path"]))
        sets = ", ".join(f"{k}=?" for k in values)
        with self._db.transaction() as db:
            db.execute(f"UPDATE {table} SET status='ready', {sets} WHERE id=?",
                       (*values.values(), item_id))
            self._jobs.end_in(db, job_id, JobStatus.DONE, result=result)

    # -- reads -----------------------------------------------------------------------------

    def clip(self, clip_id: str) -> Clip:
        """One clip (with its moment's tag and note); NotFoundError if unknown."""
        with self._db.read() as db:
            row = db.execute("SELECT c.*, m.tag AS moment_tag, m.note AS moment_note FROM"
                             " clips c LEFT JOIN moments m ON m.id = c.moment_id WHERE c.id=?",
                             (clip_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no clip {clip_id!r}")
        return self._clip(row)

    def clips(self, rec_id: str) -> list[Clip]:
        """The clips of a recording, oldest first."""
        with self._db.read() as db:
            rows = db.execute("SELECT c.*, m.tag AS moment_tag, m.note AS moment_note FROM"
                              " clips c LEFT JOIN moments m ON m.id = c.moment_id"
                              " WHERE c.recording_id=? ORDER BY c.created_at, c.id",
                              (rec_id,)).fetchall()
        return [self._clip(r) for r in rows]

    def clips_by_recording(self) -> dict[str, list[Clip]]:
        """Every clip, grouped by recording, in one query (a home page, a sync run)."""
        with self._db.read() as db:
            rows = db.execute("SELECT c.*, m.tag AS moment_tag, m.note AS moment_note FROM"
                              " clips c LEFT JOIN moments m ON m.id = c.moment_id"
                              " ORDER BY c.recording_id, c.created_at, c.id").fetchall()
        out: dict[str, list[Clip]] = {}
        for row in rows:
            out.setdefault(row["recording_id"], []).append(self._clip(row))
        return out

    def still(self, still_id: str) -> Still:
        """One still; NotFoundError if unknown."""
        with self._db.read() as db:
            row = db.execute("SELECT * FROM stills WHERE id=?", (still_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no still {still_id!r}")
        return self._still(row)

    def stills(self, rec_id: str) -> list[Still]:
        """The stills of a recording, oldest first."""
        with self._db.read() as db:
            rows = db.execute("SELECT * FROM stills WHERE recording_id=? ORDER BY created_at,"
                              " id", (rec_id,)).fetchall()
        return [self._still(r) for r in rows]

    def film(self, film_id: str) -> Film:
        """One review film; NotFoundError if unknown."""
        with self._db.read() as db:
            row = db.execute("SELECT * FROM films WHERE id=?", (film_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no review film {film_id!r}")
        return self._film(row)

    def films(self) -> list[Film]:
        """Every review film, oldest first."""
        with self._db.read() as db:
            rows = db.execute("SELECT * FROM films ORDER BY created_at, id").fetchall()
        return [self._film(r) for r in rows]

    def _film(self, row: sqlite3.Row) -> Film:
        return Film(id=row["id"], clip_ids=json.loads(row["clip_ids"]),
                    titles=bool(row["titles"]), path=self._path(row["path"]),
                    duration_s=row["duration_s"], status=MediaStatus(row["status"]),
                    job_id=row["job_id"], created_at=row["created_at"])

    def forget_file(self, kind: str, item_id: str) -> None:
        """The clip's, still's or film's file is gone from the box (kept at the office)."""
        table = {"clip": "clips", "still": "stills", "film": "films"}[kind]
        with self._db.transaction() as db:
            db.execute(f"UPDATE {table} SET path=NULL WHERE id=?", (item_id,))

    def _path(self, stored: str | None) -> Path | None:
        return self._layout.absolute(stored) if stored else None

    def _clip(self, row: sqlite3.Row) -> Clip:
        return Clip(id=row["id"], recording_id=row["recording_id"], moment_id=row["moment_id"],
                    start_s=row["start_s"], end_s=row["end_s"], exact=bool(row["exact"]),
                    real_start_s=row["real_start_s"], duration_s=row["duration_s"],
                    handles_s=row["handles_s"], caption=row["caption"],
                    path=self._path(row["path"]), status=MediaStatus(row["status"]),
                    job_id=row["job_id"], created_at=row["created_at"],
                    moment_tag=row["moment_tag"], moment_note=row["moment_note"])

    def _still(self, row: sqlite3.Row) -> Still:
        return Still(id=row["id"], recording_id=row["recording_id"], at_s=row["at_s"],
                     frame=row["frame"], path=self._path(row["path"]),
                     status=MediaStatus(row["status"]), job_id=row["job_id"],
                     created_at=row["created_at"])
