"""Settings an administrator changes on the box: each overrides one key of the config
file, is checked exactly as the file's keys are, and is audited with who changed it."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from appliance.catalog.audit import AuditLog
from appliance.catalog.db import Database, utc_now
from appliance.config import Config, apply_overrides
from appliance.errors import ConfigError, InputError

log = logging.getLogger(__name__)

# The config keys the tablet's Settings screen and `vigbox settings` may change. The rest
# (pins, camera, paths) belong in the file: a wrong value there needs a hand on the box.
EDITABLE = ("device_name", "recording.max_seconds", "recording.warn_before_end_s",
            "web.downloads_allowed")


class Settings:
    """The settings table."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    def overrides(self) -> dict[str, Any]:
        """Every key changed on the box, with its value."""
        with self._db.read() as db:
            rows = db.execute("SELECT key, value FROM settings ORDER BY key").fetchall()
        return {r["key"]: json.loads(r["value"]) for r in rows}

    def effective(self, config: Config) -> Config:
        """The config with the box's settings applied. A setting that no longer fits the
        file (changed since) is skipped with a warning: a recording must never fail on it."""
        overrides = self.overrides()
        try:
            return apply_overrides(config, overrides)
        except ConfigError:
            for key, value in overrides.items():
                try:
                    config = apply_overrides(config, {key: value})
                except ConfigError as e:
                    log.warning("setting %s is not used: %s", key, e)
            return config

    def change(self, changes: Mapping[str, Any], *, base: Config, actor: str) -> Config:
        """Set keys (None: back to the config file's value) in one transaction; InputError
        if a key is not editable or the result is not a valid config. Returns the result."""
        for key in changes:
            if key not in EDITABLE:
                raise InputError(f"'{key}' cannot be changed here; editable: "
                                 + ", ".join(EDITABLE))
        with self._db.transaction() as db:
            rows = db.execute("SELECT key, value FROM settings").fetchall()
            merged = {r["key"]: json.loads(r["value"]) for r in rows}
            merged.update(changes)
            merged = {k: v for k, v in merged.items() if v is not None}
            try:
                result = apply_overrides(base, merged)
            except ConfigError as e:
                raise InputError(str(e).removeprefix("settings: ")) from None
            now = utc_now()
            for key, value in changes.items():
                if value is None:
                    db.execute("DELETE FROM settings WHERE key=?", (key,))
                else:
                    db.execute("INSERT INTO settings (key, value, updated_at, updated_by)"
                               " VALUES (?,?,?,?) ON CONFLICT(key) DO UPDATE SET"
                               " value=excluded.value, updated_at=excluded.updated_at,"
                               " updated_by=excluded.updated_by",
                               (key, json.dumps(value), now, actor))
            self._audit.append_in(db, "settings.change", None, actor=actor,
                                  detail={"set": dict(changes)})
        return result
