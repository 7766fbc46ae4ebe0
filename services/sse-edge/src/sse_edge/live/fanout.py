"""In-memory fan-out: each live event goes to exactly the filter groups that want it.

Groups are indexed by what their filter names, so the cost of an event grows with the distinct
filters that want it, not with all clients. A group sits in exactly one kind of bucket
(everything, by type, by resource, or by type-and-resource pair), and an event matches at most one
key of each kind, so no group is offered the same event twice.

A group with a filter expression is offered the events of its subjects and keeps those for which
the expression is true. The verdict is computed once per event per distinct expression, however
many groups (other subjects, other time windows) and clients hold it, and the event's payload is
parsed only when the first group with an expression is offered the event.
"""

from collections.abc import Callable, Iterator
from typing import Any

from eh_contracts.expressions import CompiledExpression
from eh_contracts.subjects import SubjectFilter
from sse_edge.event_selection import parse_envelope
from sse_edge.live.fanout_flush import FanoutFlush
from sse_edge.live.filter_group import FilterGroup, FramedEvent, GroupKey
from sse_edge.live.subscriber import Subscriber
from sse_edge.time_window import TimeWindow

_Placement = tuple[dict[Any, set[FilterGroup]] | None, Any]


class FanoutIndex:
    def __init__(self, client_buffer_bytes: int) -> None:
        self.client_buffer_bytes = client_buffer_bytes
        self._flush = FanoutFlush()  # one for every group: one pass per loop turn for all of them
        self._subscribers: set[Subscriber] = set()
        self._groups: dict[GroupKey, FilterGroup] = {}
        self._everything: set[FilterGroup] = set()
        self._by_type: dict[str, set[FilterGroup]] = {}
        self._by_resource: dict[str, set[FilterGroup]] = {}
        self._by_pair: dict[tuple[str, str], set[FilterGroup]] = {}
        self.last_seq = 0
        """The sequence of the last event published: every event up to it is in the groups' logs."""
        self._by_subscription: dict[str, Subscriber] = {}

    def __len__(self) -> int:
        return len(self._subscribers)

    def __iter__(self) -> Iterator[Subscriber]:
        return iter(list(self._subscribers))

    @property
    def group_count(self) -> int:
        return len(self._groups)

    @property
    def subscription_count(self) -> int:
        """Open streams that `PATCH /api/v1/subscriptions/{id}` can name."""
        return len(self._by_subscription)

    def add(self, client: Subscriber) -> None:
        """Register `client`: from now on every live event it wants is kept for it."""
        self._subscribers.add(client)
        if client.subscription_id is not None:
            self._by_subscription[client.subscription_id] = client
        client.join(self._group_for(client.filter, client.window, client.expression))

    def _group_for(
        self, subject_filter: SubjectFilter, window: TimeWindow | None, expression: CompiledExpression | None
    ) -> FilterGroup:
        key: GroupKey = (subject_filter, window, expression.canonical if expression else None)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = FilterGroup(key, self.client_buffer_bytes, self._flush, expression)
            for buckets, bucket_key in self._placements(group):
                if buckets is None:
                    self._everything.add(group)
                else:
                    buckets.setdefault(bucket_key, set()).add(group)
        return group

    def subscription(self, subscription_id: str) -> Subscriber | None:
        """The open stream `subscription_id` names on this edge, if any."""
        return self._by_subscription.get(subscription_id)

    def change_filters(
        self,
        client: Subscriber,
        subject_filter: SubjectFilter,
        expression: CompiledExpression | None,
        marker: Callable[[int], bytes],
    ) -> int:
        """Give `client` new filters, atomically at a stream sequence; returns the first sequence
        they apply to. `marker(from_seq)` is the control event written between the two.

        Nothing awaits in here: no event is published between reading the switch point and
        moving the client, so every event up to it went through the old filters and every later
        one goes through the new.
        """
        after_seq = max(self.last_seq, client.floor)
        old = client.group
        client.switch(
            self._group_for(subject_filter, client.window, expression), after_seq, marker(after_seq + 1)
        )
        if old is not None:
            self._forget_if_empty(old)
        return after_seq + 1

    def remove(self, client: Subscriber) -> None:
        self._subscribers.discard(client)
        if client.subscription_id is not None and self._by_subscription.get(client.subscription_id) is client:
            del self._by_subscription[client.subscription_id]
        group = client.group
        if group is None:
            return
        group.remove_reader(client)
        self._forget_if_empty(group)

    def _forget_if_empty(self, group: FilterGroup) -> None:
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

    def publish(self, event_type: str, resource_id: str, event: FramedEvent, payload: bytes = b"") -> None:
        """Append `event` (whose stored envelope is `payload`) to the log of every group that wants it."""
        self.last_seq = event.seq
        verdicts: dict[str, bool] | None = None
        envelope: dict[str, Any] | None = None
        for bucket in (
            self._everything,
            self._by_type.get(event_type),
            self._by_resource.get(resource_id),
            self._by_pair.get((event_type, resource_id)),
        ):
            if bucket:
                for group in bucket:
                    expression = group.expression
                    if expression is None:
                        group.append(event)
                        continue
                    if verdicts is None:
                        verdicts = {}
                    verdict = verdicts.get(expression.canonical)
                    if verdict is None:
                        if envelope is None:
                            envelope = parse_envelope(payload)
                        verdict = verdicts[expression.canonical] = expression.evaluate(envelope) is True
                    if verdict:
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
