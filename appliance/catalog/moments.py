"""Moments: times in a recording marked as worth finding again, later tagged and noted."""

from __future__ import annotations

import enum
import math
import sqlite3
from dataclasses import dataclass
from typing import Any

from appliance.catalog.audit import AuditLog
from appliance.catalog.db import Database, utc_now
from appliance.errors import InputError, NotFoundError


class MomentSource(enum.StrEnum):
    """Where a mark came from."""

    BUTTON = "button"
    CONTROL = "control"
    UI = "ui"


@dataclass(frozen=True)
class Moment:
    """One marked moment (seconds from the recording's start)."""

    id: int
    recording_id: str
    at_s: float
    source: MomentSource
    tag: str | None
    note: str | None
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"id": self.id, "recording_id": self.recording_id, "at_s": self.at_s,
                "source": str(self.source), "tag": self.tag, "note": self.note,
                "created_at": self.created_at}


class Moments:
    """The moments table."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    def add(self, rec_id: str, at_s: float, *, source: MomentSource, actor: str) -> Moment:
        """Store a marked moment."""
        if not math.isfinite(at_s) or at_s < 0:
            raise InputError(f"a moment must be at a time in the recording (got {at_s})")
        try:
            source = MomentSource(source)
        except ValueError:
            raise InputError(f"unknown moment source {source!r}") from None
        with self._db.transaction() as db:
            if db.execute("SELECT 1 FROM recordings WHERE id=?", (rec_id,)).fetchone() is None:
                raise NotFoundError(f"no recording {rec_id!r}")
            cur = db.execute(
                "INSERT INTO moments (recording_id, at_s, source, created_at) VALUES (?,?,?,?)",
                (rec_id, round(at_s, 3), MomentSource(source).value, utc_now()))
            moment_id = int(cur.lastrowid or 0)
            # The note is case material: it never goes into the audit detail.
            self._audit.append_in(db, "moment.add", rec_id, actor=actor,
                                  detail={"moment": moment_id, "source": str(source)})
            return _moment(self._row(db, moment_id))

    def get(self, moment_id: int) -> Moment:
        """One moment; NotFoundError if unknown."""
        with self._db.read() as db:
            return _moment(self._row(db, moment_id))

    def list(self, rec_id: str) -> list[Moment]:
        """The moments of one recording, in time order."""
        with self._db.read() as db:
            rows = db.execute("SELECT * FROM moments WHERE recording_id=? ORDER BY at_s, id",
                              (rec_id,)).fetchall()
        return [_moment(r) for r in rows]

    @staticmethod
    def _row(db: sqlite3.Connection, moment_id: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM moments WHERE id=?", (moment_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no moment {moment_id}")
        return row


def _moment(row: sqlite3.Row) -> Moment:
    return Moment(id=int(row["id"]), recording_id=row["recording_id"], at_s=float(row["at_s"]),
                  source=MomentSource(row["source"]), tag=row["tag"], note=row["note"],
                  created_at=row["created_at"])
