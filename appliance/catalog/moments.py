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
    end_s: float | None = None   # a span marked in review ends here; a mark has none

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"id": self.id, "recording_id": self.recording_id, "at_s": self.at_s,
                "end_s": self.end_s, "source": str(self.source), "tag": self.tag,
                "note": self.note, "created_at": self.created_at}


class Moments:
    """The moments table."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    def add(self, rec_id: str, at_s: float, *, source: MomentSource, actor: str,
            end_s: float | None = None, tag: str | None = None,
            note: str | None = None) -> Moment:
        """Store a marked moment (or span), with its tag and note if given."""
        check_span(at_s, end_s)
        try:
            source = MomentSource(source)
        except ValueError:
            raise InputError(f"unknown moment source {source!r}") from None
        with self._db.transaction() as db:
            if db.execute("SELECT 1 FROM recordings WHERE id=?", (rec_id,)).fetchone() is None:
                raise NotFoundError(f"no recording {rec_id!r}")
            cur = db.execute(
                "INSERT INTO moments (recording_id, at_s, end_s, source, tag, note, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (rec_id, round(at_s, 3), None if end_s is None else round(end_s, 3),
                 MomentSource(source).value, tag, check_note(note), utc_now()))
            moment_id = int(cur.lastrowid or 0)
            # The note is case material: it never goes into the audit detail.
            self._audit.append_in(db, "moment.add", rec_id, actor=actor,
                                  detail={"moment": moment_id, "source": str(source)})
            return _moment(self._row(db, moment_id))

    def edit(self, moment_id: int, *, actor: str, **fields: Any) -> Moment:
        """Change a moment's at_s, end_s, tag or note (the caller checks the tag)."""
        unknown = set(fields) - {"at_s", "end_s", "tag", "note"}
        if unknown:
            raise InputError(f"a moment has no field {sorted(unknown)[0]!r}")
        with self._db.transaction() as db:
            old = _moment(self._row(db, moment_id))
            at_s = fields.get("at_s", old.at_s)
            end_s = fields.get("end_s", old.end_s)
            check_span(at_s, end_s)
            if "note" in fields:
                fields["note"] = check_note(fields["note"])
            row = {"at_s": round(at_s, 3), "end_s": None if end_s is None else round(end_s, 3),
                   "tag": fields.get("tag", old.tag), "note": fields.get("note", old.note),
                   "updated_at": utc_now(), "id": moment_id}
            db.execute("UPDATE moments SET at_s=:at_s, end_s=:end_s, tag=:tag, note=:note,"
                       " updated_at=:updated_at WHERE id=:id", row)
            # Which fields changed, never the note's text (case material).
            self._audit.append_in(db, "moment.edit", old.recording_id, actor=actor,
                                  detail={"moment": moment_id, "fields": sorted(fields)})
            return _moment(self._row(db, moment_id))

    def remove(self, moment_id: int, *, actor: str) -> None:
        """Delete a moment (clips made from it stay)."""
        with self._db.transaction() as db:
            old = _moment(self._row(db, moment_id))
            db.execute("UPDATE clips SET moment_id=NULL WHERE moment_id=?", (moment_id,))
            db.execute("DELETE FROM moments WHERE id=?", (moment_id,))
            self._audit.append_in(db, "moment.remove", old.recording_id, actor=actor,
                                  detail={"moment": moment_id})

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


MAX_NOTE = 2000


def check_span(at_s: float, end_s: float | None) -> None:
    """A moment's time, and its end if it has one, must be real times in order."""
    if not isinstance(at_s, (int, float)) or not math.isfinite(at_s) or at_s < 0:
        raise InputError(f"a moment must be at a time in the recording (got {at_s})")
    if end_s is not None and (not isinstance(end_s, (int, float)) or not math.isfinite(end_s)
                              or end_s <= at_s):
        raise InputError(f"a moment's out point must come after its in point "
                         f"(in {at_s}, out {end_s})")


def check_note(note: str | None) -> str | None:
    """A note: free text up to MAX_NOTE characters; empty means none."""
    if note is None:
        return None
    if not isinstance(note, str):
        raise InputError("a note must be text")
    if len(note) > MAX_NOTE:
        raise InputError(f"a note may have at most {MAX_NOTE} characters")
    return note.strip() or None


def _moment(row: sqlite3.Row) -> Moment:
    return Moment(id=int(row["id"]), recording_id=row["recording_id"], at_s=float(row["at_s"]),
                  source=MomentSource(row["source"]), tag=row["tag"], note=row["note"],
                  created_at=row["created_at"],
                  end_s=None if row["end_s"] is None else float(row["end_s"]))
