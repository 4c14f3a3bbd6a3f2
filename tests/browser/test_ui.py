"""The tablet UI as a guider uses it, in Chromium and in WebKit (Safari's engine): log in,
watch the live picture, record with a mark, review a film frame by frame, tag a moment,
render an exact clip and a still, upload a film. Each screen is saved as a screenshot."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.browser.conftest import Box
from tests.browser.engines import TABLET_TZ, Engine, PageScriptError
from tests.browser.pages import (
    PICTURE_HASH_JS,
    FrameSteps,
    api,
    assert_no_error_shown,
    fetch_media,
    log_in,
    read_barcode,
    save_json,
    show_frame,
    wait_python,
    watch_messages,
)
from tests.media import frame_indices

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TAG = "Receiving initiatives"
NOTE = "Child points at the ball; father looks, names it and waits"
ASSETS_TIMEOUT_S = 60
RENDER_TIMEOUT_S = 60
ELAPSED_AT_LEAST_JS = """
const [m, s] = document.getElementById("elapsed").textContent.split(":");
return 60 * Number(m) + Number(s) >= args[0];"""


def local_minute(iso: str) -> str:
    """A stored UTC time as the tablet must show it: on its own clock, to the minute."""
    when = datetime.fromisoformat(iso).astimezone(ZoneInfo(TABLET_TZ))
    return when.strftime("%Y-%m-%d %H:%M")


def seconds(clock: str) -> int:
    """"m:ss" as seconds."""
    minutes, secs = clock.split(":")
    return 60 * int(minutes) + int(secs)


def shot(page: Engine, screenshots: Path, screen: str) -> None:
    """Save this screen as <engine>-<screen>.png."""
    page.screenshot(screenshots / f"{page.name}-{screen}.png")


@pytest.fixture(scope="session")
def films() -> dict[str, str]:
    """The barcode film imported once per engine (its recording id)."""
    return {}


@pytest.fixture
def barcode_rec(browser: Engine, box: Box, barcode_film: Path, films: dict[str, str]) -> str:
    """This engine's copy of the barcode film, imported with `vigbox import`, logged in,
    its review assets made by the worker."""
    if browser.name not in films:
        films[browser.name] = box.vigbox("import", str(barcode_film), "--json")["id"]
    rec_id = films[browser.name]
    log_in(browser)
    browser.wait_for(f"(await (await fetch('/api/recordings/{rec_id}')).json())"
                     ".assets.status === 'ready'", ASSETS_TIMEOUT_S,
                     what="the worker's review assets")
    return rec_id


def open_review(page: Engine, rec_id: str) -> None:
    """Open Review and wait until the film's first frame is on screen."""
    page.goto(f"/review/{rec_id}")
    page.wait_for("document.getElementById('review').dataset.shownFrame === '0'",
                  what="Review showing frame 0")
    page.wait_for("document.querySelectorAll('#tag option').length > 1", what="the tags")
    watch_messages(page)


def test_log_in(browser: Engine, screenshots: Path) -> None:
    browser.goto("/")
    browser.wait_for("location.pathname === '/login'", what="the login page")
    shot(browser, screenshots, "login")
    browser.fill("input[name=username]", "admin")
    browser.fill("input[name=password]", "not the passphrase")
    browser.click("form button[type=submit]")
    error = browser.wait_for("document.querySelector('p.error[role=alert]')?.textContent",
                             what="the login error")
    assert "wrong account name or passphrase" in error
    assert browser.eval_js("return location.pathname") == "/login"
    assert browser.eval_js("return document.getElementById('record')") is None

    log_in(browser)
    assert browser.eval_js("return document.querySelector('.bar .who').textContent") == "admin"
    state = browser.wait_for("document.getElementById('state').textContent !== 'Connecting…'"
                             " && document.getElementById('state').textContent",
                             what="the recorder's state")
    assert state == "Ready"


