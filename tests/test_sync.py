"""Sync to the office through a folder (file://): what goes and what never does, sealing
once, resuming, verifying, manifests, backoff, the lock, and the office's decrypt, checked
with the reference `age` tool. SFTP and S3 have their own tests against real servers."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from pyrage import x25519

from appliance.catalog import Consent, SyncKind, SyncStatus
from appliance.errors import SyncBusyError, SyncNetworkError
from appliance.services import media as media_service
from appliance.services import sync as sync_service
from appliance.services.app import App
from appliance.sync.dest_file import FolderDestination, _LocalPart
from appliance.sync.destination import RemoteFile
from appliance.sync.office import decrypt_folder, load_identities
from appliance.sync.run import SyncRun, sync_lock
from tests.sync_support import office_folder

AGE = shutil.which("age")


@dataclasses.dataclass
class Office:
    """The office: its folder, its age key (identity file) and the box's App set up to
    sync there."""

    folder: Path
    identity: Path
    app: App

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*")
                      if p.is_file())


@pytest.fixture
def office(app: App, tmp_path: Path) -> Office:
    box, folder, key = office_folder(app, tmp_path)
    return Office(folder, key, box)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip_to_the_office(office: Office, media: dict[str, str],
                                  tmp_path: Path) -> None:
    summary = sync_service.run_sync(office.app)
    assert summary.failed == [] and summary.stopped is None and summary.pending == 0
    # FAM-1: two clips, a still, a manifest; FAM-2: a clip and a manifest.
    assert summary.uploaded == 6, office.files()
    assert not any(name.endswith(".part") for name in office.files())
    report = decrypt_folder(office.folder, tmp_path / "plain", load_identities(office.identity))
    assert report.ok and report.unlisted == [] and len(report.decrypted) == 4, report
    catalog = office.app.catalog
    for name in ("clip1", "clip2", "other"):
        clip = catalog.media.clip(media[name])
        [found] = (tmp_path / "plain").rglob(f"{clip.id}.mp4")
        assert sha(found) == sha(clip.path)  # type: ignore[arg-type]
    # Only the office's key opens them, with the reference age tool too.
    if AGE:
        sealed = next(office.folder.rglob(f"{media['still']}.jpg.age"))
        out = tmp_path / "by-age.jpg"
        subprocess.run([AGE, "-d", "-i", str(office.identity), "-o", str(out), str(sealed)],
                       check=True, timeout=60)
        assert sha(out) == sha(catalog.media.still(media["still"]).path)  # type: ignore[arg-type]
    # Every upload is audited; the outbox is empty once the office has verified copies.
    uploads = [e for e in catalog.audit.entries() if e.action == "sync.upload"]
    assert len(uploads) == 6 and all(e.detail["sha256"] for e in uploads)
    assert list(office.app.layout.outbox.iterdir()) == []
    again = sync_service.run_sync(office.app)
    assert again.uploaded == 0 and again.pending == 0, "nothing is sent twice"


def test_nothing_goes_without_consent(office: Office, media: dict[str, str],
                                      film: str) -> None:
    catalog = office.app.catalog
    catalog.cases.set_consent("FAM-2", {Consent.FILMING: None}, actor="test")
    summary = sync_service.run_sync(office.app)
    assert summary.failed == []
    assert not [f for f in office.files() if "/FAM-2/" in f]
    assert [f for f in office.files() if "/FAM-1/" in f]


def test_withdrawn_consent_drops_what_was_waiting(office: Office, media: dict[str, str],
                                                  tmp_path: Path) -> None:
    catalog = office.app.catalog
    unreachable = App(dataclasses.replace(office.app.config, sync=dataclasses.replace(
        office.app.config.sync, destination=f"file://{tmp_path / 'not-mounted'}")), catalog)
    first = sync_service.run_sync(unreachable)
    assert "not there" in first.failed[0]["reason"] and first.pending == 6 - 2
    catalog.cases.set_consent("FAM-1", {Consent.FILMING: None}, actor="test")
    summary = sync_service.run_sync(office.app)
    assert not [f for f in office.files() if "/FAM-1/" in f]
    assert summary.pending == 0
    dropped = catalog.sync.queue(status=SyncStatus.DROPPED)
    assert {d.case_code for d in dropped} == {"FAM-1"} and len(dropped) == 3
    assert len([e for e in catalog.audit.entries() if e.action == "sync.drop"]) == 3


class CutAfter(FolderDestination):
    """The office folder, with the link cut after `limit` bytes of file data."""

    def __init__(self, root: Path, limit: int) -> None:
        super().__init__(root)
        self.limit = limit
        self.written = 0

    def open_part(self, name: str, offset: int) -> RemoteFile:
        part = super().open_part(name, offset)
        outer = self

        class Counting(_LocalPart):
            def write(self, data: bytes) -> None:
                if outer.written + len(data) > outer.limit:
                    raise SyncNetworkError("the link broke")
                outer.written += len(data)
                assert isinstance(part, _LocalPart)
                part.write(data)

            def flush_to_disk(self) -> None:
                part.flush_to_disk()

            def close(self) -> None:
                part.close()

        return Counting(part._f, name)  # type: ignore[attr-defined]


def test_a_cut_upload_resumes_where_it_stopped(office: Office, film: str,
                                               tmp_path: Path) -> None:
    catalog = office.app.catalog
    catalog.cases.add("FAM-9", {Consent.FILMING: "2026-01-01"}, actor="test")
    catalog.recordings.set_case(film, "FAM-9", actor="test")
    config = dataclasses.replace(office.app.config, sync=dataclasses.replace(
        office.app.config.sync, send_recordings=True))
    size = catalog.recordings.get(film).path.stat().st_size  # type: ignore[union-attr]
    cut = CutAfter(office.folder, limit=size // 2)
    first = SyncRun(catalog, config, cut).run()
    assert first.failed and "link broke" in first.failed[0]["reason"]
    [item] = catalog.sync.of(SyncKind.RECORDING, film)
    assert item.status is SyncStatus.SEALED and item.attempts == 1
    assert item.next_try_at > 0 and item.sent_bytes == 0
    part = next(office.folder.rglob("*.part"))
    held = part.stat().st_size
    assert 0 < held <= size // 2
    assert not list(office.folder.rglob("recording-*.mp4.age")), "no half file, final name"
    # The next automatic run waits for the backoff; a person's "sync now" does not.
    waiting = SyncRun(catalog, config, FolderDestination(office.folder)).run()
    assert waiting.uploaded == 0 and waiting.pending == 1
    rest = CutAfter(office.folder, limit=10**12)
    done = SyncRun(catalog, config, rest, manual=True).run()
    assert done.failed == [] and done.pending == 0
    [item] = catalog.sync.of(SyncKind.RECORDING, film)
    assert item.status is SyncStatus.VERIFIED
    [manifest] = [i for i in catalog.sync.queue() if i.kind is SyncKind.MANIFEST]
    assert rest.written == (item.sealed_size or 0) - held + (manifest.sealed_size or 0), \
        "only the missing bytes were sent (and the manifest)"
    report = decrypt_folder(office.folder, tmp_path / "plain", load_identities(office.identity))
    assert report.ok
    [plain] = (tmp_path / "plain").rglob(f"recording-{film}.mp4")
    assert sha(plain) == sha(catalog.recordings.get(film).path)  # type: ignore[arg-type]


def test_a_new_clip_brings_a_new_manifest(office: Office, media: dict[str, str],
                                          tmp_path: Path) -> None:
    sync_service.run_sync(office.app)
    rec_id = office.app.catalog.media.clip(media["clip1"]).recording_id
    job = media_service.request_clip(office.app, rec_id, 6.0, 7.0, exact=True, actor="test")
    media_service.run_queued(office.app)
    summary = sync_service.run_sync(office.app)
    assert summary.uploaded == 2   # the clip and manifest-2
    folder = next(office.folder.rglob(rec_id))
    assert sorted(p.name for p in folder.glob("manifest-*")) == [
        "manifest-1.json.age", "manifest-2.json.age"]
    report = decrypt_folder(office.folder, tmp_path / "plain", load_identities(office.identity))
    new_clip = str(office.app.catalog.jobs.get(job.id).subject)
    assert report.ok and any(new_clip in d for d in report.decrypted)


def test_the_office_sees_missing_and_altered_files(office: Office, media: dict[str, str],
                                                   tmp_path: Path) -> None:
    sync_service.run_sync(office.app)
    clip = next(office.folder.rglob(f"{media['clip1']}.mp4.age"))
    data = bytearray(clip.read_bytes())
    data[len(data) // 2] ^= 0xFF
    clip.write_bytes(bytes(data))
    next(office.folder.rglob(f"{media['still']}.jpg.age")).unlink()
    report = decrypt_folder(office.folder, tmp_path / "plain", load_identities(office.identity))
    assert not report.ok
    assert [Path(p).name for p in report.altered] == [clip.name]
    assert [Path(p).name for p in report.missing] == [f"{media['still']}.jpg.age"]
    assert not list((tmp_path / "plain").rglob(f"{media['clip1']}.mp4"))


def test_one_run_at_a_time(office: Office, media: dict[str, str]) -> None:
    with sync_lock(office.app.layout.sync_lock):
        with pytest.raises(SyncBusyError):
            sync_service.run_sync(office.app)
    assert sync_service.run_sync(office.app).uploaded == 6


def test_a_stopped_run_leaves_the_rest_for_next_time(office: Office,
                                                     media: dict[str, str]) -> None:
    stop = threading.Event()
    stop.set()
    summary = sync_service.run_sync(office.app, stop=stop)
    assert summary.uploaded == 0 and summary.pending == 6 - 2
    assert sync_service.run_sync(office.app).pending == 0


def test_not_configured_says_so(app: App, media: dict[str, str]) -> None:
    summary = sync_service.run_sync(app)
    assert summary.stopped is not None and summary.stopped["kind"] == "config"
    assert summary.uploaded == 0


def test_vigbox_sync_json_summary(vigbox: Any, config_file: Path, media: dict[str, str],
                                  tmp_path: Path) -> None:
    identity = x25519.Identity.generate()
    folder = tmp_path / "office-cli"
    folder.mkdir()
    config_file.write_text(config_file.read_text() + f'''
[sync]
destination = "file://{folder}"
recipients = ["{identity.to_public()}"]
''')
    done = vigbox("sync", "--json")
    assert done.returncode == 0, done.stderr
    summary = done.json()
    assert {"uploaded", "bytes", "pending", "failed"} <= set(summary)
    assert summary["uploaded"] == 6 and summary["pending"] == 0 and summary["failed"] == []
    assert summary["bytes"] == sum(p.stat().st_size for p in folder.rglob("*.age"))
    people = vigbox("sync").stdout
    assert "0 sent" in people and "0 waiting" in people


class NoManifests(FolderDestination):
    """The office folder, whose link breaks whenever a manifest is sent."""

    def send(self, item: Any, path: Path, progress: Any, throttle: Any,
             stop: threading.Event) -> bool:
        if item.kind is SyncKind.MANIFEST:
            raise SyncNetworkError("the link broke")
        return super().send(item, path, progress, throttle, stop)


def test_a_waiting_manifest_is_dropped_when_consent_goes(office: Office,
                                                         media: dict[str, str]) -> None:
    catalog = office.app.catalog
    first = SyncRun(catalog, office.app.config, NoManifests(office.folder)).run()
    assert first.uploaded == 4 and first.pending == 2   # files there, manifests waiting
    catalog.cases.set_consent("FAM-1", {Consent.FILMING: None}, actor="test")
    second = SyncRun(catalog, office.app.config, FolderDestination(office.folder),
                     manual=True).run()
    assert second.failed == [] and second.pending == 0
    assert [f for f in office.files() if "manifest" in f] == [
        f for f in office.files() if "/FAM-2/" in f and "manifest" in f], \
        "the notes of a case whose consent was withdrawn never leave"
    [dropped] = [i for i in catalog.sync.queue(status=SyncStatus.DROPPED)
                 if i.kind is SyncKind.MANIFEST]
    assert dropped.case_code == "FAM-1"
