"""The operator CLI, `forwarder ...`: a thin shell over the same service and adapters.

Exit codes: 0 done, 1 the command ran and found a problem (a check failed, a send was refused),
2 it could not run (bad arguments, missing credentials, unknown environment).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

OK, PROBLEM, USAGE = 0, 1, 2


class CommandError(Exception):
    """An expected failure: printed as one line, exit code 2 (no traceback)."""


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# run ------------------------------------------------------------------------------------------


def _quiet_runtime(verbose: bool) -> None:
    """The handler's JSON logs only with --verbose (set before the runtime is imported)."""
    if not verbose:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")


def cmd_run(args: argparse.Namespace) -> int:
    _quiet_runtime(args.verbose)
    from forwarder.ops.localrun import describe, load_aliases, run_files, run_samples

    aliases = load_aliases(args.aliases) if args.aliases else {}
    if args.mail:
        if not args.to:
            raise CommandError("give the recipients with --to, e.g. --to team@dev.aws-educate.tw")
        verdicts = {k: v for k, v in (("spam", args.spam), ("virus", args.virus), ("dmarc", args.dmarc)) if v}
        if args.dmarc_policy:
            verdicts["dmarc_policy"] = args.dmarc_policy
        results = run_files(args.mail, args.to, aliases, args.outbox, args.verbose, **verdicts)
    else:
        if not (args.events / "manifest.toml").exists():
            raise CommandError(
                f"no {args.events}/manifest.toml: give a mail file, "
                "e.g. forwarder run mail.eml --to team@dev.aws-educate.tw"
            )
        if not args.aliases and (args.events / "aliases.toml").exists():
            aliases = load_aliases(args.events / "aliases.toml")
        results = run_samples(args.events, aliases, args.outbox, args.verbose)
    if args.json:
        _print_json([r.as_dict() for r in results])
    else:
        for result in results:
            print(describe(result))
            print()
        print(f"{sum(len(r.files) for r in results)} forwarded message(s) written to {args.outbox}/")
    return PROBLEM if any(r.outcome.get("failed") for r in results) else OK


# events ---------------------------------------------------------------------------------------


def cmd_events_build(args: argparse.Namespace) -> int:
    from forwarder.ops.samples import load_manifest, write_events

    manifest = load_manifest(
        args.source.parent / "manifest.toml" if args.source.name == "mail" else args.source / "manifest.toml"
    )
    for path in write_events(manifest, args.out):
        print(path)
    return OK


# parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forwarder", description="Operate the SES email forwarder.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="forward mail through the real handler against the embedded AWS emulator",
        description="Forward mail files (or the sample events) through the real Lambda handler against an "
        "in-process AWS emulator; prints the recipients and rewritten headers and writes outbox/*.eml.",
    )
    run.add_argument("mail", nargs="*", type=Path, help="raw mail files (.eml); default: the sample events")
    run.add_argument("--to", action="append", default=[], metavar="ADDRESS", help="envelope recipient (repeatable)")
    run.add_argument("--aliases", type=Path, help='alias lists, TOML: [aliases] team = ["a@x.org"]')
    run.add_argument("--events", type=Path, default=Path("events"), help="sample events directory (default: events)")
    run.add_argument("--outbox", type=Path, default=Path("outbox"), help="where forwarded mail is written")
    run.add_argument("--spam", choices=["PASS", "FAIL", "GRAY"], help="SES spam verdict to simulate")
    run.add_argument("--virus", choices=["PASS", "FAIL", "GRAY"], help="SES virus verdict to simulate")
    run.add_argument("--dmarc", choices=["PASS", "FAIL", "GRAY"], help="SES DMARC verdict to simulate")
    run.add_argument("--dmarc-policy", choices=["none", "quarantine", "reject"], help="sender domain's DMARC policy")
    run.add_argument("--json", action="store_true", help="machine-readable output")
    run.add_argument("-v", "--verbose", action="store_true", help="also print the handler's JSON logs and metrics")
    run.set_defaults(func=cmd_run)

    events = commands.add_parser("events", help="sample SES events").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    build = events.add_parser("build", help="write events/<name>.json from events/manifest.toml and events/mail/")
    build.add_argument("--source", type=Path, default=Path("events"), help="directory with manifest.toml")
    build.add_argument("--out", type=Path, default=Path("events"), help="where the JSON events go")
    build.set_defaults(func=cmd_events_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except CommandError as error:
        print(f"forwarder: {error}", file=sys.stderr)
        return USAGE


if __name__ == "__main__":
    sys.exit(main())