def test_live_view_moves(browser: Engine, box: Box, screenshots: Path) -> None:
    log_in(browser)
    try:
        browser.wait_for("document.getElementById('live').naturalWidth > 0",
                         what="a live picture")
    finally:
        shot(browser, screenshots, "home-idle")   # what the guider saw, live or not
    # Polled: the next picture may be loading (img.complete false) at any one look.
    frames = [wait_python(lambda: browser.eval_js(PICTURE_HASH_JS, "#live"), 10,
                          "a whole live picture", interval_s=0.02)]
    assert frames[0]["src"].startswith("blob:")
    assert browser.eval_js("return document.getElementById('live-note').hidden") is True
    start = time.monotonic()

    def next_pictures() -> bool:
        seen = browser.eval_js(PICTURE_HASH_JS, "#live")
        if seen and seen["src"] != frames[-1]["src"]:
            frames.append(seen)
        return len(frames) >= 5

    wait_python(next_pictures, 10, f"{browser.name}: the live picture to change 4 times",
                interval_s=0.02)
    per_picture_s = (time.monotonic() - start) / 4
    print(browser.name, f"live view: a new picture every {per_picture_s * 1000:.0f} ms")
    same = [i for i in range(1, len(frames)) if frames[i]["hash"] == frames[i - 1]["hash"]]
    assert not same, f"{browser.name}: successive live pictures are identical: {frames}"
    assert all(f["mean"] > 10 for f in frames), "live pictures are black"


def test_record_a_film_with_a_mark(browser: Engine, box: Box, screenshots: Path) -> None:
    code = f"{browser.name[:3].upper()}-0001"
    log_in(browser)
    browser.goto("/cases")
    browser.fill("#add-case input[name=code]", code)
    browser.click("#add-case button[type=submit]")
    browser.wait_for(f"document.querySelector('#case-rows tr[data-case=\"{code}\"]')",
                     what="the new case in the table")
    shot(browser, screenshots, "cases")

    browser.goto("/")
    watch_messages(browser)
    before = {r["id"] for r in api(browser, "/api/recordings")}
    browser.wait_for("!document.getElementById('record').disabled", what="Record enabled")
    browser.select("#case", code)
    browser.click("#record")
    started = time.monotonic()
    browser.wait_for("document.getElementById('state').textContent === 'Recording'",
                     what="the Recording state")
    browser.click("#mark")
    # In the messages shown, not the one showing: the start's own "Recording." may follow.
    browser.wait_for("(window.__messages || []).some((m) => m.text.startsWith('Moment marked'))",
                     what="the mark confirmed")
    marked = time.monotonic()   # the box has stored the moment by now
    live_while_recording = []
    while not browser.eval_js(ELAPSED_AT_LEAST_JS, 3):
        picture = browser.eval_js(PICTURE_HASH_JS, "#live")
        if picture and picture not in live_while_recording:
            live_while_recording.append(picture)
        assert time.monotonic() - started < 30, "the elapsed time did not reach 0:03"
        time.sleep(0.05)
    shot(browser, screenshots, "home-recording")
    recorded, left = browser.eval_js("return ['elapsed', 'remaining'].map("
                                     "(id) => document.getElementById(id).textContent)")
    assert seconds(recorded) + seconds(left) == 120, (recorded, left)  # max_seconds
    stopping = time.monotonic()   # the box stops after this
    browser.click("#record")

    def new_ready() -> str | None:
        fresh = [r for r in api(browser, "/api/recordings") if r["id"] not in before]
        return fresh[0]["id"] if fresh and fresh[0]["status"] == "ready" else None

    rec_id = wait_python(new_ready, 60, "the recording to be saved")
    browser.wait_for(f"[...document.querySelectorAll('#recordings li')].some((li) => "
                     f"li.querySelector('a[href=\"/review/{rec_id}\"]') && "
                     f"li.querySelector('.status-ready'))", what="the recording listed as ready")
    browser.wait_for("document.getElementById('state').textContent === 'Ready'",
                     what="Ready again")
    rec = api(browser, f"/api/recordings/{rec_id}")
    listed = browser.eval_js(f"return document.querySelector('#recordings "
                             f"a[href=\"/review/{rec_id}\"]').textContent")
    assert listed.startswith(local_minute(rec["started_at"])), listed
    assert rec["case"] == code
    assert rec["duration_s"] >= 3
    assert len(rec["moments"]) == 1, rec["moments"]
    moment = rec["moments"][0]
    assert moment["source"] == "control"
    # Marked while filming, and at least as long before the end as the test waited
    # between the mark's answer and Stop (0.2 s: a frame's length and rounding).
    assert 0 < moment["at_s"] <= rec["duration_s"] - (stopping - marked) + 0.2, \
        (moment, rec["duration_s"], stopping - marked)
    assert_no_error_shown(browser)
    moving = {p["hash"] for p in live_while_recording}
    assert len(moving) >= 3, f"{browser.name}: the live view showed {len(moving)} different " \
                             "pictures in 3 s of recording"


