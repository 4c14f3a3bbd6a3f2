"""Tablet UI benchmark: latency for 5 tablets while a recording runs with the live view open.

    python bench/web.py [--seconds 40] [--clients 5] [--no-browser]

Starts the box as its services would, each a real child process on a temp data dir:
the capture daemon (synthetic camera and microphone, mock pins) and `vigbox web`
(cheroot, its configured thread pool). A 60 s review film is imported first and its
review assets made.

Phase 1 (baseline, same run): one client alone, no recording: review page, API and
1 MiB range requests. Phase 2 (loaded): a recording is started through the API; one
client polls the live view at 5 fps (as the Home page does) and `--clients` clients
each loop over the review page, the API (recording detail, status) and 1 MiB range
reads at random offsets of the film, as tablets reviewing and streaming would. The
recording is then stopped and its dropped frames read back from the barcodes in the
MP4 (and the catalog's count). Phase 3 (Chromium, unless --no-browser): tap-to-first-
frame of the film (click Play → first frame presented, from requestVideoFrameCallback)
and key-to-frame-shown of a frame step ('.' → the stepped frame presented), each over
several tries. Printed: p50/p95 per request kind in both phases and their ratio, live
view frames per second achieved, dropped frames, the browser figures, and the peak
RSS (VmHWM) of the web process. Figures only; no pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.capture.picture import SyntheticPicture  # noqa: E402
from appliance.capture.sync_check import frame_indices, index_gaps  # noqa: E402
from tests.tablet import Client as Tablet  # noqa: E402

PASSPHRASE = "bench passphrase"


class Client(Tablet):
    """A tablet logging in as the benchmark's administrator."""

    def __init__(self, base: str) -> None:
        super().__init__(base, "admin", PASSPHRASE)
CHUNK = 1 << 20


def make_film(path: Path, seconds: int = 60) -> None:
    picture = SyntheticPicture(800, 448)
    proc = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
         "-s", "800x448", "-r", "30", "-i", "pipe:0", "-f", "lavfi", "-i",
         f"sine=frequency=440:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
         "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-movflags",
         "+faststart", str(path)], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for n in range(30 * seconds):
        proc.stdin.write(picture.frame(n))
    proc.stdin.close()
    assert proc.wait() == 0


def vigbox(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([sys.executable, "-m", "appliance", *args], env=env, input=stdin,
                         capture_output=True, text=True, timeout=300, check=True)
    return out.stdout


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "appliance", *args], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=log.open("wb"))


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: timed out waiting for {what}")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


def tablet_loop(client: Client, rec_id: str, size: int, until: float) -> None:
    rng = random.Random(id(client))
    while time.monotonic() < until:
        client.request("GET", f"/review/{rec_id}", kind="review page")
        client.request("GET", f"/api/recordings/{rec_id}", kind="api", headers={})
        client.request("GET", "/api/status", kind="api", headers={"X-Vigbox-Poll": "1"})
        offset = rng.randrange(0, max(1, size - CHUNK))
        client.request("GET", f"/media/recording/{rec_id}", kind="range 1 MiB",
                       headers={"Range": f"bytes={offset}-{offset + CHUNK - 1}"})


def live_loop(client: Client, until: float, fps: float = 5.0) -> None:
    while time.monotonic() < until:
        t0 = time.monotonic()
        try:
            client.request("GET", "/api/live.jpg", kind="live view",
                           headers={"X-Vigbox-Poll": "1"})
        except urllib.error.HTTPError:
            client.times["live view errors"].append(0.0)
        time.sleep(max(0.0, 1 / fps - (time.monotonic() - t0)))


def browser_figures(base: str, rec_id: str, tries: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = defaultdict(list)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1180, "height": 820})
        page.set_default_timeout(30000)
        page.goto(base + "/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSPHRASE)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")
        for _ in range(tries):
            page.goto(f"{base}/review/{rec_id}")
            page.wait_for_function("document.querySelector('#review').dataset.shownFrame"
                                   " === '0'", timeout=30000)
            # Tap to first frame: Play clicked → a new frame presented (rVFC).
            ms = page.evaluate("""() => new Promise((resolve) => {
                const v = document.getElementById('video');
                const t0 = performance.now();
                v.requestVideoFrameCallback(() => resolve(performance.now() - t0));
                document.getElementById('play').click();
            })""")
            out["tap to first frame"].append(ms / 1000)
            page.click("#play")
            page.wait_for_function("document.getElementById('video').paused")
            page.wait_for_timeout(300)
            for _ in range(5):
                # Timed in the page from the keydown event to the stepped frame presented.
                page.evaluate("""() => {
                    const root = document.getElementById('review');
                    const before = root.dataset.shownFrame;
                    window.benchStep = new Promise((resolve) => {
                        let t0 = 0;
                        document.addEventListener('keydown', () => { t0 = performance.now(); },
                                                  {capture: true, once: true});
                        const seen = new MutationObserver(() => {
                            if (root.dataset.shownFrame !== before) {
                                seen.disconnect(); resolve(performance.now() - t0);
                            }
                        });
                        seen.observe(root, {attributes: true});
                    });
                }""")
                page.keyboard.press(".")
                ms = page.evaluate("window.benchStep")
                out["key to frame shown"].append(ms / 1000)
        browser.close()
    return out


