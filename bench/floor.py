"""The floor: what any Python forwarder must do, and nothing else.

Read the stored mail from S3, hand the same bytes to SES v2. Same environment, same fake AWS and the
same botocore client settings as the forwarder (`forwarder.wiring.client_config` and `s3_config`, repeated here so
that the floor imports nothing of the forwarder). No header rewrite, no alias lookup, no logging,
metrics, tracing or idempotency.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"total_max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60)
_BUCKET = os.environ["FORWARDER_BUCKET"]
_PREFIX = os.environ.get("FORWARDER_PREFIX", "")
_FROM = f"team@{os.environ['FORWARDER_DOMAIN']}"
_MEMBERS = os.environ["BENCH_MEMBERS"].split(",")

s3 = boto3.client("s3", config=_CONFIG.merge(Config(signature_version="s3v4")))
sesv2 = boto3.client("sesv2", config=_CONFIG)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    sent = []
    for record in event["Records"]:
        key = _PREFIX + record["ses"]["mail"]["messageId"]
        data = s3.get_object(Bucket=_BUCKET, Key=key)["Body"].read()
        response = sesv2.send_email(
            FromEmailAddress=_FROM, Destination={"ToAddresses": _MEMBERS}, Content={"Raw": {"Data": data}}
        )
        sent.append(response["MessageId"])
    return {"sent": sent}
