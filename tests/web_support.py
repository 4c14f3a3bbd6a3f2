"""Helpers for the tablet UI's tests: an app on a test data dir, and a logged-in client
that sends the session's CSRF token the way the pages do."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.config import Config
from appliance.services.app import App
from appliance.services.daemon import run_daemon
from appliance.web.app import create_app

PASSPHRASE = "a long enough passphrase"
TOKEN_RE = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def make_app(app: App) -> Flask:
    """The Flask app for an open App, in testing mode."""
    return create_app(app, testing=True)


def csrf_of(page: TestResponse) -> str:
    """The CSRF token a page carries."""
    found = TOKEN_RE.search(page.get_data(as_text=True))
    assert found, "every page carries a CSRF token"
    return found.group(1)


class Tablet:
    """One browser session: logs in through the form, then calls the API with the token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.token = ""

    def refresh_token(self) -> str:
        """Read the token off the login page (a fresh session has one too)."""
        self.token = csrf_of(self.client.get("/login", follow_redirects=True))
        return self.token

    def log_in(self, name: str = "admin", passphrase: str = PASSPHRASE) -> TestResponse:
        """Submit the login form as a browser would."""
        self.refresh_token()
        response = self.client.post("/login", data={"username": name, "password": passphrase,
                                                    "csrf_token": self.token})
        if response.status_code == 302:
            self.token = csrf_of(self.client.get("/"))
        return response

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        """GET."""
        return self.client.get(url, **kwargs)

    def call(self, method: str, url: str, body: Any = None, **kwargs: Any) -> TestResponse:
        """A state-changing JSON call with the CSRF header."""
        headers = {"X-CSRF-Token": self.token, **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
        return self.client.open(url, method=method, headers=headers, **kwargs)

    def post(self, url: str, body: Any = None, **kwargs: Any) -> TestResponse:
        """POST JSON with the token."""
        return self.call("POST", url, body, **kwargs)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll until true; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def running_daemon(config: Config) -> Iterator[None]:
    """The real capture daemon (synthetic camera, mic, mock GPIO) on a thread."""
    stop = threading.Event()
    thread = threading.Thread(target=run_daemon, args=(config, stop), daemon=True)
    thread.start()
    try:
        wait_until(lambda: Path(config.socket).exists(), "the control socket")
        yield
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive(), "the capture daemon did not stop"
