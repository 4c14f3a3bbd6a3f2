"""Recovery: turn every interrupted recording into a playable one (status `recovered`).

A recording is interrupted when the box lost power, the daemon was killed, or
finalizing failed (e.g. the disk was full). Its journal is still on disk; whatever
whole frames and audio chunks it holds are finalized exactly as a normal stop
would. Directories locked by a live session are left alone.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import ffmpeg_tool
from appliance.capture import journal as journal_files
from appliance.capture.finalize import finalize
from appliance.capture.session import lock_directory, remove_journal
from appliance.catalog import Catalog, Recording, utc_now
from appliance.encode.jobs import queue_assets
from appliance.errors import ApplianceError, BusyError, MediaError

log = logging.getLogger(__name__)
MP4 = "recording.mp4"
INTERRUPTED = ("recording", "finalizing")
NOTE = "interrupted (power cut, crash or failed finalize); recovered from the journal"


@dataclass(frozen=True)
class RecoveryOutcome:
    """What recovery did to one recording."""

    id: str
    action: str          # "recovered", "failed", "skipped"
    detail: str
    recording: Recording | None

    def to_json(self) -> dict[str, Any]:
        """Plain data for `vigbox recover --json`."""
        return {"id": self.id, "action": self.action, "detail": self.detail,
                "recording": self.recording.to_json() if self.recording else None}


def has_journal(directory: Path) -> bool:
    """True if the directory still holds raw video to finalize."""
    video = directory / journal_files.VIDEO
    return video.exists() and video.stat().st_size > 0


def candidates(catalog: Catalog) -> list[Recording]:
    """Recordings that need recovery: interrupted, or failed with the raw journal kept."""
    out = list(catalog.list_recordings(INTERRUPTED))
    out += [r for r in catalog.list_recordings(("failed",))
            if r.origin == "capture" and has_journal(r.dir)]
    return sorted(out, key=lambda r: (r.started_at, r.id))


def recover_all(catalog: Catalog, *, default_fps: int, default_sample_rate: int
                ) -> list[RecoveryOutcome]:
    """Recover every candidate; one bad recording never stops the others."""
    clean_stale_imports(catalog.data_dir)
    outcomes = adopt_orphaned_imports(catalog)
    for rec in candidates(catalog):
        try:
            outcomes.append(recover_one(catalog, rec, default_fps=default_fps,
                                        default_sample_rate=default_sample_rate))
        except Exception as e:  # noqa: BLE001 - report and go on with the next one
            log.exception("recovery of %s failed", rec.id)
            outcomes.append(RecoveryOutcome(rec.id, "failed", f"internal error: {e}", None))
    return outcomes


def recover_one(catalog: Catalog, rec: Recording, *, default_fps: int,
                default_sample_rate: int) -> RecoveryOutcome:
    """Finalize one interrupted recording from its journal."""
    directory = rec.dir
    if not directory.is_dir():
        return _give_up(catalog, rec, "its folder is missing; nothing was recorded")
    try:
        handle = lock_directory(directory)
    except BusyError:
        return RecoveryOutcome(rec.id, "skipped", "still being recorded by a running process",
                               None)
    try:
        meta = _read_meta(directory)
        fps = int(meta.get("fps") or rec.fps or default_fps)
        sample_rate = int(meta.get("sample_rate") or default_sample_rate)
        out = directory / MP4
        problems = [p for p in rec.problems if p != NOTE] + [NOTE]
        if not has_journal(directory):
            if out.exists():
                # The crash came after the MP4 was published and the journal removed.
                return _adopt_published(catalog, rec, out, problems)
            return _give_up(catalog, rec, "nothing was recorded before the interruption")
        log.info("recovering %s", rec.id)
        try:
            result = finalize(directory, out, fps=fps, sample_rate=sample_rate,
                              mic_failed=rec.audio == "failed")
        except ApplianceError as e:
            detail = f"could not be finalized: {e}"
            # Retried at every start: say it once, not once per attempt.
            problems = [p for p in rec.problems if not p.startswith("could not be finalized")]
            catalog.update_recording(rec.id, status="failed", problems=[*problems, detail],
                                     actor="recover")
            return RecoveryOutcome(rec.id, "failed", detail, catalog.get_recording(rec.id))
        remove_journal(directory)
        updated = catalog.update_recording(
            rec.id, status="recovered", path=result.path, duration_s=result.duration_s,
            video_frames=result.frames, dropped_frames=result.dropped_frames,
            audio=result.audio, problems=problems, actor="recover")
        queue_assets(catalog, rec.id)
        log.info("recovered %s: %.1f s", rec.id, result.duration_s)
        return RecoveryOutcome(rec.id, "recovered", f"{result.duration_s:.1f} s recovered",
                               updated)
    finally:
        handle.close()


def _adopt_published(catalog: Catalog, rec: Recording, out: Path,
                     problems: list[str]) -> RecoveryOutcome:
    try:
        facts = film_facts(out)
    except ApplianceError as e:
        return _give_up(catalog, rec, f"the finished file is unusable ({e})")
    updated = catalog.update_recording(rec.id, status="recovered", path=out,
                                       problems=problems, actor="recover", **facts)
    return RecoveryOutcome(rec.id, "recovered", "the finished file was already complete",
                           updated)


def film_facts(film: Path) -> dict[str, Any]:
    """Catalog fields read from a finished MP4; MediaError if it has no video."""
    info = ffmpeg_tool.probe(film, count_packets=True)
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise MediaError(f"{film.name} has no video")
    return {"duration_s": round(float(info.get("format", {}).get("duration") or 0.0), 3),
            "width": video.get("width"), "height": video.get("height"),
            "video_frames": int(video.get("nb_read_packets") or 0),
            "audio": "ok" if any(s.get("codec_type") == "audio" for s in streams) else "none"}


def _give_up(catalog: Catalog, rec: Recording, why: str) -> RecoveryOutcome:
    updated = catalog.update_recording(rec.id, status="failed", problems=[*rec.problems, why],
                                       actor="recover")
    log.warning("recording %s cannot be recovered: %s", rec.id, why)
    return RecoveryOutcome(rec.id, "failed", why, updated)


def _read_meta(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / "meta.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # written atomically, so missing means the crash came before it


def clean_stale_imports(data_dir: Path) -> None:
    """Remove half-done imports left by a crash (they never reached the catalog)."""
    staging = data_dir / "recordings"
    if not staging.is_dir():
        return
    for tmp in staging.glob(".import-*"):
        log.info("removing an unfinished import: %s", tmp.name)
        shutil.rmtree(tmp, ignore_errors=True)


def adopt_orphaned_imports(catalog: Catalog) -> list[RecoveryOutcome]:
    """Catalog finished imports whose catalog row was lost to a crash.

    An import renames its folder into place and then adds the row; a crash in
    between leaves a playable film that nothing lists. Capture folders always
    have a row first (and a meta.json), so a folder with only the MP4 is such an import.
    """
    recordings = catalog.data_dir / "recordings"
    if not recordings.is_dir():
        return []
    known = {r.id for r in catalog.list_recordings()}
    outcomes = []
    for folder in sorted(recordings.iterdir()):
        film = folder / MP4
        if (folder.name.startswith(".") or folder.name in known or not film.is_file()
                or (folder / "meta.json").exists()):
            continue
        try:
            facts = film_facts(film)
        except ApplianceError as e:
            log.warning("orphaned folder %s has no usable film (%s); left alone", folder.name, e)
            continue
        rec = catalog.create_recording(
            folder.name, case=None, started_at=utc_now(), directory=folder, origin="import",
            status="recovered", actor="recover", path=film, **facts,
            problems=["an import interrupted before it was catalogued; its case, if any, "
                      "must be set again"])
        queue_assets(catalog, rec.id)
        log.info("adopted the orphaned import %s", rec.id)
        outcomes.append(RecoveryOutcome(rec.id, "recovered", "an interrupted import", rec))
    return outcomes
