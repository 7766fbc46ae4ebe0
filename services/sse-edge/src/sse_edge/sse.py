"""The SSE wire format: frames built once per event, as bytes, shared by every client.

```
id: <JetStream stream sequence>
event: <event type>
data: <envelope JSON, one line>
```
Control events (`stream.*`) carry no `id:`, so they never move a client's Last-Event-ID.
"""

import json
from typing import Any


def event_frame(seq: int, event_type: str, data: bytes) -> bytes:
    """The frame of a stored event; `data` is forwarded as stored, not re-serialized."""
    if b"\n" in data or b"\r" in data:
        # The collector stores one-line JSON; anything else must not break the framing.
        data = b"\ndata: ".join(data.splitlines())
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, event_type.encode(), data)


def control_frame(name: str, payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return b"event: %s\ndata: %s\n\n" % (name.encode(), data)


def retry_frame(milliseconds: int) -> bytes:
    return b"retry: %d\n\n" % milliseconds


HEARTBEAT_FRAME = b": heartbeat\n\n"
