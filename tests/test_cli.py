"""The `vigbox` command-line contract (DESIGN.md §5), run as a real child process."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from appliance import __version__
from appliance.catalog import Catalog, Consent


def only_line(result: Any) -> str:
    """stderr of a failed run must be exactly one line; return it."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vigbox: ")
    return lines[0]




def catalog_state(data_dir: Path) -> tuple[list[Any], list[Any], list[Any]]:
    """Cases, recordings and audit log, to show a refused command changed nothing."""
    with Catalog(data_dir) as catalog:
        return ([c.to_json() for c in catalog.cases.list()],
                [r.to_json() for r in catalog.recordings.list()],
                [e.to_json() for e in catalog.audit.entries()])


# -- one JSON document ---------------------------------------------------------------------


@pytest.mark.parametrize("args, expected", [
    (("recordings", "--json"), []),
    (("cases", "--json"), []),
    (("recover", "--json"), []),
])
def test_json_lists_on_empty_data_dir(vigbox: Any, args: tuple[str, ...],
                                      expected: list[Any]) -> None:
    result = vigbox(*args)
    assert result.returncode == 0, result.stderr
    assert result.json() == expected  # json.loads refuses anything after the document


def test_config_check_json_is_one_document(vigbox: Any, data_dir: Path) -> None:
    result = vigbox("config", "check", "--json")
    assert result.returncode == 0, result.stderr
    doc = result.json()
    assert isinstance(doc, dict)
    assert doc["data_dir"] == str(data_dir)


def test_human_output_without_json(vigbox: Any) -> None:
    assert vigbox("recordings").stdout.strip() == "no recordings yet"
    assert vigbox("cases").stdout.strip() == "no cases yet"
    assert vigbox("recover").stdout.strip() == "nothing to recover"


