"""What each service runs, listens on, serves and reads, taken from the code itself.

The deployment files (Dockerfile, compose.yaml, k8s/) are checked against these facts, so that a
setting, port or route that a service adds, renames or drops is reflected there or a test fails.
"""

import asyncio
import contextlib
import importlib
import inspect
import os
import pkgutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

import httpx
from fastapi import FastAPI
from pydantic_settings import BaseSettings

from eh_devtools.stack import SERVICES
from eh_runtime.settings import ServiceSettings, load_settings, settings_variables


@dataclass(frozen=True)
class ServiceFacts:
    """One service: `name` is its image target, Deployment, compose service and console script."""

    name: str
    module: str
    settings_class: type[ServiceSettings]

    def app(self) -> FastAPI:
        factory = importlib.import_module(f"{self.module}.app").create_app
        app: FastAPI = factory(self.settings_class())
        return app

    def status_of(self, path: str) -> int:
        """The status of `GET path` on a fresh app that is not connected to NATS (not started).

        404 or 405 means the service does not serve that path; /readyz answers 503 (no NATS).
        """

        async def get() -> int:
            transport = httpx.ASGITransport(app=self.app())
            async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
                return (await client.get(path)).status_code

        return asyncio.run(get())

    def settings(self, environment: Mapping[str, str]) -> ServiceSettings:
        """The settings the service starts with when `environment` is all it has."""
        with _only_environment(environment):
            return load_settings(self.settings_class)

    def variables(self, arguments: Sequence[str] = ()) -> frozenset[str]:
        """The variables `python -m <module> [arguments]` reads.

        A sub-command (`python -m collector agent`) reads the settings classes of the package whose
        prefix is the sub-command's (`AGENT_*`), not the service's.
        """
        if not arguments:
            return variables_read(self.settings_class)
        prefix = f"{arguments[0].upper().replace('-', '_')}_"
        found: set[str] = set()
        for cls in settings_classes(importlib.import_module(self.module)):
            if str(cls.model_config.get("env_prefix", "")) == prefix:
                found |= variables_read(cls)
        return frozenset(found)


def service_facts() -> dict[str, ServiceFacts]:
    """Every service of the suite, by name (`sse-edge`, `collector`, `alert-evaluator`)."""
    return {spec.name: _facts(spec.name, spec.module) for spec in SERVICES}


def variables_read(cls: type[BaseSettings]) -> frozenset[str]:
    """Every environment variable `cls` reads, including those of its nested groups (`NATS_*`, …)."""
    return frozenset(variable.name for variable in settings_variables(cls))


def settings_classes(package: ModuleType) -> list[type[BaseSettings]]:
    """The settings classes defined in `package` and its modules."""
    modules = [package]
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        modules.append(importlib.import_module(info.name))
    return [
        obj
        for module in modules
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseSettings) and obj.__module__ == module.__name__
    ]


def _facts(name: str, module: str) -> ServiceFacts:
    package = importlib.import_module(module)
    candidates = [
        cls
        for cls in settings_classes(package)
        if issubclass(cls, ServiceSettings) and cls is not ServiceSettings
    ]
    if len(candidates) != 1:
        raise LookupError(f"{module}: expected one ServiceSettings subclass, found {candidates}")
    return ServiceFacts(name=name, module=module, settings_class=candidates[0])


@contextlib.contextmanager
def _only_environment(environment: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environment)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
