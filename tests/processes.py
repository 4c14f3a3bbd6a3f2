"""The capture daemon as a real child process, always stopped and reaped."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType

STOP_TIMEOUT_S = 30


def write_test_config(path: Path, data_dir: Path) -> Path:
    """A config for tests: the data dir, simulated camera, microphone, buttons and clock
    (setting it never touches this machine's), small limits."""
    path.write_text(f'''data_dir = "{data_dir}"
log_level = "debug"
[camera]
backend = "synthetic"
[microphone]
backend = "synthetic"
[gpio]
backend = "mock"
[clock]
backend = "simulated"
[recording]
max_seconds = 120
reserve_mb = 16
low_disk_mb = 16
''')
    return path


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
                 timeout: float = STOP_TIMEOUT_S) -> None:
    """`sig` (as systemd or a terminal would send), then SIGKILL if it does not go in
    `timeout`; always reaped."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


class DaemonProcess:
    """`python -m appliance capture ARGS` for the length of a `with` block.

    Its log goes to a file (a pipe nobody reads could fill and stall the daemon);
    on exit it gets SIGTERM, as from systemd, then SIGKILL if it does not stop.
    """

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance", "capture", *args],
                                     env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._log)
        self.log = ""

    @property
    def returncode(self) -> int | None:
        """The exit status once stopped."""
        return self.proc.returncode

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.seek(0)
        self.log = self._log.read().decode("utf-8", "replace")
        self._log.close()
