"""The box's wall clock: the date a recording carries.

A real box's is the system clock, which systemd-timedated sets (from the tablet's, a Pi
having no real-time clock). A simulated box's (the demo, the tests) is this machine's
clock plus an offset kept in the data dir: every process of that box (capture, web, the
CLI) reads the same time, and setting it never touches this machine's clock. Frames and
sound are timed on CLOCK_MONOTONIC, which neither kind of setting moves.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from appliance.fsutil import atomic_write_json
from appliance.layout import Layout

log = logging.getLogger(__name__)
SIMULATED = "simulated"   # [clock] backend
WallClock = Callable[[], datetime]


def system_now() -> datetime:
    """This machine's clock, in UTC."""
    return datetime.now(UTC)


def from_epoch_ms(epoch_ms: int) -> datetime:
    """An instant in milliseconds since 1970 as a UTC datetime, exactly (no float)."""
    return datetime.fromtimestamp(epoch_ms // 1000, UTC).replace(
        microsecond=epoch_ms % 1000 * 1000)


class SimulatedWallClock:
    """This machine's clock plus the offset stored in `path` (none stored: no offset),
    read at every call because another process of the box may have moved it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset_ms(self) -> int:
        """How far the simulated clock is ahead of this machine's, in ms."""
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as e:
            # A demo's clock must never stop a recording: say so and run on this machine's.
            log.warning("the simulated clock's offset %s is unreadable (%s): using none",
                        self.path, e)
            return 0
        value = data.get("offset_ms") if isinstance(data, dict) else None
        if isinstance(value, bool) or not isinstance(value, int):
            log.warning("the simulated clock's offset %s holds no whole offset_ms: using none",
                        self.path)
            return 0
        return value

    def now_ms(self) -> int:
        """The simulated time, ms since 1970."""
        return time.time_ns() // 1_000_000 + self.offset_ms()

    def __call__(self) -> datetime:
        """The simulated time."""
        return from_epoch_ms(self.now_ms())

    def set_offset_ms(self, offset_ms: int) -> None:
        """Move the simulated clock (written whole: a reader sees the old or the new)."""
        atomic_write_json(self.path, {"offset_ms": int(offset_ms)})


def box_clock(backend: str, layout: Layout) -> WallClock:
    """The wall clock of the box whose data dir `layout` describes, by its [clock]
    backend: this machine's, or the simulated one."""
    if backend == SIMULATED:
        return SimulatedWallClock(layout.clock_offset)
    return system_now
