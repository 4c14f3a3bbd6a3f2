"""The status LED's patterns, measured on gpiozero's mock PWM pins."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from gpiozero import Factory
from gpiozero.pins.mock import MockPWMPin

from appliance.capture.button import ButtonGestures
from appliance.capture.gpio import make_pin_factory
from appliance.capture.status_light import DRIVE, PATTERNS, Blink, Light, StatusLight
from appliance.config import GpioConfig
from appliance.errors import GpioError

MARK = DRIVE[Light.MARK]
assert isinstance(MARK, Blink) and MARK.n is not None
FLASH_S = MARK.cycle_s * MARK.n
# How long past a deadline we watch to show that something does not happen.
QUIET_S = 0.25

History = list[tuple[float, float]]
MakeLight = Callable[..., tuple[StatusLight, MockPWMPin]]


def history(pin: MockPWMPin) -> History:
    """(seconds since pin.clear_states(), value) for the start and every change."""
    # MockPin.states holds each change with how long the previous value lasted.
    t = 0.0
    out: History = []
    for s in list(pin.states):
        t += s.timestamp
        out.append((t, float(s.state)))
    return out


def rises(hist: History) -> list[float]:
    """The times the pin went to full brightness."""
    return [t for i, (t, v) in enumerate(hist) if v == 1.0 and i > 0 and hist[i - 1][1] < 1.0]


def periods(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll `condition` until it holds or `timeout` passes (the LED has no events)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def quiet_until(pin: MockPWMPin, deadline: float) -> bool:
    """True if the pin does not change at all from now until time.monotonic() `deadline`."""
    before = len(pin.states)
    # A bounded watch for a change that must not come.
    time.sleep(max(0.0, deadline - time.monotonic()))
    return len(pin.states) == before


def quiet_for(pin: MockPWMPin, seconds: float) -> bool:
    """True if the pin does not change at all during the next `seconds`."""
    return quiet_until(pin, time.monotonic() + seconds)


@pytest.fixture
def make_light(factory: Factory) -> Iterator[MakeLight]:
    lights: list[StatusLight] = []

    def make(pin: int = 27) -> tuple[StatusLight, MockPWMPin]:
        light = StatusLight(pin, pin_factory=factory)
        lights.append(light)
        return light, factory.pin(pin)

    yield make
    for light in lights:
        light.close()


# --- every pattern, all running at once so the whole set costs one shutdown fade ---

PINS = {Light.READY: 5, Light.RECORDING: 6, Light.FINALIZING: 13, Light.WARNING: 19,
        Light.ERROR: 26, Light.SHUTDOWN: 21, Light.OFF: 20}


@pytest.fixture(scope="module")
def recorded() -> Iterator[dict[Light, History]]:
    """Each steady light shown on its own pin, watched until SHUTDOWN's fade ends."""
    f = make_pin_factory("mock")
    assert f is not None
    lights = {light: StatusLight(pin, pin_factory=f) for light, pin in PINS.items()}
    pins = {light: f.pin(pin) for light, pin in PINS.items()}
    try:
        for light, status in lights.items():
            pins[light].clear_states()
            status.show(light)
        shutdown = pins[Light.SHUTDOWN]
        # The fade ends at 0 after about 3.5 s: full 0.5 s, then 3 s down.
        assert wait_until(lambda: len(shutdown.states) > 2 and shutdown.state == 0.0,
                          timeout=8.0)
        yield {light: history(pin) for light, pin in pins.items()}
    finally:
        for status in lights.values():
            status.close()
        f.reset()
        f.close()


def test_recording_is_steady_on(recorded: dict[Light, History]) -> None:
    assert [v for _, v in recorded[Light.RECORDING]] == [0.0, 1.0]


def test_off_stays_off(recorded: dict[Light, History]) -> None:
    assert [v for _, v in recorded[Light.OFF]] == [0.0]


def test_warning_blinks_hard_once_a_second(recorded: dict[Light, History]) -> None:
    hist = recorded[Light.WARNING]
    assert {v for _, v in hist} == {0.0, 1.0}
    ups = rises(hist)
    assert len(ups) >= 3
    assert all(0.85 < p < 1.2 for p in periods(ups)), periods(ups)


def test_error_flickers_hard_five_times_a_second(recorded: dict[Light, History]) -> None:
    hist = recorded[Light.ERROR]
    assert {v for _, v in hist} == {0.0, 1.0}
    ups = rises(hist)
    assert len(ups) >= 12
    assert 0.17 < statistics.mean(periods(ups)) < 0.25


