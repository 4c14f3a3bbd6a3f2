"""Recordings, their moments and cases, and the tag scheme, as JSON for the tablet."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from appliance.errors import NotFoundError
from appliance.services import cases as case_service
from appliance.services import files
from appliance.services import media as media_service
from appliance.services import moments as moment_service
from appliance.services import recordings as rec_service
from appliance.web import body, present
from appliance.web.context import ctx
from appliance.web.security import actor, admin_only

bp = Blueprint("api_library", __name__, url_prefix="/api")


@bp.get("/recordings")
def recordings() -> Response:
    """Every recording, newest first, each with its `media_url`."""
    app = ctx().app
    return jsonify([present.recording(r) for r in reversed(rec_service.list_recordings(app))])


@bp.get("/recordings/<rec_id>")
def recording(rec_id: str) -> Response:
    """One recording with what its review page needs: assets, moments, suggestions, clips
    and stills."""
    app = ctx().app
    rec = rec_service.get_recording(app, rec_id)
    out = present.recording(rec)
    out["assets"] = present.assets(app, rec_id)
    out["moments"] = [m.to_json() for m in rec_service.moments_of(app, rec_id)]
    out["suggestions"] = ([s.to_json() for s in media_service.suggestions(app, rec_id)]
                          if rec.playable else [])
    downloads = files.downloads_allowed(app)
    out["clips"] = [present.clip(c, downloads=downloads) for c in app.catalog.media.clips(rec_id)]
    out["stills"] = [present.still(s, downloads=downloads)
                     for s in app.catalog.media.stills(rec_id)]
    if rec.kind == "review":  # what was shown, paused, slowed, at its time in the review
        out["events"] = [e.to_json() for e in app.catalog.review_events.list(rec_id)]
    return jsonify(out)


@bp.post("/recordings/<rec_id>/case")
def recording_case(rec_id: str) -> Response:
    """File a recording under a case (audited)."""
    data = body.json_body(allowed={"case"})
    case = body.text(data, "case", required=False, max_len=64) or None
    rec = rec_service.assign_case(ctx().app, rec_id, case, actor=actor())
    return jsonify(present.recording(rec))


@bp.get("/recordings/<rec_id>/moments")
def moments(rec_id: str) -> Response:
    """The moments of a recording, in time order."""
    return jsonify([m.to_json() for m in rec_service.moments_of(ctx().app, rec_id)])


@bp.post("/recordings/<rec_id>/moments")
def add_moment(rec_id: str) -> Response:
    """Mark a moment (a span with an out point), with a tag from the scheme and a note."""
    data = body.json_body(allowed={"at_s", "end_s", "tag", "note"})
    moment = moment_service.add_moment(
        ctx().app, rec_id, body.number(data, "at_s") or 0.0,
        end_s=body.number(data, "end_s", required=False),
        tag=body.text(data, "tag", required=False, max_len=60) or None,
        note=body.text(data, "note", required=False), actor=actor())
    return jsonify(moment.to_json()), 201  # type: ignore[return-value]


@bp.patch("/recordings/<rec_id>/moments/<int(max=9007199254740991):moment_id>")
def edit_moment(rec_id: str, moment_id: int) -> Response:
    """Change a moment's in/out points, tag or note."""
    data = body.json_body(allowed={"at_s", "end_s", "tag", "note"})
    fields: dict[str, float | str | None] = {}
    for key in ("at_s", "end_s"):
        if key in data:
            fields[key] = body.number(data, key, required=key == "at_s")
    for key, limit in (("tag", 60), ("note", 2000)):
        if key in data:
            fields[key] = body.text(data, key, required=False, max_len=limit) or None
    moment = moment_service.edit_moment(ctx().app, rec_id, moment_id, actor=actor(), **fields)
    return jsonify(moment.to_json())


@bp.delete("/recordings/<rec_id>/moments/<int(max=9007199254740991):moment_id>")
def remove_moment(rec_id: str, moment_id: int) -> Response:
    """Delete a moment."""
    moment_service.remove_moment(ctx().app, rec_id, moment_id, actor=actor())
    return jsonify(deleted=moment_id)


@bp.get("/cases")
def cases() -> Response:
    """Every case with its consent scopes and dates."""
    return jsonify([c.to_json() for c in case_service.list_cases(ctx().app.catalog)])


@bp.post("/cases")
def add_case() -> Response:
    """Register a case (a pseudonymous code) with the consent the family gave."""
    data = body.json_body(allowed={"code", "scopes", "date"})
    scopes = [case_service.check_scope(s) for s in body.texts(data, "scopes", max_items=10)]
    case = case_service.add_case(ctx().app.catalog, body.text(data, "code", max_len=64) or "",
                                 scopes, when=body.text(data, "date", required=False,
                                                        max_len=10), actor=actor())
    return jsonify(case.to_json()), 201  # type: ignore[return-value]


@bp.post("/cases/<code>/close")
def close_case(code: str) -> Response:
    """The work with the family has ended (its recordings then expire)."""
    body.json_body(allowed=set())
    return jsonify(case_service.close_case(ctx().app.catalog, code, actor=actor()).to_json())


@bp.post("/cases/<code>/erase")
def erase_case(code: str) -> Response:
    """Erase a case on the family's request: {"confirm": the code again}."""
    data = body.json_body(allowed={"confirm"})
    plan = case_service.erase_case(ctx().app.catalog, code, actor=actor(),
                                   confirm=body.text(data, "confirm", max_len=64) or "")
    return jsonify(erased=code, **plan.counts())


@bp.post("/cases/<code>/consent")
def consent(code: str) -> Response:
    """Record consent given (on a date) or withdrawn, per scope."""
    data = body.json_body(allowed={"give", "withdraw", "date"})
    case = case_service.change_consent(
        ctx().app.catalog, code,
        give=[case_service.check_scope(s) for s in body.texts(data, "give", max_items=10)],
        withdraw=[case_service.check_scope(s)
                  for s in body.texts(data, "withdraw", max_items=10)],
        when=body.text(data, "date", required=False, max_len=10), actor=actor())
    return jsonify(case.to_json())


@bp.get("/tags")
def tags() -> Response:
    """The tag scheme (retired tags too, marked, for moments that carry them)."""
    return jsonify([t.to_json() for t in moment_service.tag_scheme(ctx().app,
                                                                   include_retired=True)])


@bp.post("/tags")
@admin_only
def add_tag() -> Response:
    """Add a tag to the scheme (administrators)."""
    data = body.json_body(allowed={"label"})
    tag = ctx().app.catalog.tags.add(body.text(data, "label", max_len=60) or "",
                                     actor=actor())
    return jsonify(tag.to_json()), 201  # type: ignore[return-value]


@bp.patch("/tags/<int(max=9007199254740991):tag_id>")
@admin_only
def change_tag(tag_id: int) -> Response:
    """Rename a tag, or retire it (moments keep it) (administrators)."""
    data = body.json_body(allowed={"label", "retired"})
    tags = ctx().app.catalog.tags
    tag = None
    if "label" in data:
        tag = tags.rename(tag_id, body.text(data, "label", max_len=60) or "", actor=actor())
    if body.flag(data, "retired"):
        tag = tags.retire(tag_id, actor=actor())
    if tag is None:
        tag = next((t for t in tags.list(include_retired=True) if t.id == tag_id), None)
        if tag is None:
            raise NotFoundError(f"no tag {tag_id}")
    return jsonify(tag.to_json())
