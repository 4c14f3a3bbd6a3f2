"""Capture benchmark: a simulated session through the real daemon while the CPU is loaded.

    python bench/capture.py --seconds 600
    python bench/capture.py --seconds 60 --encode-clips 6   # real encode jobs as the load
    python bench/capture.py --seconds 60 --preview 5        # the tablet's live view polled

Runs the capture daemon in this process (synthetic camera and microphone, gpiozero's
mock pins), presses the button to start, holds it to stop, and prints for an unloaded
baseline run and for the loaded run: dropped frames (from the frame barcodes), A/V
offset at the first and last sync marker, button-to-first-frame latency, finalize time
and peak memory. The load is what a busy box has: the web UI and the sync agent at
normal priority, the encoder niced, each a process spinning on the CPU; or, with
--encode-clips, a real encode worker rendering exact 50 s clips of a 720p film. The
daemon runs at nice -5 as its systemd unit does.

With --preview N the same loaded recording is made twice in this process, without and
then with the live preview polled N times a second through the control socket (as the
tablet does): dropped frames of each, and the preview pictures a second achieved.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
from appliance.catalog import Catalog  # noqa: E402
from appliance.config import Config, parse_config  # noqa: E402
from appliance.errors import ApplianceError  # noqa: E402
from appliance.services import media  # noqa: E402
from appliance.services.app import App  # noqa: E402
from appliance.services.daemon import DaemonClient  # noqa: E402
from appliance.services.imports import import_file  # noqa: E402

SPIN = "import os,sys; os.nice(int(sys.argv[1]))\nwhile True: pass"


def config_for(data_dir: Path, seconds: float, drift_ppm: float) -> Config:
    return parse_config({
        "data_dir": str(data_dir), "log_level": "warning",
        "camera": {"backend": "synthetic"},
        "microphone": {"backend": "synthetic", "synthetic_drift_ppm": drift_ppm},
        "gpio": {"backend": "mock", "bounce_time_s": 0.0, "hold_stop_s": 0.5},
        "recording": {"max_seconds": int(seconds) + 30, "warn_before_end_s": 10,
                      "reserve_mb": 64, "low_disk_mb": 0},
    })


ANALYSE = """
import json, sys
from pathlib import Path
from appliance.capture.sync_check import frame_indices, index_gaps, measure_sync
path = Path(sys.argv[1])
gaps = index_gaps(frame_indices(path))
print(json.dumps({"sync": measure_sync(path).to_json(),
                  "dropped": sum(b - a - 1 for a, b in gaps)}))
