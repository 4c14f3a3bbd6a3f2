"""Whether a film to import shows its frames at a constant rate, and the rate to give it.

A guider steps through a film frame by frame and cuts clips by frame number, both
computed as frame n = time × fps. That holds only at a constant frame rate. Phones
film at a variable one (slower in poor light, dropping frames when busy), and the
average rate ffprobe reports (a 10 s film with a 2 s stretch at 15 fps reads as
27 fps) puts every frame after the slow stretch at the wrong time. So the frame
timestamps themselves are checked: one frame duration off the usual by more than
STEP_TOLERANCE marks the film as variable, and the import transcodes it to a
constant rate (pure functions here; the packets are read by `appliance.probe`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# A duration off the median by more than this share is not jitter of the timestamps'
# rounding (1 ms in Matroska is 6 % of a frame at 60 fps): the film is variable.
STEP_TOLERANCE = 0.10
# Rates a camera films at; a measured rate this close to one is taken as that one.
STANDARD_RATES = (15, 24, 25, 30, 48, 50, 60)
SNAP_TOLERANCE = 0.04


@dataclass(frozen=True)
class FrameTiming:
    """How evenly a film's frames are spaced."""

    frames: int              # timed frames
    untimed: int             # frames without a timestamp (their time is unknown)
    median_step_s: float     # the usual frame duration
    shortest_step_s: float
    longest_step_s: float
    irregular_steps: int     # durations off the median by more than STEP_TOLERANCE

    @property
    def variable(self) -> bool:
        """True unless every frame lasts as long as the usual one."""
        return self.irregular_steps > 0 or self.untimed > 0 or self.median_step_s <= 0

    def describe(self) -> str:
        """For the recording's notes: what was uneven."""
        if self.untimed:
            return f"{self.untimed} of {self.frames + self.untimed} frames had no timestamp"
        if self.median_step_s <= 0:
            return "its frames have no usable timestamps"
        return (f"frames lasted {self.shortest_step_s * 1000:.0f} to "
                f"{self.longest_step_s * 1000:.0f} ms, usually "
                f"{self.median_step_s * 1000:.0f} ms")


def frame_timing(pts_s: Sequence[float], untimed: int = 0) -> FrameTiming:
    """FrameTiming of frames shown at `pts_s` (any order: B-frames come out of order)."""
    times = sorted(pts_s)
    steps = [b - a for a, b in zip(times, times[1:])]
    if not steps:
        return FrameTiming(len(times), untimed, 0.0, 0.0, 0.0, 0)
    median = statistics.median(steps)
    off = sum(1 for step in steps if abs(step - median) > STEP_TOLERANCE * median)
    return FrameTiming(frames=len(times), untimed=untimed, median_step_s=median,
                       shortest_step_s=min(steps), longest_step_s=max(steps),
                       irregular_steps=off)


def snap_rate(rate: float) -> int:
    """`rate` as a whole number of frames a second: a camera's standard rate if it is
    that within SNAP_TOLERANCE (29.97 → 30, 23.976 → 24), else rounded."""
    for standard in STANDARD_RATES:
        if abs(rate - standard) <= SNAP_TOLERANCE * standard:
            return standard
    return max(1, round(rate))


def constant_rate(timing: FrameTiming, average_fps: float, max_fps: int) -> int:
    """The constant rate to transcode a variable film to: the camera's standard rate at
    or above both its usual rate (the median frame's) and its average (frames that come
    in bursts), so a stretch filmed at the camera's set rate keeps its frames, and one
    filmed slower repeats them and keeps its time. At most `max_fps`."""
    usual = 1 / timing.median_step_s if timing.median_step_s > 0 else 0.0
    rate = max(usual, average_fps) / (1 + SNAP_TOLERANCE)  # 29.97 is 30
    if rate < STANDARD_RATES[0]:
        return max(1, min(max_fps, math.ceil(rate)))
    return min([max_fps, *(r for r in STANDARD_RATES if r >= rate)])
