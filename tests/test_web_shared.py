"""The shared review: choosing what a case's review shows, and shared mode, which reaches
only that case's chosen clips and stills and is left only with the guider's passphrase."""

from __future__ import annotations

import re

import pytest

from appliance.catalog import Consent
from appliance.services import media as media_service
from appliance.services.app import App
from tests.web_support import PASSPHRASE, Tablet


def choose(admin: Tablet, case: str, *items: tuple[str, str]) -> object:
    return admin.call("PUT", f"/api/cases/{case}/review",
                      {"items": [{"kind": k, "id": i} for k, i in items]})


def test_choose_and_order_what_the_review_shows(admin: Tablet, media: dict[str, str],
                                                app: App) -> None:
    offered = admin.get("/api/cases/FAM-1/review").get_json()
    assert {c["id"] for c in offered["clips"]} == {media["clip1"], media["clip2"]}
    assert [s["id"] for s in offered["stills"]] == [media["still"]]
    assert offered["items"] == []
    done = choose(admin, "FAM-1", ("clip", media["clip2"]), ("still", media["still"]),
                  ("clip", media["clip1"]))
    assert done.status_code == 200  # type: ignore[attr-defined]
    items = admin.get("/api/cases/FAM-1/review").get_json()["items"]
    assert [(i["kind"], i["id"]) for i in items] == [
        ("clip", media["clip2"]), ("still", media["still"]), ("clip", media["clip1"])]
    assert all(i["url"] for i in items)
    [entry] = [e for e in app.catalog.audit.entries() if e.action == "review.choose"]
    assert entry.actor == "admin" and entry.subject == "FAM-1"
    page = admin.get("/cases/FAM-1/review")
    assert page.status_code == 200 and 'data-case="FAM-1"' in page.get_data(as_text=True)


def test_another_cases_media_cannot_be_chosen(admin: Tablet, media: dict[str, str]) -> None:
    wrong = choose(admin, "FAM-1", ("clip", media["other"]))
    assert wrong.status_code == 404  # type: ignore[attr-defined]
    assert media["other"] not in str(admin.get("/api/cases/FAM-1/review").get_json())
    twice = choose(admin, "FAM-1", ("clip", media["clip1"]), ("clip", media["clip1"]))
    assert twice.status_code == 400  # type: ignore[attr-defined]
    odd = choose(admin, "FAM-1", ("recording", "x"))
    assert odd.status_code == 400  # type: ignore[attr-defined]
    assert choose(admin, "NOPE", ("clip", media["clip1"])).status_code == 404  # type: ignore[attr-defined]


def start_shared(admin: Tablet, case: str) -> None:
    response = admin.client.post(f"/shared/{case}/start", data={"csrf_token": admin.token})
    assert response.status_code == 302 and response.headers["Location"] == f"/shared/{case}"


def test_shared_mode_reaches_only_the_chosen_media(admin: Tablet, media: dict[str, str],
                                                   film: str) -> None:
    choose(admin, "FAM-1", ("clip", media["clip1"]), ("still", media["still"]))
    start_shared(admin, "FAM-1")
    page = admin.get("/shared/FAM-1")
    assert page.status_code == 200
    items = admin.get("/shared/FAM-1/items").get_json()["items"]
    assert [i["kind"] for i in items] == ["clip", "still"]
    for item in items:
        response = admin.get(item["url"], headers={"Range": "bytes=0-1"})
        response.close()
        assert response.status_code == 206
    # Changing ids in URLs reaches nothing else: not the case's other clip, not its film,
    # not another case, not the guider's pages or the API.
    for url in (f"/media/clip/{media['clip2']}", f"/media/recording/{film}",
                f"/media/clip/{media['other']}", "/api/recordings", "/api/cases",
                f"/api/recordings/{film}"):
        response = admin.get(url)
        response.close()
        assert response.status_code == 403, url
    for url in ("/", "/cases", f"/review/{film}", "/shared/FAM-2", "/shared/FAM-2/items",
                "/accounts"):
        response = admin.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"] == "/shared/FAM-1"
    bad = admin.post("/api/cases", {"code": "FAM-9"})
    assert bad.status_code == 403 and "shared review" in bad.get_json()["error"]


