"""`vigbox recordings`, `import`, `cases`, `config`: what the box holds and how it is set."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.catalog import CONSENT_SCOPES, Case
from appliance.cli.common import ACTOR, Command, Parser, describe_recording, emit
from appliance.config import Config, describe
from appliance.services import cases, imports, recordings
from appliance.services.app import open_app


def register(command: Command) -> None:
    """Add the library commands."""
    command("recordings", "list recordings", cmd_recordings)

    c = command("import", "bring in a video shot on another device", cmd_import)
    c.add_argument("file", type=Path, help="the video file")
    c.add_argument("--case", help="case code the recording belongs to")

    c = command("cases", "list cases, or add one with `cases add`", cmd_cases)
    cases_sub = c.add_subparsers(dest="cases_command", metavar="add|consent|close|erase",
                                 parser_class=Parser)
    a = cases_sub.add_parser("add", help="add a case by its pseudonymous code")
    a.add_argument("code", help="pseudonymous case code, e.g. VIG-2026-014 (never a name)")
    a.add_argument("--consent", default="",
                   help=f"consent scopes given, comma-separated: {','.join(CONSENT_SCOPES)}")
    a.add_argument("--date", dest="consent_date", default=None,
                   help="date consent was given, YYYY-MM-DD (default today)")
    a.add_argument("--json", action="store_true", help="print one JSON document")
    g = cases_sub.add_parser("consent", help="record consent given or withdrawn for a case")
    g.add_argument("code", help="the case code")
    g.add_argument("--give", default="", help="scopes given, comma-separated")
    g.add_argument("--withdraw", default="", help="scopes withdrawn, comma-separated")
    g.add_argument("--date", dest="consent_date", default=None,
                   help="date consent was given, YYYY-MM-DD (default today)")
    g.add_argument("--json", action="store_true", help="print one JSON document")
    e = cases_sub.add_parser("close", help="the work with the family has ended (its raw "
                             "recordings then expire after sync.raw_keep_days)")
    e.add_argument("code", help="the case code")
    e.add_argument("--json", action="store_true", help="print one JSON document")
    e = cases_sub.add_parser("erase", help="erase a case on the family's request: its "
                             "media and notes leave the box and the office is told")
    e.add_argument("code", help="the case code")
    e.add_argument("--confirm", required=True, help="the case code again")
    e.add_argument("--json", action="store_true", help="print one JSON document")

    c = command("config", "check the configuration", cmd_config, json_flag=False)
    config_sub = c.add_subparsers(dest="config_command", required=True, metavar="check",
                                  parser_class=Parser)
    k = config_sub.add_parser("check", help="validate the config and show the result")
    k.add_argument("--json", action="store_true", help="print one JSON document")


def cmd_recordings(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        recs = recordings.list_recordings(app)
    emit(args, [r.to_json() for r in recs],
         "\n".join(describe_recording(r) for r in recs) or "no recordings yet")
    return 0


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        rec = imports.import_file(app, args.file, case=args.case, actor=ACTOR)
    emit(args, rec.to_json(), describe_recording(rec))
    return 0


def _consent_line(case: Case) -> str:
    return ", ".join(str(s) for s in sorted(case.consent)) or "none"


def cmd_cases(args: argparse.Namespace, config: Config) -> int:
    with open_app(config) as app:
        if args.cases_command == "add":
            case = cases.add_case(app.catalog, args.code, cases.parse_scopes(args.consent),
                                  when=args.consent_date, actor=ACTOR)
            given = _consent_line(case).replace("none", "none yet")
            emit(args, case.to_json(), f"added case {case.code} (consent: {given})")
            return 0
        if args.cases_command == "consent":
            case = cases.change_consent(app.catalog, args.code,
                                        give=cases.parse_scopes(args.give),
                                        withdraw=cases.parse_scopes(args.withdraw),
                                        when=args.consent_date, actor=ACTOR)
            emit(args, case.to_json(), f"case {case.code} consent: {_consent_line(case)}")
            return 0
        if args.cases_command == "close":
            case = cases.close_case(app.catalog, args.code, actor=ACTOR)
            emit(args, case.to_json(), f"case {case.code} closed on {case.closed_at}")
            return 0
        if args.cases_command == "erase":
            plan = cases.erase_case(app.catalog, args.code, confirm=args.confirm, actor=ACTOR)
            counts = plan.counts()
            emit(args, {"erased": args.code, **counts},
                 f"case {args.code} erased: " + ", ".join(f"{n} {k}" for k, n in counts.items())
                 + "; the office is told at the next sync")
            return 0
        listed = cases.list_cases(app.catalog)
    emit(args, [c.to_json() for c in listed],
         "\n".join(f"{c.code}  consent: {_consent_line(c)}" for c in listed) or "no cases yet")
    return 0


def cmd_config(args: argparse.Namespace, config: Config) -> int:
    emit(args, describe(config), f"config is valid; data in {config.data_path}, camera "
         f"{config.camera.backend}, microphone {config.microphone.backend}, GPIO "
         f"{config.gpio.backend}")
    return 0
