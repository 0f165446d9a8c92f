"""`forwarder adopt` and `forwarder init`: the parameters that let the stack use what the account already holds.

`plan_overrides` turns the survey's facts into parameter changes: the zone ids looked up by name, `existing`
for the identity and each record group that someone made by hand, joining the active rule set, a reserved
concurrency the account can afford. `adopt` writes them into an environment of samconfig.toml, `init` writes
a new environment; both show the diff and ask first. Nothing in AWS is changed.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from forwarder_ops.doctor import RECEIVING_REGIONS
from forwarder_ops.envconfig import DEFAULT_CONFIG_FILE, STACK_NAME, Target, resolve_target
from forwarder_ops.errors import CommandError, read_text
from forwarder_ops.parameters import CONSTRAINTS
from forwarder_ops.preflight import (
    SYMBOLS,
    Finding,
    Severity,
    blocking,
    evaluate,
    record_zone,
    renames_own_rule_set,
    settings_for,
    stack_writes,
)
from forwarder_ops.samconfig_edit import add_environment, diff, set_overrides, write
from forwarder_ops.survey import (
    RESERVING_FUNCTIONS,
    Facts,
    Settings,
    affordable_reservations,
    fqdn,
    survey,
    zone_id,
)

# Checked with fullmatch: `$` also matches before a final newline, which would reach samconfig.toml.
ENVIRONMENT_NAME = re.compile(str(CONSTRAINTS["EnvironmentName"].pattern))  # template.yaml's patterns
DOMAIN_NAME = re.compile(str(CONSTRAINTS["DomainName"].pattern))
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class _Plan:
    """Collects changes against the current settings: only what differs is written."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.changes: dict[str, str | None] = {}

    def put(self, key: str, value: str) -> None:
        current = self.current(key)
        if value == current:
            self.changes.pop(key, None)
            return
        # Written out even when it is the template's default: the item (and the comment above it) may say otherwise.
        self.changes[key] = value

    def current(self, key: str) -> str:
        return self.settings.with_changes(self.changes)[key]

    @property
    def result(self) -> Settings:
        return self.settings.with_changes(self.changes)


def plan_overrides(settings: Settings, facts: Facts, alarm_email: str | None = None) -> dict[str, str | None]:
    """The parameter changes that make the stack use what exists instead of creating it (None = remove).

    What a failed read (`facts.errors`) would decide is left as it is: an empty answer is not an empty account.
    """
    if "stack" in facts.errors:
        # Without the stack's resources, what it made looks hand-made, and `existing` would delete it.
        raise CommandError(
            f"could not read the stack {settings.stack_name} ({facts.errors['stack']}): adopt must know what the "
            "stack made, or it takes that for hand-made; nothing written"
        )
    plan = _Plan(settings)
    domain = settings.domain
    if "hosted zone" not in facts.errors:
        _plan_zones(plan, facts, domain)
    if "SES identity" not in facts.errors:
        _plan_identity(plan, facts, domain)
    if "hosted zone" not in facts.errors:
        _plan_records(plan, facts, domain)
    if "rule set" not in facts.errors:
        _plan_rule_set(plan, facts)
    if "concurrency" not in facts.errors:
        _plan_concurrency(plan, facts)
    if alarm_email:
        plan.put("AlarmEmail", alarm_email)
    return dict(plan.changes)


def _plan_identity(plan: _Plan, facts: Facts, domain: str) -> None:
    identity = facts.identity
    if identity is not None and not facts.owns("AWS::SES::EmailIdentity", domain):
        plan.put("EmailIdentityMode", "existing")
        mail_from = fqdn((identity.get("MailFromAttributes") or {}).get("MailFromDomain", ""))
        label = mail_from.removesuffix("." + domain)
        if mail_from.endswith("." + domain) and label and "." not in label:
            plan.put("MailFromSubdomain", label)
    else:
        plan.put("EmailIdentityMode", "create")


def _plan_records(plan: _Plan, facts: Facts, domain: str) -> None:
    zone = record_zone(plan.result, facts)
    mail_from_name = plan.result.mail_from
    groups = {
        "MxRecordMode": [(domain, "MX")],
        "MailFromRecordsMode": [(mail_from_name, "MX"), (mail_from_name, "TXT")],
        "DmarcRecordMode": [(f"_dmarc.{domain}", "TXT")],
    }
    for key, records in groups.items():
        exists = zone is not None and any(facts.record(zone, name, kind) for name, kind in records)
        if key == "DmarcRecordMode" and zone is not None:
            exists = exists or bool(facts.cname(zone, f"_dmarc.{domain}"))  # the policy through a DMARC service
        plan.put(key, "existing" if exists and not stack_writes(facts, key) else "create")


