"""The box's clock on Home, in Chromium and in WebKit: a box that woke with an old date
(no real-time clock, no network) shows a banner with both clocks; one tap sets the box's
from the tablet's, the guider is told to log in again, and after that the banner is gone.
A guider asking for more than a day's change is told, in the banner, that an
administrator must do it, and the clock stays as it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.browser.conftest import ADMIN, PASSPHRASE, Box
from tests.browser.engines import TABLET_TZ, Engine
from tests.browser.pages import assert_no_error_shown, log_in, watch_messages
from tests.browser.test_ui import shot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

BEHIND = timedelta(days=2, hours=3)
GUIDER = "guider-clock"
BANNER_SHOWN = "!document.getElementById('clock-banner').hidden"
TEXT_JS = "const e = document.getElementById(args[0]); return e ? e.textContent : null;"


# Every live picture's body (a picture, or a 401's error) is held until Home has heard
# that the sessions ended: what it says then must not be overwritten by a late answer.
HOLD_LIVE_JS = """
const realFetch = window.fetch.bind(window);
const ended = new Promise(r => document.addEventListener("vig:logged-out", r, {once: true}));
window.vigHeld = 0;
window.fetch = async (url, init) => {
  const answer = await realFetch(url, init);
  if (!String(url).includes("/api/live.jpg")) return answer;
  window.vigHeld += 1;
  for (const read of ["blob", "json"]) {
    const real = answer[read].bind(answer);
    answer[read] = async () => { await ended; return real(); };
  }
  return answer;
};
"""


def shown_time(page: Engine, element_id: str) -> datetime:
    """A time the banner shows ("YYYY-MM-DD HH:MM", the tablet's zone) as an instant."""
    text = page.eval_js(TEXT_JS, element_id)
    assert text, f"{page.name}: #{element_id} is empty"
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo(TABLET_TZ))


def near(when: datetime, expected: datetime) -> bool:
    """Shown to the minute: within the minute (and a little) of the expected instant."""
    return abs((when - expected).total_seconds()) < 120


def set_box_clock(box: Box, when: datetime) -> int:
    """Set the running box's (simulated) clock from the shell; the box's time after."""
    done = box.vigbox("clock", "set", "--to", when.isoformat(), "--json")
    assert done["backend"] == "simulated", "the test box must never set this machine's clock"
    return int(done["box_epoch_ms"])


def test_a_wrong_box_clock_is_set_from_the_tablet(browser: Engine, box: Box,
                                                  screenshots: Path) -> None:
    set_box_clock(box, datetime.now(UTC) - BEHIND)
    try:
        log_in(browser)
        watch_messages(browser)
        browser.wait_for(BANNER_SHOWN, what="the clock banner")
        now = datetime.now(UTC)
        assert near(shown_time(browser, "clock-box"), now - BEHIND)
        assert near(shown_time(browser, "clock-tablet"), now)
        banner = browser.eval_js(TEXT_JS, "clock-banner")
        assert "The box's clock says" in banner and "this tablet says" in banner
        shot(browser, screenshots, "clock-banner")

        # A slow network: a live picture asked for before the sessions end arrives after.
        browser.eval_js(HOLD_LIVE_JS)
        browser.wait_for("window.vigHeld > 0", what="a live picture held in flight")
        browser.click("#clock-set")
        done = browser.wait_for("document.getElementById('clock-done')?.textContent",
                                what="the clock set message")
        assert "log in again" in done
        assert browser.eval_js("return location.pathname") == "/", \
            "the guider reads why before the login page"
        # Logged out: nothing on Home may look as if it still worked.
        assert browser.eval_js("return [...document.querySelectorAll('.home button, "
                               ".home select')].every(c => c.disabled)") is True
        assert browser.eval_js("return document.getElementById('live').hasAttribute('src')") \
            is False
        assert browser.eval_js(TEXT_JS, "live-note") == "Log in again to see the live picture."
        assert browser.eval_js(TEXT_JS, "state-detail") == "Log in again to record."
        assert browser.eval_js("return document.querySelector('header .logout').hidden") \
            is True, "the header no longer names the guider who was logged out"
        box_ms = box.vigbox("clock", "--json")["box_epoch_ms"]
        assert abs(box_ms / 1000 - datetime.now(UTC).timestamp()) < 10
        # The newest clock.set, not the newest entry: the live view audits itself too.
        entry = [e for e in box.vigbox("audit", "--json")["entries"]
                 if e["action"] == "clock.set"][-1]
        assert entry["actor"] == ADMIN
        assert_no_error_shown(browser)
        shot(browser, screenshots, "clock-set")

        browser.click("#clock-relogin")
        browser.wait_for("location.pathname === '/login'", what="the login page")
        log_in(browser)
        browser.wait_for("document.getElementById('clock-banner').dataset.checked === '1'",
                         what="the clock checked again")
        assert not browser.eval_js(f"return {BANNER_SHOWN}"), "the clocks agree now"
        assert browser.page_errors() == []
    finally:
        # The box is shared by the other browser tests: leave its clock right.
        set_box_clock(box, datetime.now(UTC))


def test_a_guider_is_told_that_putting_it_back_a_day_needs_an_administrator(
        browser: Engine, box: Box, screenshots: Path) -> None:
    box.vigbox("passwd", "--user", GUIDER, "--stdin", stdin=PASSPHRASE + "\n")
    set_box_clock(box, datetime.now(UTC) + BEHIND)   # the box ahead: only an admin
    try:
        log_in(browser, GUIDER)
        watch_messages(browser)
        browser.wait_for(BANNER_SHOWN, what="the clock banner")
        browser.click("#clock-set")
        refused = browser.wait_for("document.getElementById('clock-refused')?.textContent",
                                   what="the refusal in the banner")
        assert refused == ("The box's clock is 2.1 days ahead of this tablet: an "
                           "administrator must set it back (log in as one).")
        assert browser.eval_js("return location.pathname") == "/", "still logged in"
        assert browser.eval_js("return document.getElementById('clock-set').disabled") is False
        assert browser.eval_js(f"return {BANNER_SHOWN}")
        shot(browser, screenshots, "clock-refused")
        # Nothing moved and nothing was done in the guider's name.
        still = box.vigbox("clock", "--json")["box_epoch_ms"]
        assert abs(still / 1000 - (datetime.now(UTC) + BEHIND).timestamp()) < 60
        entries = box.vigbox("audit", "--json")["entries"]
        assert not [e for e in entries if e["action"] == "clock.set" and e["actor"] == GUIDER]
        assert_no_error_shown(browser)
        assert browser.page_errors() == []
    finally:
        set_box_clock(box, datetime.now(UTC))
