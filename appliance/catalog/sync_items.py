"""What the box sends to the office, one row per file, from planned to verified.

A row is planned with its name at the office, sealed once (age ciphertext in the outbox,
hashed), then sent, possibly over many runs (bytes sent and an S3 upload's parts are kept),
and verified at the office. A verified row is never sent again; every upload is audited.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from appliance.catalog.audit import AuditLog
from appliance.catalog.db import Database, utc_now
from appliance.errors import NotFoundError


class SyncKind(enum.StrEnum):
    """What a sent file is."""

    CLIP = "clip"
    STILL = "still"
    FILM = "film"
    RECORDING = "recording"
    MANIFEST = "manifest"
    ERASURE = "erasure"    # the family asked for the case to be erased


class SyncStatus(enum.StrEnum):
    """Where a file is on its way to the office."""

    PLANNED = "planned"     # known, not yet sealed
    SEALED = "sealed"       # ciphertext in the outbox, hashed; being sent
    VERIFIED = "verified"   # at the office, checked; never sent again
    DROPPED = "dropped"     # no longer to be sent (consent withdrawn, file gone)


@dataclass(frozen=True)
class SyncItem:
    """One file on its way to the office."""

    id: int
    recording_id: str | None
    case_code: str | None
    kind: SyncKind
    item_id: str
    remote_name: str
    plain_size: int | None
    plain_sha256: str | None
    sealed_name: str | None   # its file in the outbox (Layout.outbox)
    sealed_size: int | None
    sealed_sha256: str | None
    status: SyncStatus
    sent_bytes: int
    resent_bytes: int
    attempts: int
    next_try_at: float
    last_error: str | None
    multipart_id: str | None
    parts: list[dict[str, Any]]
    verified_at: str | None

    def to_json(self) -> dict[str, Any]:
        """Plain data for the UI and `vigbox sync --json` (no paths on the box)."""
        return {"id": self.id, "recording_id": self.recording_id, "case": self.case_code,
                "kind": str(self.kind), "item_id": self.item_id, "name": self.remote_name,
                "status": str(self.status), "size": self.sealed_size or self.plain_size,
                "sent_bytes": self.sent_bytes, "attempts": self.attempts,
                "next_try_at": self.next_try_at, "last_error": self.last_error,
                "verified_at": self.verified_at}


class SyncItems:
    """The sync_items and sync_state tables."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    # -- planning -------------------------------------------------------------------------

    def plan(self, kind: SyncKind, item_id: str, remote_name: str, *,
             recording_id: str | None, case_code: str | None) -> SyncItem:
        """The row for this file at the office, made if new (planning twice is harmless)."""
        now = utc_now()
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO sync_items (recording_id, case_code, kind, item_id, remote_name,"
                " status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)"
                " ON CONFLICT(remote_name) DO NOTHING",
                (recording_id, case_code, str(kind), item_id, remote_name,
                 str(SyncStatus.PLANNED), now, now))
            row = db.execute("SELECT * FROM sync_items WHERE remote_name=?",
                             (remote_name,)).fetchone()
        return _item(row)

    def get(self, item: int) -> SyncItem:
        """One row by id."""
        with self._db.read() as db:
            return _item(self._row(db, item))

    def of(self, kind: SyncKind, item_id: str) -> list[SyncItem]:
        """The rows that send one clip, still, film or recording (or a case's erasure)."""
        with self._db.read() as db:
            rows = db.execute("SELECT * FROM sync_items WHERE kind=? AND item_id=? ORDER BY id",
                              (str(kind), item_id)).fetchall()
        return [_item(r) for r in rows]

    def queue(self, *, status: SyncStatus | None = None, limit: int = 10_000) -> list[SyncItem]:
        """Rows in the order they are sent (files of a recording before its manifest)."""
        where, args = ("WHERE status=?", [str(status)]) if status else ("", [])
        with self._db.read() as db:
            rows = db.execute(
                f"SELECT * FROM sync_items {where} ORDER BY"
                " CASE kind WHEN 'manifest' THEN 1 WHEN 'erasure' THEN 2 ELSE 0 END, id"
                " LIMIT ?", (*args, limit)).fetchall()
        return [_item(r) for r in rows]

    # -- progress -------------------------------------------------------------------------

    def sealed(self, item: int, *, name: str, size: int, sha256: str, plain_size: int,
               plain_sha256: str) -> SyncItem:
        """The file is sealed into the outbox as `name`: these exact bytes are what gets
        sent."""
        self._update(item, status=str(SyncStatus.SEALED), sealed_path=name,
                     sealed_size=size, sealed_sha256=sha256, plain_size=plain_size,
                     plain_sha256=plain_sha256, sent_bytes=0)
        return self.get(item)

    def progress(self, item: int, sent_bytes: int, *, resent: int = 0) -> None:
        """Bytes of the sealed file now safely at the office (and bytes sent again)."""
        with self._db.transaction() as db:
            db.execute("UPDATE sync_items SET sent_bytes=?, resent_bytes=resent_bytes+?,"
                       " updated_at=? WHERE id=?", (sent_bytes, resent, utc_now(), item))

    def multipart(self, item: int, upload_id: str | None, parts: list[dict[str, Any]]) -> None:
        """An S3 multipart upload's id and the parts it holds, for the next run to resume."""
        self._update(item, multipart_id=upload_id, parts=json.dumps(parts))

    def verified(self, item: int, *, destination: str, actor: str) -> SyncItem:
        """At the office and checked: audited, and never sent again."""
        now = utc_now()
        with self._db.transaction() as db:
            row = _item(self._row(db, item))
            db.execute("UPDATE sync_items SET status=?, verified_at=?, sent_bytes=sealed_size,"
                       " last_error=NULL, next_try_at=0, updated_at=? WHERE id=?",
                       (str(SyncStatus.VERIFIED), now, now, item))
            self._audit.append_in(db, "sync.upload", row.remote_name, actor=actor, detail={
                "kind": str(row.kind), "item": row.item_id, "case": row.case_code,
                "size": row.sealed_size, "sha256": row.sealed_sha256,
                "destination": destination})
        return self.get(item)

    def failed(self, item: int, error: str, *, retry_at: float) -> None:
        """A try failed (the reason, in words); the next try waits until `retry_at`."""
        with self._db.transaction() as db:
            db.execute("UPDATE sync_items SET attempts=attempts+1, last_error=?, next_try_at=?,"
                       " updated_at=? WHERE id=?", (error[:500], retry_at, utc_now(), item))

    def drop(self, item: int, reason: str, *, actor: str) -> None:
        """Stop sending a file that is not yet at the office (audited)."""
        with self._db.transaction() as db:
            row = _item(self._row(db, item))
            if row.status is SyncStatus.VERIFIED:
                return
            db.execute("UPDATE sync_items SET status=?, last_error=?, updated_at=? WHERE id=?",
                       (str(SyncStatus.DROPPED), reason, utc_now(), item))
            self._audit.append_in(db, "sync.drop", row.remote_name, actor=actor,
                                  detail={"reason": reason})

    def restart(self, item: int, reason: str) -> None:
        """Send a sealed file again from its first byte (the office copy was wrong)."""
        self._update(item, sent_bytes=0, multipart_id=None, parts="[]", last_error=reason)

    # -- the destination's condition ------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What is known about the office destination (last good sync, why sync stopped)."""
        with self._db.read() as db:
            rows = db.execute("SELECT key, value FROM sync_state").fetchall()
        return {r["key"]: json.loads(r["value"]) for r in rows}

    def set_state(self, **values: Any) -> None:
        """Change some of it (None removes a key)."""
        with self._db.transaction() as db:
            for key, value in values.items():
                if value is None:
                    db.execute("DELETE FROM sync_state WHERE key=?", (key,))
                else:
                    db.execute("INSERT INTO sync_state (key, value) VALUES (?,?) ON CONFLICT(key)"
                               " DO UPDATE SET value=excluded.value", (key, json.dumps(value)))

    # -- helpers --------------------------------------------------------------------------

    def _update(self, item: int, **columns: Any) -> None:
        sets = ", ".join(f"{c}=?" for c in columns)
        with self._db.transaction() as db:
            self._row(db, item)
            db.execute(f"UPDATE sync_items SET {sets}, updated_at=? WHERE id=?",
                       (*columns.values(), utc_now(), item))

    @staticmethod
    def _row(db: sqlite3.Connection, item: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM sync_items WHERE id=?", (item,)).fetchone()
        if row is None:
            raise NotFoundError(f"no sync item {item}")
        return row


def _item(row: sqlite3.Row) -> SyncItem:
    return SyncItem(
        id=int(row["id"]), recording_id=row["recording_id"], case_code=row["case_code"],
        kind=SyncKind(row["kind"]), item_id=row["item_id"], remote_name=row["remote_name"],
        plain_size=row["plain_size"], plain_sha256=row["plain_sha256"],
        sealed_name=row["sealed_path"],
        sealed_size=row["sealed_size"], sealed_sha256=row["sealed_sha256"],
        status=SyncStatus(row["status"]), sent_bytes=int(row["sent_bytes"]),
        resent_bytes=int(row["resent_bytes"]), attempts=int(row["attempts"]),
        next_try_at=float(row["next_try_at"]), last_error=row["last_error"],
        multipart_id=row["multipart_id"], parts=json.loads(row["parts"]),
        verified_at=row["verified_at"])
