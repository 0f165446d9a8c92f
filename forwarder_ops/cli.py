"""The operator CLI, `forwarder ...`: a thin shell over the same service and adapters.

The commands' logic lives in `forwarder_ops`; here are the arguments and the exit codes:
0 done, 1 the command ran and found a problem (a check failed, a send was refused, a replay failed),
2 it could not run (bad arguments, missing credentials, unknown environment, missing stack).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from forwarder_ops.console import print_json, printable, printable_lines
from forwarder_ops.errors import CommandError

__all__ = ["OK", "PROBLEM", "USAGE", "CommandError", "build_parser", "main"]

OK, PROBLEM, USAGE = 0, 1, 2


# run ------------------------------------------------------------------------------------------


def _quiet_runtime(verbose: bool) -> None:
    """The handler's JSON logs only with --verbose (set before the runtime is imported)."""
    if not verbose:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")


def cmd_run(args: argparse.Namespace) -> int:
    _quiet_runtime(args.verbose)
    from forwarder_ops.aliases import read_file
    from forwarder_ops.localrun import (
        check_aliases,
        clear_outbox,
        describe,
        domain_of,
        read_mail,
        run_files,
        run_samples,
    )
    from forwarder_ops.samples import load_manifest

    manifest = args.events / "manifest.toml"
    source = args.aliases or args.events / "aliases.toml"
    aliases = read_file(source) if args.aliases or source.exists() else {}
    if args.mail:
        if not args.to:
            raise CommandError("give the recipients with --to, e.g. --to team@dev.aws-educate.tw")
        domain = domain_of(args.to)
        for path in args.mail:
            read_mail(path, probe=True)
        configured = load_manifest(manifest).domain if manifest.exists() else None
        if configured and domain != configured:
            print(
                f"forwarder: warning: --to is on {domain}, not on {configured} ({manifest}): "
                f"the run forwards as {domain}",
                file=sys.stderr,
            )
    elif not manifest.exists():
        raise CommandError(f"no {manifest}: give a mail file, e.g. forwarder run mail.eml --to team@dev.aws-educate.tw")
    else:
        domain = load_manifest(manifest).domain
    check_aliases(aliases, domain, source, sys.stderr)
    clear_outbox(args.outbox)
    if args.mail:
        verdicts = {k: v for k, v in (("spam", args.spam), ("virus", args.virus), ("dmarc", args.dmarc)) if v}
        if args.dmarc_policy:
            verdicts["dmarc_policy"] = args.dmarc_policy
        results = run_files(args.mail, args.to, aliases, args.outbox, args.verbose, args.reply_as, **verdicts)
    else:
        results = run_samples(args.events, aliases, args.outbox, args.verbose, args.reply_as)
    if args.json:
        print_json([r.as_dict() for r in results])
    else:
        for result in results:
            print(printable_lines(describe(result).splitlines()))  # the rewritten headers are the mail's
            print()
        print(f"{sum(len(r.files) for r in results)} forwarded message(s) written to {args.outbox}/")
    return PROBLEM if any(r.outcome.get("failed") for r in results) else OK


# events ---------------------------------------------------------------------------------------


def cmd_events_build(args: argparse.Namespace) -> int:
    from forwarder_ops.samples import load_manifest, write_events

    manifest = load_manifest(
        args.source.parent / "manifest.toml" if args.source.name == "mail" else args.source / "manifest.toml"
    )
    for path in write_events(manifest, args.out):
        print(path)
    return OK


# environments -----------------------------------------------------------------------------------


def _target(args: argparse.Namespace) -> Any:
    from forwarder_ops.envconfig import resolve_target

    return resolve_target(
        args.config_env,
        args.config_file,
        region=args.region,
        stack_name=args.stack_name,
        alias_path=getattr(args, "alias_path", None),
        domain=args.domain,
        profile=args.profile,
    )


# aliases ----------------------------------------------------------------------------------------


def _alias_commands(args: argparse.Namespace) -> Any:
    from forwarder_ops.aliases import AliasCommands

    return AliasCommands(_target(args), sys.stdout, sys.stderr)


