"""The box's clock as JSON: any logged-in account may read it and set it from the
tablet's clock by up to a day (a Pi has no real-time clock and wakes with the time it
was shut down); a bigger change needs an administrator. The audit log names who set it."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from appliance.services import clock
from appliance.web import body
from appliance.web.context import ctx
from appliance.web.security import actor, current_user

bp = Blueprint("api_clock", __name__, url_prefix="/api")


@bp.get("/clock")
def read() -> Response:
    """The box's time (epoch ms) and how far the tablet's may be off before it offers to
    set it."""
    return jsonify(clock.status(ctx().app).to_json())


@bp.post("/clock")
def set_from_tablet() -> Response:
    """{"tablet_epoch_ms": Date.now()}: set the box's clock to the tablet's if they differ
    by more than max_skew_s; every session then ends (log in again). 403 for a guider when
    they differ by more than a day."""
    data = body.json_body(allowed={"tablet_epoch_ms"})
    tablet_epoch_ms = body.integer(data, "tablet_epoch_ms")
    user = current_user()
    return jsonify(clock.set_clock(ctx().app, tablet_epoch_ms, actor=actor(),
                                   admin=user is not None and user.is_admin).to_json())
