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
from sse_edge.time_window import TimeWindow

EVENTS_DELIVERED = Counter(
    "eventhandler_edge_events_queued", "Event frames queued for clients (one per client per event)."
)


class ClientClosed(Exception):
    """The client is gone or being closed; stop producing for it."""


class ClientStream:
    """One connected client: bounded queues of ready frames and a wake-up signal.

    Two queues, written in this order: history (frames a replay pushes, with backpressure) and
    live (frames the fan-out offers). A client starts *holding*: live frames are queued but not
    written until `release`, which drops the live frames the replay already covered. That is
    the hand-over from history to live: no gap, because the client is in the index before the
    replay reads the stream's end, and no duplicate, because of the release sequence.

    The writer takes everything ready at once (`take`), so a burst costs one socket write. When
    the live queue would exceed `max_bytes` the client is closed with reason "overflow": it
    resumes from its Last-Event-ID instead of holding memory for a reader that is not reading.
    """

    __slots__ = (
        "_history",
        "_history_bytes",
        "_history_room",
        "_live",
        "_live_bytes",
        "close_reason",
        "farewell",
        "filter",
        "floor",
        "holding",
        "max_bytes",
        "peer",
        "wake",
        "window",
    )

    def __init__(
        self, subject_filter: SubjectFilter, max_bytes: int, peer: str, window: TimeWindow | None = None
    ) -> None:
        self.filter = subject_filter
        self.window = window if window is not None and window.bounded else None
        self.max_bytes = max_bytes
        self.peer = peer
        self.wake = asyncio.Event()
        self.close_reason: str | None = None
        self.farewell = b""
        self.holding = True
        self.floor = 0
        self._live: list[tuple[int, bytes]] = []
        self._live_bytes = 0
        self._history: list[bytes] = []
        self._history_bytes = 0
        self._history_room = asyncio.Event()
        self._history_room.set()

    def offer(self, seq: int, frame: bytes) -> bool:
        """Queue a live frame; False when not wanted, closed, or just overflowed."""
        if self.close_reason is not None or seq <= self.floor:
            return False
        if self.window is not None and not self.window.contains(frame):
            return False
        if self._live_bytes + len(frame) > self.max_bytes:
            self.close("overflow")
            return False
        self._live.append((seq, frame))
        self._live_bytes += len(frame)
        if not self.holding:
            self.wake.set()
        return True

    def push_history_nowait(self, frame: bytes) -> bool:
        """Queue a history frame if there is room; False when the caller must `push_history`."""
        if self._history_bytes >= self.max_bytes or self.close_reason is not None:
            return False
        self._history.append(frame)
        self._history_bytes += len(frame)
        self.wake.set()
        return True

    async def push_history(self, frame: bytes) -> None:
        """Queue a history frame, waiting while the writer is a buffer behind.

        Raises:
            ClientClosed: when the client is closing; the replay should stop.
        """
        while self._history_bytes >= self.max_bytes and self.close_reason is None:
            self._history_room.clear()
            await self._history_room.wait()
        if self.close_reason is not None:
            raise ClientClosed(self.close_reason)
        self._history.append(frame)
        self._history_bytes += len(frame)
        self.wake.set()

    def release(self, after_seq: int, marker: bytes = b"") -> None:
        """End the replay: `marker` follows the history, then live frames after `after_seq`."""
        self.floor = after_seq
        kept = [(seq, frame) for seq, frame in self._live if seq > after_seq]
        self._live = kept
        self._live_bytes = sum(len(frame) for _, frame in kept)
        if marker:
            self._history.append(marker)
            self._history_bytes += len(marker)
        self.holding = False
        self.wake.set()

    def take(self) -> bytes:
        """Everything ready to write, as one chunk: history first, then live unless holding."""
        parts = self._history
        self._history = []
        self._history_bytes = 0
        self._history_room.set()
        if not self.holding and self._live:
            parts.extend(frame for _, frame in self._live)
            self._live.clear()
            self._live_bytes = 0
        self.wake.clear()
        return b"".join(parts)

    def close(self, reason: str, farewell: bytes = b"") -> None:
        """Stop after what is queued; `farewell` (a control event) is the last thing written."""
        if self.close_reason is None:
            self.close_reason = reason
            self.farewell = farewell
        self._history_room.set()
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

    def publish(self, event_type: str, resource_id: str, seq: int, frame: bytes) -> int:
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
                    delivered += client.offer(seq, frame)
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
