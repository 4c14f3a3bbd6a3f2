"""Recovery: turn every interrupted recording into a playable one (status `recovered`).

A recording is interrupted when the box lost power, the daemon was killed, or
finalizing (or the catalog write after it) failed. Its journal is still on disk;
whatever whole frames and audio chunks it holds are finalized exactly as a normal
stop would; a film finished before the crash is adopted as it is. Folders locked
by a live session or an import in progress are left alone.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.capture import journal as journal_files
from appliance.capture.finalize import finalize
from appliance.capture.journal import remove_journal
from appliance.catalog import INTERRUPTED, Catalog, Origin, Recording, RecordingStatus, utc_now
from appliance.errors import ApplianceError, BusyError, CatalogError, MediaError
from appliance.fsutil import is_locked, lock_directory
from appliance.layout import FILM_NAME, META_NAME, Layout, check_id
from appliance.probe import probe

log = logging.getLogger(__name__)
ACTOR = "recover"
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
    """Recordings that need recovery: interrupted, or failed with the raw journal or a
    finished film still there (a film whose catalog write failed)."""
    out = list(catalog.recordings.list(INTERRUPTED))
    out += [r for r in catalog.recordings.list((RecordingStatus.FAILED,))
            if r.origin == Origin.CAPTURE and r.path is None
            and (has_journal(r.dir) or (r.dir / FILM_NAME).is_file())]
    return sorted(out, key=lambda r: (r.started_at, r.id))


def recover_all(catalog: Catalog, *, default_fps: int, default_sample_rate: int
                ) -> list[RecoveryOutcome]:
    """Recover every candidate; one bad recording never stops the others."""
    clean_stale_imports(catalog.layout)
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
        out = directory / FILM_NAME
        problems = [p for p in rec.problems if p != NOTE
                    and not p.startswith("could not be finalized")] + [NOTE]
        if not has_journal(directory):
            if out.exists():
                # The crash came after the MP4 was published (and maybe the journal removed).
                return _adopt_published(catalog, rec, out, problems)
            return _give_up(catalog, rec, "nothing was recorded before the interruption")
        log.info("recovering %s", rec.id)
        try:
            result = finalize(directory, out, fps=int(meta.get("fps") or rec.fps or default_fps),
                              sample_rate=int(meta.get("sample_rate") or default_sample_rate),
                              mic_failed=rec.audio == "failed")
        except ApplianceError as e:
            detail = f"could not be finalized: {e}"
            # Retried at every start: say it once, not once per attempt.
            catalog.recordings.update(rec.id, status=RecordingStatus.FAILED,
                                      problems=[*problems[:-1], detail], actor=ACTOR)
            return RecoveryOutcome(rec.id, "failed", detail, catalog.recordings.get(rec.id))
        updated = catalog.recordings.update(
            rec.id, status=RecordingStatus.RECOVERED, path=result.path,
            duration_s=result.duration_s, video_frames=result.frames,
            dropped_frames=result.dropped_frames, audio=result.audio, problems=problems,
            actor=ACTOR)
        remove_journal(directory)
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
    updated = catalog.recordings.update(rec.id, status=RecordingStatus.RECOVERED, path=out,
                                        problems=problems, actor=ACTOR, **facts)
    return RecoveryOutcome(rec.id, "recovered", "the finished file was already complete",
                           updated)


def film_facts(film: Path) -> dict[str, Any]:
    """Catalog fields read from a finished MP4; MediaError if it has no video."""
    info = probe(film, count_packets=True)
    if info.video is None or info.video.attached_pic:
        raise MediaError(f"{film.name} has no video")
    width, height = info.video.display_size
    return {"duration_s": round(info.duration_s, 3), "width": width, "height": height,
            "video_frames": info.video.packets or 0,
            "audio": "ok" if info.has_audio else "none"}


def _give_up(catalog: Catalog, rec: Recording, why: str) -> RecoveryOutcome:
    updated = catalog.recordings.update(rec.id, status=RecordingStatus.FAILED,
                                        problems=[*rec.problems, why], actor=ACTOR)
    log.warning("recording %s cannot be recovered: %s", rec.id, why)
    return RecoveryOutcome(rec.id, "failed", why, updated)


def _read_meta(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / META_NAME).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # written atomically, so missing means the crash came before it


def clean_stale_imports(layout: Layout) -> None:
    """Remove imports left half-done by a crash (they never reached the catalog); an
    import still running holds its folder's lock and is left alone."""
    if not layout.recordings_dir.is_dir():
        return
    for folder in layout.recordings_dir.iterdir():
        if layout.is_staging(folder) and folder.is_dir() and not is_locked(folder):
            log.info("removing an unfinished import: %s", folder.name)
            shutil.rmtree(folder, ignore_errors=True)


def adopt_orphaned_imports(catalog: Catalog) -> list[RecoveryOutcome]:
    """Catalog finished imports whose catalog row was lost to a crash.

    An import renames its folder into place and then adds the row, holding the
    folder's lock throughout; a crash in between leaves an unlocked playable film
    that nothing lists. Capture folders always have a row first (and a meta.json),
    so an unlocked folder with only the MP4 is such an import.
    """
    layout = catalog.layout
    if not layout.recordings_dir.is_dir():
        return []
    outcomes = []
    for folder in sorted(layout.recordings_dir.iterdir()):
        if not _orphan(catalog, folder):
            continue
        try:
            handle = lock_directory(folder)
        except (BusyError, OSError):
            continue  # an import is finishing right now
        try:
            if catalog.recordings.exists(folder.name):
                continue  # it finished between our look and our lock
            outcomes.append(_adopt(catalog, folder))
        except ApplianceError as e:
            log.warning("orphaned folder %s has no usable film (%s); left alone", folder.name, e)
        finally:
            handle.close()
    return outcomes


def _orphan(catalog: Catalog, folder: Path) -> bool:
    if folder.name.startswith(".") or not (folder / FILM_NAME).is_file():
        return False
    if (folder / META_NAME).exists():
        return False
    try:
        check_id("recording", folder.name)
    except CatalogError:
        return False
    return not catalog.recordings.exists(folder.name)


def _adopt(catalog: Catalog, folder: Path) -> RecoveryOutcome:
    facts = film_facts(folder / FILM_NAME)
    rec = catalog.recordings.create(
        folder.name, case=None, started_at=utc_now(), origin=Origin.IMPORT,
        status=RecordingStatus.RECOVERED, actor=ACTOR, path=folder / FILM_NAME, **facts,
        problems=["an import interrupted before it was catalogued; its case, if any, "
                  "must be set again"])
    log.info("adopted the orphaned import %s", rec.id)
    return RecoveryOutcome(rec.id, "recovered", "an interrupted import", rec)
