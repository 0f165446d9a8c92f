"""The rule set custom resource always answers CloudFormation, within minutes, whatever SES or S3 do.

SES and the response URL are real sockets on 127.0.0.1 here: one that accepts and never answers, one that
fails every request, one that fails the first PUT and takes the second.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from custom_resources import rule_set_activation as activation
from tests.template.cloudformation import load_template

pytestmark = [pytest.mark.network, pytest.mark.enable_socket]


def event(request: str = "Create", url: str = "https://cloudformation-response.example/presigned") -> dict[str, Any]:
    return {
        "RequestType": request,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/email-forwarder-dev/1",
        "RequestId": "request-1",
        "LogicalResourceId": "SharedReceiptRuleSet",
        "ResourceType": "Custom::SharedReceiptRuleSet",
        "ResourceProperties": {"RuleSetName": "email-forwarder", "Mode": "create-and-activate"},
    }


@dataclass
class Context:
    """A Lambda context with `seconds` left when the handler starts."""

    seconds: float
    log_stream_name: str = "2026/11/30/[$LATEST]stream"
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return int((self.seconds - (time.monotonic() - self.started)) * 1000)


def ses_at(port: int) -> Any:
    """An SES client with the handler's own timeouts and retries, talking to 127.0.0.1:`port`."""
    return boto3.client(
        "ses",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=activation.CLIENT_CONFIG,
    )


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers (a hung endpoint)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for connection in accepted:
        connection.close()
    listener.close()


@dataclass
class Server:
    """A loopback HTTP server answering each request with the next status of `statuses` (the last one repeats)."""

    statuses: list[int]
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/presigned") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[Any]:
    running: list[ThreadingHTTPServer] = []

    def start(*statuses: int) -> Server:
        state = Server(list(statuses))

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                state.requests.append((self.command, body))
                status = state.statuses[min(len(state.requests), len(state.statuses)) - 1]
                failure = (
                    b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code></Error></ErrorResponse>"
                )
                payload = failure if status >= 400 else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_PUT = do_POST = _answer  # the names http.server dispatches to

            def log_message(self, *args: Any) -> None:
                return None

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        running.append(httpd)
        state.port = httpd.server_address[1]
        return state

    yield start
    for httpd in running:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def responses(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the handler PUTs to CloudFormation (recorded, not sent)."""
    sent: list[dict[str, Any]] = []

    def send(event: dict[str, Any], status: str, reason: str, physical_id: str) -> None:
        sent.append({"Status": status, "Reason": reason, "PhysicalResourceId": physical_id})

    monkeypatch.setattr(activation, "send_response", send)
    return sent


@pytest.fixture
def loopback_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the response go to a plain-http loopback server, quickly retried (production allows https only)."""
    monkeypatch.setattr(activation, "RESPONSE_URL_PREFIXES", ("https://", "http://127.0.0.1:"))
    monkeypatch.setattr(activation, "RESPONSE_BACKOFF", (0.05, 0.05))


def test_answers_a_hung_ses_with_failed_before_the_deadline(silent_port: int, responses: list[dict[str, Any]]) -> None:
    # GIVEN SES accepts the connection and never answers, and the function has 2 s beyond the response budget
    ses = ses_at(silent_port)  # made first: creating a client on a loaded machine must not eat the 2 s
    context = Context(seconds=activation.RESPONSE_BUDGET + 2)
    # WHEN CloudFormation asks for the rule set
    activation.handle(event(), context, ses)
    # THEN the handler answers FAILED, saying why, while most of the response budget is still left. Waiting for
    # SES itself would leave at most 6 s (one call can take 16 s); only the bound of 10 s allows for a slow,
    # loaded machine (the wait is 2 s): this is no timing measurement.
    (answer,) = responses
    assert answer["Status"] == "FAILED"
    assert "SES did not answer within 2 s" in answer["Reason"]
    # AND its id names no set: the rollback's Delete must not delete a set this Create may not have made
    assert answer["PhysicalResourceId"] == "not-created:email-forwarder"
    assert context.get_remaining_time_in_millis() / 1000 > activation.RESPONSE_BUDGET - 8


def test_a_request_waits_for_the_hung_calls_of_an_earlier_one(
    monkeypatch: pytest.MonkeyPatch, responses: list[dict[str, Any]]
) -> None:
    # GIVEN a Create whose SES calls hang past its deadline (answered FAILED; Lambda freezes its thread, which
    # resumes when the environment is thawed for the next request)
    steps: list[str] = []
    hung = threading.Event()

    def apply(event: dict[str, Any], ses: Any, created: list[str] | None = None) -> str:
        steps.append(f"{event['RequestType']} started")
        if event["RequestType"] == "Create":
            hung.wait(30)
        steps.append(f"{event['RequestType']} ended")
        return "email-forwarder"

    monkeypatch.setattr(activation, "apply", apply)
    activation.handle(event("Create"), Context(seconds=activation.RESPONSE_BUDGET + 1), None)
    assert responses[0]["Status"] == "FAILED"
    # WHEN the rollback's Delete runs in the same environment while the Create's calls are still going
    delete = threading.Thread(
        target=activation.handle, args=(event("Delete"), Context(seconds=activation.RESPONSE_BUDGET + 20), None)
    )
    delete.start()
    for _ in range(50):  # time for the Delete to start its calls, were it allowed to
        if len(steps) > 1:
            break
        time.sleep(0.01)
    hung.set()
    delete.join(30)
    # THEN the Delete's calls start only after the Create's ended, and it answers
    assert steps == ["Create started", "Create ended", "Delete started", "Delete ended"]
    assert [r["Status"] for r in responses] == ["FAILED", "SUCCESS"]


def test_a_request_that_cannot_start_before_its_deadline_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, responses: list[dict[str, Any]]
) -> None:
    # GIVEN an earlier request's calls still running in this environment
    calls: list[str] = []
    monkeypatch.setattr(activation, "apply", lambda event, ses, created=None: calls.append("applied") or "x")
    with activation._ONE_AT_A_TIME:
        # WHEN a request comes and its deadline passes
        activation.handle(event("Update"), Context(seconds=activation.RESPONSE_BUDGET + 1), None)
    # THEN it answers FAILED saying nothing was changed
    assert responses[0]["Status"] == "FAILED"
    assert "nothing was changed" in responses[0]["Reason"]
    # AND once the earlier calls end, it makes none after its answer
    for _ in range(50):
        if calls:
            break
        time.sleep(0.01)
    assert calls == []


