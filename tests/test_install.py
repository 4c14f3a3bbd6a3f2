"""tools/install.sh: each install a release of its own in /opt/vigbox/releases, `current`
switched only to a release that passes its checks and whose services come up, config and
data never touched but for the catalog's pre-upgrade copy (put back when an upgrade fails),
`--rollback` (refused to a release that cannot read the catalog), old releases pruned. Each
test installs into a temporary root (VIGBOX_INSTALL_ROOT) with a stand-in for systemctl
(VIGBOX_SYSTEMCTL)."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.catalog import Catalog, Consent
from appliance.catalog.schema import MIGRATIONS
from tests.test_systemd import INSTALLED_VIGBOX

ROOT = Path(__file__).resolve().parent.parent
# The venv running these tests: linked into each release instead of building one per
# install (VIGBOX_INSTALL_TEST_VENV), so an install takes seconds. Such a release runs this
# checkout's code; test_a_real_install_builds_the_releases_own_venv builds a real one.
TEST_VENV = Path(sys.prefix)
SERVICES = ("vigbox-capture.service", "vigbox-encode.service", "vigbox-web.service")
RELEASE_NAME = re.compile(r"^\d+\.\d+\.\d+\S*-\d{8}T\d{6}Z(\.\d+)?$")
INSTALL_TIMEOUT_S = 120

STAND_IN_SYSTEMCTL = r"""#!/bin/bash
# Stands in for systemctl (systemd is not PID 1 where the tests run): see stand_in_systemctl.
here="$(dirname "$0")"
printf '%s\n' "$*" >> "$here/calls"
opt="$VIGBOX_INSTALL_ROOT/opt/vigbox"
release="$(basename "$(readlink "$opt/current")")"
case "$1" in
  restart|start)
    if [ -x "$here/on-start" ]; then "$here/on-start" "$release"; fi ;;
  is-active)
    printf 'current=%s previous=%s\n' "$release" \
      "$(basename "$(readlink "$opt/previous" 2>/dev/null)" 2>/dev/null)" >> "$here/links"
    state="$(sed -n "s/^$2@$release=//p" "$here/states" 2>/dev/null)"
    [ -n "$state" ] || state="$(sed -n "s/^$2=//p" "$here/states" 2>/dev/null)"
    echo "${state:=active}"
    [ "$state" = active ] ;;
  status) echo "stand-in status of ${*: -1}" ;;
