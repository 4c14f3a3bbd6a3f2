"""Choosing what a case's next shared review shows, as JSON."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from appliance.errors import InputError
from appliance.services import media as media_service
from appliance.services import shared_review
from appliance.web import body, present
from appliance.web.context import ctx
from appliance.web.security import actor

bp = Blueprint("api_shared", __name__, url_prefix="/api")


def _chosen(code: str) -> list[dict[str, Any]]:
    out = []
    for item, row in shared_review.chosen(ctx().app, code):
        shown = present.item(row)
        out.append({**shown, **item.to_json(), "caption": item.caption or shown.get("caption")})
    return out


@bp.get("/cases/<code>/review")
def review(code: str) -> ResponseReturnValue:
    """The case's chosen clips and stills in order, and what else could be chosen."""
    found = shared_review.candidates(ctx().app, code)
    return jsonify(items=_chosen(code),
                   clips=[present.clip(c) for c in found["clips"]],
                   stills=[present.still(s) for s in found["stills"]])


@bp.put("/cases/<code>/review")
def choose(code: str) -> ResponseReturnValue:
    """Store the order of clips and stills to show: {"items": [{"kind", "id"}, ...]}."""
    data = body.json_body(allowed={"items"})
    raw = data.get("items")
    if not isinstance(raw, list) or not all(
            isinstance(i, dict) and {"kind", "id"} <= set(i) <= {"kind", "id", "caption"}
            and isinstance(i["kind"], str) and isinstance(i["id"], str)
            and isinstance(i.get("caption") or "", str) for i in raw):
        raise InputError("'items' must be a list of {\"kind\": \"clip\"|\"still\", \"id\": ..., "
                         "\"caption\": optional text}")
    shared_review.choose(ctx().app, code, [(i["kind"], i["id"], i.get("caption")) for i in raw],
                         actor=actor())
    return jsonify(items=_chosen(code))


@bp.post("/films")
def film() -> ResponseReturnValue:
    """Queue a review film: clips in order, with title cards if asked (their text given per
    clip, else the clip's tag or note); the job to poll, its subject the film's id."""
    data = body.json_body(allowed={"clip_ids", "titles", "title_texts"})
    clip_ids = body.texts(data, "clip_ids", max_items=40)
    raw_titles = data.get("title_texts")
    if raw_titles is not None and not (isinstance(raw_titles, list) and all(
            t is None or isinstance(t, str) for t in raw_titles)):
        raise InputError("'title_texts' must be a list of texts (or null), one per clip")
    job = media_service.request_film(ctx().app, clip_ids, titles=body.flag(data, "titles"),
                                     title_texts=raw_titles, actor=actor())
    return jsonify(present.job(job)), 202
