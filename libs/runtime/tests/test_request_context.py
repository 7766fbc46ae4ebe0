"""The request context: failures a client cannot fix get a stable code and the request id, and
the HTTP metrics label each request with its route template, whatever kind of route served it."""

import httpx
from fastapi import APIRouter, FastAPI, HTTPException
from prometheus_client import REGISTRY
from starlette.responses import PlainTextResponse

from eh_runtime.request_context import RequestContextMiddleware
from eh_runtime.service import Service
from eh_runtime.settings import ServiceSettings


def failing_app() -> object:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail: nats://user:password@host")

    return Service("test", ServiceSettings()).create_app(title="test", routers=[router])


async def test_an_unexpected_error_is_a_500_with_the_request_id_and_no_details():
    transport = httpx.ASGITransport(app=failing_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom", headers={"x-request-id": "req-42"})
        generated = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-42"
    assert response.json() == {
        "detail": "internal error; quote the request id when reporting it",
        "code": "internal_error",
        "request_id": "req-42",
    }
    assert "secret" not in response.text
    assert generated.json()["request_id"] == generated.headers["x-request-id"]
    assert len(generated.headers["x-request-id"]) == 32


def requests_counted(route: str, status: str) -> float:
    labels = {"route": route, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("eventhandler_http_requests_total", labels) or 0.0


async def test_fastapi_routes_plain_starlette_routes_and_docs_are_labelled_with_their_template():
    router = APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)
    app.include_router(router)
    app.add_route("/plain", lambda _request: PlainTextResponse("plain"))
    routes = ("/items/{item_id}", "/plain", "/docs", "/openapi.json")
    before = {route: requests_counted(route, "200") for route in routes}
    unmatched = requests_counted("unmatched", "404")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        for path in ("/items/1", "/items/2", "/plain", "/docs", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/nothing/here")).status_code == 404
    assert requests_counted("/items/{item_id}", "200") == before["/items/{item_id}"] + 2
    for route in routes[1:]:
        assert requests_counted(route, "200") == before[route] + 1, route
    assert requests_counted("unmatched", "404") == unmatched + 1


async def test_a_503_says_unavailable_with_the_request_id():

    router = APIRouter()

    @router.get("/away")
    async def away() -> None:
        raise HTTPException(503, "event store unavailable; retry shortly", headers={"Retry-After": "1"})

    app = Service("test", ServiceSettings()).create_app(title="test", routers=[router])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/away")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "event store unavailable; retry shortly",
        "code": "unavailable",
        "request_id": response.headers["x-request-id"],
    }
    assert response.headers["retry-after"] == "1"
