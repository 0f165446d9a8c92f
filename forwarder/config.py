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
from string import Formatter
from typing import Any, Literal, TypeVar, get_args, get_type_hints

from forwarder.mail.routing import ALIAS_NAME

ENV_PREFIX = "FORWARDER_"

DOMAIN_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
ALIAS_PATH = re.compile(r"^/[A-Za-z0-9_.\-/]*[A-Za-z0-9_.\-]$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")

# SES v2 sends and receives messages of up to "40 MB", headers and attachments included. The
# documentation does not say whether that is 10^6 or 2^20 bytes: the decimal reading is the smaller
# and so the safe one, for what we send (`max_message_bytes`) and for the local SMTP ingress alike.
MEGABYTE = 1_000_000
SES_V2_RAW_LIMIT = 40 * MEGABYTE

# How long a reply address works after the sender's last mail to the alias (`reply_expiry_days`); also how long
# after a key rotation the rotation command warns that another one ends the oldest reply addresses.
REPLY_EXPIRY_DAYS = 90

SpamAction = Literal["tag", "drop"]
ReplyMode = Literal["team", "direct"]
IdempotencyCompletion = Literal["write", "send-event"]
SettingsT = TypeVar("SettingsT")


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
    # Longer than an event can wait to be replayed (Lambda's retries for up to 6 hours, then the failure queue's
    # 14 days): a redrive of an event parked after some of its sends must still find their claims.
    idempotency_expiry_days: int = 15
    # How a send's claim is completed: `write` (an UpdateItem after the send) or `send-event` (the delivery
    # function completes it from SES's Send event; needs the configuration set's events, as the template wires).
    idempotency_completion: IdempotencyCompletion = "write"
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
    # Replies as the team (forwarder/relay.py). The code default is `direct`, today's behaviour, because
    # `team` needs the reply table and the signing secret, which only a deployed stack (the template sets
    # `team`) or the local emulator provides; `team` without them falls back to `direct` with a warning.
    reply_mode: ReplyMode = "direct"
    reply_table: str | None = None
    reply_expiry_days: int = REPLY_EXPIRY_DAYS
    reply_name: str = "{member} via {alias}"
    reply_tag: str = "[not relayed]"
    # The subject tag of a member's answer to a reply address whose record expired (or is gone): forwarded to the
    # members instead of dropped, so that its author learns it did not reach the outside sender.
    reply_expired_tag: str = "[not relayed: reply address expired]"

    def __post_init__(self) -> None:
        domain = self.domain.strip().lower().rstrip(".")
        _check(
            "domain", bool(DOMAIN_NAME.match(domain)), f"{self.domain!r} is not a domain name such as dev.example.org"
        )
        object.__setattr__(self, "domain", domain)
        _check("bucket", bool(_BUCKET.match(self.bucket)), f"{self.bucket!r} is not an S3 bucket name")
        _check(
            "alias_path",
            bool(ALIAS_PATH.match(self.alias_path)),
            f"{self.alias_path!r} is not an SSM path such as /email-forwarder/dev/aliases",
        )
        _check("alias_cache_seconds", 0 <= self.alias_cache_seconds <= 86_400, "must be 0 to 86400 seconds")
        _check("catch_all_alias", bool(ALIAS_NAME.match(self.catch_all_alias)), "must be a lower-case alias name")
        _check("idempotency_expiry_days", 1 <= self.idempotency_expiry_days <= 365, "must be 1 to 365 days")
        _check("spam_action", self.spam_action in get_args(SpamAction), "must be tag or drop")
        object.__setattr__(self, "idempotency_completion", self.idempotency_completion.strip().lower())
        _check(
            "idempotency_completion",
            self.idempotency_completion in get_args(IdempotencyCompletion),
            "must be write or send-event",
        )
        _check(
            "idempotency_completion",
            self.idempotency_completion == "write" or bool(self.configuration_set and self.configuration_set.strip()),
            "send-event needs FORWARDER_CONFIGURATION_SET (the Send events come through it)",
        )
        _check(
            "max_message_bytes",
            0 < self.max_message_bytes <= SES_V2_RAW_LIMIT,
            f"must be 1 to {SES_V2_RAW_LIMIT} (SES v2's raw message limit)",
        )
        _check("link_expiry_days", 1 <= self.link_expiry_days <= 30, "must be 1 to 30 days")
        _check("trace_expiry_days", 1 <= self.trace_expiry_days <= 3650, "must be 1 to 3650 days")
        object.__setattr__(self, "reply_mode", self.reply_mode.strip().lower())
        _check("reply_mode", self.reply_mode in get_args(ReplyMode), "must be team or direct")
        _check("reply_expiry_days", 1 <= self.reply_expiry_days <= 3650, "must be 1 to 3650 days")
        _check("reply_name", _valid_reply_name(self.reply_name), "must be one line using only {member} and {alias}")
        optional = (
            "trace_table",
            "idempotency_table",
            "configuration_set",
            "subject_prefix",
            "link_url",
            "link_secret",
        )
        for name in (*optional, "failure_queue_url", "reply_table"):
            object.__setattr__(self, name, _blank_is_none(getattr(self, name)))


