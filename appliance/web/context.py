"""What every view of the tablet UI shares: the application, the capture daemon's client
and the view log, kept on the Flask app."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from flask import current_app

from appliance.catalog import Catalog
from appliance.services.app import App
from appliance.services.daemon import DaemonClient

VIEW_AUDIT_GAP_S = 600.0   # one "viewed" entry per account, file and 10 minutes


@dataclass
class WebContext:
    """What every view needs: the application, the capture daemon, the view log."""

    app: App
    daemon: DaemonClient
    _viewed: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def catalog(self) -> Catalog:
        """The catalog (shortcut)."""
        return self.app.catalog

    def first_view(self, actor: str, kind: str, item_id: str) -> bool:
        """True if this account has not viewed this file in the last while: a video player
        makes many range requests for one viewing; the audit log wants one line."""
        key = (actor, kind, item_id)
        now = time.monotonic()
        with self._lock:
            last = self._viewed.get(key)
            if last is not None and now - last < VIEW_AUDIT_GAP_S:
                return False
            if len(self._viewed) > 10_000:
                self._viewed.clear()
            self._viewed[key] = now
            return True


def ctx() -> WebContext:
    """The web context of the running app."""
    context: WebContext = current_app.extensions["vigbox"]
    return context
