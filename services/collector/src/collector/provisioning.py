"""What the collector owns on the server, kept there: the EVENTS stream and its two buckets.

The collector is the one writer, so it provisions the stream and the `resource_states` and
`node_heartbeats` buckets on every (re)connection. Someone may still delete one while it runs (an
operator's mistake, a restore): a watch checks every few seconds that all three exist, and when one
is missing it says so in the logs and in `/readyz` and provisions it again at once, instead of
answering 503 until the next restart.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from nats.js.errors import NotFoundError

from collector.settings import CollectorSettings
from eh_runtime.connection import NatsConnection
from eh_runtime.kv import ensure_key_value
from eh_runtime.stream import EVENTS_STREAM, ensure_events_stream

log = structlog.get_logger(__name__)

CHECK_EVERY_SECONDS: Final = 2.0


class Provisioning:
    def __init__(
        self,
        connection: NatsConnection,
        provision: Callable[[NatsConnection], Awaitable[None]],
        owned_streams: list[str],
        *,
        check_every: float = CHECK_EVERY_SECONDS,
    ) -> None:
        self._connection = connection
        self._provision = provision
        self._streams = owned_streams  # EVENTS and the buckets' streams (KV_<bucket>)
        self._check_every = check_every
        self.missing: list[str] = []
        self.last_error: str | None = None

    async def provision(self, connection: NatsConnection) -> None:
        """The on-connect hook: create or update everything the collector owns."""
        await self._provision(connection)
        self.missing = []

    def problem(self) -> str | None:
        """For readiness: what was found deleted and is not provisioned again yet."""
        if not self.missing:
            return None
        error = f" ({self.last_error})" if self.last_error else ""
        return f"provisioning again what was deleted: {', '.join(self.missing)}{error}"

    async def keep(self, stopping: asyncio.Event) -> None:
        """Until `stopping`: find what was deleted, provision it again."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._check_every)
            if stopping.is_set() or not (self._connection.is_connected and self._connection.hooks_done):
                continue
            try:
                missing = await self._missing()
                if not missing:
                    continue
                if missing != self.missing:
                    log.error("deleted while the collector ran; provisioning again", missing=missing)
                self.missing = missing
                await self.provision(self._connection)
                log.info("provisioned again", streams=missing)
                self.last_error = None
            except Exception as error:  # NATS trouble: tried again at the next check
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("provisioning check failed", error=self.last_error)

    async def _missing(self) -> list[str]:
        js = self._connection.jetstream()
        missing = []
        for stream in self._streams:
            try:
                await js.stream_info(stream)
            except NotFoundError:
                missing.append(stream)
        return missing


async def provision_as_admin(settings: CollectorSettings) -> None:
    """What the collector owns, created or brought in line with the settings, with the NATS admin's
    rights (`python -m collector provision`, before the collectors start)."""
    from collector.heartbeats import heartbeat_bucket_config
    from collector.resource_states import state_bucket_config

    connection = NatsConnection(settings.nats, "provision")
    connection.start()
    try:
        await connection.wait_ready(settings.nats.connect_timeout.total_seconds() * 10)
        js = connection.jetstream()
        info = await ensure_events_stream(js, settings.stream)
        await ensure_key_value(js, state_bucket_config(settings.stream.replicas))
        await ensure_key_value(js, heartbeat_bucket_config(settings.stream.replicas))
        log.info("provisioned", stream=EVENTS_STREAM, events=info.state.messages)
    finally:
        await connection.close()


def bucket_stream(bucket: str) -> str:
    return f"KV_{bucket}"
