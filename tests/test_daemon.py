"""The capture daemon: button through gpiozero's MockFactory, LED, control socket, systemd."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.capture.control import request
from appliance.capture.daemon import CaptureDaemon, State
from appliance.capture.devices import make_camera, make_microphone, new_marker
from appliance.capture.gpio import make_pin_factory
from appliance.capture.mic_synthetic import SyntheticMicrophone
from appliance.capture.sd_notify import Notifier
from appliance.capture.sources import ChunkCallback, ErrorCallback, Microphone
from appliance.capture.status_light import Light
from appliance.catalog import Catalog
from appliance.config import Config
from appliance.errors import (
    ControlError,
    DaemonBusyError,
    DaemonFailedError,
    DaemonNotRunningError,
    DaemonRequestError,
)
from tests.processes import DaemonProcess

TIMEOUT_S = 30


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    """Poll a condition with a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.path = path
        self.messages: list[str] = []

    def collect(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.messages

    def close(self) -> None:
        self.sock.close()


@dataclasses.dataclass
class Running:
    """A daemon running on a thread, with its mock pins and systemd socket."""

    daemon: CaptureDaemon
    factory: Any
    notify: NotifySocket
    shutdowns: list[list[str]]
    socket_path: Path

    def press(self, hold_s: float = 0.05) -> None:
        pin = self.factory.pin(self.daemon.config.gpio.button_pin)
        pin.drive_low()
        time.sleep(hold_s)  # the length of the press is the input being tested
        pin.drive_high()

    def ctl(self, cmd: str, **args: Any) -> dict[str, Any]:
        return request(self.socket_path, cmd, timeout=TIMEOUT_S, **args)


@pytest.fixture
def daemon_config(config: Config) -> Config:
    return dataclasses.replace(config, gpio=dataclasses.replace(
        config.gpio, hold_stop_s=0.4, hold_shutdown_s=1.0, bounce_time_s=0.0))


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[[Config], Running]]:
    started: list[tuple[Running, threading.Event, threading.Thread, Catalog]] = []

    def start(cfg: Config, *, recover: Any = None, wait_ready: bool = True,
              mic: Microphone | None = None) -> Running:
        factory = make_pin_factory("mock")
        notify = NotifySocket(tmp_path / f"notify{len(started)}.sock")
        shutdowns: list[list[str]] = []
        marker = new_marker()
        catalog = Catalog(cfg.data_path)
        daemon = CaptureDaemon(cfg, catalog, camera=make_camera(cfg, marker),
                               mic=mic or make_microphone(cfg, marker), pin_factory=factory,
                               notifier=Notifier(str(notify.path)),
                               run_command=shutdowns.append, recover=recover)
        stop = threading.Event()
        thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
        thread.start()
        running = Running(daemon, factory, notify, shutdowns, cfg.socket)
        started.append((running, stop, thread, catalog))
        wait_until(lambda: any("READY=1" in m for m in notify.collect()), "READY=1")
        # READY=1 goes before recovery; the box takes presses once recovery is done.
        if wait_ready:
            wait_until(lambda: daemon.state is not State.STARTING, "recovery at start")
        return running

    yield start
    for running, stop, thread, catalog in started:
        stop.set()
        thread.join(TIMEOUT_S)
        assert not thread.is_alive(), "the daemon did not stop"
        running.notify.close()
        running.factory.close()
        catalog.close()


@pytest.mark.slow
def test_button_starts_marks_and_stops(daemon_config: Config, start_daemon: Any) -> None:
    box: Running = start_daemon(daemon_config)
    daemon = box.daemon
    assert daemon.state is State.READY and daemon.light.state is Light.READY  # type: ignore[union-attr]

    box.press()
    wait_until(lambda: daemon.state is State.RECORDING, "recording")
    assert daemon.light.state is Light.RECORDING  # type: ignore[union-attr]
    wait_until(lambda: (daemon.status()["recording"] or {}).get("elapsed_s", 0) >= 1.0,
               "a second of recording")
    box.press()  # short press while recording: a moment
    wait_until(lambda: len(box.daemon.catalog.moments.list(daemon.last_recording or "")) == 1,
               "the mark")
    box.press(hold_s=0.6)  # hold: stop
    wait_until(lambda: daemon.state is State.READY, "ready again")

    rec = daemon.catalog.recordings.get(daemon.last_recording or "")
    assert rec.status == "ready"
    [moment] = daemon.catalog.moments.list(rec.id)
    assert moment.source == "button"
    assert 0.9 < moment.at_s < (rec.duration_s or 0)
    # The hold fired the stop, not another mark.
    assert len(daemon.catalog.moments.list(rec.id)) == 1
    status = box.notify.collect()
    assert any("STATUS=recording" in m for m in status)
    assert any("STATUS=finalizing" in m for m in status)


