"""The Flask app factory: one App (config + catalog) and one daemon client per process."""

from __future__ import annotations

from flask import Flask

from appliance.services.app import App
from appliance.services.daemon import DaemonClient
from appliance.web import (
    api_capture,
    api_clock,
    api_library,
    api_media,
    api_settings,
    api_shared,
    api_sync,
    auth,
    errors,
    media,
    openapi,
    pages,
    security,
    shared,
)
from appliance.web.context import WebContext


def create_app(app: App, *, daemon: DaemonClient | None = None, tls: bool = False,
               testing: bool = False) -> Flask:
    """The tablet UI for an open App (catalog and config)."""
    flask_app = Flask(__name__)
    flask_app.testing = testing
    flask_app.secret_key = security.secret_key(app.layout.root / "web-secret.key")
    flask_app.config["MAX_CONTENT_LENGTH"] = app.config.web.max_upload_mb * 2**20
    flask_app.config["MAX_FORM_MEMORY_SIZE"] = 64 * 1024
    flask_app.json.sort_keys = False  # type: ignore[attr-defined]
    flask_app.extensions["vigbox"] = WebContext(app, daemon or DaemonClient(app.config.socket))
    security.install(flask_app, idle_timeout_s=app.config.web.idle_timeout_min * 60,
                     secure_cookie=tls, shared_mode_allows=shared.allows)
    # The box's name (Settings) in every page's header, so a guider knows which box this is.
    flask_app.jinja_env.globals["box_name"] = lambda: app.current_config().box_name
    errors.install(flask_app)
    for bp in (auth.bp, pages.bp, media.bp, api_capture.bp, api_library.bp, api_media.bp,
               api_settings.bp, api_shared.bp, api_sync.bp, shared.bp, openapi.bp):
        flask_app.register_blueprint(bp)
    flask_app.register_blueprint(api_clock.bp)
    return flask_app
