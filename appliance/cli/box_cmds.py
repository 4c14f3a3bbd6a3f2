"""`vigbox wifi`: the box's own Wi-Fi network for the tablet (setup, show)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance import wifi_qr
from appliance.cli.common import Command, Parser, emit, shell_actor
from appliance.config import Config
from appliance.errors import InputError
from appliance.services import wifi as wifi_service
from appliance.services.app import App, open_app
from appliance.services.wifi import WifiAction, WifiReport


def register(command: Command) -> None:
    """Add `vigbox wifi setup` and `vigbox wifi show`."""
    c = command("wifi", "the box's own Wi-Fi network for the tablet", cmd_wifi,
                json_flag=False)
    # NetworkManager's system profiles need root all along; the catalog is opened as its
    # owner only while it is read or written (catalog_as_owner).
    c.set_defaults(keep_root=True)
    sub = c.add_subparsers(dest="wifi_command", required=True, metavar="setup|show",
                           parser_class=Parser)
    s = sub.add_parser("setup", help="make (or remake) the access point the tablet joins, "
                       "keeping its passphrase, and print how to join it")
    s.add_argument("--new-passphrase", action="store_true",
                   help="make a new passphrase (e.g. a tablet was lost): every tablet "
                        "must join again")
    s.add_argument("--dry-run", action="store_true",
                   help="print what would run and change nothing")
    w = sub.add_parser("show", help="the network name, passphrase, address and QR code "
                       "as NetworkManager holds them")
    for p in (s, w):
        p.add_argument("--qr", type=Path, metavar="FILE.png|FILE.svg",
                       help="also save the QR code as an image, to print (it holds the "
                            "passphrase)")
        p.add_argument("--json", action="store_true", help="print one JSON document")


def cmd_wifi(args: argparse.Namespace, config: Config) -> int:
    dry_run = getattr(args, "dry_run", False)
    if args.qr is not None:
        wifi_qr.check_qr_path(args.qr)
        if dry_run:
            raise InputError("--qr needs the passphrase, and a dry run reads or makes none")
    actor = shell_actor()
    with catalog_as_owner(config) as app:
        net = wifi_service.network_of(app)
    if args.wifi_command == "show":
        report, action = wifi_service.show(net), WifiAction.SHOW
    else:
        if not dry_run:
            # Over SSH on the Wi-Fi being remade, the session drops mid-way: the setup and
            # its audit entry must still finish (the output may be lost; `wifi show` has it).
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        report = wifi_service.setup(net, new_passphrase=args.new_passphrase, dry_run=dry_run)
        action = WifiAction.SETUP
    if not dry_run:
        with catalog_as_owner(config) as app:
            wifi_service.record(app, report, action, actor=actor)
    payload = report.join_payload
    if args.qr is not None:
        if payload is None:
            raise InputError("NetworkManager shows no passphrase, so there is no QR code to "
                             "save: sudo vigbox wifi setup --new-passphrase makes one")
        save_qr(payload, args.qr)
    doc = report.to_json() | {"dry_run": dry_run,
                              "qr_file": str(args.qr) if args.qr is not None else None}
    emit(args, doc, describe(report, dry_run=dry_run, qr_file=args.qr))
    if report.failed:
        print(f"vigbox: the Wi-Fi is saved but did not start: {report.failed}",
              file=sys.stderr)
        return 1
    return 0


def describe(report: WifiReport, *, dry_run: bool, qr_file: Path | None) -> str:
    """What a person at the box needs: the name, the passphrase, the address, the code."""
    net = report.network
    lines = []
    if dry_run:
        lines += ["would run (nothing was changed):",
                  *(f"  {c}" for c in report.commands), ""]
    lines += [f"network name  {net.ssid}",
              f"passphrase    {report.passphrase or '(read or made when it is set up)'}",
              f"the UI        {net.url}"]
    if report.new_passphrase and (report.replaced or dry_run):
        lines.append("A new passphrase " + ("would be" if dry_run else "was")
                     + " made: tablets that knew the old one must join again (forget the "
                     "network on the tablet, then scan the code or type the passphrase).")
    lines += [f"warning: {w}" for w in report.warnings]
    if report.failed:
        lines.append(f"NOT STARTED: {report.failed}")
    if report.join_payload:
        lines += ["", "Scan this with the tablet's camera to join (or type the name and "
                  "passphrase):", wifi_qr.terminal_text(report.join_payload).rstrip("\n"),
                  f"Then open {net.url} on the tablet and add it to the home screen."]
    if qr_file is not None:
        lines.append(f"QR code saved to {qr_file} (it holds the passphrase: keep it safe)")
    return "\n".join(lines)


@contextmanager
def catalog_as_owner(config: Config) -> Iterator[App]:
    """The catalog, opened as its data dir's owner when run as root: `vigbox wifi` keeps
    root for NetworkManager, but must leave no root-owned file (catalog -wal, -shm) the
    services could then not write."""
    data = config.data_path
    owner = data.stat() if os.geteuid() == 0 and data.exists() else None
    if owner is None or owner.st_uid == 0:
        with open_app(config) as app:
            yield app
        return
    # Effective ids only, so root comes back for the nmcli steps after the block.
    os.setegid(owner.st_gid)
    os.seteuid(owner.st_uid)
    try:
        with open_app(config) as app:
            yield app
    finally:
        os.seteuid(0)
        os.setegid(0)


def save_qr(payload: str, path: Path) -> None:
    """Save the QR code; made as root under sudo, it goes to the person who asked, so
    they can open and print it (it stays readable by them only)."""
    wifi_qr.save(payload, path)
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if os.geteuid() == 0 and uid and gid:
        os.chown(path, int(uid), int(gid))
