"""The one place the operating system's tools are run (nmcli, timedatectl): argv lists
built elsewhere as pure functions, no shell, a time limit, failures as SystemToolError."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence

from appliance.errors import SystemToolError

log = logging.getLogger(__name__)


def require(tool: str, package: str) -> str:
    """The tool's path, or SystemToolError naming the package that provides it."""
    path = shutil.which(tool)
    if path is None:
        raise SystemToolError(f"{tool} is not installed (apt install {package})")
    return path


def run(argv: Sequence[str], *, timeout: float, what: str, package: str,
        secret: str | None = None) -> str:
    """Run a tool to completion; its stdout. `secret` (a passphrase on the command line)
    is never logged: it is replaced by *** in what the log and errors show."""
    require(argv[0], package)
    shown = " ".join("***" if secret and a == secret else a for a in argv)
    log.debug("running %s", shown)
    try:
        proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SystemToolError(f"{what}: {argv[0]} took longer than {timeout:.0f} s") from None
    except OSError as e:
        raise SystemToolError(f"{what}: cannot start {argv[0]}: {e.strerror}") from None
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        if secret:
            err = err.replace(secret, "***")
        last = err.splitlines()[-1] if err else f"exit status {proc.returncode}"
        raise SystemToolError(f"{what} failed: {last}")
    return out
