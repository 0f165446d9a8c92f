"""The delivery trace's resources: the table, the delivery function and its SNS subscription, the forwarder's part."""

from __future__ import annotations

from typing import Any

from tests.template.cloudformation import Environment, Stack


def test_trace_table_keys_indexes_ttl_and_encryption(stack: Stack, env: Environment) -> None:
    # GIVEN `forwarder trace` reads one mail by partition and finds mails by sender, alias or day THEN the table has
    # those keys and indexes, pays per request, is encrypted and expires its items with the mail
    table = stack.properties("TraceTable")
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    indexes = {i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in table["GlobalSecondaryIndexes"]}
    assert indexes == {"lookup": ["lookup", "received"], "by-day": ["day", "received"]}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    assert stack.outputs()["TraceTable"] == "<Ref:TraceTable>"


def test_trace_delivery_function_subscribed_to_the_ses_events_topic(stack: Stack, env: Environment) -> None:
    # GIVEN SES publishes the configuration set's events to SesEventsTopic THEN the delivery function subscribes to
    # it, keeps the trace as long as the mail and alarms on the stack's alarm topic
    function = stack.properties("DeliveryFunction")
    assert function["Handler"] == "forwarder.delivery.lambda_handler"
    assert function["LoggingConfig"] == {"LogGroup": "<Ref:DeliveryLogGroup>"}
    variables = function["Environment"]["Variables"]
    assert variables["FORWARDER_TRACE_TABLE"] == "<Ref:TraceTable>"
    assert variables["FORWARDER_TRACE_EXPIRY_DAYS"] == env.parameters["RetentionDays"]
    assert variables["FORWARDER_ALARM_TOPIC_ARN"] == "<Ref:AlarmTopic>"
    subscriptions = [stack.properties(s) for s in stack.resources("AWS::SNS::Subscription")]
    assert {"Protocol": "lambda", "Endpoint": "<DeliveryFunction.Arn>", "TopicArn": "<Ref:SesEventsTopic>"} in [
        {k: s[k] for k in ("Protocol", "Endpoint", "TopicArn")} for s in subscriptions
    ]


def test_trace_configuration_set_publishes_every_event_the_trace_shows(stack: Stack) -> None:
    destinations = [
        stack.properties(d)["EventDestination"] for d in stack.resources("AWS::SES::ConfigurationSetEventDestination")
    ]
    sns = next(d for d in destinations if "SnsDestination" in d)
    assert sns["SnsDestination"] == {"TopicARN": "<Ref:SesEventsTopic>"}
    assert set(sns["MatchingEventTypes"]) >= {
        "send",
        "delivery",
        "bounce",
        "complaint",
        "reject",
        "deliveryDelay",
        "renderingFailure",
    }


def test_trace_subjects_only_when_the_parameter_allows(stack: Stack, variant: Any) -> None:
    # GIVEN subjects are personal data THEN the forwarder stores none by default, and does with TraceSubjects=true
    assert stack.properties("ForwarderFunction")["Environment"]["Variables"]["FORWARDER_TRACE_SUBJECTS"] == "false"
    on = variant("dev", TraceSubjects="true").properties("ForwarderFunction")["Environment"]["Variables"]
    assert on["FORWARDER_TRACE_SUBJECTS"] == "true"
