"""Sync benchmark: SFTP upload, sealing, capped links, cuts and memory, each against a
baseline measured in the same run.

    python bench/sync.py [--quick] [--json] [--file-mb 200] [--size-mb 500]
                         [--cap-mb-s 2] [--cap-seconds 10] [--repeats 3] [--stall-s 15]

Everything runs on 127.0.0.1 with the test kit's servers (tests/sync_servers.py): a real
OpenSSH sshd (its internal-sftp) and the TCP proxy that throttles and cuts links. The
films are real MP4s made by ffmpeg (720p30 H.264 at 50 Mbit/s, cut to size with -fs).
For figures 1 to 4 each run gets a data dir of its own whose catalog holds a recording
of that MP4 (the row made directly, as an import leaves it; case VIG-2026-900, filming
consented); figure 5 imports it with `vigbox import`. MB is 10^6 bytes. Printed:

1. SFTP upload on loopback: `vigbox sync` (run_sync, in this process) uploading the
   sealed film vs OpenSSH's `sftp -b` (`put`) uploading a file seal() made of the same
   film (the same size give or take rage's random header stanza) to the same sshd.
   Throughput is taken over the upload window (the remote file appears → it is complete
   at the office), so login and sealing do not count; the whole run's throughput is
   shown too. Median of --repeats.
2. Encryption: appliance.sync.seal.seal() vs the reference `age -r KEY -o OUT IN` on the
   same film, both writing to tmpfs (/dev/shm), where seal()'s fsync costs nothing;
   seal() into a folder on disk (as the outbox is) is shown once beside it.
3. A capped link: the proxy's token bucket at --cap-mb-s up → vigbox's throughput as a
   fraction of the cap (OpenSSH's sftp through the same cap beside it); and vigbox's own
   cap (sync.bandwidth_kbps at the same rate) on the direct link, as a fraction of it.
4. A link cut at 50 % and at 99 % of the sealed file (plus the SSH set-up bytes, measured
   by the destination's own connect), healed, then synced again: bytes re-sent = bytes
   up in both runs - bytes up of a clean upload of the same film through the same proxy.
5. Memory: `python -m appliance sync --json` as a child process sending a --size-mb
   recording, and before it, as the baseline, one sending a small recording (each
   imported by `vigbox import` into a box of its own): peak RSS (the highest VmHWM
   sampled every 50 ms) and the peak VmRSS while sealing and while uploading. Also the
   peak RSS of a child that only runs seal() on the big film, of one that seals a 1 kB
   file (the interpreter and imports), and of `age` on the big film.

An upload whose bytes at the office stop growing for --stall-s is abandoned and shown as
FAILED with what the office holds (a run blocked inside paramiko would otherwise wait
for its 60 s channel timeout); what went wrong in the product is listed at the end (and
under "problems" with --json). --quick (a smoke check, under 2 minutes): 16 MB films, a
50 MB recording, one repeat, 3 s at the cap, 5 s stalls. Figures only; no pass/fail.
Exit status 1 if the benchmark itself fails, 2 when a tool is missing (it says which).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402  (the test kit skips with it when a binary is missing)
from pyrage import x25519  # noqa: E402

from appliance.catalog import (  # noqa: E402
    Catalog,
    Consent,
    Origin,
    RecordingStatus,
    SyncKind,
    utc_now,
)
from appliance.config import Config, parse_config  # noqa: E402
from appliance.services import sync as sync_service  # noqa: E402
from appliance.services.app import App  # noqa: E402
from appliance.sync.destinations import open_destination  # noqa: E402
from appliance.sync.run import Summary  # noqa: E402
from appliance.sync.seal import recipients_of, seal, sha256_of  # noqa: E402
from tests.sync_servers import (  # noqa: E402
    CuttingProxy,
    OpenSshServer,
    age_binary,
    require_binary,
)

MB = 1_000_000
ACTOR = "bench"
CASE = "VIG-2026-900"
DEVICE = "bench-box"
POLL_S = 0.01            # the upload-window watcher's tick
RSS_POLL_S = 0.05        # the memory sampler's tick
SYNC_TIMEOUT_S = 300.0   # one sync run (in this process or a child)
TOOL_TIMEOUT_S = 300.0   # one ffmpeg, age, sftp or vigbox command
HEADER_SLACK = 1024      # age headers differ in length (rage's random grease stanza)
SETTLE_S = 0.3           # lets the proxy forward a closing connection's last bytes


class BenchError(Exception):
    """A step went wrong: the benchmark stops and says which."""


class Deadline(BaseException):
    """The whole run took longer than --timeout (cleanup still runs)."""


@dataclasses.dataclass
class Output:
    """Human-readable lines (to stderr with --json, so stdout is one JSON document), and
    the problems seen in the product along the way."""

    as_json: bool
    problems: list[str] = dataclasses.field(default_factory=list)

    def line(self, text: str = "") -> None:
        print(text, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def problem(self, text: str) -> None:
        self.problems.append(text)


def mb_s(size: int, seconds: float | None) -> float:
    return round(size / MB / seconds, 2) if seconds else float("nan")


def run_tool(argv: list[str], what: str, timeout: float = TOOL_TIMEOUT_S,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A command that must succeed within `timeout`; BenchError with its stderr if not."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what} took longer than {timeout:.0f} s") from None
    if done.returncode != 0:
        raise BenchError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done


# -- films -------------------------------------------------------------------------------

def make_film(path: Path, size: int) -> Path:
    """A real MP4 of about `size` bytes: 720p30 H.264 at 50 Mbit/s (testsrc2 with moving
    noise, so the encoder really spends the bits), ended by ffmpeg's -fs at `size`."""
    seconds = max(4, int(size / (50e6 / 8) * 1.4) + 2)
    run_tool(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
              f"testsrc2=size=1280x720:rate=30:duration={seconds}",
              "-vf", "noise=alls=12:allf=t", "-c:v", "libx264", "-preset", "ultrafast",
              "-b:v", "50M", "-maxrate", "50M", "-bufsize", "25M", "-g", "30",
              "-pix_fmt", "yuv420p", "-an", "-fs", str(size), str(path)],
             f"making a {size / MB:.0f} MB film", timeout=600)
    return path


