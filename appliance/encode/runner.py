"""Running one claimed job: its render under a renewed lease, ended done, failed or cancelled.

The render publishes its file and ends the job with its row in one transaction;
anything else that happens ends here, so no job is ever left `running` by a
render that returned or raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from appliance.catalog import Catalog, Job
from appliance.catalog.jobs import LEASE_S
from appliance.encode.progress import JobCancelled
from appliance.errors import ApplianceError

log = logging.getLogger(__name__)


@contextmanager
def lease_kept(catalog: Catalog, job_id: int) -> Iterator[None]:
    """Renew the job's lease while the block runs (a long probe or publish included)."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LEASE_S / 4):
            try:
                catalog.jobs.renew(job_id)
            except ApplianceError as e:  # the next renewal may work; the lease is long
                log.warning("job %d: could not renew its lease: %s", job_id, e)

    thread = threading.Thread(target=renew, name=f"lease-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def run_job(catalog: Catalog, job: Job, render: Callable[[Job], None]) -> Job:
    """Run `render` for a claimed job; the job as it ended."""
    try:
        with lease_kept(catalog, job.id):
            render(job)
    except JobCancelled:
        return catalog.jobs.mark_cancelled(job.id)
    except (ApplianceError, OSError) as e:
        return catalog.jobs.fail(job.id, str(e))
    except Exception as e:  # noqa: BLE001 - a bug must end this job, not the worker
        log.exception("job %d: internal error", job.id)
        return catalog.jobs.fail(job.id, f"internal error: {type(e).__name__}: {e}")
    return catalog.jobs.get(job.id)
