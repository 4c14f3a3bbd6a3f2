"""ffmpeg children yield to capture: every thread niced, idle I/O, and their own CPU group
(a new session's autogroup) niced too, or niceness would count for nothing."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from appliance import ffmpeg_tool

BUSY = ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i",
        "testsrc2=size=640x360:rate=30", "-t", "20", "-c:v", "libx264", "-threads", "4",
        "-f", "null", "-"]


def thread_nices(pid: int) -> list[int]:
    """The niceness of every thread of a process (field 19 of /proc/<pid>/task/*/stat)."""
    nices = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        fields = stat.read_text().rsplit(")", 1)[1].split()
        nices.append(int(fields[16]))
    return nices


def test_a_niced_child_is_niced_in_every_thread_in_idle_io_and_in_its_group() -> None:
    proc = ffmpeg_tool.spawn(BUSY, stdout=subprocess.DEVNULL, nice=10)
    try:
        deadline = time.monotonic() + 10
        while len(thread_nices(proc.pid)) < 3:   # x264 starts its threads
            assert proc.poll() is None and time.monotonic() < deadline, "ffmpeg did not run"
            time.sleep(0.05)
        assert set(thread_nices(proc.pid)) == {10}
        io = subprocess.run(["ionice", "-p", str(proc.pid)], capture_output=True, text=True,
                            timeout=10).stdout
        assert io.strip().startswith("idle"), io
        autogroup = Path(f"/proc/{proc.pid}/autogroup")
        if autogroup.exists():  # kernels with autogroups: its group is niced too
            assert autogroup.read_text().split()[-1] == "10"
        else:
            pytest.skip("this kernel has no autogroups")
    finally:
        ffmpeg_tool.stop_process(proc)
        assert proc.stderr is not None
        proc.stderr.close()
