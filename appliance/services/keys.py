"""The box's SSH key for the office (SFTP): made once on the box, never leaving it; only
its public half is given to the office."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.errors import InputError, SyncNetworkError, SyncStopError
from appliance.fsutil import atomic_write_bytes
from appliance.services.app import App
from appliance.sync.dest_sftp import key_files
from appliance.sync.plan import device_id


def device_key_path(app: App) -> Path:
    """The box's SSH key file (sync.identity, else keys/device_ed25519)."""
    return key_files(app.config, app.layout)[0]


def known_hosts_path(app: App) -> Path:
    """The office's pinned host key file (sync.known_hosts, else keys/known_hosts)."""
    return key_files(app.config, app.layout)[1]


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


def office_host_key(app: App, *, timeout: float = 20.0) -> tuple[str, str, str]:
    """The host key the office's SFTP server offers now: (known_hosts host id, key line,
    SHA256 fingerprint as OpenSSH prints it). Nothing is trusted or stored here."""
    parts = urlsplit(app.current_config().sync.destination)
    if parts.scheme != "sftp" or not parts.hostname:
        raise InputError("sync.destination is not an sftp:// address: there is no host key "
                         "to pin")
    port = parts.port or 22
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout) as sock, \
                paramiko.Transport(sock) as transport:
            transport.start_client(timeout=timeout)
            key = transport.get_remote_server_key()
    except (OSError, paramiko.SSHException, EOFError) as e:
        raise SyncNetworkError(f"cannot reach {parts.hostname}:{port} ({e})") from None
    host_id = parts.hostname if port == 22 else f"[{parts.hostname}]:{port}"
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return host_id, f"{key.get_name()} {key.get_base64()}", f"SHA256:{digest}"


def pin_office_host_key(app: App, fingerprint: str, *, actor: str) -> str:
    """Pin the office's host key in known_hosts, only if it has the fingerprint the office
    gave the administrator (read out over the phone, say): never trust on first use."""
    host_id, line, found = office_host_key(app)
    if fingerprint.strip() != found:
        raise SyncStopError(f"the office offers a key with fingerprint {found}, not "
                            f"{fingerprint}: nothing was pinned; check with the office",
                            kind="host_key")
    path = known_hosts_path(app)
    kept = [ln for ln in (path.read_text().splitlines() if path.exists() else [])
            if ln.split(" ", 1)[0] != host_id]
    atomic_write_bytes(path, ("\n".join([*kept, f"{host_id} {line}"]) + "\n").encode())
    app.catalog.audit.append("keys.pin_office", host_id, actor=actor,
                             detail={"fingerprint": found})
    return found
