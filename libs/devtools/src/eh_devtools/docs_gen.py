"""The parts of the documentation that are generated from the code, never written by hand.

- the configuration reference, from the pydantic-settings classes (`eh_runtime.settings` and each
  service's settings classes): variable, default, meaning (the field's `description`);
- each service's OpenAPI document (`create_app(settings).openapi()`, no server) and its route list;
- the metrics reference, from the Prometheus metric objects the modules define.

`mkdocs build` calls these through `eh_devtools.mkdocs_hooks`; `python -m eh_devtools.docs_gen
configuration|metrics|routes` prints one of them. A setting without a description, or a default
that cannot be shown, stops the build with the field named: the reference has no blank line.
"""

import importlib
import inspect
import json
import pkgutil
import sys
import typing
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import annotated_types
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from pydantic import ByteSize
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from eh_devtools.service_catalog import ServiceFacts, service_facts, settings_classes
from eh_runtime.settings import (
    SHARED_GROUPS,
    duration_text,
    size_text,
    variable_name,
)

_NAMESPACE: Final = "eventhandler_"


class DocsGenerationError(Exception):
    """The code lacks something the reference needs (a description, a printable default)."""


# --- configuration -------------------------------------------------------------------------


def configuration_markdown() -> str:
    """The configuration reference: one table per settings class, shared groups first."""
    problems: list[str] = []
    sections = ["## Shared by every service", ""]
    for group in SHARED_GROUPS:
        sections += [f"### `{_prefix(group)}*`", "", _first_paragraph(group), ""]
        sections += _settings_table(group, problems)
    for facts in service_facts().values():
        sections += [f"## {facts.name}", ""]
        for cls in _service_settings_classes(facts):
            title = f"`{_prefix(cls)}*`"
            if cls is not facts.settings_class:
                title += f" ({cls.__module__})"
            sections += [f"### {title}", "", _first_paragraph(cls), ""]
            sections += _settings_table(cls, problems)
    if problems:
        raise DocsGenerationError(
            "the configuration reference cannot be generated:\n" + "\n".join(f"  {p}" for p in problems)
        )
    return "\n".join(sections)


def _service_settings_classes(facts: ServiceFacts) -> list[type[BaseSettings]]:
    """The service's own class first, then the other classes of its package (sub-commands)."""
    others = [
        cls
        for cls in settings_classes(importlib.import_module(facts.module))
        if cls is not facts.settings_class
    ]
    return [facts.settings_class, *sorted(others, key=lambda cls: cls.__qualname__)]


def _prefix(cls: type[BaseSettings]) -> str:
    return str(cls.model_config.get("env_prefix", ""))


def _first_paragraph(cls: type) -> str:
    # The class's own docstring only: an undocumented class would show BaseSettings' one.
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    return " ".join(doc.split("\n\n", 1)[0].split())


def _settings_table(cls: type[BaseSettings], problems: list[str]) -> list[str]:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in cls.model_fields.items():
        if inspect.isclass(field.annotation) and issubclass(field.annotation, BaseSettings):
            if field.annotation not in SHARED_GROUPS:
                problems.append(f"{cls.__qualname__}.{name}: a nested group that is not a shared one")
            continue
        variable = _variable(cls, name, field)
        if not field.description:
            problems.append(f"{variable} ({cls.__qualname__}.{name}): no description= in its Field")
        try:
            default = _default_text(cls, field)
        except DocsGenerationError as error:
            problems.append(f"{variable} ({cls.__qualname__}.{name}): {error}")
            default = ""
        meaning = " ".join((field.description or "").split()) + _constraints_text(field)
        rows.append(f"| `{variable}` | {default} | {_cell(meaning)} |")
    return [*rows, ""]


def _variable(cls: type[BaseSettings], name: str, field: FieldInfo) -> str:
    return variable_name(_prefix(cls), name, field)


def _default_text(cls: type[BaseSettings], field: FieldInfo) -> str:
    if field.default_factory is not None:
        doc = inspect.getdoc(field.default_factory)
        if not doc:
            raise DocsGenerationError("its default_factory has no docstring to describe the default")
        return _cell(doc.split("\n\n", 1)[0].replace("\n", " "))
    value = field.default
    if value is PydanticUndefined:
        return "(required)"
    return f"`{format_value(value, cls)}`" if value is not None else "unset"


