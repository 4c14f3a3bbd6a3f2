"""`vigbox record`, `capture`, `ctl`, `recover`, `check-sync`: recording commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from appliance.catalog import RecordingStatus
from appliance.cli.common import Command, describe_recording, emit, stop_on_signals
from appliance.config import Config
from appliance.errors import CaptureError, InputError
from appliance.services import recordings
from appliance.services.app import open_app
from appliance.services.daemon import DaemonClient, run_daemon


def register(command: Command) -> None:
    """Add the recording commands."""
    c = command("record", "record in the foreground and finalize", cmd_record)
    c.add_argument("--seconds", type=float, required=True, help="length of the recording")
    c.add_argument("--simulate", action="store_true",
                   help="use the synthetic camera, microphone and GPIO whatever the config says")
    c.add_argument("--case", help="case code the recording belongs to")

    command("recover", "make interrupted recordings playable", cmd_recover)

    c = command("capture", "run the capture daemon (button, LED, control socket)",
                cmd_capture, json_flag=False)
    c.add_argument("--simulate", action="store_true",
                   help="synthetic camera, microphone and mock GPIO")

    c = command("ctl", "talk to the running capture daemon", cmd_ctl)
    c.add_argument("action", choices=("status", "start", "stop", "mark", "press"))
    c.add_argument("--case", help="case code (start only)")
    c.add_argument("--hold", type=float, default=0.1, metavar="SECONDS",
                   help="press: how long the simulated button is held (default 0.1; "
                   "1.5 stops a recording, 5 shuts down)")

    c = command("check-sync", "measure A/V offset and dropped frames from the sync markers "
                "of a synthetic recording", cmd_check_sync)
    c.add_argument("file", type=Path)


def cmd_record(args: argparse.Namespace, config: Config) -> int:
    if args.simulate:
        config = config.simulated()
    recordings.check_length(args.seconds)  # before anything is opened or made
    stop = stop_on_signals()
    with open_app(config) as app:
        rec = recordings.record_here(app, args.seconds, case=args.case, stop=stop)
    if rec.status == RecordingStatus.FAILED:
        raise CaptureError(f"recording {rec.id} failed: {'; '.join(rec.problems)}")
    emit(args, rec.to_json(), describe_recording(rec))
    return 0


def cmd_recover(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        outcomes = recordings.recover(app)
        docs = []
        for o in outcomes:
            rec = o.recording or app.catalog.recordings.get(o.id)
            docs.append(rec.to_json() | {"recovery": {"action": o.action, "detail": o.detail}})
    human = "\n".join(f"{o.id}  {o.action}: {o.detail}" for o in outcomes)
    emit(args, docs, human or "nothing to recover")
    return 0


def cmd_capture(args: argparse.Namespace, config: Config) -> int:
    if args.simulate:
        config = config.simulated()
    run_daemon(config, stop_on_signals())
    return 0


def cmd_ctl(args: argparse.Namespace, config: Config) -> int:
    if args.case and args.action != "start":
        raise InputError("--case goes with `vigbox ctl start` only")
    client = DaemonClient(config.socket)
    reply: dict[str, Any]
    if args.action == "status":
        reply = client.status()
        human = f"{reply['state']}" + (f" (last error: {reply['last_error']})"
                                       if reply.get("last_error") else "")
    elif args.action == "press":
        reply = client.press(args.hold)
        human = f"pressed the button for {reply['hold_s']:g} s"
    elif args.action == "mark":
        reply = client.mark()
        human = f"marked at {reply['moment']['at_s']:.1f} s"
    else:
        reply = client.start(args.case) if args.action == "start" else client.stop()
        human = f"{reply['recording']['id']} {reply['recording']['status']}"
    emit(args, reply, human)
    return 0


def cmd_check_sync(args: argparse.Namespace, config: Config) -> int:
    if not args.file.is_file():
        raise InputError(f"{args.file} is not a file")
    from appliance.capture.sync_check import measure_sync  # numpy: only here

    report = measure_sync(args.file)
    emit(args, report.to_json(), f"{len(report.white_frames)} markers, offsets "
         f"{report.offsets_ms} ms, {report.dropped_frames} dropped frames")
    return 0
