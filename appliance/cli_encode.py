"""`vigbox clip`, `still` and `jobs`: the encoder's commands (see cli.py for the contracts)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from appliance.config import Config
from appliance.errors import EncodeError

Command = Callable[..., argparse.ArgumentParser]


def register(command: Command) -> None:
    """Add the encoder's subcommands through cli.build_parser's `command` helper."""
    c = command("clip", "cut a clip from a recording", cmd_clip)
    c.add_argument("recording", help="recording id")
    c.add_argument("--start", type=float, help="in-point in seconds")
    c.add_argument("--end", type=float, help="out-point in seconds")
    c.add_argument("--moment", type=int, help="the suggested clip of this marked moment")
    c.add_argument("--exact", action="store_true",
                   help="frame-exact (re-encoded); default: fast keyframe-aligned copy")
    c.add_argument("--handles", type=float, default=0.0,
                   help="seconds of lead-in and lead-out")
    c.add_argument("--caption", help="text burned into the picture (e.g. a principle)")

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


def _run_now(args: argparse.Namespace, config: Config, request: Callable[..., Any],
             maker_class: Any = None) -> Any:
    from appliance.cli import open_catalog
    from appliance.encode.clips import ClipMaker

    with open_catalog(config) as catalog:
        maker = (maker_class or ClipMaker)(catalog, config.encode)
        job = request(maker)
        claimed = maker.jobs.claim(job.id)  # run it here, now; a worker will not take it
        if claimed is None:
            raise EncodeError(f"job {job.id} was taken by another process")
        done = maker.run(claimed)
        if done.status != "done":
            raise EncodeError(f"job {done.id} {done.status}: {done.error}")
        return done.result


def cmd_clip(args: argparse.Namespace, config: Config) -> int:
    from appliance.cli import emit

    from appliance.errors import InputError

    if args.moment is not None:
        if args.start is not None or args.end is not None:
            raise InputError("give either --moment or --start and --end, not both")
        result = _run_now(args, config, lambda m: m.request_moment_clip(
            args.recording, args.moment, exact=args.exact))
    else:
        if args.start is None or args.end is None:
            raise InputError("give --start and --end (seconds), or --moment")
        result = _run_now(args, config, lambda m: m.request_clip(
            args.recording, args.start, args.end, exact=args.exact, handles_s=args.handles,
            caption=args.caption))
    emit(args, result, f"{result['id']}: {result['duration_s']:.2f} s from "
         f"{result['real_start_s']:.3f} s -> {result['path']}")
    return 0


def cmd_still(args: argparse.Namespace, config: Config) -> int:
    from appliance.cli import emit

    result = _run_now(args, config, lambda m: m.request_still(args.recording, args.at))
    emit(args, result, f"{result['id']}: frame {result['frame']} -> {result['path']}")
    return 0


def cmd_jobs(args: argparse.Namespace, config: Config) -> int:
    from appliance.cli import emit, open_catalog
    from appliance.encode.jobs import JobQueue

    with open_catalog(config) as catalog:
        queue = JobQueue(catalog)
        if args.cancel is not None:
            job = queue.cancel(args.cancel)
            emit(args, job.to_json(), f"job {job.id}: {job.status}"
                 + (" (cancel requested)" if job.cancel_requested else ""))
            return 0
        jobs = [j.to_json() for j in queue.list()]
    emit(args, jobs, "\n".join(f"{j['id']:>5} {j['kind']:<6} {j['status']:<10} "
                               f"{j['progress']:5.1f}%  {j['subject'] or ''}"
                               f"{'  ' + j['error'] if j['error'] else ''}" for j in jobs)
         or "no jobs")
    return 0


def cmd_encode_worker(args: argparse.Namespace, config: Config) -> int:
    import signal
    import threading

    from appliance.cli import open_catalog
    from appliance.encode.worker import EncodeWorker

    import os
    os.nice(config.encode.nice)  # the whole worker yields to capture, not only ffmpeg
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with open_catalog(config) as catalog:
        EncodeWorker(catalog, config.encode).run(stop)
    return 0


def cmd_film(args: argparse.Namespace, config: Config) -> int:
    from appliance.cli import emit
    from appliance.encode.film import FilmMaker

    result = _run_now(args, config, lambda m: m.request(args.clips, titles=args.titles),
                      maker_class=FilmMaker)
    emit(args, result, f"{result['id']}: {result['duration_s']:.2f} s -> {result['path']}")
    return 0


def cmd_suggestions(args: argparse.Namespace, config: Config) -> int:
    from appliance.cli import emit, open_catalog
    from appliance.encode.clips import ClipMaker

    with open_catalog(config) as catalog:
        items = ClipMaker(catalog, config.encode).suggestions(args.recording)
    emit(args, items, "\n".join(f"moment {s['moment_id']} at {s['at_s']:.1f} s: clip "
                                f"{s['start_s']:.1f}-{s['end_s']:.1f} s" for s in items)
         or "no marked moments")
    return 0
