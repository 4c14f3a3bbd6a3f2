"""The tag scheme for moments: the six PAIG headings by default, edited by an administrator.

A retired tag is no longer offered, but moments that carry it keep it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from appliance.catalog.audit import AuditLog
from appliance.catalog.db import Database
from appliance.errors import InputError, NotFoundError

MAX_LABEL = 60


def check_label(label: str) -> str:
    """A tag's label: 1-60 printable characters."""
    if not isinstance(label, str) or not label.strip():
        raise InputError("a tag needs a label")
    label = " ".join(label.split())
    if len(label) > MAX_LABEL or not label.isprintable():
        raise InputError(f"a tag's label is at most {MAX_LABEL} printable characters")
    return label


@dataclass(frozen=True)
class Tag:
    """One tag of the scheme."""

    id: int
    label: str
    position: int
    retired: bool

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"id": self.id, "label": self.label, "retired": self.retired}


class Tags:
    """The tags table."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    def list(self, *, include_retired: bool = False) -> list[Tag]:
        """The scheme in order (active tags only unless asked)."""
        with self._db.read() as db:
            rows = db.execute("SELECT * FROM tags ORDER BY position, id").fetchall()
        return [t for t in map(_tag, rows) if include_retired or not t.retired]

    def check_active(self, label: str) -> str:
        """The label if it is an active tag; InputError naming the choices if not."""
        active = [t.label for t in self.list()]
        if label not in active:
            raise InputError(f"unknown tag {label!r}; use one of: {', '.join(active)}")
        return label

    def add(self, label: str, *, actor: str) -> Tag:
        """Add a tag at the end of the scheme (or bring a retired one back)."""
        label = check_label(label)
        with self._db.transaction() as db:
            row = db.execute("SELECT * FROM tags WHERE label=?", (label,)).fetchone()
            if row is not None and not row["retired"]:
                raise InputError(f"there is already a tag {label!r}")
            end = db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM tags").fetchone()[0]
            if row is None:
                cur = db.execute("INSERT INTO tags (label, position) VALUES (?,?)", (label, end))
                tag_id = int(cur.lastrowid or 0)
            else:
                tag_id = int(row["id"])
                db.execute("UPDATE tags SET retired=0, position=? WHERE id=?", (end, tag_id))
            self._audit.append_in(db, "tag.add", str(tag_id), actor=actor, detail={"label": label})
            return _tag(self._row(db, tag_id))

    def rename(self, tag_id: int, label: str, *, actor: str) -> Tag:
        """Rename a tag; moments tagged with it follow the new name."""
        label = check_label(label)
        with self._db.transaction() as db:
            old = _tag(self._row(db, tag_id))
            clash = db.execute("SELECT 1 FROM tags WHERE label=? AND id<>?",
                               (label, tag_id)).fetchone()
            if clash:
                raise InputError(f"there is already a tag {label!r}")
            db.execute("UPDATE tags SET label=? WHERE id=?", (label, tag_id))
            db.execute("UPDATE moments SET tag=? WHERE tag=?", (label, old.label))
            self._audit.append_in(db, "tag.rename", str(tag_id), actor=actor,
                                  detail={"from": old.label, "to": label})
            return _tag(self._row(db, tag_id))

    def retire(self, tag_id: int, *, actor: str) -> Tag:
        """Stop offering a tag; moments keep it."""
        with self._db.transaction() as db:
            self._row(db, tag_id)
            db.execute("UPDATE tags SET retired=1 WHERE id=?", (tag_id,))
            self._audit.append_in(db, "tag.retire", str(tag_id), actor=actor)
            return _tag(self._row(db, tag_id))

    @staticmethod
    def _row(db: sqlite3.Connection, tag_id: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM tags WHERE id=?", (tag_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no tag {tag_id}")
        return row


def _tag(row: sqlite3.Row) -> Tag:
    return Tag(id=int(row["id"]), label=row["label"], position=int(row["position"]),
               retired=bool(row["retired"]))
