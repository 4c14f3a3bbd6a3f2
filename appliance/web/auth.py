"""Log in, log out, and the set-up page a box with no account shows on its first visit."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, render_template, request, url_for

from appliance.errors import AuthError, InputError, LockedOutError
from appliance.services import accounts
from appliance.web.context import ctx
from appliance.web.security import current_user, end_session, start_session

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    # Only a plain path on this box: never another host, however spelled (no open
    # redirect: browsers drop tabs and newlines, read "\\" as "/").
    if (target and target.startswith("/") and target.isprintable() and target.isascii()
            and not any(c in target for c in " \\") and not target.startswith("//")):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("pages.home")


def _client() -> str:
    return request.remote_addr or "unknown"


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    """The login form (username, password)."""
    catalog = ctx().catalog
    if catalog.accounts.count() == 0:
        return redirect(url_for("auth.setup"))  # type: ignore[return-value]
    error = None
    status = 200
    name = ""
    if request.method == "POST":
        name = request.form.get("username", "")[:64]
        try:
            user = accounts.log_in(catalog, name, request.form.get("password", ""),
                                   client=_client())
        except LockedOutError as e:
            error, status = str(e), 429
        except AuthError as e:
            error, status = str(e), 401
        else:
            start_session(user)
            return redirect(_safe_next(request.args.get("next")))  # type: ignore[return-value]
    elif current_user() is not None:
        return redirect(_safe_next(request.args.get("next")))  # type: ignore[return-value]
    page = render_template("login.html", error=error, name=name)
    return Response(page, status=status, mimetype="text/html")


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> Response | str:
    """First visit: make the administrator account (only while there is none)."""
    catalog = ctx().catalog
    if catalog.accounts.count():
        return redirect(url_for("auth.login"))  # type: ignore[return-value]
    error = None
    name = "admin"
    if request.method == "POST":
        name = request.form.get("username", "")[:64].strip().lower()
        password = request.form.get("password", "")
        try:
            if password != request.form.get("confirm", ""):
                raise InputError("the two passphrases differ")
            user = accounts.first_account(catalog, name, password)
        except (InputError, AuthError) as e:
            error = str(e)
        else:
            start_session(user)
            return redirect(url_for("pages.home"))  # type: ignore[return-value]
    page = render_template("setup.html", error=error, name=name)
    return Response(page, status=400 if error else 200, mimetype="text/html")


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    """End the session (a POST with the CSRF token, so no link can log a guider out)."""
    end_session()
    return redirect(url_for("auth.login"))  # type: ignore[return-value]
