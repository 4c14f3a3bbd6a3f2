"""The box's services as child processes, run as systemd runs them from systemd/*.service.

The same `vigbox` commands and environment as the units (a test holds the two to each
other), each in its own session with its unit's niceness and its log in a file; a
service that dies is started again after its unit's RestartSec (Restart=always), sync
runs as a one-shot every few minutes like vigbox-sync.timer, and on stop the services
get SIGTERM in an order that lets capture finish a recording last. This is how the demo
runs the whole appliance on any Linux machine, and how the tests and bench/appliance.py
run it as the box would.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from appliance.errors import ApplianceError
from appliance.ffmpeg_tool import priority_prefix, set_autogroup_nice

log = logging.getLogger(__name__)
TICK_S = 0.2


@dataclass(frozen=True)
class Unit:
    """One service as its systemd unit describes it."""

    name: str                 # vigbox-<name>.service
    args: tuple[str, ...]     # the `vigbox` command of its ExecStart=
    nice: int                 # Nice=
    restart_s: float | None   # RestartSec= with Restart=always; None: a one-shot
    stop_timeout_s: float     # TimeoutStopSec=


UNITS = {u.name: u for u in (
    Unit("capture", ("capture",), -5, 2.0, 120.0),
    Unit("encode", ("encode-worker",), 10, 5.0, 20.0),
    Unit("web", ("web",), 5, 2.0, 20.0),
    Unit("sync", ("sync",), 15, None, 30.0),
)}
# Environment= of every unit besides VIGBOX_DATA_DIR.
ENVIRONMENT = {"MALLOC_ARENA_MAX": "2"}
# Stopped first to last: nothing new reaches capture while it finishes its recording.
STOP_ORDER = ("sync", "web", "encode", "capture")


def unit_env(data_dir: Path, config: Path | None,
             base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a unit gives its service (the caller's, plus the unit's)."""
    env = dict(os.environ if base is None else base)
    env.update(ENVIRONMENT, VIGBOX_DATA_DIR=str(data_dir))
    if config is not None:
        env["VIGBOX_CONFIG"] = str(config)
    return env


def unit_argv(unit: Unit, python: str = sys.executable) -> list[str]:
    """The service's command line: the unit's `vigbox` command, niced as the unit says
    (a nicer-than-us value needs root, so it is skipped otherwise)."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    target = max(unit.nice, own) if os.geteuid() != 0 else unit.nice
    prefix: tuple[str, ...] = ()
    if target < own:
        prefix = ("nice", "-n", str(target - own))
    elif target > own:
        prefix = priority_prefix(own, target)[0]
    return [*prefix, python, "-m", "appliance", *unit.args]


class Service:
    """One running (or stopped) service."""

    def __init__(self, unit: Unit, log_path: Path) -> None:
        self.unit = unit
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.last_exit: int | None = None
        self.exit_seen = False
        self.restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None


class Supervisor:
    """Starts, watches, restarts and stops the box's services (see the module doc)."""

    def __init__(self, data_dir: Path, *, config: Path | None = None,
                 log_dir: Path | None = None, python: str = sys.executable,
                 sync_every_s: float | None = None,
                 on_event: Callable[[str], None] | None = None) -> None:
        self.data_dir = data_dir
        self.env = unit_env(data_dir, config)
        self.python = python
        self.sync_every_s = sync_every_s
        self.on_event = on_event or (lambda text: log.info("%s", text))
        log_dir = log_dir or data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.services = {name: Service(u, log_dir / f"{name}.log") for name, u in UNITS.items()}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._next_sync: float | None = None
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self, names: Iterable[str] = ("capture", "encode", "web")) -> None:
        """Start these services and watch them (restarts, the sync timer)."""
        for name in names:
            self._spawn(self.services[name])
        if self.sync_every_s:
            self._next_sync = time.monotonic() + self.sync_every_s
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="supervisor",
                                             daemon=True)
            self._watcher.start()

    def run_sync(self) -> bool:
        """Start a sync run now, as the timer would; False if one is running."""
        service = self.services["sync"]
        with self._lock:
            if service.pid is not None or self._stopping.is_set():
                return False
            self._spawn(service)
        return True

    def wait_sync(self, timeout: float) -> int:
        """Wait for the running sync to end; its exit status."""
        proc = self.services["sync"].proc
        if proc is None:
            raise ApplianceError("no sync run was started")
        return proc.wait(timeout)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send a signal to a running service (a crash, for tests); its pid."""
        pid = self.services[name].pid
        if pid is None:
            raise ApplianceError(f"{name} is not running")
        os.kill(pid, sig)
        return pid

    def stop(self) -> None:
        """SIGTERM every service in STOP_ORDER and wait for each (SIGKILL after its
        unit's TimeoutStopSec), as systemd does at shutdown."""
        with self._lock:   # no sync is started after this (run_sync checks under the lock)
            self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(5)
        for name in STOP_ORDER:
            service = self.services[name]
            proc = service.proc
            if proc is None or proc.poll() is not None:
                continue
            self.on_event(f"stopping {name}")
            proc.terminate()
            try:
                proc.wait(service.unit.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.on_event(f"{name} did not stop in {service.unit.stop_timeout_s:g} s: "
                              "killed")
                proc.kill()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:   # stuck in the kernel: the rest go on
                    self.on_event(f"{name} did not end after SIGKILL (pid {proc.pid})")
            service.last_exit = proc.returncode

    def _spawn(self, service: Service) -> None:
        argv = [*_parent_death_prefix(), *unit_argv(service.unit, self.python)]
        out: IO[bytes]
        with service.log_path.open("ab") as out:
            # Its own session: a Ctrl-C at the terminal reaches the supervisor only, which
            # then stops the services in order.
            service.proc = subprocess.Popen(argv, env=self.env, cwd=self.data_dir,
                                            stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT,
                                            start_new_session=True)
        set_autogroup_nice(service.proc.pid, service.unit.nice)
        service.starts += 1
        service.exit_seen = False
        service.restart_at = None
        log.debug("started %s (pid %d)", service.unit.name, service.proc.pid)

    def _watch(self) -> None:
        while not self._stopping.wait(TICK_S):
            now = time.monotonic()
            with self._lock:
                for service in self.services.values():
                    self._check(service, now)
                if self._next_sync is not None and now >= self._next_sync:
                    self._next_sync = now + (self.sync_every_s or 0)
                    if self.services["sync"].pid is None:
                        self._spawn(self.services["sync"])

    def _check(self, service: Service, now: float) -> None:
        proc, unit = service.proc, service.unit
        if proc is None or proc.poll() is None:
            return
        if not service.exit_seen:
            service.exit_seen = True
            service.last_exit = proc.returncode
            if unit.restart_s is None:
                if proc.returncode:
                    self.on_event(f"{unit.name} run failed (exit {proc.returncode}); see "
                                  f"{service.log_path}")
                return
            self.on_event(f"{unit.name} stopped ({_exit_text(proc.returncode)}); starting it "
                          f"again in {unit.restart_s:g} s")
            service.restart_at = now + unit.restart_s
        if service.restart_at is not None and now >= service.restart_at:
            self._spawn(service)
            self.on_event(f"{unit.name} started again")


def _parent_death_prefix() -> list[str]:
    """Each service gets SIGTERM if the supervisor dies without stopping it (killed, or
    its terminal closed): no orphaned recorder or open web UI is left behind. util-linux's
    setpriv sets the kernel's parent-death signal and execs the service (a preexec_fn
    would do it too, but is unsafe in a process with threads)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []


def _exit_text(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"
