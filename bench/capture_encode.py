"""Capture benchmark with real encode work as the load: dropped frames while clips render.

    python bench/capture_encode.py [--seconds 60] [--repeat 2] [--clips 3]

Runs the capture daemon in this process (synthetic camera and microphone, gpiozero's
mock pins; at nice -5 as its systemd unit, if run as root) and records an unloaded
baseline, then records again while a real `vigbox encode-worker` child (its own
session, niced by its config, as a service or a second shell runs it) renders exact
50 s clips of the first recording, and its review assets; a clip is queued again
whenever the queue runs dry, so the encoder is busy for the whole loaded recording.
Baseline and loaded recordings alternate `--repeat` times in the same process.

Printed for each recording: dropped frames read back from the frame barcodes in the
MP4, and the catalog's count; the synthetic camera's own losses (`frames_lost`: its
exposure thread woke later than its buffers, or its encoder fell behind) apart from
frames the recording path lost after delivery (journal drops); how late the exposure
thread woke and how much of that it spent waiting for a CPU (the rest is mostly the
GIL); exposure-to-recorder latency; per-thread CPU and run-queue waits from
/proc/<tid>/schedstat; the journal's fsync times; the A/V offsets at the sync markers;
the encoder's CPU seconds during the recording and its busy fraction; and the
niceness, autogroup and I/O class the daemon, its camera encoder and the worker's
ffmpeg children really ran with. Figures only: no pass/fail timing asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.capture.daemon import CaptureDaemon, State  # noqa: E402
from appliance.capture.devices import make_camera, make_microphone, new_marker  # noqa: E402
from appliance.capture.gpio import make_pin_factory  # noqa: E402
from appliance.catalog import Catalog, JobStatus  # noqa: E402
from appliance.config import Config, parse_config  # noqa: E402
from appliance.services import media  # noqa: E402
from appliance.services.app import App  # noqa: E402

CLIP_S = 50.0
CLIP_STARTS = 9          # clips start at 0..8 s of the source, so they differ
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
DAEMON_THREADS = ("synthetic-camera", "synthetic-camera-in", "synthetic-camera-out",
                  "journal", "live-audio", "session")


def config_for(data_dir: Path, seconds: float) -> Config:
    return parse_config({
        "data_dir": str(data_dir), "log_level": "warning",
        "camera": {"backend": "synthetic"},
        "microphone": {"backend": "synthetic", "synthetic_drift_ppm": 100.0},
        "gpio": {"backend": "mock", "bounce_time_s": 0.0, "hold_stop_s": 0.5},
        "recording": {"max_seconds": int(seconds) + 30, "warn_before_end_s": 10,
                      "reserve_mb": 64, "low_disk_mb": 0},
    })


# -- /proc readers ----------------------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0])."""
    text = _read(f"/proc/{pid}/stat")
    return text.rsplit(")", 1)[1].split() if text else None


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def cpu_s(pid: int, *, reaped_children: bool = False) -> float:
    """CPU seconds of a process (plus its waited-for children's, if asked)."""
    f = _stat(pid)
    if f is None:
        return 0.0
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if reaped_children else 0)
    return ticks * TICK_S


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (all its threads' children)."""
    return [int(c) for t in _tasks(pid)
            for c in (_read(f"/proc/{pid}/task/{t}/children") or "").split()]


def schedstat(pid: int) -> dict[int, tuple[float, float]]:
    """Per thread: (CPU seconds, seconds runnable but waiting for a CPU)."""
    out: dict[int, tuple[float, float]] = {}
    for tid in _tasks(pid):
        if text := _read(f"/proc/{pid}/task/{tid}/schedstat"):
            run_ns, wait_ns, _ = text.split()
            out[int(tid)] = (int(run_ns) / 1e9, int(wait_ns) / 1e9)
    return out


def priority_of(pid: int) -> dict[str, Any] | None:
    """How the kernel schedules a process: its threads' niceness, autogroup, I/O class."""
    f = _stat(pid)
    if f is None or f[0] == "Z":
        return None  # gone, or exited and not reaped (its I/O class would read "none")
    nices = {int(s[16]) for t in _tasks(pid) if (s := _stat(f"{pid}/task/{t}"))}
    try:
        io = subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True,
                            timeout=5).stdout.split(":")[0].strip()
    except (OSError, subprocess.TimeoutExpired):
        io = "?"
    return {"comm": (_read(f"/proc/{pid}/comm") or "?").strip(),
            "thread_nices": sorted(nices),
            "autogroup": (_read(f"/proc/{pid}/autogroup") or "").strip(), "io_class": io}


