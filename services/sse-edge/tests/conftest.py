from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from eh_devtools.pytest_plugin import serving
from eh_runtime.settings import NatsSettings
from sse_edge.app import create_app
from sse_edge.settings import EdgeSettings


def settings_for(nats_url: str, **overrides: Any) -> EdgeSettings:
    return EdgeSettings(nats=NatsSettings(url=nats_url, reconnect_wait=0.05), **overrides)


@pytest.fixture
def edge_settings() -> Callable[..., EdgeSettings]:
    return settings_for


@pytest.fixture
def edge_app(nats_url: str) -> FastAPI:
    return create_app(settings_for(nats_url))


@pytest.fixture
async def edge(edge_app: FastAPI, events_stream) -> AsyncIterator[httpx.AsyncClient]:
    """A running edge; the stream is provisioned first, as the collector would in production."""
    async with serving(edge_app) as client:
        yield client
