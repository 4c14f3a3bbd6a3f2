"""`vigbox encode-worker`: runs queued jobs one at a time, niced, until stopped.

Each round it first queues the review assets of any playable film that has none
(capture only marks a film playable; it never calls the encoder). On start, jobs
whose runner died (expired lease) go back to the queue, a bounded number of
times. Waiting is `stop.wait(poll)`, so a SIGTERM ends the worker at once between
jobs; a job in progress is finished first unless it is cancelled.
"""

from __future__ import annotations

import logging
import threading
import time

from appliance.catalog import Catalog, Job, JobKind
from appliance.catalog.jobs import LEASE_S
from appliance.config import EncodeConfig
from appliance.encode.assets import AssetMaker
from appliance.encode.clips import ClipMaker
from appliance.encode.film import FilmMaker
from appliance.errors import ApplianceError

log = logging.getLogger(__name__)
POLL_S = 1.0
ACTOR = "encoder"


class EncodeWorker:
    """Claims and runs jobs from the catalog's queue."""

    def __init__(self, catalog: Catalog, config: EncodeConfig) -> None:
        self.catalog = catalog
        self.config = config
        self.clips = ClipMaker(catalog, config)
        self.assets = AssetMaker(catalog, nice=config.nice)
        self.films = FilmMaker(catalog, config)

    def run_job(self, job: Job) -> Job:
        """Run one claimed job to its end."""
        log.info("job %d (%s %s) started", job.id, job.kind, job.subject)
        if job.kind in (JobKind.CLIP, JobKind.STILL):
            ended = self.clips.run(job)
        elif job.kind == JobKind.ASSETS:
            ended = self.assets.run(job)
        else:
            ended = self.films.run(job)
        log.info("job %d %s%s", ended.id, ended.status,
                 f": {ended.error}" if ended.error else "")
        return ended

    def run_one(self) -> Job | None:
        """Queue missing review assets, then run the oldest queued job, if any."""
        queued = self.catalog.assets.queue_missing(actor=ACTOR)
        if queued:
            log.info("queued review assets: jobs %s", queued)
        job = self.catalog.jobs.claim()
        return None if job is None else self.run_job(job)

    def run(self, stop: threading.Event, *, poll_s: float = POLL_S) -> None:
        """Work until `stop` is set (ffmpeg children run at the configured niceness)."""
        next_sweep = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_sweep:  # runners that died since (CLI ones too)
                    next_sweep = time.monotonic() + LEASE_S
                    requeued = self.catalog.jobs.requeue_abandoned()
                    if requeued:
                        log.info("requeued jobs left by a stopped runner: %s", requeued)
                ran = self.run_one()
            except ApplianceError as e:  # e.g. the catalog is busy: try again shortly
                log.error("encoder: %s", e)
                ran = None
            if ran is None:
                stop.wait(poll_s)