def test_review_plays_and_steps_exact_frames(browser: Engine, barcode_rec: str,
                                             screenshots: Path) -> None:
    open_review(browser, barcode_rec)
    rec = api(browser, f"/api/recordings/{barcode_rec}")
    title = browser.eval_js("return document.querySelector('.title-row h1').textContent")
    assert title == f"Recording of {local_minute(rec['started_at'])}"
    assert read_barcode(browser, "#video") == 0
    browser.click("#play")
    browser.wait_for("(() => { const v = document.getElementById('video');"
                     " return !v.paused && v.currentTime > 0.5; })()", what="the film playing")
    browser.click("#play")
    browser.wait_for("document.getElementById('video').paused && "
                     "Number(document.getElementById('review').dataset.shownFrame) > 0",
                     what="the paused frame settled")
    paused_at = int(browser.eval_js("return document.getElementById('review')"
                                    ".dataset.shownFrame"))
    assert read_barcode(browser, "#video") == paused_at

    steps = FrameSteps(browser)
    steps.expect(0, "showFrame", lambda: browser.eval_js(show_frame(0)))
    steps.expect(1, "frame button", lambda: browser.click('[data-step-frames="1"]'))
    steps.expect(2, "frame button", lambda: browser.click('[data-step-frames="1"]'))
    steps.expect(1, "back button", lambda: browser.click('[data-step-frames="-1"]'))
    steps.expect(150, "showFrame", lambda: browser.eval_js(show_frame(150)))
    steps.expect(151, "key .", lambda: browser.press("."))
    steps.expect(150, "key ,", lambda: browser.press(","))
    steps.expect(180, "key ArrowRight", lambda: browser.press("ArrowRight"))
    steps.expect(150, "key ArrowLeft", lambda: browser.press("ArrowLeft"))
    steps.expect(359, "showFrame", lambda: browser.eval_js(show_frame(359)))
    steps.expect(358, "key ,", lambda: browser.press(","))
    assert browser.eval_js("return document.getElementById('frame').textContent") == "358"
    assert_no_error_shown(browser)
    save_json(screenshots / f"{browser.name}-step-latency.json", steps.summary())
    print(browser.name, "step latency", steps.summary())


def test_mark_in_out_tag_and_render_an_exact_clip(browser: Engine, box: Box, barcode_rec: str,
                                                  tmp_path: Path) -> None:
    open_review(browser, barcode_rec)
    steps = FrameSteps(browser)
    steps.expect(30, "showFrame", lambda: browser.eval_js(show_frame(30)))
    browser.press("i")
    assert "(frame 30)" in browser.eval_js("return document.getElementById('in-at').textContent")
    steps.expect(89, "showFrame", lambda: browser.eval_js(show_frame(89)))
    browser.press("o")
    assert "(frame 89)" in browser.eval_js("return document.getElementById('out-at')"
                                           ".textContent")
    browser.select("#tag", TAG)
    browser.fill("#note", NOTE)
    browser.click("#save-moment")
    browser.wait_for(f"[...document.querySelectorAll('#moments li')].some((li) => "
                     f"li.querySelector('.tag')?.textContent === {TAG!r} && "
                     f"li.querySelector('.note')?.textContent === {NOTE!r})",
                     what="the tagged moment listed")
    moments = [m for m in api(browser, f"/api/recordings/{barcode_rec}")["moments"]
               if m["note"] == NOTE]
    assert len(moments) == 1 and moments[0]["tag"] == TAG
    assert moments[0]["at_s"] == pytest.approx(1.0) and moments[0]["end_s"] == pytest.approx(3.0)

    jobs_before = browser.eval_js("return document.querySelectorAll('#jobs .job').length")
    browser.click("#clip-exact")
    browser.wait_for(f"document.querySelectorAll('#jobs .job').length > {jobs_before}",
                     what="a progress bar for the clip")
    job_id = browser.eval_js("const rows = document.querySelectorAll('#jobs .job');"
                             "return rows[rows.length - 1].dataset.job")
    seen: list[tuple[str | None, float]] = []

    def finished() -> bool:
        row = browser.eval_js(
            "const row = document.querySelector(`#jobs .job[data-job='${args[0]}']`);"
            "return row && {status: row.dataset.status || null,"
            " value: row.querySelector('progress').value,"
            " cancel: !row.querySelector('button').hidden}", job_id)
        assert row is not None, f"the job row went away before it said done: {seen}"
        if not seen or seen[-1] != (row["status"], row["value"]):
            seen.append((row["status"], row["value"]))
        ended = row["status"] in ("done", "failed", "cancelled")
        if ended:
            assert not row["cancel"], "a finished job still offers Cancel"
        return ended

    wait_python(finished, RENDER_TIMEOUT_S, "the clip to render", interval_s=0.02)
    print(browser.name, "clip progress seen", seen)
    assert seen[-1] == ("done", 100), seen
    values = [value for _, value in seen]
    assert values == sorted(values), f"progress went backwards: {seen}"

    clip = browser.wait_for(
        "(async () => { const r = await (await fetch(`/api/recordings/${args[0]}`)).json();"
        " return r.clips.find((c) => c.job_id === +args[1] && c.status === 'ready'); })()",
        RENDER_TIMEOUT_S, barcode_rec, job_id, what="the clip ready in the API")
    browser.wait_for(f"document.querySelector('#clips li[data-status=ready] "
                     f"a[href=\"{clip['url']}\"]')", what="the clip listed as ready")
    assert clip["exact"] is True
    path = fetch_media(browser, box.url, clip["url"], tmp_path / "clip.mp4")
    counted = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams",
                              "v:0", "-show_entries", "stream=nb_read_frames", "-of",
                              "csv=p=0", str(path)], capture_output=True, text=True,
                             check=True, timeout=60).stdout.strip()
    assert int(counted) == 60
    assert frame_indices(path) == list(range(30, 90))
    assert_no_error_shown(browser)


