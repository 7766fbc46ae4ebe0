"""JetStream key-value buckets, created on first use and never recreated.

Services keep small shared state here (current resource states, alert state, leases). Creating a
bucket is idempotent; a bucket that exists with another configuration is used as it is, with a
warning, because recreating it would lose its state.
"""

import contextlib
from dataclasses import dataclass
from typing import Final

import structlog
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, KeyValueConfig
from nats.js.errors import BadRequestError, BucketNotFoundError
from nats.js.kv import KeyValue

log = structlog.get_logger(__name__)

# A listing's consumer is deleted as soon as it is read; should the delete be lost, the server
# drops the consumer after this long without a subscriber.
_LISTING_INACTIVE_SECONDS: Final = 10.0
_DELETION_OPERATIONS: Final = frozenset({"DEL", "PURGE"})


async def ensure_key_value(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """The bucket `config.bucket`, created with `config` if it does not exist yet.

    An existing bucket is looked up, never "created" again: a service's NATS identity may use its
    buckets but only the admin identity may create them (provisioning), so the common path must
    not need that right.
    """
    with contextlib.suppress(BucketNotFoundError):
        return await js.key_value(config.bucket)
    try:
        return await js.create_key_value(config)
    except BadRequestError as error:
        # "stream name already in use with a different configuration"
        log.warning(
            "key-value bucket exists with another configuration; using it as it is",
            bucket=config.bucket,
            error=str(error),
        )
        return await js.key_value(config.bucket)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key: str
    value: bytes
    revision: int


async def read_current_values(
    js: JetStreamContext, bucket: str, keys: str, *, timeout: float
) -> list[KeyEntry]:
    """The current value of every key of `bucket` matching `keys` (a subject pattern, deleted keys
    left out), read once, in key order of the stream.

    One ordered consumer per call, deleted as soon as the read is done. `KeyValue.watch` would
    leave its consumer on the server for a 5-minute inactivity threshold: 990 listings left about
    a thousand consumers alive, and the server's consumer limit made every listing fail.

    Raises:
        nats.errors.TimeoutError: the values stopped arriving for `timeout` seconds.
    """
    stream, prefix = f"KV_{bucket}", f"$KV.{bucket}."
    subscription = await js.subscribe(
        prefix + keys,
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        inactive_threshold=_LISTING_INACTIVE_SECONDS,
    )
    consumer: str | None = None
    try:
        info = await subscription.consumer_info()
        consumer = info.name
        entries: list[KeyEntry] = []
        # Empty only if the consumer has neither anything pending nor anything already sent. The
        # server counts a message as delivered when it queues it for sending, and may answer this
        # info request before that message reaches us: `subscription.delivered` (what arrived)
        # was 0 then, and a loaded machine listed no resources at all (nats.go's KV watcher makes
        # the same test: NumPending + Delivered.Consumer).
        sent = info.delivered.consumer_seq if info.delivered is not None else 0
        if not info.num_pending and not sent and not subscription.delivered:
            return entries
        while True:
            msg = await subscription.next_msg(timeout)
            headers = msg.headers or {}
            deleted = headers.get("KV-Operation") in _DELETION_OPERATIONS or "Nats-Marker-Reason" in headers
            if msg.data and not deleted:
                entries.append(KeyEntry(msg.subject[len(prefix) :], msg.data, msg.metadata.sequence.stream))
            if msg.metadata.num_pending == 0:
                return entries
    finally:
        await subscription.unsubscribe()
        if consumer is not None:
            with contextlib.suppress(NatsError):  # its inactivity threshold removes it anyway
                await js.delete_consumer(stream, consumer)
