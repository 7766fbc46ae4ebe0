"""Provisioning of the `EVENTS` stream: create it, or bring its limits in line with the settings.

Idempotent and conservative: it never deletes a stream or purges data, and it refuses changes
JetStream cannot make in place (storage type) with a message instead of recreating the stream.
"""

from typing import Final

import structlog
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from eh_contracts.subjects import ALL_EVENTS_SUBJECT
from eh_runtime.settings import StreamSettings

log = structlog.get_logger(__name__)

EVENTS_STREAM: Final = "EVENTS"


class StreamConfigConflict(RuntimeError):
    """The existing stream differs in a way that only recreating it (losing data) could fix."""


def events_stream_config(settings: StreamSettings) -> StreamConfig:
    """The configuration the `EVENTS` stream should have for these settings."""
    max_age = settings.max_age.total_seconds()
    return StreamConfig(
        name=EVENTS_STREAM,
        description="Every event of the build farm, on events.<type>.<resource_id>",
        subjects=[ALL_EVENTS_SUBJECT],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=max_age if max_age > 0 else None,
        max_bytes=int(settings.max_bytes) if settings.max_bytes > 0 else -1,
        duplicate_window=settings.duplicate_window.total_seconds(),
        num_replicas=settings.replicas,
        # Per-message TTL (Nats-TTL header), so that metrics can expire sooner than status events.
        allow_msg_ttl=True,
        # Atomic batch publish: a batch of events is stored whole or not at all, with one ack.
        allow_atomic=True,
        # Direct gets answer "latest message on a subject" from any replica without a consumer.
        allow_direct=True,
    )


_COMPARED_FIELDS: Final = (
    "subjects",
    "retention",
    "discard",
    "max_age",
    "max_bytes",
    "duplicate_window",
    "num_replicas",
    "allow_msg_ttl",
    "allow_atomic",
    "allow_direct",
    "description",
)


async def ensure_events_stream(js: JetStreamContext, settings: StreamSettings) -> StreamInfo:
    """Create the `EVENTS` stream, or update its limits when they differ from the settings.

    Raises:
        StreamConfigConflict: when the stream exists with another storage type.
    """
    wanted = events_stream_config(settings)
    try:
        info = await js.stream_info(EVENTS_STREAM)
    except NotFoundError:
        info = await js.add_stream(wanted)
        log.info("stream created", stream=EVENTS_STREAM, config=_describe(wanted))
        return info

    current = info.config
    if current.storage != wanted.storage:
        raise StreamConfigConflict(
            f"stream {EVENTS_STREAM} uses {current.storage} storage, the settings want {wanted.storage}; "
            "JetStream cannot change that in place and this service never deletes data: "
            "migrate the stream by hand"
        )
    changed = {
        name: (getattr(current, name), getattr(wanted, name))
        for name in _COMPARED_FIELDS
        if _normalized(getattr(current, name)) != _normalized(getattr(wanted, name))
    }
    if not changed:
        return info
    info = await js.update_stream(wanted)
    log.info(
        "stream updated",
        stream=EVENTS_STREAM,
        changed={name: {"from": str(old), "to": str(new)} for name, (old, new) in changed.items()},
    )
    return info


async def events_stream_exists(js: JetStreamContext) -> bool:
    try:
        await js.stream_info(EVENTS_STREAM)
    except NotFoundError:
        return False
    return True


def _normalized(value: object) -> object:
    # The server reports "no limit" as 0 or -1 and durations as floats; None means the same.
    if value in (None, 0, -1, 0.0):
        return None
    if isinstance(value, float):
        return round(value, 3)
    return value


def _describe(config: StreamConfig) -> dict[str, object]:
    return {name: str(getattr(config, name)) for name in _COMPARED_FIELDS}
