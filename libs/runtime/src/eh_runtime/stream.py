"""Provisioning of the `EVENTS` stream: create it, or bring its limits in line with the settings.

Idempotent and conservative: it never deletes a stream or purges data, and it refuses changes
JetStream cannot make in place (storage type) with a message instead of recreating the stream.
"""

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final

import structlog
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from eh_contracts.subjects import ALL_EVENTS_SUBJECT
from eh_runtime.settings import StreamSettings

if TYPE_CHECKING:
    from eh_runtime.connection import NatsConnection

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


class StreamWatch:
    """The `EVENTS` stream as last seen, refreshed in the background: readiness answers from this
    state at once, never from a round trip that a cluster election can stretch past a probe's
    timeout. It also notices a stream deleted and created again (its creation time changes)."""

    def __init__(self, connection: "NatsConnection", interval: float = 1.0) -> None:
        self._connection = connection
        self.interval = interval
        self.exists: bool | None = None  # None: not known yet
        self.created: datetime | None = None
        self._last_created: datetime | None = None  # kept while the stream is missing
        self._on_replaced: list[Callable[[], Awaitable[None]]] = []
        self._answered_at = -math.inf  # monotonic time of the last answer from JetStream
        self._task: asyncio.Task[None] | None = None

    def on_replaced(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` when the stream is found created anew (deleted, then created again)."""
        self._on_replaced.append(callback)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="events-stream-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def problem(self) -> str | None:
        """None when the stream is known to exist, else why the service cannot count on it."""
        if not self._connection.is_connected:
            return "unknown while disconnected"
        if self.exists is None:
            return "not checked yet"
        silent = time.monotonic() - self._answered_at
        if silent > self._stale_after:
            return f"no answer from JetStream for {silent:.0f}s"
        return None if self.exists else f"stream {EVENTS_STREAM} does not exist"

    @property
    def _stale_after(self) -> float:
        return 2 * self.interval + self._connection.settings.request_timeout.total_seconds()

    async def check(self) -> None:
        """Ask JetStream once; raises what the request raises (not found is an answer)."""
        try:
            info = await self._connection.jetstream().stream_info(EVENTS_STREAM)
        except NotFoundError:
            if self.exists:
                log.error("stream deleted", stream=EVENTS_STREAM)
            self.exists, self.created = False, None
        else:
            replaced = self._last_created is not None and info.created != self._last_created
            if replaced:
                log.warning(
                    "stream created anew since last seen",
                    stream=EVENTS_STREAM,
                    was_created=str(self._last_created),
                    created=str(info.created),
                )
            self.exists, self.created = True, info.created
            self._last_created = info.created
            if replaced:
                for callback in self._on_replaced:
                    try:
                        await callback()
                    except Exception as error:  # one consumer's trouble must not stop the watch
                        log.error(
                            "reaction to a replaced stream failed", error=f"{type(error).__name__}: {error}"
                        )
        self._answered_at = time.monotonic()

    async def refresh(self, _connection: object = None) -> None:
        """Check now, never raising (an on-connect hook: run after the stream is provisioned)."""
        try:
            await self.check()
        except Exception as error:  # no answer: the state goes stale, readiness says so
            log.debug("stream check failed", error=f"{type(error).__name__}: {error}")

    async def _run(self) -> None:
        while True:
            if self._connection.is_connected:
                await self.refresh()
                await asyncio.sleep(self.interval)
            else:
                await asyncio.sleep(0.05)
