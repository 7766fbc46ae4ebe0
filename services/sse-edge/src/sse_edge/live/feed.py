"""One live JetStream feed per edge process: new events of the whole stream, fanned out in memory.

An ordered push consumer (flow-controlled, heartbeats, recreated by nats-py from the last seen
sequence after a server restart) delivers every new event once to this process; its stream
sequence becomes the SSE `id:`. Browsers never get a NATS consumer of their own. A message that
is not an event (unmarked by our writers and failing the check) is skipped: `stored_message_check`.
"""

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from eh_contracts.event_types import EventKind, EventType
from eh_contracts.stored_events import ENVELOPE_HEADER, ENVELOPE_VERSION
from eh_contracts.subjects import ALL_EVENTS_SUBJECT
from eh_runtime.connection import NatsConnection
from eh_runtime.jetstream import delivery_position
from eh_runtime.stream import EVENTS_STREAM
from sse_edge.history.jetstream_history import first_seq_stored_at
from sse_edge.http.sse_frames import event_frame
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.filter_group import FramedEvent
from sse_edge.live.recent_events import RecentEvents
from sse_edge.metrics import FEED
from sse_edge.stored_message_check import StoredMessageCheck

log = structlog.get_logger(__name__)

_SUBJECT_PREFIX: Final = "events."
# Samples where only the newest per resource matters to a client that cannot keep up.
CONFLATABLE_TYPES: Final = frozenset(t.value for t in EventType.of_kind(EventKind.METRICS))


class LiveFeed:
    def __init__(
        self, index: FanoutIndex, recent: RecentEvents | None = None, prefill: timedelta = timedelta(0)
    ) -> None:
        self._index = index
        # Told of every sequence even with the window off: its `last_seq` is where resumes go live.
        self._recent = recent
        # Clients of a restarted edge come back with ids seconds old: a window that starts empty
        # would send every one of them to JetStream. The feed starts that far back instead; what it
        # receives before a client registered is below that client's floor, so only the window
        # (and resumes from it) sees those events.
        self._prefill = prefill if recent is not None and recent.enabled else timedelta(0)
        self._subscribed = False
        self._subscription: JetStreamContext.PushSubscription | None = None
        self._check = StoredMessageCheck("live")

    @property
    def running(self) -> bool:
        return self._subscribed

    async def start(self, connection: NatsConnection) -> None:
        """Subscribe once; later reconnections keep the same subscription (nats-py restores it)."""
        if self._subscribed:
            return
        js = connection.jetstream()
        start = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        if self._prefill > timedelta(0):
            # A start sequence, not a start time: nats-py recreates an ordered consumer by sequence
            # and would keep a start time beside it, which the server refuses.
            with contextlib.suppress(Exception):  # no prefill is no harm: the window starts empty
                first = await first_seq_stored_at(connection.client, datetime.now(UTC) - self._prefill)
                if first is not None:
                    start = ConsumerConfig(
                        deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first
                    )
        self._subscription = await js.subscribe(
            ALL_EVENTS_SUBJECT,
            stream=EVENTS_STREAM,
            cb=self._on_message,
            config=start,
            ordered_consumer=True,
            idle_heartbeat=2.0,
        )
        self._subscribed = True
        log.info("live feed subscribed", subject=ALL_EVENTS_SUBJECT, stream=EVENTS_STREAM)

    async def restart(self, connection: NatsConnection) -> None:
        """Subscribe anew from the stream's end: after the stream was deleted and created again, the
        ordered consumer would wait for the old stream's next sequence, which the new one reaches
        only much later."""
        subscription, self._subscription = self._subscription, None
        self._subscribed = False
        if subscription is not None:
            with contextlib.suppress(Exception):  # the old consumer went with the old stream
                await subscription.unsubscribe()
        if self._recent is not None:
            self._recent.clear()
        log.warning("stream replaced; live feed subscribing anew", stream=EVENTS_STREAM)
        await self.start(connection)

    async def _on_message(self, msg: Msg) -> None:
        subject = msg.subject
        if not subject.startswith(_SUBJECT_PREFIX):
            return
        seq, stored_ns, pending = delivery_position(msg.reply)
        event_type, _, resource_id = subject[len(_SUBJECT_PREFIX) :].partition(".")
        stats = FEED
        stats.events += 1
        stats.last_seq = seq
        stats.lag = pending
        headers = msg.headers
        marked = headers is not None and headers.get(ENVELOPE_HEADER) == ENVELOPE_VERSION
        if not (marked and resource_id) and not self._check.sendable(msg, seq):
            if self._recent is not None:
                self._recent.skipped(seq)
            return
        event = FramedEvent(
            seq,
            event_frame(seq, event_type, msg.data),
            subject if event_type in CONFLATABLE_TYPES else None,
            stored_ns / 1e9,
        )
        if self._recent is not None:
            self._recent.append(event_type, resource_id, event, msg.data)
        self._index.publish(event_type, resource_id, event, msg.data)
