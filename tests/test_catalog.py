"""The catalog: migrations, cases and consent, recordings, moments, audit log, threads."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.catalog import Catalog, Consent, Origin, check_case_code
from appliance.catalog.db import split_sql
from appliance.catalog.schema import MIGRATIONS
from appliance.errors import CatalogError, InputError, NotFoundError

ACTOR = "cli"

STARTED = "2026-03-02T10:15:00.000+00:00"


@pytest.fixture
def catalog(data_dir: Path) -> Iterator[Catalog]:
    """An open catalog in the test's data dir."""
    with Catalog(data_dir) as cat:
        yield cat


def raw(data_dir: Path) -> sqlite3.Connection:
    """A second, plain connection to the catalog file (as another process would have)."""
    return sqlite3.connect(data_dir / "catalog.sqlite3", timeout=10)


def new_recording(catalog: Catalog, rec_id: str = "20260302-101500-ab12", *,
                  case: str | None = None, **fields: object):
    """Create a recording row with its directory under recordings/."""
    catalog.layout.recording_dir(rec_id).mkdir(parents=True, exist_ok=True)
    return catalog.recordings.create(rec_id, case=case, started_at=STARTED,
                                     origin=Origin.CAPTURE, actor="capture", **fields)


# -- schema --------------------------------------------------------------------------------


def test_migrations_applied_and_reopen_idempotent(data_dir: Path) -> None:
    with Catalog(data_dir) as cat:
        assert cat.schema_version == len(MIGRATIONS)
        cat.cases.add("VIG-2026-001", {Consent.FILMING: "2026-01-10"}, actor=ACTOR)
    with Catalog(data_dir) as cat:  # a second open applies nothing and loses nothing
        assert cat.schema_version == len(MIGRATIONS)
        assert [c.code for c in cat.cases.list()] == ["VIG-2026-001"]
        assert len(cat.audit.entries()) == 1
    with raw(data_dir) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        triggers = {r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type='trigger'")}
    db.close()
    assert {"cases", "recordings", "moments", "audit"} <= tables
    assert {"audit_no_update", "audit_no_delete"} <= triggers


def test_newer_catalog_is_refused(data_dir: Path) -> None:
    Catalog(data_dir).close()
    db = raw(data_dir)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(CatalogError, match="newer than this vigbox"):
        Catalog(data_dir)


def test_wal_mode(catalog: Catalog, data_dir: Path) -> None:
    db = raw(data_dir)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_unopenable_catalog_is_a_catalog_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CatalogError, match="cannot open the catalog"):
        Catalog(blocker / "data")


# -- cases and consent ---------------------------------------------------------------------


@pytest.mark.parametrize("code", ["VIG-2026-014", "ABC1", "123", "A1-B2-C3", "X" * 31 + "9"])
def test_valid_case_codes(code: str) -> None:
    assert check_case_code(code) == code


@pytest.mark.parametrize("code", ["Smith", "SMITH", "smith-1", "Vig-2026-014", "-AB12",
                                  "A1", "X" * 32 + "9", "VIG 2026", "VIG_2026", "",
                                  "VIG-2026-014\n"])
def test_invalid_case_codes(catalog: Catalog, code: str) -> None:
    with pytest.raises(InputError, match="not valid"):
        catalog.cases.add(code, {}, actor=ACTOR)
    assert catalog.cases.list() == []
    assert catalog.audit.entries() == []


def test_add_case_with_consents(catalog: Catalog) -> None:
    catalog.cases.add("VIG-2026-014", {Consent.FILMING: "2026-01-10",
                                       Consent.TRAINING: "2026-01-12"}, actor=ACTOR)
    case = catalog.cases.get("VIG-2026-014")
    assert case.code == "VIG-2026-014"
    assert case.consent == {"filming": "2026-01-10", "training": "2026-01-12"}
    assert case.created_at.endswith("+00:00")
    [entry] = catalog.audit.entries()
    assert (entry.action, entry.subject, entry.actor) == \
        ("case.add", "VIG-2026-014", "cli")
    assert entry.detail == {"consent": ["filming", "training"]}


def test_case_without_consent(catalog: Catalog) -> None:
    catalog.cases.add("VIG-2026-002", {}, actor=ACTOR)
    assert catalog.cases.get("VIG-2026-002").consent == {}


