"""`vigbox passwd`, `vigbox users` and `vigbox web [--tls]` as real processes."""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.web_support import PASSPHRASE

TIMEOUT_S = 60


def run_with_stdin(env: dict[str, str], text: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args], input=text,
                          capture_output=True, text=True, env=env, timeout=TIMEOUT_S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_passwd_makes_the_admin_then_changes_it(cli_env: dict[str, str], vigbox: Any,
                                                data_dir: Path) -> None:
    made = run_with_stdin(cli_env, PASSPHRASE + "\n", "passwd", "--stdin", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout) == {**json.loads(made.stdout), "name": "admin",
                                       "admin": True, "created": True}
    changed = run_with_stdin(cli_env, "another long passphrase\n", "passwd", "--stdin",
                             "--json")
    assert json.loads(changed.stdout)["created"] is False
    assert PASSPHRASE not in made.stderr + changed.stderr
    stored = b"".join(p.read_bytes() for p in data_dir.glob("catalog.sqlite3*"))
    assert b"scrypt" in stored and PASSPHRASE.encode() not in stored, "only a hash is kept"


def test_passwd_refuses_weak_or_missing_passphrases(cli_env: dict[str, str],
                                                    vigbox: Any) -> None:
    short = run_with_stdin(cli_env, "short\n", "passwd", "--stdin")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr.splitlines()[-1]
    no_tty = vigbox("passwd")
    assert no_tty.returncode == 1 and "--stdin" in no_tty.error_line()
    bad_name = run_with_stdin(cli_env, PASSPHRASE + "\n", "passwd", "--user", "Bad Name",
                              "--stdin")
    assert bad_name.returncode == 1 and "account name" in bad_name.stderr


def test_users_add_list_remove(cli_env: dict[str, str], vigbox: Any) -> None:
    run_with_stdin(cli_env, PASSPHRASE + "\n", "passwd", "--stdin")
    added = run_with_stdin(cli_env, PASSPHRASE + "\n", "users", "add", "sam", "--stdin",
                           "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["admin"] is False
    again = run_with_stdin(cli_env, PASSPHRASE + "\n", "users", "add", "sam", "--stdin")
    assert again.returncode == 1 and "already" in again.stderr
    listed = vigbox("users", "--json").json()
    assert [(u["name"], u["admin"]) for u in listed] == [("admin", True), ("sam", False)]
    assert vigbox("users", "remove", "sam", "--json").json() == {"removed": "sam"}
    last = vigbox("users", "remove", "admin")
    assert last.returncode == 1 and "only administrator" in last.error_line()
    assert vigbox("users", "remove", "nobody").returncode == 1


class WebProcess:
    """`vigbox web` as a child, stopped with SIGTERM like systemd does."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance", "web", *args],
                                     env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def wait_for(self, pattern: str) -> str:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            self.log.seek(0)
            text = self.log.read().decode()
            found = re.search(pattern, text)
            if found:
                return found.group(0)
            if self.proc.poll() is not None:
                raise AssertionError(f"vigbox web exited: {text}")
            time.sleep(0.05)
        raise AssertionError("vigbox web did not start")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(TIMEOUT_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


def test_web_tls_serves_https_with_the_boxs_certificate(cli_env: dict[str, str],
                                                        data_dir: Path) -> None:
    port = free_port()
    web = WebProcess(cli_env, "--host", "127.0.0.1", "--port", str(port), "--tls")
    try:
        url = web.wait_for(r"https://127\.0\.0\.1:\d+/")
        cert = data_dir / "tls" / "vigbox.crt"
        key = data_dir / "tls" / "vigbox.key"
        assert cert.is_file() and key.stat().st_mode & 0o077 == 0
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(url + "login", context=context, timeout=10) as response:
            assert response.status == 200 and b"Set up this box" in response.read()
            cookie = response.headers.get("Set-Cookie", "")
            assert "Secure" in cookie and "HttpOnly" in cookie
        with pytest.raises(ssl.SSLError):
            ssl.create_default_context().wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=10),
                server_hostname="127.0.0.1")
    finally:
        assert web.stop() == 0


def test_web_on_a_taken_port_says_so(cli_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "appliance", "web", "--host", "127.0.0.1",
                               "--port", str(port)], capture_output=True, text=True,
                              env=cli_env, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert "cannot listen" in proc.stderr.splitlines()[-1]


def test_settings_show_set_reset(vigbox: Any, data_dir: Path) -> None:
    shown = vigbox("settings", "--json")
    assert shown.returncode == 0, shown.stderr
    assert shown.json()["settings"]["web.downloads_allowed"]["value"] is False
    made = vigbox("settings", "set", "web.downloads_allowed", "yes", "--json")
    assert made.returncode == 0, made.stderr
    assert made.json()["settings"]["web.downloads_allowed"]["changed_on_box"] is True
    assert vigbox("settings", "set", "recording.max_seconds", "300").returncode == 0
    listing = vigbox("settings").stdout
    assert "recording.max_seconds = 300  (changed on the box" in listing
    for args, words in [(("set", "recording.max_seconds", "ten"), "whole number"),
                        (("set", "web.downloads_allowed", "maybe"), "true or false"),
                        (("set", "camera.fps", "25"), "cannot be changed here"),
                        (("set", "recording.max_seconds", "30"), "must be less than")]:
        bad = vigbox("settings", *args)
        assert bad.returncode == 1 and words in bad.error_line(), bad.stderr
    assert vigbox("settings", "reset", "recording.max_seconds").returncode == 0
    final = vigbox("settings", "--json").json()["settings"]
    assert final["recording.max_seconds"]["changed_on_box"] is False
    assert final["web.downloads_allowed"]["value"] is True
