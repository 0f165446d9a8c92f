"""`forwarder preflight`: everything that would make a deploy of an environment fail, or do harm, found first.

CloudFormation finds a collision only when it reaches the resource, ten minutes into a deploy, and then rolls
everything back. Here the account is read once (`survey`), and `evaluate` compares it with what the template
would create for the environment's parameters. Each finding names the resource, what would go wrong and the
fix: a parameter (which `forwarder adopt` writes) or a command. Errors stop `make deploy`; warnings do not
(they need a person, e.g. disabling the team's earlier receipt rule once the new one works).
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from forwarder_ops.doctor import RECEIVING_REGIONS
from forwarder_ops.envconfig import Target, resolve_target
from forwarder_ops.errors import CommandError
from forwarder_ops.parameters import CONSTRAINTS, refused
from forwarder_ops.survey import (
    LAMBDA_UNRESERVED_MINIMUM,
    MODE_PARAMETERS,
    RESERVING_FUNCTIONS,
    Facts,
    Settings,
    affordable_reservations,
    covers,
    fqdn,
    parents,
    survey,
    takes_all_of,
    zone_id,
)

# The template's logical ids: a stack's resource whose id starts with one (SAM derives ForwarderFunctionRole and the
# like from them; older versions of the template had ReceiptRuleSet) was made from this template.
TEMPLATE_RESOURCES = (
    "HostedZone",
    "ParentDelegation",
    "DkimRecords",
    "InboundMxRecord",
    "MailFromRecords",
    "DmarcRecord",
    "EmailIdentity",
    "ConfigurationSet",
    "SesEventsTopic",
    "SesEventsTopicPolicy",
    "ConfigurationSetCloudWatchEvents",
    "ConfigurationSetSnsEvents",
    "MailBucket",
    "MailBucketPolicy",
    "ForwarderSesPermission",
    "SharedReceiptRuleSet",
    "ReceiptRule",
    "RuleSetActivationFunction",
    "RuleSetActivationLogGroup",
    "DependenciesLayer",
    "ForwarderFunction",
    "ForwarderLogGroup",
    "FailureQueue",
    "FailureQueuePolicy",
    "IdempotencyTable",
    "ReplyTable",
    "TraceTable",
    "DeliveryFunction",
    "DeliveryLogGroup",
    "DeliveryErrorsAlarm",
    "LinkSecret",
    "DownloadFunction",
    "DownloadFunctionUrl",
    "DownloadFunctionUrlPermission",
    "DownloadFunctionInvokePermission",
    "DownloadLogGroup",
    "AlarmTopic",
    "AlarmTopicPolicy",
    "AlarmEmailSubscription",
    "ForwarderErrorsAlarm",
    "ForwarderThrottlesAlarm",
    "DownloadErrorsAlarm",
    "DownloadThrottlesAlarm",
    "FailureQueueAlarm",
    "BounceRateAlarm",
    "ComplaintRateAlarm",
)
# The stable states that take an update (a failed import rolls back to the stack as it was, resources and all).
_READY = {
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
}
SPF = "v=spf1 include:amazonses.com ~all"
# SES's quota of receipt rules in one rule set (not adjustable): CreateReceiptRule refuses one more with LimitExceeded.
RULES_PER_SET = 200
# The longest string in a TXT value (RFC 1035's character-string); a longer record is split into several strings.
TXT_STRING_MAX = 255
# The longest name SES takes for a configuration set or a receipt rule (the stack names both after itself).
SES_NAME_MAX = 64


class Severity(StrEnum):
    ERROR = "error"  # the deploy would fail, or leave the domain unable to receive or send
    WARNING = "warning"  # the deploy works, but a person must act (or look)
    OK = "ok"


SYMBOLS = {Severity.ERROR: "✗", Severity.WARNING: "!", Severity.OK: "✓"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One row: the check, the resource it is about, what is wrong (or found), and the fix."""

    check: str
    resource: str
    problem: str
    fix: str = ""
    severity: Severity = Severity.ERROR

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


def ok(check: str, resource: str, detail: str) -> Finding:
    return Finding(check, resource, detail, "", Severity.OK)


def warn(check: str, resource: str, problem: str, fix: str) -> Finding:
    return Finding(check, resource, problem, fix, Severity.WARNING)


