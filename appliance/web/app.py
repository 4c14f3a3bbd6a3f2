"""The Flask app factory: one App (config + catalog) and one daemon client per process."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from flask import Flask, current_app

from appliance.catalog import Catalog
from appliance.services.app import App
from appliance.services.daemon import DaemonClient
from appliance.web import errors, security

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


def create_app(app: App, *, daemon: DaemonClient | None = None, tls: bool = False,
               testing: bool = False) -> Flask:
    """The tablet UI for an open App (catalog and config)."""
    from appliance.web import api_capture, api_library, api_media, auth, media, openapi, pages

    flask_app = Flask(__name__)
    flask_app.testing = testing
    flask_app.secret_key = security.secret_key(app.layout.root / "web-secret.key")
    flask_app.config["MAX_CONTENT_LENGTH"] = app.config.web.max_upload_mb * 2**20
    flask_app.config["MAX_FORM_MEMORY_SIZE"] = 64 * 1024
    flask_app.json.sort_keys = False  # type: ignore[attr-defined]
    flask_app.extensions["vigbox"] = WebContext(app, daemon or DaemonClient(app.config.socket))
    security.install(flask_app, idle_timeout_s=app.config.web.idle_timeout_min * 60,
                     secure_cookie=tls)
    errors.install(flask_app)
    for bp in (auth.bp, pages.bp, media.bp, api_capture.bp, api_library.bp, api_media.bp,
               openapi.bp):
        flask_app.register_blueprint(bp)
    return flask_app
