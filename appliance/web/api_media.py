"""Renders and uploads from the tablet: clips, stills, job progress, imports; accounts."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from appliance.services import accounts as account_service
from appliance.services import imports as import_service
from appliance.services import media as media_service
from appliance.web import body, present
from appliance.web.context import ctx
from appliance.web.security import actor, admin_only

bp = Blueprint("api_media", __name__, url_prefix="/api")


@bp.post("/recordings/<rec_id>/clips")
def clip(rec_id: str) -> ResponseReturnValue:
    """Queue a clip from in to out (fast: stream copy from a keyframe; exact: re-encoded,
    frame-exact); answers with the job to poll for progress."""
    data = body.json_body(allowed={"start_s", "end_s", "exact", "moment_id", "caption"})
    job = media_service.request_clip(
        ctx().app, rec_id, body.number(data, "start_s") or 0.0,
        body.number(data, "end_s") or 0.0, exact=body.flag(data, "exact"),
        caption=body.text(data, "caption", required=False, max_len=200) or None,
        moment_id=body.integer(data, "moment_id", required=False), actor=actor())
    return jsonify(present.job(job)), 202


@bp.post("/recordings/<rec_id>/stills")
def still(rec_id: str) -> ResponseReturnValue:
    """Queue a still of the frame shown at `at_s`."""
    data = body.json_body(allowed={"at_s"})
    job = media_service.request_still(ctx().app, rec_id, body.number(data, "at_s") or 0.0,
                                      actor=actor())
    return jsonify(present.job(job)), 202


@bp.get("/jobs")
def jobs() -> ResponseReturnValue:
    """Recent encoder jobs, newest first."""
    return jsonify([present.job(j) for j in media_service.list_jobs(ctx().app)[:100]])


@bp.get("/jobs/<int(max=9007199254740991):job_id>")
def job(job_id: int) -> ResponseReturnValue:
    """One job: status and progress (0-100)."""
    return jsonify(present.job(ctx().app.catalog.jobs.get(job_id)))


@bp.post("/jobs/<int(max=9007199254740991):job_id>/cancel")
def cancel(job_id: int) -> ResponseReturnValue:
    """Cancel a queued or running job."""
    body.json_body(allowed=set())
    return jsonify(present.job(media_service.cancel_job(ctx().app, job_id, actor=actor())))


@bp.post("/imports")
def upload() -> ResponseReturnValue:
    """Upload a video (raw bytes of the file as the body, its name in X-Filename, a case
    in ?case=); it becomes a recording like one filmed on the box."""
    rec = import_service.import_upload(
        ctx().app, request.stream, request.content_length or 0,
        name=request.headers.get("X-Filename", "upload.mp4"),
        case=request.args.get("case") or None, actor=actor())
    return jsonify(present.recording(rec)), 201


@bp.get("/users")
@admin_only
def users() -> ResponseReturnValue:
    """Every account (administrators)."""
    return jsonify([u.to_json() for u in account_service.list_users(ctx().app.catalog)])


@bp.post("/users")
@admin_only
def add_user() -> ResponseReturnValue:
    """A new guider or administrator account (administrators)."""
    data = body.json_body(allowed={"name", "password", "admin"})
    user = account_service.add_user(
        ctx().app.catalog, body.text(data, "name", max_len=64) or "",
        body.text(data, "password", max_len=1024) or "", admin=body.flag(data, "admin"),
        actor=actor())
    return jsonify(user.to_json()), 201


@bp.delete("/users/<name>")
@admin_only
def remove_user(name: str) -> ResponseReturnValue:
    """Remove an account (administrators; never the last administrator)."""
    account_service.remove_user(ctx().app.catalog, name, actor=actor())
    return jsonify(deleted=name)
