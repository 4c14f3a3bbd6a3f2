"""The `vigbox` command line (also `python -m appliance`).

Contracts (DESIGN.md §5): global --config / --data-dir; `--json` prints exactly one
JSON document on stdout and logs go to stderr; a failure exits non-zero with one
line on stderr saying what was wrong and what to do.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from appliance import __version__
from appliance.catalog import CONSENT_SCOPES, Catalog, Recording
from appliance.config import Config, describe, load_config
from appliance.errors import ApplianceError, CaptureError, InputError

log = logging.getLogger("vigbox")
FIRST_FRAME_TIMEOUT_S = 10.0


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"vigbox: {message} (see `{self.prog} --help`)\n")


def build_parser() -> Parser:
    """The whole command tree."""
    p = Parser(prog="vigbox", description="Recording appliance for Video Interaction "
               "Guidance home visits.")
    p.add_argument("--config", type=Path, help="config file (default $VIGBOX_CONFIG or "
                   "/etc/vigbox/config.toml)")
    p.add_argument("--data-dir", help="data directory (default $VIGBOX_DATA_DIR or the "
                   "config's data_dir)")
    p.add_argument("--version", action="version", version=f"vigbox {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=Parser)

    def command(name: str, help: str, handler: Callable[..., int],
                json_flag: bool = True) -> Parser:
        c = sub.add_parser(name, help=help, description=help)
        c.set_defaults(handler=handler)
        if json_flag:
            c.add_argument("--json", action="store_true", help="print one JSON document")
        return c

    c = command("record", "record in the foreground and finalize", cmd_record)
    c.add_argument("--seconds", type=float, required=True, help="length of the recording")
    c.add_argument("--simulate", action="store_true",
                   help="use the synthetic camera, microphone and GPIO whatever the config says")
    c.add_argument("--case", help="case code the recording belongs to")

    command("recordings", "list recordings", cmd_recordings)
    command("recover", "make interrupted recordings playable", cmd_recover)

    c = command("import", "bring in a video shot on another device", cmd_import)
    c.add_argument("file", type=Path, help="the video file")
    c.add_argument("--case", help="case code the recording belongs to")

    c = command("cases", "list cases, or add one with `cases add`", cmd_cases)
    cases_sub = c.add_subparsers(dest="cases_command", metavar="add|consent",
                                 parser_class=Parser)
    a = cases_sub.add_parser("add", help="add a case by its pseudonymous code")
    a.add_argument("code", help="pseudonymous case code, e.g. VIG-2026-014 (never a name)")
    a.add_argument("--consent", default="",
                   help=f"consent scopes given, comma-separated: {','.join(CONSENT_SCOPES)}")
    a.add_argument("--date", dest="consent_date", default=None,
                   help="date consent was given, YYYY-MM-DD (default today)")
    a.add_argument("--json", action="store_true", help="print one JSON document")
    g = cases_sub.add_parser("consent", help="record consent given or withdrawn for a case")
    g.add_argument("code", help="the case code")
    g.add_argument("--give", default="", help="scopes given, comma-separated")
    g.add_argument("--withdraw", default="", help="scopes withdrawn, comma-separated")
    g.add_argument("--date", dest="consent_date", default=None,
                   help="date consent was given, YYYY-MM-DD (default today)")
    g.add_argument("--json", action="store_true", help="print one JSON document")

    c = command("config", "check the configuration", cmd_config, json_flag=False)
    config_sub = c.add_subparsers(dest="config_command", required=True, metavar="check",
                                  parser_class=Parser)
    k = config_sub.add_parser("check", help="validate the config and show the result")
    k.add_argument("--json", action="store_true", help="print one JSON document")

    c = command("capture", "run the capture daemon (button, LED, control socket)",
                cmd_capture, json_flag=False)
    c.add_argument("--simulate", action="store_true",
                   help="synthetic camera, microphone and mock GPIO")

    c = command("ctl", "talk to the running capture daemon", cmd_ctl)
    c.add_argument("action", choices=("status", "start", "stop", "mark"))
    c.add_argument("--case", help="case code (start only)")

    c = command("demo", "make a simulated recording and show where it is", cmd_demo)
    c.add_argument("--seconds", type=float, default=15.0, help="length (default 15)")

    from appliance import cli_encode
    cli_encode.register(command)

    c = command("check-sync", "measure A/V offset and dropped frames from the sync markers "
                "of a synthetic recording", cmd_check_sync)
    c.add_argument("file", type=Path)
    return p


# -- helpers -----------------------------------------------------------------------------

def setup_logging(level: str = "info") -> None:
    """Logs to stderr; systemd's journal adds its own timestamps."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=getattr(logging, level.upper()), format=fmt, stream=sys.stderr,
                        force=True)
    logging.captureWarnings(True)  # library warnings become log lines, not raw stderr


