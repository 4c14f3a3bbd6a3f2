"""An upload speed cap (sync.bandwidth_kbps): a token bucket the sender waits on, so a
mobile link at a family's home is not filled by the box."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Throttle:
    """Allows `rate` bytes a second on average, in bursts of at most a quarter second's."""

    def __init__(self, rate_bytes_s: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate_bytes_s
        self._clock = clock
        self._sleep = sleep
        self._burst = max(1.0, rate_bytes_s / 4)
        self._tokens = self._burst
        self._last = clock()
        self._lock = threading.Lock()

    def wait(self, n: int, stop: threading.Event | None = None) -> None:
        """Block until `n` more bytes may go (no wait when there is no cap); a `stop`
        ends the wait at once (a slow cap must not delay stopping)."""
        if self.rate <= 0:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            debt = -self._tokens
        if debt > 0:
            if stop is not None:
                stop.wait(debt / self.rate)
            else:
                self._sleep(debt / self.rate)


def unlimited() -> Throttle:
    """No cap."""
    return Throttle(0)
