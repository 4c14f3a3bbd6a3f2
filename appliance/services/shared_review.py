"""The shared review with the parent: what a case's next review shows, and what shared
mode may reach (only that case's chosen clips and stills)."""

from __future__ import annotations

from typing import Any

from appliance.catalog import Clip, ItemKind, ReviewItem, Still
from appliance.services.app import App


def choose(app: App, case: str, items: list[tuple[str, str, str | None]], *,
           actor: str) -> list[ReviewItem]:
    """Store the clips and stills (with captions), in order, that the case's next shared
    review shows."""
    return app.catalog.review_items.choose(case, items, actor=actor)


def chosen(app: App, case: str) -> list[tuple[ReviewItem, Clip | Still]]:
    """The chosen items with their clip or still rows, in order."""
    media = app.catalog.media
    out: list[tuple[ReviewItem, Clip | Still]] = []
    for item in app.catalog.review_items.list(case):
        row: Clip | Still = (media.clip(item.item_id) if item.kind is ItemKind.CLIP
                             else media.still(item.item_id))
        out.append((item, row))
    return out


def candidates(app: App, case: str) -> dict[str, list[Any]]:
    """Every ready clip and still of the case's recordings, to choose from."""
    app.catalog.cases.get(case)
    clips: list[Clip] = []
    stills: list[Still] = []
    for rec in app.catalog.recordings.list():
        if rec.case != case:
            continue
        clips += [c for c in app.catalog.media.clips(rec.id) if str(c.status) == "ready"]
        stills += [s for s in app.catalog.media.stills(rec.id) if str(s.status) == "ready"]
    return {"clips": clips, "stills": stills}


def may_show(app: App, case: str, kind: str, item_id: str) -> bool:
    """True if shared mode for `case` may show this media file."""
    return kind in ("clip", "still") and app.catalog.review_items.holds(case, kind, item_id)
