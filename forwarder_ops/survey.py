"""What an AWS account already holds that an environment's stack would touch: read once, read-only.

`survey` asks AWS (STS, CloudFormation, Route 53, SES v1 and v2, Lambda, CloudWatch Logs) and returns
`Facts`, plain data that `forwarder preflight` judges and `forwarder adopt` turns into parameters; both
are pure functions of the facts and the environment's parameters, so the tests can check them on
hand-made facts as well as against moto.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from forwarder_ops.envconfig import Target
from forwarder_ops.errors import aws_code

# Template parameters the survey and the checks read, with the template's defaults.
DEFAULTS: Mapping[str, str] = {
    "EnvironmentName": "",
    "DomainName": "",
    "HostedZoneId": "",
    "ParentHostedZoneId": "",
    "MailFromSubdomain": "bounces",
    "ReceiptRuleSetName": "email-forwarder",
    "ReceiptRuleSetMode": "create-and-activate",
    "ReservedConcurrency": "0",
    "DownloadConcurrency": "2",
    "AlarmEmail": "",
    "EmailIdentityMode": "create",
    "MxRecordMode": "create",
    "MailFromRecordsMode": "create",
    "DmarcRecordMode": "create",
}
RULE_SET_MODES = ("create-and-activate", "join-existing")
RECORD_MODES = ("create", "existing")
MODE_PARAMETERS = ("EmailIdentityMode", "MxRecordMode", "MailFromRecordsMode", "DmarcRecordMode")
# Lambda keeps this many concurrent executions unreserved in every account and region (PutFunctionConcurrency:
# "as long as you leave at least 100 simultaneous executions unreserved").
LAMBDA_UNRESERVED_MINIMUM = 100
# The stack's functions that reserve concurrency (logical id -> the parameter that sets it): both reservations
# come out of the same unreserved pool, so the deploy fails when together they take it below the minimum.
RESERVING_FUNCTIONS = {"ForwarderFunction": "ReservedConcurrency", "DownloadFunction": "DownloadConcurrency"}
# The log groups the template names after the stack (`/aws/lambda/<stack>/<function>`): CloudFormation fails on a
# leftover of one of these names, and on nothing else under the prefix.
LOG_GROUPS = ("rule-set-activation", "forwarder", "delivery", "download")
# What tells apart the record sets of one name and type that answer by a routing policy (weighted, latency,
# geolocation, geoproximity, IP-based, failover, multivalue): a change to one of them must name them all.
ROUTING_FIELDS = (
    "SetIdentifier",
    "Weight",
    "Region",
    "GeoLocation",
    "GeoProximityLocation",
    "CidrRoutingConfig",
    "Failover",
    "MultiValueAnswer",
    "HealthCheckId",
)


def fqdn(name: str) -> str:
    """A DNS name as this module compares them: lower case, no trailing dot."""
    return name.strip().rstrip(".").lower()


def covers(recipients: Sequence[str], domain: str) -> bool:
    """Whether a receipt rule with these recipients takes mail for `domain` (SES's matching rules).

    No recipients = every verified domain; `example.org` = that domain (not its subdomains); `.example.org` = its
    subdomains; an address = that address only (it still takes part of the domain's mail).
    """
    if not recipients:
        return True
    domain = fqdn(domain)
    for recipient in (fqdn(r) for r in recipients):
        address_domain = recipient.rpartition("@")[2]
        if address_domain == domain or (recipient.startswith(".") and domain.endswith(recipient)):
            return True
    return False


def takes_all_of(recipients: Sequence[str], domain: str) -> bool:
    """Whether a receipt rule with these recipients takes every address of `domain` (not some addresses only)."""
    domain = fqdn(domain)
    return not recipients or any(
        r == domain or (r.startswith(".") and domain.endswith(r)) for r in map(fqdn, recipients)
    )


def zone_id(value: str) -> str:
    """`/hostedzone/Z123` -> `Z123`."""
    return value.rsplit("/", 1)[-1]


def paused_sending(account: Mapping[str, Any], region: str) -> tuple[str, str] | None:
    """Why SES sends nothing from the account in `region`, by its GetAccount answer, and the fix; None when it sends.
    Doctor's account row and preflight's sending row say it alike."""
    if account.get("EnforcementStatus") == "SHUTDOWN":
        return (
            f"SES has paused sending for this account in {region} (enforcement status SHUTDOWN)",
            "see the SES console's Account dashboard (reputation, enforcement) and answer AWS's case",
        )
    if not account.get("SendingEnabled", True):
        # Paused in the account itself (PutAccountSendingAttributes), not by SES's enforcement.
        return (
            f"sending is paused for this account in {region} (SendingEnabled false)",
            f"once the cause is fixed: `aws sesv2 put-account-sending-attributes --sending-enabled --region {region}`",
        )
    return None


def parents(domain: str) -> list[str]:
    """The ancestors of `domain` that could hold a zone, nearest first (never the top-level domain)."""
    labels = fqdn(domain).split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels) - 1)]


@dataclass(frozen=True, slots=True)
class Zone:
    """A Route 53 hosted zone of this account."""

    id: str
    name: str
    private: bool = False


@dataclass(frozen=True, slots=True)
class RoutedSet:
    """One of the record sets of a name and type that answer by a routing policy: its SetIdentifier, routing
    fields and TTL as Route 53 listed them (`routing`), and its own values."""

    routing: Mapping[str, Any]
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Settings:
    """The environment's parameters with the template's defaults filled in."""

    values: Mapping[str, str]
    stack_name: str
    region: str
    environment: str
    # The parameters as the deploy gets them: `values` holds DomainName normalised (`fqdn`), CloudFormation does not.
    given: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, parameters: Mapping[str, str], stack_name: str, region: str, environment: str) -> Settings:
        given = {k: str(v) for k, v in parameters.items()}
        values = {**DEFAULTS, **given}
        values["DomainName"] = fqdn(values["DomainName"])
        return cls(values, stack_name, region, values["EnvironmentName"] or environment, given)

    def __getitem__(self, key: str) -> str:
        return self.values.get(key, "")

    def with_changes(self, changes: Mapping[str, str | None]) -> Settings:
        values, given = dict(self.values), dict(self.given)
        for key, value in changes.items():
            values[key] = DEFAULTS.get(key, "") if value is None else value
            if value is None:
                given.pop(key, None)
            else:
                given[key] = value
        return Settings(values, self.stack_name, self.region, self.environment, given)

    @property
    def domain(self) -> str:
        return self["DomainName"]

    @property
    def mail_from(self) -> str:
        return f"{self['MailFromSubdomain']}.{self.domain}"


@dataclass
class Facts:
    """What the account holds, as far as this environment's stack is concerned."""

    account: str = ""
    caller: str = ""
    region: str = ""
    stack_status: str | None = None
    stack_parameters: dict[str, str] = field(default_factory=dict)
    owned: dict[str, set[str]] = field(default_factory=dict)  # resource type -> physical ids of the stack
    logical: set[str] = field(default_factory=set)  # logical ids of the stack's resources
    physical: dict[str, str] = field(default_factory=dict)  # logical id -> physical id
    zones: dict[str, Zone | None] = field(default_factory=dict)  # by id; None = no such zone
    zones_named: dict[str, list[Zone]] = field(default_factory=dict)  # public zones by name
    records: dict[str, dict[tuple[str, str], list[str]]] = field(default_factory=dict)  # zone id -> (name, type)
    # zone id -> (name, type) -> its routed record sets, when they are (`records` holds their values together)
    routed_sets: dict[str, dict[tuple[str, str], list[RoutedSet]]] = field(default_factory=dict)
    identity: dict[str, Any] | None = None
    active_rule_set: str | None = None
    rule_sets: dict[str, list[dict[str, Any]] | None] = field(default_factory=dict)  # name -> rules; None = none
    concurrency: tuple[int, int] | None = None  # (account limit, unreserved)
    function_reserved: int = 0  # what the stack's functions (RESERVING_FUNCTIONS) reserve now, together
    production_access: bool | None = None
    # Why SES sends nothing from the account in the region, and the fix (`paused_sending`); None: it sends
    sending_paused: tuple[str, str] | None = None
    configuration_set: bool = False
    log_groups: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # check -> why it could not be read

    def owns(self, resource_type: str, physical_id: str | None = None) -> bool:
        ids = self.owned.get(resource_type, set())
        return bool(ids) if physical_id is None else physical_id in ids

    def zone_named(self, name: str) -> Zone | None:
        """The public zone of `name` in this account; of two made by hand, the one its parent zone delegates to.

        Without a parent zone here to tell (an apex), the first: preflight warns that it could not tell.
        """
        zones = self.zones_named.get(fqdn(name), [])
        if len(zones) > 1:
            return self.delegated_zone(name) or zones[0]
        return zones[0] if zones else None

    def delegated_zone(self, name: str) -> Zone | None:
        """Of the public zones named `name`, the one whose name servers the parent zone (here) delegates to."""
        parent = self.parent_zone(name)
        if parent is None:
            return None
        delegated = {fqdn(v) for v in self.record(parent.id, name, "NS") or []}
        for zone in self.zones_named.get(fqdn(name), []):
            if delegated & {fqdn(v) for v in self.record(zone.id, name, "NS") or []}:
                return zone
        return None

    def delegated_outside(self, name: str) -> list[str]:
        """The name servers outside this account that the parent zone (here) delegates `name` to: those answer for
        it, and none of this account's zones of that name is seen. [] when no parent zone here delegates it, or
        when one of those zones is among them."""
        parent = self.parent_zone(name)
        delegated = {fqdn(v) for v in self.record(parent.id, name, "NS") or []} if parent else set()
        ours = {
            fqdn(v) for zone in self.zones_named.get(fqdn(name), []) for v in self.record(zone.id, name, "NS") or []
        }
        return [] if delegated & ours else sorted(delegated)

    def parent_zone(self, domain: str) -> Zone | None:
        """The nearest ancestor of `domain` with a public zone in this account."""
        for name in parents(domain):
            if zone := self.zone_named(name):
                return zone
        return None

    def serves(self, zone: Zone, domain: str) -> bool:
        """Whether the public `zone` answers for `domain`: its own zone, or a parent zone that holds the domain's
        records itself (no NS delegation of the domain in it: the SES console publishes a subdomain's records
        there when the subdomain has no zone of its own)."""
        if zone.private:
            return False
        if zone.name == fqdn(domain):
            return True
        # Nor does it delegate a level between (dev in the apex zone, for mail.dev): resolvers then ask that zone.
        below = [name for name in [fqdn(domain), *parents(domain)] if name.endswith("." + zone.name)]
        return zone.name in parents(domain) and not any(self.record(zone.id, name, "NS") for name in below)

    def holding_zone(self, domain: str) -> Zone | None:
        """The parent zone that holds `domain`'s records, not delegating it: the zone the internet asks for them.

        A zone of the domain's own that this parent does not delegate to (made, never delegated) is seen by nobody.
        """
        parent = self.parent_zone(domain)
        if parent is None or not self.serves(parent, domain) or not self.records_under(parent.id, domain):
            return None
        return parent

    def record(self, zone: str, name: str, record_type: str) -> list[str] | None:
        """The values of a record set in a zone, None when there is none."""
        return self.records.get(zone, {}).get((fqdn(name), record_type))

    def routed(self, zone: str, name: str, record_type: str) -> list[RoutedSet]:
        """The routed record sets (weighted, latency, ...) of a name and type in a zone; [] for a simple one."""
        return self.routed_sets.get(zone, {}).get((fqdn(name), record_type), [])

    def records_under(self, zone: str, domain: str) -> list[tuple[str, str]]:
        """The record sets at `domain` or below it in `zone` (a parent zone), but a delegation (NS, DS) of it."""
        name, suffix = fqdn(domain), "." + fqdn(domain)
        found = self.records.get(zone, {})
        return sorted((n, t) for n, t in found if (n == name and t not in {"NS", "DS"}) or n.endswith(suffix))

    def cname(self, zone: str, name: str) -> list[str] | None:
        """The target of a CNAME at `name`: no record of another type may share its name (Route 53 refuses)."""
        return self.record(zone, name, "CNAME")


# The statuses of a listed resource that the stack no longer holds.
_GONE = {"DELETE_COMPLETE", "DELETE_SKIPPED"}

_FATAL = {
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSignatureException",
}


class Survey:
    """Reads the facts for one environment; every read that AWS refuses becomes an entry in `errors`."""

    def __init__(self, target: Target, settings: Settings) -> None:
        self.target = target
        self.settings = settings
        self.facts = Facts(region=target.region)

    def run(self) -> Facts:
        # Credentials first, and unguarded: without them nothing else can run (exit 2).
        caller = self.target.client("sts").get_caller_identity()
        self.facts.account, self.facts.caller = caller.get("Account", ""), caller.get("Arn", "")
        steps: list[tuple[str, Callable[[], None]]] = [
            ("stack", self.read_stack),
            ("hosted zone", self.read_zones),
            ("SES identity", self.read_identity),
            ("rule set", self.read_rule_sets),
            ("concurrency", self.read_concurrency),
            ("sending", self.read_account),
            ("configuration set", self.read_configuration_set),
            ("log groups", self.read_log_groups),
        ]
        for check, step in steps:
            self._guarded(check, step)
        return self.facts

    def _guarded(self, check: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as error:
            code = aws_code(error)
            if code is None or code in _FATAL:
                raise
            message = error.response["Error"].get("Message", "")  # type: ignore[attr-defined]
            self.facts.errors[check] = f"{code}: {message}".rstrip(": ")

    def _client(self, service: str) -> Any:
        return self.target.client(service)

    # reads ------------------------------------------------------------------------------------------

    def read_stack(self) -> None:
        cloudformation = self._client("cloudformation")
        try:
            stack = cloudformation.describe_stacks(StackName=self.settings.stack_name)["Stacks"][0]
        except Exception as error:
            if aws_code(error) == "ValidationError":  # "Stack with id ... does not exist"
                return
            raise
        self.facts.stack_status = str(stack.get("StackStatus", ""))
        self.facts.stack_parameters = {
            p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])
        }
        # ListStackResources pages through every resource; DescribeStackResources stops at the first 100.
        pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=self.settings.stack_name)
        for resource in (r for page in pages for r in page.get("StackResourceSummaries", [])):
            # A rolled-back or deleted resource is still listed (DELETE_COMPLETE, or DELETE_SKIPPED when retained):
            # it is no longer the stack's, and what has its name now was made by someone else.
            if resource.get("PhysicalResourceId") and resource.get("ResourceStatus") not in _GONE:
                owned = self.facts.owned.setdefault(resource["ResourceType"], set())
                owned.add(str(resource["PhysicalResourceId"]))
                self.facts.logical.add(str(resource.get("LogicalResourceId", "")))
                self.facts.physical[str(resource.get("LogicalResourceId", ""))] = str(resource["PhysicalResourceId"])

    def read_zones(self) -> None:
        route53 = self._client("route53")
        domain = self.settings.domain
        for name in [domain, *parents(domain)]:
            self.facts.zones_named[name] = self._zones_named(route53, name)
            self.facts.zones.update({zone.id: zone for zone in self.facts.zones_named[name]})
        for key in ("HostedZoneId", "ParentHostedZoneId"):
            wanted = self.settings[key].strip()
            if wanted and wanted not in self.facts.zones:
                self.facts.zones[wanted] = self._zone(route53, wanted)
        ids = {z.id for zones in self.facts.zones_named.values() for z in zones}
        ids |= {z.id for z in self.facts.zones.values() if z is not None}
        for zone in sorted(ids):
            self.facts.records[zone], routed = self._records(route53, zone)
            if routed:
                self.facts.routed_sets[zone] = routed

    @staticmethod
    def _zones_named(route53: Any, name: str) -> list[Zone]:
        answer = route53.list_hosted_zones_by_name(DNSName=name, MaxItems="100")
        return [
            Zone(zone_id(z["Id"]), fqdn(z["Name"]), bool(z.get("Config", {}).get("PrivateZone")))
            for z in answer.get("HostedZones", [])
            if fqdn(z["Name"]) == name and not z.get("Config", {}).get("PrivateZone")
        ]

    @staticmethod
    def _zone(route53: Any, wanted: str) -> Zone | None:
        try:
            zone = route53.get_hosted_zone(Id=wanted)["HostedZone"]
        except Exception as error:
            if aws_code(error) in {"NoSuchHostedZone", "InvalidInput"}:
                return None
            raise
        return Zone(zone_id(zone["Id"]), fqdn(zone["Name"]), bool(zone.get("Config", {}).get("PrivateZone")))

    @staticmethod
    def _records(
        route53: Any, zone: str
    ) -> tuple[dict[tuple[str, str], list[str]], dict[tuple[str, str], list[RoutedSet]]]:
        records: dict[tuple[str, str], list[str]] = {}
        routed: dict[tuple[str, str], list[RoutedSet]] = {}
        aliases: list[tuple[tuple[str, str], str]] = []
        for page in route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone):
            for record in page.get("ResourceRecordSets", []):
                key = (fqdn(record["Name"]), record["Type"])
                values = [r["Value"] for r in record.get("ResourceRecords", [])]
                records.setdefault(key, []).extend(values)
                if record.get("SetIdentifier"):
                    routing = {k: record[k] for k in (*ROUTING_FIELDS, "TTL") if k in record}
                    routed.setdefault(key, []).append(RoutedSet(routing, tuple(values)))
                if target := (record.get("AliasTarget") or {}).get("DNSName"):
                    aliases.append((key, fqdn(target)))
        # An alias record has no values of its own: it answers with its target's, the record set of its type at the
        # target name in this zone (an MX, TXT or CNAME alias), else a name outside (CloudFront, a load balancer).
        # Without them it would look like no record at all, and the stack's record of that name and type collide.
        for key, target in aliases:
            records[key].extend(records.get((target, key[1])) or [f"alias {target}"])
        return records, routed

    def read_identity(self) -> None:
        try:
            self.facts.identity = self._client("sesv2").get_email_identity(EmailIdentity=self.settings.domain)
        except Exception as error:
            if aws_code(error) != "NotFoundException":
                raise

    def read_rule_sets(self) -> None:
        ses = self._client("ses")
        active = ses.describe_active_receipt_rule_set()
        if active.get("Metadata", {}).get("Name"):
            self.facts.active_rule_set = active["Metadata"]["Name"]
            self.facts.rule_sets[self.facts.active_rule_set] = list(active.get("Rules", []))
        name = self.settings["ReceiptRuleSetName"]
        if name and name not in self.facts.rule_sets:
            try:
                self.facts.rule_sets[name] = list(ses.describe_receipt_rule_set(RuleSetName=name).get("Rules", []))
            except Exception as error:
                if aws_code(error) != "RuleSetDoesNotExist":
                    raise
                self.facts.rule_sets[name] = None

    def read_concurrency(self) -> None:
        lambda_ = self._client("lambda")
        limits = lambda_.get_account_settings().get("AccountLimit", {})
        self.facts.concurrency = (
            int(limits.get("ConcurrentExecutions", 0)),
            int(limits.get("UnreservedConcurrentExecutions", 0)),
        )
        for logical_id in RESERVING_FUNCTIONS:
            function = self.facts.physical.get(logical_id)
            if function:  # its own reservation is given back when the deploy changes it
                answer = lambda_.get_function_concurrency(FunctionName=function)
                self.facts.function_reserved += int(answer.get("ReservedConcurrentExecutions", 0) or 0)

    def read_account(self) -> None:
        account = self._client("sesv2").get_account()
        self.facts.production_access = bool(account.get("ProductionAccessEnabled"))
        self.facts.sending_paused = paused_sending(account, self.target.region)

    def read_configuration_set(self) -> None:
        try:
            self._client("sesv2").get_configuration_set(ConfigurationSetName=self.settings.stack_name)
        except Exception as error:
            if aws_code(error) != "NotFoundException":
                raise
            return
        self.facts.configuration_set = True

    def read_log_groups(self) -> None:
        prefix = f"/aws/lambda/{self.settings.stack_name}/"
        pages = self._client("logs").get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix)
        names = {prefix + function for function in LOG_GROUPS}
        found = (g["logGroupName"] for page in pages for g in page.get("logGroups", []))
        self.facts.log_groups = [name for name in found if name in names]


def affordable_reservations(facts: Facts, reserved: int, download: int) -> tuple[int, int] | None:
    """(ReservedConcurrency, DownloadConcurrency) lowered until the account can afford both; None when unknown.

    The forwarder's reservation is kept first: it gives the forwarder a pool of its own, which a flood of
    download requests cannot take anyway; the download function's bound goes first (0 = unreserved).
    """
    if facts.concurrency is None:
        return None
    _, unreserved = facts.concurrency
    affordable = max(0, unreserved + facts.function_reserved - LAMBDA_UNRESERVED_MINIMUM)
    kept = min(reserved, affordable)
    return kept, min(download, affordable - kept)


def survey(target: Target, settings: Settings) -> Facts:
    """The facts of `target`'s account and region for `settings` (read-only)."""
    return Survey(target, settings).run()