def cmd_aliases_list(args: argparse.Namespace) -> int:
    commands = _alias_commands(args)
    aliases = commands.read()
    if args.json:
        print_json(aliases)
        return OK
    from forwarder_ops.console import table

    print(f"{len(aliases)} alias(es) under {commands.where}")
    for line in table([(name, ", ".join(members)) for name, members in aliases.items()], ("alias", "members"), "  "):
        print(line)
    return OK


def cmd_aliases_show(args: argparse.Namespace) -> int:
    commands = _alias_commands(args)
    members = commands.show(args.alias)
    if args.json:
        print_json({"alias": args.alias.partition("@")[0].lower(), "members": members})
    else:
        print(printable_lines(members))
    return OK


def cmd_aliases_edit(args: argparse.Namespace) -> int:
    """set, add, remove, import: a diff, a question, then the SSM writes."""
    commands = _alias_commands(args)
    if args.action == "import":
        result: int = commands.import_file(args.file, args.prune, args.yes)
    else:
        edit = {"set": commands.set, "add": commands.add, "remove": commands.remove}[args.action]
        result = edit(args.alias, args.addresses, args.yes)
    return result


def cmd_aliases_export(args: argparse.Namespace) -> int:
    commands = _alias_commands(args)
    text = commands.export(args.file, "json" if args.json else args.format)
    if args.file:
        print(f"wrote {len(commands.store.read())} alias(es) to {args.file}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return OK


# doctor -----------------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from forwarder_ops.doctor import Status, report, run_doctor

    target = _target(args)
    checks, domain = run_doctor(target)
    failed = any(check.status == Status.FAIL for check in checks)
    if args.json:
        print_json(
            {
                "environment": target.name,
                "region": target.region,
                "stack": target.stack_name,
                "domain": domain,
                "ok": not failed,
                "checks": [check.as_dict() for check in checks],
            }
        )
    else:
        print("\n".join(report(target, checks, domain)))
    return PROBLEM if failed else OK


# smtp -------------------------------------------------------------------------------------------


def _smtp_domain(args: argparse.Namespace) -> str:
    if args.domain:
        return str(args.domain)
    if args.config_env:
        from forwarder_ops.envconfig import DEFAULT_CONFIG_FILE, load_samconfig

        config = load_samconfig(args.config_file or DEFAULT_CONFIG_FILE, args.config_env)
        if config.parameters.get("DomainName"):
            return config.parameters["DomainName"]
    manifest = args.events / "manifest.toml"
    if manifest.exists():
        from forwarder_ops.samples import load_manifest

        return load_manifest(manifest).domain
    raise CommandError("give the domain to accept mail for: --domain dev.example.org (or --config-env ENV)")


def cmd_smtp(args: argparse.Namespace) -> int:
    _quiet_runtime(args.verbose)
    import signal
    import threading

    from forwarder_ops.aliases import read_file
    from forwarder_ops.localrun import check_aliases, clear_outbox
    from forwarder_ops.smtp import serve

    # as the ingress compares it: the loop check on the aliases and the banner must see the same domain
    domain = _smtp_domain(args).strip().lower().rstrip(".")
    source = args.aliases or (args.events / "aliases.toml")
    aliases = read_file(source) if args.aliases or source.exists() else {}
    check_aliases(aliases, domain, source, sys.stderr)
    clear_outbox(args.outbox)
    # Ctrl-C and `kill` both stop the server cleanly (even when started in the background, where the
    # shell makes the process ignore SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with serve(
            domain,
            aliases,
            args.outbox,
            host=args.host,
            port=args.port,
            on_received=lambda received: print(printable(received.line()), flush=True),
            verbose=args.verbose,
        ) as ingress:
            held = f"{len(aliases)} alias(es) from {source}" if aliases else "no aliases"
            print(
                f"forwarder smtp: listening on {ingress.host}:{ingress.port} for mail to @{domain} ({held}); "
                f"forwarded mail goes to {args.outbox}/. Ctrl-C stops.",
                flush=True,
            )
            threading.Event().wait()
    except KeyboardInterrupt:
        print("forwarder smtp: stopped", flush=True)
    except OSError as error:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    return OK


