"""A live box for browser tests: the capture daemon, the encode worker and the web server
as real child processes on a temp data dir, an admin account, and a browser tab per test
in each engine."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from appliance.capture.control import request
from appliance.errors import ControlError
from tests.browser.engines import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ENGINES,
    TABLET,
    XVFB,
    Engine,
    missing_binaries,
    open_engine,
)
from tests.processes import write_test_config

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
CLI_TIMEOUT_S = 60
ADMIN, PASSPHRASE = "admin", "tablet passphrase 42"
LOG_TAIL_CHARS = 6000


class Child:
    """One `python -m appliance ...` process, its output kept in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "appliance", *args], env=env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def log_tail(self) -> str:
        """The end of what it wrote."""
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""
        return text[-LOG_TAIL_CHARS:]

    def stop(self) -> None:
        """SIGTERM, as from systemd; SIGKILL if it does not end; always reaped."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)


@dataclass
class Box:
    """The running box: its URL, data dir, environment and child processes."""

    root: Path
    data_dir: Path
    env: dict[str, str]
    socket: Path
    url: str = ""
    children: list[Child] = field(default_factory=list)

    def vigbox(self, *args: str, stdin: str | None = None) -> Any:
        """Run a `vigbox` command against this box; its --json output parsed."""
        proc = subprocess.run([sys.executable, "-m", "appliance", *args], env=self.env,
                              input=stdin, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT_S)
        assert proc.returncode == 0, f"vigbox {' '.join(args)} failed:\n{proc.stderr}"
        return json.loads(proc.stdout) if "--json" in args else proc.stdout

    def logs(self) -> str:
        """Each child's state and the tail of its log."""
        parts = []
        for child in self.children:
            state = "running" if child.alive() else f"exited {child.proc.returncode}"
            parts.append(f"----- {child.name} ({state}) {child.log_path}\n{child.log_tail()}")
        return "\n".join(parts)

    def check_alive(self) -> None:
        """Fail, with the logs, if a child has died."""
        dead = [c.name for c in self.children if not c.alive()]
        assert not dead, f"box processes died: {dead}\n{self.logs()}"

    def stop(self) -> None:
        """Stop every child, the web server first (it talks to the others)."""
        for child in reversed(self.children):
            child.stop()


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll_until(ready: Callable[[], bool], what: str, box: Box,
               timeout: float = START_TIMEOUT_S) -> None:
    """Wait for `ready()` with a deadline, failing early if a child died."""
    deadline = time.monotonic() + timeout
    while not ready():
        box.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{box.logs()}")
        time.sleep(0.05)


def _daemon_ready(path: Path) -> bool:
    try:
        return request(path, "status", timeout=2).get("state") == "ready"
    except ControlError:
        return False


def _web_ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/login")
        status = conn.getresponse().status
        conn.close()
        return status == 200
    except OSError:
        return False


def write_config(root: Path, data_dir: Path) -> Path:
    """Like tests/conftest.py's config_file: simulated camera, microphone and buttons."""
    return write_test_config(root / "config.toml", data_dir)


@pytest.fixture(scope="session")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """The capture daemon, encode worker and web server running on one temp data dir,
    with an administrator's account."""
    root = tmp_path_factory.mktemp("box")
    data_dir = root / "data"
    data_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGBOX_")}
    env["VIGBOX_CONFIG"] = str(write_config(root, data_dir))
    env.pop("NOTIFY_SOCKET", None)
    the_box = Box(root, data_dir, env, data_dir / "capture.sock")
    try:
        the_box.vigbox("passwd", "--user", ADMIN, "--stdin", stdin=PASSPHRASE + "\n")
        the_box.children.append(Child("capture", ["capture"], env, root))
        poll_until(lambda: _daemon_ready(the_box.socket), "the capture daemon", the_box)
        the_box.children.append(Child("encode-worker", ["encode-worker"], env, root))
        port = free_port()
        the_box.children.append(Child("web", ["web", "--host", "127.0.0.1", "--port",
                                              str(port)], env, root))
        poll_until(lambda: _web_ready(port), "the web server", the_box)
        the_box.url = f"http://127.0.0.1:{port}"
        the_box.check_alive()
        yield the_box
    finally:
        the_box.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """On a failure, show the box's logs and the page's console next to the traceback."""
    report: pytest.TestReport = yield
    if not report.failed:
        return report
    funcargs = getattr(item, "funcargs", {})
    if isinstance(funcargs.get("box"), Box):
        report.sections.append(("vigbox processes", funcargs["box"].logs()))
    page = funcargs.get("browser")
    if isinstance(page, Engine) and page.log():
        report.sections.append((f"{page.name} console", "\n".join(page.log()[-80:])))
    return report


@pytest.fixture(scope="session")
def xvfb_display() -> Iterator[str]:
    """A virtual X display for WebKit (Xvfb picks a free number and tells us)."""
    if missing_binaries("webkit"):
        pytest.skip(f"WebKit cannot run here: missing {', '.join(missing_binaries('webkit'))}")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([XVFB, "-displayfd", str(write_fd), "-screen", "0",
                             f"{TABLET[0] + 200}x4000x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            number = _read_display(pipe, proc)
        yield f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _read_display(pipe: Any, proc: subprocess.Popen[bytes]) -> int:
    import select
    deadline = time.monotonic() + START_TIMEOUT_S
    text = b""
    while not text.endswith(b"\n"):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"Xvfb did not start (exit {proc.poll()})")
        if select.select([pipe], [], [], 0.1)[0]:
            chunk = os.read(pipe.fileno(), 16)
            if not chunk:
                raise AssertionError("Xvfb closed its display pipe without a number")
            text += chunk
    return int(text)


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """Debian's Chromium, headless, one per session (each test gets a fresh context)."""
    if missing_binaries("chromium"):
        pytest.skip(f"Chromium cannot run here: missing {CHROMIUM}")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(params=ENGINES)
def browser(request: pytest.FixtureRequest, box: Box) -> Iterator[Engine]:
    """A fresh tab on the box in each engine, not logged in."""
    name = request.param
    if name == "chromium":
        engine = open_engine(name, base_url=box.url,
                             chromium=request.getfixturevalue("chromium_browser"))
    else:
        engine = open_engine(name, base_url=box.url,
                             display=request.getfixturevalue("xvfb_display"))
    try:
        yield engine
    finally:
        with contextlib.suppress(Exception):
            engine.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: $VIGBOX_SCREENSHOTS, else the test's temp dir."""
    target = Path(os.environ.get("VIGBOX_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target
