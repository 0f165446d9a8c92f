"""The stack's edges: what bounds the public download function, who may publish to the topics and how,
and which permissions tracing brings."""

from __future__ import annotations

from typing import Any

from tests.template.cloudformation import ACCOUNT, Environment, Stack


def traced_roles(stack: Stack) -> list[str]:
    """The roles of the functions that trace when asked (all but the custom resource's)."""
    return [role for role in stack.resources("AWS::IAM::Role") if role != "RuleSetActivationFunctionRole"]


def x_ray_policies(stack: Stack, role: str) -> list[str]:
    return [arn for arn in stack.properties(role).get("ManagedPolicyArns", []) if "xray" in arn.lower()]


def test_template_x_ray_permissions_only_when_tracing_is_active(stack: Stack, variant: Any) -> None:
    # GIVEN tracing Disabled (every environment's default) THEN no function traces and no role may write to X-Ray
    assert stack.parameters["Tracing"] == "Disabled"
    for role in stack.resources("AWS::IAM::Role"):
        assert x_ray_policies(stack, role) == [], role
    for function in stack.resources("AWS::Lambda::Function"):
        assert "TracingConfig" not in stack.properties(function), function
    # WHEN tracing is turned on THEN the runtime functions' roles may write traces
    traced = variant("dev", Tracing="Active")
    assert {"ForwarderFunctionRole", "DownloadFunctionRole"} <= set(traced_roles(traced))
    for role in traced_roles(traced):
        assert x_ray_policies(traced, role) == ["arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"], role


def test_template_download_function_concurrency_is_reserved(stack: Stack, variant: Any) -> None:
    # GIVEN a public URL that anyone may flood THEN the download function has a small reserved concurrency,
    # which bounds it (a function URL has no throttling of its own)
    assert stack.properties("DownloadFunction")["ReservedConcurrentExecutions"] == "2"
    # AND an account whose quota leaves nothing to reserve can turn it off
    assert "ReservedConcurrentExecutions" not in variant("dev", DownloadConcurrency="0").properties("DownloadFunction")


def topic_statements(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Topic -> the statements of the topic policies that name it."""
    found: dict[str, list[dict[str, Any]]] = {}
    for policy in map(stack.properties, stack.resources("AWS::SNS::TopicPolicy")):
        for topic in policy["Topics"]:
            found.setdefault(topic, []).extend(policy["PolicyDocument"]["Statement"])
    return found


def test_template_every_topic_refuses_publishing_without_tls(stack: Stack) -> None:
    # GIVEN the stack's topics THEN each has a policy that denies any publish not made over TLS
    policies = topic_statements(stack)
    topics = {f"<Ref:{logical_id}>" for logical_id in stack.resources("AWS::SNS::Topic")}
    assert topics == {"<Ref:SesEventsTopic>", "<Ref:AlarmTopic>"}
    for topic in topics:
        denials = [
            s
            for s in policies.get(topic, [])
            if s["Effect"] == "Deny"
            and s["Principal"] == "*"
            and s["Action"] == "sns:Publish"
            and s["Resource"] == topic
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denials, f"{topic} accepts publishing without TLS"


def test_template_the_failure_queue_refuses_requests_without_tls(stack: Stack) -> None:
    # GIVEN the stack's queues (parked SES events name the mail and its recipients) THEN each has a queue policy
    # that denies any request not made over TLS, as the bucket and the topics do
    queues = {f"<Ref:{logical_id}>" for logical_id in stack.resources("AWS::SQS::Queue")}
    assert queues == {"<Ref:FailureQueue>"}
    denied: set[str] = set()
    for policy in map(stack.properties, stack.resources("AWS::SQS::QueuePolicy")):
        for statement in policy["PolicyDocument"]["Statement"]:
            if (
                statement["Effect"] == "Deny"
                and statement["Principal"] == "*"
                and statement["Action"] == "sqs:*"
                and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            ):
                denied.update(policy["Queues"])
    assert denied == queues


def test_template_cloudwatch_alarms_may_publish_to_the_alarm_topic(stack: Stack, env: Environment) -> None:
    # GIVEN the alarm topic's own policy replaces SNS's default one THEN this account's alarms may still publish
    allowed = [s for s in topic_statements(stack)["<Ref:AlarmTopic>"] if s["Effect"] == "Allow"]
    assert allowed == [
        {
            "Sid": "AllowCloudWatchAlarms",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": "<Ref:AlarmTopic>",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{env.region}:{ACCOUNT}:alarm:*"},
            },
        }
    ]


def test_template_every_parameter_is_in_one_parameter_group(template: dict[str, Any]) -> None:
    # GIVEN the console shows parameters by group THEN each parameter (Tracing too) is in exactly one group
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [name for group in groups for name in group["Parameters"]]
    assert sorted(grouped) == sorted(template["Parameters"])
