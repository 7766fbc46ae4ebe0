"""Alert state in the JetStream key-value bucket `ALERT_EVALUATOR`.

One key per resource with alerts under way holds its pending and firing alerts and its clock as
one record (a node in trouble updates a dozen alerts per sample: one write instead of a dozen
keeps commits small); a checkpoint key holds the stream position and stream time reached; a lease
key says which replica is active.

Every commit writes the changed resources and the new checkpoint in one atomic batch, so the
stored state always belongs to exactly the stored position: after a crash the evaluator reloads
it and resumes from that position, neither re-firing nor forgetting an alert. The checkpoint
write expects the revision this replica last wrote: once another replica has claimed the
checkpoint, an old holder's commit is refused as a whole.
"""

import json
import math
from dataclasses import dataclass
from typing import Any, Final

import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from alert_evaluator.alert_state import AlertEntry
from alert_evaluator.engine import ResourceClock
from eh_runtime.connection import NatsConnection
from eh_runtime.jetstream import (
    ATOMIC_BATCH_MAX,
    AtomicBatchSender,
    BatchRejected,
    KeyWrite,
    enable_atomic_batches,
)
from eh_runtime.kv import ensure_key_value

log = structlog.get_logger(__name__)

BUCKET: Final = "ALERT_EVALUATOR"
CHECKPOINT_KEY: Final = "checkpoint"
LEASE_KEY: Final = "lease"
_ENTRY_PREFIX: Final = "alert."
_LOAD_TIMEOUT_SECONDS: Final = 10.0


