"""`vigbox wifi setup` and `show` against a real NetworkManager (tests/network_manager.py):
the profile NetworkManager reads from vigbox's keyfile is the access point asked for, odd
network names and passphrases come back exactly, a kept passphrase survives a setup,
the older profile goes only once the new one is in, a refused keyfile leaves the box as
it was, and no nmcli command line ever holds the passphrase."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import wifi
from appliance.catalog import Catalog
from appliance.config_sections import WifiConfig
from appliance.errors import SystemToolError
from appliance.services import wifi as wifi_service
from tests.network_manager import NetworkManager, running_network_manager
from tests.processes import write_test_config

pytestmark = pytest.mark.timeout(120)

PSK = "802-11-wireless-security.psk"
NET = wifi.network_for(WifiConfig(country="GB"), "Küche 2", 8080)

# Records each nmcli argv, then runs the real one.
RECORDER = """#!{python}
import json, os, sys
with open({log!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
"""


@pytest.fixture
def nm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkManager]:
    """A private NetworkManager that this process's nmcli reaches, with every nmcli argv
    recorded in tmp/nmcli-calls.jsonl. The Wi-Fi country is the system's business, not
    NetworkManager's: raspi-config is a stand-in that does nothing."""
    with running_network_manager(tmp_path / "nm") as manager:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        real = shutil.which("nmcli")
        assert real is not None
        recorder = bin_dir / "nmcli"
        recorder.write_text(RECORDER.format(python=sys.executable, real=real,
                                            log=str(tmp_path / "nmcli-calls.jsonl")))
        recorder.chmod(0o755)
        # Setting the country is the system's business, not NetworkManager's: here it
        # is a no-op that says it ran.
        (bin_dir / "raspi-config").write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / "raspi-config").chmod(0o755)
        for key, value in manager.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        yield manager


def nmcli_calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "nmcli-calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def only_profile(nm: NetworkManager) -> tuple[str, Path]:
    [(uuid, name, filename)] = nm.profiles()
    assert name == "vigbox-ap"
    return uuid, Path(filename)


def test_networkmanager_reads_the_access_point_vigbox_asked_for(nm: NetworkManager,
                                                                tmp_path: Path) -> None:
    report = wifi_service.setup(NET, euid=0)
    psk = report.passphrase
    assert psk is not None and wifi.is_usable_passphrase(psk)
    uuid, keyfile = only_profile(nm)
    assert keyfile.parent == nm.keyfiles
    info = keyfile.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, 0)
    fields = {name: nm.field(uuid, name) for name in (
        "connection.type", "connection.interface-name", "connection.autoconnect",
        "connection.autoconnect-priority", "802-11-wireless.mode", "802-11-wireless.band",
        "802-11-wireless.ssid", "802-11-wireless-security.key-mgmt",
        "802-11-wireless-security.proto", "802-11-wireless-security.pairwise",
        "802-11-wireless-security.group", "802-11-wireless-security.pmf", PSK,
        "ipv4.method", "ipv4.addresses", "ipv6.method")}
    assert fields == {
        "connection.type": "802-11-wireless", "connection.interface-name": "wlan0",
        "connection.autoconnect": "yes", "connection.autoconnect-priority": "100",
        "802-11-wireless.mode": "ap", "802-11-wireless.band": "bg",
        "802-11-wireless.ssid": "vigbox-Kuche-2",
        "802-11-wireless-security.key-mgmt": "wpa-psk",
        "802-11-wireless-security.proto": "rsn",
        "802-11-wireless-security.pairwise": "ccmp",
        "802-11-wireless-security.group": "ccmp",
        "802-11-wireless-security.pmf": "1",   # disable: the Pi's chip cannot do PMF as AP
        PSK: psk,
        "ipv4.method": "shared", "ipv4.addresses": "10.42.0.1/24", "ipv6.method": "disabled"}
    # No Wi-Fi device here: the profile is saved, and starting it failed, as said.
    assert report.failed is not None and "No suitable device found" in report.failed
    assert "NetworkManager tries again at boot" in report.failed
    calls = nmcli_calls(tmp_path)
    assert ["connection", "load", str(keyfile)] in calls
    assert not [c for c in calls if psk in " ".join(c)], "the passphrase on a command line"


