"""The public download function: every request gets an HTTP answer (302, 400, 403, 404, 410), never an
exception; an exception is a 502 and fires the download errors alarm, and the URL is open to anyone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder import download
from forwarder.keyring import KeyRing
from forwarder.links import sign_link
from forwarder.ports import StoredMailError

KEY = b"k" * 64
OLD_KEY = b"o" * 64
STORED = "o3vrnil0e2ic28"
ANSWERS = {302, 400, 403, 404, 410}


class FakeStore:
    """The S3 store as the download function uses it: one stored message."""

    def size(self, message_id: str) -> int:
        if message_id != STORED:
            raise StoredMailError(f"s3://bucket/inbound/{message_id} is not stored")
        return 1234

    def download_link(self, message_id: str, seconds: int) -> str:
        return f"https://bucket.s3.amazonaws.com/inbound/{message_id}?X-Amz-Expires={seconds}"


class FakeKeys:
    def get(self) -> KeyRing:
        return KeyRing(KEY, (OLD_KEY,))

    def renewed(self) -> KeyRing | None:
        return None  # read again too recently: nothing new


@pytest.fixture(autouse=True)
def _fake_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    # No network: the handler's store and key ring are in memory.
    monkeypatch.setattr(download, "_runtime", lambda: (FakeStore(), FakeKeys()))


def call(query: object, context: Any) -> dict[str, Any]:
    return download.lambda_handler({"queryStringParameters": query}, context)


def function_url_query(raw: str) -> dict[str, str] | None:
    """`queryStringParameters` as Lambda Function URLs build it: decoded, a repeated name comma-joined,
    None without parameters."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        params[name] = f"{params[name]},{value}" if name in params else value
    return params or None


def valid_query(key: bytes = KEY, message_id: str = STORED) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(sign_link("https://dl.example/", key, message_id, 86_400)).query))


def test_download_valid_link_redirects_to_the_stored_message(lambda_context: Any) -> None:
    # GIVEN a link signed with the current key, and one signed with the previous key
    # WHEN each is requested THEN both redirect to a presigned URL of the stored message
    for key in (KEY, OLD_KEY):
        answer = call(valid_query(key), lambda_context)
        assert answer["statusCode"] == 302
        assert answer["headers"]["Location"].startswith(f"https://bucket.s3.amazonaws.com/inbound/{STORED}?")


def test_download_link_to_a_message_no_longer_stored_is_404(lambda_context: Any) -> None:
    assert call(valid_query(message_id="gone-1"), lambda_context)["statusCode"] == 404


@pytest.mark.parametrize(
    ("query", "status"),
    [
        # non-ASCII signature: hmac.compare_digest raised TypeError
        ({"m": "a", "e": "1", "s": "é"}, 400),
        # an expiry over Python's 4,300-digit int() limit: int() raised ValueError
        ({"m": "a", "e": "9" * 4301, "s": "0" * 64}, 400),
        # a digit str.isdigit accepts and int() refuses
        ({"m": "a", "e": "²", "s": "0" * 64}, 400),
        # a trailing newline that `$` let through into the S3 key
        ({"m": "a\n", "e": "1", "s": "0" * 64}, 400),
        ({"m": "a", "e": "1", "s": "0" * 64}, 403),
        ({"m": "a", "e": "1"}, 400),
        ({}, 400),
        (None, 400),
        ("m=a&e=1", 400),
        (["m", "e", "s"], 400),
        ({"m": ["a"], "e": 1, "s": None}, 400),
        ({"m": "a" * 1_000_000, "e": "1" * 1_000_000, "s": "f" * 1_000_000}, 400),
    ],
)
def test_download_named_hostile_queries_get_a_client_error(query: object, status: int, lambda_context: Any) -> None:
    # GIVEN a query string no link of ours has WHEN it is requested THEN it is refused, not raised
    answer = call(query, lambda_context)
    assert answer["statusCode"] == status
    assert answer["headers"]["Cache-Control"] == "no-store"


def test_download_repeated_parameters_are_refused(lambda_context: Any) -> None:
    # GIVEN a valid link with its signature repeated (Function URLs comma-join repeated names)
    raw = urlencode(valid_query()) + "&s=" + "0" * 64
    # WHEN it is requested THEN it is malformed
    assert call(function_url_query(raw), lambda_context)["statusCode"] == 400


