"""The active replica's work: evaluate fetched events, publish the alerts, commit, acknowledge.

Each fetched batch is one step, so that a crash at any point is harmless:
1. evaluate the events (pure, in memory); a message that is not a valid event, or whose data
   makes a condition raise, is skipped and kept as a dead letter: one bad message never stops
   evaluation;
2. publish the alert events, with deterministic ids, and wait for their acks; an alert whose
   event is already the last one on its own subject was published by a step that crashed before
   its commit, and is not published again (JetStream's duplicate window alone would forget it);
3. commit the changed alerts and the new position atomically, fenced by the checkpoint revision;
4. acknowledge the messages.
Any failure (NATS gone, publish not acked) ends the step; the replica supervisor restarts from
the stored state and position.
"""

import asyncio
import math
import time
from datetime import timedelta
from typing import Final

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from alert_evaluator.alert_state import Transition
from alert_evaluator.alerts import alert_event
from alert_evaluator.dead_letters import DeadLetters
from alert_evaluator.engine import AlertEngine
from alert_evaluator.evaluator_metrics import ALERTS, ALREADY_PUBLISHED, EVALUATED, POSITION, TRANSITIONS
from alert_evaluator.event_decoding import SkipReason, Unevaluable, decode_event, delivery, message_id
from alert_evaluator.rules import RuleSet
from alert_evaluator.state_store import AlertStateStore, Checkpoint, StoredState
from eh_contracts.envelope import SystemAlertEvent
from eh_runtime.event_publisher import EventPublisher
from eh_runtime.fault_points import crash_point
from eh_runtime.stream import EVENTS_STREAM

log = structlog.get_logger(__name__)

COMMIT_AT_CHANGES: Final = 800
"""Commit in the middle of a batch once this many resources' alerts changed: one commit stays one
atomic batch (at most 1000 writes)."""
_LOOKUPS_IN_FLIGHT: Final = 32
AFTER_PUBLISH: Final = "alert-evaluator:after-publish"
"""The crash point between publishing alerts and committing their state (`eh_runtime.fault_points`)."""


class AlertsNotStored(Exception):
    pass


