"""The transformed template of each environment: what CloudFormation will create, and how it is wired."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.template.cloudformation import ACCOUNT, APEX_ZONE, ENVIRONMENTS, ROOT, Environment, Stack, statements

PARAMETERS = {
    "EnvironmentName", "DomainName", "ParentHostedZoneId", "HostedZoneId", "MailFromSubdomain",
    "ReceiptRuleSetName", "ReceiptRuleSetMode", "AliasPath", "RetentionDays", "AlarmEmail", "DmarcPolicy",
    "DmarcReportAddress", "TlsPolicy", "ReservedConcurrency", "SpamAction", "MaxMessageBytes", "SubjectPrefix",
    "Tracing", "EmailIdentityMode", "MxRecordMode", "MailFromRecordsMode", "DmarcRecordMode", "TraceSubjects",
    "ReplyMode", "DownloadConcurrency",
}  # fmt: skip
OUTPUTS = {
    "Domain", "HostedZoneId", "NameServers", "MailBucket", "FunctionName", "FunctionArn", "DownloadUrl",
    "FailureQueueUrl", "FailureQueueArn", "IdentityArn", "AliasPath", "ReceiptRuleSetName", "ReceiptRuleName",
    "IdempotencyTable", "ConfigurationSetName", "AlarmTopicArn", "TraceTable", "ReplyTable", "LinkSecretArn",
}  # fmt: skip
PREFIX = "inbound/"
# What each adoption parameter leaves to what exists, and the resources it then does not create.
ADOPTED = {
    "EmailIdentityMode": {"EmailIdentity", "DkimRecords"},
    "MxRecordMode": {"InboundMxRecord"},
    "MailFromRecordsMode": {"MailFromRecords"},
    "DmarcRecordMode": {"DmarcRecord"},
}
# The resource types that hold what a team may already have made by hand.
ADOPTABLE_TYPES = {
    "AWS::SES::EmailIdentity",
    "AWS::SES::ReceiptRuleSet",
    "AWS::Route53::HostedZone",
    "AWS::Route53::RecordSet",
    "AWS::Route53::RecordSetGroup",
}


def rule_arn(stack: Stack) -> str:
    rule = stack.properties("ReceiptRule")
    rule_set = rule["RuleSetName"]
    if rule_set == "<SharedReceiptRuleSet.RuleSetName>":  # the custom resource answers the set's name
        rule_set = stack.properties("SharedReceiptRuleSet")["RuleSetName"]
    region = stack.pseudo["AWS::Region"]
    return f"arn:aws:ses:{region}:{ACCOUNT}:receipt-rule-set/{rule_set}:receipt-rule/{rule['Rule']['Name']}"


def records(stack: Stack) -> dict[tuple[str, str], list[str]]:
    """(name, type) -> values of every mail record the stack creates (record sets and groups; not the delegation)."""
    found = {}
    for logical_id in stack.resources("AWS::Route53::RecordSetGroup"):
        for record in stack.properties(logical_id)["RecordSets"]:
            found[(record["Name"], record["Type"])] = record["ResourceRecords"]
    for logical_id in set(stack.resources("AWS::Route53::RecordSet")) - {"ParentDelegation"}:
        record = stack.properties(logical_id)
        found[(record["Name"], record["Type"])] = record["ResourceRecords"]
    return found


def zones_of_records(stack: Stack) -> set[str]:
    """The zones the stack's mail records go into (the parent delegation aside)."""
    return {
        stack.properties(logical_id)["HostedZoneId"]
        for kind in ("AWS::Route53::RecordSetGroup", "AWS::Route53::RecordSet")
        for logical_id in stack.resources(kind)
        if logical_id != "ParentDelegation"
    }


# --- interface --------------------------------------------------------------------------------------------


def test_template_parameters_are_the_ones_the_cli_reads(template: dict[str, Any]) -> None:
    # GIVEN the operator CLI reads these names from samconfig THEN the template declares exactly them
    assert set(template["Parameters"]) == PARAMETERS


def test_template_outputs_the_names_the_cli_relies_on(stack: Stack, env: Environment) -> None:
    # GIVEN a deployed environment WHEN the CLI reads its outputs THEN every name it relies on is there
    outputs = stack.outputs()
    assert outputs.keys() >= OUTPUTS
    assert outputs["Domain"] == env.parameters["DomainName"]
    assert outputs["ReceiptRuleName"] == env.stack_name
    assert outputs["ReceiptRuleSetName"] == env.parameters["ReceiptRuleSetName"]
    assert outputs["DownloadUrl"] == "<DownloadFunctionUrl.FunctionUrl>"
    assert outputs["IdentityArn"] == f"arn:aws:ses:{env.region}:{ACCOUNT}:identity/{env.parameters['DomainName']}"
    assert outputs["AliasPath"] == f"/email-forwarder/{env.name}/aliases"
    assert outputs["HostedZoneId"] == (stack.parameters["HostedZoneId"] or "<Ref:HostedZone>")
    assert outputs["NameServers"] == ("existing" if env.name == "prod" else "<join <HostedZone.NameServers>>")


