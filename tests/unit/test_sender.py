"""The SES sender: request shape, botocore retries, and what each lasting refusal means."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from forwarder.aws.sender import SesSender
from forwarder.clients import client_config
from forwarder.ports import (
    MessageRejectedError,
    RecipientNotAuthorizedError,
    RecipientNotVerifiedError,
    SenderNotReadyError,
)

DOMAIN = "dev.aws-educate.tw"


def sesv2() -> Any:
    return boto3.client("sesv2", region_name="us-west-2", config=client_config())


def rejected(code: str = "MessageRejected") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "Email address is not verified."}}, "SendEmail")


def test_send_request_has_envelope_recipients_raw_data_and_configuration_set() -> None:
    client = sesv2()
    sender = SesSender(client, DOMAIN, "forwarder-dev")
    with Stubber(client) as stub:
        stub.add_response(
            "send_email",
            {"MessageId": "abc"},
            {
                "FromEmailAddress": "team@dev.aws-educate.tw",
                "Destination": {"ToAddresses": ["a@x.org", "b@y.org"]},
                "Content": {"Raw": {"Data": b"raw bytes \xff"}},
                "ConfigurationSetName": "forwarder-dev",
            },
        )
        assert sender.send(b"raw bytes \xff", "team@dev.aws-educate.tw", ["a@x.org", "b@y.org"]) == "abc"


@pytest.mark.parametrize("count", [0, 51])
def test_send_refuses_recipient_counts_ses_would_reject(count: int) -> None:
    with pytest.raises(ValueError, match="1 to 50"):
        SesSender(sesv2(), DOMAIN).send(b"x", "team@dev.aws-educate.tw", [f"m{i}@x.org" for i in range(count)])


def test_throttling_is_retried_by_botocore_then_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN SES answering every request with a throttling error at the HTTP layer
    client = sesv2()
    attempts = []

    def throttle(request: Any, **_: Any) -> AWSResponse:
        attempts.append(request)
        body = b'{"__type": "TooManyRequestsException", "message": "Maximum sending rate exceeded."}'
        headers = HTTPHeaders({"x-amzn-ErrorType": "TooManyRequestsException", "Content-Type": "application/json"})
        return AWSResponse(request.url, 429, headers, _Raw(body))

    client.meta.events.register("before-send.sesv2.SendEmail", throttle)
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda seconds: None)
    # WHEN a send is attempted, THEN botocore retried it (standard mode, 5 attempts) before raising
    with pytest.raises(ClientError) as error:
        SesSender(client, DOMAIN).send(b"x", "team@dev.aws-educate.tw", ["a@x.org"])
    assert error.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert len(attempts) == 5


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("MailFromDomainNotVerifiedException", "MAIL FROM"),
        ("AccountSuspendedException", "suspended"),
        ("SendingPausedException", "paused"),
        ("NotFoundException", "configuration set"),
    ],
)
def test_environment_problems_are_sender_not_ready(code: str, fragment: str) -> None:
    error = SesSender(sesv2(), DOMAIN).classify(rejected(code), ["a@x.org"])
    assert isinstance(error, SenderNotReadyError)
    assert fragment in str(error)
    assert "us-west-2" in str(error)


def test_message_rejected_with_unverified_identity_is_sender_not_ready() -> None:
    client = sesv2()
    with Stubber(client) as stub:
        stub.add_client_error("get_email_identity", "NotFoundException", http_status_code=404)
        error = SesSender(client, DOMAIN).classify(rejected(), ["a@x.org"])
    assert isinstance(error, SenderNotReadyError)
    assert "dev.aws-educate.tw is not verified in us-west-2" in str(error)


def test_message_rejected_in_the_sandbox_names_region_and_recipient() -> None:
    client = sesv2()
    with Stubber(client) as stub:
        stub.add_response("get_email_identity", {"VerifiedForSendingStatus": True})
        stub.add_response("get_account", {"ProductionAccessEnabled": False})
        error = SesSender(client, DOMAIN).classify(rejected(), ["alice@gmail.com"])
    assert isinstance(error, RecipientNotVerifiedError)
    assert "us-west-2 is in the SES sandbox" in str(error)
    assert "alice@gmail.com" in str(error)
    assert "production access" in str(error)


@pytest.mark.parametrize(
    "said", ["Illegal filename 'setup.exe'.", "Message length is more than 10 megabytes", "Illegal header 'X-Bad'."]
)
def test_message_rejected_in_the_sandbox_for_the_message_itself_is_about_the_message(said: str) -> None:
    # GIVEN the sandbox, and SES refusing the message for what it contains, not for an unverified address
    client = sesv2()
    error = ClientError({"Error": {"Code": "MessageRejected", "Message": said}}, "SendEmail")
    with Stubber(client) as stub:
        stub.add_response("get_email_identity", {"VerifiedForSendingStatus": True})
        stub.add_response("get_account", {"ProductionAccessEnabled": False})
        classified = SesSender(client, DOMAIN).classify(error, ["alice@gmail.com"])
    # THEN it is a refusal of the message (its members get the notice quoting SES), not a recipient to verify
    assert isinstance(classified, MessageRejectedError)
    assert not isinstance(classified, RecipientNotVerifiedError)
    assert str(classified) == said


def test_message_rejected_in_the_sandbox_naming_the_unverified_identities_is_about_the_recipient() -> None:
    client = sesv2()
    said = "Email address is not verified. The following identities failed the check in region US-WEST-2: a@x.org"
    error = ClientError({"Error": {"Code": "MessageRejected", "Message": said}}, "SendEmail")
    with Stubber(client) as stub:
        stub.add_response("get_email_identity", {"VerifiedForSendingStatus": True})
        stub.add_response("get_account", {"ProductionAccessEnabled": False})
        assert isinstance(SesSender(client, DOMAIN).classify(error, ["a@x.org"]), RecipientNotVerifiedError)


def test_message_rejected_out_of_the_sandbox_is_about_the_message() -> None:
    client = sesv2()
    with Stubber(client) as stub:
        stub.add_response("get_email_identity", {"VerifiedForSendingStatus": True})
        stub.add_response("get_account", {"ProductionAccessEnabled": True})
        error = SesSender(client, DOMAIN).classify(rejected(), ["a@x.org"])
    assert isinstance(error, MessageRejectedError)
    # AND it keeps SES's words, which the members' notice quotes
    assert str(error) == "Email address is not verified."


def test_unknown_errors_pass_through_for_a_retry() -> None:
    original = rejected("InternalFailure")
    assert SesSender(sesv2(), DOMAIN).classify(original, ["a@x.org"]) is original


def denied() -> ClientError:
    message = "User is not authorized to perform `ses:SendEmail' on resource `arn:aws:ses:us-west-2:1:identity/b@y.org'"
    return ClientError({"Error": {"Code": "AccessDeniedException", "Message": message}}, "SendEmail")


def test_access_denied_in_the_sandbox_is_a_recipient_refusal_with_the_fix() -> None:
    # GIVEN a sandboxed region, where IAM is evaluated against the recipient identities too
    client = sesv2()
    with Stubber(client) as stub:
        stub.add_client_error("send_email", "AccessDeniedException", denied().response["Error"]["Message"], 403)
        stub.add_response("get_account", {"ProductionAccessEnabled": False})
        # WHEN SES answers a send with AccessDenied
        with pytest.raises(RecipientNotAuthorizedError) as error:
            SesSender(client, DOMAIN).send(b"x", "team@dev.aws-educate.tw", ["b@y.org"])
    # THEN it is a lasting refusal of these recipients (not retried, not parked) that names both fixes
    assert isinstance(error.value, RecipientNotVerifiedError)
    assert error.value.recipients == ("b@y.org",)
    text = str(error.value)
    assert "us-west-2 is in the SES sandbox" in text
    assert "Request production access" in text
    assert "identity/b@y.org" in text


def test_access_denied_out_of_the_sandbox_is_the_role_not_ready() -> None:
    # GIVEN production access WHEN SES answers AccessDenied THEN the role itself may not send: park and say so
    client = sesv2()
    with Stubber(client) as stub:
        stub.add_response("get_account", {"ProductionAccessEnabled": True})
        error = SesSender(client, DOMAIN).classify(denied(), ["b@y.org"])
    assert isinstance(error, SenderNotReadyError)
    assert "may not send as dev.aws-educate.tw in us-west-2" in str(error)


@pytest.mark.parametrize("kind", ["read-timeout", "connection-closed"])
def test_send_unanswered_after_the_request_is_not_resent(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN SES taking each request but the answer never arriving (a read timeout, a connection closed mid-answer)
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

    from forwarder.ports import SendUnconfirmedError

    client = sesv2()
    taken = []

    def lost_answer(request: Any, **_: Any) -> None:
        taken.append(request)
        if kind == "read-timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        raise ConnectionClosedError(endpoint_url=request.url)

    client.meta.events.register("before-send.sesv2.SendEmail", lost_answer)
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda seconds: None)
    # WHEN a send is attempted
    with pytest.raises(SendUnconfirmedError, match="SES may have taken the mail"):
        SesSender(client, DOMAIN).send(b"x", "team@dev.aws-educate.tw", ["a@x.org"])
    # THEN botocore did not send it again (SendEmail has no idempotency token: each attempt may be one more copy)
    assert len(taken) == 1


def test_send_that_never_reached_ses_is_still_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN SES unreachable for the first two attempts (the connection is refused: nothing was sent)
    from botocore.exceptions import EndpointConnectionError

    client = sesv2()
    attempts = []

    def unreachable(request: Any, **_: Any) -> AWSResponse | None:
        attempts.append(request)
        if len(attempts) <= 2:
            raise EndpointConnectionError(endpoint_url=request.url)
        headers = HTTPHeaders({"Content-Type": "application/json"})
        return AWSResponse(request.url, 200, headers, _Raw(b'{"MessageId": "ses-1"}'))

    client.meta.events.register("before-send.sesv2.SendEmail", unreachable)
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda seconds: None)
    # WHEN a send is attempted THEN botocore's retries get it through
    assert SesSender(client, DOMAIN).send(b"x", "team@dev.aws-educate.tw", ["a@x.org"]) == "ses-1"
    assert len(attempts) == 3


def test_sender_sandbox_unknown_for_one_refusal_is_asked_again_at_the_next() -> None:
    # GIVEN a sandboxed region, and SES's GetAccount throttled when the first refusal asks about the sandbox
    client = sesv2()
    said = "Email address is not verified. The following identities failed the check in region US-WEST-2: a@x.org"
    error = ClientError({"Error": {"Code": "MessageRejected", "Message": said}}, "SendEmail")
    sender = SesSender(client, DOMAIN)
    with Stubber(client) as stub:
        stub.add_response("get_email_identity", {"VerifiedForSendingStatus": True})
        stub.add_client_error("get_account", "TooManyRequestsException", http_status_code=429)
        first = sender.classify(error, ["a@x.org", "b@x.org"])
        # WHEN a later refusal on the same warm function asks again, and SES answers
        stub.add_response("get_account", {"ProductionAccessEnabled": False})
        later = sender.classify(error, ["a@x.org", "b@x.org"])
    # THEN it is known for what it is, an unverified recipient (the batch is sent one by one, the verified members
    # get the mail), not a refusal of the message remembered from a throttled question for the function's lifetime
    assert isinstance(later, RecipientNotVerifiedError)
    # AND the first, the sandbox unknown, was taken at SES's word (out of the sandbox SES says "not verified" only
    # of our own identity, found verified)
    assert isinstance(first, RecipientNotVerifiedError)


@pytest.mark.parametrize("first_answer", ["verified", "unanswered"])
def test_sender_identity_is_asked_at_each_refusal(first_answer: str) -> None:
    # GIVEN a warm function that asked about the domain identity at an earlier refusal (a message SES would not
    # send), and got an answer, or none (throttled)
    client = sesv2()
    sender = SesSender(client, DOMAIN)
    content = ClientError({"Error": {"Code": "MessageRejected", "Message": "Illegal filename 'a.exe'."}}, "SendEmail")
    with Stubber(client) as stub:
        if first_answer == "verified":
            stub.add_response("get_email_identity", {"VerifiedForSendingStatus": True})
        else:
            stub.add_client_error("get_email_identity", "TooManyRequestsException", http_status_code=429)
        stub.add_response("get_account", {"ProductionAccessEnabled": True})
        assert isinstance(sender.classify(content, ["a@x.org"]), MessageRejectedError)
        # WHEN the identity has since lost its verification (its DKIM records removed) and SES refuses a send for it
        stub.add_response("get_email_identity", {"VerifiedForSendingStatus": False})
        later = sender.classify(rejected(), ["a@x.org"])
    # THEN the environment is not ready: the event is parked for a redrive after the fix, not every member reported
    # failed (with a notice SES refuses too) on an answer remembered from before
    assert isinstance(later, SenderNotReadyError)