def test_answers_a_failing_ses_after_few_attempts(server: Any, responses: list[dict[str, Any]]) -> None:
    # GIVEN SES answers every request with a server error
    ses = server(500)
    client = ses_at(ses.port)
    started = time.monotonic()
    # WHEN CloudFormation asks for the rule set
    activation.handle(event(), Context(seconds=60), client)
    # THEN the first call is tried twice (total_max_attempts, not 5 retries) and the failure reaches CloudFormation
    (answer,) = responses
    assert answer["Status"] == "FAILED"
    assert "InternalFailure" in answer["Reason"]
    assert len(ses.requests) == activation.CLIENT_CONFIG.retries["total_max_attempts"] == 2
    assert time.monotonic() - started < 15  # a bound for a loaded machine: the attempts are counted above


def test_response_put_retried_until_it_is_taken(server: Any, loopback_responses: None) -> None:
    # GIVEN the response URL fails the first PUT and takes the second
    url = server(500, 200)
    # WHEN the handler answers
    activation.send_response(event(url=url.url()), "SUCCESS", "ok", "email-forwarder")
    # THEN it PUT the same answer twice, and the second one was taken
    assert [method for method, _ in url.requests] == ["PUT", "PUT"]
    first, second = (json.loads(body) for _, body in url.requests)
    assert first == second
    assert second["Status"] == "SUCCESS"
    assert second["PhysicalResourceId"] == "email-forwarder"


def test_response_put_gives_up_after_its_attempts(server: Any, loopback_responses: None) -> None:
    # GIVEN a response URL that always fails WHEN the handler answers THEN it stops after RESPONSE_ATTEMPTS PUTs
    # and raises, so that Lambda records the error (CloudFormation then waits at most ServiceTimeout)
    url = server(503)
    with pytest.raises(activation.ResponseNotDeliveredError):
        activation.send_response(event(url=url.url()), "FAILED", "x", "email-forwarder")
    assert len(url.requests) == activation.RESPONSE_ATTEMPTS == 3


def test_response_put_times_out_on_a_silent_url(silent_port: int, loopback_responses: None, monkeypatch: Any) -> None:
    # GIVEN a response URL that never answers WHEN the handler answers THEN each attempt ends at its timeout
    monkeypatch.setattr(activation, "RESPONSE_TIMEOUT", 0.3)
    started = time.monotonic()
    with pytest.raises(activation.ResponseNotDeliveredError):
        activation.send_response(event(url=f"http://127.0.0.1:{silent_port}/x"), "SUCCESS", "ok", "email-forwarder")
    # 3 attempts of 0.3 s take about 1 s; attempts at the unpatched 5 s would take 15 s (a loaded machine's margin)
    assert time.monotonic() - started < 10


def test_the_handler_fits_in_the_function_and_the_service_timeout() -> None:
    # GIVEN the template's function timeout and the custom resource's ServiceTimeout THEN one SES call at its worst
    # plus the response at its worst fit in the function's time, and CloudFormation waits minutes, not an hour
    resources = load_template()["Resources"]
    function_seconds = resources["RuleSetActivationFunction"]["Properties"]["Timeout"]
    service_timeout = resources["SharedReceiptRuleSet"]["Properties"]["ServiceTimeout"]
    config = activation.CLIENT_CONFIG
    worst_call = config.retries["total_max_attempts"] * (config.connect_timeout + config.read_timeout)
    assert worst_call + activation.RESPONSE_BUDGET < function_seconds
    assert "max_attempts" not in config.retries  # max_attempts would count retries, not attempts
    assert function_seconds < service_timeout <= 600
