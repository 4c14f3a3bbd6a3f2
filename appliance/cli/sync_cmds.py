"""`vigbox sync`, `keys`, `office decrypt`, `audit`: sending to the office, the box's
keys, the office's side, and the audit log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance.cli.common import Command, Parser, emit, stop_on_signals
from appliance.config import Config
from appliance.services import sync as sync_service
from appliance.services.app import open_app
from appliance.sync.office import decrypt_folder, load_identities


def register(command: Command) -> None:
    """Add the sync commands."""
    c = command("sync", "send what is due to the office, encrypted (one run)", cmd_sync)
    c.add_argument("--now", action="store_true",
                   help="a person asks: also files waiting for their next try, and after "
                        "a stop an administrator has fixed (host key, login)")

    c = command("keys", "the box's SSH key for the office", cmd_keys)
    keys_sub = c.add_subparsers(dest="keys_command", metavar="init|office-host",
                                parser_class=Parser)
    k = keys_sub.add_parser("init", help="make the box's ed25519 key (once) and print its "
                            "public key for the office's authorized_keys")
    k.add_argument("--json", action="store_true", help="print one JSON document")
    k = keys_sub.add_parser("office-host", help="show the office SFTP server's host key "
                            "fingerprint; with --pin, pin it if it is the one the office gave")
    k.add_argument("--pin", metavar="SHA256:...", help="the fingerprint the office gave you")
    k.add_argument("--json", action="store_true", help="print one JSON document")

    c = command("office", "the office's side of sync", cmd_office)
    office_sub = c.add_subparsers(dest="office_command", metavar="decrypt", parser_class=Parser,
                                  required=True)
    d = office_sub.add_parser("decrypt", help="decrypt a received folder and check it "
                              "against its manifests")
    d.add_argument("src", type=Path, help="the folder the boxes send to")
    d.add_argument("dest", type=Path, help="where the decrypted files go")
    d.add_argument("--identity", type=Path, required=True,
                   help="the office's age identity file (age-keygen's output)")
    d.add_argument("--json", action="store_true", help="print one JSON document")

    command("audit", "the audit log: views, renders, uploads, deletions, settings", cmd_audit)

    c = command("doctor", "check the box part by part: OK, WARN or FAIL with what to do",
                cmd_doctor)
    c.add_argument("--offline", action="store_true", help="do not try to reach the office")


def cmd_sync(args: argparse.Namespace, config: Config) -> int:
    stop = stop_on_signals()
    with open_app(config) as app:
        summary = sync_service.run_sync(app, manual=args.now, stop=stop)
    doc = summary.to_json()
    lines = [f"sync to {doc['destination'] or '(none configured)'}: {doc['uploaded']} sent "
             f"({doc['bytes']} bytes), {doc['pending']} waiting"]
    lines += [f"  failed: {f['name'] or 'the office'}: {f['reason']}" for f in doc["failed"]]
    if doc["stopped"]:
        lines.append(f"  stopped: {doc['stopped']['message']}")
    emit(args, doc, "\n".join(lines))
    return 1 if doc["stopped"] and doc["stopped"]["kind"] != "config" else 0


def cmd_keys(args: argparse.Namespace, config: Config) -> int:
    # paramiko is imported only where it is used: the sync service keeps it out of memory
    # unless its destination is SFTP.
    from appliance.services import keys as key_service

    with open_app(config) as app:
        if args.keys_command == "office-host":
            if args.pin:
                found = key_service.pin_office_host_key(app, args.pin, actor="cli")
                emit(args, {"pinned": found}, f"pinned the office's host key {found}")
            else:
                host, line, found = key_service.office_host_key(app)
                emit(args, {"host": host, "key": line, "fingerprint": found},
                     f"{host} offers {line.split()[0]} {found}\ncompare it with the office "
                     f"(on their server: ssh-keygen -lf the host key), then: "
                     f"vigbox keys office-host --pin {found}")
            return 0
        made, public = key_service.init_device_key(app)
    emit(args, {"created": made, "public_key": public},
         (("made the box's key; " if made else "the box's key exists; ")
          + "give the office this line for the sync account's authorized_keys:\n" + public))
    return 0


def cmd_office(args: argparse.Namespace, config: Config) -> int:
    report = decrypt_folder(args.src, args.dest, load_identities(args.identity))
    doc = report.to_json()
    lines = [f"decrypted {len(report.decrypted)} files into {args.dest}"]
    lines += [f"  MISSING  {p}" for p in report.missing]
    lines += [f"  ALTERED  {p}" for p in report.altered]
    lines += [f"  not in a manifest (yet): {p}" for p in report.unlisted]
    lines += [f"  ERASE case {e.get('case')} (the family withdrew consent on "
              f"{e.get('erased_at')}): delete its copies" for e in report.erasures]
    emit(args, doc, "\n".join(lines))
    if not report.ok:
        print("vigbox: some files are missing or altered (listed above)", file=sys.stderr)
        return 1
    return 0


def cmd_audit(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        entries = app.catalog.audit.entries(limit=1_000_000)
        problems = app.catalog.audit.verify()
    emit(args, {"intact": not problems, "problems": problems,
                "entries": [e.to_json() for e in entries]},
         "\n".join(f"{e.at}  {e.actor:<10} {e.action:<22} {e.subject or ''}" for e in entries)
         + "".join(f"\nALTERED: {p}" for p in problems))
    return 0


def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from appliance.services import doctor

    with open_app(config) as app:
        checks = doctor.run_checks(app, reach_office=not args.offline)
    width = max(len(c.name) for c in checks)
    emit(args, [c.to_json() for c in checks], "\n".join(
        f"{c.status.upper():<5} {c.name:<{width}}  {c.detail}"
        + (f"\n      {'':<{width}}  → {c.advice}" if c.advice and c.status != "ok" else "")
        for c in checks))
    return 1 if any(c.status == doctor.FAIL for c in checks) else 0
