"""In-memory fan-out: each stored event goes to exactly the connected clients whose filter wants it.

Clients are indexed by what they filter on, so the cost of an event grows with the clients that
want it, not with all clients. A client sits in exactly one kind of bucket (everything, by type,
by resource, or by type-and-resource pair), and an event matches at most one key of each kind, so
no client can be offered the same event twice.
"""

import asyncio
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter

from eh_contracts.subjects import SubjectFilter

EVENTS_DELIVERED = Counter(
    "eventhandler_edge_events_queued", "Event frames queued for clients (one per client per event)."
)


class ClientStream:
    """One connected client: a bounded queue of ready frames and a wake-up signal.

    The writer takes everything queued at once (`take`), so a burst costs one socket write.
    When the queue would exceed `max_bytes` the client is closed with reason "overflow": it
    resumes from its Last-Event-ID instead of holding memory for a reader that is not reading.
    """

    __slots__ = ("_frames", "_queued_bytes", "close_reason", "filter", "max_bytes", "peer", "wake")

    def __init__(self, subject_filter: SubjectFilter, max_bytes: int, peer: str) -> None:
        self.filter = subject_filter
        self.max_bytes = max_bytes
        self.peer = peer
        self.wake = asyncio.Event()
        self.close_reason: str | None = None
        self._frames: list[bytes] = []
        self._queued_bytes = 0

    def offer(self, frame: bytes) -> bool:
        """Queue a frame; False when the client is closed or has just overflowed."""
        if self.close_reason is not None:
            return False
        if self._queued_bytes + len(frame) > self.max_bytes:
            self.close("overflow")
            return False
        self._frames.append(frame)
        self._queued_bytes += len(frame)
        self.wake.set()
        return True

    def take(self) -> bytes:
        """Everything queued, as one chunk, in arrival order."""
        chunk = b"".join(self._frames)
        self._frames.clear()
        self._queued_bytes = 0
        self.wake.clear()
        return chunk

    def close(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self.wake.set()


_Placement = tuple[dict[Any, set[ClientStream]] | None, Any]


class FanoutIndex:
    def __init__(self) -> None:
        self._clients: set[ClientStream] = set()
        self._everything: set[ClientStream] = set()
        self._by_type: dict[str, set[ClientStream]] = {}
        self._by_resource: dict[str, set[ClientStream]] = {}
        self._by_pair: dict[tuple[str, str], set[ClientStream]] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def __iter__(self) -> Iterator[ClientStream]:
        return iter(list(self._clients))

    def add(self, client: ClientStream) -> None:
        self._clients.add(client)
        for buckets, key in self._placements(client):
            if buckets is None:
                self._everything.add(client)
            else:
                buckets.setdefault(key, set()).add(client)

    def remove(self, client: ClientStream) -> None:
        self._clients.discard(client)
        for buckets, key in self._placements(client):
            if buckets is None:
                self._everything.discard(client)
                continue
            bucket = buckets.get(key)
            if bucket is not None:
                bucket.discard(client)
                if not bucket:
                    # Empty sets would otherwise pile up for every resource id ever asked for.
                    del buckets[key]

    def publish(self, event_type: str, resource_id: str, frame: bytes) -> int:
        """Offer `frame` to every client that wants it; returns how many accepted it."""
        delivered = 0
        for bucket in (
            self._everything,
            self._by_type.get(event_type),
            self._by_resource.get(resource_id),
            self._by_pair.get((event_type, resource_id)),
        ):
            if bucket:
                for client in bucket:
                    delivered += client.offer(frame)
        if delivered:
            EVENTS_DELIVERED.inc(delivered)
        return delivered

    def _placements(self, client: ClientStream) -> list[_Placement]:
        types = [t.value for t in client.filter.types]
        resources = list(client.filter.resource_ids)
        if types and resources:
            return [(self._by_pair, (t, r)) for t in types for r in resources]
        if types:
            return [(self._by_type, t) for t in types]
        if resources:
            return [(self._by_resource, r) for r in resources]
        return [(None, None)]
