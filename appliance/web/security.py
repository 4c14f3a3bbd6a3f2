"""Sessions, login checks, CSRF tokens and security headers for every request.

Every endpoint needs a logged-in account except the few named in PUBLIC; a test walks
Flask's URL map to hold that true for routes added later.
"""

from __future__ import annotations

import functools
import hmac
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, Response, abort, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from appliance.catalog import User
from appliance.errors import AuthError, NotFoundError
from appliance.fsutil import atomic_write_bytes

# Endpoints anyone may reach: the login and set-up pages and the static files they use.
PUBLIC = frozenset({"auth.login", "auth.setup", "auth.logout", "static"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
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
    """A fresh session for a user who just logged in (a new id and token: no fixation)."""
    session.clear()
    session.permanent = True
    session.update(user=user.name, gen=user.generation, seen=time.time(),
                   csrf=secrets.token_urlsafe(32))


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


def install(app: Flask, *, idle_timeout_s: float, secure_cookie: bool) -> None:
    """Session cookie settings, the login and CSRF checks, and the headers."""
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_SECURE=secure_cookie, SESSION_COOKIE_NAME="vigbox",
                      PERMANENT_SESSION_LIFETIME=int(idle_timeout_s))
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user

    @app.before_request
    def check_session() -> ResponseReturnValue | None:
        g.user = _session_user(app, idle_timeout_s)
        if request.method in UNSAFE_METHODS:
            _check_csrf()
        if request.endpoint in PUBLIC:
            return None
        if request.endpoint is None:
            abort(404)  # unknown URL: 404 without saying whether a login would help
        if g.user is None:
            if _wants_json():
                raise AuthError("log in first")
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
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


def _session_user(app: Flask, idle_timeout_s: float) -> User | None:
    name = session.get("user")
    if not isinstance(name, str):
        return None
    now = time.time()
    seen = session.get("seen")
    if not isinstance(seen, (int, float)) or now - seen > idle_timeout_s:
        session.clear()
        return None
    try:
        user = app.extensions["vigbox"].catalog.accounts.get(name)
    except NotFoundError:
        session.clear()
        return None
    if user.generation != session.get("gen"):
        session.clear()  # the passphrase changed: every older session ends
        return None
    # Polling (status, job progress, live view) is not the guider using the tablet.
    if request.headers.get("X-Vigbox-Poll") != "1":
        session["seen"] = now
    return user


def _check_csrf() -> None:
    expected = session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.mimetype in ("application/x-www-form-urlencoded",
                                             "multipart/form-data"):
        sent = request.form.get(CSRF_FIELD)
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(expected, sent):
        raise CsrfError("this page is out of date or was not sent by the box's own UI: "
                        "reload it and try again")


class CsrfError(AuthError):
    """A state-changing request without this session's CSRF token."""


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/media/")
