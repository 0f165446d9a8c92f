"""The presigned URL of a stored message (what a download link redirects to): private mail, fetched once."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import boto3

from forwarder.aws.store import S3MailStore


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
