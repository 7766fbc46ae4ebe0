"""Every service: /healthz, /readyz that follows NATS, /metrics, and a clean shutdown."""

import asyncio
from collections.abc import Callable

import pytest
from fastapi import FastAPI

from alert_evaluator.app import create_app as create_evaluator
from alert_evaluator.settings import EvaluatorSettings
from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_devtools.pytest_plugin import serving
from eh_runtime.settings import NatsSettings
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

pytestmark = pytest.mark.nats


def collector(url: str) -> FastAPI:
    return create_collector(CollectorSettings(nats=NatsSettings(url=url, reconnect_wait=0.05)))


def edge(url: str) -> FastAPI:
    return create_edge(EdgeSettings(nats=NatsSettings(url=url, reconnect_wait=0.05)))


def evaluator(url: str) -> FastAPI:
    return create_evaluator(EvaluatorSettings(nats=NatsSettings(url=url, reconnect_wait=0.05)))


SERVICES: dict[str, Callable[[str], FastAPI]] = {
    "collector": collector,
    "sse-edge": edge,
    "alert-evaluator": evaluator,
}


async def wait_for_status(client, path: str, status: int, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(path)
        if response.status_code == status or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.05)


@pytest.fixture(params=sorted(SERVICES))
def service_name(request) -> str:
    return request.param


@pytest.mark.own_server
async def test_readyz_follows_nats_and_healthz_does_not(service_name, nats_server, events_stream):
    app = SERVICES[service_name](nats_server.url)
    async with serving(app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert set(ready.json()["checks"].values()) == {"ok"}

        nats_server.stop()
        down = await wait_for_status(client, "/readyz", 503)
        assert down.status_code == 503
        # The stream check may time out before the client notices the lost connection; soon the
        # nats check says so too.
        deadline = asyncio.get_running_loop().time() + 15
        while not down.json()["checks"]["nats"].startswith("not connected"):
            assert asyncio.get_running_loop().time() < deadline, down.json()
            await asyncio.sleep(0.05)
            down = await client.get("/readyz")
            assert down.status_code == 503, down.json()
        assert (await client.get("/healthz")).status_code == 200

        nats_server.start()
        back = await wait_for_status(client, "/readyz", 200)
        assert back.status_code == 200, back.json()


async def test_readyz_is_503_while_the_stream_is_missing(nats_url):
    # No collector provisions the stream here, so the edge and evaluator cannot be ready.
    async with serving(evaluator(nats_url), ready_timeout=10) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["stream"] == "stream EVENTS does not exist"


async def test_metrics_are_prometheus_text_with_help(service_name, nats_url, events_stream):
    async with serving(SERVICES[service_name](nats_url)) as client:
        await client.get("/healthz")
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# HELP eventhandler_nats_connected" in text
    assert "eventhandler_nats_connected 1.0" in text
    assert 'eventhandler_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    # No creation-time series next to counters and histograms: they would double every scrape.
    assert "_created" not in text


async def test_every_response_carries_a_request_id(nats_url, events_stream):
    async with serving(evaluator(nats_url)) as client:
        given = await client.get("/healthz", headers={"x-request-id": "req-123"})
        made = await client.get("/healthz")
        unsafe = await client.get("/healthz", headers={"x-request-id": "bad id\twith tab"})
    assert given.headers["x-request-id"] == "req-123"
    assert len(made.headers["x-request-id"]) == 32
    assert unsafe.headers["x-request-id"] != "bad id\twith tab"


async def test_openapi_documents_the_public_routes(nats_url, events_stream):
    async with serving(collector(nats_url)) as client:
        collector_paths = (await client.get("/openapi.json")).json()["paths"]
    async with serving(edge(nats_url)) as client:
        edge_paths = (await client.get("/openapi.json")).json()["paths"]
    assert "post" in collector_paths["/api/v1/events"]
    assert "text/event-stream" in edge_paths["/api/v1/events"]["get"]["responses"]["200"]["content"]


STORE_ROUTES = {
    "collector": [("GET", "/api/v1/resources/node"), ("GET", "/api/v1/resources/node/n1")],
    "sse-edge": [("GET", "/api/v1/events/history"), ("GET", "/api/v1/events")],
}


@pytest.mark.own_server
@pytest.mark.parametrize("service", sorted(STORE_ROUTES))
async def test_nats_down_is_one_503_with_retry_after_on_every_route(service, nats_server, events_stream):
    """One exception handler, installed by the shared service code, answers every route alike."""
    async with serving(SERVICES[service](nats_server.url)) as client:
        nats_server.stop()
        await wait_for_status(client, "/readyz", 503)
        for method, path in STORE_ROUTES[service]:
            response = await client.request(method, path)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["retry-after"] == "1"
            answer = response.json()
            assert answer["code"] == "store_unavailable"
            assert answer["request_id"] == response.headers["x-request-id"]
        nats_server.start()
