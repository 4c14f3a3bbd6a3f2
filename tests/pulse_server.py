"""A private PulseAudio daemon for one test: a null sink whose monitor is a real-time mic.

Children whose environment is `server.env` reach it; PortAudio does so through ALSA's
`pulse` PCM (libasound2-plugins). Unlike an ALSA file PCM, the null sink is paced by the
clock, so it exercises the real sounddevice path with real timing on any Linux box.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

SINK = "vigbox_test"
TOOLS = ("pulseaudio", "pactl", "paplay")
ALSA_PULSE_PLUGIN = ("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so",
                     "/usr/lib/alsa-lib/libasound_module_pcm_pulse.so")
INSTALL_HINT = "run tools/bootstrap.sh test as root (pulseaudio pulseaudio-utils " \
               "libasound2-plugins alsa-utils libportaudio2)"


def require_pulseaudio() -> None:
    """Skip the test if the virtual-mic tools are missing, except as root (CI), where the
    bootstrap script installs them and their absence is a broken setup, not a reason to skip."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not any(glob.glob(p) for p in ALSA_PULSE_PLUGIN):
        missing.append("ALSA pulse plugin")
    if not missing:
        return
    message = f"{', '.join(missing)} not installed; {INSTALL_HINT}"
    if os.geteuid() != 0:
        pytest.skip(message)
    pytest.fail(message)


class PulseServer:
    """A `pulseaudio` daemon in a temporary directory, ready when `start()` returns."""

    def __init__(self, *, rate: int = 48_000, channels: int = 1,
                 ready_timeout_s: float = 10.0) -> None:
        self.rate = rate
        self.channels = channels
        self.ready_timeout_s = ready_timeout_s
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    @property
    def socket(self) -> Path:
        """The native protocol socket clients connect to."""
        assert self.dir is not None, "the server is not started"
        return self.dir / "native"

    def start(self) -> None:
        """Start the daemon and wait until the null sink's monitor is the default source."""
        # A fresh directory each time: a killed daemon leaves its socket behind, and a new
        # daemon then fails to bind it ("Address already in use").
        self.dir = Path(tempfile.mkdtemp(prefix="vigbox-pulse-"))
        script = self.dir / "server.pa"
        # norewinds: when a player connects, a rewinding null sink re-renders audio its
        # monitor has already delivered, and the "mic" loses ~10 ms of samples.
        script.write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            f"load-module module-null-sink sink_name={SINK} rate={self.rate} "
            f"channels={self.channels} norewinds=1\n"
            f"set-default-source {SINK}.monitor\n")
        # Clients must not autospawn a replacement when a test kills the server.
        (self.dir / "client.conf").write_text("autospawn = no\n")
        self.env = {**_clean_environ(), "PULSE_SERVER": f"unix:{self.socket}",
                    "PULSE_CLIENTCONFIG": str(self.dir / "client.conf")}
        daemon_env = {**_clean_environ(), "HOME": str(self.dir),
                      "XDG_RUNTIME_DIR": str(self.dir), "XDG_CONFIG_HOME": str(self.dir)}
        # As root no --system is needed (it only warns); a private HOME/runtime dir and no pid
        # file keep it apart from any other pulseaudio on the machine.
        argv = ["pulseaudio", "-n", "-F", str(script), "--daemonize=no", "--use-pid-file=no",
                "--exit-idle-time=-1", "--disallow-exit", "--realtime=no",
                "--high-priority=no", "--log-target=stderr"]
        with open(self.dir / "pulseaudio.log", "wb") as log:
            self.proc = subprocess.Popen(argv, env=daemon_env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log,
                                         start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                info = subprocess.run(["pactl", "info"], env=self.env, capture_output=True,
                                      text=True, timeout=2)
            except subprocess.TimeoutExpired:
                continue
            if f"Default Source: {SINK}.monitor" in info.stdout:
                return
            time.sleep(0.05)
        raise RuntimeError(f"pulseaudio was not ready within {self.ready_timeout_s:g} s:\n"
                           f"{self.log_tail()}")

    def play(self, wav: Path) -> subprocess.Popen[bytes]:
        """Start playing a WAV file into the null sink; the caller waits for it. Its
        errors go to the server's log, so no pipe is left for the caller to close."""
        assert self.dir is not None
        with open(self.dir / "paplay.log", "ab") as log:
            return subprocess.Popen(["paplay", f"--device={SINK}", str(wav)], env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=log)

    def signal(self, signum: int) -> None:
        """Send a signal to the daemon (SIGSTOP: a hung server; SIGKILL: a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def kill(self) -> None:
        """The server dies at once, as in a crash; `stop()` still cleans up."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(5)

    def stop(self) -> None:
        """Terminate (then kill) the daemon and remove its directory; safe twice."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(3)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def log_tail(self, lines: int = 20) -> str:
        """The end of the daemon's log, for failure messages."""
        if self.dir is None:
            return ""
        try:
            text = (self.dir / "pulseaudio.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> PulseServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _clean_environ() -> dict[str, str]:
    """The environment without anything that points at another sound server or session."""
    drop = ("PULSE_", "PIPEWIRE_", "DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}
