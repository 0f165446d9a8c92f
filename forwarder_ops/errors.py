"""What the operator commands may fail with, and how an AWS failure reads in one line."""

from __future__ import annotations

from pathlib import Path

_NO_CREDENTIALS = (
    "no AWS credentials: run `aws configure` or `aws sso login --profile NAME` and pass --profile NAME "
    "(or set AWS_PROFILE)"
)
_CLIENT_CODES = {
    "ExpiredToken": "the AWS credentials have expired ({operation}): log in again, e.g. `aws sso login`",
    "ExpiredTokenException": "the AWS credentials have expired ({operation}): log in again, e.g. `aws sso login`",
    "RequestExpired": "the AWS credentials have expired ({operation}): log in again, e.g. `aws sso login`",
    "UnrecognizedClientException": "AWS does not accept these credentials ({operation}): check --profile",
    "InvalidClientTokenId": "AWS does not accept these credentials ({operation}): check --profile",
    "InvalidSignatureException": "AWS does not accept these credentials ({operation}): check --profile",
    "AccessDenied": "access denied for {operation}: {message}",
    "AccessDeniedException": "access denied for {operation}: {message}",
}


class CommandError(Exception):
    """An expected failure: printed as one line, exit code 2 (no traceback)."""


def read_text(path: Path) -> str:
    """The text of a file the operator named (UTF-8); a `CommandError` when it is binary or in another encoding.

    An `OSError` (missing, a directory, unreadable) is left to the caller, which knows what to say.
    """
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CommandError(
            f"{path} is not UTF-8 text (byte {error.start} cannot be read): is it the right file?"
        ) from None


def aws_code(error: BaseException) -> str | None:
    """The error code of an AWS refusal (`""` when it has none), None when `error` is not one."""
    from botocore.exceptions import ClientError

    return str(error.response.get("Error", {}).get("Code", "")) if isinstance(error, ClientError) else None


def describe_aws_error(error: BaseException) -> str | None:
    """One line saying what went wrong with AWS and what to do, or None for any other error."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
        TokenRetrievalError,
    )

    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "") or code
        template = _CLIENT_CODES.get(code, "AWS refused {operation}: {code}: {message}")
        return template.format(operation=error.operation_name, code=code, message=message)
    messages: list[tuple[type[BaseException], str]] = [
        (NoCredentialsError, _NO_CREDENTIALS),
        (PartialCredentialsError, _NO_CREDENTIALS),
        (TokenRetrievalError, "cannot get AWS credentials ({error}): log in again with `aws sso login`"),
        (ProfileNotFound, "{error}: see `aws configure list-profiles`"),
        (NoRegionError, "no AWS region: pass --region or --config-env ENV (samconfig.toml)"),
        (ConnectionError, "cannot reach AWS: {error}"),
        (HTTPClientError, "cannot reach AWS: {error}"),
    ]
    for kind, template in messages:
        if isinstance(error, kind):
            return template.format(error=error)
    return None


_DENIED = {"AccessDenied", "AccessDeniedException", "AuthorizationError", "UnauthorizedOperation"}
# The IAM prefix of the operations the read commands make, for a refusal whose message does not name the action
# (an explicit deny by a service control policy says only that). SES v1 and v2 share the prefix `ses`.
_IAM_PREFIXES = {
    "cloudformation": ("DescribeStacks",),
    "ses": (
        "GetAccount",
        "GetEmailIdentity",
        "ListEmailIdentities",
        "DescribeActiveReceiptRuleSet",
        "DescribeReceiptRuleSet",
        "GetSuppressedDestination",
        "ListSuppressedDestinations",
        "GetConfigurationSet",
    ),
    "route53": ("GetHostedZone", "ListHostedZonesByName", "ListResourceRecordSets"),
    "ssm": ("GetParametersByPath",),
    "sqs": ("GetQueueAttributes", "ReceiveMessage"),
    "dynamodb": ("Query", "BatchGetItem", "GetItem"),
    "s3": ("GetObject",),
}
_PREFIX_OF = {operation: prefix for prefix, operations in _IAM_PREFIXES.items() for operation in operations}


def missing_permission(error: BaseException) -> str | None:
    """For an access-denied refusal: the IAM action it names (`ses:GetAccount`), else the one its operation
    needs; None for any other error."""
    import re

    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError) or aws_code(error) not in _DENIED:
        return None
    named = re.search(r"perform:? `?([a-z0-9-]+:[A-Za-z0-9*]+)", str(error.response["Error"].get("Message", "")))
    if named:
        return named.group(1)
    prefix = _PREFIX_OF.get(error.operation_name)
    return f"{prefix}:{error.operation_name}" if prefix else error.operation_name
