"""An AWS account (in moto) as the team left it by hand, before the template: the Done-when scenario of issue 9.

- the apex zone aws-educate.tw with the prod domain's MX, MAIL FROM MX and SPF, DMARC and DKIM records;
- a hand-made zone dev.aws-educate.tw, delegated by an NS record in the apex zone, with dev's records;
- the SES identities of aws-educate.tw (ap-northeast-1) and dev.aws-educate.tw (us-east-1), Easy DKIM and
  the bounces. MAIL FROM domain;
- in each region an active receipt rule set `team-rules` with the earlier forwarder's rule for the domain;
- a new account's Lambda concurrency: 10, nothing to reserve.

moto lacks SES v2 GetAccount and Lambda GetAccountSettings, and its GetEmailIdentity has no DKIM tokens and
no MAIL FROM: `BelowMoto` answers those below moto, in botocore's event hooks, as forwarder_ops.local does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3

APEX = "aws-educate.tw"
DEV = "dev.aws-educate.tw"
PROD_REGION = "ap-northeast-1"
DEV_REGION = "us-east-1"
TEAM_RULE_SET = "team-rules"
RULES = {PROD_REGION: "forward-apex", DEV_REGION: "forward-dev"}

# The repository's samconfig.toml as it was before issue 9 (placeholder zone ids), reduced to two environments.
PLACEHOLDER_SAMCONFIG = """\
version = 0.1

# --- prod: the apex -------------------------------------------------------------------------------------------
[prod.global.parameters]
stack_name = "email-forwarder-prod"
region = "ap-northeast-1"

[prod.deploy.parameters]
capabilities = "CAPABILITY_IAM CAPABILITY_AUTO_EXPAND"
confirm_changeset = true
parameter_overrides = [
    "EnvironmentName=prod",
    "DomainName=aws-educate.tw",
    "HostedZoneId=Z0PLACEHOLDERAPEXZONE",
    "ReceiptRuleSetName=email-forwarder",
    "ReceiptRuleSetMode=create-and-activate",
    # At most 5 forwards at once (a comment adopt must keep).
    "ReservedConcurrency=5",
    "SpamAction=tag",
]

# --- dev ------------------------------------------------------------------------------------------------------
[dev.global.parameters]
stack_name = "email-forwarder-dev"
region = "us-east-1"

