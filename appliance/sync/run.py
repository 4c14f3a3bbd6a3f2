"""One sync run (`vigbox sync`, the systemd timer, "Sync now"): plan what the office
should have, seal each file once, send it resuming where the last run stopped, verify it,
then send each recording's manifest. One run at a time (a lock); a time budget; network
failures wait with backoff, and failures retrying cannot fix stop the run at once.
"""

from __future__ import annotations

import fcntl
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.catalog import Catalog, SyncItem, SyncKind, SyncStatus, utc_now
from appliance.config import Config
from appliance.errors import (
    NotFoundError,
    SyncBusyError,
    SyncError,
    SyncNetworkError,
    SyncStopError,
)
from appliance.sync import manifest
from appliance.sync.backoff import retry_delay
from appliance.sync.destination import Destination, FileStore, Progress
from appliance.sync.plan import Outgoing, covered, device_id, folder, outgoing
from appliance.sync.retention import apply_retention
from appliance.sync.seal import recipients_of, seal
from appliance.sync.throttle import Throttle

log = logging.getLogger(__name__)
ACTOR = "sync"
# Failures an administrator must fix: later runs wait for a manual "sync now".
STICKY = ("host_key", "auth", "config")


@dataclass
class Summary:
    """What one run did (`vigbox sync --json`)."""

    destination: str | None
    uploaded: int = 0
    bytes: int = 0
    resent_bytes: int = 0
    pending: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    stopped: dict[str, str] | None = None
    deleted: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"destination": self.destination, "uploaded": self.uploaded,
                "bytes": self.bytes, "resent_bytes": self.resent_bytes,
                "pending": self.pending, "failed": self.failed, "stopped": self.stopped,
                "deleted": self.deleted, "seconds": round(self.seconds, 3)}


