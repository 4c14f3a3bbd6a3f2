"""The capture daemon: owns the camera, mic, button and LED; one recording at a time.

Everything that changes state (button, control socket, a session ending) goes
through the methods here under one lock; long waits (finalizing) never hold it and
never run on gpiozero's thread. The LED always shows the daemon's state.
"""

from __future__ import annotations

import base64
import enum
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from gpiozero import Factory

from appliance import system_tool
from appliance.capture.button import ButtonGestures
from appliance.capture.control import ControlServer, request_actor
from appliance.capture.daemon_level import LevelMeter
from appliance.capture.preflight import BALLAST_MB, MB, check_filming_consent
from appliance.capture.recover import RecoveryOutcome, recover_all
from appliance.capture.sd_notify import Notifier
from appliance.capture.session import ACTOR as SESSION_ACTOR
from appliance.capture.session import Event, Session
from appliance.capture.sources import Camera, Microphone
from appliance.capture.status_light import Light, StatusLight
from appliance.capture.virtual_button import press
from appliance.catalog import Catalog, Recording
from appliance.config import Config
from appliance.errors import ApplianceError, BusyError, CameraError, InputError, PreflightError
from appliance.fsutil import ensure_ballast, free_bytes

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 300
SHUTDOWN_TIMEOUT_S = 60
RECOVERY_NICE = 10   # recovery yields the CPU to whatever else starts meanwhile


class State(enum.Enum):
    """What the box is doing."""

    STARTING = "starting"
    READY = "ready"
    RECORDING = "recording"
    FINALIZING = "finalizing"
    ERROR = "error"
    SHUTTING_DOWN = "shutting_down"


RunCommand = Callable[[list[str]], None]
Recover = Callable[[Catalog], list[RecoveryOutcome]]


def run_shutdown(argv: list[str]) -> None:
    """Run the configured shutdown command; SystemToolError if it fails."""
    system_tool.run(argv, timeout=SHUTDOWN_TIMEOUT_S, what="the shutdown command",
                    package="systemd")