[dev.deploy.parameters]
capabilities = "CAPABILITY_IAM CAPABILITY_AUTO_EXPAND"
confirm_changeset = false
parameter_overrides = [
    "EnvironmentName=dev",
    "DomainName=dev.aws-educate.tw",
    "ParentHostedZoneId=Z0PLACEHOLDERAPEXZONE",
    "ReceiptRuleSetName=email-forwarder",
    "ReceiptRuleSetMode=create-and-activate",
    "ReservedConcurrency=0",
    "SubjectPrefix=[dev]",
]
"""
# The same without placeholders, as the committed samconfig.toml is after issue 9 (no zone ids at all).
PLAIN_SAMCONFIG = PLACEHOLDER_SAMCONFIG.replace('    "HostedZoneId=Z0PLACEHOLDERAPEXZONE",\n', "").replace(
    '    "ParentHostedZoneId=Z0PLACEHOLDERAPEXZONE",\n', ""
)


def tokens(domain: str) -> list[str]:
    """The Easy DKIM tokens of the hand-made identity of `domain`."""
    label = domain.split(".")[0]
    return [f"{label}dkimtoken{i}" for i in (1, 2, 3)]


@dataclass
class Account:
    apex_zone: str
    dev_zone: str
    # (name, type) of every record someone made by hand, per zone: what the stack must not create.
    records: dict[str, set[tuple[str, str]]] = field(default_factory=dict)


def _upsert(zone: str, name: str, record_type: str, values: list[str], ttl: int = 300) -> None:
    change = {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": name,
            "Type": record_type,
            "TTL": ttl,
            "ResourceRecords": [{"Value": v} for v in values],
        },
    }
    boto3.client("route53", region_name=DEV_REGION).change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Changes": [change]}
    )


def _mail_records(zone: str, domain: str, region: str) -> set[tuple[str, str]]:
    made = {
        (domain, "MX"): [f"10 inbound-smtp.{region}.amazonaws.com"],
        (f"bounces.{domain}", "MX"): [f"10 feedback-smtp.{region}.amazonses.com"],
        (f"bounces.{domain}", "TXT"): ['"v=spf1 include:amazonses.com ~all"'],
        (f"_dmarc.{domain}", "TXT"): ['"v=DMARC1; p=none; rua=mailto:dmarc@aws-educate.tw"'],
    }
    for token in tokens(domain):
        made[(f"{token}._domainkey.{domain}", "CNAME")] = [f"{token}.dkim.amazonses.com"]
    for (name, record_type), values in made.items():
        _upsert(zone, name, record_type, values)
    return set(made)


def seed_team_account() -> Account:
    """Create the hand-made setup in moto (call inside mock_aws)."""
    route53 = boto3.client("route53", region_name=DEV_REGION)
    apex = route53.create_hosted_zone(Name=APEX, CallerReference="hand-made-apex")
    apex_zone = apex["HostedZone"]["Id"].rsplit("/", 1)[-1]
    dev = route53.create_hosted_zone(Name=DEV, CallerReference="hand-made-dev")
    dev_zone = dev["HostedZone"]["Id"].rsplit("/", 1)[-1]
    account = Account(apex_zone, dev_zone)
    account.records[apex_zone] = _mail_records(apex_zone, APEX, PROD_REGION)
    _upsert(apex_zone, DEV, "NS", list(dev["DelegationSet"]["NameServers"]), ttl=3600)
    account.records[apex_zone].add((DEV, "NS"))
    account.records[dev_zone] = _mail_records(dev_zone, DEV, DEV_REGION)
    for domain, region in ((APEX, PROD_REGION), (DEV, DEV_REGION)):
        boto3.client("sesv2", region_name=region).create_email_identity(EmailIdentity=domain)
        s3 = boto3.client("s3", region_name=region)
        where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=f"team-mail-{region}", **where)  # the earlier forwarder's bucket
        ses = boto3.client("ses", region_name=region)
        ses.create_receipt_rule_set(RuleSetName=TEAM_RULE_SET)
        ses.create_receipt_rule(
            RuleSetName=TEAM_RULE_SET,
            Rule={
                "Name": RULES[region],
                "Enabled": True,
                "Recipients": [domain],
                "ScanEnabled": True,
                "Actions": [{"S3Action": {"BucketName": f"team-mail-{region}", "ObjectKeyPrefix": "in/"}}],
            },
        )
        ses.set_active_receipt_rule_set(RuleSetName=TEAM_RULE_SET)
    return account


@dataclass
class BelowMoto:
    """Answers for the calls moto lacks, registered on each client the CLI makes."""

    concurrency: tuple[int, int] = (10, 10)
    production: bool = True
    calls: list[str] = field(default_factory=list)
    # "service.Operation" -> the error code AWS answers it with (an access the identity lacks, throttling)
    refused: dict[str, str] = field(default_factory=dict)

    def install(self, client: Any) -> Any:
        events = client.meta.events
        events.register("before-call", self._refuse)
        events.register("before-call.sesv2.GetAccount", self._account)
        events.register("before-call.lambda.GetAccountSettings", self._lambda_settings)
        events.register("provide-client-params.sesv2.GetEmailIdentity", self._remember_identity)
        events.register("after-call.sesv2.GetEmailIdentity", self._identity)
        return client

    def _refuse(self, model: Any, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        code = self.refused.get(f"{model.service_model.service_name}.{model.name}")
        if code is None:
            return None
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        error = {
            "Error": {"Code": code, "Message": f"refused {model.name}"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        return AWSResponse("https://aws.local", 400, HTTPHeaders(), None), error

    def _account(self, **_: Any) -> tuple[Any, dict[str, Any]]:
        self.calls.append("GetAccount")
        return _reply({"ProductionAccessEnabled": self.production, "SendingEnabled": True})

    def _lambda_settings(self, **_: Any) -> tuple[Any, dict[str, Any]]:
        self.calls.append("GetAccountSettings")
        limit, unreserved = self.concurrency
        return _reply({"AccountLimit": {"ConcurrentExecutions": limit, "UnreservedConcurrentExecutions": unreserved}})

    def _identity(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        # moto: no DKIM tokens, no MAIL FROM; the hand-made identities have both, verified.
        if "Error" in parsed or parsed.get("IdentityType") != "DOMAIN":
            return
        domain = context["identity"]
        parsed["VerifiedForSendingStatus"] = True
        parsed["FeedbackForwardingStatus"] = True  # SES's default for an identity made in the console
        parsed["DkimAttributes"] = {"SigningEnabled": True, "Status": "SUCCESS", "Tokens": tokens(domain)}
        parsed["MailFromAttributes"] = {
            "MailFromDomain": f"bounces.{domain}",
            "MailFromDomainStatus": "SUCCESS",
            "BehaviorOnMxFailure": "USE_DEFAULT_VALUE",
        }

    def _remember_identity(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["identity"] = params.get("EmailIdentity", "")


def _reply(body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    return AWSResponse("https://aws.local", 200, HTTPHeaders(), None), {
        **body,
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }
