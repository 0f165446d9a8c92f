"""CloudFormation custom resource: the SES receipt rule set shared by the environments of one account and region.

SES receives mail through exactly one active receipt rule set per account and region, so every environment
deployed there puts its rule into that one set. No stack may own the set as an AWS::SES::ReceiptRuleSet:
deleting that resource deletes the set and every rule in it, other environments' rules included. Instead,
per `Mode` (the template's ReceiptRuleSetMode):

- create-and-activate: Create/Update creates `RuleSetName` if it is missing and makes it active when no set
  is active (or it already is; or, on an update that renames the set, when the active one is this resource's
  previous set and holds no other stack's rule). When a different set is active it refuses, before creating
  anything, naming that set and the ways forward. Delete removes the set (deactivating it first if it is
  active) only when no rule is left in it; otherwise the set, its activation and the other rules stay. A
  Create that fails answers a physical id naming no set unless it created the set itself, so that the
  rollback's Delete never removes an empty set of that name made by someone else.
- join-existing: Create/Update only check that the set exists; Delete does nothing. Such a stack never
  activates or deletes a set.

Switching a stack's mode is an Update with the same physical id (the set's name): nothing is deleted. The
stack's AWS::SES::ReceiptRule refers to this resource, so CloudFormation creates the rule after it and deletes
the rule before it: by the time Delete runs, only other stacks' rules can be left in the set.

The handler always answers CloudFormation, within the function's timeout: SES calls have short timeouts and
few attempts and run against a deadline that keeps time for the response, and the response PUT is retried.
Runs on the Lambda Python runtime with its bundled boto3; no dependencies.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

logger = logging.getLogger()
logger.setLevel(logging.INFO)

CREATE_AND_ACTIVATE = "create-and-activate"
JOIN_EXISTING = "join-existing"

# Each SES call gives up after 2 attempts of at most 3 s to connect and 5 s to read (botocore's
# total_max_attempts counts attempts, max_attempts would count retries): a call never takes more than ~16 s.
CLIENT_CONFIG = Config(
    connect_timeout=3,
    read_timeout=5,
    retries={"total_max_attempts": 2, "mode": "standard"},
)
# The response PUT to CloudFormation's presigned S3 URL: 3 attempts of at most 5 s, 1 s and 2 s apart.
RESPONSE_ATTEMPTS = 3
RESPONSE_TIMEOUT = 5.0
RESPONSE_BACKOFF = (1.0, 2.0)
# What the response may take at worst, plus a margin: the SES work must be done (or abandoned) before the
# function's remaining time drops below this.
RESPONSE_BUDGET = RESPONSE_ATTEMPTS * RESPONSE_TIMEOUT + sum(RESPONSE_BACKOFF) + 2.0
# CloudFormation's response URL is a presigned S3 https URL; nothing else is ever written to.
RESPONSE_URL_PREFIXES: tuple[str, ...] = ("https://",)
# The prefix of a physical id that holds no rule set (see `not_held`).
NOT_HELD = "not-created:"
# Without a Lambda context (called directly), assume the template's function timeout.
DEFAULT_REMAINING_SECONDS = 60.0


class ActivationRefusedError(RuntimeError):
    """Another receipt rule set is active; activating ours would switch it off."""


class RuleSetMissingError(RuntimeError):
    """join-existing names a rule set that does not exist in the region."""


class ResponseNotDeliveredError(RuntimeError):
    """Every attempt to PUT the response to CloudFormation failed."""


def active_rule_set(ses: Any) -> str | None:
    """The name of the active receipt rule set in the client's region, or None."""
    metadata = ses.describe_active_receipt_rule_set().get("Metadata") or {}
    return metadata.get("Name")


def rules_in(ses: Any, rule_set: str) -> list[str] | None:
    """The names of the rules in `rule_set`, or None when the set does not exist."""
    try:
        described = ses.describe_receipt_rule_set(RuleSetName=rule_set)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "RuleSetDoesNotExist":
            return None
        raise
    return [rule["Name"] for rule in described.get("Rules") or []]


