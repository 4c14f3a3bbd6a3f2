"""The append-only audit log: who did what to which case, recording or file, and when.

Triggers refuse UPDATE, DELETE and an INSERT that reuses an id; each entry also
carries the hash of the one before it, so an entry removed or altered with the
triggers dropped shows in `verify()`. Details never hold case notes or secrets.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.catalog.db import Database, utc_now
from appliance.errors import CatalogError


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log."""

    id: int
    at: str
    actor: str
    action: str
    subject: str | None
    detail: dict[str, Any]
    hash: str | None

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
                "subject": self.subject, "detail": self.detail, "hash": self.hash}


def entry_hash(previous: str, row: Mapping[str, Any]) -> str:
    """The chain hash of an entry: sha256 over the previous hash and the entry's fields."""
    fields = [previous, str(row["id"]), row["at"], row["actor"], row["action"],
              row["subject"] or "", row["detail"]]
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


def check_actor(actor: str) -> str:
    """The actor named in an entry: required, and a name, not a sentence."""
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 64:
        raise CatalogError(f"an audit entry needs the name of who acted (got {actor!r})")
    return actor


class AuditLog:
    """Appends and reads audit entries."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append_in(self, db: sqlite3.Connection, action: str, subject: str | None, *,
                  actor: str, detail: dict[str, Any] | None = None) -> None:
        """Append an entry inside the caller's write transaction."""
        check_actor(actor)
        # Inside the write transaction nobody else can append, so the next id is known
        # and the hash goes in with the row (the triggers allow no later UPDATE).
        last = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        row = {"id": (last["id"] + 1) if last else 1, "at": utc_now(), "actor": actor,
               "action": action, "subject": subject,
               "detail": json.dumps(detail or {}, sort_keys=True)}
        row["hash"] = entry_hash((last["hash"] or "") if last else "", row)
        db.execute("INSERT INTO audit (id, at, actor, action, subject, detail, hash)"
                   " VALUES (:id, :at, :actor, :action, :subject, :detail, :hash)", row)

    def append(self, action: str, subject: str | None = None, *, actor: str,
               detail: dict[str, Any] | None = None) -> None:
        """Append one entry (views, exports, uploads, deletions...)."""
        with self._db.transaction() as db:
            self.append_in(db, action, subject, actor=actor, detail=detail)

    def entries(self, limit: int = 1000, *, action: str | None = None) -> list[AuditEntry]:
        """The newest entries (of one action, if given: however long ago), oldest first."""
        where, args = ("WHERE action=?", (action,)) if action is not None else ("", ())
        with self._db.read() as db:
            rows = db.execute(f"SELECT * FROM (SELECT * FROM audit {where} ORDER BY id DESC"
                              " LIMIT ?) ORDER BY id", (*args, limit)).fetchall()
        return [_entry(r) for r in rows]

    def verify(self) -> list[str]:
        """Problems found walking the hash chain (empty: the log is intact)."""
        problems: list[str] = []
        previous = ""
        expected_id: int | None = None
        with self._db.read() as db:
            for row in db.execute("SELECT * FROM audit ORDER BY id"):
                if expected_id is not None and row["id"] != expected_id:
                    problems.append(f"entries {expected_id}..{row['id'] - 1} are missing")
                if row["hash"] != entry_hash(previous, row):
                    problems.append(f"entry {row['id']} does not match the chain")
                previous = row["hash"] or ""
                expected_id = row["id"] + 1
        return problems


def _entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(id=int(row["id"]), at=row["at"], actor=row["actor"],
                      action=row["action"], subject=row["subject"],
                      detail=json.loads(row["detail"]), hash=row["hash"])
