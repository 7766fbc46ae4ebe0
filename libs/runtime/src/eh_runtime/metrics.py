"""Prometheus exposition for every service: one registry (the process default) and `/metrics`.

Metric objects are module-level in the module that owns them, named `eventhandler_<what>` with
help text; the HTTP layer adds request counts and latencies here.
"""

import asyncio
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.responses import Response

NAMESPACE: Final = "eventhandler"

# Without this every counter and histogram also exports a `_created` series (its creation time),
# which doubles what each scrape stores and says nothing an operator uses. Read at exposition
# time, so it holds for metrics of every module, created before or after this import.
disable_created_metrics()  # type: ignore[no-untyped-call]

HTTP_REQUESTS = Counter(
    f"{NAMESPACE}_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    f"{NAMESPACE}_http_request_duration_seconds",
    "Time to answer HTTP requests (for streams: the stream's whole life), by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 600),
)

ASYNCIO_TASKS = Gauge(
    f"{NAMESPACE}_asyncio_tasks",
    "asyncio tasks alive in the process when scraped (flat over time, or something leaks).",
)


def _tasks_alive() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # no running event loop: nothing runs
        return 0.0


ASYNCIO_TASKS.set_function(_tasks_alive)


def metrics_response() -> Response:
    """The process's metrics in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
