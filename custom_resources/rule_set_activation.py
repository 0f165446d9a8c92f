"""CloudFormation custom resource: the SES receipt rule set shared by the environments of one account and region.

SES receives mail through exactly one active receipt rule set per account and region, so every environment
deployed there puts its rule into that one set. No stack may own the set as an AWS::SES::ReceiptRuleSet:
deleting that resource deletes the set and every rule in it, other environments' rules included. Instead,
per `Mode` (the template's ReceiptRuleSetMode):

- create-and-activate: Create/Update creates `RuleSetName` if it is missing and makes it active when no set
  is active (or it already is; or, on an update that renames the set, when the active one is this resource's
  previous set and holds no rule but this stack's and those it held when this resource took it). When a
  different set is active it refuses, before creating anything, naming that set and the ways forward. What
  Delete does depends on what the claim found, which the physical id records (`held_id`): a set it created
  (the id is the set's name, as in earlier versions) is removed, deactivated first if active, only when no
  rule is left in it; otherwise the set, its activation and the other rules stay. A set that existed but was
  inactive (made by hand) and that it activated goes back to inactive, as it was, while it holds the rules it
  held then (say, the rollback of a first deploy); it is never deleted. A set that was active already is left
  as it is. A Create that fails answers a physical id naming no set unless it created or found the set, so
  that the rollback's Delete never removes an empty set of that name made by someone else.
- join-existing: Create/Update only check that the set exists; Delete does nothing. Such a stack never
  activates or deletes a set.

An Update that keeps the set's name keeps the physical id: nothing is deleted, and what the Create found
stays recorded; only a switch from join-existing to create-and-activate answers the id of its claim (the
replaced id's Delete, a join-existing one, does nothing), so a joined set is never taken for one it created.
The set's name is the response's `RuleSetName` attribute, which the stack's AWS::SES::ReceiptRule refers to,
so CloudFormation creates the rule after this resource and deletes the rule before it: by the time Delete
runs, only other stacks' rules (or hand-made ones) can be left in it.

The handler always answers CloudFormation, within the function's timeout: SES calls have short timeouts and
few attempts and run against a deadline that keeps time for the response, and the response PUT is retried.
Runs on the Lambda Python runtime with its bundled boto3; no dependencies.
"""

from __future__ import annotations

import hashlib
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
# What a physical id records after the set's name (`:` is in no set's name): the set was active already when
# this resource claimed it (KEPT), or it existed inactive and this resource activated it (ACTIVATED, with the
# digest of the rules it held then). A bare name: this resource created the set.
KEPT = "kept"
ACTIVATED = "activated"
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
    answer: list[str] | None = None,
) -> str:
    """create-and-activate: create `rule_set` if missing and make it active, unless another set is active.

    `previous` is the physical id this resource held before a rename: its set's activation may move to the new
    set when it holds no rule but this stack's `rule_name` beyond those it held when this resource activated it.
    Returns the physical id (`held_id`); once the set is created or found, that id is appended to `answer`,
    so that a request failing after that point still answers what it holds.
    """
    active = active_rule_set(ses)
    region = ses.meta.region_name
    handed_back = previous is not None and active == rule_set_of(previous) and _movable(ses, previous, rule_name)
    if active not in (None, rule_set) and not handed_back:
        raise ActivationRefusedError(
            f"SES receipt rule set {active!r} is active in {region}; activating {rule_set!r} would switch it off "
            f"and stop every rule in it. Either deploy with ReceiptRuleSetMode=join-existing and "
            f"ReceiptRuleSetName={active} to add this stack's rule to it, or move its rules and deactivate it "
            f"deliberately (aws ses set-active-receipt-rule-set --region {region}) and deploy again."
        )
    found = rules_in(ses, rule_set)
    if found is None:
        held = rule_set
        try:
            ses.create_receipt_rule_set(RuleSetName=rule_set)
            logger.info("created receipt rule set %s", rule_set)
            if answer is not None:
                answer.append(held)
        except ClientError as error:
            # Another stack of the region created it since it was looked up: it exists, which is all this needs.
            if error.response.get("Error", {}).get("Code") != "AlreadyExists":
                raise
            logger.info("receipt rule set %s was created meanwhile by another stack", rule_set)
    else:
        held = (
            held_id(rule_set, KEPT) if active == rule_set else held_id(rule_set, ACTIVATED, _digest(found, rule_name))
        )
        if answer is not None:
            answer.append(held)
    if active != rule_set:
        ses.set_active_receipt_rule_set(RuleSetName=rule_set)
        logger.info("activated receipt rule set %s (was %s)", rule_set, active or "none")
    return held


def held_id(rule_set: str, state: str | None = None, digest: str = "") -> str:
    """The physical id of a claimed set: its name, then what the claim found (KEPT, ACTIVATED and the digest)."""
    return ":".join(part for part in (rule_set, state, digest) if part)


