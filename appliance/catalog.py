"""The catalog: SQLite (WAL) in the data dir, the single source of truth.

Every state change is written with its audit entry in the same transaction.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from appliance.catalog_schema import MIGRATIONS
from appliance.errors import CatalogError, InputError, NotFoundError

CONSENT_SCOPES = ("filming", "supervision", "training")
RECORDING_STATUSES = ("recording", "finalizing", "ready", "recovered", "failed")
# Pseudonymous codes only: capitals, digits and hyphens, with at least one digit,
# so a family name cannot be typed in by mistake.
CASE_CODE_RE = re.compile(r"^(?=.*[0-9])[A-Z0-9][A-Z0-9-]{2,31}$")


def utc_now() -> str:
    """The current time as ISO 8601 UTC with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_case_code(code: str) -> str:
    """Return `code` if it is a valid pseudonymous case code, else raise InputError."""
    if not CASE_CODE_RE.fullmatch(code):  # fullmatch: `$` alone lets a trailing "\n" in
        raise InputError(
            f"case code {code!r} is not valid: use 3-32 capital letters, digits and hyphens "
            "with at least one digit (e.g. VIG-2026-014), never a family name")
    return code


@dataclass(frozen=True)
class Recording:
    """One recording as the catalog knows it."""

    id: str
    case: str | None
    started_at: str
    duration_s: float | None
    status: str
    origin: str
    dir: Path
    path: Path | None
    width: int | None
    height: int | None
    fps: float | None
    video_frames: int | None
    dropped_frames: int | None
    audio: str | None
    problems: list[str]

    def to_json(self) -> dict[str, Any]:
        """The recording contract of DESIGN.md §5 plus detail fields."""
        return {
            "id": self.id, "case": self.case, "started_at": self.started_at,
            "duration_s": self.duration_s, "status": self.status,
            "path": str(self.path) if self.path else None, "origin": self.origin,
            "width": self.width, "height": self.height, "fps": self.fps,
            "video_frames": self.video_frames, "dropped_frames": self.dropped_frames,
            "audio": self.audio, "problems": self.problems,
        }


