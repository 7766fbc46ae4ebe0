"""The evaluator's durable JetStream consumer: every event type but its own alerts, acked explicitly.

nats-server 2.10+ takes several filter subjects per consumer, so `system_alert` events are never
delivered at all (rather than delivered and dropped here).

When a replica becomes active, it recreates the consumer at the stored checkpoint. Messages
that a previous holder had fetched and never acknowledged would otherwise come back only after
the ack wait, behind newer ones; recreating makes them come back at once and in order.
"""

from typing import Final, Literal

import structlog
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from alert_evaluator.rules import EVALUATED_TYPES
from eh_contracts.subjects import SUBJECT_ROOT
from eh_runtime.stream import EVENTS_STREAM

log = structlog.get_logger(__name__)

CONSUMER: Final = "alert-evaluator"
EVALUATED_SUBJECTS: Final = sorted(f"{SUBJECT_ROOT}.{event_type.value}.*" for event_type in EVALUATED_TYPES)
ACK_WAIT_SECONDS: Final = 30.0


async def position_consumer(
    js: JetStreamContext, after_seq: int, batch_size: int, start_from: Literal["new", "all"]
) -> int | None:
    """(Re)create the durable consumer to deliver the events after stream sequence `after_seq`.

    With no position yet (`after_seq` 0), an existing consumer's acknowledged position is used,
    else `start_from`. Returns the first sequence it will deliver (None: new events only).
    """
    try:
        info = await js.consumer_info(EVENTS_STREAM, CONSUMER)
    except NotFoundError:
        info = None
    if after_seq == 0 and info is not None and info.ack_floor is not None and info.ack_floor.stream_seq:
        after_seq = info.ack_floor.stream_seq
    if info is not None:
        await js.delete_consumer(EVENTS_STREAM, CONSUMER)
    config = ConsumerConfig(
        durable_name=CONSUMER,
        description="alert-evaluator: every event but system_alert",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_SECONDS,
        # One fetch in flight, acknowledged before the next: a bound, not a throttle.
        max_ack_pending=2 * batch_size,
        filter_subjects=EVALUATED_SUBJECTS,
        max_waiting=16,
    )
    first: int | None
    if after_seq > 0:
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = first = after_seq + 1
    elif start_from == "all":
        config.deliver_policy = DeliverPolicy.ALL
        first = 1
    else:
        config.deliver_policy = DeliverPolicy.NEW
        first = None
    await js.add_consumer(EVENTS_STREAM, config)
    log.info("consumer positioned", consumer=CONSUMER, first_seq=first, start_from=start_from)
    return first