def emit(args: argparse.Namespace, document: Any, human: str) -> None:
    """Print the JSON document or the human summary."""
    if getattr(args, "json", False):
        print(json.dumps(document, indent=2))
    else:
        print(human)


def open_catalog(config: Config) -> Catalog:
    """The catalog in the configured data dir."""
    return Catalog(config.data_path)


def describe_recording(rec: Recording) -> str:
    """One line about a recording for people."""
    length = f"{rec.duration_s:.1f} s" if rec.duration_s is not None else "-"
    extra = f"  ({'; '.join(rec.problems)})" if rec.problems else ""
    return f"{rec.id}  {rec.status:<10} {length:>8}  {rec.path or rec.dir}{extra}"


def _scopes(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        stop.set()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# -- commands ----------------------------------------------------------------------------

def record(config: Config, seconds: float, *, case: str | None = None,
           stop: threading.Event | None = None) -> Recording:
    """Record `seconds` of capture (from the first frame) in this process and finalize."""
    from appliance.capture.devices import make_camera, make_microphone, new_marker
    from appliance.capture.session import Session

    limit = config.recording.max_seconds
    if not 0 < seconds <= limit:
        raise InputError(f"--seconds must be more than 0 and at most {limit} "
                         "(recording.max_seconds)")
    stop = stop or threading.Event()
    catalog = open_catalog(config)
    marker = new_marker()
    camera = make_camera(config, marker)
    mic = make_microphone(config, marker)
    try:
        camera.open()
        if mic is not None:
            mic.open()
        session = Session(catalog=catalog, config=config, camera=camera, mic=mic, case=case)
        session.start()
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
        while session.first_pts_ns is None and session.running and time.monotonic() < deadline:
            stop.wait(0.01)
        start_ns = session.first_pts_ns or time.monotonic_ns()
        end_ns = start_ns + int(seconds * 1e9)
        while session.running and not stop.is_set() and time.monotonic_ns() < end_ns:
            stop.wait(min(0.05, max(0.0, (end_ns - time.monotonic_ns()) / 1e9)))
        return session.stop("interrupted" if stop.is_set() else "stopped")
    finally:
        for source in (mic, camera):
            if source is not None:
                try:
                    source.close()
                except ApplianceError as e:
                    log.warning("%s did not close cleanly: %s", source.name, e)
        catalog.close()


def cmd_record(args: argparse.Namespace, config: Config) -> int:
    if args.simulate:
        config = config.simulated()
    stop = threading.Event()
    _stop_on_signals(stop)
    rec = record(config, args.seconds, case=args.case, stop=stop)
    if rec.status == "failed":
        raise CaptureError(f"recording {rec.id} failed: {'; '.join(rec.problems)}")
    emit(args, rec.to_json(), describe_recording(rec))
    return 0


def cmd_recordings(args: argparse.Namespace, config: Config) -> int:
    with open_catalog(config) as catalog:
        recs = catalog.list_recordings()
    emit(args, [r.to_json() for r in recs],
         "\n".join(describe_recording(r) for r in recs) or "no recordings yet")
    return 0


def cmd_recover(args: argparse.Namespace, config: Config) -> int:
    from appliance.capture.recover import recover_all

    with open_catalog(config) as catalog:
        outcomes = recover_all(catalog, default_fps=config.camera.fps,
                               default_sample_rate=config.microphone.sample_rate)
        docs = []
        for o in outcomes:
            rec = o.recording or catalog.get_recording(o.id)
            docs.append(rec.to_json() | {"recovery": {"action": o.action, "detail": o.detail}})
    human = "\n".join(f"{o.id}  {o.action}: {o.detail}" for o in outcomes)
    emit(args, docs, human or "nothing to recover")
    return 0


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    from appliance.media_import import import_video

    with open_catalog(config) as catalog:
        rec = import_video(catalog, args.file, case=args.case)
    emit(args, rec.to_json(), describe_recording(rec))
    return 0


def cmd_cases(args: argparse.Namespace, config: Config) -> int:
    with open_catalog(config) as catalog:
        if args.cases_command == "add":
            when = args.consent_date or date.today().isoformat()
            catalog.add_case(args.code, {s: when for s in _scopes(args.consent)})
            case = catalog.get_case(args.code)
            given = ", ".join(case["consent"]) or "none yet"
            emit(args, case, f"added case {case['code']} (consent: {given})")
            return 0
        if args.cases_command == "consent":
            when = args.consent_date or date.today().isoformat()
            give, withdraw = _scopes(args.give), _scopes(args.withdraw)
            if not give and not withdraw:
                raise InputError("say which consent changes: --give and/or --withdraw "
                                 f"with scopes from {','.join(CONSENT_SCOPES)}")
            if set(give) & set(withdraw):
                raise InputError("a scope cannot be given and withdrawn at once")
            changes: dict[str, str | None] = {s: when for s in give} | {s: None for s in withdraw}
            case = catalog.set_consent(args.code, changes)
            emit(args, case, f"case {case['code']} consent: "
                 f"{', '.join(case['consent']) or 'none'}")
            return 0
        cases = catalog.list_cases()
    emit(args, cases, "\n".join(f"{c['code']}  consent: {', '.join(c['consent']) or 'none'}"
                                for c in cases) or "no cases yet")
    return 0


def cmd_config(args: argparse.Namespace, config: Config) -> int:
    emit(args, describe(config), f"config is valid; data in {config.data_path}, camera "
         f"{config.camera.backend}, microphone {config.microphone.backend}, GPIO "
         f"{config.gpio.backend}")
    return 0


def cmd_capture(args: argparse.Namespace, config: Config) -> int:
    from appliance.capture.daemon import CaptureDaemon
    from appliance.capture.devices import make_camera, make_microphone, new_marker
    from appliance.capture.gpio import make_pin_factory

    if args.simulate:
        config = config.simulated()
    os.umask(0o027)  # recordings of families: nobody but the service and its group
    stop = threading.Event()
    _stop_on_signals(stop)
    marker = new_marker()
    with open_catalog(config) as catalog:
        daemon = CaptureDaemon(config, catalog, camera=make_camera(config, marker),
                               mic=make_microphone(config, marker),
                               pin_factory=make_pin_factory(config.gpio.backend))
        daemon.run(stop)
    return 0


def cmd_ctl(args: argparse.Namespace, config: Config) -> int:
    from appliance.capture.control import request

    extra: dict[str, Any] = {}
    if args.case:
        if args.action != "start":
            raise InputError("--case goes with `vigbox ctl start` only")
        extra["case"] = args.case
    timeout = 330.0 if args.action == "stop" else 15.0
    reply = request(config.socket, args.action, timeout=timeout, **extra)
    if args.action == "status":
        human = f"{reply['state']}" + (f" (last error: {reply['last_error']})"
                                       if reply.get("last_error") else "")
    elif args.action == "mark":
        human = f"marked at {reply['moment']['at_s']:.1f} s"
    else:
        human = f"{reply['recording']['id']} {reply['recording']['status']}"
    emit(args, reply, human)
    return 0


def cmd_demo(args: argparse.Namespace, config: Config) -> int:
    from appliance.capture.sync_check import measure_sync

    config = config.simulated()
    print(f"recording {args.seconds:g} s from the simulated camera and microphone into "
          f"{config.data_path} ...", file=sys.stderr)
    rec = record(config, args.seconds)
    if rec.status == "failed" or rec.path is None:
        raise CaptureError(f"the demo recording failed: {'; '.join(rec.problems)}")
    sync = measure_sync(rec.path)
    assets = _run_queued_jobs(config)
    doc = rec.to_json() | {"sync": sync.to_json(), "assets": assets}
    files = [Path(assets[k]) for k in ("poster", "sprite", "vtt", "waveform") if k in assets]
    shown = (f"{files[0].parent}: {', '.join(f.name for f in files)}" if files
             else "not made")
    human = (f"finished: {rec.path}\n"
             f"  {rec.duration_s:.1f} s, {rec.video_frames} frames, "
             f"{sync.dropped_frames} dropped, A/V offset at the sync markers: "
             f"{', '.join(f'{o:+.1f}' for o in sync.offsets_ms)} ms\n"
             f"  review assets: {shown}\n"
             f"  play it with: ffplay {rec.path}\n"
             f"  list recordings: {sys.executable} -m appliance --data-dir "
             f"{config.data_path} recordings")
    emit(args, doc, human)
    return 0


def _run_queued_jobs(config: Config) -> dict[str, Any]:
    """Run what the encoder worker would (the new film's review assets); their result."""
    from appliance.encode.worker import EncodeWorker

    result: dict[str, Any] = {}
    with open_catalog(config) as catalog:
        worker = EncodeWorker(catalog, config.encode)
        while (job := worker.run_one()) is not None:
            if job.kind == "assets" and job.result:
                result = job.result
    return result


def cmd_check_sync(args: argparse.Namespace, config: Config) -> int:
    from appliance.capture.sync_check import measure_sync

    if not args.file.is_file():
        raise InputError(f"{args.file} is not a file")
    report = measure_sync(args.file)
    emit(args, report.to_json(), f"{len(report.white_frames)} markers, offsets "
         f"{report.offsets_ms} ms, {report.dropped_frames} dropped frames")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status is the return value."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config, data_dir=args.data_dir)
        setup_logging(config.log_level)
        if args.command == "demo" and not (args.data_dir or os.environ.get("VIGBOX_DATA_DIR")
                                           or config.data_dir):
            config = dataclasses.replace(config, data_dir=str(Path("vigbox-data").resolve()))
        return int(args.handler(args, config))
    except ApplianceError as e:
        print(f"vigbox: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vigbox: interrupted", file=sys.stderr)
        return 130