# -- the box -----------------------------------------------------------------------------

class Box:
    """A data dir and its catalog holding one case (filming consented) and recordings
    whose film is a given MP4 (hard-linked where the layout keeps recordings)."""

    def __init__(self, root: Path, recipient: str) -> None:
        self.config: Config = parse_config({"data_dir": str(root)})
        self.catalog = Catalog(self.config.data_path)
        self.catalog.cases.add(CASE, {Consent.FILMING: "2026-01-01"}, actor=ACTOR)
        self.recipient = recipient
        self.count = 0

    def add_recording(self, film: Path) -> str:
        """A ready recording of case CASE whose film is `film`; its id."""
        self.count += 1
        rec_id = f"20260101-{self.count:06d}-beef"
        path = self.catalog.layout.recording_film(rec_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(film, path)
        self.catalog.recordings.create(
            rec_id, case=CASE, started_at=utc_now(), origin=Origin.IMPORT,
            status=RecordingStatus.READY, actor=ACTOR, path=path, duration_s=10.0,
            width=1280, height=720, fps=30.0, dropped_frames=0, audio="none")
        return rec_id

    def app(self, server: OpenSshServer, port: int, folder: str, kbps: int = 0) -> App:
        """The box set up to sync to `folder` of the office through 127.0.0.1:`port`."""
        sync = dataclasses.replace(
            self.config.sync,
            destination=f"sftp://{server.user}@127.0.0.1:{port}{server.office}/{folder}",
            recipients=[self.recipient], identity=str(server.client_key),
            known_hosts=str(server.known_hosts_for(port)), device_id=DEVICE,
            send_recordings=True, bandwidth_kbps=kbps)
        return App(dataclasses.replace(self.config, sync=sync), self.catalog)

    def sealed(self, rec_id: str) -> tuple[int, str]:
        """(size, sha256) of the recording's sealed file as the catalog has it."""
        items = self.catalog.sync.of(SyncKind.RECORDING, rec_id)
        if not items:   # the run ended before it planned anything
            return 0, ""
        return items[0].sealed_size or 0, items[0].sealed_sha256 or ""

    def close(self) -> None:
        self.catalog.close()


def office_file(server: OpenSshServer, folder: str, rec_id: str) -> Path:
    """Where a recording's sealed film ends up at the office."""
    return server.office / folder / DEVICE / CASE / rec_id / f"recording-{rec_id}.mp4.age"


def size_of(*paths: Path) -> int:
    """The largest size among the files that exist (0 if none)."""
    sizes = [0]
    for path in paths:
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:
            pass
    return max(sizes)


def exists_any(*paths: Path) -> Callable[[], bool]:
    return lambda: any(p.exists() for p in paths)


class Watch:
    """Watches an upload at the office from a thread polling every POLL_S: `t0` when
    `started()` first holds (the remote file exists), `t1` when `finished()` does, the
    bytes there (`progress()`) and when they last grew, and a counter (the proxy's bytes
    up) read at t0 and t1."""

    def __init__(self, started: Callable[[], bool], finished: Callable[[], bool],
                 progress: Callable[[], int],
                 counter: Callable[[], int] = lambda: 0) -> None:
        self.started, self.finished = started, finished
        self.progress, self.counter = progress, counter
        self.t0: float | None = None
        self.t1: float | None = None
        self.c0 = self.c1 = 0
        self.held = 0
        self.grew_at = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-watch", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            if self.t0 is None and self.started():
                self.t0, self.c0, self.grew_at = now, self.counter(), now
            if self.t0 is not None:
                held = self.progress()
                if held != self.held:
                    self.held, self.grew_at = held, now
                if self.finished():
                    self.t1, self.c1 = time.perf_counter(), self.counter()
                    return
            self._stop.wait(POLL_S)

    def stalled_s(self) -> float:
        """Seconds since the bytes at the office last grew (0 before the upload began)."""
        if self.t0 is None or self.t1 is not None:
            return 0.0
        return time.perf_counter() - self.grew_at

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # The file may complete between the last tick and the run's end: one more look.
        deadline = time.monotonic() + 2
        while self.t1 is None and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(POLL_S)
        self._stop.set()
        self._thread.join(5)

    @property
    def seconds(self) -> float | None:
        return None if self.t0 is None or self.t1 is None else self.t1 - self.t0


@dataclasses.dataclass
class Upload:
    """One upload as the office saw it."""

    ok: bool
    problem: str             # why it did not complete ("" when ok)
    sealed: int              # bytes of the sealed file
    held: int                # bytes at the office at the end (.part or final file)
    window_s: float | None   # the remote file appeared → complete
    run_s: float             # the whole run or command
    wire_bytes: int = 0      # proxy bytes up during the window

    @property
    def mb_s(self) -> float | None:
        return mb_s(self.sealed, self.window_s) if self.ok and self.window_s else None

    def describe(self) -> str:
        if self.ok:
            rate = self.mb_s
            return f"{rate:8.1f} MB/s" if rate is not None else "done (upload window not seen)"
        return f"FAILED after {self.run_s:.0f} s, {self.held / MB:.1f} of " \
               f"{self.sealed / MB:.1f} MB at the office: {self.problem}"

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "problem": self.problem, "sealed_bytes": self.sealed,
                "office_bytes": self.held, "mb_s": self.mb_s,
                "window_s": None if self.window_s is None else round(self.window_s, 3),
                "run_s": round(self.run_s, 3)}


