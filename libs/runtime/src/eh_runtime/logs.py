"""Structured logging: one JSON object per line on stdout, for structlog and stdlib loggers alike.

uvicorn's and nats-py's own log records go through the same renderer, so an operator greps one
format. Request-scoped values (request id, trace id) are bound with structlog's contextvars.
"""

import logging
import re
import sys
from typing import Any

import structlog

from eh_runtime.settings import LoggingSettings

# A token in a URL (`?access_token=`, for EventSource) must never reach a log line, whatever logged it.
_QUERY_TOKEN = re.compile(r"(access_token=)[^&\s\"']+")
REDACTED = "[redacted]"


def redact_tokens(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Replace the value of every `access_token=` in the line's strings with `[redacted]`."""
    for key, value in event_dict.items():
        if isinstance(value, str) and "access_token=" in value:
            event_dict[key] = _QUERY_TOKEN.sub(rf"\1{REDACTED}", value)
    return event_dict


def configure_logging(service: str, settings: LoggingSettings) -> None:
    """Route every log record of the process through structlog with `service` on each line."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
        redact_tokens,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    # httpx logs every request it makes at info (the host agent: one line per heartbeat); only
    # wanted when debugging.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG if settings.level == "debug" else logging.WARNING)
    # uvicorn installs its own handlers; ours on the root logger are the only ones wanted.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def _add_service(service: str) -> Any:
    def processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return processor
