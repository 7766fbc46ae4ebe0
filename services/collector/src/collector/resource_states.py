"""The current state of every node, pipeline and container, and the transitions between states.

States live in the JetStream key-value bucket `resource_states`, key `<kind>.<resource_id>` (KV keys
do not allow `:`, so it is written `=`, which resource ids never contain). A value is the state, the
id and stream sequence of the event that made it, and that event:
`{"state": "online", "event_id": "…", "seq": 42, "event": {…}}`.

A transition is claimed in the bucket first, by compare-and-set on the key's revision, and stored in
the stream second. Of two concurrent reports for one resource exactly one wins the revision; the
other re-reads and is judged against the new state, so no transition is lost or doubled. Between the
two steps the value is *pending* (`seq` null): when the publish fails, or the process dies, the next
report for that resource, a retry of the same event, or the periodic sweep stores the pending event
first (same id, so at most once). The stream therefore always receives a resource's transitions in
the order they were claimed.
"""

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast

import pydantic_core
import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from eh_contracts.event_types import EventKind, EventType
from eh_contracts.records import EventRecord
from eh_contracts.stored_events import MSG_ID_HEADER
from eh_contracts.subjects import event_subject
from eh_contracts.times import utc_now_rfc3339
from eh_runtime.event_publisher import EventPublisher, StoreUnavailable
from eh_runtime.kv import ensure_key_value, read_current_values
from eh_runtime.stream import EVENTS_STREAM

log = structlog.get_logger(__name__)

STATE_BUCKET: Final = "resource_states"
_MAX_ATTEMPTS: Final = 25
_LIST_TIMEOUT_SECONDS: Final = 5.0
_LISTINGS_AT_ONCE: Final = 4

ResourceKind = Literal["node", "pipeline", "container"]


@dataclass(frozen=True, slots=True)
class StateFields:
    """Where a status event keeps its states, and the state to assume for a resource never seen."""

    kind: ResourceKind
    old: str
    new: str
    unknown: str | None


def _state_fields(event_type: EventType) -> StateFields:
    kind = cast(ResourceKind, event_type.resource)
    if event_type is EventType.PIPELINE_STATUS:
        return StateFields(kind, "old_status", "new_status", None)
    return StateFields(kind, "old_state", "new_state", "unknown")


STATE_FIELDS: Final[dict[str, StateFields]] = {
    event_type.value: _state_fields(event_type) for event_type in EventType.of_kind(EventKind.STATUS)
}
"""The event types that are transitions (the status kind), by type."""


def kv_token(resource_id: str) -> str:
    """A resource id as a KV key token: `:` (not allowed in KV keys) becomes `=` (never in ids)."""
    return resource_id.replace(":", "=")


def state_key(kind: str, resource_id: str) -> str:
    return f"{kind}.{kv_token(resource_id)}"


def _resource_id_of(key: str) -> str:
    return key.split(".", 1)[1].replace("=", ":")


@dataclass(frozen=True, slots=True)
class ResourceState:
    """One resource's current state as the bucket holds it, with the key's revision."""

    kind: str
    resource_id: str
    state: str
    event_id: str
    seq: int | None
    event: dict[str, Any]
    claimed_at: str
    revision: int

    @property
    def pending(self) -> bool:
        """Claimed in the bucket, but its event not yet known to be stored."""
        return self.seq is None

    @classmethod
    def from_value(cls, key: str, value: bytes, revision: int) -> "ResourceState":
        data = pydantic_core.from_json(value)
        return cls(
            kind=key.split(".", 1)[0],
            resource_id=_resource_id_of(key),
            state=data["state"],
            event_id=data["event_id"],
            seq=data.get("seq"),
            event=data["event"],
            claimed_at=data.get("claimed_at", ""),
            revision=revision,
        )

    def value(self, seq: int | None) -> bytes:
        return pydantic_core.to_json(
            {
                "state": self.state,
                "event_id": self.event_id,
                "seq": seq,
                "claimed_at": self.claimed_at,
                "event": self.event,
            }
        )

    def public(self) -> dict[str, Any]:
        """The JSON a client gets: the state, and the event that made it (with its sequence)."""
        return {"id": self.resource_id, "state": self.state, "seq": self.seq, "event": self.event}


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """What became of one status report: `stored`, `duplicate`, `unchanged` or `failed`."""

    status: Literal["stored", "duplicate", "unchanged", "failed"]
    seq: int | None
    state: str | None
    error: str | None = None


