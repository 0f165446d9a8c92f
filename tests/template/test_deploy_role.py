"""The deploy role's documented policy (deploy/deploy-role-policy.json): everything `sam deploy` needs for
this stack, so that the first CI deploy does not stop on a missing permission."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

import pytest

from tests.template.cloudformation import ROOT, Stack

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
        for action, suffix in (("CreateBucket", ""), ("PutBucketPolicy", ""), ("PutObject", "/dev/abc"),
                               ("GetObject", "/dev/abc"), ("ListBucket", ""))
    ],
]  # fmt: skip


def policy(env: str = "dev") -> list[dict[str, Any]]:
    text = POLICY.read_text().replace("<account>", ACCOUNT).replace("<env>", env)
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
