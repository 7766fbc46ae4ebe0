from datetime import timedelta

from pydantic import ByteSize, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eh_runtime.command_line import command_line, environment_help
from eh_runtime.settings import Duration, LoggingSettings, SettingsVariable, setting_text, settings_variables


class ToySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOY_")

    wait: Duration = Field(default=timedelta(minutes=5), description="How long to wait.")
    size: ByteSize = ByteSize(2**20)
    name: str | None = None
    logging: LoggingSettings = Field(default_factory=LoggingSettings)


def test_variables_come_from_the_model_with_nested_groups_and_defaults_as_written():
    assert settings_variables(ToySettings) == [
        SettingsVariable("TOY_WAIT", "5m", "How long to wait."),
        SettingsVariable("TOY_SIZE", "1MiB", ""),
        SettingsVariable("TOY_NAME", "", ""),
        SettingsVariable("LOG_LEVEL", "info", "The least severe log lines written."),
        SettingsVariable("LOG_FORMAT", "json", "json for machines (the default), console for a terminal."),
    ]


def test_setting_text():
    assert [setting_text(v) for v in (timedelta(0), timedelta(milliseconds=250), timedelta(seconds=90))] == [
        "0s",
        "250ms",
        "90s",
    ]
    assert [setting_text(v) for v in (True, ByteSize(1536), 7)] == ["true", "1536", "7"]


def test_help_text_aligns_names_and_shows_defaults():
    text = environment_help(ToySettings)
    assert text.splitlines()[:3] == [
        "environment variables (default in brackets):",
        "  TOY_WAIT    How long to wait. [5m]",
        "  TOY_SIZE    [1MiB]",
    ]
    assert command_line("toy", "A toy.", ToySettings, "eh-runtime").epilog == text