def claim(
    ses: Any,
    rule_set: str,
    previous: str | None = None,
    rule_name: str | None = None,
    created: list[str] | None = None,
) -> str:
    """create-and-activate: create `rule_set` if missing and make it active, unless another set is active.

    `previous` is the set this resource held before a rename: its activation may move to the new set when no
    rule other than this stack's `rule_name` is in it (moving it would otherwise switch those rules off).
    A set this call creates is appended to `created`.
    """
    active = active_rule_set(ses)
    region = ses.meta.region_name
    if active not in (None, rule_set) and not (active == previous and _only_ours(ses, active, rule_name)):
        raise ActivationRefusedError(
            f"SES receipt rule set {active!r} is active in {region}; activating {rule_set!r} would switch it off "
            f"and stop every rule in it. Either deploy with ReceiptRuleSetMode=join-existing and "
            f"ReceiptRuleSetName={active} to add this stack's rule to it, or move its rules and deactivate it "
            f"deliberately (aws ses set-active-receipt-rule-set --region {region}) and deploy again."
        )
    if rules_in(ses, rule_set) is None:
        try:
            ses.create_receipt_rule_set(RuleSetName=rule_set)
            logger.info("created receipt rule set %s", rule_set)
            if created is not None:
                created.append(rule_set)
        except ClientError as error:
            # Another stack of the region created it since it was looked up: it exists, which is all this needs.
            if error.response.get("Error", {}).get("Code") != "AlreadyExists":
                raise
            logger.info("receipt rule set %s was created meanwhile by another stack", rule_set)
    if active != rule_set:
        ses.set_active_receipt_rule_set(RuleSetName=rule_set)
        logger.info("activated receipt rule set %s (was %s)", rule_set, active or "none")
    return rule_set


def _only_ours(ses: Any, rule_set: str, rule_name: str | None) -> bool:
    rules = rules_in(ses, rule_set)
    return rules is not None and set(rules) <= {rule_name}


def require(ses: Any, rule_set: str) -> str:
    """join-existing: the set must exist; it is neither activated nor changed."""
    region = ses.meta.region_name
    if rules_in(ses, rule_set) is None:
        raise RuleSetMissingError(
            f"SES receipt rule set {rule_set!r} does not exist in {region}, and ReceiptRuleSetMode=join-existing "
            f"adds this stack's rule to an existing set. Set ReceiptRuleSetName to the active set's name "
            f"(aws ses describe-active-receipt-rule-set --region {region}), or deploy with "
            f"ReceiptRuleSetMode=create-and-activate to create it."
        )
    active = active_rule_set(ses)
    if active != rule_set:
        # Not an error: the team may activate it later. Receiving through this stack waits for that.
        logger.warning("receipt rule set %s is not the active one (%s): its rules receive nothing", rule_set, active)
    return rule_set


def release(ses: Any, rule_set: str) -> None:
    """create-and-activate Delete: remove the set only when no rule is left in it (deactivating it first)."""
    rules = rules_in(ses, rule_set)
    if rules is None:
        logger.info("receipt rule set %s is already gone", rule_set)
        return
    if rules:
        logger.info("left receipt rule set %s in place: %d rule(s) of other stacks remain", rule_set, len(rules))
        return
    # SES refuses to delete the active set; an empty active set receives nothing anyway.
    if active_rule_set(ses) == rule_set:
        ses.set_active_receipt_rule_set()
        logger.info("deactivated receipt rule set %s", rule_set)
    ses.delete_receipt_rule_set(RuleSetName=rule_set)
    logger.info("deleted the empty receipt rule set %s", rule_set)


def apply(event: dict[str, Any], ses: Any, created: list[str] | None = None) -> str:
    """Carry out one CloudFormation request; returns the physical resource id (the set's name). A set a Create
    or Update creates is appended to `created`."""
    properties = event["ResourceProperties"]
    rule_set = str(properties["RuleSetName"])
    mode = str(properties.get("Mode", CREATE_AND_ACTIVATE))
    request = event["RequestType"]
    if request == "Delete":
        # The physical id names the set this resource held (after a rename, the old one); a Create that failed
        # without creating a set answered an id that names none (`not_held`), so its rollback deletes nothing.
        held = event.get("PhysicalResourceId") or rule_set
        if mode == CREATE_AND_ACTIVATE and not held.startswith(NOT_HELD):
            release(ses, held)
        return held
    if mode == JOIN_EXISTING:
        return require(ses, rule_set)
    old = event.get("OldResourceProperties", {}) if request == "Update" else {}
    previous = old.get("RuleSetName") if old.get("Mode", CREATE_AND_ACTIVATE) == CREATE_AND_ACTIVATE else None
    return claim(ses, rule_set, previous, properties.get("RuleName"), created)


