"""The box's SSH key for the office (SFTP): made once on the box, never leaving it; only
its public half is given to the office."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.fsutil import atomic_write_bytes
from appliance.services.app import App
from appliance.sync.plan import device_id


def device_key_path(app: App) -> Path:
    """sync.identity, else keys/device_ed25519 in the data dir."""
    configured = app.config.sync.identity
    return Path(configured) if configured else app.layout.keys_dir / "device_ed25519"


def known_hosts_path(app: App) -> Path:
    """sync.known_hosts, else keys/known_hosts in the data dir."""
    configured = app.config.sync.known_hosts
    return Path(configured) if configured else app.layout.keys_dir / "known_hosts"


def init_device_key(app: App) -> tuple[bool, str]:
    """Make the key if there is none (never replace one); (made now, public key line)."""
    path = device_key_path(app)
    comment = f"vigbox-{device_id(app.config, app.layout.root)}"
    made = False
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH)
        old = os.umask(0o077)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, private)
            atomic_write_bytes(path.with_name(path.name + ".pub"),
                               public + f" {comment}\n".encode())
        finally:
            os.umask(old)
        app.catalog.audit.append("keys.init", path.name, actor="cli")
        made = True
    pub = path.with_name(path.name + ".pub")
    if pub.exists():
        return made, pub.read_text().strip()
    loaded = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    line = loaded.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                            serialization.PublicFormat.OpenSSH).decode()
    return made, f"{line} {comment}"
