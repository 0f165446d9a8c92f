"""The deploy role's reach beyond its own stack: which DNS records and which SES identity and configuration set an
environment's role may change (deploy/deploy-role-policy.json, with the conditions IAM evaluates)."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Any

import pytest

from tests.template.cloudformation import ACCOUNT, ENVIRONMENTS, Stack, load_environments
from tests.template.test_deploy_role import policy

CHANGE_RECORDS = "route53:ChangeResourceRecordSets"


def _listed(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def permits(statement: dict[str, Any], action: str, resource: str, context: dict[str, list[str]]) -> bool:
    """Whether an Allow statement grants `action` on `resource` for a request with these multivalued keys."""
    if not any(fnmatchcase(action, a) for a in _listed(statement["Action"])):
        return False
    if not any(fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, allowed in keys.items():
            values, patterns = context[key], _listed(allowed)
            if operator == "ForAllValues:StringLike":
                ok = all(any(fnmatchcase(value, pattern) for pattern in patterns) for value in values)
            elif operator in ("ForAllValues:StringEquals", "StringEquals"):
                ok = all(value in patterns for value in values)
            else:
                raise AssertionError(f"no evaluation for {operator} here: add it")
            if not ok:
                return False
    return True


def may_change(env: str, zone: str, records: list[tuple[str, str]]) -> bool:
    """Whether `env`'s deploy role may make one ChangeResourceRecordSets call with these (name, type) changes."""
    context = {
        # IAM sees the names normalized: lower case, no trailing dot
        "route53:ChangeResourceRecordSetsNormalizedRecordNames": [name.lower().rstrip(".") for name, _ in records],
        "route53:ChangeResourceRecordSetsRecordTypes": [kind for _, kind in records],
    }
    resource = f"arn:aws:route53:::hostedzone/{zone}"
    return any(permits(s, CHANGE_RECORDS, resource, context) for s in policy(env))


def record_batches(stack: Stack) -> list[tuple[str, list[tuple[str, str]]]]:
    """(zone, [(name, type)]) of each ChangeResourceRecordSets call the stack's record resources make; the DKIM
    names as SES makes them (<token>._domainkey.<domain>)."""
    domain = stack.parameters["DomainName"]
    batches = []
    for kind in ("AWS::Route53::RecordSet", "AWS::Route53::RecordSetGroup"):
        for logical_id in stack.resources(kind):
            properties = stack.properties(logical_id)
            records = [
                (
                    re.sub(r"<EmailIdentity\.DkimDNSTokenName(\d)>", rf"token\1._domainkey.{domain}", r["Name"]),
                    r["Type"],
                )
                for r in properties.get("RecordSets", [properties])
            ]
            batches.append((str(properties["HostedZoneId"]), records))
    return batches


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_deploy_role_may_write_every_record_of_its_stack(variant: Any, name: str) -> None:
    # GIVEN the environment with every record group its own (the most records it can write)
    modes = dict.fromkeys(("EmailIdentityMode", "MxRecordMode", "MailFromRecordsMode", "DmarcRecordMode"), "create")
    stack = variant(name, **modes)
    batches = record_batches(stack)
    assert len(batches) >= 4
    # THEN its role may make each call CloudFormation makes for them (the parent zone's NS delegation included)
    refused = [batch for batch in batches if not may_change(name, *batch)]
    assert refused == []


def test_deploy_role_may_not_touch_other_records_of_the_account() -> None:
    # GIVEN the dev role, which writes only under dev.aws-educate.tw (its zone, and its NS in the apex zone)
    apex_zone = "Z04317142LA2XBR9RUU3Z"
    # THEN the organisation's apex MX and web records, and another environment's delegation, are out of its reach
    assert not may_change("dev", apex_zone, [("aws-educate.tw", "MX")])
    assert not may_change("dev", apex_zone, [("www.aws-educate.tw", "CNAME")])
    assert not may_change("dev", apex_zone, [("preview.aws-educate.tw", "NS")])
    # AND a batch that slips one foreign record in with its own is refused whole
    assert not may_change("dev", apex_zone, [("dev.aws-educate.tw", "NS"), ("aws-educate.tw", "NS")])
    # AND under its own domain only mail record types: no A record that would take over a web name
    assert not may_change("dev", "Z0DEVZONE", [("www.dev.aws-educate.tw", "A")])
    assert not may_change("prod", apex_zone, [("www.aws-educate.tw", "A")])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_deploy_role_writes_only_the_names_its_stack_writes(env: str) -> None:
    # GIVEN an environment's role over its domain's zone (for prod, the apex: every name of the organisation)
    domain = load_environments()[env].parameters["DomainName"]
    zone = "Z04317142LA2XBR9RUU3Z"
    # THEN it may write the stack's names (test_deploy_role_may_write_every_record_of_its_stack checks each)
    assert may_change(env, zone, [(f"token1._domainkey.{domain}", "CNAME"), (f"_dmarc.{domain}", "TXT")])
    # AND no other name under the domain: a CNAME or an NS delegation of any of them would hand it (the
    # organisation's web site, for prod) to whoever the record points at
    for name, kind in ((f"www.{domain}", "CNAME"), (f"shop.{domain}", "NS"), (f"mail.{domain}", "MX")):
        assert not may_change(env, zone, [(name, kind)]), (name, kind)


