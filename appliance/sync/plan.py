"""What goes to the office: per recording its ready clips, stills and review films, the
whole recording when the policy says so, filmed shared reviews only with consent to
supervision, and nothing at all that the case's consent does not cover.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from appliance.catalog import (
    Case,
    Catalog,
    Consent,
    MediaStatus,
    Recording,
    SyncKind,
)
from appliance.config import Config
from appliance.fsutil import atomic_write_bytes

DEVICE_ID_FILE = "device-id"


@dataclass(frozen=True)
class Outgoing:
    """One file due at the office, and its name there."""

    kind: SyncKind
    item_id: str
    path: Path
    recording: Recording
    remote_name: str


def device_id(config: Config, root: Path) -> str:
    """This box's name at the office: sync.device_id, else one made once and kept."""
    if config.sync.device_id:
        return config.sync.device_id
    path = root / DEVICE_ID_FILE
    try:
        found = path.read_text().strip()
        if found:
            return found
    except FileNotFoundError:
        pass
    made = f"box-{secrets.token_hex(4)}"
    atomic_write_bytes(path, (made + "\n").encode())
    return made


def covered(case: Case | None, rec: Recording) -> bool:
    """May anything of this recording go to the office? Only with consent to filming on
    record (and to supervision for a filmed shared review), never for an erased case."""
    if case is None or case.erased_at is not None or not case.allows(Consent.FILMING):
        return False
    return rec.kind != "review" or case.allows(Consent.SUPERVISION)


def folder(device: str, rec: Recording) -> str:
    """A recording's folder at the office: <device>/<case>/<recording>."""
    return f"{device}/{rec.case}/{rec.id}"


def outgoing(catalog: Catalog, config: Config, device: str) -> list[Outgoing]:
    """Every file that should be at the office now."""
    cases = {c.code: c for c in catalog.cases.list()}
    recordings = {r.id: r for r in catalog.recordings.list()}
    clips_by = catalog.media.clips_by_recording()
    out: list[Outgoing] = []
    for rec in recordings.values():
        if not rec.playable or rec.path is None or not covered(cases.get(rec.case or ""), rec):
            continue
        base = folder(device, rec)
        for clip in clips_by.get(rec.id, []):
            if clip.status is MediaStatus.READY and clip.path is not None:
                out.append(Outgoing(SyncKind.CLIP, clip.id, clip.path, rec,
                                    f"{base}/{clip.id}.mp4.age"))
        for still in catalog.media.stills(rec.id):
            if still.status is MediaStatus.READY and still.path is not None:
                out.append(Outgoing(SyncKind.STILL, still.id, still.path, rec,
                                    f"{base}/{still.id}.jpg.age"))
        # A filmed shared review is itself what the supervisor needs.
        if config.sync.send_recordings or rec.kind == "review":
            out.append(Outgoing(SyncKind.RECORDING, rec.id, rec.path, rec,
                                f"{base}/recording-{rec.id}.mp4.age"))
    clip_recording = {c.id: c.recording_id for clips in clips_by.values() for c in clips}
    for film in catalog.media.films():
        if film.status is not MediaStatus.READY or film.path is None or not film.clip_ids:
            continue
        owners = {recordings.get(clip_recording.get(c, "")) for c in film.clip_ids}
        # A film joins clips of one case; it goes with the first clip's recording.
        first = recordings.get(clip_recording.get(film.clip_ids[0], ""))
        if first is None or None in owners or len({r.case for r in owners if r}) != 1:
            continue
        if covered(cases.get(first.case or ""), first):
            out.append(Outgoing(SyncKind.FILM, film.id, film.path, first,
                                f"{folder(device, first)}/{film.id}.mp4.age"))
    return out
