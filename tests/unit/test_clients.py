"""One client configuration for the function and the CLI: how many times each call reaches the HTTP layer
when AWS answers 503 (botocore's `max_attempts` counts retries, `total_max_attempts` attempts)."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from forwarder.clients import ATTEMPTS, INVOKE_ATTEMPTS, client_config
from forwarder_ops.envconfig import Target


class _Raw:
    """The urllib3 response botocore would read: a 503 with no body."""

    def stream(self, **_: Any) -> Any:
        yield b""


def count_sends(client: Any) -> list[str]:
    """Answer every request with 503 just before it would go on the wire; returns the list of attempts."""
    attempts: list[str] = []

    def unavailable(request: Any, **_: Any) -> AWSResponse:
        attempts.append(request.url)
        return AWSResponse(request.url, 503, {}, _Raw())

    client.meta.events.register("before-send", unavailable)
    return attempts


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore sleeps between attempts (exponential backoff): not in a unit test."""
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)


def test_cli_lambda_invoke_is_attempted_once() -> None:
    # GIVEN the CLI's Lambda client (redrive replays a parked event with a synchronous Invoke)
    client = Target(name="dev", region="us-east-1").client("lambda")
    attempts = count_sends(client)
    # WHEN Lambda answers 503
    with pytest.raises(ClientError):
        client.invoke(FunctionName="email-forwarder-dev", InvocationType="RequestResponse", Payload=b"{}")
    # THEN the Invoke went out exactly once: a retry while the first run holds the idempotency record fails
    assert len(attempts) == INVOKE_ATTEMPTS == 1


@pytest.mark.parametrize(
    ("service", "call", "params"),
    [
        ("sqs", "list_queues", {}),
        ("ssm", "get_parameters_by_path", {"Path": "/email-forwarder/dev/aliases"}),
        ("sesv2", "get_account", {}),
        ("cloudformation", "describe_stacks", {"StackName": "email-forwarder-dev"}),
    ],
)
def test_cli_clients_are_attempted_the_documented_number_of_times(
    service: str, call: str, params: dict[str, str]
) -> None:
    # GIVEN one of the CLI's other clients
    client = Target(name="dev", region="us-east-1").client(service)
    attempts = count_sends(client)
    # WHEN AWS answers 503 every time
    with pytest.raises(ClientError):
        getattr(client, call)(**params)
    # THEN the call was attempted five times in all (the first and four retries)
    assert len(attempts) == ATTEMPTS == 5


@pytest.mark.parametrize(
    ("service", "call"), [("sesv2", "get_account"), ("s3", "list_buckets"), ("sqs", "list_queues")]
)
def test_runtime_clients_are_attempted_the_documented_number_of_times(service: str, call: str) -> None:
    # GIVEN a client as the function's composition root builds it
    client = boto3.client(service, region_name="us-east-1", config=client_config(service))
    attempts = count_sends(client)
    # WHEN AWS answers 503 every time
    with pytest.raises(ClientError):
        getattr(client, call)()
    # THEN the call was attempted five times, as the CLI's are
    assert len(attempts) == ATTEMPTS


def test_client_config_is_one_definition_for_runtime_and_cli() -> None:
    # GIVEN the function's and the CLI's configuration of the same service
    runtime = client_config("sesv2")
    cli = Target(name="dev", region="us-east-1").client("sesv2").meta.config
    # THEN retries, mode and timeouts are the same
    assert cli.retries == runtime.retries == {"total_max_attempts": ATTEMPTS, "mode": "standard"}
    assert (cli.connect_timeout, cli.read_timeout) == (runtime.connect_timeout, runtime.read_timeout)
    assert client_config("s3").signature_version == "s3v4"


def test_dynamodb_client_leaves_request_validation_to_dynamodb() -> None:
    # GIVEN the runtime's DynamoDB client (its requests are built by the forwarder, not typed by a user)
    client = boto3.client("dynamodb", region_name="us-east-1", config=client_config("dynamodb"))
    attempts = count_sends(client)
    # WHEN a request botocore would refuse before sending (an empty table name) is made
    with pytest.raises(ClientError):
        client.get_item(TableName="", Key={})
    # THEN it reached the HTTP layer (where DynamoDB answers ValidationException), not ParamValidationError
    assert attempts
    # AND the other services' clients still validate
    from botocore.exceptions import ParamValidationError

    ses = boto3.client("sesv2", region_name="us-east-1", config=client_config("sesv2"))
    with pytest.raises(ParamValidationError):
        ses.get_email_identity(EmailIdentity="")
