"""`vigbox demo`: the whole appliance, simulated, until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from appliance.cli.common import Command, stop_on_signals
from appliance.config import Config
from appliance.errors import ApplianceError, ControlError, InputError
from appliance.services import demo
from appliance.services.daemon import DaemonClient
from appliance.supervisor import Supervisor
from appliance.sync.office import decrypt_folder, load_identities

WEB_START_TIMEOUT_S = 90.0
HOLDS = {"": 0.1, "h": 1.6}   # a short press; a hold past gpio.hold_stop_s (1.5 s)


def register(command: Command) -> None:
    """Add `vigbox demo`."""
    c = command("demo", "the whole appliance, simulated: recorder, encoder, tablet UI and "
                "sync to a demo office, until Ctrl-C", cmd_demo, json_flag=False)
    c.add_argument("--host", default="127.0.0.1",
                   help="address of the tablet UI (default 127.0.0.1; 0.0.0.0 lets a "
                   "tablet on this network in)")
    c.add_argument("--port", type=int, default=8080, help="port of the tablet UI (8080)")
    c.add_argument("--sync-every", type=float, default=demo.SYNC_EVERY_S, metavar="SECONDS",
                   help="how often sync runs, as the box's timer does every 15 minutes "
                   f"(default {demo.SYNC_EVERY_S:g})")


def say(text: str) -> None:
    """One line for the person at the terminal."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def cmd_demo(args: argparse.Namespace, config: Config) -> int:
    if not 1 <= args.port <= 65535 or args.sync_every < 5:
        raise InputError("--port must be 1-65535 and --sync-every at least 5 seconds")
    _check_port_free(args.host, args.port)
    data_dir = config.data_path
    box = demo.prepare(data_dir, host=args.host, port=args.port, stop_pid=os.getpid())
    stop = stop_on_signals()
    # A closed terminal ends the demo as Ctrl-C does: every service is stopped in order.
    signal.signal(signal.SIGHUP, lambda signum, frame: stop.set())
    with Supervisor(data_dir, config=box.config, sync_every_s=args.sync_every,
                    on_event=say) as sup:
        sup.start()
        _wait_for_web(box.url, sup, stop)
        _file_under_demo_case(box, stop)
        print(_welcome(box, data_dir), file=sys.stderr, flush=True)
        if sys.stdin is not None and sys.stdin.isatty():
            threading.Thread(target=_keys, args=(box, sup, stop), daemon=True,
                             name="keys").start()
        stop.wait()
        say("stopping the demo box (a recording in progress is saved first)...")
    say("stopped.")
    _show_office(box)
    return 0


def _welcome(box: demo.DemoBox, data_dir: Path) -> str:
    return f"""
vigbox demo is running: a simulated box (camera, microphone, button and light),
its encoder, its tablet UI and its sync to a folder playing the office.

  Open      {box.url}
  Log in    {box.account}  /  {box.passphrase}   (a new passphrase at each start)

  The box's button, from here: Enter = a short press (start, or mark a moment while
  recording), h + Enter = hold 1.5 s (stop), s + Enter = sync now, q + Enter = quit.
  On the tablet: Home has the same button under the live picture.
  Recordings are filed under case {demo.CASE}, which has consent to filming, supervision
  and training, so its clips and stills are synced (encrypted) to the office.

  The office:  {box.office_dir}  (its key: {box.office_key})
  Logs:        {data_dir / 'logs'}
  Ctrl-C ends the demo cleanly (a recording in progress is saved first).
"""


def _keys(box: demo.DemoBox, sup: Supervisor, stop: threading.Event) -> None:
    client = DaemonClient(box.socket)
    for line in sys.stdin:
        key = line.strip().lower()
        try:
            if key == "q":
                stop.set()
                return
            if key == "s":
                say("sync started" if sup.run_sync() else "a sync is already running")
            elif key in HOLDS:
                hold = HOLDS[key]
                client.press(hold)
                say("button pressed" if hold < 1 else f"button held {hold:g} s")
            else:
                say("keys: Enter = press, h = hold (stop), s = sync now, q = quit")
        except ApplianceError as e:
            say(f"refused: {e}")


def _file_under_demo_case(box: demo.DemoBox, stop: threading.Event) -> None:
    """The button's recordings go under the demo's case (as a guider chooses the family
    on Home before filming), so what is clipped from them reaches the office."""
    client = DaemonClient(box.socket)
    deadline = time.monotonic() + WEB_START_TIMEOUT_S
    while not stop.is_set():
        try:
            client.set_case(demo.CASE, actor=demo.ACTOR)
            return
        except ControlError:
            if time.monotonic() > deadline:
                raise
        stop.wait(0.2)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the web server binds: the last demo's connections in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} is in use (another vigbox web or demo?): "
                                 f"try --port {port + 1}") from None
            raise InputError(f"cannot serve on {host}:{port}: {e.strerror}") from None


def _wait_for_web(url: str, sup: Supervisor, stop: threading.Event) -> None:
    deadline = time.monotonic() + WEB_START_TIMEOUT_S
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url + "login", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            log = sup.services["web"].log_path
            raise ApplianceError(f"the tablet UI did not start in {WEB_START_TIMEOUT_S:g} s; "
                                 f"see {log}")
        stop.wait(0.3)


def _show_office(box: demo.DemoBox) -> None:
    """What reached the office, decrypted with the office's key: the round trip."""
    if not any(box.office_dir.rglob("*.age")):
        say("nothing was synced to the office this time: make a clip or a still in Review, "
            "then Sync now, to see it arrive encrypted")
        return
    out = box.office_dir.parent / "decrypted"
    report = decrypt_folder(box.office_dir, out, load_identities(box.office_key))
    say(f"the office decrypted {len(report.decrypted)} file(s) into {out}"
        + ("" if report.ok else f"; missing {report.missing}, altered {report.altered}"))
    print(f"  (the same by hand: vigbox office decrypt {box.office_dir} {out} "
          f"--identity {box.office_key})", file=sys.stderr)
