"""The status LED: one single-colour light that tells the guider what the box is doing.

Each state is a pattern that can be told apart at a glance: steady on, steady
off, smooth breathing at two speeds, hard blinking at two speeds, and one long
fade. `PATTERNS` holds what the guider sees and what it means, so the README
table is generated from this module rather than copied by hand.

The patterns run on gpiozero's own background blink thread (one per LED, which
gpiozero stops and joins before starting the next pattern), so changing state
for years never piles up threads.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
from types import TracebackType

from gpiozero import PWMLED, Factory

from appliance.capture.gpio import gpio_errors
from appliance.errors import GpioError

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 1.0


class Light(enum.Enum):
    """What the status LED is saying."""

    READY = "ready"
    RECORDING = "recording"
    MARK = "mark"
    FINALIZING = "finalizing"
    WARNING = "warning"
    ERROR = "error"
    SHUTDOWN = "shutdown"
    OFF = "off"


@dataclasses.dataclass(frozen=True)
class Blink:
    """Arguments for gpiozero's PWMLED.blink (n None = forever)."""

    on_s: float
    off_s: float
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    n: int | None = None

    @property
    def cycle_s(self) -> float:
        """The length of one on-off cycle."""
        return self.on_s + self.off_s + self.fade_in_s + self.fade_out_s


# How each light drives the pin: a float is a steady brightness, a Blink a pattern.
# Hard blinks (WARNING, ERROR) and smooth fades (READY, FINALIZING) differ in shape
# as well as speed, so even two at similar rates are not confused.
DRIVE: dict[Light, float | Blink] = {
    Light.READY: Blink(on_s=0.0, off_s=0.0, fade_in_s=1.5, fade_out_s=1.5),
    Light.RECORDING: 1.0,
    # Over steady RECORDING the first "on" is invisible, so the guider sees two
    # quick dark winks; over breathing or off, two bright flashes. Either way: two.
    Light.MARK: Blink(on_s=0.12, off_s=0.12, n=2),
    Light.FINALIZING: Blink(on_s=0.0, off_s=0.0, fade_in_s=0.25, fade_out_s=0.25),
    Light.WARNING: Blink(on_s=0.5, off_s=0.5),
    Light.ERROR: Blink(on_s=0.1, off_s=0.1),
    # Full for a moment (so it shows even from OFF), then a long fade, then off.
    Light.SHUTDOWN: Blink(on_s=0.5, off_s=0.0, fade_out_s=3.0, n=1),
    Light.OFF: 0.0,
}

PATTERNS: dict[Light, tuple[str, str]] = {
    Light.READY: ("slow breathing (3 s per breath)",
                  "ready: press once to start recording"),
    Light.RECORDING: ("steady on",
                      "recording: press to mark a moment, hold to stop"),
    Light.MARK: ("two quick blinks, then back to the pattern before",
                 "the moment was marked"),
    Light.FINALIZING: ("fast breathing (2 per second)",
                       "saving the recording: wait, do not unplug"),
    Light.WARNING: ("blinking once a second",
                    "still recording, but look: a minute left, the disk nearly full, "
                    "or the microphone stopped"),
    Light.ERROR: ("fast flicker (5 per second)",
                  "something failed: press once to try again; if it stays, restart the box"),
    Light.SHUTDOWN: ("bright, then a long fade to off",
                     "shutting down: unplug once the Pi's own green light has stopped"),
    Light.OFF: ("off",
                "no power, or the recorder is not running"),
}


class StatusLight:
    """The status LED on one PWM-capable pin.

    `show()` sets the steady state; `flash_mark()` overlays a short
    acknowledgement and then returns to whatever the steady state is by then.
    All calls are thread-safe; after `close()` they do nothing, because the LED
    is only ever closed as the program shuts down.
    """

    def __init__(self, pin: int, *, pin_factory: Factory | None = None) -> None:
        self._what = f"the status LED on GPIO{pin}"
        self._lock = threading.Lock()
        self._state = Light.OFF
        self._closed = False
        # The timer that ends the current flash; None when no flash is showing.
        self._flash_timer: threading.Timer | None = None
        with gpio_errors(self._what):
            self._led = PWMLED(pin, initial_value=0, pin_factory=pin_factory)

    @property
    def state(self) -> Light:
        """The steady state (never MARK: a flash is shown over the steady state)."""
        with self._lock:
            return self._state

    def show(self, light: Light) -> None:
        """Show `light` from now on; it replaces a flash that is still showing.

        Showing the state already shown changes nothing (a breathing pattern keeps
        its rhythm, a flash finishes). `Light.MARK` is the same as `flash_mark()`.
        """
        if light is Light.MARK:
            self.flash_mark()
            return
        with self._lock:
            if self._closed or light is self._state:
                return
            self._cancel_flash_locked()
            log.debug("status light: %s", light.value)
            self._state = light
            with gpio_errors(self._what):
                self._drive_locked(DRIVE[light])

    def flash_mark(self) -> None:
        """Blink the mark acknowledgement, then return to the steady state.

        A second mark while one is showing starts the flash again.
        """
        flash = DRIVE[Light.MARK]
        assert isinstance(flash, Blink)
        with self._lock:
            if self._closed:
                return
            self._cancel_flash_locked()
            with gpio_errors(self._what):
                self._drive_locked(flash)
            assert flash.n is not None
            timer = threading.Timer(flash.cycle_s * flash.n, self._end_flash)
            timer.name = "vigbox-led-flash"
            timer.daemon = True
            self._flash_timer = timer
            timer.start()

    def _end_flash(self) -> None:
        with self._lock:
            # A show(), a newer flash or close() since this flash began replaced it.
            if self._closed or self._flash_timer is not threading.current_thread():
                return
            self._flash_timer = None
            try:
                self._drive_locked(DRIVE[self._state])
            except Exception:  # noqa: BLE001 - nobody to raise to on a timer thread
                log.exception("status light: could not return to %s after a mark",
                              self._state.value)

    def _cancel_flash_locked(self) -> None:
        if self._flash_timer is not None:
            self._flash_timer.cancel()
            self._flash_timer = None

    def _drive_locked(self, drive: float | Blink) -> None:
        # Every gpiozero call below first stops and joins the previous blink
        # thread, so exactly one pattern runs and none writes after we change.
        if isinstance(drive, Blink):
            self._led.blink(on_time=drive.on_s, off_time=drive.off_s,
                            fade_in_time=drive.fade_in_s, fade_out_time=drive.fade_out_s,
                            n=drive.n, background=True)
        else:
            self._led.value = drive

    def close(self) -> None:
        """Turn the LED off and release its pin. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            timer, self._flash_timer = self._flash_timer, None
            if timer is not None:
                timer.cancel()
            try:
                with gpio_errors(self._what):
                    # off() first: closing alone may leave a real pin floating mid-pattern.
                    self._led.off()
            finally:
                self._led.close()
        if timer is not None and timer is not threading.current_thread():
            timer.join(JOIN_TIMEOUT_S)
            if timer.is_alive():
                raise GpioError(f"{self._what}: its flash timer did not stop within "
                                f"{JOIN_TIMEOUT_S} s")

    def __enter__(self) -> StatusLight:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
