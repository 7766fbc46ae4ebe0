"""README.md stays true: every variable the settings read is documented, and nothing else is."""

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from alert_evaluator.settings import EvaluatorSettings
from collector.agent.settings import AgentSettings
from collector.settings import CollectorSettings
from eh_runtime.settings import LoggingSettings, NatsSettings, StreamSettings
from sse_edge.settings import EdgeSettings

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
GROUPS = (NatsSettings, StreamSettings, LoggingSettings)
# Read by `make run`'s supervisor, not by a settings class.
STACK_VARIABLES = {"NATS_PORT", "NATS_MONITOR_PORT", "NATS_SYNC_INTERVAL", "DATA_DIR", "AGENT"}


def variables(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    return {
        f"{prefix}{name}".upper()
        for name, field in cls.model_fields.items()
        if field.annotation not in GROUPS
    }


def all_variables() -> set[str]:
    found: set[str] = set()
    for cls in (*GROUPS, CollectorSettings, AgentSettings, EdgeSettings, EvaluatorSettings):
        found |= variables(cls)
    return found


def test_every_setting_is_in_the_readme():
    missing = sorted(v for v in all_variables() if f"`{v}`" not in README)
    assert missing == []


def test_the_readme_documents_no_variable_that_nothing_reads():
    configuration = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`", configuration))
    assert sorted(documented - all_variables() - STACK_VARIABLES) == []


def test_the_readme_names_every_control_event_the_edge_sends():
    source = "".join(
        p.read_text() for p in (Path(__file__).parents[1] / "services/sse-edge/src/sse_edge").glob("*.py")
    )
    for name in set(re.findall(r'"(stream\.[a-z_]+)"', source)):
        assert f"`{name}`" in README, name
