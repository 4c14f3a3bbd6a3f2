"""The shared review with the parent: what a case's next review shows, and what shared
mode may reach (only that case's chosen clips and stills)."""

from __future__ import annotations

from typing import Any

from appliance.catalog import Clip, ItemKind, ReviewEventRow, ReviewItem, Still
from appliance.errors import ControlError, InputError
from appliance.services.app import App
from appliance.services.daemon import DaemonClient


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


def film_review(app: App, daemon: DaemonClient, case: str, *, actor: str) -> dict[str, Any]:
    """Start filming the shared review of `case` with the box's camera and microphone: a
    recording of kind "review" (the daemon refuses a case without consent to
    supervision)."""
    return daemon.start(case, actor=actor, kind="review")


def filmed_review(app: App, daemon: DaemonClient, case: str) -> tuple[str, float] | None:
    """The review recording of `case` now running and its time in seconds, if any."""
    try:
        status = daemon.status()
    except ControlError:
        return None
    running = status.get("recording") or {}
    if status.get("state") != "recording" or not running.get("id"):
        return None
    rec = app.catalog.recordings.get(str(running["id"]))
    if rec.kind != "review" or rec.case != case:
        return None
    return rec.id, float(running.get("elapsed_s") or 0.0)


def note_event(app: App, daemon: DaemonClient, case: str, event: str, *, index: int | None,
               detail: str | None) -> ReviewEventRow | None:
    """Store what the guider did (an item shown, play, pause, speed, step) at its time in
    the review being filmed; nothing when no review of this case is being filmed."""
    filming = filmed_review(app, daemon, case)
    if filming is None:
        return None
    item_kind = item_id = None
    if index is not None:
        items = app.catalog.review_items.list(case)
        if not 0 <= index < len(items):
            raise InputError(f"the review has no item {index + 1}")
        item_kind, item_id = str(items[index].kind), items[index].item_id
        if event == "shown" and detail is None:
            detail = f"{index + 1} of {len(items)}"  # as the parent saw it: "2 of 3"
    rec_id, at_s = filming
    return app.catalog.review_events.add(rec_id, at_s, event, item_kind=item_kind,
                                         item_id=item_id, detail=detail)
