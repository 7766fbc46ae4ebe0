"""Node heartbeats: a node comes online with its first heartbeat and goes offline without one.

Each heartbeat is written to the key-value bucket `node_heartbeats` with a per-key time-to-live of
COLLECTOR_HEARTBEAT_TIMEOUT (JetStream per-message TTL). When a node stops, the server itself removes
its key after the timeout and leaves a delete marker (`Nats-Marker-Reason: MaxAge`) that every
collector replica watching the bucket receives. The clock that decides is the server's, not a
replica's, so replicas on skewed machines agree.

Each replica then tries the online → offline transition; the resource states' compare-and-set lets
exactly one of them win, so the `heartbeat_timeout` event is emitted once however many replicas run.
The marker stays (for `_MARKER_TTL`), so a replica that starts after the fact still sees it.
"""

import asyncio
import contextlib
import json
from datetime import timedelta
from typing import Any, Final

import pydantic_core
import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from collector.resource_states import ResourceStates, TransitionResult, kv_token
from eh_contracts.records import EventRecord, parse_record
from eh_contracts.times import utc_now_rfc3339
from eh_runtime.event_publisher import StoreUnavailable
from eh_runtime.kv import ensure_key_value

log = structlog.get_logger(__name__)

HEARTBEAT_BUCKET: Final = "node_heartbeats"
# How long the server keeps the delete marker of an expired heartbeat: a replica that starts within
# this time still turns the node offline.
_MARKER_TTL: Final = timedelta(days=7)
_ONLINE_FROM: Final = frozenset({None, "offline", "unknown"})


def node_status_event(
    node_id: str, new_state: str, reason: str, details: dict[str, Any], event_id: str | None = None
) -> EventRecord:
    """A `node_status` event the collector itself reports, validated like any producer's."""
    event: dict[str, Any] = {
        "event": "node_status",
        "resource_id": node_id,
        "data": {"new_state": new_state, "reason": reason, "details": details},
    }
    if event_id is not None:
        event["id"] = event_id
    return parse_record(json.dumps(event).encode())


def heartbeat_bucket_config(replicas: int) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=HEARTBEAT_BUCKET,
        description="Last heartbeat of each node; a key expires when its node falls silent",
        history=1,
        replicas=replicas,
        limit_marker_ttl=_MARKER_TTL.total_seconds(),
    )


class Heartbeats:
    """Records heartbeats and turns silent nodes offline."""

    def __init__(self, states: ResourceStates, timeout: timedelta, replicas: int = 1) -> None:
        self.states = states
        self.timeout = timeout
        self._replicas = replicas
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._watch: asyncio.Task[None] | None = None
        self._last_seen: dict[str, str] = {}
        self._timeouts: set[asyncio.Task[None]] = set()

    @property
    def timeout_seconds(self) -> int:
        return max(1, round(self.timeout.total_seconds()))

    async def open(self, js: JetStreamContext) -> None:
        """Create or bind the bucket and (re)start watching it; run on every (re)connection."""
        self._js = js
        self._kv = await ensure_key_value(js, heartbeat_bucket_config(self._replicas))
        await self.close()
        watcher = await self._kv.watchall()
        self._watch = asyncio.create_task(self._follow(watcher), name="heartbeat-watch")

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None

    async def beat(self, node_id: str, ip: str | None) -> TransitionResult:
        """Record a heartbeat; bring the node online if it was offline or never seen."""
        if self._js is None or not self.states.connected:
            raise StoreUnavailable("not connected to NATS (or the heartbeat bucket is not open yet)")
        now = utc_now_rfc3339()
        record: dict[str, Any] = {"last_heartbeat": now}
        if ip is not None:
            record["ip"] = ip
        await self._js.publish(
            f"$KV.{HEARTBEAT_BUCKET}.{kv_token(node_id)}",
            pydantic_core.to_json(record),
            msg_ttl=self.timeout_seconds,
        )
        event = node_status_event(node_id, "online", "heartbeat_received", record)
        return await self.states.apply(event, only_from=lambda state: state in _ONLINE_FROM)

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            async for entry in watcher:
                if entry is None:
                    continue  # the end of the initial values; watching goes on
                node_id = entry.key.replace("=", ":")
                if entry.operation in (KV_PURGE, KV_DEL):
                    task = asyncio.create_task(self._timed_out(node_id, entry.revision))
                    self._timeouts.add(task)
                    task.add_done_callback(self._timeouts.discard)
                elif entry.value:
                    self._last_seen[node_id] = json.loads(entry.value).get("last_heartbeat", "")
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _timed_out(self, node_id: str, marker_revision: int | None) -> None:
        """The node's heartbeat key expired: turn it offline, unless a heartbeat just came in."""
        assert self._kv is not None
        try:
            latest = await self._kv.get(kv_token(node_id), validate_keys=False)
        except KeyNotFoundError:
            pass
        else:
            # An expiry marker reads as an empty value (it has no KV-Operation header); a heartbeat
            # record is never empty, so a value means a heartbeat came in after the expiry.
            if latest.value:
                return
        details = {"last_heartbeat": self._last_seen.pop(node_id)} if self._last_seen.get(node_id) else {}
        # The same id on every replica: whichever stores it, the stream holds it once.
        event = node_status_event(
            node_id,
            "offline",
            "heartbeat_timeout",
            details,
            event_id=f"{node_id}-heartbeat-timeout-{marker_revision}",
        )
        try:
            result = await self.states.apply(event, only_from=lambda state: state not in (None, "offline"))
        except Exception as error:  # NATS away: the marker stays, the next watch start retries
            log.warning(
                "heartbeat timeout not applied", node_id=node_id, error=f"{type(error).__name__}: {error}"
            )
            return
        if result.status == "stored":
            log.info("node offline: heartbeat timeout", node_id=node_id, seq=result.seq)
