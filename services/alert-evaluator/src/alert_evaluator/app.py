"""The alert-evaluator: rules over the event stream, publishing `system_alert` events."""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI

from alert_evaluator.evaluator_status import EvaluatorStatus
from alert_evaluator.replica import ReplicaSupervisor
from alert_evaluator.routes import router
from alert_evaluator.rules_file import load_rules_file
from alert_evaluator.settings import EvaluatorSettings
from eh_runtime.connection import NatsConnection
from eh_runtime.service import Service

SERVICE_NAME = "alert-evaluator"

log = structlog.get_logger(__name__)


def create_app(settings: EvaluatorSettings | None = None) -> FastAPI:
    """The service app. The rules file is read here: a bad one raises `RulesFileError` before
    anything starts."""
    settings = settings or EvaluatorSettings()
    rules = load_rules_file(settings.rules_file)
    service = Service(SERVICE_NAME, settings)
    supervisor = ReplicaSupervisor(settings, service.nats, rules)
    log.info("rules loaded", file=rules.source, rules=len(rules.rules), checksum=rules.checksum)
    supervisor.record(
        "info",
        f"rules loaded from {rules.file_name}: {len(rules.rules)} rule(s)",
        {"file": rules.file_name, "checksum": rules.checksum, "rules": sorted(r.name for r in rules.rules)},
    )

    async def start_supervisor(_connection: NatsConnection) -> None:
        supervisor.start()

    async def evaluating() -> str | None:
        role = supervisor.role
        if role.healthy:
            return None
        error = supervisor.last_error
        return f"replica {role.value}" + (f": {error}" if error else "")

    service.on_connect(start_supervisor)
    service.add_readiness_check("evaluation", evaluating)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        event_loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on the main thread
            event_loop.add_signal_handler(signal.SIGHUP, supervisor.request_reload)
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                event_loop.remove_signal_handler(signal.SIGHUP)
            await supervisor.stop(settings.shutdown_timeout.total_seconds())

    app = service.create_app(
        title="Event Handler alert-evaluator",
        description="Evaluates alert rules over the event stream and publishes system_alert events.",
        routers=[router],
        lifespan=lifespan,
    )
    app.state.evaluator_status = EvaluatorStatus(supervisor)
    return app
