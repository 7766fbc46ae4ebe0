"""`DetachedResponseMiddleware`: a long-lived response runs after the app below has returned."""

import asyncio
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from eh_devtools.sse_client import next_event, read_sse
from sse_edge.http import detached_response
from sse_edge.http.detached_response import DetachedResponseMiddleware, hand_over


class Stream:
    def __init__(self) -> None:
        self.ran_in: list[str] = []
        self.abandoned = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.ran_in.append(scope["note"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"streamed"})

    def abandon(self) -> None:
        self.abandoned = True


async def call(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http_scope() -> dict[str, Any]:
    return {"type": "http", "note": "outer"}


async def test_the_stream_runs_once_the_app_below_has_returned_with_the_outer_scope():
    stream = Stream()
    returned = False

    async def app(scope: Scope, _receive: Receive, _send: Send) -> None:
        nonlocal returned
        scope["note"] = "inner"  # what the layers below add stays with them ...
        scope["route"] = "the route"  # ... but the route is read back by the middleware above
        assert hand_over(scope, stream)
        returned = True

    scope = http_scope()
    sent = await call(DetachedResponseMiddleware(app), scope)
    assert returned
    assert stream.ran_in == ["outer"]
    assert sent[-1]["body"] == b"streamed"
    assert scope["route"] == "the route"


async def test_a_failure_after_the_hand_over_abandons_the_stream():
    stream = Stream()

    async def app(scope: Scope, _receive: Receive, _send: Send) -> None:
        assert hand_over(scope, stream)
        raise RuntimeError("a dependency's teardown failed")

    with pytest.raises(RuntimeError):
        await call(DetachedResponseMiddleware(app), http_scope())
    assert stream.abandoned
    assert stream.ran_in == []


def test_without_the_middleware_there_is_no_hand_over():
    assert not hand_over(http_scope(), Stream())


@pytest.mark.nats
async def test_an_open_event_stream_holds_no_fastapi_frames(edge):
    """The point of the hand-over: an idle stream keeps none of FastAPI's layers alive, and its
    writer runs in a task of its own, so that waking it for a write resumes no middleware frame."""
    async with edge.stream("GET", "/api/v1/events") as response:
        messages = read_sse(response)
        assert (await asyncio.wait_for(next_event(messages), 5)).event == "stream.ready"
        stacks = [_awaited_frames(task) for task in asyncio.all_tasks()]
        (writer,) = [stack for stack in stacks if "_pump" in [name for name, _ in stack]]
        files = [file for _, file in writer]
        assert all("/sse_edge/" in file for file in files), files
        # The request's own task waits for the writer in the middleware: FastAPI's router, route
        # handler, exit stacks and exception layers have returned.
        (request,) = [stack for stack in stacks if stack and stack[-1][1] == detached_response.__file__]
        assert "_pump" not in [name for name, _ in request]


def _awaited_frames(task: asyncio.Task[Any]) -> list[tuple[str, str]]:
    """(function, file) of every coroutine the task is suspended in, outermost first."""
    frames = []
    awaited: Any = task.get_coro()
    while awaited is not None and getattr(awaited, "cr_frame", None) is not None:
        code = awaited.cr_frame.f_code
        frames.append((code.co_name, code.co_filename))
        awaited = awaited.cr_await
    return frames
