"""The SSE wire format: frames built once per event, as bytes, shared by every client.

```
id: <JetStream stream sequence>
event: <event type>
data: <envelope JSON, one line>
```
Control events (`stream.*`) carry no `id:`, so they never move a client's Last-Event-ID.
"""

import json
from collections.abc import Iterable
from typing import Any, Final

# The lines between a frame's id and its data, per event type: made once, not per event. Types
# come from stored subjects, which anyone with publish rights chooses: the cache stops growing.
_HEADS: dict[str, bytes] = {}
_HEADS_MAX: Final = 1024


def event_frame(seq: int, event_type: str, data: bytes) -> bytes:
    """The frame of a stored event; `data` is forwarded as stored, not re-serialized.

    Once per event on the live feed (0.2 µs, against 0.53 µs with the `event:` line encoded each
    time and the line breaks searched for as bytes).
    """
    head = _HEADS.get(event_type)
    if head is None:
        head = b"\nevent: %s\ndata: " % event_type.encode()
        if len(_HEADS) < _HEADS_MAX:
            _HEADS[event_type] = head
    if 10 in data or 13 in data:  # b"\n" or b"\r"; an int is found ~8x quicker than bytes
        # The collector stores one-line JSON; anything else must not break the framing.
        data = b"\ndata: ".join(data.splitlines())
    return b"id: %d%s%s\n\n" % (seq, head, data)


class BurstFrames:
    """`event_frame` for many stored events at once, as one chunk: the replay's hot path.

    Takes (stream sequence in decimal, subject, stored bytes) as the history read hands them over;
    the `event:` line is made once per subject, not once per event.
    """

    def __init__(self) -> None:
        self._heads: dict[str, bytes] = {}

    def __call__(self, events: Iterable[tuple[str, str, bytes]]) -> bytes:
        heads = self._heads
        parts: list[bytes] = []
        add = parts.extend  # the pieces of every frame, joined once: each event is copied once
        for seq, subject, data in events:
            head = heads.get(subject)
            if head is None:
                head = heads[subject] = b"\nevent: %s\ndata: " % subject.split(".", 2)[1].encode()
            if 10 in data or 13 in data:  # b"\n" or b"\r"; an int is found ~8x quicker than bytes
                parts.append(event_frame(int(seq), subject.split(".", 2)[1], data))
            else:
                add((b"id: ", seq.encode(), head, data, b"\n\n"))
        return b"".join(parts)


def control_frame(name: str, payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return b"event: %s\ndata: %s\n\n" % (name.encode(), data)


def retry_frame(milliseconds: int) -> bytes:
    return b"retry: %d\n\n" % milliseconds


HEARTBEAT_FRAME = b": heartbeat\n\n"