def _plan_zones(plan: _Plan, facts: Facts, domain: str) -> None:
    if facts.owns("AWS::Route53::HostedZone"):
        return  # the stack made the zone: keep what created it
    wanted = plan.current("HostedZoneId").strip()
    current = facts.zones.get(wanted) if wanted else None
    usable = current is not None and current.name == domain and not current.private
    # A zone of the right name that the parent does not delegate to, while it delegates to another one of the
    # same name (made twice by hand): the records would go where nobody looks.
    usable = usable and facts.delegated_zone(domain) in (None, current)
    # No zone of the domain, but its records in the parent zone: the stack writes its own beside them there
    # (a zone of its own, delegated, would hide them; undelegated, nobody would see it).
    # The parent zone holding the records wins over a zone of the domain it does not delegate to (seen by nobody).
    usable = usable and facts.holding_zone(domain) is None
    existing = current if usable else facts.holding_zone(domain) or facts.zone_named(domain)
    if existing is not None and existing is not current and (outside := facts.delegated_outside(domain)):
        # Found by name, but the parent delegates the domain to other name servers: records written into this zone
        # are seen by nobody (DKIM never verifies, the MX receives nothing) until someone moves the delegation.
        raise CommandError(
            f"zone {existing.id} ({domain}) is not the one the internet sees: the parent zone delegates {domain} to "
            f"{', '.join(outside)}, outside this account. To use it anyway, name it (--hosted-zone-id {existing.id}) "
            "and move the delegation once it holds what those name servers serve (`forwarder preflight` gives the "
            "command); nothing written"
        )
    if existing is not None:
        plan.put("HostedZoneId", existing.id)
        plan.put("ParentHostedZoneId", "")
        return
    plan.put("HostedZoneId", "")
    parent = facts.parent_zone(domain)
    plan.put("ParentHostedZoneId", parent.id if parent else "")


def _plan_rule_set(plan: _Plan, facts: Facts) -> None:
    mode, name, active = plan.current("ReceiptRuleSetMode"), plan.current("ReceiptRuleSetName"), facts.active_rule_set
    if active and active != name and not renames_own_rule_set(plan.result, facts):
        # Another set receives in this region: add the rule to it rather than switch it off.
        plan.put("ReceiptRuleSetMode", "join-existing")
        plan.put("ReceiptRuleSetName", active)
    elif mode == "join-existing" and facts.rule_sets.get(name) is None and not active:
        plan.put("ReceiptRuleSetMode", "create-and-activate")


def _plan_concurrency(plan: _Plan, facts: Facts) -> None:
    texts = [plan.current(key).strip() for key in RESERVING_FUNCTIONS.values()]
    if not all(text.isdigit() for text in texts):
        return
    fits = affordable_reservations(facts, *(int(text) for text in texts))
    if fits is None:
        return
    for key, text, value in zip(RESERVING_FUNCTIONS.values(), texts, fits, strict=True):
        if value < int(text):
            plan.put(key, str(value))


# output -----------------------------------------------------------------------------------------------


def _remaining(rows: list[Finding]) -> list[str]:
    """What adopt could not settle: the preflight findings left with the new parameters."""
    lines = []
    for row in sorted((r for r in rows if r.severity != Severity.OK), key=lambda r: r.severity != Severity.ERROR):
        lines.append(f"{SYMBOLS[row.severity]} {row.check}: {row.resource}: {row.problem}")
        lines += [f"    {'fix: ' if n == 0 else '     '}{line}" for n, line in enumerate(row.fix.splitlines())]
    return lines


def _write(path: Path, before: str, after: str, question: str, assume_yes: bool) -> bool:
    """Show the diff, ask, write; False when the operator said no."""
    from forwarder_ops.console import Declined, confirm

    print(diff(before, after, path), end="")
    try:
        confirm(question, assume_yes=assume_yes)
    except Declined:
        print("nothing written")
        return False
    write(path, after)
    return True


