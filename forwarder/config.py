"""Runtime settings: the `FORWARDER_*` environment variables of ../shared/CONTRACT.md."""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FORWARDER_"

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ALIAS_PATH = re.compile(r"^/[A-Za-z0-9_.\-/]*[A-Za-z0-9_.\-]$")
_ALIAS_NAME = re.compile(r"^[a-z0-9_.\-]+$")

SettingsT = TypeVar("SettingsT", bound=BaseSettings)
MEGABYTE = 1_000_000
SES_V2_RAW_LIMIT = 40 * MEGABYTE


class SettingsError(RuntimeError):
    """A required setting is missing or invalid; the message is one line naming the variable."""


class Settings(BaseSettings):
    """What one deployed environment needs to know; every field is `FORWARDER_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    domain: str
    bucket: Annotated[str, Field(min_length=3, max_length=63)]
    prefix: str = ""
    alias_path: str
    alias_cache_seconds: Annotated[int, Field(ge=0, le=86_400)] = 60
    catch_all_alias: Annotated[str, Field(pattern=_ALIAS_NAME.pattern)] = "_catchall"
    idempotency_table: str | None = None
    idempotency_expiry_days: Annotated[int, Field(ge=1, le=365)] = 7
    configuration_set: str | None = None
    subject_prefix: str | None = None
    spam_action: Literal["tag", "drop"] = "tag"
    spam_tag: str = "[SPAM]"
    max_message_bytes: Annotated[int, Field(gt=0, le=SES_V2_RAW_LIMIT)] = SES_V2_RAW_LIMIT
    link_expiry_days: Annotated[int, Field(ge=1, le=30)] = 7
    link_url: str | None = None
    link_secret: str | None = None

    @field_validator("domain")
    @classmethod
    def _valid_domain(cls, value: str) -> str:
        domain = value.strip().lower().rstrip(".")
        if not _DOMAIN.match(domain):
            raise ValueError(f"{value!r} is not a domain name such as dev.example.org")
        return domain

    @field_validator("alias_path")
    @classmethod
    def _valid_alias_path(cls, value: str) -> str:
        if not _ALIAS_PATH.match(value):
            raise ValueError(f"{value!r} is not an SSM path such as /email-forwarder/dev/aliases")
        return value

    @field_validator("idempotency_table", "configuration_set", "subject_prefix", "link_url", "link_secret")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @property
    def idempotency_enabled(self) -> bool:
        return self.idempotency_table is not None

    def object_key(self, message_id: str) -> str:
        """The S3 key where the receipt rule's S3 action stored a message."""
        return f"{self.prefix}{message_id}"


class DownloadSettings(BaseSettings):
    """Settings of the download link function (`forwarder.download.lambda_handler`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    bucket: Annotated[str, Field(min_length=3, max_length=63)]
    prefix: str = ""
    link_secret: Annotated[str, Field(min_length=1)]


def describe_error(error: ValidationError) -> str:
    """One line naming each offending variable, e.g. `FORWARDER_DOMAIN is required`."""
    problems = []
    for item in error.errors():
        variable = ENV_PREFIX + str(item["loc"][0]).upper() if item["loc"] else ENV_PREFIX + "*"
        if item["type"] == "missing":
            problems.append(f"{variable} is required")
        else:
            problems.append(f"{variable} is invalid: {item['msg']}")
    return "; ".join(problems)


def load_settings(kind: type[SettingsT]) -> SettingsT:
    """Read settings of `kind` from the environment, or raise `SettingsError` with one clear line."""
    try:
        return kind()
    except ValidationError as error:
        raise SettingsError(describe_error(error)) from None


@cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return load_settings(Settings)
