"""`vigbox demo`: the whole appliance, simulated, on any Linux machine.

The demo box is an ordinary data dir with its own config (demo.toml): the synthetic
camera and microphone, gpiozero's mock pins for the button and light, a simulated clock
setter, the tablet UI, and sync to a folder beside it that plays the office, with an
office key made for the demo so `vigbox office decrypt` shows the round trip. Holding
the (virtual) button while idle "powers the box off": it ends the demo.
"""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519

from appliance.catalog import Consent
from appliance.config import load_config
from appliance.errors import NotFoundError
from appliance.fsutil import atomic_write_bytes
from appliance.services import accounts
from appliance.services.app import open_app
from appliance.services.cases import add_case
from appliance.sync.office import load_identities

CASE = "DEMO-1"
ACCOUNT = "guider"
ACTOR = "demo"
SYNC_EVERY_S = 60.0   # the box's timer says 15 minutes; a demo shows it sooner
# Easy to read out and type on a tablet: no 0/o, 1/l look-alikes.
ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"


@dataclass(frozen=True)
class DemoBox:
    """What the demo made, and how to use it."""

    config: Path
    office_dir: Path     # where the box syncs to ("the office")
    office_key: Path     # the office's age identity, made for the demo
    socket: Path         # the capture daemon's control socket
    url: str
    account: str
    passphrase: str


def prepare(data_dir: Path, *, host: str, port: int, stop_pid: int) -> DemoBox:
    """Make (or refresh) the demo box in `data_dir`: its config, the office's folder and
    key, a case with consent, and a guider account with a new passphrase."""
    data_dir.mkdir(parents=True, exist_ok=True)
    office = data_dir / "office"
    inbox = office / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    key = office / "office.key"
    recipient = _office_recipient(key)
    config_path = data_dir / "demo.toml"
    atomic_write_bytes(config_path, demo_config(data_dir, inbox, recipient, host=host,
                                                port=port, stop_pid=stop_pid).encode())
    config = load_config(config_path)
    passphrase = new_passphrase()
    with open_app(config) as app:
        try:
            app.catalog.cases.get(CASE)
        except NotFoundError:
            add_case(app.catalog, CASE, list(Consent), when=None, actor=ACTOR)
        if ACCOUNT not in {u.name for u in accounts.list_users(app.catalog)}:
            accounts.add_user(app.catalog, ACCOUNT, passphrase, admin=True, actor=ACTOR)
        else:
            accounts.set_passphrase(app.catalog, ACCOUNT, passphrase, actor=ACTOR)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return DemoBox(config=config_path, office_dir=inbox, office_key=key, socket=config.socket,
                   url=f"http://{shown}:{port}/", account=ACCOUNT, passphrase=passphrase)


def new_passphrase(groups: int = 4) -> str:
    """A random passphrase of 4-letter groups (20 bits each)."""
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(4))
                    for _ in range(groups))


def demo_config(data_dir: Path, inbox: Path, recipient: str, *, host: str, port: int,
                stop_pid: int) -> str:
    """The demo box's config file (TOML)."""
    # The idle long hold runs this instead of powering the machine off: it ends the demo.
    shutdown = [sys.executable, "-c",
                f"import os, signal; os.kill({stop_pid}, signal.SIGTERM)"]
    return "\n".join([
        "# Written by `vigbox demo` at each start: the simulated box.",
        f"data_dir = {json.dumps(str(data_dir))}",
        'device_name = "demo box"',
        "[camera]", 'backend = "synthetic"',
        "[microphone]", 'backend = "synthetic"',
        "[gpio]", 'backend = "mock"',
        "[clock]", 'backend = "simulated"',
        "[daemon]", f"shutdown_command = {json.dumps(shutdown)}",
        "[web]", f"host = {json.dumps(host)}", f"port = {port}",
        "[sync]", f"destination = {json.dumps('file://' + str(inbox))}",
        f"recipients = [{json.dumps(recipient)}]",
        "retry_first_s = 10.0", "retry_max_s = 120.0",
        "",
    ])


def _office_recipient(key: Path) -> str:
    """The demo office's public key; its identity file is made once (0600, as the
    temporary file it is renamed from)."""
    if not key.exists():
        identity = x25519.Identity.generate()
        atomic_write_bytes(key, f"# the demo office's age key (made by vigbox demo)\n"
                                f"# public key: {identity.to_public()}\n{identity}\n".encode())
    return str(load_identities(key)[0].to_public())
