"""Does writing atomic batches as hand-written frames (`eh_runtime.nats_py_internals`) still pay?

    .venv/bin/python bench/bench_batch_frames.py            # 3 rounds of 100 batches of 1,000
    .venv/bin/python bench/bench_batch_frames.py --quick    # 1 round of 20 batches

Two ways to send the same atomic batches (same events, same headers, same replies awaited) to one
`nats-server`, alternating, each on a fresh `EVENTS` stream:

- **public API** (the baseline): `Client.publish(subject, payload, reply, headers)` per message,
  as nats-py's documentation shows it;
- **frames**: `AtomicBatchSender` as shipped: bytes templates, one `_send_command` per batch.

Printed: this process's CPU time per message (the client's cost; the server runs apart) and
messages stored per second, and the ratios frames / public API.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import nats
import nats.js.errors

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.nats_server import NatsServer
from eh_runtime.jetstream import AtomicBatchSender, OutgoingMessage
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import EVENTS_STREAM, ensure_events_stream

BATCH = 1000


class PublicApiSender(AtomicBatchSender):
    """The same batches, each message written by nats-py's public `publish`."""

    async def _write(self, stream: str, messages: Sequence[OutgoingMessage], token: str) -> None:
        first_reply, commit_reply = self._reply_subjects(token)
        batch_id = uuid.uuid4().hex
        last = len(messages)
        for n, message in enumerate(messages, 1):
            headers = {
                "Nats-Batch-Id": batch_id,
                "Nats-Expected-Stream": stream,
                "Nats-Batch-Sequence": str(n),
            }
            if message.msg_id:
                headers["Nats-Msg-Id"] = message.msg_id
            if message.ttl_seconds is not None:
                headers["Nats-TTL"] = str(message.ttl_seconds)
            reply = first_reply if n == 1 and last > 1 else ""
            if n == last:
                headers["Nats-Batch-Commit"] = "1"
                reply = commit_reply
            await self._client.publish(message.subject, message.payload, reply=reply, headers=headers)


def make_messages(count: int) -> list[OutgoingMessage]:
    messages = []
    for i in range(count):
        event = SEED_EXAMPLES["node_metrics"] | {"id": str(uuid.uuid4()), "resource_id": f"n-{i % 200}"}
        payload = json.dumps(event, separators=(",", ":")).encode()
        messages.append(
            OutgoingMessage(f"events.node_metrics.n-{i % 200}", event["id"], payload, "node_metrics", 3600)
        )
    return messages


async def run(
    url: str, sender_class: type[AtomicBatchSender], messages: list[OutgoingMessage]
) -> tuple[float, float]:
    """(client CPU µs per message, messages per second)."""
    client = await nats.connect(url)
    js = client.jetstream()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(EVENTS_STREAM)
    await ensure_events_stream(js, StreamSettings())
    sender = sender_class(client)
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(messages), BATCH):
        await sender.send(EVENTS_STREAM, messages[start : start + BATCH], timeout=30)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stored = (await js.stream_info(EVENTS_STREAM)).state.messages
    await client.close()
    assert stored == len(messages), f"{sender_class.__name__} stored {stored} of {len(messages)}"
    return cpu / len(messages) * 1e6, len(messages) / wall


async def main(rounds: int, batches: int) -> None:
    logging.disable(logging.INFO)  # the stream provisioning's log line, once per run
    messages = make_messages(batches * BATCH)
    results: dict[str, list[tuple[float, float]]] = {"public API": [], "frames": []}
    with tempfile.TemporaryDirectory() as store, NatsServer(store_dir=Path(store) / "js") as server:
        await run(server.url, AtomicBatchSender, messages[:BATCH])  # warm up
        for _ in range(rounds):
            results["public API"].append(await run(server.url, PublicApiSender, messages))
            results["frames"].append(await run(server.url, AtomicBatchSender, messages))
    for name, runs in results.items():
        cpu = min(r[0] for r in runs)
        rate = max(r[1] for r in runs)
        rounds_text = ", ".join(f"{r[1]:,.0f}" for r in runs)
        print(f"{name:<11}: client CPU {cpu:6.2f} us/msg   {rate:>9,.0f} msgs/s   (rounds: {rounds_text})")
    public, frames = results["public API"], results["frames"]
    cpu_ratio = min(r[0] for r in public) / min(r[0] for r in frames)
    rate_ratio = max(r[1] for r in frames) / max(r[1] for r in public)
    print(f"ratio client CPU per message, public API / frames: {cpu_ratio:.2f}x")
    print(f"ratio messages/s, frames / public API            : {rate_ratio:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(1, 20) if args.quick else main(3, 100))
