"""One botocore client configuration for the function and the operator CLI: timeouts, retry mode and
how many times each call is attempted.

botocore's `retries.max_attempts` counts *retries* (1 means two attempts); `total_max_attempts` counts
attempts, the first one included. Only `total_max_attempts` is used here.
"""

from __future__ import annotations

from typing import Any

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 60
# Every call but a synchronous Lambda invoke: the first attempt and up to four retries (standard mode:
# throttling, 5xx and connection errors, with exponential backoff).
ATTEMPTS = 5
# A synchronous (RequestResponse) invoke waits for the function, up to Lambda's 15-minute limit, and is
# attempted once: a retry while the first run still holds the idempotency record could only fail.
INVOKE_ATTEMPTS = 1
INVOKE_READ_TIMEOUT = 905


def client_config(service: str = "") -> Any:
    """The botocore `Config` for a client of `service` ("s3", "lambda", ...)."""
    from botocore.config import Config

    invoke = service == "lambda"
    return Config(
        retries={"total_max_attempts": INVOKE_ATTEMPTS if invoke else ATTEMPTS, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=INVOKE_READ_TIMEOUT if invoke else READ_TIMEOUT,
        # S3 also signs presigned download links: SigV4, which every region accepts, on the bucket's regional
        # endpoint (virtual-hosted addressing; our buckets' generated names have no dots). botocore's default, the
        # global s3.amazonaws.com, is answered with a redirect to the region for a bucket less than a day old (and
        # always in regions opened since 2019), and a presigned URL's signature, which covers the host, fails there.
        signature_version="s3v4" if service == "s3" else None,
        s3={"addressing_style": "virtual"} if service == "s3" else None,
        # DynamoDB requests are built by this code alone (tested against moto) and checked again by DynamoDB,
        # which answers ValidationException; botocore's own walk of every nested attribute value of a
        # mail's claim transaction is a fifth of its CPU (docs/benchmark.md).
        parameter_validation=service != "dynamodb",
    )