def test_template_rules_accept_every_environment_region(stack: Stack, env: Environment, variant: Any) -> None:
    # GIVEN the environments' regions, all of which receive mail THEN the template's rules accept them; prod's
    # only failure is its missing AlarmEmail, which samconfig.toml leaves for the team to fill in
    if env.name == "prod":
        assert [failure.split(":")[0] for failure in stack.rule_failures()] == ["AlarmEmail is required for prod"]
        stack = variant("prod", AlarmEmail="ops@aws-educate.tw")
    assert stack.rule_failures() == []


def test_template_rules_require_alarm_email_for_prod_only(variant: Any) -> None:
    # GIVEN prod without AlarmEmail WHEN it is deployed THEN it fails at the start, saying where to set it
    (failure,) = variant("prod", AlarmEmail="").rule_failures()
    assert "AlarmEmail is required for prod" in failure
    assert "samconfig.toml" in failure
    # GIVEN another environment without AlarmEmail THEN that is its choice
    assert variant("dev", AlarmEmail="").rule_failures() == []


@pytest.mark.parametrize("parameter", ["HostedZoneId", "ParentHostedZoneId"])
@pytest.mark.parametrize("placeholder", ["Z0PLACEHOLDERAPEXZONE", "Z0EXAMPLE12345", "ZREPLACEME123", "Z0CHANGEME1"])
def test_template_zone_id_patterns_refuse_placeholders(
    template: dict[str, Any], parameter: str, placeholder: str
) -> None:
    # GIVEN a zone id with a placeholder word WHEN CloudFormation checks the parameters THEN the value is refused
    # before anything is created (and the constraint says how to find the real id)
    spec = template["Parameters"][parameter]
    assert not re.fullmatch(spec["AllowedPattern"], placeholder)
    assert "forwarder adopt" in spec["ConstraintDescription"]
    for accepted in ("", APEX_ZONE, "Z23ABCDEFGHIJK"):
        assert re.fullmatch(spec["AllowedPattern"], accepted), accepted


@pytest.mark.parametrize(
    ("name", "parameter"), [("prod", "HostedZoneId"), ("dev", "ParentHostedZoneId"), ("preview", "ParentHostedZoneId")]
)
@pytest.mark.parametrize("example", ["Z0123456789ABCDEFGHIJ", "Z23YXV4OVPL04A", "Z1D633PJN98FT9"])
def test_template_rules_refuse_example_zone_ids(variant: Any, name: str, parameter: str, example: str) -> None:
    # GIVEN a documented example id, which looks real WHEN the stack is deployed THEN the rules refuse it at the
    # start, naming the parameter and the command that finds the real one
    failures = variant(name, AlarmEmail="ops@aws-educate.tw", **{parameter: example}).rule_failures()
    assert [f for f in failures if f.startswith(f"{parameter} is an example id")], failures
    assert all("forwarder adopt" in f for f in failures if f.startswith(parameter))


@pytest.mark.parametrize("region", ["ap-east-1", "me-central-1", "mx-central-1"])
def test_template_rules_refuse_a_region_without_receiving(variant: Any, region: str) -> None:
    # GIVEN a region where SES does not receive mail WHEN the stack is deployed there THEN it fails before any
    # resource is created, saying why
    stack = variant("dev")
    stack.pseudo["AWS::Region"] = region
    failures = stack.rule_failures()
    assert len(failures) == 1
    assert "receiving" in failures[0]


def test_template_receiving_regions_exist_in_cloudformation(template: dict[str, Any]) -> None:
    # GIVEN the template's list of receiving regions THEN CloudFormation offers the SES receipt resources in each
    # (cfn-lint's per-region registry schemas)
    import cfnlint.data.schemas.providers as providers

    regions = template["Rules"]["ReceivingRegion"]["Assertions"][0]["Assert"]["Fn::Contains"][0]
    folder = providers.__path__[0]
    for region in regions:
        with open(f"{folder}/{region}.json") as handle:
            assert "AWS::SES::ReceiptRule" in json.load(handle), region


def test_template_rules_refuse_delegating_an_existing_zone(variant: Any) -> None:
    # GIVEN an existing zone WHEN a parent zone is given too THEN the rules refuse (delegation is for new zones)
    stack = variant("prod", ParentHostedZoneId="Z0PARENTZONE")
    assert any("ParentHostedZoneId" in failure for failure in stack.rule_failures())


