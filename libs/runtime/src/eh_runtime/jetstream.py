"""JetStream details the services share: ack reply subjects, consumer deletion, atomic batches.

- **Ack reply subjects.** Every delivery of a consumer names its position in its reply subject.
  nats-py's `msg.metadata` parses all of it into objects (a dataclass and a datetime per message),
  a measurable share of the per-event cost on the live feed, the evaluator and ordered reads; the
  functions here take only the tokens needed.
- **Consumer deletion without waiting** for the server's answer (a probe's cost would double).
- **Atomic batch publish** (ADR-50, nats-server 2.12+): up to 1,000 messages, stored whole or not
  at all, acknowledged once. Events (`EventPublisher`) and key-value writes (`write_keys`, the
  evaluator's state plus checkpoint) both go through `AtomicBatchSender`.

Why not nats-py's `publish_async` for events: it costs the client a future, a semaphore, a reply
message and a JSON ack to parse per event, which made the client, not the server, the limit. A
batch needs two replies (an empty ack for the first message, a PubAck for the commit), and its
frames are written to the socket in one piece (`nats_py_internals`). The sequences of a committed
batch are contiguous, so each message's sequence follows from the commit's.
"""

import asyncio
import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from eh_runtime.nats_py_internals import hpub_frame, send_frames

# --- ack reply subjects -----------------------------------------------------------------------------
#
# v1: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` (9 tokens);
# v2: `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`
#     and, from nats-server 2.10 on, a random token at the end (11 or 12 tokens).
# `reply.rsplit(".", ack_reply_splits(reply))` gives, at these indexes:
ACK_STREAM_SEQ: Final = 1
ACK_CONSUMER_SEQ: Final = 2
ACK_STORED_NS: Final = 3
ACK_PENDING: Final = 4

_ACK_PREFIX: Final = "$JS.ACK."
# The layout above as one table: an ack reply's token count -> the indexes, in `reply.split(".")`,
# of its stream sequence, stored time and pending count.
_POSITIONS: Final = {
    count: (seq_at, seq_at + ACK_STORED_NS - ACK_STREAM_SEQ, seq_at + ACK_PENDING - ACK_STREAM_SEQ)
    for count, seq_at in ((9, 5), (11, 7), (12, 7))
}


def ack_reply_splits(reply: str) -> int:
    """How many tokens, from the stream sequence on, the ack reply subject `reply` has.

    The same for every delivery of one consumer, so a reader may learn it from the first one.

    Raises:
        ValueError: `reply` is not a JetStream ack reply subject.
    """
    count = reply.count(".") + 1
    positions = _POSITIONS.get(count)
    if positions is None or not reply.startswith(_ACK_PREFIX):
        raise ValueError(f"not a JetStream ack reply subject: {reply!r}")
    return count - positions[0]


def delivery_position(reply: str) -> tuple[int, int, int]:
    """(stream sequence, stored at in epoch nanoseconds, pending count) from an ack reply subject.

    Once per event on the live feed: one split, the format told by the token count
    (`_POSITIONS`), instead of the two calls of `ack_reply_splits` and `rsplit`.

    Raises:
        ValueError: `reply` is not a JetStream ack reply subject.
    """
    tokens = reply.split(".")
    positions = _POSITIONS.get(len(tokens))
    if positions is None or tokens[0] != "$JS" or tokens[1] != "ACK":
        raise ValueError(f"not a JetStream ack reply subject: {reply!r}")
    seq_at, stored_at, pending_at = positions
    return int(tokens[seq_at]), int(tokens[stored_at]), int(tokens[pending_at])


def stream_sequence(reply: str) -> int:
    """The stream sequence of the delivery whose ack reply subject is `reply`."""
    return int(reply.rsplit(".", ack_reply_splits(reply))[ACK_STREAM_SEQ])


# --- consumers ----------------------------------------------------------------------------------


async def delete_consumer_nowait(client: Client, stream: str, consumer: str) -> None:
    """Ask the server to delete a consumer, without waiting for its answer.

    A lost request costs nothing lasting: our ephemeral consumers have an inactivity threshold.
    """
    await client.publish(f"$JS.API.CONSUMER.DELETE.{stream}.{consumer}", b"")


