"""A small, exact SSE reader for tests: it keeps what a browser's EventSource would see, and more.

Comments (heartbeats) and `retry:` fields are kept too, because tests assert on them.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from eh_contracts.stream_control import CONTROL_EVENTS


@dataclass
class SseMessage:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)

    def check_control(self) -> None:
        """Raise unless a `stream.*` message matches its documented schema (eh_contracts)."""
        if self.event.startswith("stream."):
            CONTROL_EVENTS[self.event].model_validate_json(self.data)

    @property
    def is_comment_only(self) -> bool:
        return bool(self.comments) and not self.data and self.retry is None and self.event == "message"


async def read_sse(response: httpx.Response) -> AsyncIterator[SseMessage]:
    """Yield each message (or comment / retry-only block) of an open SSE response, in order."""
    current = SseMessage()
    data_lines: list[str] = []
    touched = False
    async for line in response.aiter_lines():
        if line == "":
            if touched:
                current.data = "\n".join(data_lines)
                yield current
            current, data_lines, touched = SseMessage(), [], False
            continue
        touched = True
        if line.startswith(":"):
            current.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data_lines.append(value)
        elif name == "event":
            current.event = value
        elif name == "id":
            current.id = value
        elif name == "retry" and value.isdigit():
            current.retry = int(value)


async def next_event(messages: AsyncIterator[SseMessage], *, skip_comments: bool = True) -> SseMessage:
    """The next message that carries an event (heartbeats and bare retry hints skipped)."""
    async for message in messages:
        if skip_comments and (message.is_comment_only or (message.retry is not None and not message.data)):
            continue
        # Tests read streams through here: every control event is checked against its contract.
        message.check_control()
        return message
    raise EOFError("the stream ended")
