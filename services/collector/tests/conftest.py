from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from collector.app import create_app
from collector.settings import CollectorSettings
from eh_devtools.pytest_plugin import serving
from eh_runtime.settings import NatsSettings


def settings_for(nats_url: str, **overrides: Any) -> CollectorSettings:
    return CollectorSettings(
        nats=NatsSettings(url=nats_url, reconnect_wait=0.05, request_timeout=2), **overrides
    )


@pytest.fixture
def collector_settings() -> Callable[..., CollectorSettings]:
    """Settings for a collector on a given NATS URL, with quick reconnects for tests."""
    return settings_for


@pytest.fixture
async def collector(nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A running collector (real uvicorn, real NATS) and an HTTP client for it."""
    async with serving(create_app(settings_for(nats_url))) as client:
        yield client