@pytest.mark.parametrize("ssid, kept", [
    ("Familie Raum", " leading and trailing "),
    ("Küche;#\\2", "back\\slash;semi#hash=eq"),
    ("vigbox-plain", "k7dm-wq3e-9hxa-tnp4"),
])
def test_a_kept_passphrase_and_an_odd_network_name_come_back_exactly(
        nm: NetworkManager, tmp_path: Path, ssid: str, kept: str) -> None:
    # An access point made earlier by hand with nmcli (that passphrase on its argv: only
    # here, in the test), which setup replaces, keeping its passphrase.
    nm.nmcli("connection", "add", "type", "wifi", "ifname", "wlan0", "con-name",
             "vigbox-ap", "ssid", "old", "802-11-wireless.mode", "ap",
             "wifi-sec.key-mgmt", "wpa-psk", "wifi-sec.psk", kept)
    [(old_uuid, _, old_file)] = nm.profiles()
    net = wifi.network_for(WifiConfig(ssid=ssid, country="GB", channel=6), "box", 8080)
    report = wifi_service.setup(net, euid=0)
    assert report.passphrase == kept and not report.new_passphrase and report.replaced == 1
    uuid, keyfile = only_profile(nm)
    assert uuid != old_uuid and not Path(old_file).exists()
    assert nm.field(uuid, PSK) == kept
    assert nm.field(uuid, "802-11-wireless.ssid") == ssid
    assert nm.field(uuid, "802-11-wireless.channel") == "6"
    shown = wifi_service.show(net, euid=0)
    assert (shown.passphrase, shown.network.ssid, shown.network.address) == \
        (kept, ssid, "10.42.0.1/24")
    recorded = [c for c in nmcli_calls(tmp_path) if c[:2] != ["connection", "add"]]
    assert not [c for c in recorded if kept in " ".join(c)]


def test_new_passphrase_replaces_the_profile_and_the_old_file(nm: NetworkManager) -> None:
    first = wifi_service.setup(NET, euid=0)
    first_uuid, first_file = only_profile(nm)
    second = wifi_service.setup(NET, new_passphrase=True, euid=0)
    uuid, keyfile = only_profile(nm)
    assert second.passphrase not in (None, first.passphrase) and second.replaced == 1
    assert uuid != first_uuid and not first_file.exists() and keyfile.exists()
    assert nm.field(uuid, PSK) == second.passphrase
    assert sorted(p.name for p in nm.keyfiles.iterdir()) == [keyfile.name]


def test_a_keyfile_networkmanager_does_not_take_is_removed_and_the_old_profile_kept(
        nm: NetworkManager, tmp_path: Path) -> None:
    first = wifi_service.setup(NET, euid=0)
    old_uuid, old_file = only_profile(nm)
    # A folder NetworkManager does not read profiles from: `nmcli connection load` still
    # exits 0, and only looking for the profile shows it was not taken.
    elsewhere = tmp_path / "not-networkmanagers"
    with pytest.raises(SystemToolError, match=r"NetworkManager refused .*"
                       r"not-networkmanagers/vigbox-ap-.*\.nmconnection"):
        wifi_service.setup(NET, new_passphrase=True, euid=0, profiles=elsewhere)
    assert list(elsewhere.iterdir()) == []
    assert only_profile(nm) == (old_uuid, old_file)
    assert nm.field(old_uuid, PSK) == first.passphrase


def test_cli_setup_and_show_against_networkmanager(nm: NetworkManager,
                                                   tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = write_test_config(tmp_path / "config.toml", data)
    with config.open("a") as f:
        f.write('[wifi]\ncountry = "GB"\nssid = "vigbox-test"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGBOX_", "SUDO_"))}
    env |= nm.env() | {"SUDO_USER": "alice"}

    def vigbox(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "appliance", "--config", str(config),
                               *args], capture_output=True, text=True, timeout=90,
                              stdin=subprocess.DEVNULL, env=env)

    made = vigbox("wifi", "setup", "--json")
    assert made.returncode == 1, made.stderr   # saved, but no radio here to start it
    doc = json.loads(made.stdout)
    assert "No suitable device found" in doc["failed"]
    uuid, keyfile = only_profile(nm)
    assert nm.field(uuid, PSK) == doc["passphrase"]
    assert f"write {keyfile} (root only, mode 0600)" in doc["commands"]
    assert doc["passphrase"] not in made.stderr
    shown = vigbox("wifi", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["passphrase"] == doc["passphrase"]
    with Catalog(data) as catalog:
        rows = [(e.actor, e.action, e.detail.get("started")) for e in catalog.audit.entries()]
    assert rows == [("cli:alice", "wifi.setup", False), ("cli:alice", "wifi.show", None)]