class Catalog:
    """Access to the catalog database; safe to share between threads."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "catalog.sqlite3"
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                       check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as e:
            raise CatalogError(f"cannot open the catalog at {self.path}: {e}") from None
        self._lock = threading.RLock()
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: BEGIN IMMEDIATE ... COMMIT, rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads only: no write lock, so a reader polling (a job's
        progress, its cancel flag) never holds up a writer such as capture."""
        with self._lock:
            yield self._db

    @property
    def schema_version(self) -> int:
        """The number of migrations applied."""
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise CatalogError(f"the catalog is schema {current}, newer than this vigbox "
                               f"({len(MIGRATIONS)}); upgrade vigbox")
        for number in range(current + 1, len(MIGRATIONS) + 1):
            with self.transaction() as db:
                for statement in _split_sql(MIGRATIONS[number - 1]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    # -- audit -----------------------------------------------------------------

    def _audit(self, db: sqlite3.Connection, action: str, subject: str | None,
               actor: str, detail: dict[str, Any] | None = None) -> None:
        db.execute("INSERT INTO audit (at, actor, action, subject, detail) VALUES (?,?,?,?,?)",
                   (utc_now(), actor, action, subject, json.dumps(detail or {}, sort_keys=True)))

    def audit_in(self, db: sqlite3.Connection, action: str, subject: str | None, *,
                 actor: str, detail: dict[str, Any] | None = None) -> None:
        """Append an audit entry inside a transaction another module opened."""
        self._audit(db, action, subject, actor, detail)

    def relative(self, path: Path) -> str:
        """A path as stored in the catalog: relative to the data dir."""
        return self._rel(path)

    def audit(self, action: str, subject: str | None = None, *, actor: str = "system",
              detail: dict[str, Any] | None = None) -> None:
        """Append one entry to the audit log (views, exports, uploads, deletions...)."""
        with self.transaction() as db:
            self._audit(db, action, subject, actor, detail)

    def audit_log(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest audit entries, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM (SELECT * FROM audit ORDER BY id DESC LIMIT ?) ORDER BY id",
                (limit,)).fetchall()
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]

    # -- cases -----------------------------------------------------------------

    def add_case(self, code: str, consents: dict[str, str], *, actor: str = "cli") -> None:
        """Register a case by its pseudonymous code with the consent scopes given."""
        check_case_code(code)
        _check_consents(consents)
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM cases WHERE code=?", (code,)).fetchone():
                raise InputError(f"case {code} already exists")
            db.execute(
                "INSERT INTO cases (code, created_at, consent_filming, consent_supervision,"
                " consent_training) VALUES (?,?,?,?,?)",
                (code, utc_now(), *(consents.get(s) for s in CONSENT_SCOPES)))
            self._audit(db, "case.add", code, actor, {"consent": sorted(consents)})

    def set_consent(self, code: str, consents: dict[str, str | None], *,
                    actor: str = "cli") -> dict[str, Any]:
        """Record consent given (a date) or withdrawn (None) for scopes of a case."""
        _check_consents({s: w for s, w in consents.items() if w is not None})
        for scope in consents:
            if scope not in CONSENT_SCOPES:
                raise InputError(f"unknown consent scope {scope!r}; "
                                 f"use {', '.join(CONSENT_SCOPES)}")
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM cases WHERE code=?", (code,)).fetchone() is None:
                raise NotFoundError(f"no case {code!r}; add it with `vigbox cases add {code}`")
            for scope, when in consents.items():
                db.execute(f"UPDATE cases SET consent_{scope}=? WHERE code=?", (when, code))
            self._audit(db, "case.consent", code, actor,
                        {"given": sorted(s for s, w in consents.items() if w),
                         "withdrawn": sorted(s for s, w in consents.items() if w is None)})
        return self.get_case(code)

    def get_case(self, code: str) -> dict[str, Any]:
        """One case as plain data; NotFoundError if there is none."""
        with self._lock:
            row = self._db.execute("SELECT * FROM cases WHERE code=?", (code,)).fetchone()
        if row is None:
            raise NotFoundError(f"no case {code!r}; add it with `vigbox cases add {code}`")
        return _case_json(row)

    def list_cases(self) -> list[dict[str, Any]]:
        """All cases, by code."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM cases ORDER BY code").fetchall()
        return [_case_json(r) for r in rows]

    # -- recordings --------------------------------------------------------------

    def create_recording(self, rec_id: str, *, case: str | None, started_at: str,
                         directory: Path, origin: str, status: str = "recording",
                         actor: str = "capture", **fields: Any) -> Recording:
        """Insert a new recording row (and its audit entry)."""
        if case is not None:
            self.get_case(case)
        with self.transaction() as db:
            now = utc_now()
            db.execute(
                "INSERT INTO recordings (id, case_code, started_at, status, origin, dir,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                (rec_id, case, started_at, status, origin, self._rel(directory), now, now))
            self._update(db, rec_id, fields)
            self._audit(db, f"recording.{status}", rec_id, actor, {"origin": origin})
        return self.get_recording(rec_id)

    def update_recording(self, rec_id: str, *, actor: str = "capture",
                         **fields: Any) -> Recording:
        """Change fields of a recording; a status change is audited."""
        if "status" in fields and fields["status"] not in RECORDING_STATUSES:
            raise CatalogError(f"bad recording status {fields['status']!r}")
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM recordings WHERE id=?", (rec_id,)).fetchone() is None:
                raise NotFoundError(f"no recording {rec_id!r}")
            self._update(db, rec_id, fields)
            if "status" in fields:
                detail = {"problems": fields.get("problems", [])}
                self._audit(db, f"recording.{fields['status']}", rec_id, actor, detail)
        return self.get_recording(rec_id)

    def _update(self, db: sqlite3.Connection, rec_id: str, fields: dict[str, Any]) -> None:
        if not fields:
            return
        allowed = {"duration_s", "status", "path", "width", "height", "fps", "video_frames",
                   "dropped_frames", "audio", "problems"}
        unknown = set(fields) - allowed
        if unknown:
            raise CatalogError(f"cannot set {sorted(unknown)} on a recording")
        values = dict(fields)
        if "path" in values and values["path"] is not None:
            values["path"] = self._rel(Path(values["path"]))
        if "problems" in values:
            values["problems"] = json.dumps(list(values["problems"]))
        sets = ", ".join(f"{k}=?" for k in values)
        db.execute(f"UPDATE recordings SET {sets}, updated_at=? WHERE id=?",
                   (*values.values(), utc_now(), rec_id))

    def get_recording(self, rec_id: str) -> Recording:
        """One recording; NotFoundError if unknown."""
        with self._lock:
            row = self._db.execute("SELECT * FROM recordings WHERE id=?", (rec_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no recording {rec_id!r}; list them with `vigbox recordings`")
        return self._recording(row)

    def list_recordings(self, statuses: tuple[str, ...] | None = None) -> list[Recording]:
        """Recordings, oldest first, optionally only those in `statuses`."""
        query, args = "SELECT * FROM recordings", ()
        if statuses:
            query += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = statuses
        with self._lock:
            rows = self._db.execute(query + " ORDER BY started_at, id", args).fetchall()
        return [self._recording(r) for r in rows]

    def _recording(self, row: sqlite3.Row) -> Recording:
        return Recording(
            id=row["id"], case=row["case_code"], started_at=row["started_at"],
            duration_s=row["duration_s"], status=row["status"], origin=row["origin"],
            dir=self.data_dir / row["dir"],
            path=(self.data_dir / row["path"]) if row["path"] else None,
            width=row["width"], height=row["height"], fps=row["fps"],
            video_frames=row["video_frames"], dropped_frames=row["dropped_frames"],
            audio=row["audio"], problems=json.loads(row["problems"]))

    def _rel(self, path: Path) -> str:
        # Stored relative to the data dir so the whole dir can be moved or restored.
        try:
            return str(Path(path).resolve().relative_to(self.data_dir.resolve()))
        except ValueError:
            raise CatalogError(f"{path} is outside the data dir {self.data_dir}") from None

    # -- moments -----------------------------------------------------------------

    def add_moment(self, rec_id: str, at_s: float, *, source: str,
                   actor: str = "capture") -> int:
        """Store a marked moment (seconds from the recording's start); returns its id."""
        if at_s < 0:
            raise InputError(f"a moment cannot be before the start (at {at_s} s)")
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM recordings WHERE id=?", (rec_id,)).fetchone() is None:
                raise NotFoundError(f"no recording {rec_id!r}")
            cur = db.execute(
                "INSERT INTO moments (recording_id, at_s, source, created_at) VALUES (?,?,?,?)",
                (rec_id, round(at_s, 3), source, utc_now()))
            moment_id = int(cur.lastrowid or 0)
            self._audit(db, "moment.add", rec_id, actor, {"moment": moment_id, "source": source})
        return moment_id

    def list_moments(self, rec_id: str) -> list[dict[str, Any]]:
        """The moments of one recording, in time order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, recording_id, at_s, source, tag, note, created_at FROM moments"
                " WHERE recording_id=? ORDER BY at_s, id", (rec_id,)).fetchall()
        return [dict(r) for r in rows]


def _check_consents(consents: dict[str, str]) -> None:
    for scope, when in consents.items():
        if scope not in CONSENT_SCOPES:
            raise InputError(f"unknown consent scope {scope!r}; use {', '.join(CONSENT_SCOPES)}")
        try:
            date.fromisoformat(when)
        except (TypeError, ValueError):
            raise InputError(f"consent date {when!r} for {scope} is not YYYY-MM-DD") from None


def _case_json(row: sqlite3.Row) -> dict[str, Any]:
    consent = {s: row[f"consent_{s}"] for s in CONSENT_SCOPES if row[f"consent_{s}"]}
    return {"code": row["code"], "created_at": row["created_at"], "consent": consent}


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements, current = [], []
    for line in script.splitlines():
        current.append(line)
        joined = "\n".join(current).strip()
        if joined.endswith(";") and sqlite3.complete_statement(joined):
            statements.append(joined)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements
