"""Reading a JSON request body: an object of known fields with the right types, or a
clear 400 naming the field. Never a 500 for what a client sent."""

from __future__ import annotations

import json
import math
from typing import Any

from flask import request

from appliance.errors import InputError

MAX_JSON = 64 * 1024


def json_body(*, allowed: set[str]) -> dict[str, Any]:
    """The request's JSON object; InputError if it is missing, malformed, too large or has
    fields this route does not take."""
    if request.content_length is not None and request.content_length > MAX_JSON:
        raise InputError("the request body is too large")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_JSON:
        raise InputError("the request body is too large")
    if not raw.strip():
        return {}
    if not request.is_json:
        raise InputError("send the request body as application/json")
    try:
        data = json.loads(raw)
        # Lone surrogates ("\ud800") parse but cannot be stored: refuse them here.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise InputError("the request body must be a JSON object")
    unknown = set(data) - allowed
    if unknown:
        raise InputError(f"unknown field {sorted(unknown)[0]!r}; this request takes: "
                         f"{', '.join(sorted(allowed)) or 'nothing'}")
    return data


def number(data: dict[str, Any], key: str, *, required: bool = True,
           default: float | None = None) -> float | None:
    """A finite number field."""
    if key not in data or data[key] is None:
        if required:
            raise InputError(f"{key!r} is required")
        return default
    value = data[key]
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise InputError(f"{key!r} must be a number")
        return float(value)
    except OverflowError:
        raise InputError(f"{key!r} must be a number of a sensible size") from None


def integer(data: dict[str, Any], key: str, *, required: bool = True) -> int | None:
    """A whole-number field."""
    if key not in data or data[key] is None:
        if required:
            raise InputError(f"{key!r} is required")
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
        raise InputError(f"{key!r} must be a whole number")
    return value


def text(data: dict[str, Any], key: str, *, required: bool = True,
         max_len: int = 2000) -> str | None:
    """A text field (None when absent and not required)."""
    if key not in data or data[key] is None:
        if required:
            raise InputError(f"{key!r} is required")
        return None
    value = data[key]
    if not isinstance(value, str):
        raise InputError(f"{key!r} must be text")
    if len(value) > max_len:
        raise InputError(f"{key!r} may have at most {max_len} characters")
    if "\x00" in value:
        raise InputError(f"{key!r} may not contain a NUL character")
    return value


def flag(data: dict[str, Any], key: str, *, default: bool = False) -> bool:
    """A true/false field."""
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InputError(f"{key!r} must be true or false")
    return value


def texts(data: dict[str, Any], key: str, *, max_items: int = 100) -> list[str]:
    """A list of text items (empty when absent)."""
    value = data.get(key) or []
    if not isinstance(value, list) or len(value) > max_items \
            or not all(isinstance(v, str) and len(v) <= 200 for v in value):
        raise InputError(f"{key!r} must be a list of at most {max_items} short texts")
    return value
