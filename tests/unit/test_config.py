"""Settings: FORWARDER_* variables, one clear line when one is missing or wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from forwarder.config import Settings, SettingsError, get_settings, load_settings

REQUIRED = {
    "FORWARDER_DOMAIN": "Dev.AWS-Educate.tw.",
    "FORWARDER_BUCKET": "mail-bucket",
    "FORWARDER_ALIAS_PATH": "/email-forwarder/dev/aliases",
}


@pytest.fixture
def required(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("required")
def test_settings_defaults_and_normalisation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDER_IDEMPOTENCY_TABLE", "  ")
    settings = get_settings()
    assert settings.domain == "dev.aws-educate.tw"
    assert settings.prefix == ""
    assert settings.alias_cache_seconds == 60
    assert settings.idempotency_table is None
    assert settings.spam_action == "tag"
    assert settings.max_message_bytes == 40_000_000


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_settings_missing_variable_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    for name, value in REQUIRED.items():
        if name != missing:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv(missing, raising=False)
    with pytest.raises(SettingsError) as error:
        load_settings(Settings)
    assert str(error.value) == f"{missing} is required"


@pytest.mark.usefixtures("required")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FORWARDER_DOMAIN", "not a domain"),
        ("FORWARDER_ALIAS_PATH", "aliases"),
        ("FORWARDER_ALIAS_CACHE_SECONDS", "-1"),
        ("FORWARDER_SPAM_ACTION", "bounce"),
        ("FORWARDER_MAX_MESSAGE_BYTES", "50000000"),
    ],
)
def test_settings_invalid_value_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings(Settings)
    assert str(error.value).startswith(f"{name} is invalid")
    assert "\n" not in str(error.value)


@pytest.mark.usefixtures("required")
def test_settings_reply_defaults_are_direct_mode() -> None:
    # GIVEN no reply variables: the code keeps today's behaviour (the template sets team)
    settings = load_settings(Settings)
    assert (settings.reply_mode, settings.reply_table, settings.reply_expiry_days) == ("direct", None, 90)
    assert settings.reply_name == "{member} via {alias}"
    assert settings.reply_tag == "[not relayed]"


@pytest.mark.usefixtures("required")
def test_settings_reply_mode_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDER_REPLY_MODE", " Team ")
    monkeypatch.setenv("FORWARDER_REPLY_TABLE", "replies")
    settings = load_settings(Settings)
    assert (settings.reply_mode, settings.reply_table) == ("team", "replies")


@pytest.mark.usefixtures("required")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FORWARDER_REPLY_MODE", "everyone"),
        ("FORWARDER_REPLY_EXPIRY_DAYS", "0"),
        ("FORWARDER_REPLY_NAME", "{member} <{address}>"),
        ("FORWARDER_REPLY_NAME", "{member"),
        ("FORWARDER_REPLY_NAME", "{member.__class__}"),
        ("FORWARDER_REPLY_NAME", "{member!r}"),
        ("FORWARDER_REPLY_NAME", "{alias:>999999}"),
        ("FORWARDER_REPLY_NAME", "   "),
    ],
)
def test_settings_invalid_reply_value_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings(Settings)
    assert str(error.value).startswith(f"{name} is invalid")


@dataclass(frozen=True)
class _Typed:
    """Settings of every kind of field the loader converts."""

    count: int = 0
    limit: int | None = None
    enabled: bool = False
    mode: Literal["tag", "drop"] = "tag"
    label: str | None = None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"FORWARDER_COUNT": " 7 "}, _Typed(count=7)),
        ({"FORWARDER_LIMIT": "25"}, _Typed(limit=25)),
        ({"FORWARDER_LIMIT": " "}, _Typed(limit=None)),
        ({"FORWARDER_ENABLED": "true"}, _Typed(enabled=True)),
        ({"FORWARDER_ENABLED": "Off"}, _Typed(enabled=False)),
        ({"FORWARDER_ENABLED": "1"}, _Typed(enabled=True)),
        ({"FORWARDER_MODE": "drop"}, _Typed(mode="drop")),
        ({"FORWARDER_LABEL": "ops"}, _Typed(label="ops")),
    ],
)
def test_load_settings_converts_by_the_field_type(environ: dict[str, str], expected: _Typed) -> None:
    # GIVEN variables for an int, an int | None, a bool, a Literal and a str | None field
    # WHEN they are loaded
    loaded = load_settings(_Typed, environ)
    # THEN each value has its field's type, not the variable's text
    assert loaded == expected
    assert type(loaded.limit) is type(expected.limit)
    assert type(loaded.enabled) is bool


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FORWARDER_LIMIT": "many"}, "FORWARDER_LIMIT is invalid: 'many' is not a whole number"),
        ({"FORWARDER_ENABLED": "maybe"}, "FORWARDER_ENABLED is invalid: 'maybe' is not true or false"),
    ],
)
def test_load_settings_names_a_value_of_the_wrong_type(environ: dict[str, str], message: str) -> None:
    # GIVEN a value that is not of its field's type
    # WHEN it is loaded
    with pytest.raises(SettingsError) as error:
        load_settings(_Typed, environ)
    # THEN the one-line error names the variable and the value
    assert str(error.value) == message


@pytest.mark.usefixtures("required")
def test_settings_send_event_completion_needs_the_configuration_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDER_IDEMPOTENCY_COMPLETION", " Send-Event ")
    with pytest.raises(SettingsError, match=r"FORWARDER_IDEMPOTENCY_COMPLETION.*needs FORWARDER_CONFIGURATION_SET"):
        get_settings()
    get_settings.cache_clear()
    monkeypatch.setenv("FORWARDER_CONFIGURATION_SET", "forwarder-dev")
    assert get_settings().idempotency_completion == "send-event"
    get_settings.cache_clear()
    monkeypatch.setenv("FORWARDER_IDEMPOTENCY_COMPLETION", "later")
    with pytest.raises(SettingsError, match=r"FORWARDER_IDEMPOTENCY_COMPLETION.*must be write or send-event"):
        get_settings()