def test_error_and_warning_rates_are_far_apart(recorded: dict[Light, History]) -> None:
    error = statistics.mean(periods(rises(recorded[Light.ERROR])))
    warning = statistics.mean(periods(rises(recorded[Light.WARNING])))
    assert warning / error > 3.5


def test_ready_breathes_slowly(recorded: dict[Light, History]) -> None:
    hist = recorded[Light.READY]
    values = [v for _, v in hist]
    # Smooth: many levels between off and full, unlike the hard blinks.
    assert len({v for v in values if 0.0 < v < 1.0}) >= 20
    peak = next(t for t, v in hist if v == 1.0)
    assert 1.3 < peak < 1.9
    dark_again = next(t for t, v in hist if t > peak and v == 0.0)
    assert 2.7 < dark_again < 3.6


def test_finalizing_breathes_fast(recorded: dict[Light, History]) -> None:
    hist = recorded[Light.FINALIZING]
    assert len({v for _, v in hist if 0.0 < v < 1.0}) >= 5
    peaks = rises(hist)
    assert len(peaks) >= 5
    assert 0.45 < statistics.mean(periods(peaks)) < 0.65


def test_shutdown_is_one_long_fade_to_off(recorded: dict[Light, History]) -> None:
    hist = recorded[Light.SHUTDOWN]
    values = [v for _, v in hist]
    assert values[1] == 1.0
    fade = values[2:]
    assert len(fade) > 30
    assert all(a > b for a, b in zip(fade, fade[1:])), "the fade only goes down"
    assert fade[-1] == 0.0
    full_for = hist[2][0] - hist[1][0]
    assert 0.4 < full_for < 0.7
    assert 3.2 < hist[-1][0] < 4.5


def test_every_light_has_a_pattern_and_a_meaning() -> None:
    assert set(PATTERNS) == set(Light) == set(DRIVE)
    for seen, meaning in PATTERNS.values():
        assert seen.strip() and meaning.strip()
    assert len({seen for seen, _ in PATTERNS.values()}) == len(Light)


# --- the mark flash ---

def test_flash_over_recording_winks_twice_and_returns_to_on(make_light: MakeLight) -> None:
    light, pin = make_light()
    light.show(Light.RECORDING)
    pin.clear_states()
    flashed = time.monotonic()
    light.flash_mark()
    assert wait_until(lambda: len(pin.states) >= 5)
    assert quiet_until(pin, flashed + FLASH_S + QUIET_S)
    hist = history(pin)
    assert [v for _, v in hist] == [1.0, 0.0, 1.0, 0.0, 1.0]
    gaps = [hist[2][0] - hist[1][0], hist[4][0] - hist[3][0]]
    assert all(0.08 < g < 0.25 for g in gaps), gaps
    assert light.state is Light.RECORDING


def test_flash_over_off_blinks_twice_and_returns_to_off(make_light: MakeLight) -> None:
    light, pin = make_light()
    flashed = time.monotonic()
    light.flash_mark()
    assert wait_until(lambda: len(pin.states) >= 5)
    assert quiet_until(pin, flashed + FLASH_S + QUIET_S)
    assert [v for _, v in history(pin)] == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert light.state is Light.OFF


def test_flash_over_ready_returns_to_breathing(make_light: MakeLight) -> None:
    light, pin = make_light()
    light.show(Light.READY)
    pin.clear_states()
    light.flash_mark()
    # After the flash the breath starts again from dark: levels between 0 and 1.
    assert wait_until(lambda: any(t > FLASH_S and 0.0 < v < 1.0 for t, v in history(pin)))
    hist = history(pin)
    during = [v for t, v in hist if t < FLASH_S - 0.02]
    assert set(during[1:]) == {0.0, 1.0}
    assert light.state is Light.READY


def test_show_during_a_flash_wins_at_once(make_light: MakeLight) -> None:
    light, pin = make_light()
    light.show(Light.RECORDING)
    flashed = time.monotonic()
    light.flash_mark()
    assert wait_until(lambda: pin.state == 0.0)
    light.show(Light.OFF)
    assert light.state is Light.OFF
    assert pin.state == 0.0
    # Past the end of the flash, nothing brings RECORDING back.
    assert quiet_until(pin, flashed + FLASH_S + QUIET_S)
    assert pin.state == 0.0