def _upsert(zone: str, record_sets: list[dict[str, Any]]) -> str:
    """The AWS CLI command that writes these record sets of one zone (the exact values to type)."""
    change = {"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record_set} for record_set in record_sets]}
    # Quoted for the shell: a record's value may hold a quote (or anything else a zone's editor typed).
    batch = shlex.quote(json.dumps(change))
    return f"aws route53 change-resource-record-sets --hosted-zone-id {zone} --change-batch {batch}"


def _preferred(mx: list[str]) -> set[str]:
    """The hosts of the lowest preference among MX values ("10 host."): where senders deliver first."""
    parsed = [(int(v.split()[0]) if v.split()[0].isdigit() else 65535, fqdn(v.split()[-1])) for v in mx if v.split()]
    top = min((preference for preference, _ in parsed), default=0)
    return {host for preference, host in parsed if preference == top}


_DMARC_STRICTNESS = {"none": 0, "quarantine": 1, "reject": 2}


def _txt_text(value: str) -> str:
    """A TXT value as DNS clients read it: its quoted strings joined without a separator (`"a" "b"` -> `ab`)."""
    return "".join(value.split('"')[1::2]) if value.startswith('"') else value


def _dmarc_tags(txt: list[str]) -> dict[str, str]:
    """The tags of the DMARC record among TXT values (each value's quoted strings joined), lower case."""
    for value in txt:
        record = "".join(part for part in value.split('"') if part.strip()).strip()
        if record.lower().startswith("v=dmarc1"):
            pairs = (item.split("=", 1) for item in record.split(";") if "=" in item)
            return {k.strip().lower(): v.strip().lower() for k, v in pairs}
    return {}


def with_amazonses(txt: list[str]) -> list[str]:
    """The TXT values of a MAIL FROM domain with amazonses.com in its SPF: an UPSERT replaces the whole record set,
    so every other value stays, and an SPF record that exists gets the include (a second `v=spf1` record would
    make SPF fail with a permerror)."""
    values, found = [], False
    include = " include:amazonses.com"
    for value in txt:
        if not found and value.lstrip('"').lower().startswith("v=spf1"):
            found = True
            start = value.lower().index("v=spf1") + len("v=spf1")
            # Route 53 refuses a string of more than 255 characters in a TXT value: when the include would make the
            # first one longer, it goes into a string of its own (DNS joins a value's strings without a separator).
            first = value.split('"')[1] if value.startswith('"') else ""
            if len(first) + len(include) > TXT_STRING_MAX:
                include = f'" "{include}" "'
            value = f"{value[:start]}{include}{value[start:]}"
        values.append(value)
    return values if found else [*values, f'"{SPF}"']


def dkim_records(domain: str, dkim: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The records an identity's DKIM needs as (name, type, value): Easy DKIM's CNAMEs to amazonses.com, or for
    Bring Your Own DKIM (origin EXTERNAL, SES answers the selector as the one token) the public key's TXT."""
    tokens = [str(t) for t in dkim.get("Tokens") or []]
    if dkim.get("SigningAttributesOrigin") == "EXTERNAL":
        return [
            (f"{t}._domainkey.{domain}", "TXT", '"v=DKIM1; k=rsa; p=<the public key of your key pair>"') for t in tokens
        ]
    return [(f"{t}._domainkey.{domain}", "CNAME", f"{t}.dkim.amazonses.com") for t in tokens]


# Zone ids are judged by what the account answers for them (check_zone), not by their shape, but for the form the
# Route 53 API answers them in (`/hostedzone/Z...`): it names the zone, and the template refuses it.
_ZONE_IDS = {"HostedZoneId", "ParentHostedZoneId"}


def _parameter_fix(key: str, value: str | None) -> str:
    """The value the template takes for what was meant (the domain in lower case, ASCII and without a trailing dot;
    a zone's bare id), else where to change it."""
    candidate = None
    if key == "DomainName" and value:
        try:
            candidate = fqdn(value).encode("idna").decode("ascii")
        except UnicodeError:
            candidate = None
    elif key in _ZONE_IDS and value:
        candidate = zone_id(value.strip())
    if candidate and candidate != value and CONSTRAINTS[key].problem(candidate) is None:
        return f"{key}={candidate} in the environment's parameter_overrides (samconfig.toml)"
    return f"give {key} a value the template takes, in the environment's parameter_overrides (samconfig.toml)"


class Evaluation:
    """The checks of one environment against the facts; `findings` in the order a person fixes them."""

    def __init__(self, settings: Settings, facts: Facts) -> None:
        self.s = settings
        self.f = facts
        self.rows: list[Finding] = []
        self.region = settings.region
        self.domain = settings.domain

    def run(self) -> list[Finding]:
        self.rows.append(ok("credentials", self.f.account, f"account {self.f.account} as {self.f.caller}"))
        # Each check with the reads (survey steps) it judges: when one of them failed, the facts are empty or
        # partial, and the check would pass (or fail) on nothing; its only row is then "could not check".
        for step, reads in (
            (self.check_region, ()),
            (self.check_stack, ("stack",)),
            (self.check_parameters, ()),
            (self.check_zone, ("hosted zone",)),
            (self.check_identity, ("SES identity",)),
            (self.check_records, ("hosted zone",)),
            (self.check_rule_set, ("rule set",)),
            (self.check_concurrency, ("concurrency",)),
            (self.check_sending, ("sending",)),
            (self.check_named_resources, ()),
            (self.check_mode_switches, ("stack",)),
        ):
            if not any(read in self.f.errors for read in reads):
                step()
        for check, error in self.f.errors.items():
            fix = (
                "give the deploying identity read access (docs/operations.md lists preflight's reads)"
                if error.startswith("AccessDenied")
                else "run preflight again (AWS refused this read: throttling or a passing fault)"
            )
            self.rows.append(warn(check, "-", f"could not check: {error}", fix))
        return self.rows

    def add(self, finding: Finding) -> None:
        self.rows.append(finding)

    def _upsert(
        self, zone: str, name: str, record_type: str, values: Callable[[list[str]], list[str]], ttl: int = 300
    ) -> str:
        """The command that writes `values(what the record set holds)` as the record set `name` `record_type`.

        Record sets that answer by a routing policy (weighted, latency, geolocation, failover, multivalue, ...) are
        written each with its SetIdentifier, routing fields and TTL, from its own values: Route 53 refuses a
        simple record set beside them, and a change naming another identifier would touch another set.
        """

        def record_set(routing: Mapping[str, Any], current: list[str]) -> dict[str, Any]:
            entries = [{"Value": value} for value in values(current)]
            return {"Name": name, "Type": record_type, "TTL": ttl, **routing, "ResourceRecords": entries}

        routed = self.f.routed(zone, name, record_type)
        sets = [record_set(r.routing, list(r.values)) for r in routed]
        sets = sets or [record_set({}, self.f.record(zone, name, record_type) or [])]
        return _upsert(zone, sets)

    # region, stack, parameters ----------------------------------------------------------------------

    def check_region(self) -> None:
        if self.region in RECEIVING_REGIONS:
            self.add(ok("region", self.region, f"receives mail (inbound-smtp.{self.region}.amazonaws.com)"))
            return
        self.add(
            Finding(
                "region",
                self.region,
                "SES does not receive mail in this region as far as this tool and the template's ReceivingRegion "
                "rule know: CloudFormation refuses the deploy",
                "set `region` of the environment to a receiving region (see docs/infrastructure.md, Regions)",
            )
        )

    def check_stack(self) -> None:
        name, status = self.s.stack_name, self.f.stack_status
        events = f"`aws cloudformation describe-stack-events --stack-name {name} --region {self.region}`"
        if self.f.logical and not any(logical.startswith(TEMPLATE_RESOURCES) for logical in self.f.logical):
            # Another template's stack of this name (an earlier forwarder, another project): the deploy would update it
            # into this one, and CloudFormation deletes each of its resources this template lacks.
            held = ", ".join(sorted(self.f.logical)[:5]) + (", ..." if len(self.f.logical) > 5 else "")
            self.add(
                Finding(
                    "stack",
                    name,
                    f"{status}: a stack of this name exists in {self.region} and none of its resources ({held}) is one "
                    "of this template's: it was deployed from another template. The deploy would update it into the "
                    "forwarder, and CloudFormation deletes every resource of it that this template lacks",
                    "give the environment a stack name of its own (`stack_name` of the environment in samconfig.toml); "
                    f"leave {name} as it is",
                )
            )
            return
        if status is None:
            self.add(ok("stack", name, f"does not exist yet in {self.region}: the deploy creates it"))
        elif status in _READY:
            self.add(ok("stack", name, f"{status}: the resources it owns are not collisions"))
        elif status == "REVIEW_IN_PROGRESS":
            # A first change set that nobody executed (e.g. declined at confirm_changeset): sam deploy makes a new one.
            self.add(ok("stack", name, "REVIEW_IN_PROGRESS: a change set was never executed; the deploy replaces it"))
        elif status.endswith("_IN_PROGRESS"):
            self.add(Finding("stack", name, f"{status}: another operation is running", "wait for it to finish"))
        elif status == "UPDATE_ROLLBACK_FAILED":
            self.add(
                Finding(
                    "stack",
                    name,
                    f"{status}: the last update could not roll back; the stack takes no update until it does",
                    f"see why: {events}; fix the cause, then `aws cloudformation continue-update-rollback "
                    f"--stack-name {name} --region {self.region}`",
                )
            )
        elif status == "DELETE_FAILED":
            self.add(
                Finding(
                    "stack",
                    name,
                    f"{status}: a deletion stopped half way",
                    f"see why: {events}; then delete it again",
                )
            )
        elif status == "UPDATE_FAILED":
            # `sam deploy --disable-rollback`: the update stopped, every resource stays, and the stack takes the
            # next update (which resumes it). Deleting it would delete the environment with its mail.
            self.add(
                warn(
                    "stack",
                    name,
                    f"{status}: the last update stopped with rollback disabled; the stack keeps its resources",
                    f"see why: {events}; fix the cause and deploy again (the update resumes), or roll it back: "
                    f"`aws cloudformation rollback-stack --stack-name {name} --region {self.region}`",
                )
            )
        elif status in {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"}:
            held = (
                "it holds nothing: its creation rolled back"
                if status == "ROLLBACK_COMPLETE"
                else "it holds only what its own creation made"
            )
            self.add(
                Finding(
                    "stack",
                    name,
                    f"{status}: a stack whose creation failed cannot be updated, only deleted",
                    f"see why: {events}; "
                    f"then `aws cloudformation delete-stack --stack-name {name} --region {self.region}` ({held})",
                )
            )
        elif status.endswith("_FAILED"):
            # IMPORT_ROLLBACK_FAILED and whatever else fails: the stack may hold resources made by hand and imported,
            # which delete-stack would delete with it.
            self.add(
                Finding(
                    "stack",
                    name,
                    f"{status}: the stack takes no update in this state",
                    f"see why: {events}; resolve it before deploying. Do not delete the stack to get past it: it "
                    "holds the environment's resources (imported ones included) and deletes them with it",
                )
            )
        else:
            self.add(warn("stack", name, status, "see the stack's events before deploying"))

    def check_parameters(self) -> None:
        whole = {key for key in RESERVING_FUNCTIONS.values() if self.s[key].strip().isdigit()}
        for key, problem in refused(self.s.given).items():
            if key in RESERVING_FUNCTIONS.values() and key not in whole:
                continue  # said below
            if key in _ZONE_IDS and self.s.given.get(key) == zone_id(self.s.given.get(key, "").strip()):
                continue  # a bare id: check_zone asks the account whether it names a zone
            value = self.s.given.get(key)
            self.add(
                Finding(
                    "parameters",
                    key,
                    f"{key}={value!r} {problem}: CloudFormation refuses the deploy"
                    if value is not None
                    else f"{key} {problem}: CloudFormation refuses the deploy",
                    _parameter_fix(key, value),
                )
            )
        for key in RESERVING_FUNCTIONS.values():
            if key not in whole:
                self.add(Finding("parameters", key, f"{key} is not a whole number"))
        self._check_delegated_modes()
        if self.s.environment == "prod" and not self.s["AlarmEmail"]:
            self.add(
                Finding(
                    "alarm email",
                    "AlarmEmail",
                    "prod has no AlarmEmail: its alarms (errors, throttles, parked mail, bounce rate) notify nobody, "
                    "and the template refuses prod without it",
                    "AlarmEmail=<the team's address> (`forwarder adopt --config-env prod --alarm-email ADDRESS`)",
                )
            )
        elif self.s["AlarmEmail"]:
            self.add(ok("alarm email", "AlarmEmail", f"alarms go to {self.s['AlarmEmail']}"))

    def _check_delegated_modes(self) -> None:
        """The template's rule DelegatedZoneHoldsTheMailRecords: behind a zone the stack creates and delegates,
        nothing can be left to what exists (the delegation hides the parent zone's records of the domain)."""
        if self.s["HostedZoneId"].strip() or not self.s["ParentHostedZoneId"].strip():
            return
        existing = [key for key in MODE_PARAMETERS if self.s[key] == "existing"]
        if existing:
            self.add(
                Finding(
                    "parameters",
                    ", ".join(existing),
                    f"{', '.join(f'{key}=existing' for key in existing)} with a zone the stack creates and delegates "
                    "(HostedZoneId empty, ParentHostedZoneId set): what exists is not in the new zone, the delegation "
                    "hides it where it is, and the template refuses the deploy (rule DelegatedZoneHoldsTheMailRecords)",
                    f"create the zone of {self.domain} with those records and its NS delegation first, then "
                    "`forwarder adopt` (it sets HostedZoneId); or set them to create",
                )
            )

    # DNS ----------------------------------------------------------------------------------------------

    def _zone_fix(self) -> str:
        """What to set when HostedZoneId names no usable zone."""
        holding = self.f.holding_zone(self.domain)
        if holding:
            return (
                f"HostedZoneId={holding.id} (the zone of {holding.name}, which holds the records of {self.domain}), "
                "ParentHostedZoneId= (`forwarder adopt`)"
            )
        found = self.f.zone_named(self.domain)
        if found:
            return (
                f"HostedZoneId={found.id} (the zone of {self.domain}), ParentHostedZoneId= "
                f"({self._adopt_command(found.id)})"
            )
        parent = self.f.parent_zone(self.domain)
        delegate = f" and ParentHostedZoneId={parent.id}" if parent else ""
        return f"leave HostedZoneId empty (the stack creates the zone of {self.domain}){delegate} (`forwarder adopt`)"

    def record_zone(self) -> str | None:
        return record_zone(self.s, self.f)

    def _check_twins(self) -> None:
        """Two public zones of the domain's name, and no parent zone here to tell which one the internet sees."""
        zones = self.f.zones_named.get(self.domain, [])
        if len(zones) < 2 or self.f.delegated_zone(self.domain) is not None:
            return
        servers = "; ".join(
            f"{z.id}: {', '.join(sorted(fqdn(v) for v in self.f.record(z.id, self.domain, 'NS') or []))}" for z in zones
        )
        self.add(
            warn(
                "hosted zone",
                f"{self.domain} ({', '.join(z.id for z in zones)})",
                f"{len(zones)} public zones are named {self.domain}; only the one the registrar (or the parent DNS) "
                "delegates to is seen, and that is not known here",
                f"compare the domain's NS records at the registrar with each zone's name servers ({servers}), set "
                "HostedZoneId to that zone, and delete the other once it holds nothing needed",
            )
        )

    def _adopt_command(self, zone: str) -> str:
        """How `forwarder adopt` takes `zone`: by name, or named by the operator when the parent zone delegates the
        domain outside the account (adopt refuses to choose it then)."""
        outside = self.f.delegated_outside(self.domain)
        if not outside or self.f.holding_zone(self.domain):
            return "`forwarder adopt`"
        return (
            f"`forwarder adopt --hosted-zone-id {zone}` once you mean to move the delegation to it from "
            f"{', '.join(outside)}, outside this account"
        )

    def check_zone(self) -> None:
        self._check_twins()
        wanted, parent_id = self.s["HostedZoneId"].strip(), self.s["ParentHostedZoneId"].strip()
        if wanted and parent_id:
            self.add(
                Finding(
                    "hosted zone",
                    "ParentHostedZoneId",
                    "ParentHostedZoneId delegates a zone the stack creates, but HostedZoneId names an existing one: "
                    "the template refuses both",
                    "ParentHostedZoneId= (empty)",
                )
            )
        if wanted:
            self._check_existing_zone(wanted)
            return
        if self.f.owns("AWS::Route53::HostedZone"):
            self.add(ok("hosted zone", self.domain, "the stack's own zone"))
        elif existing := self.f.zone_named(self.domain):
            self.add(
                Finding(
                    "hosted zone",
                    f"{self.domain} (zone {existing.id})",
                    f"a public zone for {self.domain} already exists; with HostedZoneId empty the stack creates a "
                    "second zone of the same name that nobody delegates to (and its NS record in the parent zone "
                    "collides with the existing delegation)",
                    f"HostedZoneId={(self.f.holding_zone(self.domain) or existing).id} ParentHostedZoneId= (adopt the "
                    f"existing zone: {self._adopt_command(existing.id)})",
                )
            )
        else:
            self.add(ok("hosted zone", self.domain, "no zone yet: the stack creates it"))
        self._check_parent(parent_id)

    def _check_existing_zone(self, wanted: str) -> None:
        zone = self.f.zones.get(wanted)
        if zone is None:
            self.add(
                Finding(
                    "hosted zone",
                    f"HostedZoneId={wanted}",
                    "no such hosted zone in this account (a placeholder, or another account's zone): the record "
                    "sets fail minutes into the deploy",
                    self._zone_fix(),
                )
            )
        elif zone.name != self.domain and not (zone.name in parents(self.domain) and self.f.serves(zone, self.domain)):
            delegated = zone.name in parents(self.domain) and not zone.private
            self.add(
                Finding(
                    "hosted zone",
                    f"HostedZoneId={wanted}",
                    f"zone {wanted} is {zone.name}, which delegates {self.domain} to other name servers: records "
                    "written there are seen by nobody"
                    if delegated
                    else f"zone {wanted} is {zone.name}, not {self.domain}: the records would land in the wrong zone",
                    self._zone_fix(),
                )
            )
        elif zone.private:
            self.add(
                Finding(
                    "hosted zone",
                    f"HostedZoneId={wanted}",
                    "a private zone: mail servers on the internet never see its records",
                    self._zone_fix(),
                )
            )
        elif zone.name != self.domain:
            self.add(
                ok(
                    "hosted zone",
                    f"HostedZoneId={wanted}",
                    f"the zone of {zone.name}, which holds the records of {self.domain} (no zone of its own): the "
                    "stack writes its records there",
                )
            )
        else:
            self.add(ok("hosted zone", f"HostedZoneId={wanted}", f"the existing zone of {self.domain}"))
            self._check_delegated(zone.id)

    def _check_delegated(self, zone: str) -> None:
        """An adopted subdomain zone is only seen if the parent delegates to it (checked when the parent is here)."""
        parent = self.f.parent_zone(self.domain)
        servers = {fqdn(v) for v in self.f.record(zone, self.domain, "NS") or []}
        if parent is None or not servers:
            return
        delegated = {fqdn(v) for v in self.f.record(parent.id, self.domain, "NS") or []}
        if delegated == servers:
            self.add(ok("NS delegation", f"{self.domain} NS in {parent.name}", "delegates to the adopted zone"))
            return
        holding = self.f.holding_zone(self.domain)
        if holding is not None:
            self.add(
                Finding(
                    "NS delegation",
                    f"{self.domain} in {parent.name} ({parent.id})",
                    f"the parent zone {parent.name} does not delegate {self.domain} and holds its records itself: "
                    f"those are the ones seen, and the records in zone {zone} are seen by nobody (delegating to it "
                    "would hide the live ones)",
                    f"HostedZoneId={holding.id} (`forwarder adopt`): the stack writes its records beside them",
                )
            )
            return
        twin = self.f.delegated_zone(self.domain)
        if twin is not None and twin.id != zone:
            self.add(
                Finding(
                    "NS delegation",
                    f"{self.domain} NS in {parent.name} ({parent.id})",
                    f"the parent zone {parent.name} delegates {self.domain} to zone {twin.id}, another public zone of "
                    f"the same name: the records in zone {zone} are seen by nobody",
                    f"HostedZoneId={twin.id} (`forwarder adopt`)",
                )
            )
            return
        problem = (
            f"the parent zone {parent.name} delegates {self.domain} to {', '.join(sorted(delegated))}, "
            f"not to zone {zone}"
            if delegated
            else f"the parent zone {parent.name} has no NS record for {self.domain}"
        )
        # The parent delegates the domain elsewhere: those name servers answer for it today, with whatever they hold.
        caution = (
            f"careful: {', '.join(sorted(delegated))} serve {self.domain} today; this command replaces that "
            f"delegation, so every record they hold (a web site, another mail host) stops resolving unless zone {zone} "
            "has it first. Compare the two before running it:\n"
            if delegated
            else ""
        )
        self.add(
            warn(
                "NS delegation",
                f"{self.domain} NS in {parent.name} ({parent.id})",
                problem + ": the records in the zone are not seen on the internet",
                caution + self._upsert(parent.id, self.domain, "NS", lambda _: sorted(servers), ttl=3600),
            )
        )

    def _check_shadowed(self, parent_id: str) -> bool:
        """The domain's records made in the parent zone (the SES console publishes there when the domain has no
        zone): a zone the stack creates for the domain either hides them, once delegated, or is seen by nobody."""
        if self.f.zone_named(self.domain) or self.f.owns("AWS::Route53::HostedZone"):
            return False
        given = self.f.zones.get(parent_id) if parent_id else None
        # A ParentHostedZoneId that is no parent zone (a placeholder) has its own finding; the records are where
        # the domain's nearest parent zone is.
        parent = given if given and given.name in parents(self.domain) else self.f.parent_zone(self.domain)
        if parent is None or parent.private or self.f.record(parent.id, self.domain, "NS"):
            return False  # no parent here, or the domain is delegated already: its records there are not seen
        shadowed = self.f.records_under(parent.id, self.domain)
        if not shadowed:
            return False
        listed = ", ".join(f"{name} {record_type}" for name, record_type in shadowed[:6])
        more = f" and {len(shadowed) - 6} more" if len(shadowed) > 6 else ""
        self.add(
            Finding(
                "hosted zone",
                f"{self.domain} records in {parent.name} ({parent.id})",
                f"the parent zone holds the domain's records ({listed}{more}); a zone the stack creates for "
                f"{self.domain} hides them once delegated (the identity's DKIM, the MX: sending and receiving "
                "stop), and undelegated it is seen by nobody",
                f"HostedZoneId={parent.id} ParentHostedZoneId= : the stack writes its records beside them in "
                f"{parent.name} (`forwarder adopt` sets both)",
            )
        )
        return True

    def _check_parent(self, parent_id: str) -> None:
        shadowed = self._check_shadowed(parent_id)
        if not parent_id:
            if shadowed:
                return
            parent = self.f.parent_zone(self.domain)
            creates = not self.f.zone_named(self.domain) and not self.f.owns("AWS::Route53::HostedZone")
            if parent and creates:
                self.add(
                    warn(
                        "NS delegation",
                        self.domain,
                        f"the parent zone {parent.name} ({parent.id}) is in this account but ParentHostedZoneId is "
                        "empty: nothing delegates the new zone, so no mail arrives and DKIM never verifies",
                        f"ParentHostedZoneId={parent.id} (`forwarder adopt`), or add the NS records by hand",
                    )
                )
            elif creates:
                self.add(
                    warn(
                        "NS delegation",
                        self.domain,
                        "the stack creates the domain's zone and no zone of this account is its parent: until the "
                        "registrar (or the parent's DNS) names the new zone's name servers, no mail arrives and DKIM "
                        "never verifies",
                        f"after the deploy, set the NS records of {self.domain} at the registrar to the zone's name "
                        "servers (`forwarder doctor` lists them and checks the delegation)",
                    )
                )
            return
        zone = self.f.zones.get(parent_id)
        expected = parents(self.domain)
        if zone is None or zone.name not in expected or zone.private:
            what = "no such hosted zone in this account" if zone is None else f"zone {parent_id} is {zone.name}"
            parent = self.f.parent_zone(self.domain)
            fix = (
                f"ParentHostedZoneId={parent.id} ({parent.name})"
                if parent and not shadowed
                else "ParentHostedZoneId= (empty)"
            )
            self.add(
                Finding(
                    "NS delegation",
                    f"ParentHostedZoneId={parent_id}",
                    f"{what}, not a parent zone of {self.domain} (a placeholder?): the NS delegation fails",
                    f"{fix} (`forwarder adopt`)",
                )
            )
            return
        nearer = self.f.parent_zone(self.domain)
        if nearer is not None and nearer.name != zone.name and self.f.record(zone.id, nearer.name, "NS"):
            # The zone delegates a level between it and the domain: resolvers ask that level's zone for the domain.
            self.add(
                Finding(
                    "NS delegation",
                    f"ParentHostedZoneId={parent_id}",
                    f"zone {parent_id} ({zone.name}) delegates {nearer.name} to other name servers: an NS record for "
                    f"{self.domain} written there is seen by nobody (resolvers ask the zone of {nearer.name})",
                    f"ParentHostedZoneId={nearer.id} ({nearer.name}) (`forwarder adopt`)",
                )
            )
            return
        existing = self.f.record(zone.id, self.domain, "NS")
        owned = self.f.owns("AWS::Route53::RecordSet", self.domain) or self.f.owns("AWS::Route53::HostedZone")
        if existing and not owned:
            adopt = self.f.zone_named(self.domain)
            fix = (
                f"HostedZoneId={adopt.id} ParentHostedZoneId= (adopt the delegated zone: `forwarder adopt`)"
                if adopt
                else "the NS record delegates to a zone that is not in this account: delete it in the parent zone "
                "if nothing uses it, or leave ParentHostedZoneId empty and manage DNS there"
            )
            self.add(
                Finding(
                    "NS delegation",
                    f"{self.domain} NS in {zone.name} ({zone.id})",
                    f"already exists ({', '.join(existing)}): CloudFormation fails with 'Tried to create resource "
                    "record set ... but it already exists'",
                    fix,
                )
            )
        elif not shadowed:
            self.add(ok("NS delegation", f"{self.domain} NS in {zone.name}", "the stack adds it"))

    # the identity -------------------------------------------------------------------------------------

    def check_identity(self) -> None:
        identity, mode = self.f.identity, self.s["EmailIdentityMode"]
        owned = self.f.owns("AWS::SES::EmailIdentity", self.domain)
        if (
            mode == "create"
            and identity is not None
            and not owned
            and identity.get("VerifiedForSendingStatus") is False
        ):
            # Nothing sends with it: deleting it stops nothing, and the stack's own comes with its DKIM records.
            self.add(
                Finding(
                    "SES identity",
                    f"{self.domain} in {self.region}",
                    "the domain identity already exists (made by hand), not verified: CloudFormation fails with "
                    "AlreadyExists. Nothing sends with it yet",
                    "delete it, and the stack creates it with its DKIM records: `aws sesv2 delete-email-identity "
                    f"--email-identity {self.domain} --region {self.region}`; or keep it, EmailIdentityMode=existing "
                    "(`forwarder adopt`), and verify it",
                )
            )
        elif mode == "create" and identity is not None and not owned:
            self.add(
                Finding(
                    "SES identity",
                    f"{self.domain} in {self.region}",
                    "the domain identity already exists (made by hand): CloudFormation fails with AlreadyExists. "
                    "Do not delete it: that stops all sending from the domain in this region until new DKIM "
                    "records verify",
                    "EmailIdentityMode=existing (`forwarder adopt`)",
                )
            )
        elif mode == "existing" and identity is None:
            self.add(
                Finding(
                    "SES identity",
                    f"{self.domain} in {self.region}",
                    "EmailIdentityMode=existing but the identity does not exist in this region: nothing could send",
                    "EmailIdentityMode=create (`forwarder adopt`)",
                )
            )
        elif identity is None or owned:
            self.add(ok("SES identity", f"{self.domain} in {self.region}", "the stack creates it"))
        else:
            self.add(ok("SES identity", f"{self.domain} in {self.region}", "exists; the stack uses it as it is"))
            self._check_existing_identity(identity)

    def _check_existing_identity(self, identity: dict[str, Any]) -> None:
        mail_from = fqdn((identity.get("MailFromAttributes") or {}).get("MailFromDomain", ""))
        if mail_from and mail_from != self.s.mail_from:
            label = mail_from.removesuffix("." + self.domain)
            fix = (
                f"MailFromSubdomain={label} (`forwarder adopt`)"
                if label != mail_from and "." not in label
                else "change the identity's MAIL FROM domain in the SES console"
            )
            self.add(
                warn(
                    "MAIL FROM",
                    self.domain,
                    f"the identity's MAIL FROM domain is {mail_from}, the environment's is {self.s.mail_from}",
                    fix,
                )
            )
        elif not mail_from:
            self.add(
                warn(
                    "MAIL FROM",
                    self.domain,
                    "the existing identity has no custom MAIL FROM domain: bounces go to amazonses.com and SPF does "
                    "not align for DMARC",
                    f"aws sesv2 put-email-identity-mail-from-attributes --region {self.region} --email-identity "
                    f"{self.domain} --mail-from-domain {self.s.mail_from} --behavior-on-mx-failure USE_DEFAULT_VALUE",
                )
            )
        attributes = identity.get("MailFromAttributes") or {}
        status = str(attributes.get("MailFromDomainStatus") or "SUCCESS")
        if mail_from and status != "SUCCESS" and attributes.get("BehaviorOnMxFailure") == "REJECT_MESSAGE":
            # SES takes the BehaviorOnMxFailure action in every state but SUCCESS: this one refuses the send.
            self.add(
                Finding(
                    "MAIL FROM",
                    self.domain,
                    f"the identity's MAIL FROM domain {mail_from} is {status} and the identity is set to reject a "
                    "send then (BehaviorOnMxFailure=REJECT_MESSAGE): SES refuses every send from the domain with "
                    "MailFromDomainNotVerified, so no forward goes out",
                    "let SES send with amazonses.com as MAIL FROM until the MAIL FROM domain verifies (DKIM still "
                    "passes DMARC; the identity the stack creates does the same), and fix its MX:\n"
                    f"aws sesv2 put-email-identity-mail-from-attributes --region {self.region} --email-identity "
                    f"{self.domain} --mail-from-domain {mail_from} --behavior-on-mx-failure USE_DEFAULT_VALUE",
                )
            )
        if identity.get("FeedbackForwardingStatus"):
            self.add(
                warn(
                    "feedback",
                    self.domain,
                    "the existing identity has email feedback forwarding on: SES mails each bounce and complaint to "
                    "the sender, which for forwarded mail is the alias address, so the forwarder sends it to the "
                    "whole alias (the stack turns it off only on an identity it creates)",
                    "turn it off (other senders of the domain then learn of bounces only through their own "
                    "notifications):\n"
                    f"aws sesv2 put-email-identity-feedback-attributes --region {self.region} --email-identity "
                    f"{self.domain} --no-email-forwarding-enabled",
                )
            )
        dkim = identity.get("DkimAttributes") or {}
        if dkim and dkim.get("SigningEnabled") is False:
            # Forwards then pass DMARC only through an aligned, working MAIL FROM (SPF); the stack's own identity signs.
            self.add(
                warn(
                    "DKIM signing",
                    self.domain,
                    "the existing identity has DKIM signing turned off: forwarded mail goes out unsigned, and passes "
                    "DMARC only while its MAIL FROM domain works",
                    f"aws sesv2 put-email-identity-dkim-attributes --region {self.region} --email-identity "
                    f"{self.domain} --signing-enabled",
                )
            )
        records = dkim_records(self.domain, dkim)
        if not records and identity.get("VerifiedForSendingStatus") is False:
            self._check_unverified_without_dkim(dkim)
        zone = self.record_zone()
        if not records or "hosted zone" in self.f.errors:
            return
        if zone is None:
            self._check_dkim_in_new_zone(identity, records)
            return
        missing = [(name, kind, value) for name, kind, value in records if not self._published(zone, name, kind, value)]
        if not missing and identity.get("VerifiedForSendingStatus") is False:
            # The records are right, and SES has not found them yet (PENDING: it looks for up to 72 hours) or gave
            # up (FAILED): nothing is forwarded until it verifies the identity.
            self.add(
                warn(
                    "DKIM records",
                    f"{self.domain} ({zone})",
                    f"the identity's {len(records)} DKIM record(s) are in the zone, but SES has not verified it "
                    f"(DKIM {dkim.get('Status') or 'unknown'}): forwards are refused until it does",
                    f"wait for SES to find the records (`aws sesv2 get-email-identity --email-identity {self.domain} "
                    f"--region {self.region}`); if DKIM stays FAILED, check that the zone is the one the internet "
                    "sees (NS delegation), then look at the identity in the SES console",
                )
            )
            return
        if not missing:
            self.add(
                ok("DKIM records", f"{self.domain} ({zone})", f"the identity's {len(records)} DKIM record(s) exist")
            )
            return
        listed = "\n".join(f"{name}  {kind}  {value}" for name, kind, value in missing)
        verified = dkim.get("Status") == "SUCCESS"
        finding = Finding(
            "DKIM records",
            f"{self.domain} ({zone})",
            f"{len(missing)} of the existing identity's DKIM records are not in the zone; the stack does not create "
            "them for an existing identity"
            + (" (DKIM verified: published elsewhere?)" if verified else ": the identity cannot verify"),
            f"add them to zone {zone}:\n{listed}",
            Severity.WARNING if verified else Severity.ERROR,
        )
        self.add(finding)

    def _check_unverified_without_dkim(self, dkim: dict[str, Any]) -> None:
        """An identity without DKIM tokens (DKIM never started, as SES v1's VerifyDomainIdentity leaves it) verifies
        only through the `_amazonses` TXT record of that API; until it does, SES refuses every send from it."""
        self.add(
            Finding(
                "SES identity",
                f"{self.domain} in {self.region}",
                f"the existing identity is not verified, and has no DKIM to verify it by (DKIM "
                f"{dkim.get('Status') or 'not started'}): SES refuses every forward from the domain",
                "nothing sends with it: delete it and let the stack create it with Easy DKIM and its records "
                f"(`aws sesv2 delete-email-identity --email-identity {self.domain} --region {self.region}`, then "
                "`forwarder adopt`); or verify it as it was made: publish the `_amazonses."
                f"{self.domain}` TXT record with the token of `aws ses get-identity-verification-attributes "
                f"--identities {self.domain} --region {self.region}`",
            )
        )

    def _published(self, zone: str, name: str, kind: str, value: str) -> bool:
        values = self.f.record(zone, name, kind) or []
        if kind == "TXT":
            return any("p=" in v for v in values)  # the public key (its value is the team's, not known here)
        return fqdn(value) in {fqdn(v) for v in values}

    def _check_dkim_in_new_zone(self, identity: dict[str, Any], dkim: list[tuple[str, str, str]]) -> None:
        """The stack creates the domain's zone, and DKIM CNAMEs only for an identity it creates."""
        if self.s["HostedZoneId"].strip() or self.f.zone_named(self.domain) or self.f.owns("AWS::Route53::HostedZone"):
            return  # an existing zone: checked above, or the zone check's finding comes first
        if self.s["ParentHostedZoneId"].strip():
            return  # a delegated new zone: the parameters check stops it (the template's rule would)
        records = "\n".join(f"{name}  {kind}  {value}" for name, kind, value in dkim)
        resource = f"{self.domain} (the zone the stack creates)"
        problem = (
            f"the stack creates the zone of {self.domain} without the existing identity's {len(dkim)} DKIM "
            f"record(s) (it publishes them only for an identity it creates)"
        )
        if identity.get("VerifiedForSendingStatus"):
            self.add(
                warn(
                    "DKIM records",
                    resource,
                    problem + ": once the zone is delegated, SES finds no DKIM records and stops signing",
                    f"right after the deploy, add them to the new zone (stack output HostedZoneId):\n{records}",
                )
            )
            return
        self.add(
            Finding(
                "DKIM records",
                resource,
                problem + ": the identity, not verified, can never verify",
                "nothing sends with an unverified identity: delete it and let the stack create it with its records "
                f"(`aws sesv2 delete-email-identity --email-identity {self.domain} --region {self.region}`, then "
                "`forwarder adopt`)",
            )
        )

    # records ------------------------------------------------------------------------------------------

    def _stack_writes(self, mode_key: str, zone: str) -> bool:
        """Whether the records in `zone` are the stack's own: it holds the group, written into this very zone."""
        return stack_writes(self.f, mode_key) and self._moved_from(zone) is None

    def _moved_from(self, zone: str) -> str | None:
        """The zone the deployed stack wrote its records into, when this deploy writes them into `zone` instead:
        CloudFormation replaces each of them by one in `zone`, which fails where `zone` holds one already."""
        owned = sorted(self.f.owned.get("AWS::Route53::HostedZone", set()))
        deployed = self.f.stack_parameters.get("HostedZoneId", "").strip() or next(iter(owned), "")
        return deployed if deployed and deployed != zone else None

    def _existing_fix(self, zone: str, fix: str) -> str:
        """The fix of a collision: `fix`, or when the stack's records move here, the way that keeps them."""
        moved = self._moved_from(zone)
        if moved is None:
            return fix
        return (
            f"the stack's records move from zone {moved} to zone {zone} with this HostedZoneId: delete this one in "
            f"{zone} if the stack's replaces it, or keep HostedZoneId={moved}"
        )

    def check_records(self) -> None:
        zone = self.record_zone()
        if zone is None and not self.f.owns("AWS::Route53::HostedZone"):
            # The zone fix (adopting the domain's existing zone) moves the records there: check them now, so that
            # one run names every collision.
            existing = self.f.holding_zone(self.domain) or self.f.zone_named(self.domain)
            zone = existing.id if existing else None
        if zone is None:
            return  # the stack creates the zone: nothing can collide in it
        self._check_mx(zone)
        self._check_mail_from(zone)
        self._check_dmarc(zone)

    def _collision(self, check: str, zone: str, name: str, record_type: str, values: list[str], fix: str) -> Finding:
        return Finding(
            check,
            f"{name} {record_type} in {zone}",
            f"already exists ({'; '.join(values)}): CloudFormation fails with 'Tried to create resource record set "
            "... but it already exists' and rolls the whole deploy back",
            fix,
        )

    def _cname_collision(self, check: str, zone: str, name: str, record_type: str, fix: str) -> Finding | None:
        """A CNAME where the stack creates a record of another type (a DMARC service's delegation, say)."""
        targets = self.f.cname(zone, name)
        if not targets:
            return None
        return Finding(
            check,
            f"{name} CNAME in {zone}",
            f"a CNAME ({'; '.join(targets)}) holds the name, and no other record may share it: CloudFormation fails "
            f"with 'RRSet of type {record_type} ... is not permitted because a conflicting RRSet of type CNAME ... "
            "already exists' and rolls the whole deploy back",
            fix,
        )

    def _check_mx(self, zone: str) -> None:
        expected = f"inbound-smtp.{self.region}.amazonaws.com"
        values = self.f.record(zone, self.domain, "MX")
        mode = self.s["MxRecordMode"]
        hosts = {fqdn(v.split()[-1]) for v in values or []}
        fix = (
            f"nothing at {self.domain} can receive mail while it is an alias: delete the CNAME if what it points to "
            "is no longer needed at this name, or give the environment another DomainName"
        )
        # The domain is a CNAME in the parent zone that holds its records: no MX may sit beside it, in either mode.
        if mode == "create" and (collision := self._cname_collision("MX record", zone, self.domain, "MX", fix)):
            self.add(collision)
        elif targets := self.f.cname(zone, self.domain):
            self.add(
                Finding(
                    "MX record",
                    f"{self.domain} CNAME in {zone}",
                    f"a CNAME ({'; '.join(targets)}) holds the name, and no MX may share it: mail to {self.domain} "
                    "cannot reach SES",
                    fix,
                )
            )
        elif feedback := sorted(h for h in hosts if h.startswith("feedback-smtp.") and h.endswith(".amazonses.com")):
            # A MAIL FROM domain must be a subdomain of its identity: this is another identity's (a parent domain's).
            self.add(
                Finding(
                    "MX record",
                    f"{self.domain} MX in {zone}",
                    f"points at {', '.join(feedback)}, SES's feedback endpoint: {self.domain} is the custom MAIL FROM "
                    "domain of another SES identity (a parent domain's, say), where the bounces of its sends arrive. "
                    "It receives no other mail, and pointing its MX at SES's inbound endpoint (or the stack creating "
                    "that MX) would fail that identity's MAIL FROM",
                    "give the environment another DomainName, one that is no identity's MAIL FROM domain; or first "
                    "move that identity's MAIL FROM domain elsewhere (`aws sesv2 put-email-identity-mail-from-"
                    "attributes`)",
                )
            )
        elif mode == "create":
            if values and not self._stack_writes("MxRecordMode", zone):
                fix = self._existing_fix(zone, "MxRecordMode=existing (`forwarder adopt`)")
                self.add(self._collision("MX record", zone, self.domain, "MX", values, fix))
            else:
                self.add(ok("MX record", f"{self.domain} MX", f"the stack creates 10 {expected}"))
        elif not values:
            self.add(
                Finding(
                    "MX record",
                    f"{self.domain} MX in {zone}",
                    "MxRecordMode=existing but the domain has no MX record: mail to it bounces",
                    "MxRecordMode=create (`forwarder adopt`)",
                )
            )
        elif expected not in hosts or (preferred := _preferred(values)) != {expected}:
            others = sorted(h for h in hosts if not h.startswith("inbound-smtp.") or not h.endswith(".amazonaws.com"))
            caution = (
                f"careful: {', '.join(others)} receive(s) the mail of {self.domain} today; this command replaces "
                f"every MX value, so all mail to {self.domain} then reaches SES, and mail to an address that is no "
                "alias is dropped. If the domain's mailboxes live there, receive the aliases on a subdomain "
                "instead.\n"
                if others
                else ""
            )
            # Senders deliver to the lowest preference: SES listed behind (or beside) another host gets none of the
            # mail (or part of it) while that host answers.
            problem = (
                f"points at {', '.join(sorted(hosts))}, not {expected}: the new stack receives nothing until it does"
                if expected not in hosts
                else f"lists {expected}, but senders prefer {', '.join(sorted(preferred - {expected}))}"
                + (" as much (SES gets part of the mail)" if expected in preferred else " (SES gets none of the mail)")
            )
            self.add(
                warn(
                    "MX record",
                    f"{self.domain} MX in {zone}",
                    f"{problem} (the stack leaves this record alone)",
                    f"{caution}once the stack is deployed, point it here:\n"
                    + self._upsert(zone, self.domain, "MX", lambda _: [f"10 {expected}"]),
                )
            )
        else:
            self.add(ok("MX record", f"{self.domain} MX", f"exists and points at {expected}; left unmanaged"))

    def _check_mail_from(self, zone: str) -> None:
        name, mode = self.s.mail_from, self.s["MailFromRecordsMode"]
        expected = f"feedback-smtp.{self.region}.amazonses.com"
        mx, txt = self.f.record(zone, name, "MX"), self.f.record(zone, name, "TXT")
        if mode == "create":
            fix = (
                "delete the CNAME (the MAIL FROM domain needs its own MX and SPF TXT), or MailFromSubdomain=<a free "
                "label> with the identity's MAIL FROM domain"
            )
            if collision := self._cname_collision("MAIL FROM records", zone, name, "MX", fix):
                self.add(collision)
            elif (mx or txt) and not self._stack_writes("MailFromRecordsMode", zone):
                for record_type, values in (("MX", mx), ("TXT", txt)):
                    if values:
                        fix = self._existing_fix(zone, "MailFromRecordsMode=existing (`forwarder adopt`)")
                        self.add(self._collision("MAIL FROM records", zone, name, record_type, values, fix))
            else:
                self.add(ok("MAIL FROM records", name, f"the stack creates MX 10 {expected} and the SPF TXT"))
            return
        if not mx and not txt:
            self.add(
                Finding(
                    "MAIL FROM records",
                    f"{name} in {zone}",
                    "MailFromRecordsMode=existing but neither the MX nor the SPF record exists",
                    "MailFromRecordsMode=create (`forwarder adopt`)",
                )
            )
            return
        hosts = {fqdn(v.split()[-1]) for v in mx or []}
        if expected not in hosts:
            others = sorted(h for h in hosts if h.startswith("feedback-smtp."))
            where = f"another region's feedback endpoint ({', '.join(others)})" if others else "no SES endpoint"
            rejects = self._rejects_on_mx_failure(name)
            self.add(
                Finding(
                    "MAIL FROM records",
                    f"{name} MX in {zone}",
                    f"points at {where if hosts else 'nothing'}, not {expected}: SES in {self.region} marks the MAIL "
                    + (
                        "FROM domain failed, and the adopted identity is set to reject a send then "
                        "(BehaviorOnMxFailure=REJECT_MESSAGE): SES refuses every forward with MailFromDomainNotVerified"
                        if rejects
                        else "FROM domain failed and sends with amazonses.com (SPF no longer aligns for DMARC)"
                    ),
                    "add this region's endpoint (other regions keep theirs):\n"
                    + self._upsert(zone, name, "MX", lambda mx: [*mx, f"10 {expected}"]),
                    Severity.ERROR if rejects else Severity.WARNING,
                )
            )
        spf = [v for v in txt or [] if _txt_text(v).strip().lower().startswith("v=spf1")]
        if len(spf) > 1:
            # RFC 7208 4.5: more than one SPF record is a permerror, whatever each says (an include fixes nothing).
            self.add(
                warn(
                    "MAIL FROM records",
                    f"{name} TXT in {zone}",
                    f"{len(spf)} SPF records ({'; '.join(spf)}): SPF fails with a permerror for all mail from it, "
                    "forwards included",
                    "merge them into one v=spf1 value with include:amazonses.com and write the record set with it "
                    f"(its other values stay): `aws route53 change-resource-record-sets --hosted-zone-id {zone}` "
                    "with an UPSERT of the whole record set",
                )
            )
        elif not any("include:amazonses.com" in _txt_text(v) for v in txt or []):
            self.add(
                warn(
                    "MAIL FROM records",
                    f"{name} TXT in {zone}",
                    "no SPF record including amazonses.com: SPF fails for forwarded mail",
                    self._upsert(zone, name, "TXT", with_amazonses),
                )
            )
        elif expected in hosts:
            self.add(ok("MAIL FROM records", name, "MX and SPF exist; left unmanaged"))

    def _rejects_on_mx_failure(self, mail_from: str) -> bool:
        """Whether the adopted identity sends from `mail_from` and refuses a send when its MX is not found."""
        identity = self.f.identity if self.s["EmailIdentityMode"] == "existing" else None
        attributes = (identity or {}).get("MailFromAttributes") or {}
        return attributes.get("BehaviorOnMxFailure") == "REJECT_MESSAGE" and fqdn(
            attributes.get("MailFromDomain", "")
        ) == fqdn(mail_from)

    def _check_dmarc(self, zone: str) -> None:
        name, mode = f"_dmarc.{self.domain}", self.s["DmarcRecordMode"]
        values = self.f.record(zone, name, "TXT")
        if mode == "create":
            fix = "DmarcRecordMode=existing (`forwarder adopt`; the organisation keeps its own policy)"
            if collision := self._cname_collision("DMARC record", zone, name, "TXT", fix):
                self.add(collision)  # a DMARC service publishes the policy through it: adopt it like a TXT
            elif values and not self._stack_writes("DmarcRecordMode", zone):
                self.add(self._collision("DMARC record", zone, name, "TXT", values, self._existing_fix(zone, fix)))
            elif loosened := self._loosened_dmarc():
                self.add(loosened)
            else:
                self.add(ok("DMARC record", name, "the stack creates it"))
        elif targets := self.f.cname(zone, name):
            self.add(ok("DMARC record", name, f"a CNAME to {', '.join(targets)} (a DMARC service); left unmanaged"))
        elif len(policies := [v for v in values or [] if _txt_text(v).strip().lower().startswith("v=dmarc1")]) > 1:
            # RFC 7489 6.6.3: more than one DMARC record at the name, and receivers apply none.
            self.add(
                warn(
                    "DMARC record",
                    f"{name} TXT in {zone}",
                    f"{len(policies)} DMARC records ({'; '.join(policies)}): receivers apply none of them",
                    "keep one of them (the record set's other values stay):\n"
                    + self._upsert(zone, name, "TXT", lambda v: [x for x in v if x not in policies[1:]]),
                )
            )
        elif not policies and (inherited := self._organisation_policy()):
            self.add(ok("DMARC record", name, f"none of its own: receivers apply {inherited}; left unmanaged"))
        elif not policies:
            # TXT values that are no DMARC record (a verification string, say) are ignored by receivers.
            what = f"holds no DMARC record ({'; '.join(values)})" if values else "has no DMARC record"
            fix = (
                "add one beside those values (the stack cannot create the TXT record set that exists):\n"
                + self._upsert(zone, name, "TXT", lambda v: [*v, f'"v=DMARC1; p={self.s["DmarcPolicy"] or "none"}"'])
                if values
                else "DmarcRecordMode=create (`forwarder adopt`), or publish one"
            )
            self.add(
                warn(
                    "DMARC record",
                    f"{name} in {zone}",
                    f"DmarcRecordMode=existing but {name} {what}: receivers apply no policy",
                    fix,
                )
            )
        else:
            self.add(ok("DMARC record", name, "exists; left unmanaged"))

    def _organisation_tags(self) -> tuple[str, dict[str, str]]:
        """The organisational domain and its DMARC tags, when its zone is in this account: the farthest parent with a
        zone here (the shortest parent is a public suffix under a two-label one, e.g. com.tw)."""
        for organisation in reversed(parents(self.domain)):
            holder = self.f.zone_named(organisation)
            if holder is not None:
                return organisation, _dmarc_tags(self.f.record(holder.id, f"_dmarc.{organisation}", "TXT") or [])
        return "", {}

    def _organisation_policy(self) -> str:
        """What receivers apply to the domain without a DMARC record of its own, e.g. "aws-educate.tw's sp=reject"."""
        organisation, tags = self._organisation_tags()
        holder = self.f.zone_named(organisation) if organisation else None
        if holder is not None and (service := self.f.cname(holder.id, f"_dmarc.{organisation}")):
            # A DMARC service publishes the organisation's policy: it applies, with tags not readable here.
            return f"{organisation}'s policy (a CNAME to {', '.join(service)})"
        tag = "sp" if tags.get("sp") else "p"
        if not tags.get(tag):
            return ""
        return f"{organisation}'s {tag}={tags[tag]}"

    def _loosened_dmarc(self) -> Finding | None:
        """A subdomain without a DMARC record of its own gets the organisational domain's policy for subdomains
        (sp=, else p=); the record the stack creates replaces it, and must not be the weaker one."""
        _, tags = self._organisation_tags()
        inherited = tags.get("sp") or tags.get("p") or ""
        ours = self.s["DmarcPolicy"] or "none"
        if _DMARC_STRICTNESS.get(inherited, 0) <= _DMARC_STRICTNESS.get(ours, 0):
            return None
        return warn(
            "DMARC record",
            f"_dmarc.{self.domain}",
            f"receivers apply {self._organisation_policy()} to {self.domain} today; the record the stack creates "
            f"(p={ours}) replaces it with a weaker policy",
            f"DmarcPolicy={inherited} (samconfig.toml), or DmarcRecordMode=existing to publish none and keep the "
            "organisation's",
        )

    # receiving ----------------------------------------------------------------------------------------

    def check_rule_set(self) -> None:
        mode, name, active = self.s["ReceiptRuleSetMode"], self.s["ReceiptRuleSetName"], self.f.active_rule_set
        rules = self.f.rule_sets.get(name)
        renamed = renames_own_rule_set(self.s, self.f)
        if mode == "create-and-activate":
            if active and active != name and not renamed:
                self.add(
                    Finding(
                        "rule set",
                        f"active set {active}",
                        f"another receipt rule set is active in {self.region}; create-and-activate refuses to switch "
                        "it off (that would stop the mail of every rule in it)",
                        f"ReceiptRuleSetMode=join-existing ReceiptRuleSetName={active} (`forwarder adopt`)",
                    )
                )
            elif rules is not None and active != name:
                # No set is active, and ours exists (made by hand, or left over): the stack activates it as it is.
                others = [str(r.get("Name")) for r in rules if r.get("Name") != self.s.stack_name]
                if others:
                    self.add(
                        warn(
                            "rule set",
                            name,
                            f"{name} exists, not active, with rules ({', '.join(others)}): the stack activates it, "
                            f"and from then on they act on the mail of {self.region} too (a rolled-back first deploy, "
                            "or deleting the stack, makes it inactive again while it holds only these rules)",
                            f"look at them first (`aws ses describe-receipt-rule-set --rule-set-name {name} --region "
                            f"{self.region}`); disable or delete those nobody wants",
                        )
                    )
                else:
                    self.add(ok("rule set", name, "exists, not active: the stack activates it"))
            else:
                state = "exists and is active" if active == name else "is created and activated by the stack"
                if renamed:
                    state += f", in place of its set {active} (which holds no other rule)"
                self.add(ok("rule set", name, state))
        elif rules is None:
            fix = (
                f"ReceiptRuleSetName={active} (the active set; `forwarder adopt`)"
                if active
                else "ReceiptRuleSetMode=create-and-activate (`forwarder adopt`)"
            )
            self.add(Finding("rule set", name, f"join-existing but there is no rule set {name} in {self.region}", fix))
        elif active != name:
            problem = f"{name} is not the active set ({active or 'none is active'}): the stack's rule receives nothing"
            fix = (
                f"ReceiptRuleSetName={active} (`forwarder adopt`)"
                if active
                else f"aws ses set-active-receipt-rule-set --rule-set-name {name} --region {self.region}"
            )
            self.add(warn("rule set", name, problem, fix))
        else:
            self.add(ok("rule set", name, "exists and is active; the stack adds its rule to it"))
        self._check_rules(name, rules or [])

    def _check_rules(self, name: str, rules: list[dict[str, Any]]) -> None:
        rule_name = self.s.stack_name
        if len(rules) >= RULES_PER_SET and not any(r.get("Name") == rule_name for r in rules):
            unused = [str(r.get("Name")) for r in rules if not r.get("Enabled", True)]
            more = f" and {len(unused) - 5} more" if len(unused) > 5 else ""
            self.add(
                Finding(
                    "receipt rule",
                    f"{rule_name} in {name}",
                    f"the set holds {len(rules)} rules, as many as SES allows in one set ({RULES_PER_SET}): "
                    "CloudFormation fails to add the stack's rule (LimitExceeded) and rolls the whole deploy back",
                    "make room: delete a rule nobody uses "
                    + (f"(disabled: {', '.join(unused[:5])}{more}) " if unused else "")
                    + f"with `aws ses delete-receipt-rule --rule-set-name {name} --rule-name <rule> --region "
                    f"{self.region}`",
                )
            )
        if any(r.get("Name") == rule_name for r in rules) and not self.f.owns("AWS::SES::ReceiptRule"):
            self.add(
                Finding(
                    "receipt rule",
                    f"{rule_name} in {name}",
                    "a rule named like the stack is already in the set (a leftover): CloudFormation fails with "
                    "AlreadyExists",
                    f"check it is unused, then `aws ses delete-receipt-rule --rule-set-name {name} --rule-name "
                    f"{rule_name} --region {self.region}`",
                )
            )
        active = self.f.active_rule_set
        if self.s["ReceiptRuleSetMode"] == "create-and-activate" and (
            active is None or renames_own_rule_set(self.s, self.f)
        ):
            active = name  # the stack activates its set, with the rules already in it
        in_set = self.f.rule_sets.get(active or "", None) or []
        # SES applies a set's rules in order. CloudFormation adds the stack's rule first (CreateReceiptRule without
        # After); once it is in, a person may have moved it.
        ours = next((i for i, r in enumerate(in_set) if r.get("Name") == rule_name), -1)
        for position, rule in enumerate(in_set):
            if rule.get("Name") == rule_name or not rule.get("Enabled", True):
                continue
            if not covers(list(rule.get("Recipients") or []), self.domain):
                continue
            actions = {str(kind) for action in rule.get("Actions") or [] for kind in action}
            recipients = ", ".join(rule.get("Recipients") or ["all"])
            if position < ours and "StopAction" in actions:
                self.add(
                    warn(
                        "earlier rule",
                        f"{rule.get('Name')} in {active}",
                        f"this enabled rule for {self.domain} (recipients: {recipients}) stops the rule chain before "
                        "the stack's rule: the stack receives none of the mail it takes",
                        "put the stack's rule first:\n"
                        f"aws ses set-receipt-rule-position --region {self.region} --rule-set-name {active} "
                        f"--rule-name {rule_name}",
                    )
                )
                continue
            # Past a rule that stops the chain for all of the domain's mail, no rule sees it.
            stops_all = "StopAction" in actions and takes_all_of(list(rule.get("Recipients") or []), self.domain)
            if actions and actions <= {"StopAction", "AddHeaderAction"}:
                if stops_all:
                    break
                continue  # behind the stack's rule it changes nothing of what the stack receives
            does = (
                "the stack forwards each mail and this rule bounces it to its sender"
                if "BounceAction" in actions
                else "every member gets each mail twice"
            )
            self.add(
                warn(
                    "earlier rule",
                    f"{rule.get('Name')} in {active}",
                    f"this enabled rule also takes mail for {self.domain} (recipients: {recipients}): once the "
                    f"stack's rule is in, both act and {does}",
                    "keep it until the new stack works (`forwarder doctor --config-env "
                    f"{self.s.environment}`, a test mail arrives), then " + self._earlier_rule_fix(rule, active),
                )
            )
            if stops_all:
                break

    def _earlier_rule_fix(self, rule: dict[str, Any], rule_set: str | None) -> str:
        """How to stop a rule taking the domain's mail without stopping what else it takes."""
        recipients = [str(r) for r in rule.get("Recipients") or []]
        kept = [r for r in recipients if not covers([r], self.domain)]
        # No recipients (every domain of the region) or `.parent` (every subdomain): it cannot drop just this domain.
        if not recipients or any(r.strip().startswith(".") for r in recipients if r not in kept):
            taken = "every domain in this region" if not recipients else "the other subdomains it names"
            return (
                f"give it recipients that leave {self.domain} out (it also takes the mail of {taken}: disabling it "
                f"would stop theirs), with `aws ses update-receipt-rule --region {self.region} --rule-set-name "
                f"{rule_set} --rule ...`"
            )
        changed, what = (
            ({**rule, "Recipients": kept}, f"take {self.domain} out of its recipients (it keeps the others' mail)")
            if kept
            else ({**rule, "Enabled": False}, "disable it (nothing is deleted)")
        )
        return (
            f"{what}:\naws ses update-receipt-rule --region {self.region} --rule-set-name {rule_set} "
            f"--rule {shlex.quote(json.dumps(changed, default=str))}"
        )

    def check_concurrency(self) -> None:
        texts = [self.s[key].strip() for key in RESERVING_FUNCTIONS.values()]
        reserved, download = (int(text) if text.isdigit() else 0 for text in texts)
        wanted = reserved + download
        if self.f.concurrency is None:
            return
        limit, unreserved = self.f.concurrency
        affordable = max(0, unreserved + self.f.function_reserved - LAMBDA_UNRESERVED_MINIMUM)
        account = f"account limit {limit}, unreserved {unreserved}: the forwarder can reserve at most {affordable}"
        resource = f"ReservedConcurrency={reserved}" + (f" DownloadConcurrency={download}" if download else "")
        if wanted > affordable:
            fits = affordable_reservations(self.f, reserved, download) or (0, 0)
            self.add(
                Finding(
                    "concurrency",
                    resource,
                    f"{account}, and ReservedConcurrency with DownloadConcurrency reserve {wanted}; Lambda keeps "
                    f"{LAMBDA_UNRESERVED_MINIMUM} unreserved and fails the deploy "
                    '("decreases account\'s UnreservedConcurrentExecution below its minimum")',
                    f"ReservedConcurrency={fits[0]} DownloadConcurrency={fits[1]} (`forwarder adopt`), or raise the "
                    "quota: Service Quotas > AWS Lambda > Concurrent executions, to at least "
                    f"{LAMBDA_UNRESERVED_MINIMUM + wanted + (limit - unreserved - self.f.function_reserved)}",
                )
            )
        else:
            self.add(ok("concurrency", resource, account))

    def check_sending(self) -> None:
        if self.f.production_access is None:
            return
        if self.f.sending_paused:
            problem, fix = self.f.sending_paused
            self.add(
                Finding("sending", self.region, f"{problem}: the stack would receive mail and forward none of it", fix)
            )
            return
        if self.f.production_access:
            self.add(ok("sending", self.region, "production access"))
            return
        self.add(
            warn(
                "sending",
                self.region,
                "the account is in the SES sandbox in this region: forwards reach verified addresses only",
                "request production access (SES console > Account dashboard) for this region",
            )
        )

    def check_named_resources(self) -> None:
        """Resources with a fixed name that a failed earlier deploy can leave behind."""
        name = self.s.stack_name
        if len(name) > SES_NAME_MAX:
            self.add(
                Finding(
                    "stack name",
                    name,
                    f"{len(name)} characters: the stack names its SES configuration set and receipt rule after itself, "
                    f"and SES refuses names over {SES_NAME_MAX}; CloudFormation fails creating them and rolls the "
                    "whole deploy back",
                    f"a stack name of at most {SES_NAME_MAX} characters (`stack_name` of the environment in "
                    "samconfig.toml)",
                )
            )
        if self.f.configuration_set and not self.f.owns("AWS::SES::ConfigurationSet", name):
            self.add(
                Finding(
                    "configuration set",
                    name,
                    "an SES configuration set named like the stack exists outside it: CloudFormation fails with "
                    "AlreadyExists",
                    f"if it is a leftover: `aws sesv2 delete-configuration-set --configuration-set-name {name} "
                    f"--region {self.region}`",
                )
            )
        owned = self.f.owned.get("AWS::Logs::LogGroup", set())
        for group in self.f.log_groups:
            if group not in owned:
                self.add(
                    Finding(
                        "log groups",
                        group,
                        "a log group the stack creates already exists outside it: CloudFormation fails with "
                        "AlreadyExists",
                        f"if it is a leftover: `aws logs delete-log-group --log-group-name {group} "
                        f"--region {self.region}`",
                    )
                )

    def check_mode_switches(self) -> None:
        """Switching a resource the stack made to `existing` (or dropping the rule set) removes it from the stack."""
        if self.f.stack_status not in _READY | {"UPDATE_FAILED"}:  # UPDATE_FAILED: the deploy resumes the update
            return
        for key, (what, logical_ids) in _MANAGED_BY.items():
            if self.s[key] == "existing" and any(i in self.f.logical for i in logical_ids):
                self.add(
                    Finding(
                        "mode switch",
                        f"{key}=existing",
                        f"the deployed stack created {what}; with {key}=existing it leaves the stack, and "
                        "CloudFormation deletes it during this update (the template does not retain it): mail or "
                        "sending stops",
                        f"keep {key}=create; the stack keeps managing it",
                    )
                )
        self._check_zone_switch()
        for rule_set in sorted(self.f.owned.get("AWS::SES::ReceiptRuleSet", set())):
            self.add(
                _switch_warning(
                    "mode switch",
                    f"rule set {rule_set}",
                    f"the receipt rule set {rule_set} (an older template; with it every rule in the set)",
                    self.s.stack_name,
                )
            )

    def _check_zone_switch(self) -> None:
        """The zone the stack created (HostedZoneId empty) and its NS delegation (ParentHostedZoneId set) exist only
        under those conditions: a value that leaves them takes them out of the stack, which deletes them."""
        zone = self.f.physical.get("HostedZone", "the zone it created")
        if self.s["HostedZoneId"].strip() and "HostedZone" in self.f.logical:
            self.add(
                Finding(
                    "mode switch",
                    f"HostedZoneId={self.s['HostedZoneId'].strip()}",
                    f"the deployed stack created the zone of {self.domain} ({zone}) and its NS delegation; with "
                    "HostedZoneId set they leave the stack, and CloudFormation deletes them during this update (the "
                    f"template does not retain them): {self.domain} is no longer delegated, mail and DKIM stop",
                    "HostedZoneId= (empty): the stack keeps managing its zone",
                )
            )
        elif not self.s["ParentHostedZoneId"].strip() and "ParentDelegation" in self.f.logical:
            parent = self.f.stack_parameters.get("ParentHostedZoneId", "")
            self.add(
                Finding(
                    "mode switch",
                    "ParentHostedZoneId= (empty)",
                    f"the deployed stack created the NS delegation of {self.domain} in the parent zone {parent}; "
                    "with ParentHostedZoneId empty it leaves the stack, and CloudFormation deletes it during this "
                    f"update: {self.domain} is no longer delegated, mail and DKIM stop",
                    f"ParentHostedZoneId={parent or '<the parent zone it was deployed with>'}",
                )
            )


# The template's resources per mode parameter (logical ids): what the deployed stack holds when it made them.
# `MailDnsRecords` is the single record set group of the template before the mode parameters.
_MANAGED_BY = {
    "EmailIdentityMode": ("the domain identity and its DKIM records", ("EmailIdentity",)),
    "MxRecordMode": ("the inbound MX record", ("InboundMxRecord", "MailDnsRecords")),
    "MailFromRecordsMode": ("the MAIL FROM MX and SPF records", ("MailFromRecords", "MailDnsRecords")),
    "DmarcRecordMode": ("the DMARC record", ("DmarcRecord", "MailDnsRecords")),
}


def stack_writes(facts: Facts, mode_key: str) -> bool:
    """Whether the deployed stack already holds this record group (then the existing records are its own).

    Whatever the stack's state: a stack stopped half way (UPDATE_FAILED, UPDATE_ROLLBACK_FAILED, in progress) still
    holds them, and `existing` would take them out of it, so that its next update deletes them. What a rollback
    deleted is not listed (`survey`)."""
    return any(logical_id in facts.logical for logical_id in _MANAGED_BY[mode_key][1])


def renames_own_rule_set(settings: Settings, facts: Facts) -> bool:
    """create-and-activate with a new ReceiptRuleSetName while the active set is the one the stack's custom resource
    created and activated, holding no rule but the stack's: the custom resource then creates the new set and moves
    the activation to it (custom_resources/rule_set_activation.py, `claim` with the previous set)."""
    active = facts.active_rule_set
    # The custom resource's physical id is the set's name, then what its Create found (`held_id` there).
    held = facts.physical.get("SharedReceiptRuleSet", "").split(":")[0]
    return (
        settings["ReceiptRuleSetMode"] == "create-and-activate"
        and facts.stack_parameters.get("ReceiptRuleSetMode", "create-and-activate") == "create-and-activate"
        and active is not None
        and active == held
        and active != settings["ReceiptRuleSetName"]
        and {str(r.get("Name")) for r in facts.rule_sets.get(active) or []} <= {settings.stack_name}
    )


def record_zone(settings: Settings, facts: Facts) -> str | None:
    """The existing zone the stack writes the mail records into; None when it creates the zone."""
    wanted = settings["HostedZoneId"].strip()
    if wanted:
        zone = facts.zones.get(wanted)
        return zone.id if zone and facts.serves(zone, settings.domain) else None
    owned = facts.owned.get("AWS::Route53::HostedZone", set())
    return next(iter(sorted(owned)), None)


def _switch_warning(check: str, resource: str, what: str, stack: str) -> Finding:
    return warn(
        check,
        resource,
        f"the deployed stack created {what}; with this change it leaves the stack, and CloudFormation deletes it "
        "during the update unless the template retains it",
        f"review the change set (`sam deploy` shows it) for a Remove of {what} before executing it; "
        f"keep the current value to leave it in {stack}",
    )


def evaluate(settings: Settings, facts: Facts) -> list[Finding]:
    """Every check's row for `settings` against `facts`: problems (error, warning) and what is fine (ok)."""
    return Evaluation(settings, facts).run()


def blocking(rows: list[Finding]) -> list[Finding]:
    return [r for r in rows if r.severity == Severity.ERROR]


# the command --------------------------------------------------------------------------------------------


def settings_for(target: Target) -> Settings:
    """The environment's parameters as the stack would get them; a one-line error without a domain."""
    parameters = dict(target.parameters)
    if target.explicit_domain:
        parameters["DomainName"] = target.explicit_domain
    if not parameters.get("DomainName"):
        raise CommandError(
            f"no DomainName in the parameter_overrides of {target.name or 'the environment'}: "
            "give --config-env ENV or --domain DOMAIN"
        )
    if not target.stack_name:
        raise CommandError("no stack name: give --config-env ENV (samconfig.toml) or --stack-name NAME")
    return Settings.of(parameters, target.stack_name, target.region, target.name)


def report(target: Target, settings: Settings, rows: list[Finding]) -> list[str]:
    """The table for people: problems first with their fixes, then what is fine, then a summary."""
    lines = [
        f"forwarder preflight: {target.name or '-'} (stack {settings.stack_name}, {target.region}, {settings.domain})"
    ]
    problems = [r for r in rows if r.severity != Severity.OK]
    for row in sorted(problems, key=lambda r: r.severity != Severity.ERROR):
        lines.append(f"{SYMBOLS[row.severity]} {row.check:<18} {row.resource}")
        lines.append(f"    {row.problem}")
        for number, line in enumerate(row.fix.splitlines()):
            lines.append(f"    {'fix: ' if number == 0 else '     '}{line}")
    for row in rows:
        if row.severity == Severity.OK:
            lines.append(f"{SYMBOLS[row.severity]} {row.check:<18} {row.resource}: {row.problem}")
    errors, warnings = len(blocking(rows)), sum(r.severity == Severity.WARNING for r in rows)
    verdict = "ready to deploy" if not errors else "not ready: fix the ✗ rows (or run `forwarder adopt`)"
    lines.append(f"{errors} ✗  {warnings} !  {len(rows) - errors - warnings} ✓: {verdict}")
    return lines


def cmd_preflight(args: argparse.Namespace) -> int:
    target = resolve_target(
        args.config_env,
        args.config_file,
        region=args.region,
        stack_name=args.stack_name,
        domain=args.domain,
        profile=args.profile,
    )
    settings = settings_for(target)
    rows = evaluate(settings, survey(target, settings))
    ready = not blocking(rows)
    if args.json:
        document = {
            "environment": target.name,
            "region": target.region,
            "stack": settings.stack_name,
            "domain": settings.domain,
            "ready": ready,
            "findings": [r.as_dict() for r in rows if r.severity != Severity.OK],
            "passed": [r.as_dict() for r in rows if r.severity == Severity.OK],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print("\n".join(report(target, settings, rows)))
    return 0 if ready else 1


def add_parser(commands: Any, environment: argparse.ArgumentParser) -> None:
    preflight = commands.add_parser(
        "preflight",
        parents=[environment],
        help="before a deploy: everything that would make it fail or do harm, with the fix (read-only)",
        description="Read the account (Route 53, SES, Lambda, CloudFormation) and compare it with what the "
        "template would create for the environment: existing identities, records, zones, rule sets and rules, "
        "the active rule set, Lambda concurrency, the sandbox, prod's AlarmEmail. Exit 0 ready (warnings "
        "allowed), 1 a finding would break the deploy, 2 could not run.",
    )
    preflight.add_argument("--json", action="store_true", help="machine-readable output")
    preflight.set_defaults(func=cmd_preflight)
