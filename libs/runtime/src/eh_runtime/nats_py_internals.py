"""The one place that goes under nats-py: whole HPUB frames handed to the client's outgoing buffer.

nats-py's public `Client.publish` encodes one message per call: it validates the subject, encodes
a headers dict line by line, counts statistics, appends the frame to the outgoing buffer and kicks
the flusher. An atomic batch of 1,000 messages (`eh_runtime.jetstream`) instead builds its frames
from bytes templates (every subject and header value was validated before: subject tokens, event
ids without control characters) and appends them as one command, which the client's flusher writes
with one socket call. `bench/bench_batch_frames.py` measures both ways on the same batches; the
figure is in `bench/RESULTS.md` ("Atomic batch frames").

What this relies on, checked against the real server by `libs/runtime/tests/test_nats_py_internals.py`
for the nats-py versions pinned in `libs/runtime/pyproject.toml`:
- `Client._send_command(bytes)` is a coroutine that appends raw protocol bytes to the outgoing
  buffer (the same buffer `publish` uses, so ordering with other publishes holds);
- `Client._flush_pending()` is a coroutine that makes the flusher write that buffer;
- the server's HPUB frame: `HPUB <subject> [reply] <header bytes> <total bytes>`, then the
  `NATS/1.0` header block and the payload (NATS client protocol, stable since nats-server 2.2).
"""

from typing import Final

from nats.aio.client import Client

SUPPORTED_NATS_PY: Final = ">=2.16,<2.17"
"""The nats-py versions this module is tested with; the same range is pinned in pyproject.toml."""

HEADER_BLOCK_START: Final = b"NATS/1.0\r\n"


def hpub_frame(subject: bytes, reply: bytes, header_lines: bytes, payload: bytes) -> bytes:
    """One HPUB frame; `header_lines` are `Name: value\\r\\n` lines, `reply` may be empty."""
    headers = b"%s%s\r\n" % (HEADER_BLOCK_START, header_lines)
    return b"HPUB %s%s %d %d\r\n%s%s\r\n" % (
        subject,
        b" " + reply if reply else b"",
        len(headers),
        len(headers) + len(payload),
        headers,
        payload,
    )


async def send_frames(client: Client, frames: bytes) -> None:
    """Queue `frames` (complete protocol frames) as one command and have the client write them."""
    await client._send_command(frames)
    await client._flush_pending()