@pytest.mark.slow
def test_control_socket_start_mark_stop(daemon_config: Config, start_daemon: Any) -> None:
    box: Running = start_daemon(daemon_config)
    assert box.ctl("status")["state"] == "ready"
    started = box.ctl("start")["recording"]
    assert started["status"] == "recording"
    with pytest.raises(ControlError, match="already recording"):
        box.ctl("start")
    wait_until(lambda: box.ctl("status")["recording"]["frames"] > 15, "frames")
    moment = box.ctl("mark")["moment"]
    assert moment["recording_id"] == started["id"]
    final = box.ctl("stop")["recording"]
    assert final["id"] == started["id"] and final["status"] == "ready"
    assert final["duration_s"] > 0.4
    with pytest.raises(ControlError, match="nothing is being recorded"):
        box.ctl("stop")
    with pytest.raises(ControlError, match="nothing to mark"):
        box.ctl("mark")


def test_control_socket_rejects_garbage(daemon_config: Config, start_daemon: Any) -> None:
    box: Running = start_daemon(daemon_config)
    for line in (b"not json\n", b"[1,2]\n", b'{"cmd": "format-disk"}\n'):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(box.socket_path))
            s.sendall(line)
            reply = json.loads(s.makefile().readline())
        assert reply["ok"] is False and reply["error"]
    assert box.ctl("status")["state"] == "ready"
    assert oct(box.socket_path.stat().st_mode & 0o777) == oct(0o660)


def test_preflight_refusal_shows_error_and_reason(daemon_config: Config,
                                                  start_daemon: Any) -> None:
    cfg = dataclasses.replace(daemon_config, recording=dataclasses.replace(
        daemon_config.recording, reserve_mb=100_000_000))
    box: Running = start_daemon(cfg)
    box.press()
    wait_until(lambda: box.daemon.state is State.ERROR, "the error state")
    assert box.daemon.light.state is Light.ERROR  # type: ignore[union-attr]
    status = box.ctl("status")
    assert "not enough disk space" in status["last_error"]
    with pytest.raises(ControlError, match="not enough disk space"):
        box.ctl("start")
    assert box.daemon.catalog.recordings.list() == []


def test_idle_long_hold_shuts_the_box_down(daemon_config: Config, start_daemon: Any) -> None:
    box: Running = start_daemon(daemon_config)
    box.press(hold_s=0.6)  # between stop and shutdown holds: nothing while idle
    assert box.daemon.state is State.READY
    pin = box.factory.pin(daemon_config.gpio.button_pin)
    pin.drive_low()
    wait_until(lambda: box.shutdowns != [], "the shutdown command", timeout=5)
    pin.drive_high()
    assert box.shutdowns == [["systemctl", "poweroff"]]
    assert box.daemon.state is State.SHUTTING_DOWN
    assert box.daemon.light.state is Light.SHUTDOWN  # type: ignore[union-attr]


@pytest.mark.slow
def test_stopping_the_service_finishes_the_recording(daemon_config: Config,
                                                     start_daemon: Any) -> None:
    box: Running = start_daemon(daemon_config)
    box.ctl("start")
    wait_until(lambda: box.ctl("status")["recording"]["frames"] > 15, "frames")
    rec_id = box.daemon.last_recording
    box.daemon.close()  # what SIGTERM leads to
    rec = box.daemon.catalog.recordings.get(rec_id or "")
    assert rec.status == "ready"
    assert "the capture service was stopped" not in rec.problems