def summary_problem(summary: Summary) -> str:
    """'' if the run finished cleanly, else what went wrong as it says."""
    if summary.stopped is not None:
        return f"stopped: {summary.stopped.get('message')}"
    if summary.failed:
        return f"failed: {summary.failed[0]['reason']}"
    if summary.pending:
        return f"{summary.pending} files still pending"
    return ""


def run_vigbox(box: Box, rec: str, server: OpenSshServer, port: int, folder: str, *,
               stall_s: float, kbps: int = 0, counter: Callable[[], int] = lambda: 0,
               on_stall: Callable[[], None] | None = None) -> Upload:
    """One run_sync (manual, in a thread) that should bring `rec` to the office.

    A run whose bytes at the office stop growing for `stall_s` is abandoned: its stop
    event is set and, through a proxy, `on_stall` breaks the link; a run blocked inside
    paramiko otherwise ends only at its own channel timeout, in the background (each run
    has its own data dir, so a lingering one disturbs no other)."""
    final = office_file(server, folder, rec)
    part = final.with_name(final.name + ".part")
    stop = threading.Event()
    box_out: dict[str, Any] = {}
    app = box.app(server, port, folder, kbps)

    def target() -> None:
        try:
            box_out["summary"] = sync_service.run_sync(app, manual=True, stop=stop)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            box_out["error"] = e

    problem = ""
    thread = threading.Thread(target=target, name="bench-sync", daemon=True)
    with Watch(exists_any(part, final), final.exists, lambda: size_of(part, final),
               counter) as watch:
        began = time.perf_counter()
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
            if watch.stalled_s() > stall_s:
                problem = f"stalled: no byte reached the office for {stall_s:.0f} s " \
                          "(run abandoned)"
            elif time.perf_counter() - began > SYNC_TIMEOUT_S:
                problem = f"took longer than {SYNC_TIMEOUT_S:.0f} s (run abandoned)"
            if problem:
                stop.set()
                if on_stall is not None:
                    on_stall()
                thread.join(5)
                break
        run_s = time.perf_counter() - began
    if not problem:
        if "error" in box_out:
            problem = f"the run raised {box_out['error']!r}"
        else:
            problem = summary_problem(box_out["summary"])
    sealed, _ = box.sealed(rec)
    return Upload(not problem, problem, sealed, size_of(part, final), watch.seconds, run_s,
                  watch.c1 - watch.c0)


def sftp_upload(server: OpenSshServer, sealed: Path, remote: Path, tmp: Path,
                port: int | None = None, counter: Callable[[], int] = lambda: 0) -> Upload:
    """OpenSSH's `sftp -b` putting `sealed` at `remote`."""
    remote.parent.mkdir(parents=True, exist_ok=True)
    batch = tmp / "sftp.batch"
    batch.write_text(f"put {sealed} {remote}\n")
    size = sealed.stat().st_size
    argv = server.sftp_argv(batch, port)
    with Watch(remote.exists, lambda: size_of(remote) >= size, lambda: size_of(remote),
               counter) as watch:
        began = time.perf_counter()
        run_tool(argv, "OpenSSH's sftp put")
        run_s = time.perf_counter() - began
    held = size_of(remote)
    problem = "" if held == size else f"sftp left {held} of {size} bytes"
    return Upload(not problem, problem, size, held, watch.seconds, run_s, watch.c1 - watch.c0)