# --- DNS and identity -------------------------------------------------------------------------------------


def test_template_zone_created_and_delegated_or_existing(stack: Stack, env: Environment) -> None:
    # GIVEN prod's apex zone exists and the others are subdomains WHEN transformed THEN prod uses its zone, the
    # others create theirs and add the NS delegation to the parent zone
    if env.name == "prod":
        assert not stack.conditions["CreateHostedZone"]
        assert not stack.exists("HostedZone")
        assert not stack.exists("ParentDelegation")
        assert zones_of_records(stack) == {stack.parameters["HostedZoneId"]}
    else:
        assert stack.conditions["CreateHostedZone"]
        assert stack.conditions["DelegateFromParent"]
        assert stack.properties("HostedZone")["Name"] == env.parameters["DomainName"]
        delegation = stack.properties("ParentDelegation")
        assert delegation["HostedZoneId"] == stack.parameters["ParentHostedZoneId"]
        assert delegation["Name"] == env.parameters["DomainName"]
        assert delegation["Type"] == "NS"
        assert delegation["ResourceRecords"] == "<HostedZone.NameServers>"
        assert zones_of_records(stack) == {"<Ref:HostedZone>"}


def test_template_subdomain_without_parent_zone_is_not_delegated(variant: Any) -> None:
    # GIVEN no parent zone in this account WHEN transformed THEN the zone is created and not delegated
    stack = variant("dev", ParentHostedZoneId="")
    assert stack.exists("HostedZone")
    assert not stack.exists("ParentDelegation")


def test_template_mail_dns_records(stack: Stack, env: Environment) -> None:
    # GIVEN the environment's region and domain THEN DKIM, inbound MX, MAIL FROM MX/SPF and DMARC are published;
    # prod leaves the organisation's apex MX and DMARC record alone (samconfig.toml)
    domain, region = env.parameters["DomainName"], env.region
    published = records(stack)
    for n in (1, 2, 3):
        assert published[(f"<EmailIdentity.DkimDNSTokenName{n}>", "CNAME")] == [f"<EmailIdentity.DkimDNSTokenValue{n}>"]
    assert published[(f"bounces.{domain}", "MX")] == [f"10 feedback-smtp.{region}.amazonses.com"]
    assert published[(f"bounces.{domain}", "TXT")] == ['"v=spf1 include:amazonses.com ~all"']
    if env.name == "prod":
        assert (domain, "MX") not in published
        assert (f"_dmarc.{domain}", "TXT") not in published
        assert len(published) == 5
        return
    assert published[(domain, "MX")] == [f"10 inbound-smtp.{region}.amazonaws.com"]
    policy = env.parameters.get("DmarcPolicy", "none")
    assert published[(f"_dmarc.{domain}", "TXT")] == [f'"v=DMARC1; p={policy}"']
    assert len(published) == 7


def test_template_prod_manages_apex_mx_and_dmarc_when_asked(variant: Any) -> None:
    # GIVEN prod asks for the organisation-wide records WHEN transformed THEN it publishes them in the apex zone
    stack = variant("prod", MxRecordMode="create", DmarcRecordMode="create")
    published = records(stack)
    assert published[("aws-educate.tw", "MX")] == ["10 inbound-smtp.ap-northeast-1.amazonaws.com"]
    assert published[("_dmarc.aws-educate.tw", "TXT")] == ['"v=DMARC1; p=none"']
    assert stack.properties("InboundMxRecord")["HostedZoneId"] == APEX_ZONE


def test_template_dmarc_reports_when_an_address_is_given(variant: Any) -> None:
    stack = variant("dev", DmarcReportAddress="dmarc@aws-educate.tw", DmarcPolicy="reject")
    published = records(stack)
    assert published[("_dmarc.dev.aws-educate.tw", "TXT")] == ['"v=DMARC1; p=reject; rua=mailto:dmarc@aws-educate.tw"']


# --- adopting what exists ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENVIRONMENTS)
@pytest.mark.parametrize("parameter", sorted(ADOPTED))
def test_template_existing_mode_creates_none_of_its_resources(variant: Any, name: str, parameter: str) -> None:
    # GIVEN one group that already exists WHEN the stack is told so THEN it creates none of that group and all else
    # it would create otherwise
    created = variant(name, **dict.fromkeys(ADOPTED, "create"))
    adopted = variant(name, **{**dict.fromkeys(ADOPTED, "create"), parameter: "existing"})
    assert set(created.resources()) - set(adopted.resources()) == ADOPTED[parameter]
    assert set(adopted.resources()) <= set(created.resources())


