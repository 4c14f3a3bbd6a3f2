"""A tablet over real HTTP: a logged-in session (cookies, the CSRF token) against a
running `vigbox web`, timing each request by kind (for the benchmarks)."""

from __future__ import annotations

import http.cookiejar
import json
import re
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from typing import Any

TOKEN = re.compile(r'name="csrf-token" content="([^"]+)"')


class Client:
    """One tablet: log in once, then JSON requests with the session's CSRF token."""

    def __init__(self, base: str, account: str = "admin", passphrase: str = "") -> None:
        self.base = base.rstrip("/")
        self.account, self.passphrase = account, passphrase
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.token = ""
        self.times: dict[str, list[float]] = defaultdict(list)

    def request(self, method: str, path: str, body: Any = None, kind: str | None = None,
                headers: dict[str, str] | None = None, form: dict[str, str] | None = None,
                timeout: float = 60) -> bytes:
        """One request; its body. urllib's HTTPError on a 4xx/5xx answer."""
        data = None
        all_headers = {"X-CSRF-Token": self.token, **(headers or {})}
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=all_headers)
        start = time.perf_counter()
        with self.opener.open(req, timeout=timeout) as response:
            payload: bytes = response.read()
        if kind:
            self.times[kind].append(time.perf_counter() - start)
        return payload

    def json(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON API call; its answer."""
        return json.loads(self.request(method, path, body))

    def log_in(self) -> None:
        """Log in as the account; keeps the session's CSRF token."""
        self.token = self._token("/login")
        self.request("POST", "/login", form={"username": self.account,
                                             "password": self.passphrase,
                                             "csrf_token": self.token})
        self.token = self._token("/")

    def _token(self, path: str) -> str:
        found = TOKEN.search(self.request("GET", path).decode())
        assert found is not None, f"{path} has no CSRF token: not logged in?"
        return found.group(1)
