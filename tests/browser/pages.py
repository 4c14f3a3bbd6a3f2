"""What a test does and reads in the tablet UI, in either engine: log in, call the API as
the page does, read the frame barcode off the picture the page shows, fetch media."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.browser.conftest import ADMIN, PASSPHRASE
from tests.browser.engines import Engine

# Reads the synthetic picture's barcode (24 cells of 32x32 px in an 800x448 frame, top
# left, most significant bit first; luma 40 = 0, 200 = 1) off a <video> or <img> by
# drawing it into a canvas. Each cell's centre is averaged; the cell means come back too,
# so a blank canvas (which would read as 0) is told from frame 0.
READ_BARCODE_JS = """
const el = document.querySelector(args[0]);
if (!el) throw new Error("no " + args[0]);
// An <img> can be "complete" before it is decoded: WebKit then draws nothing (read as 0).
if (el instanceof HTMLImageElement) await el.decode();
const w = el.videoWidth || el.naturalWidth, h = el.videoHeight || el.naturalHeight;
if (!w || !h) return null;
const canvas = document.createElement("canvas");
canvas.width = w; canvas.height = h;
const ctx = canvas.getContext("2d", {willReadFrequently: true});
ctx.drawImage(el, 0, 0, w, h);
const sx = w / 800, sy = h / 448, cell = 32;
const cells = [];
let value = 0;
for (let bit = 0; bit < 24; bit++) {
  const x = Math.round((bit * cell + cell / 4) * sx), y = Math.round(cell / 4 * sy);
  const cw = Math.max(1, Math.round(cell / 2 * sx)), ch = Math.max(1, Math.round(cell / 2 * sy));
  const d = ctx.getImageData(x, y, cw, ch).data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 4) sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
  const mean = sum / (d.length / 4);
  cells.push(Math.round(mean));
  value = value * 2 + (mean > 120 ? 1 : 0);
}
return {value, cells, width: w, height: h};
"""

# A hash of an <img>'s pixels (drawn at its natural size), with its URL.
PICTURE_HASH_JS = """
const img = document.querySelector(args[0]);
if (!img || !img.complete || !img.naturalWidth) return null;
const canvas = document.createElement("canvas");
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const ctx = canvas.getContext("2d", {willReadFrequently: true});
ctx.drawImage(img, 0, 0);
const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
let hash = 2166136261, sum = 0;
for (let i = 0; i < d.length; i += 1) {
  hash = Math.imul(hash ^ d[i], 16777619) >>> 0;
  sum += d[i];
}
return {src: img.currentSrc || img.src, width: canvas.width, height: canvas.height,
        hash, mean: sum / d.length};
