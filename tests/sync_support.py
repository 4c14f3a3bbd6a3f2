"""The office for sync tests: an age key pair and a folder, and the box's App set up to
sync there."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pyrage import x25519

from appliance.services.app import App


def office_key(tmp_path: Path) -> tuple[str, Path]:
    """A fresh office key: its public key (age1...) and its identity file."""
    identity = x25519.Identity.generate()
    key = tmp_path / "office.key"
    key.write_text(f"# office key for tests\n{identity}\n")
    return str(identity.to_public()), key


def with_sync(app: App, **sync: Any) -> App:
    """The same catalog with sync.* changed."""
    config = dataclasses.replace(app.config, sync=dataclasses.replace(app.config.sync, **sync))
    return App(config, app.catalog)


def office_folder(app: App, tmp_path: Path, **sync: Any) -> tuple[App, Path, Path]:
    """(the App syncing to a new office folder, that folder, the office's identity file)."""
    recipient, key = office_key(tmp_path)
    folder = tmp_path / "office"
    folder.mkdir()
    return with_sync(app, destination=f"file://{folder}", recipients=[recipient],
                     **{"device_id": "box-test", **sync}), folder, key