def test_the_shared_page_offers_nothing_to_delete_download_or_export(
        admin: Tablet, media: dict[str, str]) -> None:
    choose(admin, "FAM-1", ("clip", media["clip1"]))
    start_shared(admin, "FAM-1")
    html = admin.get("/shared/FAM-1").get_data(as_text=True)
    assert "<a " not in html, "no links out of the shared review"
    for word in ("delete", "download", "export", "remove", "/api/"):
        assert word not in html.lower(), word
    forms = re.findall(r'<form[^>]*action="([^"]+)"', html)
    assert forms == ["/shared/FAM-1/leave"]
    script = admin.get("/static/shared.js")
    text = script.get_data(as_text=True)
    script.close()
    assert "/api/" not in text and "download" not in text.lower()


def test_leaving_needs_the_guiders_passphrase(admin: Tablet, media: dict[str, str],
                                              app: App) -> None:
    choose(admin, "FAM-1", ("clip", media["clip1"]))
    start_shared(admin, "FAM-1")
    wrong = admin.client.post("/shared/FAM-1/leave", data={"password": "not it",
                                                           "csrf_token": admin.token})
    assert wrong.status_code == 401
    assert admin.get("/api/cases").status_code == 403, "still in shared mode"
    right = admin.client.post("/shared/FAM-1/leave", data={"password": PASSPHRASE,
                                                           "csrf_token": admin.token})
    assert right.status_code == 302 and right.headers["Location"] == "/cases/FAM-1/review"
    assert admin.get("/api/cases").status_code == 200
    actions = [(e.action, e.actor) for e in app.catalog.audit.entries()
               if e.action.startswith("review.shared")]
    assert actions == [("review.shared.start", "admin"), ("review.shared.end", "admin")]


def test_recordings_say_their_kind(admin: Tablet, film: str, vigbox: object) -> None:
    [rec] = admin.get("/api/recordings").get_json()
    assert rec["kind"] == "interaction"


def test_captions_and_the_printable_stills_sheet(admin: Tablet, media: dict[str, str],
                                                 app: App) -> None:
    done = admin.call("PUT", "/api/cases/FAM-1/review", {"items": [
        {"kind": "still", "id": media["still"], "caption": "You waited <and> he looked up"},
        {"kind": "clip", "id": media["clip1"], "caption": None}]})
    assert done.status_code == 200
    items = done.get_json()["items"]
    assert [i["caption"] for i in items] == ["You waited <and> he looked up", None]
    sheet = admin.get("/cases/FAM-1/stills")
    html = sheet.get_data(as_text=True)
    assert sheet.status_code == 200 and html.count("<figure>") == 1
    assert "You waited &lt;and&gt; he looked up" in html
    assert f"/media/still/{media['still']}" in html and "@media print" not in html
    too_long = admin.call("PUT", "/api/cases/FAM-1/review", {"items": [
        {"kind": "still", "id": media["still"], "caption": "x" * 201}]})
    assert too_long.status_code == 400
    start_shared(admin, "FAM-1")
    shown = admin.get("/shared/FAM-1/items").get_json()["items"]
    assert shown[0]["caption"] == "You waited <and> he looked up"


def test_title_text_wraps_and_is_never_cut_mid_word() -> None:
    from appliance.encode.film import TITLE_LINES, TITLE_WIDTH, title_text
    text = ("When you waited, he looked up at you and offered the ball: you took it and "
            "said thank you, and he smiled")
    lines = title_text(text).split("\n")
    assert len(lines) > 2 and all(len(line) <= TITLE_WIDTH for line in lines)
    assert " ".join(lines) == text, "nothing lost, nothing cut at 80 characters"
    long = title_text("word " * 200).split("\n")
    assert len(long) == TITLE_LINES and long[-1].endswith("…")


