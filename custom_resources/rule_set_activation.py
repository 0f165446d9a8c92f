"""CloudFormation custom resource: make this stack's SES receipt rule set the active one, without clobbering.

SES receives mail through exactly one active receipt rule set per account and region. Activating a set
silently deactivates the one before it, and with it every rule other domains or teams rely on. So:

- Create/Update activates `RuleSetName` when no set is active, when it is already the active one, or (on
  an update that renames the set) when the active one is the set this resource activated before.
  When a different set is active it refuses, naming that set and the two ways forward.
- Delete deactivates only if `RuleSetName` is still the active set, leaving receiving as it found it.

The physical resource id is the rule set name, so a rename is a replacement: CloudFormation deletes the
old id after the update, and that delete is a no-op because the old set is no longer active.
Runs on the Lambda Python runtime with its bundled boto3; no dependencies.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

logger = logging.getLogger()
logger.setLevel(logging.INFO)


class ActivationRefusedError(RuntimeError):
    """Another receipt rule set is active; activating ours would switch it off."""


def active_rule_set(ses: Any) -> str | None:
    """The name of the active receipt rule set in the client's region, or None."""
    metadata = ses.describe_active_receipt_rule_set().get("Metadata") or {}
    return metadata.get("Name")


def activate(ses: Any, rule_set: str, previous: str | None = None) -> str:
    """Make `rule_set` active unless a set other than it (or `previous`, ours before) is active."""
    active = active_rule_set(ses)
    if active not in (None, rule_set, previous):
        region = ses.meta.region_name
        raise ActivationRefusedError(
            f"SES receipt rule set {active!r} is active in {region}; activating {rule_set!r} would switch it off "
            f"and stop every rule in it. Either deploy with ReceiptRuleSetMode=join-existing and "
            f"ReceiptRuleSetName={active} to add this stack's rule to it, or move its rules and deactivate it "
            f"deliberately (aws ses set-active-receipt-rule-set --region {region}) and deploy again."
        )
    if active != rule_set:
        ses.set_active_receipt_rule_set(RuleSetName=rule_set)
        logger.info("activated receipt rule set %s (was %s)", rule_set, active or "none")
    return rule_set


def deactivate(ses: Any, rule_set: str) -> None:
    """Deactivate receiving only if `rule_set` is still the active set."""
    active = active_rule_set(ses)
    if active == rule_set:
        ses.set_active_receipt_rule_set()
        logger.info("deactivated receipt rule set %s", rule_set)
    else:
        logger.info("left receipt rule set %s active (ours, %s, is not)", active or "none", rule_set)


def apply(event: dict[str, Any], ses: Any) -> str:
    """Carry out one CloudFormation request; returns the physical resource id."""
    rule_set = str(event["ResourceProperties"]["RuleSetName"])
    request = event["RequestType"]
    if request == "Delete":
        deactivate(ses, event.get("PhysicalResourceId") or rule_set)
        return event.get("PhysicalResourceId") or rule_set
    previous = event.get("OldResourceProperties", {}).get("RuleSetName") if request == "Update" else None
    return activate(ses, rule_set, previous)


def send_response(event: dict[str, Any], status: str, reason: str, physical_id: str) -> None:
    """PUT the result to the presigned S3 URL CloudFormation waits on."""
    url = event["ResponseURL"]
    if not url.startswith("https://"):
        raise ValueError("ResponseURL is not an https URL")
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:3000],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "NoEcho": False,
            "Data": {"RuleSetName": physical_id},
        }
    ).encode()
    request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310  # https checked above
        logger.info("CloudFormation response sent: %s %s", status, answer.status)


def handler(event: dict[str, Any], context: Any) -> None:
    """Lambda entry point; always answers CloudFormation, so that a stack never hangs on this resource."""
    import boto3

    logger.info(
        "%s %s rule set %s",
        event.get("RequestType"),
        event.get("LogicalResourceId"),
        event.get("ResourceProperties", {}).get("RuleSetName"),
    )
    fallback_id = event.get("PhysicalResourceId") or str(event.get("ResourceProperties", {}).get("RuleSetName", ""))
    try:
        physical_id = apply(event, boto3.client("ses"))
    except Exception as error:  # every failure must reach CloudFormation, not just the log
        logger.exception("receipt rule set activation failed")
        send_response(event, "FAILED", f"{type(error).__name__}: {error}", fallback_id or context.log_stream_name)
        return
    send_response(event, "SUCCESS", "ok", physical_id)
