"""Catalog benchmark: a typical read while a writer commits every 100 ms.

    python bench/catalog.py [--recordings 50] [--seconds 5]

The read is what the tablet's home page and the sync agent do: list the recordings,
then the clips of each (one query for all clips; the naive query per recording is
printed beside it). It runs in 1 and in 8 reader threads of one process sharing
one Catalog, first without a writer (the baseline, in the same process), then while
another thread commits a moment every 100 ms (as capture marks and job progress do).
Prints p50/p95 in ms per read and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.catalog import Catalog, MomentSource, Origin, RecordingStatus  # noqa: E402

ACTOR = "bench"


def seed(catalog: Catalog, recordings: int, clips_each: int) -> None:
    """Recordings that are ready, each with clips (rows only: no media needed)."""
    for n in range(recordings):
        rec_id = f"20260101-{n:06d}-beef"
        catalog.recordings.create(rec_id, case=None, started_at=f"2026-01-01T00:{n % 60:02d}",
                                  origin=Origin.CAPTURE, actor=ACTOR)
        catalog.recordings.update(rec_id, status=RecordingStatus.READY, actor=ACTOR,
                                  path=catalog.layout.recording_film(rec_id), duration_s=600.0)
        for c in range(clips_each):
            catalog.media.request_clip(rec_id, 10.0 * c, 10.0 * c + 5, exact=True,
                                       handles_s=0.0, caption=None, moment_id=None,
                                       actor=ACTOR)


def typical_read(catalog: Catalog) -> int:
    """List recordings with their clips; the number of clips seen."""
    recordings = catalog.recordings.list()
    clips = catalog.media.clips_by_recording()
    return sum(len(clips.get(r.id, [])) for r in recordings)


def per_recording_read(catalog: Catalog) -> int:
    """The same read done naively, one query per recording (for comparison)."""
    return sum(len(catalog.media.clips(r.id)) for r in catalog.recordings.list())


def measure(catalog: Catalog, readers: int, seconds: float, writer: bool,
            read: Callable[[Catalog], int] = typical_read) -> list[float]:
    """Read latencies (s) from `readers` threads for `seconds`, with or without a writer."""
    stop = threading.Event()
    latencies: list[float] = []
    lock = threading.Lock()

    def read_loop() -> None:
        mine = []
        while not stop.is_set():
            began = time.perf_counter()
            read(catalog)
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)

    def write_loop() -> None:
        rec_id = catalog.recordings.list()[0].id
        at = 0.0
        while not stop.wait(0.1):
            at += 0.1
            catalog.moments.add(rec_id, at, source=MomentSource.UI, actor=ACTOR)

    threads = [threading.Thread(target=read_loop) for _ in range(readers)]
    if writer:
        threads.append(threading.Thread(target=write_loop))
    for t in threads:
        t.start()
    time.sleep(seconds)  # the measuring window itself
    stop.set()
    for t in threads:
        t.join(30)
    return latencies


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100)
    return {"p50_ms": round(cuts[49] * 1000, 2), "p95_ms": round(cuts[94] * 1000, 2),
            "reads": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=50)
    parser.add_argument("--clips", type=int, default=3, help="clips per recording")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigbox-bench-catalog-") as tmp:
        with Catalog(Path(tmp)) as catalog:
            seed(catalog, args.recordings, args.clips)
            assert typical_read(catalog) == args.recordings * args.clips
            out: dict[str, object] = {"recordings": args.recordings, "clips_each": args.clips}
            for readers in (1, 8):
                base = percentiles(measure(catalog, readers, args.seconds, writer=False))
                loaded = percentiles(measure(catalog, readers, args.seconds, writer=True))
                naive = percentiles(measure(catalog, readers, args.seconds, writer=True,
                                            read=per_recording_read))
                out[f"{readers}_readers"] = {
                    "baseline_no_writer": base, "with_writer_every_100ms": loaded,
                    "p95_ratio": round(loaded["p95_ms"] / base["p95_ms"], 2),
                    "query_per_recording_with_writer": naive}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
