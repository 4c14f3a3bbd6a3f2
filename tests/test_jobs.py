"""The job queue's promises: a job and its row are made and ended together; a runner
that dies frees its job; a job that keeps killing its runner is given up, not looped."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.catalog import Catalog, JobStatus, MediaStatus, Origin, utc_now
from appliance.catalog.jobs import MAX_ATTEMPTS
from appliance.errors import CatalogError

REC = "20260302-101500-ab12"


@pytest.fixture
def catalog(data_dir: Path) -> Iterator[Catalog]:
    with Catalog(data_dir) as cat:
        cat.recordings.create(REC, case=None, started_at=utc_now(), origin=Origin.CAPTURE,
                              actor="test")
        yield cat


def queue_still(catalog: Catalog) -> int:
    return catalog.media.request_still(REC, 1.0, actor="test")


def runner_died(catalog: Catalog, job_id: int, how: str) -> None:
    """Leave the job as a runner that vanished would: another boot, or a dead PID."""
    with catalog.db.transaction() as db:
        if how == "boot":
            db.execute("UPDATE jobs SET lease_boot='a boot before a power cut' WHERE id=?",
                       (job_id,))
        else:
            db.execute("UPDATE jobs SET worker_pid=? WHERE id=?", (dead_pid(), job_id))


def dead_pid() -> int:
    pid = 2**22 - 1
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        pid -= 1


def test_a_job_and_its_row_are_made_together(catalog: Catalog) -> None:
    job_id = queue_still(catalog)
    job = catalog.jobs.get(job_id)
    still = catalog.media.still(str(job.subject))
    assert (job.status, still.status, still.job_id) == (JobStatus.QUEUED, MediaStatus.PENDING,
                                                         job_id)
    with pytest.raises(CatalogError):   # a row that cannot be made takes its job with it
        catalog.media.request_still("20990101-000000-0000", 1.0, actor="test")
    assert [j.id for j in catalog.jobs.list()] == [job_id]


@pytest.mark.parametrize("how", ["boot", "pid"])
def test_a_dead_runner_frees_its_job_at_once(catalog: Catalog, how: str) -> None:
    job_id = queue_still(catalog)
    assert catalog.jobs.claim(job_id) is not None
    assert catalog.jobs.requeue_abandoned() == [], "a live runner keeps its job"
    runner_died(catalog, job_id, how)
    assert catalog.jobs.requeue_abandoned() == [job_id]
    assert catalog.jobs.get(job_id).status == JobStatus.QUEUED


def test_a_job_that_keeps_killing_its_runner_is_given_up(catalog: Catalog) -> None:
    job_id = queue_still(catalog)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        claimed = catalog.jobs.claim()
        assert claimed is not None and claimed.attempts == attempt
        runner_died(catalog, job_id, "pid")
        catalog.jobs.requeue_abandoned()
    job = catalog.jobs.get(job_id)
    assert job.status == JobStatus.FAILED
    assert f"gave up after {MAX_ATTEMPTS} attempts" in (job.error or "")
    assert catalog.media.still(str(job.subject)).status == MediaStatus.FAILED
    assert catalog.jobs.claim() is None


def test_cancelling_a_queued_job_cancels_its_row(catalog: Catalog) -> None:
    job_id = queue_still(catalog)
    catalog.jobs.cancel(job_id, actor="guider")
    job = catalog.jobs.get(job_id)
    assert job.status == JobStatus.CANCELLED
    assert catalog.media.still(str(job.subject)).status == MediaStatus.CANCELLED
    actions = [(e.action, e.actor) for e in catalog.audit.entries()]
    assert ("job.still.cancel", "guider") in actions