def test_a_blinking_state_shown_during_a_flash_keeps_blinking(make_light: MakeLight) -> None:
    light, pin = make_light()
    light.show(Light.RECORDING)
    light.flash_mark()
    light.show(Light.ERROR)
    pin.clear_states()
    assert wait_until(lambda: len(rises(history(pin))) >= 4, timeout=FLASH_S + 2.0)
    ups = rises(history(pin))
    assert ups[-1] > FLASH_S
    assert all(0.12 < p < 0.3 for p in periods(ups)), periods(ups)
    assert light.state is Light.ERROR


def test_showing_the_same_state_lets_the_flash_finish(make_light: MakeLight) -> None:
    light, pin = make_light()
    light.show(Light.RECORDING)
    pin.clear_states()
    flashed = time.monotonic()
    light.flash_mark()
    light.show(Light.RECORDING)
    assert wait_until(lambda: len(pin.states) >= 5)
    assert quiet_until(pin, flashed + FLASH_S + QUIET_S)
    assert [v for _, v in history(pin)] == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_show_mark_flashes_without_changing_the_state(make_light: MakeLight) -> None:
    light, pin = make_light()
    light.show(Light.RECORDING)
    pin.clear_states()
    light.show(Light.MARK)
    assert light.state is Light.RECORDING
    assert wait_until(lambda: len(pin.states) >= 5)
    assert pin.state == 1.0


def test_a_second_mark_restarts_the_flash(make_light: MakeLight) -> None:
    light, pin = make_light()
    light.show(Light.RECORDING)
    pin.clear_states()
    light.flash_mark()
    assert wait_until(lambda: pin.state == 0.0)
    flashed = time.monotonic()
    light.flash_mark()
    assert wait_until(lambda: len(pin.states) >= 7)
    assert quiet_until(pin, flashed + FLASH_S + QUIET_S)
    hist = history(pin)
    # First flash cut after its first wink, then the second flash in full, then on.
    assert [v for _, v in hist] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    second_began, back_on = hist[2][0], hist[-1][0]
    assert FLASH_S - 0.05 < back_on - second_began < FLASH_S + 0.2


# --- closing and errors ---

def test_close_turns_the_led_off_and_is_idempotent(make_light: MakeLight) -> None:
    light, pin = make_light()
    light.show(Light.RECORDING)
    assert pin.state == 1.0
    light.close()
    assert pin.state == 0.0
    light.close()
    # After close the light ignores calls (the program is shutting down).
    light.show(Light.ERROR)
    light.flash_mark()
    assert pin.state == 0.0


def test_close_stops_a_running_pattern(make_light: MakeLight) -> None:
    light, pin = make_light()
    light.show(Light.ERROR)
    assert wait_until(lambda: len(pin.states) >= 3)
    light.close()
    assert pin.state == 0.0
    assert quiet_for(pin, QUIET_S)


def test_close_during_a_flash_cancels_the_return(make_light: MakeLight) -> None:
    light, pin = make_light()
    light.show(Light.RECORDING)
    flashed = time.monotonic()
    light.flash_mark()
    light.close()
    assert pin.state == 0.0
    assert quiet_until(pin, flashed + FLASH_S + QUIET_S)
    assert pin.state == 0.0


def test_context_manager_closes(factory: Factory) -> None:
    with StatusLight(27, pin_factory=factory) as light:
        light.show(Light.RECORDING)
    assert factory.pin(27).state == 0.0
    # The pin is free again.
    StatusLight(27, pin_factory=factory).close()


def test_many_changes_leave_no_threads_behind(make_light: MakeLight) -> None:
    baseline = threading.active_count()
    light, _ = make_light()
    steady = [Light.READY, Light.RECORDING, Light.WARNING, Light.ERROR, Light.FINALIZING]
    for i in range(40):
        light.show(steady[i % len(steady)])
        light.flash_mark()
    # At most gpiozero's one blink thread and our one flash timer remain.
    assert wait_until(lambda: threading.active_count() <= baseline + 2)
    light.close()
    assert wait_until(lambda: threading.active_count() <= baseline)


def test_the_buttons_pin_cannot_be_the_leds(factory: Factory) -> None:
    button = ButtonGestures(GpioConfig(button_pin=17, bounce_time_s=0),
                            is_recording=lambda: False, on_start=lambda t: None,
                            on_mark=lambda t: None, on_stop=lambda: None,
                            on_shutdown=lambda: None, pin_factory=factory)
    try:
        with pytest.raises(GpioError, match="GPIO17"):
            StatusLight(17, pin_factory=factory)
    finally:
        button.close()


def test_a_pin_that_does_not_exist_gives_gpio_error(factory: Factory) -> None:
    with pytest.raises(GpioError, match="0-27"):
        StatusLight(99, pin_factory=factory)
