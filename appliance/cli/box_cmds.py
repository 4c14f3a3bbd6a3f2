"""`vigbox wifi`, `vigbox clock`: the box itself (its network for the tablet, its clock)."""

from __future__ import annotations

from appliance.cli.common import Command


def register(command: Command) -> None:
    """Add the box commands."""
    del command
