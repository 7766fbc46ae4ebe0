"""One live JetStream feed per edge process: new events of the whole stream, fanned out in memory.

An ordered push consumer (flow-controlled, heartbeats, recreated by nats-py from the last seen
sequence after a server restart) delivers every new event once to this process; its stream
sequence becomes the SSE `id:`. Browsers never get a NATS consumer of their own. A message that
is not an event (unmarked by our writers and failing the check) is skipped: `stored_message_check`.
"""

import contextlib
from typing import Final

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from eh_contracts.event_types import EventKind, EventType
from eh_contracts.stored_events import ENVELOPE_HEADER, ENVELOPE_VERSION
from eh_contracts.subjects import ALL_EVENTS_SUBJECT
from eh_runtime.connection import NatsConnection
from eh_runtime.jetstream import delivery_position
from eh_runtime.stream import EVENTS_STREAM
from sse_edge.http.sse_frames import event_frame
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.filter_group import FramedEvent
from sse_edge.live.recent_events import RecentEvents
from sse_edge.metrics import FEED_EVENTS, FEED_LAG, FEED_LAST_SEQ
from sse_edge.stored_message_check import StoredMessageCheck

log = structlog.get_logger(__name__)

_SUBJECT_PREFIX: Final = "events."
# Samples where only the newest per resource matters to a client that cannot keep up.
CONFLATABLE_TYPES: Final = frozenset(t.value for t in EventType.of_kind(EventKind.METRICS))


class LiveFeed:
    def __init__(self, index: FanoutIndex, recent: RecentEvents | None = None) -> None:
        self._index = index
        self._recent = recent if recent is not None and recent.enabled else None
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
        self._subscription = await js.subscribe(
            ALL_EVENTS_SUBJECT,
            stream=EVENTS_STREAM,
            cb=self._on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
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
        FEED_EVENTS.inc()
        FEED_LAST_SEQ.set(seq)
        FEED_LAG.set(pending)
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
