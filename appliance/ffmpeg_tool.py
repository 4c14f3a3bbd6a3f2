"""The one place ffmpeg and ffprobe are started: argv lists, no shell, bounded stderr.

Commands are built elsewhere as pure functions (usually with ffmpeg-python's
`.compile()`); this module starts them (own session, priority), stops them
(terminate → wait → kill) and turns failures into MediaError. `appliance.probe`
reads ffprobe's answers.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
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


@functools.cache
def _orphan_guard() -> tuple[str, ...]:
    """A prefix that kills the child when the thread that started it dies (even by
    SIGKILL), so a crashed runner never leaves an ffmpeg writing into a file that the
    next runner of the same job is making. util-linux's setpriv does it without a
    preexec_fn (which is unsafe with threads)."""
    setpriv = shutil.which("setpriv")
    return (setpriv, "--pdeathsig", "KILL", "--") if setpriv else ()


@functools.cache
def _tool(name: str) -> str | None:
    return shutil.which(name)


def priority_prefix(own: int, target: int) -> tuple[tuple[str, ...], bool]:
    """`nice` (and, for background work, idle-class `ionice`) run before ffmpeg, so every
    thread ffmpeg starts inherits them: on Linux a setpriority() after the start changes
    only its main thread. Also whether the prefix sets the niceness."""
    prefix: tuple[str, ...] = ()
    niced = False
    if target > own and (nice_bin := _tool("nice")):
        prefix += (nice_bin, "-n", str(target - own))
        niced = True
    ionice = _tool("ionice")
    if target > 0 and ionice:
        # Idle class: read and write only when the disk has nothing else to do, so the
        # recording's journal never queues behind a render. -t: run even if refused.
        prefix += (ionice, "-t", "-c", "3")
    return prefix, niced


def set_autogroup_nice(pid: int, nice: int) -> None:
    """Give the child's scheduling group its niceness too. With the kernel's autogroups
    (sched_autogroup_enabled, the default of most distribution and Raspberry Pi kernels
    outside a CPU cgroup) every new session is its own group, CPU time is shared between
    groups first, and a thread's niceness only counts within its group: an ffmpeg at
    nice 10 in its own session took as much CPU as the capture daemon and made it drop
    frames. Best effort: no autogroups, or a negative value without CAP_SYS_NICE."""
    if nice == 0:
        return  # a new group starts at 0
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        pass


def spawn(argv: Sequence[str], *, stdin: int | None = subprocess.DEVNULL,
          stdout: int | None = subprocess.PIPE, nice: int = 0,
          tied_to_thread: bool = False) -> subprocess.Popen[bytes]:
    """Start ffmpeg/ffprobe: argv list, its own session (a terminal's Ctrl-C or a signal
    to our group never reaches it half-way; we stop it), at niceness `nice` (0: ours;
    never less nice than we are) for all its threads and its session's scheduling
    group; a child niced above 0 also gets idle-class I/O. `tied_to_thread`: it dies
    if the calling thread dies, for a caller that waits for it on this thread (a job's
    render), never for a long-lived child started from a short-lived thread."""
    require(argv[0])
    log.debug("running %s", " ".join(argv))
    guard = _orphan_guard() if tied_to_thread else ()
    own = os.getpriority(os.PRIO_PROCESS, 0)  # this thread's: Linux nices threads
    target = max(own, min(19, nice)) if nice else own
    prefix, niced = priority_prefix(own, target)
    try:
        proc = subprocess.Popen([*guard, *prefix, *argv], stdin=stdin, stdout=stdout,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        raise MediaError(f"cannot start {argv[0]}: {e.strerror}") from None
    # Popen returns once the first program has been executed, so the new session (and
    # its autogroup) exists; ffmpeg has not started its threads yet.
    set_autogroup_nice(proc.pid, target)
    if target > own and not niced:
        try:
            os.setpriority(os.PRIO_PROCESS, proc.pid, target)
        except OSError:
            pass  # only a priority; the child may already have ended
    return proc


def _finish(proc: subprocess.Popen[bytes], *, timeout: float, what: str, argv0: str,
            quiet: bool) -> tuple[bytes, str]:
    """Wait for a spawned child; its stdout and stderr's tail, or MediaError."""
    assert proc.stderr is not None
    tail = StderrTail(proc.stderr)
    chunks: list[bytes] = []
    reader = None
    if proc.stdout is not None:
        reader = threading.Thread(target=_drain, args=(proc.stdout, chunks), daemon=True,
                                  name="ffmpeg-stdout")
        reader.start()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise MediaError(f"{what}: {argv0} took longer than {timeout:.0f} s") from None
    except BaseException:
        stop_process(proc)  # interrupted (SIGTERM, Ctrl-C): the child never outlives us
        raise
    if reader is not None:
        reader.join()
    out = b"".join(chunks)
    text = tail.text()
    # ffmpeg 5 can exit 0 although writing the trailer (the file's index) failed.
    if proc.returncode != 0 or "Error writing trailer" in text:
        # quiet: a failure the caller expects and explains (e.g. probing a file that is
        # not a video): the detail is for debugging, not an error of the box.
        log.log(logging.DEBUG if quiet else logging.ERROR, "%s failed (exit %s):\n%s", what,
                proc.returncode, text)
        last = text.strip().splitlines()[-1] if text.strip() else "no message"
        raise MediaError(f"{what} failed: {last}")
    return out, text


def _drain(stream: IO[bytes], chunks: list[bytes]) -> None:
    for block in iter(lambda: stream.read(65536), b""):
        chunks.append(block)
    stream.close()


def run(argv: Sequence[str], *, timeout: float, what: str, quiet: bool = False,
        nice: int = 0) -> str:
    """Run ffmpeg/ffprobe to completion; its stdout as text."""
    return run_bytes(argv, timeout=timeout, what=what, quiet=quiet,
                     nice=nice).decode("utf-8", "replace")


def run_bytes(argv: Sequence[str], *, timeout: float, what: str, quiet: bool = False,
              nice: int = 0) -> bytes:
    """Run ffmpeg/ffprobe to completion; its stdout as bytes (raw samples, frames)."""
    proc = spawn(argv, nice=nice, tied_to_thread=True)
    return _finish(proc, timeout=timeout, what=what, argv0=argv[0], quiet=quiet)[0]


def run_reporting(argv: Sequence[str], *, timeout: float, what: str,
                  nice: int = 0) -> list[str]:
    """Run ffmpeg to completion, its output discarded; the lines it printed on stderr.
    A decode reports damage there while still exiting 0."""
    proc = spawn(argv, stdout=subprocess.DEVNULL, nice=nice, tied_to_thread=True)
    text = _finish(proc, timeout=timeout, what=what, argv0=argv[0], quiet=False)[1]
    return [line for line in text.splitlines() if line.strip()]