@pytest.mark.slow
def test_capture_and_ctl_commands_end_to_end(vigbox: Any, cli_env: dict[str, str],
                                             data_dir: Path) -> None:
    with DaemonProcess(cli_env, "--simulate") as daemon:
        wait_until(lambda: vigbox("ctl", "status").returncode == 0, "the daemon")
        assert vigbox("ctl", "status", "--json").json()["state"] == "ready"
        start = vigbox("ctl", "start", "--json")
        assert start.returncode == 0, start.stderr
        wait_until(lambda: vigbox("ctl", "status", "--json").json()["recording"]["frames"] > 30,
                   "frames")
        assert vigbox("ctl", "mark", "--json").json()["moment"]["at_s"] > 0
        stop = vigbox("ctl", "stop", "--json")
        assert stop.returncode == 0, stop.stderr
        assert stop.json()["recording"]["status"] == "ready"
        assert Path(stop.json()["recording"]["path"]).exists()
    assert daemon.returncode == 0, daemon.log
    assert not (data_dir / "capture.sock").exists()
    gone = vigbox("ctl", "status")
    assert gone.returncode == 1 and "not running" in gone.stderr


def test_systemd_hears_ready_before_recovery_and_presses_wait_for_it(
        daemon_config: Config, start_daemon: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A long recovery at start must not exceed systemd's start timeout, nor run beside a
    new recording: READY=1 first, recovery in the background, presses refused meanwhile."""
    release = threading.Event()
    started: list[str] = []

    def slow_recovery(catalog: Catalog) -> list[Any]:
        started.append(threading.current_thread().name)
        assert release.wait(TIMEOUT_S), "the test never let recovery finish"
        return []

    box: Running = start_daemon(daemon_config, recover=slow_recovery, wait_ready=False)
    wait_until(lambda: started == ["recovery"], "recovery on its own thread")
    assert box.daemon.state is State.STARTING
    assert box.ctl("status")["state"] == "starting"
    with pytest.raises(DaemonBusyError, match="still starting") as refused:
        box.ctl("start")
    assert refused.value.kind == "busy"
    box.press()  # the button is refused too: nothing is recorded
    wait_until(lambda: any("button: the box is still starting" in r.getMessage()
                           for r in caplog.records), "the press refused")
    assert box.daemon.catalog.recordings.list() == []
    release.set()
    wait_until(lambda: box.daemon.state is State.READY, "ready after recovery")
    assert any("STATUS=ready" in m for m in box.notify.collect())


def test_control_errors_say_what_kind_of_refusal(daemon_config: Config, start_daemon: Any,
                                                 tmp_path: Path) -> None:
    box: Running = start_daemon(daemon_config)
    with pytest.raises(DaemonBusyError) as busy:
        box.ctl("stop")  # nothing is being recorded
    assert busy.value.kind == "busy"
    with pytest.raises(DaemonRequestError) as bad:
        box.ctl("start", case=42)
    assert bad.value.kind == "bad_request"
    with pytest.raises(DaemonRequestError, match="no case"):
        box.ctl("start", case="VIG-0000-404")
    with pytest.raises(DaemonNotRunningError) as gone:
        request(tmp_path / "nobody.sock", "status")
    assert gone.value.kind == "not_running"


# ---- the microphone's level, measured by the daemon that owns the microphone ----------------

def plausible(level: dict[str, Any]) -> bool:
    """A second of the simulated room: quiet noise, perhaps a sync burst; never the floor."""
    return (level["seconds"] == 1.0 and -50 < level["rms_dbfs"] <= level["peak_dbfs"] < -3
            and level.keys() == {"peak_dbfs", "rms_dbfs", "seconds"})


@pytest.mark.slow
def test_an_idle_box_measures_its_microphone_and_still_records_sound(
        daemon_config: Config, start_daemon: Any) -> None:
    box: Running = start_daemon(daemon_config)
    level = box.ctl("level")
    assert plausible(level), level
    assert box.daemon.state is State.READY
    box.ctl("start")  # the listen closed the microphone; the recording opens it again
    wait_until(lambda: box.ctl("status")["recording"]["frames"] > 15, "frames")
    final = box.ctl("stop")["recording"]
    assert final["status"] == "ready" and final["audio"] == "ok", final


@pytest.mark.slow
def test_the_level_is_not_measured_while_recording(daemon_config: Config,
                                                   start_daemon: Any) -> None:
    box: Running = start_daemon(daemon_config)
    box.ctl("start")
    try:
        wait_until(lambda: box.ctl("status")["recording"]["frames"] > 15, "frames")
        with pytest.raises(DaemonBusyError, match="^in use by the recording$") as busy:
            box.ctl("level")
        assert busy.value.kind == "busy"
        assert box.ctl("status")["recording"]["audio"] == "ok", "the recording kept its sound"
    finally:
        final = box.ctl("stop")["recording"]
    assert final["status"] == "ready" and final["problems"] == []


class GatedMicrophone(SyntheticMicrophone):
    """The simulated microphone, whose first start (the level's listen) waits for the test to
    let it go; it notes every start and stop."""

    def __init__(self) -> None:
        super().__init__(sample_rate=48_000, block_ms=20, marker=new_marker())
        self.calls: list[str] = []
        self.listening = threading.Event()
        self.release = threading.Event()

    def start(self, on_chunk: ChunkCallback, on_error: ErrorCallback) -> None:
        self.calls.append("start")
        if len(self.calls) == 1:
            self.listening.set()
            if not self.release.wait(2 * TIMEOUT_S):  # longer than the test waits
                raise AssertionError("the test never let the listen go on")
        super().start(on_chunk, on_error)

    def stop(self) -> None:
        self.calls.append("stop")
        super().stop()


@pytest.mark.slow
def test_a_press_during_a_level_measurement_records_once_the_listen_is_over(
        daemon_config: Config, start_daemon: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A USB microphone is exclusive: the recording waits a second for it, never fails."""
    caplog.set_level(logging.INFO, logger="appliance.capture.daemon_level")
    mic = GatedMicrophone()
    box: Running = start_daemon(daemon_config, mic=mic)
    levels: list[dict[str, Any]] = []
    doctor = threading.Thread(target=lambda: levels.append(box.ctl("level")), daemon=True)
    doctor.start()
    assert mic.listening.wait(TIMEOUT_S), "the daemon never started listening"
    guider = threading.Thread(target=box.press, daemon=True)  # a short press: start
    guider.start()
    try:
        wait_until(lambda: any("a recording waits for the microphone" in r.getMessage()
                               for r in caplog.records), "the press to wait for the listen")
        assert box.daemon.state is State.READY and box.daemon.catalog.recordings.list() == []
    finally:
        mic.release.set()
    doctor.join(TIMEOUT_S)
    guider.join(TIMEOUT_S)
    assert not doctor.is_alive() and not guider.is_alive()
    assert len(levels) == 1 and plausible(levels[0]), levels
    wait_until(lambda: box.daemon.state is State.RECORDING, "the recording")
    assert mic.calls == ["start", "stop", "start"], "the listen ended before the recording"
    wait_until(lambda: box.ctl("status")["recording"]["frames"] > 15, "frames")
    final = box.ctl("stop")["recording"]
    assert final["status"] == "ready" and final["audio"] == "ok", final
    assert box.daemon.last_error is None


def test_a_failing_microphone_fails_the_level_with_its_reason(daemon_config: Config,
                                                              start_daemon: Any) -> None:
    broken = SyntheticMicrophone(sample_rate=48_000, block_ms=20, marker=new_marker(),
                                 fail_after_s=0.1)
    box: Running = start_daemon(daemon_config, mic=broken)
    with pytest.raises(DaemonFailedError, match="injected fault") as failed:
        box.ctl("level")
    assert failed.value.kind == "failed"
    assert box.daemon.state is State.READY and broken._thread is None, "the listen stopped it"


def test_a_box_without_a_microphone_has_no_level(daemon_config: Config,
                                                 start_daemon: Any) -> None:
    silent = dataclasses.replace(daemon_config, microphone=dataclasses.replace(
        daemon_config.microphone, backend="none"))
    box: Running = start_daemon(silent)
    with pytest.raises(DaemonRequestError, match="no microphone") as refused:
        box.ctl("level")
    assert refused.value.kind == "bad_request"