@pytest.mark.parametrize("consents, match", [
    ({"filmng": "2026-01-10"}, "unknown consent scope"),
    ({"publication": "2026-01-10"}, "unknown consent scope"),
    ({"filming": "2026-13-01"}, "not YYYY-MM-DD"),
    ({"filming": "2026-02-30"}, "not YYYY-MM-DD"),
    ({"supervision": "yesterday"}, "not YYYY-MM-DD"),
])
def test_bad_consent_refused(catalog: Catalog, consents: dict[str, str], match: str) -> None:
    with pytest.raises(InputError, match=match):
        catalog.cases.add("VIG-2026-003", consents, actor=ACTOR)
    assert catalog.cases.list() == []
    assert catalog.audit.entries() == []


def test_duplicate_case_refused(catalog: Catalog) -> None:
    catalog.cases.add("VIG-2026-004", {Consent.FILMING: "2026-01-10"}, actor=ACTOR)
    with pytest.raises(InputError, match="already exists"):
        catalog.cases.add("VIG-2026-004", {}, actor=ACTOR)
    assert catalog.cases.get("VIG-2026-004").consent == {"filming": "2026-01-10"}
    assert [e.action for e in catalog.audit.entries()] == ["case.add"]


def test_unknown_case(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match="cases add"):
        catalog.cases.get("VIG-0000-000")
    with pytest.raises(LookupError):
        catalog.cases.get("VIG-0000-000")


def test_list_cases_sorted(catalog: Catalog) -> None:
    for code in ("VIG-3", "VIG-1", "VIG-2"):
        catalog.cases.add(code, {}, actor=ACTOR)
    assert [c.code for c in catalog.cases.list()] == ["VIG-1", "VIG-2", "VIG-3"]


# -- recordings ----------------------------------------------------------------------------


def test_recording_lifecycle(catalog: Catalog, data_dir: Path) -> None:
    catalog.cases.add("VIG-2026-010", {Consent.FILMING: "2026-01-10"}, actor=ACTOR)
    rec = new_recording(catalog, case="VIG-2026-010", width=1280, height=720, fps=30.0,
                        audio="ok")
    assert rec.status == "recording"
    assert rec.case == "VIG-2026-010"
    assert rec.dir == data_dir / "recordings" / rec.id
    assert rec.path is None
    assert (rec.width, rec.height, rec.fps, rec.audio) == (1280, 720, 30.0, "ok")
    assert rec.problems == []

    mp4 = rec.dir / "recording.mp4"
    done = catalog.recordings.update(rec.id, status="ready", path=mp4, duration_s=12.5,
                                     video_frames=375, dropped_frames=0,
                                     problems=["microphone stalled at 3.0 s"], actor="capture")
    assert done.status == "ready"
    assert done.path == mp4
    assert done.duration_s == 12.5
    assert done.problems == ["microphone stalled at 3.0 s"]
    assert catalog.recordings.get(rec.id) == done

    doc = done.to_json()
    for key in ("id", "case", "started_at", "duration_s", "status", "path"):
        assert key in doc
    assert doc["path"] == str(mp4)
    assert doc["started_at"] == STARTED

    actions = [(e.action, e.subject) for e in catalog.audit.entries()]
    assert actions == [("case.add", "VIG-2026-010"), ("recording.recording", rec.id),
                       ("recording.ready", rec.id)]
    assert catalog.audit.entries()[-1].detail == {"problems": ["microphone stalled at 3.0 s"]}


def test_update_without_status_is_not_audited(catalog: Catalog) -> None:
    rec = new_recording(catalog)
    catalog.recordings.update(rec.id, duration_s=3.0, actor="capture")
    assert [e.action for e in catalog.audit.entries()] == ["recording.recording"]
    assert catalog.recordings.get(rec.id).duration_s == 3.0


def test_list_recordings_order_and_filter(catalog: Catalog) -> None:
    a = new_recording(catalog, "20260302-101500-0001")
    b = new_recording(catalog, "20260302-101500-0002")
    c = new_recording(catalog, "20260302-101500-0003")
    catalog.recordings.update(b.id, status="ready", actor="capture")
    catalog.recordings.update(c.id, status="failed", problems=["camera failed"], actor="capture")
    assert [r.id for r in catalog.recordings.list()] == [a.id, b.id, c.id]
    assert [r.id for r in catalog.recordings.list(("ready",))] == [b.id]
    assert [r.id for r in catalog.recordings.list(("recording", "failed"))] == [a.id, c.id]