"""

# Times the next change of #review's data-shown-frame to `args[0]`, in the page's clock.
ARM_FRAME_TIMER_JS = """
const root = document.getElementById("review");
delete root.dataset.shownFrame;
window.__stepStart = performance.now();
window.__stepAt = null;
const watcher = new MutationObserver(() => {
  if (root.dataset.shownFrame === String(args[0])) {
    window.__stepAt = performance.now();
    watcher.disconnect();
  }
});
watcher.observe(root, {attributes: true, attributeFilter: ["data-shown-frame"]});
"""


# Keeps every message the page shows the guider in #toast (they replace one another).
WATCH_MESSAGES_JS = """
if (!window.__messages) {
  window.__messages = [];
  const toast = document.getElementById("toast");
  new MutationObserver(() => {
    const last = window.__messages[window.__messages.length - 1];
    const now = {text: toast.textContent, kind: toast.className};
    if (!toast.hidden && !(last && last.text === now.text && last.kind === now.kind)) {
      window.__messages.push(now);
    }
  }).observe(toast, {attributes: true, childList: true, characterData: true, subtree: true});
}
"""


def watch_messages(page: Engine) -> None:
    """Start keeping the messages this page shows (call after each page load)."""
    page.eval_js(WATCH_MESSAGES_JS)


def messages(page: Engine) -> list[dict[str, str]]:
    """The messages shown since watch_messages()."""
    return list(page.eval_js("return window.__messages || []"))


def assert_no_error_shown(page: Engine) -> None:
    """No error message has been shown to the guider on this page, now or earlier."""
    shown = page.eval_js("const t = document.getElementById('toast');"
                         "return t && !t.hidden && t.className === 'error' ? t.textContent : null")
    errors = [m["text"] for m in messages(page) if m["kind"] == "error"]
    if shown and shown not in errors:
        errors.append(shown)
    assert not errors, f"{page.name} showed the guider errors: {errors}"


def log_in(page: Engine, name: str = ADMIN, passphrase: str = PASSPHRASE) -> None:
    """Log in through the form and land on Home."""
    page.goto("/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", passphrase)
    page.click("form button[type=submit]")
    page.wait_for("location.pathname === '/' && document.getElementById('record') !== null",
                  what="Home after logging in")


def api(page: Engine, path: str) -> Any:
    """GET a JSON API path from inside the page (the guider's session)."""
    return page.eval_js("""
const r = await fetch(args[0], {headers: {"Accept": "application/json"}, cache: "no-store"});
if (!r.ok) throw new Error(args[0] + " answered " + r.status + ": " + await r.text());
return await r.json();""", path)


def read_barcode(page: Engine, selector: str) -> int:
    """The frame index drawn in the picture `selector` shows, checked to be a real
    barcode (every cell clearly dark or clearly light)."""
    result = page.eval_js(READ_BARCODE_JS, selector)
    assert result is not None, f"{page.name}: {selector} has no picture yet"
    unclear = [c for c in result["cells"] if not (c < 80 or c > 160)]
    assert not unclear, f"{page.name}: {selector} shows no clear barcode: {result}"
    return int(result["value"])


class FrameSteps:
    """Exact frame stepping on Review: do an action, wait until the page says frame n is
    shown, read the barcode off the <video>, and keep each step's latency."""

    def __init__(self, page: Engine, timeout_s: float = 15.0) -> None:
        self.page = page
        self.timeout_s = timeout_s
        self.latencies_ms: dict[str, list[float]] = {}

    def expect(self, n: int, how: str, action: Any) -> None:
        """`action()` must bring frame n on screen: the page says so and the picture
        shows barcode n."""
        self.page.eval_js(ARM_FRAME_TIMER_JS, n)
        action()
        self.page.wait_for(f"document.getElementById('review').dataset.shownFrame === '{n}'",
                           self.timeout_s, what=f"frame {n} after {how}")
        ms = self.page.eval_js("return window.__stepAt === null ? null : "
                               "window.__stepAt - window.__stepStart")
        if ms is not None:
            self.latencies_ms.setdefault(how, []).append(round(ms, 1))
        shown = read_barcode(self.page, "#video")
        assert shown == n, f"{self.page.name}: after {how} the page says frame {n}, " \
                           f"the picture shows frame {shown}"

    def summary(self) -> dict[str, dict[str, float]]:
        """Median and worst latency per kind of step, in ms."""
        return {how: {"median_ms": statistics.median(v), "max_ms": max(v), "count": len(v)}
                for how, v in self.latencies_ms.items()}


def show_frame(n: int) -> str:
    """The page's own call that shows frame n (not awaited: the test watches the page)."""
    return f"window.vigReview.showFrame({n}); return null;"


def fetch_media(page: Engine, box_url: str, path: str, out: Path) -> Path:
    """Download a media URL as the logged-in guider (the browser's session cookie)."""
    cookie = "; ".join(f"{k}={v}" for k, v in page.cookies().items())
    req = urllib.request.Request(box_url + path, headers={"Cookie": cookie})
    with urllib.request.urlopen(req, timeout=30) as response, open(out, "wb") as f:
        f.write(response.read())
    return out


def save_json(path: Path, data: Any) -> None:
    """Write measurements next to the screenshots."""
    path.write_text(json.dumps(data, indent=2) + "\n")


def wait_python(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
    """Poll a Python-side condition with a deadline; its truthy value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
