"""The custom resource that activates the stack's receipt rule set, against moto's SES."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from custom_resources import rule_set_activation as activation


@pytest.fixture
def ses() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("ses", region_name="us-east-1")
        for name in ("ours", "theirs", "ours-renamed"):
            client.create_receipt_rule_set(RuleSetName=name)
        yield client


@pytest.fixture
def responses(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the handler PUTs to CloudFormation's response URL."""
    sent: list[dict[str, Any]] = []

    class Answer:
        status = 200

        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def urlopen(request: Any, timeout: int) -> Answer:
        assert request.get_method() == "PUT"
        assert request.full_url == "https://cloudformation-response.example/presigned"
        sent.append(json.loads(request.data))
        return Answer()

    monkeypatch.setattr(activation.urllib.request, "urlopen", urlopen)
    return sent


def event(request: str, rule_set: str = "ours", **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request,
        "ResponseURL": "https://cloudformation-response.example/presigned",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/email-forwarder-dev/1",
        "RequestId": "request-1",
        "LogicalResourceId": "ActiveReceiptRuleSet",
        "ResourceType": "Custom::ActiveReceiptRuleSet",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "RuleSetName": rule_set},
        **extra,
    }


def active(ses: Any) -> str | None:
    return activation.active_rule_set(ses)


def test_activation_create_activates_when_nothing_is_active(ses: Any) -> None:
    # GIVEN no active rule set WHEN the stack creates the resource THEN ours becomes active
    assert activation.apply(event("Create"), ses) == "ours"
    assert active(ses) == "ours"


def test_activation_create_is_idempotent_when_ours_is_active(ses: Any) -> None:
    ses.set_active_receipt_rule_set(RuleSetName="ours")
    assert activation.apply(event("Create"), ses) == "ours"
    assert active(ses) == "ours"


def test_activation_create_refuses_to_switch_off_another_set(ses: Any) -> None:
    # GIVEN another team's rule set is active WHEN the stack would activate ours THEN it refuses, names the active
    # set and the ways forward, and leaves receiving untouched
    ses.set_active_receipt_rule_set(RuleSetName="theirs")
    with pytest.raises(activation.ActivationRefusedError) as refused:
        activation.apply(event("Create"), ses)
    message = str(refused.value)
    assert "'theirs' is active in us-east-1" in message
    assert "ReceiptRuleSetMode=join-existing" in message
    assert "ReceiptRuleSetName=theirs" in message
    assert active(ses) == "theirs"


def test_activation_update_may_move_from_our_previous_set(ses: Any) -> None:
    # GIVEN our old set is active WHEN the stack renames its set THEN the new one takes over
    ses.set_active_receipt_rule_set(RuleSetName="ours")
    update = event("Update", "ours-renamed", PhysicalResourceId="ours", OldResourceProperties={"RuleSetName": "ours"})
    assert activation.apply(update, ses) == "ours-renamed"
    assert active(ses) == "ours-renamed"
    # WHEN CloudFormation then deletes the old physical resource THEN the new set stays active
    activation.apply(event("Delete", "ours", PhysicalResourceId="ours"), ses)
    assert active(ses) == "ours-renamed"


def test_activation_update_still_refuses_another_set(ses: Any) -> None:
    ses.set_active_receipt_rule_set(RuleSetName="theirs")
    update = event("Update", "ours-renamed", PhysicalResourceId="ours", OldResourceProperties={"RuleSetName": "ours"})
    with pytest.raises(activation.ActivationRefusedError):
        activation.apply(update, ses)
    assert active(ses) == "theirs"


def test_activation_delete_deactivates_only_our_set(ses: Any) -> None:
    # GIVEN ours is active WHEN the stack is deleted THEN receiving is switched off (as before the stack)
    ses.set_active_receipt_rule_set(RuleSetName="ours")
    activation.apply(event("Delete", PhysicalResourceId="ours"), ses)
    assert active(ses) is None


def test_activation_delete_leaves_another_active_set(ses: Any) -> None:
    # GIVEN someone activated another set since WHEN the stack is deleted THEN that set stays active
    ses.set_active_receipt_rule_set(RuleSetName="theirs")
    activation.apply(event("Delete", PhysicalResourceId="ours"), ses)
    assert active(ses) == "theirs"


def test_activation_handler_reports_success(ses: Any, responses: list[dict[str, Any]]) -> None:
    activation.handler(event("Create"), None)
    assert responses == [
        {
            "Status": "SUCCESS",
            "Reason": "ok",
            "PhysicalResourceId": "ours",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/email-forwarder-dev/1",
            "RequestId": "request-1",
            "LogicalResourceId": "ActiveReceiptRuleSet",
            "NoEcho": False,
            "Data": {"RuleSetName": "ours"},
        }
    ]


def test_activation_handler_reports_refusal_as_failure(ses: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN a refusal WHEN the handler runs THEN CloudFormation gets FAILED with the reason (the stack rolls back
    # instead of hanging for an hour)
    ses.set_active_receipt_rule_set(RuleSetName="theirs")
    activation.handler(event("Create"), None)
    (response,) = responses
    assert response["Status"] == "FAILED"
    assert response["Reason"].startswith("ActivationRefusedError: SES receipt rule set 'theirs' is active")
    assert response["PhysicalResourceId"] == "ours"
    # WHEN CloudFormation rolls back with a Delete of that id THEN the other set stays active
    activation.handler(event("Delete", PhysicalResourceId="ours"), None)
    assert responses[-1]["Status"] == "SUCCESS"
    assert active(ses) == "theirs"


def test_activation_handler_reports_unexpected_errors(ses: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN a rule set that does not exist WHEN activation fails in SES THEN the failure still reaches CloudFormation
    activation.handler(event("Create", "missing"), None)
    assert responses[-1]["Status"] == "FAILED"
    assert "missing" in responses[-1]["Reason"] or "RuleSetDoesNotExist" in responses[-1]["Reason"]


def test_activation_refuses_a_non_https_response_url() -> None:
    with pytest.raises(ValueError, match="https"):
        activation.send_response({**event("Create"), "ResponseURL": "file:///etc/passwd"}, "SUCCESS", "ok", "ours")