def clear(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Boxes:
    """Fresh data dirs (one per run, see `run_vigbox`), closed at the end."""

    def __init__(self, root: Path, recipient: str, stack: ExitStack) -> None:
        self.root, self.recipient, self.stack = root, recipient, stack
        self.count = 0

    def new(self) -> Box:
        self.count += 1
        box = Box(self.root / f"box{self.count}", self.recipient)
        self.stack.callback(box.close)
        return box

    def upload(self, film: Path, server: OpenSshServer, port: int, folder: str, *,
               stall_s: float, kbps: int = 0, counter: Callable[[], int] = lambda: 0,
               on_stall: Callable[[], None] | None = None) -> Upload:
        """A new box with one recording of `film`, synced once; the office folder is
        removed afterwards."""
        box = self.new()
        rec = box.add_recording(film)
        try:
            return run_vigbox(box, rec, server, port, folder, stall_s=stall_s, kbps=kbps,
                              counter=counter, on_stall=on_stall)
        finally:
            clear(server.office / folder)


# -- 1. SFTP on loopback -----------------------------------------------------------------

def median_rate(uploads: list[Upload]) -> float | None:
    rates = [u.mb_s for u in uploads if u.mb_s is not None]
    return round(statistics.median(rates), 2) if rates else None


def median_run_rate(uploads: list[Upload]) -> float | None:
    rates = [mb_s(u.sealed, u.run_s) for u in uploads if u.ok]
    return round(statistics.median(rates), 2) if rates else None


def bench_sftp(out: Output, boxes: Boxes, server: OpenSshServer, film: Path, recipient: str,
               fast: Path, tmp: Path, repeats: int, stall_s: float) -> dict[str, Any]:
    # OpenSSH's client sends a file seal() made of the same film (the box's own sealed
    # file lives only in its outbox while it is sent).
    sealed = fast / "sealed-for-sftp.age"
    size = seal(film, sealed, recipients_of([recipient])).size
    ours: list[Upload] = []
    theirs: list[Upload] = []
    for n in range(repeats):
        if not ours or ours[-1].ok:   # a failure is not repeated: it costs a stall each time
            ours.append(boxes.upload(film, server, server.port, f"loop{n}", stall_s=stall_s))
        theirs.append(sftp_upload(server, sealed, server.office / "sftp" / f"{n}.age", tmp))
        clear(server.office / "sftp")
    ours_rate, theirs_rate = median_rate(ours), median_rate(theirs)
    ratio = round(ours_rate / theirs_rate, 3) if ours_rate and theirs_rate else None
    result = {
        "sealed_bytes": size, "repeats": repeats,
        "vigbox_mb_s": ours_rate, "vigbox_whole_run_mb_s": median_run_rate(ours),
        "vigbox_runs": [u.to_json() for u in ours],
        "sftp_mb_s": theirs_rate, "sftp_whole_command_mb_s": median_run_rate(theirs),
        "sftp_runs": [u.to_json() for u in theirs],
        "ratio_vigbox_to_sftp": ratio,
    }
    out.line(f"\n1. SFTP upload on loopback, {size / MB:.1f} MB sealed film "
             f"(median of {repeats}; upload window: file appears at the office → complete)")
    if ours_rate is not None:
        out.line(f"   vigbox sync          {ours_rate:8.1f} MB/s   (whole run, with sealing, "
                 f"login and manifest: {result['vigbox_whole_run_mb_s']:.1f} MB/s)")
    for u in ours:
        if not u.ok:
            out.problem(f"vigbox sync on loopback: {u.describe()}")
            out.line(f"   vigbox sync          {u.describe()}")
    if theirs_rate is not None:
        out.line(f"   OpenSSH sftp put     {theirs_rate:8.1f} MB/s   (whole command, with "
                 f"login: {result['sftp_whole_command_mb_s']:.1f} MB/s)")
    out.line(f"   ratio vigbox/sftp    {ratio if ratio is not None else 'n/a':>8}")
    sealed.unlink()
    return result


# -- 2. Encryption -----------------------------------------------------------------------

def bench_seal(out: Output, film: Path, recipient: str, fast_dir: Path, disk_dir: Path,
               repeats: int) -> dict[str, Any]:
    """seal() vs `age` on the same film."""
    age = age_binary()
    keys = recipients_of([recipient])
    size = film.stat().st_size
    sha256_of(film)   # in the page cache for both
    ours: list[float] = []
    theirs: list[float] = []
    ours_out = fast_dir / "sealed-by-seal.age"
    for _ in range(repeats):
        ours_out.unlink(missing_ok=True)
        began = time.perf_counter()
        sealed = seal(film, ours_out, keys)
        ours.append(time.perf_counter() - began)
        target = fast_dir / "sealed-by-age.age"
        began = time.perf_counter()
        run_tool([str(age), "-r", recipient, "-o", str(target), str(film)], "age")
        theirs.append(time.perf_counter() - began)
        # Not byte for byte the same size: rage (pyrage) adds a random "grease" stanza
        # of up to a few hundred bytes to the header; the payload is the same.
        if abs(target.stat().st_size - sealed.size) > HEADER_SLACK:
            raise BenchError(f"age wrote {target.stat().st_size} bytes, seal() {sealed.size}")
        target.unlink()
    ours_out.unlink()
    on_disk = disk_dir / "sealed-on-disk.age"
    began = time.perf_counter()
    seal(film, on_disk, keys)
    disk_s = time.perf_counter() - began
    on_disk.unlink()
    ours_rate = statistics.median(mb_s(size, s) for s in ours)
    theirs_rate = statistics.median(mb_s(size, s) for s in theirs)
    result = {"plain_bytes": size, "repeats": repeats, "seal_mb_s": ours_rate,
              "seal_runs_mb_s": [mb_s(size, s) for s in ours], "age_mb_s": theirs_rate,
              "age_runs_mb_s": [mb_s(size, s) for s in theirs],
              "ratio_seal_to_age": round(ours_rate / theirs_rate, 3),
              "seal_to_disk_with_fsync_mb_s": mb_s(size, disk_s)}
    out.line(f"\n2. Encryption of the {size / MB:.1f} MB film (median of {repeats}; output "
             f"on tmpfs)")
    out.line(f"   seal() (pyrage, two sha256) {ours_rate:8.1f} MB/s   (into a folder on disk, "
             f"with its fsync: {result['seal_to_disk_with_fsync_mb_s']:.1f} MB/s)")
    out.line(f"   age -r KEY -o OUT IN        {theirs_rate:8.1f} MB/s")
    out.line(f"   ratio seal/age              {result['ratio_seal_to_age']:8.3f}")
    return result


# -- 3. Capped links ---------------------------------------------------------------------

def bench_caps(out: Output, boxes: Boxes, server: OpenSshServer, film: Path, recipient: str,
               tmp: Path, cap: int, stall_s: float) -> dict[str, Any]:
    sealed = tmp / "cap-film.age"
    seal(film, sealed, recipients_of([recipient]))
    size = sealed.stat().st_size
    with CuttingProxy("127.0.0.1", server.port) as proxy:
        proxy.rate_limit(cap)

        def counter() -> int:
            return proxy.bytes_up

        def break_link() -> None:
            proxy.cut_after(0)
            time.sleep(SETTLE_S)
            proxy.heal()

        ours = boxes.upload(film, server, proxy.port, "capped", stall_s=stall_s,
                            counter=counter, on_stall=break_link)
        theirs = sftp_upload(server, sealed, server.office / "sftp-capped" / "f.age", tmp,
                             proxy.port, counter)
        clear(server.office / "sftp-capped")
    kbps = cap // 1000
    own = boxes.upload(film, server, server.port, "own-cap", stall_s=stall_s, kbps=kbps)
    sealed.unlink()

    def fraction(u: Upload, rate: int) -> float | None:
        return round(u.sealed / u.window_s / rate, 3) if u.ok and u.window_s else None

    result = {
        "sealed_bytes": size, "proxy_cap_bytes_s": cap,
        "vigbox_through_proxy_cap": ours.to_json(),
        "vigbox_fraction_of_proxy_cap": fraction(ours, cap),
        "vigbox_wire_fraction_of_proxy_cap": (
            round(ours.wire_bytes / ours.window_s / cap, 3) if ours.ok and ours.window_s
            else None),
        "sftp_through_proxy_cap": theirs.to_json(),
        "sftp_fraction_of_proxy_cap": fraction(theirs, cap),
        "own_cap_bandwidth_kbps": kbps,
        "vigbox_own_cap": own.to_json(),
        "vigbox_fraction_of_own_cap": fraction(own, kbps * 1000),
    }
    out.line(f"\n3. Capped link, {size / MB:.1f} MB sealed film, cap {cap / MB:.2f} MB/s")
    if ours.ok:
        out.line(f"   proxy cap:  vigbox {ours.mb_s:6.2f} MB/s = "
                 f"{result['vigbox_fraction_of_proxy_cap']:.3f} of the cap (file bytes; wire "
                 f"bytes {result['vigbox_wire_fraction_of_proxy_cap']:.3f})")
    else:
        out.line(f"   proxy cap:  vigbox {ours.describe()}")
        out.problem(f"vigbox sync through a {cap / MB:.0f} MB/s link: {ours.describe()}")
    out.line(f"               sftp   {theirs.describe().strip()} = "
             f"{result['sftp_fraction_of_proxy_cap']} of the cap")
    if own.ok:
        out.line(f"   own cap (sync.bandwidth_kbps = {kbps}, direct link): vigbox "
                 f"{own.mb_s:.2f} MB/s = {result['vigbox_fraction_of_own_cap']:.3f} of it")
    else:
        out.line(f"   own cap (sync.bandwidth_kbps = {kbps}, direct link): vigbox "
                 f"{own.describe()}")
        out.problem(f"vigbox sync capped at {kbps} kB/s: {own.describe()}")
    return result


# -- 4. Cuts -----------------------------------------------------------------------------

def bench_cuts(out: Output, boxes: Boxes, server: OpenSshServer, film: Path,
               sealed_size: int, fractions: tuple[float, ...],
               stall_s: float) -> dict[str, Any]:
    with CuttingProxy("127.0.0.1", server.port) as proxy:
        def break_link() -> None:
            proxy.cut_after(0)
            time.sleep(SETTLE_S)
            proxy.heal()

        # The SSH and SFTP set-up bytes, as the destination's own connect sends them.
        probe = boxes.new()
        dest = open_destination(probe.app(server, proxy.port, "probe").current_config(),
                                probe.catalog.layout)
        if dest is None:
            raise BenchError("no destination was configured")
        before = proxy.bytes_up
        dest.connect()
        dest.close()
        time.sleep(SETTLE_S)
        handshake = proxy.bytes_up - before
        # A clean upload of the same film through the proxy: the baseline.
        before = proxy.bytes_up
        clean = boxes.upload(film, server, proxy.port, "clean", stall_s=stall_s,
                             on_stall=break_link)
        time.sleep(SETTLE_S)
        clean_up = proxy.bytes_up - before
        result: dict[str, Any] = {"sealed_bytes": sealed_size, "handshake_bytes_up": handshake,
                                  "clean_upload": clean.to_json(),
                                  "clean_upload_bytes_up": clean_up, "cuts": {}}
        out.line(f"\n4. Link cut, healed, synced again ({sealed_size / MB:.1f} MB sealed film; "
                 f"SSH set-up {handshake} bytes up; clean upload {clean_up} bytes up)")
        if not clean.ok:
            out.line(f"   skipped: the clean upload through the proxy {clean.describe()}")
            out.problem(f"vigbox sync through the proxy (clean baseline): {clean.describe()}")
            result["skipped"] = "the clean upload did not complete"
            return result
        for fraction in fractions:
            label = f"{fraction * 100:g}%"
            folder = f"cut{fraction * 100:g}"
            box = boxes.new()
            rec = box.add_recording(film)
            before = proxy.bytes_up
            cut_at = handshake + int(fraction * sealed_size)
            proxy.cut_after(cut_at)
            first = run_vigbox(box, rec, server, proxy.port, folder, stall_s=stall_s,
                               on_stall=break_link)
            time.sleep(SETTLE_S)
            first_up = proxy.bytes_up - before
            proxy.heal()
            cut: dict[str, Any] = {"cut_after_bytes_up": cut_at, "first_run": first.to_json(),
                                   "first_run_bytes_up": first_up,
                                   "office_held_after_cut": first.held}
            result["cuts"][label] = cut
            if first.ok:
                out.line(f"   cut at {label}: the run did not fail ({first_up} bytes up)")
                out.problem(f"a cut at {label} did not fail the sync run")
                continue
            before = proxy.bytes_up
            second = run_vigbox(box, rec, server, proxy.port, folder, stall_s=stall_s,
                                on_stall=break_link)
            time.sleep(SETTLE_S)
            second_up = proxy.bytes_up - before
            cut.update({"second_run": second.to_json(), "second_run_bytes_up": second_up})
            if not second.ok:
                out.line(f"   cut at {label}: the rerun {second.describe()}")
                out.problem(f"the rerun after a cut at {label}: {second.describe()}")
                clear(server.office / folder)
                continue
            final = office_file(server, folder, rec)
            size, digest = box.sealed(rec)
            if final.stat().st_size != size or sha256_of(final) != digest:
                out.problem(f"the office copy after a cut at {label} differs from what was "
                            "sealed")
            resent = first_up + second_up - clean_up
            cut.update({"resent_bytes": resent,
                        "resent_percent_of_file": round(100 * resent / sealed_size, 3),
                        "first_run_problem": first.problem})
            out.line(f"   cut at {label:>4}: office held {first.held} bytes "
                     f"({100 * first.held / sealed_size:.1f} %); rerun sent {second_up} bytes "
                     f"up; re-sent {resent} bytes = {cut['resent_percent_of_file']:.3f} % of "
                     "the file")
            clear(server.office / folder)
    return result


# -- 5. Memory ---------------------------------------------------------------------------

def child_env(config_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGBOX_")}
    env["VIGBOX_CONFIG"] = str(config_file)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("NOTIFY_SOCKET", None)
    return env


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields (VmRSS, VmHWM...) of /proc/PID/status; {} once the process is gone
    (a zombie has no Vm* lines either)."""
    fields: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if value.strip().endswith(" kB"):
            fields[name] = int(value.split()[0])
    return fields


@dataclasses.dataclass
class ChildPeak:
    """A child's exit status, its peak RSS (the highest VmHWM sampled), the peak of the
    VmRSS samples in each phase, its output, and why it was killed (if it was)."""

    returncode: int
    peak_kb: int
    phase_peak_kb: dict[str, int]
    seconds: float
    stdout: str
    stderr: str
    killed: str


def run_measured(argv: list[str], env: dict[str, str] | None, tmp: Path,
                 phase: Callable[[], str] = lambda: "run",
                 abandon: Callable[[], str] = lambda: "",
                 timeout: float = SYNC_TIMEOUT_S) -> ChildPeak:
    """Run a child to its end, sampling /proc/PID/status every RSS_POLL_S; killed when
    `abandon()` gives a reason or after `timeout`.

    VmHWM (the new program's own high-water mark) and not wait4's ru_maxrss: the kernel
    carries the forking parent's RSS (this process's) across exec into ru_maxrss."""
    with tempfile.TemporaryFile(dir=tmp) as stdout, tempfile.TemporaryFile(dir=tmp) as stderr:
        began = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                env=env, cwd=ROOT)
        peaks: dict[str, int] = {}
        hwm = 0
        killed = ""
        try:
            deadline = time.monotonic() + timeout
            while proc.poll() is None:
                status = proc_status(proc.pid)
                hwm = max(hwm, status.get("VmHWM", 0))
                if "VmRSS" in status:
                    name = phase()
                    peaks[name] = max(peaks.get(name, 0), status["VmRSS"])
                if not killed:
                    killed = abandon() or (f"took longer than {timeout:.0f} s"
                                           if time.monotonic() > deadline else "")
                    if killed:
                        proc.kill()
                time.sleep(RSS_POLL_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        seconds = time.perf_counter() - began
        stdout.seek(0)
        stderr.seek(0)
        return ChildPeak(proc.returncode, hwm, peaks, seconds,
                         stdout.read().decode(errors="replace"),
                         stderr.read().decode(errors="replace"), killed)


def write_config(path: Path, data: Path, server: OpenSshServer, folder: str,
                 recipient: str) -> Path:
    """A config file as the box's would be: the data dir, simulated devices, [sync]."""
    path.write_text(f"""data_dir = "{data}"
log_level = "info"
[camera]
backend = "synthetic"
[microphone]
backend = "synthetic"
[gpio]
backend = "mock"
[recording]
reserve_mb = 16
low_disk_mb = 16
[sync]
destination = "sftp://{server.user}@127.0.0.1:{server.port}{server.office}/{folder}"
recipients = ["{recipient}"]
identity = "{server.client_key}"
known_hosts = "{server.known_hosts_for(server.port)}"
device_id = "{DEVICE}"
send_recordings = true
""")
    return path


def vigbox(env: dict[str, str], *args: str, timeout: float = TOOL_TIMEOUT_S) -> Any:
    done = run_tool([sys.executable, "-m", "appliance", *args], f"vigbox {args[0]}",
                    timeout, env)
    return json.loads(done.stdout)


def sync_child(env: dict[str, str], tmp: Path, data: Path, server: OpenSshServer,
               folder: str, rec_id: str, plain_size: int, stall_s: float) -> dict[str, Any]:
    """`python -m appliance sync --json` sending one recording, measured; killed if the
    bytes at the office stop growing for `stall_s`."""
    final = office_file(server, folder, rec_id)
    part = final.with_name(final.name + ".part")
    outbox = data / "outbox"

    def phase() -> str:
        if part.exists() or final.exists():
            return "uploading"
        if outbox.is_dir() and any(outbox.iterdir()):
            return "sealing"
        return "starting"

    with Watch(exists_any(part, final), final.exists, lambda: size_of(part, final)) as watch:
        def abandon() -> str:
            if watch.stalled_s() > stall_s:
                return f"stalled: no byte reached the office for {stall_s:.0f} s (killed)"
            return ""

        peak = run_measured([sys.executable, "-m", "appliance", "sync", "--json"], env, tmp,
                            phase, abandon)
    problem = peak.killed
    if not problem and peak.returncode != 0:
        problem = f"exit status {peak.returncode}: {peak.stderr.strip()[-500:]}"
    if not problem:
        summary = json.loads(peak.stdout)
        if summary.get("failed") or summary.get("stopped") or summary.get("pending"):
            problem = f"did not finish cleanly: {summary.get('failed') or summary.get('stopped')}"
    held = size_of(part, final)
    window = watch.seconds
    return {"ok": not problem, "problem": problem, "plain_bytes": plain_size,
            "office_bytes": held, "peak_rss_mb": round(peak.peak_kb / 1024, 1),
            "peak_rss_by_phase_mb": {k: round(v / 1024, 1) for k, v in peak.phase_peak_kb.items()},
            "upload_mb_s": mb_s(held, window) if not problem else None,
            "run_s": round(peak.seconds, 2)}


def seal_child(tmp: Path, src: Path, recipient: str) -> float:
    """Peak RSS (MB) of a child that only seals `src` with seal()."""
    code = ("import sys; from pathlib import Path; "
            "from appliance.sync.seal import recipients_of, seal; "
            "seal(Path(sys.argv[1]), Path(sys.argv[2]), recipients_of([sys.argv[3]]))")
    out = tmp / "seal-child.age"
    peak = run_measured([sys.executable, "-c", code, str(src), str(out), recipient],
                        child_env(Path(os.devnull)), tmp)
    out.unlink(missing_ok=True)
    if peak.returncode != 0:
        raise BenchError(f"sealing in a child failed: {peak.stderr[-2000:]}")
    return round(peak.peak_kb / 1024, 1)


def cli_box(tmp: Path, name: str, server: OpenSshServer, recipient: str
            ) -> tuple[Path, dict[str, str]]:
    """A data dir and config file for `vigbox` children, with case CASE (filming)."""
    data = tmp / f"{name}-data"
    data.mkdir()
    env = child_env(write_config(tmp / f"{name}.toml", data, server, name, recipient))
    vigbox(env, "cases", "add", CASE, "--consent", "filming", "--json")
    return data, env


def import_and_sync(tmp: Path, name: str, server: OpenSshServer, recipient: str, size: int,
                    stall_s: float) -> tuple[dict[str, Any], Path]:
    """A film of `size` made, imported with `vigbox import` into a box of its own and sent
    by `vigbox sync`; the measures and the recording's film."""
    data, env = cli_box(tmp, name, server, recipient)
    source = make_film(tmp / f"{name}.mp4", size)
    began = time.perf_counter()
    rec = vigbox(env, "import", str(source), "--case", CASE, "--json", timeout=900)["id"]
    import_s = time.perf_counter() - began
    source.unlink()
    film = next((data / "recordings" / rec).glob("*.mp4"))
    measured = sync_child(env, tmp, data, server, name, rec, film.stat().st_size, stall_s)
    measured["import_s"] = round(import_s, 1)
    clear(server.office / name)
    return measured, film


def bench_memory(out: Output, tmp: Path, server: OpenSshServer, recipient: str,
                 size: int, small_size: int, stall_s: float) -> dict[str, Any]:
    baseline, small_film = import_and_sync(tmp, "small", server, recipient, small_size,
                                           stall_s)
    small_film.unlink()
    loaded, film = import_and_sync(tmp, "big", server, recipient, size, stall_s)
    seal_big = seal_child(tmp, film, recipient)
    tiny = tmp / "tiny.bin"
    tiny.write_bytes(os.urandom(1000))
    seal_tiny = seal_child(tmp, tiny, recipient)
    age_target = tmp / "age-child.age"
    age_peak = run_measured([str(age_binary()), "-r", recipient, "-o", str(age_target),
                             str(film)], None, tmp)
    age_target.unlink(missing_ok=True)
    growth = (loaded["peak_rss_mb"] - baseline["peak_rss_mb"]) / \
        max(1e-9, (loaded["plain_bytes"] - baseline["plain_bytes"]) / MB)
    result = {"small_recording": baseline, "big_recording": loaded,
              "peak_rss_growth_mb_per_file_mb": round(growth, 4),
              "seal_child_peak_rss_mb": seal_big, "seal_child_1kB_peak_rss_mb": seal_tiny,
              "age_peak_rss_mb": round(age_peak.peak_kb / 1024, 1)}
    out.line("\n5. Memory of `vigbox sync` (a child process) sending a whole recording")
    for label, r in (("small (baseline)", baseline), ("big", loaded)):
        phases = ", ".join(f"{k} {v:.0f}" for k, v in r["peak_rss_by_phase_mb"].items())
        sent = (f"upload {r['upload_mb_s']:.1f} MB/s" if r["ok"] else
                f"FAILED, {r['office_bytes'] / MB:.1f} MB at the office: {r['problem']}")
        out.line(f"   {label:<17} {r['plain_bytes'] / MB:7.1f} MB: peak RSS "
                 f"{r['peak_rss_mb']:6.1f} MB (by phase: {phases}); {sent}; run "
                 f"{r['run_s']:.1f} s")
        if not r["ok"]:
            out.problem(f"`vigbox sync` of a {r['plain_bytes'] / MB:.0f} MB recording: "
                        f"{r['problem']} ({r['office_bytes'] / MB:.1f} MB at the office)")
    out.line(f"   growth: {growth:.4f} MB of peak RSS per MB of recording")
    out.line(f"   seal() alone on the big film: peak RSS {seal_big:.1f} MB (a 1 kB file: "
             f"{seal_tiny:.1f} MB); age: {result['age_peak_rss_mb']:.1f} MB")
    return result


# -- main --------------------------------------------------------------------------------

def versions() -> dict[str, str]:
    from importlib.metadata import version
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, timeout=30)
    age = subprocess.run([str(age_binary()), "--version"], capture_output=True, text=True,
                         timeout=30)
    return {"openssh": (ssh.stderr or ssh.stdout).strip().split(",")[0],
            "paramiko": version("paramiko"), "pyrage": version("pyrage"),
            "age": age.stdout.strip(),
            "python": sys.version.split()[0], "cpus": str(os.cpu_count())}


def check_tools() -> None:
    """Every binary the run needs, or pytest's skip naming the missing one."""
    require_binary("sshd", "/usr/sbin/sshd")
    require_binary("sftp", "/usr/bin/sftp")
    require_binary("ssh-keygen", "/usr/bin/ssh-keygen")
    age_binary()
    require_binary("ffmpeg")


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Deadline raised in the main thread after `seconds` (the with-blocks clean up)."""
    def expired(_sig: int, _frame: FrameType | None) -> None:
        raise Deadline(f"the benchmark took longer than {seconds:.0f} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(max(1, int(seconds)))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke check: small files, one repeat (under 2 minutes)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--file-mb", type=float, default=None,
                        help="film for throughput and cuts (default 200; quick 16)")
    parser.add_argument("--size-mb", type=float, default=None,
                        help="recording for the memory figure (default 500; quick 50)")
    parser.add_argument("--cap-mb-s", type=float, default=2.0, help="the capped link's rate")
    parser.add_argument("--cap-seconds", type=float, default=None,
                        help="seconds of upload at the cap (default 10; quick 3)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3; quick 1")
    parser.add_argument("--stall-s", type=float, default=None,
                        help="abandon an upload whose bytes at the office stop growing for "
                             "this long (default 15; quick 5)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="stop after this many seconds (default 1500; quick 300)")
    parser.add_argument("--verbose", action="store_true", help="the product's log on stderr")
    args = parser.parse_args()
    # The product logs each failure it reports in its Summary; the bench prints those.
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    else:
        logging.getLogger().addHandler(logging.NullHandler())
    quick = args.quick
    file_size = int((args.file_mb or (16 if quick else 200)) * MB)
    big_size = int((args.size_mb or (50 if quick else 500)) * MB)
    small_size = min(big_size // 10, 10 * MB)
    cap = int(args.cap_mb_s * MB)
    cap_size = int(cap * (args.cap_seconds or (3 if quick else 10)))
    repeats = args.repeats or (1 if quick else 3)
    stall_s = args.stall_s or (5.0 if quick else 15.0)
    out = Output(args.json)
    try:
        check_tools()
    except pytest.skip.Exception as e:
        out.line(f"cannot run: {e.msg}")
        return 2
    began = time.perf_counter()
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    result: dict[str, Any] = {"quick": quick, "versions": versions()}
    fast_root = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    try:
        with deadline(args.timeout or (300 if quick else 1500)), ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="vigbox-bench-sync-")))
            fast = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="vigbox-bench-sync-", dir=fast_root)))
            out.line(f"vigbox sync benchmark ({'quick' if quick else 'full'}): "
                     + ", ".join(f"{k} {v}" for k, v in result["versions"].items()))
            film = make_film(tmp / "film.mp4", file_size)
            cap_film = make_film(tmp / "cap-film.mp4", cap_size)
            result["films"] = {"throughput_bytes": film.stat().st_size,
                               "capped_bytes": cap_film.stat().st_size}
            server = stack.enter_context(OpenSshServer(tmp / "sshd"))
            boxes = Boxes(tmp, recipient, stack)
            result["sftp_loopback"] = bench_sftp(out, boxes, server, film, recipient, fast,
                                                 tmp, repeats, stall_s)
            result["encryption"] = bench_seal(out, film, recipient, fast, tmp, repeats)
            result["capped_link"] = bench_caps(out, boxes, server, cap_film, recipient, tmp,
                                               cap, stall_s)
            result["cut_resume"] = bench_cuts(out, boxes, server, film,
                                              result["sftp_loopback"]["sealed_bytes"],
                                              (0.5, 0.99), stall_s)
            film.unlink()
            result["memory"] = bench_memory(out, tmp, server, recipient, big_size, small_size,
                                            stall_s)
            result["problems"] = out.problems
            if out.problems:
                out.line("\nproblems seen in the product:")
                for problem in out.problems:
                    out.line(f"   - {problem}")
    except (BenchError, Deadline) as e:
        out.line(f"\nbenchmark failed: {e}")
        return 1
    except pytest.skip.Exception as e:
        out.line(f"cannot run: {e.msg}")
        return 2
    result["seconds"] = round(time.perf_counter() - began, 1)
    out.line(f"\n(took {result['seconds']:.0f} s)")
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