# redrive ----------------------------------------------------------------------------------------


def cmd_redrive(args: argparse.Namespace) -> int:
    from forwarder_ops.redrive import LambdaInvoker, Redrive, report, summary

    target = _target(args)
    queue_url = args.queue_url or target.output("FailureQueueUrl")
    function = args.function or target.outputs().get("FunctionArn") or target.output("FunctionName")
    redrive = Redrive(
        target.client("sqs"),
        queue_url,
        LambdaInvoker(target.client("lambda"), function),
        limit=args.max,
        dry_run=args.dry_run,
    )
    results = redrive.run()
    failed = any(not result.ok for result in results)
    if args.json:
        print_json(
            {
                "queue": queue_url,
                "function": function,
                "dry_run": args.dry_run,
                "summary": summary(results, args.dry_run),
                "results": [result.as_dict() for result in results],
            }
        )
    else:
        if results:
            print(f"failure queue {queue_url}\nreplayed through {function}\n")
            print("\n".join(report(results)))
            print()
        print(summary(results, args.dry_run))
    return PROBLEM if failed else OK


# parser ---------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr with exit code 2, like every other expected failure (argparse
    prints the whole usage first); the subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {printable(message)} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0 to 65535)")
    return port


def _count(text: str) -> int:
    """A count of at least 1: `--max 0` or `--max -1` would replay nothing and report an empty queue."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a count of at least 1")
    return count


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ses-forwarder")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="forwarder", description="Operate the SES email forwarder.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="forward mail through the real handler against the embedded AWS emulator",
        description="Forward mail files (or the sample events) through the real Lambda handler against an "
        "in-process AWS emulator; prints the recipients and rewritten headers and writes outbox/*.eml.",
    )
    run.add_argument("mail", nargs="*", type=Path, help="raw mail files (.eml); default: the sample events")
    run.add_argument("--to", action="append", default=[], metavar="ADDRESS", help="envelope recipient (repeatable)")
    run.add_argument(
        "--aliases",
        type=Path,
        help='alias lists, TOML, YAML or JSON: [aliases] team = ["a@x.org"] (default: events/aliases.toml, '
        "that is EVENTS/aliases.toml; without such a file each addressed alias gets one demo member)",
    )
    run.add_argument("--events", type=Path, default=Path("events"), help="sample events directory (default: events)")
    run.add_argument(
        "--outbox",
        type=Path,
        default=Path("outbox"),
        help="where forwarded mail is written (default: outbox); the .eml files of the previous run are removed first",
    )
    run.add_argument("--spam", choices=["PASS", "FAIL", "GRAY"], help="SES spam verdict to simulate")
    run.add_argument("--virus", choices=["PASS", "FAIL", "GRAY"], help="SES virus verdict to simulate")
    run.add_argument("--dmarc", choices=["PASS", "FAIL", "GRAY"], help="SES DMARC verdict to simulate")
    run.add_argument("--dmarc-policy", choices=["none", "quarantine", "reject"], help="sender domain's DMARC policy")
    run.add_argument(
        "--reply-as",
        metavar="MEMBER",
        help="then this member answers each forward it got, to its reply address (the team-reply round trip)",
    )
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

    _add_aliases(commands)
    _add_doctor(commands)
    _add_smtp(commands)
    _add_redrive(commands)
    _add_links(commands)
    _add_send_as(commands)
    _add_trace(commands)
    _add_suppression(commands)
    _add_inspect(commands)
    _add_preflight(commands)
    _add_adopt(commands)
    return parser


def _environment_options(alias_path: bool = True) -> argparse.ArgumentParser:
    """--config-env and the flags that override it, shared by the commands that talk to AWS."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("environment (explicit flags win over samconfig.toml)")
    group.add_argument("--config-env", metavar="ENV", help="environment of samconfig.toml: prod, preview, dev, ...")
    group.add_argument("--config-file", type=Path, metavar="PATH", help="samconfig file (default: samconfig.toml)")
    group.add_argument("--region", help="AWS region (default: the environment's region)")
    group.add_argument("--stack-name", metavar="NAME", help="CloudFormation stack (default: the environment's)")
    group.add_argument("--profile", help="AWS CLI profile (default: the environment's, else AWS_PROFILE)")
    group.add_argument("--domain", help="the forwarding domain (default: DomainName, else the stack's Domain output)")
    if alias_path:
        group.add_argument(
            "--alias-path",
            metavar="PATH",
            help="SSM path of the aliases (default: AliasPath, else /email-forwarder/<env>/aliases)",
        )
    return options


