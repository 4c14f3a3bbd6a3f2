"""The appliance's memory and CPU budget: all four services running while the box records,
the tablet's Home page open and a sync to the office in flight.

    python bench/appliance.py [--seconds 60] [--json]

The box is started as its units start it (appliance.supervisor: the same `vigbox`
commands, environment and niceness), on a temp data dir with the simulated camera and
microphone at the box's defaults (720p30), the tablet UI, and sync to an office folder
capped at 400 kB/s so an upload lasts through the measurement, as on a home visit's
slow uplink.

Phase 1 (baseline, same run): capture alone records `--seconds`. Phase 2 (loaded): the
encoder has made a clip of the baseline film (the sync's payload) and the web server
runs; a second recording of `--seconds` runs while a tablet polls what Home polls (the
live picture at 4 per second, /api/status every second, /api/sync every 2 s) and a sync
run uploads. Every 0.5 s each service's process tree (its ffmpeg children included) is
read from /proc: resident memory (RSS, and PSS, which counts shared pages once) and CPU
time. Printed: per service its CPU share of one core and its peak RSS (and by program),
the total peak RSS summed over every process, and the total peak PSS: the goal is at
most 300 MB so a 1 GB Pi has room. Summed RSS counts a shared library once in every
process that maps it (capture runs three ffmpeg processes, each mapping about 42 MB of
the same libav libraries); PSS splits shared pages between their users, so it is what
the box's RAM really holds. Then capture's CPU loaded / alone, and each recording's
dropped frames, from the catalog and read back from the synthetic camera's frame
barcodes in the MP4 (must be 0). Figures only; no pass/fail.

The synthetic camera is an ffmpeg libx264 encoder (about 30 MB of its own): on a Pi 4
the camera's H.264 encoder is the VideoCore's, on a Pi 5 libav inside picamera2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.config import load_config  # noqa: E402
from appliance.services.app import open_app  # noqa: E402
from tests.appliance_box import CASE, Box, running_box, wait_for  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
SAMPLE_S = 0.5
GOAL_MB = 300
ANALYSE = """
import json, sys
from pathlib import Path
from appliance.capture.sync_check import frame_indices, index_gaps
gaps = index_gaps(frame_indices(Path(sys.argv[1])))
print(json.dumps(sum(b - a - 1 for a, b in gaps)))
"""


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = defaultdict(list)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids[ppid].append(int(name))
    return kids


def _tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process. Not its reaped children's (cutime): those were
    counted while they ran, as members of the tree; a child's last half second before
    it ends is lost, which undercounts short ffmpeg runs a little."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _command(pid: int) -> str:
    """The process's program name (python3.11, ffmpeg, nice...)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB."""
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
    pss = rss
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


@dataclass
class Usage:
    """What one service used over a phase."""

    cpu_ticks: int = 0
    peak_rss_kb: int = 0
    peak_pss_kb: int = 0
    # the peak RSS of each kind of process in the tree (python, ffmpeg), in kB
    by_command: dict[str, int] = field(default_factory=dict)
    last: dict[int, int] = field(default_factory=dict)   # pid -> ticks seen so far


