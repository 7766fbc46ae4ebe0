"""The obvious SSE server, the baseline of bench_fanout.py: one NATS consumer per client.

Each `GET /api/v1/events` gets its own nats-py ordered push consumer on the EVENTS stream (new
events only, the client's filter as the consumer's subject filter, so the server does the
filtering), and every message becomes one `ServerSentEvent` that sse-starlette writes on its
own: one socket write per event. One NATS connection for the process. Same URL, query and
frames (`id: <stream seq>`, `event:`, `data: <stored envelope>`) as the edge, opening with a
`retry:` hint and a `stream.ready` control event, so the same load client measures both.

    python bench/fanout_baseline.py --port 8001 --nats-url nats://127.0.0.1:4222
"""

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import nats
import uvicorn
from nats.aio.client import Client
from nats.js.api import DeliverPolicy
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

STREAM = "EVENTS"


def values(request: Request, name: str) -> list[str]:
    return [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]


def filter_subject(types: list[str], resources: list[str]) -> str:
    """The one subject filter of this client's consumer (the baseline takes one value per filter)."""
    if len(types) > 1 or len(resources) > 1:
        raise ValueError("the baseline server takes at most one type and one resource_id")
    return f"events.{types[0] if types else '*'}.{resources[0] if resources else '*'}"


def create_app(nats_url: str) -> Starlette:
    state: dict[str, Client] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        state["nc"] = await nats.connect(nats_url, pending_size=64 * 2**20)
        yield
        await state["nc"].close()

    async def readyz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def events(request: Request) -> Response:
        try:
            subject = filter_subject(values(request, "type"), values(request, "resource_id"))
        except ValueError as error:
            return PlainTextResponse(str(error), status_code=400)
        if subject == "events.*.*":
            subject = "events.>"
        queue: asyncio.Queue[ServerSentEvent] = asyncio.Queue()

        async def on_message(msg: nats.aio.msg.Msg) -> None:
            seq = msg.metadata.sequence.stream
            event_type = msg.subject.split(".", 2)[1]
            queue.put_nowait(ServerSentEvent(data=msg.data.decode(), event=event_type, id=str(seq)))

        js = state["nc"].jetstream()
        subscription = await js.subscribe(
            subject, stream=STREAM, cb=on_message, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )

        async def stream() -> AsyncIterator[ServerSentEvent | dict[str, object]]:
            try:
                yield ServerSentEvent(retry=3000)
                yield ServerSentEvent(data=json.dumps({"filter": subject}), event="stream.ready")
                while True:
                    yield await queue.get()
            finally:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()

        return EventSourceResponse(
            stream(),
            sep="\n",
            ping=15,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return Starlette(
        routes=[Route("/readyz", readyz), Route("/api/v1/events", events)],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--nats-url", required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.nats_url),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
