from datetime import timedelta

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings

from eh_runtime.settings import (
    LoggingSettings,
    NatsSettings,
    ServiceSettings,
    SettingsError,
    StreamSettings,
    load_settings,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("250ms", 0.25),
        ("15m", 900),
        ("24h", 86400),
        ("30d", 2592000),
        ("1.5h", 5400),
    ],
)
def test_durations_take_units(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_nats_url_is_the_variable_the_nats_tools_use(monkeypatch):
    monkeypatch.setenv("NATS_URL", "nats://a:4222, nats://b:4222")
    settings = NatsSettings()
    assert settings.servers == ["nats://a:4222", "nats://b:4222"]


def test_stream_limits_come_from_events_variables(monkeypatch):
    monkeypatch.setenv("EVENTS_MAX_AGE", "7d")
    monkeypatch.setenv("EVENTS_MAX_BYTES", "2GiB")
    monkeypatch.setenv("EVENTS_DUPLICATE_WINDOW", "10m")
    monkeypatch.setenv("EVENTS_REPLICAS", "3")
    settings = StreamSettings()
    assert settings.max_age == timedelta(days=7)
    assert settings.max_bytes == 2 * 2**30
    assert settings.duplicate_window == timedelta(minutes=10)
    assert settings.replicas == 3


class ExampleSettings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": "EXAMPLE_"}


def test_every_bad_variable_is_named_at_once(monkeypatch):
    monkeypatch.setenv("EXAMPLE_PORT", "eighty")
    monkeypatch.setenv("NATS_CONNECT_TIMEOUT", "soon")
    monkeypatch.setenv("EVENTS_REPLICAS", "7")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(SettingsError) as caught:
        load_settings(ExampleSettings)
    message = str(caught.value)
    for variable in (
        "EXAMPLE_PORT='eighty'",
        "NATS_CONNECT_TIMEOUT='soon'",
        "EVENTS_REPLICAS='7'",
        "LOG_LEVEL='loud'",
    ):
        assert variable in message
    assert "4 problem(s)" in message


def test_valid_environment_loads(monkeypatch):
    monkeypatch.setenv("EXAMPLE_PORT", "9000")
    monkeypatch.setenv("LOG_FORMAT", "console")
    settings = load_settings(ExampleSettings)
    assert settings.port == 9000
    assert settings.logging == LoggingSettings(format="console")


def test_the_nats_password_may_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "nats-collector"
    secret.write_text("s3cret-from-a-mounted-file\n")
    monkeypatch.setenv("NATS_USER", "collector")
    monkeypatch.setenv("NATS_PASSWORD_FILE", str(secret))
    settings = load_settings(NatsSettings)
    assert settings.password is not None
    assert settings.password.get_secret_value() == "s3cret-from-a-mounted-file"


@pytest.mark.parametrize(
    ("content", "password", "problem"),
    [
        (None, None, "cannot be read: No such file or directory"),
        ("\n", None, "the file is empty"),
        ("x", "y", "set NATS_PASSWORD or NATS_PASSWORD_FILE, not both"),
    ],
)
def test_a_bad_nats_password_file_stops_the_start(monkeypatch, tmp_path, content, password, problem):
    secret = tmp_path / "nats-collector"
    if content is not None:
        secret.write_text(content)
    monkeypatch.setenv("NATS_PASSWORD_FILE", str(secret))
    if password is not None:
        monkeypatch.setenv("NATS_PASSWORD", password)
    with pytest.raises(SystemExit) as stopped:
        load_settings(NatsSettings)
    assert f"NATS_PASSWORD_FILE='{secret}'" in str(stopped.value)
    assert problem in str(stopped.value)


class AgentLikeSettings(BaseSettings):
    """A process with logging only (like the host agent): no NATS, no HTTP server, no auth."""

    logging: LoggingSettings = Field(default_factory=LoggingSettings)


def test_a_process_is_asked_only_for_the_groups_it_has(monkeypatch):
    monkeypatch.delenv("AUTH_MODE", raising=False)
    monkeypatch.setenv("NATS_CONNECT_TIMEOUT", "soon")  # not this process's: not its problem
    assert load_settings(AgentLikeSettings).logging == LoggingSettings()
    with pytest.raises(SettingsError, match="AUTH_MODE"):
        load_settings(ExampleSettings)
