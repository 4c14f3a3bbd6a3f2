"""A recording's manifest for the office: who, what and when, the consent that covers it,
the moments with their tags and notes, and every file sent with the sha256 of its
plaintext and of the exact ciphertext sent, so the office can check what it received.

It is sealed like the files (it holds case notes) and sent after them; when more of the
recording reaches the office later, a new numbered manifest says so.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from appliance.catalog import Case, Catalog, Recording, SyncItem, SyncKind, utc_now

FORMAT = "vigbox-manifest/1"


def build(catalog: Catalog, rec: Recording, case: Case, device: str,
          files: list[SyncItem]) -> dict[str, Any]:
    """The manifest of a recording and the files of it now verified at the office."""
    doc: dict[str, Any] = {
        "format": FORMAT, "device": device, "case": case.code,
        "consent": {str(s): d for s, d in sorted(case.consent.items())},
        "recording": {"id": rec.id, "kind": rec.kind, "started_at": rec.started_at,
                      "duration_s": rec.duration_s, "fps": rec.fps, "width": rec.width,
                      "height": rec.height, "origin": str(rec.origin)},
        "moments": [{"at_s": m.at_s, "end_s": m.end_s, "tag": m.tag, "note": m.note,
                     "source": str(m.source)} for m in catalog.moments.list(rec.id)],
        "files": [{"name": f.remote_name.rsplit("/", 1)[-1], "kind": str(f.kind),
                   "id": f.item_id, "size": f.plain_size, "sha256": f.plain_sha256,
                   "sealed_size": f.sealed_size, "sealed_sha256": f.sealed_sha256}
                  for f in sorted(files, key=lambda f: f.remote_name)],
    }
    if rec.kind == "review":
        doc["review_events"] = [e.to_json() for e in catalog.review_events.list(rec.id)]
    return doc


def digest(doc: dict[str, Any]) -> str:
    """What the manifest says, as a short hash: an unchanged one is not sent again."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def encode(doc: dict[str, Any], version: int) -> bytes:
    """The manifest file's bytes, numbered and dated."""
    return (json.dumps({**doc, "version": version, "made_at": utc_now()}, indent=2,
                       sort_keys=True) + "\n").encode()


def erasure(case: Case, device: str) -> dict[str, Any]:
    """The notice that a family asked for their case to be erased: the office deletes its
    copies too."""
    return {"format": FORMAT, "device": device, "case": case.code, "erased_at": case.erased_at,
            "erasure": True}


def name_of(folder: str, kind: SyncKind, version: int) -> str:
    """The manifest's or erasure notice's name at the office."""
    return f"{folder}/{kind}-{version}.json.age"