def test_take_a_still(browser: Engine, box: Box, barcode_rec: str, screenshots: Path) -> None:
    open_review(browser, barcode_rec)
    FrameSteps(browser).expect(123, "showFrame", lambda: browser.eval_js(show_frame(123)))
    browser.click("#take-still")
    browser.wait_for("[...document.querySelectorAll('#stills li[data-status=ready]')].some("
                     "(li) => li.textContent.includes('frame 123'))", RENDER_TIMEOUT_S,
                     what="the still listed")
    browser.eval_js("const li = [...document.querySelectorAll('#stills li[data-status=ready]')]"
                    ".find((li) => li.textContent.includes('frame 123'));"
                    "li.dataset.testStill = '123'; li.scrollIntoView();")
    selector = "#stills li[data-test-still='123'] img"
    browser.wait_for(f"document.querySelector({selector!r}).complete && "
                     f"document.querySelector({selector!r}).naturalWidth > 0",
                     what="the still's picture loaded")
    assert read_barcode(browser, selector) == 123
    stills = api(browser, f"/api/recordings/{barcode_rec}")["stills"]
    assert 123 in [s["frame"] for s in stills if s["status"] == "ready"]
    browser.eval_js("window.scrollTo(0, 0)")
    shot(browser, screenshots, "review")
    assert_no_error_shown(browser)


def test_upload_an_import(browser: Engine, box: Box, barcode_film: Path,
                          screenshots: Path) -> None:
    log_in(browser)
    before = {r["id"] for r in api(browser, "/api/recordings")}
    browser.goto("/import")
    # Keep every value the progress bar takes, across the page change that follows.
    browser.eval_js("""
sessionStorage.setItem("bar", "[]");
const bar = document.getElementById("upload-bar");
new MutationObserver(() => {
  const seen = JSON.parse(sessionStorage.getItem("bar"));
  seen.push(Number(bar.value));
  sessionStorage.setItem("bar", JSON.stringify(seen));
}).observe(bar, {attributes: true, attributeFilter: ["value"]});""")
    browser.set_file("#import input[type=file]", barcode_film)
    browser.click("#import button[type=submit]")
    shot_taken = False
    deadline = time.monotonic() + 60
    while not re.search(r"/review/[^/]+$", browser.url):
        try:
            state = browser.eval_js("const b = document.getElementById('upload-bar');"
                                    "return b && b.value")
            if state == 100 and not shot_taken:
                shot(browser, screenshots, "import")
                shot_taken = True
        except PageScriptError:
            pass  # the page is going to Review under the script
        assert time.monotonic() < deadline, f"{browser.name}: no review page after upload"
        time.sleep(0.05)
    rec_id = browser.url.rsplit("/", 1)[1]
    assert rec_id not in before
    browser.wait_for("document.getElementById('review')?.dataset.shownFrame === '0'",
                     what="the imported film on Review")
    values = browser.eval_js("return JSON.parse(sessionStorage.getItem('bar'))")
    print(browser.name, "upload bar values", values)
    assert values and values[-1] == 100 and values == sorted(values), values
    assert read_barcode(browser, "#video") == 0
    rec = api(browser, f"/api/recordings/{rec_id}")
    assert rec["origin"] == "import" and rec["video_frames"] == 360


