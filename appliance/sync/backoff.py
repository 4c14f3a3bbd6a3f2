"""When to try again after a network failure: exponential, capped, with jitter (so many
boxes coming back online do not all knock at the office at the same second)."""

from __future__ import annotations

import random


def retry_delay(attempts: int, *, first_s: float, max_s: float,
                rng: random.Random | None = None) -> float:
    """Seconds to wait after the `attempts`-th failure (1 = the first): first_s doubled
    each time up to max_s, then a random part of it between half and all ("equal jitter")."""
    base = min(max_s, first_s * 2 ** max(0, min(attempts - 1, 30)))
    return base / 2 + (rng or random).uniform(0, base / 2)
