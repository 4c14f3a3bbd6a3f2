"""The sync marker carried by the synthetic sources (DESIGN.md §5).

Every 5 s of capture time, counted from a shared epoch, the synthetic camera shows one
completely white frame and the synthetic microphone plays a 40 ms 1 kHz tone burst,
both at the same instant of the capture clock.
"""

from __future__ import annotations

from dataclasses import dataclass

PERIOD_NS = 5_000_000_000
TONE_HZ = 1000.0
TONE_NS = 40_000_000


@dataclass(frozen=True)
class SyncMarker:
    """Marker instants are `epoch_ns + k * PERIOD_NS` for every whole k."""

    epoch_ns: int

    def is_marker_frame(self, pts_ns: int, frame_interval_ns: float) -> bool:
        """True for the one frame whose exposure time is nearest a marker instant."""
        phase = (pts_ns - self.epoch_ns) % PERIOD_NS
        return phase < frame_interval_ns / 2 or PERIOD_NS - phase <= frame_interval_ns / 2
