"""The custom resource that activates the stack's receipt rule set, against moto's SES."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
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
    # GIVEN no active rule set WHEN the stack creates the resource THEN ours becomes active (the physical id names
    # it, and records that this resource activated it)
    assert activation.rule_set_of(activation.apply(event("Create"), ses)) == "ours"
    assert active(ses) == "ours"


def test_activation_create_is_idempotent_when_ours_is_active(ses: Any) -> None:
    ses.set_active_receipt_rule_set(RuleSetName="ours")
    assert activation.apply(event("Create"), ses) == "ours:kept"
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
    assert activation.rule_set_of(activation.apply(update, ses)) == "ours-renamed"
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
    # the physical id names the set and records that this resource activated it (the set existed: the fixture's)
    (response,) = responses
    assert response.pop("PhysicalResourceId").startswith("ours:activated:")
    assert [response] == [
        {
            "Status": "SUCCESS",
            "Reason": "ok",
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
    assert response["PhysicalResourceId"] == "not-created:ours"
    # WHEN CloudFormation rolls back with a Delete of that id THEN the other set stays active
    activation.handler(event("Delete", PhysicalResourceId=response["PhysicalResourceId"]), None)
    assert responses[-1]["Status"] == "SUCCESS"
    assert active(ses) == "theirs"


def test_activation_handler_reports_unexpected_errors(ses: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN a rule set name SES refuses WHEN creating it fails in SES THEN the failure still reaches CloudFormation
    # (a missing set is no error any more: create-and-activate creates it)
    activation.handler(event("Create", "bad name!"), None)
    assert responses[-1]["Status"] == "FAILED"
    assert "ValidationError" in responses[-1]["Reason"]


def test_activation_refuses_a_non_https_response_url() -> None:
    with pytest.raises(ValueError, match="https"):
        activation.send_response({**event("Create"), "ResponseURL": "file:///etc/passwd"}, "SUCCESS", "ok", "ours")


# --- the set shared by the environments of one account and region ----------------------------------------------
#
# CloudFormation creates the custom resource before the stack's AWS::SES::ReceiptRule (the rule refers to it) and
# deletes the rule before the custom resource. `Environment` replays those calls against moto: the handler for
# the custom resource, CreateReceiptRule/DeleteReceiptRule for the rule.

SHARED = "email-forwarder"


def delete_receipt_rule(ses: Any, rule_set: str, rule: str) -> None:
    """SES's DeleteReceiptRule, which moto does not implement: drop the rule from moto's rule set."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID][ses.meta.region_name]
    stored = backend.receipt_rule_set[rule_set]
    stored.rules = [r for r in stored.rules if r["Name"] != rule]


def rules(ses: Any, rule_set: str) -> list[str] | None:
    return activation.rules_in(ses, rule_set)


