"""`vigbox encode-worker`: runs queued jobs one at a time, niced, until stopped.

On start, jobs left running by a worker that died go back to the queue, so a
restart (or a power cut) never loses one. Waiting is `stop.wait(poll)`, so a
SIGTERM ends the worker at once between jobs; a job in progress is finished
first unless it is cancelled.
"""

from __future__ import annotations

import logging
import threading

from appliance.catalog import Catalog
from appliance.config import EncodeConfig
from appliance.encode.assets import AssetMaker
from appliance.encode.clips import ClipMaker
from appliance.encode.film import FilmMaker
from appliance.encode.jobs import Job

log = logging.getLogger(__name__)
POLL_S = 1.0


class EncodeWorker:
    """Claims and runs jobs from the catalog's queue."""

    def __init__(self, catalog: Catalog, config: EncodeConfig) -> None:
        self.catalog = catalog
        self.config = config
        self.maker = ClipMaker(catalog, config)
        self.assets = AssetMaker(catalog, nice=config.nice)
        self.films = FilmMaker(catalog, config)

    def run_one(self) -> Job | None:
        """Run the oldest queued job, if any; return it as it ended."""
        job = self.maker.jobs.claim()
        if job is None:
            return None
        log.info("job %d (%s %s) started", job.id, job.kind, job.subject)
        if job.kind in ("clip", "still"):
            ended = self.maker.run(job)
        elif job.kind == "assets":
            ended = self.assets.run(job)
        elif job.kind == "film":
            ended = self.films.run(job)
        else:
            return self.maker.jobs.fail(job.id, f"this worker cannot make {job.kind!r} jobs")
        log.info("job %d %s%s", ended.id, ended.status,
                 f": {ended.error}" if ended.error else "")
        return ended

    def run(self, stop: threading.Event, *, poll_s: float = POLL_S) -> None:
        """Work until `stop` is set (ffmpeg children run at the configured niceness)."""
        requeued = self.maker.jobs.requeue_abandoned()
        if requeued:
            log.info("requeued jobs left by a stopped worker: %s", requeued)
        while not stop.is_set():
            if self.run_one() is None:
                stop.wait(poll_s)
