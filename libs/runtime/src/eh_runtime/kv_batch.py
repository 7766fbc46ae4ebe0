"""Writing several keys of a key-value bucket at once: all of them or none, optionally fenced.

One JetStream atomic batch (nats-server 2.12+, ADR-50) carries every write: the server stores
the whole batch when the commit message arrives, or nothing. A write may expect a revision of its
key (`Nats-Expected-Last-Subject-Sequence`); when any expectation fails, nothing of the batch is
stored. That makes "state plus the position it belongs to" one step, and the expected revision
of a single well-known key fences out a writer that no longer owns the state.

Only the commit message waits for a reply, so a batch costs one round trip whatever its size.
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import Header

from eh_runtime.atomic_batch import ATOMIC_BATCH_MAX, BatchRejected

MAX_BATCH_WRITES: Final = ATOMIC_BATCH_MAX
REMOVAL_MARKER_TTL: Final = "60s"
"""A removed key leaves a purge marker (it replaces the key's value); the marker expires after this,
so keys that existed once do not accumulate in the bucket forever."""


@dataclass(frozen=True, slots=True)
class KeyWrite:
    """Set `key` to `value`, or remove it when `value` is None.

    `expected_revision`: the key's current revision must be this (0: the key has never been
    written, or its removal marker expired), or the whole batch is refused.
    """

    key: str
    value: bytes | None
    expected_revision: int | None = None


async def enable_atomic_batches(js: JetStreamContext, bucket: str) -> None:
    """Allow atomic batches (and per-message TTLs) on the bucket's stream; idempotent."""
    info = await js.stream_info(f"KV_{bucket}")
    config = info.config
    if config.allow_atomic and config.allow_msg_ttl:
        return
    config.allow_atomic = True
    config.allow_msg_ttl = True
    await js.update_stream(config)


async def write_atomically(client: Client, bucket: str, writes: Sequence[KeyWrite], timeout: float) -> int:
    """Store every write of `writes` in `bucket`, or none of them.

    Returns:
        The revision of the last write (its stream sequence).

    Raises:
        ValueError: for no writes, or more than `MAX_BATCH_WRITES`.
        BatchRejected: JetStream refused the batch (`wrong_revision` when an expectation failed).
        TimeoutError / nats errors: no answer; whether the batch was stored is then unknown.
    """
    if not 0 < len(writes) <= MAX_BATCH_WRITES:
        raise ValueError(f"an atomic batch holds 1 to {MAX_BATCH_WRITES} writes, not {len(writes)}")
    batch_id = uuid.uuid4().hex
    last = len(writes)
    for number, write in enumerate(writes, start=1):
        headers = {Header.BATCH_ID.value: batch_id, Header.BATCH_SEQUENCE.value: str(number)}
        if write.expected_revision is not None:
            headers[Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value] = str(write.expected_revision)
        if write.value is None:
            headers["KV-Operation"] = "PURGE"
            headers[Header.ROLLUP.value] = "sub"
            headers[Header.MSG_TTL.value] = REMOVAL_MARKER_TTL
        subject = f"$KV.{bucket}.{write.key}"
        payload = write.value or b""
        if number < last:
            await client.publish(subject, payload, headers=headers)
            continue
        headers[Header.BATCH_COMMIT.value] = "1"
        reply = await client.request(subject, payload, timeout=timeout, headers=headers)
    answer = json.loads(reply.data)
    error = answer.get("error")
    if error:
        code = error.get("err_code")
        raise BatchRejected(code if isinstance(code, int) else None, str(error.get("description", error)))
    return int(answer["seq"])