@contextmanager
def sync_lock(path: Path) -> Iterator[None]:
    """The one-run-at-a-time lock; SyncBusyError if another run holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SyncBusyError("another sync is running; this one is not needed") from None
        yield


class SyncRun:
    """One run against one destination."""

    def __init__(self, catalog: Catalog, config: Config, destination: Destination | None, *,
                 manual: bool = False, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.catalog = catalog
        self.config = config
        self.dest = destination
        self.manual = manual                  # asked for by a person: retry a stop
        self.stop = stop or threading.Event()
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.layout = catalog.layout
        self.summary = Summary(destination.url if destination else None)
        self.throttle = Throttle(config.sync.bandwidth_kbps * 1000)
        self.deadline = 0.0   # set when sending starts: no new file is started after it

    def run(self) -> Summary:
        """Do the run; SyncBusyError if another is running."""
        started = self.monotonic()
        with sync_lock(self.layout.sync_lock):
            try:
                self._run()
                # Local copies the office has held long enough, and expired recordings.
                self.summary.deleted = apply_retention(
                    self.catalog, self.config, datetime.fromtimestamp(self.clock(), UTC))
            finally:
                self.summary.pending = sum(
                    1 for i in self.catalog.sync.queue()
                    if i.status in (SyncStatus.PLANNED, SyncStatus.SEALED))
                self.summary.seconds = self.monotonic() - started
                self._note_state()
        return self.summary

    # -- the steps ------------------------------------------------------------------------

    def _run(self) -> None:
        if self.dest is None:
            self.summary.stopped = {"kind": "config", "message": "no office destination is "
                                    "configured (sync.destination)"}
            return
        stopped = self.catalog.sync.state().get("stopped")
        if stopped and stopped.get("kind") in STICKY and not self.manual:
            self.summary.stopped = stopped   # an administrator must act, then "sync now"
            return
        self._clear_leftovers()
        recipients = recipients_of(self.config.sync.recipients)
        device = device_id(self.config, self.layout.root)
        due = {o.remote_name: o for o in outgoing(self.catalog, self.config, device)}
        self._plan(due)
        try:
            self.dest.connect()
        except SyncError as e:
            self._failed_to_reach(e)
            return
        try:
            self.deadline = self.monotonic() + self.config.sync.budget_s
            if self._send_due(due, recipients):
                self._make_manifests(device, recipients)
                self._send_due(due, recipients)
        finally:
            self.dest.close()

    def _plan(self, due: dict[str, Outgoing]) -> None:
        for o in due.values():
            self.catalog.sync.plan(o.kind, o.item_id, o.remote_name,
                                   recording_id=o.recording.id, case_code=o.recording.case)
        # Not due any more (consent withdrawn, the file gone): never sent. A manifest goes
        # only while its recording is still covered (it holds the moments' notes); an
        # erasure notice always goes.
        cases = {c.code: c for c in self.catalog.cases.list()}
        recordings = {r.id: r for r in self.catalog.recordings.list()}
        for item in self.catalog.sync.queue():
            if item.status not in (SyncStatus.PLANNED, SyncStatus.SEALED) or \
                    item.kind is SyncKind.ERASURE:
                continue
            if item.kind is SyncKind.MANIFEST:
                rec = recordings.get(item.recording_id or "")
                gone = rec is None or not covered(cases.get(rec.case or ""), rec)
            else:
                gone = item.remote_name not in due
            if gone:
                self.catalog.sync.drop(item.id, "no longer covered by the case's consent, "
                                       "or no longer on the box", actor=ACTOR)
                self._discard_sealed(item)

    def _send_due(self, due: dict[str, Outgoing], recipients: list[Any]) -> bool:
        """Send what is due now, files before manifests; False if the run must stop."""
        for item in self.catalog.sync.queue():
            if item.status not in (SyncStatus.PLANNED, SyncStatus.SEALED):
                continue
            if item.next_try_at > self.clock() and not self.manual:
                continue
            if self.stop.is_set() or self.monotonic() > self.deadline:
                return False
            if not self._send_one(item, due, recipients):
                return False
        return True

    def _send_one(self, item: SyncItem, due: dict[str, Outgoing],
                  recipients: list[Any]) -> bool:
        try:
            item = self._sealed(item, due, recipients)
            if item.status is not SyncStatus.SEALED:
                return True
            path = self.layout.outbox / str(item.sealed_name)
            progress = Progress(
                sent=lambda n, resent: self.catalog.sync.progress(item.id, n, resent=resent),
                multipart=lambda upload, parts: self.catalog.sync.multipart(
                    item.id, upload, parts))
            assert self.dest is not None
            if not self.dest.send(item, path, progress, self.throttle, self.stop):
                return False
        except SyncStopError as e:
            self._stopped(e)
            return False
        except SyncNetworkError as e:
            self._retry_later(item, str(e))
            return False
        except SyncError as e:   # the office copy is wrong: send it again from the start
            self._retry_later(item, str(e))
            self.catalog.sync.restart(item.id, str(e))
            if isinstance(self.dest, FileStore):
                self._quietly(lambda: self.dest.remove(item.remote_name + ".part"))  # type: ignore[union-attr]
            return True
        done = self.catalog.sync.verified(item.id, destination=self.summary.destination or "",
                                          actor=ACTOR)
        self._discard_sealed(done)
        self.summary.uploaded += 1
        self.summary.bytes += done.sealed_size or 0
        log.info("sync: %s is at the office (%s bytes)", done.remote_name, done.sealed_size)
        return True

    def _sealed(self, item: SyncItem, due: dict[str, Outgoing], recipients: list[Any]) -> SyncItem:
        """The item sealed into the outbox (sealing it now if need be)."""
        if item.status is SyncStatus.SEALED and item.sealed_name and \
                (self.layout.outbox / item.sealed_name).is_file():
            return item
        if item.status is SyncStatus.SEALED:   # the outbox file is gone: seal anew, resend
            self.catalog.sync.restart(item.id, "sealed again: the outbox copy was lost")
            if isinstance(self.dest, FileStore):
                self.dest.remove(item.remote_name + ".part")
        source = due.get(item.remote_name)
        if source is None:   # a manifest whose plaintext died with a crashed run
            self.catalog.sync.drop(item.id, "made again from the catalog", actor=ACTOR)
            return self.catalog.sync.get(item.id)
        name = f"{item.id}.age"
        sealed = seal(source.path, self.layout.outbox / name, recipients)
        return self.catalog.sync.sealed(item.id, name=name, size=sealed.size,
                                        sha256=sealed.sha256, plain_size=sealed.plain_size,
                                        plain_sha256=sealed.plain_sha256)

    def _make_manifests(self, device: str, recipients: list[Any]) -> None:
        """A new numbered manifest for each recording whose files are all at the office
        and whose manifest would say something new."""
        items = [i for i in self.catalog.sync.queue() if i.status is not SyncStatus.DROPPED]
        by_rec: dict[str, list[SyncItem]] = {}
        for i in items:
            by_rec.setdefault(i.recording_id or "", []).append(i)
        cases = {c.code: c for c in self.catalog.cases.list()}
        for rec_id, rec_items in by_rec.items():
            files = [i for i in rec_items if i.kind not in (SyncKind.MANIFEST, SyncKind.ERASURE)]
            if not rec_id or not files or any(i.status is not SyncStatus.VERIFIED for i in files):
                continue
            try:
                rec = self.catalog.recordings.get(rec_id)
            except NotFoundError:   # erased on the family's request
                continue
            case = cases.get(rec.case or "")
            if case is None or not covered(case, rec):
                continue
            doc = manifest.build(self.catalog, rec, case, device, files)
            tag = f"{rec_id}@{manifest.digest(doc)}"
            if self.catalog.sync.of(SyncKind.MANIFEST, tag):
                continue
            version = 1 + sum(1 for i in rec_items if i.kind is SyncKind.MANIFEST)
            name = manifest.name_of(folder(device, rec), SyncKind.MANIFEST, version)
            row = self.catalog.sync.plan(SyncKind.MANIFEST, tag, name, recording_id=rec_id,
                                         case_code=rec.case)
            self._seal_document(row, manifest.encode(doc, version), recipients)
        # A case erased on the family's request: the office, which holds the only copies
        # left, is told once.
        sent_cases = {i.case_code for i in items if i.status is SyncStatus.VERIFIED}
        for case in cases.values():
            if case.erased_at and case.code in sent_cases and \
                    not self.catalog.sync.of(SyncKind.ERASURE, case.code):
                row = self.catalog.sync.plan(
                    SyncKind.ERASURE, case.code,
                    manifest.name_of(f"{device}/{case.code}", SyncKind.ERASURE, 1),
                    recording_id=None, case_code=case.code)
                self._seal_document(row, manifest.encode(manifest.erasure(case, device), 1),
                                    recipients)

    def _seal_document(self, row: SyncItem, data: bytes, recipients: list[Any]) -> None:
        """Seal a manifest or notice made here (its plaintext never stays on disk)."""
        plain = self.layout.outbox / f".notice-{row.id}.json"
        plain.parent.mkdir(parents=True, exist_ok=True)
        try:
            plain.write_bytes(data)
            sealed = seal(plain, self.layout.outbox / f"{row.id}.age", recipients)
        finally:
            plain.unlink(missing_ok=True)
        self.catalog.sync.sealed(row.id, name=f"{row.id}.age", size=sealed.size,
                                 sha256=sealed.sha256, plain_size=sealed.plain_size,
                                 plain_sha256=sealed.plain_sha256)

    # -- failures and state ---------------------------------------------------------------

    def _retry_later(self, item: SyncItem, reason: str) -> None:
        wait = retry_delay(item.attempts + 1, first_s=self.config.sync.retry_first_s,
                           max_s=self.config.sync.retry_max_s, rng=self.rng)
        self.catalog.sync.failed(item.id, reason, retry_at=self.clock() + wait)
        self.summary.failed.append({"name": item.remote_name, "reason": reason})
        log.warning("sync: %s failed (%s); next try in %.0f s", item.remote_name, reason, wait)

    def _failed_to_reach(self, e: SyncError) -> None:
        if isinstance(e, SyncStopError):
            self._stopped(e)
            return
        self.summary.failed.append({"name": "", "reason": str(e)})
        log.warning("sync: the office cannot be reached: %s", e)

    def _stopped(self, e: SyncStopError) -> None:
        self.summary.stopped = {"kind": e.kind, "message": str(e), "at": utc_now()}
        log.error("sync stopped: %s", e)

    def _note_state(self) -> None:
        if self.dest is None:
            return
        ok = not self.summary.failed and self.summary.stopped is None
        values: dict[str, Any] = {"destination": self.dest.url, "last_run_at": utc_now(),
                                  "last_error": (self.summary.failed[-1]["reason"]
                                                 if self.summary.failed else None),
                                  "stopped": self.summary.stopped}
        if ok:
            values["last_ok_at"] = utc_now()
        values.update(self.dest.describe())
        self.catalog.sync.set_state(**values)

    def _clear_leftovers(self) -> None:
        """Remove what a run killed mid-step left in the outbox: a half-sealed temp file,
        or a manifest's plaintext (it holds notes) that was never sealed."""
        outbox = self.layout.outbox
        if outbox.is_dir():
            for path in outbox.glob(".*"):
                path.unlink(missing_ok=True)

    def _discard_sealed(self, item: SyncItem) -> None:
        if item.sealed_name:
            (self.layout.outbox / item.sealed_name).unlink(missing_ok=True)

    @staticmethod
    def _quietly(action: Callable[[], None]) -> None:
        try:
            action()
        except SyncError as e:
            log.warning("sync: %s", e)
