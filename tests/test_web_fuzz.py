"""The API fuzzed from its own OpenAPI document (schemathesis), logged in with a CSRF
token, against the real server: whatever it sends, the answer is never a 5xx.

Bounded: a few examples per operation. The recorder's routes are left out (with no
capture daemon they answer 503 by design; tests/test_web_api.py covers them), and so is
the clock (setting it ends every session, and this config's clock is the real one;
tests/test_clock.py covers it)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from appliance.catalog import Catalog
from appliance.config import load_config
from appliance.services import media as media_service
from appliance.services.app import App
from appliance.services.imports import import_file
from appliance.web.app import create_app
from appliance.web.openapi import document
from appliance.web.server import WebServer
from tests.web_support import PASSPHRASE

SKIPPED = re.compile(r"^/api/(record/|live\.jpg|imports|clock)")
schema = schemathesis.openapi.from_dict(document()).exclude(path_regex=SKIPPED.pattern)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, barcode_film: Path
         ) -> Iterator[tuple[str, requests.Session]]:
    """A real server on a data dir with one film, and a logged-in session."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "data").mkdir()
    config_file = root / "config.toml"
    config_file.write_text(f'data_dir = "{root / "data"}"\n[camera]\nbackend = "synthetic"\n'
                           '[microphone]\nbackend = "synthetic"\n[gpio]\nbackend = "mock"\n')
    config = load_config(config_file)
    with Catalog(config.data_path) as catalog:
        app = App(config, catalog)
        shutil.copy(barcode_film, root / "film.mp4")
        import_file(app, root / "film.mp4", case=None, actor="test")
        media_service.run_queued(app)
        catalog.cases.add("FAM-1", {}, actor="test")
        catalog.accounts.set_passphrase("admin", PASSPHRASE, admin=True, actor="test")
        server = WebServer(create_app(app), host="127.0.0.1", port=0, threads=8)
        server.start()
        try:
            session = requests.Session()
            base = server.url.rstrip("/")
            page = session.get(f"{base}/login", timeout=10).text
            token = re.search(r'name="csrf-token" content="([^"]+)"', page)
            assert token
            response = session.post(f"{base}/login", timeout=10, allow_redirects=False,
                                    data={"username": "admin", "password": PASSPHRASE,
                                          "csrf_token": token.group(1)})
            assert response.status_code == 302
            page = session.get(f"{base}/", timeout=10).text
            token = re.search(r'name="csrf-token" content="([^"]+)"', page)
            assert token
            session.headers["X-CSRF-Token"] = token.group(1)
            yield base, session
            session.close()
        finally:
            server.stop()


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_never_answers_5xx(case: schemathesis.Case,
                               live: tuple[str, requests.Session]) -> None:
    base, session = live
    response = case.call(base_url=base, session=session, timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code != 401, "the fuzzer must be logged in"