class Environment:
    """One stack's custom resource and receipt rule, driven the way CloudFormation drives them."""

    def __init__(self, ses: Any, responses: list[dict[str, Any]], stack: str, mode: str, rule_set: str = SHARED):
        self.ses, self.responses, self.stack = ses, responses, stack
        self.properties = {
            "ServiceToken": "arn:aws:lambda:...",
            "RuleSetName": rule_set,
            "Mode": mode,
            "RuleName": stack,
        }
        self.physical_id: str | None = None

    def _request(self, request: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
        event = {
            "RequestType": request,
            "ResponseURL": "https://cloudformation-response.example/presigned",
            "StackId": f"arn:aws:cloudformation:us-east-1:123456789012:stack/{self.stack}/1",
            "RequestId": f"{self.stack}-{len(self.responses)}",
            "LogicalResourceId": "SharedReceiptRuleSet",
            "ResourceType": "Custom::SharedReceiptRuleSet",
            "ResourceProperties": properties,
            **extra,
        }
        activation.handle(event, None, self.ses)
        return self.responses[-1]

    def create(self) -> dict[str, Any]:
        answer = self._request("Create", self.properties)
        self.physical_id = answer["PhysicalResourceId"]
        if answer["Status"] == "SUCCESS":  # the rule goes into the set the RuleSetName attribute names
            rule = {"Name": self.stack, "Enabled": True, "Recipients": [f"{self.stack}.example"], "Actions": []}
            self.ses.create_receipt_rule(RuleSetName=answer["Data"]["RuleSetName"], Rule=rule)
        else:  # CloudFormation rolls the failed resource back with a Delete of the id it was given
            self._request("Delete", self.properties, PhysicalResourceId=self.physical_id)
        return answer

    def update(self, **changes: str) -> dict[str, Any]:
        old, new = self.properties, {**self.properties, **changes}
        answer = self._request("Update", new, PhysicalResourceId=self.physical_id, OldResourceProperties=old)
        if answer["Status"] != "SUCCESS":  # CloudFormation rolls back with an update to the old properties
            rollback = self._request("Update", old, PhysicalResourceId=self.physical_id, OldResourceProperties=new)
            assert rollback["Status"] == "SUCCESS", rollback
            return answer
        self.properties = new
        if answer["PhysicalResourceId"] != self.physical_id:  # a replacement: new rule, then the old ones go
            moved = answer["Data"]["RuleSetName"] != activation.rule_set_of(str(self.physical_id))
            if moved:  # the rule's RuleSetName changed; otherwise CloudFormation leaves the rule as it is
                rule = {"Name": self.stack, "Enabled": True, "Recipients": [f"{self.stack}.example"], "Actions": []}
                self.ses.create_receipt_rule(RuleSetName=answer["Data"]["RuleSetName"], Rule=rule)
                delete_receipt_rule(self.ses, activation.rule_set_of(str(self.physical_id)), self.stack)
            self._request("Delete", old, PhysicalResourceId=self.physical_id)
            self.physical_id = answer["PhysicalResourceId"]
        return answer

    def delete(self) -> dict[str, Any]:
        delete_receipt_rule(self.ses, activation.rule_set_of(str(self.physical_id)), self.stack)
        return self._request("Delete", self.properties, PhysicalResourceId=self.physical_id)


@pytest.fixture
def region() -> Iterator[Any]:
    """An account and region without any receipt rule set."""
    with mock_aws():
        yield boto3.client("ses", region_name="us-east-1")


def test_shared_set_owner_deleted_the_joiners_rule_keeps_receiving(
    region: Any, responses: list[dict[str, Any]]
) -> None:
    # GIVEN dev owns the shared set (create-and-activate) and preview joined it
    dev = Environment(region, responses, "email-forwarder-dev", "create-and-activate")
    preview = Environment(region, responses, "email-forwarder-preview", "join-existing")
    assert dev.create()["Status"] == "SUCCESS"
    assert preview.create()["Status"] == "SUCCESS"
    assert active(region) == SHARED
    assert sorted(rules(region, SHARED) or []) == ["email-forwarder-dev", "email-forwarder-preview"]
    # WHEN the owner's stack is deleted
    assert dev.delete()["Status"] == "SUCCESS"
    # THEN only its rule is gone: the set stays, active, with preview's rule in it
    assert active(region) == SHARED
    assert rules(region, SHARED) == ["email-forwarder-preview"]
    # WHEN the joiner goes too THEN it deletes nothing but its rule (a joiner never deletes the set)
    assert preview.delete()["Status"] == "SUCCESS"
    assert rules(region, SHARED) == []
    assert active(region) == SHARED


def test_shared_set_the_last_owner_removes_the_empty_set(region: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN one environment owns the set alone WHEN its stack is deleted THEN the empty set is deactivated and
    # deleted, leaving the region as it found it
    dev = Environment(region, responses, "email-forwarder-dev", "create-and-activate")
    dev.create()
    assert dev.delete()["Status"] == "SUCCESS"
    assert rules(region, SHARED) is None
    assert active(region) is None


def test_shared_set_switching_the_mode_deletes_nothing(region: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN an owner and a joiner in the shared set
    dev = Environment(region, responses, "email-forwarder-dev", "create-and-activate")
    preview = Environment(region, responses, "email-forwarder-preview", "join-existing")
    dev.create()
    preview.create()
    # WHEN the owner switches to join-existing, and back THEN the set, its activation and both rules stay
    assert dev.update(Mode="join-existing")["Status"] == "SUCCESS"
    assert dev.physical_id == SHARED
    assert active(region) == SHARED
    assert sorted(rules(region, SHARED) or []) == ["email-forwarder-dev", "email-forwarder-preview"]
    assert dev.update(Mode="create-and-activate")["Status"] == "SUCCESS"
    assert active(region) == SHARED
    assert sorted(rules(region, SHARED) or []) == ["email-forwarder-dev", "email-forwarder-preview"]
    # WHEN the joiner becomes an owner too THEN nothing changes either
    assert preview.update(Mode="create-and-activate")["Status"] == "SUCCESS"
    assert sorted(rules(region, SHARED) or []) == ["email-forwarder-dev", "email-forwarder-preview"]


def test_shared_set_another_active_set_is_refused_with_the_fix(region: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN the team's hand-made set is active, with the rule of their earlier forwarder
    region.create_receipt_rule_set(RuleSetName="legacy")
    region.create_receipt_rule(RuleSetName="legacy", Rule={"Name": "old-forwarder", "Enabled": True, "Actions": []})
    region.set_active_receipt_rule_set(RuleSetName="legacy")
    # WHEN a stack would create and activate its own set
    answer = Environment(region, responses, "email-forwarder-dev", "create-and-activate").create()
    # THEN CloudFormation gets the reason and the fix, nothing was created, and the team's set still receives
    assert answer["Status"] == "FAILED"
    assert "'legacy' is active in us-east-1" in answer["Reason"]
    assert "ReceiptRuleSetMode=join-existing and ReceiptRuleSetName=legacy" in answer["Reason"]
    assert rules(region, SHARED) is None
    assert active(region) == "legacy"
    assert rules(region, "legacy") == ["old-forwarder"]


def test_shared_set_refused_create_rolls_back_without_deleting_a_set_of_our_name(
    region: Any, responses: list[dict[str, Any]]
) -> None:
    # GIVEN the team's hand-made active set, and an empty set of the stack's name made by hand earlier
    region.create_receipt_rule_set(RuleSetName="legacy")
    region.set_active_receipt_rule_set(RuleSetName="legacy")
    region.create_receipt_rule_set(RuleSetName=SHARED)
    # WHEN a stack's create-and-activate is refused and CloudFormation rolls the resource back
    answer = Environment(region, responses, "email-forwarder-dev", "create-and-activate").create()
    # THEN the rollback's Delete deletes nothing: the set of our name was not this stack's to delete
    assert answer["Status"] == "FAILED"
    assert responses[-1]["Status"] == "SUCCESS"
    assert rules(region, SHARED) == []
    assert active(region) == "legacy"


def test_shared_set_failed_create_rolls_back_the_set_it_created(region: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN SES refusing the activation after the stack created its set
    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "SetActiveReceiptRuleSet")

    region.set_active_receipt_rule_set = refuse
    # WHEN the Create fails and CloudFormation rolls it back
    answer = Environment(region, responses, "email-forwarder-dev", "create-and-activate").create()
    # THEN the set this Create made is deleted again
    assert answer["Status"] == "FAILED" and answer["PhysicalResourceId"] == SHARED
    assert rules(region, SHARED) is None


def test_shared_set_joining_the_hand_made_active_set(region: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN the team's hand-made active set WHEN a stack joins it and is deleted later THEN only the stack's rule
    # came and went: the set, its activation and the team's rule are untouched
    region.create_receipt_rule_set(RuleSetName="legacy")
    region.create_receipt_rule(RuleSetName="legacy", Rule={"Name": "old-forwarder", "Enabled": True, "Actions": []})
    region.set_active_receipt_rule_set(RuleSetName="legacy")
    dev = Environment(region, responses, "email-forwarder-dev", "join-existing", rule_set="legacy")
    assert dev.create()["Status"] == "SUCCESS"
    assert sorted(rules(region, "legacy") or []) == ["email-forwarder-dev", "old-forwarder"]
    assert dev.delete()["Status"] == "SUCCESS"
    assert rules(region, "legacy") == ["old-forwarder"]
    assert active(region) == "legacy"


def test_shared_set_joining_a_missing_set_is_refused_with_the_fix(region: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN no such set WHEN a stack would join it THEN the deploy fails naming the set and the two fixes, and
    # nothing is created
    answer = Environment(region, responses, "email-forwarder-dev", "join-existing", rule_set="nowhere").create()
    assert answer["Status"] == "FAILED"
    assert "'nowhere' does not exist in us-east-1" in answer["Reason"]
    assert "ReceiptRuleSetMode=create-and-activate" in answer["Reason"]
    assert rules(region, "nowhere") is None
    assert active(region) is None


def test_shared_set_renaming_keeps_joiners_receiving(region: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN an owner and a joiner in the active set WHEN the owner renames its set THEN it refuses: moving the
    # activation would switch the joiner's rule off
    dev = Environment(region, responses, "email-forwarder-dev", "create-and-activate")
    preview = Environment(region, responses, "email-forwarder-preview", "join-existing")
    dev.create()
    preview.create()
    answer = dev.update(RuleSetName="renamed")
    assert answer["Status"] == "FAILED"
    assert f"'{SHARED}' is active" in answer["Reason"]
    assert active(region) == SHARED
    assert sorted(rules(region, SHARED) or []) == ["email-forwarder-dev", "email-forwarder-preview"]
    # WHEN the owner is alone THEN the rename moves the activation, its rule, and removes the old empty set
    preview.delete()
    assert dev.update(RuleSetName="renamed")["Status"] == "SUCCESS"
    assert active(region) == "renamed"
    assert rules(region, "renamed") == ["email-forwarder-dev"]
    assert rules(region, SHARED) is None


class RacingStack:
    """The SES client as the handler sees it while another stack of the region deploys at the same time: that
    stack's CreateReceiptRuleSet lands between this one's lookup and its own create."""

    def __init__(self, ses: Any) -> None:
        self._ses = ses

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ses, name)

    def create_receipt_rule_set(self, **kwargs: Any) -> Any:
        self._ses.create_receipt_rule_set(**kwargs)  # the other stack's call
        return self._ses.create_receipt_rule_set(**kwargs)


def test_shared_set_created_meanwhile_by_another_stack_is_claimed(region: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN two environments of one region deploying at once, both create-and-activate on a region without a set
    # WHEN the other stack creates the set between this one's lookup and its create (SES: AlreadyExists)
    stack = Environment(RacingStack(region), responses, "email-forwarder-dev", "create-and-activate")
    answer = stack.create()
    # THEN the set exists, which is what the create wanted: success and the set active, not a failed deploy
    # whose rollback would then delete the set the other stack just made
    assert answer["Status"] == "SUCCESS", answer
    assert active(region) == SHARED
    assert rules(region, SHARED) == ["email-forwarder-dev"]


def test_shared_set_an_inactive_empty_set_of_our_name_is_claimed(region: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN an empty, inactive set of our name WHEN the stack is created THEN it is activated with our rule
    region.create_receipt_rule_set(RuleSetName=SHARED)
    dev = Environment(region, responses, "email-forwarder-dev", "create-and-activate")
    assert dev.create()["Status"] == "SUCCESS"
    assert active(region) == SHARED
    assert rules(region, SHARED) == ["email-forwarder-dev"]


# --- a first deploy that rolls back leaves the region's receiving as it found it ------------------------------


def hand_made(region: Any, rule_set: str, rules: list[str], active: bool = False) -> None:
    """A rule set made by hand before any stack, with these (team) rules, active or not."""
    region.create_receipt_rule_set(RuleSetName=rule_set)
    for name in rules:
        region.create_receipt_rule(RuleSetName=rule_set, Rule={"Name": name, "Enabled": True, "Actions": []})
    if active:
        region.set_active_receipt_rule_set(RuleSetName=rule_set)


@pytest.mark.parametrize("team_rules", [[], ["old-forwarder"]])
def test_shared_set_rollback_puts_back_the_inactive_hand_made_set(
    region: Any, responses: list[dict[str, Any]], team_rules: list[str]
) -> None:
    # GIVEN no active set, and the stack's set made by hand, inactive (empty, or with the team's dormant rule)
    hand_made(region, SHARED, team_rules)
    dev = Environment(region, responses, "email-forwarder-dev", "create-and-activate")

    # WHEN the first deploy activates it and then rolls back (the rule goes, then the custom resource's Delete)
    assert dev.create()["Status"] == "SUCCESS"
    assert active(region) == SHARED
    assert dev.delete()["Status"] == "SUCCESS"

    # THEN no set is active again, as before the deploy, and the hand-made set is still there with its rules
    assert active(region) is None
    assert rules(region, SHARED) == team_rules


@pytest.mark.parametrize("team_rules", [[], ["old-forwarder"]])
def test_shared_set_rollback_leaves_the_set_that_was_active_already(
    region: Any, responses: list[dict[str, Any]], team_rules: list[str]
) -> None:
    # GIVEN the stack's set made by hand and active already (empty, or with the team's rule)
    hand_made(region, SHARED, team_rules, active=True)
    dev = Environment(region, responses, "email-forwarder-dev", "create-and-activate")

    # WHEN the first deploy claims it and then rolls back
    assert dev.create()["Status"] == "SUCCESS"
    assert dev.delete()["Status"] == "SUCCESS"

    # THEN the set was not this stack's to deactivate or delete: it stays, active, with its rules
    assert active(region) == SHARED
    assert rules(region, SHARED) == team_rules


def test_shared_set_rollback_with_nothing_before_removes_what_it_made(
    region: Any, responses: list[dict[str, Any]]
) -> None:
    # GIVEN no rule set at all WHEN the first deploy creates and activates one and then rolls back
    dev = Environment(region, responses, "email-forwarder-dev", "create-and-activate")
    assert dev.create()["Status"] == "SUCCESS"
    assert dev.delete()["Status"] == "SUCCESS"

    # THEN the region is as it was: no set, none active
    assert rules(region, SHARED) is None
    assert active(region) is None


def test_shared_set_activated_hand_made_set_stays_active_once_others_joined(
    region: Any, responses: list[dict[str, Any]]
) -> None:
    # GIVEN the stack activated the hand-made inactive set, and another environment joined it since
    hand_made(region, SHARED, ["old-forwarder"])
    dev = Environment(region, responses, "email-forwarder-dev", "create-and-activate")
    preview = Environment(region, responses, "email-forwarder-preview", "join-existing")
    assert dev.create()["Status"] == "SUCCESS"
    assert preview.create()["Status"] == "SUCCESS"

    # WHEN the stack is deleted
    assert dev.delete()["Status"] == "SUCCESS"

    # THEN the set keeps receiving: switching it off would stop the joiner's rule
    assert active(region) == SHARED
    assert sorted(rules(region, SHARED) or []) == ["email-forwarder-preview", "old-forwarder"]


def test_shared_set_failed_create_that_activated_the_hand_made_set_rolls_it_back(
    region: Any, responses: list[dict[str, Any]]
) -> None:
    # GIVEN the stack's set made by hand, inactive, and SES applying the activation but failing the call (a timeout
    # after the request reached it)
    hand_made(region, SHARED, ["old-forwarder"])
    activate = region.set_active_receipt_rule_set

    def applied_then_failed(**kwargs: Any) -> None:
        activate(**kwargs)
        if kwargs:  # the activation; the rollback's deactivation goes through
            raise ClientError({"Error": {"Code": "RequestTimeout", "Message": "timed out"}}, "SetActiveReceiptRuleSet")

    region.set_active_receipt_rule_set = applied_then_failed
    dev = Environment(region, responses, "email-forwarder-dev", "create-and-activate")

    # WHEN the Create fails and CloudFormation rolls it back with a Delete of the id it was given
    answer = dev.create()

    # THEN that id named the set it found, so the rollback put its activation back, and deleted nothing
    assert answer["Status"] == "FAILED"
    assert responses[-1]["Status"] == "SUCCESS"
    assert active(region) is None
    assert rules(region, SHARED) == ["old-forwarder"]


def test_shared_set_rename_rolled_back_moves_the_activation_back(region: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN dev owns the active set, and the team's hand-made set `legacy` is inactive with its dormant rule
    dev = Environment(region, responses, "email-forwarder-dev", "create-and-activate")
    dev.create()
    hand_made(region, "legacy", ["old-forwarder"])
    old, new = dev.properties, {**dev.properties, "RuleSetName": "legacy"}

    # WHEN an update renames the set to `legacy` (the activation moves, the new rule goes there) ...
    moved = dev._request("Update", new, PhysicalResourceId=dev.physical_id, OldResourceProperties=old)
    assert moved["Status"] == "SUCCESS" and active(region) == "legacy"
    rule = {"Name": dev.stack, "Enabled": True, "Recipients": [f"{dev.stack}.example"], "Actions": []}
    region.create_receipt_rule(RuleSetName="legacy", Rule=rule)
    # ... and a later resource fails: CloudFormation updates back, then removes the new rule and the new resource
    back = dev._request("Update", old, PhysicalResourceId=moved["PhysicalResourceId"], OldResourceProperties=new)
    delete_receipt_rule(region, "legacy", dev.stack)
    cleanup = dev._request("Delete", new, PhysicalResourceId=moved["PhysicalResourceId"])

    # THEN the update back succeeded (the team's dormant rule in `legacy` does not stop it), the activation is back
    # on dev's set, and `legacy` is as it was: inactive, with its rule
    assert back["Status"] == "SUCCESS", back["Reason"]
    assert cleanup["Status"] == "SUCCESS"
    assert active(region) == SHARED
    assert rules(region, SHARED) == ["email-forwarder-dev"]
    assert rules(region, "legacy") == ["old-forwarder"]


def test_shared_set_switching_from_join_leaves_the_joined_set_on_delete(
    region: Any, responses: list[dict[str, Any]]
) -> None:
    # GIVEN the team's hand-made active set, joined by a stack that then switches to create-and-activate
    region.create_receipt_rule_set(RuleSetName="team-rules")
    region.set_active_receipt_rule_set(RuleSetName="team-rules")
    dev = Environment(region, responses, "email-forwarder-dev", "join-existing", rule_set="team-rules")
    dev.create()
    assert dev.update(Mode="create-and-activate")["Status"] == "SUCCESS"
    assert rules(region, "team-rules") == ["email-forwarder-dev"]
    # WHEN the stack is deleted (its rule first)
    assert dev.delete()["Status"] == "SUCCESS"
    # THEN the set it joined is still there and still active: this resource never created it
    assert active(region) == "team-rules"
    assert rules(region, "team-rules") == []
