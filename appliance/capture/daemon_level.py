"""The capture daemon's microphone level, for `vigbox doctor`: measured by the daemon, which
owns the microphone, between recordings.

A USB microphone on the Pi is an exclusive ALSA device: whoever listens holds it. So the
daemon listens itself, and a recording that starts meanwhile (a press during a doctor's
run) waits for the listen to end, a second or so, rather than finding the microphone
taken and failing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from appliance.capture.mic_level import LISTEN_S, listen
from appliance.capture.sources import Microphone
from appliance.errors import BusyError, InputError

log = logging.getLogger(__name__)
# The longest a listen can hold the microphone: a second of sound up to 3 s late (listen's
# bound), then a USB microphone's bounded stop (two 3 s bounds in mic_sounddevice), and room.
LISTEN_BOUND_S = 15.0
IN_USE = "in use by the recording"   # `vigbox doctor` shows it as it is


class LevelMeter:
    """Listens to the daemon's microphone on request, never while it records, and makes a
    recording that starts meanwhile wait for the listen (`mic_free`).

    `status` is the daemon's own (its "state", and "recording" while a session runs)."""

    def __init__(self, mic: Microphone | None, status: Callable[[], dict[str, Any]], *,
                 seconds: float = LISTEN_S) -> None:
        self._mic = mic
        self._status = status
        self.seconds = seconds
        self._changed = threading.Condition()
        self._listening = False
        self._starting = 0     # recordings between their wait and the end of their start
        self._closed = False

    @contextmanager
    def mic_free(self) -> Iterator[None]:
        """Held by a recording's start: waits (at most LISTEN_BOUND_S) for a listen to end,
        and no listen begins until the start is over. BusyError if the listen overruns."""
        with self._changed:
            if self._listening:
                log.info("a recording waits for the microphone's level measurement to end")
            if not self._changed.wait_for(lambda: not self._listening, LISTEN_BOUND_S):
                raise BusyError(f"the microphone's level measurement did not end within "
                                f"{LISTEN_BOUND_S:g} s; try again")
            self._starting += 1
        try:
            yield
        finally:
            with self._changed:
                self._starting -= 1

    def measure(self) -> dict[str, Any]:
        """Listen for `seconds` and return {"peak_dbfs", "rms_dbfs", "seconds"}. BusyError
        while recording (or starting, finalizing, shutting down), InputError without a
        microphone, MicrophoneError if it fails."""
        if self._mic is None:
            raise InputError("this box has no microphone (microphone.backend = \"none\"): "
                             "there is no level to measure")
        with self._changed:
            if self._closed:
                raise BusyError("the recorder is stopping")
            if self._starting:
                raise BusyError(IN_USE)
            if self._listening:
                raise BusyError("the microphone's level is being measured already; "
                                "try again in a moment")
            self._listening = True   # from here no recording starts until the listen ends
        try:
            # Checked after claiming the microphone: a start cannot slip in between.
            status = self._status()
            if status["state"] in ("recording", "finalizing") or status["recording"]:
                raise BusyError(IN_USE)
            if status["state"] == "shutting_down":
                raise BusyError("the box is shutting down")
            level = listen(self._mic, self.seconds)
        finally:
            with self._changed:
                self._listening = False
                self._changed.notify_all()
        log.info("microphone level: peak %.1f dBFS, RMS %.1f dBFS over %g s",
                 level.peak_dbfs, level.rms_dbfs, level.seconds)
        return {"peak_dbfs": level.peak_dbfs, "rms_dbfs": level.rms_dbfs,
                "seconds": level.seconds}

    def close(self) -> None:
        """Refuse new listens and wait (bounded) for one in progress: the daemon is
        about to close the microphone."""
        with self._changed:
            self._closed = True
            if not self._changed.wait_for(lambda: not self._listening, LISTEN_BOUND_S):
                log.warning("the microphone's level measurement did not end within %g s",
                            LISTEN_BOUND_S)
