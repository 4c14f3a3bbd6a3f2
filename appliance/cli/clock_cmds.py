"""`vigbox clock`: the box's clock (a Pi has no real-time clock), shown or set."""

from __future__ import annotations

import argparse
import sys

from appliance.cli.common import Command, Parser, emit, shell_actor
from appliance.config import Config
from appliance.services import clock
from appliance.services.app import open_app
from appliance.wall_clock import from_epoch_ms


def register(command: Command) -> None:
    """Add the clock commands."""
    c = command("clock", "show the box's clock, or set it (audited)", cmd_clock)
    sub = c.add_subparsers(dest="clock_command", metavar="set", parser_class=Parser)
    s = sub.add_parser("set", help="set the box's clock to a given time, whatever it says now")
    s.add_argument("--to", required=True, metavar="ISO8601",
                   help="the time with its zone, e.g. 2026-12-07T10:15:00+01:00 or "
                        "2026-12-07T09:15:00Z")
    s.add_argument("--json", action="store_true", help="print one JSON document")


def cmd_clock(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        if args.clock_command == "set":
            asked_ms = clock.parse_time(args.to)
            # The box's shell is an administrator's place: any change, however big.
            done = clock.set_clock(app, asked_ms, actor=shell_actor(), admin=True,
                                   only_if_beyond_max_skew=False)
            emit(args, done.to_json(), f"the box's clock now says "
                 f"{_words(done.status.box_epoch_ms)}; it was {_off(done.skew_before_s)}; "
                 f"{done.sessions_ended} tablet session(s) ended: log in again there")
            if done.warning:
                print(f"vigbox: warning: {done.warning}", file=sys.stderr)
            return 0
        now = clock.status(app)
    emit(args, now.to_json(), f"the box's clock says {_words(now.box_epoch_ms)} "
         f"({now.backend}); the tablet offers to set it when they differ by more than "
         f"{now.max_skew_s:g} s")
    return 0


def _words(epoch_ms: int) -> str:
    when = from_epoch_ms(epoch_ms)
    return f"{when:%Y-%m-%d %H:%M:%S} UTC ({when.astimezone():%H:%M %Z} here)"


def _off(skew_s: float) -> str:
    if abs(skew_s) < 1:
        return "already right"
    return f"{abs(skew_s):.0f} s {'ahead' if skew_s > 0 else 'behind'}"