def test_recording_refusals(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        new_recording(catalog, case="VIG-0000-404")
    rec = new_recording(catalog)
    with pytest.raises(CatalogError, match="bad recording status"):
        catalog.recordings.update(rec.id, status="lost", actor="capture")
    with pytest.raises(CatalogError, match="cannot set"):
        catalog.recordings.update(rec.id, origin="import", actor="capture")
    with pytest.raises(CatalogError, match="outside the data dir"):
        catalog.recordings.update(rec.id, path=tmp_path / "elsewhere.mp4", actor="capture")
    with pytest.raises(NotFoundError):
        catalog.recordings.update("20990101-000000-ffff", status="ready", actor="capture")
    with pytest.raises(NotFoundError, match="vigbox recordings"):
        catalog.recordings.get("20990101-000000-ffff")
    with pytest.raises((sqlite3.IntegrityError, CatalogError)):  # the same id twice
        new_recording(catalog)
    # None of the refused changes reached the row or the audit log.
    assert catalog.recordings.get(rec.id).status == "recording"
    assert catalog.recordings.get(rec.id).path is None
    assert [e.action for e in catalog.audit.entries()] == ["recording.recording"]
    assert len(catalog.recordings.list()) == 1


def test_paths_are_stored_relative(tmp_path: Path, data_dir: Path) -> None:
    with Catalog(data_dir) as cat:
        rec = new_recording(cat)
        (rec.dir / "recording.mp4").write_bytes(b"not really a film")
        cat.recordings.update(rec.id, status="ready", path=rec.dir / "recording.mp4",
                              actor="capture")
    db = raw(data_dir)
    stored_dir, stored_path = db.execute("SELECT dir, path FROM recordings").fetchone()
    db.close()
    assert stored_dir == f"recordings/{rec.id}"
    assert stored_path == f"recordings/{rec.id}/recording.mp4"

    moved = tmp_path / "restored" / "vigbox"
    moved.parent.mkdir()
    shutil.move(str(data_dir), str(moved))
    with Catalog(moved) as cat:
        again = cat.recordings.get(rec.id)
    assert again.dir == moved / "recordings" / rec.id
    assert again.path == moved / "recordings" / rec.id / "recording.mp4"
    assert again.path.read_bytes() == b"not really a film"


# -- audit log -----------------------------------------------------------------------------


def test_audit_log_is_append_only(catalog: Catalog, data_dir: Path) -> None:
    catalog.audit.append("recording.view", "20260302-101500-ab12", actor="web",
                  detail={"user": "guider"})
    catalog.audit.append("export", None, actor="system")
    db = raw(data_dir)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE audit SET actor='someone else'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM audit")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM audit WHERE id=1")
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == 2
    finally:
        db.close()
    with pytest.raises(CatalogError, match="append-only"):  # the catalog's own, as its error
        with catalog.db.transaction() as conn:
            conn.execute("DELETE FROM audit")
    log = catalog.audit.entries()
    assert [(e.action, e.subject, e.actor) for e in log] == [
        ("recording.view", "20260302-101500-ab12", "web"), ("export", None, "system")]
    assert log[0].detail == {"user": "guider"}
    assert catalog.audit.entries(limit=1) == log[1:]


# -- moments -------------------------------------------------------------------------------


def test_moments(catalog: Catalog) -> None:
    rec = new_recording(catalog)
    late = catalog.moments.add(rec.id, 42.12345, source="button", actor="capture").id
    early = catalog.moments.add(rec.id, 3.5, source="ui", actor="capture").id
    moments = catalog.moments.list(rec.id)
    assert [m.id for m in moments] == [early, late]
    assert [m.at_s for m in moments] == [3.5, 42.123]
    assert [m.source for m in moments] == ["ui", "button"]
    assert all(m.recording_id == rec.id for m in moments)
    assert [e.action for e in catalog.audit.entries()][-2:] == ["moment.add", "moment.add"]

    with pytest.raises(InputError, match="must be at a time in the recording"):
        catalog.moments.add(rec.id, -0.1, source="button", actor="capture")
    with pytest.raises(NotFoundError):
        catalog.moments.add("20990101-000000-ffff", 1.0, source="button", actor="capture")
    with pytest.raises((sqlite3.IntegrityError, InputError)):  # not a known source
        catalog.moments.add(rec.id, 1.0, source="telepathy", actor="capture")
    assert len(catalog.moments.list(rec.id)) == 2
    assert catalog.moments.list("20990101-000000-ffff") == []