def not_held(rule_set: str) -> str:
    """The physical id of a Create that failed before creating `rule_set`: CloudFormation rolls it back with a
    Delete of this id, which must not delete a set of that name someone else made (`:` is in no set's name)."""
    return f"{NOT_HELD}{rule_set}"


def send_response(event: dict[str, Any], status: str, reason: str, physical_id: str) -> None:
    """PUT the result to the presigned S3 URL CloudFormation waits on, retrying a failed attempt."""
    url = event["ResponseURL"]
    if not url.startswith(RESPONSE_URL_PREFIXES):
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
    failure: Exception | None = None
    for attempt in range(RESPONSE_ATTEMPTS):
        request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=RESPONSE_TIMEOUT) as answer:  # noqa: S310  # scheme checked
                logger.info("CloudFormation response sent: %s %s", status, answer.status)
                return
        except (urllib.error.URLError, OSError) as error:  # HTTPError and timeouts included
            failure = error
            logger.warning("CloudFormation response attempt %d failed: %s", attempt + 1, error)
        if attempt < len(RESPONSE_BACKOFF):
            time.sleep(RESPONSE_BACKOFF[attempt])
    raise ResponseNotDeliveredError(f"no response reached CloudFormation in {RESPONSE_ATTEMPTS} attempts") from failure


def remaining_seconds(context: Any) -> float:
    """The function's remaining time, from the Lambda context."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if callable(remaining) else DEFAULT_REMAINING_SECONDS


_ONE_AT_A_TIME = threading.Lock()


def handle(event: dict[str, Any], context: Any, ses: Any) -> None:
    """Carry out the request against the deadline, then answer CloudFormation whatever happened."""
    logger.info(
        "%s %s rule set %s (%s)",
        event.get("RequestType"),
        event.get("LogicalResourceId"),
        event.get("ResourceProperties", {}).get("RuleSetName"),
        event.get("ResourceProperties", {}).get("Mode", CREATE_AND_ACTIVATE),
    )
    rule_set = str(event.get("ResourceProperties", {}).get("RuleSetName", ""))
    outcome: dict[str, Any] = {}
    created: list[str] = []
    decided = threading.Lock()  # the worker starts, or the handler abandons it: not both

    def work() -> None:
        # One request's SES calls at a time: a thread left hung by an earlier request resumes when Lambda thaws
        # this environment for the next one (say, the rollback's Delete), and must finish before it starts.
        with _ONE_AT_A_TIME:
            with decided:
                if "abandoned" in outcome:  # answered FAILED before it could start: it changes nothing
                    return
                outcome["started"] = True
            try:
                outcome["physical_id"] = apply(event, ses, created)
            except Exception as error:  # every failure must reach CloudFormation, not just the log
                logger.exception("receipt rule set request failed")
                outcome["error"] = error

    # The SES calls run in a daemon thread so that a hung call cannot keep the answer from CloudFormation: after
    # the deadline the handler answers FAILED and returns; Lambda freezes the thread with the environment.
    seconds = max(remaining_seconds(context) - RESPONSE_BUDGET, 1.0)
    worker = threading.Thread(target=work, name="ses", daemon=True)
    worker.start()
    worker.join(seconds)
    # A failed Create holds only a set it created itself (its rollback may delete that one); an Update or Delete
    # keeps the id it had.
    fallback_id = event.get("PhysicalResourceId") or (rule_set if rule_set in created else not_held(rule_set))
    with decided:
        if worker.is_alive() and "started" not in outcome:
            outcome["abandoned"] = True
    if "abandoned" in outcome:
        reason = (
            f"an earlier request's SES calls were still running after {seconds:.0f} s; nothing was changed. "
            "Deploy again."
        )
        send_response(event, "FAILED", reason, fallback_id or context.log_stream_name)
    elif worker.is_alive():
        reason = (
            f"SES did not answer within {seconds:.0f} s; the rule set may be half done. Check it with "
            f"`aws ses describe-active-receipt-rule-set` and deploy again."
        )
        send_response(event, "FAILED", reason, fallback_id or context.log_stream_name)
    elif "error" in outcome:
        error = outcome["error"]
        send_response(event, "FAILED", f"{type(error).__name__}: {error}", fallback_id or context.log_stream_name)
    else:
        send_response(event, "SUCCESS", "ok", outcome["physical_id"])


def handler(event: dict[str, Any], context: Any) -> None:
    """Lambda entry point; always answers CloudFormation, so that a stack never hangs on this resource."""
    import boto3

    handle(event, context, boto3.client("ses", config=CLIENT_CONFIG))
