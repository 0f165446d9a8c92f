"""`forwarder doctor`: is a deployed environment able to receive and forward mail? One row per check.

Each check reads AWS (the stack's outputs, SES, Route 53, SSM, SQS) or public DNS and says ✓, ✗ with
the fix, or ! (works, but look). Nothing is changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol

from forwarder_ops.aliases import AliasStore, member_problems, problems
from forwarder_ops.envconfig import StackNotFoundError, Target
from forwarder_ops.errors import CommandError, aws_code, missing_permission
from forwarder_ops.sendas import check_send_as
from forwarder_ops.stackstate import stack_state
from forwarder_ops.suppression import check_suppressed_members
from forwarder_ops.survey import covers, paused_sending, takes_all_of

# Regions with an SES "Email receiving endpoint" (inbound-smtp.<region>.amazonaws.com), from the
# "Email receiving endpoints" table of https://docs.aws.amazon.com/general/latest/gr/ses.html; the same
# list as template.yaml's ReceivingRegion rule. AWS adds regions over time: a region missing here is
# reported as a warning, not a failure.
RECEIVING_REGIONS = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "sa-east-1",
        "eu-west-1",
        "eu-west-2",
        "eu-central-1",
        "eu-north-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
    }
)
_ENDPOINTS_PAGE = "https://docs.aws.amazon.com/general/latest/gr/ses.html (Email receiving endpoints)"
_QUOTA_WARNING = 0.8


class Status(StrEnum):
    OK = "ok"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"


SYMBOLS = {Status.OK: "✓", Status.FAIL: "✗", Status.WARN: "!", Status.SKIP: "-"}


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the report: what was checked, what was found, and how to fix a ✗."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


class DnsLookupError(Exception):
    """DNS could not answer (timeout, no server reachable): the check is inconclusive."""


class Resolver(Protocol):
    """The DNS questions the doctor asks; tests answer them with a fake."""

    def delegation(self, name: str) -> list[str]:
        """The NS host names the parent zone delegates `name` to (empty when it does not)."""

    def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, host) of the MX records of `name` (empty when there are none)."""


def _host(name: Any) -> str:
    return str(name).rstrip(".").lower()


class DnsResolver:
    """Real DNS through dnspython."""

    def __init__(self, timeout: float = 5.0) -> None:
        import dns.resolver

        self.timeout = timeout
        self._resolver = dns.resolver.Resolver()
        self._resolver.lifetime = timeout

    def mx(self, name: str) -> list[tuple[int, str]]:
        import dns.exception
        import dns.resolver

        try:
            answer = self._resolver.resolve(name, "MX")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as error:
            raise DnsLookupError(str(error)) from None
        return sorted((int(r.preference), _host(r.exchange)) for r in answer)

    def delegation(self, name: str) -> list[str]:
        """Ask a name server of the parent zone directly: its referral is the delegation."""
        import dns.exception
        import dns.message
        import dns.name
        import dns.query
        import dns.rdatatype
        import dns.resolver

        qname = dns.name.from_text(name)
        try:
            parent = dns.resolver.zone_for_name(qname.parent(), resolver=self._resolver)
            servers = [r.target for r in self._resolver.resolve(parent, "NS")]
        except dns.exception.DNSException as error:
            raise DnsLookupError(f"cannot find the parent zone of {name}: {error}") from None
        for server in servers:
            for address in self._addresses(server):
                try:
                    query = dns.message.make_query(qname, dns.rdatatype.NS)
                    response, _ = dns.query.udp_with_fallback(query, address, timeout=self.timeout)
                except (dns.exception.DNSException, OSError):
                    continue
                return sorted(
                    {
                        _host(record.target)
                        for section in (response.answer, response.authority)
                        for rrset in section
                        if rrset.rdtype == dns.rdatatype.NS and rrset.name == qname
                        for record in rrset
                    }
                )
        raise DnsLookupError(f"no name server of {_host(parent)} answered")

    def _addresses(self, server: Any) -> list[str]:
        import dns.exception

        try:
            return [r.address for r in self._resolver.resolve(server, "A")]
        except dns.exception.DNSException:
            return []


def system_resolver() -> Resolver:
    """The resolver `forwarder doctor` uses (tests replace this function)."""
    return DnsResolver()