def test_accounts(browser: Engine, screenshots: Path) -> None:
    log_in(browser)
    browser.goto("/accounts")
    browser.wait_for("document.querySelectorAll('#users li strong').length >= 1",
                     what="the accounts")
    users = browser.eval_js("return [...document.querySelectorAll('#users li strong')]"
                            ".map((e) => e.textContent)")
    assert "admin" in users
    shot(browser, screenshots, "accounts")


SETTINGS_LOADED = ("document.getElementById('device_name').placeholder !== '' && "
                   "document.querySelectorAll('#tags li input').length >= 5")
RENAMED = "Guiding (PAIG 5)"


def test_settings_screen(browser: Engine, box: Box, screenshots: Path) -> None:
    """The administrator names the box, shortens recordings and allows downloads; a limit
    that does not fit the warning is refused with the reason and changes nothing; a tag is
    renamed. The box is put back as it was afterwards."""
    log_in(browser)
    browser.goto("/settings")
    browser.wait_for(SETTINGS_LOADED, what="the settings and tags")
    watch_messages(browser)
    try:
        browser.fill("#device_name", "Kitchen box")
        browser.fill("#max_minutes", "5")
        browser.click("#downloads")
        browser.click("#save-settings")
        browser.wait_for("document.getElementById('toast').textContent === 'Settings saved.'",
                         what="the settings saved")
        assert browser.eval_js("return document.querySelector('.bar .box-name')"
                               ".textContent") == "Kitchen box"
        settings = api(browser, "/api/settings")["settings"]
        assert settings["device_name"]["value"] == "Kitchen box"
        assert settings["recording.max_seconds"]["value"] == 300
        assert settings["web.downloads_allowed"]["value"] is True
        assert api(browser, "/api/status")["max_seconds"] == 300

        browser.goto("/settings")
        browser.wait_for(SETTINGS_LOADED + " && document.querySelectorAll('.undo').length === 3",
                         what="the saved settings, each with its undo")
        assert browser.eval_js("return [document.getElementById('max_minutes').value, "
                               "document.getElementById('downloads').checked]") == ["5", True]
        watch_messages(browser)
        browser.fill("#max_minutes", "0.5")   # 30 s, while the light warns 60 s before
        browser.click("#save-settings")
        browser.wait_for("document.getElementById('toast').className === 'error'",
                         what="the refusal")
        refusal = browser.eval_js("return document.getElementById('toast').textContent")
        assert "warn_before_end_s" in refusal, refusal
        assert api(browser, "/api/settings")["settings"]["recording.max_seconds"]["value"] == 300

        browser.goto("/settings")
        browser.wait_for(SETTINGS_LOADED, what="the settings again")
        watch_messages(browser)
        tag_id = next(t["id"] for t in api(browser, "/api/tags") if t["label"] == "Guiding")
        row = f"#tags li[data-id='{tag_id}']"
        browser.fill(f"{row} input", RENAMED)
        browser.click(f"{row} button")
        browser.wait_for("document.getElementById('toast').textContent === 'Tag saved.'",
                         what="the tag renamed")
        assert RENAMED in [t["label"] for t in api(browser, "/api/tags")]
        shot(browser, screenshots, "settings")
    finally:
        for key in ("device_name", "recording.max_seconds", "web.downloads_allowed"):
            box.vigbox("settings", "reset", key)
        browser.goto("/settings")
        browser.wait_for(SETTINGS_LOADED, what="the settings put back")
        browser.eval_js("const t = (await window.vig.api('GET', '/api/tags'))"
                        ".find((t) => t.label === args[0]);"
                        "if (t) await window.vig.api('PATCH', '/api/tags/' + t.id, "
                        "{label: 'Guiding'});", RENAMED)
    assert "Guiding" in [t["label"] for t in api(browser, "/api/tags")]