class CheckpointTaken(Exception):
    """Another replica wrote the checkpoint: this one no longer owns the state."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int  # last stream sequence whose effects are in the stored state (0: none yet)
    stream_time: float  # stream time reached (-inf: none yet)
    revision: int  # KV revision of the checkpoint key (0: never written)
    stream_created: str | None = None  # creation time of the EVENTS stream `seq` belongs to

    def record(self, replica: str) -> bytes:
        stream_time = None if math.isinf(self.stream_time) else self.stream_time
        record = {"seq": self.seq, "stream_time": stream_time, "replica": replica}
        if self.stream_created is not None:
            record["stream_created"] = self.stream_created
        return json.dumps(record).encode()


@dataclass(frozen=True, slots=True)
class StreamIdentity:
    """Which EVENTS stream a position counts in: its creation time, and how far it goes."""

    created: str
    last_seq: int


@dataclass(frozen=True, slots=True)
class StoredState:
    checkpoint: Checkpoint
    entries: list[AlertEntry]
    clocks: dict[str, ResourceClock]


def resource_key(resource_id: str) -> str:
    # Key tokens allow [-/_=.A-Za-z0-9]; resource ids may hold ':', which '=' stands for
    # ('=' is not allowed in resource ids, so the mapping is one to one).
    return f"{_ENTRY_PREFIX}{resource_id.replace(':', '=')}"


async def provision_state_bucket(js: JetStreamContext, replicas: int) -> KeyValue:
    """The evaluator's bucket: created if missing (file storage, one value per key, atomic batches).

    Run by the evaluator on every connection and by the admin's provisioning: once the bucket is
    there, this only reads it (the evaluator's NATS identity may not create or change it).
    """
    config = KeyValueConfig(
        bucket=BUCKET,
        description="alert-evaluator: pending and firing alerts, checkpoint, lease",
        history=1,
        storage=StorageType.FILE,
        replicas=replicas,
    )
    # Once created, the bucket's stream differs from a fresh KeyValueConfig (atomic batches
    # are on), so an existing bucket is opened, not "created" again.
    kv = await ensure_key_value(js, config)
    await enable_atomic_batches(js, f"KV_{BUCKET}")
    return kv


class AlertStateStore:
    def __init__(self, connection: NatsConnection, replicas: int) -> None:
        self._connection = connection
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._stored_keys: set[str] = set()
        self._batches: AtomicBatchSender | None = None

    @property
    def is_open(self) -> bool:
        return self._kv is not None

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("the state bucket is not open yet")
        return self._kv

    def close(self) -> None:
        """Forget the bucket handle: the next `open` looks the bucket up (or creates it) again."""
        self._kv = None

    async def open(self) -> KeyValue:
        """Create the bucket if needed (file storage, one value per key, atomic batches)."""
        self._kv = await provision_state_bucket(self._connection.jetstream(), self._replicas)
        return self._kv

    async def load(self) -> StoredState:
        """The stored checkpoint, every stored alert and the clocks of their resources."""
        kv = self.kv
        try:
            stored = await kv.get(CHECKPOINT_KEY)
        except KeyNotFoundError as missing:
            # A removed key still has a revision (its marker) until the marker expires.
            revision = missing.entry.revision if missing.entry is not None else 0
            checkpoint = Checkpoint(0, -math.inf, revision or 0)
        else:
            checkpoint = _checkpoint_of(stored.value or b"{}", stored.revision or 0)
        entries: list[AlertEntry] = []
        clocks: dict[str, ResourceClock] = {}
        self._stored_keys.clear()
        watcher = await kv.watch(f"{_ENTRY_PREFIX}>", ignore_deletes=True)
        try:
            while True:
                update = await watcher.updates(timeout=_LOAD_TIMEOUT_SECONDS)  # type: ignore[no-untyped-call]
                if update is None:
                    break  # the watcher's end of the initial values
                try:
                    record = json.loads(update.value or b"")
                    if isinstance(record, list):  # stored before resources had clocks
                        record = {"alerts": record}
                    resource_entries = [AlertEntry.from_record(r) for r in record["alerts"]]
                    if resource_entries and record.get("clock") is not None:
                        clocks[resource_entries[0].resource_id] = ResourceClock.from_record(record["clock"])
                    entries += resource_entries
                    self._stored_keys.add(update.key)
                except (ValueError, KeyError, TypeError) as error:
                    log.warning("unreadable alert state skipped", key=update.key, error=str(error))
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return StoredState(checkpoint, entries, clocks)

    async def claim(self, checkpoint: Checkpoint, replica: str, stream: StreamIdentity) -> Checkpoint:
        """Rewrite the checkpoint as this replica's: from now on, an earlier holder cannot commit.

        A position in another EVENTS stream than `stream` (deleted and created again since it was
        stored, or one that never held that sequence) starts over at the beginning of this one.

        Raises:
            CheckpointTaken: someone else wrote it since it was loaded.
        """
        seq = checkpoint.seq
        other_stream = checkpoint.stream_created not in (None, stream.created)
        if seq and (other_stream or seq > stream.last_seq):
            log.warning(
                "the EVENTS stream was replaced since the stored position; evaluating it from its start",
                stored_seq=seq,
                stored_stream_created=checkpoint.stream_created,
                stream_created=stream.created,
                stream_last_seq=stream.last_seq,
            )
            seq = 0
        return await self._write(
            [], checkpoint, seq, checkpoint.stream_time, replica, stream_created=stream.created
        )

    async def commit(
        self,
        checkpoint: Checkpoint,
        changes: list[tuple[str, list[AlertEntry], ResourceClock | None]],
        seq: int,
        stream_time: float,
        replica: str,
    ) -> Checkpoint:
        """Store the alerts of each changed resource (none left: the key goes) and the new position,
        atomically.

        Raises:
            CheckpointTaken: another replica claimed the checkpoint; nothing was stored.
        """
        writes = []
        for resource_id, entries, clock in changes:
            key = resource_key(resource_id)
            if entries:
                record = {
                    "clock": None if clock is None else clock.to_record(),
                    "alerts": [e.to_record() for e in entries],
                }
                writes.append(KeyWrite(key, json.dumps(record).encode()))
                self._stored_keys.add(key)
            elif key in self._stored_keys:
                writes.append(KeyWrite(key, None))
                self._stored_keys.discard(key)
        return await self._write(writes, checkpoint, seq, stream_time, replica)

    async def _write(
        self,
        writes: list[KeyWrite],
        checkpoint: Checkpoint,
        seq: int,
        stream_time: float,
        replica: str,
        *,
        stream_created: str | None = None,
    ) -> Checkpoint:
        timeout = self._connection.settings.request_timeout.total_seconds()
        if self._batches is None:
            self._batches = AtomicBatchSender(self._connection.client)
        batches = self._batches
        # One atomic batch holds up to 1000 messages. The evaluation loop commits well before
        # that; only a mass change (a reload removing thousands of alerts) needs several
        # batches, and then only the last one, with the checkpoint, is fenced.
        room = ATOMIC_BATCH_MAX - 1
        while len(writes) > room:
            log.warning("alert state commit split into several batches", writes=len(writes))
            await batches.write_keys(BUCKET, writes[:room], timeout)
            writes = writes[room:]
        created = stream_created or checkpoint.stream_created
        new = Checkpoint(seq, stream_time, 0, created)
        fenced = KeyWrite(CHECKPOINT_KEY, new.record(replica), expected_revision=checkpoint.revision)
        try:
            revision = await batches.write_keys(BUCKET, [*writes, fenced], timeout)
        except BatchRejected as error:
            if error.wrong_revision:
                raise CheckpointTaken(str(error)) from None
            raise
        return Checkpoint(seq, stream_time, revision, created)

    async def lease_holder(self) -> dict[str, Any] | None:
        try:
            stored = await self.kv.get(LEASE_KEY)
        except KeyNotFoundError:
            return None
        holder: dict[str, Any] = json.loads(stored.value or b"{}")
        return holder


def _checkpoint_of(value: bytes, revision: int) -> Checkpoint:
    """The checkpoint a stored value holds; an unreadable one (not written by an evaluator) counts
    as none, at its revision, so that the next commit replaces it instead of failing forever."""
    try:
        record = json.loads(value)
        # "watermark": the name before stream time (event time then; close enough to resume)
        stream_time = record.get("stream_time", record.get("watermark"))
        created = record.get("stream_created")
        return Checkpoint(
            int(record.get("seq", 0)),
            -math.inf if stream_time is None else float(stream_time),
            revision,
            created if isinstance(created, str) else None,
        )
    except (ValueError, TypeError, AttributeError) as error:
        log.error(
            "unreadable checkpoint: evaluating from the start", error=f"{type(error).__name__}: {error}"
        )
        return Checkpoint(0, -math.inf, revision)
