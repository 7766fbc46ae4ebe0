"""The HTTP server's own limits, spoken to over raw sockets as a hostile client would.

These are also the contract test of `eh_runtime.uvicorn_httptools_limits`: it goes under uvicorn's
httptools protocol, and an upgrade that changes what it relies on fails here.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from eh_devtools.pytest_plugin import serving
from eh_runtime.service import Service
from eh_runtime.settings import HttpServerSettings, NatsSettings, ServiceSettings
from eh_runtime.uvicorn_httptools_limits import BoundedHttpToolsProtocol

pytestmark = pytest.mark.nats

LIMITS = HttpServerSettings(
    max_head_bytes=4096,
    max_headers=20,
    head_timeout=timedelta(seconds=0.5),
    body_timeout=timedelta(seconds=0.5),
    max_connections=40,
)


def limited_app(nats_url: str, limits: HttpServerSettings = LIMITS):
    router = APIRouter()

    @router.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @router.get("/slow-stream")
    async def slow_stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(4):
                yield f"chunk {i}\n".encode()
                await asyncio.sleep(0.4)  # the whole answer takes longer than the head timeout

        return StreamingResponse(chunks(), media_type="text/plain")

    settings = ServiceSettings(nats=NatsSettings(url=nats_url), http=limits)
    return Service("limits-test", settings).create_app(title="limits", routers=[router])


@contextlib.asynccontextmanager
async def raw_connection(
    client: httpx.AsyncClient,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    url = client.base_url
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def answer(reader: asyncio.StreamReader, timeout: float = 5) -> tuple[int, dict]:
    """Status and JSON body of the answer, read until the server closes the connection."""
    data = await asyncio.wait_for(reader.read(), timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"connection: close" in head.lower()
    return status, json.loads(body)


async def test_the_bypassed_internals_are_still_there():
    for name in (
        "data_received",
        "on_url",
        "on_header",
        "on_headers_complete",
        "on_message_complete",
        "on_message_begin",
        "on_response_complete",
        "connection_made",
        "connection_lost",
        "_unset_keepalive_if_required",
        "send_400_response",
        "_should_upgrade",
    ):
        assert callable(getattr(HttpToolsProtocol, name)), name
        if name in vars(BoundedHttpToolsProtocol):
            assert getattr(BoundedHttpToolsProtocol, name) is not getattr(HttpToolsProtocol, name)


async def test_a_header_line_that_never_ends_is_cut_off_at_the_limit(nats_url, events_stream):
    async with serving(limited_app(nats_url)) as client, raw_connection(client) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(8):  # 8 KiB of one header value, never finished
            writer.write(b"a" * 1024)
            await writer.drain()
        status, body = await answer(reader)
        assert status == 431
        assert body["code"] == "request_head_too_large"


async def test_a_long_url_is_cut_off_too(nats_url, events_stream):
    async with serving(limited_app(nats_url)) as client, raw_connection(client) as (reader, writer):
        writer.write(b"GET /healthz?" + b"q" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await answer(reader))[0] == 431


async def test_too_many_header_fields_are_a_431(nats_url, events_stream):
    async with serving(limited_app(nats_url)) as client, raw_connection(client) as (reader, writer):
        fields = b"".join(b"X-%d: 1\r\n" % i for i in range(25))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        status, body = await answer(reader)
        assert status == 431
        assert "header fields" in body["detail"]


async def test_requests_within_the_limits_are_served_and_kept_alive(nats_url, events_stream):
    async with serving(limited_app(nats_url)) as client:
        headers = {f"x-{i}": "v" * 100 for i in range(15)}
        for _ in range(3):
            assert (await client.get("/healthz", headers=headers)).status_code == 200
            await asyncio.sleep(0.3)  # less than the keep-alive and head timeouts
        assert (await client.post("/echo", content=b"x" * 100_000)).json() == {"received": 100_000}


@pytest.mark.parametrize("sent", [b"", b"G", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"])
async def test_a_head_that_does_not_arrive_in_time_is_a_408(nats_url, events_stream, sent):
    async with serving(limited_app(nats_url)) as client, raw_connection(client) as (reader, writer):
        writer.write(sent)
        status, body = await answer(reader)
        assert status == 408
        assert "request head" in body["detail"]


async def test_a_body_that_does_not_arrive_in_time_is_a_408(nats_url, events_stream):
    async with serving(limited_app(nats_url)) as client, raw_connection(client) as (reader, writer):
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        status, body = await answer(reader)
        assert status == 408
        assert "request body" in body["detail"]
        assert (await client.get("/healthz")).status_code == 200


async def test_a_long_answer_is_not_cut_by_the_head_timeout(nats_url, events_stream):
    async with serving(limited_app(nats_url)) as client:
        response = await client.get("/slow-stream")
        assert response.text.count("chunk") == 4


async def test_idle_and_partial_connections_make_room_for_new_ones(nats_url, events_stream):
    limits = LIMITS.model_copy(update={"head_timeout": timedelta(seconds=30)})
    async with serving(limited_app(nats_url, limits)) as client, contextlib.AsyncExitStack() as stack:
        loiterers = [await stack.enter_async_context(raw_connection(client)) for _ in range(60)]
        for _, writer in loiterers:
            writer.write(b"G")  # one byte each, as slowloris does
            await writer.drain()
        await asyncio.sleep(0.2)
        for _ in range(5):
            async with httpx.AsyncClient(base_url=client.base_url) as fresh:
                assert (await fresh.get("/healthz")).status_code == 200
        shed = [await answer(reader) for reader, _ in loiterers[:20]]
        assert {status for status, _ in shed} == {503}
        assert {body["code"] for _, body in shed} == {"connection_shed"}