def _waits(before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]],
           names: dict[int, str] | None = None) -> dict[str, dict[str, float]]:
    """CPU and run-queue wait between two schedstat snapshots, summed per thread name."""
    out: dict[str, dict[str, float]] = {}
    for tid, (run, wait) in after.items():
        run0, wait0 = before.get(tid, (0.0, 0.0))
        entry = out.setdefault((names or {}).get(tid, "all"),
                               {"cpu_s": 0.0, "runqueue_wait_s": 0.0})
        entry["cpu_s"] = round(entry["cpu_s"] + run - run0, 2)
        entry["runqueue_wait_s"] = round(entry["runqueue_wait_s"] + wait - wait0, 3)
    return out


# -- the encode worker as the load ------------------------------------------------------

class EncodeLoad:
    """A real `vigbox encode-worker` child kept busy with exact clips and review assets."""

    def __init__(self, config: Config, catalog: Catalog, source_id: str) -> None:
        self.config = config
        self.app = App(config, catalog)
        self.source_id = source_id
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queued = 0
        self._busy = [0, 0]
        self.ffmpeg_seen: dict[int, dict[str, Any]] = {}

    def queue_clip(self) -> None:
        start = float(self._queued % CLIP_STARTS)
        media.request_clip(self.app, self.source_id, start, start + CLIP_S, exact=True,
                           actor="bench")
        self._queued += 1

    def start(self, clips: int) -> None:
        """Queue missing review assets (first), then `clips` clips; start the worker and
        return once it renders."""
        self.app.catalog.assets.queue_missing(actor="bench")
        for _ in range(clips):
            self.queue_clip()
        # As from another shell or as a service: its own session, starting at niceness 0
        # (we may be at -5) before it nices itself by its config.
        renice = ["nice", "-n", str(-os.getpriority(os.PRIO_PROCESS, 0))]
        self.proc = subprocess.Popen(
            [*renice, sys.executable, "-m", "appliance", "--data-dir",
             str(self.config.data_path), "encode-worker"], cwd=ROOT, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not children(self.proc.pid):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the encode worker did not start rendering")
            time.sleep(0.05)
        self._thread = threading.Thread(target=self._watch, name="bench-load", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        next_check = 0.0
        while not self._stop.wait(0.5):
            assert self.proc is not None
            kids = children(self.proc.pid)
            self._busy[0] += bool(kids)
            self._busy[1] += 1
            for pid in kids:
                if pid not in self.ffmpeg_seen and (p := priority_of(pid)) is not None:
                    self.ffmpeg_seen[pid] = p
            if time.monotonic() >= next_check:  # keep a clip waiting behind the running job
                next_check = time.monotonic() + 2.0
                if not self.app.catalog.jobs.list((JobStatus.QUEUED,)):
                    self.queue_clip()

    def cpu_s(self) -> float:
        """CPU seconds of the worker and all its ffmpeg children so far."""
        assert self.proc is not None
        live = sum(cpu_s(pid) for pid in children(self.proc.pid))
        return cpu_s(self.proc.pid, reaped_children=True) + live

    def take_busy_fraction(self) -> float:
        """The share of samples since the last call in which an ffmpeg was running."""
        busy, self._busy = self._busy, [0, 0]
        return round(busy[0] / max(1, busy[1]), 3)

    def stop(self) -> None:
        """Kill the worker; its ffmpeg dies with it (pdeathsig)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.proc is None:
            return
        kids = children(self.proc.pid)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 10
        while any((s := _stat(k)) is not None and s[0] != "Z" for k in kids):
            if time.monotonic() > deadline:
                for k in kids:
                    with contextlib.suppress(OSError):
                        os.kill(k, signal.SIGKILL)
                break
            time.sleep(0.05)

    def report(self) -> dict[str, Any]:
        """Jobs by kind and status, and how the worker's children were scheduled."""
        jobs: dict[str, int] = {}
        for j in self.app.catalog.jobs.list():
            jobs[f"{j.kind}:{j.status}"] = jobs.get(f"{j.kind}:{j.status}", 0) + 1
        seen = list(self.ffmpeg_seen.values())
        return {"jobs": jobs, "ffmpeg_children_seen": len(seen),
                "ffmpeg_children_priorities": sorted(
                    {json.dumps({k: v for k, v in p.items() if k != "autogroup"}
                                | {"autogroup_nice": p["autogroup"].rpartition(" ")[2]})
                     for p in seen})}


# -- the daemon and its measurement -----------------------------------------------------

@contextlib.contextmanager
def running_daemon(config: Config, catalog: Catalog) -> Iterator[tuple[CaptureDaemon, Any]]:
    """The capture daemon on a thread with mock pins, ready; stopped afterwards."""
    factory = make_pin_factory("mock")
    assert factory is not None
    marker = new_marker()
    daemon = CaptureDaemon(config, catalog, camera=make_camera(config, marker),
                           mic=make_microphone(config, marker), pin_factory=factory,
                           run_command=lambda argv: None)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    try:
        while daemon.state is not State.READY:
            time.sleep(0.01)
        yield daemon, factory
    finally:
        stop.set()
        thread.join(60)
        factory.close()


def _pct(values: list[float], q: float) -> float | None:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 1) if s else None


class FrameTrace:
    """When the camera's exposure thread made each frame (and how long it had waited for
    a CPU since the one before) and when the recorder received it, by wrapping the
    synthetic camera's picture and frame callback."""

    def __init__(self, camera: Any) -> None:
        self.camera = camera
        self.interval_ms = 1000 / camera.fps
        self.wake_late_ms: list[float] = []
        self.wake_runqueue_ms: list[float] = []
        self.delivery_ms: list[float] = []
        self._waited_ns: dict[int, int] = {}
        start = camera.start

        def traced_start(on_frame: Any, on_error: Any) -> None:
            self._wrap_picture()

            def deliver(f: Any) -> None:
                self.delivery_ms.append((time.monotonic_ns() - f.pts_ns) / 1e6)
                on_frame(f)
            start(deliver, on_error)

        camera.start = traced_start

    def _wrap_picture(self) -> None:
        picture = self.camera._picture
        if picture is None or getattr(picture.frame, "traced", False):
            return
        make = picture.frame
        epoch, fps = self.camera.marker.epoch_ns, self.camera.fps

        def frame(index: int, *, white: bool = False) -> bytes:
            late_ms = (time.monotonic_ns() - (epoch + index * 1_000_000_000 // fps)) / 1e6
            with open("/proc/thread-self/schedstat") as f:
                waited_ns = int(f.read().split()[1])
            tid = threading.get_native_id()
            self.wake_late_ms.append(late_ms)
            self.wake_runqueue_ms.append((waited_ns - self._waited_ns.get(tid, 0)) / 1e6)
            self._waited_ns = {tid: waited_ns}
            return make(index, white=white)

        frame.traced = True  # type: ignore[attr-defined]
        picture.frame = frame

    def take(self) -> dict[str, Any]:
        """Figures since the last call."""
        late, queued, delivery = self.wake_late_ms, self.wake_runqueue_ms, self.delivery_ms
        self.wake_late_ms, self.wake_runqueue_ms, self.delivery_ms = [], [], []
        slow = [(v, min(q, v)) for v, q in zip(late, queued) if v > 10]
        return {"exposure_wake_late_ms_p50": _pct(late, 0.5),
                "exposure_wake_late_ms_p99": _pct(late, 0.99),
                "exposure_wake_late_ms_max": _pct(late, 1.0),
                "exposure_wakes_late_over_a_frame": sum(v > self.interval_ms for v in late),
                # Wakes over 10 ms late: in all, and of that waiting for a CPU (the rest
                # is mostly waiting for the GIL).
                "late_wakes_over_10ms": len(slow),
                "late_wakes_over_10ms_total_ms": round(sum(v for v, _ in slow), 1),
                "late_wakes_over_10ms_runqueue_ms": round(sum(q for _, q in slow), 1),
                "exposure_to_recorder_ms_p50": _pct(delivery, 0.5),
                "exposure_to_recorder_ms_p99": _pct(delivery, 0.99),
                "exposure_to_recorder_ms_max": _pct(delivery, 1.0)}


class FsyncTimer:
    """Times the journal thread's os.fsync calls, by wrapping os.fsync."""

    def __init__(self) -> None:
        self.durations_ms: list[float] = []
        real = os.fsync

        def timed(fd: Any) -> None:
            start = time.perf_counter()
            try:
                real(fd)
            finally:
                if threading.current_thread().name == "journal":
                    self.durations_ms.append((time.perf_counter() - start) * 1000)

        os.fsync = timed

    def take(self) -> dict[str, Any]:
        """Figures since the last call."""
        s, self.durations_ms = self.durations_ms, []
        return {"journal_fsyncs": len(s), "journal_fsync_ms_p50": _pct(s, 0.5),
                "journal_fsync_ms_max": _pct(s, 1.0)}


class Window:
    """CPU, run-queue waits, load and encoder work from the first frame to the end."""

    def __init__(self, camera: Any, load: EncodeLoad | None) -> None:
        self.camera_pid: int | None = camera._proc.pid if camera._proc else None
        self.load = load
        self._names = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
        self._threads = schedstat(os.getpid())
        self._camera = schedstat(self.camera_pid) if self.camera_pid else {}
        self._cpu = cpu_s(os.getpid())
        self._encoder_cpu = load.cpu_s() if load else 0.0
        self._loadavg = (_read("/proc/loadavg") or "").split()[:3]
        if load:
            load.take_busy_fraction()

    def close(self) -> dict[str, Any]:
        names = self._names | {t.native_id: t.name for t in threading.enumerate()
                               if t.native_id}
        threads = _waits(self._threads, schedstat(os.getpid()), names)
        camera = (_waits(self._camera, schedstat(self.camera_pid))["all"]
                  if self.camera_pid else None)
        return {
            "daemon_process_cpu_s": round(cpu_s(os.getpid()) - self._cpu, 1),
            "daemon_threads": {k: v for k, v in threads.items() if k in DAEMON_THREADS},
            "camera_encoder_ffmpeg": camera,
            "encoder_cpu_s": round(self.load.cpu_s() - self._encoder_cpu, 1)
            if self.load else 0.0,
            "encoder_busy_fraction": self.load.take_busy_fraction() if self.load else 0.0,
            "loadavg_before": self._loadavg,
            "loadavg_after": (_read("/proc/loadavg") or "").split()[:3]}


ANALYSE = """
import json, sys
from pathlib import Path
from appliance.capture.sync_check import frame_indices, index_gaps, measure_sync
path = Path(sys.argv[1])
gaps = index_gaps(frame_indices(path))
print(json.dumps({"sync": measure_sync(path).to_json(), "gaps": gaps,
                  "dropped": sum(b - a - 1 for a, b in gaps)}))
"""


def analyse(path: Path) -> dict[str, Any]:
    """Barcode gaps and sync markers of the finished MP4, read in a child process."""
    out = subprocess.run([sys.executable, "-c", ANALYSE, str(path)], capture_output=True,
                         text=True, check=True, cwd=ROOT, timeout=1800).stdout
    return json.loads(out)


def record(daemon: CaptureDaemon, factory: Any, probes: tuple[FrameTrace, FsyncTimer],
           seconds: float, load: EncodeLoad | None) -> dict[str, Any]:
    """One recording from a button press to a finished, analysed file."""
    pin = factory.pin(daemon.config.gpio.button_pin)
    cam: Any = daemon.camera
    time.sleep(1.0)  # the camera is warm, as on a box waiting for its guider
    pin.drive_low()
    time.sleep(0.08)
    pin.drive_high()
    while daemon._session is None or daemon._session.first_pts_ns is None:
        time.sleep(0.001)
    session = daemon._session
    for probe in probes:
        probe.take()  # from the first frame on
    window = Window(cam, load)
    while time.monotonic_ns() < (session.first_pts_ns or 0) + int(seconds * 1e9):
        time.sleep(0.2)
    measured = window.close() | probes[0].take() | probes[1].take()
    lost = {"camera_frames_lost": cam.frames_lost,
            "camera_frames_lost_late": getattr(cam, "frames_lost_late", None),
            "camera_frames_lost_encoder_behind": getattr(cam, "frames_lost_full", None)}
    pin.drive_low()
    while daemon.state is State.RECORDING:
        time.sleep(0.005)
    pin.drive_high()
    while daemon.state is State.FINALIZING:
        time.sleep(0.01)
    rec = daemon.catalog.recordings.get(daemon.last_recording or "")
    journal = session._journal
    assert rec.path is not None and journal is not None, rec.problems
    found = analyse(rec.path)
    return {
        "recording_id": rec.id, "status": rec.status, "duration_s": rec.duration_s,
        "frames": rec.video_frames,
        "dropped_frames_barcode": found["dropped"], "barcode_gaps": found["gaps"][:10],
        "dropped_frames_catalog": rec.dropped_frames, **lost,
        "journal_frames_dropped": journal.frames_dropped,
        "journal_audio_blocks_dropped": journal.chunks_dropped,
        "markers": len(found["sync"]["white_frames"]),
        "av_offsets_ms": found["sync"]["offsets_ms"],
        "av_offset_max_abs_ms": found["sync"]["max_abs_offset_ms"],
        **measured, "problems": rec.problems,
    }


SUMMARY = ("dropped_frames_barcode", "dropped_frames_catalog", "camera_frames_lost",
           "journal_frames_dropped", "av_offset_max_abs_ms", "exposure_wake_late_ms_max",
           "exposure_to_recorder_ms_max", "encoder_cpu_s")


def run_pairs(config: Config, seconds: float, repeat: int, clips: int) -> dict[str, Any]:
    """`repeat` times: a recording without load, then one while the encoder works."""
    runs: list[dict[str, Any]] = []
    with Catalog(config.data_path) as catalog, \
            running_daemon(config, catalog) as (daemon, factory):
        probes = (FrameTrace(daemon.camera), FsyncTimer())
        source_id = ""
        for n in range(repeat):
            baseline = record(daemon, factory, probes, seconds, None)
            source_id = source_id or baseline["recording_id"]
            load = EncodeLoad(config, catalog, source_id)
            load.start(clips)
            try:
                loaded = record(daemon, factory, probes, seconds, load)
                assert load.proc is not None
                loaded["encode_worker"] = priority_of(load.proc.pid)
            finally:
                load.stop()
            loaded |= load.report()
            runs.append({"pair": n + 1, "baseline_unloaded": baseline, "loaded": loaded})
        cam: Any = daemon.camera
        priorities = {"daemon": priority_of(os.getpid()),
                      "camera_encoder": priority_of(cam._proc.pid) if cam._proc else None}
    summary = [{"pair": r["pair"], **{f"{k}_{m}": r[k][m] for k in ("baseline_unloaded",
                                                                     "loaded")
                                      for m in SUMMARY}} for r in runs]
    return {**priorities, "runs": runs, "summary": summary}


def main() -> int:
    if os.environ.get("MALLOC_ARENA_MAX") != "2":
        # As the systemd unit runs the daemon.
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  os.environ | {"MALLOC_ARENA_MAX": "2"})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of each recording (the first is also the clips' source)")
    parser.add_argument("--repeat", type=int, default=1, help="baseline + loaded pairs")
    parser.add_argument("--clips", type=int, default=3,
                        help=f"exact {CLIP_S:g} s clips queued at the start (then topped up)")
    parser.add_argument("--daemon-nice", type=int, default=-5,
                        help="the daemon's niceness (-5 as its systemd unit; needs root)")
    args = parser.parse_args()
    if args.seconds < CLIP_S + CLIP_STARTS:
        parser.error(f"--seconds must be at least {CLIP_S + CLIP_STARTS:g}")
    with contextlib.suppress(OSError):
        os.nice(args.daemon_nice)  # before any thread is started: they all inherit it
    with tempfile.TemporaryDirectory(prefix="vigbox-bench-") as tmp:
        result = run_pairs(config_for(Path(tmp) / "data", args.seconds), args.seconds,
                           args.repeat, args.clips)
    print(json.dumps({"cpus": os.cpu_count(), "seconds": args.seconds,
                      "clips_queued_first": args.clips, **result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
