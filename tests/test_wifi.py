"""The box's own Wi-Fi (`vigbox wifi setup`, `show`): the checks on `[wifi]`, the
passphrase, the nmcli argv lists, the QR code read back by a real reader (zbarimg), and
the setup flow against a stand-in nmcli."""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from appliance import wifi, wifi_qr
from appliance.catalog import Catalog
from appliance.cli.box_cmds import catalog_as_owner
from appliance.config import load_config
from appliance.config_sections import WifiConfig
from appliance.errors import ConfigError, InputError, SystemToolError
from appliance.services import wifi as wifi_service
from appliance.services.app import App
from appliance.services.wifi import WifiAction
from tests.conftest import CliResult
from tests.processes import write_test_config

ZBARIMG = shutil.which("zbarimg")
needs_zbarimg = pytest.mark.skipif(ZBARIMG is None, reason="zbarimg is not installed "
                                   "(zbar-tools, from tools/bootstrap.sh test)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="setup and show run as root")
PSK = "802-11-wireless-security.psk"
NET = wifi.network_for(WifiConfig(country="GB"), "Küche 2", 8080)

STAND_IN = '''#!{python}
"""Stands in for NetworkManager's nmcli (and raspi-config), which need a Wi-Fi radio
and D-Bus: records each argv, keeps profiles in profiles.json, answers the listings and
`-g` field reads vigbox asks for, and fails a step when the test wrote fail-STEP."""
import json, re, sys, uuid
from pathlib import Path

STATE = Path({state!r})
name, args = Path(sys.argv[0]).name, sys.argv[1:]
with open(STATE / "calls.jsonl", "a") as log:
    log.write(json.dumps([name, *args]) + "\\n")
store = STATE / "profiles.json"
profiles = json.loads(store.read_text()) if store.exists() else {{}}
SECTIONS = {{"wifi": "802-11-wireless", "wifi-security": "802-11-wireless-security"}}


def unescape(value):
    """GLib's key-file escapes in one pass; an SSID written as its bytes, decoded."""
    if re.fullmatch(r"([0-9]+;)+", value):
        return bytes(int(b) for b in value.split(";")[:-1]).decode()
    table = {{"s": " ", "n": "\\n", "t": "\\t", "r": "\\r"}}
    return re.sub(r"\\\\(.)", lambda m: table.get(m[1], m[1]), value)


def fail_if_asked(step):
    asked = STATE / ("fail-" + step)
    if asked.exists():
        code, _, message = asked.read_text().partition("\\n")
        sys.stderr.write(message)
        sys.exit(int(code))


if name == "raspi-config":
    sys.exit(0)
show_secrets = args[:1] == ["-s"]
args = args[1:] if show_secrets else args
if args == ["-t", "-f", "UUID,NAME", "connection", "show"]:
    for key, p in profiles.items():
        print(key + ":" + p["connection.id"].replace("\\\\", "\\\\\\\\").replace(":", "\\\\:"))
elif args[:3] == ["--escape", "no", "-g"] and args[4:7] == ["connection", "show", "uuid"]:
    value = profiles[args[7]].get(args[3], "")
    # Like NetworkManager: a secret is only shown with -s, and now and then not even
    # then (as many times as the test wrote in blank-secrets).
    blanks = STATE / "blank-secrets"
    blank = args[3].endswith(".psk") and blanks.exists() and int(blanks.read_text()) > 0
    if blank:
        blanks.write_text(str(int(blanks.read_text()) - 1))
    print("" if blank or (args[3].endswith(".psk") and not show_secrets) else value)
elif args[:2] == ["connection", "load"]:
    # Like NetworkManager: a file it will not take is "Could not load", and exit 0.
    path = Path(args[2])
    if not path.exists():   # a file that is gone: its profile is dropped
        profiles = {{k: p for k, p in profiles.items() if p.get("filename") != str(path)}}
    elif (STATE / "fail-load").exists() or path.stat().st_mode & 0o077:
        sys.stderr.write("Could not load file '%s'\\n" % path)
    else:
        fields, section = {{}}, None
        for line in path.read_text().splitlines():
            if line.startswith("["):
                section = SECTIONS.get(line[1:-1], line[1:-1])
            elif "=" in line:
                key, _, value = line.partition("=")
                key = "addresses" if key == "address1" else key
                fields[section + "." + key] = unescape(value)
        profiles[fields.pop("connection.uuid")] = fields | {{"filename": str(path)}}
elif args[:3] == ["connection", "delete", "uuid"]:
    fail_if_asked("delete")
    del profiles[args[3]]
elif args[:3] == ["connection", "up", "uuid"]:
    fail_if_asked("up")
elif args != ["radio", "wifi", "on"]:
    sys.exit("Error: the stand-in nmcli does not know " + " ".join(args))
store.write_text(json.dumps(profiles))
'''


class StandInNM:
    """The stand-in nmcli's state: its calls, its profiles, the steps it fails."""

    def __init__(self, root: Path) -> None:
        self.state = root / "nm"
        self.bin = root / "bin"
        self.keyfiles = root / "system-connections"
        self.state.mkdir()
        self.bin.mkdir()
        script = STAND_IN.format(python=sys.executable, state=str(self.state))
        for tool in ("nmcli", "raspi-config"):
            (self.bin / tool).write_text(script)
            (self.bin / tool).chmod(0o755)

    def calls(self) -> list[list[str]]:
        log = self.state / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] \
            if log.exists() else []

    def profiles(self) -> dict[str, dict[str, str]]:
        store = self.state / "profiles.json"
        return json.loads(store.read_text()) if store.exists() else {}

    def env(self) -> dict[str, str]:
        """What a `vigbox` child needs to use this stand-in."""
        return {"PATH": os.environ["PATH"], "VIGBOX_NM_KEYFILE_DIR": str(self.keyfiles)}

    def fail(self, step: str, code: int, message: str = "") -> None:
        (self.state / f"fail-{step}").write_text(f"{code}\n{message}")

    def seed(self, psk: str, name: str = wifi.PROFILE) -> str:
        """An access point made earlier (e.g. by an older vigbox)."""
        key = "0b4c5d6e-1111-4222-8333-944455566677"
        store = self.state / "profiles.json"
        store.write_text(json.dumps({key: {"connection.id": name, PSK: psk,
                                           "802-11-wireless.ssid": "vigbox-old",
                                           "ipv4.addresses": "10.42.0.1/24"}}))
        return key