# --- atomic batches -----------------------------------------------------------------------------

ATOMIC_BATCH_MAX: Final = 1000
"""The server's default limit of messages in one atomic batch."""

ERR_DUPLICATE_IN_BATCH: Final = 10201
ERR_BATCH_DISABLED: Final = 10174
ERR_WRONG_LAST_SEQUENCE: Final = frozenset({10071, 10164})
"""A write's expected last sequence (a key-value revision) did not match: another writer won."""

_NO_RESPONDERS: Final = "503"

REMOVAL_MARKER_TTL_SECONDS: Final = 60
"""A removed key leaves a purge marker (it replaces the key's value); the marker expires after this,
so keys that existed once do not accumulate in the bucket forever."""


# Not frozen: a frozen dataclass's __init__ costs microseconds, and there is one per event.
@dataclass(slots=True)
class OutgoingMessage:
    """One message of a batch: where, with which id, for how long, the stored bytes.

    `header_lines`: further headers, as `Name: value\\r\\n` lines of validated values.
    """

    subject: str
    msg_id: str | None
    payload: bytes
    event_type: str = ""
    ttl_seconds: int | None = None
    header_lines: bytes = b""


@dataclass(frozen=True, slots=True)
class KeyWrite:
    """Set `key` to `value`, or remove it when `value` is None.

    `expected_revision`: the key's current revision must be this (0: the key has never been
    written, or its removal marker expired), or the whole batch is refused.
    """

    key: str
    value: bytes | None
    expected_revision: int | None = None

    def message(self, bucket: str) -> OutgoingMessage:
        lines = b""
        if self.expected_revision is not None:
            lines += b"Nats-Expected-Last-Subject-Sequence: %d\r\n" % self.expected_revision
        if self.value is None:
            lines += b"KV-Operation: PURGE\r\nNats-Rollup: sub\r\n"
        ttl = REMOVAL_MARKER_TTL_SECONDS if self.value is None else None
        return OutgoingMessage(f"$KV.{bucket}.{self.key}", None, self.value or b"", "", ttl, lines)


class BatchRejected(Exception):
    """The server refused the whole batch; `code` is JetStream's error code when it gave one."""

    def __init__(self, code: int | None, description: str) -> None:
        self.code = code
        self.description = description
        super().__init__(f"{description} (JetStream error {code})" if code else description)

    @property
    def wrong_revision(self) -> bool:
        """A write's expected revision did not match: someone else wrote that key."""
        return self.code in ERR_WRONG_LAST_SEQUENCE


async def enable_atomic_batches(js: JetStreamContext, stream: str) -> None:
    """Allow atomic batches (and per-message TTLs) on `stream`; idempotent."""
    info = await js.stream_info(stream)
    config = info.config
    if config.allow_atomic and config.allow_msg_ttl:
        return
    config.allow_atomic = True
    config.allow_msg_ttl = True
    await js.update_stream(config)


