"""Shared fixtures: an isolated data dir and config, and the CLI run as a real process."""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from gpiozero import Factory

from appliance.capture.gpio import make_pin_factory
from appliance.capture.picture import SyntheticPicture
from appliance.catalog import Catalog
from appliance.config import Config, load_config
from appliance.services.app import App
from tests.processes import write_test_config

CLI_TIMEOUT_S = 120
FPS = 30
SECONDS = 12
WIDTH, HEIGHT = 800, 448


@dataclasses.dataclass
class CliResult:
    """What one `vigbox` run did."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as the one JSON document it must be."""
        return json.loads(self.stdout)

    def error_line(self) -> str:
        """The one human error line of a failed run (log records may precede it)."""
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.splitlines()
        assert lines, "a failure must say what was wrong"
        mine = [line for line in lines if line.startswith("vigbox: ")]
        assert mine == [lines[-1]], self.stderr
        return lines[-1]


@pytest.fixture
def factory() -> Iterator[Factory]:
    """gpiozero's own MockFactory with PWM-capable pins, reset and closed afterwards."""
    f = make_pin_factory("mock")
    assert f is not None
    yield f
    f.reset()
    f.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty data directory for one test."""
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def nobody_data() -> Iterator[tuple[Path, pwd.struct_passwd]]:
    """A data dir owned by `nobody`, as the box's belongs to its service user, in a
    folder others may enter (not root's 0700 temp dir)."""
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="vigbox-owned-", dir="/tmp"))
    try:
        base.chmod(0o755)
        data = base / "data"
        data.mkdir()
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
        yield data, nobody
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def config_file(tmp_path: Path, data_dir: Path) -> Path:
    """A config file pointing at the test's data dir, simulated sources, small limits."""
    return write_test_config(tmp_path / "config.toml", data_dir)


@pytest.fixture
def config(config_file: Path) -> Config:
    """The test config, loaded."""
    return load_config(config_file)


@pytest.fixture
def cli_env(config_file: Path, data_dir: Path) -> dict[str, str]:
    """Environment for `vigbox` children: this test's config and nothing from the host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGBOX_")}
    env["VIGBOX_CONFIG"] = str(config_file)
    env.pop("NOTIFY_SOCKET", None)
    return env


@pytest.fixture
def vigbox(cli_env: dict[str, str]) -> Iterator[Any]:
    """Run `python -m appliance ARGS...` as a child process and return a CliResult."""

    def run(*args: str, timeout: float = CLI_TIMEOUT_S, env: dict[str, str] | None = None,
            ) -> CliResult:
        proc = subprocess.run([sys.executable, "-m", "appliance", *args],
                              capture_output=True, text=True, timeout=timeout,
                              env=env or cli_env, stdin=subprocess.DEVNULL)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    yield run


@pytest.fixture(scope="session")
def barcode_film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s at 30 fps, frame n showing barcode n, a keyframe every second, with a tone."""
    out = tmp_path_factory.mktemp("film") / "barcode.mp4"
    picture = SyntheticPicture(WIDTH, HEIGHT)
    proc = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
         "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "pipe:0", "-f", "lavfi", "-i",
         f"sine=frequency=440:duration={SECONDS}:sample_rate=48000", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", str(FPS), "-keyint_min", str(FPS), "-pix_fmt",
         "yuv420p", "-c:a", "aac", "-shortest", "-movflags", "+faststart", str(out)],
        stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for n in range(FPS * SECONDS):
        proc.stdin.write(picture.frame(n))
    proc.stdin.close()
    assert proc.wait(120) == 0
    return out


@pytest.fixture
def app(config: Config) -> Iterator[App]:
    """The application (config + catalog) on the test's data dir."""
    with Catalog(config.data_path) as catalog:
        yield App(config, catalog)


@pytest.fixture
def flask_app(app: App) -> Flask:
    """The tablet UI's Flask app on it, in testing mode."""
    from tests.web_support import make_app
    return make_app(app)


@pytest.fixture
def admin(app: App, flask_app: Flask) -> Any:
    """A tablet logged in as the administrator."""
    from tests.web_support import PASSPHRASE, Tablet
    app.catalog.accounts.set_passphrase("admin", PASSPHRASE, admin=True, actor="test")
    tablet = Tablet(flask_app.test_client())
    assert tablet.log_in().status_code == 302
    return tablet


@pytest.fixture
def film(app: App, barcode_film: Path, tmp_path: Path) -> str:
    """A playable recording (12 s at 30 fps, frame n shows barcode n) with its assets."""
    from appliance.services import media as media_service
    from appliance.services.imports import import_file
    copy = tmp_path / "phone.mp4"
    shutil.copy(barcode_film, copy)
    rec = import_file(app, copy, case=None, actor="test")
    media_service.run_queued(app)
    return rec.id


@pytest.fixture
def media(app: App, film: str, barcode_film: Path, tmp_path: Path) -> dict[str, str]:
    """Case FAM-1's film with two clips and a still; case FAM-2's film with a clip."""
    from appliance.catalog import Consent
    from appliance.services import media as media_service
    from appliance.services.imports import import_file
    app.catalog.cases.add("FAM-1", {Consent.FILMING: "2026-01-01"}, actor="test")
    app.catalog.cases.add("FAM-2", {Consent.FILMING: "2026-01-01"}, actor="test")
    app.catalog.recordings.set_case(film, "FAM-1", actor="test")
    shutil.copy(barcode_film, tmp_path / "other.mp4")
    other = import_file(app, tmp_path / "other.mp4", case="FAM-2", actor="test").id
    jobs = {
        "clip1": media_service.request_clip(app, film, 1.0, 2.0, exact=True, actor="test"),
        "clip2": media_service.request_clip(app, film, 4.0, 5.0, exact=False, actor="test"),
        "still": media_service.request_still(app, film, 3.0, actor="test"),
        "other": media_service.request_clip(app, other, 1.0, 2.0, exact=True, actor="test"),
    }
    media_service.run_queued(app)
    return {name: str(app.catalog.jobs.get(job.id).subject) for name, job in jobs.items()}


@pytest.fixture(scope="session")
def big_film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 s 720p film of noise at a high bitrate: about 14 MB (three 5 MiB S3 parts,
    several SFTP flushes)."""
    out = tmp_path_factory.mktemp("big") / "big.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=1280x720:rate=30,noise=alls=60:allf=t", "-t", "4",
                    "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "24M", "-g", "30",
                    "-pix_fmt", "yuv420p", str(out)], check=True, timeout=120,
                   stdin=subprocess.DEVNULL)
    return out
