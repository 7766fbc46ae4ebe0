"""The replica supervisor: hold the lease, run active terms, stand by, recover, reload.

One replica is active at a time (see `lease`); the others wait as standbys and take over
within a lease TTL. Why one active replica rather than partitions by resource: alert state
needs every event of a resource in order; JetStream gives that to one consumer, and one process
evaluates far more events than a build farm sends (see bench/RESULTS.md). Partitioning would
need a rebalancing protocol for no gain at this scale.

An active term loads the stored state, claims the checkpoint, positions the durable consumer and
then fetches batches for the `EvaluationStep` until something ends it: a stop, the lease or the
checkpoint lost, the EVENTS stream replaced (deleted and created again: positions restart from
what the new stream holds), or an error (the next term resumes from the stored state).
"""

import asyncio
import collections
import contextlib
from enum import StrEnum
from typing import Any, Final

import nats.errors
import structlog
from nats.js.errors import NotFoundError

from alert_evaluator.alerts import log_event
from alert_evaluator.consumer import CONSUMER, position_consumer
from alert_evaluator.dead_letters import DeadLetters
from alert_evaluator.evaluation_step import EvaluationStep
from alert_evaluator.evaluator_metrics import ACTIVE, RELOADS, STEP_SECONDS, STREAM_REPLACED
from alert_evaluator.lease import Lease, LeaseLost
from alert_evaluator.rules import RuleSet
from alert_evaluator.rules_file import RulesFileError, load_rules_file
from alert_evaluator.settings import EvaluatorSettings
from alert_evaluator.state_store import AlertStateStore, CheckpointTaken, StreamIdentity
from eh_contracts.envelope import EventEnvelope
from eh_runtime.connection import NatsConnection
from eh_runtime.event_publisher import EventPublisher
from eh_runtime.stream import EVENTS_STREAM

log = structlog.get_logger(__name__)

_LOG_BACKLOG: Final = 100
_MAX_BACKOFF_SECONDS: Final = 30.0
_STREAM_CHECK_SECONDS: Final = 1.0


class Role(StrEnum):
    STARTING = "starting"
    WAITING_FOR_NATS = "waiting for NATS"
    STANDBY = "standby"
    ACTIVATING = "activating"
    ACTIVE = "active"
    RECOVERING = "recovering"
    STOPPED = "stopped"

    @property
    def healthy(self) -> bool:
        """Starting and taking over are steps of a healthy replica; recovering from an error
        (NATS trouble, a missing stream) or waiting for NATS is not."""
        return self in (Role.STARTING, Role.STANDBY, Role.ACTIVATING, Role.ACTIVE)


class CloseReason(StrEnum):
    """Why an active term ended."""

    STOPPING = "stopping"
    LEASE_LOST = "lease lost"
    CHECKPOINT_TAKEN = "checkpoint taken by another replica"
    STREAM_REPLACED = "stream replaced"
    ERROR = "error"


class StreamReplaced(Exception):
    """The EVENTS stream was deleted and created again while this term evaluated it."""


