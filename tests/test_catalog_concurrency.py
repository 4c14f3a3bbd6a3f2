"""Many processes and threads on one catalog: opened at once, migrated once, readers
never held up by a writer."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.catalog import Catalog, Consent, Origin, utc_now
from appliance.catalog.db import split_sql
from appliance.catalog.schema import MIGRATIONS

PROCESSES = 8
TIMEOUT_S = 60


def _open_and_write(data_dir: str, n: int, barrier: Any, results: Any) -> None:
    """One process: wait for the others, open the catalog, add a case, report."""
    try:
        barrier.wait(TIMEOUT_S)
        with Catalog(Path(data_dir)) as catalog:
            catalog.cases.add(f"VIG-2026-{n:03d}", {Consent.FILMING: "2026-01-01"},
                              actor=f"process-{n}")
            results.put((n, "ok", catalog.db.migrated_here, catalog.schema_version))
    except BaseException as e:  # noqa: BLE001 - reported to the test, which fails on it
        results.put((n, "error", repr(e), None))


def open_at_once(data_dir: Path) -> list[tuple[int, str, Any, Any]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=_open_and_write, args=(str(data_dir), n, barrier, results))
             for n in range(PROCESSES)]
    for proc in procs:
        proc.start()
    try:
        out = [results.get(timeout=TIMEOUT_S) for _ in procs]
    finally:
        for proc in procs:
            proc.join(TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
    return sorted(out)


def check(data_dir: Path, out: list[tuple[int, str, Any, Any]]) -> None:
    assert [r[1] for r in out] == ["ok"] * PROCESSES, out
    assert sum(bool(r[2]) for r in out) == 1, "exactly one process migrated"
    assert {r[3] for r in out} == {len(MIGRATIONS)}
    with Catalog(data_dir) as catalog:
        assert len(catalog.cases.list()) == PROCESSES
        assert catalog.audit.verify() == []


@pytest.mark.slow
def test_eight_processes_open_a_new_data_dir_at_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"   # does not exist yet: each process makes it
    check(data_dir, open_at_once(data_dir))


@pytest.mark.slow
def test_eight_processes_upgrade_a_catalog_one_migration_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = sqlite3.connect(data_dir / "catalog.sqlite3")
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    for migration in MIGRATIONS[:-1]:
        if callable(migration):   # what SQL alone cannot do (e.g. hashing the audit log)
            migration(db)
            continue
        for statement in split_sql(migration):
            db.execute(statement)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) - 1}")
    db.commit()
    db.close()
    check(data_dir, open_at_once(data_dir))


def test_a_reader_is_not_held_up_by_a_writer_in_the_same_process(data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        catalog.recordings.create("20260302-101500-0001", case=None, started_at=utc_now(),
                                  origin=Origin.CAPTURE, actor="test")
        inside, release = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                with catalog.db.transaction() as db:
                    db.execute("INSERT INTO recordings (id, started_at, status, origin, dir,"
                               " created_at, updated_at) VALUES ('20260302-101500-0002', ?,"
                               " 'recording', 'capture', 'recordings/x', ?, ?)",
                               (utc_now(), utc_now(), utc_now()))
                    inside.set()
                    assert release.wait(TIMEOUT_S)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            assert inside.wait(TIMEOUT_S), "the writer began its transaction"
            began = time.monotonic()
            seen = [r.id for r in catalog.recordings.list()]
            took = time.monotonic() - began
        finally:
            release.set()
            thread.join(TIMEOUT_S)
        assert errors == []
        assert seen == ["20260302-101500-0001"], "the last commit, not the open write"
        assert took < 1.0, f"the reader waited {took:.2f} s for the writer"
        assert len(catalog.recordings.list()) == 2
