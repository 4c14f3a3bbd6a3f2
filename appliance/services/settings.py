"""The box's settings as the administrator sees and changes them (Settings screen,
`vigbox settings`): the config file's value, what the box uses now, and why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appliance.catalog import EDITABLE
from appliance.config import Config, setting_of
from appliance.errors import InputError
from appliance.services.app import App


def describe(app: App) -> dict[str, Any]:
    """Every editable setting: the value in use, the config file's, whether it was changed
    on the box, its description and limits; plus the name the tablet shows."""
    current = app.current_config()
    changed = app.catalog.settings.overrides()
    settings: dict[str, Any] = {}
    for key in EDITABLE:
        value, meta = setting_of(current, key)
        settings[key] = {"value": value, "file_value": setting_of(app.config, key)[0],
                         "changed_on_box": key in changed, "help": meta["help"],
                         "min": meta["min"], "max": meta["max"], "max_len": meta["max_len"]}
    return {"box_name": current.box_name, "settings": settings}


def from_text(key: str, text: str) -> Any:
    """A setting's value typed on a command line, as its kind (checked later by change)."""
    if key not in EDITABLE:
        raise InputError(f"'{key}' cannot be changed here; editable: " + ", ".join(EDITABLE))
    current, _ = setting_of(Config(), key)
    if isinstance(current, bool):
        words = {"true": True, "yes": True, "on": True, "false": False, "no": False,
                 "off": False}
        if text.lower() not in words:
            raise InputError(f"'{key}' is true or false (got {text!r})")
        return words[text.lower()]
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise InputError(f"'{key}' is a whole number (got {text!r})") from None
    return text


def change(app: App, changes: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
    """Change settings together (None: back to the config file's value); InputError if
    one is not editable, out of its limits, or the result does not fit together."""
    app.catalog.settings.change(changes, base=app.config, actor=actor)
    return describe(app)
