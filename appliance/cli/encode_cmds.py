"""`vigbox clip`, `still`, `film`, `suggestions`, `jobs`, `encode-worker`: encoder commands."""

from __future__ import annotations

import argparse
import os

from appliance.cli.common import ACTOR, Command, emit, stop_on_signals
from appliance.config import Config
from appliance.errors import InputError
from appliance.services import media
from appliance.services.app import open_app


def register(command: Command) -> None:
    """Add the encoder's commands."""
    c = command("clip", "cut a clip from a recording", cmd_clip)
    c.add_argument("recording", help="recording id")
    c.add_argument("--start", type=float, help="in-point in seconds")
    c.add_argument("--end", type=float, help="out-point in seconds")
    c.add_argument("--moment", type=int, help="the suggested clip of this marked moment")
    c.add_argument("--exact", action="store_true",
                   help="frame-exact (re-encoded); default: fast keyframe-aligned copy")
    c.add_argument("--handles", type=float, default=0.0,
                   help="seconds of lead-in and lead-out")
    c.add_argument("--caption", help="text burned into the picture (needs --exact)")

    c = command("still", "save the exact frame at a time as a JPEG", cmd_still)
    c.add_argument("recording", help="recording id")
    c.add_argument("--at", type=float, required=True, help="time in seconds")

    c = command("film", "join clips into one review film", cmd_film)
    c.add_argument("clips", nargs="+", metavar="CLIP_ID", help="clip ids, in order")
    c.add_argument("--titles", action="store_true", help="a title card before each clip")

    c = command("suggestions", "the suggested clip of each marked moment", cmd_suggestions)
    c.add_argument("recording", help="recording id")

    c = command("jobs", "list encoder jobs, or cancel one", cmd_jobs)
    c.add_argument("--cancel", type=int, metavar="JOB", help="cancel this job")

    command("encode-worker", "run queued encoder jobs until stopped (niced)",
            cmd_encode_worker, json_flag=False)


def cmd_clip(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        if args.moment is not None:
            if args.start is not None or args.end is not None:
                raise InputError("give either --moment or --start and --end, not both")
            job = media.request_moment_clip(app, args.recording, args.moment,
                                            exact=args.exact, actor=ACTOR)
        else:
            if args.start is None or args.end is None:
                raise InputError("give --start and --end (seconds), or --moment")
            job = media.request_clip(app, args.recording, args.start, args.end,
                                     exact=args.exact, handles_s=args.handles,
                                     caption=args.caption, actor=ACTOR)
        result = media.run_now(app, job)
    emit(args, result, f"{result['id']}: {result['duration_s']:.2f} s from "
         f"{result['real_start_s']:.3f} s -> {result['path']}")
    return 0


def cmd_still(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        result = media.run_now(app, media.request_still(app, args.recording, args.at,
                                                        actor=ACTOR))
    emit(args, result, f"{result['id']}: frame {result['frame']} -> {result['path']}")
    return 0


def cmd_film(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        result = media.run_now(app, media.request_film(app, args.clips, titles=args.titles,
                                                       actor=ACTOR))
    emit(args, result, f"{result['id']}: {result['duration_s']:.2f} s -> {result['path']}")
    return 0


def cmd_suggestions(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        items = media.suggestions(app, args.recording)
    emit(args, [s.to_json() for s in items],
         "\n".join(f"moment {s.moment_id} at {s.at_s:.1f} s: clip {s.start_s:.1f}-"
                   f"{s.end_s:.1f} s" for s in items) or "no marked moments")
    return 0


def cmd_jobs(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        if args.cancel is not None:
            job = media.cancel_job(app, args.cancel, actor=ACTOR)
            emit(args, job.to_json(), f"job {job.id}: {job.status}"
                 + (" (cancel requested)" if job.cancel_requested else ""))
            return 0
        jobs = [j.to_json() for j in media.list_jobs(app)]
    emit(args, jobs, "\n".join(f"{j['id']:>5} {j['kind']:<6} {j['status']:<10} "
                               f"{j['progress']:5.1f}%  {j['subject'] or ''}"
                               f"{'  ' + j['error'] if j['error'] else ''}" for j in jobs)
         or "no jobs")
    return 0


def cmd_encode_worker(args: argparse.Namespace, config: Config) -> int:
    from appliance.encode.worker import EncodeWorker  # only the worker's process needs it

    os.nice(config.encode.nice)  # the whole worker yields to capture, not only ffmpeg
    stop = stop_on_signals()
    with open_app(config) as app:
        EncodeWorker(app.catalog, config.encode).run(stop)
    return 0
