"""What leaves the box once the office has it: a clip, still or review film some days
after its office copy was verified (sync.keep_days_after_sync), a closed case's recordings
some days after it closed (sync.raw_keep_days) once nothing of them waits to be sent.
Nothing unverified is ever deleted, and nothing to make room; clips and stills chosen for a
case's next shared review stay. Every deletion is audited."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta

from appliance.catalog import Catalog, SyncKind, SyncStatus
from appliance.config import Config

ACTOR = "retention"
DAY = timedelta(days=1)


def _at(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def apply_retention(catalog: Catalog, config: Config, now: datetime) -> list[str]:
    """Delete what is due; the ids deleted."""
    deleted: list[str] = []
    items = catalog.sync.queue()
    chosen = {(str(i.kind), i.item_id) for c in catalog.cases.list()
              for i in catalog.review_items.list(c.code)}
    grace = config.sync.keep_days_after_sync * DAY
    for item in items:
        kind = str(item.kind)
        verified = _at(item.verified_at)
        if item.status is not SyncStatus.VERIFIED or verified is None or \
                item.kind not in (SyncKind.CLIP, SyncKind.STILL, SyncKind.FILM) or \
                now - verified < grace or (kind, item.item_id) in chosen:
            continue
        if _delete_media(catalog, kind, item.item_id):
            deleted.append(item.item_id)
    waiting = {i.recording_id for i in items
               if i.status in (SyncStatus.PLANNED, SyncStatus.SEALED)}
    closed = {c.code: _at(c.closed_at) for c in catalog.cases.list() if c.closed_at}
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


