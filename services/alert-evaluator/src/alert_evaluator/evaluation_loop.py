"""The evaluation loop: hold the lease, read events in stream order, publish alerts, commit.

One replica is active at a time (see `lease`); the others wait as standbys and take over
within a lease TTL. Why one active replica rather than partitions by resource: alert state
needs every event of a resource in order and a single event-time clock; JetStream gives both to
one consumer, and one process evaluates far more events than a build farm sends (see
bench/RESULTS.md). Partitioning would need a rebalancing protocol for no gain at this scale.

Each fetched batch is handled as one step, so that a crash at any point is harmless:
1. evaluate the events (pure, in memory);
2. publish the alert events, with deterministic ids, and wait for their acks: a retry of the
   same step after a crash publishes the same ids, which JetStream drops as duplicates;
3. commit the changed alerts and the new position atomically, fenced by the checkpoint revision;
4. acknowledge the messages.
Any failure (NATS gone, publish not acked) restarts the step from the stored state and position.
"""

import asyncio
import collections
import contextlib
import math
import time
from datetime import UTC, datetime
from typing import Any, Final

import nats.errors
import structlog
from nats.aio.msg import Msg
from prometheus_client import Counter, Gauge, Histogram

from alert_evaluator.alert_state import Transition
from alert_evaluator.alerts import alert_event, alert_id, log_event
from alert_evaluator.consumer import CONSUMER, position_consumer
from alert_evaluator.engine import AlertEngine
from alert_evaluator.event_decoding import decode_event
from alert_evaluator.lease import Lease, LeaseLost
from alert_evaluator.rules import RuleSet
from alert_evaluator.rules_file import RulesFileError, load_rules_file
from alert_evaluator.settings import EvaluatorSettings
from alert_evaluator.state_store import AlertStateStore, Checkpoint, CheckpointTaken
from eh_contracts.envelope import EventEnvelope
from eh_runtime.connection import NatsConnection
from eh_runtime.event_publisher import EventPublisher
from eh_runtime.jetstream import stream_sequence
from eh_runtime.stream import EVENTS_STREAM

log = structlog.get_logger(__name__)