class EvaluationStep:
    """The state one active term works on: the engine, the position, the checkpoint."""

    def __init__(
        self,
        *,
        replica_id: str,
        rules: RuleSet,
        state: StoredState,
        checkpoint: Checkpoint,
        store: AlertStateStore,
        publisher: EventPublisher,
        js: JetStreamContext,
        dead_letters: DeadLetters,
        max_clock_skew: timedelta,
    ) -> None:
        self.engine = AlertEngine(rules, state.entries, checkpoint.stream_time, state.clocks)
        self.position = checkpoint.seq
        self._checkpoint = checkpoint
        self._replica_id = replica_id
        self._store = store
        self._publisher = publisher
        self._js = js
        self._dead_letters = dead_letters
        self._max_skew = max_clock_skew.total_seconds()
        stream_time = checkpoint.stream_time
        self._clock_anchor = None if math.isinf(stream_time) else (stream_time, time.monotonic())
        self._gauges_due = 0.0
        self._lookups = asyncio.Semaphore(_LOOKUPS_IN_FLIGHT)

    @property
    def committed(self) -> int:
        """The stream sequence up to which the stored state is complete."""
        return self._checkpoint.seq

    @property
    def checkpoint(self) -> Checkpoint:
        return self._checkpoint

    async def start(self) -> None:
        """Resolve restored alerts of rules that are gone; schedule the others."""
        await self.commit(self.engine.start(), [])

    async def evaluate(self, messages: list[Msg]) -> None:
        engine = self.engine
        transitions: list[Transition] = []
        handled: list[Msg] = []
        for msg in messages:
            handled.append(msg)
            seq, stored = delivery(msg)
            if seq <= self.position:
                continue  # evaluated before: a redelivery
            self.position = seq
            try:
                event = decode_event(msg.subject, msg.data, message_id(msg))
                if event.at > stored + self._max_skew:
                    ahead = event.at - stored
                    raise Unevaluable(SkipReason.FUTURE, f"stamped {ahead:.0f}s after it was stored")
                transitions += engine.observe(
                    event.event_type, event.resource_id, event.at, event.data, stored
                )
            except Unevaluable as skipped:
                self._dead_letters.add(seq, msg.subject, skipped.reason, skipped.detail)
            except Exception as error:  # anything a condition raises on this event's data
                detail = f"{type(error).__name__}: {str(error)[:200]}"
                self._dead_letters.add(seq, msg.subject, SkipReason.EVALUATION_ERROR, detail)
            if engine.pending_changes >= COMMIT_AT_CHANGES:
                transitions += engine.advance(engine.stream_time)
                await self.commit(transitions, handled)
                transitions, handled = [], []
        EVALUATED.inc(len(messages))
        transitions += engine.advance(engine.stream_time)
        await self.commit(transitions, handled)
        self._clock_anchor = (engine.stream_time, time.monotonic())

    async def tick(self) -> None:
        """No new events: stream time goes on at the pace of the wall clock from the last event
        stored, so that an alert due in a quiet moment (a node offline for its `for`) still fires."""
        if self._clock_anchor is None:
            return
        anchor_time, anchor_clock = self._clock_anchor
        transitions = self.engine.advance(anchor_time + (time.monotonic() - anchor_clock))
        if transitions or self.engine.pending_changes:
            await self.commit(transitions, [])

    async def replace_rules(self, rules: RuleSet) -> None:
        await self.commit(self.engine.replace_rules(rules), [])

    async def commit(self, transitions: list[Transition], messages: list[Msg]) -> None:
        engine = self.engine
        if transitions:
            await self._publish_alerts(transitions)
            crash_point(AFTER_PUBLISH)
        self._checkpoint = await self._store.commit(
            self._checkpoint, engine.take_changes(), self.position, engine.stream_time, self._replica_id
        )
        for msg in messages:
            await msg.ack()
        POSITION.set(self.position)
        if time.monotonic() >= self._gauges_due:  # counting walks every alert: once a second
            self._gauges_due = time.monotonic() + 1.0
            for phase, count in engine.counts().items():
                ALERTS.labels(phase).set(count)

    async def _publish_alerts(self, transitions: list[Transition]) -> None:
        pairs = []
        for transition in transitions:
            try:
                pairs.append((transition, alert_event(transition)))
            except Exception as error:  # never a step that fails forever on one alert
                log.error(
                    "alert event could not be built; not published",
                    rule=transition.rule_name,
                    resource_id=transition.resource_id,
                    error=f"{type(error).__name__}: {error}",
                )
        pairs = await self._not_yet_published(pairs)
        if not pairs:
            return
        events = [event for _, event in pairs]
        outcomes = await self._publisher.publish(list(events), [e.to_json() for e in events])
        failed = [o for o in outcomes if not o.stored]
        if failed:
            raise AlertsNotStored(f"{len(failed)} of {len(outcomes)} alert(s) not stored: {failed[0].error}")
        for (transition, _), outcome in zip(pairs, outcomes, strict=True):
            TRANSITIONS.labels(transition.rule_name, transition.state).inc()
            log.info(
                f"alert {transition.state}",
                alert=outcome.event.resource_id,
                rule=transition.rule_name,
                resource_id=transition.resource_id,
                reason=transition.reason,
                seq=outcome.ack.seq if outcome.ack else None,
                duplicate=bool(outcome.ack and outcome.ack.duplicate),
            )

    async def _not_yet_published(
        self, pairs: list[tuple[Transition, SystemAlertEvent]]
    ) -> list[tuple[Transition, SystemAlertEvent]]:
        """Leave out the alert events a crashed step already stored.

        A step publishes its alerts in order; if the last event stored on an alert's subject is
        one of this step's events for that alert, that one and the ones before it were published
        by an earlier attempt of the same step (same events, same ids: evaluation is
        deterministic) that crashed before its commit.
        """
        by_subject: dict[str, list[int]] = {}
        for index, (_, event) in enumerate(pairs):
            by_subject.setdefault(event.subject, []).append(index)
        subjects = list(by_subject)
        last_ids = await asyncio.gather(*(self._last_id(subject) for subject in subjects))
        published: set[int] = set()
        for subject, last_id in zip(subjects, last_ids, strict=True):
            indexes = by_subject[subject]
            ids = [pairs[i][1].id for i in indexes]
            if last_id in ids:
                published.update(indexes[: ids.index(last_id) + 1])
        if published:
            ALREADY_PUBLISHED.inc(len(published))
            log.warning(
                "alert events already stored by a step that did not commit; not published again",
                events=[pairs[i][1].id for i in sorted(published)],
            )
        return [pair for index, pair in enumerate(pairs) if index not in published]

    async def _last_id(self, subject: str) -> str | None:
        async with self._lookups:
            try:
                last = await self._js.get_last_msg(EVENTS_STREAM, subject, direct=True)
            except NotFoundError:
                return None
        headers = last.headers or {}
        return headers.get("Nats-Msg-Id")
