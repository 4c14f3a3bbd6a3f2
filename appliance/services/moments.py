"""Moments in review: mark a span, tag it from the scheme, note it; edit; remove."""

from __future__ import annotations

from appliance.catalog import Moment, MomentSource, Tag
from appliance.encode.source import source_of
from appliance.errors import InputError
from appliance.services.app import App


def tag_scheme(app: App, *, include_retired: bool = False) -> list[Tag]:
    """The tags a moment can carry (the six PAIG headings unless changed)."""
    return app.catalog.tags.list(include_retired=include_retired)


def _check_inside(app: App, rec_id: str, at_s: float, end_s: float | None) -> None:
    duration = source_of(app.catalog, rec_id).duration_s
    last = end_s if end_s is not None else at_s
    if isinstance(last, (int, float)) and last > duration + 1e-3:
        raise InputError(f"the moment ends at {last:.3f} s, after the film's end "
                         f"({duration:.3f} s)")


def add_moment(app: App, rec_id: str, at_s: float, *, end_s: float | None = None,
               tag: str | None = None, note: str | None = None, actor: str) -> Moment:
    """A moment marked in review (a span when it has an out point)."""
    _check_inside(app, rec_id, at_s, end_s)
    if tag is not None:
        app.catalog.tags.check_active(tag)
    return app.catalog.moments.add(rec_id, at_s, end_s=end_s, tag=tag, note=note,
                                   source=MomentSource.UI, actor=actor)


def edit_moment(app: App, rec_id: str, moment_id: int, *, actor: str,
                **fields: float | str | None) -> Moment:
    """Change a moment's times, tag or note; a retired tag it already has may stay."""
    moment = app.catalog.moments.get(moment_id)
    if moment.recording_id != rec_id:
        raise InputError(f"moment {moment_id} is not in recording {rec_id}")
    tag = fields.get("tag")
    if tag is not None and tag != moment.tag:
        app.catalog.tags.check_active(str(tag))
    at_s = fields.get("at_s", moment.at_s)
    end_s = fields.get("end_s", moment.end_s)
    if isinstance(at_s, (int, float)) and (end_s is None or isinstance(end_s, (int, float))):
        _check_inside(app, rec_id, float(at_s), None if end_s is None else float(end_s))
    return app.catalog.moments.edit(moment_id, actor=actor, **fields)


def remove_moment(app: App, rec_id: str, moment_id: int, *, actor: str) -> None:
    """Delete a moment of this recording."""
    if app.catalog.moments.get(moment_id).recording_id != rec_id:
        raise InputError(f"moment {moment_id} is not in recording {rec_id}")
    app.catalog.moments.remove(moment_id, actor=actor)
