"""The box's settings as JSON: anyone logged in may read them, administrators change them."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from appliance.catalog import EDITABLE
from appliance.services import settings
from appliance.web import body
from appliance.web.context import ctx
from appliance.web.security import actor, admin_only

bp = Blueprint("api_settings", __name__, url_prefix="/api")


@bp.get("/settings")
def read() -> Response:
    """Each editable setting: the value in use, the config file's, and its limits."""
    return jsonify(settings.describe(ctx().app))


@bp.patch("/settings")
@admin_only
def change() -> Response:
    """Change settings together: {"key": value, ...}; null goes back to the config file's
    value (administrators)."""
    data = body.json_body(allowed=set(EDITABLE))
    return jsonify(settings.change(ctx().app, data, actor=actor()))
