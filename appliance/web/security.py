"""Sessions, login checks, CSRF tokens and security headers for every request.

Every endpoint needs a logged-in account except the few named in PUBLIC; a test walks
Flask's URL map to hold that true for routes added later.
"""

from __future__ import annotations

import functools
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, Response, abort, current_app, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from appliance.catalog import Catalog, User
from appliance.errors import AuthError, NotFoundError
from appliance.fsutil import atomic_write_bytes

# Endpoints anyone may reach: the login and set-up pages and the static files they use.
PUBLIC = frozenset({"auth.login", "auth.setup", "auth.logout", "static"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
MAX_SESSION_S = 12 * 3600     # a working day, however busy: then log in again
SMALL_BODY = 64 * 1024        # every request but an upload
UPLOAD_ENDPOINT = "api_media.upload"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
F = TypeVar("F", bound=Callable[..., Any])


def secret_key(path: Path) -> bytes:
    """The key that signs session cookies: made once on the box, kept 0600 in the data dir."""
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    old = os.umask(0o177)
    try:
        atomic_write_bytes(path, key)
    finally:
        os.umask(old)
    return key


def csrf_token() -> str:
    """This session's CSRF token (made on first use); templates and JSON calls send it."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def start_session(user: User) -> None:
    """A fresh session for a user who just logged in: a new id kept on the box, a new
    token (no fixation)."""
    catalog = _catalog()
    old = session.get("sid")
    if isinstance(old, str):
        catalog.sessions.end(old)
    session.clear()
    session.permanent = True
    session.update(sid=catalog.sessions.start(user.name), csrf=secrets.token_urlsafe(32))


def end_session() -> None:
    """Log out: the session ends on the box, so a copied cookie is worth nothing."""
    sid = session.get("sid")
    if isinstance(sid, str):
        _catalog().sessions.end(sid)
    session.clear()


def current_user() -> User | None:
    """The logged-in account of this request, if any."""
    return g.get("user")


def actor() -> str:
    """The name the audit log gives this request's account."""
    user = current_user()
    if user is None:
        raise AuthError("log in first")
    return user.name


def admin_only(view: F) -> F:
    """Allow a view only to administrators."""
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = current_user()
        if user is None or not user.is_admin:
            raise AuthError("only an administrator may do this")
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def install(app: Flask, *, idle_timeout_s: float, secure_cookie: bool,
            shared_mode_allows: Callable[[str | None, dict[str, Any] | None], bool]) -> None:
    """Session cookie settings, the login and CSRF checks, and the headers."""
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_SECURE=secure_cookie, SESSION_COOKIE_NAME="vigbox",
                      PERMANENT_SESSION_LIFETIME=int(idle_timeout_s))
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user

    @app.before_request
    def check_session() -> ResponseReturnValue | None:
        # Only an upload may send a large body; everything else is a small form or JSON
        # (set before anything reads the body, so a stranger cannot make the box store
        # gigabytes before being turned away).
        if request.endpoint != UPLOAD_ENDPOINT:
            request.max_content_length = SMALL_BODY
        g.user = _session_user(idle_timeout_s)
        if request.endpoint is None:
            abort(404)  # unknown URL: 404 without saying whether a login would help
        if request.endpoint not in PUBLIC and g.user is None:
            if wants_json():
                raise AuthError("log in first")
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if g.user is not None and not shared_mode_allows(request.endpoint, request.view_args):
            if wants_json():
                raise AuthError("the tablet is in shared review mode: leave it first")
            return redirect(url_for("shared.page", code=session.get("shared_case")))
        if request.method in UNSAFE_METHODS and not (
                request.endpoint == "auth.logout" and g.user is None):
            _check_csrf()
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        h = response.headers
        h["Content-Security-Policy"] = CSP
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "no-referrer"
        h["X-Frame-Options"] = "DENY"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if "Cache-Control" not in h:
            h["Cache-Control"] = "no-store"
        return response


def _catalog() -> Catalog:
    catalog: Catalog = current_app.extensions["vigbox"].catalog
    return catalog


def _session_user(idle_timeout_s: float) -> User | None:
    sid = session.get("sid")
    if not isinstance(sid, str):
        return None
    catalog = _catalog()
    # Polling (status, job progress, live view) is not the guider using the tablet.
    name = catalog.sessions.check(sid, idle_s=idle_timeout_s, max_age_s=MAX_SESSION_S,
                                  touch=request.headers.get("X-Vigbox-Poll") != "1")
    if name is None:
        session.clear()
        return None
    try:
        return catalog.accounts.get(name)
    except NotFoundError:
        session.clear()
        return None


def _check_csrf() -> None:
    expected = session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.mimetype in ("application/x-www-form-urlencoded",
                                             "multipart/form-data"):
        sent = request.form.get(CSRF_FIELD)
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(
            expected.encode(), sent.encode("utf-8", "replace")):
        raise CsrfError("this page is out of date or was not sent by the box's own UI: "
                        "reload it and try again")


class CsrfError(AuthError):
    """A state-changing request without this session's CSRF token."""


def wants_json() -> bool:
    """Answer this request in JSON (the API and media), not with a page."""
    return request.path.startswith("/api/") or request.path.startswith("/media/")
