"""Events of a filmed shared review (an item shown, play, pause/freeze, a speed, a step),
each at its time in the review's own recording."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from appliance.catalog.db import Database, utc_now
from appliance.errors import InputError, NotFoundError


class ReviewEvent(enum.StrEnum):
    """What the guider did while the review was filmed."""

    SHOWN = "shown"
    PLAY = "play"
    PAUSE = "pause"      # a freeze: the picture held for talking about it
    SPEED = "speed"
    STEP = "step"


@dataclass(frozen=True)
class ReviewEventRow:
    """One event at its time in the review recording."""

    id: int
    recording_id: str
    at_s: float
    event: ReviewEvent
    item_kind: str | None
    item_id: str | None
    detail: str | None

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"id": self.id, "at_s": self.at_s, "event": str(self.event),
                "item_kind": self.item_kind, "item_id": self.item_id, "detail": self.detail}


class ReviewEvents:
    """The review_events table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, rec_id: str, at_s: float, event: str, *, item_kind: str | None = None,
            item_id: str | None = None, detail: str | None = None) -> ReviewEventRow:
        """Store one event of a filmed review."""
        try:
            kind = ReviewEvent(event)
        except ValueError:
            raise InputError(f"unknown review event {event!r}; one of "
                             f"{', '.join(e.value for e in ReviewEvent)}") from None
        if not math.isfinite(at_s) or at_s < 0:
            raise InputError("a review event needs a time in the recording")
        with self._db.transaction() as db:
            row = db.execute("SELECT kind FROM recordings WHERE id=?", (rec_id,)).fetchone()
            if row is None or row["kind"] != "review":
                raise NotFoundError(f"no filmed review {rec_id!r}")
            cur = db.execute(
                "INSERT INTO review_events (recording_id, at_s, event, item_kind, item_id,"
                " detail, created_at) VALUES (?,?,?,?,?,?,?)",
                (rec_id, round(at_s, 2), kind.value, item_kind, item_id,
                 (detail or "")[:80] or None, utc_now()))
            event_id = int(cur.lastrowid or 0)
        return ReviewEventRow(event_id, rec_id, round(at_s, 2), kind, item_kind, item_id,
                              (detail or "")[:80] or None)

    def list(self, rec_id: str) -> list[ReviewEventRow]:
        """The events of a filmed review, in time order."""
        with self._db.read() as db:
            rows = db.execute("SELECT * FROM review_events WHERE recording_id=?"
                              " ORDER BY at_s, id", (rec_id,)).fetchall()
        return [ReviewEventRow(int(r["id"]), r["recording_id"], float(r["at_s"]),
                               ReviewEvent(r["event"]), r["item_kind"], r["item_id"],
                               r["detail"]) for r in rows]