def _finish(path: Path, environment: str, rows: list[Finding], wrote: bool = True) -> int:
    left = _remaining(rows)
    if left:
        print(f"\nleft for a person (`forwarder preflight --config-env {environment}` shows them again):")
        print("\n".join(left))
    if blocking(rows):
        print(f"\n{path}: {'written, but ' if wrote else ''}the ✗ findings above still stop a deploy")
        return 1
    print(f"\nready: `make deploy ENV={environment}` creates only what is missing")
    return 0


# adopt --------------------------------------------------------------------------------------------------


def cmd_adopt(args: argparse.Namespace) -> int:
    if not args.config_env:
        raise CommandError("give the environment to adopt into: --config-env ENV (an environment of samconfig.toml)")
    if args.alarm_email and not EMAIL.fullmatch(args.alarm_email):
        raise CommandError(f"--alarm-email {args.alarm_email!r} is not an e-mail address")
    path = args.config_file or DEFAULT_CONFIG_FILE
    target = resolve_target(
        args.config_env, path, region=args.region, stack_name=args.stack_name, domain=args.domain, profile=args.profile
    )
    settings = settings_for(target)
    if args.hosted_zone_id:  # the operator's choice of zone, even one that is not delegated to (yet)
        settings = settings.with_changes({"HostedZoneId": zone_id(args.hosted_zone_id.strip())})
    facts = survey(target, settings)
    if args.hosted_zone_id:
        _check_chosen_zone(settings, facts)
    changes = plan_overrides(settings, facts, args.alarm_email)
    # --domain, --hosted-zone-id: the parameters above follow them, and sam deploy reads them from the file too;
    # so does a DomainName the template refuses as written (upper case, a trailing dot): its normal form goes in
    given = {
        "DomainName": target.parameters.get("DomainName", ""),
        "HostedZoneId": target.parameters.get("HostedZoneId", "").strip(),
    }
    changes = {**{key: settings[key] for key, value in given.items() if settings[key] != value}, **changes}
    after_settings = settings.with_changes(changes)
    rows = evaluate(after_settings, facts)
    if not changes:
        print(f"nothing to adopt: the parameters of {args.config_env} in {path} already match the account")
        return _finish(path, args.config_env, rows, wrote=False)
    before = path.read_text()
    after = set_overrides(before, path, args.config_env, changes)
    if not _write(path, before, after, f"write these parameters to {path}?", args.yes):
        return 1
    print(f"wrote {len(changes)} parameter change(s) to [{args.config_env}] of {path}")
    return _finish(path, args.config_env, rows)


def _check_chosen_zone(settings: Settings, facts: Facts) -> None:
    """--hosted-zone-id must name a public zone of this account that can hold the domain's records."""
    wanted = settings["HostedZoneId"]
    zone = facts.zones.get(wanted)
    if "hosted zone" not in facts.errors and (zone is None or not facts.serves(zone, settings.domain)):
        what = "no hosted zone of this account" if zone is None else f"the {'private ' * zone.private}zone {zone.name}"
        raise CommandError(
            f"--hosted-zone-id {wanted} is {what}, not a public zone of {settings.domain} (or of a parent that holds "
            "its records); nothing written"
        )


# init ---------------------------------------------------------------------------------------------------


def _ascii(domain: str) -> str:
    """For an internationalised domain name, the hint to give its ASCII form (DNS, SES and the template take that)."""
    try:
        ascii_form = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return ""
    return f": give its ASCII form, {ascii_form}" if ascii_form != domain and DOMAIN_NAME.fullmatch(ascii_form) else ""