"""


def analyse(path: Path) -> tuple[dict[str, Any], int]:
    """Sync markers and barcode gaps, measured in a child so its memory is not counted."""
    out = subprocess.run([sys.executable, "-c", ANALYSE, str(path)], capture_output=True,
                         text=True, check=True, cwd=ROOT, timeout=1800).stdout
    doc = json.loads(out)
    return doc["sync"], int(doc["dropped"])


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM, so each run's peak is its own.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _vm_hwm_mb(proc: Any) -> float | None:
    # The peak resident memory of a process, from the kernel's own accounting.
    pid = proc.getpid() if proc is os else getattr(proc, "pid", None)
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (AttributeError, OSError):
        pass
    return None


def _cpu_s(pid: int | None) -> float | None:
    # CPU time (user + system) a process has used so far, from the kernel's accounting.
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, IndexError, ValueError):
        return None


def start_encode_load(config: Config, clips: int, tmp: Path) -> subprocess.Popen[bytes]:
    """Real encoder work, as a busy box has it: a 60 s 720p film imported, `clips` exact
    50 s clips of it queued, and a real `vigbox encode-worker` (niced by its config)."""
    film = tmp / "source.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1280x720:rate=30:duration=60", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=60:sample_rate=48000", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-shortest", "-movflags", "+faststart", str(film)], check=True, timeout=600)
    with Catalog(config.data_path) as catalog:
        app = App(config, catalog)
        rec = import_file(app, film, case=None, actor="bench")
        for n in range(clips):
            media.request_clip(app, rec.id, float(n % 10), float(n % 10) + 50.0, exact=True,
                               actor="bench")
    return subprocess.Popen([sys.executable, "-m", "appliance", "--data-dir",
                             str(config.data_path), "encode-worker"], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def jobs_done(config: Config) -> dict[str, int]:
    """How many jobs of each status the encoder has, after the loaded run."""
    with Catalog(config.data_path) as catalog:
        jobs = catalog.jobs.list()
    return {status: sum(j.status == status for j in jobs) for status in {j.status for j in jobs}}


def start_load(normal: int, niced: int) -> list[subprocess.Popen[bytes]]:
    procs = [subprocess.Popen([sys.executable, "-c", SPIN, "0"]) for _ in range(normal)]
    procs += [subprocess.Popen([sys.executable, "-c", SPIN, "10"]) for _ in range(niced)]
    return procs


@contextlib.contextmanager
def running_daemon(config: Config) -> Iterator[tuple[CaptureDaemon, Any]]:
    """The capture daemon on a thread with mock pins, ready; stopped afterwards."""
    factory = make_pin_factory("mock")
    marker = new_marker()
    catalog = Catalog(config.data_path)
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
        catalog.close()


def latencies(config: Config, presses: int) -> dict[str, Any]:
    """Button release to first frame exposure (and to the first frame in the recorder),
    over several short recordings with the camera warm."""
    exposure_ms, seen_ms = [], []
    with running_daemon(config) as (daemon, factory):
        pin = factory.pin(config.gpio.button_pin)
        for _ in range(presses):
            time.sleep(1.0)  # idle with the camera warm, as a box waiting for its guider
            pin.drive_low()
            time.sleep(0.08)
            released_ns = time.monotonic_ns()
            pin.drive_high()
            while daemon._session is None or daemon._session.first_pts_ns is None:
                time.sleep(0.0005)
            seen_ms.append((time.monotonic_ns() - released_ns) / 1e6)
            exposure_ms.append((daemon._session.first_pts_ns - released_ns) / 1e6)
            time.sleep(1.0)
            daemon.stop_recording("bench")
    exposure_ms.sort()
    seen_ms.sort()
    return {"presses": presses,
            "release_to_first_exposure_ms_median": round(exposure_ms[len(exposure_ms) // 2], 1),
            "release_to_first_exposure_ms_max": round(exposure_ms[-1], 1),
            "release_to_first_frame_in_recorder_ms_median": round(seen_ms[len(seen_ms) // 2], 1),
            "release_to_first_frame_in_recorder_ms_max": round(seen_ms[-1], 1)}


class PreviewPoller:
    """The tablet's live view: the daemon's preview asked for `fps` times a second through
    its socket, on a thread, counting the distinct pictures it got."""

    def __init__(self, config: Config, fps: float) -> None:
        self._client = DaemonClient(config.socket)
        self._interval_s = 1.0 / fps
        self._stop = threading.Event()
        self._started = time.monotonic()
        self.taken_ns: set[int] = set()
        self.request_ms: list[float] = []
        self.sizes: list[int] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._poll, name="tablet", daemon=True)

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def _poll(self) -> None:
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            asked = time.monotonic()
            try:
                picture = self._client.preview()
            except ApplianceError as e:
                self.errors.append(str(e))
            else:
                self.request_ms.append((time.monotonic() - asked) * 1000)
                self.taken_ns.add(picture.taken_ns)
                self.sizes.append(len(picture.jpeg))
            due = max(due + self._interval_s, time.monotonic())

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(30)
        seconds = time.monotonic() - self._started
        ms = sorted(self.request_ms) or [0.0]
        return {"polls_per_s": round(len(self.request_ms) / seconds, 2),
                "pictures_per_s": round(len(self.taken_ns) / seconds, 2),
                "request_ms_median": round(ms[len(ms) // 2], 1),
                "request_ms_max": round(ms[-1], 1),
                "jpeg_kb_median": round(sorted(self.sizes or [0])[len(self.sizes) // 2] / 1024,
                                        1),
                "errors": self.errors[:5]}


def run_once(config: Config, seconds: float, preview_fps: float = 0.0) -> dict[str, Any]:
    """One recording from a button press to a finished file, measured (with the live
    preview polled `preview_fps` times a second throughout, if not 0)."""
    _reset_peak_rss()
    with running_daemon(config) as (daemon, factory):
        poller = PreviewPoller(config, preview_fps) if preview_fps else None
        if poller is not None:
            poller.start()  # the guider frames the shot before pressing, as on a visit
        time.sleep(1.0)  # the camera is warm, as on a box waiting for its guider
        pin = factory.pin(config.gpio.button_pin)
        pin.drive_low()
        time.sleep(0.08)  # a quick press
        pin.drive_high()
        while daemon._session is None or daemon._session.first_pts_ns is None:
            time.sleep(0.001)
        end = (daemon._session.first_pts_ns or 0) + int(seconds * 1e9)
        while time.monotonic_ns() < end:
            time.sleep(0.2)
        encoder_hwm_mb = _vm_hwm_mb(getattr(daemon.camera, "_proc", None))
        preview = poller.stop() if poller is not None else None
        if preview is not None:  # the JPEG encoder of the synthetic camera's preview
            pid = getattr(getattr(daemon.camera, "preview", None), "encoder_pid", None)
            preview["jpeg_encoder_cpu_s"] = _cpu_s(pid)
        pin.drive_low()
        while daemon.state is State.RECORDING:
            time.sleep(0.005)
        stop_at = time.monotonic()
        pin.drive_high()
        while daemon.state is State.FINALIZING:
            time.sleep(0.01)
        finalize_s = time.monotonic() - stop_at
        rec = daemon.catalog.recordings.get(daemon.last_recording or "")
        daemon_peak_mb = _vm_hwm_mb(os)  # os.getpid() via the same reader
    assert rec.path is not None, rec.problems
    sync, dropped_barcode = analyse(rec.path)
    return {
        "status": rec.status, "duration_s": rec.duration_s, "frames": rec.video_frames,
        "dropped_frames_catalog": rec.dropped_frames,
        "dropped_frames_barcode": dropped_barcode,
        "markers": len(sync["white_frames"]),
        "av_offset_first_ms": sync["offsets_ms"][0] if sync["offsets_ms"] else None,
        "av_offset_last_ms": sync["offsets_ms"][-1] if sync["offsets_ms"] else None,
        "av_offset_max_abs_ms": sync["max_abs_offset_ms"],
        "peak_rss_daemon_process_mb": daemon_peak_mb,
        "peak_rss_synthetic_encoder_mb": encoder_hwm_mb,
        "finalize_s": round(finalize_s, 2),
        "problems": rec.problems,
        "frames_lost_by_camera": getattr(daemon.camera, "frames_lost", None),
    } | ({"preview": preview} if preview is not None else {})


def preview_comparison(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The same loaded recording without and with the live preview polled."""
    load = start_load(args.load, args.niced_load)
    try:
        runs = {}
        for name, fps in (("without_preview", 0.0), ("with_preview", args.preview)):
            cfg = config_for(tmp / name, args.seconds, args.drift_ppm)
            runs[name] = run_once(cfg, args.seconds, preview_fps=fps)
    finally:
        for p in load:
            p.kill()
            p.wait()
    keys = ("status", "frames", "dropped_frames_barcode", "dropped_frames_catalog",
            "frames_lost_by_camera", "av_offset_max_abs_ms", "problems", "preview")
    return {"cpus": os.cpu_count(), "load": {"normal": args.load, "nice10": args.niced_load},
            "seconds": args.seconds, "preview_polls_per_s_asked": args.preview,
            **{name: {k: run[k] for k in keys if k in run} for name, run in runs.items()}}


