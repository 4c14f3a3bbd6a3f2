"""Media for the tablet: byte ranges as Safari asks for them, types, audited views, and
no way out of the data dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask

from appliance.services.app import App
from tests.web_support import PASSPHRASE, Tablet


def fetch(tablet: Tablet, url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    response = tablet.get(url, headers=headers)
    try:
        return response.status_code, dict(response.headers), response.get_data()
    finally:
        response.close()


def test_safari_probe_gets_206(admin: Tablet, film: str, app: App) -> None:
    size = app.catalog.recordings.get(film).path.stat().st_size  # type: ignore[union-attr]
    status, headers, body = fetch(admin, f"/media/recording/{film}", Range="bytes=0-1")
    assert status == 206 and len(body) == 2
    assert headers["Content-Range"] == f"bytes 0-1/{size}"
    assert headers["Content-Type"] == "video/mp4"
    assert headers["Accept-Ranges"] == "bytes"
    status, headers, body = fetch(admin, f"/media/recording/{film}",
                                  Range=f"bytes={size - 100}-")
    assert status == 206 and len(body) == 100
    status, headers, _ = fetch(admin, f"/media/recording/{film}", Range=f"bytes={size + 10}-")
    assert status == 416
    status, headers, body = fetch(admin, f"/media/recording/{film}")
    assert status == 200 and len(body) == size
    assert headers["Content-Disposition"] == "inline"


def test_asset_types(admin: Tablet, film: str) -> None:
    for kind, mimetype in (("poster", "image/jpeg"), ("sprite", "image/jpeg"),
                           ("thumbs", "text/vtt"), ("waveform", "application/json")):
        status, headers, body = fetch(admin, f"/media/{kind}/{film}")
        assert status == 200 and headers["Content-Type"].startswith(mimetype), kind
        assert body


def test_each_viewing_is_audited_once(admin: Tablet, film: str, app: App,
                                      flask_app: Flask) -> None:
    for start in range(0, 5000, 1000):
        fetch(admin, f"/media/recording/{film}", Range=f"bytes={start}-{start + 999}")
    fetch(admin, f"/media/poster/{film}")
    views = [e for e in app.catalog.audit.entries() if e.action.startswith("view.")]
    assert [(e.action, e.actor, e.subject) for e in views] == [
        ("view.recording", "admin", film)]
    app.catalog.accounts.set_passphrase("guider", PASSPHRASE, actor="test")
    guider = Tablet(flask_app.test_client())
    guider.log_in("guider")
    fetch(guider, f"/media/recording/{film}", Range="bytes=0-1")
    views = [e for e in app.catalog.audit.entries() if e.action == "view.recording"]
    assert [e.actor for e in views] == ["admin", "guider"]
    assert admin.get(f"/review/{film}").status_code == 200
    assert any(e.action == "view.review" and e.actor == "admin"
               for e in app.catalog.audit.entries())


@pytest.mark.parametrize("url", [
    "/media/recording/..%2F..%2Fcatalog.db", "/media/recording/../catalog.db",
    "/media/nothing/x", "/media/recording/.hidden", "/media/clip/clip-00000000",
    "/media/still/%2Fetc%2Fpasswd", "/media/film/film-1",
    "/static/../catalog.db", "/static/%2e%2e/web-secret.key",
])
def test_no_request_path_reaches_other_files(admin: Tablet, film: str, url: str) -> None:
    status, headers, body = fetch(admin, url)
    assert status == 404, (url, status)
    assert b"SQLite" not in body


def test_a_film_linked_outside_the_data_dir_is_not_served(admin: Tablet, film: str,
                                                          app: App, tmp_path: Path) -> None:
    secret = tmp_path / "outside.mp4"
    secret.write_bytes(b"not for the tablet")
    path = app.catalog.recordings.get(film).path
    assert path is not None
    path.unlink()
    os.symlink(secret, path)
    status, _, body = fetch(admin, f"/media/recording/{film}")
    assert status == 404 and b"not for the tablet" not in body


def test_media_needs_a_login(flask_app: Flask, film: str) -> None:
    response = flask_app.test_client().get(f"/media/recording/{film}",
                                           headers={"Range": "bytes=0-1"})
    assert response.status_code == 401 and response.is_json
