"""What leaves the box once the office has it: a clip, still or review film some days
after its office copy was verified (sync.keep_days_after_sync), a closed case's recordings
some days after it closed (sync.raw_keep_days) once nothing of them waits to be sent.
Nothing unverified is ever deleted, and nothing to make room; clips and stills chosen for a
case's next shared review stay. Every deletion is audited.

Every wait is measured on the box's clock, which a person may have set (clock.set in the
audit log). Time across a jump of more than a day is not trusted: a wait that began before
the newest such jump forward starts again at it (see _restart)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta

from appliance.catalog import Catalog, SyncKind, SyncStatus
from appliance.config import Config

ACTOR = "retention"
DAY = timedelta(days=1)
# A change of the box's clock bigger than this is a jump, not a correction: the most a
# guider may set it by (appliance.services.clock.MAX_GUIDER_CHANGE_S).
JUMP = timedelta(hours=24)


def _at(iso: object) -> datetime | None:
    return datetime.fromisoformat(iso) if isinstance(iso, str) and iso else None


def _restart(catalog: Catalog, now: datetime) -> datetime | None:
    """Where waits that began earlier start again: the box's time right after the newest
    clock.set that moved the clock by more than JUMP, if it moved it forward; else None.

    A clock set years ahead (a tablet with a wrong date, a slip of the finger) would
    otherwise make every verified clip look years old and be deleted at once. Since that
    set, the box's clock has run true (as far as the box can know), so a wait counted from
    it is never shorter than the real one: at worst, after a true jump forward (a box off
    for weeks), something is kept one grace period longer than needed, never deleted
    early. A later jump back (the mistake put right, as clock.set or by network time,
    which the audit log does not see: the clock is then earlier than the jump's landing)
    makes the clock true again and ends the restart; smaller changes neither start nor
    end one."""
    # Every clock.set, as small ones may follow the jump (each ends every session, so
    # they are few: the bound only keeps a run's work finite).
    for entry in reversed(catalog.audit.entries(limit=10_000, action="clock.set")):
        before, after = _at(entry.detail.get("box_time_before")), _at(entry.detail.get("set_to"))
        if before is not None and after is not None and abs(after - before) > JUMP:
            return after if before < after <= now else None
    return None


def apply_retention(catalog: Catalog, config: Config, now: datetime) -> list[str]:
    """Delete what is due; the ids deleted."""
    deleted: list[str] = []
    items = catalog.sync.queue()
    chosen = {(str(i.kind), i.item_id) for c in catalog.cases.list()
              for i in catalog.review_items.list(c.code)}
    grace = config.sync.keep_days_after_sync * DAY
    restart = _restart(catalog, now)

    def since(start: datetime | None) -> datetime | None:
        return max(start, restart) if start is not None and restart is not None else start

    for item in items:
        kind = str(item.kind)
        verified = since(_at(item.verified_at))
        if item.status is not SyncStatus.VERIFIED or verified is None or \
                item.kind not in (SyncKind.CLIP, SyncKind.STILL, SyncKind.FILM) or \
                now - verified < grace or (kind, item.item_id) in chosen:
            continue
        if _delete_media(catalog, kind, item.item_id):
            deleted.append(item.item_id)
    waiting = {i.recording_id for i in items
               if i.status in (SyncStatus.PLANNED, SyncStatus.SEALED)}
    closed = {c.code: since(_at(c.closed_at)) for c in catalog.cases.list() if c.closed_at}
    for rec in catalog.recordings.list():
        ended = closed.get(rec.case or "")
        if ended is None or rec.path is None or rec.id in waiting or \
                now - ended < config.sync.raw_keep_days * DAY:
            continue
        rec.path.unlink(missing_ok=True)
        shutil.rmtree(catalog.layout.recording_dir(rec.id) / "assets", ignore_errors=True)
        catalog.recordings.update(rec.id, actor=ACTOR, path=None, problems=[
            *rec.problems, f"deleted from the box on {now.date()}, "
            f"{config.sync.raw_keep_days:g} days after the case closed"])
        catalog.audit.append("retention.delete", rec.id, actor=ACTOR,
                             detail={"kind": "recording", "case": rec.case})
        deleted.append(rec.id)
    return deleted


def _delete_media(catalog: Catalog, kind: str, item_id: str) -> bool:
    media = catalog.media
    row = media.clip(item_id) if kind == "clip" else \
        media.still(item_id) if kind == "still" else media.film(item_id)
    if row.path is None:
        return False
    row.path.unlink(missing_ok=True)
    media.forget_file(kind, item_id)
    catalog.audit.append("retention.delete", item_id, actor=ACTOR,
                         detail={"kind": kind, "reason": "verified at the office"})
    return True