def test_download_event_without_query_or_not_a_dict_is_400(lambda_context: Any) -> None:
    assert download.lambda_handler({}, lambda_context)["statusCode"] == 400
    assert download.lambda_handler({"queryStringParameters": {"m": STORED}}, lambda_context)["statusCode"] == 400


_NAMES = st.sampled_from(["m", "e", "s"]) | st.text(max_size=5)
_VALUES = st.text() | st.integers().map(str) | st.from_regex(r"[0-9a-f]{60,70}", fullmatch=True)


@settings(max_examples=2000)
@given(raw=st.lists(st.tuples(_NAMES, _VALUES), max_size=6).map(urlencode) | st.text())
def test_download_any_query_string_gets_an_http_answer(raw: str) -> None:
    # GIVEN any query string, as Lambda hands it over WHEN it is requested THEN the answer is an HTTP status
    from forwarder_ops.local import LocalContext

    answer = call(function_url_query(raw), LocalContext())
    assert answer["statusCode"] in ANSWERS


_ANY_VALUE = st.none() | st.booleans() | st.integers() | st.text() | st.lists(st.text(), max_size=2)


@settings(max_examples=2000)
@given(query=st.dictionaries(_NAMES, _ANY_VALUE, max_size=5) | _ANY_VALUE)
def test_download_any_query_parameters_get_an_http_answer(query: object) -> None:
    # GIVEN any JSON-like queryStringParameters (a dict of anything, or no dict at all)
    from forwarder_ops.local import LocalContext

    # WHEN it is requested THEN the answer is an HTTP status
    assert call(query, LocalContext())["statusCode"] in ANSWERS


@settings(max_examples=1000)
@given(name=st.sampled_from(["m", "e", "s"]), value=st.text(), keep=st.booleans())
def test_download_any_change_to_a_valid_link_is_refused_or_kept(name: str, value: str, keep: bool) -> None:
    # GIVEN a valid link with one parameter replaced (or a value appended, as a duplicate would be)
    from forwarder_ops.local import LocalContext

    query = valid_query()
    changed = {**query, name: f"{query[name]},{value}" if keep else value}
    # WHEN it is requested THEN only the unchanged link redirects; every change is a client error
    status = call(changed, LocalContext())["statusCode"]
    assert status == 302 if changed == query else status in {400, 403}


def url_event(method: str, query: dict[str, str]) -> dict[str, Any]:
    """A Function URL event (payload format 2.0) as far as the handler reads it."""
    return {
        "version": "2.0",
        "rawQueryString": urlencode(query),
        "queryStringParameters": query,
        "requestContext": {"http": {"method": method, "path": "/"}},
        "body": "m=x",
        "isBase64Encoded": False,
    }


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_download_methods_other_than_get_and_head_are_405(method: str, lambda_context: Any) -> None:
    # GIVEN a valid link requested with a method that does not read (a form post, a scanner's probe)
    # WHEN it is answered THEN it is refused with 405 naming the methods that work, and no redirect
    answer = download.lambda_handler(url_event(method, valid_query()), lambda_context)
    assert answer["statusCode"] == 405
    assert answer["headers"]["Allow"] == "GET, HEAD"
    assert "Location" not in answer["headers"]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_download_get_and_head_redirect(method: str, lambda_context: Any) -> None:
    # GIVEN a valid link fetched by a browser (GET) or a link checker (HEAD) WHEN answered THEN it redirects
    assert download.lambda_handler(url_event(method, valid_query()), lambda_context)["statusCode"] == 302