def test_template_existing_identity_keeps_sending_scopes_and_outputs(variant: Any) -> None:
    # GIVEN the hand-made identity WHEN the stack does not create one THEN nothing refers to the missing resource:
    # the forwarder may still send as the domain through the configuration set, and the outputs name the identity
    stack = variant("dev", EmailIdentityMode="existing")
    assert not stack.resources("AWS::SES::EmailIdentity")
    created = json.dumps([stack.properties(logical_id) for logical_id in stack.resources()])
    assert "<EmailIdentity." not in created
    assert "<Ref:EmailIdentity>" not in created
    identity = f"arn:aws:ses:us-east-1:{ACCOUNT}:identity/dev.aws-educate.tw"
    assert stack.outputs()["IdentityArn"] == identity
    variables = stack.properties("ForwarderFunction")["Environment"]["Variables"]
    assert variables["FORWARDER_CONFIGURATION_SET"] == "<Ref:ConfigurationSet>"
    send = [s for s in statements(stack.resource("ForwarderFunctionRole"), stack) if "ses:SendRawEmail" in s["Action"]]
    assert [identity in statement["Resource"] for statement in send] == [True]


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_template_adopting_everything_creates_none_of_it(variant: Any, name: str) -> None:
    # GIVEN a team that made the identity, the zone, every record and the active rule set by hand WHEN the stack is
    # deployed with the overrides `forwarder adopt` writes THEN it creates none of those, only its own receiving
    stack = variant(
        name,
        HostedZoneId="Z0HANDMADEZONE42",
        ParentHostedZoneId="",
        **dict.fromkeys(ADOPTED, "existing"),
        ReceiptRuleSetMode="join-existing",
        ReceiptRuleSetName="team-rules",
        AlarmEmail="ops@aws-educate.tw",
    )
    assert stack.rule_failures() == []
    assert {r["Type"] for r in stack.resources().values()} & ADOPTABLE_TYPES == set()
    assert stack.properties("SharedReceiptRuleSet")["Mode"] == "join-existing"
    assert stack.properties("ReceiptRule")["Rule"]["Recipients"] == [stack.parameters["DomainName"]]
    assert stack.outputs()["HostedZoneId"] == "Z0HANDMADEZONE42"
    assert stack.outputs()["NameServers"] == "existing"


def test_template_existing_zone_of_a_subdomain_creates_no_zone(variant: Any) -> None:
    # GIVEN a hand-made delegated zone for the subdomain WHEN its id is given THEN the stack creates no zone and no
    # delegation, and writes its records into that zone
    stack = variant("dev", HostedZoneId="Z0HANDMADEZONE42", ParentHostedZoneId="")
    assert not stack.exists("HostedZone")
    assert not stack.exists("ParentDelegation")
    assert zones_of_records(stack) == {"Z0HANDMADEZONE42"}
    assert stack.rule_failures() == []


def test_template_identity_easy_dkim_2048_and_mail_from(stack: Stack, env: Environment) -> None:
    # GIVEN the domain identity THEN it signs with 2048-bit Easy DKIM, has its MAIL FROM domain, sends through the
    # configuration set and does not mail feedback to the alias (the configuration set publishes it)
    identity = stack.properties("EmailIdentity")
    domain = env.parameters["DomainName"]
    assert identity["EmailIdentity"] == domain
    assert identity["DkimSigningAttributes"] == {"NextSigningKeyLength": "RSA_2048_BIT"}
    assert identity["DkimAttributes"] == {"SigningEnabled": True}
    assert identity["MailFromAttributes"] == {
        "MailFromDomain": f"bounces.{domain}",
        "BehaviorOnMxFailure": "USE_DEFAULT_VALUE",
    }
    assert identity["ConfigurationSetAttributes"] == {"ConfigurationSetName": "<Ref:ConfigurationSet>"}
    assert identity["FeedbackAttributes"] == {"EmailForwardingEnabled": False}


def test_template_configuration_set_publishes_feedback(stack: Stack, env: Environment) -> None:
    # GIVEN feedback forwarding is off THEN bounces and complaints are published to CloudWatch and SNS
    assert stack.properties("ConfigurationSet")["Name"] == env.stack_name
    destinations = [
        p["EventDestination"]
        for p in map(stack.properties, stack.resources("AWS::SES::ConfigurationSetEventDestination"))
    ]
    kinds = {("CloudWatchDestination" in d, "SnsDestination" in d): set(d["MatchingEventTypes"]) for d in destinations}
    wanted = {"bounce", "complaint", "reject", "deliveryDelay"}
    assert wanted <= kinds[(True, False)]
    assert wanted <= kinds[(False, True)]
    assert all(d["Enabled"] for d in destinations)


