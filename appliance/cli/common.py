"""What every command shares: the parser class, output, logging, signals, privileges."""

from __future__ import annotations

import argparse
import json
import logging
import os
import pwd
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from appliance.catalog import Recording
from appliance.errors import ApplianceError

ACTOR = "cli"   # the audit log's name for a person at the box's shell
Command = Callable[..., argparse.ArgumentParser]


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        if message.endswith("required: file"):
            # `vigbox import -clip.mp4` reads the name as an option.
            message += "; a file whose name starts with '-' is written ./-name.mp4"
        self.exit(2, f"vigbox: {message} (see `{self.prog} --help`)\n")


def shell_actor() -> str:
    """The audit log's name for the person at the box's shell: `cli:` and the user who ran
    sudo (also after vigbox became the data dir's owner), else the terminal's login name,
    else this process's user. It tells colleagues apart; it proves nothing, as whoever may
    write the catalog may write anything in it."""
    name = os.environ.get("SUDO_USER", "")
    if not name:
        try:
            name = os.getlogin()
        except OSError:  # no controlling terminal (a script, a test)
            try:
                name = pwd.getpwuid(os.getuid()).pw_name
            except KeyError:   # a uid without an account (a container): name it by number
                name = f"uid-{os.getuid()}"
    return f"{ACTOR}:{name}"[:64]


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
        print(json.dumps(document, indent=2, allow_nan=False))
    else:
        print(human)


def describe_recording(rec: Recording) -> str:
    """One line about a recording for people."""
    length = f"{rec.duration_s:.1f} s" if rec.duration_s is not None else "-"
    extra = f"  ({'; '.join(rec.problems)})" if rec.problems else ""
    return f"{rec.id}  {rec.status:<10} {length:>8}  {rec.path or rec.dir}{extra}"


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, for commands that stop cleanly by themselves."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


class Terminated(ApplianceError):
    """SIGTERM arrived: unwind, so temp files and child processes are cleaned up."""


def terminate_by_exception() -> None:
    """Make SIGTERM raise (like Ctrl-C does), so `finally` blocks run before exit."""
    def handler(signum: int, frame: object) -> None:
        raise Terminated("stopped by SIGTERM; nothing half-made was kept")
    signal.signal(signal.SIGTERM, handler)


def run_as_data_owner(data_dir: Path) -> None:
    """Run as root on a box's data dir owned by its service user: become that user, so
    no file the services must write (catalog -wal/-shm, assets) ends up root's."""
    if os.geteuid() != 0 or not data_dir.exists():
        return
    owner = data_dir.stat().st_uid
    if owner == 0:
        return
    try:
        user = pwd.getpwuid(owner)
    except KeyError:
        raise ApplianceError(f"the data dir {data_dir} belongs to uid {owner}, which has no "
                             "account; fix its owner before running vigbox as root") from None
    os.initgroups(user.pw_name, user.pw_gid)
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    os.environ["HOME"] = user.pw_dir
    logging.getLogger("vigbox").debug("running as %s, the owner of %s", user.pw_name,
                                      data_dir)
