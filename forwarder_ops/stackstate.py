"""What a CloudFormation stack's status means for an operator, and what to do about it.

A stack whose creation failed (ROLLBACK_COMPLETE) cannot be updated, only deleted; one whose update could
not be rolled back (UPDATE_ROLLBACK_FAILED) must be rolled back first (`continue-update-rollback`); one being
deleted is going away. `sam deploy` alone fixes none of them, so each status gets its own advice.
"""

from __future__ import annotations

from dataclasses import dataclass

# The stack and its outputs are there, as the last deploy left them.
HEALTHY = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
# The last update failed and was rolled back: the stack runs the template before it.
ROLLED_BACK = frozenset({"UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"})
# Its creation failed: nothing (or what could not be deleted) is left, and CloudFormation accepts only a delete.
CREATION_FAILED = frozenset({"CREATE_FAILED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED"})
# Being deleted, or a delete that stopped half-way.
DELETING = frozenset({"DELETE_IN_PROGRESS", "DELETE_FAILED"})


@dataclass(frozen=True, slots=True)
class StackState:
    """`severity`: ok, warn (works, as before or after a running deploy) or fail (no working stack)."""

    severity: str
    meaning: str
    fix: str = ""


# status -> (severity, meaning, fix); in a fix, {events}, {delete}, {rollback}, {wait_delete} are the AWS CLI
# commands for the stack and {deploy} the command that deploys it.
_ADVICE = {
    **dict.fromkeys(
        ROLLED_BACK,
        (
            "warn",
            "the last update failed and was rolled back: the stack runs the template before it",
            "see what failed: {events}, fix it, then `{deploy}`",
        ),
    ),
    **dict.fromkeys(
        CREATION_FAILED,
        (
            "fail",
            "its creation failed: it holds no working resources and cannot be updated",
            "see what failed: {events}; then delete it (`{delete}`) and `{deploy}`",
        ),
    ),
    "UPDATE_ROLLBACK_FAILED": (
        "fail",
        "an update failed and could not be rolled back: CloudFormation refuses any update until it is",
        "see which resource blocks the rollback: {events}; fix it, then `{rollback}`, then `{deploy}`",
    ),
    "DELETE_IN_PROGRESS": (
        "fail",
        "it is being deleted: its resources are going away",
        "wait for the delete (`{wait_delete}`), then `{deploy}`",
    ),
    "DELETE_FAILED": (
        "fail",
        "a delete stopped half-way: some resources are gone",
        "see what could not be deleted: {events}; delete the stack again (`{delete}`), then `{deploy}`",
    ),
    "REVIEW_IN_PROGRESS": (
        "fail",
        "only a change set waits for review: nothing is deployed yet",
        "execute the change set (CloudFormation console), or `{deploy}` and confirm it",
    ),
}


def stack_state(name: str, region: str, status: str, deploy: str) -> StackState:
    """The meaning of stack `name`'s `status` and the fix, with `deploy` the command that deploys it."""
    if status in HEALTHY:
        return StackState("ok", "deployed")
    default = (
        ("warn", "a deploy is running", "wait for it, then check again; if it fails: {events}")
        if status.endswith("_IN_PROGRESS")
        else ("fail", "not in a working state", "see what failed: {events}, fix it, then `{deploy}`")
    )
    severity, meaning, fix = _ADVICE.get(status, default)
    cfn = f"aws cloudformation {{}} --stack-name {name} --region {region}"
    commands = {
        "events": f"`{cfn.format('describe-stack-events')}`",
        "delete": cfn.format("delete-stack"),
        "rollback": cfn.format("continue-update-rollback"),
        "wait_delete": cfn.format("wait stack-delete-complete"),
    }
    return StackState(severity, meaning, fix.format(deploy=deploy, **commands))
