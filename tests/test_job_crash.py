"""A runner killed between queueing a clip and finishing it: the encoder finishes the
job, and nothing is left half-made, orphaned or running forever."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.catalog import Catalog, JobStatus, MediaStatus
from appliance.config import Config, load_config
from appliance.encode.worker import EncodeWorker
from appliance.media_import import import_video
from tests.media import frame_indices

TIMEOUT_S = 60


def wait_for(predicate: Any, what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def unfinished(catalog: Catalog) -> list[Any]:
    """Jobs still queued or running."""
    return [j for j in catalog.jobs.list() if j.status in (JobStatus.QUEUED,
                                                             JobStatus.RUNNING)]


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line mentions `text` (an ffmpeg writing a given clip)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_a_clip_whose_runner_is_killed_is_finished_by_the_worker(
        barcode_film: Path, data_dir: Path, config_file: Path, cli_env: dict[str, str]) -> None:
    # A slow preset, so the kill lands while ffmpeg is encoding.
    config_file.write_text(config_file.read_text() + '[encode]\npreset = "medium"\n')
    config: Config = load_config(config_file)
    with Catalog(data_dir) as catalog:
        rec = import_video(catalog, barcode_film, actor="test")
        child = subprocess.Popen([sys.executable, "-m", "appliance", "clip", rec.id, "--start",
                                  "0", "--end", "12", "--exact", "--json"], env=cli_env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: any(j.status == JobStatus.RUNNING and j.progress > 0
                                 for j in catalog.jobs.list()), "the clip to be rendering")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(TIMEOUT_S)
        [job] = catalog.jobs.list()
        assert job.status == JobStatus.RUNNING  # as the dead runner left it
        clip_id = str(job.subject)
        assert catalog.media.clip(clip_id).status == MediaStatus.PENDING
        wait_for(lambda: not processes_mentioning(clip_id), "the dead runner's ffmpeg to die",
                 timeout=10)

        stop = threading.Event()
        worker = threading.Thread(target=EncodeWorker(catalog, config.encode).run,
                                  args=(stop,), kwargs={"poll_s": 0.05})
        worker.start()
        try:
            wait_for(lambda: catalog.jobs.get(job.id).status in (JobStatus.DONE,
                                                                  JobStatus.FAILED),
                     "the worker to take the job back and finish it", timeout=180)
            # And the review assets it queued itself, which run after the clip.
            wait_for(lambda: not unfinished(catalog), "the worker's own jobs to finish",
                     timeout=180)
        finally:
            stop.set()
            worker.join(TIMEOUT_S)
        done = catalog.jobs.get(job.id)
        assert done.status == JobStatus.DONE, done.error
        assert done.attempts == 2
        clip = catalog.media.clip(clip_id)
        assert clip.status == MediaStatus.READY and clip.path is not None
        assert frame_indices(clip.path) == list(range(0, 360))
        assert unfinished(catalog) == [], "no job is left queued or running"
        assert all(c.status == MediaStatus.READY for c in catalog.media.clips(rec.id))
        clips_dir = catalog.layout.clips_dir(rec.id)
        assert sorted(p.name for p in clips_dir.iterdir()) == [f"{clip_id}.mp4"], \
            "no half-written temp file is left"