def report(title: str, times: dict[str, list[float]], seconds: float) -> None:
    print(f"\n{title}")
    for kind, values in sorted(times.items()):
        if kind.endswith("errors"):
            print(f"  {kind:<20} {len(values)}")
            continue
        print(f"  {kind:<20} n={len(values):5d}  p50 {pct(values, 50):7.1f} ms  "
              f"p95 {pct(values, 95):7.1f} ms  ({len(values) / seconds:.1f}/s)")


def merge(clients: list[Client]) -> dict[str, list[float]]:
    merged: dict[str, list[float]] = defaultdict(list)
    for c in clients:
        for kind, values in c.times.items():
            merged[kind] += values
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--browser-tries", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        (root / "config.toml").write_text(
            f'data_dir = "{data}"\n[camera]\nbackend = "synthetic"\n'
            '[microphone]\nbackend = "synthetic"\n[gpio]\nbackend = "mock"\n'
            '[recording]\nreserve_mb = 16\nlow_disk_mb = 16\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGBOX")}
        env["VIGBOX_CONFIG"] = str(root / "config.toml")
        make_film(root / "film.mp4")
        rec_id = json.loads(vigbox(env, "import", str(root / "film.mp4"), "--json"))["id"]
        vigbox(env, "passwd", "--stdin", stdin=PASSPHRASE + "\n")
        film = next(data.glob(f"recordings/{rec_id}/*.mp4"))
        size = film.stat().st_size
        port = 18000 + random.randrange(1000)
        base = f"http://127.0.0.1:{port}"
        capture = start(env, root / "capture.log", "capture")
        web = start(env, root / "web.log", "web", "--host", "127.0.0.1", "--port", str(port))
        worker = start(env, root / "worker.log", "encode-worker")
        try:
            wait_for(lambda: urllib.request.urlopen(base + "/login", timeout=2), "the web UI")
            admin = Client(base)
            admin.log_in()
            wait_for(lambda: json.loads(admin.request("GET", "/api/status"))["state"] == "ready",
                     "the recorder")
            wait_for(lambda: json.loads(admin.request("GET", f"/api/recordings/{rec_id}"))
                     ["assets"]["status"] == "ready", "review assets", timeout=120)
            stop(worker)
            baseline = Client(base)
            baseline.log_in()
            tablet_loop(baseline, rec_id, size, time.monotonic() + min(10, args.seconds / 3))
            report("baseline: one client, not recording", baseline.times,
                   min(10, args.seconds / 3))

            admin.request("POST", "/api/record/start", {})
            until = time.monotonic() + args.seconds
            clients = [Client(base) for _ in range(args.clients)]
            for c in clients:
                c.log_in()
            live = Client(base)
            live.log_in()
            threads = [threading.Thread(target=tablet_loop, args=(c, rec_id, size, until))
                       for c in clients]
            threads.append(threading.Thread(target=live_loop, args=(live, until)))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            stopped = json.loads(admin.request("POST", "/api/record/stop", {}))["recording"]
            loaded = merge(clients)
            report(f"loaded: {args.clients} clients + live view, while recording",
                   loaded | dict(live.times), args.seconds)
            print("\n  ratio loaded/baseline p95:")
            for kind in ("review page", "api", "range 1 MiB"):
                print(f"    {kind:<18} {pct(loaded[kind], 95) / pct(baseline.times[kind], 95):.2f}")
            print(f"  live view frames/s: {len(live.times['live view']) / args.seconds:.1f}")
            path = data / "recordings" / stopped["id"] / "recording.mp4"
            indices = frame_indices(path)
            gaps = index_gaps(indices)
            lost = sum(b - a - 1 for a, b in gaps)
            print(f"\nrecording {stopped['id']}: {len(indices)} frames, dropped (barcodes): "
                  f"{lost}, catalog dropped_frames: {stopped.get('dropped_frames')}")
            if not args.no_browser:
                figures = browser_figures(base, rec_id, args.browser_tries)
                report("Chromium (review page)", figures, 1)
            status = Path(f"/proc/{web.pid}/status").read_text()
            hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
            rss = re.search(r"VmRSS:\s+(\d+) kB", status)
            peak = int(hwm.group(1)) / 1024 if hwm else float("nan")
            now = int(rss.group(1)) / 1024 if rss else float("nan")
            print(f"\nweb process RSS: peak {peak:.0f} MiB (each login's scrypt check takes "
                  f"32 MiB while it runs), now {now:.0f} MiB")
        finally:
            for proc in (web, capture, worker):
                if proc.poll() is None:
                    stop(proc)


if __name__ == "__main__":
    main()
