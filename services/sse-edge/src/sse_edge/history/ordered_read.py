"""An ordered read of a range of the stream: JetStream's ordered-consumer semantics, done here.

nats-py's ordered push subscription does work per delivery that a replay does not need (it splits
every reply subject into its metadata tokens, keeps flow-control bookkeeping per message), and a
sink called once per event costs a call and a frame each. Here the consumer is created directly
(ephemeral, no acks, flow control, idle heartbeats, several filter subjects, a start sequence) and
its deliver subject is read with a plain core subscription whose callback only queues the message.
A burst (what nats-py parsed before the subscription's task ran, up to `_MAX_BURST` events) is then
handled in one go: checked against the end of the range and the delivery count once, through the
last delivery's reply subject, and handed to the sink as one list.

The ordered-consumer contract, as the server expects it from clients:

- deliveries are numbered 1, 2, 3, ... (the consumer sequence in the reply subject); a number
  skipped (a message dropped by a slow subscription, a reconnect) means something was lost, and
  so does an idle heartbeat naming a later delivery than the last one seen. Then the consumer is
  dropped and created anew from the stream sequence after the last event handled;
- a flow-control request is answered once everything delivered before it has been handed over,
  so a slow sink slows the server's sending and nothing piles up in the edge;
- when neither events nor heartbeats arrive for a while, the consumer is gone (a server restart
  loses in-memory consumers): it is created anew the same way.
"""

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from eh_runtime.jetstream import ack_reply_splits, delete_consumer_nowait
from eh_runtime.stream import EVENTS_STREAM

Burst = list[tuple[str, str, bytes]]
"""Events in stream order as (stream sequence in decimal, subject, stored bytes)."""

BurstSink = Callable[[Burst], Awaitable[None] | None]
"""Takes each burst; returning an awaitable holds the read until it completes (backpressure)."""

CountFrom = Callable[[int], Awaitable[int]]
"""How many matching events are stored at a sequence or later."""

_CONTROL_STATUS: Final = "100"
_LAST_CONSUMER: Final = "Nats-Last-Consumer"
_CONSUMER_STALLED: Final = "Nats-Consumer-Stalled"
# nats-py may parse a few megabytes (as much as flow control lets the server send ahead) before
# the subscription's task runs; handed over in pieces of this many events, a burst stays a modest
# chunk for the client's queue, whose limit is checked between chunks.
_MAX_BURST: Final = 256
# An unused consumer is dropped by the server after this even if the delete request is lost.
_INACTIVE_SECONDS: Final = 10.0


class StopReading(Exception):
    """Raised by a sink that has what it needs; the read ends normally."""