def format_value(value: Any, owner: type | None = None) -> str:
    """A default as a user writes it in the environment: `30d`, `10GiB`, `true`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, ByteSize):
        return size_text(int(value))
    if isinstance(value, Path) and value.is_absolute() and owner is not None:
        package_dir = Path(inspect.getfile(owner)).parent
        try:
            return f"{package_dir.name}/{value.relative_to(package_dir)} (packaged)"
        except ValueError as error:
            raise DocsGenerationError(f"an absolute default path outside its package: {value}") from error
    return str(value)


def _constraints_text(field: FieldInfo) -> str:
    choices = _literal_choices(field.annotation)
    if choices:
        return " One of " + ", ".join(f"`{c}`" for c in choices) + "."
    low = next((m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, annotated_types.Le)), None)
    if low is not None and high is not None:
        return f" From {low} to {high}."
    if low is not None:
        return f" At least {low}."
    return ""


def _literal_choices(annotation: Any) -> list[str]:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(arg) for arg in typing.get_args(annotation)]
    return []


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# --- HTTP: OpenAPI --------------------------------------------------------------------------


def openapi_documents() -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI document, by service name, from an app that is built, not started."""
    return {name: facts.app().openapi() for name, facts in service_facts().items()}


def routes_markdown(name: str, document: dict[str, Any]) -> str:
    """The routes of one OpenAPI document as a table: method, path, summary."""
    rows = [f"### {name}", "", "| method | path | summary |", "| --- | --- | --- |"]
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            summary = operation.get("summary") or operation.get("description", "").split("\n")[0]
            rows.append(f"| {method.upper()} | `{path}` | {_cell(summary)} |")
    return "\n".join([*rows, ""])


# --- metrics --------------------------------------------------------------------------------

_EXPOSED_SUFFIXES: Final[dict[str, tuple[str, str]]] = {
    # metric type → (suffix of the name in the exposition's TYPE line, the samples it has)
    "counter": ("_total", "`<name>`"),
    "gauge": ("", "`<name>`"),
    "histogram": ("", "`<name>_bucket`, `<name>_sum`, `<name>_count`"),
    "summary": ("", "`<name>`, `<name>_sum`, `<name>_count`"),
    "info": ("_info", "`<name>`"),
}


def metric_families(package: str) -> list[Metric]:
    """The Prometheus metric families that the modules of `package` define, in name order.

    Both kinds a module can define: metric objects (`Counter(...)`), described without their
    samples, and custom collectors (an object whose `collect()` builds families at scrape time).
    """
    found: dict[str, Metric] = {}
    for module in _modules(importlib.import_module(package)):
        for value in vars(module).values():
            for family in _families_of(value):
                found[family.name] = family
    return sorted(found.values(), key=lambda family: family.name)


def _families_of(value: object) -> list[Metric]:
    if isinstance(value, MetricWrapperBase):
        return list(value.describe())
    if isinstance(value, CollectorRegistry):  # every metric of the process, not this module's
        return []
    if inspect.isclass(value) or inspect.ismodule(value) or inspect.isroutine(value):
        return []
    collect = getattr(value, "collect", None)
    if not callable(collect):
        return []
    try:
        families = list(collect())
    except Exception:  # not a collector: something else with a method of that name
        return []
    return families if families and all(isinstance(f, Metric) for f in families) else []


def exposed_name(family: Metric) -> str:
    """The name Prometheus sees in the TYPE line: a counter `x` is exposed as `x_total`."""
    return f"{family.name}{_EXPOSED_SUFFIXES[family.type][0]}"


def metrics_markdown() -> str:
    """The metrics reference: one table per package that defines metrics."""
    packages = {"Every service (eh_runtime)": "eh_runtime"} | {
        facts.name: facts.module for facts in service_facts().values()
    }
    sections: list[str] = []
    for title, package in packages.items():
        families = [f for f in metric_families(package) if f.name.startswith(_NAMESPACE)]
        if not families:
            continue
        sections += [f"## {title}", "", "| name | type | meaning |", "| --- | --- | --- |"]
        for family in families:
            samples = _EXPOSED_SUFFIXES[family.type][1].replace("<name>", exposed_name(family))
            kind = family.type if family.type != "histogram" else f"histogram ({samples})"
            sections.append(f"| `{exposed_name(family)}` | {kind} | {_cell(family.documentation)} |")
        sections.append("")
    return "\n".join(sections)


def _modules(package: ModuleType) -> Iterator[ModuleType]:
    yield package
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if not info.name.rsplit(".", 1)[-1].startswith("__"):
            yield importlib.import_module(info.name)


# --- command line ---------------------------------------------------------------------------


def _print_routes() -> str:
    return "\n".join(routes_markdown(n, d) for n, d in openapi_documents().items())


_COMMANDS: Final[dict[str, Callable[[], str]]] = {
    "configuration": configuration_markdown,
    "metrics": metrics_markdown,
    "routes": _print_routes,
    "openapi": lambda: json.dumps(openapi_documents(), indent=2),
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in _COMMANDS:
        print(f"usage: python -m eh_devtools.docs_gen {{{'|'.join(_COMMANDS)}}}", file=sys.stderr)
        return 2
    try:
        print(_COMMANDS[argv[0]]())
    except DocsGenerationError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