def _valid_reply_name(template: str) -> bool:
    """One line whose only replacement fields are plain `{member}` and `{alias}` (no attribute, index,
    conversion or format spec: the template comes from the environment, the values from mail)."""
    if not template.strip() or "\n" in template or "\r" in template:
        return False
    try:
        parsed = list(Formatter().parse(template))
    except ValueError:
        return False
    return all(
        name in (None, "member", "alias") and not spec and not conversion for _, name, spec, conversion in parsed
    )


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
    # The forwarder's claims table, when its sends are completed from their Send events (send-event mode).
    idempotency_table: str | None = None

    def __post_init__(self) -> None:
        _check("trace_table", bool(self.trace_table.strip()), "must name the DynamoDB table")
        _check("trace_expiry_days", 1 <= self.trace_expiry_days <= 3650, "must be 1 to 3650 days")
        object.__setattr__(self, "alarm_topic_arn", _blank_is_none(self.alarm_topic_arn))
        object.__setattr__(self, "idempotency_table", _blank_is_none(self.idempotency_table))


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _to_int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not a whole number") from None


def _to_bool(raw: str) -> bool:
    word = raw.strip().lower()
    if word not in _TRUE | _FALSE:
        raise ValueError(f"{raw!r} is not true or false")
    return word in _TRUE


def _converter(hint: Any) -> Callable[[str], Any]:
    """How to read a variable into a field of type `hint`: by the type itself, not its spelling, so that
    `int | None` is an int (blank: None), `bool` a bool, and `str` or a `Literal` of strings stays text."""
    args = get_args(hint)
    if type(None) in args:
        (inner,) = (arg for arg in args if arg is not type(None))
        convert = _converter(inner)
        return lambda raw: convert(raw) if raw.strip() else None
    if hint is bool:
        return _to_bool
    if hint is int:
        return _to_int
    return str


def _converters(kind: Any) -> dict[str, Callable[[str], Any]]:
    hints = get_type_hints(kind)
    return {field.name: _converter(hints[field.name]) for field in fields(kind)}


def load_settings(kind: type[SettingsT], environ: Mapping[str, str] | None = None) -> SettingsT:
    """Read settings of `kind` from the environment, or raise `SettingsError` with one clear line."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    converters = _converters(kind)
    for field in fields(kind):  # type: ignore[arg-type]
        variable = _variable(field.name)
        if variable not in environ:
            if field.default is MISSING:
                problems.append(f"{variable} is required")
            continue
        try:
            values[field.name] = converters[field.name](environ[variable])
        except ValueError as error:
            problems.append(f"{variable} is invalid: {error}")
    if problems:
        raise SettingsError("; ".join(problems))
    return kind(**values)


@cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return load_settings(Settings)
