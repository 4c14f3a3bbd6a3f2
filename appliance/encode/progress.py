"""Running one ffmpeg job: progress parsed from `-progress pipe:1`, cancellable, bounded.

The job's owner learns the fraction done through `on_progress` and is asked
`should_cancel()` between progress reports (about twice a second); a cancel stops
ffmpeg (terminate → wait → kill) and raises JobCancelled.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from appliance import ffmpeg_tool
from appliance.errors import EncodeError

log = logging.getLogger(__name__)
POLL_S = 0.25


class JobCancelled(EncodeError):
    """The job was cancelled while it ran."""


def parse_progress(line: str, duration_s: float) -> float | None:
    """The fraction done from one `-progress` line, if the line says."""
    key, _, value = line.strip().partition("=")
    if key == "progress" and value == "end":
        return 1.0
    if key in ("out_time_us", "out_time_ms") and value.strip().lstrip("-").isdigit():
        # ffmpeg prints microseconds under both names (out_time_ms is misnamed).
        seconds = int(value) / 1e6
        if duration_s > 0:
            return min(1.0, max(0.0, seconds / duration_s))
    return None


def run_with_progress(argv: Sequence[str], *, duration_s: float, what: str,
                      on_progress: Callable[[float], None] = lambda f: None,
                      should_cancel: Callable[[], bool] = lambda: False,
                      timeout_s: float = 3600, nice: int = 0) -> None:
    """Run `argv` (built with progress_args) to the end; EncodeError on failure."""
    proc = ffmpeg_tool.spawn(argv, nice=nice, tied_to_thread=True)
    assert proc.stdout is not None and proc.stderr is not None
    stderr = ffmpeg_tool.StderrTail(proc.stderr)
    latest: list[float] = []
    reader = threading.Thread(target=_read_progress, args=(proc, duration_s, latest),
                              daemon=True, name="ffmpeg-progress")
    reader.start()
    deadline = time.monotonic() + timeout_s
    reported = -1.0
    try:
        while proc.poll() is None:
            if should_cancel():
                ffmpeg_tool.stop_process(proc)
                raise JobCancelled(f"{what}: cancelled")
            if time.monotonic() > deadline:
                ffmpeg_tool.stop_process(proc)
                raise EncodeError(f"{what}: took longer than {timeout_s:.0f} s")
            if latest and latest[-1] > reported:
                reported = latest[-1]
                on_progress(reported)
            time.sleep(POLL_S)
    finally:
        if proc.poll() is None:
            ffmpeg_tool.stop_process(proc)
        reader.join(5)
    tail = stderr.text()
    if proc.returncode != 0 or "Error writing trailer" in tail:
        log.error("%s failed (exit %s):\n%s", what, proc.returncode, tail)
        last = tail.strip().splitlines()[-1] if tail.strip() else f"exit {proc.returncode}"
        raise EncodeError(f"{what} failed: {last}")
    on_progress(1.0)


def _read_progress(proc: subprocess.Popen[bytes], duration_s: float,
                   latest: list[float]) -> None:
    assert proc.stdout is not None
    with proc.stdout:
        for raw in proc.stdout:
            fraction = parse_progress(raw.decode("utf-8", "replace"), duration_s)
            if fraction is not None:
                latest.append(fraction)
                del latest[:-1]
