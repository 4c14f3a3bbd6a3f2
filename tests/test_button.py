"""The one button's gestures, driven through gpiozero's own mock pins."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from gpiozero import Factory
from gpiozero.pins.mock import MockPin

from appliance.capture.button import ButtonGestures, Gesture, Press, classify
from appliance.config import GpioConfig
from appliance.errors import GpioError

CONFIG = GpioConfig(button_pin=17, hold_stop_s=0.2, hold_shutdown_s=0.4, bounce_time_s=0)
# Timeout for a callback that must come; generous, as it only costs time on failure.
WAIT_S = 2.0
# How far past its due time we watch for a callback that must not come.
MARGIN_S = 0.2
# A short press: long enough that press and release times are clearly apart.
TAP_S = 0.03


def hold_for(recording: bool, config: GpioConfig = CONFIG) -> float:
    """When the hold timer of a press made in this state is due."""
    return config.hold_stop_s if recording else config.hold_shutdown_s


@dataclasses.dataclass(frozen=True)
class Call:
    gesture: Gesture
    pressed_at_ns: int | None
    still_held: bool


class Box:
    """A ButtonGestures on a mock pin, with every callback recorded."""

    def __init__(self, factory: Factory, config: GpioConfig, *, recording: bool,
                 is_recording: Callable[[], bool] | None, failing: set[Gesture]) -> None:
        self.pin: MockPin = factory.pin(config.button_pin)
        self.config = config
        self.recording = recording
        self.failing = failing
        self.calls: list[Call] = []
        self.events = {g: threading.Event() for g in Gesture}
        self._lock = threading.Lock()
        self.gestures = ButtonGestures(
            config, is_recording=is_recording or (lambda: self.recording),
            on_start=self._handler(Gesture.START), on_mark=self._handler(Gesture.MARK),
            on_stop=self._handler(Gesture.STOP), on_shutdown=self._handler(Gesture.SHUTDOWN),
            pin_factory=factory)

    def _handler(self, gesture: Gesture) -> Callable[..., None]:
        def handle(pressed_at_ns: int | None = None) -> None:
            # The button pulls up, so a low pin means it is still held down.
            with self._lock:
                self.calls.append(Call(gesture, pressed_at_ns, not self.pin.state))
            self.events[gesture].set()
            if gesture in self.failing:
                raise RuntimeError(f"{gesture.value} handler failed on purpose")
        return handle

    def press(self) -> int:
        """Press the button; the monotonic_ns just before."""
        before = time.monotonic_ns()
        self.pin.drive_low()
        return before

    def release(self) -> int:
        """Release the button; the monotonic_ns just before."""
        before = time.monotonic_ns()
        self.pin.drive_high()
        return before

    def tap(self) -> None:
        self.press()
        time.sleep(TAP_S)  # the length of the press, not a wait for a result
        self.release()

    def gestures_seen(self) -> list[Gesture]:
        with self._lock:
            return [c.gesture for c in self.calls]

    def nothing_until(self, deadline_s: float) -> bool:
        """True if no callback at all comes before time.monotonic() `deadline_s`."""
        before = len(self.gestures_seen())
        # A bounded watch, ending early if a call does come.
        while time.monotonic() < deadline_s:
            if len(self.gestures_seen()) != before:
                return False
            time.sleep(0.005)
        return len(self.gestures_seen()) == before


MakeBox = Callable[..., Box]


@pytest.fixture
def make_box(factory: Factory) -> Iterator[MakeBox]:
    boxes: list[Box] = []

    def make(*, recording: bool = False, config: GpioConfig = CONFIG,
             is_recording: Callable[[], bool] | None = None,
             failing: set[Gesture] | None = None) -> Box:
        box = Box(factory, config, recording=recording, is_recording=is_recording,
                  failing=failing or set())
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.gestures.close()


# --- short presses ---

@pytest.mark.parametrize(("recording", "gesture"),
                         [(False, Gesture.START), (True, Gesture.MARK)])
def test_a_short_press_fires_at_release_with_the_press_time(
        make_box: MakeBox, recording: bool, gesture: Gesture) -> None:
    box = make_box(recording=recording)
    pressed = time.monotonic()
    before_press = box.press()
    after_press = time.monotonic_ns()
    time.sleep(TAP_S)  # the length of the press
    before_release = box.release()

    assert box.events[gesture].wait(WAIT_S)
    [call] = box.calls
    assert call.gesture is gesture
    assert call.pressed_at_ns is not None
    # The moment the guider meant is the press, not the release.
    assert before_press <= call.pressed_at_ns <= after_press < before_release
    assert not call.still_held
    press = box.gestures.last_press
    assert press is not None and press.released_at_ns is not None
    assert press == Press(call.pressed_at_ns, press.released_at_ns, recording, gesture)
    assert press.released_at_ns >= before_release
    # The hold timer was cancelled: nothing more comes once it would have been due.
    assert box.nothing_until(pressed + hold_for(recording) + MARGIN_S)


def test_no_press_yet(make_box: MakeBox) -> None:
    box = make_box()
    assert box.gestures.last_press is None
    assert not box.gestures.is_pressed


# --- holds ---

@pytest.mark.parametrize(("recording", "gesture", "hold_s", "not_at_release"), [
    (True, Gesture.STOP, CONFIG.hold_stop_s, Gesture.MARK),
    (False, Gesture.SHUTDOWN, CONFIG.hold_shutdown_s, Gesture.START),
])
def test_a_hold_fires_while_still_held_and_release_adds_nothing(
        make_box: MakeBox, recording: bool, gesture: Gesture, hold_s: float,
        not_at_release: Gesture) -> None:
    box = make_box(recording=recording)
    pressed = time.monotonic()
    box.press()
    assert box.events[gesture].wait(WAIT_S)
    assert time.monotonic() - pressed >= hold_s
    [call] = box.calls
    assert call.gesture is gesture and call.still_held
    assert box.gestures.is_pressed
    held = box.gestures.last_press
    assert held is not None and held.gesture is gesture and held.released_at_ns is None

    box.release()
    assert not box.events[not_at_release].wait(MARGIN_S)
    assert box.gestures_seen() == [gesture]
    released = box.gestures.last_press
    assert released is not None
    assert released.gesture is gesture and released.released_at_ns is not None
    assert released.pressed_at_ns == held.pressed_at_ns


def test_an_idle_hold_between_stop_and_shutdown_does_nothing(make_box: MakeBox) -> None:
    # A longer shutdown hold here leaves room for a slow machine to release in time.
    config = dataclasses.replace(CONFIG, hold_shutdown_s=0.7)
    box = make_box(config=config)
    pressed = time.monotonic()
    box.press()
    time.sleep(0.3)  # the length of the press: past hold_stop_s, short of shutdown
    box.release()
    assert box.nothing_until(pressed + config.hold_shutdown_s + MARGIN_S)
    press = box.gestures.last_press
    assert press is not None and press.gesture is Gesture.NONE


def test_the_next_press_after_a_stop_starts_again(make_box: MakeBox) -> None:
    box = make_box(recording=True)
    box.press()
    assert box.events[Gesture.STOP].wait(WAIT_S)
    box.release()
    box.recording = False
    box.tap()
    assert box.events[Gesture.START].wait(WAIT_S)
    assert box.gestures_seen() == [Gesture.STOP, Gesture.START]


# --- failures ---

def test_a_failing_handler_does_not_break_later_presses(
        make_box: MakeBox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="appliance.capture.button")
    box = make_box(failing={Gesture.START, Gesture.STOP})
    box.tap()
    box.tap()
    assert box.gestures_seen() == [Gesture.START, Gesture.START]

    # A failure on the hold timer's thread does no harm either.
    box.recording = True
    box.press()
    assert box.events[Gesture.STOP].wait(WAIT_S)
    box.release()
    box.tap()
    assert box.events[Gesture.MARK].wait(WAIT_S)
    assert box.gestures_seen() == [Gesture.START, Gesture.START, Gesture.STOP, Gesture.MARK]
    failures = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert len(failures) == 3


def test_an_unreadable_recording_state_ignores_the_press(
        make_box: MakeBox, caplog: pytest.LogCaptureFixture) -> None:
    broken = True

    def is_recording() -> bool:
        if broken:
            raise RuntimeError("state unknown")
        return False

    caplog.set_level(logging.ERROR, logger="appliance.capture.button")
    box = make_box(is_recording=is_recording)
    box.tap()
    # Held past both hold times: still nothing.
    pressed = time.monotonic()
    box.press()
    assert box.nothing_until(pressed + CONFIG.hold_shutdown_s + MARGIN_S)
    box.release()
    assert box.gestures_seen() == []
    press = box.gestures.last_press
    assert press is not None and press.gesture is Gesture.NONE
    assert any("recording state" in r.getMessage() for r in caplog.records)

    broken = False
    box.tap()
    assert box.events[Gesture.START].wait(WAIT_S)


# --- closing ---

@pytest.mark.parametrize("recording", [True, False])
def test_close_while_held_cancels_the_hold(make_box: MakeBox, recording: bool) -> None:
    box = make_box(recording=recording)
    pressed = time.monotonic()
    box.press()
    box.gestures.close()
    assert not box.gestures.is_pressed
    # Neither the hold timer nor the release may fire anything now.
    box.release()
    assert box.nothing_until(pressed + hold_for(recording) + MARGIN_S)
    box.gestures.close()


def test_close_waits_for_a_hold_handler_that_is_running(factory: Factory) -> None:
    started, gate, finished = threading.Event(), threading.Event(), threading.Event()

    def on_stop() -> None:
        started.set()
        gate.wait(WAIT_S)
        finished.set()

    gestures = ButtonGestures(CONFIG, is_recording=lambda: True, on_start=lambda t: None,
                              on_mark=lambda t: None, on_stop=on_stop,
                              on_shutdown=lambda: None, pin_factory=factory)
    pin = factory.pin(CONFIG.button_pin)
    pin.drive_low()
    assert started.wait(WAIT_S)
    # Released while on_stop still runs: that press is over, but its handler is not.
    pin.drive_high()
    opener = threading.Timer(0.1, gate.set)
    opener.start()
    try:
        gestures.close()
        assert finished.is_set()
    finally:
        gate.set()
        opener.join()


def test_a_taken_pin_gives_gpio_error(make_box: MakeBox) -> None:
    make_box()
    with pytest.raises(GpioError, match="GPIO17"):
        make_box()


# --- classify ---

@pytest.mark.parametrize(("recording", "held_s", "gesture"), [
    (False, 0.0, Gesture.START),
    (False, 0.19, Gesture.START),
    (False, 0.2, Gesture.NONE),
    (False, 0.39, Gesture.NONE),
    (False, 0.4, Gesture.SHUTDOWN),
    (False, 9.0, Gesture.SHUTDOWN),
    (True, 0.0, Gesture.MARK),
    (True, 0.19, Gesture.MARK),
    (True, 0.2, Gesture.STOP),
    (True, 9.0, Gesture.STOP),
])
def test_classify(recording: bool, held_s: float, gesture: Gesture) -> None:
    assert classify(recording, held_s, CONFIG) is gesture


def test_classify_agrees_with_the_timer_when_shutdown_is_the_shorter_hold() -> None:
    # The idle hold timer fires at hold_shutdown_s, so a release past it is a shutdown.
    config = dataclasses.replace(CONFIG, hold_stop_s=2.0, hold_shutdown_s=1.0)
    assert classify(False, 0.5, config) is Gesture.START
    assert classify(False, 1.5, config) is Gesture.SHUTDOWN
    assert classify(True, 1.5, config) is Gesture.MARK