esac
"""


def stand_in_systemctl(directory: Path) -> Path:
    """Write a stand-in for systemctl: systemd is not PID 1 on the machines the tests run
    on, so nothing can be started for real. It records each call's argv as a line of
    `calls` and answers `is-active UNIT` from `states`: a line UNIT@RELEASE=STATE while
    `current` points at RELEASE, else a line UNIT=STATE, else active; it exits 0 only for
    active, as systemctl does. Each is-active also notes where current and previous point
    in `links`; a `restart` or `start` runs the executable `on-start`, if there is one,
    with the release current points at."""
    path = directory / "systemctl"
    path.write_text(STAND_IN_SYSTEMCTL)
    path.chmod(0o755)
    return path


@dataclass
class Box:
    """A temporary root the installer writes into, and its stand-in service manager."""

    root: Path
    systemctl: Path

    @property
    def opt(self) -> Path:
        return self.root / "opt" / "vigbox"

    @property
    def config(self) -> Path:
        return self.root / "etc" / "vigbox" / "config.toml"

    def install(self, *args: str, checkout: Path = ROOT, test_venv: bool = True,
                wait_s: int = 5) -> subprocess.CompletedProcess[str]:
        """Run tools/install.sh as an administrator would, into this root."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGBOX_")}
        env |= {"VIGBOX_INSTALL_ROOT": str(self.root), "VIGBOX_SYSTEMCTL": str(self.systemctl),
                "VIGBOX_INSTALL_WAIT_S": str(wait_s), "VIGBOX_INSTALL_SETTLE_S": "0"}
        if test_venv:
            env["VIGBOX_INSTALL_TEST_VENV"] = str(TEST_VENV)
        return subprocess.run(["bash", str(checkout / "tools" / "install.sh"), *args],
                              env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=INSTALL_TIMEOUT_S, check=False)

    def installed(self, *args: str, checkout: Path = ROOT, test_venv: bool = True) -> str:
        """Install and expect success; the release `current` then points at."""
        done = self.install(*args, checkout=checkout, test_venv=test_venv)
        assert done.returncode == 0, done.stderr
        return self.current()

    def link(self, name: str) -> str:
        target = os.readlink(self.opt / name)
        assert target.startswith("releases/"), target  # relative: the same in any root
        return target.removeprefix("releases/")

    def current(self) -> str:
        return self.link("current")

    def releases(self) -> list[str]:
        return sorted(p.name for p in (self.opt / "releases").iterdir())

    def set_state(self, unit: str, state: str, *, except_on: str = "") -> None:
        """What `is-active UNIT` answers from now on, except on one release (active)."""
        lines = f"{unit}@{except_on}=active\n" if except_on else ""
        (self.systemctl.parent / "states").write_text(f"{lines}{unit}={state}\n")

    def calls(self) -> list[str]:
        log = self.systemctl.parent / "calls"
        return log.read_text().splitlines() if log.exists() else []

    def forget_calls(self) -> None:
        (self.systemctl.parent / "calls").unlink(missing_ok=True)
        (self.systemctl.parent / "links").unlink(missing_ok=True)

    def links_seen(self) -> list[str]:
        """`current=A previous=B` as each is-active found them."""
        log = self.systemctl.parent / "links"
        return log.read_text().splitlines() if log.exists() else []

    def on_start(self, script: str) -> Path:
        """Run a bash script on each restart or start of units ($1: the current release);
        returns a file the script may create to say something happened."""
        hook = self.systemctl.parent / "on-start"
        hook.write_text(f"#!/bin/bash\nset -euo pipefail\n{script}")
        hook.chmod(0o755)
        return self.systemctl.parent / "happened"

    @property
    def catalog(self) -> Path:
        return self.root / "var" / "lib" / "vigbox" / "catalog.sqlite3"

    @property
    def catalog_copy(self) -> Path:
        return self.catalog.with_name("catalog.before-upgrade.sqlite3")

    def make_catalog(self) -> tuple[int, list[str]]:
        """A real catalog with a case in it, as the services make it; its contents."""
        with Catalog(self.catalog.parent) as catalog:
            catalog.cases.add("VIG-2026-001", {Consent.FILMING: "2026-01-01"}, actor="test")
        self.catalog.chmod(0o640)
        return contents(self.catalog)


def contents(db: Path) -> tuple[int, list[str]]:
    """A catalog's schema version and every row, as SQL."""
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0]), list(con.iterdump())
    finally:
        con.close()


def set_schema(db: Path, version: int) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute(f"PRAGMA user_version={version}")
    finally:
        con.close()


# What a newer release's services do to the catalog as they start: migrate it (a table, a
# row, a higher user_version) in WAL mode, then die without a checkpoint, as a service
# killed would, so the change is still in the -wal when the installer finds it.
MIGRATE_LIKE_A_NEWER_RELEASE = """
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA journal_mode=WAL")
con.execute("PRAGMA wal_autocheckpoint=0")
con.execute("BEGIN IMMEDIATE")
con.execute("CREATE TABLE made_by_the_new_release (x)")
con.execute("INSERT INTO made_by_the_new_release VALUES (1)")
con.execute(f"PRAGMA user_version={int(sys.argv[2])}")
con.execute("COMMIT")
os._exit(0)
"""


@pytest.fixture
def box() -> Iterator[Box]:
    # Not tmp_path: a release with a real venv is ~200 MB, which pytest would keep around.
    with tempfile.TemporaryDirectory(prefix="vigbox-install-") as tmp:
        bin_dir = Path(tmp) / "bin"
        bin_dir.mkdir()
        (Path(tmp) / "root").mkdir()
        assert (TEST_VENV / "bin" / "vigbox").is_file(), "the tests run in vigbox's venv"
        yield Box(root=Path(tmp) / "root", systemctl=stand_in_systemctl(bin_dir))


