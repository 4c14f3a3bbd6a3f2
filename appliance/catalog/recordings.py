"""Recordings: one row per film, from the button press (or import) to playable or failed."""

from __future__ import annotations

import enum
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.catalog.audit import AuditLog
from appliance.catalog.db import Database, utc_now
from appliance.errors import CatalogError, NotFoundError
from appliance.layout import Layout, check_id


class RecordingStatus(enum.StrEnum):
    """Where a recording is in its life."""

    RECORDING = "recording"
    FINALIZING = "finalizing"
    READY = "ready"
    RECOVERED = "recovered"
    FAILED = "failed"


PLAYABLE = (RecordingStatus.READY, RecordingStatus.RECOVERED)
INTERRUPTED = (RecordingStatus.RECORDING, RecordingStatus.FINALIZING)


class Origin(enum.StrEnum):
    """How a recording came to the box."""

    CAPTURE = "capture"
    IMPORT = "import"


FIELDS = ("duration_s", "status", "path", "width", "height", "fps", "video_frames",
          "dropped_frames", "audio", "problems", "kind")


def new_recording_id(now: datetime | None = None) -> str:
    """A sortable, unguessable id such as 20261124-101530-3fa2 (`now`: the box's wall
    clock, by default this machine's)."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d-%H%M%S-") \
        + secrets.token_hex(2)


@dataclass(frozen=True)
class Recording:
    """One recording as the catalog knows it."""

    id: str
    case: str | None
    started_at: str
    duration_s: float | None
    status: RecordingStatus
    origin: Origin
    dir: Path
    path: Path | None
    width: int | None
    height: int | None
    fps: float | None
    video_frames: int | None
    dropped_frames: int | None
    audio: str | None
    problems: list[str]
    kind: str = "interaction"   # or "review": a filmed shared review of the case

    @property
    def playable(self) -> bool:
        """True once the film can be watched and cut."""
        return self.status in PLAYABLE and self.path is not None

    def to_json(self) -> dict[str, Any]:
        """The recording contract of DESIGN.md §5 plus detail fields."""
        return {
            "id": self.id, "case": self.case, "started_at": self.started_at,
            "duration_s": self.duration_s, "status": str(self.status),
            "path": str(self.path) if self.path else None, "origin": str(self.origin),
            "width": self.width, "height": self.height, "fps": self.fps,
            "video_frames": self.video_frames, "dropped_frames": self.dropped_frames,
            "audio": self.audio, "problems": list(self.problems), "kind": self.kind,
        }


class Recordings:
    """The recordings table."""

    def __init__(self, db: Database, audit: AuditLog, layout: Layout) -> None:
        self._db = db
        self._audit = audit
        self._layout = layout

    def create(self, rec_id: str, *, case: str | None, started_at: str, origin: Origin,
               actor: str, status: RecordingStatus = RecordingStatus.RECORDING,
               **fields: Any) -> Recording:
        """Insert a new recording row (and its audit entry); its folder is the layout's."""
        check_id("recording", rec_id)
        with self._db.transaction() as db:
            if case is not None and db.execute("SELECT 1 FROM cases WHERE code=?",
                                               (case,)).fetchone() is None:
                raise NotFoundError(f"no case {case!r}; add it with `vigbox cases add {case}`")
            now = utc_now()
            db.execute(
                "INSERT INTO recordings (id, case_code, started_at, status, origin, dir,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                (rec_id, case, started_at, RecordingStatus(status).value, Origin(origin).value,
                 self._layout.relative(self._layout.recording_dir(rec_id)), now, now))
            self._set(db, rec_id, fields)
            self._audit.append_in(db, f"recording.{status}", rec_id, actor=actor,
                                  detail={"origin": str(origin)})
        return self.get(rec_id)

    def update(self, rec_id: str, *, actor: str, **fields: Any) -> Recording:
        """Change fields of a recording; a status change is audited."""
        with self._db.transaction() as db:
            if db.execute("SELECT 1 FROM recordings WHERE id=?", (rec_id,)).fetchone() is None:
                raise NotFoundError(f"no recording {rec_id!r}")
            self._set(db, rec_id, fields)
            if "status" in fields:
                self._audit.append_in(db, f"recording.{fields['status']}", rec_id, actor=actor,
                                      detail={"problems": list(fields.get("problems", []))})
        return self.get(rec_id)

    def set_case(self, rec_id: str, case: str | None, *, actor: str) -> Recording:
        """File a recording under a case (or under none), audited."""
        with self._db.transaction() as db:
            old = db.execute("SELECT case_code FROM recordings WHERE id=?", (rec_id,)).fetchone()
            if old is None:
                raise NotFoundError(f"no recording {rec_id!r}")
            db.execute("UPDATE recordings SET case_code=?, updated_at=? WHERE id=?",
                       (case, utc_now(), rec_id))
            self._audit.append_in(db, "recording.case", rec_id, actor=actor,
                                  detail={"from": old["case_code"], "to": case})
        return self.get(rec_id)

    def _set(self, db: sqlite3.Connection, rec_id: str, fields: dict[str, Any]) -> None:
        if not fields:
            return
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise CatalogError(f"cannot set {sorted(unknown)} on a recording")
        values = dict(fields)
        if "status" in values:
            try:
                values["status"] = RecordingStatus(values["status"]).value
            except ValueError:
                raise CatalogError(f"bad recording status {values['status']!r}") from None
        if values.get("path") is not None:
            values["path"] = self._layout.relative(Path(values["path"]))
        if "problems" in values:
            values["problems"] = json.dumps(list(values["problems"]))
        sets = ", ".join(f"{k}=?" for k in values)
        db.execute(f"UPDATE recordings SET {sets}, updated_at=? WHERE id=?",
                   (*values.values(), utc_now(), rec_id))

    def get(self, rec_id: str) -> Recording:
        """One recording; NotFoundError if unknown."""
        with self._db.read() as db:
            row = db.execute("SELECT * FROM recordings WHERE id=?", (rec_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no recording {rec_id!r}; list them with `vigbox recordings`")
        return self._recording(row)

    def exists(self, rec_id: str) -> bool:
        """True if the catalog has a row for `rec_id`."""
        with self._db.read() as db:
            return db.execute("SELECT 1 FROM recordings WHERE id=?",
                              (rec_id,)).fetchone() is not None

    def list(self, statuses: tuple[RecordingStatus, ...] | None = None) -> list[Recording]:
        """Recordings, oldest first, optionally only those in `statuses`."""
        query = "SELECT * FROM recordings"
        args: tuple[str, ...] = ()
        if statuses:
            query += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = tuple(RecordingStatus(s).value for s in statuses)
        with self._db.read() as db:
            rows = db.execute(query + " ORDER BY started_at, id", args).fetchall()
        return [self._recording(r) for r in rows]

    def _recording(self, row: sqlite3.Row) -> Recording:
        return Recording(
            id=row["id"], case=row["case_code"], started_at=row["started_at"],
            duration_s=row["duration_s"], status=RecordingStatus(row["status"]),
            origin=Origin(row["origin"]), dir=self._layout.absolute(row["dir"]),
            path=self._layout.absolute(row["path"]) if row["path"] else None,
            width=row["width"], height=row["height"], fps=row["fps"],
            video_frames=row["video_frames"], dropped_frames=row["dropped_frames"],
            audio=row["audio"], problems=json.loads(row["problems"]), kind=row["kind"])
