"""schemathesis against the OpenAPI document of every service: no server error, no answer the
document does not describe, for a bounded number of generated requests per operation.

schemathesis runs as its own process (its CLI), so that the services keep running in this test's
event loop while it sends them requests. Every check runs but one: `positive_data_acceptance`,
because the collector applies rules JSON Schema cannot state (a timestamp no further ahead than
COLLECTOR_MAX_CLOCK_SKEW, `current_step` at most `total_steps`, a metrics sample with a section),
and answers a schema-valid event that breaks one with a 422 naming it. `GET /api/v1/events` is an
endless event stream, which a request-per-case fuzzer cannot judge; its parameters are the history
endpoint's, fuzzed here, and its behaviour is the edge's own tests'.
"""

import asyncio
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI

from alert_evaluator.app import create_app as create_evaluator
from alert_evaluator.settings import EvaluatorSettings
from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_devtools.pytest_plugin import serving
from eh_runtime.settings import NatsSettings
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

pytestmark = [pytest.mark.nats, pytest.mark.slow]

# Per operation; the three services together take well under a minute on two shared cores.
MAX_EXAMPLES = 25
ENDLESS = {"sse-edge": ["--exclude-path", "/api/v1/events"]}
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def collector(url: str) -> FastAPI:
    return create_collector(CollectorSettings(nats=NatsSettings(url=url)))


def edge(url: str) -> FastAPI:
    return create_edge(EdgeSettings(nats=NatsSettings(url=url)))


def evaluator(url: str) -> FastAPI:
    return create_evaluator(EvaluatorSettings(nats=NatsSettings(url=url)))


SERVICES = {"collector": collector, "sse-edge": edge, "alert-evaluator": evaluator}


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_generated_requests_get_documented_answers_and_no_server_error(
    service, nats_url, events_stream, tmp_path
):
    async with serving(SERVICES[service](nats_url)) as client:
        process = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "run",
            f"{client.base_url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--phases",
            "examples,fuzzing",
            *ENDLESS.get(service, []),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "13",
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
            "--report-dir",
            str(tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()[-20000:]