def rule_set_of(physical: str) -> str:
    """The name of the set a physical id names."""
    return physical.removeprefix(NOT_HELD).split(":")[0]


def _digest(rules: list[str], rule_name: str | None) -> str:
    """What identifies the rules of a set, this stack's rule left out (it comes and goes with the stack)."""
    names = "\n".join(sorted(set(rules) - {rule_name}))
    return hashlib.sha256(names.encode()).hexdigest()[:16]


def _movable(ses: Any, held: str, rule_name: str | None) -> bool:
    """Whether the set of the physical id `held` holds no rule but this stack's beyond those it held when this
    resource took it: none for a set it created, those of the digest for a set it activated."""
    rules = rules_in(ses, rule_set_of(held))
    _, _, recorded = held.removeprefix(rule_set_of(held)).partition(f":{ACTIVATED}:")
    return rules is not None and _digest(rules, rule_name) == (recorded or _digest([], rule_name))


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


def restore(ses: Any, held: str, rule_name: str | None) -> None:
    """create-and-activate Delete of a set this resource found: put back the activation it found.

    A set that was active already stays so. A set it activated (none was active then: it refuses otherwise)
    goes back to inactive while it is still the active one and holds the rules it held then: a first deploy
    rolled back leaves the region as it was. Rules added since (another stack joined it) keep it active. The
    set is never deleted: it was not this resource's.
    """
    rule_set = rule_set_of(held)
    if f":{ACTIVATED}:" not in held:
        logger.info("left receipt rule set %s as it was: it was active before this stack", rule_set)
    elif active_rule_set(ses) != rule_set:
        logger.info("left receipt rule set %s alone: it is no longer the active set", rule_set)
    elif not _movable(ses, held, rule_name):
        logger.info("left receipt rule set %s active: rules were added to it since this stack activated it", rule_set)
    else:
        ses.set_active_receipt_rule_set()
        logger.info("deactivated receipt rule set %s again: it was inactive before this stack", rule_set)


def apply(event: dict[str, Any], ses: Any, answer: list[str] | None = None) -> str:
    """Carry out one CloudFormation request; returns the physical resource id (`held_id`). A Create or
    Update that creates or finds its set appends the id it holds to `answer` (see `claim`)."""
    properties = event["ResourceProperties"]
    rule_set = str(properties["RuleSetName"])
    mode = str(properties.get("Mode", CREATE_AND_ACTIVATE))
    request = event["RequestType"]
    held = str(event.get("PhysicalResourceId") or "")
    if request == "Delete":
        # The physical id names the set this resource held (after a rename, the old one) and what it found; a
        # Create that failed before creating or finding a set answered an id that names none (`not_held`), so
        # its rollback changes nothing.
        held = held or rule_set
        if mode != CREATE_AND_ACTIVATE or held.startswith(NOT_HELD):
            return held
        if held == rule_set_of(held):
            release(ses, held)
        else:
            restore(ses, held, properties.get("RuleName"))
        return held
    old = event.get("OldResourceProperties", {}) if request == "Update" else {}
    was_claimed = old.get("Mode", CREATE_AND_ACTIVATE) == CREATE_AND_ACTIVATE
    if mode == JOIN_EXISTING:
        claimed = require(ses, rule_set)
    else:
        previous = (held or None) if was_claimed else None
        claimed = claim(ses, rule_set, previous, properties.get("RuleName"), answer)
    # An Update that keeps the set keeps the id: what the Create found stays recorded for the Delete. Not when
    # it switches from join-existing: that id is the bare name, which would say this resource created the set
    # (its Delete would remove the joined set once empty); the claim's id records what it found instead.
    keeps = mode == JOIN_EXISTING or was_claimed
    return held if request == "Update" and rule_set_of(held) == rule_set and keeps else claimed


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
            "Data": {"RuleSetName": rule_set_of(physical_id)},
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
    answer: list[str] = []  # the physical id of the set the request created or found, once it has
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
                outcome["physical_id"] = apply(event, ses, answer)
            except Exception as error:  # every failure must reach CloudFormation, not just the log
                logger.exception("receipt rule set request failed")
                outcome["error"] = error

    # The SES calls run in a daemon thread so that a hung call cannot keep the answer from CloudFormation: after
    # the deadline the handler answers FAILED and returns; Lambda freezes the thread with the environment.
    seconds = max(remaining_seconds(context) - RESPONSE_BUDGET, 1.0)
    worker = threading.Thread(target=work, name="ses", daemon=True)
    worker.start()
    worker.join(seconds)
    # A failed Create holds only a set it created or found (its rollback deletes the one it created, and puts back
    # the activation it found); an Update or Delete keeps the id it had.
    fallback_id = event.get("PhysicalResourceId") or (answer[-1] if answer else not_held(rule_set))
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