class Doctor:
    """Runs the checks for one environment."""

    def __init__(self, target: Target, resolver: Resolver) -> None:
        self.target = target
        self.resolver = resolver
        self.region = target.region
        self.outputs: dict[str, str] = {}
        self.domain: str | None = None
        self.in_sandbox: bool | None = None  # None: GetAccount did not answer
        self._identity_answer: dict[str, Any] | None = None

    def run(self) -> list[Check]:
        checks = [self.check_region(), self._guarded("stack", self.check_stack)]
        self.domain = self.target.explicit_domain or self.outputs.get("Domain") or self.target.domain
        steps: list[tuple[str, Callable[[], Check]]] = [
            ("SES identity", self.check_identity),
            ("DKIM", self.check_dkim),
            ("MAIL FROM", self.check_mail_from),
            ("NS delegation", self.check_delegation),
            ("MX", self.check_mx),
            ("receipt rule", self.check_receipt_rule),
            ("account", self.check_account),
            ("sandbox members", self.check_sandbox_members),
            ("aliases", self.check_aliases),
            ("failure queue", self.check_failure_queue),
            ("send-as", lambda: check_send_as(self.target, self._aliases())),
            ("suppressed members", lambda: check_suppressed_members(self)),
        ]
        for name, step in steps:
            if self.domain is None and name not in {"account", "aliases", "failure queue"}:
                checks.append(Check(name, Status.SKIP, "the domain is unknown", "give --domain or deploy the stack"))
            else:
                checks.append(self._guarded(name, step))
        return checks

    def _guarded(self, name: str, step: Callable[[], Check]) -> Check:
        """A check that AWS or DNS could not answer is inconclusive (!), not a crash."""
        try:
            return step()
        except CommandError as error:  # e.g. no alias path known without --config-env
            return Check(name, Status.SKIP, str(error))
        except DnsLookupError as error:
            return Check(name, Status.WARN, f"DNS did not answer: {error}", "try again later")
        except Exception as error:
            code = aws_code(error)
            if code is None or code in {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"}:
                raise
            message = error.response["Error"].get("Message", "")  # type: ignore[attr-defined]
            permission = missing_permission(error)
            fix = f"allow {permission} to the operator's role (or profile), then run again" if permission else ""
            return Check(name, Status.WARN, f"could not check: {code}: {message}".rstrip(": "), fix)

    # checks ---------------------------------------------------------------------------------------

    def check_region(self) -> Check:
        if self.region in RECEIVING_REGIONS:
            return Check("region", Status.OK, f"{self.region} receives mail (inbound-smtp.{self.region}.amazonaws.com)")
        return Check(
            "region",
            Status.WARN,
            f"{self.region} is not among the SES receiving regions this tool knows",
            f"confirm that {self.region} is listed at {_ENDPOINTS_PAGE}; if not, deploy to a receiving region",
        )

    def check_stack(self) -> Check:
        name = self.target.stack_name or "(none)"
        deploy = f"sam deploy --config-env {self.target.name}" if self.target.name else "sam deploy"
        try:
            stack = self.target.stack()
        except StackNotFoundError:
            return Check("stack", Status.FAIL, f"{name} does not exist in {self.region}", f"deploy it: `{deploy}`")
        except CommandError as error:
            return Check("stack", Status.SKIP, str(error))
        self.outputs = self.target.outputs()
        status = str(stack.get("StackStatus", ""))
        state = stack_state(name, self.region, status, deploy)
        if state.severity == "ok":
            return Check("stack", Status.OK, f"{name}: {status}")
        severity = Status.WARN if state.severity == "warn" else Status.FAIL
        return Check("stack", severity, f"{name}: {status}: {state.meaning}", state.fix)

    def _identity(self) -> dict[str, Any] | None:
        """SES's GetEmailIdentity for the domain (read once), None when it is not an identity."""
        if self._identity_answer is None:
            try:
                self._identity_answer = self.target.client("sesv2").get_email_identity(EmailIdentity=self.domain)
            except Exception as error:
                if aws_code(error) != "NotFoundException":
                    raise
                self._identity_answer = {}
        return self._identity_answer or None

    def _identity_regions(self) -> list[str]:
        """The other receiving regions where the domain is an SES identity, asked at once. A region that does not
        answer (not opted in, no permission there, unreachable) names nothing: this only adds a hint."""
        regions = sorted(RECEIVING_REGIONS - {self.region})
        clients = [self.target.probe_client("sesv2", region) for region in regions]

        def holds(client: Any) -> bool:
            try:
                client.get_email_identity(EmailIdentity=self.domain)
            except Exception:
                return False
            return True

        with ThreadPoolExecutor(max_workers=8) as pool:
            found = list(pool.map(holds, clients))
        return [region for region, held in zip(regions, found, strict=True) if held]

    def check_identity(self) -> Check:
        identity = self._identity()
        if identity is None:
            elsewhere = self._identity_regions()
            if elsewhere:
                # The commonest cause after a setup made by hand, region by region: the stack (or --region) points
                # at another region than the one that holds the identity, its DKIM keys and its receiving rules.
                return Check(
                    "SES identity",
                    Status.FAIL,
                    f"{self.domain} is not an SES identity in {self.region}; it is one in {', '.join(elsewhere)}",
                    f"identities are per region: check this environment's region (samconfig.toml, --region); "
                    f"deploying in {self.region} makes a second identity there, with its own DKIM records",
                )
            return Check(
                "SES identity",
                Status.FAIL,
                f"{self.domain} is not an SES identity in {self.region}",
                "deploy the stack (it creates the identity); identities are per region",
            )
        if identity.get("VerifiedForSendingStatus"):
            return Check("SES identity", Status.OK, f"{self.domain} verified for sending in {self.region}")
        return Check(
            "SES identity",
            Status.FAIL,
            f"{self.domain} is not verified (status {identity.get('VerificationStatus', 'unknown')})",
            "SES verifies a domain through its DKIM records: fix the DKIM row; it can take up to 72 hours",
        )

    def check_dkim(self) -> Check:
        identity = self._identity()
        if identity is None:
            return Check("DKIM", Status.SKIP, "no SES identity")
        dkim = identity.get("DkimAttributes", {})
        status = dkim.get("Status", "NOT_STARTED")
        if status == "SUCCESS":
            signing = "signing enabled" if dkim.get("SigningEnabled", True) else "signing DISABLED"
            return Check("DKIM", Status.OK if "enabled" in signing else Status.WARN, f"SUCCESS, {signing}")
        if dkim.get("SigningAttributesOrigin") == "EXTERNAL":
            # Bring Your Own DKIM: SES looks for the public key of the team's own key as TXT at the selector.
            selectors = ", ".join(f"{token}._domainkey.{self.domain}" for token in dkim.get("Tokens", []))
            fix = f"publish the public key of your own DKIM key as a TXT record at {selectors or 'its selector'}"
            return Check("DKIM", Status.FAIL, f"status {status} (Bring Your Own DKIM)", fix)
        records = "\n".join(
            f"{token}._domainkey.{self.domain}  CNAME  {token}.dkim.amazonses.com" for token in dkim.get("Tokens", [])
        )
        if status == "NOT_STARTED" and not records:
            # An identity made without Easy DKIM (by hand, or SES v1's verify-domain-identity): nothing to publish
            # until DKIM is switched on, which gives the three tokens.
            start = (
                f"aws sesv2 put-email-identity-dkim-signing-attributes --email-identity {self.domain} "
                f"--signing-attributes-origin AWS_SES --region {self.region}"
            )
            return Check(
                "DKIM",
                Status.FAIL,
                "status NOT_STARTED: DKIM is not switched on for this identity",
                f"switch on Easy DKIM: `{start}`, then publish the three CNAME records it answers",
            )
        where = "check the NS delegation row (the stack publishes them in its hosted zone)" if self._zone_id() else ""
        fix = f"publish these CNAME records{' or ' + where if where else ''}:\n{records}" if records else where
        if status == "TEMPORARY_FAILURE":
            # SES could not look up the records this time and looks again: worth a look, not broken yet.
            return Check(
                "DKIM",
                Status.WARN,
                "status TEMPORARY_FAILURE: SES could not look up the DKIM records just now; it tries again",
                f"if it stays so for a day, check that the records answer: {fix}" if fix else "",
            )
        return Check("DKIM", Status.FAIL, f"status {status}", fix or "deploy the stack, then publish its DKIM records")

    def check_mail_from(self) -> Check:
        identity = self._identity()
        if identity is None:
            return Check("MAIL FROM", Status.SKIP, "no SES identity")
        attributes = identity.get("MailFromAttributes") or {}
        mail_from = attributes.get("MailFromDomain")
        if not mail_from:
            return Check(
                "MAIL FROM",
                Status.WARN,
                "no custom MAIL FROM domain: bounces go to amazonses.com and SPF does not align for DMARC",
                f"deploy the stack: it sets bounces.{self.domain} (the MailFromSubdomain parameter, default bounces)",
            )
        status = attributes.get("MailFromDomainStatus", "PENDING")
        if status == "SUCCESS":
            return Check("MAIL FROM", Status.OK, f"{mail_from}: SUCCESS")
        records = (
            f"{mail_from}  MX  10 feedback-smtp.{self.region}.amazonses.com\n"
            f'{mail_from}  TXT  "v=spf1 include:amazonses.com ~all"'
        )
        # What SES does meanwhile: REJECT_MESSAGE refuses every send (nothing is forwarded), USE_DEFAULT_VALUE sends
        # with amazonses.com as the MAIL FROM (SPF then does not align for DMARC).
        rejects = attributes.get("BehaviorOnMxFailure") == "REJECT_MESSAGE"
        meanwhile = (
            "SES refuses every send meanwhile (BehaviorOnMxFailure REJECT_MESSAGE): nothing is forwarded"
            if rejects
            else "SES sends with its own MAIL FROM meanwhile"
        )
        if status == "TEMPORARY_FAILURE" and not rejects:
            return Check(
                "MAIL FROM",
                Status.WARN,
                f"{mail_from}: TEMPORARY_FAILURE: SES could not look up its MX record just now; {meanwhile}",
                f"if it stays so for a day, check that these records answer:\n{records}",
            )
        fix = f"publish these records:\n{records}"
        return Check("MAIL FROM", Status.FAIL, f"{mail_from}: {status}: {meanwhile}", fix)

    def _zone_id(self) -> str | None:
        return self.outputs.get("HostedZoneId") or None

    def check_delegation(self) -> Check:
        zone_id = self._zone_id()
        if not zone_id:
            return Check("NS delegation", Status.SKIP, "the stack has no hosted zone (DNS is managed elsewhere)")
        try:
            zone = self.target.client("route53").get_hosted_zone(Id=zone_id)
        except Exception as error:
            if aws_code(error) != "NoSuchHostedZone":
                raise
            adopt = f"forwarder adopt{self._env_flag}"
            return Check(
                "NS delegation",
                Status.FAIL,
                f"the stack's hosted zone {zone_id} does not exist in this account: nothing answers its records",
                f"give HostedZoneId the zone that holds {self.domain} (`{adopt}` looks it up by name), then redeploy",
            )
        expected = sorted(_host(ns) for ns in zone.get("DelegationSet", {}).get("NameServers", []))
        # The zone of the domain, or a parent zone that holds the domain's records: that zone must be delegated.
        name = _host(str(zone.get("HostedZone", {}).get("Name") or self.domain))
        actual = sorted({_host(ns) for ns in self.resolver.delegation(name)})
        parent = name.partition(".")[2]
        fix = f"{self._where_delegated(name, parent)}, set the NS records of {name} to:\n" + "\n".join(expected)
        if actual == expected:
            return Check("NS delegation", Status.OK, f"{parent} delegates {name} to the hosted zone {zone_id}")
        if not actual:
            return Check("NS delegation", Status.FAIL, f"{parent} has no NS records for {name}", fix)
        return Check("NS delegation", Status.FAIL, f"{parent} delegates to {', '.join(actual)}, not the zone", fix)

    def _where_delegated(self, name: str, parent: str) -> str:
        """Where the NS records of `name` are set: the parent's zone when this account holds it, the registrar
        under a top-level domain, else wherever the parent is managed (or the registrar, under a suffix like com.tw)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            zones = self.target.client("route53").list_hosted_zones_by_name(DNSName=parent, MaxItems="10")
        except (BotoCoreError, ClientError):  # not allowed to look: say it without the zone's id
            zones = {}
        for zone in zones.get("HostedZones", []):
            if _host(zone.get("Name")) == parent and not zone.get("Config", {}).get("PrivateZone"):
                return f"in the parent zone {parent} ({str(zone['Id']).rsplit('/', 1)[-1]})"
        if "." not in parent:
            return f"at the registrar of {name}"
        return f"where {parent} is managed (at the registrar of {name} if {parent} is a public suffix like com.tw)"

    def check_mx(self) -> Check:
        expected = f"inbound-smtp.{self.region}.amazonaws.com"
        records = sorted((preference, _host(host)) for preference, host in self.resolver.mx(str(self.domain)))
        fix = f"publish the MX record: {self.domain}  MX  10 {expected}"
        if not records:
            return Check("MX", Status.FAIL, f"{self.domain} has no MX record", fix)
        shown = ", ".join(f"{p} {h}" for p, h in records)
        best = min(p for p, _ in records)
        hosts = {h for _, h in records}
        if expected in {h for p, h in records if p == best}:
            others = hosts - {expected}
            if others:
                return Check("MX", Status.WARN, f"{shown}: other hosts share the top preference", fix)
            return Check("MX", Status.OK, shown)
        if expected in hosts:
            return Check("MX", Status.WARN, f"{shown}: another host is preferred over {expected}", fix)
        wrong = sorted(h for h in hosts if h.startswith("inbound-smtp."))
        if wrong:
            return Check("MX", Status.FAIL, f"{shown}: another region's endpoint; the stack is in {self.region}", fix)
        return Check("MX", Status.FAIL, f"{shown}: mail goes elsewhere, not to SES", fix)

    def check_receipt_rule(self) -> Check:
        ours = self.outputs.get("ReceiptRuleSetName")
        rule_name = self.outputs.get("ReceiptRuleName")
        active = self.target.client("ses").describe_active_receipt_rule_set()
        active_name = active.get("Metadata", {}).get("Name")
        activate = f"aws ses set-active-receipt-rule-set --rule-set-name {ours or 'NAME'} --region {self.region}"
        if not active_name:
            return Check("receipt rule", Status.FAIL, f"no active receipt rule set in {self.region}", activate)
        rules = active.get("Rules", [])
        rule = next((r for r in rules if r.get("Name") == rule_name), None) if rule_name else None
        if ours and active_name != ours:
            return self._other_set_active(ours, active_name, rules, rule, activate)
        if rule is None:
            rule = next((r for r in rules if covers(r.get("Recipients", []), str(self.domain))), None)
        if rule is None:
            missing = rule_name or f"a rule for {self.domain}"
            return Check("receipt rule", Status.FAIL, f"{active_name} has no {missing}", "redeploy the stack")
        label = f"{active_name}/{rule['Name']}"
        if not rule.get("Enabled"):
            return Check(
                "receipt rule", Status.FAIL, f"{label} is disabled", "enable it in the SES console, or redeploy"
            )
        return self._reach(active_name, rules, rule)

    def _other_set_active(
        self, ours: str, active_name: str, rules: Sequence[dict[str, Any]], rule: dict[str, Any] | None, activate: str
    ) -> Check:
        """Another set than the stack's is active: a copy of ours (cloned by hand) that holds our rule still takes
        the mail; else none of it reaches the forwarder."""
        if rule is not None and rule.get("Enabled"):
            reach = self._reach(active_name, rules, rule)
            if reach.status == Status.OK:
                return Check(
                    "receipt rule",
                    Status.WARN,
                    f"{reach.detail}, but the active set is {active_name}, not the stack's {ours}: a deploy changes "
                    f"{ours}, not the rule that takes the mail",
                    f"make the stack's set the active one again (`{activate}`), or set ReceiptRuleSetName="
                    f"{active_name} with ReceiptRuleSetMode=join-existing and redeploy",
                )
            return reach
        try:
            self.target.client("ses").describe_receipt_rule_set(RuleSetName=ours)
        except Exception as error:
            if aws_code(error) != "RuleSetDoesNotExist":
                raise
            return Check(
                "receipt rule",
                Status.FAIL,
                f"the active rule set is {active_name}; the stack's {ours} does not exist any more",
                f"redeploy the stack (it creates {ours}), then `{activate}` (this stops {active_name}'s rules), or "
                f"set ReceiptRuleSetName={active_name} with ReceiptRuleSetMode=join-existing and redeploy",
            )
        return Check(
            "receipt rule",
            Status.FAIL,
            f"the active rule set is {active_name}, ours is {ours} (one active set per region)",
            f"move our rule into {active_name}, or `{activate}` (this stops {active_name}'s rules)",
        )

    def _reach(self, active_name: str, rules: Sequence[dict[str, Any]], rule: dict[str, Any]) -> Check:
        """Whether the mail of our domain reaches our enabled rule: listed in it, and not stopped before it."""
        label = f"{active_name}/{rule['Name']}"
        if not covers(rule.get("Recipients", []), str(self.domain)):
            return Check("receipt rule", Status.WARN, f"{label} does not list {self.domain} as a recipient")
        stopped = self._stopped_before(rules[: rules.index(rule)])
        if stopped is None:
            return Check("receipt rule", Status.OK, f"{label} active and enabled")
        earlier, taken = stopped
        return Check(
            "receipt rule",
            Status.FAIL if taken == [str(self.domain)] else Status.WARN,
            f"{active_name}/{earlier} stops the rule set for {', '.join(taken)} before {rule['Name']}: that mail "
            "never reaches the forwarder",
            f"move {rule['Name']} above {earlier} in {active_name} (SES console > Email receiving), or take the "
            "Stop action out of it",
        )

    def _stopped_before(self, earlier: Sequence[dict[str, Any]]) -> tuple[str, list[str]] | None:
        """The first enabled rule of `earlier` that stops the rule set for mail of our domain (SES runs the rules
        in order), with what it takes: [the domain], or the addresses of it that it lists."""
        domain = str(self.domain)
        for other in earlier:
            actions = other.get("Actions") or []
            recipients = other.get("Recipients") or []
            if not other.get("Enabled") or not any("StopAction" in action for action in actions):
                continue
            if not covers(recipients, domain):
                continue
            if takes_all_of(recipients, domain):
                return str(other.get("Name")), [domain]
            return str(other.get("Name")), [r for r in recipients if covers([r], domain)]
        return None

    def check_account(self) -> Check:
        account = self.target.client("sesv2").get_account()
        quota = account.get("SendQuota", {})
        limit, rate, sent = quota.get("Max24HourSend", 0), quota.get("MaxSendRate", 0), quota.get("SentLast24Hours", 0)
        # SES: "A value of -1 signifies an unlimited quota" (SendQuota.Max24HourSend)
        daily = "unlimited" if limit < 0 else f"{limit:,.0f}/24h"
        usage = f"quota {daily} at {rate:g}/s, {sent:,.0f} sent in the last 24h"
        self.in_sandbox = not account.get("ProductionAccessEnabled", False)
        if paused := paused_sending(account, self.region):
            problem, fix = paused
            return Check("account", Status.FAIL, f"{problem}: nothing is forwarded", fix)
        if self.in_sandbox:
            return Check(
                "account",
                Status.WARN,
                f"in the SES sandbox in {self.region}: only verified addresses receive mail; {usage}",
                "request production access: SES console > Account dashboard > Request production access (per region)",
            )
        if account.get("EnforcementStatus") == "PROBATION" or (limit > 0 and sent >= _QUOTA_WARNING * limit):
            return Check("account", Status.WARN, f"production access; {usage}", "ask for a higher quota if needed")
        return Check("account", Status.OK, f"production access; {usage}")

    def check_sandbox_members(self) -> Check:
        if self.in_sandbox is None:
            return Check(
                "sandbox members", Status.SKIP, f"unknown whether {self.region} is in the sandbox: see the account row"
            )
        if not self.in_sandbox:
            return Check("sandbox members", Status.SKIP, "not in the sandbox: any address may receive")
        members = {
            m
            for alias, ms in self._aliases().items()
            for m in ms
            if not member_problems(alias, [m], self.domain)  # skipped anyway; the aliases row names them
        }
        verified = self._verified_identities()
        unverified = sorted(m for m in members if m.lower() not in verified and _domain(m) not in verified)
        if not unverified:
            return Check("sandbox members", Status.OK, f"all {len(members)} members are verified identities")
        shown = ", ".join(unverified[:10]) + (f" and {len(unverified) - 10} more" if len(unverified) > 10 else "")
        return Check(
            "sandbox members",
            Status.FAIL,
            f"{len(unverified)} member(s) cannot receive in the sandbox: {shown}",
            f"verify each address (`aws sesv2 create-email-identity --email-identity ADDRESS --region {self.region}`, "
            "then they click the link) or request production access",
        )

    def _verified_identities(self) -> set[str]:
        sesv2 = self.target.client("sesv2")
        names: set[str] = set()
        request: dict[str, Any] = {"PageSize": 1000}
        while True:  # botocore has no paginator for SES v2 ListEmailIdentities
            page = sesv2.list_email_identities(**request)
            for identity in page.get("EmailIdentities", []):
                if identity.get("VerificationStatus", "SUCCESS") == "SUCCESS":
                    names.add(str(identity["IdentityName"]).lower())
            if not page.get("NextToken"):
                return names
            request["NextToken"] = page["NextToken"]

    @property
    def _env_flag(self) -> str:
        return self.target.command_flags

    def _alias_path(self) -> str:
        """--alias-path (the operator asked for it), else the stack's, else samconfig's or the default."""
        path = self.target.explicit_alias_path or self.outputs.get("AliasPath") or self.target.alias_path
        return path.rstrip("/")

    def _aliases(self) -> dict[str, list[str]]:
        return AliasStore(self.target.client("ssm"), self._alias_path()).read()

    def check_aliases(self) -> Check:
        path = self._alias_path()
        store = AliasStore(self.target.client("ssm"), path)
        aliases = store.read()
        if not aliases:
            return Check(
                "aliases",
                Status.WARN,
                f"no aliases under {path}: every mail is refused as an unknown recipient",
                f"add one: `forwarder aliases set team a@example.org{self._env_flag}` or `forwarder aliases import`",
            )
        found = list(store.unwritable.values()) + problems(aliases, self.domain)
        members = sum(len(m) for m in aliases.values())
        if not found:
            return Check("aliases", Status.OK, f"{len(aliases)} aliases, {members} members, all valid")
        return Check(
            "aliases",
            Status.FAIL,
            f"{len(found)} problem(s) under {path}: " + "; ".join(found),
            f"correct them with `forwarder aliases set|remove ...{self._env_flag}` (until then they are skipped)",
        )

    def check_failure_queue(self) -> Check:
        url = self.outputs.get("FailureQueueUrl")
        if not url:
            return Check("failure queue", Status.SKIP, "the stack has no FailureQueueUrl output")
        attributes = self.target.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        waiting = int(attributes.get("ApproximateNumberOfMessages", 0))
        in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        if waiting + in_flight == 0:
            return Check("failure queue", Status.OK, "empty: no parked events")
        env = self._env_flag
        return Check(
            "failure queue",
            Status.FAIL,
            f"{waiting + in_flight} parked event(s): mail that was not forwarded after Lambda's retries",
            f"find out why (`forwarder redrive{env} --dry-run`), fix it, then `forwarder redrive{env}`",
        )


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def report(target: Target, checks: Sequence[Check], domain: str | None) -> list[str]:
    """The table: one line per check, the fix of a ✗ or ! indented below it."""
    from forwarder_ops.console import table

    title = f"forwarder doctor: {target.name or 'environment'}"
    parts = [f"stack {target.stack_name}" if target.stack_name else "", target.region, domain or ""]
    lines = [f"{title} ({', '.join(p for p in parts if p)})", ""]
    width = max(len(c.name) for c in checks)
    rows = table([(SYMBOLS[c.status], c.name.ljust(width), c.detail) for c in checks], indent="  ")
    for check, row in zip(checks, rows, strict=True):
        lines.append(row)
        if check.fix and check.status in {Status.FAIL, Status.WARN}:
            pad = " " * (width + 7)
            fix_lines = check.fix.splitlines()
            lines.append(f"{pad}fix: {fix_lines[0]}")
            lines += [f"{pad}     {line}" for line in fix_lines[1:]]
    counts = {s: sum(c.status == s for c in checks) for s in Status}
    lines += [
        "",
        f"{len(checks)} checks: {counts[Status.OK]} ✓  {counts[Status.FAIL]} ✗  {counts[Status.WARN]} !"
        + (f"  {counts[Status.SKIP]} skipped" if counts[Status.SKIP] else ""),
    ]
    return lines


def run_doctor(target: Target, resolver: Resolver | None = None) -> tuple[list[Check], str | None]:
    """All checks for `target`, and the domain they were made for."""
    doctor = Doctor(target, resolver or system_resolver())
    checks = doctor.run()
    return checks, doctor.domain