def cmd_init(args: argparse.Namespace) -> int:
    environment, domain, region = args.config_env, fqdn(args.domain or ""), args.region
    if not environment or not ENVIRONMENT_NAME.fullmatch(environment):
        raise CommandError("give the new environment's name: --config-env NAME (2-20 of a-z, 0-9, '-')")
    if not DOMAIN_NAME.fullmatch(domain):
        raise CommandError(
            f"--domain {args.domain!r} is not a lower-case domain name such as dev.example.org{_ascii(domain)}"
        )
    if not region:
        raise CommandError("give the environment's region: --region REGION (one that receives mail)")
    if region not in RECEIVING_REGIONS:
        raise CommandError(
            f"SES does not receive mail in {region} as far as the template knows: choose one of "
            f"{', '.join(sorted(RECEIVING_REGIONS))}"
        )
    if args.alarm_email and not EMAIL.fullmatch(args.alarm_email):
        raise CommandError(f"--alarm-email {args.alarm_email!r} is not an e-mail address")
    path = args.config_file or DEFAULT_CONFIG_FILE
    before = read_text(path) if path.is_file() else ""
    if before.strip():
        _refuse_existing(before, path, environment)
    stack_name = args.stack_name or f"email-forwarder-{environment}"
    if not STACK_NAME.fullmatch(stack_name):
        raise CommandError(
            f"--stack-name {stack_name!r} is not a CloudFormation stack name (a letter, then letters, digits, '-')"
        )
    parameters: dict[str, str] = {"EnvironmentName": environment, "DomainName": domain}
    if environment != "prod":
        parameters["SubjectPrefix"] = f"[{environment}]"
    if args.hosted_zone_id:
        parameters["HostedZoneId"] = zone_id(args.hosted_zone_id.strip())
    target = Target(name=environment, region=region, stack_name=stack_name, profile=args.profile)
    settings = Settings.of(parameters, stack_name, region, environment)
    facts = survey(target, settings)
    if args.hosted_zone_id:
        _check_chosen_zone(settings, facts)
    changes = plan_overrides(settings, facts, args.alarm_email)
    after_settings = settings.with_changes(changes)
    overrides = [f"{k}={v}" for k, v in {**parameters, **changes}.items() if v is not None]
    after = add_environment(
        before,
        path,
        environment,
        stack_name=stack_name,
        region=region,
        overrides=overrides,
        confirm_changeset=environment == "prod",
        comment=f"--- {environment}: {domain} in {region} (written by `forwarder init`; review before deploying)",
    )
    if not _write(path, before, after, f"add environment {environment} to {path}?", args.yes):
        return 1
    print(f"added [{environment}] to {path}")
    return _finish(path, environment, evaluate(after_settings, facts))


def _refuse_existing(text: str, path: Path, environment: str) -> None:
    """Before reading the account: init never overwrites an environment."""
    import tomllib

    try:
        known = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CommandError(f"{path} is not valid TOML: {error}") from None
    if environment in known:
        raise CommandError(
            f"environment {environment!r} already exists in {path}: `forwarder adopt --config-env {environment}` "
            "updates it"
        )


# parsers -----------------------------------------------------------------------------------------------


def add_parsers(commands: Any, environment: argparse.ArgumentParser) -> None:
    adopt = commands.add_parser(
        "adopt",
        parents=[environment],
        help="write the parameters that make the stack use what the account already holds",
        description="Read the account like `forwarder preflight` and write into the environment's "
        "parameter_overrides (samconfig.toml): the zone ids looked up by name, `existing` for the identity "
        "and each record group made by hand, the active rule set to join, an affordable ReservedConcurrency. "
        "Shows the diff and asks first; changes nothing in AWS.",
    )
    adopt.add_argument("--alarm-email", metavar="ADDRESS", help="also set AlarmEmail (required for prod)")
    _add_zone_choice(adopt)
    adopt.add_argument("-y", "--yes", action="store_true", help="write without asking")
    adopt.set_defaults(func=cmd_adopt)

    init = commands.add_parser(
        "init",
        help="add a new environment to samconfig.toml from what the account holds",
        description="Write a new environment section (stack, region, parameter_overrides) for a domain: "
        "zone ids looked up by name (the domain's zone, else the parent zone to delegate from), and what "
        "`forwarder adopt` would set. Shows the diff and asks first; changes nothing in AWS.",
    )
    init.add_argument("--config-env", required=True, metavar="ENV", help="name of the new environment, e.g. dev")
    init.add_argument("--domain", required=True, help="the environment's mail domain, e.g. dev.example.org")
    init.add_argument("--region", required=True, help="AWS region that receives mail, e.g. us-east-1")
    init.add_argument("--alarm-email", metavar="ADDRESS", help="where the alarms go (required for prod)")
    _add_zone_choice(init)
    init.add_argument("--stack-name", metavar="NAME", help="default: email-forwarder-<ENV>")
    init.add_argument("--config-file", type=Path, metavar="PATH", help="samconfig file (default: samconfig.toml)")
    init.add_argument("--profile", help="AWS CLI profile (default: AWS_PROFILE)")
    init.add_argument("-y", "--yes", action="store_true", help="write without asking")
    init.set_defaults(func=cmd_init)


def _add_zone_choice(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hosted-zone-id",
        metavar="ZONE",
        help="the zone to write the records into (HostedZoneId), chosen by you: needed when the parent zone "
        "delegates the domain outside this account",
    )