class CaptureDaemon:
    """The state machine between the button, the control socket and recording sessions."""

    def __init__(self, config: Config, catalog: Catalog, *, camera: Camera,
                 mic: Microphone | None, pin_factory: Factory | None = None,
                 notifier: Notifier | None = None,
                 run_command: RunCommand = run_shutdown,
                 recover: Recover | None = None) -> None:
        self.config = config
        self.catalog = catalog
        self.camera = camera
        self.mic = mic
        self._pin_factory = pin_factory
        self._notifier = notifier or Notifier()
        self._run_command = run_command
        self._recover_all: Recover = recover or (lambda catalog: recover_all(
            catalog, default_fps=config.camera.fps,
            default_sample_rate=config.microphone.sample_rate))
        self._lock = threading.RLock()
        self._state = State.STARTING
        self._session: Session | None = None
        self._warning = False
        self._camera_suspect = False
        self._camera_error: str | None = None
        self._recovered = threading.Event()
        self.last_error: str | None = None
        self.last_recording: str | None = None
        self._case: str | None = None   # recordings started without naming one go here
        self.light: StatusLight | None = None
        self.button: ButtonGestures | None = None
        self.server = ControlServer(config.socket, self.handle_request)
        self.level = LevelMeter(mic, self.status)  # `vigbox doctor` asks the daemon

    # -- lifecycle ----------------------------------------------------------------------

    def setup(self) -> None:
        """Light and button first (the guider sees the box waking), then the camera and the
        socket; recovery then runs in the background (`recover_in_background`) while
        the box says "starting" and refuses presses. A missing camera leaves the daemon
        up, showing the error."""
        gpio = self.config.gpio
        self.light = StatusLight(gpio.led_pin, pin_factory=self._pin_factory)
        self.light.show(Light.FINALIZING)
        self.button = ButtonGestures(
            gpio, is_recording=self.is_recording,
            on_start=lambda at: self._from_button(self.start_recording, at),
            on_mark=lambda at: self._from_button(self.mark, at, source="button"),
            on_stop=lambda: self.request_stop("stopped with the button"),
            on_shutdown=self.shutdown_box, pin_factory=self._pin_factory)
        # Reserved now, so the first press does not wait for it.
        ensure_ballast(self.catalog.layout.ballast, BALLAST_MB * MB)
        try:
            self.camera.open()
            if self.mic is not None:
                self.mic.open()
        except ApplianceError as e:
            self._camera_error = f"camera or microphone not ready: {e}"
        self.server.start()

    def recover_in_background(self) -> threading.Thread:
        """Finish interrupted recordings on a low-priority thread, then become ready."""
        thread = threading.Thread(target=self._recover, name="recovery", daemon=True)
        thread.start()
        return thread

    def _recover(self) -> None:
        try:
            # Per thread on Linux: only recovery (and the ffmpeg it starts) is niced.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RECOVERY_NICE)
        except OSError:
            pass
        try:
            for o in self._recover_all(self.catalog):
                log.info("recovery: %s %s (%s)", o.id, o.action, o.detail)
        except Exception:  # noqa: BLE001 - recording matters more than recovery
            log.exception("recovery failed; run `vigbox recover` to retry")
        finally:
            self._recovered.set()
        with self._lock:
            if self._camera_error:
                self._error(self._camera_error)
            elif self._state is State.STARTING:
                self._set(State.READY)

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set (SIGTERM), pinging systemd's watchdog while healthy.

        READY goes to systemd before recovery: a long recovery must not exceed the
        unit's start timeout (a restart loop); the box refuses presses meanwhile."""
        self.setup()
        self._notifier.ready(self._state.value)
        self.recover_in_background()
        interval = self._notifier.watchdog_interval_s() or 1.0
        while not stop.wait(min(interval, 1.0)):
            if self.healthy():
                self._notifier.watchdog()
            else:
                log.error("unhealthy: not pinging the watchdog so systemd restarts the daemon")
        self._notifier.stopping()
        self.close()

    def healthy(self) -> bool:
        """The control server and any session's threads are alive."""
        with self._lock:
            session = self._session
        return self.server.alive and (session is None or session.healthy)

    def close(self) -> None:
        """Finish any recording, then release the socket, button, LED and sources."""
        with self._lock:
            session = self._session
        if session is not None and session.running:
            log.info("service stopping: finishing the recording first")
            try:
                session.stop("the capture service was stopped", timeout=STOP_TIMEOUT_S)
            except ApplianceError as e:
                log.error("%s", e)
        self.server.stop()
        self.level.close()
        if self.button is not None:
            self.button.close()
        for source in (self.mic, self.camera):
            if source is not None:
                try:
                    source.close()
                except ApplianceError as e:
                    log.warning("%s did not close cleanly: %s", source.name, e)
        if self.light is not None:
            self.light.close()

    # -- state ----------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state."""
        with self._lock:
            return self._state

    def is_recording(self) -> bool:
        """True while a recording runs (button presses then mean mark / stop)."""
        with self._lock:
            return self._state is State.RECORDING

    def _set(self, state: State, light: Light | None = None) -> None:
        with self._lock:
            self._state = state
            shown = light or {State.READY: Light.READY, State.RECORDING: Light.RECORDING,
                              State.FINALIZING: Light.FINALIZING, State.ERROR: Light.ERROR,
                              State.SHUTTING_DOWN: Light.SHUTDOWN,
                              State.STARTING: Light.FINALIZING}[state]
            if self.light is not None:
                self.light.show(shown)
        self._notifier.status(state.value)

    def _error(self, text: str) -> None:
        log.error("%s", text)
        with self._lock:
            self.last_error = text
            self._set(State.ERROR)

    def _from_button(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        # Refusals are already shown on the LED and logged; gpiozero must not see them.
        try:
            action(*args, **kwargs)
        except ApplianceError as e:
            log.warning("button: %s", e)

    # -- commands -------------------------------------------------------------------------

    def start_recording(self, pressed_at_ns: int | None = None, case: str | None = None,
                        actor: str = SESSION_ACTOR, kind: str = "interaction") -> Recording:
        """Start a recording now, for `case` or else the selected case; BusyError if one
        runs, PreflightError if it cannot."""
        pressed_at_ns = pressed_at_ns or time.monotonic_ns()
        with self.level.mic_free(), self._lock:  # a level measurement ends first
            case = case if case is not None else self._case
            if self._state in (State.RECORDING, State.FINALIZING):
                raise BusyError(f"already {self._state.value}; stop first")
            if self._state is State.STARTING:
                raise BusyError("the box is still starting (finishing an interrupted "
                                "recording); try again in a moment")
            if self._state is State.SHUTTING_DOWN:
                raise BusyError("the box is shutting down")
            try:
                self._reopen_camera_if_needed()
                # Settings changed on the tablet (the length limit) count from the next press.
                config = self.catalog.settings.effective(self.config)
                session = Session(catalog=self.catalog, config=config, camera=self.camera,
                                  mic=self.mic, case=case, on_event=self._on_event,
                                  actor=actor, kind=kind)
                self._session = session
                self._warning = False
                rec = session.start(pressed_at_ns)
            except PreflightError as e:
                self._session = None
                self._error(f"recording refused: {e}")
                raise
            except ApplianceError as e:
                self._session = None
                self._error(f"recording could not start: {e}")
                raise
            self.last_error = None
            self.last_recording = rec.id
            return rec

    def _reopen_camera_if_needed(self) -> None:
        # After a camera failure, or if it never opened, try once more from scratch.
        if self._camera_suspect or self._state is State.ERROR:
            try:
                self.camera.close()
            except ApplianceError as e:
                log.warning("camera did not close cleanly: %s", e)
        try:
            self.camera.open()
            if self.mic is not None:
                self.mic.open()
        except ApplianceError as e:
            raise PreflightError(f"camera or microphone not ready: {e}") from None
        self._camera_suspect = False

    def select_case(self, case: str | None, actor: str = SESSION_ACTOR) -> str | None:
        """File the recordings started without naming a case (the button's) under `case`
        from now on (None: under none). NotFoundError, NoConsentError: refused."""
        if case is not None:
            check_filming_consent(self.catalog, case)
        with self._lock:
            self._case = case
        self.catalog.audit.append("capture.case", case, actor=actor)
        log.info("recordings started with the button now go to case %s", case)
        return case

    def preview(self) -> dict[str, Any]:
        """The camera's newest live-preview picture, for the control socket. Never under
        the daemon's lock: the camera may wait for its first picture."""
        frame = self.camera.preview_jpeg()
        if frame is None:
            raise CameraError(f"this camera ({self.camera.name}) offers no live preview")
        return {"jpeg_b64": base64.b64encode(frame.jpeg).decode("ascii"),
                "taken_at_ns": frame.taken_ns, "width": frame.width, "height": frame.height,
                "state": self.state.value}

    def mark(self, at_ns: int | None = None, *, source: str = "control",
             actor: str = SESSION_ACTOR) -> dict[str, Any]:
        """Mark a moment in the running recording (the LED acknowledges it)."""
        with self._lock:
            session = self._session
            if session is None or self._state is not State.RECORDING:
                raise BusyError("nothing is being recorded, so there is nothing to mark")
        moment = session.mark(at_ns, source=source, actor=actor)
        if self.light is not None:
            self.light.flash_mark()
        return moment

    def request_stop(self, reason: str = "stopped") -> None:
        """Ask the running recording to stop; returns at once (used by the button)."""
        with self._lock:
            session = self._session
            if session is None or not session.running:
                raise BusyError("nothing is being recorded")
        session.request_stop(reason)

    def stop_recording(self, reason: str = "stopped") -> Recording:
        """Stop the running recording and wait until it is finalized."""
        with self._lock:
            session = self._session
            if session is None or not session.running:
                raise BusyError("nothing is being recorded")
        return session.stop(reason, timeout=STOP_TIMEOUT_S)

    def shutdown_box(self) -> None:
        """The idle long hold: power the box off safely (never while recording)."""
        with self._lock:
            if self._state in (State.RECORDING, State.FINALIZING, State.SHUTTING_DOWN):
                return
            self._set(State.SHUTTING_DOWN)
        log.info("shutting the box down: %s", " ".join(self.config.daemon.shutdown_command))
        threading.Thread(target=self._shutdown, name="shutdown", daemon=True).start()

    def _shutdown(self) -> None:
        # An interrupted recording being made playable finishes first, and everything
        # written (films, catalog) is on the card before the power goes.
        self._recovered.wait(STOP_TIMEOUT_S)
        os.sync()
        try:
            self._run_command(list(self.config.daemon.shutdown_command))
        except ApplianceError as e:
            self._error(str(e))

    def _on_event(self, event: Event) -> None:
        # Called by the session (its supervisor thread, or start()).
        with self._lock:
            session = self._session
            if event is Event.RECORDING:
                self._set(State.RECORDING)
            elif event is Event.WARNING:
                self._warning = True
                if self._state is State.RECORDING and self.light is not None:
                    self.light.show(Light.WARNING)
            elif event is Event.FINALIZING:
                self._set(State.FINALIZING)
            elif event is Event.READY:
                self._camera_suspect = bool(session and session.camera_failed)
                self._case = None  # chosen for one recording: the next family is not filed
                self._set(State.READY)  # under this one's case by a forgotten choice
            elif event is Event.FAILED:
                self._case = None
                self._camera_suspect = True
                problems = session.problems if session else []
                self.last_error = problems[-1] if problems else "the recording failed"
                self._set(State.ERROR)

    def status(self) -> dict[str, Any]:
        """The daemon's state for `vigbox ctl status` and the web UI."""
        with self._lock:
            session = self._session
            return {
                "state": self._state.value, "warning": self._warning,
                "last_error": self.last_error, "last_recording": self.last_recording,
                "camera": self.camera.name, "microphone": self.mic.name if self.mic else None,
                "simulated_button": self.config.gpio.backend == "mock",
                "case": self._case,
                "light": self.light.state.value if self.light else None,
                "free_mb": free_bytes(self.catalog.layout.root) // 2**20,
                "recording": session.status() if session and session.running else None,
            }

    def handle_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control-socket command (see control.py for the protocol)."""
        cmd = request["cmd"]
        if cmd == "status":
            return self.status()
        actor = request_actor(request)
        if cmd == "start":
            case, kind = request.get("case"), request.get("kind", "interaction")
            if case is not None and not isinstance(case, str):
                raise InputError("'case' must be a case code")
            if kind not in ("interaction", "review") or (kind == "review" and not case):
                raise InputError("'kind' is interaction, or review (of a named case)")
            return {"recording": self.start_recording(case=case, actor=actor,
                                                      kind=kind).to_json()}
        if cmd == "case":
            case = request.get("case", "")
            if case is not None and not (isinstance(case, str) and case):
                raise InputError("'case' must be a case code or null (to choose none)")
            return {"case": self.select_case(case, actor)}
        if cmd == "preview":
            return self.preview()
        if cmd == "level":
            return self.level.measure()
        if cmd == "mark":
            return {"moment": self.mark(source="control", actor=actor)}
        if cmd == "press":  # the simulated box's button, from the terminal or the tablet
            return press(self._pin_factory, self.config.gpio.button_pin, request.get("hold_s"))
        if cmd == "stop":
            return {"recording": self.stop_recording(f"stopped by {actor}").to_json()}
        raise InputError(f"unknown command {cmd!r}")
