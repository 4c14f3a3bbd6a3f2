"""The box's recorder from the tablet: status, record / stop / mark, the case being filmed,
and the live view, all through the capture daemon's socket."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from appliance.services import home
from appliance.web import body
from appliance.web.context import ctx
from appliance.web.security import actor

bp = Blueprint("api_capture", __name__, url_prefix="/api")


@bp.get("/status")
def status() -> Response:
    """What the box is doing, its light, free minutes and cases that may be filmed."""
    context = ctx()
    out = home.box_status(context.app, context.daemon)
    out["cases"] = [c.code for c in home.filmable_cases(context.app)]
    return jsonify(out)


@bp.post("/record/start")
def start() -> Response:
    """Start recording, for a case if one is given (it needs consent to filming)."""
    data = body.json_body(allowed={"case"})
    case = body.text(data, "case", required=False, max_len=64) or None
    result: dict[str, Any] = ctx().daemon.start(case, actor=actor())
    return jsonify(result)


@bp.post("/record/stop")
def stop() -> Response:
    """Stop recording; answers once the film is saved."""
    body.json_body(allowed=set())
    return jsonify(ctx().daemon.stop(actor=actor()))


@bp.post("/record/mark")
def mark() -> Response:
    """Mark this moment of the running recording."""
    body.json_body(allowed=set())
    return jsonify(ctx().daemon.mark(actor=actor()))


@bp.post("/record/press")
def press() -> Response:
    """Press the simulated box's button (the demo): the gestures as on a real button."""
    data = body.json_body(allowed={"hold_s"})
    hold_s = body.number(data, "hold_s", required=False)
    return jsonify(ctx().daemon.press(0.1 if hold_s is None else hold_s))


@bp.post("/record/case")
def set_case() -> Response:
    """The case the next recording (also one started with the button) is filed under."""
    data = body.json_body(allowed={"case"})
    case = body.text(data, "case", required=False, max_len=64) or None
    return jsonify(ctx().daemon.set_case(case, actor=actor()))


@bp.get("/live.jpg")
def live() -> Response:
    """The camera's latest low-resolution picture (poll a few times a second); watching
    is audited once per account and while."""
    context = ctx()
    frame = context.daemon.preview()
    who = actor()
    if context.first_view(who, "live", "camera"):
        context.app.catalog.audit.append("view.live", None, actor=who)
    response = Response(frame.jpeg, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Time-Ns"] = str(frame.taken_ns)
    return response
