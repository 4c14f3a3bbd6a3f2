"""The simulated box's button, pressed from the terminal or the tablet (`vigbox ctl
press`, the demo's "Press the button").

It drives gpiozero's own mock pin exactly as a finger would (low, then high after the
hold), so the gestures go through the same code as on a real box: a short press starts
or marks, a hold stops, a long idle hold shuts down. A box with a real button refuses.
"""

from __future__ import annotations

import threading

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory

from appliance.errors import InputError

MAX_HOLD_S = 10.0


def press(factory: Factory | None, pin: int, hold_s: object) -> dict[str, float]:
    """Press the mock button for `hold_s` seconds; returns at once (the release follows
    on a timer). InputError on a real box or a bad hold."""
    if not isinstance(factory, MockFactory):
        raise InputError("this box has a real button: press it (only a simulated box "
                         "takes presses from the screen)")
    if (not isinstance(hold_s, int | float) or isinstance(hold_s, bool)
            or not 0.05 <= hold_s <= MAX_HOLD_S):
        raise InputError(f"'hold_s' must be a number of seconds from 0.05 to {MAX_HOLD_S:g}")
    mock = factory.pin(pin)
    mock.drive_low()
    release = threading.Timer(float(hold_s), mock.drive_high)
    release.daemon = True
    release.name = "virtual-button"
    release.start()
    return {"hold_s": float(hold_s)}