def test_download_redirect_ends_with_the_link(lambda_context: Any) -> None:
    # GIVEN a link that expires in 30 seconds, and one that expires in a day
    ending = dict(parse_qsl(urlsplit(sign_link("https://dl.example/", KEY, STORED, 30)).query))
    # WHEN each is opened THEN the presigned URL it redirects to lives no longer than the link (before: five
    # minutes whatever the link had left), and five minutes at most
    ending_location = call(ending, lambda_context)["headers"]["Location"]
    assert 1 <= int(dict(parse_qsl(urlsplit(ending_location).query))["X-Amz-Expires"]) <= 30
    assert call(valid_query(), lambda_context)["headers"]["Location"].endswith(
        f"X-Amz-Expires={download.REDIRECT_SECONDS}"
    )


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (url_event("GET", valid_query()), 302),
        (url_event("GET", {"m": "x"}), 400),
        (url_event("GET", {**valid_query(), "s": "0" * 64}), 403),
        (url_event("GET", valid_query(message_id="gone-1")), 404),
        (url_event("POST", valid_query()), 405),
    ],
)
def test_download_every_answer_forbids_sniffing_and_caching(
    event: dict[str, Any], status: int, lambda_context: Any
) -> None:
    # GIVEN any request WHEN it is answered THEN no browser or cache may guess the type or keep the answer
    # (a 302's Location is a presigned URL to private mail)
    answer = download.lambda_handler(event, lambda_context)
    assert answer["statusCode"] == status
    assert answer["headers"]["X-Content-Type-Options"] == "nosniff"
    assert answer["headers"]["Cache-Control"] == "no-store"
    assert answer["headers"]["Referrer-Policy"] == "no-referrer"


def test_download_forged_link_is_403_even_when_the_key_ring_cannot_be_read_again(lambda_context: Any) -> None:
    from botocore.exceptions import ClientError

    from forwarder.keyring import CachedKeyRing

    class ThrottledAfterFirstRead:
        reads = 0

        def get_secret_value(self, **_: Any) -> dict[str, Any]:
            self.reads += 1
            if self.reads > 1:
                raise ClientError({"Error": {"Code": "ThrottlingException"}}, "GetSecretValue")
            return {"SecretString": KEY.decode(), "CreatedDate": datetime(2020, 1, 1, tzinfo=UTC)}

    # GIVEN a key ring read once, a minute ago, and Secrets Manager refusing the re-read that a signature no
    # cached key matches asks for
    now = [0.0]
    client = ThrottledAfterFirstRead()
    keys = CachedKeyRing(lambda: client, "link-secret", clock=lambda: now[0])
    keys.get()
    now[0] = 61.0
    answer = download.answer({"queryStringParameters": {**valid_query(), "s": "0" * 64}}, FakeStore(), keys)  # type: ignore[arg-type]
    assert client.reads == 2  # the re-read was asked for, and refused
    # WHEN a forged link is answered THEN it is still a 403, not an exception (a 502 and the errors alarm)
    assert answer["statusCode"] == 403


def test_download_refusals_log_the_message_id_and_reason_never_hostile_input(
    lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an expired link to a stored message, and a query whose `m` is no message id (a megabyte of junk)
    expired = dict(parse_qsl(urlsplit(sign_link("https://dl.example/", KEY, STORED, -10)).query))
    junk = {"m": "<script>" + "a" * 1_000_000, "e": "1", "s": "0" * 64}
    # WHEN both are answered
    call(expired, lambda_context)
    call(junk, lambda_context)
    # THEN the refusal of the link says which message and why (what an operator needs when a member says
    # the link failed), and the junk is not written to the log
    refusals = [r for r in caplog.records if r.getMessage() == "download refused"]
    assert [(r.status, r.message_id) for r in refusals] == [(410, STORED), (400, None)]  # type: ignore[attr-defined]
    assert all("<script>" not in str(r.__dict__) for r in caplog.records)


def test_download_never_logs_the_request_even_when_powertools_is_told_to(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, lambda_context: Any
) -> None:
    import importlib
    import logging

    # GIVEN the download function loaded with Powertools' event logging on (POWERTOOLS_LOGGER_LOG_EVENT, a switch
    # an operator may set to debug a function): the event's query is a link, a credential for up to 30 days
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    caplog.set_level(logging.DEBUG)
    query = valid_query()
    try:
        loaded = importlib.reload(download)
        monkeypatch.setattr(loaded, "_runtime", lambda: (FakeStore(), FakeKeys()))
        # WHEN a link is opened
        assert loaded.lambda_handler({"queryStringParameters": query}, lambda_context)["statusCode"] == 302
    finally:
        monkeypatch.delenv("POWERTOOLS_LOGGER_LOG_EVENT")
        importlib.reload(download)
    # THEN the log holds no signature (before: the whole event, link included, went to the log group for 90 days)
    assert caplog.records
    assert all(query["s"] not in f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
