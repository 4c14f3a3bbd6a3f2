"""The Settings screen and API (administrators only), the box's name on every page, and
downloads: off by default, each one audited when allowed, never from shared mode."""

from __future__ import annotations

from flask import Flask

from appliance.services.app import App
from tests.web_support import PASSPHRASE, Tablet


def guider_of(app: App, flask_app: Flask) -> Tablet:
    app.catalog.accounts.set_passphrase("guider", PASSPHRASE, actor="test")
    guider = Tablet(flask_app.test_client())
    assert guider.log_in("guider").status_code == 302
    return guider


def test_only_an_administrator_changes_settings(admin: Tablet, app: App,
                                                flask_app: Flask) -> None:
    guider = guider_of(app, flask_app)
    assert guider.get("/settings").status_code == 403
    assert guider.get("/api/settings").status_code == 200   # nothing secret to read
    refused = guider.call("PATCH", "/api/settings", {"web.downloads_allowed": True})
    assert refused.status_code == 403
    no_token = admin.client.patch("/api/settings", json={"web.downloads_allowed": True})
    assert no_token.status_code == 403
    assert app.catalog.settings.overrides() == {}
    page = admin.get("/settings").get_data(as_text=True)
    assert 'id="settings"' in page and 'id="tags"' in page
    assert 'href="/settings"' in admin.get("/").get_data(as_text=True)
    assert 'href="/settings"' not in guider.get("/").get_data(as_text=True)


def test_settings_change_and_show_everywhere(admin: Tablet, app: App,
                                             flask_app: Flask) -> None:
    done = admin.call("PATCH", "/api/settings", {"device_name": "Kestrel <b>",
                                                 "recording.max_seconds": 300})
    assert done.status_code == 200, done.get_data()
    assert done.get_json()["settings"]["recording.max_seconds"]["value"] == 300
    assert admin.get("/api/status").get_json()["max_seconds"] == 300
    home = admin.get("/").get_data(as_text=True)
    assert "Kestrel &lt;b&gt;" in home and "Kestrel <b>" not in home  # escaped
    login = Tablet(flask_app.test_client()).get("/login").get_data(as_text=True)
    assert "Kestrel &lt;b&gt;" in login  # a guider sees which box she is logging in to
    bad = admin.call("PATCH", "/api/settings", {"recording.max_seconds": "long"})
    assert bad.status_code == 400 and "recording.max_seconds" in bad.get_json()["error"]
    unknown = admin.call("PATCH", "/api/settings", {"camera.fps": 25})
    assert unknown.status_code == 400
    assert app.catalog.settings.overrides() == {"device_name": "Kestrel <b>",
                                                "recording.max_seconds": 300}


def test_downloads_are_off_by_default(admin: Tablet, media: dict[str, str], app: App) -> None:
    detail = admin.get(f"/api/recordings/{app.catalog.media.clip(media['clip1']).recording_id}")
    assert all(c["download_url"] is None for c in detail.get_json()["clips"])
    refused = admin.get(f"/media/clip/{media['clip1']}/download")
    assert refused.status_code == 403 and "Settings" in refused.get_json()["error"]
    assert not [e for e in app.catalog.audit.entries() if e.action.startswith("download.")]


def test_each_download_is_audited_when_allowed(admin: Tablet, media: dict[str, str],
                                               app: App, flask_app: Flask) -> None:
    assert admin.call("PATCH", "/api/settings",
                      {"web.downloads_allowed": True}).status_code == 200
    rec_id = app.catalog.media.clip(media["clip1"]).recording_id
    clips = admin.get(f"/api/recordings/{rec_id}").get_json()["clips"]
    url = next(c["download_url"] for c in clips if c["id"] == media["clip1"])
    assert url == f"/media/clip/{media['clip1']}/download"
    guider = guider_of(app, flask_app)
    for tablet in (admin, guider):
        got = tablet.get(url)
        assert got.status_code == 200
        assert got.headers["Content-Disposition"].startswith("attachment")
        assert f"vigbox-FAM-1-clip-{media['clip1']}.mp4" in got.headers["Content-Disposition"]
        assert got.headers["Cache-Control"] == "no-store"
        assert got.data == app.catalog.media.clip(media["clip1"]).path.read_bytes()  # type: ignore[union-attr]
        got.close()
    still = admin.get(f"/media/still/{media['still']}/download")
    assert still.status_code == 200 and still.mimetype == "image/jpeg"
    still.close()
    downloads = [(e.action, e.actor, e.subject, e.detail) for e in app.catalog.audit.entries()
                 if e.action.startswith("download.")]
    assert downloads == [
        ("download.clip", "admin", media["clip1"], {"case": "FAM-1"}),
        ("download.clip", "guider", media["clip1"], {"case": "FAM-1"}),
        ("download.still", "admin", media["still"], {"case": "FAM-1"})]
    # A whole home visit is never handed out, nor the review assets.
    assert admin.get(f"/media/recording/{rec_id}/download").status_code == 404
    assert admin.get(f"/media/poster/{rec_id}/download").status_code == 404


def test_shared_mode_never_downloads(admin: Tablet, media: dict[str, str], app: App) -> None:
    admin.call("PATCH", "/api/settings", {"web.downloads_allowed": True})
    admin.call("PUT", "/api/cases/FAM-1/review", {"items": [{"kind": "clip",
                                                              "id": media["clip1"]}]})
    admin.client.post("/shared/FAM-1/start", data={"csrf_token": admin.token})
    items = admin.get("/shared/FAM-1/items").get_json()
    assert "download" not in str(items)
    shown = admin.get(f"/media/clip/{media['clip1']}")
    assert shown.status_code == 200  # shown, yes
    shown.close()
    blocked = admin.get(f"/media/clip/{media['clip1']}/download")
    assert blocked.status_code == 403 and "shared review" in blocked.get_json()["error"]
    assert admin.get("/api/settings").status_code == 403
    assert not [e for e in app.catalog.audit.entries() if e.action.startswith("download.")]
