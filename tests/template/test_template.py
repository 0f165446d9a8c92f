"""The transformed template of each environment: what CloudFormation will create, and how it is wired."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.template.cloudformation import ACCOUNT, ENVIRONMENTS, ROOT, Environment, Stack

PARAMETERS = {
    "EnvironmentName", "DomainName", "ParentHostedZoneId", "HostedZoneId", "MailFromSubdomain",
    "ReceiptRuleSetName", "ReceiptRuleSetMode", "AliasPath", "RetentionDays", "AlarmEmail", "DmarcPolicy",
    "DmarcReportAddress", "TlsPolicy", "ReservedConcurrency", "SpamAction", "MaxMessageBytes", "SubjectPrefix",
    "Tracing", "DownloadConcurrency",
}  # fmt: skip
OUTPUTS = {
    "Domain", "HostedZoneId", "NameServers", "MailBucket", "FunctionName", "FunctionArn", "DownloadUrl",
    "FailureQueueUrl", "FailureQueueArn", "IdentityArn", "AliasPath", "ReceiptRuleSetName", "ReceiptRuleName",
    "IdempotencyTable", "ConfigurationSetName", "AlarmTopicArn", "LinkSecretArn",
}  # fmt: skip
PREFIX = "inbound/"


def rule_arn(stack: Stack) -> str:
    rule = stack.properties("ReceiptRule")
    rule_set = rule["RuleSetName"]
    if rule_set == "<Ref:ReceiptRuleSet>":
        rule_set = stack.properties("ReceiptRuleSet")["RuleSetName"]
    region = stack.pseudo["AWS::Region"]
    return f"arn:aws:ses:{region}:{ACCOUNT}:receipt-rule-set/{rule_set}:receipt-rule/{rule['Rule']['Name']}"


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
    assert outputs["HostedZoneId"] == (env.parameters.get("HostedZoneId") or "<Ref:HostedZone>")
    assert outputs["NameServers"] == ("existing" if env.name == "prod" else "<join <HostedZone.NameServers>>")


def test_template_rules_accept_every_environment_region(stack: Stack) -> None:
    # GIVEN the environments' regions, all of which receive mail THEN the template's rules accept them
    assert stack.rule_failures() == []


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
    records = stack.properties("MailDnsRecords")
    if env.name == "prod":
        assert not stack.conditions["CreateHostedZone"]
        assert not stack.exists("HostedZone")
        assert not stack.exists("ParentDelegation")
        assert records["HostedZoneId"] == env.parameters["HostedZoneId"]
    else:
        assert stack.conditions["CreateHostedZone"]
        assert stack.conditions["DelegateFromParent"]
        assert stack.properties("HostedZone")["Name"] == env.parameters["DomainName"]
        delegation = stack.properties("ParentDelegation")
        assert delegation["HostedZoneId"] == env.parameters["ParentHostedZoneId"]
        assert delegation["Name"] == env.parameters["DomainName"]
        assert delegation["Type"] == "NS"
        assert delegation["ResourceRecords"] == "<HostedZone.NameServers>"
        assert records["HostedZoneId"] == "<Ref:HostedZone>"


def test_template_subdomain_without_parent_zone_is_not_delegated(variant: Any) -> None:
    # GIVEN no parent zone in this account WHEN transformed THEN the zone is created and not delegated
    stack = variant("dev", ParentHostedZoneId="")
    assert stack.exists("HostedZone")
    assert not stack.exists("ParentDelegation")


def test_template_mail_dns_records(stack: Stack, env: Environment) -> None:
    # GIVEN the environment's region and domain THEN DKIM, inbound MX, MAIL FROM MX/SPF and DMARC are published
    domain, region = env.parameters["DomainName"], env.region
    records = {(r["Name"], r["Type"]): r["ResourceRecords"] for r in stack.properties("MailDnsRecords")["RecordSets"]}
    for n in (1, 2, 3):
        assert records[(f"<EmailIdentity.DkimDNSTokenName{n}>", "CNAME")] == [f"<EmailIdentity.DkimDNSTokenValue{n}>"]
    assert records[(domain, "MX")] == [f"10 inbound-smtp.{region}.amazonaws.com"]
    assert records[(f"bounces.{domain}", "MX")] == [f"10 feedback-smtp.{region}.amazonses.com"]
    assert records[(f"bounces.{domain}", "TXT")] == ['"v=spf1 include:amazonses.com ~all"']
    policy = env.parameters.get("DmarcPolicy", "none")
    assert records[(f"_dmarc.{domain}", "TXT")] == [f'"v=DMARC1; p={policy}"']
    assert len(records) == 7


def test_template_dmarc_reports_when_an_address_is_given(variant: Any) -> None:
    stack = variant("dev", DmarcReportAddress="dmarc@aws-educate.tw", DmarcPolicy="reject")
    records = {(r["Name"], r["Type"]): r["ResourceRecords"] for r in stack.properties("MailDnsRecords")["RecordSets"]}
    assert records[("_dmarc.dev.aws-educate.tw", "TXT")] == ['"v=DMARC1; p=reject; rua=mailto:dmarc@aws-educate.tw"']


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


def test_template_rule_set_created_and_activated_by_the_custom_resource(stack: Stack, env: Environment) -> None:
    # GIVEN create-and-activate THEN the stack owns the set and activates it once the rule exists
    assert env.parameters["ReceiptRuleSetMode"] == "create-and-activate"
    assert stack.properties("ReceiptRuleSet") == {"RuleSetName": env.parameters["ReceiptRuleSetName"]}
    assert stack.properties("ReceiptRule")["RuleSetName"] == "<Ref:ReceiptRuleSet>"
    activation = stack.resource("ActiveReceiptRuleSet")
    assert activation["Type"] == "Custom::ActiveReceiptRuleSet"
    assert "ReceiptRule" in (
        [activation["DependsOn"]] if isinstance(activation["DependsOn"], str) else activation["DependsOn"]
    )
    assert stack.properties("ActiveReceiptRuleSet") == {
        "ServiceToken": "<RuleSetActivationFunction.Arn>",
        "RuleSetName": "<Ref:ReceiptRuleSet>",
    }
    function = stack.properties("RuleSetActivationFunction")
    assert function["Handler"] == "rule_set_activation.handler"


def test_template_joining_an_existing_rule_set_creates_no_set(variant: Any) -> None:
    # GIVEN join-existing WHEN transformed THEN the rule goes into the named set and nothing activates anything
    stack = variant("dev", ReceiptRuleSetMode="join-existing", ReceiptRuleSetName="shared-set")
    assert not stack.conditions["CreateRuleSet"]
    for logical_id in (
        "ReceiptRuleSet",
        "ActiveReceiptRuleSet",
        "RuleSetActivationFunction",
        "RuleSetActivationFunctionRole",
    ):
        assert not stack.exists(logical_id), logical_id
    assert stack.properties("ReceiptRule")["RuleSetName"] == "shared-set"
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
        "FORWARDER_CONFIGURATION_SET": "<Ref:ConfigurationSet>",
        "FORWARDER_SUBJECT_PREFIX": env.parameters.get("SubjectPrefix", ""),
        "FORWARDER_SPAM_ACTION": env.parameters.get("SpamAction", "tag"),
        "FORWARDER_MAX_MESSAGE_BYTES": env.parameters.get("MaxMessageBytes", "40000000"),
        "FORWARDER_LINK_EXPIRY_DAYS": "7",
        "FORWARDER_LINK_URL": "<DownloadFunctionUrl.FunctionUrl>",
        "FORWARDER_LINK_SECRET": "<Ref:LinkSecret>",
        "FORWARDER_FAILURE_QUEUE_URL": "<Ref:FailureQueue>",
        "POWERTOOLS_SERVICE_NAME": "ses-forwarder",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "SesForwarder",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


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
    known = {f"FORWARDER_{field.name.upper()}" for field in (*fields(config.Settings), *fields(download))}
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


def test_template_idempotency_table(stack: Stack) -> None:
    table = stack.properties("IdempotencyTable")
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


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