class ReplicaSupervisor:
    def __init__(self, settings: EvaluatorSettings, connection: NatsConnection, rules: RuleSet) -> None:
        self.settings = settings
        self.rules = rules
        self.role = Role.STARTING
        self.last_error: str | None = None
        self.last_close: CloseReason | None = None
        self.step: EvaluationStep | None = None
        self.dead_letters = DeadLetters()
        self.store = AlertStateStore(connection, settings.stream.replicas)
        self._connection = connection
        ttl = settings.lease_ttl.total_seconds()
        self._lease = Lease(connection, settings.replica_id, ttl)
        self._standby_poll = min(1.0, ttl / 5)
        self._fetch_timeout = min(1.0, ttl / 4)
        self._publisher = EventPublisher(connection)
        self._reload_requested = False
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._logs: collections.deque[EventEnvelope] = collections.deque(maxlen=_LOG_BACKLOG)
        self._task: asyncio.Task[None] | None = None

    @property
    def replica_id(self) -> str:
        return self.settings.replica_id

    @property
    def connection(self) -> NatsConnection:
        return self._connection

    # --- control ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="alert-replica-supervisor")

    async def stop(self, timeout: float) -> None:
        """Finish the batch at hand, commit it, give up the lease."""
        self._stopping.set()
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            log.warning("replica supervisor did not stop in time; cancelled", timeout_s=timeout)
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
        self._logs.append(log_event(level, message, self.replica_id, context))

    # --- roles -----------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.25
        try:
            while not self._stopping.is_set():
                if not self._connection.is_connected:
                    self.role = Role.WAITING_FOR_NATS
                    await self._pause(0.25)
                    continue
                try:
                    if not self.store.is_open:
                        await self.store.open()
                    await self._flush_logs()
                    await self._reload_if_requested()
                    if not await self._lease.try_acquire():
                        self.role = Role.STANDBY
                        await self._pause(self._standby_poll)
                        continue
                    reason = await self._active_term()
                except Exception as error:
                    self.last_error = f"{type(error).__name__}: {error}"
                    reason = CloseReason.ERROR
                self.last_close = reason
                if reason is CloseReason.ERROR:
                    self.role = Role.RECOVERING
                    log.error("evaluation interrupted; resuming from the stored state", error=self.last_error)
                    self.store.close()  # opened again (re-provisioned if it was deleted) next time
                    await self._pause(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                    continue
                backoff = 0.25
                if reason in (CloseReason.LEASE_LOST, CloseReason.CHECKPOINT_TAKEN):
                    log.warning("no longer the active replica", reason=reason.value)
                    await self._lease.release()
                    self.role = Role.STANDBY
        finally:
            self.role = Role.STOPPED
            ACTIVE.set(0)
            await self._lease.release()
            with contextlib.suppress(Exception):
                await self._flush_logs()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _active_term(self) -> CloseReason:
        self.role = Role.ACTIVATING
        js = self._connection.jetstream()
        stream = await _stream_identity(js)
        state = await self.store.load()
        checkpoint = await self.store.claim(state.checkpoint, self.replica_id, stream)
        replaced = checkpoint.seq != state.checkpoint.seq
        if replaced:
            STREAM_REPLACED.inc()
            self.record(
                "warning",
                f"the {EVENTS_STREAM} stream was replaced; evaluating the new one from its start",
                {"stored_seq": state.checkpoint.seq, "stream_created": stream.created},
            )
        step = self.step = EvaluationStep(
            replica_id=self.replica_id,
            rules=self.rules,
            state=state,
            checkpoint=checkpoint,
            store=self.store,
            publisher=self._publisher,
            js=js,
            dead_letters=self.dead_letters,
            max_clock_skew=self.settings.max_clock_skew,
        )
        try:
            await step.start()
            # A replaced stream is read from its first event, whatever a first start would do:
            # events stored in it before this replica noticed are new to it too.
            start_from = "all" if replaced else self.settings.start_from
            first = await position_consumer(js, checkpoint.seq, self.settings.batch_size, start_from)
            sub = await js.pull_subscribe_bind(durable=CONSUMER, stream=EVENTS_STREAM)
            self.role = Role.ACTIVE
            self.last_error = None
            ACTIVE.set(1)
            log.info(
                "evaluating",
                replica=self.replica_id,
                from_seq=first,
                restored_alerts=len(state.entries),
                stream_created=stream.created,
            )
            try:
                return await self._evaluate_until_closed(step, sub, stream)
            finally:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        except LeaseLost:
            return CloseReason.LEASE_LOST
        except CheckpointTaken:
            return CloseReason.CHECKPOINT_TAKEN
        except StreamReplaced as replaced:
            STREAM_REPLACED.inc()
            log.warning("the EVENTS stream was replaced; restarting from what it holds", detail=str(replaced))
            return CloseReason.STREAM_REPLACED
        finally:
            ACTIVE.set(0)
            self.step = None

    async def _evaluate_until_closed(
        self, step: EvaluationStep, sub: Any, stream: StreamIdentity
    ) -> CloseReason:
        js = self._connection.jetstream()
        loop = asyncio.get_running_loop()
        stream_checked = loop.time()
        while not self._stopping.is_set():
            self._lease.check()
            await self._flush_logs()
            await self._reload_if_requested()
            if loop.time() - stream_checked >= _STREAM_CHECK_SECONDS:
                current = await _stream_identity(js)
                if current.created != stream.created:
                    raise StreamReplaced(f"created {stream.created}, now {current.created}")
                stream_checked = loop.time()
            try:
                messages = await sub.fetch(self.settings.batch_size, timeout=self._fetch_timeout)
            except (nats.errors.TimeoutError, TimeoutError):
                messages = []
            self._lease.check()
            with STEP_SECONDS.time():
                if messages:
                    await step.evaluate(messages)
                else:
                    await step.tick()
        return CloseReason.STOPPING

    # --- logs and reloads ------------------------------------------------------------------

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
        if self.step is not None:
            await self.step.replace_rules(rules)
        RELOADS.labels("applied").inc()
        log.info("rules reloaded", file=source, rules=len(rules.rules), **changes)
        self.record(
            "info",
            f"rules reloaded from {source}: {len(rules.rules)} rule(s)",
            {"file": source, "checksum": rules.checksum, **changes},
        )


async def _stream_identity(js: Any) -> StreamIdentity:
    """Which EVENTS stream is there now.

    Raises:
        NotFoundError: there is none (the collector provisions it).
    """
    try:
        info = await js.stream_info(EVENTS_STREAM)
    except NotFoundError:
        raise NotFoundError(description=f"stream {EVENTS_STREAM} does not exist") from None
    created = info.created.isoformat() if info.created is not None else ""
    return StreamIdentity(created, info.state.last_seq)