class Sampler:
    """Reads the services' process trees every SAMPLE_S until stopped."""

    def __init__(self, box: Box, names: tuple[str, ...]) -> None:
        self.box, self.names = box, names
        self.usage = {n: Usage() for n in names}
        self.peak_total_rss_kb = 0
        self.peak_total_pss_kb = 0
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.elapsed = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._sample()   # the CPU time used before the phase is not counted
        for u in self.usage.values():
            u.cpu_ticks = 0
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join()
        self._sample()
        self.elapsed = time.monotonic() - self.started

    def _run(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            self._sample()

    def _sample(self) -> None:
        kids = _children()
        total_rss = total_pss = 0
        for name in self.names:
            usage, pid = self.usage[name], self.box.sup.services[name].pid
            rss = pss = 0
            for p in _tree(pid, kids) if pid else []:
                try:
                    ticks = _cpu_ticks(p)
                    r, s = _memory_kb(p)
                except (OSError, IndexError):
                    continue   # ended between the listing and the read
                usage.cpu_ticks += max(0, ticks - usage.last.get(p, 0))
                usage.last[p] = ticks
                rss, pss = rss + r, pss + s
                command = _command(p)
                usage.by_command[command] = max(usage.by_command.get(command, 0), r)
            usage.peak_rss_kb = max(usage.peak_rss_kb, rss)
            usage.peak_pss_kb = max(usage.peak_pss_kb, pss)
            total_rss, total_pss = total_rss + rss, total_pss + pss
        self.peak_total_rss_kb = max(self.peak_total_rss_kb, total_rss)
        self.peak_total_pss_kb = max(self.peak_total_pss_kb, total_pss)

    def figures(self) -> dict[str, Any]:
        """CPU share (% of one core) and peak memory per service, and the totals."""
        per = {n: {"cpu_pct_of_one_core": round(100 * u.cpu_ticks / TICK / self.elapsed, 1),
                   "peak_rss_mb": round(u.peak_rss_kb / 1024, 1),
                   "peak_pss_mb": round(u.peak_pss_kb / 1024, 1),
                   "peak_rss_mb_by_program": {c: round(kb / 1024, 1)
                                              for c, kb in sorted(u.by_command.items())}}
               for n, u in self.usage.items()}
        return {"seconds": round(self.elapsed, 1), "services": per,
                "total_peak_rss_mb": round(self.peak_total_rss_kb / 1024, 1),
                "total_peak_pss_mb": round(self.peak_total_pss_kb / 1024, 1)}


def record(box: Box, seconds: float) -> dict[str, Any]:
    """Record through the control socket; the recording as the catalog has it."""
    box.daemon.start(CASE)
    rec_id = box.wait_recording(seconds, timeout=seconds + 60)
    done: dict[str, Any] = box.daemon.stop()["recording"]
    assert done["id"] == rec_id
    return done


def dropped_in_film(box: Box, rec_id: str) -> int:
    """Frames missing from the MP4, read from the synthetic camera's barcodes (a child
    process, so its memory is not the services')."""
    with open_app(load_config(box.config_path)) as app:
        path = app.catalog.recordings.get(rec_id).path
    out = subprocess.run([sys.executable, "-c", ANALYSE, str(path)], capture_output=True,
                         text=True, check=True, cwd=ROOT, timeout=1800).stdout
    return int(json.loads(out))


class Tablet(threading.Thread):
    """What the Home page polls, until stopped; counts what it got."""

    def __init__(self, box: Box) -> None:
        super().__init__(daemon=True)
        self.client = box.tablet()
        self.stop = threading.Event()
        self.counts: dict[str, int] = defaultdict(int)

    def run(self) -> None:
        n = 0
        while not self.stop.wait(0.25):
            try:
                self.client.request("GET", "/api/live.jpg", kind="live")
                self.counts["live"] += 1
                if n % 4 == 0:
                    self.client.json("GET", "/api/status")
                    self.counts["status"] += 1
                if n % 8 == 0:
                    self.client.json("GET", "/api/sync")
                    self.counts["sync"] += 1
            except (urllib.error.URLError, OSError):
                self.counts["errors"] += 1
            n += 1


def run(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vigbox-bench-") as tmp, \
            running_box(Path(tmp), services=("capture",), bandwidth_kbps=400) as box:
        wait_for(lambda: (box.capture_status() or {}).get("state") == "ready",
                 "capture to be ready", 60)
        with Sampler(box, ("capture",)) as alone:
            baseline = record(box, seconds)
        box.sup.start(("encode", "web"))
        box.wait_ready()
        tablet_for_clip = box.tablet()
        job = tablet_for_clip.json("POST", f"/api/recordings/{baseline['id']}/clips",
                                   {"start_s": 0.0, "end_s": min(seconds, 60.0) - 1,
                                    "exact": False})
        wait_for(lambda: tablet_for_clip.json("GET", f"/api/jobs/{job['id']}")["status"]
                 == "done", "the clip to sync", 300, every=0.5)
        names = ("capture", "encode", "web", "sync")
        tablet = Tablet(box)
        tablet.start()
        box.sup.run_sync()
        wait_for(lambda: any(i["status"] == "sealed" and i["sent_bytes"] for i in
                             tablet_for_clip.json("GET", "/api/sync")["items"]),
                 "the sync to be uploading", 120, every=0.2)
        with Sampler(box, names) as loaded:
            rec = record(box, seconds)
        sync_running = box.sup.services["sync"].pid is not None
        tablet.stop.set()
        tablet.join()
        box.sup.wait_sync(600)
        return {
            "baseline_capture_alone": alone.figures(),
            "loaded_all_four": loaded.figures(),
            "sync_still_uploading_at_the_end": sync_running,
            "tablet_requests": dict(tablet.counts),
            "capture_cpu_loaded_over_alone": round(
                loaded.usage["capture"].cpu_ticks / loaded.elapsed
                / max(1, alone.usage["capture"].cpu_ticks) * alone.elapsed, 2),
            "recordings": {
                name: {"status": r["status"], "video_frames": r["video_frames"],
                       "dropped_frames_catalog": r["dropped_frames"],
                       "dropped_frames_barcode": dropped_in_film(box, r["id"])}
                for name, r in (("baseline", baseline), ("loaded", rec))},
            "goal_total_rss_mb": GOAL_MB,
        }


def show(doc: dict[str, Any]) -> None:
    for phase in ("baseline_capture_alone", "loaded_all_four"):
        figures = doc[phase]
        print(f"{phase} ({figures['seconds']} s):")
        for name, f in figures["services"].items():
            print(f"  {name:8s} CPU {f['cpu_pct_of_one_core']:5.1f} % of a core   peak RSS "
                  f"{f['peak_rss_mb']:6.1f} MB (PSS {f['peak_pss_mb']:.1f}; by program "
                  f"{f['peak_rss_mb_by_program']})")
        print(f"  total peak RSS {figures['total_peak_rss_mb']} MB (PSS "
              f"{figures['total_peak_pss_mb']}); goal <= {doc['goal_total_rss_mb']} MB")
    print(f"capture CPU loaded / alone: {doc['capture_cpu_loaded_over_alone']}")
    print(f"sync still uploading when the loaded recording ended: "
          f"{doc['sync_still_uploading_at_the_end']}; tablet requests {doc['tablet_requests']}")
    for name, r in doc["recordings"].items():
        print(f"{name} recording: {r['status']}, {r['video_frames']} frames, dropped "
              f"{r['dropped_frames_catalog']} (catalog) / {r['dropped_frames_barcode']} "
              "(barcodes)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="length of each recording")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    args = p.parse_args()
    doc = run(args.seconds)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        show(doc)


if __name__ == "__main__":
    main()