def test_threads_adding_moments(catalog: Catalog) -> None:
    rec = new_recording(catalog)
    threads_n, per_thread = 8, 25
    ids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads_n)

    def worker(n: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(per_thread):
                moment = catalog.moments.add(rec.id, n + i / 100, source="control",
                                             actor="capture").id
                with lock:
                    ids.append(moment)
                catalog.moments.list(rec.id)  # reads interleaved with writes
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    total = threads_n * per_thread
    assert len(set(ids)) == total
    moments = catalog.moments.list(rec.id)
    assert len(moments) == total
    assert [m.at_s for m in moments] == sorted(m.at_s for m in moments)
    assert sum(e.action == "moment.add" for e in catalog.audit.entries(limit=10_000)) == total


# -- defects found in review ---------------------------------------------------------------


def test_every_write_names_its_actor(catalog: Catalog) -> None:
    with pytest.raises(TypeError):
        catalog.cases.add("VIG-2026-070", {})  # type: ignore[call-arg]
    for actor in ("", "   ", "x" * 65):
        with pytest.raises(CatalogError, match="who acted"):
            catalog.cases.add("VIG-2026-070", {}, actor=actor)
    assert catalog.cases.list() == [] and catalog.audit.entries() == []


def test_sqlite_errors_surface_as_catalog_errors(catalog: Catalog) -> None:
    with pytest.raises(CatalogError):
        with catalog.db.transaction() as db:
            db.execute("INSERT INTO moments (recording_id, at_s, source, created_at)"
                       " VALUES ('none', 1, 'ui', 'now')")  # no such recording
    with pytest.raises(CatalogError):
        with catalog.db.read() as db:
            db.execute("SELECT * FROM no_such_table")


def test_a_read_cannot_write(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="cannot start inside a read"):
        with catalog.db.read():
            catalog.cases.add("VIG-2026-071", {}, actor=ACTOR)
    assert catalog.cases.list() == []


@pytest.mark.parametrize("recursive_triggers", [False, True])
def test_an_audit_entry_cannot_be_replaced(catalog: Catalog, data_dir: Path,
                                           recursive_triggers: bool) -> None:
    catalog.audit.append("recording.view", "20260302-101500-ab12", actor="guider")
    [entry] = catalog.audit.entries()
    db = raw(data_dir)
    try:
        db.execute(f"PRAGMA recursive_triggers={int(recursive_triggers)}")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("INSERT OR REPLACE INTO audit (id, at, actor, action, subject, detail)"
                       " VALUES (?, ?, 'nobody', 'nothing', NULL, '{}')", (entry.id, entry.at))
        db.commit()
    finally:
        db.close()
    assert catalog.audit.entries() == [entry]
    assert catalog.audit.verify() == []


def _tamper(data_dir: Path, *statements: str) -> None:
    db = raw(data_dir)
    try:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


@pytest.mark.parametrize("statement, problem", [
    ("UPDATE audit SET actor='someone else' WHERE id=2", "entry 2 does not match"),
    ("DELETE FROM audit WHERE id=2", "entries 2..2 are missing"),
])
def test_tampering_with_the_audit_log_is_evident(catalog: Catalog, data_dir: Path,
                                                 statement: str, problem: str) -> None:
    for n in range(3):
        catalog.audit.append("clip.view", f"clip-{n}", actor="guider")
    assert catalog.audit.verify() == []
    _tamper(data_dir, statement)
    assert any(problem in p for p in catalog.audit.verify()), catalog.audit.verify()


def test_migration_3_chains_an_existing_audit_log(data_dir: Path) -> None:
    db = raw(data_dir)
    for migration in MIGRATIONS[:2]:
        assert isinstance(migration, str)
        for statement in split_sql(migration):
            db.execute(statement)
    db.execute("PRAGMA user_version=2")
    for n in range(3):
        db.execute("INSERT INTO audit (at, actor, action, subject, detail) VALUES"
                   " (?, 'cli', 'case.add', ?, '{}')", (STARTED, f"VIG-2026-00{n}"))
    db.commit()
    db.close()
    with Catalog(data_dir) as cat:
        assert cat.schema_version == len(MIGRATIONS)
        assert [e.subject for e in cat.audit.entries()] == [
            "VIG-2026-000", "VIG-2026-001", "VIG-2026-002"]
        assert all(e.hash for e in cat.audit.entries())
        cat.audit.append("export", None, actor="cli")
        assert cat.audit.verify() == []
