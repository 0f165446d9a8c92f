"""`forwarder redrive`: the failure queue in moto, replays through the real handler in this process."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from forwarder_ops.local import EmbeddedAws, build_event, embedded_aws
from tests.cli.conftest import ALIAS_PATH, DOMAIN, FUNCTION, Cli, Deployment, InProcessLambda, deploy
from tests.conftest import EVENTS

FUNCTION_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"


def invocation_record(event: dict[str, Any], error: str = "Rate exceeded") -> dict[str, Any]:
    """What Lambda's on-failure destination puts in the queue after the last retry."""
    return {
        "version": "1.0",
        "timestamp": "2026-11-24T09:15:02.118Z",
        "requestContext": {
            "requestId": "e4b46cbf-b738-4b2e-8880-a18cdf61200e",
            "functionArn": f"{FUNCTION_ARN}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "ThrottlingException", "errorMessage": error},
    }


@dataclass
class Environment:
    aws: EmbeddedAws
    deployment: Deployment
    function: InProcessLambda
    mail: bytes

    def parked_mail(self, message_id: str, *, stored: bool = True) -> dict[str, Any]:
        """An SES event for the sample mail to team@, its message stored in S3 unless told otherwise."""
        if stored:
            self.aws.store_mail(self.mail, message_id)
        return build_event(self.mail, [f"team@{DOMAIN}"], message_id=message_id)


@pytest.fixture
def env(client_overrides: dict[str, Any], load_eml: Callable[[str], bytes]) -> Iterator[Environment]:
    from forwarder_ops.aliases import read_file

    with embedded_aws(DOMAIN, read_file(EVENTS / "aliases.toml"), alias_path=ALIAS_PATH) as aws:
        function = InProcessLambda(aws)
        client_overrides["lambda"] = function
        yield Environment(aws, deploy(), function, load_eml("workshop.eml"))


def test_redrive_replays_deletes_what_succeeded_and_keeps_what_failed(cli: Cli, env: Environment) -> None:
    # GIVEN three parked records: one whose mail is in S3, one whose mail is gone, one unreadable
    env.deployment.park(invocation_record(env.parked_mail("m-stored")))
    env.deployment.park(invocation_record(env.parked_mail("m-missing", stored=False)))
    env.deployment.park("not an invocation record")

    # WHEN redriving the dev environment
    result = cli("redrive", "--config-env", "dev")

    # THEN the first is forwarded (one send to team's two members) and deleted, the others stay and are reported
    assert result.code == 1
    assert "3 parked event(s): 1 replayed and deleted, 2 kept in the queue" in result.out
    lines = {line.split()[1]: line for line in result.out.splitlines() if line.startswith("  ✓") or "  ✗" in line}
    assert "RetriesExhausted after 3 tries: ThrottlingException: Rate exceeded" in lines["m-stored"]
    assert "forwarded to 2 member(s) via team (deleted)" in lines["m-stored"]
    assert "Unhandled: StoredMailError:" in lines["m-missing"]
    assert "m-missing is missing (kept)" in lines["m-missing"]
    assert "not a JSON invocation record (kept)" in result.out
    assert [sent.recipients for sent in env.aws.ses.outbox] == [("yating.chen@example.com", "weijie.lin@example.net")]
    assert env.function.calls == [{"FunctionName": FUNCTION_ARN, "InvocationType": "RequestResponse"}] * 2
    # and the kept records are visible again at once, for the next run
    assert env.deployment.waiting() == 2


def test_redrive_of_a_mail_already_forwarded_sends_nothing_twice(cli: Cli, env: Environment) -> None:
    # GIVEN a mail that was forwarded, yet its event was parked as well (e.g. a timeout after the send)
    event = env.parked_mail("m-twice")
    env.aws.invoke(event)
    assert len(env.aws.ses.outbox) == 1
    env.deployment.park(invocation_record(event))

    # WHEN redriving
    result = cli("redrive", "--config-env", "dev")

    # THEN the replay succeeds on the idempotency record and the record is deleted, without a second send
    assert result.code == 0
    assert "1 parked event(s): 1 replayed and deleted, 0 kept in the queue" in result.out
    assert len(env.aws.ses.outbox) == 1
    assert env.deployment.waiting() == 0


def test_redrive_replays_an_event_whose_record_has_odd_context_fields(cli: Cli, env: Environment) -> None:
    # GIVEN two parked records whose SES events are whole, but whose context fields are not of Lambda's types
    # (a queue that other code writes to as well)
    odd_count = invocation_record(env.parked_mail("m-odd-count"))
    odd_count["requestContext"]["approximateInvokeCount"] = "three"
    odd_context = {**invocation_record(env.parked_mail("m-odd-context")), "requestContext": ["RetriesExhausted"]}
    env.deployment.park(odd_count)
    env.deployment.park(odd_context)

    # WHEN redriving
    result = cli("redrive", "--config-env", "dev")

    # THEN both mails are replayed and deleted (the run did not stop at the first odd record with a traceback)
    assert result.code == 0, result.err
    assert "2 parked event(s): 2 replayed and deleted, 0 kept in the queue" in result.out
    assert len(env.aws.ses.outbox) == 2


def test_redrive_replays_a_bare_event_from_a_dead_letter_queue(cli: Cli, env: Environment) -> None:
    # GIVEN the queue used as a dead-letter queue: the message is the SES event itself
    env.deployment.park(env.parked_mail("m-dlq"))

    result = cli("redrive", "--config-env", "dev")

    assert result.code == 0
    assert len(env.aws.ses.outbox) == 1


def test_redrive_dry_run_changes_nothing(cli: Cli, env: Environment) -> None:
    env.deployment.park(invocation_record(env.parked_mail("m-1")))
    env.deployment.park(invocation_record(env.parked_mail("m-2")))

    result = cli("redrive", "--config-env", "dev", "--dry-run")

    assert result.code == 0
    assert "2 parked event(s) would be replayed (dry run: nothing changed)" in result.out
    assert env.function.calls == []
    assert env.deployment.waiting() == 2


def test_redrive_max_replays_only_that_many(cli: Cli, env: Environment) -> None:
    for number in range(3):
        env.deployment.park(invocation_record(env.parked_mail(f"m-{number}")))

    result = cli("redrive", "--config-env", "dev", "--max", "1")

    assert result.code == 0
    assert "1 parked event(s): 1 replayed and deleted" in result.out
    assert env.deployment.waiting() == 2


def test_redrive_goes_on_after_an_invoke_that_gets_no_answer(cli: Cli, env: Environment) -> None:
    from botocore.exceptions import EndpointConnectionError

    # GIVEN two parked mails, and the network failing the first Invoke (no answer from Lambda)
    env.deployment.park(invocation_record(env.parked_mail("m-first")))
    env.deployment.park(invocation_record(env.parked_mail("m-second")))
    invoke, calls = env.function.invoke, []

    def flaky(**request: Any) -> Any:
        calls.append(request)
        if len(calls) == 1:
            raise EndpointConnectionError(endpoint_url="https://lambda.us-east-1.amazonaws.com")
        return invoke(**request)

    env.function.invoke = flaky  # type: ignore[method-assign]

    # WHEN redriving
    result = cli("redrive", "--config-env", "dev")

    # THEN the first is reported and kept (visible again for the next run), the second replayed: no traceback
    assert result.code == 1, result.err
    assert "2 parked event(s): 1 replayed and deleted, 1 kept in the queue" in result.out
    assert "Could not connect to the endpoint URL" in result.out
    assert env.deployment.waiting() == 1


def test_redrive_json(cli: Cli, env: Environment) -> None:
    env.deployment.park(invocation_record(env.parked_mail("m-json")))

    result = cli("redrive", "--config-env", "dev", "--json")

    report = json.loads(result.out)
    assert report["function"] == FUNCTION_ARN
    assert report["queue"] == env.deployment.queue_url
    assert report["results"] == [
        {
            "message_id": "m-json",
            "recipients": [f"team@{DOMAIN}"],
            "parked_at": "2026-11-24T09:15:02.118Z",
            "reason": "RetriesExhausted after 3 tries: ThrottlingException: Rate exceeded",
            "status": "replayed",
            "detail": "forwarded to 2 member(s) via team",
            "deleted": True,
        }
    ]


def test_redrive_keeps_the_record_when_lambda_refuses_the_invoke(
    cli: Cli, env: Environment, client_overrides: dict[str, Any]
) -> None:
    # GIVEN the function was deleted (Lambda answers ResourceNotFoundException; stubbed below moto,
    # whose Lambda would need Docker)
    env.deployment.park(invocation_record(env.parked_mail("m-gone")))
    lambda_client = boto3.client("lambda", region_name="us-east-1")
    stubber = Stubber(lambda_client)
    stubber.add_client_error(
        "invoke", service_error_code="ResourceNotFoundException", service_message=f"Function not found: {FUNCTION_ARN}"
    )
    stubber.activate()
    client_overrides["lambda"] = lambda_client

    result = cli("redrive", "--config-env", "dev")

    assert result.code == 1
    assert f"ResourceNotFoundException: Function not found: {FUNCTION_ARN} (kept)" in result.out
    assert env.deployment.waiting() == 1
    stubber.assert_no_pending_responses()


def test_redrive_of_an_empty_queue(cli: Cli, env: Environment) -> None:
    result = cli("redrive", "--config-env", "dev")

    assert result.code == 0
    assert result.out == "the failure queue is empty: nothing to replay\n"


def test_redrive_without_the_stack_is_one_line_and_exit_2(cli: Cli, aws: None) -> None:
    result = cli("redrive", "--config-env", "dev")

    assert result.code == 2
    assert result.err == (
        "forwarder: stack email-forwarder-dev not found in us-east-1: deploy it with "
        "`sam deploy --config-env dev` or check --region/--stack-name\n"
    )


@pytest.mark.parametrize("count", ["0", "-1", "two"])
def test_redrive_max_below_one_is_a_usage_error(
    cli: Cli, deployed: Deployment, capsys: pytest.CaptureFixture[str], count: str
) -> None:
    # GIVEN a parked event
    deployed.park({"not": "an invocation record"})

    # WHEN asking to replay at most 0, -1 or "two" of them
    with pytest.raises(SystemExit) as exited:
        cli("redrive", "--config-env", "dev", "--max", count, "--dry-run")

    # THEN a one-line usage error, exit code 2, instead of "the failure queue is empty", and the event stays
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"{count} is not a count of at least 1" in err and err.count("\n") == 1
    assert deployed.waiting() == 1


def test_redrive_keeps_a_record_that_is_not_an_ses_event_without_invoking(cli: Cli, env: Environment) -> None:
    # GIVEN the failure queue holding, beside a parked mail, a record of another shape: an SNS event (a queue
    # another function's failures also go to) and an SES event without its records
    env.deployment.park(invocation_record(env.parked_mail("m-ok")))
    env.deployment.park(invocation_record({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]}))
    env.deployment.park(invocation_record({"Records": []}))

    # WHEN redriving (a dry run first)
    dry = cli("redrive", "--config-env", "dev", "--dry-run", "--json")
    result = cli("redrive", "--config-env", "dev", "--json")

    # THEN the mail is replayed; the two others are not sent to the forwarder (it would only fail on them again,
    # one more error against its alarm): they stay in the queue, said to be no SES receipt event
    statuses = sorted(r["status"] for r in json.loads(dry.out)["results"])
    assert statuses == ["dry-run", "unreadable", "unreadable"]
    results = json.loads(result.out)["results"]
    assert result.code == 1
    assert len(env.function.calls) == 1
    assert sorted(r["status"] for r in results) == ["replayed", "unreadable", "unreadable"]
    assert all("not an SES receipt event" in r["reason"] for r in results if r["status"] == "unreadable")
    assert env.deployment.waiting() == 2


def test_redrive_keeps_a_batch_hidden_for_all_of_its_replays(
    cli: Cli, env: Environment, client_overrides: dict[str, Any]
) -> None:
    # GIVEN ten parked mails (one batch) and the function's timeout as the template sets it
    from tests.template.cloudformation import load_template

    timeout = int(load_template()["Resources"]["ForwarderFunction"]["Properties"]["Timeout"])
    for n in range(10):
        env.deployment.park(invocation_record(env.parked_mail(f"m-{n}")))
    sqs = boto3.client("sqs", region_name="us-east-1")
    received: list[dict[str, Any]] = []

    class Recording:
        def receive_message(self, **request: Any) -> Any:
            received.append(request)
            return sqs.receive_message(**request)

        def __getattr__(self, name: str) -> Any:
            return getattr(sqs, name)

    client_overrides["sqs"] = Recording()

    # WHEN redriving
    result = cli("redrive", "--config-env", "dev")

    # THEN each batch stays hidden for as long as its replays may take, one after another, each up to the
    # function's timeout: no record comes back, to be replayed twice, while the run is still on its batch
    assert result.code == 0, result.err
    assert received
    assert all(r["VisibilityTimeout"] >= r["MaxNumberOfMessages"] * timeout for r in received)
