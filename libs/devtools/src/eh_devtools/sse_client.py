"""A small, exact SSE reader for tests: it keeps what a browser's EventSource would see, and more.

Comments (heartbeats) and `retry:` fields are kept too, because tests assert on them.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SseMessage:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)

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
        return message
    raise EOFError("the stream ended")
