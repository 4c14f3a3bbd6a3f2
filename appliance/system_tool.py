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


def run(argv: Sequence[str], *, timeout: float, what: str, package: str) -> str:
    """Run a tool to completion; its stdout (not logged: it may be a secret read back).
    No argv may hold a secret: it is logged."""
    require(argv[0], package)
    log.debug("running %s", " ".join(argv))
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
        last = err.splitlines()[-1] if err else f"exit status {proc.returncode}"
        raise SystemToolError(f"{what} failed: {last}")
    return out