def test_first_install_makes_a_release_that_the_units_run(box: Box) -> None:
    name = box.installed()
    assert RELEASE_NAME.match(name) and box.releases() == [name]
    release = box.opt / "releases" / name
    assert (release / "appliance" / "__init__.py").is_file()
    assert os.access(release / ".venv" / "bin" / "vigbox", os.X_OK)
    assert not (box.opt / "previous").exists()
    command = box.root / "usr" / "local" / "bin" / "vigbox"
    assert os.readlink(command) == "/opt/vigbox/current/.venv/bin/vigbox"

    assert box.config.read_bytes() == (ROOT / "tools" / "config.example.toml").read_bytes()
    assert stat.S_IMODE(box.config.stat().st_mode) == 0o640

    units = box.root / "etc" / "systemd" / "system"
    shipped = sorted([*(ROOT / "systemd").glob("*.service"), *(ROOT / "systemd").glob("*.timer")])
    assert sorted(p.name for p in units.iterdir()) == [p.name for p in shipped]
    for unit in shipped:
        text = (units / unit.name).read_text()
        assert text == unit.read_text()
        for start in re.findall(r"^ExecStart=(\S+)", text, flags=re.M):
            assert start == INSTALLED_VIGBOX == "/opt/vigbox/current/.venv/bin/vigbox"
    rules = box.root / "etc" / "polkit-1" / "rules.d"
    assert sorted(p.name for p in rules.iterdir()) == sorted(
        p.name for p in (ROOT / "systemd").glob("*.rules"))

    calls = box.calls()
    enable = next(c.split()[1:] for c in calls if c.startswith("enable "))
    assert sorted(enable) == sorted([*SERVICES, "vigbox-sync.timer"])  # not sync.service
    assert calls.index("daemon-reload") < next(
        i for i, c in enumerate(calls) if c.startswith("restart "))
    assert {f"is-active {s}" for s in SERVICES} <= set(calls)


def test_a_rerun_upgrades_in_place_and_keeps_config_and_data(box: Box) -> None:
    first = box.installed()
    box.config.write_text('log_level = "debug"  # the office set this\n'
                          + box.config.read_text())
    config_before = box.config.read_bytes()
    data = box.root / "var" / "lib" / "vigbox" / "catalog.sqlite"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"recordings of families")
    data_stat = data.stat()
    box.forget_calls()

    second = box.installed()
    assert second != first and box.releases() == sorted([first, second])
    assert box.link("previous") == first
    assert box.config.read_bytes() == config_before
    assert stat.S_IMODE(box.config.stat().st_mode) == 0o640
    assert data.read_bytes() == b"recordings of families"
    assert (data.stat().st_mtime_ns, data.stat().st_ino) == (data_stat.st_mtime_ns,
                                                             data_stat.st_ino)
    assert any(c.startswith("restart vigbox-capture.service") for c in box.calls())


@pytest.mark.slow
@pytest.mark.parametrize("state", ["failed", "activating"])
def test_services_that_do_not_come_up_leave_the_previous_release_running(
        box: Box, state: str) -> None:
    first = box.installed()
    # On the new release only; "activating" for ever: the bounded wait runs out.
    box.set_state("vigbox-web.service", state, except_on=first)
    box.forget_calls()

    done = box.install(wait_s=1)
    assert done.returncode != 0
    assert f"vigbox-web.service is {state}" in done.stderr
    assert "vigbox-web.service did not come up on" in done.stderr
    assert f"going back to {first}" in done.stderr and f"{first} runs again" in done.stderr
    assert box.current() == first and box.releases() == [first]  # the failed one is gone
    restarts = [c for c in box.calls() if c.startswith("restart ")]
    assert len(restarts) == 2  # the new release, then the previous one again
    assert "status --no-pager --lines=20 vigbox-web.service" in box.calls()


def test_a_first_install_whose_services_fail_says_there_is_nothing_to_go_back_to(
        box: Box) -> None:
    box.set_state("vigbox-capture.service", "failed")
    done = box.install()
    assert done.returncode != 0
    assert "no earlier release to go back to" in done.stderr
    assert "journalctl -u 'vigbox-*'" in done.stderr
    assert [box.current()] == box.releases()  # kept, to see what went wrong


