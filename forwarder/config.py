"""Runtime settings: the `FORWARDER_*` environment variables of ../shared/CONTRACT.md.

Plain frozen dataclasses rather than pydantic-settings: importing pydantic and building its models
cost the function about 200 ms of cold start (see docs/benchmark.md), for eleven variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from functools import cache
from typing import Any, Literal, TypeVar, get_args

ENV_PREFIX = "FORWARDER_"

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ALIAS_PATH = re.compile(r"^/[A-Za-z0-9_.\-/]*[A-Za-z0-9_.\-]$")
_ALIAS_NAME = re.compile(r"^[a-z0-9_.\-]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")

MEGABYTE = 1_000_000
SES_V2_RAW_LIMIT = 40 * MEGABYTE

SpamAction = Literal["tag", "drop"]
SettingsT = TypeVar("SettingsT", "Settings", "DownloadSettings", "DeliverySettings")


class SettingsError(RuntimeError):
    """A required setting is missing or invalid; the message is one line naming the variable."""


def _variable(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _check(name: str, ok: bool, why: str) -> None:
    if not ok:
        raise SettingsError(f"{_variable(name)} is invalid: {why}")


def _blank_is_none(value: str | None) -> str | None:
    return (value.strip() or None) if value is not None else None


@dataclass(frozen=True, slots=True)
class Settings:
    """What one deployed environment needs to know; every field is `FORWARDER_<NAME>`."""

    domain: str
    bucket: str
    alias_path: str
    prefix: str = ""
    alias_cache_seconds: int = 60
    catch_all_alias: str = "_catchall"
    idempotency_table: str | None = None
    idempotency_expiry_days: int = 7
    configuration_set: str | None = None
    subject_prefix: str | None = None
    spam_action: SpamAction = "tag"
    spam_tag: str = "[SPAM]"
    max_message_bytes: int = SES_V2_RAW_LIMIT
    link_expiry_days: int = 7
    link_url: str | None = None
    link_secret: str | None = None
    failure_queue_url: str | None = None
    trace_table: str | None = None
    trace_expiry_days: int = 30
    trace_subjects: bool = False

    def __post_init__(self) -> None:
        domain = self.domain.strip().lower().rstrip(".")
        _check("domain", bool(_DOMAIN.match(domain)), f"{self.domain!r} is not a domain name such as dev.example.org")
        object.__setattr__(self, "domain", domain)
        _check("bucket", bool(_BUCKET.match(self.bucket)), f"{self.bucket!r} is not an S3 bucket name")
        _check(
            "alias_path",
            bool(_ALIAS_PATH.match(self.alias_path)),
            f"{self.alias_path!r} is not an SSM path such as /email-forwarder/dev/aliases",
        )
        _check("alias_cache_seconds", 0 <= self.alias_cache_seconds <= 86_400, "must be 0 to 86400 seconds")
        _check("catch_all_alias", bool(_ALIAS_NAME.match(self.catch_all_alias)), "must be a lower-case alias name")
        _check("idempotency_expiry_days", 1 <= self.idempotency_expiry_days <= 365, "must be 1 to 365 days")
        _check("spam_action", self.spam_action in get_args(SpamAction), "must be tag or drop")
        _check(
            "max_message_bytes",
            0 < self.max_message_bytes <= SES_V2_RAW_LIMIT,
            f"must be 1 to {SES_V2_RAW_LIMIT} (SES v2's raw message limit)",
        )
        _check("link_expiry_days", 1 <= self.link_expiry_days <= 30, "must be 1 to 30 days")
        _check("trace_expiry_days", 1 <= self.trace_expiry_days <= 3650, "must be 1 to 3650 days")
        optional = (
            "trace_table",
            "idempotency_table",
            "configuration_set",
            "subject_prefix",
            "link_url",
            "link_secret",
        )
        for name in (*optional, "failure_queue_url"):
            object.__setattr__(self, name, _blank_is_none(getattr(self, name)))

    def object_key(self, message_id: str) -> str:
        """The S3 key where the receipt rule's S3 action stored a message."""
        return f"{self.prefix}{message_id}"


@dataclass(frozen=True, slots=True)
class DownloadSettings:
    """Settings of the download link function (`forwarder.download.lambda_handler`)."""

    bucket: str
    link_secret: str
    prefix: str = ""

    def __post_init__(self) -> None:
        _check("bucket", bool(_BUCKET.match(self.bucket)), f"{self.bucket!r} is not an S3 bucket name")
        _check("link_secret", bool(self.link_secret.strip()), "must name the Secrets Manager secret")


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Settings of the delivery-event function (`forwarder.delivery.lambda_handler`)."""

    trace_table: str
    trace_expiry_days: int = 30
    alarm_topic_arn: str | None = None

    def __post_init__(self) -> None:
        _check("trace_table", bool(self.trace_table.strip()), "must name the DynamoDB table")
        _check("trace_expiry_days", 1 <= self.trace_expiry_days <= 3650, "must be 1 to 3650 days")
        object.__setattr__(self, "alarm_topic_arn", _blank_is_none(self.alarm_topic_arn))


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value not in {"true", "false", "1", "0", "yes", "no", "on", "off", ""}:
        raise ValueError(text)
    return value in {"true", "1", "yes", "on"}


_CONVERTERS: dict[str, Callable[[str], Any]] = {"int": int, "bool": _flag}


def load_settings(kind: type[SettingsT], environ: Mapping[str, str] | None = None) -> SettingsT:
    """Read settings of `kind` from the environment, or raise `SettingsError` with one clear line."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in fields(kind):
        variable = _variable(field.name)
        if variable not in environ:
            if field.default is MISSING:
                problems.append(f"{variable} is required")
            continue
        raw = environ[variable]
        convert = _CONVERTERS.get(str(field.type), str)
        try:
            values[field.name] = convert(raw.strip() if convert is int else raw)
        except ValueError:
            what = "true or false" if convert is _flag else "a whole number"
            problems.append(f"{variable} is invalid: {raw!r} is not {what}")
    if problems:
        raise SettingsError("; ".join(problems))
    return kind(**values)


@cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return load_settings(Settings)
