"""Settings: FORWARDER_* variables, one clear line when one is missing or wrong."""

from __future__ import annotations

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
    assert settings.object_key("abc") == "abc"


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
