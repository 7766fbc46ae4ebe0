"""In-memory fan-out: each live event goes to exactly the filter groups that want it.

Groups are indexed by what their filter names, so the cost of an event grows with the distinct
filters that want it, not with all clients. A group sits in exactly one kind of bucket
(everything, by type, by resource, or by type-and-resource pair), and an event matches at most one
key of each kind, so no group is offered the same event twice.
"""

from collections.abc import Iterator
from typing import Any

from sse_edge.live.filter_group import FilterGroup, FramedEvent, GroupKey
from sse_edge.live.subscriber import Subscriber

_Placement = tuple[dict[Any, set[FilterGroup]] | None, Any]


class FanoutIndex:
    def __init__(self, client_buffer_bytes: int) -> None:
        self.client_buffer_bytes = client_buffer_bytes
        self._subscribers: set[Subscriber] = set()
        self._groups: dict[GroupKey, FilterGroup] = {}
        self._everything: set[FilterGroup] = set()
        self._by_type: dict[str, set[FilterGroup]] = {}
        self._by_resource: dict[str, set[FilterGroup]] = {}
        self._by_pair: dict[tuple[str, str], set[FilterGroup]] = {}

    def __len__(self) -> int:
        return len(self._subscribers)

    def __iter__(self) -> Iterator[Subscriber]:
        return iter(list(self._subscribers))

    @property
    def group_count(self) -> int:
        return len(self._groups)

    def add(self, client: Subscriber) -> None:
        """Register `client`: from now on every live event it wants is kept for it."""
        key: GroupKey = (client.filter, client.window)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = FilterGroup(key, self.client_buffer_bytes)
            for buckets, bucket_key in self._placements(group):
                if buckets is None:
                    self._everything.add(group)
                else:
                    buckets.setdefault(bucket_key, set()).add(group)
        self._subscribers.add(client)
        client.join(group)

    def remove(self, client: Subscriber) -> None:
        self._subscribers.discard(client)
        group = client.group
        if group is None:
            return
        group.remove_reader(client)
        if group.readers or self._groups.get(group.key) is not group:
            return
        del self._groups[group.key]
        for buckets, bucket_key in self._placements(group):
            if buckets is None:
                self._everything.discard(group)
                continue
            bucket = buckets.get(bucket_key)
            if bucket is not None:
                bucket.discard(group)
                if not bucket:
                    # Empty sets would otherwise pile up for every resource id ever asked for.
                    del buckets[bucket_key]

    def publish(self, event_type: str, resource_id: str, event: FramedEvent) -> None:
        """Append `event` to the log of every group that wants it."""
        for bucket in (
            self._everything,
            self._by_type.get(event_type),
            self._by_resource.get(resource_id),
            self._by_pair.get((event_type, resource_id)),
        ):
            if bucket:
                for group in bucket:
                    group.append(event)

    def _placements(self, group: FilterGroup) -> list[_Placement]:
        subject_filter = group.key[0]
        types = [t.value for t in subject_filter.types]
        resources = list(subject_filter.resource_ids)
        if types and resources:
            return [(self._by_pair, (t, r)) for t in types for r in resources]
        if types:
            return [(self._by_type, t) for t in types]
        if resources:
            return [(self._by_resource, r) for r in resources]
        return [(None, None)]
