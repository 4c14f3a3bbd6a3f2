"""The shared review with the parent, in Chromium and in WebKit: the guider chooses and
orders clips and stills of a case, starts the shared mode, and the parent watches at half
speed and picture by picture; in that mode the session reaches nothing else, and leaving
asks for the guider's passphrase. The chosen clips also make one review film."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import PASSPHRASE, Box
from tests.browser.engines import Engine, PageScriptError
from tests.browser.pages import api, assert_no_error_shown, log_in, read_barcode, watch_messages

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

FPS = 30
CLIPS = ((1.0, 3.0), (5.0, 7.0))   # exact clips, in seconds of the barcode film
STILL_FRAME = 123
RENDER_TIMEOUT_S = 60
FILM_TIMEOUT_S = 90
RATE_WALL_S = 1.5

# Plays at the rate set and measures how far the video moves against the page's clock.
MEASURE_RATE_JS = """
const v = document.getElementById("clip");
const deadline = performance.now() + 10000;
while (v.paused || v.currentTime < 0.05) {
  if (performance.now() > deadline) throw new Error("the clip did not start playing");
  await new Promise((r) => setTimeout(r, 20));
}
const t0 = performance.now(), c0 = v.currentTime;
await new Promise((r) => setTimeout(r, args[0] * 1000));
const t1 = performance.now(), c1 = v.currentTime;
return {wall_s: (t1 - t0) / 1000, media_s: c1 - c0, rate: v.playbackRate, muted: v.muted,
        ended: v.ended, ratio: (c1 - c0) / ((t1 - t0) / 1000)};
"""

# Everything in the shared page a parent could use to delete, download or export.
FORBIDDEN_JS = """
const bad = [], words = /delete|download|export/i;
for (const e of document.querySelectorAll("*")) {
  for (const a of e.attributes) {
    if (words.test(a.name + " " + a.value)) bad.push(e.tagName + " " + a.name + "=" + a.value);
  }
}
if (words.test(document.body.textContent)) bad.push("text: " + document.body.textContent);
return {links: document.querySelectorAll("a").length, bad,
        controls: [...document.querySelectorAll("video")].some((v) => v.hasAttribute("controls"))};
"""

STATUS_JS = "return (await fetch(args[0], {cache: 'no-store'})).status;"


def shot(page: Engine, screenshots: Path, screen: str) -> None:
    """Save this screen as <engine>-<screen>.png."""
    page.screenshot(screenshots / f"{page.name}-{screen}.png")


def visible(page: Engine, selector: str) -> bool:
    """Is `selector` in the page and drawn (not hidden, not in a closed <details>)?"""
    return bool(page.eval_js("""
const e = document.querySelector(args[0]);
if (!e || !e.getClientRects().length) return false;
for (let d = e.closest("details"); d; d = d.parentElement.closest("details")) {
  if (!d.open && !e.closest("summary")) return false;
}
return true;""", selector))


@pytest.fixture(scope="session")
def shared_cases() -> dict[str, dict[str, Any]]:
    """Each engine's case, its film, clips and still (made once per engine)."""
    return {}


def wait_job(page: Engine, job: dict[str, Any], what: str) -> None:
    status = page.wait_for(
        "(async () => { const j = await (await fetch('/api/jobs/' + args[0],"
        " {cache: 'no-store'})).json();"
        " return ['done', 'failed', 'cancelled'].includes(j.status) && j.status; })()",
        RENDER_TIMEOUT_S, job["id"], what=what)
    assert status == "done", f"{page.name}: {what} ended {status}"


def post(page: Engine, path: str, data: Any, method: str = "POST") -> Any:
    """Call the JSON API as the page does (CSRF header included)."""
    page.wait_for("!!(window.vig && window.vig.api)",
                  what="the page's API helper (on " + page.url + ")")
    return page.eval_js("return await window.vig.api(args[0], args[1], args[2]);",
                        method, path, data)


