"""A whole box for the appliance tests and bench/appliance.py: a data dir with a config as
an installed box has one (simulated camera, microphone and button, the tablet UI on a
free port, sync to an office folder with the office's own age key), an admin account and
a case with consent, and its four services run by the supervisor as their units run them.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pyrage import x25519

from appliance.catalog import Consent
from appliance.config import load_config
from appliance.errors import ControlError
from appliance.services import accounts
from appliance.services.app import open_app
from appliance.services.cases import add_case
from appliance.services.daemon import DaemonClient
from appliance.supervisor import Supervisor
from tests.tablet import Client

CASE = "VIG-2026-001"
ACCOUNT = "admin"
PASSPHRASE = "correct horse battery staple"
T = TypeVar("T")


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(probe: Callable[[], T | None], what: str, timeout: float,
             every: float = 0.05) -> T:
    """Poll `probe` until it gives something true (not None, False, 0 or empty); that;
    AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


@dataclass
class Box:
    """A running box: its services, its control socket, its office."""

    data_dir: Path
    config_path: Path
    office_dir: Path
    office_identity: x25519.Identity
    url: str
    sup: Supervisor
    daemon: DaemonClient   # the capture daemon's control socket, as the web service uses it

    def tablet(self) -> Client:
        """A logged-in tablet."""
        client = Client(self.url, ACCOUNT, PASSPHRASE)
        client.log_in()
        return client

    def capture_status(self) -> dict[str, Any] | None:
        """The daemon's status, None while it is not answering."""
        try:
            return self.daemon.status()
        except ControlError:
            return None

    def web_answers(self) -> bool:
        """True once the tablet UI serves its login page."""
        try:
            Client(self.url).request("GET", "/login", timeout=5)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return True

    def wait_ready(self, timeout: float = 60) -> None:
        """Until capture is idle and the UI answers."""
        wait_for(lambda: (self.capture_status() or {}).get("state") == "ready",
                 "the capture daemon to be ready", timeout)
        wait_for(self.web_answers, "the tablet UI to answer", timeout)

    def wait_recording(self, min_s: float, timeout: float = 60) -> str:
        """Until a recording has run `min_s` seconds; its id."""
        def running() -> str | None:
            rec = (self.capture_status() or {}).get("recording") or {}
            return rec["id"] if rec.get("elapsed_s", 0) >= min_s else None
        return wait_for(running, f"{min_s:g} s of recording", timeout)

    def recording(self, rec_id: str) -> dict[str, Any]:
        """The catalog's row of a recording, read as the services write it."""
        with open_app(load_config(self.config_path)) as app:
            return app.catalog.recordings.get(rec_id).to_json()

    def log(self, name: str) -> str:
        """A service's log so far (for failure messages)."""
        path = self.sup.services[name].log_path
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def make_box_config(root: Path, *, port: int, bandwidth_kbps: int = 0,
                    resolution: str = "720p") -> tuple[Path, Path, x25519.Identity]:
    """Write the box's config (and make its office folder, key, account and case); the
    config's path, the office folder and the office's identity."""
    data_dir = root / "data"
    office = root / "office"
    office.mkdir(parents=True)
    identity = x25519.Identity.generate()
    config_path = root / "box.toml"
    config_path.write_text("\n".join([
        f"data_dir = {json.dumps(str(data_dir))}",
        "[camera]", 'backend = "synthetic"', f"resolution = {json.dumps(resolution)}",
        "[microphone]", 'backend = "synthetic"',
        "[gpio]", 'backend = "mock"',
        "[clock]", 'backend = "simulated"',
        # Never this machine: the idle long hold is not pressed here, but if it were...
        "[daemon]", 'shutdown_command = ["true"]',
        "[recording]", "max_seconds = 300", "reserve_mb = 16", "low_disk_mb = 16",
        "[web]", 'host = "127.0.0.1"', f"port = {port}",
        "[sync]", f"destination = {json.dumps('file://' + str(office))}",
        f"recipients = [{json.dumps(str(identity.to_public()))}]",
        f"bandwidth_kbps = {bandwidth_kbps}", "retry_first_s = 10.0", "",
    ]))
    with open_app(load_config(config_path)) as app:
        add_case(app.catalog, CASE, list(Consent), when=None, actor="test")
        accounts.add_user(app.catalog, ACCOUNT, PASSPHRASE, admin=True, actor="test")
    return config_path, office, identity


@contextmanager
def running_box(root: Path, *, services: tuple[str, ...] = ("capture", "encode", "web"),
                bandwidth_kbps: int = 0, resolution: str = "720p",
                on_event: Callable[[str], None] | None = None) -> Iterator[Box]:
    """A box with its services started (and stopped, in order, at the end)."""
    port = free_port()
    config_path, office, identity = make_box_config(root, port=port,
                                                    bandwidth_kbps=bandwidth_kbps,
                                                    resolution=resolution)
    config = load_config(config_path)
    data_dir = Path(config.data_dir)
    with Supervisor(data_dir, config=config_path, on_event=on_event) as sup:
        sup.start(services)
        yield Box(data_dir, config_path, office, identity, f"http://127.0.0.1:{port}/", sup,
                  DaemonClient(config.socket))
