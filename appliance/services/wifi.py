"""The box's own Wi-Fi for the tablet (`vigbox wifi setup`, `show`): one NetworkManager
access-point profile made, replaced and read back through nmcli. The passphrase lives
only in NetworkManager's root-only profile (written as its keyfile, so that it is never
on a command line), never in vigbox's files or logs."""

from __future__ import annotations

import logging
import os
import shutil
import uuid as uuids
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from appliance import fsutil, system_tool, wifi
from appliance.errors import InputError, SystemToolError
from appliance.services.app import App
from appliance.wifi import Network
from appliance.wifi_qr import join_payload

log = logging.getLogger(__name__)

QUICK_S = 30.0    # nmcli answers from NetworkManager's memory
UP_S = 120.0      # `connection up` waits (90 s by default) until the AP runs or fails
OLDER = "<old-uuid>"   # a dry run lists nothing, so it names an older profile thus
NEWER = "<new-uuid>"   # ...and the profile it would make
# `nmcli -s -g ...psk` now and then prints an empty secret with exit 0 (NetworkManager
# 1.42: the Updated signal its own secrets request causes makes nmcli refresh the
# profile, secrets wiped, before it prints): a stored passphrase is asked for again.
SECRET_READS = 5
PSK_FIELD = "802-11-wireless-security.psk"
# Where Debian keeps dnsmasq: a plain user's PATH lacks the sbin folders.
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
# NetworkManager's keyfile folder on Raspberry Pi OS and Debian (its [keyfile] path);
# VIGBOX_NM_KEYFILE_DIR names another, for a NetworkManager configured otherwise.
KEYFILE_DIR = "/etc/NetworkManager/system-connections"


class WifiAction(StrEnum):
    """The audit log's names for what was done with the box's Wi-Fi."""

    SETUP = "wifi.setup"
    SHOW = "wifi.show"    # the passphrase was shown


@dataclass(frozen=True)
class WifiReport:
    """What setup did (or would do) and what the tablet needs to join."""

    network: Network
    passphrase: str | None          # None in a dry run: nothing was read or made
    commands: tuple[str, ...]       # as run (or to run); none holds the passphrase
    warnings: tuple[str, ...] = ()
    new_passphrase: bool = False    # made now: tablets that knew the old one join again
    replaced: int = 0               # older profiles removed
    failed: str | None = None       # the AP was saved but did not start: why

    @property
    def join_payload(self) -> str | None:
        """The Wi-Fi QR code's text, when the passphrase is known."""
        return join_payload(self.network.ssid, self.passphrase) if self.passphrase else None

    def to_json(self) -> dict[str, Any]:
        """The one JSON document of `vigbox wifi ... --json`."""
        return {"ssid": self.network.ssid, "passphrase": self.passphrase,
                "url": self.network.url, "address": self.network.address,
                "profile": self.network.profile, "interface": self.network.interface,
                "new_passphrase": self.new_passphrase, "replaced": self.replaced,
                "warnings": list(self.warnings), "commands": list(self.commands),
                "failed": self.failed}


def network_of(app: App) -> Network:
    """The access point the config (and the box's name, as set on the tablet) asks for."""
    current = app.current_config()
    return wifi.network_for(current.wifi, current.box_name, current.web.port,
                            current.web.host)


def require_root(what: str, euid: int | None = None) -> None:
    """NetworkManager lets only root change system profiles and read their secrets."""
    if (os.geteuid() if euid is None else euid) != 0:
        raise SystemToolError(f"{what} needs NetworkManager's system settings: run it as "
                              f"root (sudo vigbox {what})")


def keyfile_dir() -> Path:
    """Where NetworkManager reads its system profiles from."""
    return Path(os.environ.get("VIGBOX_NM_KEYFILE_DIR") or KEYFILE_DIR)


