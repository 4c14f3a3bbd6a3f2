"""The parts of sync on their own: config checks, backoff, the speed cap, the manifest's
contents, what a filmed review needs, a run that dies after publishing, the box's key."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyrage import x25519

from appliance.catalog import Consent, SyncKind, SyncStatus
from appliance.config import parse_config
from appliance.errors import ConfigError
from appliance.services import keys as key_service
from appliance.services import sync as sync_service
from appliance.services.app import App
from appliance.sync.backoff import retry_delay
from appliance.sync.dest_file import FolderDestination
from appliance.sync.office import _decrypt_bytes, load_identities
from appliance.sync.run import SyncRun
from appliance.sync.throttle import Throttle
from tests.sync_support import office_folder

RECIPIENT = str(x25519.Identity.generate().to_public())


@pytest.mark.parametrize("sync, words", [
    ({"destination": "ftp://office/x", "recipients": [RECIPIENT]}, "sync.destination"),
    ({"destination": "sftp://office.example/in", "recipients": [RECIPIENT]}, "user@host"),
    ({"destination": "file:///srv/office"}, "recipients"),
    ({"recipients": ["age1notakey"]}, "not an age public key"),
    ({"retry_first_s": 600.0, "retry_max_s": 60.0}, "retry_max_s"),
    ({"bandwidth_kbps": -1}, "at least 0"),
])
def test_bad_sync_config_is_refused(sync: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_config({"sync": sync})


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    rng = random.Random(7)
    waits = [retry_delay(n, first_s=60, max_s=3600, rng=rng) for n in range(1, 10)]
    for n, wait in enumerate(waits, start=1):
        base = min(3600, 60 * 2 ** (n - 1))
        assert base / 2 <= wait <= base, (n, wait)
    assert len({round(w) for w in waits}) == len(waits), "jittered, not in lockstep"


def test_the_speed_cap_holds_the_average() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    throttle = Throttle(100_000, clock=lambda: now[0], sleep=sleep)
    for _ in range(40):
        throttle.wait(25_000)    # 1 MB at 100 kB/s: ten seconds, less the first burst
    assert 9.5 <= now[0] <= 10.0, now[0]
    assert Throttle(0).rate == 0   # no cap: never waits


@pytest.fixture
def office(app: App, tmp_path: Path) -> tuple[App, Path, Path]:
    return office_folder(app, tmp_path, device_id="box-parts")


def test_the_manifest_says_what_the_office_needs(office: tuple[App, Path, Path],
                                                 media: dict[str, str]) -> None:
    app, folder, key = office
    rec_id = app.catalog.media.clip(media["clip1"]).recording_id
    app.catalog.moments.add(rec_id, 2.5, source="ui", actor="test",  # type: ignore[arg-type]
                            tag="Being attentive", note="she looks up at him")
    sync_service.run_sync(app)
    [sealed] = folder.rglob(f"{rec_id}/manifest-1.json.age")
    doc = json.loads(_decrypt_bytes(sealed, load_identities(key)))
    assert doc["case"] == "FAM-1" and doc["device"] == "box-parts"
    assert doc["consent"] == {"filming": "2026-01-01"}
    assert doc["recording"]["id"] == rec_id and doc["recording"]["started_at"]
    assert [(m["at_s"], m["tag"], m["note"]) for m in doc["moments"]] == [
        (2.5, "Being attentive", "she looks up at him")]
    files = {f["id"]: f for f in doc["files"]}
    assert set(files) == {media["clip1"], media["clip2"], media["still"]}
    clip = app.catalog.media.clip(media["clip1"])
    entry = files[clip.id]
    assert entry["size"] == clip.path.stat().st_size  # type: ignore[union-attr]
    assert entry["sealed_size"] == (folder / next(
        p for p in folder.rglob(entry["name"])).relative_to(folder)).stat().st_size
    assert len(entry["sha256"]) == 64 and len(entry["sealed_sha256"]) == 64
    # The notes travel sealed: no plaintext copy is left in the outbox.
    assert b"she looks up" not in b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert list(app.layout.outbox.iterdir()) == []


def test_a_filmed_review_needs_consent_to_supervision(office: tuple[App, Path, Path],
                                                     film: str) -> None:
    app, folder, _ = office
    app.catalog.cases.add("FAM-5", {Consent.FILMING: "2026-01-01"}, actor="test")
    app.catalog.recordings.set_case(film, "FAM-5", actor="test")
    app.catalog.recordings.update(film, actor="test", kind="review")
    assert sync_service.run_sync(app).uploaded == 0
    app.catalog.cases.set_consent("FAM-5", {Consent.SUPERVISION: "2026-02-01"}, actor="test")
    assert sync_service.run_sync(app).uploaded == 2   # the filmed review and its manifest
    assert list(folder.rglob(f"recording-{film}.mp4.age"))


class DiesAfterPublishing(FolderDestination):
    """The office folder; the sync process dies right after the rename at the office."""

    def publish(self, part: str, final: str) -> None:
        super().publish(part, final)
        raise SystemExit("killed")


def test_a_run_killed_after_publishing_does_not_send_again(office: tuple[App, Path, Path],
                                                           film: str) -> None:
    app, folder, _ = office
    app.catalog.cases.add("FAM-6", {Consent.FILMING: "2026-01-01"}, actor="test")
    app.catalog.recordings.set_case(film, "FAM-6", actor="test")
    config = dataclasses.replace(app.config, sync=dataclasses.replace(
        app.config.sync, send_recordings=True))
    with pytest.raises(SystemExit):
        SyncRun(app.catalog, config, DiesAfterPublishing(folder)).run()
    [published] = folder.rglob(f"recording-{film}.mp4.age")
    stamp = published.stat().st_mtime_ns
    [item] = app.catalog.sync.of(SyncKind.RECORDING, film)
    assert item.status is SyncStatus.SEALED   # the catalog never heard of the rename
    summary = SyncRun(app.catalog, config, FolderDestination(folder)).run()
    assert summary.failed == [] and summary.pending == 0
    assert published.stat().st_mtime_ns == stamp, "found at the office, checked, not resent"
    assert app.catalog.sync.of(SyncKind.RECORDING, film)[0].status is SyncStatus.VERIFIED


def test_the_boxs_key_is_made_once(app: App, vigbox: Any) -> None:
    made = vigbox("keys", "init", "--json")
    assert made.returncode == 0, made.stderr
    first = made.json()
    assert first["created"] is True and first["public_key"].startswith("ssh-ed25519 ")
    again = vigbox("keys", "init", "--json").json()
    assert again == {"created": False, "public_key": first["public_key"]}
    private = key_service.device_key_path(app)
    assert private.stat().st_mode & 0o077 == 0, "the private key is the service's alone"
    # OpenSSH itself reads it and derives the same public key.
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(private)], capture_output=True,
                             text=True, timeout=30, check=True).stdout.split()[:2]
    assert derived == first["public_key"].split()[:2]


def test_leftovers_of_a_killed_run_are_cleared(office: tuple[App, Path, Path],
                                              media: dict[str, str]) -> None:
    app, _, _ = office
    outbox = app.layout.outbox
    outbox.mkdir(parents=True, exist_ok=True)
    plain = outbox / ".notice-7.json"
    plain.write_text('{"moments": [{"note": "a case note"}]}')
    half = outbox / ".3.age.abc.tmp"
    half.write_bytes(b"age-encryption.org/v1 half")
    summary = sync_service.run_sync(app)
    assert summary.failed == [] and not plain.exists() and not half.exists()
    assert list(outbox.iterdir()) == []
