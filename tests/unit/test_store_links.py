"""The store as the download function uses it: whether a message is stored, and its presigned URL (private mail)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError

from forwarder.aws.store import S3MailStore
from forwarder.ports import StoredMailError


def test_store_download_link_forbids_caches_to_keep_the_mail() -> None:
    # GIVEN the store of the download function (signing needs credentials, never a request)
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x")
    store = S3MailStore(client, "mail-bucket", "inbound/")
    # WHEN a stored message's presigned URL is made
    query = dict(parse_qsl(urlsplit(store.download_link("o3vrnil0e2ic28", 300)).query))
    # THEN S3 answers it as an attachment that no cache may keep (before: S3's answer had no Cache-Control, and a
    # shared proxy could keep the mail by heuristic freshness, beyond the URL's five minutes)
    assert query["response-cache-control"] == "private, no-store"
    assert query["response-content-disposition"] == 'attachment; filename="o3vrnil0e2ic28.eml"'
    assert query["response-content-type"] == "message/rfc822"


class FailingHead:
    """An S3 client whose HEAD answers with one error code."""

    def __init__(self, code: str) -> None:
        self.code = code

    def head_object(self, **_: object) -> dict[str, object]:
        raise ClientError({"Error": {"Code": self.code, "Message": "..."}}, "HeadObject")


@pytest.mark.parametrize("code", ["404", "403", "NoSuchKey"])
def test_store_size_of_a_message_not_stored_is_a_stored_mail_error(code: str) -> None:
    # GIVEN a key that is not there (403 for a role without s3:ListBucket) WHEN its size is asked
    # THEN the download function is told it is not stored (its 404)
    with pytest.raises(StoredMailError):
        S3MailStore(FailingHead(code), "mail-bucket", "inbound/").size("gone-1")  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["503", "500", "SlowDown"])
def test_store_size_when_s3_fails_is_no_answer_about_the_message(code: str) -> None:
    # GIVEN S3 throttling or failing WHEN a stored message's size is asked THEN the error is S3's (a 502 and the
    # download errors alarm), not "no longer stored" (before: a 404 that told the member the mail was gone)
    with pytest.raises(ClientError):
        S3MailStore(FailingHead(code), "mail-bucket", "inbound/").size("o3vrnil0e2ic28")  # type: ignore[arg-type]


def test_download_function_presigns_on_the_regional_endpoint_of_the_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    from forwarder import download

    # GIVEN the download function of a stack in ap-northeast-1 (as Lambda sets its environment)
    for name, value in {
        "AWS_REGION": "ap-northeast-1",
        "AWS_DEFAULT_REGION": "ap-northeast-1",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "x",
        "FORWARDER_BUCKET": "prod-mailbucket-1a2b3c",
        "FORWARDER_PREFIX": "inbound/",
        "FORWARDER_LINK_SECRET": "link-secret",
    }.items():
        monkeypatch.setenv(name, value)
    download._runtime.cache_clear()
    try:
        store, _ = download._runtime()
        # WHEN it presigns a stored message
        host = urlsplit(store.download_link("o3vrnil0e2ic28", 300)).hostname
    finally:
        download._runtime.cache_clear()
    # THEN the URL names the bucket's region (before: the global s3.amazonaws.com, which S3 answers for a bucket
    # less than a day old, and in regions opened since 2019, with a redirect the URL's signature does not survive)
    assert host == "prod-mailbucket-1a2b3c.s3.ap-northeast-1.amazonaws.com"