EVALUATED = Counter("eventhandler_alert_events_evaluated", "Events the alert-evaluator evaluated.")
SKIPPED = Counter(
    "eventhandler_alert_events_skipped",
    "Events not evaluated: invalid (not an event envelope) or future (timestamp beyond the clock skew).",
    ["reason"],
)
TRANSITIONS = Counter(
    "eventhandler_alert_transitions", "Alert events published, by rule and state.", ["rule", "state"]
)
ACTIVE = Gauge("eventhandler_alert_evaluator_active", "1 while this replica holds the lease and evaluates.")
ALERTS = Gauge(
    "eventhandler_alert_evaluator_alerts", "Alerts under way on this replica, by phase.", ["phase"]
)
POSITION = Gauge("eventhandler_alert_evaluator_position", "Stream sequence of the last evaluated event.")
RELOADS = Counter("eventhandler_alert_rule_reloads", "Rules file reloads, by outcome.", ["outcome"])
STEP_SECONDS = Histogram(
    "eventhandler_alert_step_seconds",
    "Time to evaluate, publish, commit and acknowledge one fetched batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

COMMIT_AT_CHANGES: Final = 800
"""Commit in the middle of a batch once this many resources' alerts changed: one commit stays one
atomic batch (at most 1000 writes)."""
_LOG_BACKLOG: Final = 100
_MAX_BACKOFF_SECONDS: Final = 30.0


class AlertsNotStored(Exception):
    pass


class EvaluationLoop:
    def __init__(self, settings: EvaluatorSettings, connection: NatsConnection, rules: RuleSet) -> None:
        self.settings = settings
        self.rules = rules
        self._connection = connection
        self._store = AlertStateStore(connection, settings.stream.replicas)
        ttl = settings.lease_ttl.total_seconds()
        self._lease = Lease(connection, settings.replica_id, ttl)
        self._standby_poll = min(1.0, ttl / 5)
        self._fetch_timeout = min(1.0, ttl / 4)
        self._publisher = EventPublisher(connection)
        self.role = "starting"
        self.engine: AlertEngine | None = None
        self.position = 0
        self.last_error: str | None = None
        self._checkpoint = Checkpoint(0, -math.inf, 0)
        self._clock_anchor: tuple[float, float] | None = None
        self._gauges_due = 0.0
        self._reload_requested = False
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._logs: collections.deque[EventEnvelope] = collections.deque(maxlen=_LOG_BACKLOG)
        self._task: asyncio.Task[None] | None = None

    # --- control ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="alert-evaluation-loop")

    async def stop(self, timeout: float) -> None:
        """Finish the batch at hand, commit it, give up the lease."""
        self._stopping.set()
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            log.warning("evaluation loop did not stop in time; cancelled", timeout_s=timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def request_reload(self) -> None:
        """Reload the rules file at the next batch boundary (SIGHUP)."""
        log.info("rules reload requested", file=str(self.settings.rules_file))
        self._reload_requested = True
        self._wake.set()

    def record(self, level: str, message: str, context: dict[str, Any]) -> None:
        """Queue a `system_log` event; it is published as soon as NATS is reachable."""
        self._logs.append(log_event(level, message, self.settings.replica_id, context))

    @property
    def committed(self) -> int:
        """The stream sequence up to which the stored state is complete."""
        return self._checkpoint.seq

    @property
    def replica_id(self) -> str:
        return self.settings.replica_id

    async def lease_holder(self) -> dict[str, Any] | None:
        if not self._store.is_open or not self._connection.is_connected:
            return None
        return await self._store.lease_holder()

    def status(self) -> dict[str, Any]:
        watermark = self.engine.watermark if self.engine is not None else self._checkpoint.watermark
        return {
            "replica": self.replica_id,
            "role": self.role,
            "position": self.position,
            "committed": self.committed,
            "watermark": None if math.isinf(watermark) else _iso(watermark),
            "rules": {
                "source": self.rules.source,
                "checksum": self.rules.checksum,
                "count": len(self.rules.rules),
            },
            "alerts": self.engine.counts() if self.engine is not None else None,
            "last_error": self.last_error,
        }

    def alerts(self) -> list[dict[str, Any]]:
        if self.engine is None:
            return []
        return [
            {
                "alert_id": alert_id(entry.rule, entry.resource_id),
                "rule": entry.rule,
                "resource_id": entry.resource_id,
                "phase": entry.phase.value,
                "since": _iso(entry.since),
                "started_at": None if entry.started_at is None else _iso(entry.started_at),
                "value": entry.value,
            }
            for entry in self.engine
        ]

    # --- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.25
        try:
            while not self._stopping.is_set():
                if not self._connection.is_connected:
                    self.role = "waiting for NATS"
                    await self._pause(0.25)
                    continue
                try:
                    if not self._store.is_open:
                        await self._store.open()
                    await self._flush_logs()
                    await self._reload_if_requested()
                    if await self._lease.try_acquire():
                        await self._serve_as_active()
                    else:
                        self.role = "standby"
                        await self._pause(self._standby_poll)
                    backoff = 0.25
                except (LeaseLost, CheckpointTaken) as error:
                    log.warning("no longer the active replica", reason=str(error))
                    await self._lease.release()
                    self.role = "standby"
                except Exception as error:
                    self.role = "recovering"
                    self.last_error = f"{type(error).__name__}: {error}"
                    log.error("evaluation interrupted; resuming from the stored state", error=self.last_error)
                    await self._pause(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
        finally:
            self.role = "stopped"
            ACTIVE.set(0)
            await self._lease.release()
            with contextlib.suppress(Exception):
                await self._flush_logs()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _serve_as_active(self) -> None:
        self.role = "activating"
        checkpoint, entries = await self._store.load()
        self._checkpoint = await self._store.claim(checkpoint, self.replica_id)
        engine = self.engine = AlertEngine(self.rules, entries, checkpoint.watermark)
        self.position = checkpoint.seq
        watermark = checkpoint.watermark
        self._clock_anchor = None if math.isinf(watermark) else (watermark, time.monotonic())
        await self._commit(engine.start(), [])
        js = self._connection.jetstream()
        first = await position_consumer(
            js, checkpoint.seq, self.settings.batch_size, self.settings.start_from
        )
        sub = await js.pull_subscribe_bind(durable=CONSUMER, stream=EVENTS_STREAM)
        self.role = "active"
        self.last_error = None
        ACTIVE.set(1)
        log.info("evaluating", replica=self.replica_id, from_seq=first, restored_alerts=len(entries))
        try:
            while not self._stopping.is_set():
                self._lease.check()
                await self._flush_logs()
                await self._reload_if_requested()
                try:
                    messages = await sub.fetch(self.settings.batch_size, timeout=self._fetch_timeout)
                except (nats.errors.TimeoutError, TimeoutError):
                    messages = []
                self._lease.check()
                with STEP_SECONDS.time():
                    if messages:
                        await self._evaluate(engine, messages)
                    else:
                        await self._tick(engine)
        finally:
            ACTIVE.set(0)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            self.engine = None

    async def _evaluate(self, engine: AlertEngine, messages: list[Msg]) -> None:
        transitions: list[Transition] = []
        handled: list[Msg] = []
        future_limit = time.time() + self.settings.max_clock_skew.total_seconds()
        for msg in messages:
            handled.append(msg)
            seq = stream_sequence(msg.reply)
            if seq <= self.position:
                continue  # evaluated before: a redelivery
            self.position = seq
            decoded = decode_event(msg.subject, msg.data)
            if decoded is None:
                SKIPPED.labels("invalid").inc()
                log.warning("not an event envelope; skipped", subject=msg.subject, seq=seq)
                continue
            event_type, resource_id, at, data = decoded
            if at > future_limit:
                SKIPPED.labels("future").inc()
                log.warning("event from the future skipped (producer clock?)", subject=msg.subject, seq=seq)
                continue
            transitions += engine.observe(event_type, resource_id, at, data)
            if engine.pending_changes >= COMMIT_AT_CHANGES:
                transitions += engine.advance(engine.watermark)
                await self._commit(transitions, handled)
                transitions, handled = [], []
        EVALUATED.inc(len(messages))
        transitions += engine.advance(engine.watermark)
        await self._commit(transitions, handled)
        self._clock_anchor = (engine.watermark, time.monotonic())

    async def _tick(self, engine: AlertEngine) -> None:
        """No new events: event time goes on at the pace of the wall clock from the last one seen,
        so that an alert due in a quiet moment (a node offline for its `for`) still fires."""
        if self._clock_anchor is None:
            return
        anchor_time, anchor_clock = self._clock_anchor
        transitions = engine.advance(anchor_time + (time.monotonic() - anchor_clock))
        if transitions or engine.pending_changes:
            await self._commit(transitions, [])

    async def _commit(self, transitions: list[Transition], messages: list[Msg]) -> None:
        engine = self.engine
        assert engine is not None
        if transitions:
            await self._publish_alerts(transitions)
        self._checkpoint = await self._store.commit(
            self._checkpoint, engine.take_changes(), self.position, engine.watermark, self.replica_id
        )
        for msg in messages:
            await msg.ack()
        POSITION.set(self.position)
        if time.monotonic() >= self._gauges_due:  # counting walks every alert: once a second
            self._gauges_due = time.monotonic() + 1.0
            for phase, count in engine.counts().items():
                ALERTS.labels(phase).set(count)

    async def _publish_alerts(self, transitions: list[Transition]) -> None:
        events = [alert_event(t) for t in transitions]
        outcomes = await self._publisher.publish(list(events), [e.to_json() for e in events])
        failed = [o for o in outcomes if not o.stored]
        if failed:
            raise AlertsNotStored(f"{len(failed)} of {len(outcomes)} alert(s) not stored: {failed[0].error}")
        for transition, outcome in zip(transitions, outcomes, strict=True):
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

    async def _flush_logs(self) -> None:
        if not self._logs or not self._connection.is_connected:
            return
        events = list(self._logs)
        outcomes = await self._publisher.publish(events, [e.to_json() for e in events])
        for outcome in outcomes:
            if outcome.stored:
                self._logs.remove(outcome.event)

    async def _reload_if_requested(self) -> None:
        if not self._reload_requested:
            return
        self._reload_requested = False
        source = str(self.settings.rules_file)
        try:
            rules = load_rules_file(self.settings.rules_file)
        except RulesFileError as error:
            problems = [str(p) for p in error.problems]
            RELOADS.labels("rejected").inc()
            log.error("rules reload rejected; the current rules stay", file=source, problems=problems)
            self.record(
                "error",
                f"rules reload rejected: {len(problems)} problem(s) in {source}; the previous rules stay",
                {"file": source, "problems": problems, "checksum": self.rules.checksum},
            )
            return
        changes = rules.changes_from(self.rules)
        self.rules = rules
        if self.engine is not None:
            await self._commit(self.engine.replace_rules(rules), [])
        RELOADS.labels("applied").inc()
        log.info("rules reloaded", file=source, rules=len(rules.rules), **changes)
        self.record(
            "info",
            f"rules reloaded from {source}: {len(rules.rules)} rule(s)",
            {"file": source, "checksum": rules.checksum, **changes},
        )


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
