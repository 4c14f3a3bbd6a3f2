"""The `vigbox` command line (also `python -m appliance`): thin command groups over the
application layer (`appliance.services`).

Contracts (DESIGN.md §5): global --config / --data-dir; `--json` prints exactly one
JSON document on stdout and logs go to stderr; a failure exits non-zero with one
line on stderr saying what was wrong and what to do.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from appliance import __version__
from appliance.cli import (
    box_cmds,
    capture_cmds,
    clock_cmds,
    demo_cmds,
    encode_cmds,
    library_cmds,
    sync_cmds,
    web_cmds,
)
from appliance.cli.common import Parser, run_as_data_owner, setup_logging, terminate_by_exception
from appliance.config import load_config
from appliance.errors import ApplianceError


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

    capture_cmds.register(command)
    library_cmds.register(command)
    encode_cmds.register(command)
    web_cmds.register(command)
    sync_cmds.register(command)
    box_cmds.register(command)
    clock_cmds.register(command)
    demo_cmds.register(command)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status is the return value."""
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
    except BrokenPipeError:
        # The reader went away (`vigbox audit | head`): not a fault of the command. Point
        # stdout at /dev/null so the interpreter's own flush at exit stays quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # as a shell reports a command ended by SIGPIPE


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    os.umask(0o027)  # films of families: nobody but the service and its group
    terminate_by_exception()
    try:
        config = load_config(args.config, data_dir=args.data_dir)
        setup_logging(config.log_level)
        if args.command == "demo" and not (args.data_dir or os.environ.get("VIGBOX_DATA_DIR")
                                           or config.data_dir):
            config = dataclasses.replace(config, data_dir=str(Path("vigbox-data").resolve()))
        # A command that needs root for the system's own settings (NetworkManager) keeps
        # it, and opens the catalog as the data dir's owner itself.
        if not getattr(args, "keep_root", False):
            run_as_data_owner(config.data_path)
        return int(args.handler(args, config))
    except ApplianceError as e:
        print(f"vigbox: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vigbox: interrupted", file=sys.stderr)
        return 130