def test_template_ses_may_publish_events_of_this_configuration_set_only(stack: Stack, env: Environment) -> None:
    # GIVEN SES publishes to the events topic THEN the topic lets SES do so for this account's configuration set only
    policy = stack.properties("SesEventsTopicPolicy")
    assert policy["Topics"] == ["<Ref:SesEventsTopic>"]
    (statement,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": ACCOUNT,
            "aws:SourceArn": f"arn:aws:ses:{env.region}:{ACCOUNT}:configuration-set/<Ref:ConfigurationSet>",
        }
    }
    assert stack.resource("ConfigurationSetSnsEvents")["DependsOn"] == "SesEventsTopicPolicy"


# --- receiving --------------------------------------------------------------------------------------------


def test_template_mail_bucket_private_encrypted_expiring(stack: Stack, env: Environment) -> None:
    # GIVEN the bucket SES writes mail to THEN it is encrypted, private, owner-enforced and expires mail
    bucket = stack.properties("MailBucket")
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    expiry = [r for r in bucket["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r]
    assert expiry == [
        {
            "Id": "expire-received-mail",
            "Status": "Enabled",
            "Prefix": PREFIX,
            "ExpirationInDays": env.parameters["RetentionDays"],
        }
    ]
    assert stack.resource("MailBucket")["DeletionPolicy"] == "Retain"


def test_template_bucket_policy_lets_only_this_rule_write_over_tls(stack: Stack) -> None:
    # GIVEN the bucket policy THEN only SES, for this account and this receipt rule, may write, and only under the
    # prefix; nobody may use plain HTTP
    policy = stack.properties("MailBucketPolicy")
    assert policy["Bucket"] == "<Ref:MailBucket>"
    allow, deny = policy["PolicyDocument"]["Statement"]
    assert allow["Effect"] == "Allow"
    assert allow["Principal"] == {"Service": "ses.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    assert allow["Resource"] == f"<MailBucket.Arn>/{PREFIX}*"
    assert allow["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": rule_arn(stack)}}
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == ["<MailBucket.Arn>", "<MailBucket.Arn>/*"]


def test_template_ses_may_invoke_the_forwarder_for_this_rule_only(stack: Stack) -> None:
    permission = stack.properties("ForwarderSesPermission")
    assert permission == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": "<ForwarderFunction.Arn>",
        "Principal": "ses.amazonaws.com",
        "SourceAccount": ACCOUNT,
        "SourceArn": rule_arn(stack),
    }


def test_template_receipt_rule_stores_then_invokes(stack: Stack, env: Environment) -> None:
    # GIVEN the receipt rule THEN it scans, applies the TLS policy, stores the mail under the prefix, then invokes
    # the forwarder asynchronously, and is created only after SES may do both
    rule = stack.properties("ReceiptRule")["Rule"]
    assert rule["Name"] == env.stack_name
    assert rule["Enabled"] is True
    assert rule["ScanEnabled"] is True
    assert rule["TlsPolicy"] == env.parameters.get("TlsPolicy", "Optional")
    assert rule["Recipients"] == [env.parameters["DomainName"]]
    store, invoke = rule["Actions"]
    assert store == {"S3Action": {"BucketName": "<Ref:MailBucket>", "ObjectKeyPrefix": PREFIX}}
    assert invoke == {"LambdaAction": {"FunctionArn": "<ForwarderFunction.Arn>", "InvocationType": "Event"}}
    assert set(stack.resource("ReceiptRule")["DependsOn"]) >= {"MailBucketPolicy", "ForwarderSesPermission"}


def test_template_rule_set_shared_through_the_custom_resource(stack: Stack, env: Environment) -> None:
    # GIVEN create-and-activate THEN no stack owns the set as an AWS::SES::ReceiptRuleSet (deleting one would delete
    # every environment's rule): the custom resource creates and activates it, and the rule refers to it, so that
    # CloudFormation creates the rule after it and deletes the rule before it
    assert env.parameters["ReceiptRuleSetMode"] == "create-and-activate"
    assert not stack.resources("AWS::SES::ReceiptRuleSet")
    shared = stack.resource("SharedReceiptRuleSet")
    assert shared["Type"] == "Custom::SharedReceiptRuleSet"
    assert "DependsOn" not in shared
    assert stack.properties("SharedReceiptRuleSet") == {
        "ServiceToken": "<RuleSetActivationFunction.Arn>",
        "ServiceTimeout": 300,
        "RuleSetName": env.parameters["ReceiptRuleSetName"],
        "Mode": "create-and-activate",
        "RuleName": env.stack_name,
    }
    # the set's name, as the custom resource answers it (its physical id also records what its Create found)
    assert stack.properties("ReceiptRule")["RuleSetName"] == "<SharedReceiptRuleSet.RuleSetName>"
    function = stack.properties("RuleSetActivationFunction")
    assert function["Handler"] == "rule_set_activation.handler"
    assert function["Timeout"] < stack.properties("SharedReceiptRuleSet")["ServiceTimeout"]


def test_template_joining_an_existing_rule_set_creates_no_set(variant: Any) -> None:
    # GIVEN join-existing WHEN transformed THEN the rule goes into the named set, which the custom resource only
    # checks for (it never activates or deletes a set it joined)
    stack = variant("dev", ReceiptRuleSetMode="join-existing", ReceiptRuleSetName="shared-set")
    assert not stack.resources("AWS::SES::ReceiptRuleSet")
    assert stack.properties("SharedReceiptRuleSet")["Mode"] == "join-existing"
    assert stack.properties("SharedReceiptRuleSet")["RuleSetName"] == "shared-set"
    assert rule_arn(stack).endswith(":receipt-rule-set/shared-set:receipt-rule/email-forwarder-dev")
    assert stack.outputs()["ReceiptRuleSetName"] == "shared-set"


# --- runtime ----------------------------------------------------------------------------------------------


def test_template_forwarder_function_runtime(stack: Stack) -> None:
    function = stack.properties("ForwarderFunction")
    assert function["Handler"] == "forwarder.app.lambda_handler"
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    # X-Ray is opt-in (parameter Tracing): it costs about 0.2x of cold start (docs/benchmark.md)
    # (no TracingConfig: Lambda's default, PassThrough, and no X-Ray policy on the role)
    assert "TracingConfig" not in function
    assert function["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert function["Layers"] == [f"<Ref:{next(iter(stack.resources('AWS::Lambda::LayerVersion')))}>"]
    assert function["LoggingConfig"] == {"LogGroup": "<Ref:ForwarderLogGroup>"}
    assert stack.properties("ForwarderLogGroup")["RetentionInDays"] > 0
    assert function["Timeout"] >= 60


def test_template_forwarder_environment(stack: Stack, env: Environment) -> None:
    # GIVEN the runtime contract's settings THEN the forwarder gets every one, with this environment's values
    variables = stack.properties("ForwarderFunction")["Environment"]["Variables"]
    assert variables == {
        "FORWARDER_DOMAIN": env.parameters["DomainName"],
        "FORWARDER_BUCKET": "<Ref:MailBucket>",
        "FORWARDER_PREFIX": PREFIX,
        "FORWARDER_ALIAS_PATH": f"/email-forwarder/{env.name}/aliases",
        "FORWARDER_ALIAS_CACHE_SECONDS": "60",
        "FORWARDER_IDEMPOTENCY_TABLE": "<Ref:IdempotencyTable>",
        "FORWARDER_IDEMPOTENCY_COMPLETION": "send-event",
        "FORWARDER_CONFIGURATION_SET": "<Ref:ConfigurationSet>",
        "FORWARDER_SUBJECT_PREFIX": env.parameters.get("SubjectPrefix", ""),
        "FORWARDER_SPAM_ACTION": env.parameters.get("SpamAction", "tag"),
        "FORWARDER_MAX_MESSAGE_BYTES": env.parameters.get("MaxMessageBytes", "40000000"),
        "FORWARDER_LINK_EXPIRY_DAYS": str(min(7, int(env.parameters["RetentionDays"]))),
        "FORWARDER_LINK_URL": "<DownloadFunctionUrl.FunctionUrl>",
        "FORWARDER_LINK_SECRET": "<Ref:LinkSecret>",
        "FORWARDER_FAILURE_QUEUE_URL": "<Ref:FailureQueue>",
        "FORWARDER_TRACE_TABLE": "<Ref:TraceTable>",
        "FORWARDER_TRACE_EXPIRY_DAYS": env.parameters["RetentionDays"],
        "FORWARDER_TRACE_SUBJECTS": "false",
        "FORWARDER_REPLY_MODE": env.parameters.get("ReplyMode", "team"),
        "FORWARDER_REPLY_TABLE": "<Ref:ReplyTable>",
        "POWERTOOLS_SERVICE_NAME": "ses-forwarder",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "SesForwarder",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


@pytest.mark.parametrize(("retention", "link_days"), [("1", "1"), ("6", "6"), ("7", "7"), ("30", "7"), ("3650", "7")])
def test_template_download_links_never_outlive_the_stored_mail(variant: Any, retention: str, link_days: str) -> None:
    # GIVEN a retention of the stored mail (the bucket's lifecycle deletes it after that many days)
    stack = variant("dev", RetentionDays=retention)

    # THEN the links in oversize notices last 7 days, or as long as the mail when that is shorter
    variables = stack.properties("ForwarderFunction")["Environment"]["Variables"]
    assert variables["FORWARDER_LINK_EXPIRY_DAYS"] == link_days


def test_template_tracing_parameter_turns_x_ray_on(variant: Any) -> None:
    stack = variant("dev", Tracing="Active")
    for name in ("ForwarderFunction", "DownloadFunction"):
        function = stack.properties(name)
        assert function["TracingConfig"] == {"Mode": "Active"}
        assert function["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "false"


def test_template_alias_path_parameter_overrides_the_default(variant: Any) -> None:
    stack = variant("dev", AliasPath="/team/aliases")
    assert stack.properties("ForwarderFunction")["Environment"]["Variables"]["FORWARDER_ALIAS_PATH"] == "/team/aliases"
    assert stack.outputs()["AliasPath"] == "/team/aliases"


def test_template_environment_names_are_settings_of_the_runtime() -> None:
    # GIVEN the FORWARDER_* variables the template sets THEN each is a field of the runtime's settings, so that a
    # misspelt name cannot be silently ignored
    from dataclasses import fields

    from forwarder import config

    template_text = (ROOT / "template.yaml").read_text()
    download = getattr(config, "DownloadSettings", None)
    assert download is not None, "forwarder.config.DownloadSettings (settings of forwarder.download) is missing"
    settings = (*fields(config.Settings), *fields(download), *fields(config.DeliverySettings))
    known = {f"FORWARDER_{field.name.upper()}" for field in settings}
    used = {word.rstrip(":") for word in template_text.split() if word.startswith("FORWARDER_") and word.endswith(":")}
    assert used, "no FORWARDER_ variables found in template.yaml"
    assert used <= known, f"not runtime settings: {sorted(used - known)}"


@pytest.mark.parametrize("handler", ["forwarder.app.lambda_handler", "forwarder.download.lambda_handler"])
def test_template_handlers_import(handler: str) -> None:
    # GIVEN the handlers the template names THEN they import from the package as the artifact lays it out
    import importlib

    module, _, name = handler.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_template_reserved_concurrency_only_when_asked(stack: Stack, env: Environment, variant: Any) -> None:
    # GIVEN ReservedConcurrency 0 means unreserved THEN the property is absent then and the number otherwise
    wanted = env.parameters.get("ReservedConcurrency", "0")
    function = stack.properties("ForwarderFunction")
    if wanted == "0":
        assert "ReservedConcurrentExecutions" not in function
    else:
        assert function["ReservedConcurrentExecutions"] == wanted
    assert (
        variant("dev", ReservedConcurrency="3").properties("ForwarderFunction")["ReservedConcurrentExecutions"] == "3"
    )


def test_template_async_retries_then_encrypted_failure_queue(stack: Stack) -> None:
    # GIVEN the receipt rule invokes asynchronously THEN Lambda retries twice within six hours, then hands the event
    # to an encrypted queue that keeps it for 14 days
    configs = stack.resources("AWS::Lambda::EventInvokeConfig")
    assert len(configs) == 1
    config = stack.properties(next(iter(configs)))
    assert config["FunctionName"] == "<Ref:ForwarderFunction>"
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == 21600
    assert config["DestinationConfig"] == {"OnFailure": {"Destination": "<FailureQueue.Arn>"}}
    queue = stack.properties("FailureQueue")
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 1209600


def test_template_claims_outlive_the_events_parked_after_a_partial_send(stack: Stack) -> None:
    # GIVEN an event parked after some of its sends went out, at the latest: Lambda keeps retrying it for up to
    # MaximumEventAgeInSeconds, then the failure queue keeps it for MessageRetentionPeriod
    import dataclasses

    from forwarder.config import Settings

    config = stack.properties(next(iter(stack.resources("AWS::Lambda::EventInvokeConfig"))))
    parked_for = config["MaximumEventAgeInSeconds"] + stack.properties("FailureQueue")["MessageRetentionPeriod"]
    # WHEN `forwarder redrive` replays it on the queue's last day
    variables = stack.properties("ForwarderFunction")["Environment"]["Variables"]
    default = next(f.default for f in dataclasses.fields(Settings) if f.name == "idempotency_expiry_days")
    days = int(variables.get("FORWARDER_IDEMPOTENCY_EXPIRY_DAYS", default))
    # THEN the claims of the sends that went out are still remembered: the members who got the mail do not again
    assert days * 86_400 > parked_for


def test_template_idempotency_table(stack: Stack) -> None:
    table = stack.properties("IdempotencyTable")
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_template_reply_table(stack: Stack) -> None:
    # GIVEN reply addresses live as long as a thread THEN their table expires items by `expires`, like the
    # idempotency table is encrypted, point-in-time recoverable and billed per request
    table = stack.properties("ReplyTable")
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert stack.outputs()["ReplyTable"] == "<Ref:ReplyTable>"


def test_template_reply_mode_parameter(variant: Any) -> None:
    # GIVEN the contract: the template sets team, an environment may choose direct
    for mode in ("team", "direct"):
        variables = variant("dev", ReplyMode=mode).properties("ForwarderFunction")["Environment"]["Variables"]
        assert variables["FORWARDER_REPLY_MODE"] == mode


def test_template_download_function_and_public_url(stack: Stack) -> None:
    # GIVEN oversize notices link to the download function THEN its URL is public (the token is the credential)
    # and both permissions a public function URL needs are present, the invoke one limited to URL calls
    function = stack.properties("DownloadFunction")
    assert function["Handler"] == "forwarder.download.lambda_handler"
    assert function["Environment"]["Variables"] == {
        "FORWARDER_BUCKET": "<Ref:MailBucket>",
        "FORWARDER_PREFIX": PREFIX,
        "FORWARDER_LINK_SECRET": "<Ref:LinkSecret>",
        "POWERTOOLS_SERVICE_NAME": "ses-forwarder-download",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    assert stack.properties("DownloadFunctionUrl") == {
        "TargetFunctionArn": "<DownloadFunction.Arn>",
        "AuthType": "NONE",
    }
    permissions = {
        p["Action"]: p
        for p in map(stack.properties, ("DownloadFunctionUrlPermission", "DownloadFunctionInvokePermission"))
    }
    assert permissions["lambda:InvokeFunctionUrl"]["FunctionUrlAuthType"] == "NONE"
    assert permissions["lambda:InvokeFunction"]["InvokedViaFunctionUrl"] is True
    secret = stack.properties("LinkSecret")["GenerateSecretString"]
    assert secret == {"PasswordLength": 64, "ExcludePunctuation": True}


# --- alarms -----------------------------------------------------------------------------------------------


def test_template_alarms_reach_the_topic(stack: Stack) -> None:
    # GIVEN the failure modes worth waking someone for THEN each has an alarm that notifies the alarm topic
    alarms = {
        (a["Namespace"], a["MetricName"]): a for a in map(stack.properties, stack.resources("AWS::CloudWatch::Alarm"))
    }
    assert set(alarms) >= {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SES", "Reputation.BounceRate"),
        ("AWS/SES", "Reputation.ComplaintRate"),
    }
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == ["<Ref:AlarmTopic>"]
    depth = alarms[("AWS/SQS", "ApproximateNumberOfMessagesVisible")]
    assert (depth["ComparisonOperator"], depth["Threshold"]) == ("GreaterThanThreshold", 0)


def test_template_alarms_when_the_download_function_turns_requests_away(stack: Stack) -> None:
    # GIVEN the public download function, bounded by its reserved concurrency against a flood of links
    # THEN its throttles (a flood, or a bound set too low) reach the alarm topic, each function's on its own
    throttles = {
        a["Dimensions"][0]["Value"]: a
        for a in map(stack.properties, stack.resources("AWS::CloudWatch::Alarm"))
        if (a["Namespace"], a["MetricName"]) == ("AWS/Lambda", "Throttles")
    }
    assert set(throttles) == {"<Ref:ForwarderFunction>", "<Ref:DownloadFunction>"}
    download = throttles["<Ref:DownloadFunction>"]
    assert (download["Statistic"], download["Period"], download["Threshold"]) == ("Sum", 300, 5)
    assert download["AlarmActions"] == ["<Ref:AlarmTopic>"] and download["OKActions"] == ["<Ref:AlarmTopic>"]


def test_template_alarm_email_subscription_is_optional(stack: Stack, variant: Any) -> None:
    assert not stack.exists("AlarmEmailSubscription")
    subscribed = variant("prod", AlarmEmail="ops@aws-educate.tw")
    assert subscribed.properties("AlarmEmailSubscription") == {
        "TopicArn": "<Ref:AlarmTopic>",
        "Protocol": "email",
        "Endpoint": "ops@aws-educate.tw",
    }


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_template_transforms_for_each_environment(stacks: dict[str, Stack], name: str) -> None:
    # GIVEN each environment's parameters WHEN the SAM transform runs THEN it yields plain CloudFormation
    assert not [r for r in stacks[name].template["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]