@pytest.fixture
def nm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandInNM:
    """The stand-in nmcli first on PATH for this test, its keyfile folder in tmp."""
    stand_in = StandInNM(tmp_path)
    monkeypatch.setenv("PATH", f"{stand_in.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("VIGBOX_NM_KEYFILE_DIR", str(stand_in.keyfiles))
    return stand_in


def pairs(argv: list[str], start: int) -> dict[str, str]:
    """`key value key value...` from argv[start:] as a dict."""
    return dict(zip(argv[start::2], argv[start + 1::2]))


# -- the network a config asks for -------------------------------------------------------


def test_the_default_config_makes_vigbox_and_the_box_name_at_a_fixed_address() -> None:
    assert NET.ssid == "vigbox-Kuche-2"
    assert (NET.interface, NET.address, NET.host, NET.band, NET.channel, NET.country) == \
        ("wlan0", "10.42.0.1/24", "10.42.0.1", "bg", 0, "GB")
    assert NET.url == "http://10.42.0.1:8080/"
    assert wifi.ui_url("10.42.0.1", 80) == "http://10.42.0.1/"


def test_a_configured_ssid_and_address_are_used() -> None:
    net = wifi.network_for(WifiConfig(ssid="Familie Raum", address="192.168.50.1/255.255.255.0",
                                      country="de", band="a", channel=36), "box", 8443)
    assert (net.ssid, net.address, net.country, net.url) == \
        ("Familie Raum", "192.168.50.1/24", "DE", "http://192.168.50.1:8443/")


@pytest.mark.parametrize("box_name, ssid", [
    ("Küche 2", "vigbox-Kuche-2"),
    ("vigbox-03", "vigbox-03"),
    ("VIGBOX", "VIGBOX"),
    ("", "vigbox"),
    ("☕☕", "vigbox"),
    ("north  east / room 4", "vigbox-north-east-room-4"),
    ("a" * 40, "vigbox-" + "a" * 25),
    ("abcdefghijklmnopqrstuvwx y", "vigbox-abcdefghijklmnopqrstuvwx"),
])
def test_ssid_for_a_box_name_is_plain_ascii_of_at_most_32_bytes(box_name: str,
                                                                 ssid: str) -> None:
    assert wifi.ssid_for(box_name) == ssid
    assert len(ssid.encode()) <= wifi.SSID_MAX_BYTES


@pytest.mark.parametrize("changes, message", [
    ({"address": "10.42.0.1"}, r"wifi\.address .* needs its prefix length"),
    ({"address": "tablet/24"}, r"wifi\.address .* is not an IPv4 address"),
    ({"address": "fd00::1/64"}, r"wifi\.address .* must be IPv4"),
    ({"address": "10.42.0.1/31"}, r"a /31 network leaves no address for the tablet"),
    ({"address": "10.42.0.0/24"}, r"is the network address of 10\.42\.0\.0/24"),
    ({"address": "10.42.0.255/24"}, r"is the broadcast address"),
    ({"address": "8.8.8.1/24"}, r"is not in a private range"),
    ({"address": "127.0.0.2/8"}, r"is not in a private range"),
    ({"channel": 36}, r"wifi\.channel 36 is not a channel of band 'bg': use 1 to 14"),
    ({"band": "a", "channel": 6}, r"wifi\.channel 6 is not a channel of band 'a'"),
    ({"country": "G1"}, r"wifi\.country 'G1' is not a two-letter country code"),
    ({"ssid": "ö" * 17}, r"wifi\.ssid must be 1 to 32 bytes \(it is 34\)"),
    ({"ssid": "   "}, r"wifi\.ssid must be 1 to 32 bytes"),
    ({"ssid": "vig\tbox"}, r"wifi\.ssid holds a control character"),
    ({"interface": "wlan 0"}, r"wifi\.interface 'wlan 0' is not an interface name"),
    ({"interface": ""}, r"wifi\.interface '' is not an interface name"),
    ({"interface": "w" * 16}, r"wifi\.interface .* is not an interface name"),
])
def test_each_bad_wifi_value_is_refused_by_name(changes: dict[str, Any],
                                                message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        wifi.network_for(WifiConfig(**changes), "box", 8080)


def test_a_ui_listening_elsewhere_is_a_warning_not_an_error() -> None:
    assert wifi.unreachable_ui(NET) is None
    local = wifi.network_for(WifiConfig(), "box", 8080, web_host="127.0.0.1")
    assert "cannot reach it at http://10.42.0.1:8080/" in (wifi.unreachable_ui(local) or "")
    assert wifi.unreachable_ui(wifi.network_for(WifiConfig(), "box", 80, "10.42.0.1")) is None


# -- the passphrase ----------------------------------------------------------------------


def test_a_new_passphrase_is_four_groups_of_four_from_32_unmistakable_symbols() -> None:
    alphabet = wifi.PASSPHRASE_ALPHABET
    assert len(set(alphabet)) == len(alphabet) == 32   # 5 bits a symbol
    assert not set(alphabet) & set("01lo")                 # nothing to misread on a tablet
    assert wifi.PASSPHRASE_GROUPS * wifi.PASSPHRASE_GROUP_LEN * 5 >= 80
    made = [wifi.new_passphrase() for _ in range(200)]
    for psk in made:
        assert re.fullmatch(rf"[{alphabet}]{{4}}(-[{alphabet}]{{4}}){{3}}", psk), psk
        assert wifi.is_usable_passphrase(psk)
    assert len(set(made)) == len(made)
    # Every symbol turns up: they are drawn from the whole alphabet.
    assert set("".join(made).replace("-", "")) == set(alphabet)


@pytest.mark.parametrize("psk, usable", [
    ("1234567", False), ("12345678", True), ("x" * 63, True), ("x" * 64, False),
    ("passwört-lang", False), ("tab\there-long", False), ("with spaces ok", True),
])
def test_wpa2_takes_8_to_63_printable_ascii_characters(psk: str, usable: bool) -> None:
    assert wifi.is_usable_passphrase(psk) is usable


# -- the nmcli argv lists ----------------------------------------------------------------


def keyfile_sections(text: str) -> dict[str, dict[str, str]]:
    """A keyfile's sections and raw values, as written."""
    found: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if line.startswith("["):
            section = found.setdefault(line[1:-1], {})
        elif line:
            key, _, value = line.partition("=")
            section[key] = value
    return found


def test_the_access_point_keyfile_is_wpa2_aes_with_the_fixed_address() -> None:
    uuid = "0b4c5d6e-1111-4222-8333-944455566677"
    text = wifi.keyfile_text(NET, "k7dm-wq3e-9hxa-tnp4", uuid)
    assert keyfile_sections(text) == {
        "connection": {"id": "vigbox-ap", "uuid": uuid, "type": "wifi",
                       "interface-name": "wlan0", "autoconnect": "true",
                       "autoconnect-priority": "100"},
        "wifi": {"mode": "ap", "band": "bg", "ssid": "vigbox-Kuche-2"},
        "wifi-security": {"key-mgmt": "wpa-psk", "proto": "rsn;", "pairwise": "ccmp;",
                          "group": "ccmp;", "pmf": "1", "psk": "k7dm-wq3e-9hxa-tnp4"},
        "ipv4": {"method": "shared", "address1": "10.42.0.1/24"},
        "ipv6": {"method": "disabled"}}
    channel6 = wifi.network_for(WifiConfig(channel=6), "box", 8080)
    assert keyfile_sections(wifi.keyfile_text(channel6, "x" * 8, uuid))["wifi"]["channel"] \
        == "6"
    assert wifi.keyfile_name(NET, uuid) == f"vigbox-ap-{uuid}.nmconnection"


@pytest.mark.parametrize("ssid, written", [
    ("vigbox-box", "vigbox-box"),
    ("a b", "97;32;98;"),                  # a space: as bytes, never trimmed
    ("ü;", "195;188;59;"),                 # UTF-8 and a list separator
    ("x#y", "120;35;121;"),                # a comment sign
])
def test_an_ssid_is_written_plain_only_when_nothing_in_it_needs_escaping(
        ssid: str, written: str) -> None:
    net = wifi.network_for(WifiConfig(ssid=ssid), "box", 8080)
    assert keyfile_sections(wifi.keyfile_text(net, "x" * 8, "u"))["wifi"]["ssid"] == written


def test_a_passphrase_is_escaped_as_glib_key_files_read_it() -> None:
    psk = " a\\b c "
    written = keyfile_sections(wifi.keyfile_text(NET, psk, "u"))["wifi-security"]["psk"]
    assert written == "\\sa\\\\b\\sc\\s"


def test_the_other_nmcli_steps_as_lists() -> None:
    assert wifi.list_profiles_argv() == ["nmcli", "-t", "-f", "UUID,NAME", "connection",
                                         "show"]
    assert wifi.read_field_argv("U", PSK, secret=True) == [
        "nmcli", "-s", "--escape", "no", "-g", PSK, "connection", "show", "uuid", "U"]
    assert wifi.read_field_argv("U", "ipv4.addresses") == [
        "nmcli", "--escape", "no", "-g", "ipv4.addresses", "connection", "show", "uuid", "U"]
    assert wifi.delete_profile_argv("U") == ["nmcli", "connection", "delete", "uuid", "U"]
    assert wifi.load_profile_argv("/etc/NetworkManager/system-connections/x.nmconnection") \
        == ["nmcli", "connection", "load", "/etc/NetworkManager/system-connections/"
            "x.nmconnection"]
    assert wifi.up_argv("U") == ["nmcli", "connection", "up", "uuid", "U"]
    assert wifi.radio_on_argv() == ["nmcli", "radio", "wifi", "on"]
    assert wifi.country_argv("GB", raspi_config=True) == [
        "raspi-config", "nonint", "do_wifi_country", "GB"]
    assert wifi.country_argv("GB", raspi_config=False) == ["iw", "reg", "set", "GB"]


def test_profiles_are_found_by_their_unescaped_name() -> None:
    listing = ("a1:vigbox-ap\nb2:Home\\:5G\nc3:vigbox-ap\nd4:vigbox-ap-old\n"
               "e5:back\\\\slash\n")
    assert wifi.uuids_named(listing, "vigbox-ap") == ["a1", "c3"]
    assert wifi.uuids_named(listing, "Home:5G") == ["b2"]
    assert wifi.uuids_named(listing, "back\\slash") == ["e5"]
    assert wifi.uuids_named("", "vigbox-ap") == []


def test_commands_are_shown_quoted_for_a_shell() -> None:
    assert wifi.shown(["nmcli", "connection", "load", "/a b/c"]) == \
        "nmcli connection load '/a b/c'"


# -- the QR code -------------------------------------------------------------------------


def test_the_join_payload_escapes_its_special_characters() -> None:
    assert wifi_qr.escape('a\\b;c,d:e"f') == 'a\\\\b\\;c\\,d\\:e\\"f'
    assert wifi_qr.join_payload("vigbox-box", "k7dm-wq3e-9hxa-tnp4") == \
        "WIFI:T:WPA;S:vigbox-box;P:k7dm-wq3e-9hxa-tnp4;;"
    assert wifi_qr.join_payload("a;b", 'p:"q"') == 'WIFI:T:WPA;S:a\\;b;P:p\\:\\"q\\";;'


def decode(image: Path) -> str:
    """What a real QR reader reads in an image."""
    assert ZBARIMG is not None
    done = subprocess.run([ZBARIMG, "--raw", "-q", str(image)], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout.removesuffix("\n")


@needs_zbarimg
@pytest.mark.parametrize("ssid, psk", [
    ("vigbox-Kuche-2", "k7dm-wq3e-9hxa-tnp4"),
    ('odd;name:with,"all"\\five', "pass;word:1,2\"3\\4"),
])
def test_a_saved_png_is_read_back_by_a_real_reader(tmp_path: Path, ssid: str,
                                                   psk: str) -> None:
    payload = wifi_qr.join_payload(ssid, psk)
    wifi_qr.save(payload, tmp_path / "join.png")
    assert decode(tmp_path / "join.png") == payload
    assert stat.S_IMODE((tmp_path / "join.png").stat().st_mode) == 0o600   # holds the psk


def test_an_svg_is_saved_too(tmp_path: Path) -> None:
    wifi_qr.save(wifi_qr.join_payload("vigbox-box", "k7dm-wq3e-9hxa-tnp4"),
                 tmp_path / "join.SVG")
    assert "<svg" in (tmp_path / "join.SVG").read_text()


@needs_zbarimg
def test_the_code_drawn_in_the_terminal_is_read_back_too(tmp_path: Path) -> None:
    payload = wifi_qr.join_payload("vigbox-box", "k7dm-wq3e-9hxa-tnp4")
    text = wifi_qr.terminal_text(payload)
    # Each character is two modules, top and bottom; a full block is light (the quiet
    # zone): redraw them as a grey map, 8 pixels a module, and read it.
    halves = {"█": (255, 255), "▀": (255, 0), "▄": (0, 255), " ": (0, 0)}
    rows: list[list[int]] = []
    for line in text.splitlines():
        cells = [halves[c] for c in line]
        rows += [[top for top, _ in cells], [bottom for _, bottom in cells]]
    scale = 8
    pixels = bytes(v for row in rows for _ in range(scale) for v in row for _ in range(scale))
    image = tmp_path / "terminal.pgm"
    image.write_bytes(b"P5 %d %d 255\n" % (len(rows[0]) * scale, len(rows) * scale) + pixels)
    assert decode(image) == payload


@pytest.mark.parametrize("name, message", [
    ("join.jpg", "must end in .png or .svg"),
    ("missing/join.png", "is not a directory"),
])
def test_a_qr_file_must_be_png_or_svg_in_a_folder(tmp_path: Path, name: str,
                                                  message: str) -> None:
    with pytest.raises(InputError, match=message):
        wifi_qr.save("WIFI:T:WPA;S:x;P:12345678;;", tmp_path / name)
    assert not (tmp_path / name).exists()


# -- setup and show, against the stand-in nmcli ------------------------------------------


def test_a_first_setup_makes_a_passphrase_and_the_access_point(
        nm: StandInNM, app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    report = wifi_service.setup(NET, euid=0)
    psk = report.passphrase
    assert psk is not None and wifi.is_usable_passphrase(psk)
    assert report.new_passphrase and report.replaced == 0 and report.failed is None
    [(key, profile)] = nm.profiles().items()
    keyfile = nm.keyfiles / f"vigbox-ap-{key}.nmconnection"
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert (profile["connection.id"], profile["802-11-wireless.ssid"],
            profile["ipv4.addresses"], profile[PSK]) == \
        ("vigbox-ap", "vigbox-Kuche-2", "10.42.0.1/24", psk)
    assert [c[:3] for c in nm.calls()] == [
        ["nmcli", "-t", "-f"], ["nmcli", "radio", "wifi"],
        ["raspi-config", "nonint", "do_wifi_country"], ["nmcli", "connection", "load"],
        ["nmcli", "-t", "-f"], ["nmcli", "connection", "up"]]
    assert nm.calls()[2] == ["raspi-config", "nonint", "do_wifi_country", "GB"]
    assert nm.calls()[3] == ["nmcli", "connection", "load", str(keyfile)]
    assert not [c for c in nm.calls() if psk in " ".join(c)]
    wifi_service.record(app, report, WifiAction.SETUP, actor="alice")
    [entry] = app.catalog.audit.entries()
    assert (entry.actor, entry.action, entry.subject) == ("alice", "wifi.setup", "vigbox-ap")
    assert entry.to_json()["detail"]["new_passphrase"] is True
    assert "running nmcli connection load" in caplog.text  # the log was captured...
    assert psk not in caplog.text                          # ...and never holds the psk
    assert psk not in json.dumps([e.to_json() for e in app.catalog.audit.entries()])
    assert psk not in " ".join(report.commands)
    assert report.join_payload == f"WIFI:T:WPA;S:vigbox-Kuche-2;P:{psk};;"


def test_setup_again_keeps_the_passphrase_and_removes_the_old_profile_after_the_add(
        nm: StandInNM) -> None:
    old = nm.seed("k7dm-wq3e-9hxa-tnp4")
    report = wifi_service.setup(NET, euid=0)
    assert report.passphrase == "k7dm-wq3e-9hxa-tnp4"
    assert not report.new_passphrase and report.replaced == 1
    [(key, profile)] = nm.profiles().items()
    assert key != old and profile[PSK] == "k7dm-wq3e-9hxa-tnp4"
    calls = nm.calls()
    assert ["nmcli", "-s", "--escape", "no", "-g", PSK, "connection", "show", "uuid",
            old] in calls
    load = next(i for i, c in enumerate(calls) if c[1:3] == ["connection", "load"])
    assert calls.index(["nmcli", "connection", "delete", "uuid", old]) > load
    assert calls[-1] == ["nmcli", "connection", "up", "uuid", key]


def test_new_passphrase_replaces_the_one_tablets_knew(nm: StandInNM) -> None:
    nm.seed("k7dm-wq3e-9hxa-tnp4")
    report = wifi_service.setup(NET, new_passphrase=True, euid=0)
    assert report.passphrase not in (None, "k7dm-wq3e-9hxa-tnp4")
    assert report.new_passphrase and report.replaced == 1
    assert [p[PSK] for p in nm.profiles().values()] == [report.passphrase]
    assert not [c for c in nm.calls() if PSK in c]   # the old one was never read


def test_a_passphrase_nmcli_shows_blank_is_asked_for_again(nm: StandInNM) -> None:
    nm.seed("k7dm-wq3e-9hxa-tnp4")
    (nm.state / "blank-secrets").write_text(str(wifi_service.SECRET_READS - 1))
    report = wifi_service.setup(NET, euid=0)
    assert report.passphrase == "k7dm-wq3e-9hxa-tnp4" and not report.new_passphrase


def test_a_passphrase_never_shown_is_not_replaced_silently(nm: StandInNM) -> None:
    old = nm.seed("k7dm-wq3e-9hxa-tnp4")
    (nm.state / "blank-secrets").write_text(str(wifi_service.SECRET_READS))
    with pytest.raises(SystemToolError, match="NetworkManager shows no passphrase for the "
                       "Wi-Fi being replaced; run it again, or .*--new-passphrase"):
        wifi_service.setup(NET, euid=0)
    assert list(nm.profiles()) == [old] and list(nm.keyfiles.glob("*")) == []


def test_an_old_profile_that_cannot_be_removed_keeps_the_old_network(nm: StandInNM) -> None:
    old = nm.seed("k7dm-wq3e-9hxa-tnp4")
    nm.fail("delete", 10, "Error: not all connections deleted.")
    with pytest.raises(SystemToolError, match="removing the old Wi-Fi profile failed: Error: "
                       "not all connections deleted.; the new profile was removed and the "
                       "old network kept as it was"):
        wifi_service.setup(NET, new_passphrase=True, euid=0)
    assert list(nm.profiles()) == [old]
    assert nm.profiles()[old][PSK] == "k7dm-wq3e-9hxa-tnp4"
    assert not [c for c in nm.calls() if c[1:3] == ["connection", "up"]]


def test_an_unusable_stored_passphrase_is_replaced_with_a_warning(nm: StandInNM) -> None:
    nm.seed("short")
    report = wifi_service.setup(NET, euid=0)
    assert report.passphrase != "short" and report.new_passphrase
    assert any("not a usable WPA2 one" in w for w in report.warnings)


@pytest.mark.parametrize("message, said", [
    ("Error: Connection activation failed: No suitable device found for this connection.",
     "No suitable device found"),
    ("", "exit status 4"),
])
def test_an_access_point_that_does_not_start_is_saved_and_reported(
        nm: StandInNM, message: str, said: str) -> None:
    nm.fail("up", 4, message)
    report = wifi_service.setup(NET, euid=0)
    assert report.failed is not None
    assert report.failed.startswith("starting the Wi-Fi failed: ") and said in report.failed
    assert "NetworkManager tries again at boot" in report.failed
    assert [p["connection.id"] for p in nm.profiles().values()] == ["vigbox-ap"]
    assert report.to_json()["failed"] == report.failed


def test_a_refused_profile_leaves_the_old_access_point_as_it_was(nm: StandInNM) -> None:
    old = nm.seed("k7dm-wq3e-9hxa-tnp4")
    nm.fail("load", 0)   # NetworkManager's "Could not load file" still exits 0
    with pytest.raises(SystemToolError, match="saving the Wi-Fi profile failed: "
                       "NetworkManager refused .*vigbox-ap-.*nmconnection: that may not be its "
                       "keyfile folder"):
        wifi_service.setup(NET, new_passphrase=True, euid=0)
    assert not [c for c in nm.calls() if c[1:3] in (["connection", "delete"],
                                                    ["connection", "up"])]
    assert list(nm.profiles()) == [old]
    assert nm.profiles()[old][PSK] == "k7dm-wq3e-9hxa-tnp4"
    assert list(nm.keyfiles.iterdir()) == []   # nothing left for it to find at boot


def test_a_keyfile_folder_that_cannot_be_written_is_said(nm: StandInNM,
                                                         tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(SystemToolError, match=r"saving the Wi-Fi profile failed: cannot "
                       r"write .*a-file/vigbox-ap-"):
        wifi_service.setup(NET, euid=0, profiles=blocked)
    assert not [c for c in nm.calls() if c[1:3] == ["connection", "load"]]


def test_show_reads_the_network_back_from_networkmanager(nm: StandInNM, app: App) -> None:
    with pytest.raises(InputError, match="there is no vigbox-ap Wi-Fi yet"):
        wifi_service.show(NET, euid=0)
    made = wifi_service.setup(NET, euid=0)
    shown = wifi_service.show(NET, euid=0)
    assert (shown.passphrase, shown.network.ssid, shown.network.url) == \
        (made.passphrase, "vigbox-Kuche-2", "http://10.42.0.1:8080/")
    wifi_service.record(app, shown, WifiAction.SHOW, actor="bob")
    [entry] = app.catalog.audit.entries()
    assert (entry.actor, entry.action) == ("bob", "wifi.show")
    assert str(made.passphrase) not in json.dumps(entry.to_json())


def test_setup_and_show_need_root_and_a_dry_run_runs_nothing(nm: StandInNM) -> None:
    with pytest.raises(SystemToolError, match=r"run it as root \(sudo vigbox wifi setup\)"):
        wifi_service.setup(NET, euid=1000)
    with pytest.raises(SystemToolError, match=r"sudo vigbox wifi show"):
        wifi_service.show(NET, euid=1000)
    planned = wifi_service.setup(NET, dry_run=True, euid=1000)
    assert nm.calls() == []
    assert planned.passphrase is None and planned.join_payload is None
    assert planned.commands[-1] == "nmcli connection up uuid '<new-uuid>'"
    [write] = [i for i, c in enumerate(planned.commands) if c.startswith("write ")]
    assert planned.commands[write].endswith(".nmconnection (root only, mode 0600)")
    assert planned.commands[write + 1].startswith("nmcli connection load ")
    assert not nm.keyfiles.exists()


# -- the command line --------------------------------------------------------------------


@pytest.fixture
def wifi_config(tmp_path: Path, data_dir: Path) -> Path:
    """The suite's test config with a Wi-Fi country and network name."""
    path = write_test_config(tmp_path / "config.toml", data_dir)
    with path.open("a") as f:
        f.write('[wifi]\ncountry = "GB"\nssid = "vigbox-test"\n')
    return path


def run_vigbox(config: Path, data_dir: Path, *args: str,
               env: dict[str, str] | None = None) -> CliResult:
    """`python -m appliance --data-dir D --config C ARGS` as a child process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VIGBOX_", "SUDO_"))}
    done = subprocess.run([sys.executable, "-m", "appliance", "--data-dir", str(data_dir),
                           "--config", str(config), *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=base | (env or {}))
    return CliResult(done.returncode, done.stdout, done.stderr)


def test_cli_dry_run_prints_the_plan_as_one_json_document(wifi_config: Path,
                                                          data_dir: Path) -> None:
    result = run_vigbox(wifi_config, data_dir, "wifi", "setup", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    doc = result.json()
    assert (doc["ssid"], doc["url"], doc["address"], doc["passphrase"], doc["dry_run"]) == \
        ("vigbox-test", "http://10.42.0.1:8080/", "10.42.0.1/24", None, True)
    assert doc["commands"][0] == "nmcli -t -f UUID,NAME connection show"
    assert doc["commands"][-1] == "nmcli connection up uuid '<new-uuid>'"
    with Catalog(data_dir) as catalog:
        assert catalog.audit.entries() == []   # nothing done, nothing shown


def test_cli_dry_run_for_people_says_nothing_changes(wifi_config: Path,
                                                     data_dir: Path) -> None:
    result = run_vigbox(wifi_config, data_dir, "wifi", "setup", "--dry-run",
                        "--new-passphrase")
    assert result.returncode == 0, result.stderr
    assert "nothing was changed" in result.stdout
    assert "network name  vigbox-test" in result.stdout
    assert "the UI        http://10.42.0.1:8080/" in result.stdout
    assert "tablets that knew the old one must join again" in result.stdout


def test_cli_refuses_a_qr_code_a_dry_run_cannot_make(wifi_config: Path,
                                                     data_dir: Path) -> None:
    result = run_vigbox(wifi_config, data_dir, "wifi", "setup", "--dry-run", "--qr",
                        "join.png")
    assert result.returncode == 1 and "a dry run reads or makes none" in result.error_line()


def test_cli_refuses_a_bad_wifi_address_by_its_name(wifi_config: Path,
                                                    data_dir: Path) -> None:
    wifi_config.write_text(wifi_config.read_text().replace(
        '[wifi]\n', '[wifi]\naddress = "10.42.0.0/24"\n'))
    result = run_vigbox(wifi_config, data_dir, "wifi", "setup", "--dry-run", "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert "wifi.address '10.42.0.0/24' is the network address" in result.error_line()


@needs_root
@needs_zbarimg
def test_cli_setup_then_show_as_root(nm: StandInNM, wifi_config: Path, data_dir: Path,
                                     tmp_path: Path) -> None:
    env = nm.env() | {"SUDO_USER": "alice", "SUDO_UID": "4321", "SUDO_GID": "4321"}
    made = run_vigbox(wifi_config, data_dir, "wifi", "setup", "--json", "--qr",
                      str(tmp_path / "join.png"), env=env)
    assert made.returncode == 0, made.stderr
    doc = made.json()
    psk = doc["passphrase"]
    assert wifi.is_usable_passphrase(psk) and doc["new_passphrase"] is True
    assert decode(tmp_path / "join.png") == f"WIFI:T:WPA;S:vigbox-test;P:{psk};;"
    assert (tmp_path / "join.png").stat().st_uid == 4321   # the one who ran sudo
    assert psk not in made.stderr   # the debug log names every nmcli step
    shown = run_vigbox(wifi_config, data_dir, "wifi", "show", env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"passphrase    {psk}" in shown.stdout
    assert "http://10.42.0.1:8080/" in shown.stdout and "▀" in shown.stdout
    with Catalog(data_dir) as catalog:
        rows = [(e.actor, e.action) for e in catalog.audit.entries()]
    assert rows == [("cli:alice", "wifi.setup"), ("cli:alice", "wifi.show")]


@needs_root
def test_cli_says_when_the_access_point_did_not_start(nm: StandInNM, wifi_config: Path,
                                                      data_dir: Path) -> None:
    nm.fail("up", 10, "Error: Connection activation failed: IP configuration could not "
            "be reserved (no available address, timeout, etc.).")
    result = run_vigbox(wifi_config, data_dir, "wifi", "setup",
                        env=nm.env())
    assert result.returncode == 1
    assert "IP configuration could not be reserved" in result.error_line()
    assert "NOT STARTED" in result.stdout and "passphrase    " in result.stdout


@needs_root
def test_the_catalog_is_written_as_its_owner_while_root_stays_for_nmcli(
        tmp_path: Path, nobody_data: tuple[Path, pwd.struct_passwd]) -> None:
    data, nobody = nobody_data
    config = load_config(write_test_config(tmp_path / "config.toml", data))
    with catalog_as_owner(config) as app:
        app.catalog.audit.append("wifi.setup", "vigbox-ap", actor="alice")
    assert os.geteuid() == 0 and os.getegid() == 0
    made = list(data.rglob("*"))
    assert made and {p.stat().st_uid for p in made} == {nobody.pw_uid}


@needs_root
def test_cli_setup_as_root_on_a_service_owned_data_dir(
        nm: StandInNM, wifi_config: Path, nobody_data: tuple[Path, pwd.struct_passwd]) -> None:
    data, nobody = nobody_data
    result = run_vigbox(wifi_config, data, "wifi", "setup", "--json",
                        env=nm.env() | {"SUDO_USER": "alice"})
    assert result.returncode == 0, result.stderr
    assert {p.stat().st_uid for p in data.rglob("*")} == {nobody.pw_uid}