@pytest.mark.parametrize("args", [("recordings",), ("cases", "--json")])
def test_a_reader_that_stops_reading_is_not_an_error(args: tuple[str, ...],
                                                      cli_env: dict[str, str]) -> None:
    """`vigbox audit | head`: the pipe closes early; no traceback, the shell's SIGPIPE code."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE, as after `head` has exited
    try:
        proc = subprocess.run([sys.executable, "-m", "appliance", *args], stdout=write_end,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                              env=cli_env, timeout=60)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


def test_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "appliance", "--version"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"vigbox {__version__}"


# -- cases ---------------------------------------------------------------------------------


def test_cases_add_and_list(vigbox: Any) -> None:
    result = vigbox("cases", "add", "VIG-2026-014", "--consent", "filming, supervision",
                    "--date", "2026-01-15", "--json")
    assert result.returncode == 0, result.stderr
    case = result.json()
    assert case["code"] == "VIG-2026-014"
    assert case["consent"] == {"filming": "2026-01-15", "supervision": "2026-01-15"}

    human = vigbox("cases", "add", "VIG-2026-015")
    assert human.returncode == 0, human.stderr
    assert "added case VIG-2026-015 (consent: none yet)" in human.stdout

    listed = vigbox("cases", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [c["code"] for c in listed.json()] == ["VIG-2026-014", "VIG-2026-015"]
    assert listed.json()[0] == case


def test_cases_add_consent_defaults_to_today(vigbox: Any) -> None:
    from datetime import date

    before = date.today().isoformat()
    result = vigbox("cases", "add", "VIG-2026-016", "--consent", "training", "--json")
    after = date.today().isoformat()
    assert result.returncode == 0, result.stderr
    assert result.json()["consent"]["training"] in (before, after)


@pytest.mark.parametrize("args, reason", [
    (("cases", "add", "Smith"), "never a family name"),
    (("cases", "add", "vig-2026-1"), "not valid"),
    (("cases", "add", "VIG-2026-020", "--consent", "filming,publicity"), "publicity"),
    (("cases", "add", "VIG-2026-020", "--consent", "filming", "--date", "2026-02-30"),
     "YYYY-MM-DD"),
    (("cases", "add", "VIG-2026-020", "--consent", "filming", "--date", "15/01/2026"),
     "YYYY-MM-DD"),
    (("cases", "add", "VIG-2026-001"), "already exists"),
])
def test_cases_add_refused(vigbox: Any, data_dir: Path, args: tuple[str, ...],
                           reason: str) -> None:
    with Catalog(data_dir) as catalog:
        catalog.cases.add("VIG-2026-001", {Consent.FILMING: "2026-01-01"}, actor="test")
    before = catalog_state(data_dir)
    result = vigbox(*args, "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert reason in only_line(result)
    assert catalog_state(data_dir) == before


# -- record --------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, status", [
    ("0", 1), ("-1", 1), ("100000", 1), ("abc", 2), ("nan", 1), ("inf", 1),
])
def test_record_bad_seconds(vigbox: Any, data_dir: Path, seconds: str, status: int) -> None:
    result = vigbox("record", "--simulate", "--seconds", seconds, "--json")
    assert result.returncode == status
    assert result.stdout == ""
    assert "--seconds" in only_line(result)
    _, recordings, _ = catalog_state(data_dir)
    assert recordings == []
    assert not (data_dir / "recordings").exists() or \
        list((data_dir / "recordings").iterdir()) == []


def test_record_needs_filming_consent(vigbox: Any, data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        catalog.cases.add("VIG-2026-030", {Consent.SUPERVISION: "2026-01-01",
                                            Consent.TRAINING: "2026-01-01"}, actor="test")
    result = vigbox("record", "--simulate", "--seconds", "2", "--case", "VIG-2026-030", "--json",
                    timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    line = result.error_line()
    assert "consent" in line
    assert "VIG-2026-030" in line
    _, recordings, _ = catalog_state(data_dir)
    assert recordings == []


def test_record_unknown_case_refused(vigbox: Any, data_dir: Path) -> None:
    result = vigbox("record", "--simulate", "--seconds", "2", "--case", "VIG-2026-404",
                    "--json", timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "VIG-2026-404" in result.error_line()
    _, recordings, _ = catalog_state(data_dir)
    assert recordings == []


def test_record_with_filming_consent(vigbox: Any, data_dir: Path) -> None:
    with Catalog(data_dir) as catalog:
        catalog.cases.add("VIG-2026-031", {Consent.FILMING: "2026-01-01"}, actor="test")
    result = vigbox("record", "--simulate", "--seconds", "2", "--case", "VIG-2026-031", "--json",
                    timeout=60)
    assert result.returncode == 0, result.stderr
    doc = result.json()
    assert doc["case"] == "VIG-2026-031"
    assert doc["status"] == "ready"
    assert doc["duration_s"] == pytest.approx(2.0, abs=0.5)
    assert Path(doc["path"]).is_file()
    assert Path(doc["path"]).is_relative_to(data_dir)
    _, recordings, _ = catalog_state(data_dir)
    assert [r["id"] for r in recordings] == [doc["id"]]
    assert recordings[0]["case"] == "VIG-2026-031"

    listed = vigbox("recordings", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in listed.json()] == [doc["id"]]


# -- usage errors and the daemon -----------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("frobnicate",),
    (),
    ("record",),                      # --seconds is required
    ("recordings", "--colour"),
    ("ctl", "reboot"),
    ("config",),                      # needs `check`
])
def test_usage_errors_exit_2_one_line(vigbox: Any, args: tuple[str, ...]) -> None:
    result = vigbox(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--help" in only_line(result)


def test_ctl_status_without_daemon(vigbox: Any) -> None:
    result = vigbox("ctl", "status", "--json", timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "not running" in only_line(result)


def test_ctl_case_only_with_start(vigbox: Any) -> None:
    result = vigbox("ctl", "stop", "--case", "VIG-2026-001")
    assert result.returncode == 1
    assert "ctl start" in only_line(result)


def test_check_sync_missing_file(vigbox: Any, tmp_path: Path) -> None:
    result = vigbox("check-sync", str(tmp_path / "none.mp4"), "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "not a file" in only_line(result)


def test_consent_can_be_given_and_withdrawn_later(vigbox: Any) -> None:
    assert vigbox("cases", "add", "VIG-2026-050").returncode == 0
    given = vigbox("cases", "consent", "VIG-2026-050", "--give", "filming,training",
                   "--date", "2026-10-01", "--json")
    assert given.returncode == 0, given.stderr
    assert given.json()["consent"] == {"filming": "2026-10-01", "training": "2026-10-01"}
    withdrawn = vigbox("cases", "consent", "VIG-2026-050", "--withdraw", "training", "--json")
    assert withdrawn.json()["consent"] == {"filming": "2026-10-01"}
    for bad in (["--give", "filming", "--withdraw", "filming"], [], ["--give", "everything"],
                ["--give", "filming", "--date", "yesterday"]):
        result = vigbox("cases", "consent", "VIG-2026-050", *bad)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    listed = vigbox("cases", "--json").json()
    assert listed[0]["consent"] == {"filming": "2026-10-01"}


def test_a_consent_date_in_the_future_is_refused(vigbox: Any) -> None:
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    result = vigbox("cases", "add", "VIG-2026-060", "--consent", "filming", "--date", tomorrow)
    assert result.returncode == 1 and "in the future" in result.error_line()
    assert vigbox("cases", "--json").json() == []
    assert vigbox("cases", "add", "VIG-2026-060", "--consent", "filming").returncode == 0
    later = vigbox("cases", "consent", "VIG-2026-060", "--give", "training", "--date", tomorrow)
    assert later.returncode == 1 and "in the future" in later.error_line()
    assert vigbox("cases", "--json").json()[0]["consent"] == {"filming": date.today().isoformat()}


def test_every_command_writes_with_umask_027(vigbox: Any, data_dir: Path) -> None:
    assert vigbox("cases", "add", "VIG-2026-061", "--consent", "filming").returncode == 0
    for path in [data_dir / "catalog.sqlite3", *data_dir.glob("catalog.sqlite3-*")]:
        assert path.stat().st_mode & 0o007 == 0, f"{path.name} is readable by everyone"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as root")
def test_root_on_a_service_owned_data_dir_acts_as_its_owner(
        vigbox: Any, cli_env: dict[str, str], nobody_data: tuple[Path, Any]) -> None:
    """`sudo vigbox ...` on the box must not leave root-owned files (the catalog's -wal
    and -shm, an import's assets) that the services then cannot write."""
    data, nobody = nobody_data
    env = cli_env | {"VIGBOX_DATA_DIR": str(data)}
    result = vigbox("cases", "add", "VIG-2026-062", "--consent", "filming", env=env)
    assert result.returncode == 0, result.stderr
    made = list(data.rglob("*"))
    assert made, "the catalog was made"
    assert {p.stat().st_uid for p in made} == {nobody.pw_uid}, \
        [(p.name, p.stat().st_uid) for p in made]