def _add_aliases(commands: Any) -> None:
    env = _environment_options()
    aliases = commands.add_parser(
        "aliases",
        help="list and edit the alias lists (SSM parameters)",
        description="The alias lists of an environment: one SSM StringList parameter per alias under the alias "
        "path. Edits show a diff and ask before they are applied (--yes skips the question).",
    ).add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = aliases.add_parser("list", parents=[env], help="every alias and its members")
    listing.add_argument("--json", action="store_true", help="machine-readable output: {alias: [members]}")
    listing.set_defaults(func=cmd_aliases_list)

    show = aliases.add_parser("show", parents=[env], help="the members of one alias")
    show.add_argument("alias", help="alias name, e.g. team (or team@<domain>)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_aliases_show)

    for name, about in (
        ("set", "replace the members of an alias (creates it when new)"),
        ("add", "add members to an alias (creates it when new)"),
    ):
        edit = aliases.add_parser(name, parents=[env], help=about, description=about)
        edit.add_argument("alias", help="alias name, e.g. team")
        edit.add_argument("addresses", nargs="+", metavar="ADDRESS", help="member address")
        edit.add_argument("-y", "--yes", action="store_true", help="apply without asking")
        edit.set_defaults(func=cmd_aliases_edit)

    remove = aliases.add_parser(
        "remove", parents=[env], help="remove members from an alias, or the whole alias when none are given"
    )
    remove.add_argument("alias", help="alias name, e.g. team")
    remove.add_argument("addresses", nargs="*", metavar="ADDRESS", help="member to remove (default: the alias)")
    remove.add_argument("-y", "--yes", action="store_true", help="apply without asking")
    remove.set_defaults(func=cmd_aliases_edit)

    importing = aliases.add_parser(
        "import",
        parents=[env],
        help="make the aliases match a TOML/YAML file (GitOps)",
        description='Write the alias lists of a file: TOML `[aliases] team = ["a@x.org"]` or YAML '
        "`aliases: {team: [a@x.org]}`, chosen by the file extension.",
    )
    importing.add_argument("file", type=Path, help="aliases.toml, aliases.yaml or aliases.json")
    importing.add_argument("--prune", action="store_true", help="also delete the aliases the file does not list")
    importing.add_argument("-y", "--yes", action="store_true", help="apply without asking")
    importing.set_defaults(func=cmd_aliases_edit)

    export = aliases.add_parser("export", parents=[env], help="write the aliases to a TOML/YAML file or stdout")
    export.add_argument("file", type=Path, nargs="?", help="file to write (.toml, .yaml, .json); default: stdout")
    export.add_argument("--format", choices=["toml", "yaml", "json"], default="toml", help="format on stdout")
    export.add_argument("--json", action="store_true", help="JSON on stdout (same as --format json)")
    export.set_defaults(func=cmd_aliases_export)


def _add_doctor(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor",
        parents=[_environment_options()],
        help="check a deployed environment: SES identity, DNS, receipt rule, sandbox, aliases, failure queue",
        description="Check that an environment can receive and forward mail; prints a table of checks "
        "(✓ fine, ✗ broken, with the fix, ! worth a look). Exit code 1 when a check fails.",
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=cmd_doctor)


def _add_smtp(commands: Any) -> None:
    smtp = commands.add_parser(
        "smtp",
        help="a local SMTP server that forwards through the real handler (local-dev loop)",
        description="Accept mail for the domain on a local port, store it as SES would, run the real handler "
        "against the embedded AWS emulator and write the forwarded mail to the outbox.",
    )
    smtp.add_argument("--port", type=_port, default=2525, help="port to listen on (default: 2525; 0 = any free)")
    smtp.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    smtp.add_argument("--domain", help="accept mail for this domain (default: events/manifest.toml's)")
    smtp.add_argument("--config-env", metavar="ENV", help="take the domain from this samconfig environment")
    smtp.add_argument("--config-file", type=Path, metavar="PATH", help="samconfig file (default: samconfig.toml)")
    smtp.add_argument("--aliases", type=Path, help="alias lists, TOML or YAML (default: events/aliases.toml)")
    smtp.add_argument("--events", type=Path, default=Path("events"), help=argparse.SUPPRESS)
    smtp.add_argument("--outbox", type=Path, default=Path("outbox"), help="where forwarded mail is written")
    smtp.add_argument("-v", "--verbose", action="store_true", help="also print the handler's JSON logs and metrics")
    smtp.set_defaults(func=cmd_smtp)


def _add_redrive(commands: Any) -> None:
    redrive = commands.add_parser(
        "redrive",
        parents=[_environment_options(alias_path=False)],
        help="replay the events parked in the failure queue through the deployed function",
        description="Read the on-failure queue (the stack's FailureQueueUrl), invoke the function again with "
        "each parked SES event, delete what succeeded and keep (and report) what did not. The function's "
        "idempotency makes a replay of an already forwarded mail send nothing twice.",
    )
    redrive.add_argument("--max", type=_count, metavar="N", help="replay at most N events")
    redrive.add_argument("--dry-run", action="store_true", help="show what is parked; replay and delete nothing")
    redrive.add_argument("--queue-url", help="the failure queue (default: the stack's FailureQueueUrl)")
    redrive.add_argument("--function", help="function name or ARN (default: the stack's FunctionArn)")
    redrive.add_argument("--json", action="store_true", help="machine-readable output")
    redrive.set_defaults(func=cmd_redrive)


def _add_links(commands: Any) -> None:
    from forwarder_ops.linkkeys import add_parser

    add_parser(commands, _environment_options(alias_path=False), _target)


def _add_send_as(commands: Any) -> None:
    from forwarder_ops.sendas import add_parser

    add_parser(commands, _environment_options(), _target)


def _add_trace(commands: Any) -> None:
    from forwarder_ops.trace import add_parser

    add_parser(commands, _environment_options(alias_path=False))


def _add_suppression(commands: Any) -> None:
    from forwarder_ops.suppression import add_parser

    add_parser(commands, _environment_options())


def _add_inspect(commands: Any) -> None:
    from forwarder_ops.inspect import add_parser

    add_parser(commands, _environment_options(alias_path=False))


def _add_preflight(commands: Any) -> None:
    from forwarder_ops import preflight

    preflight.add_parser(commands, _environment_options(alias_path=False))


def _add_adopt(commands: Any) -> None:
    """`forwarder adopt` and `forwarder init`: write an environment's samconfig parameters from the account."""
    from forwarder_ops import adopt

    adopt.add_parsers(commands, _environment_options(alias_path=False))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except CommandError as error:
        return _refused(str(error))
    except OSError as error:  # a file named on the command line that cannot be read or written
        if error.filename is None:
            raise
        return _refused(f"{error.filename}: {error.strerror or error}")
    except Exception as error:
        from forwarder_ops.errors import describe_aws_error

        message = describe_aws_error(error)
        if message is None:
            raise
        return _refused(message)


def _refused(message: str) -> int:
    """The command could not run: one line on stderr, exit code 2. The message may echo the bad input or what AWS
    said of it: its control characters are shown as escapes, so that it stays one line and cannot drive the
    terminal."""
    print(f"forwarder: {printable(message)}", file=sys.stderr)
    return USAGE


if __name__ == "__main__":
    sys.exit(main())
