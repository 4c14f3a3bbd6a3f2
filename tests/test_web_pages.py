"""The pages themselves: light enough for a tablet on the box's Wi-Fi, every file they
name served by the box (no CDN), and linked from Home."""

from __future__ import annotations

import re

from appliance.services.app import App
from tests.web_support import Tablet

PAGE_BUDGET = 300 * 1024








def page_weight(tablet: Tablet, url: str) -> int:
    """Bytes of a page and every script, style sheet and image it names (before media)."""
    page = tablet.get(url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    total = len(page.get_data())
    for ref in re.findall(r'(?:src|href)="(/[^"]+)"', html):
        if ref.startswith(("/static/", "/media/poster")):
            response = tablet.get(ref)
            assert response.status_code == 200, ref
            total += len(response.get_data())
            response.close()
    return total


def test_review_page_is_light(admin: Tablet, film: str) -> None:
    weight = page_weight(admin, f"/review/{film}")
    assert 10_000 < weight < PAGE_BUDGET, weight


def test_pages_name_only_files_on_the_box(admin: Tablet, film: str) -> None:
    for url in ("/", "/cases", "/import", "/accounts", f"/review/{film}"):
        html = admin.get(url).get_data(as_text=True)
        assert "http://" not in html and "https://" not in html, url
        assert "//" not in re.sub(r"<!--.*?-->", "", " ".join(
            re.findall(r'(?:src|href)="([^"]+)"', html))), url


def test_home_links_each_recording_to_its_review(admin: Tablet, film: str) -> None:
    [rec] = admin.get("/api/recordings").get_json()
    assert rec["review_url"] == f"/review/{film}"
    assert 'src="/static/home.js"' in admin.get("/").get_data(as_text=True)
    # home.js draws the list from the API's review_url.
    script = admin.get("/static/home.js")
    assert "review_url" in script.get_data(as_text=True)
    script.close()


def test_jobs_list(admin: Tablet, film: str, app: App) -> None:
    admin.post(f"/api/recordings/{film}/stills", {"at_s": 1.0})
    jobs = admin.get("/api/jobs").get_json()
    assert [j["kind"] for j in jobs][:1] == ["still"]
    assert all("path" not in (j["result"] or {}) for j in jobs)


def test_unknown_page_is_404_with_a_page(admin: Tablet) -> None:
    response = admin.get("/no-such-page")
    assert response.status_code == 404
    assert b"there is nothing here" in response.data and b"Back to Home" in response.data
