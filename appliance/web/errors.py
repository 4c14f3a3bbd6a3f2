"""Errors as the tablet sees them: JSON with a message under /api/ and /media/, a page
elsewhere; the status code says whose fault it was. Nothing ever answers a bare 500."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from appliance.errors import (
    ApplianceError,
    AuthError,
    BusyError,
    CatalogError,
    ControlError,
    InputError,
    LockedOutError,
    NotFoundError,
)
from appliance.web.security import CsrfError, current_user, wants_json

log = logging.getLogger(__name__)
NOT_RUNNING = ("the recorder is not running: restart the box; if it stays, ask the "
               "administrator (`systemctl status vigbox-capture`)")
CONTROL_STATUS = {"busy": 409, "bad_request": 400, "not_running": 503, "failed": 500}


def status_of(e: ApplianceError) -> int:
    """The HTTP status of an appliance error."""
    if isinstance(e, ControlError):
        return CONTROL_STATUS.get(e.kind, 500)
    if isinstance(e, LockedOutError):
        return 429
    if isinstance(e, CsrfError):
        return 403
    if isinstance(e, AuthError):
        return 401 if current_user() is None else 403
    if isinstance(e, NotFoundError):
        return 404
    if isinstance(e, InputError):
        return 400
    if isinstance(e, BusyError):
        return 409
    if isinstance(e, CatalogError):
        return 503
    return 500


def words_for(e: ApplianceError, status: int) -> str:
    """What the tablet is told: the error's own words, except where they would name
    files on the box (the details are in the log)."""
    if isinstance(e, ControlError) and e.kind == "not_running":
        return NOT_RUNNING
    if isinstance(e, CatalogError) and not isinstance(e, NotFoundError):
        return "the box's catalog could not do that just now (logged): try again"
    return str(e)


def _answer(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if wants_json() or request.is_json:
        response = jsonify(error=message, status=status)
    else:
        response = Response(render_template("error.html", status=status, message=message),
                            mimetype="text/html")
    response.status_code = status
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def install(app: Flask) -> None:
    """Register the handlers."""

    @app.errorhandler(ApplianceError)
    def appliance_error(e: ApplianceError) -> Response:
        status = status_of(e)
        if status >= 500:
            # The recorder being down is the box's state, not a fault of this request.
            level = logging.WARNING if status == 503 else logging.ERROR
            log.log(level, "%s %s: %s", request.method, request.path, e)
        headers = {}
        if isinstance(e, LockedOutError):
            headers["Retry-After"] = str(max(1, round(e.retry_after_s)))
        return _answer(status, words_for(e, status), headers)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Response:
        status = e.code or 500
        message = {404: "there is nothing here", 405: "this address does not take that method",
                   413: "that file is larger than the box accepts (web.max_upload_mb)",
                   }.get(status, e.description or e.name)
        return _answer(status, message)

    @app.errorhandler(Exception)
    def unexpected(e: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.path)
        return _answer(500, "the box could not do that (an internal error, logged)")
