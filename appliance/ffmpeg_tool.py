"""The one place ffmpeg and ffprobe are run: argv lists, no shell, bounded stderr.

Commands are built elsewhere as pure functions (usually with ffmpeg-python's
`.compile()`); this module only runs them and turns failures into MediaError.
"""

from __future__ import annotations

import collections
import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from appliance.errors import MediaError

log = logging.getLogger(__name__)
STDERR_LINES = 200


def require(tool: str = "ffmpeg") -> str:
    """The tool's path, or MediaError saying how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise MediaError(f"{tool} is not installed; install it with `apt-get install ffmpeg`")
    return path


class StderrTail:
    """Drains a child's stderr on a thread, keeping only the last lines."""

    def __init__(self, stream: IO[bytes], lines: int = STDERR_LINES) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True,
                                        name="ffmpeg-stderr")
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace").rstrip())
        stream.close()

    def text(self, timeout: float = 2.0) -> str:
        """What was kept, once the stream has ended (or after `timeout`)."""
        self._thread.join(timeout)
        return "\n".join(self.lines)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """terminate → wait → kill → wait: a child never outlives this call."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def run(argv: Sequence[str], *, timeout: float, what: str, quiet: bool = False) -> str:
    """Run ffmpeg/ffprobe to completion; return stdout, or raise MediaError with stderr's tail."""
    require(argv[0])
    log.debug("running %s", " ".join(argv))
    try:
        proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaError(f"{what}: {argv[0]} took longer than {timeout:.0f} s") from None
    # ffmpeg 5 can exit 0 although writing the trailer (the file's index) failed.
    trailer_failed = b"Error writing trailer" in proc.stderr
    if proc.returncode != 0 or trailer_failed:
        tail = "\n".join(proc.stderr.decode("utf-8", "replace").splitlines()[-STDERR_LINES:])
        # quiet: a failure the caller expects and explains (e.g. probing a file that is
        # not a video): the detail is for debugging, not an error of the box.
        log.log(logging.DEBUG if quiet else logging.ERROR, "%s failed (exit %s):\n%s", what,
                proc.returncode, tail)
        last = tail.splitlines()[-1] if tail else "no message"
        raise MediaError(f"{what} failed: {last}")
    return proc.stdout.decode("utf-8", "replace")


def probe(path: Path, *, count_packets: bool = False, timeout: float = 60,
          quiet: bool = False) -> dict[str, Any]:
    """ffprobe's JSON description of a media file (format and streams)."""
    argv = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
    if count_packets:
        argv.append("-count_packets")
    out = run([*argv, str(path)], timeout=timeout, what=f"reading {path.name}", quiet=quiet)
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise MediaError(f"ffprobe gave unreadable output for {path.name}") from None