class OrderedRead:
    """One pass over the matching events of `start_seq..end_seq`, in order, each exactly once.

    With `last_per_subject`, only the latest event of each matching subject (JetStream's
    `LAST_PER_SUBJECT` delivery): a snapshot of the newest event per (type, resource) up to `end_seq`.
    """

    def __init__(
        self,
        client: Client,
        js: JetStreamContext,
        subjects: Sequence[str],
        start_seq: int,
        end_seq: int,
        sink: BurstSink,
        count_from: CountFrom,
        *,
        heartbeat: float = 2.0,
        stall_check: float = 5.0,
        pending_msgs_limit: int = 512 * 1024,
        pending_bytes_limit: int = 4 * 2**20,
        last_per_subject: bool = False,
        keep: Callable[[list[Msg], Burst], Burst] | None = None,
    ) -> None:
        self._client = client
        self._js = js
        self._subjects = list(subjects)
        self._end_seq = end_seq
        self._sink = sink
        self._count_from = count_from
        self._heartbeat = heartbeat
        self._stall_check = stall_check
        self._pending_msgs_limit = pending_msgs_limit
        # JetStream's flow control keeps about 2 MB in flight per consumer (nats-server 2.15): a
        # limit above that never drops. Were it exceeded, the dropped deliveries are a gap, and the
        # consumer is created anew after the last event handed over: exact, only slower.
        self._pending_bytes_limit = pending_bytes_limit
        self._last_per_subject = last_per_subject
        self._skip_below = 0  # a snapshot's new consumer repeats what its predecessor delivered
        self._keep = keep
        self.next_seq = start_seq
        self.delivered = 0
        """Events handed over to the sink (messages `keep` left out do not count)."""
        self.restarts = 0
        """How often the consumer was created anew (a gap, lost heartbeats)."""
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finished = False  # the last burst is out; done once the sink has taken it
        self._generation = 0  # of the consumer: deliveries of an older one are dropped
        self._subscription: Subscription | None = None
        self._consumer: str | None = None
        self._received = 0  # deliveries of the current consumer handled so far
        self._seq_at = 0  # where the stream sequence starts in a reply subject, once known
        self._tail = 4  # tokens after the stream sequence in a reply subject (see _tail_tokens)
        self._burst: list[Msg] = []
        self._held = False  # the sink is taking a burst; deliveries wait for `_flowing`
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._holding: asyncio.Future[None] | None = None
        self._active = False  # anything arrived since the last stall check
        self._restarting: asyncio.Task[None] | None = None

    @property
    def pending_bytes(self) -> int:
        """Bytes delivered by JetStream that this read has not handed to its sink yet."""
        subscription = self._subscription
        return subscription.pending_bytes if subscription is not None else 0

    async def run(self) -> int:
        """Read until the end of the range or of what the stream holds; returns events handed over."""
        try:
            await self._start_consumer()
            while True:
                progress = self.next_seq
                self._active = False
                finished, _ = await asyncio.wait({self._done}, timeout=self._stall_check)
                if finished:
                    self._done.result()
                    return self.delivered
                if self._held or self._restarting is not None:
                    continue  # the sink is slow, or a new consumer is on its way: fine
                # Nothing handed over for a while: either what was left to read expired meanwhile
                # (then the server has nothing more to send), or the consumer is gone.
                if self.next_seq == progress and await self._count_from(self.next_seq) == 0:
                    return self.delivered
                if not self._active:
                    self._restart()
        finally:
            await self._stop()

    # -- the consumer ----------------------------------------------------------------------------

    async def _start_consumer(self) -> None:
        self._generation += 1
        generation = self._generation
        self._received = 0
        self._seq_at = 0
        inbox = self._client.new_inbox()
        # Subscribed before the consumer exists, so that its first deliveries find a subscriber.
        self._subscription = await self._client.subscribe(
            inbox,
            cb=functools.partial(self._on_message, generation=generation),
            pending_msgs_limit=self._pending_msgs_limit,
            pending_bytes_limit=self._pending_bytes_limit,
        )
        policy = DeliverPolicy.BY_START_SEQUENCE
        start_seq: int | None = max(self.next_seq, 1)
        if self._last_per_subject:
            # The latest event of every matching subject, in stream order, then what follows.
            # A consumer created anew starts over; what the last one delivered is skipped.
            policy, start_seq = DeliverPolicy.LAST_PER_SUBJECT, None
            self._skip_below = self.next_seq
        info = await self._js.add_consumer(
            EVENTS_STREAM,
            ConsumerConfig(
                deliver_subject=inbox,
                filter_subjects=self._subjects,
                deliver_policy=policy,
                opt_start_seq=start_seq,
                ack_policy=AckPolicy.NONE,
                max_deliver=1,
                flow_control=True,
                idle_heartbeat=self._heartbeat,
                mem_storage=True,
                num_replicas=1,
                inactive_threshold=_INACTIVE_SECONDS,
            ),
        )
        self._consumer = info.name
        if not info.num_pending and not self._burst:
            # Nothing matched when the consumer was made, so nothing of the range ever will: done,
            # without waiting for a stall check to find out.
            self._finished = True
            if not self._done.done():
                self._done.set_result(None)

    def _restart(self) -> None:
        """Drop the consumer and create it anew from the sequence after the last event handled."""
        if self._finished or self._restarting is not None:
            return
        self.restarts += 1
        self._generation += 1  # from now on the old consumer's deliveries are ignored
        self._burst = []
        self._restarting = asyncio.create_task(self._replace_consumer())

    async def _replace_consumer(self) -> None:
        try:
            await self._drop_consumer()
            await self._start_consumer()
        except Exception as error:  # NATS trouble: the read fails, the client resumes later
            self._fail(error)
        finally:
            self._restarting = None

    async def _drop_consumer(self) -> None:
        subscription, consumer = self._subscription, self._consumer
        self._subscription = self._consumer = None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        if consumer is not None and not self._client.is_closed:
            # Fire and forget: the server drops an unused consumer after a while anyway.
            with contextlib.suppress(Exception):
                await delete_consumer_nowait(self._client, EVENTS_STREAM, consumer)

    async def _stop(self) -> None:
        self._finished = True
        self._generation += 1
        if self._restarting is not None:
            self._restarting.cancel()
        if self._holding is not None:
            self._holding.cancel()
        await self._drop_consumer()

    # -- deliveries --------------------------------------------------------------------------------

    async def _on_message(self, msg: Msg, *, generation: int) -> None:
        # Runs in the subscription's task, once per delivery: keep it short.
        if generation != self._generation:
            return  # a delivery of a consumer given up
        self._active = True
        if self._held:
            await self._flowing.wait()  # the sink is holding the read; so is the server, soon
            if generation != self._generation:
                return  # the consumer was replaced meanwhile
        if msg.data:
            burst = self._burst
            burst.append(msg)
            if len(burst) == 1:
                # After the subscription's task has taken everything the last reads brought.
                asyncio.get_running_loop().call_soon(self._flush)
            elif len(burst) >= _MAX_BURST:
                self._flush()
            return
        headers = msg.headers or {}
        if headers.get("Status") != _CONTROL_STATUS:
            self._burst.append(msg)  # an event without a payload, still an event
            self._flush()
            return
        # A control message: everything delivered before it is handed over first.
        self._flush()
        if self._held:
            await self._flowing.wait()
        if self._finished or generation != self._generation:
            return  # done, or a gap was found and a new consumer is on its way
        if msg.reply:  # a flow-control request
            await self._client.publish(msg.reply)
            return
        # An idle heartbeat: the last delivery the server made, and a flow-control reply it waits for.
        last = headers.get(_LAST_CONSUMER)
        if last is not None and int(last) != self._received:
            self._restart()
            return
        stalled = headers.get(_CONSUMER_STALLED)
        if stalled:
            await self._client.publish(stalled)

    def _flush(self) -> None:
        """Hand the queued burst to the sink, after checking it for a gap and the end of the range."""
        msgs = self._burst
        if not msgs or self._finished:
            return
        self._burst = []
        k = self._tail_tokens(msgs[0].reply)
        last = msgs[-1].reply.rsplit(".", k)
        if int(last[2]) != self._received + len(msgs):
            self._flush_up_to_gap(msgs, k)
            return
        self._received += len(msgs)
        sseq = int(last[1])
        if sseq > self._end_seq:
            msgs = [m for m in msgs if int(m.reply.rsplit(".", k)[1]) <= self._end_seq]
            self._finished = True
        elif sseq == self._end_seq or last[4] == "0":
            self._finished = True  # the end of the range, or nothing more is stored for now
        else:
            self.next_seq = sseq + 1
        self._hand_over(msgs)

    def _flush_up_to_gap(self, msgs: list[Msg], k: int) -> None:
        """A delivery is missing: hand over what came before it, then start a new consumer."""
        kept: list[Msg] = []
        for msg in msgs:
            tokens = msg.reply.rsplit(".", k)
            if int(tokens[2]) != self._received + 1:
                break
            self._received += 1
            if int(tokens[1]) > self._end_seq:
                self._finished = True
                break
            kept.append(msg)
            self.next_seq = int(tokens[1]) + 1
        if not self._finished:
            self._restart()
        self._hand_over(kept)

    def _tail_tokens(self, reply: str) -> int:
        """How many tokens follow the stream sequence (`ack_reply_splits`).

        The same for every delivery of a consumer, so learnt from its first one.
        """
        if not self._seq_at:
            self._tail = ack_reply_splits(reply)
            self._seq_at = len(reply.rsplit(".", self._tail)[0]) + 1
        return self._tail

    def _hand_over(self, msgs: list[Msg]) -> None:
        burst: Burst = []
        if msgs:
            at = self._seq_at
            # The stream sequence sits at a fixed offset: every delivery of this consumer has the
            # same stream, consumer name and delivery count (1: no acks, so no redeliveries).
            burst = [((r := m.reply)[at : r.index(".", at)], m.subject, m.data) for m in msgs]
            if self._skip_below > 1:
                burst = [event for event in burst if int(event[0]) >= self._skip_below]
            if self._keep is not None:
                burst = self._keep(msgs, burst)
        if burst:  # the sink never gets an empty burst
            try:
                pending = self._sink(burst)
            except StopReading:
                self._finished = True
                pending = None
            except Exception as error:  # e.g. the client went away: stop reading
                self._fail(error)
                return
            self.delivered += len(burst)
            if pending is not None:
                self._hold(pending)
                return
        if self._finished and not self._done.done():
            self._done.set_result(None)

    def _hold(self, pending: Awaitable[None]) -> None:
        """The sink needs time: hold further deliveries until it has taken this burst."""
        self._held = True
        self._flowing.clear()
        holding = self._holding = asyncio.ensure_future(pending)

        def resumed(_: object) -> None:
            self._holding = None
            if holding.cancelled():
                return
            error = holding.exception()
            if isinstance(error, StopReading):
                self._finished = True
            elif error is not None:
                self._fail(error)
                return
            self._held = False
            self._active = True  # a long hold is not a lost consumer
            self._flowing.set()
            if self._finished and not self._done.done():
                self._done.set_result(None)

        holding.add_done_callback(resumed)

    def _fail(self, error: BaseException) -> None:
        self._finished = True
        if not self._done.done():
            self._done.set_exception(error)