def main() -> int:
    if os.environ.get("MALLOC_ARENA_MAX") != "2":
        # As the systemd unit runs the daemon: glibc's per-thread malloc arenas would
        # otherwise keep freed frame buffers resident.
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  os.environ | {"MALLOC_ARENA_MAX": "2"})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the loaded run")
    parser.add_argument("--baseline-seconds", type=float, default=11.0)
    parser.add_argument("--drift-ppm", type=float, default=100.0,
                        help="synthetic mic clock error (real USB mics: tens of ppm)")
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2,
                        help="CPU spinners at normal priority (web UI, sync)")
    parser.add_argument("--presses", type=int, default=7, help="presses timed for latency")
    parser.add_argument("--niced-load", type=int, default=1, help="CPU spinners at nice 10")
    parser.add_argument("--encode-clips", type=int, default=0,
                        help="instead of spinners: real exact 50 s clips rendered by a real "
                             "encode worker while recording")
    parser.add_argument("--preview", type=float, default=0.0, metavar="N",
                        help="instead: the same loaded recording without and with the live "
                             "preview polled N times a second")
    parser.add_argument("--daemon-nice", type=int, default=-5,
                        help="the daemon's niceness (-5 as its systemd unit; 0 as a shell)")
    args = parser.parse_args()
    if os.geteuid() == 0 or args.daemon_nice >= 0:
        os.nice(args.daemon_nice)  # as the systemd unit does (-5), or a shell (0)
    if args.preview:
        with tempfile.TemporaryDirectory(prefix="vigbox-bench-") as tmp:
            print(json.dumps(preview_comparison(args, Path(tmp)), indent=2))
        return 0
    with tempfile.TemporaryDirectory(prefix="vigbox-bench-") as tmp:
        base_cfg = config_for(Path(tmp) / "base", args.baseline_seconds, args.drift_ppm)
        baseline = run_once(base_cfg, args.baseline_seconds)
        baseline_latency = latencies(base_cfg, args.presses)
        loaded_cfg = config_for(Path(tmp) / "loaded", args.seconds, args.drift_ppm)
        if args.encode_clips:
            load = [start_encode_load(loaded_cfg, args.encode_clips, Path(tmp))]
        else:
            load = start_load(args.load, args.niced_load)
        try:
            loaded_latency = latencies(loaded_cfg, args.presses)
            loaded = run_once(loaded_cfg, args.seconds)
            if args.encode_clips:
                loaded["encode_jobs_done_while_recording"] = jobs_done(loaded_cfg)
        finally:
            for p in load:
                p.kill()
                p.wait()
    result = {
        "cpus": os.cpu_count(),
        "load": ({"exact_50s_clips_by_the_encode_worker": args.encode_clips}
                 if args.encode_clips else {"normal": args.load, "nice10": args.niced_load}),
        "drift_ppm": args.drift_ppm,
        "baseline_unloaded": baseline, "loaded": loaded,
        "latency_unloaded": baseline_latency, "latency_loaded": loaded_latency,
        "latency_ratio_loaded_to_unloaded_median": round(
            loaded_latency["release_to_first_exposure_ms_median"]
            / max(baseline_latency["release_to_first_exposure_ms_median"], 0.1), 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
