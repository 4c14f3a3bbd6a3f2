"""The one button: turns presses and holds into start, mark, stop and shutdown.

| at the press | released before hold_stop_s | held hold_stop_s to hold_shutdown_s | longer   |
|--------------|-----------------------------|-------------------------------------|----------|
| idle         | start (at release)          | nothing                             | shutdown |
| recording    | mark (at release)           | stop (as soon as the hold is reached) | (stop) |

A long-ish idle press that is not a shutdown does nothing, so an accidental long
press (or a shutdown the guider changed their mind about) is harmless. Holds fire
while the button is still down, so the guider feels the box respond.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from gpiozero import Button, Factory

from appliance.capture.gpio import gpio_errors
from appliance.config import GpioConfig
from appliance.errors import GpioError

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 1.0


class Gesture(enum.Enum):
    """What one press of the button meant."""

    START = "start"
    MARK = "mark"
    STOP = "stop"
    SHUTDOWN = "shutdown"
    NONE = "none"


def classify(recording: bool, held_s: float, config: GpioConfig) -> Gesture:
    """The gesture for a press made in `recording` state and held `held_s` seconds."""
    if recording:
        return Gesture.STOP if held_s >= config.hold_stop_s else Gesture.MARK
    # Shutdown is tested first so that a release agrees with the idle hold timer
    # (which fires at hold_shutdown_s) even if a config sets it below hold_stop_s.
    if held_s >= config.hold_shutdown_s:
        return Gesture.SHUTDOWN
    return Gesture.START if held_s < config.hold_stop_s else Gesture.NONE


@dataclasses.dataclass(frozen=True)
class Press:
    """One press as seen by the box (times are time.monotonic_ns())."""

    pressed_at_ns: int
    released_at_ns: int | None
    recording: bool
    gesture: Gesture


@dataclasses.dataclass
class _Active:
    generation: int
    pressed_at_ns: int
    recording: bool
    resolved: bool = False
    gesture: Gesture = Gesture.NONE
    timer: threading.Timer | None = None


class ButtonGestures:
    """Watches the button and calls one of four callbacks per gesture.

    `on_start(pressed_at_ns)` and `on_mark(pressed_at_ns)` run at release, because
    only then is a press known to be short; they receive the press time, which is
    the moment the guider meant (the release time is in `last_press`).
    `on_stop()` and `on_shutdown()` run when the hold is reached, while still held.
    Callbacks run on gpiozero's or a timer thread; they should return quickly, and
    whatever they raise is logged, never passed to gpiozero.
    """

    def __init__(self, config: GpioConfig, *, is_recording: Callable[[], bool],
                 on_start: Callable[[int], None], on_mark: Callable[[int], None],
                 on_stop: Callable[[], None], on_shutdown: Callable[[], None],
                 pin_factory: Factory | None = None) -> None:
        self._config = config
        self._is_recording = is_recording
        self._on_start = on_start
        self._on_mark = on_mark
        self._on_stop = on_stop
        self._on_shutdown = on_shutdown
        self._lock = threading.Lock()
        self._generation = 0
        self._active: _Active | None = None
        # Every hold timer that may still be running a handler, not only the
        # current press's: close() must wait for all of them.
        self._timers: list[threading.Timer] = []
        self._last_press: Press | None = None
        self._closed = False
        with gpio_errors(f"the button on GPIO{config.button_pin}"):
            self._button = Button(config.button_pin, pull_up=True,
                                  bounce_time=config.bounce_time_s or None,
                                  pin_factory=pin_factory)
        # Why our own timer rather than gpiozero's when_held with hold_time set in
        # when_pressed: gpiozero's single hold thread is not tied to a press. Its
        # wait can time out just as the button is released (or re-pressed), so
        # when_held may fire for a press that is already over, and by the time
        # when_released runs gpiozero has already forgotten whether it was held.
        # A timer per press, tagged with a generation number and settled under one
        # lock with the release, makes every press resolve exactly once.
        self._button.when_pressed = self._pressed
        self._button.when_released = self._released

    @property
    def last_press(self) -> Press | None:
        """The most recent press that has been resolved (None before any)."""
        with self._lock:
            return self._last_press

    @property
    def is_pressed(self) -> bool:
        """True while the button is held down (False once closed)."""
        with self._lock:
            if self._closed:
                # gpiozero raises DeviceClosed here; a closed button is simply not pressed.
                return False
            return bool(self._button.is_pressed)

    def _pressed(self) -> None:
        pressed_at_ns = time.monotonic_ns()
        recording: bool | None
        try:
            recording = bool(self._is_recording())
        except Exception:  # noqa: BLE001 - must not raise into gpiozero's thread
            log.exception("button: could not read the recording state; ignoring this press")
            recording = None
        with self._lock:
            if self._closed:
                return
            self._cancel_timer_locked()
            self._generation += 1
            if recording is None:
                self._active = _Active(self._generation, pressed_at_ns, False, resolved=True)
                return
            self._active = _Active(self._generation, pressed_at_ns, recording)
            hold_s = self._config.hold_stop_s if recording else self._config.hold_shutdown_s
            timer = threading.Timer(hold_s, self._hold_reached, args=(self._generation,))
            timer.name = "vigbox-button-hold"
            timer.daemon = True
            self._active.timer = timer
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(timer)
            timer.start()

    def _hold_reached(self, generation: int) -> None:
        with self._lock:
            active = self._active
            if self._closed or active is None or active.generation != generation \
                    or active.resolved:
                return
            active.resolved = True
            active.gesture = Gesture.STOP if active.recording else Gesture.SHUTDOWN
            self._last_press = Press(active.pressed_at_ns, None, active.recording,
                                     active.gesture)
        self._fire(active.gesture, active.pressed_at_ns)

    def _released(self) -> None:
        released_at_ns = time.monotonic_ns()
        with self._lock:
            active, self._active = self._active, None
            if self._closed or active is None:
                return
            self._cancel_timer(active)
            fire = not active.resolved
            if fire:
                # The hold timer may be late; the press duration decides regardless.
                held_s = (released_at_ns - active.pressed_at_ns) / 1e9
                active.gesture = classify(active.recording, held_s, self._config)
            self._last_press = Press(active.pressed_at_ns, released_at_ns, active.recording,
                                     active.gesture)
        if fire:
            self._fire(active.gesture, active.pressed_at_ns)

    def _fire(self, gesture: Gesture, pressed_at_ns: int) -> None:
        log.info("button: %s", gesture.value)
        try:
            if gesture is Gesture.START:
                self._on_start(pressed_at_ns)
            elif gesture is Gesture.MARK:
                self._on_mark(pressed_at_ns)
            elif gesture is Gesture.STOP:
                self._on_stop()
            elif gesture is Gesture.SHUTDOWN:
                self._on_shutdown()
        except Exception:  # noqa: BLE001 - must not raise into gpiozero's thread
            log.exception("button: the %s handler failed", gesture.value)

    def _cancel_timer_locked(self) -> None:
        if self._active is not None:
            self._cancel_timer(self._active)

    @staticmethod
    def _cancel_timer(active: _Active) -> None:
        if active.timer is not None:
            active.timer.cancel()

    def close(self) -> None:
        """Stop watching the button and release its pin. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._active = None
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        self._button.close()
        # A cancelled timer that has not fired ends at once; one already running
        # on_stop/on_shutdown (possibly for a press released since) is waited for,
        # so that no handler is still running once close() returns.
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        me = threading.current_thread()
        for timer in timers:
            if timer is not me:
                timer.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in timers if t is not me):
            raise GpioError(f"a button handler is still running after {JOIN_TIMEOUT_S} s; "
                            "handlers must return quickly")

    def __enter__(self) -> ButtonGestures:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