def test_a_review_film_from_the_chosen_clips(admin: Tablet, media: dict[str, str],
                                             app: App) -> None:
    caption = ("When you waited, he looked up at you and offered the ball, and you said "
               "thank you: he smiled")
    job = admin.post("/api/films", {"clip_ids": [media["clip2"], media["clip1"]],
                                    "titles": True, "title_texts": [caption, None]})
    assert job.status_code == 202, job.get_data()
    film_id = job.get_json()["subject"]
    media_service.run_queued(app)
    done = admin.get(f"/api/jobs/{job.get_json()['id']}").get_json()
    assert done["status"] == "done", done
    response = admin.get(f"/media/film/{film_id}", headers={"Range": "bytes=0-1"})
    response.close()
    assert response.status_code == 206 and response.mimetype == "video/mp4"
    film = app.catalog.media.film(film_id)
    assert film.duration_s is not None and film.duration_s > 2 * 3.0 + 1.5
    bad = admin.post("/api/films", {"clip_ids": [media["clip1"]], "title_texts": ["a", "b"]})
    assert bad.status_code == 400
    assert admin.post("/api/films", {"clip_ids": []}).status_code == 400


@pytest.mark.slow
def test_filming_the_shared_review_stores_what_was_shown_when(
        admin: Tablet, media: dict[str, str], app: App, config: object) -> None:
    from tests.web_support import running_daemon, wait_until
    choose(admin, "FAM-1", ("clip", media["clip1"]), ("still", media["still"]))
    start_shared(admin, "FAM-1")
    from appliance.services.daemon import DaemonClient
    with running_daemon(config):  # type: ignore[arg-type]
        box = DaemonClient(config.socket)  # type: ignore[attr-defined]
        wait_until(lambda: box.status()["state"] == "ready", "the box to be ready")
        assert admin.post("/shared/FAM-1/events", {"event": "shown", "item": 0}) \
            .get_json() == {"recorded": False, "event": None}, "nothing is filmed yet"
        refused = admin.post("/shared/FAM-1/film/start", {})
        assert refused.status_code == 400
        assert "consent to supervision" in refused.get_json()["error"]
        app.catalog.cases.set_consent("FAM-1", {Consent.SUPERVISION: "2026-01-02"},
                                      actor="test")
        started = admin.post("/shared/FAM-1/film/start", {})
        assert started.status_code == 200, started.get_data()
        rec_id = started.get_json()["recording"]["id"]

        def event(name: str, **extra: object) -> dict[str, object]:
            response = admin.post("/shared/FAM-1/events", {"event": name, **extra})
            assert response.status_code == 200, response.get_data()
            return response.get_json()

        wait_until(lambda: event("shown", item=0)["recorded"] is True, "filming under way",
                   timeout=15)
        for name, extra in (("play", {}), ("speed", {"detail": "0.5"}), ("pause", {}),
                            ("shown", {"item": 1})):
            assert event(name, **extra)["recorded"] is True
        assert admin.post("/shared/FAM-1/events", {"event": "dance"}).status_code == 400
        assert admin.post("/shared/FAM-1/events", {"event": "shown", "item": 9}) \
            .status_code == 400
        stopped = admin.post("/shared/FAM-1/film/stop", {})
        assert stopped.status_code == 200, stopped.get_data()
    rec = app.catalog.recordings.get(rec_id)
    assert rec.kind == "review" and rec.case == "FAM-1" and rec.status == "ready"
    events = app.catalog.review_events.list(rec_id)
    assert [str(e.event) for e in events] == ["shown", "play", "speed", "pause", "shown"]
    assert [e.detail for e in events][2] == "0.5"
    shown = [(e.item_kind, e.item_id) for e in events if e.event == "shown"]
    assert shown[0] == ("clip", media["clip1"]) and shown[-1] == ("still", media["still"])
    times = [e.at_s for e in events]
    assert times == sorted(times) and times[-1] <= (rec.duration_s or 0) + 0.5
    right = admin.client.post("/shared/FAM-1/leave", data={"password": PASSPHRASE,
                                                           "csrf_token": admin.token})
    assert right.status_code == 302
    detail = admin.get(f"/api/recordings/{rec_id}").get_json()
    assert detail["kind"] == "review" and len(detail["events"]) == len(events)
