"""Sync to the office as the CLI and the tablet ask for it: one run, and what the Sync
screen shows."""

from __future__ import annotations

import threading
from typing import Any

from appliance.catalog import SyncStatus
from appliance.services.app import App
from appliance.sync.destinations import open_destination
from appliance.sync.run import Summary, SyncRun


def run_sync(app: App, *, manual: bool = False,
             stop: threading.Event | None = None) -> Summary:
    """One sync run (SyncBusyError if one is running); `manual`: a person asked for it,
    so files waiting for their next try and a stop an administrator fixed go now."""
    config = app.current_config()
    return SyncRun(app.catalog, config, open_destination(config, app.layout),
                   manual=manual, stop=stop).run()


def status(app: App) -> dict[str, Any]:
    """The destination's condition and the files waiting, in flight, done and failed."""
    items = app.catalog.sync.queue()
    counts = {str(s): sum(1 for i in items if i.status is s) for s in SyncStatus}
    return {"configured": bool(app.current_config().sync.destination),
            "state": app.catalog.sync.state(), "counts": counts,
            "items": [i.to_json() for i in items[-200:]]}