@pytest.fixture
def case(browser: Engine, box: Box, barcode_film: Path,
         shared_cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A case with consent to filming, the barcode film filed under it, two exact clips
    and a still at frame 123 rendered by the worker; logged in, on Home."""
    log_in(browser)
    if browser.name in shared_cases:
        return shared_cases[browser.name]
    code = f"SHR-{browser.name[:3].upper()}-01"
    box.vigbox("cases", "add", code, "--consent", "filming,supervision", "--json")
    rec_id = box.vigbox("import", str(barcode_film), "--json")["id"]
    browser.wait_for(f"(await (await fetch('/api/recordings/{rec_id}')).json())"
                     ".assets.status === 'ready'", RENDER_TIMEOUT_S,
                     what="the worker's review assets")
    browser.goto("/cases")   # a freshly loaded page to call the API from
    post(browser, f"/api/recordings/{rec_id}/case", {"case": code})
    jobs = [post(browser, f"/api/recordings/{rec_id}/clips",
                 {"start_s": start, "end_s": end, "exact": True}) for start, end in CLIPS]
    jobs.append(post(browser, f"/api/recordings/{rec_id}/stills",
                     {"at_s": (STILL_FRAME + 0.5) / FPS}))
    for job in jobs:
        wait_job(browser, job, f"job {job['id']}")
    found = api(browser, f"/api/cases/{code}/review")
    clips = {round(c["start_s"], 1): c["id"] for c in found["clips"] if c["status"] == "ready"}
    stills = [s["id"] for s in found["stills"] if s["frame"] == STILL_FRAME]
    assert sorted(clips) == [1.0, 5.0] and len(stills) == 1, found
    shared_cases[browser.name] = {"code": code, "rec": rec_id, "clips": [clips[1.0], clips[5.0]],
                                  "still": stills[0]}
    return shared_cases[browser.name]


def chosen(page: Engine) -> list[list[str]]:
    """The chosen items on the preparation page, in order, as [kind, id]."""
    return list(page.eval_js("return [...document.querySelectorAll('#chosen li[data-kind]')]"
                             ".map((li) => [li.dataset.kind, li.dataset.id])"))


def open_prepare(page: Engine, code: str, count: int) -> None:
    """The preparation page, loaded with `count` chosen items."""
    page.goto(f"/cases/{code}/review")
    page.wait_for(f"document.querySelectorAll('#chosen li[data-kind]').length === {count} && "
                  "document.querySelectorAll('#clip-choices li[data-kind]').length >= 2",
                  what=f"{count} chosen items and the choices")
    watch_messages(page)


def start_shared(page: Engine, case: dict[str, Any]) -> None:
    """Choose still, clip 1, clip 2 (through the API) and start the shared review."""
    code = case["code"]
    items = [{"kind": "still", "id": case["still"]},
             {"kind": "clip", "id": case["clips"][0], "caption": "You wait for her to look up"},
             {"kind": "clip", "id": case["clips"][1]}]
    page.goto(f"/cases/{code}/review")
    post(page, f"/api/cases/{code}/review", {"items": items}, "PUT")
    open_prepare(page, code, 3)
    page.click("#start-shared")
    page.wait_for(f"location.pathname === '/shared/{code}' && "
                  "document.getElementById('shared')?.dataset.item === '0'",
                  what="the shared review showing its first item")


def wait_clip_ready(page: Engine) -> None:
    page.wait_for("(() => { const v = document.getElementById('clip');"
                  " return !v.hidden && v.readyState >= 2 && v.duration > 0; })()",
                  what="the clip loaded")


def test_prepare_the_order_and_start(browser: Engine, case: dict[str, Any],
                                     screenshots: Path) -> None:
    code = case["code"]
    browser.goto(f"/cases/{code}/review")
    post(browser, f"/api/cases/{code}/review", {"items": []}, "PUT")
    open_prepare(browser, code, 0)
    # Watch a clip before choosing it: the preview plays that clip from its first frame.
    browser.click(f"#clip-choices li[data-id='{case['clips'][1]}'] button.watch")
    browser.wait_for("(() => { const v = document.getElementById('preview');"
                     " return !v.hidden && v.readyState >= 2; })()", what="the preview")
    browser.eval_js("const v = document.getElementById('preview'); v.pause();"
                    "v.currentTime = 0.5 / 30;"
                    "await new Promise((r) => v.addEventListener('seeked', r, {once: true}));")
    assert read_barcode(browser, "#preview") == round(CLIPS[1][0] * FPS)
    for clip_id in case["clips"]:
        browser.click(f"#clip-choices li[data-id='{clip_id}'] button.add")
    browser.click(f"#still-choices li[data-id='{case['still']}'] button.add")
    browser.wait_for("document.querySelectorAll('#chosen li[data-kind]').length === 3",
                     what="three chosen items")
    expected = [["clip", case["clips"][0]], ["clip", case["clips"][1]], ["still", case["still"]]]
    assert chosen(browser) == expected
    for _ in range(2):   # the still from last to first
        browser.click("#chosen li[data-kind=still] button.up")
    expected = [expected[2], expected[0], expected[1]]
    assert chosen(browser) == expected
    browser.fill(f"#chosen li[data-id='{case['clips'][0]}'] .caption-input", "You wait for her")
    browser.click("#save")
    browser.wait_for("document.getElementById('toast').textContent === 'Saved.'",
                     what="the order saved")
    assert_no_error_shown(browser)
    stored = api(browser, f"/api/cases/{code}/review")["items"]
    assert [[i["kind"], i["id"]] for i in stored] == expected
    assert stored[1]["caption"] == "You wait for her"

    open_prepare(browser, code, 3)
    assert chosen(browser) == expected, "the order did not survive a reload"
    assert browser.eval_js(f"return document.querySelector(\"#chosen li[data-id='"
                           f"{case['clips'][0]}'] .caption-input\").value") == "You wait for her"
    shot(browser, screenshots, "prepare")
    browser.click("#start-shared")
    browser.wait_for(f"location.pathname === '/shared/{code}' && "
                     "document.getElementById('shared')?.dataset.item === '0'",
                     what="the shared review")
    assert browser.eval_js("return document.getElementById('position').textContent") == "1 of 3"


def test_shared_half_speed_and_exact_step(browser: Engine, case: dict[str, Any],
                                          screenshots: Path) -> None:
    start_shared(browser, case)
    found = browser.eval_js(FORBIDDEN_JS)
    assert found == {"links": 0, "bad": [], "controls": False}, found

    browser.wait_for("document.getElementById('still').complete && "
                     "document.getElementById('still').naturalWidth > 0", what="the still")
    assert read_barcode(browser, "#still") == STILL_FRAME
    assert browser.eval_js("return document.getElementById('clip').hidden") is True
    shot(browser, screenshots, "shared-still")

    browser.click("#next")
    browser.wait_for("document.getElementById('shared').dataset.item === '1'",
                     what="the first clip")
    assert browser.eval_js("return document.getElementById('position').textContent") == "2 of 3"
    assert browser.eval_js("return document.getElementById('caption').textContent") == \
        "You wait for her to look up"
    wait_clip_ready(browser)
    assert read_barcode(browser, "#clip") == round(CLIPS[0][0] * FPS)

    browser.click('[data-speed="0.5"]')
    assert browser.eval_js("return document.querySelector('[data-speed=\"0.5\"]')"
                           ".getAttribute('aria-pressed')") == "true"
    browser.click("#play")
    measured = browser.eval_js(MEASURE_RATE_JS, RATE_WALL_S)
    print(browser.name, "half speed:", measured)
    assert measured["rate"] == 0.5 and not measured["ended"], measured
    assert measured["muted"] is True, f"{browser.name}: slowed sound plays though not asked for"
    assert 0.35 <= measured["ratio"] <= 0.65, f"{browser.name}: half speed ran at {measured}"
    browser.click("#play")
    browser.wait_for("document.getElementById('clip').paused && "
                     "document.getElementById('play').textContent === 'Play'",
                     what="the clip frozen")
    frozen = browser.eval_js("return window.vigShared.state().n")
    browser.eval_js("delete document.getElementById('shared').dataset.shownFrame")
    browser.click('[data-step="1"]')
    n = int(browser.wait_for("document.getElementById('shared').dataset.shownFrame",
                             what="one picture on"))
    assert n == frozen + 1, (frozen, n)
    start_frame = round(CLIPS[0][0] * FPS)
    shown = read_barcode(browser, "#clip")
    assert shown == start_frame + n, f"{browser.name}: the page says clip frame {n} " \
                                     f"(film frame {start_frame + n}), the picture shows {shown}"
    browser.click('[data-step="-1"]')
    browser.wait_for(f"document.getElementById('shared').dataset.shownFrame === '{n - 1}'",
                     what="one picture back")
    assert read_barcode(browser, "#clip") == start_frame + n - 1
    shot(browser, screenshots, "shared")

    browser.click("#next")
    browser.wait_for("document.getElementById('shared').dataset.item === '2'",
                     what="the second clip")
    assert browser.eval_js("return document.getElementById('position').textContent") == "3 of 3"
    wait_clip_ready(browser)
    assert read_barcode(browser, "#clip") == round(CLIPS[1][0] * FPS)
    assert browser.page_errors() == []


def test_shared_mode_reaches_nothing_else(browser: Engine, case: dict[str, Any]) -> None:
    start_shared(browser, case)
    code = case["code"]
    assert browser.eval_js(STATUS_JS, "/api/recordings") == 403
    assert browser.eval_js(STATUS_JS, f"/media/recording/{case['rec']}") == 403
    assert browser.eval_js(STATUS_JS, f"/media/clip/{case['clips'][0]}") == 200
    browser.goto("/")
    browser.wait_for(f"location.pathname === '/shared/{code}'", what="back in the shared review")
    browser.goto(f"/review/{case['rec']}")
    browser.wait_for(f"location.pathname === '/shared/{code}'", what="back in the shared review")


def test_leaving_asks_for_the_passphrase(browser: Engine, case: dict[str, Any],
                                         screenshots: Path) -> None:
    start_shared(browser, case)
    code = case["code"]
    browser.click("details.leave summary")
    browser.fill("details.leave input[name=password]", "not the passphrase")
    browser.click("details.leave button[type=submit]")
    browser.wait_for("document.querySelector('details.leave p.error')", what="the leave error")
    assert visible(browser, "details.leave p.error"), \
        f"{browser.name}: the wrong-passphrase message is not shown"
    shot(browser, screenshots, "shared-leave")
    assert browser.eval_js("return location.pathname").startswith(f"/shared/{code}")
    assert browser.eval_js(STATUS_JS, "/api/recordings") == 403, "left shared mode anyway"

    if not visible(browser, "details.leave input[name=password]"):
        browser.click("details.leave summary")
    browser.fill("details.leave input[name=password]", PASSPHRASE)
    browser.click("details.leave button[type=submit]")
    browser.wait_for(f"location.pathname === '/cases/{code}/review'",
                     what="back on the preparation page")
    assert browser.eval_js(STATUS_JS, "/api/recordings") == 200


def test_make_the_review_film(browser: Engine, case: dict[str, Any],
                              screenshots: Path) -> None:
    code = case["code"]
    items = [{"kind": "still", "id": case["still"]},
             *({"kind": "clip", "id": c} for c in case["clips"])]
    browser.goto(f"/cases/{code}/review")
    post(browser, f"/api/cases/{code}/review", {"items": items}, "PUT")
    open_prepare(browser, code, 3)
    browser.click("#make-film")
    browser.wait_for("!document.getElementById('film-job').hidden", what="the film's progress")
    deadline = time.monotonic() + FILM_TIMEOUT_S
    while True:
        try:
            if browser.eval_js("const f = document.getElementById('film');"
                               "return !f.hidden && f.readyState >= 1 && f.duration > 0"):
                break
        except PageScriptError:
            pass
        text = browser.eval_js("return document.getElementById('film-text').textContent")
        assert "failed" not in text, f"{browser.name}: the film {text}"
        assert time.monotonic() < deadline, f"{browser.name}: no playable film ({text})"
        time.sleep(0.2)
    film = browser.eval_js("const f = document.getElementById('film');"
                           "return {duration: f.duration, bar: document.getElementById("
                           "'film-bar').value, text: document.getElementById('film-text')"
                           ".textContent}")
    print(browser.name, "review film", film)
    assert film["duration"] >= 4 - 0.2, film     # two 2 s clips, plus title cards
    assert film["bar"] == 100 and film["text"] == "ready", film
    assert_no_error_shown(browser)
    shot(browser, screenshots, "prepare-film")


def test_stills_sheet(browser: Engine, case: dict[str, Any], screenshots: Path) -> None:
    code = case["code"]
    browser.goto(f"/cases/{code}/review")
    post(browser, f"/api/cases/{code}/review",
         {"items": [{"kind": "still", "id": case["still"], "caption": "She shows you"},
                    {"kind": "clip", "id": case["clips"][0]}]}, "PUT")
    browser.goto(f"/cases/{code}/stills")
    browser.wait_for("document.querySelector('.sheet-grid img')?.complete", what="the still")
    assert read_barcode(browser, ".sheet-grid img") == STILL_FRAME
    figures = browser.eval_js("return [...document.querySelectorAll('.sheet-grid figure')]"
                              ".map((f) => f.textContent.trim())")
    assert figures == ["She shows you"], "only the chosen stills, with their captions"
    shot(browser, screenshots, "stills-sheet")


# A slow network for "shown" events only: each leaves the page 0.4 s late, so a speed
# tapped just after moving on would reach the box first unless the page sends in order.
SLOW_SHOWN_JS = """
const realFetch = window.fetch.bind(window);
window.fetch = async (url, init) => {
  if (String(url).endsWith("/events") && String(init && init.body).includes('"shown"')) {
    await new Promise((r) => setTimeout(r, 400));
  }
  return realFetch(url, init);
};
"""


def test_film_the_shared_review(browser: Engine, case: dict[str, Any],
                                screenshots: Path) -> None:
    """Filming the review (the case has consent to supervision): each item shown and the
    speed chosen are found at their times in the review's own recording, and its Review
    page jumps from "clip 2 of 3 shown" to that moment of the conversation."""
    start_shared(browser, case)
    code = case["code"]
    browser.click("#film-review")
    browser.wait_for("document.getElementById('film-state').textContent.includes('filming')",
                     what="filming to start")
    shot(browser, screenshots, "shared-filming")
    browser.eval_js(SLOW_SHOWN_JS)
    clicked = []   # (just before, just after) each tap
    for _ in range(2):
        time.sleep(1.2)   # the conversation goes on between items
        before = time.monotonic()
        browser.click("#next")
        clicked.append((before, time.monotonic()))
    browser.click("[data-speed='0.5']")
    time.sleep(0.6)
    browser.click("#film-review")
    browser.wait_for("document.getElementById('film-state').textContent === '' && "
                     "!document.getElementById('film-review').disabled",
                     60, what="the review's film saved")
    browser.click("details.leave summary")
    browser.fill("details.leave input[name=password]", PASSPHRASE)
    browser.click("details.leave button[type=submit]")
    browser.wait_for(f"location.pathname === '/cases/{code}/review'", what="left shared mode")
    recs = api(browser, "/api/recordings")
    [review] = [r for r in recs if r["kind"] == "review" and r["case"] == code][:1]
    detail = api(browser, f"/api/recordings/{review['id']}")
    events = detail["events"]
    shown = [e for e in events if e["event"] == "shown"]
    assert len(shown) == 3, events   # the first item at the start, then two "next"
    assert [e["event"] for e in events][-1] == "speed" and events[-1]["detail"] == "0.5"
    times = [e["at_s"] for e in events]
    assert times == sorted(times) and times[-1] <= detail["duration_s"] + 0.5
    assert shown[2]["at_s"] - shown[0]["at_s"] >= 2.0, "the items were shown over time"
    # Each "shown" is where the guider moved on: the gap between the events is the gap
    # between the taps, give or take a request's latency (0.1 s steps in the catalog).
    gap = shown[2]["at_s"] - shown[1]["at_s"]
    least, most = clicked[1][0] - clicked[0][1], clicked[1][1] - clicked[0][0]
    assert least - 0.4 < gap < most + 0.4, (gap, clicked, shown)
    assert [e["detail"] for e in shown] == ["1 of 3", "2 of 3", "3 of 3"]

    browser.goto(f"/review/{review['id']}")
    browser.wait_for("document.querySelectorAll('#events li[data-event=shown]').length === 3 "
                     "&& document.getElementById('video').readyState >= 1",
                     what="the review's events on its Review page")
    words = browser.eval_js("return [...document.querySelectorAll('#events li[data-event=shown]"
                            " span')].map((e) => e.textContent)")
    assert words == ["Still 1 of 3 shown", "Clip 2 of 3 shown", "Clip 3 of 3 shown"], words
    target = browser.eval_js("return Math.floor(args[0] * window.vigReview.state().fps + 1e-6)",
                             shown[1]["at_s"])
    browser.click("#events li[data-event=shown]:nth-child(2) button")
    browser.wait_for(f"document.getElementById('review').dataset.shownFrame === '{target}'",
                     what="the jump to 'clip 2 of 3 shown'")
    shot(browser, screenshots, "review-of-the-review")
    assert_no_error_shown(browser)


def test_downloads_only_where_allowed(browser: Engine, case: dict[str, Any], box: Box,
                                      screenshots: Path) -> None:
    """Off by default: no Download anywhere. Allowed in Settings: the Review page offers
    each clip and still as a file; shared mode still offers nothing to take away."""
    rec, code = case["rec"], case["code"]
    ready = "document.querySelectorAll('#clips li[data-status=ready]').length >= 2"
    browser.goto(f"/review/{rec}")
    browser.wait_for(ready, what="the clips listed")
    assert browser.eval_js("return document.querySelectorAll('a[download]').length") == 0
    post(browser, "/api/settings", {"web.downloads_allowed": True}, "PATCH")
    try:
        browser.goto(f"/review/{rec}")
        browser.wait_for(ready + " && document.querySelectorAll('#clips a[download]').length >= 2"
                         " && document.querySelectorAll('#stills a[download]').length >= 1",
                         what="the Download links")
        href = browser.eval_js("return document.querySelector('#clips a[download]')"
                               ".getAttribute('href')")
        got = browser.eval_js("const r = await fetch(args[0], {cache: 'no-store'});"
                              "const b = await r.arrayBuffer();"
                              "return {status: r.status, size: b.byteLength,"
                              " disposition: r.headers.get('Content-Disposition')};", href)
        assert got["status"] == 200 and got["size"] > 1000, got
        assert got["disposition"].startswith("attachment") and code in got["disposition"], got
        shot(browser, screenshots, "review-downloads")
        start_shared(browser, case)
        found = browser.eval_js(FORBIDDEN_JS)
        assert found == {"links": 0, "bad": [], "controls": False}, found
        assert browser.eval_js(STATUS_JS, href) == 403
    finally:
        box.vigbox("settings", "reset", "web.downloads_allowed")
