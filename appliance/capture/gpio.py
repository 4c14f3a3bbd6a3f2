"""Pin access for the button and LED: gpiozero's factory, or its mock one.

The real factory is chosen by gpiozero itself the first time a device is built
(lgpio on a Pi 5), never at import, so this module loads on any machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from gpiozero import Factory
from gpiozero.exc import BadPinFactory, GPIOPinInUse, GPIOZeroError, PinInvalidPin
from gpiozero.pins.mock import MockFactory, MockPWMPin

from appliance.errors import GpioError

BACKENDS = ("gpiozero", "mock")


def make_pin_factory(backend: str) -> Factory | None:
    """The pin factory for a `gpio.backend` setting.

    "mock" gives a MockFactory whose pins support PWM (the LED needs it);
    "gpiozero" gives None, meaning gpiozero picks the real backend lazily.
    """
    if backend == "gpiozero":
        return None
    if backend == "mock":
        with gpio_errors("the mock GPIO pins"):
            return MockFactory(pin_class=MockPWMPin)
    raise GpioError(f"unknown GPIO backend {backend!r}; use one of: {', '.join(BACKENDS)}")


@contextlib.contextmanager
def gpio_errors(what: str) -> Iterator[None]:
    """Turn errors from gpiozero or its backend into a GpioError a person can act on."""
    try:
        yield
    except GpioError:
        raise
    except BadPinFactory as e:
        raise GpioError(
            f"cannot set up {what}: no GPIO library could be loaded ({e}). On a Pi 5 install "
            "python3-lgpio; on a computer without GPIO set gpio.backend = \"mock\"") from e
    except GPIOPinInUse as e:
        raise GpioError(f"cannot set up {what}: {e}; give each device its own pin") from e
    except PinInvalidPin as e:
        raise GpioError(f"cannot set up {what}: {e}; use a BCM pin number 0-27") from e
    except (GPIOZeroError, OSError, RuntimeError, *_backend_errors()) as e:
        raise GpioError(
            f"cannot set up {what}: {e}. Check that this is a Raspberry Pi, that the "
            "service user is in the 'gpio' group, and that its working directory is "
            "writable") from e


def _backend_errors() -> tuple[type[BaseException], ...]:
    # lgpio raises its own `lgpio.error` (e.g. "GPIO busy" when another process holds
    # the pin); it only exists where lgpio is installed, so look for it when needed.
    try:
        import lgpio
    except ImportError:
        return ()
    return (lgpio.error,)
