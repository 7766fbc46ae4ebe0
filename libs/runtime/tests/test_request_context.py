"""Failures a client cannot fix get a stable code and the request id, in the body and the header."""

import httpx
from fastapi import APIRouter

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
