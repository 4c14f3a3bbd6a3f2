"""`vigbox web`, `passwd`, `users`, `settings`: the tablet UI, its accounts and the
settings an administrator changes on the box."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from appliance.catalog import EDITABLE
from appliance.cli.common import ACTOR, Command, Parser, emit, stop_on_signals
from appliance.config import Config
from appliance.errors import InputError
from appliance.services import accounts, imports, settings
from appliance.services.app import open_app


def register(command: Command) -> None:
    """Add the web commands."""
    c = command("web", "serve the tablet UI", cmd_web, json_flag=False)
    c.add_argument("--host", help="address to listen on (default: web.host)")
    c.add_argument("--port", type=int, help="port (default: web.port)")
    c.add_argument("--tls", action="store_true",
                   help="serve HTTPS with the box's own certificate (made on first use)")

    c = command("passwd", "set an account's passphrase (the account is made if missing)",
                cmd_passwd)
    c.add_argument("--user", default=accounts.DEFAULT_USER,
                   help=f"account name (default {accounts.DEFAULT_USER}, an administrator)")
    c.add_argument("--stdin", action="store_true",
                   help="read the passphrase from standard input (for scripts)")

    c = command("users", "list accounts, or add / remove one", cmd_users)
    users_sub = c.add_subparsers(dest="users_command", metavar="add|remove",
                                 parser_class=Parser)
    a = users_sub.add_parser("add", help="add a guider's account (asks for its passphrase)")
    a.add_argument("name", help="account name: lowercase letters, digits, . _ -")
    a.add_argument("--admin", action="store_true", help="an administrator")
    a.add_argument("--stdin", action="store_true", help="read the passphrase from stdin")
    a.add_argument("--json", action="store_true", help="print one JSON document")
    r = users_sub.add_parser("remove", help="remove an account")
    r.add_argument("name", help="account name")
    r.add_argument("--json", action="store_true", help="print one JSON document")

    c = command("settings", "show the box's settings, or change one (as on the tablet's "
                "Settings screen)", cmd_settings)
    settings_sub = c.add_subparsers(dest="settings_command", metavar="set|reset",
                                    parser_class=Parser)
    s = settings_sub.add_parser("set", help="change a setting on the box")
    s.add_argument("key", help=", ".join(EDITABLE))
    s.add_argument("value", help="its new value (true/false for yes-no settings)")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    r = settings_sub.add_parser("reset", help="go back to the config file's value")
    r.add_argument("key", help=", ".join(EDITABLE))
    r.add_argument("--json", action="store_true", help="print one JSON document")


def read_passphrase(from_stdin: bool) -> str:
    """A new passphrase: one line of stdin, or typed twice at a terminal."""
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise InputError("no terminal to ask for the passphrase: use --stdin")
    first = getpass.getpass("New passphrase: ")
    if first != getpass.getpass("Again: "):
        raise InputError("the two passphrases differ; nothing was changed")
    return first


def cmd_passwd(args: argparse.Namespace, config: Config) -> int:
    passphrase = read_passphrase(args.stdin)
    with open_app(config) as app:
        user, created = accounts.set_passphrase(app.catalog, args.user, passphrase, actor=ACTOR)
    emit(args, {**user.to_json(), "created": created},
         f"{'made the account' if created else 'changed the passphrase of'} {user.name}"
         f"{' (administrator)' if user.is_admin else ''}")
    return 0


def cmd_users(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        if args.users_command == "add":
            user = accounts.add_user(app.catalog, args.name, read_passphrase(args.stdin),
                                     admin=args.admin, actor=ACTOR)
            emit(args, user.to_json(), f"added {user.name}")
            return 0
        if args.users_command == "remove":
            app.catalog.accounts.remove(args.name, actor=ACTOR)
            emit(args, {"removed": args.name}, f"removed {args.name}")
            return 0
        users = accounts.list_users(app.catalog)
    emit(args, [u.to_json() for u in users],
         "\n".join(f"{u.name}{'  (administrator)' if u.is_admin else ''}" for u in users)
         or "no accounts yet: `vigbox passwd` makes the administrator's")
    return 0


def cmd_settings(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        if args.settings_command == "set":
            described = settings.change(app, {args.key: settings.from_text(args.key, args.value)},
                                        actor=ACTOR)
        elif args.settings_command == "reset":
            described = settings.change(app, {args.key: None}, actor=ACTOR)
        else:
            described = settings.describe(app)
    lines = [f"{key} = {json.dumps(s['value'])}"
             + ("  (changed on the box; the config file says "
                f"{json.dumps(s['file_value'])})" if s["changed_on_box"] else "")
             for key, s in described["settings"].items()]
    emit(args, described, "\n".join(lines))
    return 0


def cmd_web(args: argparse.Namespace, config: Config) -> int:
    from appliance.web.api_sync import sync_now
    from appliance.web.app import create_app
    from appliance.web.server import WebServer

    stop = stop_on_signals()
    web = config.web
    with open_app(config) as app:
        imports.clear_uploads(app)  # half-received by a web process that was killed
        app.catalog.sessions.sweep(older_than_s=24 * 3600)
        tls = None
        if args.tls:
            root = app.layout.root
            tls = (Path(web.tls_cert) if web.tls_cert else root / "tls" / "vigbox.crt",
                   Path(web.tls_key) if web.tls_key else root / "tls" / "vigbox.key")
            tls[0].parent.mkdir(parents=True, exist_ok=True)
        flask_app = create_app(app, tls=tls is not None)
        server = WebServer(flask_app, host=args.host or web.host,
                           port=args.port if args.port is not None else web.port,
                           threads=web.threads, tls=tls)
        server.start()
        print(f"vigbox: tablet UI at {server.url}", file=sys.stderr, flush=True)
        try:
            stop.wait()
        finally:
            server.stop()
            # A "Sync now" still running stops (it resumes next time) before the catalog
            # closes under it.
            sync_now(flask_app).close()
    return 0