def allowed_for(env: str, action: str, resource: str, region: str | None = None) -> bool:
    """Whether `env`'s role may call `action` on `resource` in `region` (by default its environment's)."""
    context = {"aws:RequestedRegion": [region or load_environments()[env].region]}
    return any(permits(s, action, resource, context) for s in policy(env))


def test_deploy_role_ses_identity_and_configuration_set_of_its_environment_only() -> None:
    # GIVEN the dev role THEN it manages dev's identity and configuration set
    dev_identity = f"arn:aws:ses:us-east-1:{ACCOUNT}:identity/dev.aws-educate.tw"
    dev_set = f"arn:aws:ses:us-east-1:{ACCOUNT}:configuration-set/email-forwarder-dev"
    for action in ("ses:CreateEmailIdentity", "ses:DeleteEmailIdentity", "ses:PutEmailIdentityFeedbackAttributes"):
        assert allowed_for("dev", action, dev_identity), action
    for action in (
        "ses:CreateConfigurationSet",
        "ses:DeleteConfigurationSet",
        "ses:CreateConfigurationSetEventDestination",
    ):
        assert allowed_for("dev", action, dev_set), action
    assert allowed_for("dev", "ses:PutEmailIdentityConfigurationSetAttributes", dev_set)
    # AND nothing of prod's: deleting the apex identity would stop all of prod's sending
    prod_identity = f"arn:aws:ses:ap-northeast-1:{ACCOUNT}:identity/aws-educate.tw"
    prod_set = f"arn:aws:ses:ap-northeast-1:{ACCOUNT}:configuration-set/email-forwarder-prod"
    assert not allowed_for("dev", "ses:DeleteEmailIdentity", prod_identity)
    assert not allowed_for("dev", "ses:PutEmailIdentityDkimSigningAttributes", prod_identity)
    assert not allowed_for("dev", "ses:DeleteConfigurationSet", prod_set)
    assert not allowed_for("dev", "ses:DeleteConfigurationSetEventDestination", prod_set)
    # AND the receipt calls, which IAM gives no resource type, stay on "*"
    assert allowed_for("dev", "ses:CreateReceiptRule", "*")


def test_deploy_role_log_groups_of_its_stack_only(stack: Stack) -> None:
    # GIVEN the log groups the template names (/aws/lambda/<stack>/...) THEN the dev role manages dev's
    for logical_id in stack.resources("AWS::Logs::LogGroup"):
        name = stack.properties(logical_id)["LogGroupName"].replace(
            stack.pseudo["AWS::StackName"], "email-forwarder-dev"
        )
        arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{name}:*"
        for action in ("logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy"):
            assert allowed_for("dev", action, arn), (action, arn)
    # AND not another environment's, nor any other of the account
    for name in (
        "/aws/lambda/email-forwarder-prod/forwarder",
        "/aws/lambda/payments",
        "/aws/lambda/email-forwarder-dev",
    ):
        assert not allowed_for("dev", "logs:DeleteLogGroup", f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{name}:*")
    # AND DescribeLogGroups, which IAM gives no resource type, on "*"
    assert allowed_for("dev", "logs:DescribeLogGroups", "*")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_deploy_role_artifacts_under_its_own_prefix_only(env: str) -> None:
    # GIVEN the artifact bucket every environment's `sam deploy` shares in a region (resolve_s3), and an upload that
    # `sam deploy` skips when its key (s3_prefix/<hash of the artifact>) exists already
    environments = load_environments()
    bucket = "arn:aws:s3:::aws-sam-cli-managed-default-samclisourcebucket-1a2b3c"
    prefix = environments[env].deploy["s3_prefix"]
    # THEN the role writes and reads the environment's artifacts, under its s3_prefix
    for action in ("s3:PutObject", "s3:GetObject"):
        assert allowed_for(env, action, f"{bucket}/{prefix}/0123abcd.template"), action
    # AND not another environment's: code planted under prod's prefix would be what prod's next deploy runs
    for other in environments.values():
        if other.name != env:
            assert not allowed_for(env, "s3:PutObject", f"{bucket}/{other.deploy['s3_prefix']}/0123abcd"), other.name
    assert not allowed_for(env, "s3:PutObject", f"{bucket}/0123abcd")
    # AND the managed stack only in its own region
    for other in environments.values():
        stack = f"arn:aws:cloudformation:{other.region}:{ACCOUNT}:stack/aws-sam-cli-managed-default/x"
        assert allowed_for(env, "cloudformation:ExecuteChangeSet", stack) == (other.region == environments[env].region)