StatePredicate = Callable[[str | None], bool]


def state_bucket_config(replicas: int) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=STATE_BUCKET,
        description="Current state of each node, pipeline and container",
        history=1,
        replicas=replicas,
    )


class ResourceStates:
    """The bucket of current states, and the one way to change a state: `apply` a status event."""

    def __init__(self, publisher: EventPublisher, replicas: int = 1) -> None:
        self._publisher = publisher
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._js: JetStreamContext | None = None
        self._listings = asyncio.Semaphore(_LISTINGS_AT_ONCE)

    async def open(self, js: JetStreamContext) -> None:
        """Create or bind the bucket; run on every (re)connection."""
        self._js = js
        self._kv = await ensure_key_value(js, state_bucket_config(self._replicas))

    @property
    def connected(self) -> bool:
        return self._kv is not None and self._publisher.is_connected

    @property
    def kv(self) -> KeyValue:
        if self._kv is None or not self._publisher.is_connected:
            raise StoreUnavailable("the resource state bucket is not open yet (not connected to NATS)")
        return self._kv

    async def get(self, kind: str, resource_id: str) -> ResourceState | None:
        key = state_key(kind, resource_id)
        try:
            entry = await self.kv.get(key, validate_keys=False)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        try:
            return ResourceState.from_value(key, entry.value, entry.revision)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            # Not written by a collector (anyone with rights on the bucket can write): the state is
            # unknown; the key is removed so that the next report starts it afresh.
            log.warning(
                "unreadable resource state removed", key=key, error=f"{type(error).__name__}: {error}"
            )
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self.kv.delete(key, last=entry.revision, validate_keys=False)
            return None

    async def list(self, kind: str = "*") -> list[ResourceState]:
        """Every resource of one kind (`*`: all), read from the server (not from a cache).

        Each listing reads through a consumer of its own; a few at a time, so that a burst of
        listings waits here instead of filling the server's consumer limit.
        """
        if self._js is None or not self.connected:
            raise StoreUnavailable("the resource state bucket is not open yet (not connected to NATS)")
        async with self._listings:
            entries = await read_current_values(
                self._js, STATE_BUCKET, f"{kind}.*", timeout=_LIST_TIMEOUT_SECONDS
            )
        states = []
        for entry in entries:
            try:
                states.append(ResourceState.from_value(entry.key, entry.value, entry.revision))
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("unreadable resource state not listed", key=entry.key)
        return sorted(states, key=lambda s: (s.kind, s.resource_id))

    async def apply(self, event: EventRecord, *, only_from: StatePredicate | None = None) -> TransitionResult:
        """Store `event` if it changes its resource's state; fill its old state when absent.

        `only_from`, when given, limits the transition to current states it accepts (a heartbeat
        brings a node online only from offline or unknown); otherwise the report is `unchanged`.
        """
        fields = STATE_FIELDS[event.event]
        key = state_key(fields.kind, event.resource_id)
        new_state: str = event.data[fields.new]
        producer_old = event.data.get(fields.old) is not None
        for _ in range(_MAX_ATTEMPTS):
            current = await self.get(fields.kind, event.resource_id)
            if current is not None and current.pending:
                completed = await self._complete(current)
                if completed.status == "failed" or current.event_id == event.id:
                    return completed
                continue
            if current is not None and current.event_id == event.id:
                return TransitionResult("duplicate", current.seq, current.state)
            current_state = current.state if current is not None else None
            if new_state == current_state or (only_from is not None and not only_from(current_state)):
                return TransitionResult("unchanged", current.seq if current else None, current_state)
            if not producer_old and (current_state or fields.unknown):
                # First in `data`, where the models' field order puts it.
                rest = {k: v for k, v in event.data.items() if k != fields.old}
                event.fields["data"] = {fields.old: current_state or fields.unknown} | rest
            payload = event.to_json()
            claim = ResourceState(
                kind=fields.kind,
                resource_id=event.resource_id,
                state=new_state,
                event_id=event.id,
                seq=None,
                event=pydantic_core.from_json(payload),
                claimed_at=utc_now_rfc3339(),
                revision=0,
            )
            try:
                if current is None:
                    revision = await self.kv.create(key, claim.value(None), validate_keys=False)
                else:
                    revision = await self.kv.update(
                        key, claim.value(None), last=current.revision, validate_keys=False
                    )
            except KeyWrongLastSequenceError:
                continue  # another report changed the state meanwhile: judge against the new one
            stored = await self._store(claim, payload, revision)
            # Our claim is new: if another report completed it first, it is still this report's event,
            # stored once.
            return (
                TransitionResult("stored", stored.seq, stored.state)
                if stored.status == "duplicate"
                else stored
            )
        return TransitionResult(
            "failed", None, None, f"the state of {key} kept changing concurrently; retry with the same id"
        )

    async def _store(self, claim: ResourceState, payload: bytes, revision: int) -> TransitionResult:
        """Publish a claimed transition and record its sequence in the bucket."""
        message = self._publisher.outgoing(claim.event["event"], claim.resource_id, claim.event_id, payload)
        try:
            (result,) = await self._publisher.publish_messages([message])
        except StoreUnavailable as error:
            return TransitionResult("failed", None, claim.state, str(error))
        if result.seq is None:
            return TransitionResult("failed", None, claim.state, result.error)
        key = state_key(claim.kind, claim.resource_id)
        try:
            await self.kv.update(key, claim.value(result.seq), last=revision, validate_keys=False)
        except KeyWrongLastSequenceError:
            pass  # a later transition already replaced this one; its own sequence is recorded there
        except Exception as error:  # the event is stored; a missing seq only delays the next report
            log.warning("transition stored, recording its sequence failed", key=key, error=str(error))
        status: Literal["stored", "duplicate"] = "duplicate" if result.duplicate else "stored"
        return TransitionResult(status, result.seq, claim.state)

    async def _complete(self, pending: ResourceState) -> TransitionResult:
        """Store a transition that was claimed but not (known to be) stored; at most once.

        Its event may be stored already (the claimer died before recording the sequence), longer
        ago than the duplicate window, where `Nats-Msg-Id` no longer protects it. Only the claimer
        publishes on a pending resource's status subject, so if the last event there is this one,
        it is stored: its sequence is recorded instead of storing it again.
        """
        subject = event_subject(pending.event["event"], pending.resource_id)
        try:
            assert self._js is not None
            last = await self._js.get_last_msg(EVENTS_STREAM, subject, direct=True)
        except NotFoundError:
            last = None
        # The id from the header the collector stores it under: the body may be anything that
        # someone else stored on the subject.
        if last is not None and (last.headers or {}).get(MSG_ID_HEADER) == pending.event_id:
            key = state_key(pending.kind, pending.resource_id)
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self.kv.update(key, pending.value(last.seq), last=pending.revision, validate_keys=False)
            return TransitionResult("duplicate", last.seq, pending.state)
        payload = pydantic_core.to_json(pending.event)
        return await self._store(pending, payload, pending.revision)

    async def sweep_pending(self, older_than: timedelta) -> int:
        """Store every transition pending for longer than `older_than` (its claimer failed or died)."""
        pending = [s for s in await self.list() if s.pending and _age(s.claimed_at) > older_than]
        for state in pending:
            result = await self._complete(state)
            log.info(
                "pending transition completed",
                key=state_key(state.kind, state.resource_id),
                status=result.status,
            )
        return len(pending)


def _age(claimed_at: str) -> timedelta:
    try:
        return datetime.now(UTC) - datetime.fromisoformat(claimed_at)
    except ValueError:
        return timedelta.max


async def run_pending_sweeps(states: ResourceStates, every: timedelta, stopping: asyncio.Event) -> None:
    """Sweep pending transitions every `every` until `stopping` is set."""
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), every.total_seconds())
        except TimeoutError:
            try:
                await states.sweep_pending(older_than=every)
            except Exception as error:  # NATS away: the next sweep tries again
                log.warning("pending transition sweep failed", error=f"{type(error).__name__}: {error}")
