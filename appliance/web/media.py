"""Media files for the tablet: films, clips, stills and review assets, with byte ranges
(Safari plays video only from a server that answers them) and an audited view; and, only
where an administrator allows it, a download."""

from __future__ import annotations

from flask import Blueprint, Response, send_file

from appliance.services import files
from appliance.web.context import ctx
from appliance.web.security import actor

bp = Blueprint("media", __name__, url_prefix="/media")


@bp.route("/<kind>/<item_id>")
def media(kind: str, item_id: str) -> Response:
    """One media file by kind (recording, clip, still, film, poster, sprite, thumbs,
    waveform) and id; 206 for a range, 416 for a range outside the file."""
    context = ctx()
    path, mimetype = files.media_file(context.app, kind, item_id)
    who = actor()
    # One audit line per viewing, however many range requests the player makes.
    if context.first_view(who, kind, item_id):
        files.note_view(context.app, kind, item_id, actor=who)
    response = send_file(path, mimetype=mimetype, conditional=True, etag=True,
                         max_age=0, download_name=path.name)
    # Inline, never as an attachment: the UI shows media, it does not hand files out.
    response.headers["Content-Disposition"] = "inline"
    # Children's footage is not kept in the tablet's browser cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<kind>/<item_id>/download")
def download(kind: str, item_id: str) -> Response:
    """A clip, still or review film as a file to keep, when an administrator allows
    downloads (web.downloads_allowed); every download is audited."""
    path, mimetype, name = files.download_file(ctx().app, kind, item_id, actor=actor())
    response = send_file(path, mimetype=mimetype, as_attachment=True, download_name=name,
                         conditional=True, etag=True, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response
