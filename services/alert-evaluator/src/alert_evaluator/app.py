"""The alert-evaluator: so far a service shell (NATS connection, health, metrics); rules come next."""

from fastapi import FastAPI

from alert_evaluator.settings import EvaluatorSettings
from eh_runtime.service import Service

SERVICE_NAME = "alert-evaluator"


def create_app(settings: EvaluatorSettings | None = None) -> FastAPI:
    service = Service(SERVICE_NAME, settings or EvaluatorSettings())
    return service.create_app(
        title="Event Handler alert-evaluator",
        description="Evaluates alert rules over the event stream and publishes system_alert events.",
    )