def test_a_release_failing_its_config_check_is_never_switched_to(box: Box) -> None:
    first = box.installed()
    box.config.write_text('[camera]\nfps = "fast"\n')
    box.forget_calls()

    done = box.install()
    assert done.returncode != 0
    assert "vigbox config check" in done.stderr and str(box.config) in done.stderr
    assert "the running version is unchanged" in done.stderr
    assert box.current() == first and box.releases() == [first]
    assert box.calls() == []  # nothing was reloaded, enabled or restarted
    assert box.config.read_text() == '[camera]\nfps = "fast"\n'


@pytest.mark.slow
def test_rollback_swaps_back_to_the_previous_release_and_again(box: Box) -> None:
    assert box.install("--rollback").returncode != 0  # nothing installed yet
    first = box.installed()
    refused = box.install("--rollback")
    assert refused.returncode != 0 and "no previous release" in refused.stderr
    second = box.installed()
    box.forget_calls()

    assert box.installed("--rollback") == first
    assert box.link("previous") == second
    assert any(c.startswith("restart vigbox-capture.service") for c in box.calls())
    assert box.installed("--rollback") == second
    assert box.releases() == sorted([first, second])


@pytest.mark.slow
def test_units_and_rules_follow_the_release(box: Box, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT, checkout, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*cache"))
    later_rule = "59-vigbox-later.rules"
    assert not (ROOT / "systemd" / later_rule).exists()
    (checkout / "systemd" / later_rule).write_text("// a rule added by a later release\n")
    rules = box.root / "etc" / "polkit-1" / "rules.d"

    box.installed(checkout=checkout)
    assert (rules / later_rule).read_text() == "// a rule added by a later release\n"
    assert (rules / "50-vigbox-poweroff.rules").is_file()
    box.installed()  # this checkout's release, which does not have it
    assert not (rules / later_rule).exists() and (rules / "50-vigbox-poweroff.rules").is_file()


@pytest.mark.slow
def test_old_releases_are_pruned_to_the_previous_one_and_two_more(box: Box) -> None:
    made = [box.installed() for _ in range(5)]
    assert len(set(made)) == 5
    assert box.releases() == sorted(made[1:])  # the oldest went
    assert box.current() == made[4] and box.link("previous") == made[3]


@pytest.mark.slow
def test_a_real_install_builds_the_releases_own_venv(box: Box) -> None:
    name = box.installed(test_venv=False)
    release = box.opt / "releases" / name
    venv = release / ".venv"
    assert venv.is_dir() and not venv.is_symlink()
    shown = subprocess.run([str(venv / "bin" / "python"), "-I", "-c",
                            "import appliance; print(appliance.__file__)"],
                           capture_output=True, text=True, timeout=60, check=True)
    source = (release / "appliance" / "__init__.py").resolve()
    assert Path(shown.stdout.strip()).resolve() == source  # its own copy, not the checkout
    # The venv sees the system's packages exactly when they have Raspberry Pi OS's picamera2.
    has_picamera2 = subprocess.run(["/usr/bin/python3", "-c", "import picamera2"],
                                   capture_output=True, timeout=60).returncode == 0
    system_site = "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    assert system_site == has_picamera2


def test_an_upgrade_copies_the_catalog_first_and_sets_previous_before_current(
        box: Box) -> None:
    first = box.installed()
    before = box.make_catalog()
    box.forget_calls()

    done = box.install()
    assert done.returncode == 0, done.stderr
    second = box.current()
    # The copy: taken after the services stopped, before the new release started; kept.
    assert contents(box.catalog_copy) == before
    copy_stat, catalog_stat = box.catalog_copy.stat(), box.catalog.stat()
    assert stat.S_IMODE(copy_stat.st_mode) == 0o640
    assert (copy_stat.st_uid, copy_stat.st_gid) == (catalog_stat.st_uid, catalog_stat.st_gid)
    assert f"kept in {box.catalog_copy}" in done.stderr
    assert not list(box.catalog.parent.glob("*.new.*"))
    assert not list(box.catalog.parent.glob("catalog.before-upgrade.sqlite3-*"))  # one file
    calls = box.calls()
    stop = next(i for i, c in enumerate(calls) if c.startswith("stop "))
    assert set(calls[stop].split()[1:]) == {*SERVICES, "vigbox-sync.service",
                                            "vigbox-sync.timer"}
    assert stop < next(i for i, c in enumerate(calls) if c.startswith("restart "))
    # While the new release's services were awaited, previous already named the old one.
    seen = box.links_seen()
    assert seen and set(seen) == {f"current={second} previous={first}"}


def test_a_failed_upgrade_puts_back_the_catalog_the_previous_release_reads(box: Box) -> None:
    first = box.installed()
    before = box.make_catalog()
    happened = box.on_start(
        f'[ "$1" = {first} ] && exit 0\n'
        f"{sys.executable} -c '{MIGRATE_LIKE_A_NEWER_RELEASE}' {box.catalog} "
        f"{len(MIGRATIONS) + 1}\n"
        f'if [ -s {box.catalog}-wal ]; then touch "$(dirname "$0")/happened"; fi\n')
    box.set_state("vigbox-web.service", "failed", except_on=first)
    box.forget_calls()

    done = box.install(wait_s=1)
    assert happened.exists()  # the new release migrated the catalog, in its -wal
    assert done.returncode != 0
    assert "vigbox-web.service did not come up" in done.stderr
    assert "put back the catalog as it was before the upgrade" in done.stderr
    assert "is undone" in done.stderr and f"{first} runs again" in done.stderr
    assert box.current() == first and box.releases() == [first]
    assert not (box.opt / "previous").exists()  # as before the install
    # Put back whole: no -wal or -shm of the migrated file left to replay onto it.
    assert not box.catalog.with_name("catalog.sqlite3-wal").exists()
    assert not box.catalog.with_name("catalog.sqlite3-shm").exists()
    assert contents(box.catalog) == before == contents(box.catalog_copy)
    assert stat.S_IMODE(box.catalog.stat().st_mode) == 0o640
    calls = box.calls()
    restarts = [i for i, c in enumerate(calls) if c.startswith("restart ")]
    stops = [i for i, c in enumerate(calls) if c.startswith("stop ")]
    assert len(restarts) == 2 and len(stops) == 2  # before the copy, before putting it back
    assert stops[0] < restarts[0] < stops[1] < restarts[1]


@pytest.mark.slow
def test_rollback_is_refused_to_a_release_that_cannot_read_the_catalog(box: Box) -> None:
    first = box.installed()
    before = box.make_catalog()
    second = box.installed()
    # The second release migrated the catalog to a schema the first does not know.
    newer = len(MIGRATIONS) + 1
    set_schema(box.catalog, newer)
    box.forget_calls()

    refused = box.install("--rollback")
    assert refused.returncode != 0
    assert f"{first} reads catalog schema {len(MIGRATIONS)} at most" in refused.stderr
    assert f"{box.catalog} is schema {newer}" in refused.stderr
    assert "running nothing" in refused.stderr and f"stays on {second}" in refused.stderr
    assert f"sudo cp -p {box.catalog_copy} {box.catalog}" in refused.stderr
    assert "loses everything recorded or changed since" in refused.stderr
    assert box.current() == second and box.link("previous") == first
    assert box.calls() == []  # nothing stopped or restarted
    assert contents(box.catalog)[0] == newer  # nor put back

    # The way out the message gives: the copy back by hand, then --rollback.
    for stale in ("catalog.sqlite3-wal", "catalog.sqlite3-shm"):
        box.catalog.with_name(stale).unlink(missing_ok=True)
    shutil.copy2(box.catalog_copy, box.catalog)
    assert box.installed("--rollback") == first
    assert contents(box.catalog) == before


def test_a_checkout_inside_opt_vigbox_is_not_installed_but_can_roll_back(box: Box) -> None:
    first = box.installed()
    second = box.installed()
    box.forget_calls()
    release = box.opt / "current"  # sudo bash /opt/vigbox/current/tools/install.sh

    refused = box.install(checkout=release)
    assert refused.returncode != 0
    assert f"is inside {box.opt}" in refused.stderr and "elsewhere" in refused.stderr
    assert box.releases() == sorted([first, second]) and box.current() == second
    assert box.calls() == []

    assert box.installed("--rollback", checkout=release) == first
