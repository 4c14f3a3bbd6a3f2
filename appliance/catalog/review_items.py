"""What a case's next shared review shows: clips and stills of its own recordings, in the
order the guider chose."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from appliance.catalog.audit import AuditLog
from appliance.catalog.db import Database
from appliance.errors import InputError, NotFoundError

MAX_ITEMS = 40
MAX_CAPTION = 200


class ItemKind(enum.StrEnum):
    """What can be shown."""

    CLIP = "clip"
    STILL = "still"


@dataclass(frozen=True)
class ReviewItem:
    """One thing to show, at its place in the order."""

    position: int
    kind: ItemKind
    item_id: str
    caption: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"position": self.position, "kind": str(self.kind), "id": self.item_id,
                "caption": self.caption}


class ReviewItems:
    """The review_items table."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    def choose(self, case: str, chosen: list[tuple[str, str, str | None]], *,
               actor: str) -> list[ReviewItem]:
        """Replace the case's choice with `chosen` ((kind, id, caption) in order). Each must
        be a ready clip or still of one of the case's own recordings, and appear once."""
        if len(chosen) > MAX_ITEMS:
            raise InputError(f"a shared review shows at most {MAX_ITEMS} clips and stills")
        items = [(kind, item_id) for kind, item_id, _ in chosen]
        if len(set(items)) != len(items):
            raise InputError("each clip or still can be chosen once")
        captions = [(c or "").strip() or None for _, _, c in chosen]
        if any(c is not None and (len(c) > MAX_CAPTION or not c.isprintable())
               for c in captions):
            raise InputError(f"a caption is one line of at most {MAX_CAPTION} characters")
        with self._db.transaction() as db:
            if db.execute("SELECT 1 FROM cases WHERE code=?", (case,)).fetchone() is None:
                raise NotFoundError(f"no case {case!r}")
            for kind, item_id in items:
                try:
                    table = {"clip": "clips", "still": "stills"}[kind]
                except KeyError:
                    raise InputError(f"a shared review shows clips and stills, not {kind!r}"
                                     ) from None
                row = db.execute(
                    f"SELECT t.status, r.case_code FROM {table} t JOIN recordings r"
                    " ON r.id = t.recording_id WHERE t.id=?", (item_id,)).fetchone()
                if row is None or row["case_code"] != case:
                    # Another case's media is never named, not even to say it exists.
                    raise NotFoundError(f"case {case} has no {kind} {item_id!r}")
                if row["status"] != "ready":
                    raise InputError(f"{kind} {item_id} is not ready yet")
            db.execute("DELETE FROM review_items WHERE case_code=?", (case,))
            db.executemany("INSERT INTO review_items (case_code, position, kind, item_id,"
                           " caption) VALUES (?,?,?,?,?)",
                           [(case, i, kind, item_id, captions[i])
                            for i, (kind, item_id) in enumerate(items)])
            self._audit.append_in(db, "review.choose", case, actor=actor,
                                  detail={"items": [f"{k}:{i}" for k, i in items]})
        return self.list(case)

    def list(self, case: str) -> list[ReviewItem]:
        """The chosen items in order (those still ready: a clip deleted since drops out)."""
        with self._db.read() as db:
            rows = db.execute(
                "SELECT ri.* FROM review_items ri"
                " LEFT JOIN clips c ON ri.kind='clip' AND c.id=ri.item_id"
                " LEFT JOIN stills s ON ri.kind='still' AND s.id=ri.item_id"
                " WHERE ri.case_code=? AND COALESCE(c.status, s.status)='ready'"
                " ORDER BY ri.position", (case,)).fetchall()
        return [ReviewItem(position=int(r["position"]), kind=ItemKind(r["kind"]),
                           item_id=r["item_id"], caption=r["caption"]) for r in rows]

    def holds(self, case: str, kind: str, item_id: str) -> bool:
        """True if the case's shared review shows this item (what shared mode may reach)."""
        return any(i.kind == kind and i.item_id == item_id for i in self.list(case))
