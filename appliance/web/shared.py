"""Shared review mode at /shared/<CASE>: the chosen clips and stills, full screen, for the
parent beside the guider. While it is on, the session reaches nothing else: no other
page, no other case, nothing that deletes or exports; leaving asks for the guider's
passphrase again (the tablet may be in the parent's hands)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from appliance.errors import AuthError, BusyError, LockedOutError
from appliance.services import accounts, shared_review
from appliance.web import body, present
from appliance.web.context import ctx
from appliance.web.security import actor

bp = Blueprint("shared", __name__, url_prefix="/shared")
SHARED_KEY = "shared_case"
# What a session in shared mode may still reach.
ALLOWED = frozenset({"shared.page", "shared.items", "shared.leave", "shared.film_start",
                     "shared.film_stop", "shared.event", "media.media", "static",
                     "auth.logout"})
OWN_CASE = frozenset({"shared.page", "shared.items", "shared.leave", "shared.film_start",
                      "shared.film_stop", "shared.event"})


def shared_case() -> str | None:
    """The case whose shared review this session is showing, if any."""
    case = session.get(SHARED_KEY)
    return case if isinstance(case, str) else None


def allows(endpoint: str | None, view_args: dict[str, Any] | None) -> bool:
    """May a session in shared mode reach this endpoint with these arguments?"""
    case = shared_case()
    if case is None:
        return True
    args = view_args or {}
    if endpoint not in ALLOWED:
        return False
    if endpoint in OWN_CASE:
        return args.get("code") == case
    if endpoint == "media.media":
        return shared_review.may_show(ctx().app, case, str(args.get("kind")),
                                      str(args.get("item_id")))
    return True


@bp.post("/<code>/start")
def start(code: str) -> ResponseReturnValue:
    """Enter shared review mode for a case (from the guider's preparation page)."""
    ctx().app.catalog.cases.get(code)
    session[SHARED_KEY] = code
    ctx().app.catalog.audit.append("review.shared.start", code, actor=actor())
    return redirect(url_for("shared.page", code=code))


@bp.get("/<code>")
def page(code: str) -> ResponseReturnValue:
    """The shared review itself (entered with start; otherwise back to preparing it)."""
    if shared_case() != code:
        return redirect(url_for("pages.prepare", code=code))
    return render_template("shared.html", page="shared", code=code)


@bp.get("/<code>/items")
def items(code: str) -> ResponseReturnValue:
    """The chosen clips and stills, in order, with only what showing them needs."""
    out = []
    for item, row in shared_review.chosen(ctx().app, code):
        shown = present.item(row)
        out.append({"kind": str(item.kind), "url": shown["url"],
                    "duration_s": shown.get("duration_s"),
                    "caption": item.caption or shown.get("caption")})
    return jsonify(items=out)


@bp.post("/<code>/leave")
def leave(code: str) -> Response:
    """Leave shared mode: the guider's passphrase again, throttled like a login."""
    user = ctx().app.catalog.accounts.get(actor())
    try:
        accounts.log_in(ctx().app.catalog, user.name, request.form.get("password", ""),
                        client=request.remote_addr or "unknown")
    except LockedOutError as e:
        return _leave_refused(code, str(e))
    except AuthError:  # only the passphrase is asked here: say so, not "account name or ..."
        return _leave_refused(code, "That is not your passphrase: try again.")
    session.pop(SHARED_KEY, None)
    ctx().app.catalog.audit.append("review.shared.end", code, actor=user.name)
    return redirect(url_for("pages.prepare", code=code))  # type: ignore[return-value]


def _leave_refused(code: str, why: str) -> Response:
    return Response(render_template("shared.html", page="shared", code=code, leave_error=why),
                    status=401, mimetype="text/html")


@bp.post("/<code>/film/start")
def film_start(code: str) -> ResponseReturnValue:
    """Film this shared review (for supervision): needs the case's consent to it."""
    body.json_body(allowed=set())
    context = ctx()
    return jsonify(shared_review.film_review(context.app, context.daemon, code, actor=actor()))


@bp.post("/<code>/film/stop")
def film_stop(code: str) -> ResponseReturnValue:
    """Stop filming the review (only a review of this case)."""
    body.json_body(allowed=set())
    context = ctx()
    if shared_review.filmed_review(context.app, context.daemon, code) is None:
        raise BusyError("this review is not being filmed")
    return jsonify(context.daemon.stop(actor=actor()))


@bp.post("/<code>/events")
def event(code: str) -> ResponseReturnValue:
    """What the guider just did (shown, play, pause, speed, step), stored at its time in the
    review being filmed; {"recorded": false} when it is not being filmed."""
    data = body.json_body(allowed={"event", "item", "detail"})
    row = shared_review.note_event(
        ctx().app, ctx().daemon, code, body.text(data, "event", max_len=20) or "",
        index=body.integer(data, "item", required=False),
        detail=body.text(data, "detail", required=False, max_len=80))
    return jsonify(recorded=row is not None, event=row.to_json() if row else None)
