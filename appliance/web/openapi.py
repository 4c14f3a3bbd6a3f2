"""The JSON API described as OpenAPI 3.0 at /api/openapi.json (a test checks that every
/api/ route is described and that the fuzzer finds no 5xx)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__, url_prefix="/api")

NUM = {"type": "number"}
TEXT = {"type": "string", "maxLength": 2000}
CODE = {"type": "string", "maxLength": 64}
NULLABLE_CODE = {"type": "string", "maxLength": 64, "nullable": True}
SCOPES = {"type": "array", "maxItems": 10,
          "items": {"type": "string", "enum": ["filming", "supervision", "training"]}}
OBJ = {"type": "object"}


def _body(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props,
                              "additionalProperties": False}
    if required:
        schema["required"] = required
    return {"required": True, "content": {"application/json": {"schema": schema}}}


MOMENT = {"at_s": {"type": "number", "minimum": 0}, "end_s": {"type": "number", "nullable": True},
          "tag": {"type": "string", "maxLength": 60, "nullable": True},
          "note": {"type": "string", "maxLength": 2000, "nullable": True}}

# (method, path, summary, request body or None)
ROUTES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("get", "/api/status", "What the box is doing, free minutes, cases that may be filmed", None),
    ("post", "/api/record/start", "Start recording (for a case)", _body({"case": NULLABLE_CODE})),
    ("post", "/api/record/stop", "Stop recording; answers once the film is saved", _body({})),
    ("post", "/api/record/mark", "Mark this moment of the running recording", _body({})),
    ("post", "/api/record/press", "Press the simulated box's button for hold_s seconds "
     "(400 on a box with a real button)", _body({"hold_s": NUM})),
    ("post", "/api/record/case", "The case the next recording is filed under",
     _body({"case": NULLABLE_CODE})),
    ("get", "/api/live.jpg", "The camera's latest low-resolution picture (image/jpeg)", None),
    ("get", "/api/recordings", "Every recording, newest first, with media_url", None),
    ("get", "/api/recordings/{rec_id}", "One recording with assets, moments, clips, stills",
     None),
    ("post", "/api/recordings/{rec_id}/case", "File a recording under a case",
     _body({"case": NULLABLE_CODE})),
    ("get", "/api/recordings/{rec_id}/moments", "The moments of a recording", None),
    ("post", "/api/recordings/{rec_id}/moments", "Mark a moment or a span, tagged and noted",
     _body(MOMENT, ["at_s"])),
    ("patch", "/api/recordings/{rec_id}/moments/{moment_id}", "Change a moment", _body(MOMENT)),
    ("delete", "/api/recordings/{rec_id}/moments/{moment_id}", "Delete a moment", None),
    ("post", "/api/recordings/{rec_id}/clips", "Queue a fast or exact clip",
     _body({"start_s": NUM, "end_s": NUM, "exact": {"type": "boolean"},
            "moment_id": {"type": "integer", "nullable": True},
            "caption": {"type": "string", "maxLength": 200, "nullable": True}},
           ["start_s", "end_s"])),
    ("post", "/api/recordings/{rec_id}/stills", "Queue a still of the frame shown at at_s",
     _body({"at_s": NUM}, ["at_s"])),
    ("get", "/api/jobs", "Recent encoder jobs", None),
    ("get", "/api/jobs/{job_id}", "One job's status and progress", None),
    ("post", "/api/jobs/{job_id}/cancel", "Cancel a job", _body({})),
    ("post", "/api/imports", "Upload a video (the file's bytes as the body)",
     {"required": True, "content": {"application/octet-stream": {
         "schema": {"type": "string", "format": "binary"}}}}),
    ("get", "/api/cases", "Every case with its consent", None),
    ("post", "/api/cases", "Register a case", _body({"code": CODE, "scopes": SCOPES,
                                                     "date": {"type": "string",
                                                              "format": "date",
                                                              "nullable": True}},
                                                    ["code"])),
    ("post", "/api/cases/{code}/close", "The work with the family has ended", _body({})),
    ("post", "/api/cases/{code}/erase", "Erase a case on the family's request (the code "
     "again as confirm)", _body({"confirm": CODE}, ["confirm"])),
    ("post", "/api/cases/{code}/consent", "Record consent given or withdrawn",
     _body({"give": SCOPES, "withdraw": SCOPES,
            "date": {"type": "string", "format": "date", "nullable": True}})),
    ("get", "/api/cases/{code}/review", "A case's chosen clips and stills, and candidates",
     None),
    ("put", "/api/cases/{code}/review", "Choose the clips and stills a shared review shows",
     _body({"items": {"type": "array", "maxItems": 40, "items": {
         "type": "object", "additionalProperties": False, "required": ["kind", "id"],
         "properties": {"kind": {"type": "string", "enum": ["clip", "still"]},
                        "id": {"type": "string", "maxLength": 64},
                        "caption": {"type": "string", "maxLength": 200, "nullable": True}}}}},
           ["items"])),
    ("post", "/api/films", "Queue a review film of clips in order, with title cards",
     _body({"clip_ids": {"type": "array", "maxItems": 40,
                         "items": {"type": "string", "maxLength": 64}},
            "titles": {"type": "boolean"},
            "title_texts": {"type": "array", "maxItems": 40, "nullable": True,
                            "items": {"type": "string", "maxLength": 400, "nullable": True}}},
           ["clip_ids"])),
    ("get", "/api/tags", "The tag scheme", None),
    ("post", "/api/tags", "Add a tag (administrators)",
     _body({"label": {"type": "string", "maxLength": 60}}, ["label"])),
    ("patch", "/api/tags/{tag_id}", "Rename or retire a tag (administrators)",
     _body({"label": {"type": "string", "maxLength": 60}, "retired": {"type": "boolean"}})),
    ("get", "/api/settings", "The box's settings: in use, from the config file, limits", None),
    ("patch", "/api/settings", "Change settings; null = the config file's (administrators)",
     _body({"device_name": {"type": "string", "maxLength": 40, "nullable": True},
            "recording.max_seconds": {"type": "integer", "nullable": True},
            "recording.warn_before_end_s": {"type": "integer", "nullable": True},
            "web.downloads_allowed": {"type": "boolean", "nullable": True}})),
    ("get", "/api/users", "Every account (administrators)", None),
    ("post", "/api/users", "Add an account (administrators)",
     _body({"name": CODE, "password": {"type": "string", "maxLength": 1024},
            "admin": {"type": "boolean"}}, ["name", "password"])),
    ("delete", "/api/users/{name}", "Remove an account (administrators)", None),
    ("get", "/api/sync", "The office destination's state, the files on their way, done and "
     "dropped, whether a Sync now is running and how the latest ended", None),
    ("post", "/api/sync/run", "Sync now: start one run in the background (202), then poll "
     "/api/sync; 409 while a sync is running", _body({})),
    ("get", "/api/audit", "The audit log, oldest first, and whether its hash chain is intact, "
     "as `vigbox audit --json` (administrators)", None),
    ("get", "/api/clock", "The box's time (box_epoch_ms) and max_skew_s: how far the "
     "tablet's clock may differ before the tablet offers to set the box's", None),
    ("post", "/api/clock", "Set the box's clock from the tablet's (Date.now()) if they differ "
     "by more than max_skew_s; audited; every session ends, so log in again. 403 when a "
     "guider would put it back by more than a day: that needs an administrator",
     _body({"tablet_epoch_ms": {"type": "integer"}}, ["tablet_epoch_ms"])),
    ("get", "/api/openapi.json", "This document", None),
]
INT_PARAMS = {"moment_id", "job_id", "tag_id"}
# Optional query parameters, by path.
QUERY: dict[str, list[dict[str, Any]]] = {
    "/api/audit": [
        {"name": "action", "in": "query", "required": False,
         "description": "only entries whose action starts so (sync., view., download.)",
         "schema": {"type": "string", "maxLength": 60}},
        {"name": "limit", "in": "query", "required": False,
         "description": "only the newest this many (after the action filter)",
         "schema": {"type": "integer", "minimum": 1, "maximum": 100000}},
        {"name": "download", "in": "query", "required": False,
         "description": "1: save as a file (the download is audited)",
         "schema": {"type": "integer", "enum": [0, 1]}},
    ],
}


def _operation(method: str, path: str, summary: str,
               request_body: dict[str, Any] | None) -> dict[str, Any]:
    params = [{"name": p, "in": "path", "required": True,
               "schema": {"type": "integer"} if p in INT_PARAMS else {"type": "string"}}
              for p in (seg[1:-1] for seg in path.split("/") if seg.startswith("{"))]
    params += QUERY.get(path, [])
    responses: dict[str, Any] = {
        "200": {"description": "done", "content": {"application/json": {"schema": OBJ}}},
        "400": {"description": "the request was wrong; `error` says how"},
        "401": {"description": "log in first"},
        "403": {"description": "missing CSRF token, or administrators only"},
        "404": {"description": "no such item"},
        "409": {"description": "conflicts with what the box is doing"},
    }
    if method == "post":
        responses["201"] = {"description": "made"}
        responses["202"] = {"description": "queued: poll the job"}
        responses["413"] = {"description": "too large"}
    if path in ("/api/record/start", "/api/record/stop", "/api/record/mark", "/api/record/press",
                "/api/record/case", "/api/live.jpg", "/api/status"):
        responses["503"] = {"description": "the recorder is not running"}
        responses["500"] = {"description": "the recorder tried and failed"}
    op: dict[str, Any] = {"summary": summary, "parameters": params, "responses": responses}
    if request_body is not None:
        op["requestBody"] = request_body
    return op


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, request_body in ROUTES:
        paths.setdefault(path, {})[method] = _operation(method, path, summary, request_body)
    return {
        "openapi": "3.0.3",
        "info": {"title": "vigbox tablet API", "version": "1",
                 "description": "Every call needs a logged-in session (cookie from /login); "
                                "every POST, PATCH and DELETE needs the session's CSRF token "
                                "in the X-CSRF-Token header. Errors are JSON: "
                                '{"error": "what was wrong", "status": N}.'},
        "paths": paths,
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    """The API's OpenAPI document."""
    return jsonify(document())