def setup(net: Network, *, new_passphrase: bool = False, dry_run: bool = False,
          euid: int | None = None, profiles: Path | None = None) -> WifiReport:
    """Make (or replace) the access-point profile and start it. The old passphrase is
    kept unless `new_passphrase`; the new profile is saved before the old one goes, so a
    refused profile leaves the box as it was. A dry run runs nothing. `profiles`:
    NetworkManager's keyfile folder (default `keyfile_dir()`)."""
    warnings = _warnings(net)
    uuid = NEWER if dry_run else str(uuids.uuid4())
    path = (profiles or keyfile_dir()) / wifi.keyfile_name(net, uuid)
    if dry_run:
        reads = [] if new_passphrase else [wifi.read_field_argv(OLDER, PSK_FIELD, secret=True)]
        commands = [wifi.list_profiles_argv(), *reads,
                    *_change_steps(net, uuid, path, [OLDER])]
        lines = []
        for argv in commands:
            if argv == wifi.load_profile_argv(str(path)):
                lines.append(_write_line(path))
            lines.append(wifi.shown(argv))
        return WifiReport(net, None, tuple(lines), tuple(warnings),
                          new_passphrase=new_passphrase)
    require_root("wifi setup", euid)
    ran: list[str] = []
    old = wifi.uuids_named(_run(wifi.list_profiles_argv(), ran, "listing profiles"),
                           net.profile)
    kept = None if new_passphrase or not old else _read_kept(old[0], ran)
    if kept and not wifi.is_usable_passphrase(kept):
        warnings.append("the profile's passphrase was not a usable WPA2 one: made a new one")
    psk = kept if kept and wifi.is_usable_passphrase(kept) else wifi.new_passphrase()
    failed = None
    for argv in _change_steps(net, uuid, path, old):
        try:
            if argv == wifi.load_profile_argv(str(path)):
                _save_profile(net, psk, uuid, path, ran)
            elif argv[:3] == ["nmcli", "connection", "delete"]:
                _remove_old(argv, uuid, path, ran)
            else:
                _run(argv, ran, _purpose(argv))
        except SystemToolError as e:
            if argv != wifi.up_argv(uuid):
                raise
            failed = (f"{e}. The network is saved and NetworkManager tries again at "
                      "boot; see `journalctl -u NetworkManager -b`"
                      + ("; set wifi.country" if not net.country else ""))
    if failed:
        log.warning("Wi-Fi %r saved on %s but not started: %s", net.ssid, net.interface,
                    failed)
    else:
        log.info("Wi-Fi %r up on %s (%s)", net.ssid, net.interface, net.address)
    return WifiReport(net, psk, tuple(ran), tuple(warnings), new_passphrase=psk != kept,
                      replaced=len(old), failed=failed)


def show(net: Network, *, euid: int | None = None) -> WifiReport:
    """The profile as NetworkManager holds it now: its network name, passphrase and
    address (the UI's port from the config)."""
    require_root("wifi show", euid)
    ran: list[str] = []
    found = wifi.uuids_named(_run(wifi.list_profiles_argv(), ran, "listing profiles"),
                             net.profile)
    if not found:
        raise InputError(f"there is no {net.profile} Wi-Fi yet: make it with "
                         "`sudo vigbox wifi setup`")
    ssid = _read(found[0], "802-11-wireless.ssid", ran)
    psk = _read(found[0], PSK_FIELD, ran, secret=True)
    address = _read(found[0], "ipv4.addresses", ran).split(",")[0].strip()
    net = replace(net, ssid=ssid or net.ssid, address=address or net.address)
    warnings = [] if psk else ["the profile holds no passphrase NetworkManager will show: "
                               "make one with `sudo vigbox wifi setup --new-passphrase`"]
    problem = wifi.unreachable_ui(net)
    return WifiReport(net, psk or None, tuple(ran),
                      tuple(warnings + ([problem] if problem else [])))


def record(app: App, report: WifiReport, action: WifiAction, *, actor: str) -> None:
    """Audit a setup or a showing of the passphrase (never the passphrase itself)."""
    net = report.network
    detail: dict[str, Any] = {"ssid": net.ssid, "address": net.address,
                              "interface": net.interface}
    if action is WifiAction.SETUP:
        detail |= {"band": net.band, "channel": net.channel, "country": net.country,
                   "new_passphrase": report.new_passphrase, "replaced": report.replaced,
                   "started": report.failed is None}
    app.catalog.audit.append(action.value, net.profile, actor=actor, detail=detail)


def _change_steps(net: Network, uuid: str, path: Path,
                  old: Sequence[str]) -> list[list[str]]:
    """Radio on, the country, the new profile (its keyfile written, then loaded), the
    old ones removed, the AP started."""
    steps = [wifi.radio_on_argv()]
    if net.country:
        steps.append(wifi.country_argv(net.country,
                                       raspi_config=shutil.which("raspi-config") is not None))
    steps.append(wifi.load_profile_argv(str(path)))
    steps += [wifi.delete_profile_argv(older) for older in old]
    steps.append(wifi.up_argv(uuid))
    return steps


def _save_profile(net: Network, psk: str, uuid: str, path: Path, ran: list[str]) -> None:
    """Write the profile's keyfile (root only, 0600, atomically) and have NetworkManager
    load it. `nmcli connection load` exits 0 even when NetworkManager refuses a file, so
    the profile is looked for afterwards. On any failure (or an interrupt) the file goes
    again, and NetworkManager is told, so neither it nor the next boot keeps the profile."""
    ran.append(_write_line(path))
    try:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fsutil.atomic_write_bytes(path, wifi.keyfile_text(net, psk, uuid).encode())
        except OSError as e:
            raise SystemToolError(f"saving the Wi-Fi profile failed: cannot write {path}: "
                                  f"{e.strerror}") from None
        _run(wifi.load_profile_argv(str(path)), ran, "saving the Wi-Fi profile")
        listing = _run(wifi.list_profiles_argv(), ran, "listing profiles")
        if uuid not in wifi.uuids_named(listing, net.profile):
            raise SystemToolError(
                f"saving the Wi-Fi profile failed: NetworkManager refused {path}: that "
                "may not be its keyfile folder (VIGBOX_NM_KEYFILE_DIR names another), or a "
                "setting in the file is not valid for this NetworkManager. See "
                "`journalctl -u NetworkManager -b`")
    except BaseException:
        _forget(path)
        raise


