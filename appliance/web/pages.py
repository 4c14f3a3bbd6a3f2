"""The tablet's pages: Home, Cases, Review, Import, Sync, Accounts, Settings, Audit. Each page
is a light HTML shell; the data comes from the JSON API, drawn by the page's own script."""

from __future__ import annotations

from flask import Blueprint, render_template

from appliance.catalog import Still
from appliance.services import files, home, shared_review
from appliance.services import recordings as rec_service
from appliance.web import present
from appliance.web.context import ctx
from appliance.web.security import actor, admin_only

bp = Blueprint("pages", __name__)


@bp.get("/", endpoint="home")
def home_page() -> str:
    """Home: record / stop / mark, live view, the case being filmed, recent recordings."""
    app = ctx().app
    return render_template("home.html", page="home",
                           cases=[c.code for c in home.filmable_cases(app)])


@bp.get("/cases")
def cases() -> str:
    """Cases: codes, consent scopes and dates; add a case; record consent changes."""
    return render_template("cases.html", page="cases")


@bp.get("/review/<rec_id>")
def review(rec_id: str) -> str:
    """Review: the film frame by frame, moments, clips and stills."""
    context = ctx()
    rec = rec_service.get_recording(context.app, rec_id)
    context.app.catalog.audit.append("view.review", rec_id, actor=actor())
    return render_template("review.html", page="review", rec=present.recording(rec),
                           cases=[c.code for c in home.filmable_cases(context.app)])


@bp.get("/import")
def import_page() -> str:
    """Import: upload a video filmed elsewhere."""
    return render_template("import.html", page="import",
                           cases=[c.code for c in home.filmable_cases(ctx().app)])


@bp.get("/sync")
def sync() -> str:
    """Sync: the office destination's state, Sync now, the files on their way and done."""
    return render_template("sync.html", page="sync")


@bp.get("/accounts")
@admin_only
def accounts() -> str:
    """Accounts: guiders and administrators (administrators)."""
    return render_template("accounts.html", page="accounts")


@bp.get("/settings")
@admin_only
def settings() -> str:
    """Settings: the box's name, recording limits, downloads, the tag scheme
    (administrators)."""
    return render_template("settings.html", page="settings")


@bp.get("/audit")
@admin_only
def audit() -> str:
    """Audit: who did what, newest first, filtered by action; intact or altered
    (administrators)."""
    return render_template("audit.html", page="audit")


@bp.get("/cases/<code>/review")
def prepare(code: str) -> str:
    """Prepare a case's shared review: choose clips and stills and their order."""
    app = ctx().app
    case = app.catalog.cases.get(code)
    return render_template("prepare.html", page="cases", code=case.code,
                           downloads=files.downloads_allowed(app))


@bp.get("/cases/<code>/stills")
def stills_sheet(code: str) -> str:
    """The chosen stills with their captions on a printable page, for the parent to keep."""
    context = ctx()
    case = context.app.catalog.cases.get(code)
    stills = [(item.caption, present.still(row))
              for item, row in shared_review.chosen(context.app, code)
              if isinstance(row, Still)]
    context.app.catalog.audit.append("review.stills_sheet", code, actor=actor())
    return render_template("stills_sheet.html", page="cases", code=case.code, stills=stills)