class AtomicBatchSender:
    """Sends atomic batches over one nats-py client; one reply subscription for all of them."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._inbox_prefix = ""
        self._subscription: Subscription | None = None
        self._replies: dict[str, asyncio.Future[Msg]] = {}
        self._counter = 0
        self._subscribing = asyncio.Lock()

    async def send(self, stream: str, messages: Sequence[OutgoingMessage], timeout: float) -> int:
        """Store `messages` in `stream` as one atomic batch; returns the sequence of the first one.

        Raises:
            ValueError: for no messages, or more than `ATOMIC_BATCH_MAX`.
            BatchRejected: the server refused the batch (nothing of it was stored).
            TimeoutError: no commit ack in time: the batch may or may not have been stored.
        """
        if not messages or len(messages) > ATOMIC_BATCH_MAX:
            raise ValueError(f"an atomic batch has 1 to {ATOMIC_BATCH_MAX} messages, not {len(messages)}")
        await self._subscribe()
        self._counter += 1
        token = str(self._counter)
        loop = asyncio.get_running_loop()
        first_reply: asyncio.Future[Msg] | None = None
        if len(messages) > 1:
            first_reply = self._replies[f"{token}f"] = loop.create_future()
        commit_reply = self._replies[f"{token}c"] = loop.create_future()
        try:
            await self._write(stream, messages, token)
            async with asyncio.timeout(timeout):
                if first_reply is not None:
                    _check(await first_reply, stream)
                ack = _check(await commit_reply, stream)
        finally:
            self._replies.pop(f"{token}f", None)
            self._replies.pop(f"{token}c", None)
        count, last_seq = ack.get("count"), ack.get("seq")
        if not isinstance(count, int) or not isinstance(last_seq, int) or count != len(messages):
            raise BatchRejected(None, f"unexpected commit ack for {len(messages)} messages: {ack}")
        return last_seq - count + 1

    async def write_keys(self, bucket: str, writes: Sequence[KeyWrite], timeout: float) -> int:
        """Store every write of `writes` in the key-value `bucket`, or none of them.

        Returns:
            The revision of the last write (its stream sequence).

        Raises:
            ValueError: for no writes, or more than `ATOMIC_BATCH_MAX`.
            BatchRejected: JetStream refused the batch (`wrong_revision` when an expectation failed).
            TimeoutError / nats errors: no answer; whether the batch was stored is then unknown.
        """
        first = await self.send(f"KV_{bucket}", [w.message(bucket) for w in writes], timeout)
        return first + len(writes) - 1

    async def _subscribe(self) -> None:
        async with self._subscribing:
            if self._subscription is None:
                self._inbox_prefix = f"{self._client.new_inbox()}."
                self._subscription = await self._client.subscribe(f"{self._inbox_prefix}*", cb=self._on_reply)

    async def _on_reply(self, msg: Msg) -> None:
        future = self._replies.get(msg.subject[len(self._inbox_prefix) :])
        if future is not None and not future.done():
            future.set_result(msg)

    def _reply_subjects(self, token: str) -> tuple[str, str]:
        """Where the server answers the batch's first message and its commit."""
        return f"{self._inbox_prefix}{token}f", f"{self._inbox_prefix}{token}c"

    async def _write(self, stream: str, messages: Sequence[OutgoingMessage], token: str) -> None:
        await send_frames(self._client, self._frames(stream, messages, token))

    def _frames(self, stream: str, messages: Sequence[OutgoingMessage], token: str) -> bytes:
        last = len(messages)
        first_reply, commit_reply = (subject.encode() for subject in self._reply_subjects(token))
        common = b"Nats-Batch-Id: %s\r\nNats-Expected-Stream: %s\r\n" % (
            uuid.uuid4().hex.encode(),
            stream.encode(),
        )
        # Bytes formatting with %, one template per frame: a thousand frames are a large share of
        # an ingestion request's CPU time.
        frames = []
        for n, message in enumerate(messages, 1):
            extra = _ttl_header(message.ttl_seconds) + message.header_lines
            if n == last:
                extra += b"Nats-Batch-Commit: 1\r\n"
                reply = commit_reply
            else:
                reply = first_reply if n == 1 else b""
            msg_id = message.msg_id
            frames.append(
                hpub_frame(
                    message.subject.encode(),
                    reply,
                    b"%sNats-Batch-Sequence: %d\r\n%s%s"
                    % (common, n, b"Nats-Msg-Id: %s\r\n" % msg_id.encode() if msg_id else b"", extra),
                    message.payload,
                )
            )
        # One command for the whole batch: the client's flusher writes it with one socket call.
        return b"".join(frames)


@functools.cache
def _ttl_header(ttl_seconds: int | None) -> bytes:
    return b"" if ttl_seconds is None else b"Nats-TTL: %d\r\n" % ttl_seconds


def _check(msg: Msg, stream: str) -> dict[str, object]:
    """The reply as a PubAck dict (empty for a first-message ack), or BatchRejected."""
    if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS:
        raise BatchRejected(None, f"no stream answered: the {stream} stream does not exist")
    if not msg.data:
        return {}
    reply: dict[str, object] = json.loads(msg.data)
    error = reply.get("error")
    if isinstance(error, dict):
        code = error.get("err_code")
        raise BatchRejected(code if isinstance(code, int) else None, str(error.get("description", error)))
    return reply