def _forget(path: Path) -> None:
    """Remove a keyfile of ours and have NetworkManager drop what it read from it
    (loading a path that is gone does that); best effort, on the way out of a failure."""
    try:
        path.unlink()
    except OSError:
        return   # never written: nothing for NetworkManager to drop
    try:
        system_tool.run(wifi.load_profile_argv(str(path)), timeout=QUICK_S,
                        what="forgetting the refused profile", package="network-manager")
    except SystemToolError as e:
        log.warning("%s", e)


def _remove_old(argv: list[str], uuid: str, path: Path, ran: list[str]) -> None:
    """Remove an older profile; if that fails, remove the new one instead, so that the
    box keeps one network, the old one, with the passphrase its tablets know."""
    try:
        _run(argv, ran, _purpose(argv))
    except SystemToolError as e:
        try:
            _run(wifi.delete_profile_argv(uuid), ran, "removing the new Wi-Fi profile")
        except SystemToolError:
            _forget(path)
        raise SystemToolError(f"{e}; the new profile was removed and the old network "
                              "kept as it was") from None


def _write_line(path: Path) -> str:
    """The keyfile's writing, as a step listed for people among the nmcli commands."""
    return f"write {path} (root only, mode 0600)"


def _warnings(net: Network) -> list[str]:
    """What may keep the tablet off the network, said before anything runs."""
    found = []
    if not net.country:
        found.append("no Wi-Fi country is set (wifi.country, e.g. \"GB\"): the access "
                     "point may not start, or may use a channel not allowed here")
    elif shutil.which("raspi-config") is None:
        found.append(f"`iw reg set {net.country}` lasts until the next boot: set the "
                     "country in the system's settings to keep it")
    path = os.pathsep.join(filter(None, (os.environ.get("PATH"), SBIN_PATH)))
    if shutil.which("dnsmasq", path=path) is None:
        found.append("dnsmasq is not installed: NetworkManager needs it to give the "
                     "tablet an address (apt install dnsmasq-base)")
    problem = wifi.unreachable_ui(net)
    return found + ([problem] if problem else [])


def _purpose(argv: Sequence[str]) -> str:
    """What an nmcli step is for, in words for an error message."""
    words = {"radio": "switching Wi-Fi on", "load": "saving the Wi-Fi profile",
             "delete": "removing the old Wi-Fi profile", "up": "starting the Wi-Fi",
             "reg": "setting the Wi-Fi country", "nonint": "setting the Wi-Fi country"}
    return next((words[a] for a in argv[1:3] if a in words), "setting up the Wi-Fi")


def _run(argv: list[str], ran: list[str], what: str) -> str:
    """One OS tool through system_tool, noted in `ran`. No argv holds the passphrase."""
    tool = argv[0]
    package = {"nmcli": "network-manager", "iw": "iw"}.get(tool, tool)
    ran.append(wifi.shown(argv))
    timeout = UP_S if argv == wifi.up_argv(argv[-1]) else QUICK_S
    return system_tool.run(argv, timeout=timeout, what=what, package=package)


def _read_kept(uuid: str, ran: list[str]) -> str:
    """The passphrase of the profile being replaced, so tablets that know it stay on.
    One NetworkManager does not show is never replaced silently: the tablets would all
    drop off."""
    again = "to make a new passphrase instead (tablets then join again): sudo vigbox " \
        "wifi setup --new-passphrase"
    try:
        kept = _read(uuid, PSK_FIELD, ran, secret=True)
    except SystemToolError as e:
        raise SystemToolError(f"{e}; {again}") from None
    if not kept:
        raise SystemToolError("NetworkManager shows no passphrase for the Wi-Fi being "
                              f"replaced; run it again, or {again}")
    return kept


def _read(uuid: str, field: str, ran: list[str], *, secret: bool = False) -> str:
    """One field of a profile (its trailing newline off, nothing else: a passphrase may
    end in a space). An empty secret is asked for again (see SECRET_READS)."""
    for _ in range(SECRET_READS if secret else 1):
        out = _run(wifi.read_field_argv(uuid, field, secret=secret), ran,
                   "reading the Wi-Fi profile").removesuffix("\n")
        if out:
            break
    return out
