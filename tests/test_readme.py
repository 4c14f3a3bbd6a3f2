"""The README's promises that code can check: the LED table and the two commands."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from appliance.capture.status_light import PATTERNS
from tests.test_systemd import INSTALLED_VIGBOX

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_led_table_matches_the_code() -> None:
    for seen, meaning in PATTERNS.values():
        assert f"| {seen} | {meaning} |" in README, f"README lacks the row for {seen!r}"


def test_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    block = re.search(r"## Two commands.*?```sh\n(.*?)```", README, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()
                if line.strip()]
    assert commands == ["bash tools/demo.sh", "bash tools/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    # Its last command is the README's test command, word for word.
    assert ci.strip().splitlines()[-1] == commands[1]
    assert "pytest" not in ci.replace("tools/test.sh", "")


def test_scripts_are_valid_bash() -> None:
    for script in ("tools/demo.sh", "tools/test.sh", "tools/bootstrap.sh",
                   "tools/install.sh", "tools/install-service.sh", ".ci/run"):
        subprocess.run(["bash", "-n", str(ROOT / script)], check=True, timeout=10)


def test_example_config_is_valid() -> None:
    from appliance.config import load_config
    load_config(ROOT / "tools" / "config.example.toml")


@pytest.mark.parametrize("name", ["vigbox-capture.service", "vigbox-encode.service"])
def test_systemd_unit_verifies(tmp_path: Path, name: str) -> None:
    analyze = subprocess.run(["which", "systemd-analyze"], capture_output=True, text=True)
    if analyze.returncode != 0:
        pytest.skip("systemd-analyze is not installed")
    import sys
    unit = (ROOT / "systemd" / name).read_text()
    vigbox = Path(sys.executable).parent / "vigbox"
    unit = unit.replace(INSTALLED_VIGBOX, str(vigbox))
    path = tmp_path / name
    path.write_text(unit)
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                          text=True, timeout=60)
    problems = [line for line in done.stderr.splitlines()
                if name in line and "not executable" not in line]
    assert problems == [], done.stderr
    if name == "vigbox-capture.service":
        assert "Type=notify" in unit and "WatchdogSec=" in unit


def test_every_command_the_readme_lists_exists() -> None:
    import argparse

    from appliance.cli import build_parser
    table = README[README.index("## Commands"):README.index("## On the box")]
    listed = set(re.findall(r"^\| `(?:sudo )?vigbox ([a-z-]+)", table, re.M))
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert listed and listed <= set(sub.choices), listed - set(sub.choices)
    # ... and the other way round: no command goes undocumented.
    assert set(sub.choices) <= listed, set(sub.choices) - listed
