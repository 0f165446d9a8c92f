"""The deploy role's documented policy (deploy/deploy-role-policy.json): everything `sam deploy` needs for
this stack, so that the first CI deploy does not stop on a missing permission."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from tests.template.cloudformation import ROOT, Stack, load_environments

POLICY = ROOT / "deploy" / "deploy-role-policy.json"
ACCOUNT = "123456789012"

# What CloudFormation calls, with the deploy role's credentials, to create, update and delete each resource
# type of the transformed template. A new resource type fails the test until its permissions are added here
# and to the policy.
NEEDS: dict[str, list[str]] = {
    "AWS::CloudWatch::Alarm": ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms"],
    "AWS::DynamoDB::Table": [
        "dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:DescribeTable", "dynamodb:UpdateTable",
        "dynamodb:UpdateTimeToLive", "dynamodb:DescribeTimeToLive", "dynamodb:UpdateContinuousBackups",
        "dynamodb:DescribeContinuousBackups", "dynamodb:TagResource",
    ],
    "AWS::IAM::Role": [
        "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
        "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:PassRole",
    ],
    "AWS::Lambda::EventInvokeConfig": [
        "lambda:PutFunctionEventInvokeConfig", "lambda:UpdateFunctionEventInvokeConfig",
        "lambda:DeleteFunctionEventInvokeConfig",
    ],
    "AWS::Lambda::Function": [
        "lambda:CreateFunction", "lambda:DeleteFunction", "lambda:GetFunction", "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration", "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency",
        "lambda:TagResource",
    ],
    "AWS::Lambda::LayerVersion": ["lambda:PublishLayerVersion", "lambda:DeleteLayerVersion", "lambda:GetLayerVersion"],
    "AWS::Lambda::Permission": ["lambda:AddPermission", "lambda:RemovePermission"],
    "AWS::Lambda::Url": [
        "lambda:CreateFunctionUrlConfig", "lambda:UpdateFunctionUrlConfig", "lambda:DeleteFunctionUrlConfig",
    ],
    "AWS::Logs::LogGroup": ["logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy"],
    "AWS::Route53::HostedZone": ["route53:CreateHostedZone", "route53:DeleteHostedZone", "route53:GetChange"],
    "AWS::Route53::RecordSet": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
    "AWS::Route53::RecordSetGroup": ["route53:ChangeResourceRecordSets", "route53:GetChange"],
    "AWS::S3::Bucket": [
        "s3:CreateBucket", "s3:PutEncryptionConfiguration", "s3:PutLifecycleConfiguration",
        "s3:PutBucketPublicAccessBlock",
    ],
    "AWS::S3::BucketPolicy": ["s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:GetBucketPolicy"],
    "AWS::SES::ConfigurationSet": [
        "ses:CreateConfigurationSet", "ses:DeleteConfigurationSet", "ses:PutConfigurationSetReputationOptions",
        "ses:PutConfigurationSetSendingOptions",
    ],
    "AWS::SES::ConfigurationSetEventDestination": [
        "ses:CreateConfigurationSetEventDestination", "ses:DeleteConfigurationSetEventDestination",
    ],
    "AWS::SES::EmailIdentity": [
        "ses:CreateEmailIdentity", "ses:DeleteEmailIdentity", "ses:GetEmailIdentity",
        "ses:PutEmailIdentityMailFromAttributes", "ses:PutEmailIdentityFeedbackAttributes",
        "ses:PutEmailIdentityDkimSigningAttributes", "ses:PutEmailIdentityConfigurationSetAttributes",
    ],
    "AWS::SES::ReceiptRule": ["ses:CreateReceiptRule", "ses:DeleteReceiptRule", "ses:UpdateReceiptRule"],
    "AWS::SES::ReceiptRuleSet": ["ses:CreateReceiptRuleSet", "ses:DeleteReceiptRuleSet"],
    "AWS::SNS::Subscription": ["sns:Subscribe", "sns:Unsubscribe"],
    "AWS::SNS::Topic": ["sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes"],
    "AWS::SNS::TopicPolicy": ["sns:SetTopicAttributes"],
    "AWS::SQS::Queue": ["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes"],
    "AWS::SQS::QueuePolicy": ["sqs:SetQueueAttributes"],
    "AWS::SecretsManager::Secret": [
        "secretsmanager:CreateSecret", "secretsmanager:DeleteSecret", "secretsmanager:GetRandomPassword",
    ],
    # CloudFormation invokes the custom resource's function with the caller's credentials
    "Custom::SharedReceiptRuleSet": ["lambda:InvokeFunction"],
}  # fmt: skip

# What `sam deploy` itself calls: the change set of the stack (through the SAM transform) and, with
# resolve_s3, the managed stack aws-sam-cli-managed-default and its bucket for the artifacts.
SAM_DEPLOY = [
    ("cloudformation:CreateChangeSet", "arn:aws:cloudformation:us-east-1:aws:transform/Serverless-2016-10-31"),
    *[
        (f"cloudformation:{action}", f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/{stack}/abc-123")
        for stack in ("email-forwarder-dev", "aws-sam-cli-managed-default")
        for action in (
            "CreateChangeSet", "DescribeChangeSet", "ExecuteChangeSet", "DescribeStacks", "DescribeStackEvents",
            "GetTemplateSummary",
        )
    ],
    *[
        (f"s3:{action}", f"arn:aws:s3:::aws-sam-cli-managed-default-samclisourcebucket-1a2b3c{suffix}")
        for action, suffix in (("CreateBucket", ""), ("PutBucketPolicy", ""), ("PutObject", "/email-forwarder-dev/abc"),
                               ("GetObject", "/email-forwarder-dev/abc"), ("ListBucket", ""))
    ],
]  # fmt: skip


def policy(env: str = "dev") -> list[dict[str, Any]]:
    """The documented policy as one environment's role has it: <account>, <env>, <domain> (its DomainName) and
    <region> (its region)."""
    environment = load_environments()[env]
    domain, region = environment.parameters["DomainName"], environment.region
    text = POLICY.read_text().replace("<account>", ACCOUNT).replace("<env>", env).replace("<domain>", domain)
    text = text.replace("<region>", region)
    document = json.loads(text)
    assert document["Version"] == "2012-10-17"
    statements: list[dict[str, Any]] = document["Statement"]
    assert all(s["Effect"] == "Allow" for s in statements)
    return statements


def allowed(statements: list[dict[str, Any]], action: str, resource: str | None = None) -> bool:
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if any(fnmatchcase(action, a) for a in actions) and (
            resource is None or any(fnmatchcase(resource, r) for r in resources)
        ):
            return True
    return False


@pytest.mark.parametrize(("action", "resource"), SAM_DEPLOY, ids=[f"{a} {r.split(':')[-1]}" for a, r in SAM_DEPLOY])
def test_deploy_role_may_run_sam_deploy(action: str, resource: str) -> None:
    # GIVEN what sam deploy calls, on which resource THEN the documented policy allows it (the transform and the
    # managed stack included: without them the first CI deploy fails)
    assert allowed(policy(), action, resource)


def test_deploy_role_may_create_every_resource_of_the_stack(stacks: dict[str, Stack]) -> None:
    # GIVEN every resource type of every environment's transformed template
    types = {r["Type"] for stack in stacks.values() for r in stack.template["Resources"].values()}
    unknown = types - set(NEEDS)
    assert not unknown, f"add the permissions of {sorted(unknown)} to {POLICY.name} and to NEEDS"
    # THEN the policy allows each call CloudFormation makes for them
    statements = policy()
    missing = sorted({a for t in types for a in NEEDS[t] if not allowed(statements, a)})
    assert missing == []


def test_deploy_role_is_limited_to_its_environment() -> None:
    # GIVEN the dev role THEN it may not touch another environment's stack, functions or roles
    statements = policy("dev")
    assert allowed(
        statements,
        "cloudformation:ExecuteChangeSet",
        f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/email-forwarder-dev/x",
    )
    assert not allowed(
        statements,
        "cloudformation:ExecuteChangeSet",
        f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/email-forwarder-prod/x",
    )
    assert not allowed(
        statements,
        "lambda:UpdateFunctionCode",
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:email-forwarder-prod-ForwarderFunction-1",
    )
    assert not allowed(
        statements,
        "iam:PutRolePolicy",
        f"arn:aws:iam::{ACCOUNT}:role/email-forwarder-local-dev-ForwarderFunctionRole-1",
    )
    pass_role = next(s for s in statements if s["Action"] == "iam:PassRole")
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}


# What `forwarder preflight` reads before the deploy job's `sam deploy` (all read-only), as IAM actions.
PREFLIGHT_READS = {
    "sts:GetCallerIdentity", "cloudformation:DescribeStacks", "cloudformation:ListStackResources",
    "route53:ListHostedZonesByName", "route53:GetHostedZone", "route53:ListResourceRecordSets",
    "ses:GetEmailIdentity", "ses:GetAccount", "ses:GetConfigurationSet", "ses:DescribeActiveReceiptRuleSet",
    "ses:DescribeReceiptRuleSet", "lambda:GetAccountSettings", "lambda:GetFunctionConcurrency",
    "logs:DescribeLogGroups",
}  # fmt: skip


def _resource(action: str, region: str, params: dict[str, Any]) -> str:
    """The ARN IAM authorizes `action` against, for the actions that have resource-level permissions; else *."""
    match action:
        case "cloudformation:DescribeStacks" | "cloudformation:ListStackResources":
            return f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/{params['StackName']}/abc-123"
        case "lambda:GetFunctionConcurrency":
            return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{params['FunctionName']}"
        case "route53:GetHostedZone":
            return f"arn:aws:route53:::hostedzone/{params['Id']}"
        case "route53:ListResourceRecordSets":
            return f"arn:aws:route53:::hostedzone/{params['HostedZoneId']}"
        case "ses:GetEmailIdentity":
            return f"arn:aws:ses:{region}:{ACCOUNT}:identity/{params['EmailIdentity']}"
        case "ses:GetConfigurationSet":
            return f"arn:aws:ses:{region}:{ACCOUNT}:configuration-set/{params['ConfigurationSetName']}"
    return "*"


@pytest.fixture
def preflight_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, str]]:
    """Every AWS call of `forwarder preflight --config-env dev` (IAM action, resource) on the team's hand-made
    account (tests/cli/team_account.py, zone ids in samconfig) with a deployed dev stack: every read happens."""
    from moto import mock_aws

    from forwarder_ops.cli import main
    from forwarder_ops.envconfig import Target
    from tests.cli.team_account import PLACEHOLDER_SAMCONFIG, BelowMoto, seed_team_account

    calls: list[tuple[str, str]] = []
    answers = BelowMoto()
    original = Target.client

    def make(self: Target, service: str) -> Any:
        client = original(self, service)
        prefix, region = client.meta.service_model.signing_name, client.meta.region_name

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            action = f"{prefix}:{model.name}"
            calls.append((action, _resource(action, region, params)))

        client.meta.events.register("before-parameter-build", record)
        return answers.install(client)

    monkeypatch.setattr(Target, "client", make)
    (tmp_path / "samconfig.toml").write_text(PLACEHOLDER_SAMCONFIG)  # its zone ids: GetHostedZone too
    monkeypatch.chdir(tmp_path)
    with mock_aws():
        seed_team_account()
        _deploy_a_dev_stack()
        code = main(["preflight", "--config-env", "dev", "--json"])
    assert code == 1  # the hand-made account collides, which is beside the point here
    return calls


def _deploy_a_dev_stack() -> None:
    import boto3

    trust = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [trust]}},
    }
    function = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Runtime": "python3.13",
            "Handler": "index.handler",
            "Role": {"Fn::GetAtt": ["ForwarderFunctionRole", "Arn"]},
            "Code": {"ZipFile": "def handler(event, context): pass"},
        },
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="email-forwarder-dev",
        TemplateBody=json.dumps({"Resources": {"ForwarderFunctionRole": role, "ForwarderFunction": function}}),
    )


def test_deploy_role_may_run_preflight(preflight_calls: list[tuple[str, str]]) -> None:
    # GIVEN every call preflight makes against an account with the environment's stack (the deploy job runs it
    # with the deploy role before sam deploy)
    assert {action for action, _ in preflight_calls} == PREFLIGHT_READS

    # THEN the policy allows each, on the resource it reads (a refused read would only be a "could not check")
    statements = policy("dev")
    refused = sorted({(a, r) for a, r in preflight_calls if not allowed(statements, a, r)})
    assert refused == []


def test_deploy_role_preflight_reads_are_documented() -> None:
    # GIVEN docs/operations.md's permissions of preflight THEN they are exactly what preflight reads
    text = (ROOT / "docs" / "operations.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `preflight`"))
    assert set(re.findall(r"`([a-z0-9]+:[A-Za-z]+)`", row)) == PREFLIGHT_READS
